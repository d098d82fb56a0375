//! Replay: every result a client saw is what the agreed log produces at its position.
//!
//! The agreed log is applied to the sequential `Bank` from the initial balances, one
//! exec index at a time. The operations told an exec index, sorted by it, are merged
//! into that walk, so each observation is compared with the bank exactly at its
//! position: the right command is there, the transfer's outcome and returned balances,
//! the balance a read returned, the balances of a `read_all`. The log's own recorded
//! outcome (ok / fail) is compared too, and when the walk passes a replica's last exec
//! index, that replica's final balances are compared for the agreement check.
//!
//! The walk stops at the first index no replica covers: positions after it cannot be
//! replayed and are counted as undecided (verdict `unknown`), never passed.
//!
//! Under shared positions (etcd, see [`Positions`]) the log holds only writes, from
//! the one after the initial state's position. Reads and failed transfers at position
//! r are judged against the bank after write r (writes sort first at each index), with
//! nothing applied: a read must return exactly that state, and a transfer that failed
//! for insufficient funds must really lack them there. Those at the initial state's
//! position (just before the first logged write) see the initial balances.

use super::agreement::Agreement;
use super::{Anomaly, AnomalyKind, Check, CheckResult, OpFunction};
use crate::final_state::{AgreedLog, NodeState, Positions, Slot};
use crate::model::{Accounts, Acct, Bank, Cmd, Effect};
use crate::records::{flag, Clients, OpRec, Ops};

/// What the replay needs.
pub(crate) struct Input<'a> {
    pub ops: &'a Ops,
    pub read_alls: &'a [Box<[(Acct, i64)]>],
    /// Operations told an exec index, sorted by it.
    pub by_exec: &'a [u32],
    pub clients: &'a Clients,
    pub accounts: &'a Accounts,
    pub log: &'a AgreedLog,
    pub nodes: &'a [NodeState],
    pub initial: i64,
    pub positions: Positions,
    /// Under shared positions, the initial balances' position, when final.json says.
    pub base_revision: Option<u64>,
}

/// Runs the replay; final balances go to `agreement`.
pub(crate) fn run(input: &Input<'_>, agreement: &mut Agreement) -> CheckResult {
    let mut r = Replay {
        input,
        check: Check::default(),
        bank: Bank::new(input.accounts, input.initial),
        cursor: 0,
    };
    r.walk(agreement);
    r.check.finish()
}

/// The replay's result when it cannot run at all.
pub(crate) fn unknown(reason: &str) -> CheckResult {
    let mut c = Check::default();
    c.unknown(reason);
    c.finish()
}

/// The replay walked as the history streams (see `crate::run::streamed`): the
/// operations come in nearly exec order, each judged where the walk of the log reaches
/// its exec index, by the same rules as [`run`]. The state is kept between calls; the
/// borrowed inputs are handed in at each call, since the history pass still changes
/// them.
pub(crate) struct Walk {
    check: Check,
    bank: Bank,
    /// Replicas with balances (indices into `Input::nodes`), by their last exec index.
    nodes: Vec<usize>,
    next_node: usize,
    stop: u64,
    /// The initial state's position (0 with unique positions).
    base: u64,
    /// The last exec index applied (`base` before the first).
    at: u64,
    /// What applying the entry at `at` gave.
    effect: Effect,
    replayed: u64,
    halted: Option<u64>,
}

/// What became of one operation handed to [`Walk::judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Judged as [`run`] judges it, and found as it should be.
    Done,
    /// Judged as [`run`] judges it, and found wanting (an anomaly is in the check).
    Found,
    /// The walk is already past its exec index.
    Late,
    /// Where [`run`] would judge it only after the walk (past the log's end or a
    /// halt, or before the initial state's position): the streamed verdict must
    /// not be used.
    Elsewhere,
}

impl Walk {
    /// Starts the walk as [`run`] does. `input.by_exec` must be empty: the operations
    /// come through [`Walk::judge`]. Under shared positions the initial state's
    /// position must be known (final.json's `base_revision` or a first write).
    pub fn new(input: &Input<'_>, agreement: &mut Agreement) -> Walk {
        let mut r = Replay {
            input,
            check: Check::default(),
            bank: Bank::new(input.accounts, input.initial),
            cursor: 0,
        };
        let mut nodes: Vec<usize> = (0..input.nodes.len())
            .filter(|&i| input.nodes[i].balances.is_some())
            .collect();
        nodes.sort_by_key(|&i| input.nodes[i].last);
        let refs: Vec<&NodeState> = nodes.iter().map(|&i| &input.nodes[i]).collect();
        let next_node = r.empty_nodes(&refs, agreement);
        let gap = input.log.first_gap();
        let start = match input.positions {
            Positions::Unique => 1,
            Positions::SharedReads => r.before_log(),
        };
        Walk {
            check: r.check,
            bank: r.bank,
            nodes,
            next_node,
            stop: gap.map_or(input.log.last(), |g| g - 1),
            base: start - 1,
            at: start - 1,
            effect: Effect::Unknown,
            replayed: 0,
            halted: None,
        }
    }

    /// The walk's state lent to a [`Replay`] for one call.
    fn lend<'a>(&mut self, input: &'a Input<'a>) -> Replay<'a> {
        let empty = Bank::from_balances(Vec::new(), input.accounts);
        Replay {
            input,
            check: std::mem::take(&mut self.check),
            bank: std::mem::replace(&mut self.bank, empty),
            cursor: 0,
        }
    }

    fn give_back(&mut self, r: Replay<'_>) {
        self.check = r.check;
        self.bank = r.bank;
    }

    /// Applies the log's entries up to `to` (or the walk's end), as [`run`]'s walk does.
    fn advance(&mut self, r: &mut Replay<'_>, to: u64, agreement: &mut Agreement) {
        let log = r.input.log;
        while self.at < to.min(self.stop) && self.halted.is_none() {
            let exec = self.at + 1;
            let Some(slot) = log.get(exec) else {
                self.stop = self.at;
                break;
            };
            let effect = r.bank.apply(&slot.cmd());
            if effect == Effect::Overflow {
                self.halted = Some(exec);
                break;
            }
            (self.replayed, self.at, self.effect) = (exec, exec, effect);
            r.recorded(exec, &slot, effect);
            while let Some(&n) = self.nodes.get(self.next_node) {
                if r.input.nodes[n].last != exec {
                    break;
                }
                r.node_balances(&r.input.nodes[n], agreement);
                self.next_node += 1;
            }
        }
    }

    /// Judges `x` (told an exec index) where the walk reaches it.
    pub fn judge(&mut self, input: &Input<'_>, x: &OpRec, agreement: &mut Agreement) -> Judged {
        let shared = input.positions == Positions::SharedReads;
        if x.exec <= self.base {
            // Before the log: only an observer of the initial state itself, while the
            // walk has not moved, is judged as `before_log` would.
            if !(shared && x.observes() && x.exec == self.base && self.at == self.base) {
                return Judged::Elsewhere;
            }
            let mut r = self.lend(input);
            r.observed(x.exec, x);
            self.give_back(r);
            return self.verdict();
        }
        if x.exec < self.at {
            return Judged::Late;
        }
        let mut r = self.lend(input);
        self.advance(&mut r, x.exec, agreement);
        let out = match input.log.get(x.exec) {
            Some(slot) if self.at == x.exec => {
                if shared && x.observes() {
                    r.observed(x.exec, x);
                } else {
                    r.check.count("observations replayed", 1);
                    r.observation(x.exec, &slot, self.effect, x);
                }
                Judged::Done
            }
            _ => Judged::Elsewhere,
        };
        self.give_back(r);
        match out {
            Judged::Done => self.verdict(),
            other => other,
        }
    }

    /// [`Judged::Done`] while the walk's check is clean, else [`Judged::Found`].
    fn verdict(&self) -> Judged {
        if self.check.clean() {
            Judged::Done
        } else {
            Judged::Found
        }
    }

    /// Walks the rest of the log and ends the check as [`run`] does.
    pub fn finish(&mut self, input: &Input<'_>, agreement: &mut Agreement) -> CheckResult {
        let mut r = self.lend(input);
        self.advance(&mut r, u64::MAX, agreement);
        r.check.count("log entries replayed", self.replayed);
        if let Some(exec) = self.halted {
            r.check.unknown(format!(
                "the transfer at exec_index {exec} would take a balance past the largest integer (i64), so the log was replayed only up to {}", self.replayed
            ));
        }
        let gap = input.log.first_gap();
        let rest: Vec<&NodeState> = self.nodes[self.next_node..]
            .iter()
            .map(|&i| &input.nodes[i])
            .collect();
        r.leftovers(self.halted.or(gap), &rest, agreement);
        r.check.finish()
    }
}

struct Replay<'a> {
    input: &'a Input<'a>,
    check: Check,
    bank: Bank,
    cursor: usize,
}

impl Replay<'_> {
    fn walk(&mut self, agreement: &mut Agreement) {
        let log = self.input.log;
        let mut nodes: Vec<&NodeState> = self
            .input
            .nodes
            .iter()
            .filter(|n| n.balances.is_some())
            .collect();
        nodes.sort_by_key(|n| n.last);
        let mut next_node = self.empty_nodes(&nodes, agreement);
        let gap = log.first_gap();
        let stop = gap.map_or(log.last(), |g| g - 1);
        let start = match self.input.positions {
            Positions::Unique => 1,
            Positions::SharedReads => self.before_log(),
        };
        let mut replayed = 0;
        let mut halted = None;
        for exec in start..=stop {
            let Some(slot) = log.get(exec) else { break };
            let effect = self.bank.apply(&slot.cmd());
            if effect == Effect::Overflow {
                halted = Some(exec);
                break;
            }
            replayed = exec;
            self.recorded(exec, &slot, effect);
            self.observations(exec, &slot, effect);
            while next_node < nodes.len() && nodes[next_node].last == exec {
                self.node_balances(nodes[next_node], agreement);
                next_node += 1;
            }
        }
        self.check.count("log entries replayed", replayed);
        if let Some(exec) = halted {
            self.check.unknown(format!(
                "the transfer at exec_index {exec} would take a balance past the largest integer (i64), so the log was replayed only up to {replayed}"
            ));
        }
        self.leftovers(halted.or(gap), &nodes[next_node..], agreement);
    }

    /// Under shared positions: judges the operations at or before the initial state's
    /// position (final.json's `base_revision`, else the one before the log's first
    /// write, else the first position told) and returns the log's first position.
    fn before_log(&mut self) -> u64 {
        let (ops, by_exec) = (self.input.ops, self.input.by_exec);
        let first = self.input.log.first();
        let base = match (self.input.base_revision, first) {
            (Some(b), _) => b,
            (None, 0) => by_exec.first().map_or(0, |&o| ops.get(o).exec),
            (None, first) => first - 1,
        };
        if first != 0 && first <= base {
            self.check.unknown(format!(
                "final.json lists writes from exec_index {first}, at or before its base_revision {base} (the initial balances): they are not replayed"
            ));
        }
        while let Some(&op) = by_exec.get(self.cursor) {
            let x = &ops.get(op);
            if x.exec > base {
                break;
            }
            self.cursor += 1;
            if !x.observes() {
                self.write_before_log(x, base);
            } else if x.exec < base && self.input.base_revision.is_some() {
                self.before_the_bank(x, base);
            } else if x.exec < base {
                self.check.undecided(
                    "observations lie before the initial state's position (the one before the log's first write)",
                );
            } else {
                self.observed(x.exec, x);
            }
        }
        base + 1
    }

    /// An observation told a position before `base_revision`: the initial balances, written
    /// and acknowledged before any client started, were not in the state it read (etcd: a
    /// member that had not applied them yet). A stale read, not money created or destroyed.
    fn before_the_bank(&mut self, x: &OpRec, base: u64) {
        let (clients, accounts) = (self.input.clients, self.input.accounts);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::StaleRead,
                format!(
                    "{} was told position {}, before position {base} where the initial balances were written (before any client started): it read a state from before the bank existed, a stale read.",
                    x.describe(clients, accounts),
                    x.exec
                ),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(vec![x.exec])
        });
    }

    fn write_before_log(&mut self, x: &OpRec, base: u64) {
        let (clients, accounts) = (self.input.clients, self.input.accounts);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::WrongSlot,
                format!(
                    "{} was told exec_index {}, but position {base} holds the initial balances and the log's writes start after it: no transfer took that position.",
                    x.describe(clients, accounts),
                    x.exec
                ),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(vec![x.exec])
        });
    }

    /// Replicas with balances but an empty executed list: comparable only when the
    /// whole log is empty (else they may hold a checkpoint of unknown position).
    fn empty_nodes(&mut self, nodes: &[&NodeState], agreement: &mut Agreement) -> usize {
        let empty = nodes.iter().take_while(|n| n.entries == 0).count();
        for n in &nodes[..empty] {
            if self.input.log.last() == 0 {
                self.node_balances(n, agreement);
            } else {
                agreement.balances_undecided();
            }
        }
        empty
    }

    /// What is left after the walk: positions past a gap, or past the end of the log.
    fn leftovers(&mut self, gap: Option<u64>, nodes: &[&NodeState], agreement: &mut Agreement) {
        let ops = self.input.ops;
        for &op in &self.input.by_exec[self.cursor..] {
            let x = &ops.get(op);
            match gap {
                Some(_) => self.check.undecided(
                    "observations lie at or after an exec_index no replica's log covers",
                ),
                None => self.check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::BeyondLog,
                        format!(
                            "{} was told exec_index {}, but no replica's log goes past {}.",
                            x.describe(self.input.clients, self.input.accounts),
                            x.exec,
                            self.input.log.last()
                        ),
                        x.indices(),
                    )
                    .about(OpFunction::of(x.cmd()))
                    .at_slots(vec![x.exec])
                }),
            }
        }
        if let Some(g) = gap.filter(|&g| self.input.log.get(g).is_none()) {
            self.check.note(format!(
                "the agreed log has no entry at exec_index {g}; replay stopped before it"
            ));
        }
        for _ in nodes {
            agreement.balances_undecided();
        }
    }

    /// The log's recorded outcome against the specification's.
    fn recorded(&mut self, exec: u64, slot: &Slot, effect: Effect) {
        let expected_ok = match effect {
            Effect::Insufficient => false,
            Effect::Unknown | Effect::Overflow => return,
            Effect::BadAmount => return self.bad_amount(exec, slot),
            _ => true,
        };
        if slot.ok == expected_ok {
            return;
        }
        let accounts = self.input.accounts;
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::LogResult,
                format!(
                    "The log records {} at exec_index {exec} as {}, but replaying the log says it {}.",
                    slot.cmd().describe(accounts),
                    if slot.ok { "ok" } else { "failed" },
                    if expected_ok { "succeeds" } else { "fails for insufficient funds" }
                ),
                Vec::new(),
            )
            .at_slots(vec![exec])
        });
    }

    /// A transfer of zero or less is rejected before proposal: it has no place in the
    /// log, whatever outcome the log records for it.
    fn bad_amount(&mut self, exec: u64, slot: &Slot) {
        let accounts = self.input.accounts;
        let client = self.input.log.client(slot);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::BadAmount,
                format!(
                    "The log holds {} by client {} request {} at exec_index {exec}: a transfer's amount must be positive, so the command should have been rejected before proposal, never executed.",
                    slot.cmd().describe(accounts),
                    client,
                    slot.request_id
                ),
                Vec::new(),
            )
            .at_slots(vec![exec])
        });
    }

    fn observations(&mut self, exec: u64, slot: &Slot, effect: Effect) {
        let ops = self.input.ops;
        while let Some(&op) = self.input.by_exec.get(self.cursor) {
            let x = &ops.get(op);
            if x.exec != exec {
                break;
            }
            self.cursor += 1;
            if self.input.positions == Positions::SharedReads && x.observes() {
                self.observed(exec, x);
            } else {
                self.check.count("observations replayed", 1);
                self.observation(exec, slot, effect, x);
            }
        }
    }

    /// Under shared positions: a read or failed transfer against the state at `exec`,
    /// applying nothing.
    fn observed(&mut self, exec: u64, x: &OpRec) {
        self.check.count("observations replayed", 1);
        if !x.has(flag::OBSERVED) {
            return;
        }
        let effect = self.bank.peek(&x.cmd());
        let why = match effect {
            Effect::Transferred { .. } if !x.has(flag::OBS_OK) => {
                // Failed for another reason (e.g. a lost compare): nothing to judge.
                x.has(flag::INSUFFICIENT).then(|| self.had_funds(x))
            }
            _ => self.mismatch(x, effect),
        };
        let Some(why) = why else { return };
        let (clients, accounts) = (self.input.clients, self.input.accounts);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::WrongResult,
                format!(
                    "{} observed exec_index {exec}: {why}.",
                    x.describe(clients, accounts)
                ),
                x.indices(),
            )
            .about(OpFunction::of(x.cmd()))
            .at_slots(vec![exec])
        });
    }

    fn had_funds(&self, x: &OpRec) -> String {
        match x.cmd() {
            Cmd::Transfer { from, amount, .. } => format!(
                "the client was told it failed for insufficient funds, but replaying the log leaves {} with {} there, enough for {amount}",
                self.input.accounts.name(from),
                self.bank.balances.get(from as usize).copied().unwrap_or(0)
            ),
            _ => "the client was told it failed, but replaying the log says it succeeds there".into(),
        }
    }

    fn observation(&mut self, exec: u64, slot: &Slot, effect: Effect, x: &OpRec) {
        let (clients, accounts) = (self.input.clients, self.input.accounts);
        let client = self.input.log.client(slot);
        if client != clients.raw(x.client) || slot.request_id != x.request_id {
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::WrongSlot,
                    format!(
                        "{} was told exec_index {exec}, but the agreed log holds {} by client {} request {} there.",
                        x.describe(clients, accounts),
                        slot.cmd().describe(accounts),
                        client,
                        slot.request_id
                    ),
                    x.indices(),
                )
.about(OpFunction::of(x.cmd()))
                .at_slots(vec![exec])
            });
            return;
        }
        if x.cmd() != slot.cmd() && x.cmd() != Cmd::Other {
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::CommandMismatch,
                    format!(
                        "{} was logged at exec_index {exec} as {}: the log changed the command.",
                        x.describe(clients, accounts),
                        slot.cmd().describe(accounts)
                    ),
                    x.indices(),
                )
                .about(OpFunction::of(x.cmd()))
                .at_slots(vec![exec])
            });
            return;
        }
        if x.has(flag::OBSERVED) {
            if let Some(why) = self.mismatch(x, effect) {
                self.check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::WrongResult,
                        format!(
                            "{} at exec_index {exec}: {why}.",
                            x.describe(clients, accounts)
                        ),
                        x.indices(),
                    )
                    .about(OpFunction::of(x.cmd()))
                    .at_slots(vec![exec])
                });
            }
        }
    }

    /// How what the client saw differs from the specification, if it does.
    fn mismatch(&self, x: &OpRec, effect: Effect) -> Option<String> {
        let told_ok = x.has(flag::OBS_OK);
        match (effect, told_ok) {
            (Effect::Unknown | Effect::BadAmount | Effect::Overflow, _) => None,
            (Effect::Insufficient, true) => Some(self.short_of(x)),
            (Effect::Insufficient, false) => None,
            (_, false) => Some(
                "the client was told it failed, but replaying the log says it succeeds there"
                    .into(),
            ),
            (
                Effect::Transferred {
                    from_balance,
                    to_balance,
                },
                true,
            ) => {
                let seen = (x.a(), x.b());
                let same = |s: Option<i64>, r: i64| s.is_none_or(|s| s == r);
                (!same(seen.0, from_balance) || !same(seen.1, to_balance)).then(|| {
                    format!(
                        "the client saw balances {} and {} after the transfer, but replaying the log gives {from_balance} and {to_balance}",
                        show(seen.0),
                        show(seen.1)
                    )
                })
            }
            (Effect::Balance(b), true) => x
                .a()
                .filter(|&a| a != b)
                .map(|a| format!("the read returned {a}, but replaying the log gives {b}")),
            (Effect::All, true) => self.read_all_mismatch(x),
        }
    }

    fn short_of(&self, x: &OpRec) -> String {
        match x.cmd() {
            Cmd::Transfer { from, amount, .. } => format!(
                "the client was told ok, but replaying the log leaves {} with only {} there, less than {amount}, so the transfer must fail",
                self.input.accounts.name(from),
                self.bank.balances.get(from as usize).copied().unwrap_or(0)
            ),
            _ => "the client was told ok, but replaying the log says it fails".into(),
        }
    }

    fn read_all_mismatch(&self, x: &OpRec) -> Option<String> {
        let seen = self
            .input
            .read_alls
            .get((x.all() as usize).checked_sub(1)?)?;
        let accounts = self.input.accounts;
        let diffs = balance_diffs(seen, &self.bank.balances, accounts);
        (!diffs.is_empty()).then(|| {
            let shown: Vec<String> = diffs
                .iter()
                .take(5)
                .map(|(a, s, r)| format!("{a} = {s} instead of {r}"))
                .collect();
            format!(
                "the read_all returned {}, which replaying the log does not give",
                shown.join(", ")
            )
        })
    }

    fn node_balances(&mut self, node: &NodeState, agreement: &mut Agreement) {
        let Some(bal) = &node.balances else { return };
        agreement.balances_checked();
        let diffs = balance_diffs(bal, &self.bank.balances, self.input.accounts);
        if !diffs.is_empty() {
            agreement.balances_differ(&node.name, node.last, &diffs);
        }
    }
}

fn show(v: Option<i64>) -> String {
    v.map_or_else(|| "(none)".into(), |v| v.to_string())
}

/// (account, seen, replayed) for every account where `seen` (sorted by account) and the
/// bank differ, including accounts missing from either side.
pub(crate) fn balance_diffs(
    seen: &[(Acct, i64)],
    bank: &[i64],
    accounts: &Accounts,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (a, &expected) in bank.iter().enumerate() {
        let got = seen
            .binary_search_by_key(&(a as Acct), |&(k, _)| k)
            .ok()
            .map(|i| seen[i].1);
        if got != Some(expected) {
            let got = got.map_or("missing".to_string(), |g| g.to_string());
            out.push((
                accounts.name(a as Acct).to_string(),
                got,
                expected.to_string(),
            ));
        }
    }
    for &(a, v) in seen.iter().filter(|(a, _)| *a as usize >= bank.len()) {
        out.push((
            accounts.name(a).to_string(),
            v.to_string(),
            "no such account".into(),
        ));
    }
    out
}
