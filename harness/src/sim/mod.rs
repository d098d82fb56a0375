//! `harness sim`: whole runs of the real replica code on virtual time, one per seed, judged by
//! the same checker as real runs, and replayed byte for byte.
//!
//! A seed fixes everything: the replica's tunables (drawn unless pinned, see `tunables`), the
//! nemesis schedule ([`faults`]), every client's operations (`workload`), the network's
//! delays, losses and duplicates, and every disk fault, because the world (`sim` crate) and
//! the clients ([`clients`]) draw only from seeded streams and never read a clock.
//!
//! One run: five replicas (real `Shell`s on simulated disks), ten closed-loop clients and the
//! nemesis run until the operation budget is spent or the time limit passes. Then every fault
//! is healed, a majority is up and connected, and a `stable` nemesis event says so; from there
//! every pending operation must finish within `liveness_bound_ms`, which the checker's
//! liveness check enforces. Finally every replica's balances and executed log go into
//! `final.json`, and the run directory is an ordinary one: `run.toml` (kind `sim`),
//! `history.jsonl` with virtual time in `time_ns`, `final.json`, then the checker's
//! `results.json` and `report.html`.

pub mod cli;
pub mod clients;
pub mod faults;
pub mod shrink;
pub mod sweep;
pub mod zoo;

use crate::faults::tunables::Tunables;
use crate::run::record::executed_entry;
use crate::run::{accounts_for, check, write_json};
use checker::checks::Validity;
use checker::final_state::{FinalState, NodeFinal};
use checker::history::{Event, HistoryWriter};
use checker::results::Results;
use clients::{ClientTiming, Clients};
use faults::{SimFamily, SimNemesis, SimStep};
use replica::core::{Bugs, CoreConfig};
use replica::types::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most virtual time the end of a run waits for lagging replicas to catch up.
const QUIESCE_MS: u64 = 10_000;

/// The initial balance of every account in simulated runs (as in real ones).
pub const INITIAL_BALANCE: i64 = 10;

/// Every parameter of one simulated run, written under `[params]` in `run.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    pub nodes: u32,
    pub clients: u32,
    /// Operations the clients start in all.
    pub ops: u64,
    /// The workload stops at this virtual time even if operations are left.
    pub time_limit_ms: u64,
    pub faults: Vec<SimFamily>,
    /// Planted bug (`harness zoo --sim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    pub attempt_timeout_ms: u64,
    pub op_timeout_ms: u64,
    /// Network: one-way delay up to this, loss and duplication rates while faults run.
    pub max_delay_ms: u64,
    pub drop_rate: f64,
    pub dup_rate: f64,
    /// After the final heal, every pending operation must finish within this.
    pub liveness_bound_ms: u64,
    pub tunables: Tunables,
}

impl SimParams {
    /// The defaults of `harness sim`, with the tunables drawn for `seed`.
    pub fn for_seed(seed: u64, pins: &crate::faults::tunables::Pins) -> SimParams {
        SimParams {
            nodes: 5,
            clients: 10,
            ops: 2_000,
            time_limit_ms: 30_000,
            faults: faults::ALL_FAMILIES.to_vec(),
            bug: None,
            attempt_timeout_ms: 300,
            op_timeout_ms: 5_000,
            max_delay_ms: 5,
            drop_rate: 0.01,
            dup_rate: 0.01,
            liveness_bound_ms: 5_000,
            tunables: crate::faults::tunables::draw(seed, pins, &[200, 500, 1_000]),
        }
    }
}

/// The contents of a simulated run's `run.toml`. `accounts`, `initial_balance` and
/// `liveness_bound_ms` sit at the top level because the checker reads them there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimRunInfo {
    pub accounts: Vec<String>,
    pub initial_balance: i64,
    pub liveness_bound_ms: u64,
    pub seed: u64,
    /// Always `sim`.
    pub kind: String,
    pub harness_version: String,
    /// The run directory this one replays or shrinks, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replays: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrunk_from: Option<String>,
    pub params: SimParams,
    /// The nemesis schedule, so that a shrunk run can carry a schedule no seed generates.
    pub schedule: Vec<SimStep>,
}

pub const SIM_KIND: &str = "sim";

impl SimRunInfo {
    /// A fresh run of `seed` with `params` and the seed's own schedule.
    pub fn new(seed: u64, params: SimParams) -> SimRunInfo {
        let nodes: Vec<NodeId> = (1..=params.nodes).map(NodeId).collect();
        let schedule = faults::schedule(
            seed,
            &nodes,
            &params.faults,
            params.tunables.nemesis_interval_ms,
            params.time_limit_ms,
        );
        SimRunInfo {
            accounts: accounts_for(params.clients),
            initial_balance: INITIAL_BALANCE,
            liveness_bound_ms: params.liveness_bound_ms,
            seed,
            kind: SIM_KIND.to_string(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            replays: None,
            shrunk_from: None,
            params,
            schedule,
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        let path = dir.join("run.toml");
        let text = toml::to_string_pretty(self).map_err(|e| SimError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|e| SimError::io(&path, e))
    }

    pub fn load(dir: &Path) -> Result<SimRunInfo, SimError> {
        let path = dir.join("run.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| SimError::io(&path, e))?;
        toml::from_str(&text).map_err(|e| SimError::Io {
            path,
            message: format!("not a simulated run's run.toml: {e}"),
        })
    }
}

/// Reads only the `kind` of a run directory's `run.toml` (`campaign`, `scenario`, `sim`).
pub fn run_kind(dir: &Path) -> Result<String, SimError> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let path = dir.join("run.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| SimError::io(&path, e))?;
    let kind: Kind = toml::from_str(&text).map_err(|e| SimError::Io {
        path,
        message: e.to_string(),
    })?;
    Ok(kind.kind)
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("unknown bug {0:?}")]
    UnknownBug(String),
    #[error("cannot check {}: {message}", dir.display())]
    Check { dir: PathBuf, message: String },
}

impl SimError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> SimError {
        SimError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// What one simulated run produced, before it is written anywhere.
pub struct SimOutcome {
    pub history: Vec<u8>,
    pub final_state: FinalState,
    pub faults: u32,
    pub invoked: u64,
    pub virtual_ms: u64,
    /// Problems the world itself saw (two replicas executing different commands at one exec
    /// index, acknowledged data cut, a token answered twice).
    pub world_violations: Vec<String>,
}

/// Runs one simulated run in memory.
pub fn simulate(info: &SimRunInfo) -> Result<SimOutcome, SimError> {
    let params = &info.params;
    let mut sim = Sim::new(world_options(info)?);
    let nodes = sim.node_ids();
    let timing = ClientTiming {
        attempt_timeout_ms: params.attempt_timeout_ms,
        op_timeout_ms: params.op_timeout_ms,
    };
    let mut clients = Clients::new(
        info.seed,
        params.clients,
        &info.accounts,
        nodes.clone(),
        timing,
        params.ops,
    );
    let mut history = HistoryWriter::buffered(Vec::new());
    let mut events = Vec::new();
    let mut nemesis = SimNemesis::default();
    let mut schedule = info.schedule.iter().peekable();
    let mut stable_at: Option<u64> = None;
    let end_of_run = |stable: u64| stable + params.liveness_bound_ms + params.op_timeout_ms;
    loop {
        let now = sim.now_ms;
        // Workload over (budget spent or time up): heal, and from here liveness is owed.
        if stable_at.is_none() && (clients.all_done() || now >= params.time_limit_ms) {
            clients.stop_starting();
            events.extend(nemesis.heal(&mut sim));
            stable_at = Some(settle(&mut sim, &nodes, &mut events));
            clients.extend_deadlines(now + params.liveness_bound_ms + 1_000);
            // Liveness needs something to watch: each client makes one more request on the
            // healed cluster.
            clients.final_round(u64::from(params.clients));
        }
        if let Some(stable) = stable_at {
            if clients.all_done() || now >= end_of_run(stable) {
                break;
            }
        }
        while let Some(step) = schedule.next_if(|s| s.at_ms <= now && stable_at.is_none()) {
            events.extend(nemesis.apply(&mut sim, step.fault.as_ref()));
        }
        clients.act(&mut sim, now, &mut events);
        flush_events(&mut history, &mut events, now)?;
        let next = [
            sim.next_event_ms(),
            clients.next_timer_ms(now),
            schedule
                .peek()
                .map(|s| s.at_ms)
                .filter(|_| stable_at.is_none()),
            Some(params.time_limit_ms).filter(|_| stable_at.is_none()),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.max(now + 1))
        .min()
        .unwrap_or(now + 1);
        sim.run_to(next);
    }
    flush_events(&mut history, &mut events, sim.now_ms)?;
    // Let lagging replicas catch up before their state is read, as the harness's final phase
    // waits for a quiet cluster.
    sim.run_until_converged(QUIESCE_MS);
    let final_state = final_state(&sim);
    let history = history
        .into_inner()
        .map_err(|e| SimError::io(Path::new("history"), e))?;
    Ok(SimOutcome {
        history,
        final_state,
        faults: nemesis.faults,
        invoked: clients.invoked,
        virtual_ms: sim.now_ms,
        world_violations: sim.violations(),
    })
}

/// The world's options for a run: the replica's config with the drawn tunables, the network's
/// impairments, and the planted bug.
fn world_options(info: &SimRunInfo) -> Result<SimOptions, SimError> {
    let params = &info.params;
    let mut config = CoreConfig::for_test(1, params.nodes);
    config.accounts = info.accounts.clone();
    config.initial_balance = info.initial_balance;
    params.tunables.apply_to_core(&mut config);
    let mut forget_promises = false;
    if let Some(bug) = &params.bug {
        let mut bugs = Bugs::default();
        if bug == "forget-promises" {
            forget_promises = true;
        } else if !bugs.plant(bug) {
            return Err(SimError::UnknownBug(bug.clone()));
        }
        config.bugs = bugs;
    }
    let mut options = SimOptions::new(params.nodes, info.seed);
    options.config = config;
    options.max_delay_ms = params.max_delay_ms.max(options.min_delay_ms);
    options.drop_rate = params.drop_rate;
    options.dup_rate = params.dup_rate;
    options.long_delay_rate = params.drop_rate / 2.0;
    options.forget_promises = forget_promises;
    Ok(options)
}

/// After the workload: everything restarted, resumed and reconnected, the network clean.
/// Records `stable` when a majority is up (the liveness promise); returns the time.
fn settle(sim: &mut Sim, nodes: &[NodeId], events: &mut Vec<Event>) -> u64 {
    sim.heal();
    sim.set_drop_rate(0.0);
    sim.set_dup_rate(0.0);
    for &node in nodes {
        // A failing fsync armed on an idle or stopped node would fire after the heal.
        sim.clear_disk_faults(node);
        sim.resume(node);
        sim.restart(node);
    }
    let up: Vec<String> = nodes
        .iter()
        .filter(|&&n| sim.is_up(n))
        .map(ToString::to_string)
        .collect();
    let refused: BTreeMap<String, String> = nodes
        .iter()
        .filter_map(|&n| {
            sim.node(n)
                .refused()
                .map(|why| (n.to_string(), why.to_string()))
        })
        .collect();
    let value = json!({"up": up, "refused": refused, "nodes": sim.describe_nodes()});
    if up.len() > nodes.len() / 2 {
        events.push(faults::nemesis("stable", value));
    } else {
        events.push(faults::nemesis("no-majority", value));
    }
    sim.now_ms
}

/// Writes the pending events at virtual time `now_ms`.
fn flush_events(
    history: &mut HistoryWriter<Vec<u8>>,
    events: &mut Vec<Event>,
    now_ms: u64,
) -> Result<(), SimError> {
    let time_ns = now_ms.saturating_mul(1_000_000);
    for event in events.drain(..) {
        let index = history.next_index();
        history
            .append(&event.at(index, time_ns))
            .map_err(|e| SimError::io(Path::new("history"), e))?;
    }
    Ok(())
}

/// Every replica's balances and executed log, as real runs report them. The entry named after
/// the replica holds its balances and the stretch of its log that ends at its exec index;
/// any other stretch it executed (before a snapshot install, or lost to a power cut and not
/// executed again) is an extra, balance-less entry named like `n1:1-40`. A replica whose
/// log does not reach its exec index (it installed a snapshot last) reports no balances,
/// saying why, as the harness does when a replica's journal and balances disagree.
fn final_state(sim: &Sim) -> FinalState {
    let mut nodes = BTreeMap::new();
    for id in sim.node_ids() {
        let node = sim.node(id);
        // Up: its balances and the exec index they are at. Down (or refused): no balances,
        // but what it executed while it lived still counts, as the harness's journal polling
        // keeps it in real runs.
        let state = node.core().map(|core| core.balances());
        let exec_index = state.as_ref().map_or(0, |(e, _)| *e);
        let mut segments: Vec<Vec<&replica::bank::Executed>> = Vec::new();
        for entry in node.executed() {
            let joins = segments
                .last()
                .and_then(|s| s.last())
                .map(|e| e.exec_index + 1)
                == Some(entry.exec_index)
                && (state.is_none() || entry.exec_index != exec_index + 1);
            match segments.last_mut() {
                Some(last) if joins => last.push(entry),
                _ => segments.push(vec![entry]),
            }
        }
        let named = match state {
            None => NodeFinal::unreachable(node.refused().unwrap_or("down at the end of the run")),
            Some((exec_index, balances)) => {
                let current = segments
                    .iter()
                    .position(|s| s.last().map(|e| e.exec_index) == Some(exec_index));
                match current {
                    Some(k) => NodeFinal {
                        balances: Some(balances.into_iter().collect()),
                        executed: segments.remove(k).into_iter().map(executed_entry).collect(),
                        error: None,
                    },
                    None if exec_index == 0 => NodeFinal {
                        balances: Some(balances.into_iter().collect()),
                        executed: Vec::new(),
                        error: None,
                    },
                    None => NodeFinal::unreachable(format!(
                        "balances at exec index {exec_index}, but the executed log does not \
                         reach it (installed a snapshot)"
                    )),
                }
            }
        };
        for segment in segments {
            let (first, last) = (segment[0].exec_index, segment[segment.len() - 1].exec_index);
            nodes.insert(
                format!("{id}:{first}-{last}"),
                NodeFinal {
                    balances: None,
                    executed: segment.into_iter().map(executed_entry).collect(),
                    error: None,
                },
            );
        }
        nodes.insert(id.to_string(), named);
    }
    FinalState { nodes }
}

/// A simulated run written and checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimSummary {
    pub dir: PathBuf,
    pub seed: u64,
    pub exit_code: i32,
    pub verdict: String,
    /// The checks that failed, by name.
    pub failed_checks: Vec<String>,
    pub faults: u32,
    pub invoked: u64,
    pub virtual_ms: u64,
    pub world_violations: Vec<String>,
}

/// Writes a run directory for `info` and `outcome`, checks it, and writes the report.
pub fn write_and_check(
    dir: &Path,
    info: &SimRunInfo,
    outcome: &SimOutcome,
    report: bool,
) -> Result<SimSummary, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    info.write(dir)?;
    let history = dir.join("history.jsonl");
    std::fs::File::create(&history)
        .and_then(|mut f| f.write_all(&outcome.history))
        .map_err(|e| SimError::io(&history, e))?;
    let final_path = dir.join("final.json");
    outcome
        .final_state
        .write(&final_path)
        .map_err(|e| SimError::io(&final_path, e))?;
    let results = if report {
        check(dir).map_err(|e| SimError::Check {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })?
    } else {
        check_only(dir)?
    };
    let mut exit_code = results.exit_code();
    if !outcome.world_violations.is_empty() && exit_code == 0 {
        // The world saw what the history cannot show (acknowledged data cut on a disk): the
        // run is not valid even if every client observation is.
        exit_code = 1;
    }
    let summary = SimSummary {
        dir: dir.to_path_buf(),
        seed: info.seed,
        exit_code,
        verdict: crate::run::verdict_word(exit_code).to_string(),
        failed_checks: failed_checks(&results),
        faults: outcome.faults,
        invoked: outcome.invoked,
        virtual_ms: outcome.virtual_ms,
        world_violations: outcome.world_violations.clone(),
    };
    write_json(&dir.join(crate::run::SUMMARY_FILE), &summary).map_err(|e| SimError::Io {
        path: dir.join(crate::run::SUMMARY_FILE),
        message: e.to_string(),
    })?;
    Ok(summary)
}

/// The checker's verdict and results.json, without the report (sweeps check every seed).
fn check_only(dir: &Path) -> Result<Results, SimError> {
    let results = checker::check_run(dir).map_err(|e| SimError::Check {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    results.write_json(dir).map_err(|e| SimError::io(dir, e))?;
    Ok(results)
}

/// The names of the checks that did not pass.
pub fn failed_checks(results: &Results) -> Vec<String> {
    results
        .checks
        .iter()
        .filter(|(_, check)| !matches!(check.valid, Validity::Valid))
        .map(|(name, _)| name.clone())
        .collect()
}
