//! One pass over the history for the report: latencies, nemesis actions, and the few
//! events around each anomaly's cited indices.
//!
//! The checks keep no events (they would not fit for long runs), so the report reads
//! the history again. It keeps one small record per completed attempt (24 bytes) for
//! the charts, which downsample later, and the full text only of excerpt events.
//! The timeline page gets one record per operation, with its value cut short, for the
//! first [`MAX_TIMELINE_OPS`] operations only, so a long run's timeline stays bounded.

use crate::history::{EventType, HistoryError, HistoryReader, Process};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// How many events before and after a cited index an excerpt shows.
pub const EXCERPT_CONTEXT: u64 = 3;

/// Most operations kept for the timeline page.
pub const MAX_TIMELINE_OPS: usize = 40_000;

/// Longest value text kept per timeline operation.
const TIMELINE_VALUE_CHARS: usize = 120;

/// Operation functions with their own marker shape in the charts.
pub const FUNCTIONS: [&str; 4] = ["transfer", "read", "read_all", "other"];

/// One completed attempt.
#[derive(Debug, Clone, Copy)]
pub struct LatencyPoint {
    /// Invocation time, ns since the start.
    pub start_ns: u64,
    pub latency_ns: u64,
    /// 0 ok, 1 fail, 2 info.
    pub outcome: u8,
    /// Index into [`FUNCTIONS`].
    pub f: u8,
    /// Its invocation or completion is cited by an anomaly.
    pub flagged: bool,
}

/// One event shown in an excerpt.
#[derive(Debug, Clone)]
pub struct ExcerptRow {
    pub index: u64,
    pub time_ns: u64,
    pub process: String,
    pub kind: EventType,
    pub f: String,
    pub value: String,
    pub request_id: Option<u64>,
    pub node: Option<String>,
    pub exec_index: Option<u64>,
}

/// One operation as the timeline draws it: a box from invocation to completion.
#[derive(Debug, Clone)]
pub struct TimelineOp {
    pub process: u64,
    pub start_ns: u64,
    /// `None` while (or if never) completed.
    pub end_ns: Option<u64>,
    /// 0 ok, 1 fail, 2 info, 3 no completion in the history.
    pub outcome: u8,
    pub f: String,
    /// The completion's value (the invocation's until then), cut short.
    pub value: String,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    pub node: Option<String>,
    pub exec_index: Option<u64>,
}

/// A nemesis action.
#[derive(Debug, Clone)]
pub struct NemesisAction {
    pub index: u64,
    pub time_ns: u64,
    pub f: String,
    /// The raw JSON of its value (the targets or grouping).
    pub value: String,
}

/// What the report needs from the history.
#[derive(Debug, Default)]
pub struct Scan {
    pub points: Vec<LatencyPoint>,
    pub nemesis: Vec<NemesisAction>,
    pub excerpts: BTreeMap<u64, ExcerptRow>,
    pub end_ns: u64,
    /// The first [`MAX_TIMELINE_OPS`] operations, in invocation order.
    pub ops: Vec<TimelineOp>,
    /// Operations invoked after the timeline was full.
    pub ops_not_kept: u64,
    /// The history indices the anomalies cite.
    pub cited: HashSet<u64>,
}

/// Reads `path`, keeping excerpt rows for events within [`EXCERPT_CONTEXT`] of `cited`.
pub fn scan(path: &Path, cited: &HashSet<u64>) -> Result<Scan, HistoryError> {
    let wanted: HashSet<u64> = cited
        .iter()
        .flat_map(|&i| i.saturating_sub(EXCERPT_CONTEXT)..=i + EXCERPT_CONTEXT)
        .collect();
    let mut reader = HistoryReader::open(path)?;
    let mut out = Scan {
        cited: cited.clone(),
        ..Scan::default()
    };
    // (client, request id) to the invocation's time and index and the timeline record,
    // if kept.
    let mut inflight: HashMap<(u64, u64), (u64, u64, Option<usize>)> = HashMap::new();
    while let Some(ev) = reader.next_event()? {
        out.end_ns = out.end_ns.max(ev.time_ns);
        if wanted.contains(&ev.index) {
            out.excerpts.insert(ev.index, excerpt_row(&ev));
        }
        let Process::Client(p) = ev.process else {
            out.nemesis.push(NemesisAction {
                index: ev.index,
                time_ns: ev.time_ns,
                f: ev.f.to_string(),
                value: ev.value_text().to_string(),
            });
            continue;
        };
        let key = (p, ev.request_id.unwrap_or(0));
        let outcome = match ev.kind {
            EventType::Invoke => {
                let kept = out.keep_op(p, &ev);
                inflight.insert(key, (ev.time_ns, ev.index, kept));
                continue;
            }
            EventType::Ok => 0,
            EventType::Fail => 1,
            EventType::Info => 2,
        };
        if let Some((start, invoked_at, kept)) = inflight.remove(&key) {
            out.points.push(LatencyPoint {
                start_ns: start,
                latency_ns: ev.time_ns.saturating_sub(start),
                outcome,
                f: function_index(&ev.f),
                flagged: cited.contains(&invoked_at) || cited.contains(&ev.index),
            });
            if let Some(op) = kept.and_then(|i| out.ops.get_mut(i)) {
                op.end_ns = Some(ev.time_ns);
                op.outcome = outcome;
                op.value = cut(ev.value_text(), TIMELINE_VALUE_CHARS);
                op.complete_index = Some(ev.index);
                op.node = ev.node.as_ref().map(|n| n.to_string());
                op.exec_index = ev.exec_index;
            }
        }
    }
    Ok(out)
}

impl Scan {
    /// Keeps an invocation for the timeline while there is room; its position.
    fn keep_op(&mut self, process: u64, ev: &crate::history::RawEvent<'_>) -> Option<usize> {
        if self.ops.len() >= MAX_TIMELINE_OPS {
            self.ops_not_kept += 1;
            return None;
        }
        self.ops.push(TimelineOp {
            process,
            start_ns: ev.time_ns,
            end_ns: None,
            outcome: 3,
            f: ev.f.to_string(),
            value: cut(ev.value_text(), TIMELINE_VALUE_CHARS),
            invoke_index: ev.index,
            complete_index: None,
            node: None,
            exec_index: None,
        });
        Some(self.ops.len() - 1)
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), with `...` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &text[..end])
}

fn function_index(f: &str) -> u8 {
    FUNCTIONS[..3].iter().position(|x| *x == f).unwrap_or(3) as u8
}

fn excerpt_row(ev: &crate::history::RawEvent<'_>) -> ExcerptRow {
    let value = cut(ev.value_text(), 240);
    ExcerptRow {
        index: ev.index,
        time_ns: ev.time_ns,
        process: ev.process.to_string(),
        kind: ev.kind,
        f: ev.f.to_string(),
        value,
        request_id: ev.request_id,
        node: ev.node.as_ref().map(|n| n.to_string()),
        exec_index: ev.exec_index,
    }
}
