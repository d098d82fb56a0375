//! Writes the generated sharded runs that two checker builds are compared on (their
//! results.json must be identical but for `elapsed_ms` and `run_dir`): seeds 1 to 6, 2
//! and 3 shards, cross-shard shares 0.5 and 0.9, clean and with each planted sharded
//! anomaly (`Plant::SHARDED`). The generator is the same for both builds, so each is
//! judged on the very same files.
//!
//! `cargo run --release -p checker --example sharded_corpus -- OUT_DIR [EVENTS]`

use checker::gen::shards::generate;
use checker::gen::{GenOptions, Plant};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: sharded_corpus OUT_DIR [EVENTS]")?,
    );
    let events: usize = args.next().map_or(Ok(5_000), |n| n.parse())?;
    let plants = std::iter::once(None).chain(Plant::SHARDED.into_iter().map(Some));
    let mut written = 0;
    for plant in plants {
        for seed in 1..=6u64 {
            for shards in [2u32, 3] {
                for cross_share in [0.5, 0.9] {
                    let options = GenOptions::sharded(seed, events, 8, shards, cross_share);
                    let mut run = generate(&options);
                    let name = match plant {
                        Some(p) => {
                            run.plant(p).map_err(|e| format!("{p:?}: {e:?}"))?;
                            format!("{p:?}")
                        }
                        None => "clean".into(),
                    };
                    let dir = out.join(format!("s{seed}-k{shards}-c{cross_share}-{name}"));
                    std::fs::create_dir_all(&dir)?;
                    run.write(&dir)?;
                    written += 1;
                }
            }
        }
    }
    println!("{written} runs in {}", out.display());
    Ok(())
}
