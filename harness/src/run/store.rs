//! Retention: what a run directory keeps once it is checked, and `harness prune`.
//!
//! A run's bulk is what the system under test wrote, not what the checker reads: the replicas'
//! data directories (`n1/`, `n2/`, ...), etcd's member data (`etcd/`) and the certificates
//! (`certs/`). The history, final.json, the logs, the results and the report stay. After the
//! check:
//! - a valid run deletes that bulk (a 20 s etcd run kept 614 MB of it);
//! - a run that is not valid packs it into `data.tar.gz` (tar and gzip through the `tar` and
//!   `flate2` crates) and deletes the originals, so the evidence stays, compressed;
//! - `--keep-data` keeps everything as it was.
//!
//! `harness prune` deletes whole run directories by age, by count (the newest N are kept) or by
//! verdict, never the one `latest` points at, and prints the size of what it kept.

use crate::run::shared::{RunSummary, SUMMARY_FILE};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The archive a failing run's data directories are packed into.
pub const DATA_ARCHIVE: &str = "data.tar.gz";

/// What retention did to one run directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Bytes of data directories and certificates deleted (or packed).
    pub removed_bytes: u64,
    /// Bytes of the archive written, if one was.
    pub archive_bytes: Option<u64>,
}

/// The directories of `dir` that only the system under test needs: data dirs and certificates.
pub fn bulky(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == "certs" || name == "etcd" || is_node_dir(&name)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// `n1`, `n12`: a replica's data directory.
fn is_node_dir(name: &str) -> bool {
    name.strip_prefix('n')
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
}

/// Applies retention to a checked run: `valid` deletes the bulk, anything else packs it into
/// [`DATA_ARCHIVE`]; `keep_data` leaves it all.
pub fn retain(dir: &Path, valid: bool, keep_data: bool) -> std::io::Result<Retained> {
    let bulk = bulky(dir);
    if keep_data || bulk.is_empty() {
        return Ok(Retained::default());
    }
    let removed_bytes = bulk.iter().map(|p| size_of(p)).sum();
    let archive_bytes = if valid { None } else { Some(pack(dir, &bulk)?) };
    for path in &bulk {
        std::fs::remove_dir_all(path)?;
    }
    Ok(Retained {
        removed_bytes,
        archive_bytes,
    })
}

/// Writes `dir/data.tar.gz` holding `paths` (relative to `dir`); returns its size.
fn pack(dir: &Path, paths: &[PathBuf]) -> std::io::Result<u64> {
    let archive = dir.join(DATA_ARCHIVE);
    let file = std::fs::File::create(&archive)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    for path in paths {
        let name = path.strip_prefix(dir).unwrap_or(path);
        tar.append_dir_all(name, path)?;
    }
    tar.into_inner()?.finish()?.sync_all()?;
    Ok(std::fs::metadata(&archive)?.len())
}

/// Bytes under `path` (files only; a symlink counts as itself).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// "614.0 MB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One saved run, as `prune` sees it.
#[derive(Clone, Debug)]
pub struct StoredRun {
    pub dir: PathBuf,
    /// When its run.toml was written.
    pub started: SystemTime,
    /// `valid`, `invalid`, `unknown`, or `incomplete` (never checked).
    pub verdict: String,
    pub bytes: u64,
}

/// Every run directory under `out` (a directory holding a run.toml; searched three levels
/// deep, for `sim/`, `zoo/` and `bench/`), oldest first.
pub fn stored_runs(out: &Path) -> Vec<StoredRun> {
    let mut runs = Vec::new();
    collect(out, 3, &mut runs);
    runs.sort_by(|a, b| a.started.cmp(&b.started).then(a.dir.cmp(&b.dir)));
    runs
}

fn collect(dir: &Path, depth: u32, runs: &mut Vec<StoredRun>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue; // `latest` is a symlink: its run is found under its own name
        }
        let run_toml = path.join("run.toml");
        match std::fs::metadata(&run_toml).and_then(|m| m.modified()) {
            Ok(started) => runs.push(StoredRun {
                verdict: original_verdict(&path).unwrap_or_else(|| "incomplete".into()),
                bytes: size_of(&path),
                dir: path,
                started,
            }),
            Err(_) if depth > 1 => collect(&path, depth - 1, runs),
            Err(_) => {}
        }
    }
}

/// What a run is compared by: its verdict and, when its harness.json says, how many
/// operations it invoked and faults it injected, and why it ended early.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub verdict: String,
    pub operations: Option<u64>,
    pub faults: Option<u64>,
    /// `interrupted` for a run stopped by a signal.
    pub reason: Option<String>,
}

impl Outcome {
    /// A finished run's outcome, from its summary.
    pub fn of(summary: &RunSummary) -> Outcome {
        Outcome {
            verdict: summary.verdict.clone(),
            operations: Some(summary.invoked),
            faults: Some(u64::from(summary.faults)),
            reason: summary.reason.clone(),
        }
    }
}

/// The outcome a run directory recorded (its harness.json, else the verdict of its
/// results.json).
pub fn original_outcome(dir: &Path) -> Option<Outcome> {
    let read = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
    };
    if let Some(s) = read(SUMMARY_FILE) {
        if let Some(verdict) = s.get("verdict").and_then(|v| v.as_str()) {
            return Some(Outcome {
                verdict: verdict.to_string(),
                operations: s.get("invoked").and_then(serde_json::Value::as_u64),
                faults: s.get("faults").and_then(serde_json::Value::as_u64),
                reason: s.get("reason").and_then(|v| v.as_str()).map(str::to_string),
            });
        }
    }
    let valid = read("results.json")?.get("valid")?.clone();
    let verdict = match valid {
        serde_json::Value::Bool(true) => "valid",
        serde_json::Value::Bool(false) => "invalid",
        _ => "unknown",
    };
    Some(Outcome {
        verdict: verdict.into(),
        ..Outcome::default()
    })
}

/// The verdict a run directory was given (its harness.json, else its results.json).
pub fn original_verdict(dir: &Path) -> Option<String> {
    original_outcome(dir).map(|o| o.verdict)
}

/// What `harness prune` deletes: runs matching `verdicts` (empty: any) that are older than
/// `older_than` (if given) and not among the newest `keep_last` (if given).
#[derive(Clone, Debug, Default)]
pub struct PruneRule {
    pub older_than: Option<Duration>,
    pub keep_last: Option<usize>,
    pub verdicts: Vec<String>,
}

/// The runs `rule` deletes, of `runs` (oldest first); `protected` (the `latest` run) never.
pub fn to_prune<'a>(
    runs: &'a [StoredRun],
    rule: &PruneRule,
    now: SystemTime,
    protected: Option<&Path>,
) -> Vec<&'a StoredRun> {
    let newest_kept = rule.keep_last.map_or(0, |n| runs.len().saturating_sub(n));
    runs.iter()
        .enumerate()
        .filter(|(k, _)| rule.keep_last.is_none() || *k < newest_kept)
        .map(|(_, run)| run)
        .filter(|run| rule.verdicts.is_empty() || rule.verdicts.contains(&run.verdict))
        .filter(|run| {
            rule.older_than.is_none_or(|age| {
                now.duration_since(run.started)
                    .is_ok_and(|elapsed| elapsed > age)
            })
        })
        .filter(|run| {
            protected.is_none_or(|p| {
                std::fs::canonicalize(&run.dir).ok() != std::fs::canonicalize(p).ok()
            })
        })
        .collect()
}

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: usize,
    pub freed_bytes: u64,
    pub kept: usize,
    pub kept_bytes: u64,
}

/// Deletes what `rule` selects under `out` (nothing when `dry_run`).
pub fn prune(out: &Path, rule: &PruneRule, dry_run: bool) -> std::io::Result<Pruned> {
    let runs = stored_runs(out);
    let latest = out.join("latest");
    let doomed = to_prune(&runs, rule, SystemTime::now(), Some(&latest));
    let mut pruned = Pruned::default();
    for run in &doomed {
        if !dry_run {
            std::fs::remove_dir_all(&run.dir)?;
        }
        pruned.deleted += 1;
        pruned.freed_bytes += run.bytes;
    }
    pruned.kept = runs.len() - doomed.len();
    pruned.kept_bytes = if dry_run {
        runs.iter().map(|r| r.bytes).sum::<u64>() - pruned.freed_bytes
    } else {
        size_of(out)
    };
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory with a data dir, certificates and the files the checker wrote.
    fn fake_run(dir: &Path, verdict: &str) {
        for sub in ["n1", "n2", "certs", "etcd/n1", "journals"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("n1/log.bin"), vec![7u8; 200_000]).unwrap();
        std::fs::write(dir.join("etcd/n1/db"), vec![0u8; 300_000]).unwrap();
        std::fs::write(dir.join("certs/ca.pem"), "cert").unwrap();
        std::fs::write(dir.join("journals/n1.jsonl"), "{}").unwrap();
        std::fs::write(dir.join("n1.log"), "log").unwrap();
        std::fs::write(dir.join("run.toml"), "seed = 1").unwrap();
        std::fs::write(
            dir.join(crate::run::shared::SUMMARY_FILE),
            format!("{{\"verdict\":\"{verdict}\"}}"),
        )
        .unwrap();
    }

    #[test]
    fn a_valid_run_deletes_its_data_and_a_failing_one_packs_it() {
        let root = tempfile::tempdir().unwrap();
        let (valid, invalid, kept) = (
            root.path().join("v"),
            root.path().join("i"),
            root.path().join("k"),
        );
        for (dir, verdict) in [(&valid, "valid"), (&invalid, "invalid"), (&kept, "valid")] {
            fake_run(dir, verdict);
        }
        let done = retain(&valid, true, false).unwrap();
        assert!(done.removed_bytes >= 500_000 && done.archive_bytes.is_none());
        assert!(bulky(&valid).is_empty());
        for stays in ["journals/n1.jsonl", "n1.log", "run.toml"] {
            assert!(valid.join(stays).exists(), "{stays}");
        }
        let done = retain(&invalid, false, false).unwrap();
        let archive = done.archive_bytes.unwrap();
        assert!(archive < 10_000, "zeros and sevens compress: {archive}");
        assert!(bulky(&invalid).is_empty());
        let file = std::fs::File::open(invalid.join(DATA_ARCHIVE)).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for packed in ["n1/log.bin", "etcd/n1/db", "certs/ca.pem"] {
            assert!(names.iter().any(|n| n == packed), "{packed}: {names:?}");
        }
        assert_eq!(retain(&kept, true, true).unwrap(), Retained::default());
        assert_eq!(
            bulky(&kept).len(),
            4,
            "--keep-data keeps n1, n2, certs, etcd"
        );
    }

    fn stored(name: &str, age_s: u64, verdict: &str, now: SystemTime) -> StoredRun {
        StoredRun {
            dir: PathBuf::from(name),
            started: now - Duration::from_secs(age_s),
            verdict: verdict.into(),
            bytes: 10,
        }
    }

    #[test]
    fn prune_selects_by_age_count_and_verdict() {
        let now = SystemTime::now();
        let runs = vec![
            stored("a", 400, "valid", now),
            stored("b", 300, "invalid", now),
            stored("c", 200, "valid", now),
            stored("d", 100, "unknown", now),
        ];
        let names = |rule: &PruneRule| -> Vec<String> {
            to_prune(&runs, rule, now, None)
                .iter()
                .map(|r| r.dir.display().to_string())
                .collect()
        };
        let by_age = PruneRule {
            older_than: Some(Duration::from_secs(250)),
            ..PruneRule::default()
        };
        assert_eq!(names(&by_age), ["a", "b"]);
        let by_count = PruneRule {
            keep_last: Some(1),
            ..PruneRule::default()
        };
        assert_eq!(names(&by_count), ["a", "b", "c"]);
        let valid_only = PruneRule {
            verdicts: vec!["valid".into()],
            keep_last: Some(1),
            ..PruneRule::default()
        };
        assert_eq!(names(&valid_only), ["a", "c"]);
    }

    #[test]
    fn prune_deletes_what_it_selects_but_never_latest() {
        let out = tempfile::tempdir().unwrap();
        for name in ["r1", "r2", "sim/sim-4"] {
            fake_run(&out.path().join(name), "valid");
        }
        std::os::unix::fs::symlink("r2", out.path().join("latest")).unwrap();
        let rule = PruneRule {
            verdicts: vec!["valid".into()],
            ..PruneRule::default()
        };
        let dry = prune(out.path(), &rule, true).unwrap();
        assert_eq!((dry.deleted, dry.kept), (2, 1));
        assert!(out.path().join("r1").exists(), "a dry run deletes nothing");
        let done = prune(out.path(), &rule, false).unwrap();
        assert_eq!((done.deleted, done.kept), (2, 1));
        assert!(!out.path().join("r1").exists() && !out.path().join("sim/sim-4").exists());
        assert!(out.path().join("r2/run.toml").exists(), "latest stays");
        assert!(done.kept_bytes > 0 && done.freed_bytes > 1_000_000);
    }
}
