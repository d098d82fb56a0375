//! Checking a sharded run: stream its final.json (`crate::run::shard_load`: one agreed log
//! per shard, replicas compared as they are read) and its history (one pass: the
//! operations, well-formed, the liveness timeline; no event is held) into [`Sharded`],
//! run the sharded checks over it and assemble [`Results`].
//!
//! The model (`crate::shards`) is a leaf the checks import; this is the one place that
//! imports the checks, so none of them imports back. The format: docs/sharded.md.

use crate::checks::{
    atomicity, bank_conservation, progress, serializability, shard_agreement, shard_exactly_once,
    shard_liveness, shard_replay, shard_well_formed,
};
use crate::checks::{CheckResult, Validity};
use crate::history::{EventType, HistoryReader, Process};
use crate::load::run_files::{CheckError, RunFiles};
use crate::model::FxMap;
use crate::ops::HistoryStats;
use crate::results::{FinalSummary, NodeSummary, Results};
use crate::run::shard_load;
use crate::run_params::RunParams;
use crate::shards::{
    ClientStep, ClientSteps, Completion, Op, Phase, ShardEvent, ShardId, ShardLog, ShardSpec,
    Sharded, TxnId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What one streaming pass over the history leaves: the operations, the client
/// steps the real-time order needs, the well-formed pass, the liveness timeline and
/// the counts. The events themselves are dropped as they are read.
struct HistoryPass {
    ops: Vec<Op>,
    /// Client (process) to its operation in flight.
    open: FxMap<u64, usize>,
    steps: ClientSteps,
    well_formed: shard_well_formed::Pass,
    timeline: shard_liveness::Timeline,
    stats: HistoryStats,
    clients: BTreeSet<u64>,
}

fn read_history(path: &Path, specs: &[ShardSpec]) -> Result<HistoryPass, CheckError> {
    let mut r = HistoryReader::open(path)?;
    let mut pass = HistoryPass {
        ops: Vec::new(),
        open: FxMap::default(),
        steps: ClientSteps::default(),
        well_formed: Default::default(),
        timeline: Default::default(),
        stats: HistoryStats {
            file: path.display().to_string(),
            ..HistoryStats::default()
        },
        clients: BTreeSet::new(),
    };
    while let Some((line, e)) = r.next_numbered(shard_load::fast_event, |_| Ok(()))? {
        pass.event(specs, line, e);
    }
    pass.stats.truncated_at_line = r.truncation().map(|t| t.line);
    // The checks run after this, at the peak: give back the room kept for growth.
    pass.ops.shrink_to_fit();
    pass.steps.shrink_to_fit();
    pass.stats.operations = pass.ops.len() as u64;
    pass.stats.clients = pass.clients.len() as u64;
    Ok(pass)
}

impl HistoryPass {
    fn event(&mut self, specs: &[ShardSpec], line: u64, e: ShardEvent) {
        self.count(&e);
        let nemesis_f = (e.process == Process::Nemesis).then_some(e.f.as_str());
        self.timeline.event(e.index, e.time_ns, nemesis_f);
        self.well_formed.event(specs, line, &e);
        self.pair(e);
    }

    fn count(&mut self, e: &ShardEvent) {
        let s = &mut self.stats;
        if s.events == 0 {
            s.first_time_ns = e.time_ns;
        }
        s.last_time_ns = e.time_ns;
        s.lines += 1;
        s.events += 1;
        match (e.process, e.kind) {
            (Process::Nemesis, _) => s.nemesis += 1,
            (Process::Client(c), k) => {
                self.clients.insert(c);
                match k {
                    EventType::Invoke => s.invokes += 1,
                    EventType::Ok => s.oks += 1,
                    EventType::Fail => s.fails += 1,
                    EventType::Info => s.infos += 1,
                }
            }
        }
    }

    /// Pairs each invocation with its client's next completion of the same request;
    /// the shapes that break this are well-formed's to report
    /// (`checks::shard_well_formed`).
    fn pair(&mut self, e: ShardEvent) {
        let (Process::Client(c), Some(rid)) = (e.process, e.request_id) else {
            return;
        };
        let step = ClientStep {
            request_id: rid,
            index: e.index,
            client: c,
            invoke: e.kind == EventType::Invoke,
        };
        let ops = &mut self.ops;
        match e.kind {
            EventType::Invoke => {
                self.open.insert(c, ops.len());
                self.steps.invoked(ops.len(), step);
                ops.push(Op {
                    client: c,
                    request_id: rid,
                    f: e.f,
                    value: e.value,
                    invoke_index: e.index,
                    invoke_ns: e.time_ns,
                    complete: None,
                });
            }
            kind => match self.open.remove(&c) {
                Some(o) if ops[o].request_id == rid => {
                    self.steps.answered(o, step);
                    ops[o].complete = Some(Completion {
                        index: e.index,
                        time_ns: e.time_ns,
                        kind,
                        value: e.value,
                        positions: e.positions.unwrap_or_default(),
                    })
                }
                _ => self.steps.other(step),
            },
        }
    }
}

/// A cross-shard transfer's answer comes from its coordinator shard, at its decision there,
/// before the participant has its own decision entry: the client cannot be told that
/// position. It is taken from the participant shard's agreed log, by transaction id (its
/// commit, or its abort after a yes vote), for every answer that named the coordinator's.
fn add_participant_positions(
    ops: &mut [Op],
    logs: &BTreeMap<ShardId, ShardLog>,
    account_shard: &FxMap<String, ShardId>,
) {
    let mut decided: crate::model::FxMap<(TxnId, ShardId), u64> = Default::default();
    for (&shard, log) in logs {
        for e in log.values() {
            let decision = matches!(e.phase, Some(Phase::Commit | Phase::Abort));
            match e.txn() {
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
    let history = read_history(&files.history, &specs)?;
    let loaded = shard_load::load(&files.final_json)?;
    let mut warnings = Vec::new();
    if let Some(line) = history.stats.truncated_at_line {
        warnings.push(format!(
            "the history's last line ({line}) is cut off and was not read"
        ));
    }
    let HistoryPass {
        mut ops,
        steps,
        well_formed,
        timeline,
        stats,
        ..
    } = history;
    let account_shard: FxMap<String, ShardId> = specs
        .iter()
        .flat_map(|s| s.accounts.iter().map(move |a| (a.clone(), s.id)))
        .collect();
    let (fin, logs, agreement) = match loaded {
        Some(l) => (Some(l.nodes), l.logs, l.agreement),
        None => (None, BTreeMap::new(), Default::default()),
    };
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
    let mut data = Sharded {
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
    checks.insert("well-formed".into(), well_formed.finish(&data));
    checks.insert("atomicity".into(), atomicity::run(&data));
    checks.insert("bank-conservation".into(), bank_conservation::run(&data));
    checks.insert(
        "shard-agreement".into(),
        shard_agreement::run(&data, agreement),
    );
    // The classic replay and exactly-once, per shard.
    checks.insert("replay".into(), shard_replay::run(&data));
    checks.insert("exactly-once".into(), shard_exactly_once::run(&data));
    let bound = params.liveness_bound_ms.as_ref();
    checks.insert(
        "liveness".into(),
        shard_liveness::run(&data, timeline, bound),
    );
    let rule = progress::bound_ms(params.table.get("progress_bound_ms")).map(|bound| {
        let shards = data.specs.iter();
        let shards = shards.map(|s| (s.id, s.nodes.clone(), s.accounts.clone()));
        (bound, progress::Replicas::Sharded(shards.collect()))
    });
    // The nemesis decides which replicas are up: the history is read once more, as
    // the classic check reads it, only when run.toml asks for this check.
    checks.insert(
        "progress".into(),
        progress::run_streaming(&files.history, rule)?,
    );
    // Strict serializability reads only the operations: the logs are given back
    // first, so its graph does not add to the peak.
    let final_state = summarize(&data);
    data.logs = BTreeMap::new();
    checks.insert(
        "strict-serializability".into(),
        serializability::run(&data, &steps),
    );
    Ok(Results {
        valid: Validity::combine(checks.values().map(|c| c.valid)),
        run_dir: files.dir.display().to_string(),
        history: stats,
        final_state,
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
            .iter()
            .map(|n| NodeSummary {
                name: n.label(),
                first_exec: n.first,
                last_exec: n.last,
                entries: n.entries,
                balances_fetched: n.balances.is_some(),
                balances: n.balances.clone(),
                error: n.error.clone(),
                ..NodeSummary::default()
            })
            .collect(),
        log_last: data
            .logs
            .values()
            .filter_map(|l| l.last_index())
            .max()
            .unwrap_or(0),
        ..FinalSummary::default()
    }
}
