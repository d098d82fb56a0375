//! One pass over the history for the report: latencies, nemesis actions, and the few
//! events around each anomaly's cited indices.
//!
//! The checks keep no events (they would not fit for long runs), so the report reads
//! the history again. It keeps one small record per completed attempt (24 bytes) for
//! the charts, which downsample later, and the full text only of excerpt events.

use crate::history::{EventType, HistoryError, HistoryReader, Process};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// How many events before and after a cited index an excerpt shows.
pub const EXCERPT_CONTEXT: u64 = 3;

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
}

/// Reads `path`, keeping excerpt rows for events within [`EXCERPT_CONTEXT`] of `cited`.
pub fn scan(path: &Path, cited: &HashSet<u64>) -> Result<Scan, HistoryError> {
    let wanted: HashSet<u64> = cited
        .iter()
        .flat_map(|&i| i.saturating_sub(EXCERPT_CONTEXT)..=i + EXCERPT_CONTEXT)
        .collect();
    let mut reader = HistoryReader::open(path)?;
    let mut out = Scan::default();
    let mut inflight: HashMap<(u64, u64), u64> = HashMap::new();
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
                inflight.insert(key, ev.time_ns);
                continue;
            }
            EventType::Ok => 0,
            EventType::Fail => 1,
            EventType::Info => 2,
        };
        if let Some(start) = inflight.remove(&key) {
            out.points.push(LatencyPoint {
                start_ns: start,
                latency_ns: ev.time_ns.saturating_sub(start),
                outcome,
                f: function_index(&ev.f),
            });
        }
    }
    Ok(out)
}

fn function_index(f: &str) -> u8 {
    FUNCTIONS[..3].iter().position(|x| *x == f).unwrap_or(3) as u8
}

fn excerpt_row(ev: &crate::history::RawEvent<'_>) -> ExcerptRow {
    let mut value = ev.value_text().to_string();
    if value.len() > 240 {
        let cut = (0..=240)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push_str("...");
    }
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
