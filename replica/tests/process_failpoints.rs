//! Tier 3 for the failpoints: two shards of three `replica-bugs` processes (the build with
//! failpoints). For each coordinator step, shard 1's leader is armed and a transfer from shard
//! 1 to shard 2 crashes it there; for `participant-after-prepare`, shard 2's leader. Each time
//! the armed process must abort, and after failover the transfer must end atomically: one
//! answer (a retry of the same request gets it again), the money moved on both shards or on
//! neither, the bank's total kept, no lock left behind. Then the crashed process restarts and
//! catches up before the next step is tried, on the same cluster.
//!
//! `cargo test -p replica` builds only the plain `replica`, so the test asks cargo for the
//! failpoint build itself.

mod process_support;

use process_support::*;
use replica::bank::{Command, Op, OpResult};
use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::failpoints::Failpoint;
use replica::types::{Amount, ClientId, NodeId, RequestId};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

const ELECTION: Duration = Duration::from_secs(10);
const ANSWER: Duration = Duration::from_secs(20);
/// SIGABRT: what `std::process::abort` dies of.
const SIGABRT: i32 = 6;

/// The replica built with failpoints: `replica-bugs` beside the plain binary, built by cargo
/// when missing or older than the replica's sources (a workspace build makes it; `cargo test
/// -p replica` does not). `CARGO_BIN_EXE_replica-bugs` is named even in builds without the
/// feature, so it is not trusted. Cargo's build lock is free while tests run.
fn replica_bugs_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_replica_bugs).clone()
}

fn build_replica_bugs() -> PathBuf {
    let plain = Path::new(env!("CARGO_BIN_EXE_replica"));
    let bin = plain.with_file_name("replica-bugs");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if modified(&bin).is_some_and(|built| newest(&sources).is_some_and(|src| built >= src)) {
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args([
        "build",
        "-q",
        "-p",
        "replica",
        "--features",
        "bugs",
        "--bin",
        "replica-bugs",
    ]);
    // What cargo set for this test is not the build's business: some of it makes the build
    // think the outer one stale, and each would then rebuild the other every time.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "LD_LIBRARY_PATH" {
            build.env_remove(name);
        }
    }
    let profile = plain.parent().and_then(Path::file_name);
    if profile.is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build replica-bugs: {e}"));
    assert!(status.success(), "cargo build of replica-bugs failed");
    assert!(bin.is_file(), "no replica-bugs at {}", bin.display());
    bin
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of any file under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut latest = modified(dir)?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest(&path)
        } else {
            modified(&path)
        };
        if let Some(t) = time {
            latest = latest.max(t);
        }
    }
    Some(latest)
}

/// Makes fresh request ids for the reads that look for locks.
struct Reads {
    client: ClientId,
    next: u64,
}

impl Reads {
    fn command(&mut self, account: &str) -> ClientRequest {
        self.next += 1;
        ClientRequest::Submit(Command {
            client: self.client,
            request: RequestId(self.next),
            op: Op::Read {
                account: account.into(),
            },
        })
    }
}

/// Reads `account` until no transaction holds it locked; its balance.
async fn unlocked(client: &Client, reads: &mut Reads, account: &str) -> Amount {
    let deadline = Instant::now() + ANSWER;
    loop {
        let request = reads.command(account);
        match submit(client, &request, ANSWER).await {
            Some(ClientResponse::Reply { reply, .. }) => match reply.result {
                OpResult::Balance { balance } => return balance,
                OpResult::LockConflict { .. } => {}
                other => panic!("read of {account}: {other:?}"),
            },
            other => panic!("read of {account} got no answer: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "{account} stayed locked: a lock was left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn arm(client: &Client, node: NodeId, failpoint: Failpoint) {
    let request = ClientRequest::ArmFailpoint {
        name: failpoint.name().to_string(),
        once: true,
    };
    let response = client.call(node, &request, ANSWER).await;
    assert!(
        matches!(&response, Ok(ClientResponse::FailpointArmed { name, .. }) if name == failpoint.name()),
        "arming {failpoint} on {node}: {response:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_two_phase_commit_step_leaves_the_transfer_atomic() {
    let mut cluster = Cluster::start_sharded_with(2, 3, replica_bugs_bin());
    let shards = cluster.config.shards.clone();
    assert_eq!(shards.len(), 2);
    let (one, two) = (shards[0].clone(), shards[1].clone());
    let client = cluster.client();
    let (from, to) = (one.accounts[0].clone(), two.accounts[0].clone());
    let mut reads = Reads {
        client: ClientId(99),
        next: 0,
    };
    let (mut from_balance, mut to_balance): (Amount, Amount) = (10, 10);

    // An unknown name is refused with the list of names (the plain binary's refusal is in
    // process_shards).
    let any = wait_for_leader(&client, &one.nodes, ELECTION)
        .await
        .unwrap_or_else(|| panic!("no leader in shard 1\n{}", cluster.logs_tail()));
    let unknown = ClientRequest::ArmFailpoint {
        name: "coordinator-at-lunch".into(),
        once: true,
    };
    match client.call(any, &unknown, ANSWER).await {
        Ok(ClientResponse::Error { message, .. }) => {
            assert!(message.contains("coordinator-after-send"), "{message}")
        }
        other => panic!("an unknown failpoint was not refused: {other:?}"),
    }

    for (i, failpoint) in Failpoint::ALL.into_iter().enumerate() {
        let victim_shard = if failpoint.on_coordinator() {
            &one
        } else {
            &two
        };
        let victim = wait_for_leader(&client, &victim_shard.nodes, ELECTION)
            .await
            .unwrap_or_else(|| panic!("{failpoint}: no leader\n{}", cluster.logs_tail()));
        for shard in [&one, &two] {
            wait_for_leader(&client, &shard.nodes, ELECTION)
                .await
                .unwrap_or_else(|| panic!("{failpoint}: no leader\n{}", cluster.logs_tail()));
        }
        arm(&client, victim, failpoint).await;

        let request = transfer(10 + i as u64, 1, &from, &to, 1);
        let (answer, exit) = tokio::join!(
            submit(&client, &request, ANSWER),
            cluster.wait_exit(victim, ANSWER)
        );
        let exit = exit.unwrap_or_else(|| {
            panic!(
                "{failpoint}: {victim} did not crash\n{}",
                cluster.logs_tail()
            )
        });
        assert_eq!(exit.signal(), Some(SIGABRT), "{failpoint}: {victim} {exit}");
        let result = match answer {
            Some(ClientResponse::Reply { reply, .. }) => reply.result,
            other => panic!(
                "{failpoint}: the transfer got no answer: {other:?}\n{}",
                cluster.logs_tail()
            ),
        };
        let committed = match &result {
            OpResult::Transferred { .. } => true,
            OpResult::Aborted { .. } => false,
            other => panic!("{failpoint}: unexpected result {other:?}"),
        };
        eprintln!("{failpoint}: {victim} aborted; the transfer ended {result:?}");
        let retried = submit(&client, &request, ANSWER).await;
        assert!(
            matches!(&retried, Some(ClientResponse::Reply { reply, .. }) if reply.result == result),
            "{failpoint}: a retry got {retried:?}, not the first answer {result:?}"
        );
        if committed {
            from_balance -= 1;
            to_balance += 1;
        }

        // Atomic: both shards show the transfer, or neither does; no lock is left.
        let live = |nodes: &[NodeId]| -> Vec<NodeId> {
            nodes.iter().copied().filter(|n| *n != victim).collect()
        };
        let first = settled(&client, &live(&one.nodes), &from, from_balance, ANSWER).await;
        let second = settled(&client, &live(&two.nodes), &to, to_balance, ANSWER).await;
        let total: Amount = first.values().chain(second.values()).sum();
        assert_eq!(
            total, 100,
            "{failpoint}: the bank's total: {first:?} {second:?}"
        );
        assert_eq!(unlocked(&client, &mut reads, &from).await, from_balance);
        assert_eq!(unlocked(&client, &mut reads, &to).await, to_balance);

        // The crashed process comes back and catches up with its shard.
        cluster.start_node(victim);
        let account = if failpoint.on_coordinator() {
            &from
        } else {
            &to
        };
        let expected = if failpoint.on_coordinator() {
            from_balance
        } else {
            to_balance
        };
        settled(&client, &victim_shard.nodes, account, expected, ANSWER).await;
    }
}
