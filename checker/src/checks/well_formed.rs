//! Well-formed: the history has the structure every other check assumes.
//!
//! Each client process runs one operation at a time: an invocation, then exactly one
//! completion for it, and a retry reuses the request id with the same command. A
//! history that breaks this (a completion nobody invoked, a second completion, two
//! operations in flight on one process, a retry that changes the command) comes from
//! a broken client or recorder, and the other checks would have to guess what it
//! means. A completion must name the command its invocation named (a transfer's
//! `from`, `to` and `amount`, where it repeats them). These findings are listed with
//! their line numbers and make the verdict `unknown`, never a pass; the other checks
//! still run and may prove a violation.
//!
//! The classic path feeds it from `crate::ops` while the history streams by; the
//! sharded path from `checks::shard_well_formed`, which adds the shapes only a sharded
//! run can have (positions on shards that do not exist, a snapshot missing a shard, a
//! transaction coordinated by the wrong shard).

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::model::{Accounts, Cmd};
pub(crate) use crate::records::At;

#[derive(Debug, Default)]
pub(crate) struct WellFormed {
    check: Check,
}

impl WellFormed {
    /// A completion at `at` for a request no open invocation of `client` has.
    pub fn orphan(&mut self, at: At, client: u64, rid: u64, kind: &str) {
        self.check.doubt(|| {
            Anomaly::new(
                AnomalyKind::CompletionWithoutInvoke,
                format!(
                    "At {at}, client {client} completes request {rid} ({kind}), but it has no invocation of that request open before it: when the operation began is unknown."
                ),
                vec![at.index],
            )
        });
    }

    /// A second completion at `at` of an attempt that already completed at `done`.
    pub fn duplicate(&mut self, at: At, done: u64, client: u64, rid: u64) {
        self.check.doubt(|| {
            Anomaly::new(
                AnomalyKind::DuplicateCompletion,
                format!(
                    "At {at}, client {client} completes request {rid} again, but its invocation was already completed at history index {done}: one invocation gets one completion."
                ),
                vec![done, at.index],
            )
        });
    }

    /// `client` invokes at `at` while its invocation at `busy` is still in flight.
    pub fn overlap(&mut self, at: At, busy: At, client: u64, rid: u64, busy_rid: u64) {
        self.check.doubt(|| {
            Anomaly::new(
                AnomalyKind::OverlappingOperations,
                format!(
                    "At {at}, client {client} invokes request {rid} while its request {busy_rid}, invoked at {busy}, has not completed: a client process runs one operation at a time."
                ),
                vec![busy.index, at.index],
            )
        });
    }

    /// A retry at `at` of `client`'s request `rid`, first invoked at `first` as
    /// `was`, now as `now`.
    pub fn retry_changed(
        &mut self,
        at: At,
        first: u64,
        (client, rid): (u64, u64),
        (was, now): (&Cmd, &Cmd),
        accounts: &Accounts,
    ) {
        self.check.doubt(|| {
            Anomaly::new(
                AnomalyKind::RetryChangedCommand,
                format!(
                    "At {at}, client {client} retries request {rid} as {}, but it was invoked at history index {first} as {}: a retry must repeat its command, so which one the request means is unknown.",
                    now.describe(accounts),
                    was.describe(accounts)
                ),
                vec![first, at.index],
            )
        });
    }

    /// A completion at `at` of `client`'s request `rid` naming the command as `now`,
    /// while its invocation at `first` named it as `was`.
    pub fn completion_changed(
        &mut self,
        at: At,
        first: u64,
        (client, rid): (u64, u64),
        (was, now): (&str, &str),
    ) {
        self.check.doubt(|| {
            Anomaly::new(
                AnomalyKind::CompletionChangedCommand,
                format!(
                    "At {at}, client {client}'s request {rid} completes as {now}, but it was invoked at history index {first} as {was}: an answer must be about the command asked, so which one ran is unknown."
                ),
                vec![first, at.index],
            )
        });
    }

    /// Any other malformed shape (the sharded path's): `kind` and its sentence.
    pub fn malformed(&mut self, kind: AnomalyKind, message: String, indices: Vec<u64>) {
        self.check.doubt(|| Anomaly::new(kind, message, indices));
    }

    /// Whether a completion's transfer fields (those it repeats) differ from the
    /// invoked `(from, to, amount)`; returns the completion's description if so.
    pub fn transfer_changed(
        invoked: (&str, &str, i64),
        told: (Option<&str>, Option<&str>, Option<i64>),
    ) -> Option<String> {
        let (from, to, amount) = invoked;
        let differs = told.0.is_some_and(|f| f != from)
            || told.1.is_some_and(|t| t != to)
            || told.2.is_some_and(|a| a != amount);
        differs.then(|| {
            format!(
                "transfer {}->{} {}",
                told.0.unwrap_or(from),
                told.1.unwrap_or(to),
                told.2.map_or_else(|| amount.to_string(), |a| a.to_string())
            )
        })
    }

    pub fn finish(mut self, events: u64) -> CheckResult {
        self.check.count("client events", events);
        self.check.finish()
    }
}
