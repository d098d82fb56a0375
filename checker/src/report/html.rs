//! Renders report.html: one self-contained page (inline CSS, charts as data URIs).
//!
//! Order follows what a person needs first: the verdict and the commands that reproduce
//! the run, the table of checks, the charts with the fault timeline, then the stored
//! anomalies, most severe first, each with the history around it, the replicas' final
//! balances side by side and the run's parameters. All text from the run is
//! HTML-escaped.

use super::describe::describe;
use super::faults::{classify, FaultKind, FaultSpan};
use super::scan::{ExcerptRow, Scan, EXCERPT_CONTEXT};
use super::ChartOut;
use crate::checks::{Anomaly, CheckResult, Validity};
use crate::results::{internal_note, NodeSummary, Results};
use crate::run_params::RunParams;
use crate::text::count;
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
    /// Whether `timeline.html` was written beside the page.
    pub timeline: bool,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
";

/// The whole page.
pub fn render(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(1 << 16);
    let r = page.results;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline: {} {}</title><style>{STYLE}</style></head><body>\n",
        verdict_word(r.valid),
        esc(&r.run_dir)
    );
    header(&mut h, page);
    checks_table(&mut h, r);
    charts(&mut h, page);
    timeline(&mut h, page);
    anomalies(&mut h, page);
    final_state(&mut h, page);
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
    let _ = write!(
        h,
        "<h1>faultline run <span class=\"mono\">{}</span></h1>\n<p><span class=\"verdict {}\">{}</span></p>\n",
        esc(&r.run_dir),
        verdict_class(r.valid),
        verdict_word(r.valid)
    );
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} ({} by {}{}, {}) over {:.1} s, checked in {} ms.</p>",
        count(s.events, "history event"),
        count(s.operations, "operation"),
        count(s.clients, "client"),
        internal_note(s.internal_processes),
        count(s.nemesis, "nemesis action"),
        s.last_time_ns.saturating_sub(s.first_time_ns) as f64 / 1e9,
        r.elapsed_ms
    );
    reproduce(h, page);
    if page.timeline {
        let _ = writeln!(
            h,
            "<p><a href=\"{}\">Per-process timeline</a>: every operation as a box from invocation to completion, with the faults behind.</p>",
            super::timeline::TIMELINE_FILE
        );
    }
    for w in r.warnings.iter().chain(page.notes) {
        let _ = writeln!(h, "<div class=\"warn\">{}</div>", esc(w));
    }
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

fn checks_table(h: &mut String, r: &Results) {
    h.push_str("<h2>Checks</h2>\n<table><tr><th>check</th><th>verdict</th><th>anomalies</th><th>examined</th><th>undecided / notes</th></tr>\n");
    for (name, c) in r.ordered_checks() {
        let counts: Vec<String> = c
            .counts
            .iter()
            .map(|(k, v)| format!("{}: {v}", esc(k)))
            .collect();
        let undecided: Vec<String> = c.unknown.iter().chain(&c.notes).map(|u| esc(u)).collect();
        let name = if c.anomaly_count > 0 {
            format!("<a href=\"#check-{name}\">{name}</a>")
        } else {
            name.to_string()
        };
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td><span class=\"tag {}\">{}</span></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            verdict_class(c.valid),
            verdict_word(c.valid),
            c.anomaly_count,
            counts.join("<br>"),
            undecided.join("<br>")
        );
    }
    h.push_str("</table>\n");
}

fn charts(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2>Charts</h2>\n<p>");
    for kind in [FaultKind::Kill, FaultKind::Pause, FaultKind::Partition] {
        let (r, g, b) = kind.rgb();
        let _ = write!(
            h,
            "<span class=\"swatch\" style=\"background:rgba({r},{g},{b},0.3)\"></span>{} active &nbsp; ",
            kind.label()
        );
    }
    h.push_str("Vertical lines mark nemesis actions");
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

fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

fn timeline(h: &mut String, page: &Page<'_>) {
    h.push_str("<h2 id=\"faults\">Fault timeline</h2>\n");
    if page.scan.nemesis.is_empty() {
        h.push_str("<p>No nemesis actions.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>fault</th><th>what</th><th>from (s)</th><th>to (s)</th><th>duration (s)</th></tr>\n");
    let skips = page.scan.nemesis.iter().filter(|a| a.f == "skip").map(|a| {
        (a.time_ns, format!("<tr class=\"skip\"><td>no fault</td><td>{}</td><td class=\"num\">{}</td><td></td><td></td></tr>", esc(&describe(&a.f, &a.value)), secs(a.time_ns)))
    });
    let faults = page.spans.iter().map(|s| {
        (s.start_ns, format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td></tr>",
            s.kind.label(),
            esc(&s.target),
            secs(s.start_ns),
            secs(s.end_ns),
            if s.ended { "" } else { " (end of history)" },
            secs(s.end_ns - s.start_ns)
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
        let known =
            if classify(&a.f).is_some() || matches!(a.f.as_str(), "skip" | "set" | "heal-all") {
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
        anomaly(h, name, a, page.scan);
    }
}

/// What an anomaly means for a user of the bank: 0 money or an answer was wrong, 1 the
/// order of the log is broken, 2 harmless to balances (a read repeated, a late or
/// doubled answer, a stall).
fn severity(a: &Anomaly) -> (u8, String) {
    let tier = match a.kind.as_str() {
        "executed-twice" if op_function(&a.message) != Some("transfer") => 2,
        "sum-drift" | "negative-balance" | "failed-but-applied" | "ack-not-applied"
        | "lost-ack" | "executed-twice" | "phantom" | "divergence" | "final-balances"
        | "wrong-result" | "log-result" | "not-linearizable" | "command-mismatch"
        | "bad-amount" => 0,
        "retry-changed-command"
        | "duplicate-completion"
        | "completion-without-invoke"
        | "overlapping-operations"
        | "stall" => 2,
        _ => 1,
    };
    (tier, kind_label(a))
}

const SEVERITY_WORDS: [&str; 3] = [
    "wrong money or answer",
    "order broken",
    "harmless to balances",
];

/// The operation an anomaly's message starts with (`transfer A->B 3 by client ...`).
fn op_function(message: &str) -> Option<&'static str> {
    let first = message.split_whitespace().next()?;
    ["transfer", "read", "read_all"]
        .into_iter()
        .find(|f| *f == first)
}

/// `transfer told failed but applied`, `read_all executed twice`, ...
fn kind_label(a: &Anomaly) -> String {
    let words = match a.kind.as_str() {
        "failed-but-applied" => "told failed but applied".to_string(),
        "ack-not-applied" => "acknowledged but not applied".to_string(),
        "lost-ack" => "acknowledged but lost".to_string(),
        "lost-fail" => "told failed, then lost".to_string(),
        other => other.replace('-', " "),
    };
    match op_function(&a.message) {
        Some(f) => format!("{f} {words}"),
        None => words,
    }
}

/// How many stored anomalies of each kind, most severe first.
fn summary(h: &mut String, all: &[(&str, &Anomaly)]) {
    let mut counts: BTreeMap<(u8, String), (u64, BTreeSet<&str>)> = BTreeMap::new();
    for (check, a) in all {
        let e = counts.entry(severity(a)).or_default();
        e.0 += 1;
        e.1.insert(check);
    }
    h.push_str("<table><tr><th>severity</th><th>anomaly</th><th class=\"num\">count</th><th>found by</th></tr>\n");
    for ((tier, label), (n, checks)) in &counts {
        let _ = writeln!(
            h,
            "<tr><td><span class=\"sev sev{tier}\">{}</span></td><td>{}</td><td class=\"num\">{n}</td><td>{}</td></tr>",
            SEVERITY_WORDS[usize::from(*tier)],
            esc(label),
            checks.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    h.push_str("</table>\n<p class=\"sub\">Counts are of the anomalies stored in results.json; a check stores only its first few.</p>\n");
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

fn anomaly(h: &mut String, check: &str, a: &Anomaly, scan: &Scan) {
    let (tier, label) = severity(a);
    let _ = write!(
        h,
        "<div class=\"anomaly border{tier}\"><p><span class=\"sev sev{tier}\">{}</span><b>{}</b> <span class=\"sub\">({}, {check})</span><br>{}</p>",
        SEVERITY_WORDS[usize::from(tier)],
        esc(&label),
        esc(&a.kind),
        esc(&a.message)
    );
    if !a.exec_indices.is_empty() {
        let slots: Vec<String> = a.exec_indices.iter().map(u64::to_string).collect();
        let _ = write!(h, "<p class=\"sub\">exec_index {}</p>", slots.join(", "));
    }
    excerpt(h, &a.indices, scan);
    h.push_str("</div>\n");
}

/// The history around the cited indices, cited rows highlighted.
fn excerpt(h: &mut String, cited: &[u64], scan: &Scan) {
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
    h.push_str("<table class=\"hist\"><tr><th>index</th><th>time (s)</th><th>process</th><th>type</th><th>f</th><th>value</th><th>request</th><th>node</th><th>exec</th></tr>\n");
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
    h.push_str("<h2 id=\"final-state\">Replicas' final state</h2>\n");
    let f = &page.results.final_state;
    if !f.present {
        h.push_str("<p>No final.json.</p>\n");
        return;
    }
    let gap = f
        .log_first_gap
        .map(|g| format!(" No replica covers exec_index {g}."))
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<p>{} fetched; the agreed log reaches exec_index {}.{gap} Balances that differ from most replicas', and totals that differ from the expected one, are highlighted.</p>",
        count(f.nodes.len() as u64, "replica"),
        f.log_last
    );
    let accounts = account_order(page.params, &f.nodes);
    let expected = page.params.and_then(RunParams::total);
    h.push_str("<div class=\"scroll\"><table><tr><th>replica</th><th>executed (exec_index)</th><th class=\"num\">entries</th>");
    for a in &accounts {
        let _ = write!(h, "<th class=\"num\">{}</th>", esc(a));
    }
    h.push_str("<th class=\"num\">total</th><th>note</th></tr>\n");
    let usual: Vec<Option<i64>> = accounts.iter().map(|a| most_common(&f.nodes, a)).collect();
    for n in &f.nodes {
        node_row(h, n, &accounts, &usual, expected);
    }
    if let Some(total) = expected {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"{}\">expected total (accounts &times; initial balance)</td><td class=\"num\">{total}</td><td></td></tr>",
            3 + accounts.len()
        );
    }
    h.push_str("</table></div>\n");
}

fn node_row(
    h: &mut String,
    n: &NodeSummary,
    accounts: &[String],
    usual: &[Option<i64>],
    expected: Option<i128>,
) {
    let executed = if n.ranges.is_empty() {
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
    if balances.is_none() {
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
