//! Linearizable (black-box): is there an order of the operations, consistent with
//! real time, in which the sequential bank gives every result the clients saw? It
//! uses nothing the system said about positions (no exec_index, no log), so it judges
//! histories whose positions are missing or not trusted.
//!
//! The search is Wing & Gong's, made incremental as in Knossos and Porcupine: the
//! history is walked in order, keeping every configuration (bank balances and which
//! operations in flight are already linearized) that explains it so far. An
//! invocation puts the operation in flight. At a definite completion, each
//! configuration that has not linearized it yet tries every order of linearizing
//! operations in flight that ends with it, keeping the ones whose results match what
//! the clients saw (a transfer's outcome and returned balances, a read's balance, a
//! `read_all`'s whole bank, which prunes hardest). No configuration left means no
//! linearization exists: invalid. A timed-out transfer may execute at any later time,
//! or never; timed-out reads change nothing and are left out, as are requests rejected
//! before proposal.
//!
//! Client sessions (`Input::sessions`, faultline's runs: run.toml says `target =
//! "faultline"`) bound the timed-out transfers. The replica's reply table makes a late
//! copy of a request stale once a later request of the same client executed
//! (docs/client-protocol.md), so a timed-out transfer executes before its client's
//! next definite answer's operation or never: at that completion it *dies*. Every
//! configuration there has decided it, so it leaves the search, and configurations
//! that differed only in it merge. Without sessions (etcd, or a run.toml without a
//! target) a timed-out transfer stays in flight for good.
//!
//! Trying every order would explode, so these reductions keep only canonical orders,
//! each of which loses no linearization:
//! - two operations that share no account commute (results and balances alike), and
//!   one still in flight may always be put after the completing one. So before a
//!   completing operation X, an operation in flight is only linearized when a later
//!   one in the same chain (ultimately X) shares an account with it, never "just in
//!   case". A dying transfer cannot be put after X, so it is exempt: it may be placed
//!   anywhere before X (placed where nothing after it shares an account, it gives the
//!   balances it would give just before X). Where X is passive and already linearized,
//!   the dying transfers (and what they need) are placed after X's place, which admits
//!   more than sessions allow and so loses nothing;
//! - applying one as a no-op (insufficient funds) is the same as not applying it;
//! - of two neighbours in an order that share no account, only the order with the
//!   lower slot first is tried (they commute; partial-order reduction). X itself is
//!   exempt: it must end the chain whatever its slot, and a dying transfer just before
//!   it may share no account with it;
//! - a passive operation in flight (a read, a `read_all`, a transfer that failed for
//!   want of funds) is linearized in every configuration whose balances give its
//!   result, as soon as it is invoked or the configuration is made: it changes
//!   nothing, and doing it later could only fail where now succeeds;
//! - of configurations with the same balances and the same transfers linearized, one
//!   that applied a subset of the other's timed-out transfers and a superset of its
//!   passive operations can do all the other can, so the other is dropped.
//!
//! Configurations are thus remembered as (operations linearized, balances), as
//! Knossos and Porcupine cache them, and the search of one completion remembers the
//! states it has seen. Limits, said plainly: at most 64 operations may be in flight at
//! once (timed-out transfers that may still execute count until every configuration
//! has applied them), the search explores at most `budget` states and holds at most
//! `MAX_HELD` at once. Any limit, or anything the model cannot evaluate, makes the
//! check `unknown` with the reason. The hard case is a system without sessions, whose
//! timed-out transfers stay in flight for good: every subset of them may have
//! executed, so a history with a dozen of them open at once over the same accounts can
//! exhaust the budget, and one with more than 64 cannot be searched. With sessions,
//! only a client's run of consecutive timeouts stays open, until its next answer.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::model::{Accounts, Acct, Bank, Cmd, Effect, Fx, FxMap};
use crate::records::{flag, Clients, OpClass, OpRec, Ops};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// States the search explores by default before it gives up.
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// Most operations in flight at once (one bit each in a configuration).
const MAX_IN_FLIGHT: usize = 64;

/// Most states the search holds at once (the configurations and one completion's
/// memo, about 100 bytes each), so memory stays bounded whatever the budget.
const MAX_HELD: usize = 2_000_000;

type FxSet<T> = HashSet<T, BuildHasherDefault<Fx>>;

/// Balances and the in-flight slots already linearized.
type Config = (Vec<i64>, u64);

/// A configuration mid-search: also the operations linearized in this chain that
/// still wait for a later one touching their accounts, and the slot linearized last
/// ([`NO_SLOT`] at the chain's start).
type Node = (Vec<i64>, u64, u64, u8);

/// No slot linearized yet in a chain.
const NO_SLOT: u8 = u8::MAX;

/// Whether two commands touch a common account (a `read_all` touches all).
fn conflict(a: &Cmd, b: &Cmd) -> bool {
    fn touches(c: &Cmd) -> (Option<Acct>, Option<Acct>, bool) {
        match *c {
            Cmd::Transfer { from, to, .. } => (Some(from), Some(to), false),
            Cmd::Read { account } => (Some(account), None, false),
            Cmd::ReadAll | Cmd::Other => (None, None, true),
        }
    }
    let (a1, a2, a_all) = touches(a);
    let (b1, b2, b_all) = touches(b);
    a_all
        || b_all
        || [a1, a2]
            .iter()
            .flatten()
            .any(|x| [b1, b2].contains(&Some(*x)))
}

/// What the search needs.
pub(crate) struct Input<'a> {
    pub ops: &'a Ops,
    pub read_alls: &'a [Box<[(Acct, i64)]>],
    pub clients: &'a Clients,
    pub accounts: &'a Accounts,
    pub initial: i64,
    pub budget: u64,
    /// The system keeps client sessions as faultline's reply table does: a request
    /// never executes after a later request of the same client executed (a late copy
    /// is stale; docs/client-protocol.md). Then a timed-out transfer is closed at its
    /// client's next definite completion instead of staying in flight for good.
    pub sessions: bool,
}

/// The result when the search cannot run, for `reason`.
pub(crate) fn unknown(reason: &str) -> CheckResult {
    let mut c = Check::default();
    c.unknown(reason);
    c.finish()
}

/// How an operation takes part in the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Never executed or changes nothing unseen: left out.
    Skip,
    /// Must be linearized before its completion.
    Definite,
    /// May be linearized at any time after its invocation, or never.
    Maybe,
}

fn role(o: &OpRec) -> Result<Role, &'static str> {
    if o.has(flag::ORPHAN) {
        return Err(
            "an operation completes without an invocation, so when it may take effect is unknown",
        );
    }
    if o.has(flag::RETRY_CHANGED) {
        return Err("a request was retried with another command");
    }
    if o.cmd() == Cmd::Other {
        return Err("the history has functions other than transfer, read and read_all");
    }
    Ok(match o.class() {
        OpClass::Rejected => Role::Skip,
        OpClass::Indefinite if matches!(o.cmd(), Cmd::Transfer { .. }) => Role::Maybe,
        OpClass::Indefinite => Role::Skip,
        OpClass::FailExec if !o.has(flag::INSUFFICIENT) => {
            return Err("a failure with an exec_index gives a reason other than insufficient funds")
        }
        OpClass::FailExec | OpClass::Ok => Role::Definite,
    })
}

pub(crate) fn run(input: &Input<'_>) -> CheckResult {
    let mut events = Vec::new();
    let mut keys: FxSet<(u32, u64)> = FxSet::default();
    for (i, o) in input.ops.iter().enumerate() {
        if !keys.insert((o.client, o.request_id)) {
            // Two records of one request would be linearized twice.
            return unknown("the search cannot run: a request id was reused after the client moved on to later ones");
        }
        let r = match role(&o) {
            Ok(r) => r,
            Err(why) => return unknown(&format!("the search cannot run: {why}")),
        };
        match r {
            Role::Skip => {}
            Role::Maybe => events.push((o.first_index, false, i as u32)),
            Role::Definite => {
                events.push((o.first_index, false, i as u32));
                events.push((o.done_index, true, i as u32));
            }
        }
    }
    events.sort_unstable();
    let mut s = Search::new(input);
    let mut check = Check::default();
    for &(index, is_return, op) in &events {
        let step = if is_return { s.ret(op) } else { s.invoke(op) };
        match step {
            Ok(()) => {}
            Err(Stop::Limit(why)) => {
                check.unknown(format!("{why} (at history index {index})"));
                break;
            }
            Err(Stop::NoOrder) if s.overflowed => {
                check.unknown("no linearization was found, but some order took a balance past i64, which the model cannot follow");
                break;
            }
            Err(Stop::NoOrder) => {
                check.anomaly(|| no_order(input, op));
                break;
            }
        }
    }
    check.count(
        "operations searched",
        events.iter().filter(|e| !e.1).count() as u64,
    );
    check.count("states explored", s.explored);
    check.count("most configurations held", s.most_configs as u64);
    check.count("most operations in flight", s.most_in_flight as u64);
    check.note(format!(
        "black-box: exec indices and the log were not used; search budget {} states",
        input.budget
    ));
    check.finish()
}

fn no_order(input: &Input<'_>, op: u32) -> Anomaly {
    let x = &input.ops.get(op);
    Anomaly::new(
        AnomalyKind::NotLinearizable,
        format!(
            "No order of the operations that respects real time gives every result the clients saw up to {} completing at history index {}: whatever the order, the bank cannot have answered that.",
            x.describe(input.clients, input.accounts),
            x.done_index
        ),
        x.indices(),
    )
}

/// Counts one state explored; past the budget, the search stops.
fn spend(explored: &mut u64, budget: u64) -> Result<(), Stop> {
    *explored += 1;
    if *explored > budget {
        return Err(Stop::Limit(format!(
            "the search explored its budget of {budget} states without deciding"
        )));
    }
    Ok(())
}

fn held_limit() -> Stop {
    Stop::Limit(format!(
        "the search held {MAX_HELD} states at once, its memory bound, without deciding"
    ))
}

enum Stop {
    /// A limit of the search was reached: unknown.
    Limit(String),
    /// No configuration explains the history: invalid.
    NoOrder,
}

struct Search<'a> {
    input: &'a Input<'a>,
    configs: Vec<Config>,
    /// Slot to operation in flight.
    slots: [Option<u32>; MAX_IN_FLIGHT],
    /// Slots holding timed-out transfers.
    maybe: u64,
    /// Slots holding definite operations that change nothing (reads, `read_all`s,
    /// transfers that failed for want of funds).
    passive: u64,
    explored: u64,
    overflowed: bool,
    /// Most configurations held after a step, and most operations in flight.
    most_configs: usize,
    most_in_flight: usize,
}

impl<'a> Search<'a> {
    fn new(input: &'a Input<'a>) -> Search<'a> {
        let balances = vec![input.initial; input.accounts.declared_count()];
        Search {
            input,
            configs: vec![(balances, 0)],
            slots: [None; MAX_IN_FLIGHT],
            maybe: 0,
            passive: 0,
            explored: 0,
            overflowed: false,
            most_configs: 1,
            most_in_flight: 0,
        }
    }

    fn invoke(&mut self, op: u32) -> Result<(), Stop> {
        let Some(free) = self.slots.iter().position(Option::is_none) else {
            return Err(Stop::Limit(format!(
                "more than {MAX_IN_FLIGHT} operations (counting timed-out transfers that may still execute) are in flight at once"
            )));
        };
        self.slots[free] = Some(op);
        let in_flight = self.slots.iter().filter(|s| s.is_some()).count();
        self.most_in_flight = self.most_in_flight.max(in_flight);
        let o = &self.input.ops.get(op);
        let bit = 1u64 << free;
        self.maybe &= !bit;
        self.passive &= !bit;
        if !o.has(flag::OK) && !o.has(flag::FAIL_EXEC) {
            self.maybe |= bit;
        } else if o.observes() {
            self.passive |= bit;
            let configs: FxSet<Config> = std::mem::take(&mut self.configs)
                .into_iter()
                .map(|c| self.close(c))
                .collect();
            self.configs = self.minimal(configs);
        }
        Ok(())
    }

    fn slot_of(&self, op: u32) -> Option<usize> {
        self.slots.iter().position(|&s| s == Some(op))
    }

    /// `op` completed definitely: every configuration must have linearized it.
    fn ret(&mut self, op: u32) -> Result<(), Stop> {
        let Some(slot) = self.slot_of(op) else {
            return Ok(());
        };
        let bit = 1u64 << slot;
        let dying = self.dying(op);
        let mut out: FxSet<Config> = FxSet::default();
        let mut seen: FxSet<Node> = FxSet::default();
        for c in std::mem::take(&mut self.configs) {
            if c.1 & bit != 0 && dying & !c.1 == 0 {
                out.insert(c);
            } else {
                self.extend(c, slot, dying, &mut out, &mut seen)?;
            }
        }
        if out.is_empty() {
            return Err(Stop::NoOrder);
        }
        self.slots[slot] = None;
        let mut retire = bit | dying;
        for s in 0..MAX_IN_FLIGHT {
            if dying & (1 << s) != 0 {
                self.slots[s] = None;
            }
        }
        // Timed-out transfers every configuration has applied are done with too.
        for (s, o) in self.slots.iter_mut().enumerate() {
            if o.is_some() && out.iter().all(|c| c.1 & (1 << s) != 0) {
                *o = None;
                retire |= 1 << s;
            }
        }
        self.maybe &= !retire;
        self.passive &= !retire;
        let merged: FxSet<Config> = out
            .into_iter()
            .map(|(b, m)| self.close((b, m & !retire)))
            .collect();
        self.configs = self.minimal(merged);
        self.most_configs = self.most_configs.max(self.configs.len());
        Ok(())
    }

    /// With sessions, the timed-out transfers of `op`'s client with lower request ids
    /// still in flight: `op` executed, so each executed before it or never will.
    fn dying(&self, op: u32) -> u64 {
        if !self.input.sessions {
            return 0;
        }
        let x = &self.input.ops.get(op);
        let mut out = 0;
        for (s, o) in self.slots.iter().enumerate() {
            let Some(o) = *o else { continue };
            let y = &self.input.ops.get(o);
            if self.maybe & (1 << s) != 0 && y.client == x.client && y.request_id < x.request_id {
                out |= 1 << s;
            }
        }
        out
    }

    /// Linearizes, in `c`, every passive operation in flight whose result the
    /// balances give now. That loses nothing: it changes no balance, and doing it
    /// later could only fail where now succeeds.
    fn close(&self, (balances, mut mask): Config) -> Config {
        let open = self.passive & !mask;
        if open == 0 {
            return (balances, mask);
        }
        let bank = Bank::from_balances(balances, self.input.accounts);
        for (s, op) in self.slots.iter().enumerate() {
            let Some(op) = *op else { continue };
            if open & (1 << s) != 0 {
                let effect = bank.peek(&self.input.ops.get(op).cmd());
                if self.admits(op, effect, &bank) {
                    mask |= 1 << s;
                }
            }
        }
        (bank.balances, mask)
    }

    /// Drops configurations subsumed by another with the same balances and the same
    /// transfers linearized, that applied a subset of its timed-out transfers and a
    /// superset of its passive operations (the other can do all it can).
    fn minimal(&self, configs: FxSet<Config>) -> Vec<Config> {
        let free = self.maybe | self.passive;
        let mut groups: FxMap<(Vec<i64>, u64), Vec<u64>> = FxMap::default();
        for (b, m) in configs {
            groups.entry((b, m & !free)).or_default().push(m & free);
        }
        let (maybe, passive) = (self.maybe, self.passive);
        let covers = |o: u64, m: u64| {
            let fewer_maybes = o & maybe & !m == 0;
            let more_passive = m & passive & !o == 0;
            o != m && fewer_maybes && more_passive
        };
        let mut out = Vec::new();
        for ((b, fixed), free) in groups {
            for &m in &free {
                if !free.iter().any(|&o| covers(o, m)) {
                    out.push((b.clone(), fixed | m));
                }
            }
        }
        out
    }

    /// Every way to linearize operations in flight from `c` that ends with `slot`.
    ///
    /// With sessions, the `dying` timed-out transfers must be placed before `slot` or
    /// never: they are exempt from waiting for a later operation that touches them
    /// (one placed where nothing after it does is the same as one placed just before
    /// `slot`), and the operations before one of them may wait for it. If `c` has
    /// linearized `slot` already (a passive operation, linearized where its result
    /// first held), `c` itself and every chain that leaves nothing waiting are kept:
    /// that places the dying transfers after `slot`'s place, more than sessions allow,
    /// so nothing is lost.
    fn extend(
        &mut self,
        c: Config,
        slot: usize,
        dying: u64,
        out: &mut FxSet<Config>,
        seen: &mut FxSet<Node>,
    ) -> Result<(), Stop> {
        if c.1 & (1 << slot) != 0 {
            out.insert(c.clone());
        }
        let mut stack: Vec<Node> = vec![(c.0, c.1, 0, NO_SLOT)];
        while let Some((balances, mask, waiting, last)) = stack.pop() {
            let placed = mask & (1 << slot) != 0;
            let last_cmd = self.slots.get(last as usize).copied().flatten();
            let last_cmd = last_cmd.map(|op| self.input.ops.get(op).cmd());
            for (s, op) in self.slots.iter().enumerate() {
                let Some(op) = *op else { continue };
                if mask & (1 << s) != 0 {
                    continue;
                }
                let cmd = &self.input.ops.get(op).cmd();
                // Two neighbours that share no account commute: of the two orders,
                // only the one with the lower slot first is tried. Not for `slot`,
                // which ends the chain whatever its number (a dying transfer before it
                // may share no account with it).
                if s != slot && (s as u8) < last && last_cmd.is_some_and(|l| !conflict(&l, cmd)) {
                    continue;
                }
                // The waiting timed-out transfers this one touches are placed.
                let still = waiting & !self.touching(waiting, cmd);
                let is_maybe = self.maybe & (1 << s) != 0;
                if s == slot && still != 0 {
                    continue;
                }
                spend(&mut self.explored, self.input.budget)?;
                let mut bank = Bank::from_balances(balances.clone(), self.input.accounts);
                let effect = bank.apply(cmd);
                if effect == Effect::Overflow {
                    self.overflowed = true;
                    continue;
                }
                let moved = matches!(effect, Effect::Transferred { .. });
                if is_maybe && !moved {
                    // A no-op is the same as not applying it at all.
                    continue;
                }
                if !is_maybe && !self.admits(op, effect, &bank) {
                    continue;
                }
                if out.len() + seen.len() > MAX_HELD {
                    return Err(held_limit());
                }
                if s == slot {
                    out.insert((bank.balances, mask | (1 << s)));
                    continue;
                }
                let exempt = dying & (1 << s);
                let next = (
                    bank.balances,
                    mask | (1 << s),
                    still | ((1 << s) & !exempt),
                    s as u8,
                );
                if placed && next.2 == 0 {
                    out.insert((next.0.clone(), next.1));
                }
                if seen.insert(next.clone()) {
                    stack.push(next);
                }
            }
        }
        Ok(())
    }

    /// The slots in `set` whose operations share an account with `cmd`.
    fn touching(&self, set: u64, cmd: &Cmd) -> u64 {
        let mut out = 0;
        for (s, op) in self.slots.iter().enumerate() {
            if set & (1 << s) == 0 {
                continue;
            }
            if let Some(op) = op {
                if conflict(&self.input.ops.get(*op).cmd(), cmd) {
                    out |= 1 << s;
                }
            }
        }
        out
    }

    /// Whether `effect` is what the client saw of `op` (`bank` is after it).
    fn admits(&self, op: u32, effect: Effect, bank: &Bank) -> bool {
        let o = &self.input.ops.get(op);
        if !o.has(flag::OK) {
            return effect == Effect::Insufficient;
        }
        let seen = |s: Option<i64>, r: i64| s.is_none_or(|s| s == r);
        match effect {
            Effect::Transferred {
                from_balance,
                to_balance,
            } => seen(o.a(), from_balance) && seen(o.b(), to_balance),
            Effect::Balance(b) => seen(o.a(), b),
            Effect::All => self.snapshot_matches(o, &bank.balances),
            _ => false,
        }
    }

    fn snapshot_matches(&self, o: &OpRec, balances: &[i64]) -> bool {
        let Some(i) = (o.all() as usize).checked_sub(1) else {
            return true;
        };
        let Some(seen) = self.input.read_alls.get(i) else {
            return true;
        };
        seen.len() == balances.len()
            && seen
                .iter()
                .all(|&(a, b)| balances.get(a as usize) == Some(&b))
    }
}
