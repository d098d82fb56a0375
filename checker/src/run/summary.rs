//! What both classic runners ([`super::classic`], [`super::streamed`]) put into the
//! results the same way, kept below both so neither imports the other for it.

use crate::checks::CheckResult;
use crate::final_state;
use crate::model::{Accounts, NodeState};
use crate::ops::HistoryData;
use crate::results::{FinalSummary, NodeSummary};
use crate::run::final_load::LogData;
use std::collections::BTreeMap;

/// The sections every classic check reports, finished, under the names results.json gives
/// them: one place, so the streamed runner's results cannot drift from the full one's.
pub(super) struct Sections {
    pub well_formed: CheckResult,
    pub liveness: CheckResult,
    pub conservation: CheckResult,
    pub agreement: CheckResult,
    pub total_order: CheckResult,
    pub replay: CheckResult,
    pub exactly_once: CheckResult,
}

impl Sections {
    pub(super) fn insert_into(self, checks: &mut BTreeMap<String, CheckResult>) {
        let named = [
            ("well-formed", self.well_formed),
            ("liveness", self.liveness),
            ("conservation", self.conservation),
            ("agreement", self.agreement),
            ("total-order", self.total_order),
            ("replay", self.replay),
            ("exactly-once", self.exactly_once),
        ];
        for (name, section) in named {
            checks.insert(name.to_string(), section);
        }
    }
}

/// Warns of accounts the history names and run.toml does not declare.
pub(super) fn warn_undeclared(accounts: &Accounts, warnings: &mut Vec<String>) {
    if !accounts.undeclared().is_empty() {
        warnings.push(format!(
            "accounts not declared in run.toml appear: {}",
            accounts.undeclared().join(", ")
        ));
    }
}

/// Counts the processes numbered `workers` and up (the harness's own final reads) apart
/// from the clients, so "10 clients" means the ten that ran the workload.
pub(super) fn split_internal(hist: &mut HistoryData, workers: Option<i64>) {
    let Some(workers) = workers.and_then(|w| u64::try_from(w).ok()) else {
        return;
    };
    let internal = hist
        .clients
        .raw_ids()
        .iter()
        .filter(|&&p| p >= workers)
        .count() as u64;
    hist.stats.internal_processes = internal;
    hist.stats.clients = hist.stats.clients.saturating_sub(internal);
}

pub(super) fn summarize_final(fin: Option<&LogData>, accounts: &Accounts) -> FinalSummary {
    let Some(f) = fin else {
        return FinalSummary::default();
    };
    // The harness writes a replica's earlier journal stretches as extra entries named
    // `n1:1-14274`; they are parts of replica n1, not replicas.
    let mut nodes: Vec<NodeSummary> = Vec::new();
    for n in &f.nodes {
        let name = final_state::replica_name(&n.name);
        let at = match nodes.iter().position(|s| s.name == name) {
            Some(at) => at,
            None => {
                nodes.push(NodeSummary {
                    name: name.to_string(),
                    ..NodeSummary::default()
                });
                nodes.len() - 1
            }
        };
        merge_node(&mut nodes[at], n, name != n.name, accounts);
    }
    FinalSummary {
        present: true,
        nodes,
        log_last: f.log.last(),
        log_first_gap: f.log.first_gap(),
        positions: f.positions,
    }
}

/// Adds `r` to sorted, disjoint ranges, merging ranges that overlap or touch.
fn add_range(ranges: &mut Vec<(u64, u64)>, r: (u64, u64)) {
    ranges.push(r);
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *ranges = merged;
}

/// Adds one final.json entry (the replica's own, or one of its journal stretches) to
/// its replica's summary.
fn merge_node(s: &mut NodeSummary, n: &NodeState, stretch: bool, accounts: &Accounts) {
    if n.entries > 0 {
        s.first_exec = if s.entries == 0 {
            n.first
        } else {
            s.first_exec.min(n.first)
        };
        s.last_exec = s.last_exec.max(n.last);
        s.entries += n.entries;
        add_range(&mut s.ranges, (n.first, n.last));
    }
    if stretch {
        s.stretches += 1;
        return;
    }
    s.balances_fetched = n.balances.is_some();
    s.balances = n.balances.as_ref().map(|b| {
        b.iter()
            .map(|&(a, v)| (accounts.name(a).to_string(), v))
            .collect()
    });
    s.error = n.error.clone();
}
