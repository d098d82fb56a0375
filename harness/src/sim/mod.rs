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
//!
//! With `--shards S` ([`SimParams::shards`]) the world is a sharded bank: S Paxos groups of
//! [`REPLICAS_PER_SHARD`] replicas with two-phase commit between them, accounts dealt as
//! `replica init --shards` deals them. Clients send each command to its account's shard, half
//! the transfers cross shards, `read_all` is a cross-shard snapshot; the nemesis aims at shard
//! leaders and the links between shards (`faults::schedule::generate_sharded`); `stable` needs a
//! majority of every shard; the end waits for every transaction to finish; and the run dir is
//! in the sharded shape of docs/sharded.md (`[[shards]]` in run.toml, positions per shard in
//! the history, every replica's `shard` and [`shard_entry`]s in final.json), so the checker
//! judges it with its sharded checks.

pub mod cli;
pub mod clients;
pub mod faults;
pub mod final_json;
pub mod shrink;
pub mod swarm;
pub mod sweep;
pub mod zoo;

use crate::faults::nemesis::Nemesis;
use crate::faults::schedule::{self, FaultFamily, Step, World, SCHEDULE_VERSION};
use crate::faults::tunables::Tunables;
use crate::params::ShardTable;
use crate::run::check;
use crate::run::shared::write_json;
use crate::run::shared::INITIAL_BALANCE;
use checker::checks::Validity;
use checker::history::{Event, HistoryWriter};
use checker::results::Results;
use clients::{ClientTiming, Clients, Routing};
pub use final_json::{ClassicFinal, ClassicNode, ShardedSimFinal, ShardedSimNode, SimFinal};
use replica::core::{Bugs, CoreConfig};
use replica::shard::{ShardMap, ShardSpec};
use replica::types::{Account, NodeId, ShardId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most virtual time the end of a run waits for lagging replicas to catch up.
const QUIESCE_MS: u64 = 10_000;

/// How long a simulated bank may go without an `ok` while a majority (of every shard) is up
/// and connected: as in real runs (`run::final_phase::PROGRESS_BOUND`).
pub const PROGRESS_BOUND_MS: u64 = 10_000;

/// The nemesis intervals a classic seed draws from (how long each fault lasts, and the quiet
/// between two).
pub const NEMESIS_INTERVALS_MS: [u64; 3] = [200, 500, 1_000];
/// A sharded seed's (schedule version 4): a fault between shards must outlast two-phase
/// commit's 1 s vote timeout to make a coordinator abort a transaction its participant voted
/// yes on, and an election in a shard must take longer than that to do the same; faults of
/// 200 ms to 1 s (version 3) rarely did.
pub const SHARDED_NEMESIS_INTERVALS_MS: [u64; 3] = [1_000, 2_000, 3_000];

/// Replicas in each shard of a sharded simulated bank.
pub const REPLICAS_PER_SHARD: u32 = 3;

/// Every parameter of one simulated run, written under `[params]` in `run.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    pub nodes: u32,
    pub clients: u32,
    /// Operations the clients start in all.
    pub ops: u64,
    /// The workload stops at this virtual time even if operations are left.
    pub time_limit_ms: u64,
    pub faults: Vec<FaultFamily>,
    /// Planted bug (`harness zoo --sim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    /// A sharded bank of this many shards of [`REPLICAS_PER_SHARD`] (`nodes` is then their
    /// product); absent: the classic one-group cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    pub attempt_timeout_ms: u64,
    pub op_timeout_ms: u64,
    /// Network: one-way delay up to this, loss and duplication rates while faults run.
    pub max_delay_ms: u64,
    pub drop_rate: f64,
    pub dup_rate: f64,
    /// After the final heal, every pending operation must finish within this.
    pub liveness_bound_ms: u64,
    pub tunables: Tunables,
    /// Whether `faults` and `workload` were drawn for the seed (swarm testing, see
    /// [`swarm`]); false with `--no-swarm` and in runs saved before it.
    #[serde(default)]
    pub swarm: bool,
    /// The workload's shape: accounts, mix, contention, cross-shard share.
    #[serde(default)]
    pub workload: swarm::SimWorkload,
}

impl SimParams {
    /// The defaults of `harness sim`, with the tunables, the fault families and the workload
    /// drawn for `seed`; `shards` picks the nemesis intervals drawn from (the sharded bank's
    /// are longer). Call [`SimParams::set_shards`] with the same `shards` after.
    pub fn for_seed(
        seed: u64,
        pins: &crate::faults::tunables::Pins,
        shards: Option<u32>,
    ) -> SimParams {
        let intervals: &[u64] = match shards {
            Some(s) if s > 1 => &SHARDED_NEMESIS_INTERVALS_MS,
            _ => &NEMESIS_INTERVALS_MS,
        };
        let clients = 10;
        let sharded = shards.is_some_and(|s| s > 1);
        let (faults, workload) = swarm::draw_default(seed, clients, sharded);
        SimParams {
            nodes: 5,
            clients,
            ops: 2_000,
            time_limit_ms: 30_000,
            faults,
            bug: None,
            shards: None,
            attempt_timeout_ms: 300,
            op_timeout_ms: 5_000,
            max_delay_ms: 5,
            drop_rate: 0.01,
            dup_rate: 0.01,
            liveness_bound_ms: 5_000,
            tunables: crate::faults::tunables::draw(seed, pins, intervals),
            swarm: true,
            workload,
        }
    }

    /// Every simulator family and the fixed workload, as before swarm testing (`--no-swarm`).
    pub fn unswarmed(&mut self) {
        self.swarm = false;
        self.faults = match self.shards {
            Some(s) if s > 1 => World::Simulator.sharded_families(),
            _ => World::Simulator.all_families().to_vec(),
        };
        self.workload = swarm::SimWorkload::fixed(self.clients);
    }

    /// The bank's accounts: as many as the workload draws, and at least one per shard.
    pub fn accounts(&self) -> Vec<String> {
        let n = self.workload.accounts.max(self.shards.unwrap_or(1)).max(2);
        let names = crate::clients::workload::account_names(n as usize);
        names.into_iter().map(String::from).collect()
    }

    /// The same run on a sharded bank of `shards` shards (`None` or 1: the classic cluster).
    pub fn set_shards(&mut self, shards: Option<u32>) {
        match shards.filter(|&s| s > 1) {
            Some(s) => {
                self.shards = Some(s);
                self.nodes = s.saturating_mul(REPLICAS_PER_SHARD);
            }
            None if self.shards.is_some() => {
                self.shards = None;
                self.nodes = 5;
            }
            None => {}
        }
    }
}

/// The contents of a simulated run's `run.toml`. `accounts`, `initial_balance`,
/// `liveness_bound_ms` and `progress_bound_ms` sit at the top level because the checker
/// reads them there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimRunInfo {
    pub accounts: Vec<String>,
    pub initial_balance: i64,
    pub liveness_bound_ms: u64,
    /// The checker's `progress` check: with a majority up and connected, some operation is
    /// answered ok within this ([`PROGRESS_BOUND_MS`]). Absent in runs saved before it was
    /// written, which replay without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_bound_ms: Option<u64>,
    pub seed: u64,
    /// Always `sim`.
    pub kind: String,
    pub harness_version: String,
    /// The run directory this one replays or shrinks, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replays: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrunk_from: Option<String>,
    /// A sharded run's `[[shards]]` (top level, where the checker reads them); empty for a
    /// classic run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardTable>,
    pub params: SimParams,
    /// How the schedule was drawn and its faults recorded ([`SCHEDULE_VERSION`]); absent in
    /// runs made before the one fault vocabulary (version 1), which replay refuses.
    #[serde(default = "schedule_version_1")]
    pub schedule_version: u32,
    /// The nemesis schedule, so that a shrunk run can carry a schedule no seed generates.
    pub schedule: Vec<Step>,
}

pub const SIM_KIND: &str = "sim";

fn schedule_version_1() -> u32 {
    1
}

impl SimRunInfo {
    /// A fresh run of `seed` with `params` and the seed's own schedule. Fails only when the
    /// accounts cannot be dealt over `params.shards`.
    pub fn new(seed: u64, params: SimParams) -> Result<SimRunInfo, SimError> {
        let accounts = params.accounts();
        let specs = shard_specs(&params, &accounts)?;
        let (interval, until) = (params.tunables.nemesis_interval_ms, params.time_limit_ms);
        let odds = schedule::FamilyOdds::Weighted;
        let schedule = if specs.is_empty() {
            let nodes: Vec<NodeId> = (1..=params.nodes).map(NodeId).collect();
            schedule::generate(seed, &nodes, &params.faults, interval, until, odds)
        } else {
            let shards = specs.iter().map(|s| (s.id.0, s.nodes.clone())).collect();
            schedule::generate_sharded(seed, &shards, &params.faults, interval, until, odds)
        };
        Ok(SimRunInfo {
            shards: specs.iter().map(shard_table).collect(),
            accounts,
            initial_balance: INITIAL_BALANCE,
            liveness_bound_ms: params.liveness_bound_ms,
            progress_bound_ms: Some(PROGRESS_BOUND_MS),
            seed,
            kind: SIM_KIND.to_string(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            replays: None,
            shrunk_from: None,
            params,
            schedule_version: SCHEDULE_VERSION,
            schedule,
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        let path = dir.join("run.toml");
        let text = toml::to_string_pretty(self).map_err(|e| SimError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|e| SimError::io(&path, e))
    }

    /// Reads `dir`'s run.toml; a run drawn by another [`SCHEDULE_VERSION`] is refused (its
    /// history could not come out the same, and "not reproduced" would be false).
    pub fn load(dir: &Path) -> Result<SimRunInfo, SimError> {
        let path = dir.join("run.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| SimError::io(&path, e))?;
        let info: SimRunInfo = toml::from_str(&text).map_err(|e| SimError::Io {
            path: path.clone(),
            message: format!("not a simulated run's run.toml: {e}"),
        })?;
        if info.schedule_version != SCHEDULE_VERSION {
            return Err(SimError::ScheduleVersion {
                path,
                version: info.schedule_version,
                seed: info.seed,
            });
        }
        Ok(info)
    }
}

/// The shards of a sharded run (`params.shards`), dealt as `replica init --shards` deals
/// them; empty for the classic cluster.
fn shard_specs(params: &SimParams, accounts: &[String]) -> Result<Vec<ShardSpec>, SimError> {
    let Some(shards) = params.shards else {
        return Ok(Vec::new());
    };
    replica::shard::spread(&account_list(accounts), shards, REPLICAS_PER_SHARD).map_err(|e| {
        SimError::Shards {
            shards,
            message: e.to_string(),
        }
    })
}

/// run.toml's accounts as the replica's names.
fn account_list(accounts: &[String]) -> Vec<Account> {
    accounts.iter().map(|a| a.as_str().into()).collect()
}

/// A shard's `[[shards]]` table in run.toml.
fn shard_table(spec: &ShardSpec) -> ShardTable {
    ShardTable {
        id: spec.id.0,
        accounts: spec.accounts.iter().map(ToString::to_string).collect(),
        nodes: spec.nodes.iter().map(ToString::to_string).collect(),
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
    #[error("cannot run {shards} shards: {message}")]
    Shards { shards: u32, message: String },
    #[error("cannot check {}: {message}", dir.display())]
    Check { dir: PathBuf, message: String },
    #[error(
        "{}: drawn and recorded by schedule version {version}, this harness uses version \
         {SCHEDULE_VERSION} (seeds draw new schedules when it changes, see the README's \
         \"Deterministic simulation\"), so its history cannot come out the same: replay it with the harness that made it, or \
         run its seed afresh with `harness sim --seeds 1 --from-seed {seed}`",
        path.display()
    )]
    ScheduleVersion {
        path: PathBuf,
        version: u32,
        seed: u64,
    },
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
    pub final_state: SimFinal,
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
    let specs = shard_specs(params, &info.accounts)?;
    if specs
        .iter()
        .map(shard_table)
        .ne(info.shards.iter().cloned())
    {
        return Err(SimError::Shards {
            shards: params.shards.unwrap_or(1),
            message: "run.toml's [[shards]] are not how the accounts are dealt over them".into(),
        });
    }
    let mut sim = Sim::new(world_options(info, &specs)?);
    let nodes = sim.node_ids();
    let accounts = account_list(&info.accounts);
    let routing = if specs.is_empty() {
        Routing::classic(nodes.clone())
    } else {
        let shards: Vec<_> = specs
            .iter()
            .map(|s| (s.id.0, s.nodes.clone(), s.accounts.clone()))
            .collect();
        Routing::sharded(&shards, &accounts, params.workload.cross_shard_share)
    };
    let timing = ClientTiming {
        attempt_timeout_ms: params.attempt_timeout_ms,
        op_timeout_ms: params.op_timeout_ms,
    };
    let mut clients = Clients::new(
        info.seed,
        params.clients,
        &accounts,
        routing,
        timing,
        params.ops,
    )
    .with_shape(params.workload.shape)
    .with_think(params.workload.think_ms);
    let mut history = HistoryWriter::buffered(Vec::new());
    let mut events = Vec::new();
    let mut nemesis = Nemesis::new(info.schedule.clone());
    let mut stable_at: Option<u64> = None;
    // A sharded bank probes once more after the liveness bound (see `probe_at`).
    let mut probed = specs.is_empty();
    let end_of_run = |stable: u64| {
        let last_round = if specs.is_empty() {
            stable
        } else {
            probe_at(stable, params)
        };
        last_round + params.liveness_bound_ms + params.op_timeout_ms
    };
    loop {
        let now = sim.now_ms;
        // Workload over (budget spent or time up): heal, and from here liveness is owed.
        if stable_at.is_none() && (clients.all_done() || now >= params.time_limit_ms) {
            clients.stop_starting();
            faults::heal(&mut nemesis, &mut sim, &mut events);
            stable_at = Some(settle(&mut sim, &nodes, &mut events));
            clients.extend_deadlines(now + params.liveness_bound_ms + 1_000);
            // Liveness needs something to watch: each client makes one more request on the
            // healed cluster.
            clients.final_round(u64::from(params.clients));
        }
        // The probe waits for the round before it, whose transactions may hold locks.
        let probe_due = stable_at.is_some_and(|s| now >= probe_at(s, params));
        if !probed && probe_due && clients.all_done() {
            probed = true;
            clients.probe_round(u64::from(params.clients));
        }
        if let Some(stable) = stable_at {
            if (clients.all_done() && probed) || now >= end_of_run(stable) {
                break;
            }
        }
        if stable_at.is_none() {
            faults::apply_due(&mut nemesis, &mut sim, &mut events, now);
        }
        clients.act(&mut sim, now, &mut events);
        flush_events(&mut history, &mut events, now)?;
        let next = [
            sim.next_event_ms(),
            clients.next_timer_ms(now),
            nemesis.next_at_ms().filter(|_| stable_at.is_none()),
            Some(params.time_limit_ms).filter(|_| stable_at.is_none()),
            stable_at.filter(|_| !probed).map(|s| probe_at(s, params)),
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
    // waits for a quiet cluster (and, sharded, for every transaction in flight to end).
    let final_state = if specs.is_empty() {
        sim.run_until_converged(QUIESCE_MS);
        SimFinal::Classic(final_json::final_state(&mut sim))
    } else {
        sim.run_until(QUIESCE_MS, |s| {
            s.check_converged().is_ok() && s.check_settled().is_ok()
        });
        SimFinal::Sharded(final_json::sharded_final_state(&mut sim))
    };
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

/// When a sharded run's clients probe (each reads its own account, [`Clients::probe_round`]):
/// just past the liveness bound after `stable`, once the round before has ended. Every
/// transaction in flight at the heal must have ended by then, so a lock that refuses a probe
/// was never released (the checker's liveness check calls that a stall; `keep-locks-on-abort`
/// shows this way).
fn probe_at(stable_ms: u64, params: &SimParams) -> u64 {
    stable_ms + params.liveness_bound_ms + 1
}

/// The world's options for a run: the replica's config with the drawn tunables, the network's
/// impairments, the planted bug, and the shards if any.
fn world_options(info: &SimRunInfo, specs: &[ShardSpec]) -> Result<SimOptions, SimError> {
    let params = &info.params;
    let mut config = CoreConfig::for_test(1, params.nodes);
    config.accounts = account_list(&info.accounts);
    config.initial_balance = info.initial_balance;
    params.tunables.apply_to_core(&mut config);
    let (mut forget_promises, mut misread_log) = (false, false);
    if let Some(bug) = &params.bug {
        let mut bugs = Bugs::default();
        if bug == "forget-promises" {
            forget_promises = true;
        } else if bug == "misread-log" {
            misread_log = true;
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
    options.misread_log = misread_log;
    if let Some(txns) = params.tunables.max_inflight_txns {
        options.max_inflight_txns = txns;
    }
    options.lock_policy = params.workload.lock_policy;
    if !specs.is_empty() {
        let nodes = options.config.nodes.clone();
        let accounts = account_list(&info.accounts);
        let map = ShardMap::new(specs, &accounts, &nodes).map_err(|e| SimError::Shards {
            shards: specs.len() as u32,
            message: e.to_string(),
        })?;
        options.shards = Some(map);
    }
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
    // A classic cluster is one shard of every node.
    let majority = |shard: ShardId| {
        let members = sim.members(shard);
        members.iter().filter(|&&n| sim.is_up(n)).count() > members.len() / 2
    };
    if sim.shards().into_iter().all(majority) {
        events.push(faults::nemesis_event("stable", value));
    } else {
        events.push(faults::nemesis_event("no-majority", value));
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
        verdict: crate::run::shared::verdict_word(exit_code).to_string(),
        failed_checks: failed_checks(&results),
        faults: outcome.faults,
        invoked: outcome.invoked,
        virtual_ms: outcome.virtual_ms,
        world_violations: outcome.world_violations.clone(),
    };
    write_json(&dir.join(crate::run::shared::SUMMARY_FILE), &summary).map_err(|e| {
        SimError::Io {
            path: dir.join(crate::run::shared::SUMMARY_FILE),
            message: e.to_string(),
        }
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
