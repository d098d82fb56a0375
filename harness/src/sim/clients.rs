//! The simulated run's clients: the harness's own client rules on virtual time.
//!
//! Each client is a closed loop over the same operation generator real runs use
//! (`workload::OpGen`, one ChaCha stream per client). A request is retried under the same id
//! until a definite answer or its deadline, as `caller::submit` does on real sockets, with the
//! same choice of the next replica (`caller::retry_target`): `NotLeader` with a hint goes
//! straight to the leader; without one, or `Overloaded`, waits a doubling backoff and tries
//! elsewhere; an attempt that times out forgets the hint if it named that replica and moves
//! on. At the deadline the operation is recorded `info`, never `fail`.
//!
//! On a sharded bank ([`Routing::sharded`]) each command goes to its account's shard (a
//! transfer's source, which coordinates; a `read_all` to any shard), with a leader hint per
//! shard, and completions carry positions per shard as the real harness records them.

use crate::clients::caller::{retry_target, Submitted};
use crate::clients::workload::OpGen;
use crate::clients::workload::{ShardMix, WorkloadShape};
use crate::record::{completion, op_value, with_positions};
use checker::history::Event;
use replica::bank::{Command, Op};
use replica::client_proto::ClientResponse;
use replica::core::ReplyToken;
use replica::types::{Account, ClientId, NodeId, RequestId};
use sim::Sim;
use std::collections::BTreeMap;

const BACKOFF_START_MS: u64 = 5;
const BACKOFF_CAP_MS: u64 = 200;

/// Client timing, in virtual milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct ClientTiming {
    pub attempt_timeout_ms: u64,
    pub op_timeout_ms: u64,
}

struct Pending {
    command: Command,
    /// The attempt in flight, if one is (none while backing off).
    token: Option<ReplyToken>,
    node: NodeId,
    /// When the attempt times out, or the backoff ends.
    timer_ms: u64,
    deadline_ms: u64,
    backoff_ms: u64,
}

struct Client {
    gen: OpGen,
    next_request: u64,
    pending: Option<Pending>,
    /// The client starts its next operation no sooner (its think time after the last).
    idle_until_ms: u64,
}

/// Which replicas serve which command: one group of every replica (the classic cluster), or
/// one group per shard.
#[derive(Clone, Debug)]
pub struct Routing {
    /// The replicas of each group (a shard), in order.
    groups: Vec<Vec<NodeId>>,
    /// The group of each account; absent: the first.
    account_group: BTreeMap<Account, usize>,
    /// Each replica's shard id, for positions (empty for the classic cluster).
    node_shards: BTreeMap<NodeId, u32>,
    /// The workload's cross-shard mix (none for the classic cluster).
    mix: Option<ShardMix>,
}

impl Routing {
    /// The classic cluster: one group of `nodes`.
    pub fn classic(nodes: Vec<NodeId>) -> Routing {
        Routing {
            groups: vec![nodes],
            account_group: BTreeMap::new(),
            node_shards: BTreeMap::new(),
            mix: None,
        }
    }

    /// A sharded bank: `shards` lists each shard's id, replicas and accounts;
    /// `cross_share` of transfers go to another shard's account.
    pub fn sharded(
        shards: &[(u32, Vec<NodeId>, Vec<Account>)],
        accounts: &[Account],
        cross_share: f64,
    ) -> Routing {
        let mut routing = Routing::classic(Vec::new());
        routing.groups.clear();
        for (k, (id, nodes, owned)) in shards.iter().enumerate() {
            routing.groups.push(nodes.clone());
            for a in owned {
                routing.account_group.insert(a.clone(), k);
            }
            for &n in nodes {
                routing.node_shards.insert(n, *id);
            }
        }
        let shard_of = accounts
            .iter()
            .map(|a| {
                let k = routing.account_group.get(a).copied().unwrap_or(0);
                shards.get(k).map_or(0, |s| s.0)
            })
            .collect();
        routing.mix = Some(ShardMix {
            shard_of,
            cross_share,
        });
        routing
    }

    fn sharded_bank(&self) -> bool {
        self.mix.is_some()
    }

    /// The group that serves `command` from client `index`: its account's shard; a
    /// `read_all` (a snapshot across shards) is coordinated by a shard drawn from the client's
    /// id, as the real harness routes it, so that a retry goes to the same coordinator (its
    /// transaction id names the coordinator: another shard would start a second one).
    fn group_of(&self, index: usize, command: &Command) -> usize {
        let account = match &command.op {
            Op::Transfer { from, .. } => from,
            Op::Read { account } => account,
            Op::ReadAll => return index % self.groups.len().max(1),
        };
        self.account_group.get(account).copied().unwrap_or(0)
    }

    fn group_of_node(&self, node: NodeId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&node))
    }
}

/// Every client of a simulated run. Events it produces go to the caller, in order.
pub struct Clients {
    clients: Vec<Client>,
    routing: Routing,
    /// The leader hint of each group.
    hints: Vec<Option<NodeId>>,
    owner: BTreeMap<ReplyToken, usize>,
    timing: ClientTiming,
    /// Operations still to start (the run's budget).
    budget: u64,
    accepting: bool,
    /// Counts retries, for [`retry_target`]'s choice when a replica is not in the list.
    rotation: usize,
    /// The accounts; in a probe round client `i` reads account `i` (modulo their number).
    accounts: Vec<Account>,
    probing: bool,
    pub invoked: u64,
    /// Think time between one client's operations, in virtual ms.
    think_ms: u64,
}

impl Clients {
    pub fn new(
        seed: u64,
        count: u32,
        accounts: &[Account],
        routing: Routing,
        timing: ClientTiming,
        budget: u64,
    ) -> Clients {
        let clients = (0..u64::from(count))
            .map(|c| {
                let gen = OpGen::new(seed, c, accounts.to_vec());
                let gen = match &routing.mix {
                    Some(mix) => gen.with_shards(mix.clone()),
                    None => gen,
                };
                Client {
                    gen,
                    next_request: 1,
                    pending: None,
                    idle_until_ms: 0,
                }
            })
            .collect();
        Clients {
            clients,
            hints: vec![None; routing.groups.len()],
            routing,
            owner: BTreeMap::new(),
            timing,
            budget,
            accepting: true,
            rotation: 0,
            accounts: accounts.to_vec(),
            probing: false,
            invoked: 0,
            think_ms: 0,
        }
    }

    /// Each client waits `think_ms` after an operation ends before it starts the next.
    pub fn with_think(mut self, think_ms: u64) -> Clients {
        self.think_ms = think_ms;
        self
    }

    /// Every client draws its operations in this shape instead of the default.
    pub fn with_shape(mut self, shape: WorkloadShape) -> Clients {
        for client in &mut self.clients {
            let gen = std::mem::replace(&mut client.gen, OpGen::new(0, 0, Vec::<Account>::new()));
            client.gen = gen.with_shape(shape);
        }
        self
    }

    /// No new operation starts from now on.
    pub fn stop_starting(&mut self) {
        self.accepting = false;
    }

    /// After the final heal: `ops` more operations, whatever the budget said.
    pub fn final_round(&mut self, ops: u64) {
        self.accepting = true;
        self.budget = ops;
        for client in &mut self.clients {
            client.idle_until_ms = 0;
        }
    }

    /// A probe round: `ops` more operations, each a read of its client's own account. Reads
    /// take no lock, so no two of them conflict: a lock that refuses one was left by an
    /// earlier operation.
    pub fn probe_round(&mut self, ops: u64) {
        self.final_round(ops);
        self.probing = true;
    }

    /// Whether the budget is spent or starting stopped, and no operation is pending.
    pub fn all_done(&self) -> bool {
        (!self.accepting || self.budget == 0) && self.clients.iter().all(|c| c.pending.is_none())
    }

    pub fn pending(&self) -> usize {
        self.clients.iter().filter(|c| c.pending.is_some()).count()
    }

    /// Every pending operation may run until at least `deadline_ms` (the liveness bound after
    /// the final heal must be what decides, not a deadline that happened to fall just after).
    pub fn extend_deadlines(&mut self, deadline_ms: u64) {
        for pending in self.clients.iter_mut().filter_map(|c| c.pending.as_mut()) {
            pending.deadline_ms = pending.deadline_ms.max(deadline_ms);
        }
    }

    /// The next moment a client acts on its own.
    pub fn next_timer_ms(&self, now_ms: u64) -> Option<u64> {
        let idle_can_start = self.accepting && self.budget > 0;
        self.clients
            .iter()
            .filter_map(|c| match &c.pending {
                Some(p) => Some(p.timer_ms.min(p.deadline_ms)),
                None if idle_can_start => Some(now_ms.max(c.idle_until_ms)),
                None => None,
            })
            .min()
    }

    /// Handles the answers that arrived and every timer due at `now_ms`; starts new operations.
    pub fn act(&mut self, sim: &mut Sim, now_ms: u64, events: &mut Vec<Event>) {
        let replies: Vec<_> = sim
            .take_replies()
            .iter()
            .map(|r| (r.token, r.response.clone()))
            .collect();
        for (token, response) in replies {
            if let Some(index) = self.owner.remove(&token) {
                self.answered(sim, index, token, response, now_ms, events);
            }
        }
        for index in 0..self.clients.len() {
            self.timers(sim, index, now_ms, events);
        }
    }

    fn answered(
        &mut self,
        sim: &mut Sim,
        index: usize,
        token: ReplyToken,
        response: ClientResponse,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let Some(pending) = self.clients[index].pending.as_mut() else {
            return;
        };
        if pending.token != Some(token) {
            return; // an answer to an attempt already given up on
        }
        pending.token = None;
        let node = pending.node;
        let group = self.routing.group_of(index, &pending.command);
        match response {
            ClientResponse::Reply { node, reply } => {
                if let Some(g) = self.routing.group_of_node(node) {
                    self.hints[g] = Some(node);
                }
                self.finish(index, Submitted::Executed { node, reply }, now_ms, events);
            }
            ClientResponse::Rejected { node, reason } => {
                self.finish(index, Submitted::Rejected { node, reason }, now_ms, events);
            }
            ClientResponse::NotLeader {
                leader_hint: Some(leader),
                ..
            } if leader != node && self.routing.groups[group].contains(&leader) => {
                self.hints[group] = Some(leader);
                self.send(sim, index, leader, now_ms);
            }
            _ => {
                // Not the leader and knows none, overloaded, or an answer of the wrong kind:
                // back off, then try elsewhere.
                let pending = self.clients[index].pending.as_mut().expect("pending");
                pending.timer_ms = now_ms + pending.backoff_ms;
                pending.backoff_ms = (pending.backoff_ms * 2).min(BACKOFF_CAP_MS);
            }
        }
    }

    fn timers(&mut self, sim: &mut Sim, index: usize, now_ms: u64, events: &mut Vec<Event>) {
        let Some(pending) = &self.clients[index].pending else {
            let rested = now_ms >= self.clients[index].idle_until_ms;
            if self.accepting && self.budget > 0 && rested {
                self.start(sim, index, now_ms, events);
            }
            return;
        };
        if now_ms >= pending.deadline_ms {
            let unknown = Submitted::Unknown {
                last_error: "no definite answer before the deadline".into(),
                last_node: Some(pending.node),
            };
            if let Some(token) = pending.token {
                self.owner.remove(&token);
            }
            self.finish(index, unknown, now_ms, events);
            return;
        }
        if now_ms < pending.timer_ms {
            return;
        }
        // The attempt timed out, or a backoff ended: the same rule as the real caller.
        let current = pending.node;
        let group = self.routing.group_of(index, &pending.command);
        if let Some(token) = pending.token {
            self.owner.remove(&token);
            if self.hints[group] == Some(current) {
                self.hints[group] = None; // as `LeaderHint::forget` after a timeout
            }
        }
        self.rotation += 1;
        let nodes = &self.routing.groups[group];
        let next = retry_target(nodes, self.hints[group], current, self.rotation);
        self.send(sim, index, next, now_ms);
    }

    fn start(&mut self, sim: &mut Sim, index: usize, now_ms: u64, events: &mut Vec<Event>) {
        self.budget -= 1;
        self.invoked += 1;
        let probe = (self.probing && !self.accounts.is_empty()).then(|| Op::Read {
            account: self.accounts[index % self.accounts.len()].clone(),
        });
        let client = &mut self.clients[index];
        let command = Command {
            client: ClientId(index as u64),
            request: RequestId(client.next_request),
            op: probe.unwrap_or_else(|| client.gen.next_op()),
        };
        client.next_request += 1;
        let (f, value) = op_value(&command.op);
        events.push(Event::invoke(index as u64, command.request.0, f, value));
        let group = self.routing.group_of(index, &command);
        let nodes = &self.routing.groups[group];
        let node = self.hints[group].unwrap_or(nodes[index % nodes.len().max(1)]);
        self.clients[index].pending = Some(Pending {
            command,
            token: None,
            node,
            timer_ms: now_ms,
            deadline_ms: now_ms + self.timing.op_timeout_ms,
            backoff_ms: BACKOFF_START_MS,
        });
        self.send(sim, index, node, now_ms);
    }

    fn send(&mut self, sim: &mut Sim, index: usize, node: NodeId, now_ms: u64) {
        let pending = self.clients[index].pending.as_mut().expect("pending");
        let token = sim.submit(node, pending.command.clone());
        pending.token = Some(token);
        pending.node = node;
        pending.timer_ms = now_ms + self.timing.attempt_timeout_ms;
        self.owner.insert(token, index);
    }

    fn finish(&mut self, index: usize, outcome: Submitted, now_ms: u64, events: &mut Vec<Event>) {
        self.clients[index].idle_until_ms = now_ms + self.think_ms;
        if let Some(pending) = self.clients[index].pending.take() {
            let process = index as u64;
            let event = completion(process, &pending.command, &outcome);
            let event = if self.routing.sharded_bank() {
                with_positions(event, &self.routing.node_shards, &outcome)
            } else {
                event
            };
            events.push(event);
        }
    }
}

/// A hand-built world with the harness's clients on it, for tests that script their faults
/// by hand (`harness/tests/sim_cluster/`) and need a workload under them: the world has no
/// clients of its own, so these are the same clients, workload and retry rules as
/// [`simulate`](super::simulate)'s, stepped together with the world. It dereferences to the
/// [`Sim`], so a test crashes, partitions and checks it directly; running goes through
/// [`LoadedWorld::run_until`] so that the clients act between the world's steps.
pub struct LoadedWorld {
    sim: Sim,
    /// The clients while they run.
    clients: Option<Clients>,
    events: Vec<Event>,
}

impl LoadedWorld {
    /// `sim` with no client running yet.
    pub fn new(sim: Sim) -> LoadedWorld {
        LoadedWorld {
            sim,
            clients: None,
            events: Vec::new(),
        }
    }

    /// Starts `count` clients (ids from 0, operations drawn from the world's seed), routed by
    /// the world's shards if it has any, each operation retried for up to 5 s in attempts of
    /// 400 ms, with no budget.
    pub fn start_clients(&mut self, count: u32) {
        let opts = self.sim.options();
        let accounts = opts.config.accounts.clone();
        let routing = match opts.shards.as_ref().filter(|m| m.count() > 1) {
            None => Routing::classic(self.sim.node_ids()),
            Some(map) => {
                let shards: Vec<_> = (self.sim.shards().into_iter())
                    .map(|s| (s.0, map.members(s).to_vec(), map.accounts_of(s)))
                    .collect();
                Routing::sharded(&shards, &accounts, 0.5)
            }
        };
        let timing = ClientTiming {
            attempt_timeout_ms: 400,
            op_timeout_ms: 5_000,
        };
        let seed = opts.seed;
        let clients = Clients::new(seed, count, &accounts, routing, timing, u64::MAX);
        self.clients = Some(clients);
    }

    /// The clients stop: they start nothing more and abandon what they wait for (as clients
    /// that give up would), so that the cluster can go quiet.
    pub fn stop_clients(&mut self) {
        self.clients = None;
    }

    /// Operations answered with a definite `Reply` so far.
    pub fn oks(&self) -> u64 {
        let replies = self.sim.replies().iter();
        replies
            .filter(|r| matches!(r.response, ClientResponse::Reply { .. }))
            .count() as u64
    }

    /// Runs for `ms` of virtual time; returns the operations answered meanwhile.
    pub fn run_for(&mut self, ms: u64) -> u64 {
        let before = self.oks();
        self.run_until(ms, |_| false);
        self.oks() - before
    }

    /// Runs until `done` holds (checked after every step) or `ms` of virtual time pass, the
    /// clients acting between steps while they run. Returns whether `done` held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.sim.now_ms + ms;
        loop {
            let now = self.sim.now_ms;
            if let Some(clients) = self.clients.as_mut() {
                clients.act(&mut self.sim, now, &mut self.events);
                self.events.clear();
            }
            if done(&self.sim) {
                return true;
            }
            let timer = self.clients.as_ref().and_then(|c| c.next_timer_ms(now));
            let next = [self.sim.next_event_ms(), timer]
                .into_iter()
                .flatten()
                .min();
            match next.map(|t| t.max(now + 1)) {
                Some(t) if t <= until => self.sim.run_to(t),
                _ => {
                    self.sim.run_to(until);
                    return done(&self.sim);
                }
            }
        }
    }

    /// Runs until exactly one live leader exists, for at most `ms`. Returns it.
    pub fn run_until_leader(&mut self, ms: u64) -> Option<NodeId> {
        self.run_until(ms, |sim| sim.leaders().len() == 1);
        match self.sim.leaders().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Runs until every live replica executed the same prefix (`Sim::check_converged`).
    pub fn run_until_converged(&mut self, ms: u64) -> bool {
        self.run_until(ms, |sim| sim.check_converged().is_ok())
    }
}

impl std::ops::Deref for LoadedWorld {
    type Target = Sim;

    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl std::ops::DerefMut for LoadedWorld {
    fn deref_mut(&mut self) -> &mut Sim {
        &mut self.sim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(op: Op) -> Command {
        Command {
            client: ClientId(4),
            request: RequestId(1),
            op,
        }
    }

    #[test]
    fn a_command_goes_to_its_accounts_shard_and_a_snapshot_to_the_clients() {
        let accounts: Vec<Account> = ["A", "B", "C", "D"].map(Account::from).to_vec();
        let shard = |id: u32, nodes: [u32; 2], owned: [&str; 2]| {
            let owned = owned.map(Account::from).to_vec();
            (id, nodes.map(NodeId).to_vec(), owned)
        };
        let shards = [shard(1, [1, 2], ["A", "C"]), shard(2, [3, 4], ["B", "D"])];
        let routing = Routing::sharded(&shards, &accounts, 0.5);
        let transfer = command(Op::Transfer {
            from: "D".into(),
            to: "A".into(),
            amount: 1,
        });
        assert_eq!(
            routing.group_of(4, &transfer),
            1,
            "the source's shard coordinates"
        );
        let read = command(Op::Read {
            account: "C".into(),
        });
        assert_eq!(routing.group_of(4, &read), 0);
        assert_eq!(routing.group_of(4, &command(Op::ReadAll)), 0);
        assert_eq!(routing.group_of(5, &command(Op::ReadAll)), 1);
        assert_eq!(routing.node_shards[&NodeId(3)], 2);
        let mix = routing.mix.as_ref().unwrap();
        assert_eq!(mix.shard_of, vec![1, 2, 1, 2]);
        let classic = Routing::classic(vec![NodeId(1), NodeId(2)]);
        assert!(!classic.sharded_bank());
        assert_eq!(classic.group_of(4, &transfer), 0);
        assert_eq!(classic.group_of(5, &command(Op::ReadAll)), 0);
    }
}
