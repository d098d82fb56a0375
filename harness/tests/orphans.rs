//! No replica process outlives the harness: after a normal exit, an error, Ctrl-C, or a SIGKILL
//! of the harness itself. The tests run the real `harness` binary and watch its children.

mod common;

use common::{alive, children_of, replica_bin, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn harness(out: &Path, replica: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "run",
            "--nodes",
            "3",
            "--clients",
            "2",
            "--nemesis",
            "none",
            "--no-progress",
        ])
        .arg("--out")
        .arg(out)
        .arg("--replica-bin")
        .arg(replica)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the harness")
}

/// Collects the harness's child pids until `n` are seen (bounded).
fn replicas_of(harness: &Child, n: usize) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    let ok = wait_until(Duration::from_secs(30), || {
        seen.extend(children_of(harness.id()));
        seen.len() >= n
    });
    assert!(ok, "the harness started {} of {n} replicas", seen.len());
    seen
}

fn assert_all_gone(pids: &BTreeSet<u32>) {
    let gone = wait_until(Duration::from_secs(5), || pids.iter().all(|&p| !alive(p)));
    let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    // Clean up whatever a failure left, so one failing test does not leak processes.
    for &p in &left {
        let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
    }
    assert!(gone, "replica processes survived the harness: {left:?}");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let mut code = None;
    wait_until(timeout, || match child.try_wait() {
        Ok(Some(status)) => {
            code = Some(status.code().unwrap_or(-1));
            true
        }
        _ => false,
    });
    if code.is_none() {
        let _ = child.kill();
    }
    code
}

#[test]
fn none_survive_a_normal_exit() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path(), &replica_bin(), &["--time", "2s"]);
    let pids = replicas_of(&h, 3);
    let code = wait_exit(&mut h, Duration::from_secs(90));
    assert_eq!(code, Some(0), "a short quiet run is valid");
    assert_all_gone(&pids);
}

#[test]
fn none_survive_an_error() {
    // Replicas that never elect a leader: the harness gives up with an error.
    let out = tempfile::tempdir().unwrap();
    let fake = out.path().join("mute-replica");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 300\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut h = harness(
        out.path(),
        &fake,
        &["--time", "2s", "--start-timeout", "1s"],
    );
    let pids = replicas_of(&h, 3);
    let code = wait_exit(&mut h, Duration::from_secs(30));
    assert_eq!(code, Some(70), "a harness error exits 70");
    assert_all_gone(&pids);
}

fn killed_by(signal: Signal, expected_code: Option<i32>) {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path(), &replica_bin(), &["--time", "60s"]);
    let pids = replicas_of(&h, 3);
    // Let the workload start (the history appears once a leader is elected).
    assert!(wait_until(Duration::from_secs(30), || out
        .path()
        .join("latest/history.jsonl")
        .exists()));
    kill(Pid::from_raw(h.id() as i32), signal).unwrap();
    let code = wait_exit(&mut h, Duration::from_secs(10));
    if let Some(expected) = expected_code {
        assert_eq!(code, Some(expected));
    }
    assert_all_gone(&pids);
}

#[test]
fn none_survive_ctrl_c() {
    killed_by(Signal::SIGINT, Some(130));
}

#[test]
fn none_survive_a_sigkill_of_the_harness() {
    killed_by(Signal::SIGKILL, None);
}
