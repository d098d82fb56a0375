//! The fault vocabulary of both worlds, and the schedule: which fault starts when, generated
//! from the run's seed alone.
//!
//! One vocabulary, two interpreters (Jepsen's shape: the fault packages of
//! `nemesis/combined.clj`, played by one interpreter over time). Every fault a run can suffer
//! is a [`Fault`] of a [`FaultFamily`], drawn here by one [`rhythm`] with named odds; the one
//! nemesis ([`crate::faults::nemesis`]) carries it out against any [`FaultWorld`]: the process
//! cluster of `harness run` or the simulated world of `harness sim`. A few families exist in
//! one world only ([`FaultFamily::world`]): power cuts, clock jumps and disk faults need the
//! simulator's disks and clocks; `isolate-follower` needs real replicas' local reads.
//! `--nemesis` and `--faults` refuse a family of the other world by name. `crash-coordinator`
//! (both worlds since schedule version 5) needs a sharded bank.
//!
//! Why a schedule up front instead of deciding as we go: `harness replay` must inject the same
//! faults at the same moments, so everything random (fault kind, victims, partition shapes) is
//! drawn here, from a ChaCha stream of the seed, before the run starts. Only "the leader" is left
//! symbolic, because who leads is the system's business; the nemesis resolves it when it acts
//! and records the node it hit in the history.
//!
//! The schedule alternates: a fault at `interval`, its heal at `2 × interval`, the next fault at
//! `3 × interval`, and so on until the run's time is up. One fault at a time keeps the history
//! readable and every fault's effect attributable.
//!
//! A sharded bank gets its own draw ([`generate_sharded`]): kills, power cuts and pauses hit
//! shard leaders (every shard's at once, or one shard's) or a minority of one shard,
//! partitions cut every link between two shards (two-phase commit's messages), isolate one
//! shard's leader, or split one shard, `crash-coordinator` arms a drawn failpoint on a drawn
//! shard's leader, and clock jumps and disk faults hit one replica.
//!
//! [`SCHEDULE_VERSION`] names this way of drawing and recording faults; run.toml carries it,
//! so a saved run drawn another way is refused by replay instead of "not reproduced".
//!
//! [`FaultWorld`]: crate::faults::nemesis::FaultWorld

use crate::os::relay::{Link, Peer};
use crate::rng;
use rand::seq::SliceRandom;
use rand::Rng;
use replica::failpoints::Failpoint;
use replica::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// How faults are drawn and recorded: 2 since one vocabulary serves both worlds (the
/// simulator's schedules and target names changed with it); 3 since faults are aimed (crashes
/// inside a burst, power cuts after a vote or a reply, election and lease-aimed faults) and
/// each simulated seed draws its own subset of families and workload shape (swarm testing);
/// 4 since simulated families are drawn by weight ([`FaultFamily::weight`]), election
/// faults may first let a minority lag ([`Strike::LagThenDepose`]), and a simulated seed
/// draws longer faults on a sharded bank, fewer accounts and a think time; 5 since real runs
/// draw as simulated ones do (weighted families and lag-then-depose elections, so that a
/// lagging replica may lead right after a heal in real runs too), and a lag-then-depose
/// fault lags followers only (a drawn minority that holds the leader when the fault starts
/// lags a follower in its place); 6 since an election fault more often lets a minority lag
/// (weighted odds: elections weigh 4, and 60% of them lag), and a lag either ends in an
/// election only a lagger can win ([`Strike::LagThenElect`]) or strands the leader with
/// the minority ([`Strike::StrandLeader`]), the lag held to half the fault's interval.
/// run.toml records it (a real run under `[params]`, where its absence means a real run drawn
/// before version 5: even odds, replayed so; a version-5 run is drawn again as version 5
/// drew, [`FamilyOdds::WeightedV5`]).
pub const SCHEDULE_VERSION: u32 = 6;

/// The last schedule version whose real runs drew their families alike and never drew
/// lag-then-depose: what a real run.toml without `schedule_version` was drawn by.
pub const LAST_EVEN_REAL_VERSION: u32 = 4;

/// A family of faults, as `--nemesis` (real runs) and `--faults` (simulated runs) name it.
/// Variants are in draw order: append new ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultFamily {
    Kill,
    Pause,
    Partition,
    /// One follower cut off from the other nodes while its clients stay on it: the window in
    /// which a node serves stale local reads, if it does (etcd's serializable reads do).
    #[serde(rename = "isolate-follower")]
    IsolateFollower,
    /// A shard's leader crashed at a named step of two-phase commit by an armed failpoint
    /// (sharded banks only: real runs on `replica-bugs`, see [`crate::faults::failpoints`];
    /// the simulator, since schedule version 5, at the same steps, see `sim::Sim::arm_failpoint`).
    #[serde(rename = "crash-coordinator")]
    CrashCoordinator,
    /// Power cuts: the node crashes and loses (or tears) what it had not fsynced.
    Power,
    /// One node's clock jumps forward.
    Clock,
    /// A failing fsync, a flipped bit of synced data, or a WAL cut short.
    Disk,
    /// A crash inside the node's next burst: in the middle of a storage call (a write lands
    /// as a prefix) or just after it, before the burst's later sends.
    #[serde(rename = "crash-burst")]
    CrashBurst,
    /// A power cut aimed just after the node sent a vote (PROMISE, ACCEPTED) or answered a
    /// client: where a missing fsync becomes a lost promise.
    #[serde(rename = "power-after-send")]
    PowerAfterSend,
    /// Leader-directed: depose the leader, then kill or isolate the new one just after it is
    /// elected, or cut the cluster in two while the election runs.
    Election,
}

/// Where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Real replica processes (or etcd) on this machine: `harness run`, campaigns, scenarios.
    Processes,
    /// The simulated world of `harness sim`.
    Simulator,
}

impl World {
    /// What `all` means: every family this world can inject (`crash-coordinator` is asked for
    /// by `--shards`: see `run::resolve_sharded_faults`, and [`World::sharded_families`]).
    pub fn all_families(self) -> &'static [FaultFamily] {
        use FaultFamily::*;
        match self {
            World::Processes => &[Kill, Pause, Partition, IsolateFollower, Election],
            World::Simulator => &[
                Kill,
                Pause,
                Partition,
                Power,
                Clock,
                Disk,
                CrashBurst,
                PowerAfterSend,
                Election,
            ],
        }
    }

    /// A sharded bank's default families: [`World::all_families`] and `crash-coordinator`
    /// (last, so that a sharded seed draws its other families as a classic one does).
    pub fn sharded_families(self) -> Vec<FaultFamily> {
        let mut families = self.all_families().to_vec();
        families.push(FaultFamily::CrashCoordinator);
        families
    }

    fn flag(self) -> &'static str {
        match self {
            World::Processes => "harness run --nemesis",
            World::Simulator => "harness sim --faults",
        }
    }
}

impl FaultFamily {
    pub const ALL: [FaultFamily; 11] = [
        FaultFamily::Kill,
        FaultFamily::Pause,
        FaultFamily::Partition,
        FaultFamily::IsolateFollower,
        FaultFamily::CrashCoordinator,
        FaultFamily::Power,
        FaultFamily::Clock,
        FaultFamily::Disk,
        FaultFamily::CrashBurst,
        FaultFamily::PowerAfterSend,
        FaultFamily::Election,
    ];

    /// The family's name, as the flags and run.toml spell it.
    pub fn name(self) -> &'static str {
        match self {
            FaultFamily::Kill => "kill",
            FaultFamily::Pause => "pause",
            FaultFamily::Partition => "partition",
            FaultFamily::IsolateFollower => "isolate-follower",
            FaultFamily::CrashCoordinator => "crash-coordinator",
            FaultFamily::Power => "power",
            FaultFamily::Clock => "clock",
            FaultFamily::Disk => "disk",
            FaultFamily::CrashBurst => "crash-burst",
            FaultFamily::PowerAfterSend => "power-after-send",
            FaultFamily::Election => "election",
        }
    }

    /// The one world this family exists in, if it is not both: power cuts, clock jumps and
    /// disk faults need the simulator's disks and clocks (sim-only); so do `crash-burst` (a
    /// real SIGKILL lands wherever the process happens to be, but only the simulated disk can
    /// stop it inside a given storage call) and `power-after-send` (a real kill keeps the page
    /// cache, so nothing unsynced is lost, and the harness cannot see a real replica's sends
    /// to aim at). `isolate-follower` needs a replica that may serve local reads (processes
    /// only). `election` exists in both, and so does `crash-coordinator` since schedule
    /// version 5 (a real replica's failpoints; the simulator stops a node at the same steps).
    pub fn world(self) -> Option<World> {
        match self {
            FaultFamily::Power
            | FaultFamily::Clock
            | FaultFamily::Disk
            | FaultFamily::CrashBurst
            | FaultFamily::PowerAfterSend => Some(World::Simulator),
            FaultFamily::IsolateFollower => Some(World::Processes),
            FaultFamily::Kill
            | FaultFamily::Pause
            | FaultFamily::Partition
            | FaultFamily::Election
            | FaultFamily::CrashCoordinator => None,
        }
    }

    /// How often the schedule draws this family against the others it holds (schedule
    /// version 4). Crashes, partitions and leader changes are what makes a replica recover,
    /// merge a view, catch up and finish or abort a transaction, so they weigh most; faults
    /// that only perturb (a pause, a clock jump, a disk fault) weigh least, so that a run
    /// holding every family still spends most of its faults where bugs hide.
    pub fn weight(self) -> u32 {
        match self {
            FaultFamily::Kill | FaultFamily::Partition | FaultFamily::Election => 3,
            FaultFamily::Power
            | FaultFamily::PowerAfterSend
            | FaultFamily::CrashBurst
            | FaultFamily::CrashCoordinator => 2,
            FaultFamily::Pause
            | FaultFamily::IsolateFollower
            | FaultFamily::Clock
            | FaultFamily::Disk => 1,
        }
    }

    /// [`FaultFamily::weight`] since schedule version 6: leader changes weigh 4, more than
    /// anything else, since they alone make a lagging replica lead (a view merge) and strand
    /// a leader with a minority, and a real run's other families rarely change leaders past
    /// pre-vote and stickiness; a coordinator crashed inside two-phase commit weighs 3, as a
    /// kill does, since only it stops a transaction at a given step for its shard's next
    /// leader to recover.
    pub fn weight_v6(self) -> u32 {
        match self {
            FaultFamily::Election => 4,
            FaultFamily::CrashCoordinator => 3,
            other => other.weight(),
        }
    }

    /// Whether only the simulator can inject this family.
    pub fn sim_only(self) -> bool {
        self.world() == Some(World::Simulator)
    }
}

impl fmt::Display for FaultFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultFamily {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        FaultFamily::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultFamily::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown fault {s:?}: expected {}, all or none",
                    names.join(", ")
                )
            })
    }
}

/// Parses `--nemesis` / `--faults` (`kill,pause,partition`, `all` or `none`) for `world` into
/// a sorted, distinct list; a family of the other world is refused by name.
pub fn parse_families(s: &str, world: World) -> Result<Vec<FaultFamily>, String> {
    let set: BTreeSet<FaultFamily> = match s.trim() {
        "" | "none" => BTreeSet::new(),
        "all" => world.all_families().iter().copied().collect(),
        list => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
    };
    if let Some(other) = set.iter().find(|f| f.world().is_some_and(|w| w != world)) {
        let only = match other.world() {
            Some(World::Simulator) => "simulator-only",
            _ => "real-process-only",
        };
        let takes: Vec<&str> = FaultFamily::ALL
            .into_iter()
            .filter(|f| f.world().is_none_or(|w| w == world))
            .map(FaultFamily::name)
            .collect();
        return Err(format!(
            "{other} is a {only} fault: {} takes {}, all or none",
            world.flag(),
            takes.join(", ")
        ));
    }
    Ok(set.into_iter().collect())
}

/// How a schedule draws among its families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyOdds {
    /// Each family alike, and no lag-then-depose: real runs drawn before schedule version 5
    /// (so that their replays inject what they injected).
    Even,
    /// By [`FaultFamily::weight`], with lag-then-depose elections: real runs of schedule
    /// version 5 (so that their replays inject what they injected).
    WeightedV5,
    /// By [`FaultFamily::weight_v6`], with the lag strikes of version 6: every simulated run,
    /// and real runs since version 6.
    Weighted,
}

impl FamilyOdds {
    /// How a real run drawn by schedule `version` draws.
    pub fn for_real_version(version: u32) -> FamilyOdds {
        if version <= LAST_EVEN_REAL_VERSION {
            FamilyOdds::Even
        } else if version == 5 {
            FamilyOdds::WeightedV5
        } else {
            FamilyOdds::Weighted
        }
    }

    /// How often a family is drawn against the others.
    fn weight(self, family: FaultFamily) -> u32 {
        match self {
            FamilyOdds::Even => 1,
            FamilyOdds::WeightedV5 => family.weight(),
            FamilyOdds::Weighted => family.weight_v6(),
        }
    }
}

/// Which replicas a kill, power cut or pause hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Victims {
    /// Whoever leads when the fault starts.
    Leader,
    /// These replicas, drawn from the seed (one, or a minority).
    Nodes(Vec<NodeId>),
    /// The leader of every shard of a sharded bank, each as it leads when the fault starts.
    ShardLeaders,
    /// The leader of this shard when the fault starts.
    ShardLeader(u32),
}

/// The shape of a network partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partition {
    /// Two sides that cannot talk: a minority and the rest.
    Halves { minority: Vec<NodeId> },
    /// The current leader alone on one side.
    IsolateLeader,
    /// The lowest-numbered follower (when the fault starts) alone on one side.
    IsolateFollower,
    /// Two sides joined only through one bridge replica that talks to both.
    Bridge {
        left: Vec<NodeId>,
        bridge: NodeId,
        right: Vec<NodeId>,
    },
    /// Replicas on a ring, each talking only to its nearest neighbours: every replica sees a
    /// majority, but no two see the same one.
    MajoritiesRing { ring: Vec<NodeId> },
    /// One replica can receive but not send to the others (`mute`), or send but not receive.
    OneWay { node: NodeId, mute: bool },
    /// Every link between the replicas of shards `a` and `b`, both ways: each shard keeps its
    /// quorum, but two-phase commit between them stops until the heal.
    BetweenShards { a: u32, b: u32 },
    /// The leader of `shard` (when the fault starts) cut off from every other replica.
    IsolateShardLeader { shard: u32 },
    /// Every link that does not touch `hub` cut: only the hub sees a majority (itself and
    /// everyone), so only it can be elected. Drawn by no schedule: the second blow of a
    /// [`Strike::LagThenElect`] election aims it at a lagger.
    Star { hub: NodeId },
}

/// A fault the nemesis starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Kill(Victims),
    Pause(Victims),
    Partition(Partition),
    /// Arm `failpoint` (a [`Failpoint`] name) on the leader of `shard` when the fault starts;
    /// the heal restarts it, crashed or not.
    CrashCoordinator {
        shard: u32,
        failpoint: String,
    },
    /// Power cut (simulator only): crash, and lose or tear what was not fsynced.
    Power(Victims),
    /// One node's clock jumps forward (simulator only).
    Clock {
        node: NodeId,
        jump_ms: u64,
    },
    /// A disk fault on one node (simulator only).
    Disk {
        node: NodeId,
        fault: DiskFault,
    },
    /// The victims crash inside their next burst (simulator only).
    CrashInBurst(Victims),
    /// The victims' power is cut just after they next send `after` (simulator only).
    PowerAfter {
        victims: Victims,
        after: Sent,
    },
    /// Leader-directed: depose the leader (of `shard`, on a sharded bank), then strike as
    /// `strike` says.
    Election {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
        strike: Strike,
    },
    /// A clock jump aimed at a lease: the leader's clock, or a follower's, jumps just past
    /// the election timeout (simulator only).
    ClockAimed {
        at: ClockAim,
        jump_ms: u64,
    },
}

/// What an aimed power cut waits for its victim to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sent {
    /// A PROMISE or an ACCEPTED.
    Vote,
    /// An answer to a client.
    Reply,
}

/// What an election fault does once the leader is deposed (killed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strike {
    /// Kill the next leader as soon as it leads.
    KillNewLeader,
    /// Cut the next leader off from every other replica as soon as it leads.
    IsolateNewLeader,
    /// `after_ms` into the election, cut `minority` off from the rest (of the whole cluster,
    /// or of the shard).
    SplitElection {
        minority: Vec<NodeId>,
        after_ms: u64,
    },
    /// The other way round (schedule version 4; real runs since 5): first cut `minority`
    /// off for `lag_ms`, so that it falls behind while the rest commit; then heal the cut
    /// and kill the leader at once. The replicas that lag take part in the election, and may
    /// win it: a view change with accepted slots that the new leader must merge and the
    /// laggers must catch up on. Since version 5 only followers lag: if the leader is among
    /// `minority` when the fault starts, the lowest-numbered follower outside it lags in its
    /// place (a lagging leader would only stall the rest, and then die).
    LagThenDepose { minority: Vec<NodeId>, lag_ms: u64 },
    /// (Schedule version 6.) As [`Strike::LagThenDepose`] until the lag's end (followers lag
    /// while the leader commits without them); then the leader is killed and, in the same
    /// instant, the lag's cut gives way to a star around the first lagger
    /// ([`Partition::Star`]) until the heal: every link not touching it is cut, so only that
    /// lagger can gather a majority, and the next leader is a replica whose log lags. Its
    /// view merge must recover from the others' promises what was accepted while it lagged.
    LagThenElect { minority: Vec<NodeId>, lag_ms: u64 },
    /// (Schedule version 6.) The leader is cut off with `minority` for `lag_ms` (if it is not
    /// among them, it takes the place of the lowest-numbered one): a leader stranded in a
    /// minority, which must not acknowledge what no majority holds, while the majority elects
    /// another. Then the cut heals and whoever leads is killed, as [`Strike::LagThenDepose`].
    StrandLeader { minority: Vec<NodeId>, lag_ms: u64 },
}

/// Whose clock a lease-aimed jump moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockAim {
    /// The leader's: it may believe its lease ran out (or not) while its followers do not.
    Leader,
    /// The lowest-numbered follower's: it may stop trusting a leader that still leads.
    Follower,
}

/// What a disk fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFault {
    /// The node's next fsync fails (EIO): it must stop, not carry on.
    FailSync,
    /// One bit of synced data flips: the node must refuse it, never silently cut it.
    BitFlip,
    /// The node's WAL loses its end (lost synced writes, or cut at or between record
    /// boundaries): the node must refuse to start, never replay the shorter log.
    CutShort,
}

impl DiskFault {
    /// The nemesis event's `f`.
    pub fn name(self) -> &'static str {
        match self {
            DiskFault::FailSync => "fsync-fail",
            DiskFault::BitFlip => "bit-flip",
            DiskFault::CutShort => "cut-short",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = |ns: &[NodeId]| {
            ns.iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let target = |t: &Victims| match t {
            Victims::Leader => "leader".to_string(),
            Victims::Nodes(ns) => nodes(ns),
            Victims::ShardLeaders => "every shard's leader".to_string(),
            Victims::ShardLeader(s) => format!("shard {s}'s leader"),
        };
        match self {
            Fault::Kill(t) => write!(f, "kill {}", target(t)),
            Fault::Power(t) => write!(f, "power cut {}", target(t)),
            Fault::Clock { node, jump_ms } => write!(f, "clock jump {node} +{jump_ms}ms"),
            Fault::Disk { node, fault } => write!(f, "{} {node}", fault.name()),
            Fault::Pause(t) => write!(f, "pause {}", target(t)),
            Fault::Partition(Partition::Halves { minority }) => {
                write!(f, "partition halves (minority {})", nodes(minority))
            }
            Fault::Partition(Partition::IsolateLeader) => write!(f, "partition isolate leader"),
            Fault::Partition(Partition::IsolateFollower) => {
                write!(f, "partition isolate a follower")
            }
            Fault::Partition(Partition::Bridge { bridge, .. }) => {
                write!(f, "partition bridge via {bridge}")
            }
            Fault::Partition(Partition::MajoritiesRing { .. }) => {
                write!(f, "partition majorities ring")
            }
            Fault::Partition(Partition::OneWay { node, mute }) => {
                let dir = if *mute { "cannot send" } else { "cannot hear" };
                write!(f, "partition one-way ({node} {dir})")
            }
            Fault::Partition(Partition::BetweenShards { a, b }) => {
                write!(f, "partition shards {a} and {b}")
            }
            Fault::Partition(Partition::IsolateShardLeader { shard }) => {
                write!(f, "partition isolate shard {shard}'s leader")
            }
            Fault::Partition(Partition::Star { hub }) => {
                write!(f, "partition star around {hub}")
            }
            Fault::CrashCoordinator { shard, failpoint } => {
                write!(f, "crash shard {shard}'s leader at {failpoint}")
            }
            Fault::CrashInBurst(t) => write!(f, "crash {} inside its next burst", target(t)),
            Fault::PowerAfter { victims, after } => {
                let what = match after {
                    Sent::Vote => "a vote",
                    Sent::Reply => "a reply",
                };
                write!(f, "power cut {} just after {what}", target(victims))
            }
            Fault::Election { shard, strike } => {
                let whose = shard.map_or(String::new(), |s| format!("shard {s}'s "));
                match strike {
                    Strike::KillNewLeader => write!(f, "kill {whose}leader, then the new one"),
                    Strike::IsolateNewLeader => {
                        write!(f, "kill {whose}leader, then isolate the new one")
                    }
                    Strike::SplitElection { minority, after_ms } => write!(
                        f,
                        "kill {whose}leader, then cut {} off {after_ms}ms into the election",
                        nodes(minority)
                    ),
                    Strike::LagThenDepose { minority, lag_ms } => write!(
                        f,
                        "cut {} off for {lag_ms}ms, then heal and kill {whose}leader",
                        nodes(minority)
                    ),
                    Strike::LagThenElect { minority, lag_ms } => write!(
                        f,
                        "cut {} off for {lag_ms}ms, then kill {whose}leader and let a lagger \
                         alone be elected",
                        nodes(minority)
                    ),
                    Strike::StrandLeader { minority, lag_ms } => write!(
                        f,
                        "cut {whose}leader off with {} for {lag_ms}ms, then heal and kill \
                         whoever leads",
                        nodes(minority)
                    ),
                }
            }
            Fault::ClockAimed { at, jump_ms } => {
                let whose = match at {
                    ClockAim::Leader => "leader",
                    ClockAim::Follower => "a follower",
                };
                write!(f, "clock jump {whose} +{jump_ms}ms (past a lease)")
            }
        }
    }
}

/// One step of the schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Time since the workload started (virtual time in a simulated run).
    pub at_ms: u64,
    /// The fault to start (healing what is in force first); `None` heals: restart killed,
    /// resume paused, heal the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// The odds of the draws, named so that both worlds draw alike.
pub mod odds {
    /// How often a kill takes down every replica instead of the leader or a minority: only
    /// what each one made durable survives, so acknowledged-but-forgotten writes show.
    pub const KILL_ALL_CHANCE: f64 = 0.25;
    /// How often a power cut hits every replica at once: the case that loses the most.
    pub const POWER_ALL_CHANCE: f64 = 0.3;
    /// How often a one-way partition mutes its node (it cannot send) rather than deafens it.
    pub const ONE_WAY_MUTE_CHANCE: f64 = 0.5;
    /// How often a disk fault is a failing fsync rather than damage to synced data (a bit flip
    /// or a WAL cut short, at most one per run).
    pub const FAIL_SYNC_CHANCE: f64 = 0.5;
    /// Of the damage to synced data, how often it is a bit flip rather than a WAL cut short.
    pub const BIT_FLIP_CHANCE: f64 = 0.5;
    /// How far a clock jumps forward.
    pub const CLOCK_JUMP_MS: std::ops::RangeInclusive<u64> = 100..=5_000;
    /// How often a clock jump is aimed at a lease (the leader's or a follower's clock, just
    /// past the election timeout) rather than at a node drawn at random by any amount.
    pub const CLOCK_AIMED_CHANCE: f64 = 0.5;
    /// How far past the longest election timeout a lease-aimed jump goes.
    pub const LEASE_OVERSHOOT_MS: std::ops::RangeInclusive<u64> = 1..=300;
    /// The longest election timeout a draw may pick (`tunables::draw`): a lease-aimed jump
    /// clears it.
    pub const LONGEST_ELECTION_TIMEOUT_MS: u64 = 1_000;
    /// How often an aimed power cut waits for a vote rather than a client reply.
    pub const AFTER_VOTE_CHANCE: f64 = 0.5;
    /// How the election family strikes: kill the new leader, isolate it, or split the
    /// cluster during the election (the rest).
    pub const KILL_NEW_LEADER_CHANCE: f64 = 0.4;
    pub const ISOLATE_NEW_LEADER_CHANCE: f64 = 0.3;
    /// How far into the election a split comes.
    pub const SPLIT_AFTER_MS: std::ops::RangeInclusive<u64> = 0..=600;
    /// With version 5's weighted odds (simulated runs of versions 4 and 5, real runs of 5),
    /// how often an election fault first lets a minority fall behind
    /// ([`super::Strike::LagThenDepose`]) instead of one of the others.
    pub const LAG_THEN_DEPOSE_CHANCE: f64 = 0.4;
    /// How long the minority is cut off before the leader is killed.
    pub const LAG_MS: std::ops::RangeInclusive<u64> = 50..=400;
    /// Since schedule version 6 (weighted odds), how often an election fault lets a minority
    /// lag, and of those, how often the leader is stranded with it
    /// ([`super::Strike::StrandLeader`]) rather than a lagger elected
    /// ([`super::Strike::LagThenElect`]).
    pub const LAG_CHANCE_V6: f64 = 0.6;
    pub const STRAND_LEADER_SHARE: f64 = 0.25;
    /// Since version 6, the longest lag as a share of the fault's interval: the rest is the
    /// election's (a lag past the heal would never strike).
    pub const LAG_MAX_INTERVAL_SHARE: f64 = 0.5;
}

/// Generates the schedule of a classic cluster of `nodes`: faults from `interval_ms` on, each
/// healed `interval_ms` later, until `until_ms` (see [`rhythm`]).
pub fn generate(
    seed: u64,
    nodes: &[NodeId],
    families: &[FaultFamily],
    interval_ms: u64,
    until_ms: u64,
    weighting: FamilyOdds,
) -> Vec<Step> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut disk = DiskDraw::default();
    rhythm(
        seed,
        families,
        weighting,
        interval_ms,
        until_ms,
        |rng, family| {
            draw_fault(
                rng,
                family,
                nodes,
                &mut disk,
                Draw {
                    odds: weighting,
                    interval_ms,
                },
            )
        },
    )
}

/// Generates the schedule of a sharded bank (see the module docs): `shards` maps each shard id
/// to its replicas. Same rhythm as [`generate`].
pub fn generate_sharded(
    seed: u64,
    shards: &BTreeMap<u32, Vec<NodeId>>,
    families: &[FaultFamily],
    interval_ms: u64,
    until_ms: u64,
    weighting: FamilyOdds,
) -> Vec<Step> {
    let all: Vec<NodeId> = shards.values().flatten().copied().collect();
    if all.is_empty() {
        return Vec::new();
    }
    let mut disk = DiskDraw::default();
    rhythm(
        seed,
        families,
        weighting,
        interval_ms,
        until_ms,
        |rng, family| {
            draw_sharded_fault(
                rng,
                family,
                shards,
                &all,
                &mut disk,
                Draw {
                    odds: weighting,
                    interval_ms,
                },
            )
        },
    )
}

/// The schedules' one rhythm: from `interval_ms` on, a fault of a family drawn from
/// `families` by their weights (`draw` picks the fault), healed `interval_ms` later. A fault whose heal would
/// come after `until_ms` is not started: the final phase heals, but a fault should get its
/// full interval to matter. The seed's nemesis stream is drawn in this order (family, then
/// fault), so a seed's schedule stays the same.
pub fn rhythm(
    seed: u64,
    families: &[FaultFamily],
    weighting: FamilyOdds,
    interval_ms: u64,
    until_ms: u64,
    mut draw: impl FnMut(&mut rand_chacha::ChaCha8Rng, FaultFamily) -> Fault,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if families.is_empty() || interval_ms == 0 {
        return steps;
    }
    let mut rng = rng::stream(seed, rng::NEMESIS_STREAM);
    let weights = families.iter().map(|f| weighting.weight(*f));
    let Ok(pick) = rand::distributions::WeightedIndex::new(weights) else {
        return steps;
    };
    let mut at_ms = interval_ms;
    while at_ms.saturating_add(interval_ms) <= until_ms {
        let family = families[rng.sample(&pick)];
        let fault = draw(&mut rng, family);
        steps.push(Step {
            at_ms,
            fault: Some(fault),
        });
        steps.push(Step {
            at_ms: at_ms + interval_ms,
            fault: None,
        });
        at_ms += 2 * interval_ms;
    }
    steps
}

/// What a fault's draw depends on beside the random stream: the odds, and (since schedule
/// version 6, for the lag of an election fault) the interval between a fault and its heal.
#[derive(Clone, Copy, Debug)]
struct Draw {
    odds: FamilyOdds,
    interval_ms: u64,
}

fn draw_sharded_fault(
    rng: &mut impl Rng,
    family: FaultFamily,
    shards: &BTreeMap<u32, Vec<NodeId>>,
    all: &[NodeId],
    disk: &mut DiskDraw,
    how: Draw,
) -> Fault {
    let ids: Vec<u32> = shards.keys().copied().collect();
    let shard = ids[rng.gen_range(0..ids.len())];
    let members = shards.get(&shard).map_or(&[][..], Vec::as_slice);
    match family {
        FaultFamily::Kill if rng.gen_bool(odds::KILL_ALL_CHANCE) => {
            Fault::Kill(Victims::Nodes(all.to_vec()))
        }
        FaultFamily::Kill => Fault::Kill(draw_shard_target(rng, shard, members)),
        FaultFamily::Power if rng.gen_bool(odds::POWER_ALL_CHANCE) => {
            Fault::Power(Victims::Nodes(all.to_vec()))
        }
        FaultFamily::Power => Fault::Power(draw_shard_target(rng, shard, members)),
        FaultFamily::Pause => Fault::Pause(draw_shard_target(rng, shard, members)),
        FaultFamily::Partition => Fault::Partition(draw_shard_partition(rng, &ids, shard, members)),
        FaultFamily::IsolateFollower => Fault::Partition(Partition::IsolateFollower),
        FaultFamily::CrashCoordinator => draw_crash(rng, shard),
        FaultFamily::CrashBurst => Fault::CrashInBurst(draw_shard_target(rng, shard, members)),
        FaultFamily::PowerAfterSend => match draw_sent(rng) {
            Sent::Reply => Fault::PowerAfter {
                victims: Victims::ShardLeader(shard),
                after: Sent::Reply,
            },
            Sent::Vote => Fault::PowerAfter {
                victims: draw_shard_target(rng, shard, members),
                after: Sent::Vote,
            },
        },
        FaultFamily::Election => Fault::Election {
            shard: Some(shard),
            strike: draw_strike(rng, members, how),
        },
        // Clock jumps and disk faults hit one replica, as in a classic run.
        FaultFamily::Clock | FaultFamily::Disk => draw_fault(rng, family, all, disk, how),
    }
}

/// A failpoint to arm on `shard`'s leader.
fn draw_crash(rng: &mut (impl Rng + ?Sized), shard: u32) -> Fault {
    let failpoint = Failpoint::ALL[rng.gen_range(0..Failpoint::ALL.len())];
    Fault::CrashCoordinator {
        shard,
        failpoint: failpoint.name().to_string(),
    }
}

/// Whom a sharded run's kill or pause hits: every shard's leader, `shard`'s leader, or a
/// minority of `shard`'s `members`. (The simulator draws its sharded faults with it too.)
pub(crate) fn draw_shard_target(
    rng: &mut (impl Rng + ?Sized),
    shard: u32,
    members: &[NodeId],
) -> Victims {
    match rng.gen_range(0..3) {
        0 => Victims::ShardLeaders,
        1 => Victims::ShardLeader(shard),
        _ => Victims::Nodes(draw_minority(rng, members)),
    }
}

/// How a sharded run's partition cuts: two of the shards `ids` apart, `shard`'s leader off,
/// or a minority of `shard`'s `members` off the rest.
pub(crate) fn draw_shard_partition(
    rng: &mut (impl Rng + ?Sized),
    ids: &[u32],
    shard: u32,
    members: &[NodeId],
) -> Partition {
    match rng.gen_range(0..3) {
        0 if ids.len() >= 2 => {
            let pair: Vec<u32> = ids.choose_multiple(rng, 2).copied().collect();
            Partition::BetweenShards {
                a: pair[0].min(pair[1]),
                b: pair[0].max(pair[1]),
            }
        }
        1 => Partition::IsolateShardLeader { shard },
        _ => Partition::Halves {
            minority: draw_minority(rng, members),
        },
    }
}

/// A minority of `members` (at least one of them), drawn.
fn draw_minority(rng: &mut (impl Rng + ?Sized), members: &[NodeId]) -> Vec<NodeId> {
    let max_minority = members.len().saturating_sub(1) / 2;
    let size = rng.gen_range(1..=max_minority.max(1)).min(members.len());
    let mut chosen: Vec<NodeId> = members.to_vec();
    chosen.shuffle(rng);
    chosen.truncate(size);
    sorted(chosen)
}

fn draw_fault(
    rng: &mut impl Rng,
    family: FaultFamily,
    nodes: &[NodeId],
    disk: &mut DiskDraw,
    how: Draw,
) -> Fault {
    match family {
        // Now and then every replica at once, as a power cut would: only what each one made
        // durable survives, so acknowledged-but-forgotten writes show.
        FaultFamily::Kill if rng.gen_bool(odds::KILL_ALL_CHANCE) => {
            Fault::Kill(Victims::Nodes(nodes.to_vec()))
        }
        FaultFamily::Kill => Fault::Kill(draw_target(rng, nodes)),
        FaultFamily::Power if rng.gen_bool(odds::POWER_ALL_CHANCE) => {
            Fault::Power(Victims::Nodes(nodes.to_vec()))
        }
        FaultFamily::Power => Fault::Power(draw_target(rng, nodes)),
        FaultFamily::Pause => Fault::Pause(draw_target(rng, nodes)),
        FaultFamily::Partition => Fault::Partition(draw_partition(rng, nodes)),
        FaultFamily::IsolateFollower => Fault::Partition(Partition::IsolateFollower),
        // A classic cluster is shard 1 of one; `validate` refuses the family there, as no
        // two-phase commit would ever reach the failpoint.
        FaultFamily::CrashCoordinator => draw_crash(rng, 1),
        FaultFamily::Clock => draw_clock(rng, nodes),
        FaultFamily::Disk => disk.draw(rng, nodes),
        FaultFamily::CrashBurst => Fault::CrashInBurst(draw_target(rng, nodes)),
        FaultFamily::PowerAfterSend => match draw_sent(rng) {
            // Only a leader answers clients: aim a cut after a reply at it.
            Sent::Reply => Fault::PowerAfter {
                victims: Victims::Leader,
                after: Sent::Reply,
            },
            Sent::Vote => Fault::PowerAfter {
                victims: draw_target(rng, nodes),
                after: Sent::Vote,
            },
        },
        FaultFamily::Election => Fault::Election {
            shard: None,
            strike: draw_strike(rng, nodes, how),
        },
    }
}

/// A clock jump: aimed at a lease, or at a node drawn at random by any amount.
fn draw_clock(rng: &mut impl Rng, nodes: &[NodeId]) -> Fault {
    if rng.gen_bool(odds::CLOCK_AIMED_CHANCE) {
        let at = if rng.gen_bool(0.5) {
            ClockAim::Leader
        } else {
            ClockAim::Follower
        };
        let jump_ms = odds::LONGEST_ELECTION_TIMEOUT_MS + rng.gen_range(odds::LEASE_OVERSHOOT_MS);
        return Fault::ClockAimed { at, jump_ms };
    }
    Fault::Clock {
        node: nodes[rng.gen_range(0..nodes.len())],
        jump_ms: rng.gen_range(odds::CLOCK_JUMP_MS),
    }
}

fn draw_sent(rng: &mut impl Rng) -> Sent {
    if rng.gen_bool(odds::AFTER_VOTE_CHANCE) {
        Sent::Vote
    } else {
        Sent::Reply
    }
}

/// How an election fault strikes the group `members` (the cluster, or one shard); with
/// weighted odds a lagging minority too (drawn first, so that even odds draw as before).
fn draw_strike(rng: &mut (impl Rng + ?Sized), members: &[NodeId], how: Draw) -> Strike {
    match how.odds {
        FamilyOdds::WeightedV5 if rng.gen_bool(odds::LAG_THEN_DEPOSE_CHANCE) => {
            return Strike::LagThenDepose {
                minority: draw_minority(rng, members),
                lag_ms: rng.gen_range(odds::LAG_MS),
            };
        }
        FamilyOdds::Weighted if rng.gen_bool(odds::LAG_CHANCE_V6) => {
            return draw_lag(rng, members, how.interval_ms);
        }
        _ => {}
    }
    let roll: f64 = rng.gen_range(0.0..1.0);
    if roll < odds::KILL_NEW_LEADER_CHANCE {
        Strike::KillNewLeader
    } else if roll < odds::KILL_NEW_LEADER_CHANCE + odds::ISOLATE_NEW_LEADER_CHANCE {
        Strike::IsolateNewLeader
    } else {
        Strike::SplitElection {
            minority: draw_minority(rng, members),
            after_ms: rng.gen_range(odds::SPLIT_AFTER_MS),
        }
    }
}

/// A lag strike of schedule version 6: a lagger elected, or (now and then) the leader
/// stranded with the minority; the lag at most half the fault's interval.
fn draw_lag(rng: &mut (impl Rng + ?Sized), members: &[NodeId], interval_ms: u64) -> Strike {
    let minority = draw_minority(rng, members);
    let longest = (interval_ms as f64 * odds::LAG_MAX_INTERVAL_SHARE) as u64;
    let lag_ms = rng
        .gen_range(odds::LAG_MS)
        .min(longest.max(*odds::LAG_MS.start()));
    if rng.gen_bool(odds::STRAND_LEADER_SHARE) {
        Strike::StrandLeader { minority, lag_ms }
    } else {
        Strike::LagThenElect { minority, lag_ms }
    }
}

/// The disk faults of one schedule: at most one bit flip or cut WAL per run, since a replica
/// that refuses its disk stays down, and two of them plus a kill would be more than a
/// five-node cluster (or a shard of three) survives.
#[derive(Default)]
struct DiskDraw {
    damaged: bool,
}

impl DiskDraw {
    fn draw(&mut self, rng: &mut impl Rng, nodes: &[NodeId]) -> Fault {
        let fault = if self.damaged || rng.gen_bool(odds::FAIL_SYNC_CHANCE) {
            DiskFault::FailSync
        } else {
            self.damaged = true;
            if rng.gen_bool(odds::BIT_FLIP_CHANCE) {
                DiskFault::BitFlip
            } else {
                DiskFault::CutShort
            }
        };
        Fault::Disk {
            node: nodes[rng.gen_range(0..nodes.len())],
            fault,
        }
    }
}

pub fn draw_target(rng: &mut impl Rng, nodes: &[NodeId]) -> Victims {
    let max_minority = (nodes.len() - 1) / 2;
    match rng.gen_range(0..3) {
        0 => Victims::Leader,
        1 if max_minority >= 1 => Victims::Nodes(vec![nodes[rng.gen_range(0..nodes.len())]]),
        _ if max_minority >= 1 => {
            let size = rng.gen_range(1..=max_minority);
            Victims::Nodes(sorted(nodes.choose_multiple(rng, size).copied().collect()))
        }
        // A single replica has no minority to fault but itself.
        _ => Victims::Nodes(vec![nodes[0]]),
    }
}

pub fn draw_partition(rng: &mut impl Rng, nodes: &[NodeId]) -> Partition {
    let n = nodes.len();
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let choice = if n >= 3 {
        rng.gen_range(0..5)
    } else {
        rng.gen_range(0..2)
    };
    match choice {
        0 => Partition::Halves {
            minority: sorted(shuffled[..n.div_ceil(2) - 1].to_vec()),
        },
        1 => Partition::IsolateLeader,
        2 => {
            let half = (n - 1) / 2;
            Partition::Bridge {
                left: sorted(shuffled[..half].to_vec()),
                bridge: shuffled[half],
                right: sorted(shuffled[half + 1..].to_vec()),
            }
        }
        3 => Partition::MajoritiesRing { ring: shuffled },
        _ => Partition::OneWay {
            node: shuffled[0],
            mute: rng.gen_bool(odds::ONE_WAY_MUTE_CHANCE),
        },
    }
}

fn sorted(mut nodes: Vec<NodeId>) -> Vec<NodeId> {
    nodes.sort();
    nodes
}

/// Both directions of every link between the two groups.
pub fn cut_between(a: &[Peer], b: &[Peer]) -> Vec<Link> {
    let mut cuts = Vec::new();
    for &x in a {
        for &y in b {
            if x != y {
                cuts.push((x, y));
                cuts.push((y, x));
            }
        }
    }
    cuts
}

/// The directed replica↔replica links a partition cuts, given the current leader (needed for
/// `IsolateLeader` only; with no leader known, that partition cuts nothing). Client links stay
/// whole: clients may reach every replica, so a stale leader on a minority side is exercised.
pub fn partition_cuts(
    partition: &Partition,
    nodes: &[NodeId],
    leader: Option<NodeId>,
) -> Vec<Link> {
    let peers = |ns: &[NodeId]| ns.iter().map(|&n| Peer::Node(n)).collect::<Vec<_>>();
    let rest = |side: &[NodeId]| -> Vec<NodeId> {
        nodes
            .iter()
            .copied()
            .filter(|n| !side.contains(n))
            .collect()
    };
    let mut cuts = match partition {
        Partition::Halves { minority } => cut_between(&peers(minority), &peers(&rest(minority))),
        Partition::IsolateLeader => match leader {
            Some(l) => cut_between(&peers(&[l]), &peers(&rest(&[l]))),
            None => Vec::new(),
        },
        Partition::IsolateFollower => match isolated_follower(nodes, leader) {
            Some(f) => cut_between(&peers(&[f]), &peers(&rest(&[f]))),
            None => Vec::new(),
        },
        Partition::Bridge { left, right, .. } => cut_between(&peers(left), &peers(right)),
        Partition::MajoritiesRing { ring } => ring_cuts(ring),
        Partition::Star { hub } => nodes
            .iter()
            .flat_map(|&a| nodes.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a != b && a != *hub && b != *hub)
            .map(|(a, b)| (Peer::Node(a), Peer::Node(b)))
            .collect(),
        Partition::OneWay { node, mute } => {
            let others = peers(&rest(&[*node]));
            let me = Peer::Node(*node);
            others
                .into_iter()
                .map(|o| if *mute { (me, o) } else { (o, me) })
                .collect()
        }
        // Shard shapes need the shards: see `shard_partition_cuts`.
        Partition::BetweenShards { .. } | Partition::IsolateShardLeader { .. } => Vec::new(),
    };
    cuts.sort();
    cuts.dedup();
    cuts
}

/// The links a partition cuts on a sharded bank: the shard shapes from `node_shards` (each
/// replica's shard) and `shard_leaders` (each shard's leader now); any other shape as
/// [`partition_cuts`] with `leader`.
pub fn shard_partition_cuts(
    partition: &Partition,
    nodes: &[NodeId],
    node_shards: &BTreeMap<NodeId, u32>,
    shard_leaders: &BTreeMap<u32, NodeId>,
    leader: Option<NodeId>,
) -> Vec<Link> {
    let peers_of = |shard: u32| -> Vec<Peer> {
        let mine = node_shards.iter().filter(|(_, s)| **s == shard);
        mine.map(|(n, _)| Peer::Node(*n)).collect()
    };
    let mut cuts = match partition {
        Partition::BetweenShards { a, b } => cut_between(&peers_of(*a), &peers_of(*b)),
        Partition::IsolateShardLeader { shard } => match shard_leaders.get(shard) {
            Some(&l) => {
                let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != l).collect();
                partition_cuts(&Partition::Halves { minority: rest }, nodes, None)
            }
            None => Vec::new(),
        },
        other => partition_cuts(other, nodes, leader),
    };
    cuts.sort();
    cuts.dedup();
    cuts
}

/// The follower `IsolateFollower` cuts off: the lowest-numbered node that does not lead
/// (none when no leader is known, so a follower is never guessed).
pub fn isolated_follower(nodes: &[NodeId], leader: Option<NodeId>) -> Option<NodeId> {
    let leader = leader?;
    nodes.iter().copied().find(|&n| n != leader)
}

/// On a ring of n replicas, each keeps links to the replicas within ring distance `d`, the
/// smallest distance for which itself plus its neighbours make a majority.
fn ring_cuts(ring: &[NodeId]) -> Vec<Link> {
    let n = ring.len();
    let majority = n / 2 + 1;
    let d = (majority - 1).div_ceil(2);
    let mut cuts = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let dist = i.abs_diff(j).min(n - i.abs_diff(j));
            if i != j && dist > d {
                cuts.push((Peer::Node(ring[i]), Peer::Node(ring[j])));
            }
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::parse_families as parse_families_in;
    use super::*;

    fn parse_families(s: &str) -> Result<Vec<FaultFamily>, String> {
        parse_families_in(s, World::Processes)
    }

    fn five() -> Vec<NodeId> {
        (1..=5).map(NodeId).collect()
    }

    const ALL: [FaultFamily; 3] = [
        FaultFamily::Kill,
        FaultFamily::Pause,
        FaultFamily::Partition,
    ];

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = generate(42, &five(), &ALL, 5_000, 60_000, FamilyOdds::Even);
        let b = generate(42, &five(), &ALL, 5_000, 60_000, FamilyOdds::Even);
        assert_eq!(a, b);
        let c = generate(43, &five(), &ALL, 5_000, 60_000, FamilyOdds::Even);
        assert_ne!(a, c, "another seed, another schedule");
    }

    #[test]
    fn faults_and_heals_alternate_within_the_run() {
        let steps = generate(7, &five(), &ALL, 2_000, 15_000, FamilyOdds::Even);
        // Faults at 2, 6, 10 (healed at 4, 8, 12); one at 14 would be healed after the end.
        assert_eq!(steps.len(), 6);
        for (i, step) in steps.iter().enumerate() {
            assert_eq!(step.at_ms, 2_000 * (i as u64 + 1));
            assert_eq!(step.fault.is_none(), i % 2 == 1);
        }
    }

    #[test]
    fn only_the_asked_families_appear_and_victims_are_minorities_or_everyone() {
        let steps = generate(
            1,
            &five(),
            &[FaultFamily::Kill],
            10,
            10_000,
            FamilyOdds::Even,
        );
        assert!(steps.len() > 100);
        let mut everyone = 0;
        for step in &steps {
            match &step.fault {
                // A kill hits a minority, or now and then every replica (a power cut).
                Some(Fault::Kill(Victims::Nodes(ns))) if ns.len() == 5 => everyone += 1,
                Some(Fault::Kill(Victims::Nodes(ns))) => {
                    assert!(!ns.is_empty() && ns.len() <= 2, "{ns:?}");
                }
                Some(Fault::Kill(Victims::Leader)) | None => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(everyone > 0, "whole-cluster kills are drawn too");
        assert!(generate(1, &five(), &[], 1_000, 10_000, FamilyOdds::Even).is_empty());
    }

    #[test]
    fn every_partition_shape_is_drawn_and_leaves_a_majority_somewhere() {
        let steps = generate(
            3,
            &five(),
            &[FaultFamily::Partition],
            10,
            10_000,
            FamilyOdds::Even,
        );
        let mut kinds = std::collections::HashSet::new();
        for step in &steps {
            if let Some(Fault::Partition(p)) = &step.fault {
                kinds.insert(std::mem::discriminant(p));
                let cuts = partition_cuts(p, &five(), Some(NodeId(1)));
                assert!(!cuts.is_empty(), "{p:?} cuts something");
                assert!(cuts
                    .iter()
                    .all(|(a, b)| a != b && *a != Peer::Clients && *b != Peer::Clients));
            }
        }
        assert_eq!(kinds.len(), 5);
    }

    #[test]
    fn halves_cut_both_ways_between_the_sides_only() {
        let cuts = partition_cuts(
            &Partition::Halves {
                minority: vec![NodeId(4), NodeId(5)],
            },
            &five(),
            None,
        );
        assert_eq!(cuts.len(), 2 * 2 * 3);
        assert!(cuts.contains(&(Peer::Node(NodeId(4)), Peer::Node(NodeId(1)))));
        assert!(cuts.contains(&(Peer::Node(NodeId(1)), Peer::Node(NodeId(4)))));
        assert!(!cuts.contains(&(Peer::Node(NodeId(4)), Peer::Node(NodeId(5)))));
    }

    #[test]
    fn a_majorities_ring_gives_each_replica_exactly_a_majority() {
        let ring: Vec<NodeId> = [3, 1, 5, 2, 4].map(NodeId).to_vec();
        let cuts = partition_cuts(&Partition::MajoritiesRing { ring }, &five(), None);
        for n in five() {
            let reachable = five()
                .into_iter()
                .filter(|&m| m != n && !cuts.contains(&(Peer::Node(n), Peer::Node(m))))
                .count();
            assert_eq!(reachable + 1, 3, "{n} sees itself and two neighbours");
        }
        // 1's neighbours on the ring are 3 and 5.
        assert!(!cuts.contains(&(Peer::Node(NodeId(1)), Peer::Node(NodeId(3)))));
        assert!(cuts.contains(&(Peer::Node(NodeId(1)), Peer::Node(NodeId(2)))));
    }

    #[test]
    fn one_way_and_isolate_leader() {
        let mute = partition_cuts(
            &Partition::OneWay {
                node: NodeId(2),
                mute: true,
            },
            &five(),
            None,
        );
        assert_eq!(mute.len(), 4);
        assert!(mute.iter().all(|(from, _)| *from == Peer::Node(NodeId(2))));
        let deaf = partition_cuts(
            &Partition::OneWay {
                node: NodeId(2),
                mute: false,
            },
            &five(),
            None,
        );
        assert!(deaf.iter().all(|(_, to)| *to == Peer::Node(NodeId(2))));
        let iso = partition_cuts(&Partition::IsolateLeader, &five(), Some(NodeId(3)));
        assert_eq!(iso.len(), 8);
        assert!(partition_cuts(&Partition::IsolateLeader, &five(), None).is_empty());
    }

    #[test]
    fn families_parse() {
        assert_eq!(parse_families("none").unwrap(), vec![]);
        assert_eq!(
            parse_families("partition,kill,kill").unwrap(),
            vec![FaultFamily::Kill, FaultFamily::Partition]
        );
        assert!(parse_families("kill,meteor").is_err());
        assert_eq!(
            parse_families_in("all", World::Simulator).unwrap(),
            World::Simulator.all_families()
        );
        let refused = parse_families_in("kill,power", World::Processes).unwrap_err();
        assert!(
            refused.contains("power is a simulator-only fault"),
            "{refused}"
        );
        assert_eq!(
            parse_families_in("crash-coordinator", World::Simulator),
            Ok(vec![FaultFamily::CrashCoordinator]),
            "both worlds since schedule version 5"
        );
        let sharded = World::Simulator.sharded_families();
        assert_eq!(sharded.last(), Some(&FaultFamily::CrashCoordinator));
        assert_eq!(
            &sharded[..sharded.len() - 1],
            World::Simulator.all_families()
        );
        let refused = parse_families_in("isolate-follower", World::Simulator).unwrap_err();
        assert!(refused.contains("real-process-only"), "{refused}");
        let sim_only: Vec<_> = FaultFamily::ALL
            .into_iter()
            .filter(|f| f.sim_only())
            .collect();
        assert_eq!(
            sim_only,
            [
                FaultFamily::Power,
                FaultFamily::Clock,
                FaultFamily::Disk,
                FaultFamily::CrashBurst,
                FaultFamily::PowerAfterSend
            ]
        );
        assert!(parse_families("election").is_ok(), "both worlds have it");
    }

    /// Three shards of three: n1-n3, n4-n6, n7-n9.
    fn three_by_three() -> BTreeMap<u32, Vec<NodeId>> {
        (1..=3u32)
            .map(|k| (k, (1..=3).map(|r| NodeId((k - 1) * 3 + r)).collect()))
            .collect()
    }

    /// The shape of a fault drawn for [`three_by_three`], checking that a minority is one
    /// replica of one shard and that shard ids exist.
    fn sharded_shape(fault: Fault) -> &'static str {
        match fault {
            Fault::Kill(Victims::Nodes(ns)) | Fault::Power(Victims::Nodes(ns)) if ns.len() == 9 => {
                "everything"
            }
            Fault::Kill(Victims::Nodes(ns))
            | Fault::Power(Victims::Nodes(ns))
            | Fault::CrashInBurst(Victims::Nodes(ns))
            | Fault::PowerAfter {
                victims: Victims::Nodes(ns),
                ..
            }
            | Fault::Pause(Victims::Nodes(ns)) => {
                assert!(ns.len() == 1, "a minority of one shard of 3: {ns:?}");
                "minority of a shard"
            }
            Fault::Partition(Partition::Halves { minority }) => {
                assert!(
                    minority.len() == 1,
                    "a minority of one shard of 3: {minority:?}"
                );
                "split a shard"
            }
            Fault::Kill(Victims::ShardLeaders)
            | Fault::Power(Victims::ShardLeaders)
            | Fault::CrashInBurst(Victims::ShardLeaders)
            | Fault::PowerAfter {
                victims: Victims::ShardLeaders,
                ..
            }
            | Fault::Pause(Victims::ShardLeaders) => "every shard's leader",
            Fault::Kill(Victims::ShardLeader(s))
            | Fault::Power(Victims::ShardLeader(s))
            | Fault::CrashInBurst(Victims::ShardLeader(s))
            | Fault::PowerAfter {
                victims: Victims::ShardLeader(s),
                ..
            }
            | Fault::Pause(Victims::ShardLeader(s)) => {
                assert!((1..=3).contains(&s));
                "a shard's leader"
            }
            Fault::Partition(Partition::BetweenShards { a, b }) => {
                assert!(a < b && b <= 3);
                "between shards"
            }
            Fault::Partition(Partition::IsolateShardLeader { .. }) => "isolate",
            Fault::Clock { .. } | Fault::Disk { .. } => "one replica",
            Fault::ClockAimed { .. } => "a lease",
            Fault::Election {
                shard: Some(s),
                strike,
            } => {
                assert!((1..=3).contains(&s));
                if let Strike::SplitElection { minority, .. } = strike {
                    assert!(minority.len() == 1, "a minority of one shard of 3");
                }
                "a shard's election"
            }
            other => panic!("not a sharded fault: {other:?}"),
        }
    }

    #[test]
    fn a_sharded_schedule_aims_at_shards_in_both_worlds_and_is_reproducible() {
        let shards = three_by_three();
        let common = [
            "everything",
            "minority of a shard",
            "every shard's leader",
            "a shard's leader",
            "between shards",
            "isolate",
            "split a shard",
        ];
        let sim_only = ["one replica", "a lease", "a shard's election"];
        for (families, only_here) in [
            (&ALL[..], &[][..]),
            (World::Simulator.all_families(), &sim_only[..]),
        ] {
            let draw =
                |seed| generate_sharded(seed, &shards, families, 100, 40_000, FamilyOdds::Even);
            let mut shapes = BTreeSet::new();
            for seed in 0..20 {
                let steps = draw(seed);
                assert_eq!(steps, draw(seed), "a seed fixes the schedule");
                shapes.extend(steps.into_iter().filter_map(|s| s.fault).map(sharded_shape));
            }
            for shape in common.iter().chain(only_here) {
                assert!(shapes.contains(shape), "{shape} never drawn: {shapes:?}");
            }
            assert_eq!(shapes.len(), common.len() + only_here.len());
        }
    }

    #[test]
    fn cutting_two_shards_apart_cuts_every_link_between_them_and_no_other() {
        let shards = three_by_three();
        let nodes: Vec<NodeId> = shards.values().flatten().copied().collect();
        let node_shards = shards
            .iter()
            .flat_map(|(s, ns)| ns.iter().map(move |n| (*n, *s)))
            .collect();
        let between = Partition::BetweenShards { a: 1, b: 3 };
        let cuts = shard_partition_cuts(&between, &nodes, &node_shards, &BTreeMap::new(), None);
        assert_eq!(cuts.len(), 2 * 3 * 3);
        for (x, y) in &cuts {
            let shard = |p: &Peer| match p {
                Peer::Node(n) => node_shards[n],
                other => panic!("a client link was cut: {other:?}"),
            };
            let pair = [shard(x), shard(y)];
            assert!(pair == [1, 3] || pair == [3, 1], "{x:?} -> {y:?}");
        }
        let isolate = Partition::IsolateShardLeader { shard: 2 };
        let leaders = BTreeMap::from([(2, NodeId(5))]);
        let cuts = shard_partition_cuts(&isolate, &nodes, &node_shards, &leaders, None);
        assert_eq!(cuts.len(), 2 * 8);
        assert!(cuts
            .iter()
            .all(|(x, y)| *x == Peer::Node(NodeId(5)) || *y == Peer::Node(NodeId(5))));
        let unknown = shard_partition_cuts(&isolate, &nodes, &node_shards, &BTreeMap::new(), None);
        assert!(unknown.is_empty(), "no leader known: nothing cut");
    }

    #[test]
    fn crash_coordinator_arms_every_failpoint_on_every_shard_and_only_when_asked() {
        let shards = three_by_three();
        let with = [FaultFamily::Kill, FaultFamily::CrashCoordinator];
        let steps = generate_sharded(5, &shards, &with, 10, 30_000, FamilyOdds::Even);
        let mut drawn = BTreeSet::new();
        for step in &steps {
            if let Some(Fault::CrashCoordinator { shard, failpoint }) = &step.fault {
                assert!(Failpoint::from_name(failpoint).is_some(), "{failpoint}");
                drawn.insert((*shard, failpoint.clone()));
            }
        }
        assert_eq!(drawn.len(), 3 * Failpoint::ALL.len(), "{drawn:?}");
        let without = generate_sharded(5, &shards, &ALL, 10, 30_000, FamilyOdds::Even);
        assert!(!without
            .iter()
            .any(|s| matches!(s.fault, Some(Fault::CrashCoordinator { .. }))));
        assert_eq!(
            parse_families("kill,crash-coordinator").unwrap(),
            vec![FaultFamily::Kill, FaultFamily::CrashCoordinator]
        );
        let named = serde_json::to_value(FaultFamily::CrashCoordinator).unwrap();
        assert_eq!(
            named, "crash-coordinator",
            "run.toml spells it as --nemesis does"
        );
    }

    #[test]
    fn aimed_faults_are_drawn_with_every_strike_and_aim() {
        let families = [
            FaultFamily::CrashBurst,
            FaultFamily::PowerAfterSend,
            FaultFamily::Election,
            FaultFamily::Clock,
        ];
        let steps = generate(11, &five(), &families, 10, 20_000, FamilyOdds::Even);
        let mut seen = BTreeSet::new();
        for fault in steps.into_iter().filter_map(|s| s.fault) {
            let word = match fault {
                Fault::CrashInBurst(_) => "crash in burst".to_string(),
                Fault::PowerAfter { after, .. } => format!("power after {after:?}"),
                Fault::Election { shard, strike } => {
                    assert_eq!(shard, None, "a classic cluster has one election");
                    if let Strike::SplitElection { minority, after_ms } = &strike {
                        assert!(!minority.is_empty() && minority.len() <= 2);
                        assert!(odds::SPLIT_AFTER_MS.contains(after_ms));
                    }
                    format!("{:?}", std::mem::discriminant(&strike))
                }
                Fault::ClockAimed { at, jump_ms } => {
                    assert!(
                        jump_ms > odds::LONGEST_ELECTION_TIMEOUT_MS,
                        "past any lease"
                    );
                    format!("clock at {at:?}")
                }
                Fault::Clock { .. } => "clock anywhere".to_string(),
                other => panic!("not asked for: {other:?}"),
            };
            seen.insert(word);
        }
        // crash, 2 power aims, 3 strikes, 2 clock aims and the unaimed clock.
        assert_eq!(seen.len(), 9, "{seen:?}");
        assert_eq!(
            FaultFamily::PowerAfterSend
                .to_string()
                .parse::<FaultFamily>(),
            Ok(FaultFamily::PowerAfterSend)
        );
    }

    /// Every election strike a schedule drew, with the lag of the lag strikes.
    fn strikes(steps: &[Step]) -> Vec<(&'static str, Option<u64>)> {
        steps
            .iter()
            .filter_map(|s| match &s.fault {
                Some(Fault::Election { strike, .. }) => Some(match strike {
                    Strike::LagThenDepose { lag_ms, .. } => ("depose", Some(*lag_ms)),
                    Strike::LagThenElect { lag_ms, .. } => ("elect", Some(*lag_ms)),
                    Strike::StrandLeader { lag_ms, .. } => ("strand", Some(*lag_ms)),
                    _ => ("other", None),
                }),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn weighted_odds_favour_crashes_partitions_and_elections_and_draw_laggers() {
        let families = World::Simulator.all_families();
        let steps = generate(5, &five(), families, 400, 400_000, FamilyOdds::Weighted);
        let count = |f: &dyn Fn(&Fault) -> bool| {
            steps
                .iter()
                .filter_map(|s| s.fault.as_ref())
                .filter(|x| f(x))
                .count()
        };
        let kills = count(&|f| matches!(f, Fault::Kill(_)));
        let pauses = count(&|f| matches!(f, Fault::Pause(_)));
        let elections = count(&|f| matches!(f, Fault::Election { .. }));
        assert!(kills > 2 * pauses, "kills {kills}, pauses {pauses}");
        assert!(elections > kills, "elections weigh 4 since version 6");
        let drawn = strikes(&steps);
        let share =
            |name| drawn.iter().filter(|(n, _)| *n == name).count() as f64 / drawn.len() as f64;
        // 60% lag: three in four of those elect a lagger, one strands the leader.
        assert!((0.38..0.52).contains(&share("elect")), "{}", share("elect"));
        assert!((0.1..0.2).contains(&share("strand")), "{}", share("strand"));
        assert_eq!(
            share("depose"),
            0.0,
            "version 5's strike is drawn by version 5 only"
        );
        assert!(
            drawn
                .iter()
                .filter_map(|(_, lag)| *lag)
                .all(|lag| (50..=200).contains(&lag)),
            "a lag takes at most half the 400 ms interval"
        );
        for steps in [
            generate(5, &five(), families, 10, 100_000, FamilyOdds::Even),
            generate(5, &five(), families, 10, 100_000, FamilyOdds::WeightedV5),
        ] {
            let old = strikes(&steps);
            assert!(!old.iter().any(|(n, _)| *n == "elect" || *n == "strand"));
        }
        let v5 = generate(5, &five(), families, 10, 100_000, FamilyOdds::WeightedV5);
        assert!(
            strikes(&v5).iter().any(|(n, _)| *n == "depose"),
            "version 5 lags"
        );
        let even = generate(5, &five(), families, 10, 100_000, FamilyOdds::Even);
        assert!(
            strikes(&even).iter().all(|(n, _)| *n == "other"),
            "real runs drawn before schedule version 5 (even odds) never lag"
        );
    }

    #[test]
    fn real_runs_draw_by_their_version() {
        assert_eq!(FamilyOdds::for_real_version(1), FamilyOdds::Even);
        assert_eq!(
            FamilyOdds::for_real_version(LAST_EVEN_REAL_VERSION),
            FamilyOdds::Even
        );
        assert_eq!(FamilyOdds::for_real_version(5), FamilyOdds::WeightedV5);
        assert_eq!(
            FamilyOdds::for_real_version(SCHEDULE_VERSION),
            FamilyOdds::Weighted
        );
        // A default real run's families, 30 s with a fault every 2 s: most runs elect a
        // lagger at least once (about 71% expected: elections 4 of 11, 45% of them).
        let real = [
            FaultFamily::Kill,
            FaultFamily::Pause,
            FaultFamily::Partition,
            FaultFamily::Election,
        ];
        let odds = FamilyOdds::for_real_version(SCHEDULE_VERSION);
        let runs = 60;
        let electing = (0..runs)
            .map(|seed| generate(seed, &five(), &real, 2_000, 30_000, odds))
            .filter(|steps| strikes(steps).iter().any(|(n, _)| *n == "elect"))
            .count();
        assert!(
            electing * 100 >= runs as usize * 60,
            "{electing} of {runs} runs"
        );
        let v5 = FamilyOdds::for_real_version(5);
        let electing_v5 = (0..runs)
            .map(|seed| generate(seed, &five(), &real, 2_000, 30_000, v5))
            .filter(|steps| strikes(steps).iter().any(|(n, _)| *n == "elect"))
            .count();
        assert_eq!(electing_v5, 0, "version 5 never aimed the election");
    }
}
