//! The properties, one module each, and what they share: the verdict type, the
//! anomaly record and a per-check accumulator that counts every anomaly but keeps
//! only the first few (a broken run can have millions; formatting them all would cost
//! more than checking).
//!
//! The checks run in two phases. While the history streams by, the collector in
//! `crate::ops` feeds well-formedness, conservation, real-time order and liveness,
//! which need only the current event and a little state. Once the history and
//! final.json are both loaded, the remaining parts (agreement, replay, exactly-once,
//! client order) run as sorts and merges over compact arrays, all O(n log n). The
//! black-box `linearizable` search runs only when asked for (or when some answer has
//! no position at all), bounded by a budget.

pub mod agreement;
pub mod atomicity;
pub mod bank_conservation;
pub mod conservation;
pub mod exactly_once;
pub mod kind;
pub mod linearizable;
pub mod liveness;
pub mod progress;
pub mod replay;
pub mod serializability;
pub mod shard_agreement;
pub mod shard_exactly_once;
pub mod shard_liveness;
pub mod shard_replay;
pub mod shard_well_formed;
pub mod total_order;
pub mod well_formed;

pub use kind::{AnomalyKind, OpFunction, Severity};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// How many anomalies each check keeps in results.json (all are counted).
pub const MAX_STORED_ANOMALIES: usize = 100;

/// The names of the checks, in the order they are shown.
pub const CHECK_NAMES: [&str; 13] = [
    "well-formed",
    "conservation",
    "agreement",
    "total-order",
    "replay",
    "exactly-once",
    "liveness",
    "progress",
    "linearizable",
    "atomicity",
    "bank-conservation",
    "shard-agreement",
    "strict-serializability",
];

/// A verdict: written as `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

impl Validity {
    /// Invalid if any is invalid, else unknown if any is unknown, else valid.
    pub fn combine(all: impl IntoIterator<Item = Validity>) -> Validity {
        let mut out = Validity::Valid;
        for v in all {
            match v {
                Validity::Invalid => return Validity::Invalid,
                Validity::Unknown => out = Validity::Unknown,
                Validity::Valid => {}
            }
        }
        out
    }

    /// Jepsen's exit codes: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "unknown",
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Validity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"unknown\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Validity, E> {
                Ok(if v {
                    Validity::Valid
                } else {
                    Validity::Invalid
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Validity, E> {
                match v {
                    "unknown" => Ok(Validity::Unknown),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One thing that went wrong, in words, with the history lines it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What kind of anomaly it is; written as its stable tag, e.g. `lost-ack`.
    pub kind: AnomalyKind,
    /// One or two sentences a person can act on.
    pub message: String,
    /// The function of the client operation it is about, when it is about one: it
    /// decides how bad some kinds are (a read executed twice changed no balance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<OpFunction>,
    /// History `index` values involved (may be empty for final-state problems).
    pub indices: Vec<u64>,
    /// Log positions involved, when the anomaly is about slots of the log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_indices: Vec<u64>,
}

impl Anomaly {
    pub fn new(kind: AnomalyKind, message: String, indices: Vec<u64>) -> Anomaly {
        Anomaly {
            kind,
            message,
            f: None,
            indices,
            exec_indices: Vec::new(),
        }
    }

    pub fn at_slots(mut self, exec_indices: Vec<u64>) -> Anomaly {
        self.exec_indices = exec_indices;
        self
    }

    /// The anomaly is about an operation of function `f` (`None`: one the checker does
    /// not know).
    pub fn about(mut self, f: Option<OpFunction>) -> Anomaly {
        self.f = f;
        self
    }

    /// How bad it is: by its kind and, where that matters, its operation's function.
    pub fn severity(&self) -> Severity {
        self.kind.severity(self.f)
    }
}

/// The section of results.json for one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub valid: Validity,
    /// Every anomaly found, including those not stored.
    pub anomaly_count: u64,
    /// The first [`MAX_STORED_ANOMALIES`] anomalies.
    pub anomalies: Vec<Anomaly>,
    /// What was examined, e.g. `read_all` observations or log slots replayed.
    pub counts: BTreeMap<String, u64>,
    /// Why (part of) the check could not be decided; non-empty means `unknown`
    /// unless an anomaly makes it invalid.
    pub unknown: Vec<String>,
    /// Other remarks that do not affect the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the check did not apply to this run (e.g. liveness without a `stable` event),
    /// when it did not. `valid` is then `true`, so the run's verdict is unchanged, but
    /// nothing was judged: reports and the terminal show it as not applicable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

impl CheckResult {
    /// The check's state in one word: `valid`, `INVALID`, `unknown`, or `n/a` when it
    /// did not apply.
    pub fn state_word(&self) -> &'static str {
        match (&self.not_applicable, self.valid) {
            (Some(_), Validity::Valid) => "n/a",
            (_, v) => v.as_str(),
        }
    }
}

/// Accumulates one check's findings while it runs.
#[derive(Debug, Default)]
pub(crate) struct Check {
    stored: Vec<Anomaly>,
    count: u64,
    /// Anomalies that make the check unknown rather than invalid (see [`Check::doubt`]).
    doubts: u64,
    counts: BTreeMap<String, u64>,
    undecided: BTreeMap<&'static str, u64>,
    unknown: Vec<String>,
    notes: Vec<String>,
    not_applicable: Option<String>,
}

impl Check {
    /// Records an anomaly; `make` runs only while there is room to store it.
    pub fn anomaly(&mut self, make: impl FnOnce() -> Anomaly) {
        self.count += 1;
        if self.stored.len() < MAX_STORED_ANOMALIES {
            self.stored.push(make());
        }
    }

    /// Records an anomaly that leaves the history's meaning uncertain without proving
    /// a violation (e.g. a completion nobody invoked): listed like the others, but it
    /// makes the check `unknown`, not invalid.
    pub fn doubt(&mut self, make: impl FnOnce() -> Anomaly) {
        self.doubts += 1;
        if self.stored.len() < MAX_STORED_ANOMALIES {
            self.stored.push(make());
        }
    }

    pub fn count(&mut self, what: &str, n: u64) {
        *self.counts.entry(what.to_string()).or_default() += n;
    }

    /// Counts an item that could not be decided; `what` completes "N ...".
    pub fn undecided(&mut self, what: &'static str) {
        *self.undecided.entry(what).or_default() += 1;
    }

    /// Nothing found and nothing undecided so far (the streamed check stops at the
    /// first finding and hands the run back).
    pub fn clean(&self) -> bool {
        self.count == 0 && self.doubts == 0 && self.undecided.is_empty() && self.unknown.is_empty()
    }

    /// The whole check cannot be decided, for `reason`.
    pub fn unknown(&mut self, reason: impl Into<String>) {
        self.unknown.push(reason.into());
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The check does not apply to this run, for `why`: valid, but judged nothing.
    pub fn not_applicable(&mut self, why: &str) {
        self.note(format!("not applicable: {why}"));
        self.not_applicable = Some(why.to_string());
    }

    pub fn finish(mut self) -> CheckResult {
        for (what, n) in &self.undecided {
            self.unknown.push(format!("{n} {what}"));
        }
        if self.doubts > 0 {
            self.unknown.push(format!(
                "{} the history malformed (listed as anomalies), so what happened cannot be decided",
                match self.doubts {
                    1 => "1 event makes".to_string(),
                    n => format!("{n} events make"),
                }
            ));
        }
        let valid = if self.count > 0 {
            Validity::Invalid
        } else if self.unknown.is_empty() {
            Validity::Valid
        } else {
            Validity::Unknown
        };
        CheckResult {
            valid,
            anomaly_count: self.count + self.doubts,
            anomalies: self.stored,
            counts: self.counts,
            unknown: self.unknown,
            notes: self.notes,
            not_applicable: self.not_applicable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_serializes_like_jepsen() {
        let s = serde_json::to_string(&[Validity::Valid, Validity::Invalid, Validity::Unknown])
            .unwrap();
        assert_eq!(s, r#"[true,false,"unknown"]"#);
        let back: Vec<Validity> = serde_json::from_str(&s).unwrap();
        assert_eq!(back[2], Validity::Unknown);
    }

    #[test]
    fn combine_prefers_invalid_then_unknown() {
        use Validity::*;
        assert_eq!(Validity::combine([Valid, Unknown, Invalid]), Invalid);
        assert_eq!(Validity::combine([Valid, Unknown]), Unknown);
        assert_eq!(Validity::combine([Valid, Valid]), Valid);
    }

    #[test]
    fn check_counts_all_but_stores_few() {
        let mut c = Check::default();
        for i in 0..(MAX_STORED_ANOMALIES as u64 + 5) {
            c.anomaly(|| Anomaly::new(AnomalyKind::Stall, "y".into(), vec![i]));
        }
        let r = c.finish();
        assert_eq!(r.anomaly_count, MAX_STORED_ANOMALIES as u64 + 5);
        assert_eq!(r.anomalies.len(), MAX_STORED_ANOMALIES);
        assert_eq!(r.valid, Validity::Invalid);
    }

    #[test]
    fn a_check_that_did_not_apply_says_so_and_stays_valid() {
        let mut c = Check::default();
        c.not_applicable("no stable event");
        let r = c.finish();
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.state_word(), "n/a");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["valid"], true);
        assert_eq!(json["not_applicable"], "no stable event");
        let applied = Check::default().finish();
        assert_eq!(applied.state_word(), "valid");
        assert!(serde_json::to_value(&applied)
            .unwrap()
            .get("not_applicable")
            .is_none());
    }
}
