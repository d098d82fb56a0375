//! Liveness of a sharded bank: once the faults are healed, every operation gets a
//! definite answer in bounded time, and no account stays locked.
//!
//! The contract is the classic liveness check's (`super::liveness`): it applies when
//! run.toml has an integer `liveness_bound_ms` and the history has a nemesis `stable`
//! event; from the time T of the last one, every operation pending at T or invoked
//! after it must complete `ok` or `fail` within the bound of max(T, its invocation).
//!
//! Two-phase commit adds a stall that answers quickly: a lock that is never released
//! makes every operation on its account fail at once with `lock-conflict` (no-wait
//! locking), for ever. After T every transaction in flight ends within the bound (a
//! coordinator aborts when a vote is late, and decisions are resent), so a
//! `lock-conflict` answer to an operation invoked later than T + bound shows a lock
//! that outlived the healed cluster: a `stall` too.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::checks::liveness::STABLE;
use crate::history::EventType;
use crate::shards::{EntryValue, Op, Sharded};

/// The definite failures that mean "an account is locked".
const LOCKED: [&str; 2] = ["lock-conflict", "aborted-lock-conflict"];

/// When the history says the cluster was healed, and when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeline {
    /// The last nemesis event with f `stable`: its history index and time.
    pub stable: Option<(u64, u64)>,
    /// The last event's time.
    pub last_ns: u64,
}

impl Timeline {
    /// Follows one history line.
    pub fn event(&mut self, index: u64, time_ns: u64, nemesis_f: Option<&str>) {
        if nemesis_f == Some(STABLE) {
            self.stable = Some((index, time_ns));
        }
        self.last_ns = time_ns;
    }
}

pub(crate) fn run(data: &Sharded, timeline: Timeline, bound: Option<&toml::Value>) -> CheckResult {
    let mut check = Check::default();
    let bound_ns = match bound {
        None => return not_applicable(check, "run.toml has no liveness_bound_ms"),
        Some(toml::Value::Integer(ms)) if *ms >= 0 => *ms as u64 * 1_000_000,
        Some(other) => {
            let why = format!(
                "run.toml's liveness_bound_ms is {other}, not a non-negative integer of milliseconds"
            );
            return not_applicable(check, &why);
        }
    };
    let Some((stable_index, t)) = timeline.stable else {
        return not_applicable(check, "the history has no nemesis event with f \"stable\"");
    };
    let last_ns = timeline.last_ns.max(t);
    check.note(format!(
        "judged from the last stable event, at history index {stable_index}, with a bound of {} ms",
        bound_ns / 1_000_000
    ));
    for op in &data.ops {
        let invoked = op.invoke_ns;
        let done = op.complete.as_ref().map(|c| (c, c.time_ns));
        if done.is_some_and(|(_, at)| at <= t) {
            continue; // finished before the cluster was declared healed
        }
        check.count("operations watched", 1);
        let since = t.max(invoked);
        let late = |waited: u64| waited > bound_ns;
        match done {
            Some((c, at)) if c.kind == EventType::Info => {
                check.anomaly(|| stall(op, "timed out (info)", at - since, bound_ns))
            }
            Some((_, at)) if late(at - since) => {
                check.anomaly(|| stall(op, "was answered only", at - since, bound_ns))
            }
            Some((c, _)) if invoked > t + bound_ns && locked(&c.value) => {
                check.anomaly(|| held_lock(op, invoked - t, bound_ns, &c.value))
            }
            None if late(last_ns - since) => {
                check.anomaly(|| stall(op, "was never answered", last_ns - since, bound_ns))
            }
            _ => check.count("answered in time", 1),
        }
    }
    check.finish()
}

fn not_applicable(mut check: Check, why: &str) -> CheckResult {
    check.not_applicable(why);
    check.finish()
}

fn locked(value: &EntryValue) -> bool {
    let error = value.str_field("error");
    error.is_some_and(|e| LOCKED.contains(&e))
}

fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

fn stall(op: &Op, how: &str, waited_ns: u64, bound_ns: u64) -> Anomaly {
    Anomaly::new(
        AnomalyKind::Stall,
        format!(
            "{} {how} {} after the later of its invocation and the last stable event: once the faults are healed, an operation must get ok or fail within {}.",
            op.describe(),
            secs(waited_ns),
            secs(bound_ns)
        ),
        op.indices(),
    )
}

fn held_lock(op: &Op, after_ns: u64, bound_ns: u64, value: &EntryValue) -> Anomaly {
    let error = value.str_field("error");
    Anomaly::new(
        AnomalyKind::Stall,
        format!(
            "{}, invoked {} after the last stable event, failed {}: an account was still locked although every transaction must end within {} of the faults being healed. A lock that is never released blocks its account for ever.",
            op.describe(),
            secs(after_ns),
            error.unwrap_or("lock-conflict"),
            secs(bound_ns)
        ),
        op.indices(),
    )
}
