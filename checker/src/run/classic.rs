//! Checking a run: find its files, load them, run the checks, assemble [`Results`].
//!
//! A classic run whose full check would not fit the memory available
//! ([`super::memory`]) is first judged by [`super::streamed`], in memory that does not
//! grow with the operations (final.json first, then each operation judged as the history
//! streams). What that path does not judge clean (any anomaly or undecided case in the
//! checks it runs, a history shape it does not follow) it hands back, and this path
//! judges it from the start, holding a record per operation, so the results are
//! always this path's.
//!
//! Here the history and final.json are independent until the checks that compare them,
//! so they are read on two threads (the machine this runs on nightly has two cores). The
//! history pass also runs the streaming checks; the rest run afterwards over the
//! compact arrays both loads produced.

use crate::checks::agreement::Agreement;
use crate::checks::exactly_once;
use crate::checks::linearizable;
use crate::checks::liveness::Liveness;
use crate::checks::progress::{self, Fold, Replicas};
use crate::checks::{replay, CheckResult, Validity};
use crate::final_state::{AgreedLog, FinalError, NodeState, Positions};
use crate::load::run_files::{CheckError, RunFiles};
use crate::model::{list, Accounts};
use crate::ops::{self, HistoryData};
use crate::records::{flag, Clients, Ops};
use crate::results::Results;
use crate::run::final_load::{self, LogData};
use crate::run::memory::Memory;
use crate::run::streamed::{self, Streamed};
use crate::run::summary::{split_internal, summarize_final, warn_undeclared, Sections};
use crate::run_params::RunParams;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// How to check a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Use the exec indices the system reported. When false, the black-box
    /// `linearizable` check also runs (it uses no position the system gave). It runs
    /// anyway when some `ok` answer has no position, neither told nor in the log.
    pub trust_exec_index: bool,
    /// States the black-box search may explore before it says `unknown`.
    pub search_budget: u64,
    /// How much memory the check may take, which picks how it reads the run (the
    /// results are the same either way).
    pub memory: Memory,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            trust_exec_index: true,
            search_budget: linearizable::DEFAULT_BUDGET,
            memory: Memory::Auto,
        }
    }
}

/// Checks the run at `path` (a run directory or a history.jsonl). Writes nothing;
/// see [`Results::write_json`] and [`crate::report::write_report`].
pub fn check_run(path: impl AsRef<Path>) -> Result<Results, CheckError> {
    check_run_with(path, CheckOptions::default())
}

/// [`check_run`] with options.
pub fn check_run_with(
    path: impl AsRef<Path>,
    options: CheckOptions,
) -> Result<Results, CheckError> {
    let out = check_run_as(path.as_ref(), options, Judging::Either)?;
    out.ok_or_else(|| CheckError::Internal("no path judged the run".into()))
}

/// Whether a run the streamed check hands back is then judged by the full one: for
/// tests that hold the two ways to the same results (`checker/tests/streamed.rs`; which
/// way is tried first is [`CheckOptions::memory`]'s).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judging {
    /// The way `memory` picks, then the full check for what it hands back (what
    /// `check` does).
    Either,
    /// The streamed check only: `None` when it handed the run back.
    Streamed,
}

/// [`check_run_with`], judged the way `how` says (see [`Judging`]).
#[doc(hidden)]
pub fn check_run_as(
    path: &Path,
    options: CheckOptions,
    how: Judging,
) -> Result<Option<Results>, CheckError> {
    let started = Instant::now();
    let files = RunFiles::locate(path)?;
    let params = RunParams::load(&files.run_toml)?;
    if let Some(p) = &params {
        if let Some(specs) = crate::shards::shard_specs(p, &files.run_toml)? {
            let mut results = crate::run::sharded::check_sharded(&files, p, specs)?;
            // The harness numbers its own probes from `clients` on: not clients.
            if let Some(workers) = worker_count(p).and_then(|w| u64::try_from(w).ok()) {
                let h = &mut results.history;
                h.internal_processes = h.clients.saturating_sub(workers);
                h.clients = h.clients.min(workers);
            }
            results.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(Some(results));
        }
    }
    let declared = params
        .as_ref()
        .and_then(|p| p.accounts.clone())
        .unwrap_or_default();
    let total = params.as_ref().and_then(RunParams::total);
    let liveness = || Liveness::new(params.as_ref().and_then(|p| p.liveness_bound_ms.as_ref()));
    let mut progress = Fold::new(progress_rule(params.as_ref()));
    let accounts = Accounts::declared(&declared);
    let workers = params.as_ref().and_then(worker_count);
    let initial = params.as_ref().and_then(|p| p.initial_balance);
    let initial = initial.filter(|_| !declared.is_empty());
    // A run the bounded-memory path can judge (it needs the positions trusted and a
    // log to replay) is tried that way first when memory asks for it (`run::memory`);
    // it hands back what it cannot judge.
    // (The guard asks `streams` last: it reads the machine's memory figures.)
    let streams = || match how {
        Judging::Either => options.memory.streams(&files.history),
        Judging::Streamed => true,
    };
    let streamed = match initial {
        Some(initial) if options.trust_exec_index && streams() => {
            let p = streamed::Params {
                accounts: accounts.clone(),
                total,
                liveness: liveness(),
                initial,
                workers,
            };
            streamed::check(&files, p, &mut progress)
        }
        _ => Streamed::Classic(None),
    };
    let mut results = match streamed {
        Streamed::Judged(results) => *results,
        Streamed::Classic(_) if how == Judging::Streamed => return Ok(None),
        Streamed::Classic(fin) => {
            // The streamed attempt fed the progress rule: start it afresh.
            progress = Fold::new(progress_rule(params.as_ref()));
            let load = (accounts, total, liveness());
            let mut loaded = load_both(&files, load, &mut progress, fin.map(|f| f.map(|b| *b)))?;
            split_internal(&mut loaded.hist, workers);
            let sessions = params.as_ref().is_some_and(keeps_sessions);
            check_loaded(loaded, initial, sessions, options)
        }
    };
    if params.is_none() {
        results
            .warnings
            .push(format!("{} is missing", files.run_toml.display()));
    }
    let check = progress.finish(&files.history)?;
    results.checks.insert("progress".to_string(), check);
    results.valid = Validity::combine(results.checks.values().map(|c| c.valid));
    results.run_dir = files.dir.display().to_string();
    results.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Some(results))
}

/// The `progress` check's rule (`checks::progress`): it applies when run.toml gives
/// `progress_bound_ms` and the cluster's `nodes` (top level or under `[params]`, where the
/// harness writes it). It is judged in the history pass.
fn progress_rule(p: Option<&RunParams>) -> Result<(u64, Replicas), String> {
    match p {
        None => Err("there is no run.toml".to_string()),
        Some(p) => progress::bound_ms(p.table.get("progress_bound_ms")).and_then(|bound| {
            let nodes = p
                .table
                .get("nodes")
                .or_else(|| p.table.get("params")?.get("nodes"))
                .and_then(toml::Value::as_integer)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or("run.toml gives no cluster size (a positive integer nodes)")?;
            Ok((bound, Replicas::Classic(nodes)))
        }),
    }
}

/// How many client processes ran the workload: run.toml's `clients`, at its top level
/// or under `[params]` where the harness writes it.
fn worker_count(p: &RunParams) -> Option<i64> {
    p.table
        .get("clients")
        .or_else(|| p.table.get("params")?.get("clients"))
        .and_then(toml::Value::as_integer)
}

/// What the two loading threads produce, with the sorts each can do on its own.
struct Loaded {
    hist: HistoryData,
    /// Operations told an exec index, sorted by it (ties in history order).
    by_exec: Vec<u32>,
    /// Operations and log slots in (client, request id) order, for exactly-once.
    op_order: Vec<u32>,
    fin: Option<(LogData, Vec<u32>)>,
}

/// Reads both files on two threads; final.json only when `preloaded` does not hold
/// it as read already.
fn load_both(
    files: &RunFiles,
    (accounts, total, liveness): (Accounts, Option<i128>, Liveness),
    progress: &mut Fold,
    preloaded: Option<Option<LogData>>,
) -> Result<Loaded, CheckError> {
    std::thread::scope(|s| {
        let fin_accounts = accounts.clone();
        let fin = s.spawn(move || {
            let data = match preloaded {
                Some(data) => data,
                None => final_load::load_log(&files.final_json, fin_accounts)?,
            };
            Ok::<_, FinalError>(data.map(|d| {
                let order = exactly_once::log_order(&d.log);
                (d, order)
            }))
        });
        let hist = ops::read_history(
            &files.history,
            accounts,
            total,
            liveness,
            |ev, text, fast| progress.line(ev, text, fast),
        );
        let prepared = hist.map(|h| {
            let by_exec = sorted_by_exec(&h.ops);
            let op_order = exactly_once::op_order(&h.ops, &h.clients);
            (h, by_exec, op_order)
        });
        let fin = fin
            .join()
            .map_err(|_| CheckError::Internal("the final.json reader panicked".into()))?;
        let (hist, by_exec, op_order) = prepared?;
        Ok(Loaded {
            hist,
            by_exec,
            op_order,
            fin: fin?,
        })
    })
}

/// Runs the checks that need both the history and the log.
/// Whether the system under test keeps faultline's client sessions: a request never
/// executes after a later one of its client did. A real run says `target =
/// "faultline"`; a simulated one (`kind = "sim"`) always runs the faultline replica.
fn keeps_sessions(p: &RunParams) -> bool {
    let key = |k: &str| p.table.get(k).and_then(toml::Value::as_str);
    key("target") == Some("faultline") || (key("target").is_none() && key("kind") == Some("sim"))
}

fn check_loaded(
    loaded: Loaded,
    initial: Option<i64>,
    sessions: bool,
    options: CheckOptions,
) -> Results {
    let Loaded {
        hist,
        mut by_exec,
        op_order,
        fin,
    } = loaded;
    let (mut fin, log_order) = match fin {
        Some((f, order)) => (Some(f), order),
        None => (None, Vec::new()),
    };
    let HistoryData {
        mut ops,
        read_alls,
        clients,
        mut accounts,
        stats,
        mut warnings,
        mut conservation,
        mut total_order,
        well_formed,
        liveness,
        finished: _,
    } = hist;
    if let Some(f) = &mut fin {
        align_accounts(&mut accounts, f);
    }
    warn_undeclared(&accounts, &mut warnings);
    let positions = fin.as_ref().map_or(Positions::Unique, |f| f.positions);
    let fin_base = fin.as_ref().and_then(|f| f.base_revision);
    if positions == Positions::SharedReads {
        writes_first(&mut by_exec, &ops);
    }
    total_order.settle(positions, &ops, &clients, &accounts);
    total_order.unique(positions, &ops, &by_exec, &clients, &accounts);
    total_order.client_order(positions, &ops, &clients, &accounts);
    conservation.final_state(fin.as_ref().map(|f| f.nodes.as_slice()), &accounts);

    // With no replica fetched, there is no log at all: nothing may be taken as absent.
    let fetched = fin
        .as_ref()
        .is_some_and(|f| f.nodes.iter().any(NodeState::fetched));
    let (agreement, replay, exactly_once) = match &mut fin {
        Some(f) if !fetched => (
            std::mem::take(&mut f.agreement).finish(Some(&f.nodes)),
            replay::unknown(
                "no replica's final state could be fetched, so there is no log to replay",
            ),
            exactly_once::unknown(
                "no replica's final state could be fetched, so the log cannot be searched",
            ),
        ),
        None => (
            Agreement::default().finish(None),
            replay::unknown("there is no final.json, so there is no log to replay"),
            exactly_once::unknown(
                "there is no final.json, so the log cannot be searched for operations",
            ),
        ),
        Some(f) => {
            let placed = place_by_log(&mut ops, &f.log, &log_order, &clients);
            if !placed.is_empty() {
                by_exec = sorted_by_exec(&ops);
                if positions == Positions::SharedReads {
                    writes_first(&mut by_exec, &ops);
                }
                for &op in &placed {
                    let exec = ops.exec(op);
                    total_order.late(&ops, op, exec, &clients, &accounts);
                }
            }
            // Replay and exactly-once share only read-only inputs: run them side by
            // side (the machine this runs on nightly has two cores).
            let LogData {
                log,
                nodes,
                agreement,
                ..
            } = &mut *f;
            let (log, nodes, ops, by_exec) = (&*log, &*nodes, &ops, &by_exec);
            let (clients, accounts) = (&clients, &accounts);
            let total_order = &mut total_order;
            let (mut replay, eo) = std::thread::scope(|s| {
                let eo = s.spawn(|| {
                    exactly_once::run(
                        &exactly_once::Input {
                            ops,
                            clients,
                            accounts,
                            log,
                            log_order: &log_order,
                            op_order: &op_order,
                            positions,
                        },
                        total_order,
                    )
                });
                let replay = match initial {
                    Some(initial) => replay::run(
                        &replay::Input {
                            ops,
                            read_alls: &read_alls,
                            by_exec,
                            clients,
                            accounts,
                            log,
                            nodes,
                            initial,
                            positions,
                            base_revision: fin_base,
                        },
                        agreement,
                    ),
                    None => {
                        for _ in nodes.iter().filter(|n| n.balances.is_some()) {
                            agreement.balances_undecided();
                        }
                        replay::unknown("run.toml does not give accounts and initial_balance, so the log cannot be replayed")
                    }
                };
                // A panic there is a bug: let it surface as it would have unthreaded.
                let eo = eo.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                (replay, eo)
            });
            if !placed.is_empty() {
                replay.counts.insert(
                    "ok answers without exec_index, placed where the log holds them".into(),
                    placed.len() as u64,
                );
            }
            let agreement = std::mem::take(&mut f.agreement).finish(Some(&f.nodes));
            (agreement, replay, eo)
        }
    };

    let mut checks = BTreeMap::new();
    let unplaced = ops.iter().any(|o| o.exec == 0 && o.has(flag::OBS_OK));
    if !options.trust_exec_index || unplaced {
        let result = match initial {
            Some(initial) => linearizable::run(&linearizable::Input {
                ops: &ops,
                read_alls: &read_alls,
                clients: &clients,
                accounts: &accounts,
                initial,
                budget: options.search_budget,
                sessions,
            }),
            None => linearizable::unknown(
                "run.toml does not give accounts and initial_balance, so there is no state to search from",
            ),
        };
        checks.insert("linearizable".to_string(), result);
    }
    Sections {
        well_formed: well_formed.finish(stats.events - stats.nemesis),
        liveness: liveness.finish(stats.last_time_ns, &clients, &accounts),
        conservation: conservation.finish(),
        agreement,
        total_order: total_order.finish(),
        replay,
        exactly_once,
    }
    .insert_into(&mut checks);
    for c in checks.values_mut() {
        attach_history(c, &ops, &by_exec);
    }
    let final_state = summarize_final(fin.as_ref(), &accounts);
    Results::judged(stats, final_state, warnings, checks)
}

/// Gives the log the history's account numbering (they were interned separately).
fn align_accounts(accounts: &mut Accounts, fin: &mut LogData) {
    let map = accounts.merge(&fin.accounts);
    if map.iter().enumerate().all(|(i, &a)| i as u32 == a) {
        return;
    }
    fin.log.remap_accounts(&map);
    for n in &mut fin.nodes {
        if let Some(b) = &mut n.balances {
            for (a, _) in b.iter_mut() {
                *a = map.get(*a as usize).copied().unwrap_or(*a);
            }
            b.sort_unstable();
        }
    }
}

/// Operations told an exec index, sorted by it (ties in history order).
fn sorted_by_exec(ops: &Ops) -> Vec<u32> {
    let told = || (0..ops.len() as u32).filter(|&i| ops.exec(i) != 0);
    let execs = told().map(|i| ops.exec(i));
    let (count, lo, hi) = execs.fold((0usize, u64::MAX, 0), |(n, lo, hi), e| {
        (n + 1, lo.min(e), hi.max(e))
    });
    let range = hi.saturating_sub(lo).saturating_add(1);
    if count == 0 || range > 2 * count as u64 + 1024 {
        // Positions far apart (a corrupt exec index, a sparse log): compare. Answers
        // arrive nearly in exec order, so the adaptive stable sort has little to do.
        let mut order: Vec<u32> = told().collect();
        order.sort_by_key(|&i| ops.exec(i));
        return order;
    }
    // Exec indices are dense (one per log slot): a counting sort, two passes over
    // the records in memory order instead of comparisons that jump between them.
    // Stable: ties stay in history order.
    let mut start = vec![0u32; range as usize + 1];
    for i in told() {
        start[(ops.exec(i) - lo) as usize + 1] += 1;
    }
    for k in 1..start.len() {
        start[k] += start[k - 1];
    }
    let mut order = vec![0u32; count];
    for i in told() {
        let at = &mut start[(ops.exec(i) - lo) as usize];
        order[*at as usize] = i;
        *at += 1;
    }
    order
}

/// Under shared positions, the write at each exec index goes before the operations
/// that observed it. `by_exec` is sorted by exec index ([`sorted_by_exec`]): each run of
/// one exec index is partitioned stably, as a stable sort by (exec index, observes)
/// would order it, reading each record once.
fn writes_first(by_exec: &mut [u32], ops: &Ops) {
    let mut observers = Vec::new();
    let mut start = 0;
    while let Some(&first) = by_exec.get(start) {
        let exec = ops.exec(first);
        let len = by_exec[start..]
            .iter()
            .take_while(|&&o| ops.exec(o) == exec)
            .count();
        let run = &mut by_exec[start..start + len];
        observers.clear();
        let mut writes = 0;
        for i in 0..run.len() {
            let o = run[i];
            if ops.get(o).observes() {
                observers.push(o);
            } else {
                run[writes] = o;
                writes += 1;
            }
        }
        run[writes..].copy_from_slice(&observers);
        start += len;
    }
}

/// Ok answers that carried no exec_index are not skipped: when the log holds their
/// (client, request id) exactly once, that is where the command executed, so their
/// results are replayed there and they get the real-time check. (Absent or twice is
/// exactly-once's to report.) Returns the operations placed.
fn place_by_log(ops: &mut Ops, log: &AgreedLog, log_order: &[u32], clients: &Clients) -> Vec<u32> {
    let key_at = |at: u32| log.at(at).map(|s| (log.client(&s), s.request_id));
    let mut placed = Vec::new();
    for i in 0..ops.len() as u32 {
        let mut o = ops.get(i);
        if o.exec != 0 || !o.has(flag::OBS_OK) {
            continue;
        }
        let key = Some((clients.raw(o.client), o.request_id));
        let start = log_order.partition_point(|&at| key_at(at) < key);
        let mut found = log_order[start..]
            .iter()
            .take_while(|&&at| key_at(at) == key);
        if let (Some(&at), None) = (found.next(), found.next()) {
            o.exec = log.exec_of(at);
            o.flags |= flag::EXEC_FROM_LOG;
            ops.set(i, &o);
            placed.push(i);
        }
    }
    placed
}

/// Anomalies about log slots name the history events that saw those slots.
fn attach_history(check: &mut CheckResult, ops: &Ops, by_exec: &[u32]) {
    for a in &mut check.anomalies {
        if !a.indices.is_empty() || a.exec_indices.is_empty() {
            continue;
        }
        let mut indices = Vec::new();
        for &e in &a.exec_indices {
            let start = by_exec.partition_point(|&o| ops.exec(o) < e);
            for &o in by_exec[start..].iter().take_while(|&&o| ops.exec(o) == e) {
                indices.extend(ops.get(o).indices());
            }
        }
        if !indices.is_empty() {
            a.message.push_str(&format!(
                " Clients were told these positions at history indices {}.",
                list(&indices)
            ));
            a.indices = indices;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cmd;
    use crate::records::OpRec;

    /// Operations told the given exec indices (0: none), in history order.
    fn ops_with(execs: &[u64]) -> Ops {
        let cmd = Cmd::Read { account: 0 };
        execs
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let mut o = OpRec::new(0, crate::records::NO_OP, i as u64, cmd, i as u64);
                o.exec = e;
                o
            })
            .collect()
    }

    /// What the counting sort must equal: a stable comparison sort by exec index.
    fn by_comparison(ops: &Ops) -> Vec<u32> {
        let mut order: Vec<u32> = (0..ops.len() as u32)
            .filter(|&i| ops.exec(i) != 0)
            .collect();
        order.sort_by_key(|&i| ops.exec(i));
        order
    }

    #[test]
    fn writes_go_first_at_each_exec_index_as_a_stable_sort_would_put_them() {
        // Reads observe; transfers that executed ok write.
        let kinds = [1, 0, 1, 1, 0, 0, 1, 0, 1];
        let execs = [3, 3, 3, 5, 5, 7, 7, 0, 9];
        let ops: Ops = execs
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(i, (&e, read))| {
                let cmd = if read == 1 {
                    Cmd::Read { account: 0 }
                } else {
                    Cmd::Transfer {
                        from: 0,
                        to: 1,
                        amount: 1,
                    }
                };
                let mut o = OpRec::new(0, crate::records::NO_OP, i as u64, cmd, i as u64);
                o.exec = e;
                o.flags |= flag::OK;
                o
            })
            .collect();
        let mut order = sorted_by_exec(&ops);
        let mut expected = order.clone();
        expected.sort_by_key(|&o| (ops.exec(o), ops.get(o).observes()));
        writes_first(&mut order, &ops);
        assert_eq!(order, expected);
        assert_eq!(order, [1, 0, 2, 4, 3, 5, 6, 8]);
    }

    #[test]
    fn exec_order_is_stable_whether_positions_are_dense_or_far_apart() {
        let dense = [5, 3, 0, 4, 3, 6, 5, 0, 7, 3];
        let far = [5, 3, 0, u64::MAX, 3, 1 << 40, 5, 0, 7, 3];
        for execs in [&dense[..], &far[..], &[0, 0][..], &[][..], &[9][..]] {
            let ops = ops_with(execs);
            assert_eq!(sorted_by_exec(&ops), by_comparison(&ops), "{execs:?}");
        }
        assert_eq!(sorted_by_exec(&ops_with(&dense)), [1, 4, 9, 3, 0, 6, 5, 8]);
    }
}
