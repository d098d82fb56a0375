//! Helpers shared by the harness's real-process tests.
#![allow(dead_code)]

use harness::run::RunOptions;
use harness::rundir::{default_replica_bin, RunParams};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The replica binary, built if it is missing or older than the replica's sources (`cargo test
/// -p harness` does not build another package's binaries; `cargo test --workspace` does).
/// Cargo's build lock is free while tests run.
pub fn replica_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = default_replica_bin();
            let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../replica");
            if modified(&bin).is_some_and(|built| newest(&sources).is_some_and(|src| built >= src))
            {
                return bin;
            }
            let release = bin
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = std::process::Command::new(cargo);
            build.args(["build", "-q", "-p", "replica", "--bin", "replica"]);
            if release {
                build.arg("--release");
            }
            let status = build
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
                .status()
                .expect("cannot run cargo to build the replica");
            assert!(status.success(), "cargo build -p replica failed");
            assert!(bin.is_file(), "no replica binary at {}", bin.display());
            bin
        })
        .clone()
}

/// The replica with planted bugs (`--features bugs`), built the same way when missing or stale.
pub fn replica_bugs_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = default_replica_bin().with_file_name("replica-bugs");
            let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../replica");
            if modified(&bin).is_some_and(|built| newest(&sources).is_some_and(|src| built >= src))
            {
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
            if bin
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "release")
            {
                build.arg("--release");
            }
            let status = build
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
                .status()
                .expect("cannot run cargo to build replica-bugs");
            assert!(
                status.success(),
                "cargo build -p replica --features bugs failed"
            );
            assert!(bin.is_file(), "no replica-bugs binary at {}", bin.display());
            bin
        })
        .clone()
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

/// Options for a run writing into `out`.
pub fn options(out: &Path, seed: u64, params: RunParams) -> RunOptions {
    RunOptions {
        params,
        seed,
        out: out.to_path_buf(),
        replica_bin: replica_bin(),
        progress: false,
    }
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Pids whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command: state, ppid, ...
                    let rest = stat
                        .rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()?;
                    Some(rest == parent)
                })
                == Some(true)
        })
        .collect()
}

/// Waits until `condition` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}
