//! Checking a sharded run: stream its final.json (`crate::run::shard_load`: one agreed log
//! per shard, replicas compared as they are read) and its history (one pass: the
//! operations, well-formed, the liveness timeline; no event is held) into [`Sharded`],
//! run the sharded checks over it and assemble [`Results`]. The `progress` rule is judged
//! in the history pass too (`checks::progress::Fold`), as the classic path judges it.
//!
//! The model (`crate::shards`) is a leaf the checks import; this is the one place that
//! imports the checks, so none of them imports back. The format: docs/sharded.md.

use crate::checks::agreement::Agreement;
use crate::checks::CheckResult;
use crate::checks::{
    atomicity, bank_conservation, progress, serializability, shard_agreement, shard_exactly_once,
    shard_liveness, shard_replay, shard_well_formed,
};
use crate::history::{EventType, HistoryReader, Process};
use crate::load::run_files::{CheckError, RunFiles};
use crate::model::FxMap;
use crate::ops::HistoryStats;
use crate::results::{FinalSummary, NodeSummary, Results};
use crate::run::shard_load;
use crate::run_params::RunParams;
use crate::shards::{
    ClientStep, ClientSteps, Completion, Op, OpIndex, Phase, ShardEvent, ShardId, ShardLog,
    ShardSpec, Sharded, TxnId, Watch,
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
    /// The `progress` rule, judged in this pass as the classic one judges it.
    progress: progress::Fold,
}

fn read_history(
    path: &Path,
    specs: &[ShardSpec],
    progress: progress::Fold,
) -> Result<HistoryPass, CheckError> {
    let mut r = HistoryReader::open(path)?;
    let mut pass = HistoryPass {
        progress,
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
        self.progress_step(&e);
        self.pair(e);
    }

    /// What the `progress` rule needs of the line: when, whose, the accounts its value
    /// names and a nemesis line's function and value (as its own pass read them from a
    /// whole `Event`; `EntryValue::str_field` reads a value's fields as `Value::get` does).
    fn progress_step(&mut self, e: &ShardEvent) {
        let v = &e.value;
        let accounts = [
            v.str_field("account"),
            v.str_field("from"),
            v.str_field("to"),
        ];
        let at = (e.index, e.time_ns);
        let who = (e.process, e.kind);
        if e.process != Process::Nemesis {
            self.progress.parts(at, who, (accounts, None));
            return;
        }
        let written;
        let value = match v.json() {
            Some(value) => value,
            None => {
                written = v.to_value();
                &written
            }
        };
        let nemesis = Some((e.f.as_str(), value));
        self.progress.parts(at, who, (accounts, nemesis));
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
        for e in log.briefs() {
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
    let rule = progress::bound_ms(params.table.get("progress_bound_ms")).map(|bound| {
        let shards = specs.iter();
        let shards = shards.map(|s| (s.id, s.nodes.clone(), s.accounts.clone()));
        (bound, progress::Replicas::Sharded(shards.collect()))
    });
    // final.json first: what its loading holds only until every replica is laid (the
    // text marks, balances and snapshots beside the agreed logs) is given back before
    // the history's operations are built, so the two never add up at the peak. A fault
    // in the history is still the one told when both files have one, as when the
    // history was read first.
    let loaded = shard_load::load(&files.final_json);
    let history = read_history(&files.history, &specs, progress::Fold::new(rule))?;
    let loaded = loaded?;
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
        progress,
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
    let op_by_key = OpIndex::new(&ops);
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
    // The classic replay, bank conservation and agreement's balances, over one
    // replay of each shard.
    let (replay, conservation, agreement) = replayed_checks(&data, agreement);
    checks.insert("bank-conservation".into(), conservation);
    checks.insert("shard-agreement".into(), agreement);
    checks.insert("replay".into(), replay);
    // The classic exactly-once, per shard.
    checks.insert("exactly-once".into(), shard_exactly_once::run(&data));
    let bound = params.liveness_bound_ms.as_ref();
    checks.insert(
        "liveness".into(),
        shard_liveness::run(&data, timeline, bound),
    );
    // Judged in the history pass; read again only should serde refuse a line there.
    checks.insert("progress".into(), progress.finish(&files.history)?);
    // Strict serializability reads only the operations: the logs are given back
    // first, so its graph does not add to the peak.
    let final_state = summarize(&data);
    data.logs = BTreeMap::new();
    checks.insert(
        "strict-serializability".into(),
        serializability::run(&data, &steps),
    );
    Ok(Results {
        run_dir: files.dir.display().to_string(),
        ..Results::judged(stats, final_state, warnings, checks)
    })
}

/// Replay, bank conservation and agreement (given what streaming final.json found),
/// each following one shared replay of every shard (`Sharded::replay_watched`): the
/// shards run.toml lists in its order, then any other a replica names.
fn replayed_checks(
    data: &Sharded,
    agreement: Agreement,
) -> (CheckResult, CheckResult, CheckResult) {
    let mut replay = shard_replay::start(data);
    let mut conservation = bank_conservation::start(data);
    let mut states = shard_agreement::Replayed::new(data);
    let listed: Vec<ShardId> = data.specs.iter().map(|s| s.id).collect();
    let others: Vec<ShardId> = states.shards().filter(|s| !listed.contains(s)).collect();
    for (k, id) in listed.iter().chain(&others).copied().enumerate() {
        let listed = k < listed.len();
        let mut r = listed.then(|| replay.shard(id)).flatten();
        let mut c = listed.then(|| conservation.shard(id)).flatten();
        let mut a = states.shard(data, id);
        let mut watchers: Vec<&mut dyn Watch> = Vec::new();
        if let Some(w) = r.as_mut() {
            watchers.push(w);
        }
        if let Some(w) = c.as_mut() {
            watchers.push(w);
        }
        if let Some(w) = a.as_mut() {
            watchers.push(w);
        }
        if !watchers.is_empty() {
            data.replay_watched(id, &mut watchers);
        }
        drop(watchers);
        if let Some(c) = c {
            conservation.replayed(c);
        }
    }
    (
        replay.finish(),
        conservation.finish(),
        shard_agreement::run(data, agreement, states),
    )
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
