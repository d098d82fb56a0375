//! Renders report.html: one self-contained page (inline CSS, charts as data URIs).
//!
//! Order follows what a person needs first: the verdict, the table of checks, the
//! charts with the fault timeline, then every stored anomaly with the history around
//! it, the replicas' final state and the run's parameters. All text from the run is
//! HTML-escaped.

use super::faults::{classify, FaultKind, FaultSpan};
use super::scan::{ExcerptRow, Scan, EXCERPT_CONTEXT};
use super::ChartOut;
use crate::checks::{Anomaly, CheckResult, Validity};
use crate::results::Results;
use crate::run_params::RunParams;
use base64::Engine;
use std::collections::BTreeSet;
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
    final_state(&mut h, r);
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
        "<p class=\"sub\">{} history events ({} operations by {} clients, {} nemesis actions) over {:.1} s, checked in {} ms.</p>",
        s.events,
        s.operations,
        s.clients,
        s.nemesis,
        s.last_time_ns.saturating_sub(s.first_time_ns) as f64 / 1e9,
        r.elapsed_ms
    );
    for w in r.warnings.iter().chain(page.notes) {
        let _ = writeln!(h, "<div class=\"warn\">{}</div>", esc(w));
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
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#check-{name}\">{name}</a></td><td><span class=\"tag {}\">{}</span></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
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
    h.push_str("Vertical lines mark nemesis actions.</p>\n");
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
    h.push_str("<h2>Fault timeline</h2>\n");
    if page.scan.nemesis.is_empty() {
        h.push_str("<p>No nemesis actions.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>fault</th><th>target</th><th>from (s)</th><th>to (s)</th><th>duration (s)</th></tr>\n");
    for s in page.spans.iter().take(MAX_FAULT_ROWS) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td></tr>",
            s.kind.label(),
            esc(&s.target),
            secs(s.start_ns),
            secs(s.end_ns),
            if s.ended { "" } else { " (end of history)" },
            secs(s.end_ns - s.start_ns)
        );
    }
    more_rows(h, page.spans.len());
    h.push_str("</table>\n<details><summary>All nemesis actions</summary><table class=\"hist\"><tr><th>index</th><th>time (s)</th><th>f</th><th>value</th></tr>\n");
    for a in page.scan.nemesis.iter().take(MAX_FAULT_ROWS) {
        let known = if classify(&a.f).is_some() {
            ""
        } else {
            " (not a known fault)"
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}{known}</td><td>{}</td></tr>",
            a.index,
            secs(a.time_ns),
            esc(&a.f),
            esc(&a.value)
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
    h.push_str("<h2>Anomalies</h2>\n");
    let r = page.results;
    if r.checks.values().all(|c| c.anomaly_count == 0) {
        h.push_str("<p>None.</p>\n");
    }
    for (name, c) in r.ordered_checks() {
        let _ = writeln!(h, "<h3 id=\"check-{name}\">{name}: {}</h3>", check_line(c));
        for a in &c.anomalies {
            anomaly(h, a, page.scan);
        }
    }
}

fn check_line(c: &CheckResult) -> String {
    let shown = c.anomalies.len() as u64;
    match c.anomaly_count {
        0 => format!("{}, no anomalies", verdict_word(c.valid)),
        n if n > shown => format!("{} anomalies, the first {shown} shown", n),
        1 => "1 anomaly".into(),
        n => format!("{n} anomalies"),
    }
}

fn anomaly(h: &mut String, a: &Anomaly, scan: &Scan) {
    let _ = write!(
        h,
        "<div class=\"anomaly\"><p><b>{}</b>: {}</p>",
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

fn final_state(h: &mut String, r: &Results) {
    h.push_str("<h2>Replicas' final state</h2>\n");
    let f = &r.final_state;
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
        "<p>The agreed log reaches exec_index {}.{gap}</p>",
        f.log_last
    );
    h.push_str("<table><tr><th>replica</th><th>executed</th><th>entries</th><th>balances</th><th>error</th></tr>\n");
    for n in &f.nodes {
        let range = if n.entries == 0 {
            "none".to_string()
        } else {
            format!("{}..={}", n.first_exec, n.last_exec)
        };
        let _ =
            writeln!(
            h,
            "<tr><td>{}</td><td>{range}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n.name),
            n.entries,
            if n.balances_fetched { "fetched" } else { "missing" },
            esc(n.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");
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
