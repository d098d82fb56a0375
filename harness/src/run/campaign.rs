//! Nightly campaigns: many seeded runs back to back, the reports directory's index
//! ([`crate::run::index`]) rebuilt after every one.

use crate::faults::tunables::{self, Pins};
use crate::run::index::write_index;
use crate::run::run_in_campaign;
use crate::run::shared::{RunError, RunOptions, RunSummary};

/// Most runs one campaign makes with `--until-failure` and no `--runs`.
pub const MAX_UNTIL_FAILURE_RUNS: u32 = 10_000;

/// The nemesis intervals a campaign's runs draw from: faults every second as well as every
/// five.
pub const NEMESIS_INTERVAL_CHOICES_MS: [u64; 3] = [1_000, 2_000, 5_000];

/// Draws the run's tunables (and nemesis interval) from its seed, as every run of
/// `harness run` and `harness campaign` does unless `--defaults`; run.toml records them.
/// A sharded run draws its workload's mix, contention and cross-shard share too (the share
/// unless pinned), from the seed's swarm stream as a simulated seed does, and when its
/// failpoints are armed (`crate::faults::failpoints::draw_timing`).
pub fn draw_tunables(opts: &mut RunOptions, pins: &Pins) {
    let drawn = tunables::draw(opts.seed, pins, &NEMESIS_INTERVAL_CHOICES_MS);
    opts.params.nemesis_interval_ms = drawn.nemesis_interval_ms;
    opts.params.tunables = Some(drawn);
    if let Some(shape) = opts.params.shards.as_mut() {
        let (workload, cross_shard_share) = crate::sim::swarm::draw_mix(opts.seed);
        shape.workload = Some(workload);
        shape.cross_shard_share = pins.cross_shard_share.unwrap_or(cross_shard_share);
        let interval_ms = drawn.nemesis_interval_ms;
        shape.failpoints = Some(crate::faults::failpoints::draw_timing(
            opts.seed,
            interval_ms,
        ));
    }
}

/// Runs `runs` campaigns with seeds `seed, seed + 1, ...`, stopping at the first run that is
/// not valid when `until_failure`. With `explore`, each run draws its tunables from its seed
/// (pinned ones excepted; see `tunables`). Calls `report` after each run.
pub async fn run_campaign(
    opts: &RunOptions,
    runs: u32,
    until_failure: bool,
    explore: Option<Pins>,
    report: impl FnMut(&RunSummary),
) -> Result<Vec<RunSummary>, RunError> {
    let seeds: Vec<u64> = (0..runs)
        .map(|k| opts.seed.wrapping_add(u64::from(k)))
        .collect();
    run_seeds(opts, &seeds, until_failure, explore, report).await
}

/// [`run_campaign`] over exactly `seeds` (a fleet task's share, less the runs already done).
pub async fn run_seeds(
    opts: &RunOptions,
    seeds: &[u64],
    until_failure: bool,
    explore: Option<Pins>,
    mut report: impl FnMut(&RunSummary),
) -> Result<Vec<RunSummary>, RunError> {
    let mut summaries = Vec::new();
    for &seed in seeds {
        let mut one = opts.clone();
        one.seed = seed;
        if let Some(pins) = &explore {
            draw_tunables(&mut one, pins);
        }
        let summary = run_in_campaign(&one).await?;
        report(&summary);
        write_index(&opts.out).map_err(|source| RunError::Write {
            path: opts.out.join("index.html"),
            cause: source,
        })?;
        let failed = summary.exit_code != 0;
        summaries.push(summary);
        if until_failure && failed {
            break;
        }
    }
    Ok(summaries)
}
