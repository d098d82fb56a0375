//! The sharded bank: its additions to the run format and the path that checks it.
//!
//! A run is sharded when run.toml has `[[shards]]` tables; then the history's
//! completions carry `positions` (shard id to position) instead of one `exec_index`,
//! and final.json's replicas each name their `shard` and hold that shard's log, in
//! which a cross-shard transfer appears as `prepare` and `commit`/`abort` entries of a
//! transaction. The format is written down in docs/sharded.md.
//!
//! The classic path (`crate::ops`, `crate::final_state`) is built for ten-million-event
//! histories of one log; a sharded run is loaded here into owned values instead, so the
//! classic path stays exactly as fast as it was. The properties are in
//! `checks::{atomicity, bank_conservation, shard_agreement, serializability}`.

#![doc = include_str!("../../docs/sharded.md")]

use crate::checks::{
    atomicity, bank_conservation, progress, serializability, shard_agreement, shard_exactly_once,
    shard_liveness, shard_replay, shard_well_formed,
};
use crate::checks::{CheckResult, Validity};
use crate::history::{Event, EventType, HistoryReader, Process};
use crate::ops::HistoryStats;
use crate::results::{FinalSummary, NodeSummary, Results};
use crate::run_params::{RunParams, RunParamsError};
use crate::runner::{CheckError, RunFiles};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Shard ids are 1-based.
pub type ShardId = u32;

impl ShardEntry {
    /// Whether this entry changed a balance on its shard.
    pub fn applies(&self) -> bool {
        match self.txn {
            Some(_) => self.applied.unwrap_or(0) != 0,
            None => self.f == "transfer" && self.kind == EventType::Ok,
        }
    }
}

/// One `[[shards]]` table of run.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub id: ShardId,
    pub accounts: Vec<String>,
    pub nodes: Vec<String>,
}

/// Reads run.toml's `[[shards]]`; `Ok(None)` when there are none (a classic run).
pub fn shard_specs(
    params: &RunParams,
    path: &Path,
) -> Result<Option<Vec<ShardSpec>>, RunParamsError> {
    let Some(v) = params.table.get("shards") else {
        return Ok(None);
    };
    let bad = |message: String| RunParamsError {
        path: path.to_path_buf(),
        field: Some("shards".into()),
        message,
    };
    let specs: Vec<ShardSpec> = v.clone().try_into().map_err(|e: toml::de::Error| {
        bad(format!(
            "expected [[shards]] tables with id, accounts and nodes: {}",
            e.message()
        ))
    })?;
    let mut owner: HashMap<&str, ShardId> = HashMap::new();
    for s in &specs {
        if s.id == 0 {
            return Err(bad("shard ids are 1-based; found id 0".into()));
        }
        if specs.iter().filter(|o| o.id == s.id).count() > 1 {
            return Err(bad(format!("shard id {} appears twice", s.id)));
        }
        for a in &s.accounts {
            if let Some(other) = owner.insert(a, s.id) {
                return Err(bad(format!(
                    "account {a} is in shards {other} and {}",
                    s.id
                )));
            }
        }
    }
    Ok(Some(specs))
}

/// A transaction's id: its coordinator shard and the client request it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub coordinator: ShardId,
    pub client: u64,
    pub request_id: u64,
}

/// The phase a transaction entry records on one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepare,
    Commit,
    Abort,
}

/// A participant's vote at prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Yes,
    No,
}

/// One entry of a shard's executed log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// 1-based position in this shard's execution order.
    pub exec_index: u64,
    pub client: u64,
    pub request_id: u64,
    pub f: String,
    pub value: Value,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Set on the entries of a cross-shard transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<TxnId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// On `prepare` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<Vote>,
    /// On transaction entries: the amount applied to this shard's account (negative
    /// for the debit on the source shard, positive for the credit on the destination,
    /// 0 when nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<i64>,
}

/// What was fetched from one replica of a sharded bank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardNode {
    pub shard: ShardId,
    pub balances: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    pub executed: Vec<ShardEntry>,
    #[serde(default)]
    pub error: Option<String>,
}

/// final.json of a sharded run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardedFinal {
    pub nodes: BTreeMap<String, ShardNode>,
}

impl ShardedFinal {
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::from)?;
        std::fs::write(path, text + "\n")
    }
}

/// A transfer's accounts and amount, from a `value`.
pub(crate) fn transfer_parts(v: &Value) -> Option<(&str, &str, i64)> {
    Some((
        v.get("from")?.as_str()?,
        v.get("to")?.as_str()?,
        v.get("amount")?.as_i64()?,
    ))
}

/// One client operation: its invocation and (maybe) its completion.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub client: u64,
    pub request_id: u64,
    pub f: String,
    /// The invocation's value.
    pub value: Value,
    pub invoke_index: u64,
    pub complete: Option<Completion>,
}

#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub index: u64,
    pub kind: EventType,
    pub value: Value,
    pub positions: BTreeMap<ShardId, u64>,
}

impl Op {
    /// History indices of its events.
    pub fn indices(&self) -> Vec<u64> {
        let mut v = vec![self.invoke_index];
        v.extend(self.complete.as_ref().map(|c| c.index));
        v
    }

    /// A few words naming it, e.g. `client 3's transfer A→E of 2 (request 7)`.
    pub fn describe(&self) -> String {
        let what = match (self.f.as_str(), transfer_parts(&self.value)) {
            ("transfer", Some((from, to, amount))) => format!("transfer {from}→{to} of {amount}"),
            ("read", _) => format!(
                "read of {}",
                self.value
                    .get("account")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            (f, _) => f.to_string(),
        };
        format!(
            "client {}'s {what} (request {})",
            self.client, self.request_id
        )
    }
}

/// Everything the sharded checks look at.
pub(crate) struct Sharded {
    pub specs: Vec<ShardSpec>,
    pub account_shard: HashMap<String, ShardId>,
    pub initial_balance: Option<i64>,
    pub ops: Vec<Op>,
    /// (client, request_id) to the op.
    pub op_by_key: HashMap<(u64, u64), usize>,
    pub fin: Option<ShardedFinal>,
    /// Per shard, its agreed log: the union of its replicas' logs by exec index.
    pub logs: BTreeMap<ShardId, BTreeMap<u64, ShardEntry>>,
    pub total: Option<i128>,
}

impl Sharded {
    pub fn shard_of(&self, account: &str) -> Option<ShardId> {
        self.account_shard.get(account).copied()
    }

    pub fn spec(&self, id: ShardId) -> Option<&ShardSpec> {
        self.specs.iter().find(|s| s.id == id)
    }

    /// History indices of the operation behind (client, request id), if any.
    pub fn indices_of(&self, client: u64, request_id: u64) -> Vec<u64> {
        self.op_by_key
            .get(&(client, request_id))
            .map_or_else(Vec::new, |&o| self.ops[o].indices())
    }

    /// The state of shard `id` replayed from its agreed log up to `upto` (inclusive);
    /// `Err(gap)` when the log lacks an index first.
    pub fn replay_shard(
        &self,
        id: ShardId,
        upto: u64,
        mut each: impl FnMut(u64, &ShardEntry, &BTreeMap<String, i64>),
    ) -> Result<BTreeMap<String, i64>, u64> {
        let mut bank: BTreeMap<String, i64> = self
            .spec(id)
            .map(|s| {
                s.accounts
                    .iter()
                    .map(|a| (a.clone(), self.initial_balance.unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let Some(log) = self.logs.get(&id) else {
            return Ok(bank);
        };
        for exec in 1..=upto {
            let Some(e) = log.get(&exec) else {
                return Err(exec);
            };
            apply_entry(&mut bank, e);
            each(exec, e, &bank);
        }
        Ok(bank)
    }
}

/// Applies one log entry to its shard's balances.
pub(crate) fn apply_entry(bank: &mut BTreeMap<String, i64>, e: &ShardEntry) {
    let Some((from, to, amount)) = transfer_parts(&e.value) else {
        return;
    };
    match (e.txn, e.applied) {
        (Some(_), Some(delta)) if delta != 0 => {
            // The debit lands on the source's shard, the credit on the destination's.
            let account = if bank.contains_key(from) { from } else { to };
            if let Some(b) = bank.get_mut(account) {
                *b += delta;
            }
        }
        (Some(_), _) => {}
        (None, _) if e.f == "transfer" && e.kind == EventType::Ok => {
            for (a, d) in [(from, -amount), (to, amount)] {
                if let Some(b) = bank.get_mut(a) {
                    *b += d;
                }
            }
        }
        (None, _) => {}
    }
}

/// The history's events, the 1-based line of each, and where it was cut off.
type Loaded = (Vec<Event>, Vec<u64>, Option<u64>);

fn load_history(path: &Path) -> Result<Loaded, CheckError> {
    let mut r = HistoryReader::open(path)?;
    let (mut out, mut lines) = (Vec::new(), Vec::new());
    while let Some(e) = r.next_as::<Event>()? {
        out.push(e);
        lines.push(r.line_no());
    }
    Ok((out, lines, r.truncation().map(|t| t.line)))
}

/// Pairs each invocation with its client's next completion of the same request; the
/// shapes that break this are well-formed's to report (`checks::shard_well_formed`).
fn pair_ops(events: &[Event]) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for e in events {
        let (Process::Client(c), Some(rid)) = (e.process, e.request_id) else {
            continue;
        };
        match e.kind {
            EventType::Invoke => {
                open.insert(c, ops.len());
                ops.push(Op {
                    client: c,
                    request_id: rid,
                    f: e.f.clone(),
                    value: e.value.clone(),
                    invoke_index: e.index,
                    complete: None,
                });
            }
            kind => match open.remove(&c) {
                Some(o) if ops[o].request_id == rid => {
                    ops[o].complete = Some(Completion {
                        index: e.index,
                        kind,
                        value: e.value.clone(),
                        positions: e.positions.clone().unwrap_or_default(),
                    })
                }
                _ => {}
            },
        }
    }
    ops
}

fn stats(events: &[Event], ops: &[Op], file: &Path, truncated: Option<u64>) -> HistoryStats {
    let mut s = HistoryStats {
        file: file.display().to_string(),
        lines: events.len() as u64,
        events: events.len() as u64,
        operations: ops.len() as u64,
        truncated_at_line: truncated,
        ..HistoryStats::default()
    };
    let mut clients = std::collections::BTreeSet::new();
    for e in events {
        match (e.process, e.kind) {
            (Process::Nemesis, _) => s.nemesis += 1,
            (Process::Client(c), k) => {
                clients.insert(c);
                match k {
                    EventType::Invoke => s.invokes += 1,
                    EventType::Ok => s.oks += 1,
                    EventType::Fail => s.fails += 1,
                    EventType::Info => s.infos += 1,
                }
            }
        }
    }
    s.clients = clients.len() as u64;
    s.first_time_ns = events.first().map_or(0, |e| e.time_ns);
    s.last_time_ns = events.last().map_or(0, |e| e.time_ns);
    s
}

fn load_final(path: &Path) -> Result<Option<ShardedFinal>, CheckError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(crate::final_state::FinalError::Io {
                path: path.to_path_buf(),
                source,
            }
            .into())
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        crate::final_state::FinalError::Malformed {
            path: path.to_path_buf(),
            message: format!("a sharded final.json (see docs/sharded.md): {e}"),
        }
        .into()
    })
}

/// Per shard, the union of its replicas' logs (the first replica to cover an index
/// gives it; shard agreement compares the others with it).
fn agreed_logs(fin: &ShardedFinal) -> BTreeMap<ShardId, BTreeMap<u64, ShardEntry>> {
    let mut logs: BTreeMap<ShardId, BTreeMap<u64, ShardEntry>> = BTreeMap::new();
    for n in fin.nodes.values() {
        let log = logs.entry(n.shard).or_default();
        for e in &n.executed {
            log.entry(e.exec_index).or_insert_with(|| e.clone());
        }
    }
    logs
}

/// A cross-shard transfer's answer comes from its coordinator shard, at its decision there,
/// before the participant has its own decision entry: the client cannot be told that
/// position. It is taken from the participant shard's agreed log, by transaction id (its
/// commit, or its abort after a yes vote), for every answer that named the coordinator's.
fn add_participant_positions(
    ops: &mut [Op],
    logs: &BTreeMap<ShardId, BTreeMap<u64, ShardEntry>>,
    account_shard: &HashMap<String, ShardId>,
) {
    let mut decided: HashMap<(TxnId, ShardId), u64> = HashMap::new();
    for (&shard, log) in logs {
        for e in log.values() {
            let decision = matches!(e.phase, Some(Phase::Commit | Phase::Abort));
            match e.txn {
                Some(txn) if decision && txn.coordinator != shard => {
                    decided.entry((txn, shard)).or_insert(e.exec_index);
                }
                _ => {}
            }
        }
    }
    for op in ops.iter_mut() {
        let Some(c) = op.complete.as_mut() else {
            continue;
        };
        let Some((from, to, _)) = transfer_parts(&op.value) else {
            continue;
        };
        let (Some(&coordinator), Some(&participant)) =
            (account_shard.get(from), account_shard.get(to))
        else {
            continue;
        };
        if coordinator == participant
            || !c.positions.contains_key(&coordinator)
            || c.positions.contains_key(&participant)
        {
            continue;
        }
        let txn = TxnId {
            coordinator,
            client: op.client,
            request_id: op.request_id,
        };
        if let Some(&at) = decided.get(&(txn, participant)) {
            c.positions.insert(participant, at);
        }
    }
}

/// Checks a sharded run (see the module docs).
pub(crate) fn check_sharded(
    files: &RunFiles,
    params: &RunParams,
    specs: Vec<ShardSpec>,
) -> Result<Results, CheckError> {
    let (events, lines, truncated) = load_history(&files.history)?;
    let mut warnings = Vec::new();
    if let Some(line) = truncated {
        warnings.push(format!(
            "the history's last line ({line}) is cut off and was not read"
        ));
    }
    let mut ops = pair_ops(&events);
    let fin = load_final(&files.final_json)?;
    let account_shard: HashMap<String, ShardId> = specs
        .iter()
        .flat_map(|s| s.accounts.iter().map(move |a| (a.clone(), s.id)))
        .collect();
    let logs = fin.as_ref().map(agreed_logs).unwrap_or_default();
    add_participant_positions(&mut ops, &logs, &account_shard);
    let op_by_key = ops
        .iter()
        .enumerate()
        .map(|(i, o)| ((o.client, o.request_id), i))
        .collect();
    let accounts: usize = specs.iter().map(|s| s.accounts.len()).sum();
    if let Some(declared) = &params.accounts {
        let mut sharded: Vec<&String> = specs.iter().flat_map(|s| &s.accounts).collect();
        let mut declared: Vec<&String> = declared.iter().collect();
        sharded.sort();
        declared.sort();
        if sharded != declared {
            warnings.push(
                "run.toml's accounts differ from those its [[shards]] hold; the shards' are used"
                    .into(),
            );
        }
    }
    let data = Sharded {
        logs,
        total: params
            .initial_balance
            .and_then(|b| i128::from(b).checked_mul(accounts as i128)),
        specs,
        account_shard,
        initial_balance: params.initial_balance,
        ops,
        op_by_key,
        fin,
    };
    let mut checks: BTreeMap<String, CheckResult> = BTreeMap::new();
    checks.insert(
        "well-formed".into(),
        shard_well_formed::run(&data, &events, &lines),
    );
    checks.insert("atomicity".into(), atomicity::run(&data));
    checks.insert("bank-conservation".into(), bank_conservation::run(&data));
    checks.insert("shard-agreement".into(), shard_agreement::run(&data));
    // The classic replay and exactly-once, per shard.
    checks.insert("replay".into(), shard_replay::run(&data));
    checks.insert("exactly-once".into(), shard_exactly_once::run(&data));
    checks.insert(
        "strict-serializability".into(),
        serializability::run(&data, &events),
    );
    let bound = params.liveness_bound_ms.as_ref();
    checks.insert(
        "liveness".into(),
        shard_liveness::run(&data, &events, bound),
    );
    let rule = progress::bound_ms(params.table.get("progress_bound_ms")).map(|bound| {
        let shards = data.specs.iter();
        let shards = shards.map(|s| (s.id, s.nodes.clone(), s.accounts.clone()));
        (bound, progress::Replicas::Sharded(shards.collect()))
    });
    checks.insert("progress".into(), progress::run(&events, rule));
    Ok(Results {
        valid: Validity::combine(checks.values().map(|c| c.valid)),
        run_dir: files.dir.display().to_string(),
        history: stats(&events, &data.ops, &files.history, truncated),
        final_state: summarize(&data),
        warnings,
        checks,
        elapsed_ms: 0,
    })
}

fn summarize(data: &Sharded) -> FinalSummary {
    let Some(fin) = &data.fin else {
        return FinalSummary::default();
    };
    FinalSummary {
        present: true,
        nodes: fin
            .nodes
            .iter()
            .map(|(name, n)| NodeSummary {
                name: format!("{name} (shard {})", n.shard),
                first_exec: n.executed.first().map_or(0, |e| e.exec_index),
                last_exec: n.executed.last().map_or(0, |e| e.exec_index),
                entries: n.executed.len() as u64,
                balances_fetched: n.balances.is_some(),
                balances: n.balances.clone(),
                error: n.error.clone(),
                ..NodeSummary::default()
            })
            .collect(),
        log_last: data
            .logs
            .values()
            .filter_map(|l| l.keys().next_back().copied())
            .max()
            .unwrap_or(0),
        ..FinalSummary::default()
    }
}
