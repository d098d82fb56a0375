//! One compact record per logical client operation, and the dense client numbers.
//!
//! The history pass (`crate::ops`) folds events into these; the checks that read them
//! (total order, liveness, exactly-once, replay, linearizable) take them from here, so
//! no check imports the pass that feeds it. A record is 80 bytes, one per operation of
//! the run, so its fields are packed (see [`OpRec`]).

use crate::model::{list, Accounts, Acct, Cmd, CmdParts, FxMap};

/// Where an event sits: its 1-based line in history.jsonl and its `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub line: u64,
    pub index: u64,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} (history index {})", self.line, self.index)
    }
}

/// Bits of [`OpRec::flags`].
pub(crate) mod flag {
    /// Some attempt completed `ok`.
    pub const OK: u16 = 1;
    /// Some attempt completed `fail` with an exec index (executed as a no-op).
    pub const FAIL_EXEC: u16 = 2;
    /// Some attempt completed `fail` without an exec index (rejected before proposal).
    pub const REJECT: u16 = 4;
    /// Some attempt completed `info` (outcome unknown).
    pub const INFO: u16 = 8;
    /// The observation recorded in `a`, `b`, `all` came from an `ok`.
    pub const OBS_OK: u16 = 16;
    /// The recorded `fail` said insufficient funds.
    pub const INSUFFICIENT: u16 = 32;
    /// Attempts reported two different exec indices.
    pub const CONFLICT: u16 = 64;
    /// A completion arrived with no invocation before it.
    pub const ORPHAN: u16 = 128;
    /// `a`, `b`, `all` hold what the client saw at `exec`.
    pub const OBSERVED: u16 = 256;
    /// A retry named another command than the first invocation (`cmd` is the first).
    pub const RETRY_CHANGED: u16 = 512;
    /// `exec` is where the log holds the command: the `ok` answer carried none.
    pub const EXEC_FROM_LOG: u16 = 1024;
    /// [`super::OpRec::a`] holds an observed balance.
    pub const A_SEEN: u16 = 2048;
    /// [`super::OpRec::b`] holds an observed balance.
    pub const B_SEEN: u16 = 4096;
}

/// No operation (for [`OpRec::rt_floor`]).
pub(crate) const NO_OP: u32 = u32::MAX;

/// One logical client operation. One is held per operation of the run, so the
/// fields are packed: the command flat ([`OpRec::cmd`]), the observed balances
/// without `Option`s (presence is in `flags`).
#[derive(Debug, Clone)]
pub(crate) struct OpRec {
    /// Dense client number (see [`Clients`]).
    pub client: u32,
    /// The operation with the largest exec index among those completed before this
    /// one was first invoked: its exec index is a lower bound for this one's.
    pub rt_floor: u32,
    pub request_id: u64,
    kind: u8,
    accounts: [Acct; 2],
    amount: i64,
    /// History index of the first invocation.
    pub first_index: u64,
    /// History index of the completion that decided the outcome (else the last event).
    pub done_index: u64,
    /// The exec index the client was told (0 if never).
    pub exec: u64,
    /// Observed results: `from_balance`/`to_balance`, or `balance` in `a` (see
    /// [`OpRec::a`]); for a `read_all`, `a` holds [`OpRec::all`].
    pub(crate) a: i64,
    b: i64,
    pub flags: u16,
    /// Attempts invoked but not completed.
    pub pending: u16,
}

/// How an operation ended, across all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpClass {
    /// Acknowledged: applied exactly once.
    Ok,
    /// Failed with an exec index: in the log exactly once, as a no-op.
    FailExec,
    /// Every attempt was rejected before proposal: never in the log.
    Rejected,
    /// Timed out or never answered: at most once.
    Indefinite,
}

const _: () = assert!(std::mem::size_of::<OpRec>() <= 80, "a record per operation");

impl OpRec {
    pub(crate) fn new(client: u32, rt_floor: u32, request_id: u64, cmd: Cmd, index: u64) -> OpRec {
        let CmdParts {
            kind,
            accounts,
            amount,
        } = cmd.pack();
        OpRec {
            client,
            rt_floor,
            request_id,
            kind,
            accounts,
            amount,
            first_index: index,
            done_index: index,
            exec: 0,
            a: 0,
            b: 0,
            flags: 0,
            pending: 0,
        }
    }

    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// The command first invoked.
    pub fn cmd(&self) -> Cmd {
        Cmd::unpack(self.kind, self.accounts, self.amount)
    }

    /// The first balance the client saw (`from_balance` or `balance`), if any.
    pub fn a(&self) -> Option<i64> {
        self.has(flag::A_SEEN).then_some(self.a)
    }

    /// The second balance the client saw (`to_balance`), if any.
    pub fn b(&self) -> Option<i64> {
        self.has(flag::B_SEEN).then_some(self.b)
    }

    /// 1-based index into [`HistoryData::read_alls`], 0 if none.
    pub fn all(&self) -> u32 {
        match self.cmd() {
            Cmd::ReadAll => self.a as u32,
            _ => 0,
        }
    }

    pub(crate) fn observe(&mut self, a: Option<i64>, b: Option<i64>) {
        let bit = |seen: bool, f: u16| if seen { f } else { 0 };
        self.flags &= !(flag::A_SEEN | flag::B_SEEN);
        self.flags |= bit(a.is_some(), flag::A_SEEN) | bit(b.is_some(), flag::B_SEEN);
        (self.a, self.b) = (a.unwrap_or(0), b.unwrap_or(0));
    }

    pub fn class(&self) -> OpClass {
        if self.has(flag::OK) {
            OpClass::Ok
        } else if self.has(flag::FAIL_EXEC) {
            OpClass::FailExec
        } else if self.has(flag::INFO) || self.pending > 0 || !self.has(flag::REJECT) {
            OpClass::Indefinite
        } else {
            OpClass::Rejected
        }
    }

    /// Whether, where positions are shared (etcd), the operation observes a position
    /// rather than takes one: reads, and transfers that failed (decided on a read).
    /// Ok transfers and unknown functions are writes.
    pub fn observes(&self) -> bool {
        matches!(self.cmd(), Cmd::Read { .. } | Cmd::ReadAll)
            || (self.has(flag::FAIL_EXEC) && !self.has(flag::OK))
    }

    /// The history indices that frame the operation.
    pub fn indices(&self) -> Vec<u64> {
        if self.first_index == self.done_index {
            vec![self.first_index]
        } else {
            vec![self.first_index, self.done_index]
        }
    }

    /// E.g. `transfer A->B 3 by client 3 (request 7, history 120, 131)`.
    pub fn describe(&self, clients: &Clients, accounts: &Accounts) -> String {
        format!(
            "{} by client {} (request {}, history {})",
            self.cmd().describe(accounts),
            clients.raw(self.client),
            self.request_id,
            list(&self.indices())
        )
    }
}

/// Maps client process numbers to dense indices and tracks each client's open ops.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    ids: FxMap<u64, u32>,
    raw: Vec<u64>,
    /// Per client: (request id, op) of operations that may still get events.
    pub(crate) open: Vec<Vec<(u64, u32)>>,
    /// Per client: the invocation in flight, if any (a client runs one at a time).
    pub(crate) busy: Vec<Option<Busy>>,
}

/// A client's invocation in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub op: u32,
    pub rid: u64,
    pub at: At,
}

impl Clients {
    pub(crate) fn dense(&mut self, process: u64) -> u32 {
        if let Some(&c) = self.ids.get(&process) {
            return c;
        }
        let c = self.raw.len() as u32;
        self.ids.insert(process, c);
        self.raw.push(process);
        self.open.push(Vec::new());
        self.busy.push(None);
        c
    }

    /// The dense number of a client process, if it appears in the history.
    pub fn get(&self, process: u64) -> Option<u32> {
        self.ids.get(&process).copied()
    }

    /// The process number of a dense client.
    /// Every process number seen, in order of first appearance.
    pub fn raw_ids(&self) -> &[u64] {
        &self.raw
    }

    pub fn raw(&self, client: u32) -> u64 {
        self.raw.get(client as usize).copied().unwrap_or(u64::MAX)
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub(crate) fn find_open(&self, client: u32, rid: u64) -> Option<u32> {
        self.open[client as usize]
            .iter()
            .rev()
            .find(|(r, _)| *r == rid)
            .map(|&(_, op)| op)
    }
}
