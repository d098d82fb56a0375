//! Liveness: once the faults are healed, every operation gets a definite answer in
//! bounded time.
//!
//! The contract (the simulator relies on it): the check applies only when run.toml
//! has an integer `liveness_bound_ms` and the history has at least one nemesis `info`
//! event with `f: "stable"`. From the time T of the last such event on, the harness
//! promises that all faults are healed and a majority is up and connected. Every
//! client operation (one invocation and its completion) still pending at T, or
//! invoked after T, must complete `ok` or `fail` within the bound of max(T, its
//! invocation). Completing `info`, completing later than that, or never completing
//! although the history goes on past the deadline is a `stall`. An operation whose
//! deadline lies after the last event is not judged.
//!
//! It streams with the history: each client's invocations in flight are kept (a
//! short list), and a `stable` event restarts the judgement, since only the last one
//! counts. Otherwise the check is not applicable: valid, with a note saying why.

use super::{Anomaly, AnomalyKind, Check, CheckResult, OpFunction};
use crate::model::{Accounts, Cmd};
use crate::records::Clients;

/// The nemesis event after which the system must be live.
pub(crate) const STABLE: &str = "stable";

/// One invocation in flight.
#[derive(Debug, Clone)]
struct Attempt {
    client: u32,
    rid: u64,
    cmd: Cmd,
    index: u64,
    line: u64,
    invoked_ns: u64,
    /// When its deadline started counting: max(T, invocation), once a `stable`
    /// event has been seen.
    since_ns: Option<u64>,
}

/// How a watched operation stalled.
#[derive(Debug, Clone, Copy)]
enum Stall {
    /// Completed `info` after waiting this long.
    Info(u64),
    /// Completed definitely, but only after this long.
    Late(u64),
    /// No completion; the history goes on this long past its deadline's start.
    Never(u64),
}

#[derive(Debug)]
pub(crate) struct Liveness {
    /// The bound in nanoseconds; `None` when run.toml does not give a usable one.
    bound_ns: Option<u64>,
    /// Why it does not apply, when it does not.
    why_not: Option<String>,
    /// (time, index) of the last `stable` event so far.
    stable: Option<(u64, u64)>,
    /// Per dense client, its invocations in flight.
    open: Vec<Vec<Attempt>>,
    /// Stalls found since the last `stable` event, with the completion's index.
    stalls: Vec<(Attempt, Stall, Option<u64>)>,
    stall_count: u64,
    watched: u64,
    answered: u64,
}

/// Stalls kept with their details (all are counted).
const MAX_STALLS: usize = super::MAX_STORED_ANOMALIES;

impl Liveness {
    /// From run.toml's `liveness_bound_ms`, as written (absent: not applicable).
    pub fn new(bound_ms: Option<&toml::Value>) -> Liveness {
        let (bound_ns, why_not) = match bound_ms {
            None => (None, Some("run.toml has no liveness_bound_ms".to_string())),
            Some(toml::Value::Integer(ms)) if *ms >= 0 => {
                (Some((*ms as u64).saturating_mul(1_000_000)), None)
            }
            Some(other) => (
                None,
                Some(format!(
                    "run.toml's liveness_bound_ms is {other}, not a non-negative integer of milliseconds"
                )),
            ),
        };
        Liveness {
            bound_ns,
            why_not,
            stable: None,
            open: Vec::new(),
            stalls: Vec::new(),
            stall_count: 0,
            watched: 0,
            answered: 0,
        }
    }

    fn active(&self) -> bool {
        self.bound_ns.is_some()
    }

    /// A nemesis `info` event with function `f`.
    pub fn nemesis(&mut self, f: &str, time_ns: u64, index: u64) {
        if !self.active() || f != STABLE {
            return;
        }
        // Only the last stable event counts: judge afresh from this one.
        self.stable = Some((time_ns, index));
        self.stalls.clear();
        self.stall_count = 0;
        self.watched = 0;
        self.answered = 0;
        for a in self.open.iter_mut().flatten() {
            a.since_ns = Some(time_ns.max(a.invoked_ns));
            self.watched += 1;
        }
    }

    /// `client` invoked request `rid`.
    pub fn invoke(&mut self, client: u32, rid: u64, cmd: Cmd, at: (u64, u64), time_ns: u64) {
        if !self.active() {
            return;
        }
        let c = client as usize;
        if self.open.len() <= c {
            self.open.resize_with(c + 1, Vec::new);
        }
        let since_ns = self.stable.map(|(t, _)| t.max(time_ns));
        self.watched += u64::from(since_ns.is_some());
        self.open[c].push(Attempt {
            client,
            rid,
            cmd,
            index: at.1,
            line: at.0,
            invoked_ns: time_ns,
            since_ns,
        });
    }

    /// `client` completed request `rid`; `definite` for `ok` and `fail`.
    pub fn complete(&mut self, client: u32, rid: u64, definite: bool, index: u64, time_ns: u64) {
        let Some(open) = self.open.get_mut(client as usize) else {
            return;
        };
        let Some(pos) = open.iter().position(|a| a.rid == rid) else {
            return;
        };
        let a = open.remove(pos);
        let (Some(since), Some(bound)) = (a.since_ns, self.bound_ns) else {
            return;
        };
        let waited = time_ns.saturating_sub(since);
        if !definite {
            self.stall(a, Stall::Info(waited), Some(index));
        } else if waited > bound {
            self.stall(a, Stall::Late(waited), Some(index));
        } else {
            self.answered += 1;
        }
    }

    fn stall(&mut self, a: Attempt, how: Stall, done: Option<u64>) {
        self.stall_count += 1;
        if self.stalls.len() < MAX_STALLS {
            self.stalls.push((a, how, done));
        }
    }

    /// Ends the pass: `last_ns` is the time of the history's last event.
    pub fn finish(mut self, last_ns: u64, clients: &Clients, accounts: &Accounts) -> CheckResult {
        let mut check = Check::default();
        let (Some(bound), Some((t, t_index))) = (self.bound_ns, self.stable) else {
            let why = self.why_not.take().unwrap_or_else(|| {
                "the history has no nemesis event with f \"stable\"".to_string()
            });
            check.not_applicable(&why);
            return check.finish();
        };
        let mut beyond = 0;
        for a in std::mem::take(&mut self.open).into_iter().flatten() {
            let Some(since) = a.since_ns else { continue };
            if last_ns.saturating_sub(since) > bound {
                self.stall(a, Stall::Never(last_ns.saturating_sub(since)), None);
            } else {
                beyond += 1;
            }
        }
        check.note(format!(
            "judged from the last stable event, at history index {t_index} ({} into the run), with a bound of {} ms",
            duration(t),
            bound / 1_000_000
        ));
        for (a, how, done) in &self.stalls {
            check.anomaly(|| stall_anomaly(a, *how, *done, bound, clients, accounts));
        }
        // Stalls past the kept ones are counted; the check stores no more anyway.
        for _ in self.stalls.len() as u64..self.stall_count {
            check.anomaly(|| Anomaly::new(AnomalyKind::Stall, "another stall".into(), Vec::new()));
        }
        check.count("operations watched", self.watched);
        check.count("answered in time", self.answered);
        check.count("pending past the end of the history, not judged", beyond);
        check.finish()
    }
}

fn stall_anomaly(
    a: &Attempt,
    how: Stall,
    done: Option<u64>,
    bound: u64,
    clients: &Clients,
    accounts: &Accounts,
) -> Anomaly {
    let what = format!(
        "{} by client {} (request {}), invoked at line {} (history index {})",
        a.cmd.describe(accounts),
        clients.raw(a.client),
        a.rid,
        a.line,
        a.index
    );
    let bound = duration(bound);
    // Waits count from the later of the invocation and the last stable event.
    let from = "after the later of its invocation and the last stable event";
    let (said, indices) = match (how, done) {
        (Stall::Info(w), Some(d)) => (
            format!(
                "timed out (info) at history index {d}, {} {from}: once the faults are healed, an operation must get ok or fail within {bound}",
                duration(w)
            ),
            vec![a.index, d],
        ),
        (Stall::Late(w), Some(d)) => (
            format!(
                "was answered only at history index {d}, {} {from}, beyond the bound of {bound}",
                duration(w)
            ),
            vec![a.index, d],
        ),
        (Stall::Never(w), _) | (Stall::Info(w) | Stall::Late(w), None) => (
            format!(
                "never got an answer, though the history goes on for {} {from}, beyond the bound of {bound}",
                duration(w)
            ),
            vec![a.index],
        ),
    };
    Anomaly::new(AnomalyKind::Stall, format!("{what}, {said}."), indices)
        .about(OpFunction::of(a.cmd))
}

/// Nanoseconds in words, e.g. `2.503 s` or `40 ms`.
fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.3} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}
