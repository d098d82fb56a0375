//! Turns nemesis actions into the intervals when a fault was active.
//!
//! A fault starts with `kill`, `pause` or `partition` (and a few synonyms) and ends
//! with the matching `restart`, `resume` or `heal`. An end whose value names the same
//! targets as an open start closes that one; an end with other or no targets closes
//! every open fault of its kind (`heal` heals all partitions). A fault still open at
//! the end of the history lasts until then.

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
        "kill" | "crash" | "stop" => (FaultKind::Kill, true),
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
    /// The start action's value.
    pub target: String,
    /// False when the history ended before the fault did.
    pub ended: bool,
}

/// Pairs starts with ends; see the module docs.
pub fn spans(actions: &[NemesisAction], end_ns: u64) -> Vec<FaultSpan> {
    let mut open: Vec<FaultSpan> = Vec::new();
    let mut done = Vec::new();
    for a in actions {
        match classify(&a.f) {
            Some((kind, true)) => open.push(FaultSpan {
                kind,
                start_ns: a.time_ns,
                end_ns,
                target: a.value.clone(),
                ended: false,
            }),
            Some((kind, false)) => {
                let same = open
                    .iter()
                    .position(|s| s.kind == kind && s.target == a.value);
                let closing: Vec<usize> = match same {
                    Some(i) => vec![i],
                    None => (0..open.len()).filter(|&i| open[i].kind == kind).collect(),
                };
                for i in closing.into_iter().rev() {
                    let mut s = open.remove(i);
                    s.end_ns = a.time_ns;
                    s.ended = true;
                    done.push(s);
                }
            }
            None => {}
        }
    }
    done.extend(open);
    done.sort_by_key(|s| s.start_ns);
    done
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
    fn pairs_by_target_and_heals_all() {
        let a = [
            act(1, "kill", "[\"n1\"]"),
            act(2, "kill", "[\"n2\"]"),
            act(3, "restart", "[\"n2\"]"),
            act(4, "partition", "[[\"n1\"],[\"n2\"]]"),
            act(5, "heal", "null"),
        ];
        let s = spans(&a, 10);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].start_ns, s[0].end_ns, s[0].ended), (1, 10, false));
        assert_eq!((s[1].start_ns, s[1].end_ns), (2, 3));
        assert_eq!((s[2].kind, s[2].end_ns), (FaultKind::Partition, 5));
    }
}
