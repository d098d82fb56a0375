//! A simulated run's `final.json`: every replica's balances and executed log, taken from the
//! world at the end of the run and written straight from the entries the replicas executed.
//!
//! Why typed: a seed's replicas execute some ten thousand entries each, and building a
//! `serde_json::Value` (or the checker's `ShardEntry`) per entry and replica, or even copying
//! the entries, was a tenth of a seed's CPU. The entries are moved out of the world
//! ([`Sim::take_executed`]) and written by [`EntryJson`] and [`ShardEntryJson`], whose bytes
//! are those of the checker's `FinalState` and `ShardedFinal` for the same content
//! ([`ClassicFinal::to_final_state`], [`ShardedSimFinal::to_sharded_final`] build those, for
//! tools and for the tests that hold the bytes equal).

use crate::record::{executed_entry, shard_entry, EntryJson, ShardEntryJson};
use checker::final_state::{FinalState, NodeFinal};
use checker::shards::{ShardNode, ShardedFinal};
use replica::bank::Executed;
use replica::types::Account;
use serde::Serialize;
use sim::Sim;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Balances keyed by `String`s, as the checker's types hold them.
fn string_keys(balances: &BTreeMap<Account, i64>) -> BTreeMap<String, i64> {
    balances.iter().map(|(a, b)| (a.to_string(), *b)).collect()
}

/// final.json of a simulated run: the classic shape, or the sharded one.
pub enum SimFinal {
    Classic(ClassicFinal),
    Sharded(ShardedSimFinal),
}

impl SimFinal {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        match self {
            SimFinal::Classic(state) => write_json_line(path, state),
            SimFinal::Sharded(state) => write_json_line(path, state),
        }
    }
}

/// Writes `value` as one line of JSON, as `FinalState::write` and `ShardedFinal::write` do.
fn write_json_line(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A classic run's final.json, in the shape of `checker::final_state::FinalState`.
#[derive(Serialize)]
pub struct ClassicFinal {
    pub nodes: BTreeMap<String, ClassicNode>,
}

/// One final.json entry of [`ClassicFinal`], field for field a `NodeFinal`.
#[derive(Serialize)]
pub struct ClassicNode {
    pub balances: Option<BTreeMap<Account, i64>>,
    #[serde(serialize_with = "entries_json")]
    pub executed: Vec<Executed>,
    pub error: Option<String>,
}

fn entries_json<S: serde::Serializer>(
    executed: &[Executed],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(executed.iter().map(EntryJson))
}

impl ClassicFinal {
    /// Writes final.json as `FinalState::write` does (one line of JSON).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_json_line(path, self)
    }

    /// The same content as the checker's owned `FinalState` (for tools and tests).
    pub fn to_final_state(&self) -> FinalState {
        let nodes = self.nodes.iter().map(|(name, node)| {
            let executed = node.executed.iter().map(executed_entry).collect();
            let state = NodeFinal {
                balances: node.balances.as_ref().map(string_keys),
                executed,
                error: node.error.clone(),
            };
            (name.clone(), state)
        });
        FinalState {
            nodes: nodes.collect(),
        }
    }
}

/// A sharded run's final.json, in the shape of `checker::shards::ShardedFinal`.
#[derive(Serialize)]
pub struct ShardedSimFinal {
    pub nodes: BTreeMap<String, ShardedSimNode>,
}

/// One final.json entry of [`ShardedSimFinal`], field for field a `ShardNode`.
#[derive(Serialize)]
pub struct ShardedSimNode {
    pub shard: u32,
    pub balances: Option<BTreeMap<Account, i64>>,
    #[serde(serialize_with = "shard_entries_json")]
    pub executed: Vec<Executed>,
    pub error: Option<String>,
}

fn shard_entries_json<S: serde::Serializer>(
    executed: &[Executed],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(executed.iter().map(ShardEntryJson))
}

impl ShardedSimFinal {
    /// The same content as the checker's `ShardedFinal` (for tools and tests).
    pub fn to_sharded_final(&self) -> ShardedFinal {
        let nodes = self.nodes.iter().map(|(name, node)| {
            let state = ShardNode {
                shard: node.shard,
                balances: node.balances.as_ref().map(string_keys),
                executed: node.executed.iter().map(shard_entry).collect(),
                error: node.error.clone(),
            };
            (name.clone(), state)
        });
        ShardedFinal {
            nodes: nodes.collect(),
        }
    }
}

/// Every replica's balances and executed log, as real runs report them, the entries moved out
/// of the world. The entry named after the replica holds its balances and the stretch of its
/// log that ends at its exec index; any other stretch it executed (before a snapshot install,
/// or lost to a power cut and not executed again) is an extra, balance-less entry named like
/// `n1:1-40`. A replica whose log does not reach its exec index (it installed a snapshot last)
/// reports no balances, saying why, as the harness does when a replica's journal and balances
/// disagree.
pub fn final_state(sim: &mut Sim) -> ClassicFinal {
    let mut nodes = BTreeMap::new();
    for (id, named, extra) in replicas(sim) {
        for segment in extra {
            let node = ClassicNode {
                balances: None,
                executed: segment,
                error: None,
            };
            nodes.insert(extra_name(id, &node.executed), node);
        }
        let named = ClassicNode {
            balances: named.balances,
            executed: named.executed,
            error: named.error,
        };
        nodes.insert(id.to_string(), named);
    }
    ClassicFinal { nodes }
}

/// A sharded world's final.json: every replica with its shard, its balances and its shard's
/// log. As [`final_state`] does for the classic shape, each replica's current stretch of log
/// goes under its name and any earlier stretch is an extra, balance-less entry `n1:1-40`.
pub fn sharded_final_state(sim: &mut Sim) -> ShardedSimFinal {
    let mut nodes = BTreeMap::new();
    for (id, named, extra) in replicas(sim) {
        let shard = sim.shard_of(id).0;
        for segment in extra {
            let node = ShardedSimNode {
                shard,
                balances: None,
                executed: segment,
                error: None,
            };
            nodes.insert(extra_name(id, &node.executed), node);
        }
        let named = ShardedSimNode {
            shard,
            balances: named.balances,
            executed: named.executed,
            error: named.error,
        };
        nodes.insert(id.to_string(), named);
    }
    ShardedSimFinal { nodes }
}

/// An extra stretch's name: `n1:1-40`.
fn extra_name(id: replica::types::NodeId, segment: &[Executed]) -> String {
    let (first, last) = (segment[0].exec_index, segment[segment.len() - 1].exec_index);
    format!("{id}:{first}-{last}")
}

/// Each replica's named entry and extra stretches, its executed entries taken from the world.
fn replicas(sim: &mut Sim) -> Vec<(replica::types::NodeId, Named, Vec<Vec<Executed>>)> {
    let mut all = Vec::new();
    for id in sim.node_ids() {
        let node = sim.node(id);
        // Up: its balances and the exec index they are at. Down (or refused): no balances,
        // but what it executed while it lived still counts, as the harness's journal polling
        // keeps it in real runs.
        let state = node.core().map(|core| core.balances());
        let refused = node.refused().map(str::to_string);
        let executed = sim.take_executed(id);
        let segments = segments(executed, state.as_ref().map(|(e, _)| *e));
        let (named, extra) = current_segment(segments, state, refused.as_deref());
        all.push((id, named, extra));
    }
    all
}

/// What goes under a replica's own name in final.json: its balances and the stretch of its
/// log that ends at its exec index (or why there are none).
struct Named {
    balances: Option<BTreeMap<Account, i64>>,
    executed: Vec<Executed>,
    error: Option<String>,
}

/// A replica's executed log (in exec-index order) cut into contiguous stretches. A replica
/// that is up (its exec index `current`) starts a new stretch after it, since what follows
/// was executed again after a restart and is not what its balances show.
fn segments(executed: Vec<Executed>, current: Option<u64>) -> Vec<Vec<Executed>> {
    let mut segments: Vec<Vec<Executed>> = Vec::new();
    for entry in executed {
        let joins = segments
            .last()
            .and_then(|s| s.last())
            .map(|e| e.exec_index + 1)
            == Some(entry.exec_index)
            && current.is_none_or(|c| entry.exec_index != c + 1);
        match segments.last_mut() {
            Some(last) if joins => last.push(entry),
            _ => segments.push(vec![entry]),
        }
    }
    segments
}

/// Splits `segments` into the replica's named entry and the extra stretches.
fn current_segment(
    mut segments: Vec<Vec<Executed>>,
    state: Option<(u64, BTreeMap<Account, i64>)>,
    refused: Option<&str>,
) -> (Named, Vec<Vec<Executed>>) {
    let unreachable = |error: String| Named {
        balances: None,
        executed: Vec::new(),
        error: Some(error),
    };
    let named = match state {
        None => unreachable(refused.unwrap_or("down at the end of the run").to_string()),
        Some((exec_index, balances)) => {
            let current = segments
                .iter()
                .position(|s| s.last().map(|e| e.exec_index) == Some(exec_index));
            match current {
                Some(k) => Named {
                    balances: Some(balances),
                    executed: segments.remove(k),
                    error: None,
                },
                None if exec_index == 0 => Named {
                    balances: Some(balances),
                    executed: Vec::new(),
                    error: None,
                },
                None => unreachable(format!(
                    "balances at exec index {exec_index}, but the executed log does not \
                     reach it (installed a snapshot)"
                )),
            }
        }
    };
    (named, segments)
}
