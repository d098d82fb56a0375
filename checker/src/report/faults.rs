//! Turns nemesis actions into the intervals when a fault was active.
//!
//! Replicas down (killed, crashed at a failpoint, powered off, or down for a flipped bit)
//! and paused are tracked per replica and per kind: a start adds the replicas its value
//! names, `restart`/`resume` remove the ones theirs names (all when it names none). A span
//! is a stretch during which the same replicas were down (or paused), so a scenario that
//! kills n4 in set 3 and n5 in set 4 shows two spans, "n4" then "n4, n5", not one band
//! from the first kill to the end. A partition lasts until `heal` or the next partition;
//! `heal-all` ends everything. A fault still in force at the end of the history lasts
//! until then. A clock jump and a failed fsync are instants: spans of no length.
//!
//! A replica that refused to restart (a restart, or the final `stable` event, naming it
//! under `refused`: it detected a damaged disk) stays down, and gets a span of its own
//! from then on, so the fault table shows it.
use super::describe;
use super::scan::NemesisAction;
use serde_json::Value;
use std::collections::BTreeMap;

/// The kinds of fault the charts shade, each with its own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    /// A simulated power cut: unsynced data lost or torn.
    Power,
    /// A simulated clock jump.
    Clock,
    /// A simulated disk fault: a failed fsync, a flipped bit, a replica refusing its disk.
    Disk,
    Other,
}

impl FaultKind {
    /// Every kind, in legend order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Power,
        FaultKind::Clock,
        FaultKind::Disk,
        FaultKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Power => "power cut",
            FaultKind::Clock => "clock jump",
            FaultKind::Disk => "disk fault",
            FaultKind::Other => "other fault",
        }
    }

    /// RGB used in charts and the HTML legend.
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            FaultKind::Kill => (214, 39, 40),
            FaultKind::Pause => (148, 103, 189),
            FaultKind::Partition => (31, 119, 180),
            FaultKind::Power => (255, 127, 14),
            FaultKind::Clock => (23, 190, 207),
            FaultKind::Disk => (140, 86, 75),
            FaultKind::Other => (127, 127, 127),
        }
    }

    /// Whether the replicas it names are down until restarted.
    fn takes_down(self) -> bool {
        matches!(self, FaultKind::Kill | FaultKind::Power | FaultKind::Disk)
    }
}

/// Whether an action starts or ends a fault, and of which kind.
pub fn classify(f: &str) -> Option<(FaultKind, bool)> {
    let k = match f {
        "kill" | "crash" | "stop" => (FaultKind::Kill, true),
        "power-cut" => (FaultKind::Power, true),
        "bit-flip" | "fsync-fail" | "cut-short" => (FaultKind::Disk, true),
        "clock-jump" => (FaultKind::Clock, true),
        "restart" | "start" | "recover" => (FaultKind::Kill, false),
        "pause" => (FaultKind::Pause, true),
        "resume" => (FaultKind::Pause, false),
        "partition" | "isolate" => (FaultKind::Partition, true),
        "heal" => (FaultKind::Partition, false),
        _ => return None,
    };
    Some(k)
}

/// Actions that happen at an instant: nothing stays faulted after them.
fn instant(f: &str) -> bool {
    matches!(f, "clock-jump" | "fsync-fail")
}

/// An interval with a fault active.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpan {
    pub kind: FaultKind,
    pub start_ns: u64,
    pub end_ns: u64,
    /// What was faulted, in words (the replicas down, the partition's sides).
    pub target: String,
    /// False when the history ended before the fault did.
    pub ended: bool,
}

impl FaultSpan {
    /// A clock jump or a failed fsync: no length.
    pub fn is_instant(&self) -> bool {
        self.start_ns == self.end_ns && self.ended
    }
}

/// The replicas one kind of fault holds, and since when this set has held.
#[derive(Default)]
struct Held {
    nodes: Vec<String>,
    since: u64,
}

/// The faults in force while reading the actions in order.
#[derive(Default)]
struct Open {
    held: BTreeMap<FaultKind, Held>,
    /// Words added to a replica's name while it is down (`failpoint: prepare-sent`).
    why: BTreeMap<String, String>,
    /// Replicas that refused to restart, and since when.
    refused: BTreeMap<String, (u64, String)>,
    partition: Option<(u64, String)>,
    done: Vec<FaultSpan>,
}

/// Changes closer together than this are one change: a scenario set kills n1 and
/// restarts n4 a few microseconds apart, which is not worth a span of its own.
const SIMULTANEOUS_NS: u64 = 1_000_000;

impl Open {
    /// Ends the span of the current set at `at`; false (and nothing recorded) when it
    /// began less than `min_ns` before.
    fn close_set(&mut self, kind: FaultKind, at: u64, min_ns: u64) -> bool {
        let Some(held) = self.held.get(&kind) else {
            return true;
        };
        if held.nodes.is_empty() {
            return true;
        }
        if at.saturating_sub(held.since) < min_ns.max(1) {
            return false;
        }
        let target = held
            .nodes
            .iter()
            .map(|n| match self.why.get(n) {
                Some(why) => format!("{n} ({why})"),
                None => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.done.push(FaultSpan {
            kind,
            start_ns: held.since,
            end_ns: at,
            target,
            ended: true,
        });
        true
    }

    /// Replaces the set of replicas `kind` holds at `at`.
    fn change(&mut self, kind: FaultKind, at: u64, edit: impl FnOnce(&mut Vec<String>)) {
        let closed = self.close_set(kind, at, SIMULTANEOUS_NS);
        let held = self.held.entry(kind).or_default();
        edit(&mut held.nodes);
        held.nodes.sort_by_key(|a| natural(a));
        held.nodes.dedup();
        if closed {
            held.since = at;
        }
    }

    fn end_partition(&mut self, at: u64) {
        if let Some((start, target)) = self.partition.take() {
            self.done.push(FaultSpan {
                kind: FaultKind::Partition,
                start_ns: start,
                end_ns: at,
                target,
                ended: true,
            });
        }
    }

    /// Replicas an action's value says refused to restart, with why: `"refused":
    /// ["n3: checksum mismatch"]` or `{"n3": "checksum mismatch"}`.
    fn note_refusals(&mut self, t: u64, raw: &str) {
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            return;
        };
        let pairs: Vec<(String, String)> = match value.get("refused") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| match s.split_once(": ") {
                    Some((n, why)) => (n.to_string(), why.to_string()),
                    None => (s.to_string(), String::new()),
                })
                .collect(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(n, why)| (n.clone(), why.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => Vec::new(),
        };
        for (node, why) in pairs {
            self.refused.entry(node).or_insert((t, why));
        }
    }

    /// Ends the down spans of the replicas a `restart` names, except those that refused.
    fn restart(&mut self, t: u64, named: Option<Vec<String>>) {
        let refused: Vec<String> = self.refused.keys().cloned().collect();
        for kind in [FaultKind::Kill, FaultKind::Power, FaultKind::Disk] {
            let refused = refused.clone();
            let named = named.clone();
            // A replica that refused to restart leaves its down span for its own
            // `refused` span, which lasts.
            self.change(kind, t, move |set| match named {
                Some(gone) if !gone.is_empty() => {
                    set.retain(|n| !gone.contains(n) && !refused.contains(n))
                }
                _ => set.clear(),
            });
        }
        for node in named.unwrap_or_default() {
            if !self.refused.contains_key(&node) {
                self.why.remove(&node);
            }
        }
    }

    fn apply(&mut self, a: &NemesisAction) {
        let t = a.time_ns;
        let named = describe::nodes(&a.value);
        if matches!(a.f.as_str(), "restart" | "stable" | "no-majority") {
            self.note_refusals(t, &a.value);
        }
        match (a.f.as_str(), classify(&a.f)) {
            ("heal-all", _) => {
                self.restart(t, None);
                self.change(FaultKind::Pause, t, Vec::clear);
                self.end_partition(t);
            }
            (f, Some((kind, true))) if instant(f) => self.done.push(FaultSpan {
                kind,
                start_ns: t,
                end_ns: t,
                target: instant_words(f, &a.value),
                ended: true,
            }),
            (_, Some((FaultKind::Partition, true))) => {
                self.end_partition(t);
                self.partition = Some((t, describe::describe(&a.f, &a.value)));
            }
            (_, Some((FaultKind::Partition, false))) => self.end_partition(t),
            (_, Some((kind, true))) => {
                // A start naming no replicas (an older format) is one unnamed victim.
                let add = named.unwrap_or_else(|| vec![describe::describe(&a.f, &a.value)]);
                if let Some(why) = down_why(&a.f, &a.value) {
                    for n in &add {
                        self.why.insert(n.clone(), why.clone());
                    }
                }
                self.change(kind, t, |set| set.extend(add));
            }
            (_, Some((kind, false))) if kind.takes_down() => self.restart(t, named),
            (_, Some((kind, false))) => self.change(kind, t, |set| match named {
                Some(gone) if !gone.is_empty() => set.retain(|n| !gone.contains(n)),
                _ => set.clear(),
            }),
            _ => {}
        }
    }

    fn finish(mut self, end_ns: u64) -> Vec<FaultSpan> {
        let kinds: Vec<FaultKind> = self.held.keys().copied().collect();
        for kind in kinds {
            let before = self.done.len();
            self.close_set(kind, end_ns, 1);
            for s in &mut self.done[before..] {
                s.ended = false;
            }
        }
        if let Some((start, target)) = self.partition.take() {
            self.done.push(FaultSpan {
                kind: FaultKind::Partition,
                start_ns: start,
                end_ns: end_ns.max(start),
                target,
                ended: false,
            });
        }
        for (node, (since, why)) in std::mem::take(&mut self.refused) {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            };
            self.done.push(FaultSpan {
                kind: FaultKind::Disk,
                start_ns: since,
                end_ns: end_ns.max(since),
                target: format!("{node} refused to restart (a damaged disk detected){why}"),
                ended: false,
            });
        }
        self.done.sort_by_key(|s| s.start_ns);
        self.done
    }
}

/// Why a replica went down, when the action says more than its name: the failpoint a
/// `crash` fired at, the file a `bit-flip` damaged.
fn down_why(f: &str, raw: &str) -> Option<String> {
    let value: Value = serde_json::from_str(raw).ok()?;
    if let Some(fp) = value.get("failpoint").and_then(Value::as_str) {
        return Some(format!("failpoint {fp}"));
    }
    if f == "bit-flip" {
        let file = value
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let file = file.rsplit('/').next().unwrap_or(file);
        return Some(match value.get("offset").and_then(Value::as_u64) {
            Some(at) => format!("a bit flipped in {file} at byte {at}"),
            None => "a bit flip found nothing to flip".to_string(),
        });
    }
    None
}

/// A clock jump or a failed fsync in words: `n2's clock jumps 500 ms`.
fn instant_words(f: &str, raw: &str) -> String {
    let nodes = describe::nodes(raw).unwrap_or_default().join(", ");
    let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    match (f, value.get("jump_ms").and_then(Value::as_i64)) {
        ("clock-jump", Some(ms)) => format!("{nodes}: clock jumps {ms} ms"),
        ("fsync-fail", _) => format!("{nodes}: an fsync fails"),
        _ => describe::describe(f, raw),
    }
}

/// `n2` before `n10`.
fn natural(name: &str) -> (String, u64) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    let prefix = &name[..name.len() - digits.len()];
    (prefix.to_string(), digits.parse().unwrap_or(0))
}

/// Pairs starts with ends; see the module docs.
pub fn spans(actions: &[NemesisAction], end_ns: u64) -> Vec<FaultSpan> {
    let mut open = Open::default();
    for a in actions {
        open.apply(a);
    }
    open.finish(end_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(t: u64, f: &str, v: &str) -> NemesisAction {
        NemesisAction {
            index: t,
            time_ns: t,
            f: f.into(),
            value: v.into(),
        }
    }

    #[test]
    fn changes_a_moment_apart_make_one_span() {
        let a = [
            act(1_000_000_000, "kill", r#"{"nodes":["n4","n5"]}"#),
            act(3_000_000_000, "kill", r#"{"nodes":["n1"],"target":"set"}"#),
            act(3_000_080_000, "restart", r#"{"nodes":["n4"]}"#),
            act(4_000_000_000, "heal-all", r#"{"actions":[]}"#),
        ];
        let got: Vec<(u64, u64, String)> = spans(&a, 5_000_000_000)
            .into_iter()
            .map(|s| (s.start_ns, s.end_ns, s.target))
            .collect();
        assert_eq!(
            got,
            vec![
                (1_000_000_000, 3_000_000_000, "n4, n5".to_string()),
                (3_000_000_000, 4_000_000_000, "n1, n5".to_string()),
            ]
        );
    }

    #[test]
    fn tracks_replicas_down_and_heals_all() {
        const S: u64 = 1_000_000_000;
        let a = [
            act(S, "kill", r#"{"nodes":["n1"],"target":"leader"}"#),
            act(2 * S, "kill", r#"{"nodes":["n2"]}"#),
            act(3 * S, "restart", r#"{"nodes":["n1"]}"#),
            act(
                4 * S,
                "partition",
                r#"{"shape":"halves","minority":["n1"],"cuts":[]}"#,
            ),
            act(5 * S, "heal", r#"{"cuts":[]}"#),
            act(6 * S, "pause", r#"{"nodes":["n3"]}"#),
            act(7 * S, "heal-all", r#"{"actions":[]}"#),
            act(8 * S, "kill", r#"{"nodes":["n4"]}"#),
        ];
        let s = spans(&a, 10 * S);
        let got: Vec<(FaultKind, u64, u64, &str, bool)> = s
            .iter()
            .map(|s| {
                (
                    s.kind,
                    s.start_ns / S,
                    s.end_ns / S,
                    s.target.as_str(),
                    s.ended,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (FaultKind::Kill, 1, 2, "n1", true),
                (FaultKind::Kill, 2, 3, "n1, n2", true),
                (FaultKind::Kill, 3, 7, "n2", true),
                (
                    FaultKind::Partition,
                    4,
                    5,
                    "n1 | the rest (0 one-way links cut)",
                    true
                ),
                (FaultKind::Pause, 6, 7, "n3", true),
                (FaultKind::Kill, 8, 10, "n4", false),
            ]
        );
    }

    #[test]
    fn simulated_faults_have_their_own_kinds_and_a_refused_restart_stays_down() {
        const S: u64 = 1_000_000_000;
        let a = [
            act(S, "power-cut", r#"{"nodes":["n1"],"target":"leader"}"#),
            act(2 * S, "restart", r#"{"nodes":["n1"]}"#),
            act(3 * S, "clock-jump", r#"{"nodes":["n2"],"jump_ms":500}"#),
            act(
                4 * S,
                "bit-flip",
                r#"{"nodes":["n3"],"file":"wal","offset":7}"#,
            ),
            act(
                5 * S,
                "restart",
                r#"{"nodes":["n3"],"refused":["n3: bad checksum"]}"#,
            ),
            act(
                6 * S,
                "crash",
                r#"{"nodes":["n4"],"failpoint":"after-prepare"}"#,
            ),
            act(7 * S, "restart", r#"{"nodes":["n4"]}"#),
        ];
        let got: Vec<(FaultKind, u64, u64, String, bool)> = spans(&a, 10 * S)
            .into_iter()
            .map(|s| (s.kind, s.start_ns / S, s.end_ns / S, s.target, s.ended))
            .collect();
        assert_eq!(
            got,
            vec![
                (FaultKind::Power, 1, 2, "n1".into(), true),
                (
                    FaultKind::Clock,
                    3,
                    3,
                    "n2: clock jumps 500 ms".into(),
                    true
                ),
                (
                    FaultKind::Disk,
                    4,
                    5,
                    "n3 (a bit flipped in wal at byte 7)".into(),
                    true
                ),
                (
                    FaultKind::Disk,
                    5,
                    10,
                    "n3 refused to restart (a damaged disk detected): bad checksum".into(),
                    false
                ),
                (
                    FaultKind::Kill,
                    6,
                    7,
                    "n4 (failpoint after-prepare)".into(),
                    true
                ),
            ]
        );
    }
}
