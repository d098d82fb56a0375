//! Turns nemesis actions into the intervals when a fault was active.
//!
//! Kills and pauses are tracked per replica: `kill`/`pause` (and synonyms) add the
//! replicas their value names, `restart`/`resume` remove the ones theirs names (all
//! when it names none). A span is a stretch during which the same replicas were down
//! (or paused), so a scenario that kills n4 in set 3 and n5 in set 4 shows two spans,
//! "n4" then "n4, n5", not one band from the first kill to the end. A partition lasts
//! until `heal` or the next partition; `heal-all` ends everything. A fault still in
//! force at the end of the history lasts until then.
use super::describe;
use super::scan::NemesisAction;

/// The kinds of fault the charts shade, each with its own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    Other,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Other => "other fault",
        }
    }

    /// RGB used in charts and the HTML legend.
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            FaultKind::Kill => (214, 39, 40),
            FaultKind::Pause => (148, 103, 189),
            FaultKind::Partition => (31, 119, 180),
            FaultKind::Other => (127, 127, 127),
        }
    }
}

/// Whether an action starts or ends a fault, and of which kind.
pub fn classify(f: &str) -> Option<(FaultKind, bool)> {
    let k = match f {
        "kill" | "crash" | "stop" | "power-cut" | "bit-flip" | "cut-short" => {
            (FaultKind::Kill, true)
        }
        "restart" | "start" | "recover" => (FaultKind::Kill, false),
        "pause" => (FaultKind::Pause, true),
        "resume" => (FaultKind::Pause, false),
        "partition" | "isolate" => (FaultKind::Partition, true),
        "heal" => (FaultKind::Partition, false),
        _ => return None,
    };
    Some(k)
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

/// The faults in force while reading the actions in order.
#[derive(Default)]
struct Open {
    /// Replicas down, and since when the current set has been down.
    killed: Vec<String>,
    killed_since: u64,
    paused: Vec<String>,
    paused_since: u64,
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
        let (set, since) = match kind {
            FaultKind::Kill => (&self.killed, self.killed_since),
            _ => (&self.paused, self.paused_since),
        };
        if set.is_empty() {
            return true;
        }
        if at.saturating_sub(since) < min_ns.max(1) {
            return false;
        }
        {
            self.done.push(FaultSpan {
                kind,
                start_ns: since,
                end_ns: at,
                target: set.join(", "),
                ended: true,
            });
        }
        true
    }

    /// Replaces the set of replicas down (or paused) at `at`.
    fn change(&mut self, kind: FaultKind, at: u64, edit: impl FnOnce(&mut Vec<String>)) {
        let closed = self.close_set(kind, at, SIMULTANEOUS_NS);
        let (set, since) = match kind {
            FaultKind::Kill => (&mut self.killed, &mut self.killed_since),
            _ => (&mut self.paused, &mut self.paused_since),
        };
        edit(set);
        set.sort_by_key(|a| natural(a));
        set.dedup();
        if closed {
            *since = at;
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

    fn apply(&mut self, a: &NemesisAction) {
        let t = a.time_ns;
        let named = describe::nodes(&a.value);
        match (a.f.as_str(), classify(&a.f)) {
            ("heal-all", _) => {
                self.change(FaultKind::Kill, t, Vec::clear);
                self.change(FaultKind::Pause, t, Vec::clear);
                self.end_partition(t);
            }
            (_, Some((FaultKind::Partition, true))) => {
                self.end_partition(t);
                self.partition = Some((t, describe::describe(&a.f, &a.value)));
            }
            (_, Some((FaultKind::Partition, false))) => self.end_partition(t),
            (_, Some((kind, true))) => {
                // A start naming no replicas (an older format) is one unnamed victim.
                let add = named.unwrap_or_else(|| vec![describe::describe(&a.f, &a.value)]);
                self.change(kind, t, |set| set.extend(add));
            }
            (_, Some((kind, false))) => self.change(kind, t, |set| match named {
                Some(gone) if !gone.is_empty() => set.retain(|n| !gone.contains(n)),
                _ => set.clear(),
            }),
            _ => {}
        }
    }

    fn finish(mut self, end_ns: u64) -> Vec<FaultSpan> {
        for kind in [FaultKind::Kill, FaultKind::Pause] {
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
        self.done.sort_by_key(|s| s.start_ns);
        self.done
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
}
