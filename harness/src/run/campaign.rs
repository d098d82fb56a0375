//! Nightly campaigns: many seeded runs back to back, and `index.html`, the list of every run in
//! the reports directory (seed, faults, operations, verdict, link to its report).
//!
//! The index is rebuilt from the run directories themselves (run.toml, the harness's
//! `harness.json` summary, the checker's `results.json`) after every run, so it also lists runs
//! made by other commands and survives a campaign that was interrupted.

use crate::faults::tunables::{self, Pins};
use crate::run::rundir::RunInfo;
use crate::run::{run_campaign, RunError, RunOptions, RunSummary, SUMMARY_FILE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Most runs one campaign makes with `--until-failure` and no `--runs`.
pub const MAX_UNTIL_FAILURE_RUNS: u32 = 10_000;

/// The nemesis intervals a campaign's runs draw from: faults every second as well as every
/// five.
pub const NEMESIS_INTERVAL_CHOICES_MS: [u64; 3] = [1_000, 2_000, 5_000];

/// Runs `runs` campaigns with seeds `seed, seed + 1, ...`, stopping at the first run that is
/// not valid when `until_failure`. With `explore`, each run draws its tunables from its seed
/// (pinned ones excepted; see `tunables`). Calls `report` after each run.
pub async fn run_many(
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

/// [`run_many`] over exactly `seeds` (a fleet task's share, less the runs already done).
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
            let drawn = tunables::draw(one.seed, pins, &NEMESIS_INTERVAL_CHOICES_MS);
            one.params.nemesis_interval_ms = drawn.nemesis_interval_ms;
            one.params.tunables = Some(drawn);
        }
        let summary = run_campaign(&one).await?;
        report(&summary);
        write_index(&opts.out).map_err(|source| RunError::Write {
            path: opts.out.join("index.html"),
            source,
        })?;
        let failed = summary.exit_code != 0;
        summaries.push(summary);
        if until_failure && failed {
            break;
        }
    }
    Ok(summaries)
}

/// One row of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub name: String,
    pub kind: String,
    pub started_at: String,
    pub seed: u64,
    pub faults: Option<u32>,
    pub operations: Option<u64>,
    pub verdict: String,
    pub link: String,
}

/// Every run directory under `out`, oldest first.
pub fn index_rows(out: &Path) -> Vec<IndexRow> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.is_symlink() && p.is_dir() && p.join("run.toml").is_file())
        .collect();
    dirs.sort();
    dirs.iter().filter_map(|dir| row(dir)).collect()
}

fn row(dir: &Path) -> Option<IndexRow> {
    let info = RunInfo::load(dir).ok()?;
    let name = dir.file_name()?.to_string_lossy().to_string();
    let summary: Option<RunSummary> = std::fs::read_to_string(dir.join(SUMMARY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let results = checker::Results::read_json(&dir.join("results.json")).ok();
    let verdict = match (&summary, &results) {
        (Some(s), _) => s.verdict.clone(),
        (None, Some(r)) => crate::run::verdict_word(r.exit_code()).to_string(),
        (None, None) => "incomplete".to_string(),
    };
    // A run checked without the harness's summary (a replay, a copied run) still has
    // the checker's count of operations.
    let operations = summary
        .as_ref()
        .map(|s| s.invoked)
        .or_else(|| results.as_ref().map(|r| r.history.operations));
    let link = if dir.join("report.html").is_file() {
        format!("{name}/report.html")
    } else {
        format!("{name}/")
    };
    Some(IndexRow {
        name,
        kind: info.kind,
        started_at: readable_time(&info.started_at),
        seed: info.seed,
        faults: summary.as_ref().map(|s| s.faults),
        operations,
        verdict,
        link,
    })
}

/// `2026-12-02T17:44:47.245787724Z` as `2026-12-02 17:44:47 UTC`; other text unchanged.
fn readable_time(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((date, time)) if time.ends_with('Z') => match time.get(..8) {
            Some(hms) => format!("{date} {hms} UTC"),
            None => rfc3339.to_string(),
        },
        _ => rfc3339.to_string(),
    }
}

/// Writes `out/index.html`.
pub fn write_index(out: &Path) -> std::io::Result<()> {
    std::fs::write(out.join("index.html"), render_index(&index_rows(out)))
}

pub fn render_index(rows: &[IndexRow]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>faultline runs</title>\n<style>\
         body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}\
         .valid{color:#1a7f37}.invalid{color:#cf222e;font-weight:bold}.unknown,.incomplete{color:#9a6700}\
         </style></head><body>\n<h1>faultline runs</h1>\n",
    );
    let invalid = rows.iter().filter(|r| r.verdict == "invalid").count();
    let _ = writeln!(
        html,
        "<p>{}, {invalid} invalid.</p>",
        checker::text::count(rows.len() as u64, "run")
    );
    html.push_str(
        "<table>\n<tr><th>run</th><th>kind</th><th>started</th><th>seed</th><th>faults</th>\
         <th>operations</th><th>verdict</th></tr>\n",
    );
    for r in rows.iter().rev() {
        let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{}\">{}</td></tr>",
            escape(&r.link),
            escape(&r.name),
            escape(&r.kind),
            escape(&r.started_at),
            r.seed,
            opt(r.faults.map(u64::from)),
            opt(r.operations),
            escape(&r.verdict),
            escape(&r.verdict)
        );
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::rundir::RunParams;

    #[test]
    fn the_index_lists_every_run_with_its_verdict() {
        let out = tempfile::tempdir().unwrap();
        for (name, seed, verdict) in [
            ("20260101T000000Z-1", 1, Some("valid")),
            ("20260101T000001Z-2", 2, None),
        ] {
            let dir = out.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            RunInfo {
                target: crate::targets::TargetKind::Faultline,
                accounts: vec!["A".into()],
                initial_balance: 10,
                seed,
                kind: "campaign".into(),
                started_at: "t".into(),
                replica_bin: "r".into(),
                replica_version: "v".into(),
                harness_version: "h".into(),
                replays: None,
                params: RunParams::default(),
                shards: Vec::new(),
            }
            .write(&dir)
            .unwrap();
            if let Some(v) = verdict {
                let s = RunSummary {
                    dir: dir.clone(),
                    seed,
                    kind: "campaign".into(),
                    faults: 3,
                    invoked: 100,
                    ok: 90,
                    fail: 9,
                    info: 1,
                    verdict: v.into(),
                    exit_code: 0,
                    notes: vec![],
                    elapsed_s: 1.0,
                    reason: None,
                };
                std::fs::write(dir.join(SUMMARY_FILE), serde_json::to_string(&s).unwrap()).unwrap();
            }
        }
        std::os::unix::fs::symlink("20260101T000001Z-2", out.path().join("latest")).unwrap();
        let rows = index_rows(out.path());
        assert_eq!(rows.len(), 2, "latest is not a run of its own");
        assert_eq!(rows[0].faults, Some(3));
        assert_eq!(rows[0].verdict, "valid");
        assert_eq!(rows[1].verdict, "incomplete");
        write_index(out.path()).unwrap();
        let html = std::fs::read_to_string(out.path().join("index.html")).unwrap();
        assert!(html.contains("20260101T000000Z-1/") && html.contains("class=\"valid\""));
        assert!(html.contains("2 runs, 0 invalid"));
        assert_eq!(
            readable_time("2026-12-02T17:44:47.245787724Z"),
            "2026-12-02 17:44:47 UTC"
        );
        assert_eq!(readable_time("t"), "t");
    }
}
