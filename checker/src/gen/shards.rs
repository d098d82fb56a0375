//! Generates runs of a correct sharded bank (see docs/sharded.md), and plants the
//! anomalies the sharded checks must catch.
//!
//! Accounts are dealt over the shards in turn. Closed-loop clients invoke operations;
//! an operation executes at a later step and is answered at a still later one, so
//! operations interleave. A transfer crosses shards with the share `cross_share` says;
//! it executes as two-phase commit: prepare on both shards (the source votes no when
//! short of funds), then commit or abort on both, and the client is told the positions
//! of the decision entries. A read_all takes one entry on every shard at one step, so
//! its snapshot is consistent. Some attempts time out (`info`, executed or not). Each
//! shard has `replicas` replicas holding its whole log, except that the last replica
//! of shard 1 lags two entries behind.

use super::{
    apply, result_value, GenCmd, GenOptions, GenResult, Plant, PlantError, Planted, Rng, ShardGen,
};
use crate::history::{values, Event, EventType, Process};
use crate::shards::{
    apply_shard_entry, Bank, EntryValue, Phase, ShardEntry, ShardId, ShardNode, ShardSpec,
    ShardedFinal, TxnId, Vote,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// A generated sharded run.
#[derive(Debug, Clone)]
pub struct ShardedRun {
    pub options: GenOptions,
    pub shape: ShardGen,
    pub specs: Vec<ShardSpec>,
    pub events: Vec<Event>,
    /// Per shard (index = id - 1), its log: entry `i` is at exec index `i + 1`.
    pub logs: Vec<Vec<ShardEntry>>,
    /// Entries one replica holds instead of the agreed one: (replica, exec, entry).
    overrides: Vec<(String, u64, ShardEntry)>,
}

struct Pending {
    client: u64,
    rid: u64,
    cmd: GenCmd,
    outcome: Option<(GenResult, BTreeMap<ShardId, u64>)>,
    lost: bool,
}

struct Sim<'a> {
    run: &'a mut ShardedRun,
    rng: Rng,
    bank: Vec<i64>,
    time_ns: u64,
    next_rid: Vec<u64>,
    inflight: Vec<Option<Pending>>,
}

/// Generates a sharded run; `opt.shards` gives its shape (the default shape if `None`).
pub fn generate(opt: &GenOptions) -> ShardedRun {
    let shape = opt.shards.unwrap_or_default();
    let mut options = opt.clone();
    options.accounts = options.accounts.max(2 * shape.shards as usize);
    options.shards = Some(shape);
    let names = options.account_names();
    let specs = (1..=shape.shards)
        .map(|id| ShardSpec {
            id,
            accounts: names
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % shape.shards + 1 == id)
                .map(|(_, n)| n.clone())
                .collect(),
            nodes: (0..shape.replicas)
                .map(|r| format!("n{}", (id as usize - 1) * shape.replicas + r + 1))
                .collect(),
        })
        .collect();
    let mut run = ShardedRun {
        shape,
        specs,
        events: Vec::new(),
        logs: vec![Vec::new(); shape.shards as usize],
        overrides: Vec::new(),
        options,
    };
    let mut sim = Sim {
        rng: Rng::new(opt.seed),
        bank: vec![opt.initial_balance; names.len()],
        time_ns: 0,
        next_rid: vec![1; opt.clients as usize],
        inflight: (0..opt.clients).map(|_| None).collect(),
        run: &mut run,
    };
    if opt.clients > 0 {
        while sim.run.events.len() < opt.events {
            sim.step();
        }
    }
    run
}

impl Sim<'_> {
    fn shard_of(&self, account: usize) -> ShardId {
        account as u32 % self.run.shape.shards + 1
    }

    fn step(&mut self) {
        self.time_ns +=
            self.run.options.step_ns / 2 + self.rng.below(self.run.options.step_ns.max(1));
        let c = self.rng.below(self.run.options.clients) as usize;
        match self.inflight[c].take() {
            None => self.invoke(c),
            Some(mut p) if p.outcome.is_none() && !p.lost => {
                if self.rng.chance(self.run.options.p_timeout / 2.0) {
                    p.lost = true;
                } else {
                    p.outcome = Some(self.execute(p.client, p.rid, p.cmd));
                }
                self.inflight[c] = Some(p);
            }
            Some(p) => self.complete(p),
        }
    }

    fn emit(&mut self, e: Event) {
        let index = self.run.events.len() as u64;
        self.run.events.push(e.at(index, self.time_ns));
    }

    fn invoke(&mut self, c: usize) {
        let n = self.bank.len();
        let roll = self.rng.next_u64() as f64 / u64::MAX as f64;
        let o = &self.run.options;
        let cmd = if roll < o.p_read {
            GenCmd::Read {
                account: self.rng.below(n as u64) as usize,
            }
        } else if roll < o.p_read + o.p_read_all {
            GenCmd::ReadAll
        } else {
            let cross = self.rng.chance(self.run.shape.cross_share);
            let from = self.rng.below(n as u64) as usize;
            let mut to = self.rng.below(n as u64) as usize;
            for _ in 0..64 {
                if to != from && (self.shard_of(to) != self.shard_of(from)) == cross {
                    break;
                }
                to = self.rng.below(n as u64) as usize;
            }
            if to == from {
                to = (from + 1) % n;
            }
            GenCmd::Transfer {
                from,
                to,
                amount: 1 + self.rng.below(o.max_amount.max(1) as u64) as i64,
            }
        };
        let rid = self.next_rid[c];
        self.next_rid[c] += 1;
        let value = invoke_value(cmd, &self.run.options.account_names());
        self.emit(Event::invoke(c as u64, rid, super::f_name(cmd), value));
        self.inflight[c] = Some(Pending {
            client: c as u64,
            rid,
            cmd,
            outcome: None,
            lost: false,
        });
    }

    fn complete(&mut self, p: Pending) {
        let names = self.run.options.account_names();
        let f = super::f_name(p.cmd);
        let timed_out = p.lost || self.rng.chance(self.run.options.p_timeout / 2.0);
        let ev = match p.outcome {
            Some((result, positions)) if !timed_out => {
                let (kind, value) = result_value(p.cmd, &result, &names);
                let leader = self.run.specs[*positions.keys().next().unwrap_or(&1) as usize - 1]
                    .nodes[0]
                    .clone();
                Event::client(kind, p.client, p.rid, f, value)
                    .on_node(&leader)
                    .with_positions(positions)
            }
            _ => Event::client(
                EventType::Info,
                p.client,
                p.rid,
                f,
                invoke_value(p.cmd, &names),
            ),
        };
        self.emit(ev);
    }

    fn append(&mut self, shard: ShardId, mut e: ShardEntry) -> u64 {
        let log = &mut self.run.logs[shard as usize - 1];
        e.exec_index = log.len() as u64 + 1;
        log.push(e);
        log.len() as u64
    }

    fn execute(
        &mut self,
        client: u64,
        rid: u64,
        cmd: GenCmd,
    ) -> (GenResult, BTreeMap<ShardId, u64>) {
        let names = self.run.options.account_names();
        let mut positions = BTreeMap::new();
        match cmd {
            GenCmd::Transfer { from, to, amount } if self.shard_of(from) != self.shard_of(to) => {
                let (sf, st) = (self.shard_of(from), self.shard_of(to));
                let txn = TxnId {
                    coordinator: sf,
                    client,
                    request_id: rid,
                };
                let enough = self.bank[from] >= amount;
                let value: EntryValue = values::transfer(&names[from], &names[to], amount).into();
                let tx = |phase, vote, kind, applied| ShardEntry {
                    exec_index: 0,
                    client,
                    request_id: rid,
                    f: "transfer".into(),
                    value: value.clone(),
                    kind,
                    txn: Some(txn),
                    phase: Some(phase),
                    vote,
                    applied: Some(applied),
                };
                let vote = if enough {
                    (Vote::Yes, EventType::Ok)
                } else {
                    (Vote::No, EventType::Fail)
                };
                self.append(sf, tx(Phase::Prepare, Some(vote.0), vote.1, 0));
                self.append(st, tx(Phase::Prepare, Some(Vote::Yes), EventType::Ok, 0));
                let result = apply(&mut self.bank, cmd);
                let (phase, kind, debit) = if enough {
                    (Phase::Commit, EventType::Ok, amount)
                } else {
                    (Phase::Abort, EventType::Fail, 0)
                };
                positions.insert(sf, self.append(sf, tx(phase, None, kind, -debit)));
                positions.insert(st, self.append(st, tx(phase, None, kind, debit)));
                (result, positions)
            }
            GenCmd::Transfer { from, .. } | GenCmd::Read { account: from } => {
                let shard = self.shard_of(from);
                let result = apply(&mut self.bank, cmd);
                let (kind, value) = result_value(cmd, &result, &names);
                let e = plain(client, rid, super::f_name(cmd), value, kind);
                positions.insert(shard, self.append(shard, e));
                (result, positions)
            }
            GenCmd::ReadAll => {
                let result = apply(&mut self.bank, cmd);
                for s in 1..=self.run.shape.shards {
                    let part = values::read_all_ok(
                        names
                            .iter()
                            .zip(&self.bank)
                            .enumerate()
                            .filter(|(i, _)| self.shard_of(*i) == s)
                            .map(|(_, (n, b))| (n.as_str(), *b)),
                    );
                    positions.insert(
                        s,
                        self.append(s, plain(client, rid, "read_all", part, EventType::Ok)),
                    );
                }
                (result, positions)
            }
        }
    }
}

fn plain(client: u64, rid: u64, f: &str, value: Value, kind: EventType) -> ShardEntry {
    ShardEntry {
        exec_index: 0,
        client,
        request_id: rid,
        f: f.into(),
        value: value.into(),
        kind,
        txn: None,
        phase: None,
        vote: None,
        applied: None,
    }
}

fn invoke_value(cmd: GenCmd, names: &[String]) -> Value {
    match cmd {
        GenCmd::Transfer { from, to, amount } => values::transfer(&names[from], &names[to], amount),
        GenCmd::Read { account } => values::read(&names[account]),
        GenCmd::ReadAll => Value::Null,
    }
}

impl ShardedRun {
    /// run.toml: the classic parameters plus one `[[shards]]` table per shard.
    pub fn run_toml(&self) -> String {
        let mut text = self.options.run_toml();
        for s in &self.specs {
            let quoted = |v: &[String]| {
                v.iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            text.push_str(&format!(
                "\n[[shards]]\nid = {}\naccounts = [{}]\nnodes = [{}]\n",
                s.id,
                quoted(&s.accounts),
                quoted(&s.nodes)
            ));
        }
        text
    }

    /// Shard `id`'s balances after its first `upto` entries.
    pub fn balances_at(&self, id: ShardId, upto: usize) -> BTreeMap<String, i64> {
        let spec = &self.specs[id as usize - 1];
        let mut bank = Bank::new(&spec.accounts, self.options.initial_balance);
        for e in &self.logs[id as usize - 1][..upto] {
            apply_shard_entry(&mut bank, e);
        }
        bank.to_map()
    }

    /// final.json: every replica of every shard, the last of shard 1 lagging.
    pub fn final_state(&self) -> ShardedFinal {
        let mut nodes = BTreeMap::new();
        for s in &self.specs {
            let log = &self.logs[s.id as usize - 1];
            for (r, name) in s.nodes.iter().enumerate() {
                let lags = s.id == 1 && r + 1 == s.nodes.len() && self.options.lagging_node;
                let upto = if lags {
                    log.len().saturating_sub(2)
                } else {
                    log.len()
                };
                let executed = log[..upto]
                    .iter()
                    .map(|e| {
                        self.overrides
                            .iter()
                            .find(|(n, x, _)| n == name && *x == e.exec_index)
                            .map_or_else(|| e.clone(), |(_, _, o)| o.clone())
                    })
                    .collect();
                let node = ShardNode {
                    shard: s.id,
                    balances: Some(self.balances_at(s.id, upto)),
                    executed,
                    error: None,
                };
                nodes.insert(name.clone(), node);
            }
        }
        ShardedFinal { nodes }
    }

    /// Writes history.jsonl, final.json and run.toml into `dir`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        super::write_history(dir, &self.events)?;
        self.final_state().write(dir.join("final.json"))?;
        std::fs::write(dir.join("run.toml"), self.run_toml())
    }

    /// History indices of (client, request id)'s events.
    fn indices_of(&self, client: u64, rid: u64) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| e.process == Process::Client(client) && e.request_id == Some(rid))
            .map(|e| e.index)
            .collect()
    }

    /// Breaks the run in the way `plant` says (only [`Plant::SHARDED`] apply).
    pub fn plant(&mut self, plant: Plant) -> Result<Planted, PlantError> {
        let missing = PlantError(plant);
        let (indices, exec_index) = match plant {
            Plant::SplitDecision => self.edit_credit(|_, commit| {
                commit.phase = Some(Phase::Abort);
                commit.kind = EventType::Fail;
                commit.applied = Some(0);
            }),
            Plant::AppliedAtPrepare => self.edit_credit(|prepare, commit| {
                prepare.applied = commit.applied;
                commit.applied = Some(0);
            }),
            Plant::TornReadAll => self.torn_read_all(),
            Plant::CrossShardCycle => self.cross_shard_cycle(),
            Plant::ShardDivergence => self.shard_divergence(),
            _ => None,
        }
        .ok_or(missing)?;
        Ok(Planted {
            plant,
            indices,
            exec_index,
        })
    }

    /// Edits the prepare and commit entries of the first committed cross-shard credit.
    fn edit_credit(
        &mut self,
        edit: impl FnOnce(&mut ShardEntry, &mut ShardEntry),
    ) -> Option<(Vec<u64>, Option<u64>)> {
        for log in &mut self.logs {
            let Some(c) = log
                .iter()
                .position(|e| e.phase == Some(Phase::Commit) && e.applied.unwrap_or(0) > 0)
            else {
                continue;
            };
            let txn = log[c].txn;
            let p = log
                .iter()
                .position(|e| e.txn == txn && e.phase == Some(Phase::Prepare))?;
            let (head, tail) = log.split_at_mut(c);
            edit(&mut head[p], &mut tail[0]);
            let t = txn?;
            return Some((self.indices_of(t.client, t.request_id), Some(c as u64 + 1)));
        }
        None
    }

    /// Takes one shard's part of a read_all from before the last cross-shard commit
    /// that shard applied before it.
    fn torn_read_all(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let total = self.options.initial_balance * self.options.accounts as i64;
        for i in 0..self.events.len() {
            let e = &self.events[i];
            if e.f != "read_all" || e.kind != EventType::Ok {
                continue;
            }
            let positions = e.positions.clone().unwrap_or_default();
            for (&s, &p) in &positions {
                let log = &self.logs[s as usize - 1];
                let Some(c) = log[..p as usize]
                    .iter()
                    .rposition(|x| x.phase == Some(Phase::Commit) && x.applied != Some(0))
                else {
                    continue;
                };
                let before = self.balances_at(s, c);
                let mut value = self.events[i].value.clone();
                for (a, b) in &before {
                    value["balances"][a] = json!(b);
                }
                let sum: i64 = value["balances"]
                    .as_object()?
                    .values()
                    .filter_map(Value::as_i64)
                    .sum();
                if sum != total {
                    let e = &mut self.events[i];
                    e.value = value;
                    let (Process::Client(cl), Some(rid)) = (e.process, e.request_id) else {
                        continue;
                    };
                    return Some((self.indices_of(cl, rid), None));
                }
            }
        }
        None
    }

    /// Appends T (a cross-shard transfer a→b), X (a read of a) and Y (a read of b):
    /// T commits on a's shard, X reads a after it, Y is invoked after X completed and
    /// reads b on its shard before T commits there.
    fn cross_shard_cycle(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        if self.specs.len() < 2 {
            return None;
        }
        let (s1, s2) = (1, 2);
        let end1 = self.balances_at(s1, self.logs[0].len());
        let end2 = self.balances_at(s2, self.logs[1].len());
        let (a, bal_a) = end1
            .iter()
            .find(|(_, &b)| b >= 1)
            .map(|(a, b)| (a.clone(), *b))?;
        let (b, bal_b) = end2.iter().next().map(|(a, b)| (a.clone(), *b))?;
        let base = self.options.clients + 100;
        let (ct, cx, cy) = (base, base + 1, base + 2);
        let first = self.events.len() as u64;
        let mut time = self.events.last().map_or(0, |e| e.time_ns);
        let mut push = |run: &mut ShardedRun, e: Event| {
            time += 1_000;
            let index = run.events.len() as u64;
            run.events.push(e.at(index, time));
        };
        let txn = TxnId {
            coordinator: s1,
            client: ct,
            request_id: 1,
        };
        let tv: EntryValue = values::transfer(&a, &b, 1).into();
        let tx = |phase, vote, applied| ShardEntry {
            exec_index: 0,
            client: ct,
            request_id: 1,
            f: "transfer".into(),
            value: tv.clone(),
            kind: EventType::Ok,
            txn: Some(txn),
            phase: Some(phase),
            vote,
            applied: Some(applied),
        };
        let add = |run: &mut ShardedRun, s: ShardId, mut e: ShardEntry| {
            let log = &mut run.logs[s as usize - 1];
            e.exec_index = log.len() as u64 + 1;
            log.push(e);
            log.len() as u64
        };
        push(self, Event::invoke(ct, 1, "transfer", tv.to_value()));
        add(self, s1, tx(Phase::Prepare, Some(Vote::Yes), 0));
        let c1 = add(self, s1, tx(Phase::Commit, None, -1));
        add(self, s2, tx(Phase::Prepare, Some(Vote::Yes), 0));
        push(self, Event::invoke(cx, 1, "read", values::read(&a)));
        let px = add(
            self,
            s1,
            plain(cx, 1, "read", values::read_ok(&a, bal_a - 1), EventType::Ok),
        );
        push(
            self,
            Event::client(EventType::Ok, cx, 1, "read", values::read_ok(&a, bal_a - 1))
                .with_positions([(s1, px)]),
        );
        push(self, Event::invoke(cy, 1, "read", values::read(&b)));
        let py = add(
            self,
            s2,
            plain(cy, 1, "read", values::read_ok(&b, bal_b), EventType::Ok),
        );
        push(
            self,
            Event::client(EventType::Ok, cy, 1, "read", values::read_ok(&b, bal_b))
                .with_positions([(s2, py)]),
        );
        let c2 = add(self, s2, tx(Phase::Commit, None, 1));
        let ok = values::transfer_ok(&a, &b, 1, bal_a - 1, bal_b + 1);
        push(
            self,
            Event::client(EventType::Ok, ct, 1, "transfer", ok)
                .with_positions([(s1, c1), (s2, c2)]),
        );
        Some(((first..self.events.len() as u64).collect(), None))
    }

    /// One replica of the last shard holds a transfer with a different amount.
    fn shard_divergence(&mut self) -> Option<(Vec<u64>, Option<u64>)> {
        let spec = self.specs.last()?;
        let node = spec.nodes.get(1)?.clone();
        let log = &self.logs[spec.id as usize - 1];
        let e = log
            .iter()
            .find(|e| e.f == "transfer" && e.txn.is_none() && e.kind == EventType::Ok)?;
        let mut changed = e.clone();
        let mut value = changed.value.to_value();
        let amount = value["amount"].as_i64()?;
        value["amount"] = json!(amount + 1);
        changed.value = value.into();
        let exec = e.exec_index;
        self.overrides.push((node, exec, changed));
        Some((Vec::new(), Some(exec)))
    }
}
