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
//! The graph is held in compressed rows, one `u32` per edge (an edge's reason is found
//! again only for the cycles described). A strongly connected component with an
//! operation in it (Tarjan's algorithm, without recursion: the barrier chain is as long
//! as the history) is a cycle no serial order can follow; for each of the first few, a
//! breadth-first search finds a shortest cycle, which is reported operation by
//! operation with the kind of each step. Two operations told the same position on a shard are reported apart.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::EventType;
use crate::shards::{ClientSteps, Op, ShardId, Sharded, Step};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// How many cycles are described in words (all are counted).
const DESCRIBED_CYCLES: usize = 5;
/// Start points tried per component when looking for its shortest cycle.
const BFS_STARTS: usize = 32;
/// No vertex.
const NONE: u32 = u32::MAX;

/// Why one operation precedes another on a shard: they touched `account` there, at
/// positions `from` and `to`. Edges carry no such weight (one `u32` each): the reasons
/// are found again only for the few cycles described.
#[derive(Debug, Clone)]
struct ShardWhy {
    shard: ShardId,
    account: String,
    from: u64,
    to: u64,
}

/// The dependency graph in compressed rows: vertices `0..ops.len()` are the operations
/// (`ops[v]` is the operation's index in `Sharded::ops`), the rest real-time barriers; a
/// vertex's targets are `targets[start[v]..start[v + 1]]`, latest edge first.
struct Graph {
    ops: Vec<u32>,
    start: Vec<u32>,
    targets: Vec<u32>,
}

impl Graph {
    /// Builds the rows from the edges in the order they were added.
    fn new(ops: Vec<u32>, vertices: usize, edges: &[(u32, u32)]) -> Graph {
        let mut start = vec![0u32; vertices + 1];
        for &(a, _) in edges {
            start[a as usize + 1] += 1;
        }
        for v in 0..vertices {
            start[v + 1] += start[v];
        }
        let mut fill: Vec<u32> = start[1..].to_vec();
        let mut targets = vec![0u32; edges.len()];
        for &(a, b) in edges {
            fill[a as usize] -= 1;
            targets[fill[a as usize] as usize] = b;
        }
        Graph {
            ops,
            start,
            targets,
        }
    }

    fn vertices(&self) -> usize {
        self.start.len() - 1
    }

    fn out(&self, v: u32) -> &[u32] {
        &self.targets[self.start[v as usize] as usize..self.start[v as usize + 1] as usize]
    }

    /// The operation at `v`, if `v` is not a barrier.
    fn op(&self, v: u32) -> Option<usize> {
        self.ops.get(v as usize).map(|&o| o as usize)
    }
}

pub(crate) fn run(data: &Sharded, steps: &ClientSteps) -> CheckResult {
    let mut check = Check::default();
    let mut vertex: Vec<u32> = vec![NONE; data.ops.len()];
    let mut ops: Vec<u32> = Vec::new();
    for (i, op) in data.ops.iter().enumerate() {
        if op.complete.as_ref().is_some_and(|c| {
            !c.positions.is_empty() && c.kind != EventType::Info && !changed_and_saw_nothing(c)
        }) {
            vertex[i] = ops.len() as u32;
            ops.push(i as u32);
        }
    }
    check.count("operations with positions", ops.len() as u64);
    let mut edges: Vec<(u32, u32)> = Vec::new();
    shard_edges(data, &mut check, &vertex, &mut |a, b, _| edges.push((a, b)));
    let mut vertices = ops.len();
    real_time_edges(data, steps, &vertex, &mut vertices, &mut edges);
    let g = Graph::new(ops, vertices, &edges);
    drop(edges);
    let sccs = cycles(&g);
    let described: Vec<Vec<u32>> = sccs
        .iter()
        .take(DESCRIBED_CYCLES)
        .map(|scc| shortest_cycle(&g, scc))
        .collect();
    let why = shard_reasons(data, &vertex, &described);
    for (k, _) in sccs.iter().enumerate() {
        match described.get(k) {
            Some(cycle) => check.anomaly(|| describe_cycle(data, &g, cycle, &why)),
            None => check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::Cycle,
                    "Another cycle (not described).".into(),
                    Vec::new(),
                )
            }),
        }
    }
    check.finish()
}

/// The shard reasons of the steps between two operations of the described cycles (the
/// last edge added between them, as the cycle was found).
fn shard_reasons(
    data: &Sharded,
    vertex: &[u32],
    cycles: &[Vec<u32>],
) -> HashMap<(u32, u32), ShardWhy> {
    let mut wanted: HashSet<(u32, u32)> = HashSet::new();
    for c in cycles {
        for (k, &a) in c.iter().enumerate() {
            wanted.insert((a, c[(k + 1) % c.len()]));
        }
    }
    let mut why = HashMap::new();
    if wanted.is_empty() {
        return why;
    }
    let mut scratch = Check::default();
    shard_edges(data, &mut scratch, vertex, &mut |a, b, w| {
        if wanted.contains(&(a, b)) {
            why.insert((a, b), w());
        }
    });
    why
}

/// The strongly connected components with more than one vertex and an operation in
/// them (each sorted), by Tarjan's algorithm without recursion (the barrier chain is as
/// long as the history), ordered by their first operation.
fn cycles(g: &Graph) -> Vec<Vec<u32>> {
    let mut t = Tarjan::new(g.vertices());
    let mut out: Vec<Vec<u32>> = Vec::new();
    for root in 0..g.vertices() as u32 {
        if t.index[root as usize] == NONE {
            t.component_of(g, root, &mut out);
        }
    }
    out.sort_unstable_by_key(|scc| scc[0]);
    out
}

/// Tarjan's state: each vertex's visit number and lowest reachable one, the vertices
/// on the component stack, and the depth-first path (vertex, next edge to follow).
struct Tarjan {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<u32>,
    calls: Vec<(u32, u32)>,
    next: u32,
}

impl Tarjan {
    fn new(n: usize) -> Tarjan {
        Tarjan {
            index: vec![NONE; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            calls: Vec::new(),
            next: 0,
        }
    }

    fn enter(&mut self, g: &Graph, v: u32) {
        let i = v as usize;
        (self.index[i], self.low[i]) = (self.next, self.next);
        self.next += 1;
        self.on_stack[i] = true;
        self.stack.push(v);
        self.calls.push((v, g.start[i]));
    }

    /// Walks everything reachable from `root`, adding the cycles it closes to `out`.
    fn component_of(&mut self, g: &Graph, root: u32, out: &mut Vec<Vec<u32>>) {
        self.enter(g, root);
        while let Some(&(v, at)) = self.calls.last() {
            let v = v as usize;
            if at < g.start[v + 1] {
                if let Some(top) = self.calls.last_mut() {
                    top.1 += 1;
                }
                let w = g.targets[at as usize];
                if self.index[w as usize] == NONE {
                    self.enter(g, w);
                } else if self.on_stack[w as usize] {
                    self.low[v] = self.low[v].min(self.index[w as usize]);
                }
                continue;
            }
            self.calls.pop();
            if let Some(&(parent, _)) = self.calls.last() {
                let p = parent as usize;
                self.low[p] = self.low[p].min(self.low[v]);
            }
            if self.low[v] != self.index[v] {
                continue;
            }
            let mut scc = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w as usize] = false;
                scc.push(w);
                if w as usize == v {
                    break;
                }
            }
            if scc.len() > 1 && scc.iter().any(|&w| g.op(w).is_some()) {
                // Earliest operations first: the described cycle starts at the earliest
                // operation on a shortest one.
                scc.sort_unstable();
                out.push(scc);
            }
        }
    }
}

/// A definite failure that neither changed nor observed a balance: anything but
/// insufficient funds (which observed the source's balance).
fn changed_and_saw_nothing(c: &crate::shards::Completion) -> bool {
    let error = c.value.str_field("error");
    c.kind == EventType::Fail && error != Some(crate::history::values::INSUFFICIENT_FUNDS)
}

/// Calls `each` with the accounts of shard `shard` that `op` touches there.
fn touched<'a>(data: &'a Sharded, op: &'a Op, shard: ShardId, mut each: impl FnMut(&'a str)) {
    let on = |a: &str| data.shard_of(a) == Some(shard);
    match op.f.as_str() {
        "transfer" => {
            if let Some((f, t, _)) = op.value.transfer() {
                for a in [f, t].into_iter().filter(|a| on(a)) {
                    each(a);
                }
            }
        }
        "read" => {
            if let Some(a) = op.value.str_field("account").filter(|a| on(a)) {
                each(a);
            }
        }
        _ => {
            for a in data.spec(shard).into_iter().flat_map(|s| &s.accounts) {
                each(a);
            }
        }
    }
}

/// Takes each shard-order edge: from, to, and its reason in words on demand.
type EdgeSink<'a> = dyn FnMut(u32, u32, &dyn Fn() -> ShardWhy) + 'a;

/// Calls `edge(from, to, why)` for every shard-order edge (vertices as numbered by
/// `vertex`; `why` words it on demand), and reports positions told twice.
fn shard_edges(data: &Sharded, check: &mut Check, vertex: &[u32], edge: &mut EdgeSink<'_>) {
    let mut per_shard: BTreeMap<ShardId, Vec<(u64, usize)>> = BTreeMap::new();
    for (o, _) in vertex.iter().enumerate().filter(|(_, &v)| v != NONE) {
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
        let mut accounts: crate::model::FxMap<&str, AccountOrder> = Default::default();
        for &(p, o) in &order {
            let writes = changes(&data.ops[o]);
            touched(data, &data.ops[o], shard, |account| {
                let seen = accounts.entry(account).or_default();
                seen.step((p, o), writes, |q, prev| {
                    let why = || ShardWhy {
                        shard,
                        account: account.to_string(),
                        from: q,
                        to: p,
                    };
                    edge(vertex[prev], vertex[o], &why);
                });
            });
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
    /// Takes the operation at `at`; calls `follows(position, op)` for each one it follows.
    fn step(&mut self, at: (u64, usize), changes: bool, mut follows: impl FnMut(u64, usize)) {
        let mut emit = |(q, o): (u64, usize)| {
            if o != at.1 {
                follows(q, o);
            }
        };
        if let Some(c) = self.last_change {
            emit(c);
        }
        if changes {
            for seen in self.observed_since.drain(..) {
                emit(seen);
            }
            self.last_change = Some(at);
        } else {
            self.observed_since.push(at);
        }
    }
}

/// Adds the barrier chain (new vertices from `*vertices` on) and its edges.
fn real_time_edges(
    data: &Sharded,
    steps: &ClientSteps,
    vertex: &[u32],
    vertices: &mut usize,
    edges: &mut Vec<(u32, u32)>,
) {
    let mut barrier: Option<u32> = None;
    // Whether an invocation hangs from the current barrier (then a later completion
    // needs a new one, or the invocation would wrongly follow it).
    let mut invoked_since = true;
    // A retried request is one operation: it begins at its first invocation and ends
    // at its definite answer (an earlier `info` says nothing about when it ran).
    let mut begun = vec![false; vertex.len()];
    let index_of = |o: usize| data.ops[o].complete.as_ref().map(|c| c.index);
    // Each operation's key names the last operation of that key (a retry's).
    let last = data.op_by_key.last_of_each(&data.ops);
    for step in steps.iter() {
        // The operation the step's (client, request) names (the last one of that
        // key), whether it invoked, and the history index of an answer.
        let (o, invoke, answer) = match step {
            Step::Invoked(x) => (Some(last[x]), true, None),
            Step::Answered(x) => (Some(last[x]), false, index_of(x)),
            Step::Other(e) => (
                data.op_by_key.get(e.client, e.request_id),
                e.invoke,
                Some(e.index),
            ),
        };
        let Some(o) = o else {
            continue;
        };
        let v = vertex[o];
        if v == NONE {
            continue;
        }
        if invoke {
            if std::mem::replace(&mut begun[o], true) {
                continue;
            }
            if let Some(b) = barrier {
                edges.push((b, v));
                invoked_since = true;
            }
        } else if answer.is_some() && index_of(o) == answer {
            if invoked_since {
                let b = *vertices as u32;
                *vertices += 1;
                if let Some(prev) = barrier {
                    edges.push((prev, b));
                }
                barrier = Some(b);
                invoked_since = false;
            }
            if let Some(b) = barrier {
                edges.push((v, b));
            }
        }
    }
}

/// A shortest cycle through the component, as its vertices in order (the first is
/// not repeated at the end).
fn shortest_cycle(g: &Graph, scc: &[u32]) -> Vec<u32> {
    let inside: HashSet<u32> = scc.iter().copied().collect();
    let mut best: Vec<u32> = Vec::new();
    let starts = scc.iter().filter(|&&n| g.op(n).is_some()).take(BFS_STARTS);
    for &start in starts {
        let mut parent: HashMap<u32, u32> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        'bfs: while let Some(n) = queue.pop_front() {
            for &t in g.out(n) {
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
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(t) {
                    e.insert(n);
                    queue.push_back(t);
                }
            }
        }
    }
    best
}

fn ops_on(g: &Graph, path: &[u32]) -> usize {
    path.iter().filter(|&&n| g.op(n).is_some()).count()
}

/// The cycle in words: each operation, then why it precedes the next.
fn describe_cycle(
    data: &Sharded,
    g: &Graph,
    cycle: &[u32],
    why: &HashMap<(u32, u32), ShardWhy>,
) -> Anomaly {
    let ops: Vec<usize> = cycle.iter().filter_map(|&n| g.op(n)).collect();
    let mut steps = Vec::new();
    for (k, &n) in cycle.iter().enumerate() {
        let Some(a) = g.op(n) else { continue };
        let next = cycle[(k + 1) % cycle.len()];
        let b_pos = ops
            .iter()
            .position(|&o| o == a)
            .map_or(0, |i| (i + 1) % ops.len());
        let b = ops[b_pos];
        let (oa, ob) = (&data.ops[a], &data.ops[b]);
        let why = match why.get(&(n, next)).filter(|_| g.op(next).is_some()) {
            Some(ShardWhy {
                shard,
                account,
                from,
                to,
            }) => {
                format!("on shard {shard}, account {account}: position {from} before {to}")
            }
            None => format!(
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
    use super::{cycles, AccountOrder, Graph};

    fn steps(order: &mut AccountOrder, at: (u64, usize), changes: bool) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        order.step(at, changes, |q, o| out.push((q, o)));
        out
    }

    #[test]
    fn observations_follow_changes_and_not_each_other() {
        let mut order = AccountOrder::default();
        // Two reads, a change, a read, a change: (position, op).
        assert_eq!(steps(&mut order, (1, 10), false), vec![]);
        assert_eq!(
            steps(&mut order, (2, 11), false),
            vec![],
            "reads do not order reads"
        );
        assert_eq!(steps(&mut order, (3, 12), true), vec![(1, 10), (2, 11)]);
        assert_eq!(steps(&mut order, (4, 13), false), vec![(3, 12)]);
        assert_eq!(steps(&mut order, (5, 14), true), vec![(3, 12), (4, 13)]);
        // An operation met again (another account of the same op) follows nothing of itself.
        assert_eq!(steps(&mut order, (5, 14), true), vec![]);
    }

    /// Rows keep each vertex's edges, latest first; the components found are exactly
    /// the cycles with an operation in them (vertices 0..3 are operations).
    #[test]
    fn components_are_the_cycles_through_operations() {
        let edges = [(0, 1), (0, 4), (1, 0), (4, 5), (5, 4), (2, 3), (3, 5)];
        let g = Graph::new(vec![10, 11, 12, 13], 6, &edges);
        assert_eq!(g.out(0), &[4, 1]);
        assert_eq!(g.out(3), &[5]);
        // {0, 1} is a cycle of operations; {4, 5} one of barriers only: no finding.
        assert_eq!(cycles(&g), vec![vec![0, 1]]);
        let acyclic = Graph::new(vec![0, 1, 2], 4, &[(0, 3), (3, 1), (1, 2)]);
        assert!(cycles(&acyclic).is_empty());
        // A long chain (deeper than any call stack) and one edge back closing it.
        let n = 1_000_000u32;
        let mut chain: Vec<(u32, u32)> = (0..n - 1).map(|v| (v, v + 1)).collect();
        chain.push((n - 1, 0));
        let g = Graph::new(vec![0], n as usize, &chain);
        let found = cycles(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n as usize);
    }
}
