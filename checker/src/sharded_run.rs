//! Checking a sharded run: load its history and final.json into [`Sharded`], run the
//! sharded checks over it and assemble [`Results`].
//!
//! The model (`crate::shards`) is a leaf the checks import; this is the one place that
//! imports the checks, so none of them imports back. The format: docs/sharded.md.

use crate::checks::{
    atomicity, bank_conservation, progress, serializability, shard_agreement, shard_exactly_once,
    shard_liveness, shard_replay, shard_well_formed,
};
use crate::checks::{CheckResult, Validity};
use crate::history::{Event, EventType, HistoryReader, Process};
use crate::ops::HistoryStats;
use crate::results::{FinalSummary, NodeSummary, Results};
use crate::run_files::{CheckError, RunFiles};
use crate::run_params::RunParams;
use crate::shards::{
    Completion, Op, Phase, ShardEntry, ShardId, ShardSpec, Sharded, ShardedFinal, TxnId,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
                    value: e.value.clone().into(),
                    invoke_index: e.index,
                    complete: None,
                });
            }
            kind => match open.remove(&c) {
                Some(o) if ops[o].request_id == rid => {
                    ops[o].complete = Some(Completion {
                        index: e.index,
                        kind,
                        value: e.value.clone().into(),
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
        Err(cause) => {
            return Err(crate::final_state::FinalError::Io {
                path: path.to_path_buf(),
                cause,
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
        let Some((from, to, _)) = op.value.transfer() else {
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
