//! Peak memory of a restart over a large WAL (issue 21, item 6): a measurement, not a
//! pass/fail test. The data directory holds a checkpoint at slot N and a WAL of N accepted
//! batches at or below it (a WAL between two compactions holds such records), so the core
//! keeps none of them: what the restart costs is the reading. Run with
//!
//! ```text
//! WAL_RECORDS=4000 cargo test -p replica --test process_restart_memory -- --ignored --nocapture
//! ```
//!
//! `REPLICA_BIN` runs another build (an older one, to compare).

mod process_support;

use process_support::{peak_rss_kib, Cluster};
use replica::bank::{Command, Op};
use replica::config::ClusterConfig;
use replica::core::{Checkpoint, CoreConfig, Value, WalRecord};
use replica::storage::{write_checkpoint, Wal};
use replica::types::{Ballot, ClientId, NodeId, RequestId, Slot};
use std::path::Path;
use std::time::{Duration, Instant};

fn batch(slot: u64) -> Value {
    let commands = (0..400)
        .map(|i| Command {
            client: ClientId(i),
            request: RequestId(slot),
            op: Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount: 1,
            },
        })
        .collect();
    Value::Batch(commands)
}

/// Writes a checkpoint at slot `records` and a WAL of `records` accepted batches below it.
fn fill_data_dir(config: &ClusterConfig, dir: &Path, records: u64) -> u64 {
    let core = CoreConfig::from_cluster(config, NodeId(1));
    let ballot = Ballot {
        round: 1,
        node: NodeId(1),
    };
    let (mut wal, _, _) = Wal::<WalRecord>::open(dir).unwrap();
    for slot in 1..=records {
        let record = WalRecord::Accepted {
            slot: Slot(slot),
            ballot,
            value: batch(slot),
        };
        wal.append(&record).unwrap();
    }
    wal.sync().unwrap();
    let checkpoint = Checkpoint {
        slot: Slot(records),
        bank: core.new_bank(),
        ballot,
    };
    write_checkpoint(dir, &checkpoint).unwrap();
    wal.size_bytes()
}

#[test]
#[ignore]
fn restart_memory_over_a_large_wal() {
    let records: u64 = std::env::var("WAL_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let bin = std::env::var("REPLICA_BIN").unwrap_or(env!("CARGO_BIN_EXE_replica").into());
    let mut cluster = Cluster::prepare(3, &bin);
    let n1 = NodeId(1);
    let wal_bytes = fill_data_dir(&cluster.config, &cluster.data_dir(n1), records);
    cluster.start_node(n1);
    let log = cluster.dir.path().join("n1.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut recovered = false;
    while Instant::now() < deadline && !recovered {
        std::thread::sleep(Duration::from_millis(100));
        recovered = std::fs::read_to_string(&log).is_ok_and(|t| t.contains("recovered state"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let peak = peak_rss_kib(cluster.pid(n1).expect("n1 runs"));
    cluster.kill(n1);
    assert!(
        recovered,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    println!(
        "restart over a WAL of {records} records ({} MiB): peak RSS {} MiB ({bin})",
        wal_bytes >> 20,
        peak >> 10
    );
}
