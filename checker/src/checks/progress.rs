//! Progress: while a majority of the replicas is up and connected, some operation is
//! answered `ok` at least every `progress_bound_ms`, during the run as well as after
//! the heal. A stall the liveness check cannot see (it judges only after the `stable`
//! event) shows here: a cluster that stops answering with a majority up.
//!
//! It applies when run.toml has integer `progress_bound_ms` and `nodes` (the classic
//! cluster's size); the harness writes both for a real classic run. Which replicas are
//! up is followed from the nemesis events: `kill`, `pause` and `crash` take their
//! `nodes` down, `restart` and `resume` bring them back, `heal-all` and `stable` bring
//! all back. While any partition (an event whose value has non-empty `cuts`) is in
//! force, up to the next `heal`, `heal-all` or `stable`, who is connected is not
//! followed and nothing is judged: the rule only ever judges stretches where the
//! majority is surely there. A stretch is owed progress from the latest of: the last
//! `ok`, the moment a majority was last up and unpartitioned, and the invocation of the
//! oldest operation in flight; one that passes the bound with an operation still in
//! flight is a `no-progress` anomaly of the liveness check.
//!
//! It reads the history once more, with serde, only when it applies (real classic runs
//! are short next to the benchmark histories the streaming pass is built for).

use super::Anomaly;
use crate::history::{Event, EventType, HistoryReader, Process};
use crate::runner::CheckError;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Who is up, and whether a partition is in force.
#[derive(Debug, Default)]
struct Cluster {
    size: usize,
    down: BTreeSet<String>,
    partitioned: bool,
}

impl Cluster {
    fn nemesis(&mut self, f: &str, value: &Value) {
        let nodes = || {
            value
                .get("nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
        };
        match f {
            "kill" | "pause" | "crash" => self.down.extend(nodes()),
            "restart" | "resume" => {
                for n in nodes() {
                    self.down.remove(&n);
                }
            }
            "heal" => self.partitioned = false,
            "heal-all" | "stable" => {
                self.down.clear();
                self.partitioned = false;
            }
            _ => {
                let cuts = value.get("cuts").and_then(Value::as_array);
                if cuts.is_some_and(|c| !c.is_empty()) {
                    self.partitioned = true;
                }
            }
        }
    }

    fn majority(&self) -> bool {
        !self.partitioned && self.size.saturating_sub(self.down.len()) > self.size / 2
    }
}

/// The stretch being judged.
#[derive(Debug, Default)]
struct Watch {
    last_ok_ns: u64,
    majority_since_ns: Option<u64>,
    /// Per client, its operation in flight: (invoke time, index).
    open: HashMap<u64, (u64, u64)>,
    reported: bool,
}

/// The no-progress anomalies of the history at `path`, judged with `bound_ms` for a
/// cluster of `size` replicas.
pub(crate) fn judge(path: &Path, bound_ms: u64, size: usize) -> Result<Vec<Anomaly>, CheckError> {
    let bound = bound_ms.saturating_mul(1_000_000);
    let mut cluster = Cluster {
        size,
        ..Cluster::default()
    };
    let mut w = Watch {
        majority_since_ns: Some(0),
        ..Watch::default()
    };
    let mut out = Vec::new();
    let mut r = HistoryReader::open(path)?;
    while let Some(e) = r.next_as::<Event>()? {
        check_stretch(&mut w, bound, e.time_ns, &mut out);
        match (e.process, e.kind) {
            (Process::Nemesis, _) => {
                let had = cluster.majority();
                cluster.nemesis(&e.f, &e.value);
                match (had, cluster.majority()) {
                    (false, true) => w.majority_since_ns = Some(e.time_ns),
                    (true, false) => w.majority_since_ns = None,
                    _ => {}
                }
                w.reported = false;
            }
            (Process::Client(c), EventType::Invoke) => {
                w.open.insert(c, (e.time_ns, e.index));
            }
            (Process::Client(c), kind) => {
                w.open.remove(&c);
                if kind == EventType::Ok {
                    w.last_ok_ns = e.time_ns;
                    w.reported = false;
                }
            }
        }
    }
    Ok(out)
}

/// At `now`, whether the stretch owed progress has passed the bound without an `ok`.
fn check_stretch(w: &mut Watch, bound: u64, now: u64, out: &mut Vec<Anomaly>) {
    let (Some(majority), false) = (w.majority_since_ns, w.reported) else {
        return;
    };
    let Some(&(invoked, index)) = w.open.values().min() else {
        return;
    };
    let since = w.last_ok_ns.max(majority).max(invoked);
    if now.saturating_sub(since) <= bound {
        return;
    }
    w.reported = true;
    let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    out.push(Anomaly::new(
        "no-progress",
        format!(
            "No operation was answered ok from {} to {} into the run ({}), though a majority of the replicas was up and no partition was in force, and operations were in flight (the oldest invoked at history index {index}): with a majority up and connected, some operation must succeed within {}.",
            secs(since),
            secs(now),
            secs(now - since),
            secs(bound)
        ),
        vec![index],
    ));
}
