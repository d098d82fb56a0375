//! An in-process, deterministic simulator of a whole cluster of cores.
//!
//! Why: the interesting Paxos bugs need message loss, reordering, partitions and crashes at
//! awkward moments. Here all of that happens on a virtual clock, driven by one seeded RNG, so a
//! failing seed replays exactly. The simulator plays the shell's part faithfully (see
//! [`Effect`]): each node handles a burst of inputs, flushes, makes its `Persist` and
//! `Checkpoint` effects durable on its simulated disk, and only then releases its sends and
//! replies. A crashed node loses everything but its disk; a restarted node is rebuilt with
//! `Core::new` from that disk, exactly as the real shell does.
//!
//! Closed-loop clients (optional) submit transfers and reads, retry on timeouts with the same
//! request id (moving to another replica after a timeout), and move on when answered. The checks at the end ([`Sim::check_safety`],
//! [`Sim::check_replies`], [`Sim::check_converged`]) state the bank's correctness properties:
//! one total order of executed commands, conservation of money, and every client answer equal
//! to what replaying that order gives.

use super::{Checkpoint, Core, CoreConfig, Effect, PeerMsg, Recovered, ReplyToken, WalRecord};
use crate::bank::{Bank, Command, Executed, Op, Outcome};
use crate::client_proto::ClientResponse;
use crate::types::{Amount, ClientId, ExecIndex, NodeId, RequestId, Slot};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// How the simulated world behaves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    /// The core configuration every node uses (`me` is replaced per node).
    pub config: CoreConfig,
    /// One-way message delay, uniform in `[min, max]` ms (reordering comes from the spread).
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Probability that a peer message is lost.
    pub drop_rate: f64,
    /// Probability that a peer message is delivered twice.
    pub dup_rate: f64,
    /// Probability that a peer message is held back for up to `long_delay_max_ms` (a stale
    /// message arriving long after its sender moved on).
    pub long_delay_rate: f64,
    pub long_delay_max_ms: u64,
    /// How often each node's `on_tick` runs.
    pub tick_ms: u64,
    /// How long a simulated client waits for an answer before retrying.
    pub client_timeout_ms: u64,
    /// Like the network's `max_frame_bytes`: a peer message encoding to more is dropped.
    pub max_message_bytes: Option<usize>,
}

impl SimOptions {
    /// `nodes` nodes with `CoreConfig::for_test`, 1–3 ms delays, no loss.
    pub fn new(nodes: u32, seed: u64) -> SimOptions {
        SimOptions {
            seed,
            config: CoreConfig::for_test(1, nodes),
            min_delay_ms: 1,
            max_delay_ms: 3,
            drop_rate: 0.0,
            dup_rate: 0.0,
            long_delay_rate: 0.0,
            long_delay_max_ms: 1_000,
            tick_ms: 10,
            client_timeout_ms: 400,
            max_message_bytes: None,
        }
    }
}

/// A simulated node's durable state.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    pub checkpoint: Option<Checkpoint>,
    pub records: Vec<WalRecord>,
}

/// A node's executed journal: entries from exec index `start` on.
#[derive(Clone, Debug)]
pub struct Journal {
    pub start: ExecIndex,
    pub entries: Vec<Executed>,
}

impl Journal {
    fn next_index(&self) -> ExecIndex {
        self.start + self.entries.len() as u64
    }

    fn truncate_to(&mut self, last: ExecIndex) {
        // A crash between installing a snapshot and resetting the journal leaves the journal
        // behind the checkpoint: it cannot be refilled, so it restarts after the checkpoint.
        if self.next_index() <= last {
            self.entries.clear();
            self.start = last + 1;
            return;
        }
        let keep = last.saturating_sub(self.start - 1) as usize;
        self.entries.truncate(keep);
        if self.entries.is_empty() && self.start > last + 1 {
            self.start = last + 1;
        }
    }
}

pub struct SimNode {
    pub id: NodeId,
    /// `None` while crashed.
    pub core: Option<Core>,
    pub disk: SimDisk,
    pub journal: Journal,
    next_tick_ms: u64,
    boots: u64,
    /// Crash in the middle of the next burst's disk write (see `Sim::crash_during_next_burst`).
    torn: bool,
}

/// A client answer the simulator saw.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenReply {
    pub at_ms: u64,
    pub node: NodeId,
    pub token: ReplyToken,
    pub command: Command,
    pub response: ClientResponse,
}

enum Input {
    Peer { from: NodeId, msg: PeerMsg },
    Client { token: ReplyToken, command: Command },
}

struct SimClient {
    id: ClientId,
    next_request: u64,
    outstanding: Option<Outstanding>,
    /// When to act next: send the next command, or give up waiting and retry.
    next_action_ms: u64,
    target: NodeId,
}

struct Outstanding {
    command: Command,
    token: ReplyToken,
}

/// Counters for test assertions and curiosity.
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    pub sent: u64,
    pub dropped: u64,
    /// Messages dropped for encoding to more than `SimOptions::max_message_bytes`.
    pub oversized: u64,
    pub delivered: u64,
    pub bursts: u64,
    pub client_ops_done: u64,
}

pub struct Sim {
    pub now_ms: u64,
    opts: SimOptions,
    nodes: BTreeMap<NodeId, SimNode>,
    queue: BTreeMap<(u64, u64), (NodeId, Input)>,
    seq: u64,
    rng: SmallRng,
    cut: BTreeSet<(NodeId, NodeId)>,
    next_token: ReplyToken,
    submitted: BTreeMap<ReplyToken, Command>,
    replies: Vec<SeenReply>,
    clients: Vec<SimClient>,
    clients_active: bool,
    token_owner: BTreeMap<ReplyToken, usize>,
    /// Every command executed anywhere, by exec index (the first report; later ones must match).
    executed: BTreeMap<ExecIndex, Executed>,
    violations: Vec<String>,
    pub stats: SimStats,
}

impl Sim {
    /// A cluster of fresh nodes at time 0.
    pub fn new(opts: SimOptions) -> Sim {
        let mut sim = Sim {
            now_ms: 0,
            rng: SmallRng::seed_from_u64(opts.seed),
            nodes: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            next_token: 1,
            submitted: BTreeMap::new(),
            replies: Vec::new(),
            clients: Vec::new(),
            clients_active: false,
            token_owner: BTreeMap::new(),
            executed: BTreeMap::new(),
            violations: Vec::new(),
            stats: SimStats::default(),
            opts,
        };
        for id in sim.opts.config.nodes.clone() {
            let journal = Journal {
                start: 1,
                entries: Vec::new(),
            };
            let node = SimNode {
                id,
                core: None,
                disk: SimDisk::default(),
                journal,
                next_tick_ms: 0,
                boots: 0,
                torn: false,
            };
            sim.nodes.insert(id, node);
            sim.boot(id);
        }
        sim
    }

    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[&id]
    }

    /// The live core of `id`, if it is up.
    pub fn core(&self, id: NodeId) -> Option<&Core> {
        self.nodes.get(&id).and_then(|n| n.core.as_ref())
    }

    /// Mutable access for tests that poke a core directly (effects are not applied).
    pub fn core_mut(&mut self, id: NodeId) -> Option<&mut Core> {
        self.nodes.get_mut(&id).and_then(|n| n.core.as_mut())
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.core(id).is_some()
    }

    /// Live nodes that believe they lead.
    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.core.as_ref().is_some_and(Core::leads))
            .map(|n| n.id)
            .collect()
    }

    /// The live leader with the highest ballot.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|id| self.core(*id).map(|c| c.status().ballot))
    }

    // ----- faults -----

    /// Stops a node: it loses everything but its disk; messages to it are lost.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.core = None;
            // A pending torn write belongs to the incarnation that just died.
            node.torn = false;
        }
    }

    /// Crashes `id` while its next burst is being written: a random prefix of that burst's
    /// durable effects reaches the disk, none of its messages or replies leave.
    pub fn crash_during_next_burst(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.torn = node.core.is_some();
        }
    }

    /// Restarts a crashed node from its disk, as the real shell does.
    pub fn restart(&mut self, id: NodeId) {
        if !self.is_up(id) {
            self.boot(id);
        }
    }

    /// Cuts every link between different groups (both directions). Nodes not named keep all
    /// their links.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i == j {
                    continue;
                }
                for x in a.iter() {
                    for y in b.iter() {
                        self.cut.insert((*x, *y));
                    }
                }
            }
        }
    }

    /// Cuts `id` off from every other node.
    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.node_ids().into_iter().filter(|n| *n != id).collect();
        self.partition(&[&[id], &others]);
    }

    /// Cuts the one-way link `from -> to`.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn set_drop_rate(&mut self, rate: f64) {
        self.opts.drop_rate = rate;
    }

    // ----- clients -----

    /// Submits a command to `node` on a fresh stream; the answer shows up in [`Sim::replies`].
    pub fn submit(&mut self, node: NodeId, command: Command) -> ReplyToken {
        let token = self.next_token;
        self.next_token += 1;
        self.submitted.insert(token, command.clone());
        let delay = self.delay();
        self.enqueue(self.now_ms + delay, node, Input::Client { token, command });
        token
    }

    /// Every client answer seen so far.
    pub fn replies(&self) -> &[SeenReply] {
        &self.replies
    }

    /// The answer to `token`, if any.
    pub fn reply_to(&self, token: ReplyToken) -> Option<&ClientResponse> {
        self.replies
            .iter()
            .find(|r| r.token == token)
            .map(|r| &r.response)
    }

    /// Starts `count` closed-loop clients (ids 1..=count) issuing random transfers and reads.
    pub fn start_clients(&mut self, count: u64) {
        let nodes = self.node_ids();
        for id in 1..=count {
            let target = nodes[self.rng.gen_range(0..nodes.len())];
            let client = SimClient {
                id: ClientId(id),
                next_request: 1,
                outstanding: None,
                next_action_ms: self.now_ms,
                target,
            };
            self.clients.push(client);
        }
        self.clients_active = true;
    }

    /// Clients finish nothing new: outstanding commands are abandoned (as a client that gives
    /// up would), so the cluster can go quiet.
    pub fn stop_clients(&mut self) {
        self.clients_active = false;
        for client in &mut self.clients {
            client.outstanding = None;
        }
    }

    // ----- running -----

    /// Advances to the next moment anything happens and handles it. Returns false if nothing is
    /// scheduled at all (every node down and nothing in flight).
    pub fn step(&mut self) -> bool {
        let Some(next) = self.next_event_ms() else {
            return false;
        };
        self.now_ms = next;
        let mut inputs: BTreeMap<NodeId, Vec<Input>> = BTreeMap::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now_ms {
                break;
            }
            let (to, input) = entry.remove();
            inputs.entry(to).or_default().push(input);
        }
        for id in self.node_ids() {
            let tick =
                self.nodes[&id].core.is_some() && self.nodes[&id].next_tick_ms <= self.now_ms;
            let batch = inputs.remove(&id).unwrap_or_default();
            if tick || !batch.is_empty() {
                self.burst(id, batch, tick);
            }
        }
        self.drive_clients();
        true
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while self.next_event_ms().is_some_and(|t| t <= until) {
            self.step();
        }
        self.now_ms = self.now_ms.max(until);
    }

    /// Runs until `done` holds (checked after every step) or `ms` of virtual time pass.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now_ms + ms;
        while !done(self) {
            if self.next_event_ms().is_none_or(|t| t > until) {
                self.now_ms = self.now_ms.max(until);
                return done(self);
            }
            self.step();
        }
        true
    }

    /// Runs until exactly one live leader exists, for at most `ms`. Returns it.
    pub fn run_until_leader(&mut self, ms: u64) -> Option<NodeId> {
        self.run_until(ms, |sim| sim.leaders().len() == 1);
        match self.leaders().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Runs until every live node executed the same prefix (`check_converged` passes).
    pub fn run_until_converged(&mut self, ms: u64) -> bool {
        self.run_until(ms, |sim| sim.check_converged().is_ok())
    }

    fn next_event_ms(&self) -> Option<u64> {
        let message = self.queue.keys().next().map(|(t, _)| *t);
        let tick = self
            .nodes
            .values()
            .filter(|n| n.core.is_some())
            .map(|n| n.next_tick_ms)
            .min();
        let client = self
            .clients
            .iter()
            .map(|c| c.next_action_ms)
            .min()
            .filter(|_| self.clients_active);
        [message, tick, client].into_iter().flatten().min()
    }

    fn delay(&mut self) -> u64 {
        let delay = self
            .rng
            .gen_range(self.opts.min_delay_ms..=self.opts.max_delay_ms);
        let long = self.rng.gen_bool(self.opts.long_delay_rate);
        let extra = if long {
            self.rng.gen_range(0..=self.opts.long_delay_max_ms)
        } else {
            0
        };
        (delay + extra).max(1)
    }

    fn enqueue(&mut self, at_ms: u64, to: NodeId, input: Input) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), (to, input));
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: PeerMsg) {
        self.stats.sent += 1;
        let oversized = self
            .opts
            .max_message_bytes
            .is_some_and(|max| super::wire::encoded_len(&msg) > max);
        self.stats.oversized += u64::from(oversized);
        if oversized || self.cut.contains(&(from, to)) || self.rng.gen_bool(self.opts.drop_rate) {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.gen_bool(self.opts.dup_rate) {
            let at = self.now_ms + self.delay();
            self.enqueue(
                at,
                to,
                Input::Peer {
                    from,
                    msg: msg.clone(),
                },
            );
        }
        let at = self.now_ms + self.delay();
        self.enqueue(at, to, Input::Peer { from, msg });
    }

    /// Starts (or restarts) a node from its disk.
    fn boot(&mut self, id: NodeId) {
        let mut config = self.opts.config.clone();
        config.me = id;
        let node = self.nodes.get_mut(&id).expect("known node");
        node.boots += 1;
        let checkpoint_exec = node
            .disk
            .checkpoint
            .as_ref()
            .map_or(0, |c| c.bank.exec_index());
        node.journal.truncate_to(checkpoint_exec);
        let recovered = Recovered {
            checkpoint: node.disk.checkpoint.clone(),
            records: node.disk.records.clone(),
        };
        let seed = self.opts.seed ^ (u64::from(id.0) << 32) ^ node.boots;
        let (core, effects) = Core::new(config, recovered, seed, self.now_ms);
        node.core = Some(core);
        node.next_tick_ms = self.now_ms + u64::from(id.0) % self.opts.tick_ms.max(1);
        self.apply(id, effects);
    }

    /// One burst at one node: inputs, maybe a tick, flush, then the shell contract.
    fn burst(&mut self, id: NodeId, inputs: Vec<Input>, tick: bool) {
        let now = self.now_ms;
        let tick_ms = self.opts.tick_ms;
        let node = self.nodes.get_mut(&id).expect("known node");
        let Some(core) = node.core.as_mut() else {
            return; // crashed: whatever arrived is lost
        };
        let mut out = Vec::new();
        for input in inputs {
            match input {
                Input::Peer { from, msg } => core.on_message(now, from, msg, &mut out),
                Input::Client { token, command } => core.on_client(now, token, command, &mut out),
            }
            self.stats.delivered += 1;
        }
        if tick {
            core.on_tick(now, &mut out);
            while node.next_tick_ms <= now {
                node.next_tick_ms += tick_ms;
            }
        }
        core.flush(now, &mut out);
        self.stats.bursts += 1;
        self.apply(id, out);
    }

    /// The shell contract as the real shell keeps it: non-vote sends leave at once, then the
    /// durable effects (one "fsync"), then votes and replies in order. A crash mid-burst lets
    /// the non-vote sends escape, as it can in the real shell.
    fn apply(&mut self, id: NodeId, mut effects: Vec<Effect>) {
        effects.retain(|effect| match effect {
            Effect::Send { to, msg } if !msg.is_vote() => {
                self.send(id, *to, msg.clone());
                false
            }
            _ => true,
        });
        if std::mem::take(&mut self.node_mut(id).torn) {
            let durable = effects
                .iter()
                .filter(|e| !matches!(e, Effect::Send { .. } | Effect::Reply { .. }));
            let keep = self.rng.gen_range(0..=durable.count());
            effects.retain(|e| !matches!(e, Effect::Send { .. } | Effect::Reply { .. }));
            effects.truncate(keep);
            self.node_mut(id).core = None;
        }
        let mut checkpointed = false;
        for effect in &effects {
            match effect {
                Effect::Persist(record) => self.node_mut(id).disk.records.push(record.clone()),
                Effect::Checkpoint(checkpoint) => {
                    self.node_mut(id).disk.checkpoint = Some(checkpoint.clone());
                    checkpointed = true;
                }
                Effect::Executed(executed) => self.journal_append(id, executed),
                Effect::ResetJournal { next_exec_index } => {
                    let journal = &mut self.node_mut(id).journal;
                    journal.start = *next_exec_index;
                    journal.entries.clear();
                }
                Effect::Send { .. } | Effect::Reply { .. } => {}
            }
        }
        if checkpointed {
            // WAL compaction, as the shell may do once the checkpoint is durable.
            let node = self.node_mut(id);
            if let Some(core) = &node.core {
                node.disk.records = core.durable_records();
            }
        }
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.send(id, to, msg),
                Effect::Reply { token, response } => self.client_reply(id, token, response),
                _ => {}
            }
        }
    }

    fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        self.nodes.get_mut(&id).expect("known node")
    }

    fn journal_append(&mut self, id: NodeId, executed: &Executed) {
        match self.executed.get(&executed.exec_index) {
            Some(first) if first != executed => self.violations.push(format!(
                "t={} {id} executed #{} as {:?}, but it was {:?}",
                self.now_ms, executed.exec_index, executed, first
            )),
            Some(_) => {}
            None => {
                self.executed.insert(executed.exec_index, executed.clone());
            }
        }
        let now = self.now_ms;
        let journal = &mut self.node_mut(id).journal;
        if executed.exec_index != journal.next_index() {
            let expected = journal.next_index();
            self.violations.push(format!(
                "t={now} {id} journal expected #{expected}, got #{}",
                executed.exec_index
            ));
            return;
        }
        journal.entries.push(executed.clone());
    }

    fn client_reply(&mut self, node: NodeId, token: ReplyToken, response: ClientResponse) {
        let Some(command) = self.submitted.get(&token).cloned() else {
            self.violations
                .push(format!("{node} answered unknown token {token}"));
            return;
        };
        if self.replies.iter().any(|r| r.token == token) {
            self.violations
                .push(format!("{node} answered token {token} twice"));
        }
        let seen = SeenReply {
            at_ms: self.now_ms,
            node,
            token,
            command,
            response: response.clone(),
        };
        self.replies.push(seen);
        if let Some(index) = self.token_owner.remove(&token) {
            self.client_answered(index, token, response);
        }
    }

    fn client_answered(&mut self, index: usize, token: ReplyToken, response: ClientResponse) {
        let now = self.now_ms;
        let nodes = self.node_ids();
        let random_node = nodes[self.rng.gen_range(0..nodes.len())];
        let client = &mut self.clients[index];
        if client.outstanding.as_ref().is_none_or(|o| o.token != token) {
            return; // an answer to an attempt already given up on
        }
        match response {
            ClientResponse::Reply { node, .. } => {
                client.outstanding = None;
                client.target = node;
                client.next_action_ms = now;
                self.stats.client_ops_done += 1;
            }
            ClientResponse::Rejected { .. } => {
                client.outstanding = None;
                client.next_action_ms = now;
            }
            ClientResponse::NotLeader { leader_hint, .. } => {
                client.target = leader_hint.unwrap_or(random_node);
                client.next_action_ms = now + 20;
            }
            _ => {
                client.target = random_node;
                client.next_action_ms = now + 10;
            }
        }
    }

    fn drive_clients(&mut self) {
        if !self.clients_active {
            return;
        }
        for index in 0..self.clients.len() {
            if self.clients[index].next_action_ms > self.now_ms {
                continue;
            }
            let command = match &self.clients[index].outstanding {
                Some(outstanding) => {
                    // Timed out (no answer) or told to retry: same request id. After a
                    // timeout the client tries another node half of the time.
                    let timed_out = self.token_owner.remove(&outstanding.token).is_some();
                    let command = outstanding.command.clone();
                    if timed_out {
                        // Like the harness's clients: a timeout moves on to another replica.
                        let current = self.clients[index].target;
                        let others: Vec<NodeId> = self
                            .node_ids()
                            .into_iter()
                            .filter(|&n| n != current)
                            .collect();
                        if !others.is_empty() {
                            self.clients[index].target =
                                others[self.rng.gen_range(0..others.len())];
                        }
                    }
                    command
                }
                None => self.random_command(index),
            };
            let target = self.clients[index].target;
            let token = self.submit(target, command.clone());
            self.token_owner.insert(token, index);
            let client = &mut self.clients[index];
            client.outstanding = Some(Outstanding { command, token });
            client.next_action_ms = self.now_ms + self.opts.client_timeout_ms;
        }
    }

    /// One line per client: its target, outstanding command and next action (for traces).
    pub fn describe_clients(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|c| {
                let outstanding = c.outstanding.as_ref().map(|o| (&o.command, o.token));
                format!(
                    "{} -> {} next {} {:?}",
                    c.id, c.target, c.next_action_ms, outstanding
                )
            })
            .collect()
    }

    fn random_command(&mut self, index: usize) -> Command {
        let accounts = self.opts.config.accounts.clone();
        let client = &mut self.clients[index];
        let request = RequestId(client.next_request);
        client.next_request += 1;
        let id = client.id;
        let roll: f64 = self.rng.gen();
        let op = if roll < 0.75 {
            let from = self.rng.gen_range(0..accounts.len());
            let to = (from + self.rng.gen_range(1..accounts.len())) % accounts.len();
            let amount = self.rng.gen_range(1..=5);
            Op::Transfer {
                from: accounts[from].clone(),
                to: accounts[to].clone(),
                amount,
            }
        } else if roll < 0.95 {
            Op::Read {
                account: accounts[self.rng.gen_range(0..accounts.len())].clone(),
            }
        } else {
            Op::ReadAll
        };
        Command {
            client: id,
            request,
            op,
        }
    }

    // ----- checks -----

    /// Every command executed anywhere so far, in exec-index order.
    pub fn executed_log(&self) -> Vec<Executed> {
        self.executed.values().cloned().collect()
    }

    /// No two replicas ever executed different commands (or results) at the same exec index,
    /// every journal is gap-free, every live replica conserves money without overdrafts, has
    /// executed everything it knows committed, and holds no log entry beyond its window.
    pub fn check_safety(&self) -> Result<(), String> {
        if let Some(first) = self.violations.first() {
            return Err(format!(
                "{} violations, first: {first}",
                self.violations.len()
            ));
        }
        let config = &self.opts.config;
        let total = config.initial_balance * config.accounts.len() as Amount;
        for (id, node) in &self.nodes {
            let Some(core) = &node.core else { continue };
            let (_, balances) = core.balances();
            let sum: Amount = balances.values().sum();
            if sum != total {
                return Err(format!(
                    "{id}: balances sum to {sum}, not {total}: {balances:?}"
                ));
            }
            if let Some((account, balance)) = balances.iter().find(|(_, b)| **b < 0) {
                return Err(format!("{id}: account {account} is overdrawn: {balance}"));
            }
            let status = core.status();
            if status.executed_slot != status.commit_slot {
                return Err(format!("{id}: committed but not executed: {status:?}"));
            }
            let (_, log) = core.log_view(Slot(1), u32::MAX);
            let horizon = status.executed_slot.0 + config.window();
            if let Some(entry) = log.last().filter(|e| e.slot.0 > horizon) {
                return Err(format!(
                    "{id}: holds slot {} beyond its window: {status:?}",
                    entry.slot
                ));
            }
        }
        let expected: Vec<ExecIndex> = (1..=self.executed.len() as u64).collect();
        if !self.executed.keys().copied().eq(expected) {
            return Err("the executed order has a gap".into());
        }
        Ok(())
    }

    /// Replays the agreed order through a fresh bank: every entry must execute (not be a
    /// duplicate) with the recorded exec index and result; and every `Reply` a client received
    /// must be the entry at its exec index, for its own request, with the same result.
    pub fn check_replies(&self) -> Result<(), String> {
        let config = &self.opts.config;
        let mut bank = Bank::new(&config.accounts, config.initial_balance);
        for entry in self.executed.values() {
            match bank.execute(&entry.command, true) {
                Outcome::Executed(replayed) if replayed == *entry => {}
                other => {
                    return Err(format!(
                        "replaying #{} gave {other:?}, log says {entry:?}",
                        entry.exec_index
                    ))
                }
            }
        }
        for seen in &self.replies {
            let ClientResponse::Reply { reply, .. } = &seen.response else {
                continue;
            };
            let Some(entry) = self.executed.get(&reply.exec_index) else {
                return Err(format!(
                    "{seen:?}: no command executed at #{}",
                    reply.exec_index
                ));
            };
            let same_request = entry.command.client == seen.command.client
                && entry.command.request == seen.command.request;
            if !same_request || entry.result != reply.result {
                return Err(format!("{seen:?} does not match the log entry {entry:?}"));
            }
        }
        Ok(())
    }

    /// Every live replica has executed the same number of commands and holds the same balances,
    /// and no replica is still catching up.
    pub fn check_converged(&self) -> Result<(), String> {
        let mut states = self
            .nodes
            .values()
            .filter_map(|n| n.core.as_ref())
            .map(|c| {
                let status = c.status();
                (status.commit_slot, status.executed_slot, c.balances())
            });
        let Some(first) = states.next() else {
            return Ok(());
        };
        match states.find(|s| *s != first) {
            Some(other) => Err(format!("replicas differ: {first:?} vs {other:?}")),
            None => Ok(()),
        }
    }

    /// The violations recorded while running (empty when all is well).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}
