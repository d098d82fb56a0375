//! One compact record per logical client operation, and the dense client numbers.
//!
//! The history pass (`crate::ops`) folds events into these; the checks that read them
//! (total order, liveness, exactly-once, replay, linearizable) take them from here, so
//! no check imports the pass that feeds it. One is held per operation of the run, so
//! they are stored packed ([`Ops`]: 40 bytes each when every number fits in 32 bits,
//! as in any history the harness writes) and unpacked into an [`OpRec`] when read.

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

/// One logical client operation, as the checks read it from [`Ops`]: the command
/// flat ([`OpRec::cmd`]), the observed balances without `Option`s (presence is in
/// `flags`).
#[derive(Debug, Clone, Copy)]
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

/// Every operation of the run, numbered in order of first invocation, stored packed:
/// 40 bytes a record where [`OpRec`] takes 80. A record with a number that does not
/// fit its packed field (a request id, history index or exec index past 32 bits, a
/// balance or amount past 31, more than 65,536 clients or 256 accounts, as corrupt or
/// hand-written histories may have) is kept whole beside them, so nothing is lost.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    packed: Vec<Packed>,
    /// The records that do not fit, numbered by their packed `request_id`.
    wide: Vec<OpRec>,
    /// Set when the records are judged as the history streams (see [`Ops::streamed`]):
    /// then only the records something still needs are held, and `packed` stays empty.
    live: Option<Box<Live>>,
}

/// The records a streamed check still needs, each with how many reasons it is kept
/// (its client may still send events for it; an open operation names it as its
/// real-time floor; it is the floor now). A record nobody holds is dropped.
///
/// Records are released nearly in the order they were pushed (a client is past an
/// operation about ten operations later), so the recent ones sit in a ring indexed
/// by number; one still held when the ring moves on (a floor, an operation whose
/// client never came back) moves to a map, so memory stays bounded either way.
#[derive(Debug, Default)]
struct Live {
    /// Records `base..base + ring.len()`, `None` once dropped.
    ring: std::collections::VecDeque<Option<(OpRec, u32)>>,
    base: u32,
    /// Held records older than `base`.
    old: FxMap<u32, (OpRec, u32)>,
    /// How many records were ever pushed: the next one's number.
    count: u32,
    /// Some record was read after it was dropped (a bug, or a history shape the
    /// streamed check does not follow): the streamed verdict must not be used.
    missed: std::sync::atomic::AtomicBool,
}

/// How many recent records [`Live`]'s ring spans.
const RING: usize = 1 << 12;

impl Live {
    fn entry(&self, op: u32) -> Option<&(OpRec, u32)> {
        match op.checked_sub(self.base) {
            Some(i) => self.ring.get(i as usize)?.as_ref(),
            None => self.old.get(&op),
        }
    }

    fn entry_mut(&mut self, op: u32) -> Option<&mut (OpRec, u32)> {
        match op.checked_sub(self.base) {
            Some(i) => self.ring.get_mut(i as usize)?.as_mut(),
            None => self.old.get_mut(&op),
        }
    }

    fn push(&mut self, rec: OpRec) -> u32 {
        let op = self.count;
        self.count += 1;
        self.ring.push_back(Some((rec, 1)));
        while self.ring.len() > RING {
            if let Some(Some(e)) = self.ring.pop_front() {
                self.old.insert(self.base, e);
            }
            self.base += 1;
        }
        op
    }

    fn remove(&mut self, op: u32) {
        match op.checked_sub(self.base) {
            Some(i) => {
                if let Some(e) = self.ring.get_mut(i as usize) {
                    *e = None;
                }
                while let Some(None) = self.ring.front() {
                    self.ring.pop_front();
                    self.base += 1;
                }
            }
            None => {
                self.old.remove(&op);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ring.iter().filter(|e| e.is_some()).count() + self.old.len()
    }
}

/// [`OpRec`] in 40 bytes; see [`Ops`].
#[derive(Debug, Clone, Copy)]
struct Packed {
    rt_floor: u32,
    /// The request id, or the record's number in [`Ops::wide`] under [`WIDE`].
    request_id: u32,
    first_index: u32,
    done_index: u32,
    exec: u32,
    a: i32,
    b: i32,
    amount: i32,
    client: u16,
    flags: u16,
    accounts: [u8; 2],
    kind: u8,
    pending: u8,
}

const _: () = assert!(
    std::mem::size_of::<Packed>() <= 40,
    "a record per operation"
);

/// In [`Packed::flags`]: the record is in [`Ops::wide`]. No [`flag`] uses this bit.
const WIDE: u16 = 1 << 15;

impl Packed {
    /// `rec` packed, if every field fits.
    fn narrow(rec: &OpRec) -> Option<Packed> {
        let u = |v: u64| u32::try_from(v).ok();
        let i = |v: i64| i32::try_from(v).ok();
        let acct = |a: Acct| u8::try_from(a).ok();
        Some(Packed {
            rt_floor: rec.rt_floor,
            request_id: u(rec.request_id)?,
            first_index: u(rec.first_index)?,
            done_index: u(rec.done_index)?,
            exec: u(rec.exec)?,
            a: i(rec.a)?,
            b: i(rec.b)?,
            amount: i(rec.amount)?,
            client: u16::try_from(rec.client).ok()?,
            flags: (rec.flags & WIDE == 0).then_some(rec.flags)?,
            accounts: [acct(rec.accounts[0])?, acct(rec.accounts[1])?],
            kind: rec.kind,
            pending: u8::try_from(rec.pending).ok()?,
        })
    }

    fn unpack(&self) -> OpRec {
        OpRec {
            client: u32::from(self.client),
            rt_floor: self.rt_floor,
            request_id: u64::from(self.request_id),
            kind: self.kind,
            accounts: self.accounts.map(Acct::from),
            amount: i64::from(self.amount),
            first_index: u64::from(self.first_index),
            done_index: u64::from(self.done_index),
            exec: u64::from(self.exec),
            a: i64::from(self.a),
            b: i64::from(self.b),
            flags: self.flags,
            pending: u16::from(self.pending),
        }
    }

    /// A stand-in pointing at `wide[at]`.
    fn wide(at: usize) -> Packed {
        Packed {
            rt_floor: 0,
            request_id: at as u32,
            first_index: 0,
            done_index: 0,
            exec: 0,
            a: 0,
            b: 0,
            amount: 0,
            client: 0,
            flags: WIDE,
            accounts: [0; 2],
            kind: 0,
            pending: 0,
        }
    }
}

impl Ops {
    /// A store that holds only the records still needed ([`Ops::hold`], [`Ops::release`]):
    /// for the streamed check, which judges each operation once its client is past it.
    pub fn streamed() -> Ops {
        Ops {
            live: Some(Box::default()),
            ..Ops::default()
        }
    }

    /// Whether this is a [`Ops::streamed`] store.
    pub fn is_streamed(&self) -> bool {
        self.live.is_some()
    }

    /// In a streamed store: whether a dropped record was asked for (see [`Live::missed`]).
    pub fn missed(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| l.missed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// In a streamed store: how many records are held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.live.as_ref().map_or(0, |l| l.len())
    }

    /// In a streamed store: one more reason to keep the record numbered `op`.
    pub fn hold(&mut self, op: u32) {
        if let Some(l) = &mut self.live {
            if let Some((_, n)) = l.entry_mut(op) {
                *n += 1;
            }
        }
    }

    /// In a streamed store: `op` is judged and its client is past it. Its hold on its
    /// real-time floor goes now (else each floor would keep the one before it, and the
    /// chain of floors would be held to the end), and its own first hold.
    pub fn finish(&mut self, op: u32) {
        let Some(l) = &mut self.live else { return };
        let floor = match l.entry_mut(op) {
            Some((rec, _)) => std::mem::replace(&mut rec.rt_floor, NO_OP),
            None => NO_OP,
        };
        self.release(floor);
        self.release(op);
    }

    /// In a streamed store: one reason fewer to keep `op`. A record nobody holds is
    /// dropped, and with it its hold on its real-time floor.
    pub fn release(&mut self, op: u32) {
        let Some(l) = &mut self.live else { return };
        let mut next = op;
        while next != NO_OP {
            let Some((rec, n)) = l.entry_mut(next) else {
                return;
            };
            *n = n.saturating_sub(1);
            if *n > 0 {
                return;
            }
            let floor = rec.rt_floor;
            l.remove(next);
            next = floor;
        }
    }

    /// Room for `n` more records.
    pub fn reserve(&mut self, n: usize) {
        if self.live.is_none() {
            self.packed.reserve(n);
        }
    }

    pub fn len(&self) -> usize {
        match &self.live {
            Some(l) => l.count as usize,
            None => self.packed.len(),
        }
    }

    /// A streamed store's record numbered `op`; a stand-in (and [`Live::missed`] set)
    /// when it was dropped.
    fn live_get(l: &Live, op: u32) -> OpRec {
        match l.entry(op) {
            Some((rec, _)) => *rec,
            None => {
                l.missed.store(true, std::sync::atomic::Ordering::Relaxed);
                OpRec::new(0, NO_OP, 0, crate::model::Cmd::Other, 0)
            }
        }
    }

    /// The record numbered `op`.
    #[inline]
    pub fn get(&self, op: u32) -> OpRec {
        if let Some(l) = &self.live {
            return Self::live_get(l, op);
        }
        let p = &self.packed[op as usize];
        if p.flags & WIDE == 0 {
            p.unpack()
        } else {
            self.wide[p.request_id as usize]
        }
    }

    /// The exec index of the record numbered `op` (as `get(op).exec`, for sorts and
    /// lookups that read only it).
    #[inline]
    pub fn exec(&self, op: u32) -> u64 {
        if let Some(l) = &self.live {
            return Self::live_get(l, op).exec;
        }
        let p = &self.packed[op as usize];
        if p.flags & WIDE == 0 {
            u64::from(p.exec)
        } else {
            self.wide[p.request_id as usize].exec
        }
    }

    /// The dense client and request id of the record numbered `op`.
    #[inline]
    pub fn key(&self, op: u32) -> (u32, u64) {
        if let Some(l) = &self.live {
            let r = Self::live_get(l, op);
            return (r.client, r.request_id);
        }
        let p = &self.packed[op as usize];
        if p.flags & WIDE == 0 {
            (u32::from(p.client), u64::from(p.request_id))
        } else {
            let r = &self.wide[p.request_id as usize];
            (r.client, r.request_id)
        }
    }

    /// Replaces the record numbered `op`.
    pub fn set(&mut self, op: u32, rec: &OpRec) {
        if let Some(l) = &mut self.live {
            match l.entry_mut(op) {
                Some((r, _)) => *r = *rec,
                None => l.missed.store(true, std::sync::atomic::Ordering::Relaxed),
            }
            return;
        }
        let p = &mut self.packed[op as usize];
        if p.flags & WIDE != 0 {
            self.wide[p.request_id as usize] = *rec;
        } else if let Some(n) = Packed::narrow(rec) {
            *p = n;
        } else {
            *p = Packed::wide(self.wide.len());
            self.wide.push(*rec);
        }
    }

    /// Changes the record numbered `op` through `f`.
    pub fn update<T>(&mut self, op: u32, f: impl FnOnce(&mut OpRec) -> T) -> T {
        let mut rec = self.get(op);
        let out = f(&mut rec);
        self.set(op, &rec);
        out
    }

    /// Adds a record; returns its number.
    pub fn push(&mut self, rec: OpRec) -> u32 {
        if let Some(l) = &mut self.live {
            // Held until its client is past it; it holds its real-time floor meanwhile.
            let op = l.push(rec);
            if rec.rt_floor != NO_OP {
                self.hold(rec.rt_floor);
            }
            return op;
        }
        let op = self.packed.len() as u32;
        match Packed::narrow(&rec) {
            Some(p) => self.packed.push(p),
            None => {
                self.packed.push(Packed::wide(self.wide.len()));
                self.wide.push(rec);
            }
        }
        op
    }

    /// The records in order (of a streamed store: stand-ins for those dropped).
    pub fn iter(&self) -> impl Iterator<Item = OpRec> + Clone + '_ {
        (0..self.len() as u32).map(|op| self.get(op))
    }
}

impl FromIterator<OpRec> for Ops {
    fn from_iter<I: IntoIterator<Item = OpRec>>(iter: I) -> Ops {
        let mut ops = Ops::default();
        for rec in iter {
            ops.push(rec);
        }
        ops
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every field set, each to `big` or a value that fits.
    fn record(big: bool) -> OpRec {
        let wide = |narrow: u64, wide: u64| if big { wide } else { narrow };
        let cmd = Cmd::Transfer {
            from: 3,
            to: wide(4, 300) as Acct,
            amount: if big { -(1 << 40) } else { 7 },
        };
        let mut r = OpRec::new(wide(9, 70_000) as u32, 2, wide(5, u64::MAX), cmd, 11);
        r.done_index = wide(12, 1 << 33);
        r.exec = wide(40, u64::MAX - 1);
        r.observe(Some(if big { i64::MIN } else { -3 }), Some(8));
        r.flags |= flag::OK | flag::OBS_OK | flag::RETRY_CHANGED;
        r.pending = wide(1, 300) as u16;
        r
    }

    fn same(a: &OpRec, b: &OpRec) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn records_come_back_exactly_whether_they_fit_or_not() {
        let mut ops: Ops = [record(false), record(true), record(false)]
            .into_iter()
            .collect();
        assert_eq!(
            ops.wide.len(),
            1,
            "only the record that does not fit is kept whole"
        );
        for (i, big) in [false, true, false].into_iter().enumerate() {
            assert!(same(&ops.get(i as u32), &record(big)), "record {i}");
        }
        // A record that stops fitting when changed moves aside, losing nothing; the
        // others are untouched.
        let mut grown = record(false);
        grown.exec = 1 << 32;
        ops.set(0, &grown);
        assert!(same(&ops.get(0), &grown));
        assert!(same(&ops.get(1), &record(true)));
        assert!(same(&ops.get(2), &record(false)));
        ops.update(1, |r| r.exec = 5);
        assert_eq!(ops.get(1).exec, 5);
        assert_eq!(ops.get(1).request_id, u64::MAX);
        assert_eq!(ops.iter().count(), 3);
    }

    #[test]
    fn a_streamed_store_keeps_what_is_held_and_drops_the_rest() {
        let rec = |floor: u32, rid: u64| OpRec::new(0, floor, rid, Cmd::Read { account: 0 }, rid);
        let mut ops = Ops::streamed();
        // Operation 0 is the floor of all the others, and held as the floor.
        let first = ops.push(rec(NO_OP, 0));
        ops.hold(first);
        let n = 3 * RING as u32;
        for i in 1..n {
            assert_eq!(ops.push(rec(first, u64::from(i))), i);
        }
        assert_eq!(ops.len(), n as usize);
        // Release every one but 5 and 7,000 (the latter past the ring, in the map).
        for op in (1..n).filter(|&o| o != 5 && o != 7_000) {
            ops.release(op);
        }
        assert_eq!(ops.held(), 3, "the floor and two open operations");
        assert_eq!(ops.get(7_000).request_id, 7_000);
        assert_eq!(ops.get(5).request_id, 5);
        ops.update(5, |r| r.exec = 9);
        assert_eq!(ops.exec(5), 9);
        assert!(!ops.missed());
        // The floor goes when its client is past it, it is no longer the floor and the
        // last operation naming it goes.
        ops.release(first);
        ops.release(first);
        assert_eq!(ops.get(first).request_id, 0, "still named by two");
        ops.release(5);
        ops.release(7_000);
        assert_eq!(ops.held(), 0);
        assert!(!ops.missed());
        let _ = ops.get(5);
        assert!(ops.missed(), "a dropped record asked for is noted");
    }

    #[test]
    fn a_chain_of_floors_is_not_held_once_each_is_finished() {
        // Each operation's floor is the one before; each is the floor in turn, held
        // as such until the next takes over, and finished once its client is past it.
        let mut ops = Ops::streamed();
        let mut floor = NO_OP;
        for i in 0..10_000u32 {
            let op = ops.push(OpRec::new(0, floor, u64::from(i), Cmd::ReadAll, 0));
            ops.hold(op);
            ops.release(floor);
            floor = op;
            if let Some(done) = op.checked_sub(3) {
                ops.finish(done);
            }
        }
        // The last three, still open (the last is the floor), and the floor the first
        // of them names.
        assert_eq!(ops.held(), 4);
        assert!(!ops.missed());
    }
}
