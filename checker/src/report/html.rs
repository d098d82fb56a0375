//! Renders report.html: one self-contained page (inline CSS, charts as data URIs).
//!
//! Order follows what a person needs first: the kind of run and its target, the verdict
//! with its cause in one line and the commands that reproduce the run, the table of
//! checks, the charts with the fault timeline, then the stored anomalies, most severe
//! first, each with the history around it and links to its operations on the timeline,
//! the replicas' final balances side by side (per shard for a sharded bank), links to
//! every replica's log, and the run's parameters. All text from the run is HTML-escaped.

use super::cause::{cause_line, severity};
use super::describe::describe;
use super::faults::{classify, FaultKind, FaultSpan};
use super::scan::{ExcerptRow, Scan, EXCERPT_CONTEXT};
use super::timeline::{Locator, PageInfo};
use super::words::Words;
use super::ChartOut;
use crate::checks::{Anomaly, CheckResult, Severity, Validity};
use crate::results::{internal_note, NodeSummary, Results};
use crate::run_params::RunParams;
use crate::shards::ShardSpec;
use crate::text::count;
pub use crate::text::esc;
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Most history rows shown under one anomaly.
const MAX_EXCERPT_ROWS: usize = 40;

/// Most rows of each fault table (a long run can have thousands of actions).
const MAX_FAULT_ROWS: usize = 500;

/// Everything the page shows.
pub struct Page<'a> {
    pub results: &'a Results,
    pub scan: &'a Scan,
    pub spans: &'a [FaultSpan],
    pub charts: &'a [ChartOut],
    pub params: Option<&'a RunParams>,
    /// Problems met while making the report.
    pub notes: &'a [String],
    /// The timeline's pages written beside the page (none when it could not be).
    pub timeline: &'a [PageInfo],
    /// Where each cited operation is on the timeline.
    pub locator: &'a Locator,
    pub words: Words,
    /// Each replica's output files: its name, then (`log` or `stderr`, link) pairs.
    pub logs: &'a [super::ReplicaLogs],
}

const STYLE: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1260px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{margin-bottom:.3em} .sub{color:#666;margin-top:0}
.verdict{display:inline-block;font-size:1.6em;font-weight:bold;padding:.25em .8em;border-radius:.3em;color:#fff}
.valid{background:#2a8a3e} .invalid{background:#c62828} .unknown{background:#8a6d00}
.tag{display:inline-block;padding:.05em .5em;border-radius:.25em;color:#fff;font-weight:bold;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#f4f4f4} .num{text-align:right}
.mono,.hist td{font-family:Menlo,Consolas,monospace;font-size:.82em}
.hist tr.cited td{background:#fff3c4;font-weight:bold}
.anomaly{border-left:4px solid #c62828;padding:.2em .8em;margin:1em 0;background:#fcfcfc}
.warn{background:#fff8e1;border-left:4px solid #f0a800;padding:.4em .8em;margin:.3em 0}
img{max-width:100%;border:1px solid #ddd} figure{margin:1em 0} figcaption{color:#555;font-size:.9em}
.swatch{display:inline-block;width:1em;height:1em;vertical-align:middle;margin-right:.3em;border:1px solid #999}
.repro{background:#f6f8fa;border:1px solid #ddd;border-radius:.3em;padding:.5em .8em;font-family:Menlo,Consolas,monospace;font-size:.85em;white-space:pre-wrap;margin:.4em 0}
td.diff{background:#ffd7d7;font-weight:bold} .skip td{color:#777;font-style:italic}
.sev{display:inline-block;padding:0 .4em;border-radius:.2em;color:#fff;font-size:.8em;font-weight:bold;margin-right:.4em}
.sev0{background:#b71c1c} .sev1{background:#e65100} .sev2{background:#757575}
.anomaly.border1{border-left-color:#e65100} .anomaly.border2{border-left-color:#9e9e9e}
.scroll{overflow-x:auto}
.na{background:#9e9e9e} td.kind{white-space:nowrap}
.cause{font-size:1.15em;font-weight:bold;margin:.4em 0;padding:.35em .7em;border-radius:.3em;background:#f6f6f6;border-left:6px solid #888;font-family:Menlo,Consolas,monospace}
.cause.invalid{border-left-color:#c62828;background:#fdecea;color:#7f1010} .cause.unknown{border-left-color:#8a6d00;background:#fff8e1}
.cause.valid{border-left-color:#2a8a3e;background:#edf7ee;color:#1b5e20}
.target{font-size:1.05em;margin:.2em 0} .onthe{margin:.2em 0 .4em}
";

/// The whole page.
pub fn render(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(1 << 16);
    let r = page.results;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} {}: {}</title><style>{STYLE}</style></head><body>\n",
        verdict_word(r.valid),
        page.words.run_title(),
        esc(&r.run_dir)
    );
    header(&mut h, page);
    checks_table(&mut h, r, &page.words);
    charts(&mut h, page);
    timeline(&mut h, page);
    anomalies(&mut h, page);
    final_state(&mut h, page);
    logs(&mut h, page);
    parameters(&mut h, page);
    h.push_str("</body></html>\n");
    h
}

fn verdict_word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "VALID",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "UNKNOWN",
    }
}

fn verdict_class(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "invalid",
        Validity::Unknown => "unknown",
    }
}

fn header(h: &mut String, page: &Page<'_>) {
    let r = page.results;
    let s = &r.history;
    let w = &page.words;
    // `etcd` is a name, never capitalised.
    let title = match w.run_title() {
        t if t.starts_with("etcd") => t,
        t => capital(&t),
    };
    let _ = writeln!(
        h,
        "<h1>{title} <span class=\"mono\">{}</span></h1>",
        esc(&r.run_dir)
    );
    if let Some(target) = target_line(page) {
        let _ = writeln!(h, "<p class=\"target\">{}</p>", esc(&target));
    }
    let _ = writeln!(
        h,
        "<p><span class=\"verdict {}\">{}</span></p>\n<p class=\"cause {}\" id=\"cause\">{}</p>",
        verdict_class(r.valid),
        verdict_word(r.valid),
        verdict_class(r.valid),
        esc(&cause_line(r))
    );
    let over = if w.simulated {
        " of virtual (simulated) time"
    } else {
        ""
    };
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} ({} by {}{}, {}) over {:.1} s{over}, checked in {} ms.</p>",
        count(s.events, "history event"),
        count(s.operations, "operation"),
        count(s.clients, "client"),
        internal_note(s.internal_processes),
        count(s.nemesis, "nemesis action"),
        s.last_time_ns.saturating_sub(s.first_time_ns) as f64 / 1e9,
        r.elapsed_ms
    );
    reproduce(h, page);
    if !page.timeline.is_empty() {
        let _ = writeln!(
            h,
            "<p><a href=\"{}\">Per-process timeline</a>: every operation as a box from invocation to completion, with the faults beside and behind; operations an anomaly cites are highlighted. <a href=\"#timeline-pages\">Its pages</a>.</p>",
            super::timeline::TIMELINE_FILE
        );
    }
    for w in r.warnings.iter().chain(page.notes) {
        let _ = writeln!(h, "<div class=\"warn\">{}</div>", esc(w));
    }
}

/// What was tested, from run.toml: `Target: etcd 3.4.23, 5 members, serializable reads`.
fn target_line(page: &Page<'_>) -> Option<String> {
    let p = page.params?;
    let get = |k: &str| p.table.get(k).or_else(|| p.table.get("params")?.get(k));
    let text = |k: &str| get(k).and_then(toml::Value::as_str).map(str::to_string);
    let int = |k: &str| get(k).and_then(toml::Value::as_integer);
    let w = &page.words;
    let mut parts = Vec::new();
    // `etcd Version: 3.4.23` (and more lines) as `etcd 3.4.23`.
    let version = text("replica_version")
        .filter(|v| !v.starts_with("unknown"))
        .map(|v| {
            v.lines()
                .next()
                .unwrap_or_default()
                .replace(" Version:", "")
        });
    parts.push(match version {
        Some(v) if w.system == "etcd" || !v.is_empty() => v,
        _ => w.system.to_string(),
    });
    let shards = p.table.get("shards").and_then(toml::Value::as_array);
    match (shards, int("nodes")) {
        (Some(sh), _) if !sh.is_empty() => {
            let nodes: usize = sh
                .iter()
                .filter_map(|t| t.get("nodes")?.as_array().map(Vec::len))
                .sum();
            parts.push(format!(
                "{} of {} {}s in all",
                count(sh.len() as u64, "shard"),
                nodes,
                w.replica
            ));
        }
        (_, Some(n)) => parts.push(count(n as u64, w.replica)),
        _ => {}
    }
    if w.system == "etcd" {
        if let Some(reads) = text("etcd_reads") {
            parts.push(format!("{reads} reads"));
        }
    }
    if let Some(bug) = text("bug") {
        parts.push(format!("planted bug {bug}"));
    }
    if let Some(seed) = int("seed") {
        parts.push(format!("seed {seed}"));
    }
    if w.simulated {
        parts.push("simulated: time is virtual".to_string());
    }
    Some(format!("Target: {}", parts.join(", ")))
}

/// The commands that run this again and check it again.
fn reproduce(h: &mut String, page: &Page<'_>) {
    let dir = shell_quote(&page.results.run_dir);
    h.push_str("<div class=\"repro\">");
    if page.params.is_some() {
        let _ = writeln!(
            h,
            "harness replay {dir}   # run again with the same seed and parameters"
        );
    }
    let _ = write!(h, "checker check {dir}    # check this history again");
    h.push_str("</div>\n");
}

/// `s` as one shell word (already HTML-escaped for the page).
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c));
    if plain {
        esc(s)
    } else {
        esc(&format!("'{}'", s.replace('\'', "'\\''")))
    }
}

fn checks_table(h: &mut String, r: &Results, words: &Words) {
    h.push_str("<h2>Checks</h2>\n<table><tr><th>check</th><th>verdict</th><th>anomalies</th><th>examined</th><th>undecided / notes</th></tr>\n");
    for (name, c) in r.ordered_checks() {
        let counts: Vec<String> = c
            .counts
            .iter()
            .map(|(k, v)| format!("{}: {v}", esc(&words.localize(k))))
            .collect();
        let undecided: Vec<String> = c
            .unknown
            .iter()
            .chain(&c.notes)
            .map(|u| esc(&words.localize(u)))
            .collect();
        let name = if c.anomaly_count > 0 {
            format!("<a href=\"#check-{}\">{}</a>", esc(name), esc(name))
        } else {
            esc(name)
        };
        let (class, word) = match c.not_applicable {
            Some(_) => ("na", "NOT APPLICABLE"),
            None => (verdict_class(c.valid), verdict_word(c.valid)),
        };
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td><span class=\"tag {class}\">{word}</span></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            c.anomaly_count,
            counts.join("<br>"),
            undecided.join("<br>")
        );
    }
    h.push_str("</table>\n");
}

fn charts(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2>Charts</h2>\n<p>");
    if page.words.simulated {
        h.push_str("<b>Time is virtual</b>: this run was simulated. ");
    }
    fault_legend(h, page.spans);
    if page.scan.nemesis.is_empty() {
        h.push_str("No nemesis actions");
    } else {
        h.push_str("Vertical lines mark nemesis actions");
    }
    if page.scan.points.iter().any(|p| p.flagged) {
        h.push_str("; black rings on the latency chart mark the operations an anomaly cites");
    }
    if page.scan.nemesis.iter().any(|a| a.f == "set") {
        h.push_str("; dark labelled lines mark where each scenario set starts");
    }
    h.push_str(".</p>\n");
    for c in page.charts {
        match &c.png {
            Ok(png) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(png);
                let _ = writeln!(
                    h,
                    "<figure><img alt=\"{}\" src=\"data:image/png;base64,{b64}\"><figcaption>{} (<a href=\"{}\">{}</a>)</figcaption></figure>",
                    c.file,
                    esc(c.caption),
                    c.file,
                    c.file
                );
            }
            Err(e) => {
                let _ = writeln!(
                    h,
                    "<div class=\"warn\">{} could not be drawn: {}</div>",
                    c.file,
                    esc(e)
                );
            }
        }
    }
}

/// A swatch per kind of fault the run had.
fn fault_legend(h: &mut String, spans: &[FaultSpan]) {
    for kind in FaultKind::ALL {
        if !spans.iter().any(|s| s.kind == kind) {
            continue;
        }
        let _ = write!(h, "{} &nbsp; ", swatch(kind));
    }
}

fn swatch(kind: FaultKind) -> String {
    let (r, g, b) = kind.rgb();
    format!(
        "<span class=\"swatch\" style=\"background:rgba({r},{g},{b},0.45)\"></span>{}",
        kind.label()
    )
}

fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

/// The timeline's pages, each with its stretch of time and the faults in it.
fn timeline_pages(h: &mut String, page: &Page<'_>) {
    if page.timeline.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<p id=\"timeline-pages\"><b>Timeline pages</b> ({}):</p>\n<ul class=\"faults\">",
        count(page.timeline.len() as u64, "page")
    );
    for (k, p) in page.timeline.iter().enumerate() {
        let _ = writeln!(
            h,
            "<li><a href=\"{}\">page {} &middot; {}</a>: {}</li>",
            p.file,
            k + 1,
            p.range(),
            esc(&p.fault_words())
        );
    }
    h.push_str("</ul>\n");
}

fn timeline(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2 id=\"faults\">Fault timeline</h2>\n");
    timeline_pages(h, page);
    if page.scan.nemesis.is_empty() {
        h.push_str("<p>No nemesis actions.</p>\n");
        return;
    }
    let unit = if page.words.simulated {
        "virtual s"
    } else {
        "s"
    };
    let _ = writeln!(h, "<table><tr><th>fault</th><th>what</th><th>from ({unit})</th><th>to ({unit})</th><th>duration ({unit})</th></tr>");
    let skips = page.scan.nemesis.iter().filter(|a| a.f == "skip").map(|a| {
        (a.time_ns, format!("<tr class=\"skip\"><td>no fault</td><td>{}</td><td class=\"num\">{}</td><td></td><td></td></tr>", esc(&describe(&a.f, &a.value)), secs(a.time_ns)))
    });
    let faults = page.spans.iter().map(|s| {
        let (to, duration) = if s.is_instant() {
            (String::new(), "instant".to_string())
        } else {
            (
                format!("{}{}", secs(s.end_ns), if s.ended { "" } else { " (end of history)" }),
                secs(s.end_ns - s.start_ns),
            )
        };
        (s.start_ns, format!(
            "<tr><td class=\"kind\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{to}</td><td class=\"num\">{duration}</td></tr>",
            swatch(s.kind),
            esc(&s.target),
            secs(s.start_ns),
        ))
    });
    let mut rows: Vec<(u64, String)> = faults.chain(skips).collect();
    rows.sort_by_key(|r| r.0);
    for (_, row) in rows.iter().take(MAX_FAULT_ROWS) {
        h.push_str(row);
        h.push('\n');
    }
    more_rows(h, rows.len());
    h.push_str("</table>\n<details><summary>All nemesis actions</summary><table class=\"hist\"><tr><th>index</th><th>time (s)</th><th>f</th><th>what</th></tr>\n");
    for a in page.scan.nemesis.iter().take(MAX_FAULT_ROWS) {
        let known = if classify(&a.f).is_some()
            || matches!(
                a.f.as_str(),
                "skip" | "set" | "heal-all" | "stable" | "no-majority" | "arm-failpoint"
            ) {
            ""
        } else {
            " (not a known fault)"
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}{known}</td><td title=\"{}\">{}</td></tr>",
            a.index,
            secs(a.time_ns),
            esc(&a.f),
            esc(&a.value),
            esc(&describe(&a.f, &a.value))
        );
    }
    more_rows(h, page.scan.nemesis.len());
    h.push_str("</table></details>\n");
}

fn more_rows(h: &mut String, total: usize) {
    if total > MAX_FAULT_ROWS {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"5\">... and {} more (the charts show them all)</td></tr>",
            total - MAX_FAULT_ROWS
        );
    }
}

fn anomalies(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2 id=\"anomalies\">Anomalies</h2>\n");
    let r = page.results;
    if r.checks.values().all(|c| c.anomaly_count == 0) {
        h.push_str("<p>None.</p>\n");
        return;
    }
    let mut all: Vec<(&str, &Anomaly)> = r
        .ordered_checks()
        .flat_map(|(name, c)| c.anomalies.iter().map(move |a| (name, a)))
        .collect();
    // Stable: within a kind, the checks' own order (by history position) stays.
    all.sort_by_key(|(_, a)| severity(a));
    summary(h, &all);
    h.push_str("<p>");
    for (name, c) in r.ordered_checks().filter(|(_, c)| c.anomaly_count > 0) {
        let _ = write!(
            h,
            "<span id=\"check-{name}\"><b>{name}</b>: {}.</span> ",
            check_line(c)
        );
    }
    h.push_str("</p>\n");
    for (name, a) in all {
        anomaly(h, name, a, page);
    }
}

/// How many stored anomalies of each kind, most severe first.
fn summary(h: &mut String, all: &[(&str, &Anomaly)]) {
    let mut counts: BTreeMap<(Severity, String), (u64, BTreeSet<&str>)> = BTreeMap::new();
    for (check, a) in all {
        let e = counts.entry(severity(a)).or_default();
        e.0 += 1;
        e.1.insert(check);
    }
    h.push_str("<table><tr><th>severity</th><th>anomaly</th><th class=\"num\">count</th><th>found by</th></tr>\n");
    for ((tier, label), (n, checks)) in &counts {
        let _ = writeln!(
            h,
            "<tr><td><span class=\"sev sev{}\">{}</span></td><td>{}</td><td class=\"num\">{n}</td><td>{}</td></tr>",
            tier.rank(),
            tier.words(),
            esc(label),
            checks.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    h.push_str("</table>\n<p class=\"sub\">Counts are of the anomalies stored in results.json; a check stores only its first few.</p>\n");
}

/// `; also real time order` when the anomaly's kind implies others (see
/// [`crate::checks::AnomalyKind::implies`]).
fn also(a: &Anomaly) -> String {
    let implied: Vec<String> = a.kind.implied().iter().map(|k| k.words()).collect();
    match implied.is_empty() {
        true => String::new(),
        false => esc(&format!("; also {}", implied.join(", "))),
    }
}

fn check_line(c: &CheckResult) -> String {
    let shown = c.anomalies.len() as u64;
    match c.anomaly_count {
        0 => format!("{}, no anomalies", verdict_word(c.valid)),
        n if n > shown => format!("{n} anomalies, the first {shown} shown"),
        1 => "1 anomaly".into(),
        n => format!("{n} anomalies"),
    }
}

fn anomaly(h: &mut String, check: &str, a: &Anomaly, page: &Page<'_>) {
    let scan = page.scan;
    let (tier, label) = severity(a);
    let rank = tier.rank();
    let _ = write!(
        h,
        "<div class=\"anomaly border{rank}\"><p><span class=\"sev sev{rank}\">{}</span><b>{}</b> <span class=\"sub\">({}, {check}{})</span><br>{}</p>",
        tier.words(),
        esc(&label),
        esc(a.kind.tag()),
        also(a),
        esc(&page.words.localize(&a.message))
    );
    if !a.exec_indices.is_empty() {
        let slots: Vec<String> = a.exec_indices.iter().map(u64::to_string).collect();
        let _ = write!(
            h,
            "<p class=\"sub\">{} {}</p>",
            page.words.position,
            slots.join(", ")
        );
    }
    on_the_timeline(h, a, page);
    excerpt(h, &a.indices, scan, &page.words);
    h.push_str("</div>\n");
}

/// Links to the timeline boxes of the operations an anomaly cites.
fn on_the_timeline(h: &mut String, a: &Anomaly, page: &Page<'_>) {
    if page.timeline.is_empty() {
        return;
    }
    let places = page.locator.places(page.scan, &a.indices);
    if places.is_empty() {
        return;
    }
    let links: Vec<String> = places
        .iter()
        .take(8)
        .map(|p| {
            format!(
                "<a class=\"tl-link\" href=\"{}#{}\">client {} at {} s (page {})</a>",
                p.file,
                p.anchor,
                p.process,
                secs(p.start_ns),
                p.page
            )
        })
        .collect();
    let more = places.len().saturating_sub(8);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let _ = write!(
        h,
        "<p class=\"onthe\">On the timeline: {}{more}</p>",
        links.join(", ")
    );
}

/// The history around the cited indices, cited rows highlighted.
fn excerpt(h: &mut String, cited: &[u64], scan: &Scan, words: &Words) {
    let mut wanted = BTreeSet::new();
    for &i in cited {
        wanted.extend(i.saturating_sub(EXCERPT_CONTEXT)..=i + EXCERPT_CONTEXT);
    }
    let rows: Vec<&ExcerptRow> = wanted
        .iter()
        .filter_map(|i| scan.excerpts.get(i))
        .take(MAX_EXCERPT_ROWS)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<table class=\"hist\"><tr><th>index</th><th>{}</th><th>process</th><th>type</th><th>f</th><th>value</th><th>request</th><th>{}</th><th>{}</th></tr>",
        words.time_axis(),
        words.replica,
        words.position
    );
    let mut last = None;
    for row in rows {
        if last.is_some_and(|l: u64| row.index > l + 1) {
            h.push_str("<tr><td colspan=\"9\">...</td></tr>\n");
        }
        last = Some(row.index);
        let class = if cited.contains(&row.index) {
            " class=\"cited\""
        } else {
            ""
        };
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.index,
            secs(row.time_ns),
            esc(&row.process),
            row.kind,
            esc(&row.f),
            esc(&row.value),
            opt(row.request_id),
            esc(row.node.as_deref().unwrap_or("")),
            opt(row.exec_index)
        );
    }
    h.push_str("</table>\n");
}

fn final_state(h: &mut String, page: &Page<'_>) {
    let w = &page.words;
    let _ = writeln!(
        h,
        "<h2 id=\"final-state\">{}s' final state</h2>",
        capital(w.replica)
    );
    let f = &page.results.final_state;
    if !f.present {
        h.push_str("<p>No final.json.</p>\n");
        return;
    }
    let gap = f
        .log_first_gap
        .map(|g| format!(" No {} covers {} {g}.", w.replica, w.position))
        .unwrap_or_default();
    let shards = shard_specs(page);
    let reach = if shards.is_empty() {
        format!("the agreed log reaches {} {}", w.position, f.log_last)
    } else {
        format!(
            "the longest shard log reaches {} {}",
            w.position, f.log_last
        )
    };
    let totals = if shards.is_empty() {
        "totals that differ from the expected one"
    } else {
        "totals that differ from what most of their shard's replicas hold"
    };
    let _ = writeln!(
        h,
        "<p>{} fetched; {reach}.{gap} Balances that differ from most {}s', and {totals}, are highlighted.</p>",
        count(f.nodes.len() as u64, w.replica),
        w.replica
    );
    let accounts = account_order(page.params, &f.nodes);
    let expected = page.params.and_then(RunParams::total);
    let _ = write!(
        h,
        "<div class=\"scroll\"><table><tr><th>{}</th><th>executed ({})</th><th class=\"num\">entries</th>",
        w.replica, w.position
    );
    for a in &accounts {
        let _ = write!(h, "<th class=\"num\">{}</th>", esc(a));
    }
    h.push_str("<th class=\"num\">total</th><th>note</th></tr>\n");
    let usual: Vec<Option<i64>> = accounts.iter().map(|a| most_common(&f.nodes, a)).collect();
    let held = shard_held(&shards, &f.nodes);
    for n in &f.nodes {
        // A shard's total moves with cross-shard transfers: a replica is compared with
        // what most of its shard holds, the bank with its own total.
        let expected = match shard_of(&shards, &n.name) {
            Some(s) => held.get(&s.id).copied().flatten(),
            None if shards.is_empty() => expected,
            None => None,
        };
        node_row(h, n, &accounts, &usual, expected);
    }
    let span = 3 + accounts.len();
    if shards.is_empty() {
        if let Some(total) = expected {
            let _ = writeln!(
                h,
                "<tr><td colspan=\"{span}\">expected total (accounts &times; initial balance)</td><td class=\"num\">{total}</td><td></td></tr>"
            );
        }
    } else {
        shard_totals(h, page, &shards, &held, span);
    }
    h.push_str("</table></div>\n");
    if f.nodes.iter().any(|n| is_journal_row(&n.name)) {
        let _ = writeln!(
            h,
            "<p class=\"sub\">Rows named like <span class=\"mono\">n1:1-14274</span> are earlier stretches of a {}'s executed log that the harness saved apart while the run went on (the {} truncated its live log at a checkpoint): they hold log entries, no balances, and count towards that {}'s log.</p>",
            w.replica, w.replica, w.replica
        );
    }
}

/// `Replica` from `replica`.
fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A final.json entry that is a saved stretch of a replica's journal (`n1:1-14274`).
fn is_journal_row(name: &str) -> bool {
    name.split_whitespace()
        .next()
        .is_some_and(|n| n.contains(':'))
}

/// run.toml's `[[shards]]`, or none for a classic run.
fn shard_specs(page: &Page<'_>) -> Vec<ShardSpec> {
    let Some(p) = page.params else {
        return Vec::new();
    };
    crate::shards::shard_specs(p, std::path::Path::new("run.toml"))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The shard a final.json row (`n4 (shard 2)`, `n4:1-900`) belongs to.
fn shard_of<'s>(shards: &'s [ShardSpec], row: &str) -> Option<&'s ShardSpec> {
    let node = row.split([' ', ':']).next().unwrap_or(row);
    shards.iter().find(|s| s.nodes.iter().any(|n| n == node))
}

/// Each shard's total as most of its replicas hold it, by shard id (`None` when none of
/// its replicas' balances were fetched).
fn shard_held(shards: &[ShardSpec], nodes: &[NodeSummary]) -> BTreeMap<u32, Option<i128>> {
    shards
        .iter()
        .map(|s| {
            let totals: Vec<i128> = nodes
                .iter()
                .filter(|n| shard_of(shards, &n.name).is_some_and(|x| x.id == s.id))
                .filter_map(|n| n.balances.as_ref())
                .map(|b| {
                    s.accounts
                        .iter()
                        .filter_map(|a| b.get(a))
                        .map(|&v| i128::from(v))
                        .sum()
                })
                .collect();
            (s.id, most_common_total(&totals))
        })
        .collect()
}

/// Each shard's total against what it started with (the difference is what cross-shard
/// transfers moved, so it is not highlighted), then the bank-wide sum against the bank's
/// total, which must match.
fn shard_totals(
    h: &mut String,
    page: &Page<'_>,
    shards: &[ShardSpec],
    held: &BTreeMap<u32, Option<i128>>,
    span: usize,
) {
    let initial = page.params.and_then(|p| p.initial_balance);
    let mut bank: Option<i128> = Some(0);
    for s in shards {
        let total = held.get(&s.id).copied().flatten();
        bank = bank.zip(total).map(|(a, b)| a + b);
        let start = initial.map(|i| i128::from(i) * s.accounts.len() as i128);
        let moved = match (total, start) {
            (Some(t), Some(st)) => format!("{:+} moved by cross-shard transfers", t - st),
            _ => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr><td colspan=\"{span}\">shard {} ({}): total held by most of its {}s; it started with {} ({} &times; initial balance)</td><td class=\"num\">{}</td><td>{moved}</td></tr>",
            s.id,
            esc(&s.accounts.join(", ")),
            page.words.replica,
            start.map_or("?".to_string(), |t| t.to_string()),
            count(s.accounts.len() as u64, "account"),
            total.map_or("–".to_string(), |t| t.to_string()),
        );
    }
    let expected = page.params.and_then(RunParams::total);
    let class = if bank.is_some() && bank != expected {
        " diff"
    } else {
        ""
    };
    let _ = writeln!(
        h,
        "<tr><th colspan=\"{span}\">bank-wide sum of the shards' totals (must equal the bank's total)</th><th class=\"num{class}\">{}</th><th>expected {}</th></tr>",
        bank.map_or("– (a shard has no balances)".to_string(), |t| t.to_string()),
        expected.map_or("?".to_string(), |t| t.to_string())
    );
}

/// The total most replicas of a shard hold (ties: the smallest).
fn most_common_total(totals: &[i128]) -> Option<i128> {
    let mut counts: BTreeMap<i128, usize> = BTreeMap::new();
    for t in totals {
        *counts.entry(*t).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, c)| c == best).map(|(v, _)| v)
}

/// Links to every replica's log and stderr.
fn logs(h: &mut String, page: &Page<'_>) {
    if page.logs.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2 id=\"logs\">{}s' logs</h2>\n<p>",
        capital(page.words.replica)
    );
    let items: Vec<String> = page
        .logs
        .iter()
        .map(|(node, files)| {
            let links: Vec<String> = files
                .iter()
                .map(|(kind, link)| format!("<a href=\"{}\">{}</a>", esc(link), esc(kind)))
                .collect();
            format!("<b>{}</b> ({})", esc(node), links.join(", "))
        })
        .collect();
    h.push_str(&items.join(" &middot; "));
    h.push_str("</p>\n");
}

fn node_row(
    h: &mut String,
    n: &NodeSummary,
    accounts: &[String],
    usual: &[Option<i64>],
    expected: Option<i128>,
) {
    let executed = if n.ranges.is_empty() && n.entries > 0 {
        format!("{}–{}", n.first_exec, n.last_exec)
    } else if n.ranges.is_empty() {
        "none".to_string()
    } else {
        n.ranges
            .iter()
            .map(|(a, b)| format!("{a}–{b}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{executed}</td><td class=\"num\">{}</td>",
        esc(&n.name),
        n.entries
    );
    let balances = n.balances.as_ref();
    for (a, usual) in accounts.iter().zip(usual) {
        match balances.and_then(|b| b.get(a)) {
            Some(v) => {
                let class = if Some(*v) != *usual { " diff" } else { "" };
                let _ = write!(h, "<td class=\"num{class}\">{v}</td>");
            }
            None => h.push_str("<td class=\"num\">&ndash;</td>"),
        }
    }
    match balances {
        Some(b) => {
            let total: i128 = b.values().map(|&v| i128::from(v)).sum();
            let class = if expected.is_some_and(|e| e != total) {
                " diff"
            } else {
                ""
            };
            let _ = write!(h, "<td class=\"num{class}\">{total}</td>");
        }
        None => h.push_str("<td class=\"num\">&ndash;</td>"),
    }
    let mut note = Vec::new();
    if is_journal_row(&n.name) {
        note.push("a journal stretch the harness saved apart".to_string());
    } else if balances.is_none() {
        note.push("balances not fetched".to_string());
    }
    for pair in n.ranges.windows(2) {
        note.push(format!(
            "skipped {}–{} (caught up from a snapshot)",
            pair[0].1 + 1,
            pair[1].0 - 1
        ));
    }
    if let Some(e) = &n.error {
        note.push(e.clone());
    }
    let _ = writeln!(h, "<td>{}</td></tr>", esc(&note.join("; ")));
}

/// The accounts as run.toml lists them, then any others a replica reported.
fn account_order(params: Option<&RunParams>, nodes: &[NodeSummary]) -> Vec<String> {
    let mut order: Vec<String> = params.and_then(|p| p.accounts.clone()).unwrap_or_default();
    let extra: BTreeSet<&String> = nodes
        .iter()
        .filter_map(|n| n.balances.as_ref())
        .flat_map(|b| b.keys())
        .filter(|a| !order.contains(a))
        .collect();
    order.extend(extra.into_iter().cloned());
    order
}

/// The balance most replicas report for `account` (ties: the smallest).
fn most_common(nodes: &[NodeSummary], account: &str) -> Option<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for v in nodes
        .iter()
        .filter_map(|n| n.balances.as_ref()?.get(account))
    {
        *counts.entry(*v).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, c)| c == best).map(|(v, _)| v)
}

fn parameters(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2>Run parameters (run.toml)</h2>\n");
    let Some(p) = page.params else {
        h.push_str("<p>No run.toml.</p>\n");
        return;
    };
    h.push_str("<table>\n");
    for (k, v) in p.flattened() {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td class=\"mono\">{}</td></tr>",
            esc(&k),
            esc(&v)
        );
    }
    h.push_str("</table>\n");
}
