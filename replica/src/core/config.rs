//! The core's configuration and its planted bugs.
//!
//! `CoreConfig` is a flat copy of what the protocol needs from `cluster.toml` plus the few
//! knobs the file does not carry (catch-up size, client wait), so the core never depends on how
//! the cluster file is laid out and tests can build one in a line. `Bugs` are deliberate
//! protocol errors for the harness's test-the-tester runs; each is one guarded branch in the
//! core, marked `PLANTED BUG`.

use crate::bank::{Bank, PlantedTxnBugs};
use crate::config::ClusterConfig;
use crate::shard::ShardMap;
use crate::types::{Account, Amount, NodeId, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// Default most committed entries one catch-up answer carries.
pub const DEFAULT_MAX_CATCHUP_SLOTS: u32 = 64;
/// Default time a replica keeps a client's stream waiting for its command to execute.
pub const DEFAULT_CLIENT_WAIT_TIMEOUT_MS: u64 = 1_000;
/// Default largest encoded peer message: the network's default `max_frame_bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 8 * 1024 * 1024;
/// The smallest message budget the core can work with (a part header plus one command).
pub const MIN_MAX_MESSAGE_BYTES: u64 = 1024;

/// Room left in every message for its fixed fields (ballots, slots, part numbers, lengths).
const MESSAGE_HEADROOM_BYTES: u64 = 256;

fn default_max_message_bytes() -> u64 {
    DEFAULT_MAX_MESSAGE_BYTES
}

/// Planted bugs. All false in a real run; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bugs {
    /// Execute without the reply-table check (and propose retries again): a retried transfer
    /// applies twice.
    pub no_dedup: bool,
    /// The leader commits a slot on its own vote: a value can be "committed" and then lost.
    pub early_commit: bool,
    /// A new leader ignores the values in PROMISEs: it keeps its own log and fills every other
    /// slot with a no-op, overwriting chosen values.
    pub no_view_merge: bool,
    /// Reads are answered at once from whichever replica receives them: stale reads.
    pub local_reads: bool,
    /// Transfers may overdraw an account.
    pub no_funds_check: bool,
    /// A leader ignores higher ballots in NACKs and PREPAREs and keeps answering reads locally.
    pub stale_leader: bool,
    /// A new leader of a coordinator shard aborts every transaction it finds in flight, even
    /// one decided commit, and sends the participants ABORT: money vanishes.
    #[serde(default)]
    pub recovery_aborts: bool,
    /// A participant credits `to` at its yes vote, not at the commit, and keeps it on abort.
    #[serde(default)]
    pub apply_at_prepare: bool,
    /// A participant keeps its lock when the transaction aborts: the account is locked for
    /// ever (a liveness failure).
    #[serde(default)]
    pub keep_locks_on_abort: bool,
    /// A leader's proposal budget for its ballot ([`STUCK_LEADER_SLOTS`]) is never refilled:
    /// once spent it proposes nothing more, yet keeps heartbeating, so no backup times out and
    /// the cluster stalls with every replica up (a liveness failure).
    #[serde(default)]
    pub stuck_leader: bool,
}

/// Slots a leader with the planted `stuck_leader` bug proposes in one ballot before it stalls.
pub const STUCK_LEADER_SLOTS: u64 = 100;

/// Every planted bug's name, as `--bug` takes it. `forget-promises` (its acceptor state never
/// reaches the disk) and `misread-log` (its recovery cuts its own WAL to nothing) live in the
/// shell; the others are branches of the core (or of the bank, set from here). Three are
/// two-phase commit bugs: see [`SHARDED_BUG_NAMES`].
pub const BUG_NAMES: [&str; 12] = [
    "no-dedup",
    "no-funds-check",
    "local-reads",
    "stale-leader",
    "early-commit",
    "no-view-merge",
    "forget-promises",
    "recovery-aborts",
    "apply-at-prepare",
    "keep-locks-on-abort",
    "stuck-leader",
    "misread-log",
];

/// The bugs of [`BUG_NAMES`] that only a sharded bank can show (an unsharded one never runs
/// two-phase commit): a zoo hunts them only in a sharded run.
pub const SHARDED_BUG_NAMES: [&str; 3] =
    ["recovery-aborts", "apply-at-prepare", "keep-locks-on-abort"];

/// Whether planted bugs exist in this build. Without the `bugs` feature every accessor below
/// is a constant `false`, so the bug branches are compiled out of the shipped replica.
const PLANTABLE: bool = cfg!(feature = "bugs");

impl Bugs {
    pub fn no_dedup(&self) -> bool {
        PLANTABLE && self.no_dedup
    }

    pub fn early_commit(&self) -> bool {
        PLANTABLE && self.early_commit
    }

    pub fn no_view_merge(&self) -> bool {
        PLANTABLE && self.no_view_merge
    }

    pub fn local_reads(&self) -> bool {
        PLANTABLE && self.local_reads
    }

    pub fn no_funds_check(&self) -> bool {
        PLANTABLE && self.no_funds_check
    }

    pub fn stale_leader(&self) -> bool {
        PLANTABLE && self.stale_leader
    }

    pub fn recovery_aborts(&self) -> bool {
        PLANTABLE && self.recovery_aborts
    }

    pub fn stuck_leader(&self) -> bool {
        PLANTABLE && self.stuck_leader
    }

    /// Sets the bank's own planted bugs (they are not part of its checkpoints).
    pub fn plant_in(&self, bank: &mut Bank) {
        bank.set_allow_overdraft(self.no_funds_check());
        bank.set_planted_txn_bugs(PlantedTxnBugs {
            apply_at_prepare: PLANTABLE && self.apply_at_prepare,
            keep_locks_on_abort: PLANTABLE && self.keep_locks_on_abort,
        });
    }

    /// Switches on the core bug called `name`; false if the core has no bug of that name
    /// (`forget-promises` and `misread-log` included: they are the shell's).
    pub fn plant(&mut self, name: &str) -> bool {
        let flag = match name {
            "no-dedup" => &mut self.no_dedup,
            "early-commit" => &mut self.early_commit,
            "no-view-merge" => &mut self.no_view_merge,
            "local-reads" => &mut self.local_reads,
            "no-funds-check" => &mut self.no_funds_check,
            "stale-leader" => &mut self.stale_leader,
            "recovery-aborts" => &mut self.recovery_aborts,
            "apply-at-prepare" => &mut self.apply_at_prepare,
            "keep-locks-on-abort" => &mut self.keep_locks_on_abort,
            "stuck-leader" => &mut self.stuck_leader,
            _ => return false,
        };
        *flag = true;
        true
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreConfigError {
    #[error("node {me} is not one of the cluster's nodes")]
    NotAMember { me: crate::types::NodeId },
    #[error("the node list is empty or names a node twice")]
    BadNodes,
    #[error("accounts must be non-empty and distinct")]
    BadAccounts,
    #[error("initial balance {0} is negative")]
    NegativeBalance(Amount),
    #[error("need 0 < heartbeat interval < election timeout min <= max")]
    BadTiming,
    #[error("limit {0} must be positive")]
    ZeroLimit(&'static str),
    #[error("max_message_bytes {0} is below the minimum of {MIN_MAX_MESSAGE_BYTES}")]
    TinyMessages(u64),
}

/// Everything the protocol core needs to know. See the crate's `cluster.toml` for the meaning of
/// the shared fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreConfig {
    pub me: NodeId,
    pub nodes: Vec<NodeId>,
    pub accounts: Vec<Account>,
    pub initial_balance: Amount,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    pub checkpoint_interval_slots: u64,
    pub max_batch_commands: u32,
    pub max_inflight_slots: u32,
    pub max_pending_commands: u32,
    pub max_catchup_slots: u32,
    pub client_wait_timeout_ms: u64,
    pub bugs: Bugs,
    /// Largest encoded peer message the network carries (its `max_frame_bytes`). Every message
    /// the core sends fits: long PROMISEs, catch-ups, views and snapshots go in parts.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// This group's place in a sharded bank; `None` for the classic unsharded cluster.
    #[serde(default)]
    pub sharding: Option<Sharding>,
}

/// What a shard's core knows of the other shards (`nodes` and `accounts` are its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharding {
    pub shard: ShardId,
    /// The members of every other shard.
    pub others: BTreeMap<ShardId, Vec<NodeId>>,
    /// Every other shard's accounts, with their shard.
    pub remote: BTreeMap<Account, ShardId>,
    /// A coordinator leader aborts a transaction whose vote has not come within this.
    pub vote_timeout_ms: u64,
    /// How often a leader resends its unfinished two-phase commit work.
    pub resend_interval_ms: u64,
    /// Most transactions in flight in this shard (see `bank::TxnLimits`).
    pub max_inflight_txns: u32,
    /// What a command or PREPARE that meets a lock does (see `core::locks`). The leader's
    /// own choice: the replicated state is the same under every policy.
    #[serde(default)]
    pub lock_policy: LockPolicy,
    /// Under [`LockPolicy::WaitDie`], the longest a command or PREPARE waits for a lock
    /// before it is proposed all the same (and fails `lock-conflict` if still locked).
    #[serde(default = "default_lock_wait_ms")]
    pub lock_wait_ms: u64,
}

/// What a transfer or read that meets an account locked by a cross-shard transaction does
/// (`replica run --lock-policy`, recorded in the harness's run.toml).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LockPolicy {
    /// Fail at once with `lock-conflict` (a participant votes no). The default: in the
    /// closed-loop benchmark it moves as much money as wait-die or more (README figures),
    /// because a participant's wait holds the coordinator's lock longer, and under contention
    /// those longer holds cost more than the waits save.
    #[default]
    NoWait,
    /// Wait up to `lock_wait_ms` for the lock. A command that holds no lock always may; a
    /// participant's PREPARE (its transaction holds the debited account) waits only for
    /// younger holders and dies (votes no) at once for an older one, so waits never form a
    /// cycle.
    WaitDie,
}

impl LockPolicy {
    /// The name on the command line and in run.toml.
    pub fn name(self) -> &'static str {
        match self {
            LockPolicy::NoWait => "no-wait",
            LockPolicy::WaitDie => "wait-die",
        }
    }
}

/// Default longest lock wait: below a client attempt's 500 ms and the 1 s vote timeout.
pub const DEFAULT_LOCK_WAIT_MS: u64 = 250;

fn default_lock_wait_ms() -> u64 {
    DEFAULT_LOCK_WAIT_MS
}

/// Default time a coordinator waits for a vote before aborting.
pub const DEFAULT_VOTE_TIMEOUT_MS: u64 = 1_000;
/// Default period of a leader's resending of unfinished two-phase commit work.
pub const DEFAULT_TXN_RESEND_MS: u64 = 100;

impl CoreConfig {
    /// The core's view of a cluster file, for node `me`. Bugs are off; the shell sets them.
    /// For a sharded cluster the core's nodes and accounts are those of `me`'s shard.
    pub fn from_cluster(cfg: &ClusterConfig, me: NodeId) -> CoreConfig {
        let classic = CoreConfig {
            me,
            nodes: cfg.node_ids(),
            accounts: cfg.accounts.clone(),
            sharding: None,
            initial_balance: cfg.initial_balance,
            heartbeat_interval_ms: cfg.timing.heartbeat_interval_ms,
            election_timeout_ms_min: cfg.timing.election_timeout_ms_min,
            election_timeout_ms_max: cfg.timing.election_timeout_ms_max,
            checkpoint_interval_slots: cfg.limits.checkpoint_interval_slots,
            max_batch_commands: cfg.limits.max_batch_commands,
            max_inflight_slots: cfg.limits.max_inflight_slots,
            max_pending_commands: cfg.limits.max_pending_commands,
            max_catchup_slots: DEFAULT_MAX_CATCHUP_SLOTS,
            client_wait_timeout_ms: DEFAULT_CLIENT_WAIT_TIMEOUT_MS,
            bugs: Bugs::default(),
            max_message_bytes: u64::from(cfg.limits.max_frame_bytes),
        };
        classic.in_shard(&cfg.shard_map(), me, cfg.limits.max_inflight_txns)
    }

    /// This configuration as node `me` of a sharded cluster sees it: its shard's members and
    /// accounts, and what it must know of the other shards (their members and accounts). A
    /// one-shard map (or a node the map does not name) leaves the classic configuration.
    /// One function for the real replica and the simulator, so both build shards alike.
    pub fn in_shard(self, map: &ShardMap, me: NodeId, max_inflight_txns: u32) -> CoreConfig {
        let Some(shard) = map.shard_of_node(me).filter(|_| map.count() > 1) else {
            return CoreConfig { me, ..self };
        };
        let sharding = Sharding {
            shard,
            others: (1..=map.count() as u32)
                .map(ShardId)
                .filter(|s| *s != shard)
                .map(|s| (s, map.members(s).to_vec()))
                .collect(),
            remote: map.remote_accounts(shard),
            vote_timeout_ms: DEFAULT_VOTE_TIMEOUT_MS,
            resend_interval_ms: DEFAULT_TXN_RESEND_MS,
            max_inflight_txns,
            lock_policy: LockPolicy::default(),
            lock_wait_ms: DEFAULT_LOCK_WAIT_MS,
        };
        CoreConfig {
            me,
            nodes: map.members(shard).to_vec(),
            accounts: map.accounts_of(shard),
            sharding: Some(sharding),
            ..self
        }
    }

    /// The bank this core starts from: its accounts, and for a shard the others' accounts.
    pub fn new_bank(&self) -> Bank {
        match &self.sharding {
            None => Bank::new(&self.accounts, self.initial_balance),
            Some(s) => Bank::new_shard(
                s.shard,
                &self.accounts,
                s.remote.clone(),
                self.initial_balance,
            )
            .with_txn_limits(crate::bank::TxnLimits {
                max_inflight: s.max_inflight_txns as usize,
                ..Default::default()
            }),
        }
    }

    /// The members of another shard (empty for this one or an unknown one).
    pub fn shard_members(&self, shard: ShardId) -> &[NodeId] {
        let others = self.sharding.as_ref().and_then(|s| s.others.get(&shard));
        others.map_or(&[], Vec::as_slice)
    }

    /// The shard `node` is a member of, if it belongs to another shard.
    pub fn shard_of_peer(&self, node: NodeId) -> Option<ShardId> {
        let others = &self.sharding.as_ref()?.others;
        let mut found = others.iter().filter(|(_, m)| m.contains(&node));
        found.next().map(|(s, _)| *s)
    }

    /// A small cluster for tests: nodes `n1..=n<count>`, accounts A–E at 10, the default timing
    /// (heartbeat 30 ms, election 150–300 ms) and small limits.
    pub fn for_test(me: u32, count: u32) -> CoreConfig {
        CoreConfig {
            me: NodeId(me),
            nodes: (1..=count).map(NodeId).collect(),
            accounts: ["A", "B", "C", "D", "E"]
                .iter()
                .map(|&a| a.into())
                .collect(),
            initial_balance: 10,
            heartbeat_interval_ms: 30,
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            checkpoint_interval_slots: 10,
            max_batch_commands: 8,
            max_inflight_slots: 8,
            max_pending_commands: 64,
            max_catchup_slots: 16,
            client_wait_timeout_ms: 1_000,
            bugs: Bugs::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            sharding: None,
        }
    }

    /// Checks the preconditions `Core::new` asserts.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        let nodes: BTreeSet<NodeId> = self.nodes.iter().copied().collect();
        if nodes.is_empty() || nodes.len() != self.nodes.len() {
            return Err(CoreConfigError::BadNodes);
        }
        if !nodes.contains(&self.me) {
            return Err(CoreConfigError::NotAMember { me: self.me });
        }
        let accounts: BTreeSet<&Account> = self.accounts.iter().collect();
        if accounts.is_empty() || accounts.len() != self.accounts.len() {
            return Err(CoreConfigError::BadAccounts);
        }
        if self.initial_balance < 0 {
            return Err(CoreConfigError::NegativeBalance(self.initial_balance));
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_ms_min
            || self.election_timeout_ms_min > self.election_timeout_ms_max
        {
            return Err(CoreConfigError::BadTiming);
        }
        let limits = [
            ("checkpoint_interval_slots", self.checkpoint_interval_slots),
            ("max_batch_commands", self.max_batch_commands.into()),
            ("max_inflight_slots", self.max_inflight_slots.into()),
            ("max_pending_commands", self.max_pending_commands.into()),
            ("max_catchup_slots", self.max_catchup_slots.into()),
            ("client_wait_timeout_ms", self.client_wait_timeout_ms),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(CoreConfigError::ZeroLimit(name));
        }
        if self.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            return Err(CoreConfigError::TinyMessages(self.max_message_bytes));
        }
        Ok(())
    }

    /// How many bytes of payload (entries, checkpoint bytes, commands) one message may carry:
    /// the message budget less room for the fixed fields around them.
    pub fn payload_budget(&self) -> usize {
        let budget = self
            .max_message_bytes
            .saturating_sub(MESSAGE_HEADROOM_BYTES);
        usize::try_from(budget).unwrap_or(usize::MAX)
    }

    /// Size of a majority: f + 1.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// How far above its executed slot a replica keeps log entries (as acceptor, as leader, and
    /// through catch-up). Anything beyond is dropped: a replica that far behind catches up
    /// first. Wide enough for a full pipeline, a checkpoint interval and a catch-up answer, with
    /// slack for a view change.
    pub fn window(&self) -> u64 {
        self.checkpoint_interval_slots
            + 2 * u64::from(self.max_inflight_slots)
            + u64::from(self.max_catchup_slots)
    }

    /// The most entries a log holds above its checkpoint: entries are kept up to `window` above
    /// the executed slot, which is less than a checkpoint interval above the checkpoint. It is
    /// also how far above a new leader's merge base a promiser's entry can be (a promiser's
    /// checkpoint is at most that base). The view merge relies on this: a legitimate promise
    /// never exceeds it, so a longer one is malformed and dropped whole, never cut.
    pub fn max_log_span(&self) -> u64 {
        self.window() + self.checkpoint_interval_slots
    }

    /// Every node but this one.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().copied().filter(move |n| *n != self.me)
    }

    pub fn is_member(&self, node: NodeId) -> bool {
        self.nodes.contains(&node)
    }
}
