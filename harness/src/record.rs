//! Recording what the clients and the nemesis did into `history.jsonl`, as it happens.
//!
//! The format belongs to the checker (`checker::history`); this module only maps the client
//! protocol onto it. One lock orders the events: the time is read and the index assigned under
//! it, so index order is real-time order, which the checker's real-time checks rely on. Every
//! line is flushed as it is written, so a harness that crashes leaves a checkable prefix.
//!
//! On a sharded bank (see docs/sharded.md) an answer's exec index is a position on the shard
//! of the replica that gave it, so completions carry `positions` instead of `exec_index`, and
//! executed-log entries become [`shard_entry`]s, with a cross-shard transfer's phase.
//!
//! A write error does not stop the run (the replicas are still worth healing and stopping
//! cleanly); the first one is kept and reported at the end, and the run is not valid.

use crate::clients::caller::Submitted;
use checker::final_state::ExecutedEntry;
use checker::history::{values, Event, EventType, HistoryWriter};
use checker::shards::{Phase, ShardEntry, TxnId, Vote};
use replica::bank::{AbortReason, Command, Executed, Invalid, Op, OpResult, TxnPhase, TxnRecord};
use replica::types::{Account, NodeId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Operation counts, read by the progress display.
#[derive(Debug, Default)]
pub struct Counts {
    pub invoked: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counts {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.invoked.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

struct Inner {
    writer: Option<HistoryWriter<File>>,
    error: Option<String>,
}

pub struct Recorder {
    inner: Mutex<Inner>,
    start: Instant,
    pub counts: Counts,
    /// Set for a sharded bank: each replica's shard, to turn exec indices into positions.
    node_shards: OnceLock<BTreeMap<NodeId, u32>>,
}

impl Recorder {
    /// Creates `path`; times are measured from `start`.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Recorder> {
        let writer = HistoryWriter::create(path)?;
        Ok(Recorder {
            inner: Mutex::new(Inner {
                writer: Some(writer),
                error: None,
            }),
            start,
            counts: Counts::default(),
            node_shards: OnceLock::new(),
        })
    }

    /// A recorder that writes nothing (benchmarks measure the replicas, not our disk).
    pub fn discard(start: Instant) -> Recorder {
        Recorder {
            inner: Mutex::new(Inner {
                writer: None,
                error: None,
            }),
            start,
            counts: Counts::default(),
            node_shards: OnceLock::new(),
        }
    }

    /// Records a sharded bank's answers with `positions` on the answering replica's shard
    /// (call before the first completion; later calls change nothing).
    pub fn set_node_shards(&self, shards: BTreeMap<NodeId, u32>) {
        let _ = self.node_shards.set(shards);
    }

    fn append(&self, event: Event) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let Some(writer) = inner.writer.as_mut() else {
            return 0;
        };
        let index = writer.next_index();
        if let Err(e) = writer.append(&event.at(index, time_ns)) {
            inner
                .error
                .get_or_insert_with(|| format!("cannot write the history: {e}"));
            return index;
        }
        index
    }

    /// Records a client's invocation; call it just before the first send.
    pub fn invoke(&self, process: u64, command: &Command) -> u64 {
        self.counts.invoked.fetch_add(1, Ordering::Relaxed);
        let (f, value) = op_value(&command.op);
        self.append(Event::invoke(process, command.request.0, f, value))
    }

    /// Records how the invocation ended; returns the completion's type.
    pub fn complete(&self, process: u64, command: &Command, outcome: &Submitted) -> EventType {
        let mut event = completion(process, command, outcome);
        if let Some(shards) = self.node_shards.get() {
            event = with_positions(event, shards, outcome);
        }
        let kind = event.kind;
        let counter = match kind {
            EventType::Ok => &self.counts.ok,
            EventType::Fail => &self.counts.fail,
            _ => &self.counts.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.append(event);
        kind
    }

    /// Records a nemesis action.
    pub fn nemesis(&self, f: &str, value: Value) -> u64 {
        self.append(Event::nemesis(f, value))
    }

    /// Stops recording: the file is flushed and closed, and later events are dropped. For an
    /// interrupted run, whose clients may still be finishing while its history is checked.
    pub fn close(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.writer = None;
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .clone()
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

/// The history's `f` and invoke `value` for an operation.
pub fn op_value(op: &Op) -> (&'static str, Value) {
    let value = match op {
        Op::Transfer { from, to, amount } => values::transfer(from, to, *amount),
        Op::Read { account } => values::read(account),
        Op::ReadAll => Value::Null,
    };
    (op_name(op), value)
}

/// The history's `f` for an operation (without building its value).
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Transfer { .. } => "transfer",
        Op::Read { .. } => "read",
        Op::ReadAll => "read_all",
    }
}

/// The completion value and type of an executed operation.
pub fn result_value(op: &Op, result: &OpResult) -> (EventType, Value) {
    match (op, result) {
        (
            Op::Transfer { from, to, amount },
            OpResult::Transferred {
                from_balance,
                to_balance,
            },
        ) => (
            EventType::Ok,
            values::transfer_ok(from, to, *amount, *from_balance, *to_balance),
        ),
        (Op::Transfer { from, to, amount }, OpResult::InsufficientFunds { .. }) => (
            EventType::Fail,
            values::transfer_fail(from, to, *amount, values::INSUFFICIENT_FUNDS),
        ),
        (Op::Read { account }, OpResult::Balance { balance }) => {
            (EventType::Ok, values::read_ok(account, *balance))
        }
        (Op::ReadAll, OpResult::Balances { balances })
        | (Op::ReadAll, OpResult::Snapshot { balances, .. }) => (
            EventType::Ok,
            values::read_all_ok(balances.iter().map(|(k, v)| (k.as_str(), *v))),
        ),
        // Definite failures of a sharded bank's two-phase commit: nothing changed.
        (op, OpResult::LockConflict { .. }) => definite_failure(op, "lock-conflict"),
        (op, OpResult::Busy) => definite_failure(op, "busy"),
        (op, OpResult::Aborted { reason }) => definite_failure(op, abort_error(*reason)),
        // A result of the wrong kind: the replica executed it, so it is `ok`, and the checker,
        // finding no expected fields, reports the mismatch against the log.
        (op, result) => {
            let (_, invoke) = op_value(op);
            let mut value = match invoke {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            value.insert(
                "unexpected_result".into(),
                Value::from(format!("{result:?}")),
            );
            (EventType::Ok, Value::Object(value))
        }
    }
}

/// A `fail` completion of `op` with `error`: it executed and changed nothing.
fn definite_failure(op: &Op, error: &str) -> (EventType, Value) {
    let (_, invoke) = op_value(op);
    (EventType::Fail, values::with_error(&invoke, error))
}

/// The kebab-case error of a two-phase commit abort.
fn abort_error(reason: AbortReason) -> &'static str {
    match reason {
        AbortReason::LockConflict => "aborted-lock-conflict",
        AbortReason::Busy => "aborted-busy",
        AbortReason::Timeout => "aborted-timeout",
        AbortReason::Refused => "aborted-refused",
        AbortReason::AlreadyFinished => "aborted-already-finished",
    }
}

/// The kebab-case error of a rejection.
pub fn rejection_error(reason: &Invalid) -> &'static str {
    match reason {
        Invalid::UnknownAccount(_) => "unknown-account",
        Invalid::SameAccount(_) => "same-account",
        Invalid::NonPositiveAmount(_) => "non-positive-amount",
    }
}

/// The completion event of an invocation that ended as `outcome`.
pub fn completion(process: u64, command: &Command, outcome: &Submitted) -> Event {
    // The invoke's value is built only where the completion repeats it: an executed answer
    // (nearly every completion) builds its own, and the invoke's map was thrown away.
    let f = op_name(&command.op);
    let request = command.request.0;
    match outcome {
        Submitted::Executed { node, reply } => {
            let (kind, value) = result_value(&command.op, &reply.result);
            Event::client(kind, process, request, f, value)
                .on_node(&node.to_string())
                .with_exec_index(reply.exec_index)
        }
        Submitted::Rejected { node, reason } => {
            let (_, invoke_value) = op_value(&command.op);
            let value = values::with_error(&invoke_value, rejection_error(reason));
            Event::client(EventType::Fail, process, request, f, value).on_node(&node.to_string())
        }
        // An info repeats the invoke's value: it may or may not have happened.
        Submitted::Unknown { .. } => {
            let (_, invoke_value) = op_value(&command.op);
            Event::client(EventType::Info, process, request, f, invoke_value)
        }
    }
}

/// A sharded bank's completion: the exec index becomes the position on the answering
/// replica's shard. (A cross-shard transfer is answered by its coordinator shard at its
/// decision; the checker finds the participant's position in that shard's log.) A
/// cross-shard snapshot's answer names its position on every shard: those are recorded.
pub fn with_positions(
    mut event: Event,
    node_shards: &BTreeMap<NodeId, u32>,
    outcome: &Submitted,
) -> Event {
    if let Submitted::Executed { reply, .. } = outcome {
        if let OpResult::Snapshot { positions, .. } = &reply.result {
            event.exec_index = None;
            return event.with_positions(positions.iter().map(|(s, p)| (s.0, *p)));
        }
    }
    let shard = event
        .node
        .as_deref()
        .and_then(|n| n.strip_prefix('n')?.parse().ok())
        .and_then(|n| node_shards.get(&NodeId(n)));
    if let (Some(exec), Some(&shard)) = (event.exec_index, shard) {
        event.exec_index = None;
        event = event.with_positions([(shard, exec)]);
    }
    event
}

/// A sharded replica's executed-log entry in final.json's shape (docs/sharded.md): an
/// ordinary entry as [`executed_entry`] writes it, or a cross-shard transfer's step with its
/// transaction, phase, vote and the amount it applied on this shard.
pub fn shard_entry(executed: &Executed) -> ShardEntry {
    let Some(record) = executed.txn else {
        let plain = executed_entry(executed);
        return ShardEntry {
            exec_index: plain.exec_index,
            client: plain.client,
            request_id: plain.request_id,
            f: plain.f,
            value: plain.value.into(),
            kind: plain.kind,
            txn: None,
            phase: None,
            vote: None,
            applied: None,
        };
    };
    let (phase, vote, kind) = txn_step(record);
    let (f, invoke) = op_value(&executed.command.op);
    ShardEntry {
        exec_index: executed.exec_index,
        client: executed.command.client.0,
        request_id: executed.command.request.0,
        f: f.to_string(),
        value: invoke.into(),
        kind,
        txn: Some(txn_id(record)),
        phase: Some(phase),
        vote,
        applied: Some(record.applied),
    }
}

/// A transaction entry's phase, vote and type: `ok` when the step went ahead (a commit, a
/// yes vote), `fail` otherwise.
fn txn_step(record: TxnRecord) -> (Phase, Option<Vote>, EventType) {
    let (phase, vote) = match record.phase {
        TxnPhase::Prepare { vote_yes: true } => (Phase::Prepare, Some(Vote::Yes)),
        TxnPhase::Prepare { vote_yes: false } => (Phase::Prepare, Some(Vote::No)),
        TxnPhase::Commit => (Phase::Commit, None),
        TxnPhase::Abort => (Phase::Abort, None),
    };
    let went_ahead = matches!(phase, Phase::Commit) || vote == Some(Vote::Yes);
    let kind = if went_ahead {
        EventType::Ok
    } else {
        EventType::Fail
    };
    (phase, vote, kind)
}

fn txn_id(record: TxnRecord) -> TxnId {
    TxnId {
        coordinator: record.id.coordinator.0,
        client: record.id.client.0,
        request_id: record.id.request.0,
    }
}

/// A sharded replica's executed entry written straight into final.json, as [`shard_entry`]
/// would write it (see [`EntryJson`]): an entry outside any transaction is written as
/// [`EntryJson`] writes it (a [`ShardEntry`] skips its absent transaction fields), a
/// transfer's transaction step typed, and any other shape through [`shard_entry`].
pub struct ShardEntryJson<'a>(pub &'a Executed);

impl serde::Serialize for ShardEntryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let (Some(record), Op::Transfer { from, to, amount }) = (e.txn, &e.command.op) else {
            return match e.txn {
                None => EntryJson(e).serialize(serializer),
                Some(_) => shard_entry(e).serialize(serializer),
            };
        };
        let (phase, vote, kind) = txn_step(record);
        let value = TypedValue::Transfer {
            amount: *amount,
            from,
            to,
        };
        let fields = if vote.is_some() { 10 } else { 9 };
        let mut s = serializer.serialize_struct("ShardEntry", fields)?;
        s.serialize_field("exec_index", &e.exec_index)?;
        s.serialize_field("client", &e.command.client.0)?;
        s.serialize_field("request_id", &e.command.request.0)?;
        s.serialize_field("f", op_name(&e.command.op))?;
        s.serialize_field("value", &value)?;
        s.serialize_field("type", &kind)?;
        s.serialize_field("txn", &txn_id(record))?;
        s.serialize_field("phase", &phase)?;
        if let Some(vote) = vote {
            s.serialize_field("vote", &vote)?;
        }
        s.serialize_field("applied", &record.applied)?;
        s.end()
    }
}

/// A replica's executed-log entry in final.json's shape.
pub fn executed_entry(executed: &Executed) -> ExecutedEntry {
    let f = op_name(&executed.command.op);
    let (kind, value) = result_value(&executed.command.op, &executed.result);
    ExecutedEntry {
        exec_index: executed.exec_index,
        client: executed.command.client.0,
        request_id: executed.command.request.0,
        f: f.to_string(),
        value,
        kind,
    }
}

/// An executed entry written straight into final.json, as [`executed_entry`] would write it,
/// without building its value as a `serde_json::Value` first (a simulated seed writes some ten
/// thousand of them, and the `Value`s were a tenth of its CPU). The common shapes are typed
/// structs whose fields are in the order a `Value` object sorts its keys, so the bytes are the
/// same; any other (a result of the wrong kind, a two-phase commit failure) goes through
/// [`executed_entry`].
pub struct EntryJson<'a>(pub &'a Executed);

impl serde::Serialize for EntryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let (kind, value) = match (&e.command.op, &e.result) {
            (
                Op::Transfer { from, to, amount },
                OpResult::Transferred {
                    from_balance,
                    to_balance,
                },
            ) => (
                EventType::Ok,
                TypedValue::Transferred {
                    amount: *amount,
                    from,
                    from_balance: *from_balance,
                    to,
                    to_balance: *to_balance,
                },
            ),
            (Op::Transfer { from, to, amount }, OpResult::InsufficientFunds { .. }) => (
                EventType::Fail,
                TypedValue::TransferFailed {
                    amount: *amount,
                    error: values::INSUFFICIENT_FUNDS,
                    from,
                    to,
                },
            ),
            (Op::Read { account }, OpResult::Balance { balance }) => (
                EventType::Ok,
                TypedValue::Balance {
                    account,
                    balance: *balance,
                },
            ),
            (Op::ReadAll, OpResult::Balances { balances })
            | (Op::ReadAll, OpResult::Snapshot { balances, .. }) => {
                (EventType::Ok, TypedValue::Balances { balances })
            }
            _ => return executed_entry(e).serialize(serializer),
        };
        let f = op_name(&e.command.op);
        let mut s = serializer.serialize_struct("ExecutedEntry", 6)?;
        s.serialize_field("exec_index", &e.exec_index)?;
        s.serialize_field("client", &e.command.client.0)?;
        s.serialize_field("request_id", &e.command.request.0)?;
        s.serialize_field("f", f)?;
        s.serialize_field("value", &value)?;
        s.serialize_field("type", &kind)?;
        s.end()
    }
}

/// The values [`EntryJson`] writes typed: the fields of each in sorted order, as
/// `checker::history::values` builds them.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum TypedValue<'a> {
    Transferred {
        amount: i64,
        from: &'a str,
        from_balance: i64,
        to: &'a str,
        to_balance: i64,
    },
    TransferFailed {
        amount: i64,
        error: &'a str,
        from: &'a str,
        to: &'a str,
    },
    Balance {
        account: &'a str,
        balance: i64,
    },
    Balances {
        balances: &'a BTreeMap<Account, i64>,
    },
    /// A transfer's invoke value, as a transaction step records it.
    Transfer {
        amount: i64,
        from: &'a str,
        to: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica::bank::Reply;
    use replica::types::{ClientId, NodeId, RequestId};
    use std::collections::BTreeMap;

    fn command(op: Op) -> Command {
        Command {
            client: ClientId(2),
            request: RequestId(7),
            op,
        }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn records_invocations_completions_and_nemesis_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path, Instant::now()).unwrap();
        let t = command(Op::Transfer {
            from: "C".into(),
            to: "A".into(),
            amount: 3,
        });
        rec.invoke(2, &t);
        rec.nemesis("kill", serde_json::json!({"nodes": ["n1"]}));
        let reply = Reply {
            exec_index: 4,
            result: OpResult::Transferred {
                from_balance: 7,
                to_balance: 13,
            },
        };
        assert_eq!(
            rec.complete(
                2,
                &t,
                &Submitted::Executed {
                    node: NodeId(3),
                    reply
                }
            ),
            EventType::Ok
        );
        let r = command(Op::ReadAll);
        rec.invoke(2, &r);
        let out = Submitted::Unknown {
            last_error: "timeout".into(),
            last_node: None,
        };
        assert_eq!(rec.complete(2, &r, &out), EventType::Info);
        let h = lines(&path);
        assert_eq!(h.len(), 5, "every event is on disk at once");
        for (i, e) in h.iter().enumerate() {
            assert_eq!(e["index"], i as u64);
        }
        assert!(h
            .windows(2)
            .all(|w| w[0]["time_ns"].as_u64() <= w[1]["time_ns"].as_u64()));
        assert_eq!(h[0]["type"], "invoke");
        assert_eq!(h[0]["process"], 2);
        assert_eq!(h[0]["request_id"], 7);
        assert_eq!(h[0]["f"], "transfer");
        assert_eq!(
            h[0]["value"],
            serde_json::json!({"from": "C", "to": "A", "amount": 3})
        );
        assert_eq!(h[1]["process"], "nemesis");
        assert_eq!(h[1]["type"], "info");
        assert_eq!(h[2]["node"], "n3");
        assert_eq!(h[2]["exec_index"], 4);
        assert_eq!(h[2]["value"]["from_balance"], 7);
        assert_eq!(h[4]["type"], "info");
        assert_eq!(
            h[4]["value"],
            Value::Null,
            "an info repeats the invoke's value"
        );
        assert!(h[4].get("exec_index").is_none());
        assert_eq!(rec.counts.snapshot(), (2, 1, 0, 1));
        assert!(rec.error().is_none());
    }

    #[test]
    fn failures_carry_their_error_and_exec_index_when_executed() {
        let t = command(Op::Transfer {
            from: "C".into(),
            to: "A".into(),
            amount: 30,
        });
        let reply = Reply {
            exec_index: 9,
            result: OpResult::InsufficientFunds { from_balance: 10 },
        };
        let e = completion(
            2,
            &t,
            &Submitted::Executed {
                node: NodeId(1),
                reply,
            },
        );
        assert_eq!(e.kind, EventType::Fail);
        assert_eq!(e.value["error"], "insufficient-funds");
        assert_eq!(e.exec_index, Some(9));
        let e = completion(
            2,
            &t,
            &Submitted::Rejected {
                node: NodeId(1),
                reason: Invalid::UnknownAccount("Q".into()),
            },
        );
        assert_eq!(e.kind, EventType::Fail);
        assert_eq!(e.value["error"], "unknown-account");
        assert_eq!(e.exec_index, None);
    }

    #[test]
    fn reads_and_executed_entries() {
        let balances: BTreeMap<Account, i64> = [("A".into(), 4), ("B".into(), 16)].into();
        let (kind, value) = result_value(
            &Op::ReadAll,
            &OpResult::Balances {
                balances: balances.clone(),
            },
        );
        assert_eq!(kind, EventType::Ok);
        assert_eq!(value, serde_json::json!({"balances": {"A": 4, "B": 16}}));
        // A sharded bank's snapshot records the same balances (its positions are per shard).
        let positions = [(replica::types::ShardId(1), 7)].into();
        let snapshot = OpResult::Snapshot {
            balances,
            positions,
        };
        let (kind, value) = result_value(&Op::ReadAll, &snapshot);
        assert_eq!(kind, EventType::Ok);
        assert_eq!(value, serde_json::json!({"balances": {"A": 4, "B": 16}}));
        let (_, value) = result_value(
            &Op::Read {
                account: "B".into(),
            },
            &OpResult::Balance { balance: 16 },
        );
        assert_eq!(value, serde_json::json!({"account": "B", "balance": 16}));
        let executed = Executed {
            exec_index: 3,
            command: command(Op::Transfer {
                from: "C".into(),
                to: "A".into(),
                amount: 30,
            }),
            result: OpResult::InsufficientFunds { from_balance: 1 },
            txn: None,
        };
        let entry = executed_entry(&executed);
        assert_eq!(
            (entry.exec_index, entry.client, entry.request_id),
            (3, 2, 7)
        );
        assert_eq!(entry.kind, EventType::Fail);
        assert_eq!(entry.f, "transfer");
    }

    #[test]
    fn two_phase_commit_refusals_are_definite_failures_with_their_reason() {
        let transfer = Op::Transfer {
            from: "A".into(),
            to: "C".into(),
            amount: 4,
        };
        let (kind, value) = result_value(
            &transfer,
            &OpResult::Aborted {
                reason: AbortReason::Timeout,
            },
        );
        assert_eq!(kind, EventType::Fail);
        assert_eq!(
            value,
            serde_json::json!({"from": "A", "to": "C", "amount": 4, "error": "aborted-timeout"})
        );
        let read = Op::Read {
            account: "C".into(),
        };
        let locked = OpResult::LockConflict {
            account: "C".into(),
        };
        let (kind, value) = result_value(&read, &locked);
        assert_eq!(kind, EventType::Fail);
        assert_eq!(value["error"], "lock-conflict");
        let (kind, value) = result_value(&Op::ReadAll, &OpResult::Busy);
        assert_eq!(kind, EventType::Fail);
        assert_eq!(value, serde_json::json!({"error": "busy"}));
    }

    fn cross(phase: TxnPhase, applied: i64, result: OpResult) -> Executed {
        Executed {
            exec_index: 9,
            command: command(Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount: 3,
            }),
            result,
            txn: Some(replica::bank::TxnRecord {
                id: replica::bank::TxnId {
                    coordinator: replica::types::ShardId(1),
                    client: ClientId(2),
                    request: RequestId(7),
                },
                phase,
                applied,
            }),
        }
    }

    #[test]
    fn a_cross_shard_step_becomes_a_sharded_entry_with_its_phase() {
        use replica::bank::AbortReason::LockConflict;
        let balance = OpResult::Balance { balance: 10 };
        let aborted = OpResult::Aborted {
            reason: LockConflict,
        };
        let credited = OpResult::Credited { to_balance: 13 };
        let cases = [
            (
                TxnPhase::Prepare { vote_yes: true },
                0,
                balance,
                "ok",
                "prepare",
                Some("yes"),
            ),
            (
                TxnPhase::Prepare { vote_yes: false },
                0,
                aborted.clone(),
                "fail",
                "prepare",
                Some("no"),
            ),
            (TxnPhase::Commit, 3, credited, "ok", "commit", None),
            (TxnPhase::Abort, 0, aborted, "fail", "abort", None),
        ];
        for (phase, applied, result, kind, name, vote) in cases {
            let entry = shard_entry(&cross(phase, applied, result));
            let json = serde_json::to_value(&entry).unwrap();
            let mut want = serde_json::json!({
                "exec_index": 9, "client": 2, "request_id": 7, "f": "transfer",
                "value": {"from": "A", "to": "B", "amount": 3}, "type": kind,
                "txn": {"coordinator": 1, "client": 2, "request_id": 7},
                "phase": name, "applied": applied,
            });
            if let Some(vote) = vote {
                want["vote"] = Value::from(vote);
            }
            assert_eq!(json, want, "{phase:?}");
        }
    }

    #[test]
    fn an_ordinary_entry_of_a_shard_is_the_classic_entry() {
        let executed = Executed {
            exec_index: 4,
            command: command(Op::Read {
                account: "B".into(),
            }),
            result: OpResult::Balance { balance: 16 },
            txn: None,
        };
        let classic = serde_json::to_value(executed_entry(&executed)).unwrap();
        let sharded = serde_json::to_value(shard_entry(&executed)).unwrap();
        assert_eq!(classic, sharded);
    }

    #[test]
    fn a_sharded_answer_is_a_position_on_the_answering_replicas_shard() {
        let shards = BTreeMap::from([(NodeId(1), 1), (NodeId(4), 2)]);
        let answer = |node: &str| {
            Event::client(EventType::Ok, 2, 7, "read", Value::Null)
                .on_node(node)
                .with_exec_index(12)
        };
        let unknown = Submitted::Unknown {
            last_error: "timeout".into(),
            last_node: None,
        };
        let e = with_positions(answer("n4"), &shards, &unknown);
        assert_eq!(
            (e.exec_index, e.positions),
            (None, Some(BTreeMap::from([(2, 12)])))
        );
        let stranger = with_positions(answer("n9"), &shards, &unknown);
        assert_eq!(
            stranger.exec_index,
            Some(12),
            "an unknown replica keeps what it said"
        );
        let info = Event::client(EventType::Info, 2, 7, "read", Value::Null);
        assert_eq!(with_positions(info.clone(), &shards, &unknown), info);
    }

    #[test]
    fn a_snapshot_answer_is_a_position_on_every_shard() {
        use replica::types::ShardId;
        let shards = BTreeMap::from([(NodeId(1), 1), (NodeId(4), 2)]);
        let balances = BTreeMap::from([("A".into(), 10), ("B".into(), 10)]);
        let snapshot = OpResult::Snapshot {
            balances,
            positions: BTreeMap::from([(ShardId(1), 12), (ShardId(2), 30)]),
        };
        let cmd = command(Op::ReadAll);
        let outcome = Submitted::Executed {
            node: NodeId(1),
            reply: Reply {
                exec_index: 12,
                result: snapshot,
            },
        };
        let e = with_positions(completion(2, &cmd, &outcome), &shards, &outcome);
        assert_eq!(e.kind, EventType::Ok);
        assert_eq!(
            (e.exec_index, e.positions),
            (None, Some(BTreeMap::from([(1, 12), (2, 30)])))
        );
    }
}
