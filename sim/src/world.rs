//! A whole cluster in one process, on virtual time: the replica's real [`Shell`] and core on
//! [`SimDisk`]s, joined by a simulated network, driven by one seeded RNG.
//!
//! Why: the interesting Paxos and storage bugs need message loss, reordering, partitions,
//! crashes and power cuts at awkward moments. Here all of that happens deterministically, so a
//! failing seed replays exactly. Nothing of the replica is re-implemented: each node is a
//! `replica::shell::Shell`, which carries out the core's effects exactly as `replica run` does,
//! on a disk that can lose what was not fsynced.
//!
//! The world advances in steps. Each step moves the clock to the next scheduled moment (a
//! message arriving, a node's tick), hands every node its arrived inputs as
//! one burst, and routes what the bursts sent. Faults:
//! - network: loss, duplication, delay spread (reordering), rare long delays, partitions by
//!   one-way links;
//! - processes: kill (the page cache survives), power cut (unsynced data is lost or torn),
//!   a crash inside the next storage calls, pause (inputs and timers wait, then arrive late),
//!   a forward jump of one node's clock;
//! - disks: failing fsyncs, bit flips in synced data.
//!
//! A world may be a sharded bank ([`SimOptions::sharded`]): each node's core is configured
//! as its shard sees it (the same `CoreConfig::in_shard` the real replica uses), two-phase
//! commit messages travel the same simulated network, and the order checks hold per shard.
//!
//! The world has no clients of its own: a command enters through [`Sim::submit`] and its
//! answer comes back through [`Sim::take_replies`]. The one closed-loop client loop is the
//! harness's (`harness::sim::clients`, its workload and retry rules), which `harness sim` and
//! the whole-cluster tests that need a workload (`harness/tests/sim_cluster/`) both run. The
//! checks ([`Sim::check_safety`], [`Sim::check_replies`], [`Sim::check_converged`]) state the
//! bank's correctness properties over what the replicas executed.

use crate::by_exec::ByExecIndex;
use crate::disk::SimDisk;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::bank::{Bank, Command, Executed, Op, OpResult, Outcome};
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::core::{Core, CoreConfig, Effect, PeerMsg, ReplyToken};
use replica::failpoints::{self, Failpoint};
use replica::shard::ShardMap;
use replica::shell::{Shell, ShellConfig, ShellIo};
use replica::types::{Account, Amount, ExecIndex, NodeId, ShardId, Slot};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;

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
    /// Planted bug `forget-promises`: the shell never writes acceptor state.
    pub forget_promises: bool,
    /// Planted bug `misread-log`: recovery cuts its own WAL to nothing and trusts the cut.
    pub misread_log: bool,
    /// Like the network's `max_frame_bytes`: a peer message encoding to more is dropped.
    pub max_message_bytes: Option<usize>,
    /// A sharded bank: which nodes and accounts form each shard (`config` then holds every
    /// account, and each node's core is `config` as its shard sees it). `None`: the classic
    /// one-group cluster of `config.nodes`.
    pub shards: Option<ShardMap>,
    /// Every shard's bound on transactions in flight (small, so that `Busy` happens).
    pub max_inflight_txns: u32,
    /// Every shard leader's lock policy (`replica run --lock-policy`).
    pub lock_policy: replica::core::LockPolicy,
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
            forget_promises: false,
            misread_log: false,
            max_message_bytes: None,
            shards: None,
            max_inflight_txns: 16,
            lock_policy: replica::core::LockPolicy::default(),
        }
    }

    /// `shards` shards of `per_shard` nodes each over `config.accounts` (dealt round-robin as
    /// `replica init --shards` does), otherwise as [`SimOptions::new`].
    pub fn sharded(shards: u32, per_shard: u32, seed: u64) -> SimOptions {
        let mut options = SimOptions::new(shards * per_shard, seed);
        let accounts = options.config.accounts.clone();
        let nodes = options.config.nodes.clone();
        let specs = replica::shard::spread(&accounts, shards, per_shard)
            .expect("no more shards than accounts");
        options.shards =
            Some(ShardMap::new(&specs, &accounts, &nodes).expect("spread makes a valid map"));
        options
    }
}

/// One simulated replica: its disk always, its shell while its process lives.
pub struct SimNode {
    pub id: NodeId,
    shell: Option<Shell>,
    pub disk: SimDisk,
    next_tick_ms: u64,
    boots: u64,
    /// Frozen (SIGSTOP): inputs wait in `held`, timers do not run.
    paused: bool,
    held: Vec<Input>,
    /// Added to the world's clock for this node's timers (forward clock jumps).
    clock_offset_ms: u64,
    /// Why the last start failed (the replica refused its disk), if it did.
    refused: Option<String>,
    /// The process dies in its next burst: inside a storage call, or at the burst's end.
    dies_next_burst: bool,
    /// The power is cut right after the first burst that sends this (an aimed power cut).
    power_cut_after: Option<AfterSend>,
    /// An armed two-phase commit failpoint: the process dies when it reaches that step
    /// ([`Sim::arm_failpoint`]).
    failpoint: Option<Failpoint>,
    /// Every entry this node reported executing, by exec index, across restarts.
    executed: ByExecIndex<Executed>,
}

impl SimNode {
    /// The node's core while it is up.
    pub fn core(&self) -> Option<&Core> {
        self.shell.as_ref().map(Shell::core)
    }

    /// The entries this node executed (as its shell was told), in exec-index order.
    pub fn executed(&self) -> impl Iterator<Item = &Executed> {
        self.executed.values()
    }

    /// Why the node refused to start, if it did.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// Whether the failpoint `armed` at a node whose shell is `shell` fires on receiving `msg`
/// (a vote or an ACK its leader would act on: [`failpoints::step_of_receive`]).
fn fires_on_receive(armed: Option<Failpoint>, shell: &Shell, msg: &PeerMsg) -> bool {
    let Some(armed) = armed else {
        return false;
    };
    let core = shell.core();
    let step = failpoints::step_of_receive(msg, core.leads(), |txn| core.bank().coordinated(txn));
    step == Some(armed)
}

/// What an aimed power cut waits for a node to send ([`Sim::power_cut_after`]): the moment
/// after it is where a vote or an answer that was not made durable first becomes a lost
/// promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSend {
    /// A vote: a PROMISE or an ACCEPTED ([`PeerMsg::is_vote`]).
    Vote,
    /// A definite answer to a client (not a redirect or a refusal).
    Reply,
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

/// An input in flight. Boxed: a `PeerMsg` holds a checkpoint (a whole bank) inline, so it
/// is hundreds of bytes, and an input is moved half a dozen times between its send and its
/// delivery (the burst's sends, the queue's slab, the step's due inputs and their sort, the
/// node's batch); copying it each time was most of the routing's cost.
#[derive(Debug)]
enum Input {
    Peer {
        from: NodeId,
        msg: Box<PeerMsg>,
    },
    Client {
        token: ReplyToken,
        command: Box<Command>,
    },
}

/// The inputs in flight, delivered by time and, at one time, in the order they were sent.
///
/// A heap of small keys over a slab of inputs: a message (a PROMISE may carry a whole
/// checkpoint) is written once when sent and moved once when delivered, where a `BTreeMap`
/// of the messages themselves shifted them inside its nodes on every insert and removal.
#[derive(Default)]
struct Queue {
    /// (time, sequence number, slab index), earliest first.
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slab: Vec<Option<(NodeId, Input)>>,
    free: Vec<usize>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, at_ms: u64, to: NodeId, input: Input) {
        self.seq += 1;
        let index = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some((to, input));
                i
            }
            None => {
                self.slab.push(Some((to, input)));
                self.slab.len() - 1
            }
        };
        self.heap.push(Reverse((at_ms, self.seq, index)));
    }

    /// The earliest input due at or before `now_ms`, if any.
    fn pop_due(&mut self, now_ms: u64) -> Option<(NodeId, Input)> {
        let &Reverse((at_ms, _, index)) = self.heap.peek()?;
        if at_ms > now_ms {
            return None;
        }
        self.heap.pop();
        self.free.push(index);
        self.slab[index].take()
    }

    fn next_at_ms(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at_ms, _, _))| *at_ms)
    }
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
    pub storage_stops: u64,
}

/// What one burst produced, collected through [`ShellIo`].
#[derive(Default)]
struct BurstIo {
    sends: Vec<(NodeId, Box<PeerMsg>)>,
    replies: Vec<(ReplyToken, ClientResponse)>,
    executed: Vec<Executed>,
}

impl ShellIo for BurstIo {
    fn send(&mut self, to: NodeId, msg: PeerMsg) {
        self.sends.push((to, Box::new(msg)));
    }

    fn reply(&mut self, token: ReplyToken, response: ClientResponse) {
        self.replies.push((token, response));
    }

    fn executed(&mut self, entry: Executed) {
        self.executed.push(entry);
    }
}

pub struct Sim {
    pub now_ms: u64,
    opts: SimOptions,
    nodes: BTreeMap<NodeId, SimNode>,
    /// The keys of `nodes`, in order (nodes are never added or removed after [`Sim::new`]).
    ids: Vec<NodeId>,
    queue: Queue,
    /// The inputs due in the step being run (kept to reuse its memory).
    due: Vec<(NodeId, Input)>,
    rng: SmallRng,
    cut: BTreeSet<(NodeId, NodeId)>,
    next_token: ReplyToken,
    submitted: BTreeMap<ReplyToken, Command>,
    answered: BTreeSet<ReplyToken>,
    replies: Vec<SeenReply>,
    replies_taken: usize,
    /// Every command executed anywhere, by shard and exec index (the first report; later ones
    /// must match).
    executed: BTreeMap<ShardId, ByExecIndex<Executed>>,
    violations: Vec<String>,
    pub stats: SimStats,
    /// The failpoint last armed, and where, until [`Sim::take_armed_failpoint`].
    armed: Option<(NodeId, Failpoint)>,
}

impl Sim {
    /// A cluster of fresh nodes at time 0.
    pub fn new(opts: SimOptions) -> Sim {
        let mut sim = Sim {
            now_ms: 0,
            rng: SmallRng::seed_from_u64(opts.seed),
            nodes: BTreeMap::new(),
            ids: Vec::new(),
            queue: Queue::default(),
            due: Vec::new(),
            cut: BTreeSet::new(),
            next_token: 1,
            submitted: BTreeMap::new(),
            answered: BTreeSet::new(),
            replies: Vec::new(),
            replies_taken: 0,
            executed: BTreeMap::new(),
            violations: Vec::new(),
            stats: SimStats::default(),
            armed: None,
            opts,
        };
        let nodes = match &sim.opts.shards {
            Some(map) => map.nodes(),
            None => sim.opts.config.nodes.clone(),
        };
        for id in nodes {
            let node = SimNode {
                id,
                shell: None,
                disk: SimDisk::new(),
                next_tick_ms: 0,
                boots: 0,
                paused: false,
                held: Vec::new(),
                clock_offset_ms: 0,
                refused: None,
                dies_next_burst: false,
                power_cut_after: None,
                failpoint: None,
                executed: ByExecIndex::default(),
            };
            sim.nodes.insert(id, node);
            sim.boot(id);
        }
        sim.ids = sim.nodes.keys().copied().collect();
        sim
    }

    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[&id]
    }

    /// Takes every entry `id` reported executing (in exec-index order), leaving it none: for
    /// the end of a run, whose final state owns them from then on.
    pub fn take_executed(&mut self, id: NodeId) -> Vec<Executed> {
        let node = self
            .nodes
            .get_mut(&id)
            .map(|n| std::mem::take(&mut n.executed));
        node.unwrap_or_default().into_values().collect()
    }

    /// The live core of `id`, if it is up.
    pub fn core(&self, id: NodeId) -> Option<&Core> {
        self.nodes.get(&id).and_then(SimNode::core)
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.core(id).is_some()
    }

    /// Live nodes that believe they lead.
    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.core().is_some_and(Core::leads))
            .map(|n| n.id)
            .collect()
    }

    /// The live leader with the highest ballot.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|id| self.core(*id).map(|c| c.status().ballot))
    }

    /// The shard `id` belongs to ([`ShardId::ONLY`] in a classic cluster).
    pub fn shard_of(&self, id: NodeId) -> ShardId {
        let map = self.opts.shards.as_ref();
        map.and_then(|m| m.shard_of_node(id))
            .unwrap_or(ShardId::ONLY)
    }

    /// The shards, in id order ([`ShardId::ONLY`] alone in a classic cluster).
    pub fn shards(&self) -> Vec<ShardId> {
        let count = self.opts.shards.as_ref().map_or(1, ShardMap::count) as u32;
        (1..=count).map(ShardId).collect()
    }

    /// The nodes of `shard`, in id order.
    pub fn members(&self, shard: ShardId) -> Vec<NodeId> {
        let nodes = self.node_ids().into_iter();
        nodes.filter(|&n| self.shard_of(n) == shard).collect()
    }

    /// The live leader of `shard` with the highest ballot.
    pub fn leader_of(&self, shard: ShardId) -> Option<NodeId> {
        let leaders = self.leaders().into_iter();
        leaders
            .filter(|&n| self.shard_of(n) == shard)
            .max_by_key(|id| self.core(*id).map(|c| c.status().ballot))
    }

    /// One line per node: up, paused, refused, its role and ballot, its clock offset and
    /// next tick (for traces and the `stable` event).
    pub fn describe_nodes(&self) -> Vec<String> {
        self.nodes
            .values()
            .map(|n| {
                let state = match (n.core(), n.paused, &n.refused) {
                    (Some(core), paused, _) => {
                        let s = core.status();
                        format!(
                            "{:?} {} leader {:?} commit {} exec {}{}",
                            s.role,
                            s.ballot,
                            s.leader,
                            s.commit_slot,
                            s.exec_index,
                            if paused { " PAUSED" } else { "" }
                        )
                    }
                    (None, _, Some(why)) => format!("refused: {why}"),
                    (None, _, None) => "down".to_string(),
                };
                format!(
                    "{}: {state}; next tick {} ms, clock +{} ms, {} held",
                    n.id,
                    n.next_tick_ms,
                    n.clock_offset_ms,
                    n.held.len()
                )
            })
            .collect()
    }

    /// Asks a live node an introspection question (PrintDB, FetchExecuted, ...).
    pub fn introspect(&mut self, id: NodeId, request: ClientRequest) -> Option<ClientResponse> {
        let shell = self.nodes.get_mut(&id)?.shell.as_mut()?;
        Some(shell.introspect(request))
    }

    /// The first exec index `id`'s executed journal still holds (after a snapshot install it
    /// is past 1).
    pub fn journal_first_available(&mut self, id: NodeId) -> Option<ExecIndex> {
        let request = ClientRequest::FetchExecuted {
            from_exec_index: 1,
            max_entries: 0,
        };
        match self.introspect(id, request)? {
            ClientResponse::Executed {
                first_available, ..
            } => Some(first_available),
            _ => None,
        }
    }

    // ----- faults -----

    /// Kills a node's process: it loses everything but its disk (the page cache survives);
    /// messages to it are lost.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.shell = None;
            node.paused = false;
            node.held.clear();
            node.dies_next_burst = false;
            node.power_cut_after = None;
            node.failpoint = None;
            node.disk.disarm();
        }
    }

    /// Arms `failpoint` at a live node: its process dies at its next hit, as a `replica-bugs`
    /// process with that failpoint armed would ([`replica::failpoints`]): before a message
    /// of that step leaves it (what the burst sent before it has left), or before it acts on
    /// one it received. Cancelled by a crash or [`Sim::clear_disk_faults`].
    pub fn arm_failpoint(&mut self, id: NodeId, failpoint: Failpoint) {
        if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.shell.is_some()) {
            node.failpoint = Some(failpoint);
            self.armed = Some((id, failpoint));
        }
    }

    /// The failpoint last armed and its node, disarmed there if it has not fired (whether it
    /// did: the node is down).
    pub fn take_armed_failpoint(&mut self) -> Option<(NodeId, Failpoint)> {
        let (id, failpoint) = self.armed.take()?;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.failpoint = None;
        }
        Some((id, failpoint))
    }

    /// Cuts the node's power right after the first burst in which it sends `what` (the sends
    /// and replies of that burst leave; then the power goes, with what was not fsynced).
    /// Cancelled by a crash, a restart or [`Sim::clear_disk_faults`].
    pub fn power_cut_after(&mut self, id: NodeId, what: AfterSend) {
        if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.shell.is_some()) {
            node.power_cut_after = Some(what);
        }
    }

    /// Cuts the power of a node: its process dies and its disk keeps only what was fsynced,
    /// plus any subset of what was not.
    pub fn power_cut(&mut self, id: NodeId) {
        self.crash(id);
        if let Some(node) = self.nodes.get(&id) {
            node.disk.power_cut(&mut self.rng);
        }
    }

    /// The node's process dies in its next burst: inside one of its storage calls (a write
    /// in progress lands as a prefix; sends that left before that call escape, nothing after
    /// it does), or, if the burst makes fewer calls, right after the burst.
    pub fn crash_during_next_burst(&mut self, id: NodeId) {
        let ops = self.rng.gen_range(0..12);
        let tear = self.rng.gen_range(0.0..1.0);
        if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.shell.is_some()) {
            node.disk.arm_crash(ops, tear);
            node.dies_next_burst = true;
        }
    }

    /// The node's next `n` fsyncs fail (EIO).
    pub fn fail_syncs(&mut self, id: NodeId, n: u32) {
        if let Some(node) = self.nodes.get(&id) {
            node.disk.fail_next_syncs(n);
        }
    }

    /// Cancels the node's pending disk faults (failing fsyncs, an armed crash).
    pub fn clear_disk_faults(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.disk.fail_next_syncs(0);
            node.disk.disarm();
            node.dies_next_burst = false;
            node.power_cut_after = None;
            node.failpoint = None;
        }
    }

    /// Flips a bit of synced data in the node's WAL or checkpoint; returns where.
    pub fn flip_bit(&mut self, id: NodeId) -> Option<(PathBuf, u64)> {
        let node = self.nodes.get(&id)?;
        node.disk.flip_bit(&mut self.rng)
    }

    /// Cuts the WAL of a node short (see `SimDisk::cut_short`); crash the node first, restart
    /// it after. Returns the cut.
    pub fn cut_short(&mut self, id: NodeId) -> Option<crate::disk::CutShort> {
        let node = self.nodes.get(&id)?;
        node.disk.cut_short(&mut self.rng)
    }

    /// Freezes a node (SIGSTOP): it handles nothing, its timers wait; messages to it queue up.
    pub fn pause(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.shell.is_some()) {
            node.paused = true;
        }
    }

    /// Thaws a paused node: what queued up arrives as one late burst, its timers fire late.
    pub fn resume(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut node.paused) {
            return;
        }
        let held = std::mem::take(&mut node.held);
        for input in held {
            self.enqueue(self.now_ms, id, input);
        }
    }

    /// Moves one node's clock forward by `ms`: its timers (elections, heartbeats, client waits)
    /// see the jump at once.
    pub fn jump_clock(&mut self, id: NodeId, ms: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.clock_offset_ms = node.clock_offset_ms.saturating_add(ms);
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
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            self.cut.insert((*x, *y));
                        }
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

    /// The links cut right now, as (from, to).
    pub fn cuts(&self) -> Vec<(NodeId, NodeId)> {
        self.cut.iter().copied().collect()
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn set_drop_rate(&mut self, rate: f64) {
        self.opts.drop_rate = rate;
    }

    pub fn set_dup_rate(&mut self, rate: f64) {
        self.opts.dup_rate = rate;
    }

    // ----- clients -----

    /// Submits a command to `node` on a fresh stream; the answer shows up in [`Sim::replies`].
    pub fn submit(&mut self, node: NodeId, command: Command) -> ReplyToken {
        let token = self.next_token;
        self.next_token += 1;
        self.submitted.insert(token, command.clone());
        let delay = self.delay();
        let command = Box::new(command);
        self.enqueue(self.now_ms + delay, node, Input::Client { token, command });
        token
    }

    /// Every client answer seen so far.
    pub fn replies(&self) -> &[SeenReply] {
        &self.replies
    }

    /// The answers that arrived since the last call.
    pub fn take_replies(&mut self) -> &[SeenReply] {
        let from = std::mem::replace(&mut self.replies_taken, self.replies.len());
        &self.replies[from..]
    }

    /// The answer to `token`, if any.
    pub fn reply_to(&self, token: ReplyToken) -> Option<&ClientResponse> {
        self.replies
            .iter()
            .rev()
            .find(|r| r.token == token)
            .map(|r| &r.response)
    }

    // ----- running -----

    /// Advances to the next moment anything happens and handles it. Returns false if nothing is
    /// scheduled at all (every node down and nothing in flight).
    pub fn step(&mut self) -> bool {
        let Some(next) = self.next_event_ms() else {
            return false;
        };
        self.now_ms = next;
        VIRTUAL_NOW_MS.with(|now| now.set(Some(next)));
        // The due inputs grouped by node, each node's in the order they were due (a stable
        // sort of one reused vector: a map of vectors per step cost more than the routing).
        let mut due = std::mem::take(&mut self.due);
        while let Some(input) = self.queue.pop_due(self.now_ms) {
            due.push(input);
        }
        due.sort_by_key(|(to, _)| *to);
        let mut due_inputs = due.drain(..).peekable();
        for k in 0..self.ids.len() {
            let id = self.ids[k];
            // Inputs for a node the world does not have are lost.
            while due_inputs.next_if(|(to, _)| *to < id).is_some() {}
            let mut batch = Vec::new();
            while let Some((_, input)) = due_inputs.next_if(|(to, _)| *to == id) {
                batch.push(input);
            }
            let node = &self.nodes[&id];
            if node.paused {
                self.node_mut(id).held.extend(batch);
                continue;
            }
            let tick = node.shell.is_some() && node.next_tick_ms <= self.now_ms;
            if tick || !batch.is_empty() {
                self.burst(id, batch, tick);
            }
        }
        drop(due_inputs);
        self.due = due;
        true
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        self.run_to(until);
    }

    /// Handles everything scheduled up to `until_ms`, then sets the clock there.
    pub fn run_to(&mut self, until_ms: u64) {
        while self.next_event_ms().is_some_and(|t| t <= until_ms) {
            self.step();
        }
        self.now_ms = self.now_ms.max(until_ms);
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

    /// The next moment something is scheduled: a message or a live node's tick.
    pub fn next_event_ms(&self) -> Option<u64> {
        let message = self.queue.next_at_ms();
        let tick = self
            .nodes
            .values()
            .filter(|n| n.shell.is_some() && !n.paused)
            .map(|n| n.next_tick_ms)
            .min();
        [message, tick].into_iter().flatten().min()
    }

    fn delay(&mut self) -> u64 {
        let delay = self
            .rng
            .gen_range(self.opts.min_delay_ms..=self.opts.max_delay_ms);
        let extra = if self.rng.gen_bool(self.opts.long_delay_rate) {
            self.rng.gen_range(0..=self.opts.long_delay_max_ms)
        } else {
            0
        };
        (delay + extra).max(1)
    }

    fn enqueue(&mut self, at_ms: u64, to: NodeId, input: Input) {
        self.queue.push(at_ms, to, input);
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Box<PeerMsg>) {
        self.stats.sent += 1;
        let oversized = self
            .opts
            .max_message_bytes
            .is_some_and(|max| replica::core::wire::encoded_len(&msg) > max);
        self.stats.oversized += u64::from(oversized);
        if oversized || self.cut.contains(&(from, to)) || self.rng.gen_bool(self.opts.drop_rate) {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.gen_bool(self.opts.dup_rate) {
            let at = self.now_ms + self.delay();
            let copy = msg.clone();
            self.enqueue(at, to, Input::Peer { from, msg: copy });
        }
        let at = self.now_ms + self.delay();
        self.enqueue(at, to, Input::Peer { from, msg });
    }

    /// Starts (or restarts) a node's process from its disk.
    fn boot(&mut self, id: NodeId) {
        let core = match &self.opts.shards {
            Some(map) => {
                let txns = self.opts.max_inflight_txns;
                let mut core = self.opts.config.clone().in_shard(map, id, txns);
                if let Some(sharding) = core.sharding.as_mut() {
                    sharding.lock_policy = self.opts.lock_policy;
                }
                core
            }
            None => CoreConfig {
                me: id,
                ..self.opts.config.clone()
            },
        };
        let seed_base = self.opts.seed;
        let forget_promises = self.opts.forget_promises;
        let misread_log = self.opts.misread_log;
        let tick_ms = self.opts.tick_ms.max(1);
        let now = self.now_ms;
        let node = self.node_mut(id);
        node.boots += 1;
        node.disk.revive();
        let config = ShellConfig {
            core,
            data_dir: PathBuf::from(format!("/{id}")),
            seed: seed_base ^ (u64::from(id.0) << 32) ^ node.boots,
            fsync: true,
            forget_promises,
            misread_log,
        };
        let node_now = now + node.clock_offset_ms;
        let mut io = BurstIo::default();
        match Shell::open(
            std::sync::Arc::new(node.disk.clone()),
            &config,
            node_now,
            &mut io,
        ) {
            Ok(shell) => {
                node.disk.note_start(true);
                node.shell = Some(shell);
                node.refused = None;
            }
            Err(e) => {
                node.disk.note_start(false);
                tracing::info!(node = %id, "refused to start: {e}");
                node.refused = Some(e.to_string());
                return;
            }
        }
        node.next_tick_ms = now + u64::from(id.0) % tick_ms;
        self.route(id, io);
    }

    /// One burst at one node: inputs, maybe a tick, then the shell carries out the effects.
    fn burst(&mut self, id: NodeId, inputs: Vec<Input>, tick: bool) {
        let now = self.now_ms;
        let tick_ms = self.opts.tick_ms;
        let node = self.nodes.get_mut(&id).expect("known node");
        let node_now = now + node.clock_offset_ms;
        let Some(shell) = node.shell.as_mut() else {
            return; // down: whatever arrived is lost
        };
        let mut out: Vec<Effect> = Vec::new();
        for input in inputs {
            match input {
                Input::Peer { msg, .. } if fires_on_receive(node.failpoint, shell, &msg) => {
                    // The process dies before it acts on the message: nothing of this
                    // burst is carried out.
                    tracing::info!(node = %id, failpoint = ?node.failpoint, "failpoint fired");
                    self.stats.delivered += 1;
                    self.crash(id);
                    return;
                }
                Input::Peer { from, msg } => shell.on_peer(node_now, from, *msg, &mut out),
                Input::Client { token, command } => {
                    shell.on_client(node_now, token, *command, &mut out)
                }
            }
            self.stats.delivered += 1;
        }
        if tick {
            shell.on_tick(node_now, &mut out);
            while node.next_tick_ms <= now {
                node.next_tick_ms += tick_ms;
            }
        }
        let mut io = BurstIo::default();
        let result = shell.finish_burst(node_now, out, &mut io);
        self.stats.bursts += 1;
        let fired = node.failpoint.and_then(|armed| {
            io.sends
                .iter()
                .position(|(_, msg)| failpoints::step_of_send(msg) == Some(armed))
        });
        if let Some(at) = fired {
            // The process dies as that message is about to leave: the sends before it left.
            io.sends.truncate(at);
            io.replies.clear();
        }
        let dies = std::mem::take(&mut node.dies_next_burst);
        if dies {
            node.disk.disarm();
        }
        let aimed = node.power_cut_after.is_some_and(|what| match what {
            AfterSend::Vote => io.sends.iter().any(|(_, msg)| msg.is_vote()),
            AfterSend::Reply => io
                .replies
                .iter()
                .any(|(_, r)| matches!(r, ClientResponse::Reply { .. })),
        });

        if let Err(e) = result {
            // The disk failed or the process died inside a storage call: the process stops,
            // as `replica run` does. What it sent before the failure has left.
            tracing::info!(node = %id, "stopped: {e}");
            self.stats.storage_stops += 1;
            self.crash(id);
        }
        self.route(id, io);
        if dies || fired.is_some() {
            self.crash(id);
        } else if aimed {
            self.power_cut(id);
        }
    }

    /// Delivers what a burst sent, answered and executed.
    fn route(&mut self, id: NodeId, io: BurstIo) {
        for entry in io.executed {
            self.record_executed(id, entry);
        }
        for (to, msg) in io.sends {
            self.send(id, to, msg);
        }
        for (token, response) in io.replies {
            self.client_reply(id, token, response);
        }
    }

    fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        self.nodes.get_mut(&id).expect("known node")
    }

    /// Keeps what `id` reported executing: the world's first report of each exec index (a
    /// copy), and the node's own (the entry itself, not cloned again).
    fn record_executed(&mut self, id: NodeId, executed: Executed) {
        let now = self.now_ms;
        let shard = self.shard_of(id);
        let at = executed.exec_index;
        let log = self.executed.entry(shard).or_default();
        match log.get(at) {
            Some(first) if *first != executed => self.violations.push(format!(
                "t={now} {id} executed #{} as {executed:?}, but it was {first:?}",
                executed.exec_index
            )),
            Some(_) => {}
            None => log.insert(at, executed.clone()),
        }
        let node = self.node_mut(id);
        match node.executed.get(executed.exec_index) {
            Some(mine) if *mine != executed => {
                let message = format!(
                    "t={now} {id} re-executed #{} as {executed:?}, but it had executed {mine:?}",
                    executed.exec_index
                );
                self.violations.push(message);
            }
            _ => {
                node.executed.insert(executed.exec_index, executed);
            }
        }
    }

    fn client_reply(&mut self, node: NodeId, token: ReplyToken, response: ClientResponse) {
        let Some(command) = self.submitted.get(&token).cloned() else {
            self.violations
                .push(format!("{node} answered unknown token {token}"));
            return;
        };
        if !self.answered.insert(token) {
            self.violations
                .push(format!("{node} answered token {token} twice"));
        }
        self.replies.push(SeenReply {
            at_ms: self.now_ms,
            node,
            token,
            command,
            response,
        });
    }

    // ----- checks -----

    /// Every command executed anywhere so far, in exec-index order (shard by shard).
    pub fn executed_log(&self) -> Vec<Executed> {
        self.all_executed().cloned().collect()
    }

    /// Every command executed anywhere, shard by shard, in exec-index order.
    fn all_executed(&self) -> impl Iterator<Item = &Executed> {
        self.executed.values().flat_map(ByExecIndex::values)
    }

    /// What `shard` executed at `at`, as first reported.
    fn executed_at(&self, shard: ShardId, at: ExecIndex) -> Option<&Executed> {
        self.executed.get(&shard).and_then(|log| log.get(at))
    }

    /// Every command `shard` executed, as any of its nodes first reported it, in exec-index
    /// order (a node that installed a checkpoint skipped some; the union has them all).
    pub fn shard_log(&self, shard: ShardId) -> impl Iterator<Item = &Executed> {
        self.executed
            .get(&shard)
            .into_iter()
            .flat_map(ByExecIndex::values)
    }

    fn sharded(&self) -> bool {
        self.opts.shards.as_ref().is_some_and(|m| m.count() > 1)
    }

    /// No two replicas ever executed different commands (or results) at the same exec index,
    /// no disk saw acknowledged data cut, every live replica conserves money without
    /// overdrafts, has executed everything it knows committed, and holds no log entry beyond
    /// its window.
    pub fn check_safety(&self) -> Result<(), String> {
        let disk_violations = self.nodes.values().flat_map(|n| n.disk.violations());
        let all: Vec<String> = self
            .violations
            .iter()
            .cloned()
            .chain(disk_violations)
            .collect();
        if let Some(first) = all.first() {
            return Err(format!("{} violations, first: {first}", all.len()));
        }
        let config = &self.opts.config;
        let total = config.initial_balance * config.accounts.len() as Amount;
        for (id, node) in &self.nodes {
            let Some(core) = node.core() else { continue };
            let (_, balances) = core.balances();
            let sum: Amount = balances.values().sum();
            // A shard's sum moves with cross-shard transfers; the bank's total is
            // `check_settled`'s, once every transaction has finished.
            if sum != total && !self.sharded() {
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
        for shard in self.shards() {
            let mine = self
                .executed
                .get(&shard)
                .into_iter()
                .flat_map(ByExecIndex::iter);
            let mut expected = 1..;
            if !mine.map(|(e, _)| e).all(|e| Some(e) == expected.next()) {
                return Err(format!("shard {shard}'s executed order has a gap"));
            }
        }
        Ok(())
    }

    /// For a sharded bank whose clients have stopped and whose network is whole: every
    /// transaction finished (no lock held, nothing in flight on any live node) and the shards
    /// together hold the bank's total. `Err` says what is left or wrong.
    pub fn check_settled(&self) -> Result<(), String> {
        let config = &self.opts.config;
        let total = config.initial_balance * config.accounts.len() as Amount;
        let mut sum = 0;
        for shard in self.shards() {
            let live: Vec<&Core> = self
                .members(shard)
                .iter()
                .filter_map(|&n| self.core(n))
                .collect();
            let Some(first) = live.first() else {
                return Err(format!("shard {shard} has no live node"));
            };
            sum += first.balances().1.values().sum::<Amount>();
            for core in &live {
                let bank = core.bank();
                if !bank.locks().is_empty() || bank.txns_in_flight() > 0 {
                    return Err(format!(
                        "{}: {} transactions in flight, locks {:?}",
                        core.status().node,
                        bank.txns_in_flight(),
                        bank.locks()
                    ));
                }
            }
        }
        if sum != total {
            return Err(format!("the shards hold {sum} in all, not {total}"));
        }
        Ok(())
    }

    /// Replays the agreed order through a fresh bank: every entry must execute (not be a
    /// duplicate) with the recorded exec index and result; and every `Reply` a client received
    /// must be the entry at its exec index, for its own request, with the same result.
    ///
    /// A sharded bank's logs hold two-phase commit steps that a fresh bank cannot replay, so
    /// there only the second half holds: every reply is its shard's entry at its exec index.
    pub fn check_replies(&self) -> Result<(), String> {
        let config = &self.opts.config;
        let mut bank = Bank::new(&config.accounts, config.initial_balance);
        let replayed = self.all_executed().filter(|_| !self.sharded());
        for entry in replayed {
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
            // A snapshot's answer is every shard's part: each at its own position there.
            let parts: Vec<(ShardId, ExecIndex, OpResult)> = match &reply.result {
                OpResult::Snapshot {
                    balances,
                    positions,
                } => {
                    self.check_snapshot_total(seen, balances)?;
                    positions
                        .iter()
                        .map(|(&shard, &at)| (shard, at, self.part_of(shard, balances)))
                        .collect()
                }
                result => vec![(self.shard_of(seen.node), reply.exec_index, result.clone())],
            };
            for (shard, at, result) in parts {
                let Some(entry) = self.executed_at(shard, at) else {
                    return Err(format!("{seen:?}: shard {shard} executed nothing at #{at}"));
                };
                let same_request = entry.command.client == seen.command.client
                    && entry.command.request == seen.command.request;
                // An aborted snapshot's answer points at the part its coordinator took.
                let aborted_part = matches!(
                    (&result, &entry.result),
                    (OpResult::Aborted { .. }, OpResult::Balances { .. })
                ) && entry.command.op == Op::ReadAll;
                if !same_request || (entry.result != result && !aborted_part) {
                    return Err(format!("{seen:?} does not match the log entry {entry:?}"));
                }
            }
        }
        Ok(())
    }

    /// A snapshot holds every account of the bank, and they sum to its total.
    fn check_snapshot_total(
        &self,
        seen: &SeenReply,
        balances: &BTreeMap<Account, Amount>,
    ) -> Result<(), String> {
        let config = &self.opts.config;
        let total = config.initial_balance * config.accounts.len() as Amount;
        let sum: Amount = balances.values().sum();
        if balances.len() != config.accounts.len() || sum != total {
            return Err(format!(
                "{seen:?}: a torn snapshot (sum {sum}, not {total})"
            ));
        }
        Ok(())
    }

    /// The part of `balances` that `shard` holds, as its log records a snapshot part.
    fn part_of(&self, shard: ShardId, balances: &BTreeMap<Account, Amount>) -> OpResult {
        let map = self.opts.shards.as_ref();
        let mine = |a: &Account| map.and_then(|m| m.shard_of_account(a)) == Some(shard);
        let part = balances.iter().filter(|(a, _)| mine(a));
        OpResult::Balances {
            balances: part.map(|(a, b)| (a.clone(), *b)).collect(),
        }
    }

    /// Every live replica has executed the same number of commands and holds the same balances,
    /// and no replica is still catching up.
    /// (In a sharded bank: within each shard.)
    pub fn check_converged(&self) -> Result<(), String> {
        for shard in self.shards() {
            let cores = self.members(shard).into_iter().filter_map(|n| self.core(n));
            let mut states = cores.map(|c| {
                let status = c.status();
                (status.commit_slot, status.executed_slot, c.balances())
            });
            let Some(first) = states.next() else {
                continue;
            };
            if let Some(other) = states.find(|s| *s != first) {
                return Err(format!("replicas differ: {first:?} vs {other:?}"));
            }
        }
        Ok(())
    }

    /// The violations recorded while running (empty when all is well), the disks' included.
    pub fn violations(&self) -> Vec<String> {
        let disks = self.nodes.values().flat_map(|n| n.disk.violations());
        self.violations.iter().cloned().chain(disks).collect()
    }
}

thread_local! {
    /// The virtual time of the step this thread is running, for log lines.
    static VIRTUAL_NOW_MS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The virtual time (ms) of the world step last run on this thread, if any: what the replicas'
/// log lines under `harness sim` are stamped with instead of the wall clock.
pub fn virtual_now_ms() -> Option<u64> {
    VIRTUAL_NOW_MS.with(std::cell::Cell::get)
}
