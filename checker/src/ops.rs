//! One streaming pass over the history that folds events into logical operations.
//!
//! A client retry reuses the request id, so a logical operation is a (client, request
//! id) pair, possibly with several invoke/complete attempts. Each becomes one compact
//! [`OpRec`] (stored packed in 40 bytes, see [`Ops`]), pushed in the order of its first
//! invocation. The pass keeps per client only the operations that may still see events
//! (a short list), so it needs no map over all operations.
//!
//! The same pass feeds the checks that need only the current event: conservation (every
//! read and post-transfer balance), real-time order (a sweep keeping the largest
//! exec index among completed operations, recorded at each operation's first invoke),
//! well-formedness (one operation in flight per client, one completion per invocation,
//! retries that repeat their command; events are named by line), liveness (see
//! `checks::liveness`); the runner hands each line to the progress rule as well, so the
//! history is read once.

use crate::checks::conservation::Conservation;
use crate::checks::liveness::Liveness;
use crate::checks::total_order::TotalOrder;
use crate::checks::well_formed::WellFormed;
use crate::history::{CowStr, EventType, HistoryError, HistoryReader, Process};
use crate::load::fastjson::{event_key, once, put, set, Cur, Lit};
use crate::load::fields::{self, FieldErr, Fields, Shape, ValueFields};
use crate::model::{Accounts, Acct, Cmd, FKind};
use crate::records::{flag, Clients, OpRec, Ops};
use crate::records::{At, Busy};
use serde::Deserialize;
use serde::Serialize;
use std::cell::Cell;
use std::path::Path;

/// How many operations a client keeps open for retries before old finished ones
/// are forgotten (see [`Collector::prune_open`]).
const MAX_OPEN: usize = 32;

/// Counts about the history, reported in results.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryStats {
    pub file: String,
    pub lines: u64,
    pub events: u64,
    pub invokes: u64,
    pub oks: u64,
    pub fails: u64,
    pub infos: u64,
    pub nemesis: u64,
    pub operations: u64,
    /// Client processes (the harness's workers).
    pub clients: u64,
    /// Processes the harness ran for itself, numbered from run.toml's `clients` on (the
    /// final `read_all` through each replica); not counted in `clients`.
    #[serde(default)]
    pub internal_processes: u64,
    pub first_time_ns: u64,
    pub last_time_ns: u64,
    /// Set when the last line was cut off and checking stopped before it.
    pub truncated_at_line: Option<u64>,
}

/// Everything the history pass produced.
pub(crate) struct HistoryData {
    pub ops: Ops,
    pub read_alls: Vec<Box<[(Acct, i64)]>>,
    pub clients: Clients,
    pub accounts: Accounts,
    pub stats: HistoryStats,
    pub warnings: Vec<String>,
    pub conservation: Conservation,
    pub total_order: TotalOrder,
    pub well_formed: WellFormed,
    pub liveness: Liveness,
    /// With a streamed store ([`Ops::streamed`]): operations whose client is past them
    /// (they will see no more events), in the order that became known, for the
    /// streamed check to judge and release. Empty otherwise.
    pub finished: Vec<u32>,
}

/// A history line as the checks read it: `value` parsed in the same pass, `node`
/// skipped.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckEvent<'a> {
    pub index: u64,
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(borrow)]
    pub f: CowStr<'a>,
    #[serde(borrow, default)]
    pub value: ValueFields<'a>,
    #[serde(default)]
    pub request_id: Option<u64>,
    #[serde(default)]
    pub exec_index: Option<u64>,
}

impl<'a> CheckEvent<'a> {
    /// Parses a line without serde (see [`crate::load::fastjson`]); `None` means "let serde
    /// decide".
    pub fn fast(line: &'a [u8]) -> Option<CheckEvent<'a>> {
        Self::as_written(line).or_else(|| Self::any_order(line))
    }

    /// A line exactly as the harness writes it: its keys in that order, no spaces, no
    /// other key but `node`. Each key is one compare and needs no dispatch. `None` for
    /// anything else, which [`CheckEvent::any_order`] reads.
    fn as_written(line: &'a [u8]) -> Option<CheckEvent<'a>> {
        const INDEX: Lit = Lit::new(b"{\"index\":");
        const TIME: Lit = Lit::new(b",\"time_ns\":");
        const PROCESS: Lit = Lit::new(b",\"process\":");
        const TYPE: Lit = Lit::new(b",\"type\":");
        const F: Lit = Lit::new(b",\"f\":");
        const VALUE: Lit = Lit::new(b",\"value\":");
        const REQUEST: Lit = Lit::new(b",\"request_id\":");
        const NODE: Lit = Lit::new(b",\"node\":");
        const EXEC: Lit = Lit::new(b",\"exec_index\":");
        const END: Lit = Lit::new(b"}");
        let mut c = Cur::new(line);
        c.take(INDEX).then_some(())?;
        let index = c.u64().ok()?;
        c.take(TIME).then_some(())?;
        let time_ns = c.u64().ok()?;
        c.take(PROCESS).then_some(())?;
        let process = c.process().ok()?;
        c.take(TYPE).then_some(())?;
        let kind = c.event_type().ok()?;
        c.take(F).then_some(())?;
        let f = c.f().ok()?;
        c.take(VALUE).then_some(())?;
        let mut value = ValueFields::default();
        c.value_fields_into(&mut value).ok()?;
        let request_id = if c.take(REQUEST) {
            c.opt_u64().ok()?
        } else {
            None
        };
        if c.take(NODE) {
            c.skip().ok()?;
        }
        let exec_index = if c.take(EXEC) {
            c.opt_u64().ok()?
        } else {
            None
        };
        (c.take(END) && c.at_end()).then_some(CheckEvent {
            index,
            time_ns,
            process,
            kind,
            f,
            value,
            request_id,
            exec_index,
        })
    }

    /// [`CheckEvent::fast`] for keys in any order (and spaces, and unknown keys).
    fn any_order(line: &'a [u8]) -> Option<CheckEvent<'a>> {
        let mut c = Cur::new(line);
        let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut value, mut request_id, mut exec_index) = (ValueFields::default(), None, None);
        let mut seen = 0u16;
        c.object_hinted(event_key, |c, k| {
            let bit = match k {
                b"index" => put(&mut index, c.u64()?, 0),
                b"time_ns" => put(&mut time_ns, c.u64()?, 1),
                b"process" => put(&mut process, c.process()?, 2),
                b"type" => put(&mut kind, c.event_type()?, 3),
                b"f" => put(&mut f, c.f()?, 4),
                b"value" => {
                    c.value_fields_into(&mut value)?;
                    5
                }
                b"request_id" => set(&mut request_id, c.opt_u64()?, 6),
                b"exec_index" => set(&mut exec_index, c.opt_u64()?, 7),
                _ => {
                    c.skip()?;
                    return Ok(());
                }
            };
            once(&mut seen, bit)
        })
        .ok()?;
        if !c.at_end() {
            return None;
        }
        Some(CheckEvent {
            index: index?,
            time_ns: time_ns?,
            process: process?,
            kind: kind?,
            f: f?,
            value,
            request_id,
            exec_index,
        })
    }
}

/// Folds events into operations; see the module docs.
pub(crate) struct Collector {
    data: HistoryData,
    /// The line of the event being fed, for messages.
    line: u64,
    last_index: Option<u64>,
    index_disorder: u64,
    time_disorder: u64,
    unknown_f: u64,
}

impl Collector {
    pub fn new(accounts: Accounts, total: Option<i128>, liveness: Liveness) -> Collector {
        Collector {
            data: HistoryData {
                ops: Ops::default(),
                read_alls: Vec::new(),
                clients: Clients::default(),
                accounts,
                stats: HistoryStats::default(),
                warnings: Vec::new(),
                conservation: Conservation::new(total),
                total_order: TotalOrder::default(),
                well_formed: WellFormed::default(),
                liveness,
                finished: Vec::new(),
            },
            line: 0,
            last_index: None,
            index_disorder: 0,
            time_disorder: 0,
            unknown_f: 0,
        }
    }

    /// Takes one event, read from `line` of the file.
    pub fn feed(&mut self, ev: &CheckEvent<'_>, line: u64) -> Result<(), FieldErr> {
        self.line = line;
        self.note_order(ev);
        let stats = &mut self.data.stats;
        stats.events += 1;
        match ev.kind {
            EventType::Invoke => stats.invokes += 1,
            EventType::Ok => stats.oks += 1,
            EventType::Fail => stats.fails += 1,
            EventType::Info => stats.infos += 1,
        }
        let Process::Client(process) = ev.process else {
            stats.nemesis += 1;
            if ev.kind == EventType::Info {
                self.data.liveness.nemesis(&ev.f, ev.time_ns, ev.index);
            }
            return Ok(());
        };
        let rid = ev
            .request_id
            .ok_or_else(|| FieldErr::new("request_id", "missing on a client event"))?;
        if ev.value.shape == Shape::Other {
            return Err(FieldErr::new(
                "value",
                "expected an object or null on a client event",
            ));
        }
        let f = FKind::parse(&ev.f);
        if f == FKind::Other {
            self.unknown_f += 1;
        }
        let client = self.data.clients.dense(process);
        if ev.kind == EventType::Invoke {
            self.invoke(ev, client, rid, f)
        } else {
            self.complete(ev, client, rid, f)
        }
    }

    fn note_order(&mut self, ev: &CheckEvent<'_>) {
        let stats = &mut self.data.stats;
        if stats.events == 0 {
            stats.first_time_ns = ev.time_ns;
        } else if ev.time_ns < stats.last_time_ns {
            self.time_disorder += 1;
        }
        stats.last_time_ns = stats.last_time_ns.max(ev.time_ns);
        if self.last_index.is_some_and(|last| ev.index <= last) {
            self.index_disorder += 1;
        }
        self.last_index = Some(ev.index);
    }

    fn invoke(
        &mut self,
        ev: &CheckEvent<'_>,
        client: u32,
        rid: u64,
        f: FKind,
    ) -> Result<(), FieldErr> {
        let cmd = fields::command(f, &ev.value.fields, &mut self.data.accounts)?;
        let at = self.at(ev);
        let d = &mut self.data;
        let raw = d.clients.raw(client);
        if let Some(busy) = d.clients.busy[client as usize] {
            d.well_formed.overlap(at, busy.at, raw, rid, busy.rid);
        }
        let op = match d.clients.find_open(client, rid) {
            Some(op) => {
                let mut rec = d.ops.get(op);
                if rec.cmd() != cmd {
                    rec.flags |= flag::RETRY_CHANGED;
                    d.ops.set(op, &rec);
                    let cmds = (&rec.cmd(), &cmd);
                    d.well_formed
                        .retry_changed(at, rec.first_index, (raw, rid), cmds, &d.accounts);
                }
                op
            }
            None => self.new_op(client, rid, cmd, ev.index),
        };
        let d = &mut self.data;
        d.clients.busy[client as usize] = Some(Busy { op, rid, at });
        d.liveness
            .invoke(client, rid, cmd, (at.line, at.index), ev.time_ns);
        d.ops
            .update(op, |rec| rec.pending = rec.pending.saturating_add(1));
        self.prune_open(client, rid);
        Ok(())
    }

    fn at(&self, ev: &CheckEvent<'_>) -> At {
        At {
            line: self.line,
            index: ev.index,
        }
    }

    fn new_op(&mut self, client: u32, rid: u64, cmd: Cmd, index: u64) -> u32 {
        let floor = self.data.total_order.floor();
        let op = self
            .data
            .ops
            .push(OpRec::new(client, floor, rid, cmd, index));
        self.data.clients.open[client as usize].push((rid, op));
        op
    }

    /// Forgets a client's operations that are finished and older than `rid`: a client
    /// only retries its current request, so they will see no more events. (If one
    /// does, it becomes a second record, merged with the first by the later checks.)
    fn prune_open(&mut self, client: u32, rid: u64) {
        let d = &mut self.data;
        let ops = &d.ops;
        let open = &mut d.clients.open[client as usize];
        // A streamed store hands each forgotten operation on to be judged.
        let finished = ops.is_streamed().then_some(&mut d.finished);
        let mut forget = Forget { finished };
        open.retain(|&(r, op)| forget.keep(op, r >= rid || ops.get(op).pending > 0));
        // Request ids that do not increase would keep everything "newer": bound the
        // list (keeping what is in flight and the latest few) so lookups stay cheap.
        if open.len() > MAX_OPEN {
            let keep_from = open.len() - MAX_OPEN / 4;
            let mut i = 0;
            open.retain(|&(_, op)| {
                i += 1;
                forget.keep(op, i > keep_from || ops.get(op).pending > 0)
            });
        }
    }

    fn complete(
        &mut self,
        ev: &CheckEvent<'_>,
        client: u32,
        rid: u64,
        f: FKind,
    ) -> Result<(), FieldErr> {
        let v = &ev.value.fields;
        let at = self.at(ev);
        let raw = self.data.clients.raw(client);
        let mut fresh = false;
        let op = match self.data.clients.find_open(client, rid) {
            Some(op) => op,
            None => {
                fresh = true;
                // A completion with no invocation: keep it (the log may still say
                // what became of it), but the history is malformed.
                let cmd = fields::command(f, v, &mut self.data.accounts)?;
                let op = self.new_op(client, rid, cmd, ev.index);
                self.data.ops.update(op, |r| r.flags |= flag::ORPHAN);
                self.data.well_formed.orphan(at, raw, rid, ev.kind.as_str());
                op
            }
        };
        let d = &mut self.data;
        let definite = matches!(ev.kind, EventType::Ok | EventType::Fail);
        d.liveness
            .complete(client, rid, definite, ev.index, ev.time_ns);
        let busy = &mut d.clients.busy[client as usize];
        if busy.is_some_and(|b| b.op == op) {
            *busy = None;
        }
        let mut rec = d.ops.get(op);
        if rec.pending == 0 && !fresh {
            d.well_formed.duplicate(at, rec.done_index, raw, rid);
        }
        if let Cmd::Transfer { from, to, amount } = rec.cmd() {
            let invoked = (d.accounts.name(from), d.accounts.name(to), amount);
            let told = (v.from.as_deref(), v.to.as_deref(), v.amount);
            if let Some(now) = WellFormed::transfer_changed(invoked, told) {
                let was = rec.cmd().describe(&d.accounts);
                d.well_formed
                    .completion_changed(at, rec.first_index, (raw, rid), (&was, &now));
            }
        }
        rec.pending = rec.pending.saturating_sub(1);
        if rec.exec == 0 {
            // Until an answer with an exec index decides it, the latest answer frames it.
            rec.done_index = ev.index;
        }
        rec.flags |= match (ev.kind, ev.exec_index) {
            (EventType::Info | EventType::Invoke, None) => flag::INFO,
            (EventType::Fail, None) => flag::REJECT,
            (EventType::Ok, None) => flag::OK,
            (_, Some(_)) => 0,
        };
        match (ev.kind, ev.exec_index) {
            (kind, Some(exec)) => self.definite(op, rec, kind, exec, ev, v),
            (EventType::Ok, None) => {
                self.observe(&mut rec, ev, v);
                self.data.ops.set(op, &rec);
            }
            _ => d.ops.set(op, &rec),
        }
        Ok(())
    }

    /// A completion carrying an exec index: the command executed at `exec`. Stores
    /// `rec`, the operation numbered `op` as this completion left it.
    fn definite(
        &mut self,
        op: u32,
        mut rec: OpRec,
        kind: EventType,
        exec: u64,
        ev: &CheckEvent<'_>,
        v: &Fields<'_>,
    ) {
        let d = &mut self.data;
        rec.flags |= match kind {
            EventType::Ok => flag::OK,
            EventType::Fail => flag::FAIL_EXEC,
            _ => flag::INFO,
        };
        if rec.exec != 0 {
            if rec.exec != exec {
                rec.flags |= flag::CONFLICT;
                d.ops.set(op, &rec);
                d.total_order
                    .on_conflict(&d.ops, op, exec, ev.index, &d.clients, &d.accounts);
            } else {
                d.ops.set(op, &rec);
            }
            return;
        }
        rec.exec = exec;
        rec.done_index = ev.index;
        if kind != EventType::Info {
            self.observe(&mut rec, ev, v);
        }
        let d = &mut self.data;
        d.ops.set(op, &rec);
        d.total_order
            .on_definite(&d.ops, op, &d.clients, &d.accounts);
    }

    /// Records in `rec` what the client saw and checks it for conservation.
    fn observe(&mut self, rec: &mut OpRec, ev: &CheckEvent<'_>, v: &Fields<'_>) {
        let d = &mut self.data;
        rec.flags |= flag::OBSERVED;
        if ev.kind != EventType::Ok {
            if fields::is_insufficient(v.error) {
                rec.flags |= flag::INSUFFICIENT;
            }
            return;
        }
        rec.flags |= flag::OBS_OK;
        match rec.cmd() {
            Cmd::Transfer { from, to, .. } => {
                rec.observe(v.from_balance, v.to_balance);
                d.conservation.transfer_ok(
                    ev.index,
                    (from, v.from_balance),
                    (to, v.to_balance),
                    &d.accounts,
                );
            }
            Cmd::Read { account } => {
                rec.observe(v.balance, None);
                d.conservation
                    .read_ok(ev.index, account, v.balance, &d.accounts);
            }
            Cmd::ReadAll => 'all: {
                let Some(bal) = &v.balances else { break 'all };
                let mut all: Vec<(Acct, i64)> = bal
                    .0
                    .iter()
                    .map(|(name, b)| (d.accounts.intern(name), *b))
                    .collect();
                all.sort_unstable();
                d.conservation.read_all_ok(ev.index, &all, &d.accounts);
                d.read_alls.push(all.into_boxed_slice());
                rec.a = d.read_alls.len() as i64;
            }
            Cmd::Other => {}
        }
    }

    /// Ends the pass.
    pub fn finish(mut self) -> HistoryData {
        self.finish_open();
        let d = &mut self.data;
        d.stats.operations = d.ops.len() as u64;
        d.stats.clients = d.clients.len() as u64;
        if self.index_disorder > 0 {
            d.warnings.push(format!(
                "{} an index not greater than the line before; the checks use line order",
                has(self.index_disorder, "event")
            ));
        }
        if self.time_disorder > 0 {
            d.warnings.push(format!(
                "{} a time_ns smaller than an earlier event; the checks use line order",
                has(self.time_disorder, "event")
            ));
        }
        if self.unknown_f > 0 {
            d.warnings.push(format!(
                "{} an f other than transfer, read, read_all; only their identity and order are checked",
                has(self.unknown_f, "client event")
            ));
        }
        self.data
    }
}

impl Collector {
    /// With a streamed store, every operation still open is finished at the end of
    /// the history: each client's in the order it invoked them.
    fn finish_open(&mut self) {
        let d = &mut self.data;
        if !d.ops.is_streamed() {
            return;
        }
        for open in &mut d.clients.open {
            d.finished.extend(open.drain(..).map(|(_, op)| op));
        }
    }
}

/// Passes on what [`Collector::prune_open`] forgets, when a streamed check wants it.
struct Forget<'a> {
    finished: Option<&'a mut Vec<u32>>,
}

impl Forget<'_> {
    /// `keep`, noting `op` as finished when it is not kept.
    fn keep(&mut self, op: u32, keep: bool) -> bool {
        if let (false, Some(f)) = (keep, self.finished.as_mut()) {
            f.push(op);
        }
        keep
    }
}

/// Streams `path` through a [`Collector`]. Each line also goes to `each_line` (as read,
/// with its text and whether the fast reader read it), so a check that needs more of
/// a line than the collector keeps (the progress rule) needs no pass of its own.
pub(crate) fn read_history(
    path: &Path,
    accounts: Accounts,
    total: Option<i128>,
    liveness: Liveness,
    each_line: impl FnMut(&CheckEvent<'_>, &[u8], bool),
) -> Result<HistoryData, HistoryError> {
    read_history_judged(path, (accounts, total, liveness), each_line, None)
}

/// A judge of finished operations (see [`HistoryData::finished`]), called after each
/// event; `false` stops the pass (the judge gave up on the run).
pub(crate) type Judge<'a> = &'a mut dyn FnMut(&mut HistoryData) -> bool;

/// [`read_history`], with `judge` (when given) judging operations as they finish, so
/// that the records are not all held (a [`Ops::streamed`] store). When the judge
/// stops the pass, what is returned covers the history only up to there (the judge
/// knows it gave up); it is called once more after the pass either way.
pub(crate) fn read_history_judged(
    path: &Path,
    (accounts, total, liveness): (Accounts, Option<i128>, Liveness),
    mut each_line: impl FnMut(&CheckEvent<'_>, &[u8], bool),
    mut judge: Option<Judge<'_>>,
) -> Result<HistoryData, HistoryError> {
    let mut reader = HistoryReader::open(path)?;
    let mut collector = Collector::new(accounts, total, liveness);
    if judge.is_some() {
        collector.data.ops = Ops::streamed();
    }
    // An operation takes two lines of about 150 bytes: reserving up front saves the
    // copies (and page clearing) of a growing vector.
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    collector.data.ops.reserve((size / 320) as usize);
    let mut lines_done = 0;
    loop {
        // The line's text, and whether the fast reader read it (else serde did), as the
        // progress rule asks.
        let (text, fast) = (Cell::new(&b""[..]), Cell::new(false));
        let next = reader.next_numbered(
            |t| {
                text.set(t);
                let ev = CheckEvent::fast(t);
                fast.set(ev.is_some());
                ev
            },
            |_| Ok(()),
        )?;
        let Some((line, ev)) = next else { break };
        each_line(&ev, text.get(), fast.get());
        if let Err(e) = collector.feed(&ev, line) {
            return Err(reader.error(Some(e.field), e.message));
        }
        lines_done = reader.line_no();
        if let Some(j) = &mut judge {
            if !j(&mut collector.data) {
                break;
            }
        }
    }
    let truncation = reader.truncation().cloned();
    let mut data = collector.finish();
    if let Some(j) = &mut judge {
        j(&mut data);
    }
    data.stats.file = path.display().to_string();
    data.stats.lines = lines_done;
    if let Some(t) = truncation {
        data.stats.truncated_at_line = Some(t.line);
        data.warnings.insert(
            0,
            format!(
                "{}: the last line ({}, {} bytes) is cut off, as after a crash; checked up to line {}",
                path.display(),
                t.line,
                t.bytes,
                lines_done
            ),
        );
    }
    Ok(data)
}

/// "1 event has" / "2 events have".
fn has(n: u64, noun: &str) -> String {
    let verb = if n == 1 { "has" } else { "have" };
    format!("{} {verb}", crate::text::count(n, noun))
}

#[cfg(test)]
mod fast_tests {
    use super::*;

    #[test]
    fn fast_path_takes_generated_lines() {
        let lines = [
            r#"{"index":0,"time_ns":65991,"process":3,"type":"invoke","f":"read","value":{"account":"E"},"request_id":1}"#,
            r#"{"index":1,"time_ns":149984,"process":2,"type":"invoke","f":"transfer","value":{"amount":3,"from":"C","to":"A"},"request_id":1}"#,
            r#"{"index":5,"time_ns":2,"process":"nemesis","type":"info","f":"partition","value":[["n1"],["n2","n3"]]}"#,
            r#"{"index":9,"time_ns":9,"process":2,"type":"ok","f":"transfer","value":{"amount":3,"from":"C","from_balance":7,"to":"A","to_balance":13},"request_id":1,"node":"n1","exec_index":4}"#,
        ];
        for l in lines {
            assert!(CheckEvent::fast(l.as_bytes()).is_some(), "{l}");
            let written = CheckEvent::as_written(l.as_bytes());
            assert!(written.is_some(), "{l}");
            let any = CheckEvent::any_order(l.as_bytes());
            assert_eq!(format!("{written:?}"), format!("{any:?}"), "{l}");
        }
    }

    #[test]
    fn lines_written_otherwise_are_left_to_the_general_reader() {
        let lines = [
            r#"{"time_ns":1,"index":0,"process":3,"type":"invoke","f":"read","value":{"account":"E"},"request_id":1}"#,
            r#"{"index":0, "time_ns":1,"process":3,"type":"invoke","f":"read","value":{"account":"E"},"request_id":1}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"read","value":{"account":"E"},"request_id":1,"extra":2}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"read","value":{"account":"E"},"request_id":1,"exec_index":2,"node":"n1"}"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"read","value":{"account":"E"},"request_id":1,"exec_index":2} x"#,
            r#"{"index":0,"time_ns":1,"process":3,"type":"ok","f":"read","value":{"account":"E"},"request_id":1,"exec_index":2,"exec_index":3}"#,
        ];
        for l in lines {
            assert!(CheckEvent::as_written(l.as_bytes()).is_none(), "{l}");
        }
        // The general reader takes the reordered, spaced and extended ones, and the
        // same values.
        for l in &lines[..4] {
            let e = CheckEvent::any_order(l.as_bytes()).expect(l);
            assert_eq!((e.index, e.time_ns, e.request_id), (0, 1, Some(1)), "{l}");
        }
    }
}
