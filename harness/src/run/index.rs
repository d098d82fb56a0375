//! `index.html`, the morning's dashboard of every run in the reports directory (kind, target,
//! shards, bug, seed, faults, operations, duration, verdict, failing checks and the cause in
//! one line, link to its report), with filters (a little inline script, no external assets),
//! and `campaign.json`, the same rows for CI.
//!
//! The index is rebuilt from the run directories themselves (run.toml, the harness's
//! `harness.json` summary, the checker's `results.json`) after every run, so it also lists runs
//! made by other commands (simulated seeds under `sim/` included) and survives a campaign that
//! was interrupted.

use crate::run::shared::SUMMARY_FILE;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row of the index: one run directory, whatever made it (a run, a campaign, a
/// scenario, a replay, a simulated seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexRow {
    /// The run directory, relative to the reports directory (`sim/sim-17`).
    pub name: String,
    pub kind: String,
    /// `faultline` or `etcd`.
    pub target: String,
    /// Shards of a sharded bank; `None` for the classic one.
    pub shards: Option<u64>,
    /// The planted bug, if any.
    pub bug: Option<String>,
    pub started_at: String,
    pub seed: u64,
    pub faults: Option<u32>,
    pub operations: Option<u64>,
    /// `valid`, `invalid`, `unknown` or `incomplete`.
    pub verdict: String,
    /// The checks that were not valid.
    pub failing_checks: Vec<String>,
    /// The outcome in one line (see `checker::report::cause`).
    pub cause: Option<String>,
    /// The history's span in seconds (virtual for a simulated run).
    pub duration_s: Option<f64>,
    /// Wall time the harness took, when it says.
    pub elapsed_s: Option<f64>,
    /// The report (or the directory), relative to the reports directory.
    pub link: String,
}

/// How deep under the reports directory run directories are looked for (`sim/sim-17`,
/// `zoo/sim/...`).
const MAX_DEPTH: usize = 3;

/// Every run directory under `out` (at most [`MAX_DEPTH`] deep), oldest first.
pub fn index_rows(out: &Path) -> Vec<IndexRow> {
    let mut dirs = Vec::new();
    find_runs(out, MAX_DEPTH, &mut dirs);
    let mut rows: Vec<IndexRow> = dirs.iter().filter_map(|dir| row(out, dir)).collect();
    rows.sort_by(|a, b| (&a.started_at, &a.name).cmp(&(&b.started_at, &b.name)));
    rows
}

/// Directories holding a run.toml, not following symlinks (`latest`), not looking inside
/// a run.
fn find_runs(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_symlink() || !path.is_dir() {
            continue;
        }
        if path.join("run.toml").is_file() {
            found.push(path);
        } else if depth > 1 {
            find_runs(&path, depth - 1, found);
        }
    }
}

fn row(out: &Path, dir: &Path) -> Option<IndexRow> {
    let text = std::fs::read_to_string(dir.join("run.toml")).ok()?;
    let toml: toml::Table = text.parse().ok()?;
    let name = dir
        .strip_prefix(out)
        .unwrap_or(dir)
        .to_string_lossy()
        .to_string();
    let summary: Option<serde_json::Value> = std::fs::read_to_string(dir.join(SUMMARY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let results = checker::Results::read_json(&dir.join("results.json")).ok();
    let field = |k: &str| summary.as_ref().and_then(|s| s.get(k));
    let verdict = match (field("verdict").and_then(|v| v.as_str()), &results) {
        (Some(v), _) => v.to_string(),
        (None, Some(r)) => crate::run::shared::verdict_word(r.exit_code()).to_string(),
        (None, None) => "incomplete".to_string(),
    };
    // A run checked without the harness's summary (a replay, a copied run) still has
    // the checker's count of operations.
    let operations = field("invoked")
        .and_then(serde_json::Value::as_u64)
        .or_else(|| results.as_ref().map(|r| r.history.operations));
    let link = if dir.join("report.html").is_file() {
        format!("{name}/report.html")
    } else {
        format!("{name}/")
    };
    let params = toml.get("params");
    let get = |k: &str| toml.get(k).or_else(|| params?.get(k));
    let shards = match toml.get("shards").and_then(toml::Value::as_array) {
        Some(tables) if !tables.is_empty() => Some(tables.len() as u64),
        _ => None,
    };
    let failing_checks = results
        .as_ref()
        .map(|r| {
            r.ordered_checks()
                .filter(|(_, c)| c.valid != checker::Validity::Valid)
                .map(|(n, _)| n.to_string())
                .collect()
        })
        .unwrap_or_default();
    let started_at = get("started_at")
        .and_then(toml::Value::as_str)
        .map(readable_time)
        .unwrap_or_else(|| modified(dir));
    Some(IndexRow {
        name,
        kind: get("kind")
            .and_then(toml::Value::as_str)
            .unwrap_or("run")
            .to_string(),
        target: get("target")
            .and_then(toml::Value::as_str)
            .unwrap_or("faultline")
            .to_string(),
        shards,
        bug: get("bug").and_then(toml::Value::as_str).map(str::to_string),
        started_at,
        seed: get("seed")
            .and_then(toml::Value::as_integer)
            .map_or(0, |s| s as u64),
        faults: field("faults")
            .and_then(serde_json::Value::as_u64)
            .map(|f| f as u32),
        operations,
        verdict,
        failing_checks,
        cause: results.as_ref().map(checker::Results::cause_line),
        duration_s: results.as_ref().map(|r| {
            r.history
                .last_time_ns
                .saturating_sub(r.history.first_time_ns) as f64
                / 1e9
        }),
        elapsed_s: field("elapsed_s").and_then(serde_json::Value::as_f64),
        link,
    })
}

/// When run.toml was last written, for runs that do not record their start (simulated).
fn modified(dir: &Path) -> String {
    let Ok(at) = std::fs::metadata(dir.join("run.toml")).and_then(|m| m.modified()) else {
        return String::new();
    };
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
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

/// File name of the machine-readable index beside index.html.
pub const CAMPAIGN_JSON: &str = "campaign.json";

/// The machine-readable index, for CI: every run, and how many of each verdict.
#[derive(Debug, Serialize)]
pub struct CampaignJson<'a> {
    pub runs: &'a [IndexRow],
    /// Runs per verdict (`valid`, `invalid`, `unknown`, `incomplete`).
    pub verdicts: BTreeMap<&'a str, u64>,
}

/// Writes `out/index.html` and `out/campaign.json`.
pub fn write_index(out: &Path) -> std::io::Result<()> {
    let rows = index_rows(out);
    let mut verdicts = BTreeMap::new();
    for r in &rows {
        *verdicts.entry(r.verdict.as_str()).or_default() += 1;
    }
    let json = serde_json::to_string_pretty(&CampaignJson {
        runs: &rows,
        verdicts,
    })
    .map_err(std::io::Error::other)?;
    std::fs::write(out.join(CAMPAIGN_JSON), json + "\n")?;
    std::fs::write(out.join("index.html"), render_index(&rows))
}

const INDEX_STYLE: &str = "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;font-size:.92em}\
th{background:#f4f4f4;position:sticky;top:0}.num{text-align:right}\
.valid{color:#1a7f37}.invalid{color:#cf222e;font-weight:bold}.unknown,.incomplete{color:#9a6700}\
.cause{font-family:Menlo,Consolas,monospace;font-size:.8em;color:#555;max-width:46em}\
.filters{margin:1em 0;padding:.6em .8em;background:#f6f8fa;border:1px solid #ddd;border-radius:.3em}\
.filters label{margin-right:1.2em}.counts span{margin-right:1.2em}";

/// Filters the table by the controls: every control's value must match its column.
const INDEX_SCRIPT: &str = "function applyFilters(){\
var q=document.getElementById('f-text').value.toLowerCase();\
var sel={};document.querySelectorAll('select[data-col]').forEach(function(s){sel[s.dataset.col]=s.value;});\
var shown=0;document.querySelectorAll('tr.run').forEach(function(r){\
var ok=r.textContent.toLowerCase().indexOf(q)>=0;\
for(var c in sel){var v=r.dataset[c];if(sel[c]===''){continue;}\
if(c==='failing'?(' '+v+' ').indexOf(' '+sel[c]+' ')<0:v!==sel[c]){ok=false;}}\
r.style.display=ok?'':'none';if(ok){shown++;}});\
document.getElementById('shown').textContent=shown;}\
document.querySelectorAll('.filters input,.filters select').forEach(function(e){e.addEventListener('input',applyFilters);e.addEventListener('change',applyFilters);});\
applyFilters();";

/// A `<select>` over the values one column takes.
fn select(html: &mut String, label: &str, col: &str, values: &BTreeSet<String>) {
    let _ = write!(
        html,
        "<label>{label} <select data-col=\"{col}\"><option value=\"\">all</option>"
    );
    for v in values {
        let _ = write!(html, "<option>{}</option>", escape(v));
    }
    html.push_str("</select></label>");
}

pub fn render_index(rows: &[IndexRow]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline runs</title>\n<style>{INDEX_STYLE}</style></head><body>\n<h1>faultline runs</h1>\n"
    );
    let mut verdicts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        *verdicts.entry(r.verdict.as_str()).or_default() += 1;
    }
    let _ = write!(
        html,
        "<p class=\"counts\"><span>{}</span>",
        checker::text::count(rows.len() as u64, "run")
    );
    for (v, n) in &verdicts {
        let _ = write!(
            html,
            "<span class=\"{}\">{n} {}</span>",
            escape(v),
            escape(v)
        );
    }
    let _ = writeln!(
        html,
        "<span>machine-readable: <a href=\"{CAMPAIGN_JSON}\">{CAMPAIGN_JSON}</a></span></p>"
    );
    let column =
        |f: &dyn Fn(&IndexRow) -> String| -> BTreeSet<String> { rows.iter().map(f).collect() };
    html.push_str("<div class=\"filters\"><label>search <input id=\"f-text\" type=\"search\" placeholder=\"seed, check, cause...\"></label>");
    select(
        &mut html,
        "verdict",
        "verdict",
        &column(&|r| r.verdict.clone()),
    );
    select(&mut html, "kind", "kind", &column(&|r| r.kind.clone()));
    select(
        &mut html,
        "target",
        "target",
        &column(&|r| r.target.clone()),
    );
    select(&mut html, "shards", "shards", &column(&shards_word));
    select(&mut html, "bug", "bug", &column(&bug_word));
    select(
        &mut html,
        "failing check",
        "failing",
        &rows
            .iter()
            .flat_map(|r| r.failing_checks.iter().cloned())
            .collect(),
    );
    html.push_str(" <span><span id=\"shown\">0</span> shown</span></div>\n");
    html.push_str(
        "<table>\n<tr><th>run</th><th>kind</th><th>target</th><th>shards</th><th>bug</th><th>started</th><th>seed</th>\
         <th>faults</th><th>operations</th><th>duration (s)</th><th>verdict</th><th>failing checks / cause</th></tr>\n",
    );
    for r in rows.iter().rev() {
        let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let duration = match (r.duration_s, r.kind.as_str()) {
            (Some(d), "sim") => format!("{d:.1} virtual"),
            (Some(d), _) => format!("{d:.1}"),
            (None, _) => "?".to_string(),
        };
        let failing = r
            .failing_checks
            .iter()
            .map(|c| format!(" {c} "))
            .collect::<String>();
        let cause = match (&r.cause, r.verdict.as_str()) {
            (Some(c), "invalid" | "unknown") => format!("<div class=\"cause\">{}</div>", escape(c)),
            _ => String::new(),
        };
        let _ = writeln!(
            html,
            "<tr class=\"run\" data-verdict=\"{}\" data-kind=\"{}\" data-target=\"{}\" data-shards=\"{}\" data-bug=\"{}\" data-failing=\"{}\">\
             <td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{duration}</td>\
             <td class=\"{}\">{}</td><td>{}{cause}</td></tr>",
            escape(&r.verdict),
            escape(&r.kind),
            escape(&r.target),
            escape(&shards_word(r)),
            escape(&bug_word(r)),
            escape(&r.failing_checks.join(" ")),
            escape(&r.link),
            escape(&r.name),
            escape(&r.kind),
            escape(&r.target),
            escape(&shards_word(r)),
            escape(&bug_word(r)),
            escape(&r.started_at),
            r.seed,
            opt(r.faults.map(u64::from)),
            opt(r.operations),
            escape(&r.verdict),
            escape(&r.verdict),
            escape(failing.trim()),
        );
    }
    let _ = writeln!(
        html,
        "</table>\n<script>{INDEX_SCRIPT}</script>\n</body></html>"
    );
    html
}

/// `3`, or `classic` for one group.
fn shards_word(r: &IndexRow) -> String {
    r.shards.map_or("classic".to_string(), |s| s.to_string())
}

/// The planted bug, or `none`.
fn bug_word(r: &IndexRow) -> String {
    r.bug.clone().unwrap_or_else(|| "none".to_string())
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
    use crate::params::RunParams;
    use crate::run::rundir::RunInfo;
    use crate::run::shared::RunSummary;

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
                target: crate::params::TargetKind::Faultline,
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
                    cause: None,
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
        assert!(html.contains("2 runs") && html.contains("1 incomplete"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(CAMPAIGN_JSON)).unwrap())
                .unwrap();
        assert_eq!(json["runs"].as_array().unwrap().len(), 2);
        assert_eq!(json["verdicts"]["valid"], 1);
        // A simulated seed in its own folder is listed too.
        let sim = out.path().join("sim").join("sim-3");
        std::fs::create_dir_all(&sim).unwrap();
        std::fs::write(
            sim.join("run.toml"),
            "kind = \"sim\"\nseed = 3\naccounts = [\"A\"]\ninitial_balance = 10\n[params]\nbug = \"no-dedup\"\n",
        )
        .unwrap();
        let rows = index_rows(out.path());
        let sim_row = rows
            .iter()
            .find(|r| r.kind == "sim")
            .expect("the sim is listed");
        assert_eq!(sim_row.name, "sim/sim-3");
        assert_eq!(sim_row.bug.as_deref(), Some("no-dedup"));
        assert_eq!(
            readable_time("2026-12-02T17:44:47.245787724Z"),
            "2026-12-02 17:44:47 UTC"
        );
        assert_eq!(readable_time("t"), "t");
    }
}
