//! Throughput figures for the WAL and the journal. Ignored by default; run in release:
//!
//! ```text
//! cargo test -p replica --release --test storage_bench -- --ignored --nocapture --test-threads=1
//! ```
//! The data directory is a temporary directory (set TMPDIR to measure another disk).

use replica::bank::{Command, Executed, Op, OpResult};
use replica::storage::{Journal, Wal};
use replica::types::{ClientId, RequestId};
use std::time::{Duration, Instant};

fn command(i: u64) -> Command {
    Command {
        client: ClientId(i % 10),
        request: RequestId(i),
        op: Op::Transfer {
            from: "A".into(),
            to: "B".into(),
            amount: 1,
        },
    }
}

/// Appends batches of `batch` commands, one record and one sync per batch, for `run`.
fn wal_run(batch: u64, fsync: bool, run: Duration) -> (u64, u64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::<Vec<Command>>::open(dir.path()).unwrap();
    wal.set_fsync(fsync);
    let start = Instant::now();
    let (mut syncs, mut commands) = (0u64, 0u64);
    while start.elapsed() < run {
        let record: Vec<Command> = (commands..commands + batch).map(command).collect();
        wal.append(&record).unwrap();
        wal.sync().unwrap();
        syncs += 1;
        commands += batch;
    }
    (syncs, commands, start.elapsed().as_secs_f64())
}

#[test]
#[ignore]
fn wal_group_commit_throughput() {
    for (batch, fsync) in [(1, true), (64, true), (1024, true), (1024, false)] {
        let (syncs, commands, secs) = wal_run(batch, fsync, Duration::from_secs(3));
        println!(
            "wal: batch {batch:>4}, fsync {fsync:>5}: {:>8.0} syncs/s, {:>9.0} commands/s",
            syncs as f64 / secs,
            commands as f64 / secs
        );
    }
}

#[test]
#[ignore]
fn journal_append_and_read_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    let n = 1_000_000u64;
    let start = Instant::now();
    for i in 1..=n {
        let result = OpResult::Transferred {
            from_balance: 9,
            to_balance: 11,
        };
        journal
            .append(&Executed {
                exec_index: i,
                command: command(i),
                result,
                txn: None,
            })
            .unwrap();
    }
    journal.flush().unwrap();
    let append = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut from = 1;
    while from <= n {
        from += journal.read(from, 10_000).unwrap().len() as u64;
    }
    let read = start.elapsed().as_secs_f64();
    println!(
        "journal: {n} entries appended at {:.0}/s, read back at {:.0}/s ({} bytes on disk)",
        n as f64 / append,
        n as f64 / read,
        std::fs::metadata(journal.path()).unwrap().len()
    );
}
