//! `timeline.html`: every operation as a box, one column per process, like Jepsen's
//! timeline: a box runs from invocation (top) to completion (bottom), coloured by
//! outcome, with the faults in force drawn as bands behind. Hovering a box shows the
//! operation (the browser's own tooltip, so the page needs no script).
//!
//! A long run has far too many operations for one page, so the timeline is cut into
//! pages of [`OPS_PER_PAGE`] operations in invocation order (`timeline.html`,
//! `timeline-2.html`, ...), each scaled to its own stretch of time, and only the first
//! [`MAX_TIMELINE_OPS`] operations are drawn at all. Every page says so, and is named by
//! the stretch of time it covers and the faults in it ([`page_infos`]), so the report can
//! list the pages and link each anomaly to the page and box of its operations
//! ([`Locator`]); those boxes are highlighted. A nemesis column left of the processes
//! draws every fault as its own bar, as Jepsen's timeline does.

use super::faults::{FaultKind, FaultSpan};
use super::scan::{Scan, TimelineOp, MAX_TIMELINE_OPS};
use super::words::Words;
use crate::text::esc;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::io;
use std::path::{Path, PathBuf};

/// File name of the first page; later pages are `timeline-2.html`, ...
pub const TIMELINE_FILE: &str = "timeline.html";

/// Most operations on one page.
pub const OPS_PER_PAGE: usize = 2_000;

/// Left gutter for the time axis, px.
const GUTTER_PX: f64 = 96.0;

/// The page's drawing width for all columns together, px.
const COLUMNS_PX: f64 = 960.0;

/// Vertical distance between time labels, px.
const TICK_PX: f64 = 80.0;

/// Width of the nemesis column, px.
const NEMESIS_PX: f64 = 180.0;

/// Left edge of the first process column, px.
const PROCESSES_LEFT_PX: f64 = GUTTER_PX + NEMESIS_PX;

/// One page of the timeline as others name it: its file, its stretch of time and the
/// faults in force during it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    pub file: String,
    pub t0_ns: u64,
    pub t1_ns: u64,
    /// The faults that overlap the page, in words (`kill n3`), at most a few.
    pub faults: Vec<String>,
    /// How many faults overlap it in all.
    pub fault_count: usize,
}

/// Most faults named in a page's label.
const MAX_PAGE_FAULTS: usize = 4;

impl PageInfo {
    /// `0.000–12.345 s`.
    pub fn range(&self) -> String {
        format!(
            "{:.3}–{:.3} s",
            self.t0_ns as f64 / 1e9,
            self.t1_ns as f64 / 1e9
        )
    }

    /// `kill n3, partition n1 | the rest, and 2 more`, or `no faults`.
    pub fn fault_words(&self) -> String {
        if self.fault_count == 0 {
            return "no faults".to_string();
        }
        let mut text = self.faults.join(", ");
        if self.fault_count > self.faults.len() {
            let _ = write!(text, " and {} more", self.fault_count - self.faults.len());
        }
        text
    }
}

/// The operations on each page.
fn chunks(scan: &Scan) -> Vec<&[TimelineOp]> {
    if scan.ops.is_empty() {
        vec![&[]]
    } else {
        scan.ops.chunks(OPS_PER_PAGE).collect()
    }
}

/// Every page's name, time range and faults.
pub fn page_infos(scan: &Scan, spans: &[FaultSpan]) -> Vec<PageInfo> {
    chunks(scan)
        .iter()
        .enumerate()
        .map(|(k, ops)| {
            let (t0_ns, t1_ns) = time_range(scan, ops);
            let inside: Vec<&FaultSpan> = spans
                .iter()
                .filter(|s| s.end_ns >= t0_ns && s.start_ns <= t1_ns)
                .collect();
            PageInfo {
                file: page_file(k + 1),
                t0_ns,
                t1_ns,
                faults: inside
                    .iter()
                    .take(MAX_PAGE_FAULTS)
                    .map(|s| format!("{} {}", s.kind.label(), s.target))
                    .collect(),
                fault_count: inside.len(),
            }
        })
        .collect()
}

/// A page's time span: from its first invocation to its last completion (an operation
/// never completed runs to the end of the history).
fn time_range(scan: &Scan, ops: &[TimelineOp]) -> (u64, u64) {
    let t0 = ops.iter().map(|o| o.start_ns).min().unwrap_or(0);
    let t1 = ops
        .iter()
        .map(|o| o.end_ns.unwrap_or(scan.end_ns))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    (t0, t1)
}

/// Finds the timeline box of an operation from a history index it cites.
pub struct Locator {
    /// A cited invocation's or completion's index to its operation's position in
    /// `scan.ops`.
    at: HashMap<u64, usize>,
}

/// Where an operation is drawn: its page's file and the box's anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpPlace {
    pub page: usize,
    pub file: String,
    /// The element id of its box (`op-<invocation index>`).
    pub anchor: String,
    pub process: u64,
    pub start_ns: u64,
}

impl Locator {
    /// For the indices `scan.cited` holds.
    pub fn new(scan: &Scan) -> Locator {
        let mut at = HashMap::new();
        for (i, op) in scan.ops.iter().enumerate() {
            for index in std::iter::once(op.invoke_index).chain(op.complete_index) {
                if scan.cited.contains(&index) {
                    at.insert(index, i);
                }
            }
        }
        Locator { at }
    }

    /// The operations `indices` belong to, each once, in history order.
    pub fn places(&self, scan: &Scan, indices: &[u64]) -> Vec<OpPlace> {
        let found: BTreeSet<usize> = indices
            .iter()
            .filter_map(|i| self.at.get(i))
            .copied()
            .collect();
        found
            .into_iter()
            .map(|i| {
                let op = &scan.ops[i];
                let page = i / OPS_PER_PAGE + 1;
                OpPlace {
                    page,
                    file: page_file(page),
                    anchor: anchor(op),
                    process: op.process,
                    start_ns: op.start_ns,
                }
            })
            .collect()
    }
}

/// The element id of an operation's box.
fn anchor(op: &TimelineOp) -> String {
    format!("op-{}", op.invoke_index)
}

/// Whether an anomaly cites this operation.
fn flagged(scan: &Scan, op: &TimelineOp) -> bool {
    scan.cited.contains(&op.invoke_index)
        || op.complete_index.is_some_and(|c| scan.cited.contains(&c))
}

/// File name of page `k` (1-based).
pub fn page_file(k: usize) -> String {
    if k <= 1 {
        TIMELINE_FILE.to_string()
    } else {
        format!("timeline-{k}.html")
    }
}

/// Writes every page into `dir` (removing pages a previous, longer report left there);
/// returns their paths.
pub fn write_timeline(
    dir: &Path,
    scan: &Scan,
    spans: &[FaultSpan],
    words: &Words,
) -> io::Result<Vec<PathBuf>> {
    let pages = render_pages(scan, spans, words);
    let mut written = Vec::with_capacity(pages.len());
    for (k, page) in pages.iter().enumerate() {
        let path = dir.join(page_file(k + 1));
        std::fs::write(&path, page)?;
        written.push(path);
    }
    remove_stale_pages(dir, pages.len());
    Ok(written)
}

fn remove_stale_pages(dir: &Path, pages: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(k) = name
            .to_str()
            .and_then(|n| n.strip_prefix("timeline-"))
            .and_then(|n| n.strip_suffix(".html"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if k > pages {
            // A leftover page only misleads; failing to remove it changes nothing else.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pages' HTML (at least one, which says when there is nothing to draw).
pub fn render_pages(scan: &Scan, spans: &[FaultSpan], words: &Words) -> Vec<String> {
    let chunks = chunks(scan);
    let infos = page_infos(scan, spans);
    chunks
        .iter()
        .enumerate()
        .map(|(k, ops)| {
            // Columns for the processes this page has operations of (the harness's
            // final reads come only at the end, and would be empty columns before).
            let mut processes: Vec<u64> = ops.iter().map(|o| o.process).collect();
            processes.sort_unstable();
            processes.dedup();
            Ctx {
                scan,
                spans,
                processes: &processes,
                pages: &infos,
                words,
            }
            .page(k + 1, ops)
        })
        .collect()
}

struct Ctx<'a> {
    scan: &'a Scan,
    spans: &'a [FaultSpan],
    /// This page's columns.
    processes: &'a [u64],
    pages: &'a [PageInfo],
    words: &'a Words,
}

/// The stretch of time one page draws and its scale.
struct Window {
    t0: u64,
    t1: u64,
    height_px: f64,
}

impl Window {
    fn y(&self, t: u64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * self.height_px
    }
}

const STYLE: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:1em 1.5em;color:#222}
h1{font-size:1.3em;margin:.2em 0} .sub{color:#555;margin:.2em 0 .6em}
.nav a{margin-right:.8em} .legend span{display:inline-block;margin-right:1.2em}
.sw{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.3em;border:1px solid #888}
.heads{position:sticky;top:0;z-index:5;background:#fff;height:22px;border-bottom:1px solid #ccc}
.head{position:absolute;top:2px;font-size:12px;font-weight:bold;text-align:center;overflow:hidden;white-space:nowrap}
.tl{position:relative;border-bottom:1px solid #ccc}
.tick{position:absolute;left:0;width:90px;text-align:right;font-size:11px;color:#666;font-family:Menlo,Consolas,monospace}
.rule{position:absolute;height:0;border-top:1px dotted #ddd}
.band{position:absolute;opacity:.16}
.band-label{position:absolute;right:4px;font-size:11px;color:#333;white-space:nowrap;opacity:1}
.act{position:absolute;height:0;border-top:1px dashed #999}
.act.set{border-top:2px solid #333;font-size:11px;font-weight:bold;color:#333;padding-left:3px;z-index:3;white-space:nowrap}
.op{position:absolute;box-sizing:border-box;border:1px solid rgba(0,0,0,.35);border-radius:2px;font-size:10px;overflow:hidden;white-space:nowrap;color:#fff;padding-left:2px;min-height:2px}
.op:hover{outline:2px solid #000;z-index:10}
.ok{background:#2a8a3e} .fail{background:#c62828} .info{background:#e69500} .pending{background:#8a8a8a}
.op.flagged{outline:3px solid #ffd400;box-shadow:0 0 0 5px #222;z-index:8;min-height:6px}
.op:target{outline:4px solid #ff00d4;box-shadow:0 0 0 7px #222;z-index:9}
.nem{position:absolute;box-sizing:border-box;border-radius:2px;font-size:10px;color:#fff;overflow:hidden;white-space:nowrap;padding-left:2px;opacity:.85;min-height:3px}
.nemcol{position:absolute;top:0;bottom:0;background:#f7f7f7;border-right:1px solid #ccc}
.faults li{margin:.1em 0}
";

const OUTCOME_CLASS: [&str; 4] = ["ok", "fail", "info", "pending"];
const OUTCOME_WORD: [&str; 4] = ["ok", "fail", "info (outcome unknown)", "no completion"];

impl Ctx<'_> {
    fn page(&self, k: usize, ops: &[TimelineOp]) -> String {
        let mut h = String::with_capacity(400 * ops.len() + 8192);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} timeline, page {k} of {}: {}</title><style>{STYLE}</style></head><body>\n",
            self.words.run_title(),
            self.pages.len(),
            self.pages[k - 1].range()
        );
        let _ = writeln!(
            h,
            "<h1>Per-process timeline, page {k} of {}: {}{}</h1>",
            self.pages.len(),
            self.pages[k - 1].range(),
            if self.words.simulated {
                " of virtual time"
            } else {
                ""
            }
        );
        self.intro(&mut h, k, ops);
        if ops.is_empty() {
            h.push_str("<p>No client operations in the history.</p>\n</body></html>\n");
            return h;
        }
        let window = self.window(ops);
        let col_px = (COLUMNS_PX / self.processes.len().max(1) as f64).clamp(26.0, 160.0);
        self.heads(&mut h, col_px);
        let _ = writeln!(
            h,
            "<div class=\"tl\" style=\"height:{:.0}px;width:{:.0}px\">",
            window.height_px + 8.0,
            PROCESSES_LEFT_PX + col_px * self.processes.len() as f64
        );
        let width_px = col_px * self.processes.len() as f64;
        self.ticks(&mut h, &window, width_px);
        self.nemesis_column(&mut h, &window);
        self.bands(&mut h, &window, width_px);
        for op in ops {
            self.op_box(&mut h, op, &window, col_px);
        }
        h.push_str("</div>\n");
        self.nav(&mut h, k);
        h.push_str("</body></html>\n");
        h
    }

    fn intro(&self, h: &mut String, k: usize, ops: &[TimelineOp]) {
        let first = (k - 1) * OPS_PER_PAGE + 1;
        let virtual_note = if self.words.simulated {
            " This run was simulated: its time is virtual, not wall-clock time."
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<p class=\"sub\"><a href=\"report.html\">back to the report</a> &middot; page {k} of {}: operations {first} to {} of {} drawn, in invocation order. Time runs down; each box spans an operation from invocation to completion; hover over one for its details. Operations an anomaly cites are outlined in yellow.{virtual_note}</p>",
            self.pages.len(),
            first + ops.len().saturating_sub(1),
            self.scan.ops.len()
        );
        let _ = writeln!(
            h,
            "<p class=\"sub\"><b>Faults on this page:</b> {}.</p>",
            esc(&self.pages[k - 1].fault_words())
        );
        let mut bound = format!(
            "Each page holds at most {OPS_PER_PAGE} operations and is scaled to its own stretch of time; at most {MAX_TIMELINE_OPS} operations are drawn in all."
        );
        if self.scan.ops_not_kept > 0 {
            let _ = write!(
                bound,
                " This run had {} more, not drawn here (history.jsonl has them all).",
                self.scan.ops_not_kept
            );
        }
        let _ = writeln!(h, "<p class=\"sub\">{bound}</p>");
        h.push_str("<p class=\"legend\">");
        for (class, word) in OUTCOME_CLASS.iter().zip(OUTCOME_WORD) {
            let _ = write!(h, "<span><span class=\"sw {class}\"></span>{word}</span>");
        }
        for kind in legend_kinds(self.spans) {
            let (r, g, b) = kind.rgb();
            let _ = write!(
                h,
                "<span><span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span>{}</span>",
                kind.label()
            );
        }
        h.push_str("<span>dashed line: nemesis action (hover for it)</span>");
        if self.scan.nemesis.iter().any(|a| a.f == "set") {
            h.push_str("<span>solid line: a scenario set starts</span>");
        }
        h.push_str("</p>\n");
        self.nav(h, k);
    }

    fn nav(&self, h: &mut String, k: usize) {
        let pages = self.pages.len();
        if pages <= 1 {
            return;
        }
        h.push_str("<p class=\"nav\">");
        if k > 1 {
            let _ = write!(
                h,
                "<a href=\"{}\">&laquo; previous page</a>",
                page_file(k - 1)
            );
        }
        if k < pages {
            let _ = write!(h, "<a href=\"{}\">next page &raquo;</a>", page_file(k + 1));
        }
        h.push_str("pages: ");
        for (p, info) in self.pages.iter().enumerate().map(|(i, p)| (i + 1, p)) {
            let title = esc(&format!("{}: {}", info.range(), info.fault_words()));
            if p == k {
                let _ = write!(h, "<b title=\"{title}\">{p} ({})</b> ", info.range());
            } else {
                let _ = write!(
                    h,
                    "<a href=\"{}\" title=\"{title}\">{p} ({})</a>",
                    info.file,
                    info.range()
                );
            }
        }
        h.push_str("</p>\n");
    }

    /// The page's time span (see [`time_range`]) and its scale.
    fn window(&self, ops: &[TimelineOp]) -> Window {
        let (t0, t1) = time_range(self.scan, ops);
        // Room for about 18 px per operation in each column, within sane bounds.
        let per_column = ops.len() as f64 / self.processes.len().max(1) as f64;
        Window {
            t0,
            t1,
            height_px: (per_column * 18.0).clamp(600.0, 20_000.0),
        }
    }

    fn heads(&self, h: &mut String, col_px: f64) {
        let _ = write!(
            h,
            "<div class=\"heads\" style=\"width:{:.0}px\">",
            PROCESSES_LEFT_PX + col_px * self.processes.len() as f64
        );
        let _ = write!(
            h,
            "<div class=\"head\" style=\"left:0;width:{GUTTER_PX:.0}px\">{}</div><div class=\"head\" style=\"left:{GUTTER_PX:.0}px;width:{NEMESIS_PX:.0}px\" title=\"every fault as a bar, one lane per kind\">nemesis</div>",
            self.words.time_axis()
        );
        for (i, p) in self.processes.iter().enumerate() {
            let _ = write!(
                h,
                "<div class=\"head\" style=\"left:{:.0}px;width:{:.0}px\" title=\"process {p}\">{p}</div>",
                PROCESSES_LEFT_PX + i as f64 * col_px,
                col_px
            );
        }
        h.push_str("</div>\n");
    }

    fn ticks(&self, h: &mut String, w: &Window, width_px: f64) {
        let count = (w.height_px / TICK_PX).floor() as u64;
        for i in 0..=count {
            let t = w.t0 + (w.t1 - w.t0) * i / count.max(1);
            let y = w.y(t);
            let _ = write!(
                h,
                "<div class=\"tick\" style=\"top:{:.0}px\">{:.3}</div><div class=\"rule\" style=\"top:{y:.0}px;left:{PROCESSES_LEFT_PX:.0}px;width:{width_px:.0}px\"></div>",
                (y - 6.0).max(0.0),
                t as f64 / 1e9
            );
        }
    }

    /// Fault bands and nemesis action lines within the window.
    fn bands(&self, h: &mut String, w: &Window, width_px: f64) {
        for s in self
            .spans
            .iter()
            .filter(|s| s.end_ns >= w.t0 && s.start_ns <= w.t1)
        {
            let (r, g, b) = s.kind.rgb();
            let top = w.y(s.start_ns);
            let height = (w.y(s.end_ns) - top).max(2.0);
            let what = span_title(s);
            let _ = write!(
                h,
                "<div class=\"band\" style=\"top:{top:.0}px;height:{height:.0}px;left:{PROCESSES_LEFT_PX:.0}px;width:{width_px:.0}px;background:rgb({r},{g},{b})\" title=\"{}\"></div>",
                esc(&what)
            );
        }
        for a in self
            .scan
            .nemesis
            .iter()
            .filter(|a| a.time_ns >= w.t0 && a.time_ns <= w.t1)
        {
            let what = format!(
                "{:.3} s nemesis {}: {}",
                a.time_ns as f64 / 1e9,
                a.f,
                super::describe::describe(&a.f, &a.value)
            );
            let (class, label) = match a.f.as_str() {
                "set" => (
                    "act set",
                    what.split(": ").nth(1).unwrap_or_default().to_string(),
                ),
                _ => ("act", String::new()),
            };
            let _ = write!(
                h,
                "<div class=\"{class}\" style=\"top:{:.0}px;left:{PROCESSES_LEFT_PX:.0}px;width:{width_px:.0}px\" title=\"{}\">{}</div>",
                w.y(a.time_ns),
                esc(&what),
                esc(&label)
            );
        }
    }

    /// The nemesis column: each fault in the window as a labelled bar, one lane per kind
    /// of fault the run had, so faults that overlap stay apart.
    fn nemesis_column(&self, h: &mut String, w: &Window) {
        let _ = write!(
            h,
            "<div class=\"nemcol\" style=\"left:{GUTTER_PX:.0}px;width:{NEMESIS_PX:.0}px\"></div>"
        );
        let lanes = legend_kinds(self.spans);
        let lane_px = NEMESIS_PX / lanes.len().max(1) as f64;
        for s in self
            .spans
            .iter()
            .filter(|s| s.end_ns >= w.t0 && s.start_ns <= w.t1)
        {
            let lane = lanes.iter().position(|k| *k == s.kind).unwrap_or(0) as f64;
            let (r, g, b) = s.kind.rgb();
            let top = w.y(s.start_ns);
            let height = (w.y(s.end_ns) - top).max(3.0);
            let what = span_title(s);
            let label = if height >= 12.0 {
                esc(&format!("{} {}", s.kind.label(), s.target))
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<div class=\"nem\" style=\"top:{top:.0}px;height:{height:.0}px;left:{:.0}px;width:{:.0}px;background:rgb({r},{g},{b})\" title=\"{}\">{label}</div>",
                GUTTER_PX + lane * lane_px + 1.0,
                (lane_px - 2.0).max(3.0),
                esc(&what)
            );
        }
    }

    fn op_box(&self, h: &mut String, op: &TimelineOp, w: &Window, col_px: f64) {
        let col = self
            .processes
            .binary_search(&op.process)
            .unwrap_or_default() as f64;
        let end = op.end_ns.unwrap_or(self.scan.end_ns);
        let top = w.y(op.start_ns);
        let height = (w.y(end) - top).max(2.0);
        let outcome = usize::from(op.outcome.min(3));
        let label = if height >= 12.0 {
            esc(&op.f)
        } else {
            String::new()
        };
        let (flag, note) = if flagged(self.scan, op) {
            (" flagged", "\ncited by an anomaly (see the report)")
        } else {
            ("", "")
        };
        let _ = write!(
            h,
            "<div id=\"{}\" class=\"op {}{flag}\" style=\"top:{top:.1}px;height:{height:.1}px;left:{:.0}px;width:{:.0}px\" title=\"{}{note}\">{label}</div>",
            anchor(op),
            OUTCOME_CLASS[outcome],
            PROCESSES_LEFT_PX + col * col_px + 2.0,
            (col_px - 4.0).max(4.0),
            esc(&tooltip(op, end, self.words))
        );
    }
}

/// The kinds of fault a run had, in legend order.
fn legend_kinds(spans: &[FaultSpan]) -> Vec<FaultKind> {
    FaultKind::ALL
        .into_iter()
        .filter(|k| spans.iter().any(|s| s.kind == *k))
        .collect()
}

/// The hover text of one operation.
fn tooltip(op: &TimelineOp, end_ns: u64, words: &Words) -> String {
    let mut t = format!(
        "process {} {} {}\n{}",
        op.process,
        op.f,
        OUTCOME_WORD[usize::from(op.outcome.min(3))],
        op.value
    );
    let _ = write!(
        t,
        "\ninvoked {:.3} s, {} {:.3} s ({:.1} ms)\nhistory index {}",
        op.start_ns as f64 / 1e9,
        if op.end_ns.is_some() {
            "completed"
        } else {
            "still open at"
        },
        end_ns as f64 / 1e9,
        end_ns.saturating_sub(op.start_ns) as f64 / 1e6,
        op.invoke_index
    );
    if let Some(c) = op.complete_index {
        let _ = write!(t, ", {c}");
    }
    if let Some(n) = &op.node {
        let _ = write!(t, "\n{} {n}", words.replica);
    }
    if let Some(e) = op.exec_index {
        let _ = write!(t, ", {} {e}", words.position);
    }
    t
}

/// A fault's tooltip: its kind, target and time range.
fn span_title(s: &FaultSpan) -> String {
    format!(
        "{} {} from {:.3} s to {:.3} s{}",
        s.kind.label(),
        s.target,
        s.start_ns as f64 / 1e9,
        s.end_ns as f64 / 1e9,
        if s.ended { "" } else { " (end of history)" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(process: u64, start_ns: u64, end_ns: Option<u64>, outcome: u8) -> TimelineOp {
        TimelineOp {
            process,
            start_ns,
            end_ns,
            outcome,
            f: "transfer".into(),
            value: "{\"from\":\"A\",\"to\":\"B\",\"amount\":3}".into(),
            invoke_index: start_ns,
            complete_index: end_ns,
            node: Some("n1".into()),
            exec_index: Some(7),
        }
    }

    #[test]
    fn pages_are_bounded_and_linked() {
        let scan = Scan {
            ops: (0..(OPS_PER_PAGE as u64 * 2 + 5))
                .map(|i| op(i % 10, i * 1_000, Some(i * 1_000 + 500), (i % 3) as u8))
                .collect(),
            end_ns: OPS_PER_PAGE as u64 * 3_000,
            ..Scan::default()
        };
        let pages = render_pages(&scan, &[], &Words::default());
        assert_eq!(pages.len(), 3);
        let boxes = |p: &str| p.matches(" class=\"op ").count();
        assert_eq!(boxes(&pages[0]), OPS_PER_PAGE);
        assert_eq!(boxes(&pages[2]), 5);
        assert!(pages[0].contains("href=\"timeline-2.html\""));
        assert!(pages[2].contains("href=\"timeline-2.html\"") && !pages[2].contains("next page"));
        assert!(pages[1].contains("at most 2000 operations"));
        // Every page is named by its stretch of time, in its heading and in the links.
        let infos = page_infos(&scan, &[]);
        assert_eq!(infos[1].range(), "0.002–0.004 s");
        assert!(pages[1].contains("page 2 of 3: 0.002–0.004 s</h1>"));
        assert!(pages[0].contains("2 (0.002–0.004 s)</a>"));
    }

    #[test]
    fn a_box_spans_invoke_to_completion_with_the_fault_behind() {
        let scan = Scan {
            ops: vec![op(0, 0, Some(1_000), 0), op(1, 500, None, 3)],
            end_ns: 2_000,
            ..Scan::default()
        };
        let spans = [FaultSpan {
            kind: FaultKind::Kill,
            start_ns: 1_000,
            end_ns: 2_000,
            target: "n3".into(),
            ended: false,
        }];
        let page = &render_pages(&scan, &spans, &Words::default())[0];
        assert!(
            page.contains("class=\"op ok\" style=\"top:0.0px;height:300.0px"),
            "{page}"
        );
        assert!(page.contains("class=\"op pending\""));
        assert!(page.contains("kill n3 from 0.000 s to 0.000 s (end of history)"));
        assert!(page.contains("process 0 transfer ok"));
    }
}
