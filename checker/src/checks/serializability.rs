//! Strict serializability across shards, checked Elle-style on a dependency graph.
//!
//! Nodes are the client operations that executed (answers with `positions`) and either
//! changed or observed something: a definite failure other than insufficient funds
//! (`lock-conflict`, `busy`, an aborted transaction) did neither, so it orders nothing. It
//! must not: a cross-shard transfer is answered at its coordinator's decision, and a later
//! operation on its participant account may execute there before that shard applies the
//! decision, failing on the still-held lock; ordering that failure before the transfer on
//! the account would make a cycle with the real-time edge. Edges:
//! - shard order: on each shard, for each account, its operations in the order of their
//!   positions there (a `read_all` touches every account of the shard): an operation
//!   that observed the account follows the last one that changed it, and a change
//!   follows the last change and every observation since (Elle's ww, wr and rw
//!   dependencies; two observations depend on nothing of each other, as two snapshots
//!   under shared locks may see one state in either order). Per account, not per
//!   shard: two-phase commit lets operations that share no account commit in different
//!   orders on different shards, which is serializable; operations that share one are
//!   ordered by its lock on every shard alike.
//! - real time: `a` completed before `b` was invoked. Instead of the quadratic set of
//!   such pairs, a chain of barrier nodes is threaded through the history: a completion
//!   points at the current barrier, an invocation hangs from it, and each new barrier
//!   follows the last, so `a` reaches `b` through barriers exactly when `a` completed
//!   before `b` began (the sweep Elle uses, in linear size).
//!
//! A strongly connected component with an operation in it (petgraph's Kosaraju,
//! which is iterative: the barrier chain is as long as the history) is a
//! cycle no serial order can follow; for each of the first few, a breadth-first search
//! finds a shortest cycle, which is reported operation by operation with the kind of
//! each step. Two operations told the same position on a shard are reported apart.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::EventType;
use crate::shards::{ClientStep, Op, ShardId, Sharded};
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How many cycles are described in words (all are counted).
const DESCRIBED_CYCLES: usize = 5;
/// Start points tried per component when looking for its shortest cycle.
const BFS_STARTS: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Vertex {
    Op(usize),
    Barrier,
}

#[derive(Debug, Clone)]
enum Edge {
    Shard {
        shard: ShardId,
        account: String,
        from: u64,
        to: u64,
    },
    RealTime,
}

pub(crate) fn run(data: &Sharded, steps: &[ClientStep]) -> CheckResult {
    let mut check = Check::default();
    let mut g: DiGraph<Vertex, Edge> = DiGraph::new();
    let mut vertex: HashMap<usize, NodeIndex> = HashMap::new();
    for (i, op) in data.ops.iter().enumerate() {
        if op.complete.as_ref().is_some_and(|c| {
            !c.positions.is_empty() && c.kind != EventType::Info && !changed_and_saw_nothing(c)
        }) {
            vertex.insert(i, g.add_node(Vertex::Op(i)));
        }
    }
    check.count("operations with positions", vertex.len() as u64);
    shard_edges(data, &mut check, &mut g, &vertex);
    real_time_edges(data, steps, &mut g, &vertex);
    let sccs: Vec<Vec<NodeIndex>> = kosaraju_scc(&g)
        .into_iter()
        .filter(|c| c.len() > 1 && c.iter().any(|&n| matches!(g[n], Vertex::Op(_))))
        .collect();
    for (k, scc) in sccs.iter().enumerate() {
        if k >= DESCRIBED_CYCLES {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::Cycle,
                    "Another cycle (not described).".into(),
                    Vec::new(),
                )
            });
            continue;
        }
        let cycle = shortest_cycle(&g, scc);
        check.anomaly(|| describe_cycle(data, &g, &cycle));
    }
    check.finish()
}

/// A definite failure that neither changed nor observed a balance: anything but
/// insufficient funds (which observed the source's balance).
fn changed_and_saw_nothing(c: &crate::shards::Completion) -> bool {
    let error = c.value.str_field("error");
    c.kind == EventType::Fail && error != Some(crate::history::values::INSUFFICIENT_FUNDS)
}

/// Accounts of shard `shard` that `op` touches there.
fn touched(data: &Sharded, op: &Op, shard: ShardId) -> Vec<String> {
    let on = |a: &str| data.shard_of(a) == Some(shard);
    match op.f.as_str() {
        "transfer" => op
            .value
            .transfer()
            .map(|(f, t, _)| {
                [f, t]
                    .into_iter()
                    .filter(|a| on(a))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        "read" => op
            .value
            .str_field("account")
            .filter(|a| on(a))
            .map(|a| vec![a.to_string()])
            .unwrap_or_default(),
        _ => data
            .spec(shard)
            .map(|s| s.accounts.clone())
            .unwrap_or_default(),
    }
}

fn shard_edges(
    data: &Sharded,
    check: &mut Check,
    g: &mut DiGraph<Vertex, Edge>,
    vertex: &HashMap<usize, NodeIndex>,
) {
    let mut per_shard: BTreeMap<ShardId, Vec<(u64, usize)>> = BTreeMap::new();
    for &o in vertex.keys() {
        let c = data.ops[o].complete.as_ref().map(|c| &c.positions);
        for (&s, &p) in c.into_iter().flatten() {
            per_shard.entry(s).or_default().push((p, o));
        }
    }
    for (shard, mut order) in per_shard {
        order.sort_unstable();
        for w in order.windows(2).filter(|w| w[0].0 == w[1].0) {
            let (a, b) = (&data.ops[w[0].1], &data.ops[w[1].1]);
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::DuplicatePosition,
                    format!(
                        "{} and {} were both told position {} on shard {shard}.",
                        a.describe(),
                        b.describe(),
                        w[0].0
                    ),
                    [a.indices(), b.indices()].concat(),
                )
            });
        }
        let mut accounts: HashMap<String, AccountOrder> = HashMap::new();
        for &(p, o) in &order {
            let writes = changes(&data.ops[o]);
            for account in touched(data, &data.ops[o], shard) {
                let seen = accounts.entry(account.clone()).or_default();
                for (q, prev) in seen.step((p, o), writes) {
                    let edge = Edge::Shard {
                        shard,
                        account: account.clone(),
                        from: q,
                        to: p,
                    };
                    g.add_edge(vertex[&prev], vertex[&o], edge);
                }
            }
        }
    }
}

/// Whether an operation changed balances (a transfer that executed); every other
/// operation with a position only observed them.
fn changes(op: &Op) -> bool {
    let ok = op
        .complete
        .as_ref()
        .is_some_and(|c| c.kind == EventType::Ok);
    op.f == "transfer" && ok
}

/// One account's operations on one shard so far, as the dependencies need them: the last
/// change, and the observations since. Two observations do not depend on each other
/// (snapshots under shared locks may see one state in different orders on different
/// shards), so they get no edge; an observation follows the change it saw, and the next
/// change follows the change and every observation before it. Each operation adds at most
/// the edges to what it depends on directly, so the graph stays linear in size.
#[derive(Default)]
struct AccountOrder {
    last_change: Option<(u64, usize)>,
    observed_since: Vec<(u64, usize)>,
}

impl AccountOrder {
    /// Takes the operation at `at`; returns the ones it follows.
    fn step(&mut self, at: (u64, usize), changes: bool) -> Vec<(u64, usize)> {
        let mut before: Vec<(u64, usize)> = self.last_change.into_iter().collect();
        if changes {
            before.append(&mut self.observed_since);
            self.last_change = Some(at);
        } else {
            self.observed_since.push(at);
        }
        before.retain(|&(_, o)| o != at.1);
        before
    }
}

fn real_time_edges(
    data: &Sharded,
    steps: &[ClientStep],
    g: &mut DiGraph<Vertex, Edge>,
    vertex: &HashMap<usize, NodeIndex>,
) {
    let mut barrier: Option<NodeIndex> = None;
    // Whether an invocation hangs from the current barrier (then a later completion
    // needs a new one, or the invocation would wrongly follow it).
    let mut invoked_since = true;
    // A retried request is one operation: it begins at its first invocation and ends
    // at its definite answer (an earlier `info` says nothing about when it ran).
    let mut begun: std::collections::HashSet<NodeIndex> = std::collections::HashSet::new();
    for e in steps {
        let Some(&o) = data.op_by_key.get(&(e.client, e.request_id)) else {
            continue;
        };
        let Some(&v) = vertex.get(&o) else {
            continue;
        };
        if e.invoke {
            if !begun.insert(v) {
                continue;
            }
            if let Some(b) = barrier {
                g.add_edge(b, v, Edge::RealTime);
                invoked_since = true;
            }
        } else if data.ops[o].complete.as_ref().map(|c| c.index) == Some(e.index) {
            if invoked_since {
                let b = g.add_node(Vertex::Barrier);
                if let Some(prev) = barrier {
                    g.add_edge(prev, b, Edge::RealTime);
                }
                barrier = Some(b);
                invoked_since = false;
            }
            if let Some(b) = barrier {
                g.add_edge(v, b, Edge::RealTime);
            }
        }
    }
}

/// A shortest cycle through the component, as its vertices in order (the first is
/// not repeated at the end).
fn shortest_cycle(g: &DiGraph<Vertex, Edge>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let inside: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    let mut best: Vec<NodeIndex> = Vec::new();
    let starts = scc
        .iter()
        .filter(|&&n| matches!(g[n], Vertex::Op(_)))
        .take(BFS_STARTS);
    for &start in starts {
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        'bfs: while let Some(n) = queue.pop_front() {
            for e in g.edges(n) {
                let t = e.target();
                if !inside.contains(&t) {
                    continue;
                }
                if t == start {
                    let mut path = vec![n];
                    while let Some(&p) = parent.get(path.last().unwrap_or(&start)) {
                        path.push(p);
                    }
                    path.reverse();
                    if best.is_empty() || ops_on(g, &path) < ops_on(g, &best) {
                        best = path;
                    }
                    break 'bfs;
                }
                if t != start && !parent.contains_key(&t) {
                    parent.insert(t, n);
                    queue.push_back(t);
                }
            }
        }
    }
    best
}

fn ops_on(g: &DiGraph<Vertex, Edge>, path: &[NodeIndex]) -> usize {
    path.iter()
        .filter(|&&n| matches!(g[n], Vertex::Op(_)))
        .count()
}

/// The cycle in words: each operation, then why it precedes the next.
fn describe_cycle(data: &Sharded, g: &DiGraph<Vertex, Edge>, cycle: &[NodeIndex]) -> Anomaly {
    let op_at = |n: NodeIndex| match g[n] {
        Vertex::Op(o) => Some(o),
        Vertex::Barrier => None,
    };
    let ops: Vec<usize> = cycle.iter().filter_map(|&n| op_at(n)).collect();
    let mut steps = Vec::new();
    for (k, &n) in cycle.iter().enumerate() {
        let Some(a) = op_at(n) else { continue };
        let next = cycle[(k + 1) % cycle.len()];
        let b_pos = ops
            .iter()
            .position(|&o| o == a)
            .map_or(0, |i| (i + 1) % ops.len());
        let b = ops[b_pos];
        let (oa, ob) = (&data.ops[a], &data.ops[b]);
        let why = match g.edges_connecting(n, next).next().map(|e| e.weight()) {
            Some(Edge::Shard {
                shard,
                account,
                from,
                to,
            }) => {
                format!("on shard {shard}, account {account}: position {from} before {to}")
            }
            _ => format!(
                "real time: it completed at history index {} before the other was invoked at {}",
                oa.complete.as_ref().map_or(0, |c| c.index),
                first_invoke(data, ob)
            ),
        };
        steps.push(format!(
            "[{}] {} precedes [{}] ({why})",
            a_label(&ops, a),
            oa.describe(),
            a_label(&ops, b)
        ));
    }
    let mut indices: Vec<u64> = ops.iter().flat_map(|&o| data.ops[o].indices()).collect();
    indices.sort_unstable();
    let shards: std::collections::BTreeSet<ShardId> = ops
        .iter()
        .filter_map(|&o| data.ops[o].complete.as_ref())
        .flat_map(|c| c.positions.keys().copied())
        .collect();
    Anomaly::new(
        AnomalyKind::Cycle,
        format!(
            "{} operations over shard{} {} form a cycle no serial order can follow: {}; so back to [1].",
            ops.len(),
            if shards.len() == 1 { "" } else { "s" },
            shards.iter().map(u32::to_string).collect::<Vec<_>>().join(" and "),
            steps.join("; ")
        ),
        indices,
    )
}

fn a_label(ops: &[usize], o: usize) -> usize {
    ops.iter().position(|&x| x == o).map_or(0, |i| i + 1)
}

/// Where a (maybe retried) operation was first invoked.
fn first_invoke(data: &Sharded, op: &Op) -> u64 {
    data.ops
        .iter()
        .filter(|o| (o.client, o.request_id) == (op.client, op.request_id))
        .map(|o| o.invoke_index)
        .min()
        .unwrap_or(op.invoke_index)
}

#[cfg(test)]
mod tests {
    use super::AccountOrder;

    #[test]
    fn observations_follow_changes_and_not_each_other() {
        let mut order = AccountOrder::default();
        // Two reads, a change, a read, a change: (position, op).
        assert_eq!(order.step((1, 10), false), vec![]);
        assert_eq!(
            order.step((2, 11), false),
            vec![],
            "reads do not order reads"
        );
        assert_eq!(order.step((3, 12), true), vec![(1, 10), (2, 11)]);
        assert_eq!(order.step((4, 13), false), vec![(3, 12)]);
        assert_eq!(order.step((5, 14), true), vec![(3, 12), (4, 13)]);
        // An operation met again (another account of the same op) follows nothing of itself.
        assert_eq!(order.step((5, 14), true), vec![]);
    }
}
