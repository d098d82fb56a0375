//! The classic check in bounded memory: final.json first, then the history judged as
//! it streams, so the operation records are never all held.
//!
//! [`super::classic`] holds a record per operation (40 bytes, about 20 bytes per
//! event) until both files are read, because exactly-once, replay and client order
//! then read them all. Here final.json is read first (its slots, about 7.5 bytes per
//! event, stay), and each operation is judged once its client is past it (the history
//! pass hands it on, see [`HistoryData::finished`]), by the same rules and mostly the
//! same code as the classic checks:
//!
//! - exactly-once: its key is looked up where the answer put it (the slot at its exec
//!   index must hold that key) or, for one told no position, in the log's key order;
//!   every slot so claimed is marked, and a slot no operation claimed is a phantom or
//!   a second execution;
//! - replay: a walk of the log a bounded window behind the answers (they arrive nearly
//!   in exec order); an answer later than the window is not judged here;
//! - total order: real time through the floor (held while an open operation names
//!   it), client order through each client's last position, unique positions through
//!   the claimed slots.
//!
//! Only the records still needed are held: the open operations, the floors they name,
//! and the window. This path proves a run clean; it does not word anomalies. When it
//! finds anything (an anomaly, an undecided case, a history shape it does not follow:
//! a request id reused, an answer far out of order, an `ok` without a position), it
//! gives up and the run is checked by [`super::classic`] from the start, so results
//! are the classic check's in every case, and memory is bounded on clean runs of the
//! shape the harness writes.

use crate::checks::agreement::Agreement;
use crate::checks::exactly_once;
use crate::checks::liveness::Liveness;
use crate::checks::progress::Fold;
use crate::checks::replay::{self, Judged, Walk};
use crate::checks::{Check, CheckResult, Validity};
use crate::final_state::{AgreedLog, Positions};
use crate::load::run_files::RunFiles;
use crate::model::{Accounts, Cmd, NodeState};
use crate::ops::{self, HistoryData};
use crate::records::{flag, Clients, OpRec, Ops, NO_OP};
use crate::results::Results;
use crate::run::final_load::{self, LogData};
use crate::run::summary::Sections;
use std::collections::{BTreeMap, VecDeque};

/// How many answers told a position the replay's walk may lag behind: answers
/// arrive nearly in exec order (ten clients interleaved), so one further out of
/// order than this is rare enough to leave to the classic check.
const WINDOW: usize = 1 << 15;

/// What the streamed check came to.
pub(crate) enum Streamed {
    /// The run was judged here; the results are the classic check's.
    Judged(Box<Results>),
    /// Check it the classic way, with final.json as loaded here when given (nothing
    /// was judged against it), else loading it again.
    Classic(Option<Option<Box<LogData>>>),
}

/// The run's parameters the check needs.
pub(crate) struct Params {
    pub accounts: Accounts,
    pub total: Option<i128>,
    pub liveness: Liveness,
    pub initial: i64,
    /// run.toml's `clients` (see `classic::split_internal`).
    pub workers: Option<i64>,
}

/// Checks the run in bounded memory when it can (see the module docs). `progress` is
/// fed every line; when the answer is [`Streamed::Classic`] it must be fed afresh.
pub(crate) fn check(files: &RunFiles, params: Params, progress: &mut Fold) -> Streamed {
    // A file that cannot be read is the classic check's to report (it words the
    // error as before, and says which file's error comes first).
    let mut fin = match final_load::load_log(&files.final_json, params.accounts.clone()) {
        Ok(Some(fin)) => fin,
        Ok(None) => return Streamed::Classic(Some(None)),
        Err(_) => return Streamed::Classic(None),
    };
    if !eligible(&fin) {
        return Streamed::Classic(Some(Some(Box::new(fin))));
    }
    let log_order = exactly_once::log_order(&fin.log);
    let agreement = std::mem::take(&mut fin.agreement);
    let mut judge = Judge::new(&fin, &log_order, agreement, &params);
    let workers = params.workers;
    let mut step = |d: &mut HistoryData| judge.step(d);
    let hist = ops::read_history_judged(
        &files.history,
        (params.accounts, params.total, params.liveness),
        |ev, text, fast| progress.line(ev, text, fast),
        Some(&mut step),
    );
    let Ok(mut hist) = hist else {
        return Streamed::Classic(None);
    };
    super::summary::split_internal(&mut hist, workers);
    match judge.end(hist) {
        Some(results) => Streamed::Judged(Box::new(results)),
        None => Streamed::Classic(None),
    }
}

/// Whether the run has what the streamed check assumes: a fetched, gapless log whose
/// accounts are all declared, and, under shared positions, a known initial position.
fn eligible(fin: &LogData) -> bool {
    let fetched = fin.nodes.iter().any(NodeState::fetched);
    let base_known =
        fin.positions == Positions::Unique || fin.base_revision.is_some() || fin.log.first() != 0;
    fetched && base_known && fin.log.first_gap().is_none() && fin.accounts.undeclared().is_empty()
}

/// One bit per slot of the log.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    /// Sets bit `i`; false if it was set already (or is out of range).
    fn set(&mut self, i: usize) -> bool {
        let Some(w) = self.0.get_mut(i / 64) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        let fresh = *w & bit == 0;
        *w |= bit;
        fresh
    }
}

/// A client's judged past: what order and request ids must continue.
#[derive(Clone, Copy, Default)]
struct Past {
    /// The last operation judged, its request id, and the last exec index told.
    last: Option<(u32, u64)>,
    exec: u64,
}

/// The streamed check's state between the history's events (see the module docs).
struct Judge<'f> {
    fin: &'f LogData,
    log: &'f AgreedLog,
    nodes: &'f [NodeState],
    log_order: &'f [u32],
    positions: Positions,
    initial: i64,
    agreement: Agreement,
    walk: Walk,
    eo: Check,
    window: VecDeque<OpRec>,
    /// Slots some operation's key claimed (exactly-once), and positions some write
    /// was told (unique positions).
    claimed: Bits,
    claimed_count: usize,
    written: Bits,
    clients: Vec<Past>,
    /// The real-time floor this judge holds in the store.
    floor: u32,
    execs: Vec<u64>,
    /// Why the streamed verdict cannot be used, once something says so (in words, for
    /// whoever debugs a run that was handed back).
    gave_up: Option<&'static str>,
}

impl<'f> Judge<'f> {
    fn new(
        fin: &'f LogData,
        log_order: &'f [u32],
        mut agreement: Agreement,
        p: &Params,
    ) -> Judge<'f> {
        let (ops, clients) = (Ops::default(), Clients::default());
        let input = replay_input(fin, &ops, &[], &clients, &p.accounts, p.initial);
        let walk = Walk::new(&input, &mut agreement);
        let slots = fin.log.slot_count();
        Judge {
            fin,
            log: &fin.log,
            nodes: &fin.nodes,
            log_order,
            positions: fin.positions,
            initial: p.initial,
            agreement,
            walk,
            eo: Check::default(),
            window: VecDeque::new(),
            claimed: Bits::new(slots),
            claimed_count: 0,
            written: Bits::new(slots),
            clients: Vec::new(),
            floor: NO_OP,
            execs: Vec::new(),
            gave_up: None,
        }
    }

    fn give_up(&mut self, why: &'static str) {
        self.gave_up.get_or_insert(why);
    }

    /// After each event: hold the new real-time floor, judge what finished.
    fn step(&mut self, d: &mut HistoryData) -> bool {
        let floor = d.total_order.floor();
        if floor != self.floor {
            d.ops.hold(floor);
            d.ops.release(self.floor);
            self.floor = floor;
        }
        if !d.finished.is_empty() {
            let mut finished = std::mem::take(&mut d.finished);
            for &op in &finished {
                self.finish(d, op);
            }
            finished.clear();
            d.finished = finished;
        }
        self.gave_up.is_none()
    }

    /// Judges `op`, whose client is past it, and lets it go.
    fn finish(&mut self, d: &mut HistoryData, op: u32) {
        let x = d.ops.get(op);
        self.in_order(op, &x);
        if x.exec == 0 && x.has(flag::OBS_OK) {
            // The classic check places it where the log holds its key.
            self.give_up("an ok answer carried no exec_index");
        }
        self.exactly_once(d, op, &x);
        self.client_order(&x);
        if x.exec != 0 {
            self.enter(d, x);
        }
        d.ops.finish(op);
    }

    /// A client's operations finish in the order it invoked them, with request ids
    /// that increase: so each (client, request id) is one record, as the classic
    /// check's groups are.
    fn in_order(&mut self, op: u32, x: &OpRec) {
        let c = x.client as usize;
        if self.clients.len() <= c {
            self.clients.resize(c + 1, Past::default());
        }
        let past = &mut self.clients[c];
        if past
            .last
            .is_some_and(|(o, rid)| o >= op || rid >= x.request_id)
        {
            self.give_up("a client's operations finished out of order or reused a request id");
        }
        self.clients[c].last = Some((op, x.request_id));
    }

    fn shared_observer(&self, x: &OpRec) -> bool {
        self.positions == Positions::SharedReads && x.observes()
    }

    /// Exactly-once for one operation, with the log's exec indices under its key.
    fn exactly_once(&mut self, d: &mut HistoryData, op: u32, x: &OpRec) {
        let log = self.log;
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        let key = (d.clients.raw(x.client), x.request_id);
        if x.exec != 0 && !self.shared_observer(x) {
            // Where the answer put it: that slot must hold its key (any other slot
            // holding it stays unclaimed, and is found at the end).
            match log.get(x.exec) {
                Some(s) if (log.client(&s), s.request_id) == key => execs.push(x.exec),
                _ => self.give_up("an operation is not at the exec_index it was told"),
            }
        } else if x.exec == 0 {
            exactly_once::execs_of(log, self.log_order, key, &mut execs);
        }
        // (An observer under shared positions claims nothing: its key in the log
        // would stay unclaimed.)
        for &e in &execs {
            let at = (e - self.log.exec_of(0)) as usize;
            if !self.claimed.set(at) {
                self.give_up("a log slot was claimed twice");
            }
            self.claimed_count += 1;
        }
        let input = exactly_once::Input {
            ops: &d.ops,
            clients: &d.clients,
            accounts: &d.accounts,
            log,
            log_order: &[],
            op_order: &[],
            positions: self.positions,
        };
        let clean = exactly_once::judge_one(
            &input,
            &mut self.eo,
            &mut d.total_order,
            &[op],
            &execs,
            true,
        );
        self.execs = execs;
        if !clean {
            self.give_up("exactly-once found something");
        }
    }

    /// Client order and unique positions (`TotalOrder::client_order`, `unique`): any
    /// breach gives up, the classic check words it.
    fn client_order(&mut self, x: &OpRec) {
        if x.exec == 0 {
            return;
        }
        let shared = self.positions == Positions::SharedReads;
        let last = self.clients[x.client as usize].exec;
        let may_share = shared && last == x.exec && x.observes();
        if last != 0 && last >= x.exec && !may_share {
            self.give_up("a client's exec indices did not increase");
        }
        self.clients[x.client as usize].exec = x.exec;
        if !self.shared_observer(x) {
            let at = x.exec.checked_sub(self.log.exec_of(0));
            let fresh = at
                .and_then(|a| usize::try_from(a).ok())
                .is_some_and(|a| self.written.set(a));
            if !fresh {
                self.give_up("two operations were told one position");
            }
        }
    }

    /// Puts `x` (told an exec index) in the replay's window, in exec order, and
    /// replays what falls out of it.
    fn enter(&mut self, d: &mut HistoryData, x: OpRec) {
        let at = self
            .window
            .iter()
            .rposition(|w| w.exec <= x.exec)
            .map_or(0, |i| i + 1);
        self.window.insert(at, x);
        while self.window.len() > WINDOW {
            if let Some(y) = self.window.pop_front() {
                self.replay(d, &y);
            }
        }
    }

    fn replay(&mut self, d: &mut HistoryData, x: &OpRec) {
        let (ops, clients, accounts) = (&d.ops, &d.clients, &d.accounts);
        let input = replay_input(self.fin, ops, &d.read_alls, clients, accounts, self.initial);
        match self.walk.judge(&input, x, &mut self.agreement) {
            Judged::Done => {}
            Judged::Found => self.give_up("the replay found something"),
            Judged::Late => self.give_up("an answer arrived later than the replay's window"),
            Judged::Elsewhere => self.give_up("an operation lies outside the replayed log"),
        }
        // Its read_all is judged: let it go.
        if let (Cmd::ReadAll, n) = (x.cmd(), x.all()) {
            if let Some(all) = (n as usize)
                .checked_sub(1)
                .and_then(|i| d.read_alls.get_mut(i))
            {
                *all = Box::default();
            }
        }
    }

    /// After the history: replays the rest, and assembles the results if the run
    /// was judged here.
    fn end(mut self, mut d: HistoryData) -> Option<Results> {
        if !self.step(&mut d) {
            return None;
        }
        while let Some(y) = self.window.pop_front() {
            self.replay(&mut d, &y);
        }
        let covered = (0..self.log.slot_count() as u32)
            .filter(|&at| self.log.at(at).is_some())
            .count();
        if covered != self.claimed_count {
            self.give_up("some log entries are no operation's, or an operation's twice");
        }
        if d.ops.missed() {
            self.give_up("a dropped record was needed");
        }
        if self.gave_up.is_some() {
            return None;
        }
        let (ops, clients, accounts) = (&d.ops, &d.clients, &d.accounts);
        let input = replay_input(self.fin, ops, &d.read_alls, clients, accounts, self.initial);
        let replay = self.walk.finish(&input, &mut self.agreement);
        let exactly_once = std::mem::take(&mut self.eo).finish();
        self.assemble(d, replay, exactly_once)
    }

    /// The results as `classic::check_loaded` gives them, when every check this
    /// path judges is clean and no anomaly elsewhere needs the records.
    fn assemble(
        self,
        d: HistoryData,
        replay: CheckResult,
        exactly_once: CheckResult,
    ) -> Option<Results> {
        let HistoryData {
            ops,
            clients,
            accounts,
            stats,
            mut warnings,
            mut conservation,
            mut total_order,
            well_formed,
            liveness,
            ..
        } = d;
        super::summary::warn_undeclared(&accounts, &mut warnings);
        total_order.settle(self.positions, &ops, &clients, &accounts);
        conservation.final_state(Some(self.nodes), &accounts);
        let mut checks = BTreeMap::new();
        Sections {
            well_formed: well_formed.finish(stats.events - stats.nemesis),
            liveness: liveness.finish(stats.last_time_ns, &clients, &accounts),
            conservation: conservation.finish(),
            agreement: self.agreement.finish(Some(self.nodes)),
            total_order: total_order.finish(),
            replay,
            exactly_once,
        }
        .insert_into(&mut checks);
        if ops.missed() || !clean(&checks) {
            return None;
        }
        let final_state = super::summary::summarize_final(Some(self.fin), &accounts);
        Some(Results::judged(stats, final_state, warnings, checks))
    }
}

/// The checks this path judges found nothing, and no anomaly of another check names
/// only log positions (the classic check names the history events told them, which
/// needs the records).
fn clean(checks: &BTreeMap<String, CheckResult>) -> bool {
    let judged = ["total-order", "replay", "exactly-once"];
    let judged_clean = judged
        .iter()
        .all(|k| checks.get(*k).is_some_and(|c| c.valid == Validity::Valid));
    let attachable = checks
        .values()
        .flat_map(|c| &c.anomalies)
        .any(|a| a.indices.is_empty() && !a.exec_indices.is_empty());
    judged_clean && !attachable
}

fn replay_input<'a>(
    fin: &'a LogData,
    ops: &'a Ops,
    read_alls: &'a [Box<[(crate::model::Acct, i64)]>],
    clients: &'a Clients,
    accounts: &'a Accounts,
    initial: i64,
) -> replay::Input<'a> {
    replay::Input {
        ops,
        read_alls,
        by_exec: &[],
        clients,
        accounts,
        log: &fin.log,
        nodes: &fin.nodes,
        initial,
        positions: fin.positions,
        base_revision: fin.base_revision,
    }
}
