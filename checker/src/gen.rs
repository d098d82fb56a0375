//! Generates runs of a correct bank, and plants anomalies in them, for tests and the
//! benchmark.
//!
//! The model is the sequential specification with concurrent clients around it:
//! `clients` closed-loop clients each invoke an operation, the command executes at
//! some later step (taking the next exec index), and the client hears the answer at a
//! still later step, so executions interleave with invocations the way they do against
//! a real cluster. Attempts can time out (`info`; the command may still execute, even
//! after the timeout), be retried with the same request id (execution is deduplicated,
//! as the replica does), be rejected before proposal (`fail` without an exec index), or
//! fail for insufficient funds (`fail` with one). A nemesis kills, pauses and
//! partitions replicas now and then, which slows answers down. The executed commands
//! become final.json, with replicas that lag, start from a checkpoint, or could not be
//! fetched.
//!
//! With `positions: SharedReads` the run is etcd-like instead: only applied transfers
//! take positions (revisions, from [`SHARED_BASE`] + 1; the initial balances are at
//! [`SHARED_BASE`]) and are in the log; a read, a read_all or a transfer failing for
//! insufficient funds is told the revision current when it executed, shared with the
//! write before it, and final.json says `"positions": "shared_reads"`.
//!
//! Everything is driven by one seeded generator, so a seed reproduces a run.
//! [`GenRun::plant`] then changes the run so that exactly one property is broken,
//! and says which history indices the checker must name.

pub mod shards;

use crate::final_state::{ExecutedEntry, FinalState, NodeFinal, Positions};
use crate::history::{values, Event, EventType, HistoryWriter};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    pub seed: u64,
    /// Stop after this many history events (operations still in flight stay so).
    pub events: usize,
    pub clients: u64,
    pub accounts: usize,
    pub initial_balance: i64,
    /// Transfers move 1..=max_amount.
    pub max_amount: i64,
    pub p_read: f64,
    pub p_read_all: f64,
    /// An attempt times out (`info`).
    pub p_timeout: f64,
    /// A timed-out attempt's command executes anyway (maybe after the timeout).
    pub p_timeout_executes: f64,
    /// After a timeout, the client retries the same request.
    pub p_retry: f64,
    /// An attempt is rejected before proposal.
    pub p_reject: f64,
    /// Emit nemesis actions.
    pub nemesis: bool,
    /// Mean simulated time per step.
    pub step_ns: u64,
    pub nodes: usize,
    /// The last replica misses the newest entries.
    pub lagging_node: bool,
    /// One replica's log starts from a checkpoint halfway through.
    pub checkpoint_node: bool,
    /// One replica could not be fetched.
    pub unreachable_node: bool,
    /// What exec indices mean: unique per command (the replica) or shared by reads
    /// (etcd-like, see the module docs).
    pub positions: Positions,
    /// A sharded bank instead of one log (see [`shards`]); `None` is the classic bank.
    pub shards: Option<ShardGen>,
    /// Client sessions as faultline's reply table keeps them: a late copy of a request
    /// whose client has since executed a later one is stale and never executes, and
    /// run.toml says `target = "faultline"`. Without, a timed-out command may execute
    /// at any later time (a bank without sessions).
    pub sessions: bool,
}

/// The shape of a sharded run: how many shards and what share of transfers cross them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardGen {
    /// Shards (2 or 3 in the tests); accounts are dealt over them in turn.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: usize,
    /// The share of transfers whose accounts are on different shards.
    pub cross_share: f64,
}

impl Default for ShardGen {
    fn default() -> Self {
        ShardGen {
            shards: 3,
            replicas: 3,
            cross_share: 0.5,
        }
    }
}

/// Under shared positions, the revision of the initial balances (etcd's first write
/// to a fresh cluster is revision 2): the first transfer is at `SHARED_BASE + 1`.
pub const SHARED_BASE: u64 = 2;

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 1,
            events: 2_000,
            clients: 10,
            accounts: 5,
            initial_balance: 10,
            max_amount: 10,
            p_read: 0.15,
            p_read_all: 0.1,
            p_timeout: 0.05,
            p_timeout_executes: 0.5,
            p_retry: 0.5,
            p_reject: 0.03,
            nemesis: true,
            step_ns: 100_000,
            nodes: 5,
            lagging_node: true,
            checkpoint_node: true,
            unreachable_node: true,
            positions: Positions::Unique,
            shards: None,
            sessions: false,
        }
    }
}

impl GenOptions {
    /// An etcd-like run: shared positions, every member holding the whole history (no
    /// checkpoints), one lagging.
    pub fn etcd_like(seed: u64, events: usize) -> GenOptions {
        GenOptions {
            seed,
            events,
            checkpoint_node: false,
            positions: Positions::SharedReads,
            ..GenOptions::default()
        }
    }

    /// A sharded bank's run: `shards` shards of three replicas over `accounts` accounts,
    /// `cross_share` of the transfers crossing shards.
    pub fn sharded(
        seed: u64,
        events: usize,
        accounts: usize,
        shards: u32,
        cross_share: f64,
    ) -> GenOptions {
        GenOptions {
            seed,
            events,
            accounts,
            shards: Some(ShardGen {
                shards,
                replicas: 3,
                cross_share,
            }),
            ..GenOptions::default()
        }
    }

    /// The exec index of log position `pos` (1-based) is `pos` plus this.
    pub fn exec_offset(&self) -> u64 {
        match self.positions {
            Positions::Unique => 0,
            Positions::SharedReads => SHARED_BASE,
        }
    }

    /// Account names: `A`..`Z`, then `A26`, `A27`, ...
    pub fn account_names(&self) -> Vec<String> {
        (0..self.accounts)
            .map(|i| {
                if i < 26 {
                    char::from(b'A' + i as u8).to_string()
                } else {
                    format!("A{i}")
                }
            })
            .collect()
    }

    /// The run.toml text for this run.
    pub fn run_toml(&self) -> String {
        let mut text = self.run_toml_unique();
        let target = match self.positions {
            Positions::SharedReads => Some("etcd"),
            Positions::Unique if self.sessions => Some("faultline"),
            Positions::Unique => None,
        };
        if let Some(target) = target {
            let line = format!("target = \"{target}\"\n");
            text.insert_str(text.find('\n').map_or(0, |i| i + 1), &line);
        }
        text
    }

    fn run_toml_unique(&self) -> String {
        let names: Vec<String> = self
            .account_names()
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        format!(
            "# generated by checker::gen\nseed = {}\naccounts = [{}]\ninitial_balance = {}\nclients = {}\nnodes = {}\nevents = {}\n\n[workload]\np_read = {}\np_read_all = {}\np_timeout = {}\np_retry = {}\np_reject = {}\nnemesis = {}\n",
            // TOML integers are signed 64-bit.
            if self.seed <= i64::MAX as u64 { self.seed.to_string() } else { format!("\"{}\"", self.seed) },
            names.join(", "),
            self.initial_balance,
            self.clients,
            self.nodes,
            self.events,
            self.p_read,
            self.p_read_all,
            self.p_timeout,
            self.p_retry,
            self.p_reject,
            self.nemesis
        )
    }
}

/// A small, fast, seedable generator (SplitMix64); runs must be reproducible from a
/// seed with no dependency on a crate's algorithm choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n.max(1) as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// A command with account numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenCmd {
    Transfer { from: usize, to: usize, amount: i64 },
    Read { account: usize },
    ReadAll,
}

/// What a command returned when it executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenResult {
    Transferred { from_balance: i64, to_balance: i64 },
    Insufficient,
    Balance(i64),
    All(Vec<i64>),
}

/// One executed command (exec index = position in the log + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCmd {
    pub client: u64,
    pub request_id: u64,
    pub cmd: GenCmd,
    pub result: GenResult,
}

/// Applies `cmd` to `bank`, as the specification says.
pub fn apply(bank: &mut [i64], cmd: GenCmd) -> GenResult {
    match cmd {
        GenCmd::Transfer { from, to, amount } => {
            if bank[from] < amount {
                return GenResult::Insufficient;
            }
            bank[from] -= amount;
            bank[to] += amount;
            GenResult::Transferred {
                from_balance: bank[from],
                to_balance: bank[to],
            }
        }
        GenCmd::Read { account } => GenResult::Balance(bank[account]),
        GenCmd::ReadAll => GenResult::All(bank.to_vec()),
    }
}

/// `f` of a command.
pub fn f_name(cmd: GenCmd) -> &'static str {
    match cmd {
        GenCmd::Transfer { .. } => "transfer",
        GenCmd::Read { .. } => "read",
        GenCmd::ReadAll => "read_all",
    }
}

fn invoke_value(cmd: GenCmd, names: &[String]) -> Value {
    match cmd {
        GenCmd::Transfer { from, to, amount } => values::transfer(&names[from], &names[to], amount),
        GenCmd::Read { account } => values::read(&names[account]),
        GenCmd::ReadAll => Value::Null,
    }
}

/// The `type` and `value` of the answer to `cmd` that returned `result`.
pub fn result_value(cmd: GenCmd, result: &GenResult, names: &[String]) -> (EventType, Value) {
    match (cmd, result) {
        (
            GenCmd::Transfer { from, to, amount },
            GenResult::Transferred {
                from_balance,
                to_balance,
            },
        ) => (
            EventType::Ok,
            values::transfer_ok(&names[from], &names[to], amount, *from_balance, *to_balance),
        ),
        (GenCmd::Transfer { from, to, amount }, _) => (
            EventType::Fail,
            values::transfer_fail(&names[from], &names[to], amount, values::INSUFFICIENT_FUNDS),
        ),
        (GenCmd::Read { account }, GenResult::Balance(b)) => {
            (EventType::Ok, values::read_ok(&names[account], *b))
        }
        (GenCmd::ReadAll, GenResult::All(b)) => (
            EventType::Ok,
            values::read_all_ok(names.iter().map(String::as_str).zip(b.iter().copied())),
        ),
        (cmd, _) => (
            EventType::Fail,
            values::with_error(&invoke_value(cmd, names), "bad-result"),
        ),
    }
}

/// How an attempt will end, decided when it is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Complete,
    Timeout { executes: bool },
    Reject,
}

#[derive(Debug, Clone)]
struct OpSim {
    client: u64,
    rid: u64,
    cmd: GenCmd,
    exec: Option<u64>,
    /// What it returned, under shared positions (where observers are not in the log).
    result: Option<GenResult>,
}

#[derive(Debug, Clone)]
struct ClientSim {
    next_rid: u64,
    /// The highest request id of this client executed so far (0: none).
    executed_rid: u64,
    /// (op, fate) of the attempt in flight.
    inflight: Option<(usize, Fate)>,
    /// An operation that timed out and may be retried next.
    retry: Option<usize>,
}

/// The active fault, if any: its kind and target.
#[derive(Debug, Clone)]
struct Fault {
    end_f: &'static str,
    value: Value,
    leader_down: bool,
}

struct Model<'o> {
    opt: &'o GenOptions,
    names: Vec<String>,
    rng: Rng,
    time_ns: u64,
    index: u64,
    bank: Vec<i64>,
    log: Vec<LogCmd>,
    ops: Vec<OpSim>,
    clients: Vec<ClientSim>,
    zombies: Vec<usize>,
    fault: Option<Fault>,
}

impl<'o> Model<'o> {
    fn new(opt: &'o GenOptions) -> Model<'o> {
        Model {
            opt,
            names: opt.account_names(),
            rng: Rng::new(opt.seed),
            time_ns: 0,
            index: 0,
            bank: vec![opt.initial_balance; opt.accounts],
            log: Vec::new(),
            ops: Vec::new(),
            clients: (0..opt.clients)
                .map(|_| ClientSim {
                    next_rid: 1,
                    executed_rid: 0,
                    inflight: None,
                    retry: None,
                })
                .collect(),
            zombies: Vec::new(),
            fault: None,
        }
    }

    /// Runs until `events` events were emitted.
    fn run(&mut self, emit: &mut dyn FnMut(Event) -> io::Result<()>) -> io::Result<()> {
        if self.opt.clients == 0 || self.opt.accounts < 2 {
            return Ok(());
        }
        while (self.index as usize) < self.opt.events {
            if let Some(ev) = self.step() {
                let ev = ev.at(self.index, self.time_ns);
                self.index += 1;
                emit(ev)?;
            }
        }
        Ok(())
    }

    /// One step of simulated time; maybe an event.
    fn step(&mut self) -> Option<Event> {
        let slow = if self.fault.is_some() { 4 } else { 1 };
        self.time_ns += (self.opt.step_ns / 2 + self.rng.below(self.opt.step_ns.max(1))) * slow;
        // Faults start now and then and last a while (about 2,500 steps).
        let p_nemesis = if self.fault.is_some() { 0.0004 } else { 0.0002 };
        if self.opt.nemesis && self.rng.chance(p_nemesis) {
            return Some(self.nemesis());
        }
        if !self.zombies.is_empty() && self.rng.chance(0.02) {
            let z = self.rng.below(self.zombies.len() as u64) as usize;
            let op = self.zombies.swap_remove(z);
            self.execute(op);
        }
        let c = self.rng.below(self.opt.clients) as usize;
        match self.clients[c].inflight {
            None => Some(self.invoke(c)),
            Some((op, fate)) => self.progress(c, op, fate),
        }
    }

    fn nemesis(&mut self) -> Event {
        if let Some(f) = self.fault.take() {
            return Event::nemesis(f.end_f, f.value);
        }
        let n = self.opt.nodes.max(1) as u64;
        let node = format!("n{}", 1 + self.rng.below(n));
        let (f, fault) = match self.rng.below(3) {
            0 => (
                "kill",
                Fault {
                    end_f: "restart",
                    value: json!([node]),
                    leader_down: node == "n1",
                },
            ),
            1 => (
                "pause",
                Fault {
                    end_f: "resume",
                    value: json!([node]),
                    leader_down: node == "n1",
                },
            ),
            _ => {
                let cut = 1 + self.rng.below(n.max(2) - 1);
                let side =
                    |r: std::ops::Range<u64>| r.map(|i| format!("n{}", i + 1)).collect::<Vec<_>>();
                let groups = json!([side(0..cut), side(cut..n)]);
                (
                    "partition",
                    Fault {
                        end_f: "heal",
                        value: groups,
                        leader_down: cut < n / 2 + 1,
                    },
                )
            }
        };
        let value = fault.value.clone();
        self.fault = Some(fault);
        Event::nemesis(f, value)
    }

    fn leader(&self) -> &'static str {
        match &self.fault {
            Some(f) if f.leader_down => "n2",
            _ => "n1",
        }
    }

    fn random_cmd(&mut self) -> GenCmd {
        let n = self.opt.accounts as u64;
        if self.rng.chance(self.opt.p_read) {
            return GenCmd::Read {
                account: self.rng.below(n) as usize,
            };
        }
        if self.rng.chance(self.opt.p_read_all) {
            return GenCmd::ReadAll;
        }
        let from = self.rng.below(n) as usize;
        let to = (from + 1 + self.rng.below(n - 1) as usize) % n as usize;
        let amount = 1 + self.rng.below(self.opt.max_amount.max(1) as u64) as i64;
        GenCmd::Transfer { from, to, amount }
    }

    fn invoke(&mut self, c: usize) -> Event {
        let retry = self.clients[c].retry.take();
        let op = match retry {
            Some(op) if self.rng.chance(self.opt.p_retry) => op,
            _ => {
                let cmd = self.random_cmd();
                let client = &mut self.clients[c];
                let rid = client.next_rid;
                client.next_rid += 1;
                self.ops.push(OpSim {
                    client: c as u64,
                    rid,
                    cmd,
                    exec: None,
                    result: None,
                });
                self.ops.len() - 1
            }
        };
        let fate = if self.rng.chance(self.opt.p_reject) {
            Fate::Reject
        } else if self.rng.chance(self.opt.p_timeout) {
            Fate::Timeout {
                executes: self.rng.chance(self.opt.p_timeout_executes),
            }
        } else {
            Fate::Complete
        };
        self.clients[c].inflight = Some((op, fate));
        let o = &self.ops[op];
        Event::invoke(
            o.client,
            o.rid,
            f_name(o.cmd),
            invoke_value(o.cmd, &self.names),
        )
    }

    /// Executes `op` unless it already executed (the replica's deduplication), or,
    /// with sessions, its client has executed a later request (it is stale).
    fn execute(&mut self, op: usize) {
        if self.ops[op].exec.is_some() {
            return;
        }
        let o = &self.ops[op];
        let client = &mut self.clients[o.client as usize];
        if self.opt.sessions {
            if client.executed_rid > o.rid {
                return;
            }
            client.executed_rid = o.rid;
        }
        let result = apply(&mut self.bank, o.cmd);
        if self.opt.positions == Positions::SharedReads {
            // Only a transfer that moved money writes; the rest observe the revision.
            let writes = matches!(result, GenResult::Transferred { .. });
            let entry = LogCmd {
                client: o.client,
                request_id: o.rid,
                cmd: o.cmd,
                result: result.clone(),
            };
            if writes {
                self.log.push(entry);
            }
            self.ops[op].exec = Some(self.opt.exec_offset() + self.log.len() as u64);
            self.ops[op].result = Some(result);
            return;
        }
        self.log.push(LogCmd {
            client: o.client,
            request_id: o.rid,
            cmd: o.cmd,
            result,
        });
        self.ops[op].exec = Some(self.log.len() as u64);
    }

    fn progress(&mut self, c: usize, op: usize, fate: Fate) -> Option<Event> {
        let answer_p = if self.fault.is_some() { 0.15 } else { 0.6 };
        match fate {
            Fate::Complete if self.ops[op].exec.is_none() => {
                if self.rng.chance(0.5) {
                    self.execute(op);
                }
                None
            }
            Fate::Complete => self.rng.chance(answer_p).then(|| self.answer(c, op)),
            Fate::Timeout { executes } => {
                if executes && self.ops[op].exec.is_none() && self.rng.chance(0.3) {
                    self.execute(op);
                }
                if !self.rng.chance(0.3) {
                    return None;
                }
                if executes && self.ops[op].exec.is_none() {
                    self.zombies.push(op);
                }
                self.clients[c].inflight = None;
                self.clients[c].retry = Some(op);
                let o = &self.ops[op];
                Some(Event::client(
                    EventType::Info,
                    o.client,
                    o.rid,
                    f_name(o.cmd),
                    invoke_value(o.cmd, &self.names),
                ))
            }
            Fate::Reject => {
                if !self.rng.chance(answer_p) {
                    return None;
                }
                self.clients[c].inflight = None;
                let o = &self.ops[op];
                let value = values::with_error(&invoke_value(o.cmd, &self.names), "not-leader");
                Some(
                    Event::client(EventType::Fail, o.client, o.rid, f_name(o.cmd), value)
                        .on_node(self.leader()),
                )
            }
        }
    }

    fn answer(&mut self, c: usize, op: usize) -> Event {
        self.clients[c].inflight = None;
        let o = &self.ops[op];
        let exec = o.exec.unwrap_or(0);
        let result = match &o.result {
            Some(r) => r,
            None => &self.log[exec as usize - 1].result,
        };
        let (kind, value) = result_value(o.cmd, result, &self.names);
        Event::client(kind, o.client, o.rid, f_name(o.cmd), value)
            .on_node(self.leader())
            .with_exec_index(exec)
    }
}

/// Which part of the log each replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    pub name: String,
    /// Exec indices held, inclusive; `None` when the replica could not be fetched.
    pub range: Option<(u64, u64)>,
}

/// How the log of `len` entries is spread over the replicas.
pub fn layout(opt: &GenOptions, len: u64) -> Vec<NodeLayout> {
    let n = opt.nodes.max(1);
    (0..n)
        .map(|i| {
            let name = format!("n{}", i + 1);
            let range = if opt.unreachable_node && n >= 4 && i == 1 {
                None
            } else if opt.lagging_node && n >= 2 && i == n - 1 {
                Some((1, len.saturating_sub(len.min(3))))
            } else if opt.checkpoint_node && n >= 3 && i == n - 2 && len >= 2 {
                Some((len / 2 + 1, len))
            } else {
                Some((1, len))
            };
            NodeLayout { name, range }
        })
        .collect()
}

/// A generated run held in memory (for tests; see [`write_run`] for large ones).
#[derive(Debug, Clone)]
pub struct GenRun {
    pub options: GenOptions,
    pub events: Vec<Event>,
    pub log: Vec<LogCmd>,
    /// Entries that one replica holds differently: (replica position, exec index, entry).
    pub overrides: Vec<(usize, u64, LogCmd)>,
}

/// Generates `opt.events` events into memory.
pub fn generate(opt: &GenOptions) -> GenRun {
    let mut events = Vec::with_capacity(opt.events);
    let mut model = Model::new(opt);
    let _ = model.run(&mut |e| {
        events.push(e);
        Ok(())
    });
    GenRun {
        options: opt.clone(),
        events,
        log: model.log,
        overrides: Vec::new(),
    }
}

/// Generates straight to `dir` (history.jsonl, final.json, run.toml) without keeping
/// the events; returns the number of log entries.
pub fn write_run(opt: &GenOptions, dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut w = HistoryWriter::buffered(File::create(dir.join("history.jsonl"))?);
    let mut model = Model::new(opt);
    model.run(&mut |e| w.append(&e))?;
    w.flush()?;
    write_final(&dir.join("final.json"), opt, &model.log, &[])?;
    std::fs::write(dir.join("run.toml"), opt.run_toml())?;
    Ok(model.log.len() as u64)
}

/// Writes final.json entry by entry (a long run's log does not fit comfortably in
/// `serde_json::Value`s).
pub fn write_final(
    path: &Path,
    opt: &GenOptions,
    log: &[LogCmd],
    overrides: &[(usize, u64, LogCmd)],
) -> io::Result<()> {
    let names = opt.account_names();
    let nodes = layout(opt, log.len() as u64);
    let snapshots = balances_at(opt, log, &nodes);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(b"{")?;
    if opt.positions != Positions::Unique {
        let base = opt.exec_offset();
        let word = opt.positions.as_str();
        write!(out, "\"positions\":\"{word}\",\"base_revision\":{base},")?;
    }
    out.write_all(b"\"nodes\":{")?;
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &node.name)?;
        out.write_all(b":")?;
        let Some((first, last)) = node.range else {
            serde_json::to_writer(&mut out, &NodeFinal::unreachable("connection refused"))?;
            continue;
        };
        let balances: BTreeMap<&str, i64> = names
            .iter()
            .map(String::as_str)
            .zip(snapshots[&last].iter().copied())
            .collect();
        out.write_all(b"{\"balances\":")?;
        serde_json::to_writer(&mut out, &balances)?;
        out.write_all(b",\"executed\":[")?;
        for e in first..=last {
            if e > first {
                out.write_all(b",")?;
            }
            let over = overrides.iter().find(|(n, x, _)| *n == i && *x == e);
            let entry = over.map_or(&log[e as usize - 1], |(_, _, c)| c);
            let exec = e + opt.exec_offset();
            serde_json::to_writer(&mut out, &executed_entry(exec, entry, &names))?;
        }
        out.write_all(b"],\"error\":null}")?;
    }
    out.write_all(b"}}\n")?;
    out.flush()
}

/// Bank balances after each replica's last index (and after 0).
fn balances_at(opt: &GenOptions, log: &[LogCmd], nodes: &[NodeLayout]) -> HashMap<u64, Vec<i64>> {
    let mut want: Vec<u64> = nodes.iter().filter_map(|n| n.range.map(|r| r.1)).collect();
    want.push(0);
    let mut bank = vec![opt.initial_balance; opt.accounts];
    let mut out = HashMap::new();
    out.insert(0, bank.clone());
    for (i, entry) in log.iter().enumerate() {
        apply(&mut bank, entry.cmd);
        let e = i as u64 + 1;
        if want.contains(&e) {
            out.insert(e, bank.clone());
        }
    }
    out
}

/// The final.json form of a log entry.
pub fn executed_entry(exec: u64, entry: &LogCmd, names: &[String]) -> ExecutedEntry {
    let (kind, value) = result_value(entry.cmd, &entry.result, names);
    ExecutedEntry {
        exec_index: exec,
        client: entry.client,
        request_id: entry.request_id,
        f: f_name(entry.cmd).to_string(),
        value,
        kind,
    }
}

/// An anomaly [`GenRun::plant`] can put into a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// An acknowledged transfer's slot is taken by another command; it is nowhere else.
    LostAck,
    /// An acknowledged transfer executes a second time at the end of the log.
    DoubleApply,
    /// A transfer rejected before proposal executes at the end of the log.
    FailedApplied,
    /// The log holds a command from a client that never existed.
    Phantom,
    /// One replica holds a different entry at one slot.
    Divergence,
    /// Two adjacent commands swap slots although the first completed before the
    /// second was invoked.
    RealTimeViolation,
    /// A read returns a balance one too high.
    WrongRead,
    /// A read_all's balances sum to one more than the total.
    SumDrift,
    /// A read returns a negative balance.
    NegativeBalance,
    /// Shared positions: a read is told (and returns the different state at) a
    /// revision older than a write that completed before it was invoked.
    StaleRead,
    /// Shared positions: a write is told the revision of another write.
    DuplicateWrite,
    /// Shared positions: a transfer failed for insufficient funds at a revision where
    /// its source held enough (its amount becomes 1).
    FailedWithFunds,
    /// Sharded: a cross-shard transfer is committed on its source shard and aborted on
    /// its destination.
    SplitDecision,
    /// Sharded: the destination shard applies a cross-shard credit at prepare (and
    /// nothing at commit).
    AppliedAtPrepare,
    /// Sharded: one shard's part of a read_all is taken before a cross-shard transfer
    /// the other parts include.
    TornReadAll,
    /// Sharded: a cross-shard transfer commits on one shard, a read there sees it, a
    /// later read on the other shard does not (its lock ignored): a cycle no single
    /// shard shows.
    CrossShardCycle,
    /// Sharded: one replica of a shard holds a different entry at one position.
    ShardDivergence,
}

impl Plant {
    /// What can be planted in a sharded run.
    pub const SHARDED: [Plant; 5] = [
        Plant::SplitDecision,
        Plant::AppliedAtPrepare,
        Plant::TornReadAll,
        Plant::CrossShardCycle,
        Plant::ShardDivergence,
    ];

    pub const ALL: [Plant; 9] = [
        Plant::LostAck,
        Plant::DoubleApply,
        Plant::FailedApplied,
        Plant::Phantom,
        Plant::Divergence,
        Plant::RealTimeViolation,
        Plant::WrongRead,
        Plant::SumDrift,
        Plant::NegativeBalance,
    ];

    /// What can be planted in an etcd-like run (shared positions). The other plants
    /// edit the log as if every command had a position of its own.
    pub const SHARED: [Plant; 6] = [
        Plant::StaleRead,
        Plant::DuplicateWrite,
        Plant::FailedWithFunds,
        Plant::WrongRead,
        Plant::SumDrift,
        Plant::NegativeBalance,
    ];

    /// The check that must catch it.
    pub fn check(self) -> &'static str {
        match self {
            Plant::StaleRead | Plant::DuplicateWrite => "total-order",
            Plant::FailedWithFunds => "replay",
            Plant::LostAck | Plant::DoubleApply | Plant::FailedApplied | Plant::Phantom => {
                "exactly-once"
            }
            Plant::Divergence => "agreement",
            Plant::RealTimeViolation => "total-order",
            Plant::WrongRead => "replay",
            Plant::SumDrift | Plant::NegativeBalance => "conservation",
            Plant::SplitDecision | Plant::AppliedAtPrepare => "atomicity",
            Plant::TornReadAll => "bank-conservation",
            Plant::CrossShardCycle => "strict-serializability",
            Plant::ShardDivergence => "shard-agreement",
        }
    }
}

/// Where an anomaly was planted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub plant: Plant,
    /// History indices the check's explanation must name.
    pub indices: Vec<u64>,
    /// The log slot involved, if any.
    pub exec_index: Option<u64>,
}

/// The run has nothing to plant this anomaly in (e.g. no read); generate more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no place to plant {0:?} in this run")]
pub struct PlantError(pub Plant);

/// Creates `dir` and writes `events` into its history.jsonl.
pub(crate) fn write_history(dir: &Path, events: &[Event]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut w = HistoryWriter::buffered(File::create(dir.join("history.jsonl"))?);
    for e in events {
        w.append(e)?;
    }
    w.flush()
}

impl GenRun {
    /// Writes history.jsonl, final.json and run.toml into `dir`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        write_history(dir, &self.events)?;
        write_final(
            &dir.join("final.json"),
            &self.options,
            &self.log,
            &self.overrides,
        )?;
        std::fs::write(dir.join("run.toml"), self.options.run_toml())
    }

    /// The final state as an owned value (small runs; large ones use
    /// [`write_final`]).
    pub fn final_state(&self) -> FinalState {
        let names = self.options.account_names();
        let layout = layout(&self.options, self.log.len() as u64);
        let snapshots = balances_at(&self.options, &self.log, &layout);
        let nodes = layout
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let Some((first, last)) = node.range else {
                    return (
                        node.name.clone(),
                        NodeFinal::unreachable("connection refused"),
                    );
                };
                let executed = (first..=last)
                    .map(|e| {
                        let over = self.overrides.iter().find(|(n, x, _)| *n == i && *x == e);
                        let entry = over.map_or(&self.log[e as usize - 1], |(_, _, c)| c);
                        executed_entry(e + self.options.exec_offset(), entry, &names)
                    })
                    .collect();
                let balances = names
                    .iter()
                    .cloned()
                    .zip(snapshots[&last].iter().copied())
                    .collect();
                let fin = NodeFinal {
                    balances: Some(balances),
                    executed,
                    error: None,
                };
                (node.name.clone(), fin)
            })
            .collect();
        FinalState { nodes }
    }

    /// Breaks the run in the way `plant` says.
    pub fn plant(&mut self, plant: Plant) -> Result<Planted, PlantError> {
        let missing = PlantError(plant);
        if self.options.positions == Positions::SharedReads {
            let (indices, exec_index) = match plant {
                Plant::StaleRead => self.stale_read().ok_or(missing)?,
                Plant::DuplicateWrite => self.duplicate_write().ok_or(missing)?,
                Plant::FailedWithFunds => self.failed_with_funds().ok_or(missing)?,
                Plant::WrongRead => self.edit_read(|b| b + 1).ok_or(missing)?,
                Plant::SumDrift => self.sum_drift().ok_or(missing)?,
                Plant::NegativeBalance => self.edit_read(|_| -1).ok_or(missing)?,
                _ => return Err(missing),
            };
            return Ok(Planted {
                plant,
                indices,
                exec_index,
            });
        }
        let (indices, exec_index) = match plant {
            Plant::LostAck => self.lost_ack().ok_or(missing)?,
            Plant::DoubleApply => self.double_apply().ok_or(missing)?,
            Plant::FailedApplied => self.failed_applied().ok_or(missing)?,
            Plant::Phantom => self.phantom(),
            Plant::Divergence => self.divergence().ok_or(missing)?,
            Plant::RealTimeViolation => self.swap_adjacent().ok_or(missing)?,
            Plant::WrongRead => self.edit_read(|b| b + 1).ok_or(missing)?,
            Plant::SumDrift => self.sum_drift().ok_or(missing)?,
            Plant::NegativeBalance => self.edit_read(|_| -1).ok_or(missing)?,
            Plant::StaleRead
            | Plant::DuplicateWrite
            | Plant::FailedWithFunds
            | Plant::SplitDecision
            | Plant::AppliedAtPrepare
            | Plant::TornReadAll
            | Plant::CrossShardCycle
            | Plant::ShardDivergence => return Err(missing),
        };
        Ok(Planted {
            plant,
            indices,
            exec_index,
        })
    }

    /// Event positions of each (client, request id).
    fn events_by_op(&self) -> HashMap<(u64, u64), Vec<usize>> {
        self.ops_in_order().into_iter().collect()
    }

    /// Each (client, request id) with its event positions, in order of first event
    /// (so plants are deterministic).
    fn ops_in_order(&self) -> Vec<((u64, u64), Vec<usize>)> {
        let mut map: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            if let (crate::history::Process::Client(c), Some(r)) = (e.process, e.request_id) {
                map.entry((c, r)).or_default().push(i);
            }
        }
        let mut ops: Vec<_> = map.into_iter().collect();
        ops.sort_by_key(|(_, pos)| pos[0]);
        ops
    }

    fn indices_of(&self, positions: &[usize]) -> Vec<u64> {
        positions.iter().map(|&p| self.events[p].index).collect()
    }

    /// Completions (ok or fail) that carry an exec index, by exec index.
    fn definite_at(&self, exec: u64) -> Option<usize> {
        self.events.iter().position(|e| e.exec_index == Some(exec))
    }

    /// Replays the log's commands to refresh their results.
    fn recompute(&mut self) {
        let mut bank = vec![self.options.initial_balance; self.options.accounts];
        for entry in &mut self.log {
            entry.result = apply(&mut bank, entry.cmd);
        }
    }

    /// Makes every answer that carries an exec index agree with the log again
    /// (positions and results), except for operations no longer in the log.
    fn resync(&mut self) {
        let names = self.options.account_names();
        let mut pos: HashMap<(u64, u64), u64> = HashMap::new();
        for (i, entry) in self.log.iter().enumerate() {
            pos.entry((entry.client, entry.request_id))
                .or_insert(i as u64 + 1);
        }
        for e in &mut self.events {
            let (crate::history::Process::Client(c), Some(r), Some(_)) =
                (e.process, e.request_id, e.exec_index)
            else {
                continue;
            };
            let Some(&exec) = pos.get(&(c, r)) else {
                continue;
            };
            let entry = &self.log[exec as usize - 1];
            let (kind, value) = result_value(entry.cmd, &entry.result, &names);
            e.exec_index = Some(exec);
            e.kind = kind;
            e.value = value;
        }
    }

    fn cmd_of(&self, positions: &[usize]) -> Option<GenCmd> {
        let names = self.options.account_names();
        let v = &self.events[*positions.first()?];
        let acct = |k: &str| {
            names
                .iter()
                .position(|n| v.value.get(k).and_then(Value::as_str) == Some(n))
        };
        match v.f.as_str() {
            "transfer" => Some(GenCmd::Transfer {
                from: acct("from")?,
                to: acct("to")?,
                amount: v.value.get("amount")?.as_i64()?,
            }),
            "read" => Some(GenCmd::Read {
                account: acct("account")?,
            }),
            _ => Some(GenCmd::ReadAll),
        }
    }

    /// An ok transfer's slot goes to a timed-out transfer that never executed and
    /// was invoked before the ok one (so the swap breaks nothing else).
    fn lost_ack(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let ops = self.ops_in_order();
        let in_log: std::collections::HashSet<(u64, u64)> =
            self.log.iter().map(|l| (l.client, l.request_id)).collect();
        let ((uc, ur), upos) = ops.iter().find(|(k, pos)| {
            !in_log.contains(k)
                && pos.iter().any(|&p| self.events[p].kind == EventType::Info)
                && self.events[pos[0]].f == "transfer"
        })?;
        let ucmd = self.cmd_of(upos)?;
        let (_, tpos) = ops.iter().find(|(_, pos)| {
            pos[0] > upos[0]
                && pos.iter().any(|&p| {
                    let e = &self.events[p];
                    e.kind == EventType::Ok && e.f == "transfer" && e.exec_index.is_some()
                })
        })?;
        let exec = tpos.iter().find_map(|&p| self.events[p].exec_index)?;
        self.log[exec as usize - 1] = LogCmd {
            client: *uc,
            request_id: *ur,
            cmd: ucmd,
            result: GenResult::Insufficient,
        };
        self.recompute();
        self.resync();
        Some((self.indices_of(tpos), Some(exec)))
    }

    /// The first ok transfer executes again at the end.
    fn double_apply(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let t = self
            .events
            .iter()
            .position(|e| e.kind == EventType::Ok && e.f == "transfer" && e.exec_index.is_some())?;
        let exec = self.events[t].exec_index?;
        let entry = self.log[exec as usize - 1].clone();
        let pos = self
            .events_by_op()
            .get(&(entry.client, entry.request_id))?
            .clone();
        self.log.push(entry);
        self.recompute();
        Some((self.indices_of(&pos), Some(self.log.len() as u64)))
    }

    /// A transfer rejected on every attempt executes at the end.
    fn failed_applied(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let ops = self.ops_in_order();
        let (&(c, r), pos) = ops.iter().map(|(k, p)| (k, p)).find(|(_, pos)| {
            self.events[pos[0]].f == "transfer"
                && pos.len() == 2
                && self.events[pos[1]].kind == EventType::Fail
                && self.events[pos[1]].exec_index.is_none()
        })?;
        let cmd = self.cmd_of(pos)?;
        let indices = self.indices_of(pos);
        self.log.push(LogCmd {
            client: c,
            request_id: r,
            cmd,
            result: GenResult::Insufficient,
        });
        self.recompute();
        Some((indices, Some(self.log.len() as u64)))
    }

    fn phantom(&mut self) -> (Vec<u64>, Option<u64>) {
        self.log.push(LogCmd {
            client: 999_999,
            request_id: 1,
            cmd: GenCmd::Transfer {
                from: 0,
                to: 1,
                amount: 1,
            },
            result: GenResult::Insufficient,
        });
        self.recompute();
        (Vec::new(), Some(self.log.len() as u64))
    }

    /// A replica other than the first holds a different amount at a transfer's slot.
    fn divergence(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let nodes = layout(&self.options, self.log.len() as u64);
        let exec = (self.log.len() as u64 / 2 + 1..=self.log.len() as u64)
            .find(|&e| matches!(self.log[e as usize - 1].cmd, GenCmd::Transfer { .. }))?;
        let node = (1..nodes.len())
            .find(|&i| nodes[i].range.is_some_and(|(a, b)| a <= exec && exec <= b))?;
        let mut entry = self.log[exec as usize - 1].clone();
        if let GenCmd::Transfer { amount, .. } = &mut entry.cmd {
            *amount += 1;
        }
        self.overrides.push((node, exec, entry));
        let indices = self
            .definite_at(exec)
            .map(|p| self.indices_of(&[p]))
            .unwrap_or_default();
        Some((indices, Some(exec)))
    }

    /// Adjacent slots e, e+1 held by transfers A and B, where A's answer came before
    /// B's first invocation, trade places.
    fn swap_adjacent(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let by_op = self.events_by_op();
        let first_invoke = |c: u64, r: u64| by_op.get(&(c, r)).map(|p| p[0]);
        let answer = |exec: u64| self.definite_at(exec);
        let e = (1..self.log.len() as u64).find(|&e| {
            let (a, b) = (&self.log[e as usize - 1], &self.log[e as usize]);
            let both_transfers = matches!(a.cmd, GenCmd::Transfer { .. })
                && matches!(b.cmd, GenCmd::Transfer { .. });
            let ordered = match (
                answer(e),
                answer(e + 1),
                first_invoke(b.client, b.request_id),
            ) {
                (Some(done_a), Some(_), Some(start_b)) => done_a < start_b,
                _ => false,
            };
            both_transfers && a.client != b.client && ordered
        })?;
        let (a, b) = (&self.log[e as usize - 1], &self.log[e as usize]);
        let mut pos = by_op.get(&(a.client, a.request_id))?.clone();
        pos.extend(by_op.get(&(b.client, b.request_id))?);
        self.log.swap(e as usize - 1, e as usize);
        self.recompute();
        self.resync();
        Some((self.indices_of(&pos), Some(e)))
    }

    /// Balances at exec index `exec` under shared positions (the initial ones at
    /// [`SHARED_BASE`] and before).
    fn shared_state_at(&self, exec: u64) -> Vec<i64> {
        let mut bank = vec![self.options.initial_balance; self.options.accounts];
        let writes = exec.saturating_sub(self.options.exec_offset()) as usize;
        for entry in self.log.iter().take(writes) {
            apply(&mut bank, entry.cmd);
        }
        bank
    }

    /// Whether event `p` is an ok transfer carrying an exec index (a write).
    fn is_write(&self, p: usize) -> bool {
        let e = &self.events[p];
        e.kind == EventType::Ok && e.f == "transfer" && e.exec_index.is_some()
    }

    /// The first ok read or read_all invoked after a write completed whose answer
    /// would differ at the revision just before that write: it is told that revision
    /// and returns the state there.
    fn stale_read(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let names = self.options.account_names();
        let ops = self.ops_in_order();
        let mut best_write: Option<u64> = None;
        let mut done = 0;
        for (_, pos) in &ops {
            // Writes completed before this operation's first invocation.
            while done < pos[0] {
                if self.is_write(done) {
                    best_write = best_write.max(self.events[done].exec_index);
                }
                done += 1;
            }
            let Some(w) = best_write.filter(|&w| w > SHARED_BASE + 1) else {
                continue;
            };
            let last = *pos.last()?;
            let ev = &self.events[last];
            let is_read = ev.f == "read" || ev.f == "read_all";
            if !(is_read && ev.kind == EventType::Ok && ev.exec_index.is_some()) {
                continue;
            }
            let stale = w - 1;
            let ev = &self.events[last];
            let answer = |state: &[i64]| -> Option<Value> {
                Some(if ev.f == "read" {
                    let account = ev.value.get("account")?.as_str()?;
                    let i = names.iter().position(|n| n == account)?;
                    values::read_ok(account, state[i])
                } else {
                    values::read_all_ok(names.iter().map(String::as_str).zip(state.iter().copied()))
                })
            };
            let value = answer(&self.shared_state_at(stale))?;
            // Stale by position only (the answer some revision from w to the read's
            // own gives too) is left to the total order; look for one whose data is
            // stale as well, so that even the black-box search must object.
            let told = ev.exec_index?;
            if (w..=told).any(|r| answer(&self.shared_state_at(r)).as_ref() == Some(&value)) {
                continue;
            }
            let ev = &mut self.events[last];
            ev.exec_index = Some(stale);
            ev.value = value;
            return Some((self.indices_of(pos), Some(stale)));
        }
        None
    }

    /// The second write's ok is told the first write's revision.
    fn duplicate_write(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let first = (0..self.events.len()).find(|&p| self.is_write(p))?;
        let second = (first + 1..self.events.len()).find(|&p| self.is_write(p))?;
        let exec = self.events[first].exec_index?;
        self.events[second].exec_index = Some(exec);
        Some((self.indices_of(&[first, second]), Some(exec)))
    }

    /// A transfer that failed for insufficient funds where its source held at least 1
    /// now asks for 1 (in every event of it).
    fn failed_with_funds(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let names = self.options.account_names();
        let ops = self.ops_in_order();
        for (_, pos) in &ops {
            let Some(&p) = pos.iter().find(|&&p| {
                let e = &self.events[p];
                e.kind == EventType::Fail && e.f == "transfer" && e.exec_index.is_some()
            }) else {
                continue;
            };
            let exec = self.events[p].exec_index?;
            let from = self.events[p].value.get("from")?.as_str()?;
            let i = names.iter().position(|n| n == from)?;
            if self.shared_state_at(exec)[i] < 1 {
                continue;
            }
            for &q in pos {
                if let Some(amount) = self.events[q].value.get_mut("amount") {
                    *amount = json!(1);
                }
            }
            return Some((self.indices_of(pos), Some(exec)));
        }
        None
    }

    /// A read ok's balance becomes `edit(balance)`.
    fn edit_read(&mut self, edit: impl Fn(i64) -> i64) -> Option<(Vec<u64>, Option<u64>)> {
        let p = self
            .events
            .iter()
            .position(|e| e.kind == EventType::Ok && e.f == "read")?;
        let ev = &mut self.events[p];
        let b = ev.value.get("balance")?.as_i64()?;
        ev.value["balance"] = json!(edit(b));
        Some((vec![ev.index], ev.exec_index))
    }

    /// A read_all ok's first balance grows by one.
    fn sum_drift(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let p = self
            .events
            .iter()
            .position(|e| e.kind == EventType::Ok && e.f == "read_all")?;
        let ev = &mut self.events[p];
        let balances = ev.value.get_mut("balances")?.as_object_mut()?;
        let (_, first) = balances.iter_mut().next()?;
        *first = json!(first.as_i64()? + 1);
        Some((vec![ev.index], ev.exec_index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_run() {
        let opt = GenOptions {
            events: 500,
            ..GenOptions::default()
        };
        let (a, b) = (generate(&opt), generate(&opt));
        assert_eq!(a.events, b.events);
        assert_eq!(a.events.len(), 500);
        assert!(!a.log.is_empty());
    }

    #[test]
    fn streamed_final_json_equals_the_owned_one() {
        let mut run = generate(&GenOptions {
            events: 800,
            ..GenOptions::default()
        });
        run.plant(Plant::Divergence).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.json");
        write_final(&path, &run.options, &run.log, &run.overrides).unwrap();
        assert_eq!(FinalState::load(&path).unwrap(), run.final_state());
    }

    #[test]
    fn log_results_match_replay() {
        let mut run = generate(&GenOptions {
            events: 3000,
            ..GenOptions::default()
        });
        let before = run.log.clone();
        run.recompute();
        assert_eq!(before, run.log);
    }
}
