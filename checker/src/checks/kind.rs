//! What kinds of anomaly the checks find, as one type: per kind its stable tag (the
//! `kind` of results.json), how bad it is for a user of the bank, its words for the
//! report, and which other anomalies it implies.
//!
//! Elle's `consistency_model.clj` is the model: one table the checks, the report and the
//! docs all read, so the ranking of a report never depends on how a message is worded.
//! The table is below ([`kinds!`]); docs/results.md lists every kind with its tier and
//! `checker/tests/docs.rs` holds the two to each other.
//!
//! A results.json written by a newer or foreign checker may hold a tag this one does not
//! know: it loads as [`AnomalyKind::Other`], ranked "order broken", named by its tag, and
//! is written back with the same tag, so a saved run never fails to load for it.

use crate::model::Cmd;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How bad an anomaly is for a user of the bank, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Money or an answer was wrong.
    WrongMoneyOrAnswer,
    /// The order of the log is broken (balances may still be right).
    OrderBroken,
    /// Harmless to balances: a read repeated, a late or doubled answer, a stall.
    Harmless,
}

impl Severity {
    /// Most severe first.
    pub const ALL: [Severity; 3] = [
        Severity::WrongMoneyOrAnswer,
        Severity::OrderBroken,
        Severity::Harmless,
    ];

    /// 0 for the most severe tier; the report's CSS classes (`sev0`) and docs use it.
    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn words(self) -> &'static str {
        match self {
            Severity::WrongMoneyOrAnswer => "wrong money or answer",
            Severity::OrderBroken => "order broken",
            Severity::Harmless => "harmless to balances",
        }
    }
}

/// The function of the client operation an anomaly is about, when it is about one
/// (results.json's `f`; the history's `f` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpFunction {
    Transfer,
    Read,
    ReadAll,
}

impl OpFunction {
    /// `transfer`, `read`, `read_all`: as in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            OpFunction::Transfer => "transfer",
            OpFunction::Read => "read",
            OpFunction::ReadAll => "read_all",
        }
    }

    /// A command's function; `None` for one the checker does not know.
    pub(crate) fn of(cmd: Cmd) -> Option<OpFunction> {
        match cmd {
            Cmd::Transfer { .. } => Some(OpFunction::Transfer),
            Cmd::Read { .. } => Some(OpFunction::Read),
            Cmd::ReadAll => Some(OpFunction::ReadAll),
            Cmd::Other => None,
        }
    }

    /// From a history `f`; `None` for a function the checker does not know.
    pub fn parse(f: &str) -> Option<OpFunction> {
        match f {
            "transfer" => Some(OpFunction::Transfer),
            "read" => Some(OpFunction::Read),
            "read_all" => Some(OpFunction::ReadAll),
            _ => None,
        }
    }
}

use Severity::{Harmless as H, OrderBroken as O, WrongMoneyOrAnswer as W};

/// Declares [`AnomalyKind`] from one row per kind: variant, tag, tier, words for the
/// report, and the kinds it implies: those that every anomaly of this kind also is (a
/// client's own operations out of order are out of real-time order), so none is more
/// severe than the kind that implies it.
macro_rules! kinds {
    ($($(#[$doc:meta])* $v:ident = $tag:literal, $tier:ident, $words:literal, [$($implied:ident),*];)*) => {
        /// One kind of anomaly (see the module docs). Written in results.json as its tag.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AnomalyKind {
            $($(#[$doc])* $v,)*
            /// A tag this checker does not know (from a newer or foreign results.json).
            Other(String),
        }

        impl AnomalyKind {
            /// Every kind this checker reports, in the table's order.
            pub const ALL: &'static [AnomalyKind] = &[$(AnomalyKind::$v),*];

            /// The stable tag of results.json, e.g. `lost-ack`.
            pub fn tag(&self) -> &str {
                match self {
                    $(AnomalyKind::$v => $tag,)*
                    AnomalyKind::Other(tag) => tag,
                }
            }

            /// The kind a tag names; an unknown tag is [`AnomalyKind::Other`].
            pub fn from_tag(tag: &str) -> AnomalyKind {
                match tag {
                    $($tag => AnomalyKind::$v,)*
                    other => AnomalyKind::Other(other.to_string()),
                }
            }

            fn tier(&self) -> Severity {
                match self {
                    $(AnomalyKind::$v => $tier,)*
                    AnomalyKind::Other(_) => O,
                }
            }

            /// The kind in words for the report: `told failed but applied`.
            pub fn words(&self) -> String {
                match self {
                    $(AnomalyKind::$v => $words.to_string(),)*
                    AnomalyKind::Other(tag) => tag.replace('-', " "),
                }
            }

            /// The kinds an anomaly of this kind also shows (directly; see
            /// [`AnomalyKind::implied`] for all).
            pub fn implies(&self) -> &'static [AnomalyKind] {
                match self {
                    $(AnomalyKind::$v => &[$(AnomalyKind::$implied),*],)*
                    AnomalyKind::Other(_) => &[],
                }
            }
        }
    };
}

kinds! {
    // conservation, bank-conservation
    /// A `read_all` (or the bank's final state) does not sum to the bank's total.
    SumDrift = "sum-drift", W, "sum drift", [];
    /// A balance below zero was observed.
    NegativeBalance = "negative-balance", W, "negative balance", [];
    /// A `read_all` that did not show every account and does not sum to the total.
    PartialRead = "partial-read", O, "partial read", [];
    /// A sharded `read_all` whose shards' snapshots do not add up to the total.
    TornSnapshot = "torn-snapshot", W, "torn snapshot", [];
    // agreement
    /// Two replicas hold different entries at one exec index.
    Divergence = "divergence", W, "divergence", [];
    /// A replica's final balances differ from the replay of the agreed log.
    FinalBalances = "final-balances", W, "final balances", [];
    /// A replica's executed log skips or repeats an exec index.
    LogNotContiguous = "log-not-contiguous", O, "log not contiguous", [];
    // total-order
    /// An operation is in the log before one that completed before it was invoked.
    RealTimeOrder = "real-time-order", O, "real time order", [];
    /// A client's later operation is in the log before its earlier one.
    ClientOrder = "client-order", O, "client order", [RealTimeOrder];
    /// Two operations were told the same exec index.
    DuplicateExecIndex = "duplicate-exec-index", O, "duplicate exec index", [];
    /// Attempts of one operation were told different exec indices.
    ExecIndexConflict = "exec-index-conflict", O, "exec index conflict", [];
    // replay
    /// An answer differs from what replaying the agreed log gives at its position.
    WrongResult = "wrong-result", W, "wrong result", [];
    /// The log records a transfer as failed where the replay leaves enough money.
    LogResult = "log-result", W, "log result", [];
    /// A transfer with an amount the bank must refuse was applied.
    BadAmount = "bad-amount", W, "bad amount", [];
    /// An answer names a position beyond the end of the agreed log.
    BeyondLog = "beyond-log", O, "beyond log", [];
    /// Where positions are shared, a transfer told the position that holds the initial balances.
    WrongSlot = "wrong-slot", O, "wrong slot", [];
    /// An observation told a position before `base_revision` (etcd).
    StaleRead = "stale-read", O, "stale read", [];
    /// An `ok` with no position shows a balance no state of the bank gives.
    ImpossibleResult = "impossible-result", W, "impossible result", [];
    /// An answer told a position on a shard where the log holds another request.
    PositionMismatch = "position-mismatch", O, "position mismatch", [];
    // exactly-once
    /// A client told its transfer failed, but the log applies it.
    FailedButApplied = "failed-but-applied", W, "told failed but applied", [];
    /// An acknowledged transfer that the log records as a failed no-op.
    AckNotApplied = "ack-not-applied", W, "acknowledged but not applied", [];
    /// An acknowledged operation is in no replica's log.
    LostAck = "lost-ack", W, "acknowledged but lost", [];
    /// An operation told it failed as a no-op is in no replica's log.
    LostFail = "lost-fail", O, "told failed, then lost", [];
    /// A request is in the log more than once (harmless when it is a read).
    ExecutedTwice = "executed-twice", W, "executed twice", [];
    /// The log holds a command no client invoked.
    Phantom = "phantom", W, "phantom", [];
    /// The log holds another command than the client's at the position it was told.
    CommandMismatch = "command-mismatch", W, "command mismatch", [];
    /// Where positions are shared, a read or failed transfer the log holds as a write.
    ObserverInLog = "observer-in-log", O, "observer in log", [];
    // liveness, progress
    /// An operation got no answer within `liveness_bound_ms` after the cluster was stable.
    Stall = "stall", H, "stall", [];
    /// No `ok` for `progress_bound_ms` while the cluster could make progress.
    NoProgress = "no-progress", H, "no progress", [];
    // linearizable
    /// No order of the operations explains every answer.
    NotLinearizable = "not-linearizable", W, "not linearizable", [];
    // well-formed
    /// A completion nobody invoked.
    CompletionWithoutInvoke = "completion-without-invoke", H, "completion without invoke", [];
    /// A second completion of one attempt.
    DuplicateCompletion = "duplicate-completion", H, "duplicate completion", [];
    /// Two operations in flight on one client process.
    OverlappingOperations = "overlapping-operations", H, "overlapping operations", [];
    /// A retry (same request id) of another command.
    RetryChangedCommand = "retry-changed-command", H, "retry changed command", [];
    /// A completion about another command than its invocation.
    CompletionChangedCommand = "completion-changed-command", H, "completion changed command", [];
    /// A sharded `ok` with no position on any shard.
    OkWithoutPosition = "ok-without-position", H, "ok without position", [];
    /// A position on a shard run.toml does not list.
    UnknownShardPosition = "unknown-shard-position", H, "unknown shard position", [];
    /// A sharded `read_all` answered without a position on some shard.
    MissingPosition = "missing-position", H, "missing position", [];
    /// A transaction coordinated by another shard than its source account's.
    BadCoordinator = "bad-coordinator", O, "bad coordinator", [];
    // atomicity
    /// A cross-shard transfer applied on one shard and not the other.
    PartialCommit = "partial-commit", W, "partial commit", [];
    /// A transaction's entry applied money although the transaction aborted.
    AppliedAtAbort = "applied-at-abort", W, "applied at abort", [];
    /// A prepare entry applied money before the decision.
    AppliedAtPrepare = "applied-at-prepare", W, "applied at prepare", [];
    /// A transaction applied another amount than the transfer's.
    WrongAmount = "wrong-amount", W, "wrong amount", [];
    /// A transaction committed although a participant voted no.
    CommitDespiteNo = "commit-despite-no", O, "commit despite no", [];
    /// A shard committed a transaction it had not prepared with a yes vote.
    CommitWithoutPrepare = "commit-without-prepare", O, "commit without prepare", [];
    /// Shards decided a transaction differently.
    SplitDecision = "split-decision", W, "split decision", [];
    /// A transaction's entry in a shard's log names no phase.
    NoPhase = "no-phase", O, "no phase", [];
    /// The client's answer says the opposite of the transaction's decision.
    AnswerContradictsDecision = "answer-contradicts-decision", O, "answer contradicts decision", [];
    // shard-agreement
    /// A replica says it is in a shard that run.toml does not have.
    UnknownShard = "unknown-shard", O, "unknown shard", [];
    /// A replica says it is in a shard that run.toml does not list it in.
    WrongShard = "wrong-shard", O, "wrong shard", [];
    // exactly-once (sharded)
    /// A request executed more than once on a shard (harmless when it is a read).
    DuplicateExecution = "duplicate-execution", W, "duplicate execution", [];
    /// A client told its transfer failed, but a shard applied it.
    FailedApplied = "failed-applied", W, "failed applied", [];
    /// One request became two transactions.
    TwoTransactions = "two-transactions", O, "two transactions", [];
    // strict-serializability
    /// The dependency graph over shards and real time has a cycle.
    Cycle = "cycle", O, "cycle", [];
    /// Two operations were told the same position on a shard.
    DuplicatePosition = "duplicate-position", O, "duplicate position", [];
}

impl AnomalyKind {
    /// How bad an anomaly of this kind is; `f` is the operation it is about, when that
    /// matters: a read or `read_all` executed twice changed no balance.
    pub fn severity(&self, f: Option<OpFunction>) -> Severity {
        match (self, f) {
            (
                AnomalyKind::ExecutedTwice | AnomalyKind::DuplicateExecution,
                Some(OpFunction::Read | OpFunction::ReadAll),
            ) => Severity::Harmless,
            _ => self.tier(),
        }
    }

    /// Every kind this one implies, directly or through others, without repeats.
    pub fn implied(&self) -> Vec<AnomalyKind> {
        let mut out: Vec<AnomalyKind> = Vec::new();
        let mut todo: Vec<&AnomalyKind> = self.implies().iter().collect();
        while let Some(k) = todo.pop() {
            if !out.contains(k) {
                out.push(k.clone());
                todo.extend(k.implies());
            }
        }
        out
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl Serialize for AnomalyKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.tag())
    }
}

impl<'de> Deserialize<'de> for AnomalyKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(AnomalyKind::from_tag(&tag))
    }
}

impl PartialEq<str> for AnomalyKind {
    fn eq(&self, tag: &str) -> bool {
        self.tag() == tag
    }
}

impl PartialEq<&str> for AnomalyKind {
    fn eq(&self, tag: &&str) -> bool {
        self.tag() == *tag
    }
}

impl PartialEq<String> for AnomalyKind {
    fn eq(&self, tag: &String) -> bool {
        self.tag() == tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_reads_back_as_its_kind_and_tags_are_unique() {
        let mut tags = std::collections::BTreeSet::new();
        for k in AnomalyKind::ALL {
            assert!(tags.insert(k.tag()), "{} twice", k.tag());
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.tag()));
            let back: AnomalyKind = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, k);
        }
    }

    #[test]
    fn an_unknown_tag_loads_and_is_written_back_unchanged() {
        let k: AnomalyKind = serde_json::from_str("\"torn-write\"").unwrap();
        assert_eq!(k, AnomalyKind::Other("torn-write".into()));
        assert_eq!(k.severity(None), Severity::OrderBroken);
        assert_eq!(k.words(), "torn write");
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"torn-write\"");
    }

    #[test]
    fn a_read_executed_twice_is_harmless_and_a_transfer_is_not() {
        for k in [AnomalyKind::ExecutedTwice, AnomalyKind::DuplicateExecution] {
            assert_eq!(k.severity(Some(OpFunction::Read)), Severity::Harmless);
            assert_eq!(k.severity(Some(OpFunction::ReadAll)), Severity::Harmless);
            assert_eq!(
                k.severity(Some(OpFunction::Transfer)),
                Severity::WrongMoneyOrAnswer
            );
            assert_eq!(k.severity(None), Severity::WrongMoneyOrAnswer);
        }
    }

    #[test]
    fn implications_end_and_never_imply_a_more_severe_kind_than_their_own() {
        for k in AnomalyKind::ALL {
            let all = k.implied();
            assert!(!all.contains(k), "{k} implies itself");
            for i in &all {
                // An anomaly of kind k is also one of kind i: k is at least as bad.
                assert!(k.severity(None) <= i.severity(None), "{k} implies {i}");
            }
        }
        assert_eq!(
            AnomalyKind::ClientOrder.implied(),
            [AnomalyKind::RealTimeOrder]
        );
    }
}
