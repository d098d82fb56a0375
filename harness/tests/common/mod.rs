//! Helpers shared by the harness's real-process tests.
#![allow(dead_code)]

use harness::params::RunParams;
use harness::run::rundir::default_replica_bin;
use harness::run::shared::RunOptions;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The replica binary, built if it is missing or older than the replica's sources (`cargo test
/// -p harness` does not build another package's binaries; `cargo test --workspace` does).
/// Cargo's build lock is free while tests run.
pub fn replica_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| built_replica("replica", &[])).clone()
}

/// The replica with planted bugs (`--features bugs`), built the same way.
pub fn replica_bugs_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| built_replica("replica-bugs", &["--features", "bugs"]))
        .clone()
}

/// `bin` of the replica package beside the test's profile, rebuilt when stale.
fn built_replica(bin: &str, extra_args: &[&str]) -> PathBuf {
    let path = default_replica_bin().with_file_name(bin);
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../replica");
    if modified(&path).is_some_and(|built| newest(&sources).is_some_and(|src| built >= src)) {
        return path;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "-q", "-p", "replica", "--bin", bin])
        .args(extra_args);
    if path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release")
    {
        build.arg("--release");
    }
    let status = build
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(status.success(), "cargo build of {bin} failed");
    assert!(path.is_file(), "no {bin} binary at {}", path.display());
    path
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
        etcd_bin: harness::targets::etcd::find_etcd_bin(None),
        progress: false,
        // Tests look inside data directories after a run; retention has its own tests.
        keep_data: true,
    }
}

#[allow(unused_imports)]
pub use harness::os::process::alive;

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

/// Whether etcd and etcdctl are installed. Without them an etcd test skips with a loud line,
/// unless FAULTLINE_REQUIRE_ETCD is set (CI sets it), when it fails.
pub fn etcd_present() -> bool {
    let answers = |bin: &Path, arg: &str| {
        std::process::Command::new(bin)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let etcd = harness::targets::etcd::find_etcd_bin(None);
    if etcd.is_file() && answers(&etcd, "--version") && answers(Path::new("etcdctl"), "version") {
        return true;
    }
    assert!(
        std::env::var_os("FAULTLINE_REQUIRE_ETCD").is_none(),
        "FAULTLINE_REQUIRE_ETCD is set but etcd or etcdctl is missing: \
         apt-get install etcd-server etcd-client"
    );
    eprintln!(
        "\n*** SKIPPED: etcd or etcdctl not found (apt-get install etcd-server etcd-client); \
         set FAULTLINE_REQUIRE_ETCD=1 to make this a failure ***\n"
    );
    false
}

/// A scenario of two sets on three nodes (set 1: A→B 3, B→C 1; set 2: C→D 2 with n3 down),
/// for the interactive prompt's tests.
pub const TWO_SETS_CSV: &str = "Set Number,Transactions,Live Nodes\n\
    1,\"(A, B, 3)\",\"[n1, n2, n3]\"\n,\"(B, C, 1)\",\n2,\"(C, D, 2)\",\"[n1, n2]\"\n";

/// Runs `harness scenario <TWO_SETS_CSV> --interactive --nodes 3 <extra>` writing into
/// `reports`, with `commands` piped to its prompt, and waits for it to end.
pub fn prompt_session(reports: &Path, extra: &[&str], commands: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    std::fs::create_dir_all(reports).unwrap();
    let csv = reports.join("two.csv");
    std::fs::write(&csv, TWO_SETS_CSV).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["scenario", csv.to_str().unwrap(), "--interactive"])
        .args([
            "--nodes",
            "3",
            "--no-progress",
            "--out",
            reports.to_str().unwrap(),
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Exit code, stdout and stderr of `output`, for assertion messages.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Checks the final balances the prompt printed after `heading` when set 1 of
/// [`TWO_SETS_CSV`] ran and set 2 did not: every one of the 3 nodes holds A 7, B 12, C 11 and
/// the bank's 100.
pub fn assert_only_set_one_ran(stdout: &str, heading: &str) {
    let Some(table) = stdout.split(heading).nth(1) else {
        panic!("no {heading:?} in:\n{stdout}");
    };
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with('n'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        assert_eq!(&row[1..4], ["7", "12", "11"], "{row:?}: {table}");
        assert_eq!(row.last(), Some(&"100"), "{row:?}: {table}");
    }
}
