//! Tier 3: what a stopped replica leaves in its `--log-file` (issue 21, item 5): a refusal to
//! start and a fatal disk error are written there, not only to stderr, which a supervisor may
//! not keep.

mod process_support;

use process_support::*;
use replica::types::NodeId;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

#[test]
fn a_refusal_to_start_is_in_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("n1.log");
    let missing = dir.path().join("no-such-cluster.toml");
    let output = Process::new(env!("CARGO_BIN_EXE_replica"))
        .arg("run")
        .arg("--config")
        .arg(&missing)
        .args(["--id", "n1", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .expect("run the replica");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-cluster.toml"), "stderr: {stderr}");
    // The cause is said once: the error prints it and does not also chain it.
    assert_eq!(stderr.matches("os error 2").count(), 1, "stderr: {stderr}");
    let text = std::fs::read_to_string(&log).expect("the log file exists");
    assert!(
        text.contains("replica stopped") && text.contains("no-such-cluster.toml"),
        "the refusal is in the log file: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_disk_error_is_in_the_log_file() {
    let mut cluster = Cluster::start(3);
    let client = cluster.client();
    wait_for_leader(&client, &cluster.live(), Duration::from_secs(10))
        .await
        .expect("a leader");
    // n3's data directory vanishes under it: its next checkpoint (every 10 slots, with the
    // executed journal synced before it) cannot be written, a fatal disk error.
    let victim = NodeId(3);
    std::fs::remove_dir_all(cluster.data_dir(victim)).unwrap();
    for r in 1..=30 {
        let request = transfer(3, r, "A", "B", 1);
        submit(&client, &request, Duration::from_secs(10))
            .await
            .expect("commits with n1 and n2");
    }
    let status = cluster.wait_exit(victim, Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "n3 stops: {status:?}\n{}",
        cluster.logs_tail()
    );
    let text = std::fs::read_to_string(cluster.dir.path().join("n3.log")).unwrap();
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains("replica stopped") && last.contains("its disk failed"),
        "the fatal error is the log's last line: {last:?}"
    );
    // The storage error, the shell's context and the server's each wrap the one below: the
    // disk's own words appear once.
    assert_eq!(
        last.matches("os error").count(),
        1,
        "the cause once: {last:?}"
    );
}
