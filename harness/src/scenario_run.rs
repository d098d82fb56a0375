//! Running a scenario file against a real cluster, set by set.
//!
//! Semantics (those of the original banking systems' test files):
//! - At the start of a set, the replicas it lists are up (restarted on their data directories if
//!   they were down) and the others are down (killed).
//! - A transfer belongs to the client that owns its source account. Each client runs its
//!   transfers in file order, one at a time; different clients run concurrently.
//! - `LF` fails (kills) the current leader once the transfers before it have finished.
//! - A transfer that cannot commit (no quorum) is not dropped: its client keeps retrying it with
//!   the same request id, through later sets, until a quorum comes back. The set moves on after
//!   a short stall instead of waiting for it.
//! - At the end, every replica is brought back, the pending transfers drain, and the run is
//!   settled, fetched and checked like a campaign.
//!
//! With `--interactive`, a prompt between sets lets a person look inside the replicas
//! (`printdb`, `printlog`, `printstatus`, `printview`) or `kill leader` before going on.

use crate::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::cluster::{Cluster, ReplicaState};
use crate::final_phase::{settle_and_fetch, FinalTimeouts};
use crate::nemesis::names;
use crate::record::Recorder;
use crate::run::{self, Prepared, RunError, RunOptions, RunSummary};
use crate::scenario::{Scenario, Set, SetStep, Transfer};
use crate::transport::Transport;
use crate::workload::account_names;
use replica::bank::{Command, Op};
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::{ClientId, NodeId, RequestId, Slot};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// Options of `harness scenario`.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    pub run: RunOptions,
    pub file: PathBuf,
    pub interactive: bool,
    /// How long a set without a quorum is given before moving on.
    pub stall: Duration,
    /// Longest wait for a set's transfers when it has a quorum.
    pub set_timeout: Duration,
}

/// Transfers queued or in flight, and a signal when that number changes.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    changed: Notify,
}

impl Pending {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn done(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until nothing is pending or `timeout` passes; returns whether it drained.
    async fn drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if self.get() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.get() == 0;
            }
        }
    }
}

/// The owners of accounts: client k owns `accounts[k]`.
pub fn scenario_accounts(scenario: &Scenario) -> Vec<String> {
    let mut accounts: BTreeSet<String> = account_names(10).into_iter().collect();
    accounts.extend(scenario.accounts());
    accounts.into_iter().collect()
}

/// Final balances if every transfer of the scenario executes and none overdraws, or `None` if
/// some ordering could overdraw an account (then the outcome depends on timing).
pub fn expected_balances(
    scenario: &Scenario,
    accounts: &[String],
    initial: i64,
) -> Option<BTreeMap<String, i64>> {
    let mut balances: BTreeMap<String, i64> =
        accounts.iter().map(|a| (a.clone(), initial)).collect();
    let mut outflow: BTreeMap<&str, i64> = BTreeMap::new();
    for t in scenario.transfers() {
        *outflow.entry(&t.from).or_default() += t.amount;
        *balances.get_mut(&t.from)? -= t.amount;
        *balances.get_mut(&t.to)? += t.amount;
    }
    outflow
        .values()
        .all(|&out| out <= initial)
        .then_some(balances)
}

struct ClientQueues {
    senders: BTreeMap<u64, mpsc::Sender<Transfer>>,
    owners: BTreeMap<String, u64>,
    pending: Arc<Pending>,
}

impl ClientQueues {
    fn enqueue(&self, transfer: &Transfer) {
        // Accounts are known (scenario_accounts includes every transfer's), so an owner exists.
        let Some(client) = self.owners.get(&transfer.from) else {
            return;
        };
        let Some(queue) = self.senders.get(client) else {
            return;
        };
        self.pending.add();
        // Each queue can hold every transfer of the file, so this never finds it full.
        if queue.try_send(transfer.clone()).is_err() {
            self.pending.done();
        }
    }
}

/// Runs a scenario file and checks the history.
pub async fn run_scenario(opts: &ScenarioOptions) -> Result<RunSummary, RunError> {
    let wall = std::time::Instant::now();
    if opts.run.params.target != crate::targets::TargetKind::Faultline {
        // Scenario files name replicas to keep alive set by set through the replica's own
        // cluster; that mapping onto other systems is not written yet.
        return Err(RunError::Invalid(format!(
            "scenario runs support --target faultline only, not {}",
            opts.run.params.target.name()
        )));
    }
    let scenario = Scenario::load(&opts.file).map_err(|e| RunError::Invalid(e.to_string()))?;
    let mut run_opts = opts.run.clone();
    let max_node = scenario.max_node().map_or(0, |n| n.0);
    run_opts.params.nodes = run_opts.params.nodes.max(max_node);
    run_opts.params.nemesis = Vec::new();
    run_opts.params.scenario = Some(opts.file.clone());
    run::validate(&run_opts.params)?;
    let accounts = scenario_accounts(&scenario);
    let Prepared {
        dir,
        mut cluster,
        info,
    } = run::prepare(&run_opts, "scenario", accounts.clone()).await?;
    let sampler = run::start_sampler(&dir, &cluster)?;
    let copy = dir.join("scenario.csv");
    std::fs::copy(&opts.file, &copy).map_err(|source| RunError::Write { path: copy, source })?;
    let recorder = run::create_recorder(&dir)?;
    let policy = RetryPolicy {
        attempt_timeout: Duration::from_millis(run_opts.params.attempt_timeout_ms),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hint = Arc::new(LeaderHint::default());
    let pending = Arc::new(Pending::default());
    let mut senders = BTreeMap::new();
    let mut workers = Vec::new();
    let capacity = scenario.transfers().count().max(1);
    for (k, _) in accounts.iter().enumerate() {
        let (tx, rx) = mpsc::channel(capacity);
        senders.insert(k as u64, tx);
        let worker = ScenarioWorker {
            client: k as u64,
            transport: cluster.workload(),
            nodes: cluster.nodes().to_vec(),
            hint: hint.clone(),
            recorder: recorder.clone(),
            policy,
            stop: stop.clone(),
            pending: pending.clone(),
        };
        workers.push(tokio::spawn(worker.run(rx)));
    }
    let owners = accounts
        .iter()
        .enumerate()
        .map(|(k, a)| (a.clone(), k as u64))
        .collect();
    let queues = ClientQueues {
        senders,
        owners,
        pending: pending.clone(),
    };
    let mut runner = SetRunner {
        input: None,
        cluster: &mut cluster,
        recorder: &recorder,
        queues: &queues,
        opts,
        faults: 0,
    };
    let mut interactive = opts.interactive;
    for set in &scenario.sets {
        runner.run_set(set).await?;
        if interactive {
            interactive = runner.prompt(set).await;
        }
    }
    let faults = runner.faults;
    // Bring everyone back so the pending transfers can finish, then settle like a campaign.
    let restored = cluster.heal_everything()?;
    if !restored.is_empty() {
        recorder.nemesis("heal-all", json!({"actions": restored}));
    }
    let mut notes = Vec::new();
    if cluster
        .wait_for_leader(Duration::from_millis(run_opts.params.start_timeout_ms))
        .await
        .is_err()
    {
        notes.push("no leader after bringing every replica back".to_string());
    }
    if !pending.drained(opts.set_timeout).await {
        notes.push(format!(
            "{} transfers still pending at the end; recorded as info",
            pending.get()
        ));
    }
    stop.store(true, Ordering::SeqCst);
    drop(queues);
    notes.extend(
        run::await_workers(
            workers,
            Duration::from_millis(run_opts.params.op_timeout_ms),
        )
        .await,
    );
    let first_process = accounts.len() as u64;
    let mut collector = sampler.finish().await?;
    let more = settle_and_fetch(
        &cluster,
        &recorder,
        first_process,
        policy,
        FinalTimeouts::default(),
        &mut collector,
    )
    .await?;
    notes.extend(more);
    cluster.stop_all();
    run::finish(&dir, &info, &recorder, faults, notes, wall)
}

/// One client of a scenario: runs its queue in order, each transfer until it is definite.
struct ScenarioWorker {
    client: u64,
    transport: Arc<dyn Transport>,
    nodes: Vec<NodeId>,
    hint: Arc<LeaderHint>,
    recorder: Arc<Recorder>,
    policy: RetryPolicy,
    stop: Arc<AtomicBool>,
    pending: Arc<Pending>,
}

/// One submit round; a transfer is retried round after round until definite or stopped.
const ROUND: Duration = Duration::from_secs(2);

impl ScenarioWorker {
    async fn run(self, mut queue: mpsc::Receiver<Transfer>) {
        let mut request = 0;
        while let Some(transfer) = queue.recv().await {
            request += 1;
            let op = Op::Transfer {
                from: transfer.from.clone(),
                to: transfer.to.clone(),
                amount: transfer.amount,
            };
            let command = Command {
                client: ClientId(self.client),
                request: RequestId(request),
                op,
            };
            self.recorder.invoke(self.client, &command);
            let outcome = self.until_definite(&command).await;
            self.recorder.complete(self.client, &command, &outcome);
            self.pending.done();
        }
    }

    /// Retries with the same request id until a definite answer or the scenario is stopped.
    async fn until_definite(&self, command: &Command) -> Submitted {
        let start = usize::try_from(self.client).unwrap_or(0);
        loop {
            let deadline = Instant::now() + ROUND;
            let outcome = submit(
                self.transport.as_ref(),
                &self.nodes,
                &self.hint,
                command,
                start,
                deadline,
                self.policy,
            )
            .await;
            if !matches!(outcome, Submitted::Unknown { .. }) || self.stop.load(Ordering::SeqCst) {
                return outcome;
            }
        }
    }
}

struct SetRunner<'a> {
    input: Option<tokio::io::Lines<BufReader<tokio::io::Stdin>>>,
    cluster: &'a mut Cluster,
    recorder: &'a Recorder,
    queues: &'a ClientQueues,
    opts: &'a ScenarioOptions,
    faults: u32,
}

impl SetRunner<'_> {
    async fn run_set(&mut self, set: &Set) -> Result<(), RunError> {
        self.recorder.nemesis(
            "set",
            json!({"set": set.number, "line": set.line, "live": names(&set.live)}),
        );
        eprintln!(
            "set {} (line {}): live {}",
            set.number,
            set.line,
            names(&set.live).join(", ")
        );
        self.apply_live(&set.live)?;
        for step in &set.steps {
            match step {
                SetStep::Transfer(t) => self.queues.enqueue(t),
                SetStep::LeaderFail { line } => {
                    self.wait_for_set().await;
                    self.fail_leader(Some(*line)).await?;
                }
            }
        }
        self.wait_for_set().await;
        Ok(())
    }

    /// Kills the replicas not in `live`, starts (or resumes) the ones in it.
    fn apply_live(&mut self, live: &[NodeId]) -> Result<(), RunError> {
        let mut killed = Vec::new();
        let mut started = Vec::new();
        for node in self.cluster.nodes().to_vec() {
            let state = self.cluster.state(node);
            if live.contains(&node) {
                match state {
                    ReplicaState::Down => {
                        self.cluster.start(node)?;
                        started.push(node);
                    }
                    ReplicaState::Paused => self.cluster.resume(node)?,
                    ReplicaState::Running => {}
                }
            } else if state != ReplicaState::Down {
                self.cluster.kill(node)?;
                killed.push(node);
            }
        }
        if !killed.is_empty() {
            self.faults += 1;
            self.recorder
                .nemesis("kill", json!({"nodes": names(&killed), "target": "set"}));
        }
        if !started.is_empty() {
            self.recorder
                .nemesis("restart", json!({"nodes": names(&started)}));
        }
        Ok(())
    }

    fn live_count(&mut self) -> usize {
        let nodes = self.cluster.nodes().to_vec();
        nodes
            .into_iter()
            .filter(|&n| self.cluster.state(n) == ReplicaState::Running)
            .count()
    }

    /// Waits for the queued transfers: until they drain with a quorum up, or a short stall
    /// without one (they stay queued and resume when a quorum returns).
    async fn wait_for_set(&mut self) {
        let quorum = self.live_count() >= self.cluster.config().quorum();
        let wait = if quorum {
            self.opts.set_timeout
        } else {
            self.opts.stall
        };
        if !self.queues.pending.drained(wait).await && quorum {
            eprintln!(
                "  {} transfers still pending after {wait:?}; moving on",
                self.queues.pending.get()
            );
        }
    }

    /// `LF` / `kill leader`: kills whoever leads now (waiting briefly for someone to).
    async fn fail_leader(&mut self, line: Option<u64>) -> Result<(), RunError> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut leader = self.cluster.leader().await;
        while leader.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leader = self.cluster.leader().await;
        }
        match leader {
            Some(node) => {
                self.cluster.kill(node)?;
                self.faults += 1;
                self.recorder.nemesis(
                    "kill",
                    json!({"nodes": [node.to_string()], "target": "leader", "line": line}),
                );
                eprintln!("  LF: killed leader {node}");
            }
            None => {
                self.recorder
                    .nemesis("skip", json!({"reason": "no leader to fail", "line": line}));
                eprintln!("  LF: no leader to fail");
            }
        }
        Ok(())
    }

    /// The between-sets prompt. Returns whether to keep prompting (false after end of input).
    async fn prompt(&mut self, set: &Set) -> bool {
        // One reader for the whole scenario: a reader per prompt would lose what it buffered.
        let mut lines = self
            .input
            .take()
            .unwrap_or_else(|| BufReader::new(tokio::io::stdin()).lines());
        let keep = self.prompt_loop(set, &mut lines).await;
        self.input = Some(lines);
        keep
    }

    async fn prompt_loop(
        &mut self,
        set: &Set,
        lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    ) -> bool {
        loop {
            eprint!("after set {} > ", set.number);
            let Ok(Some(line)) = lines.next_line().await else {
                eprintln!();
                return false;
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] | ["next"] | ["n"] => return true,
                ["kill", "leader"] => {
                    if let Err(e) = self.fail_leader(None).await {
                        eprintln!("{e}");
                    }
                }
                ["help"] | ["?"] => eprintln!("{PROMPT_HELP}"),
                [command, args @ ..] => match self.inspect(command, args).await {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("{e}\n{PROMPT_HELP}"),
                },
            }
        }
    }

    async fn inspect(&self, command: &str, args: &[&str]) -> Result<String, String> {
        let parse_node = |s: &str| s.parse::<NodeId>().map_err(|e| e.to_string());
        let (request, node_arg) = match (command, args) {
            ("printdb", rest) => (ClientRequest::PrintDb, rest.first()),
            ("printlog", rest) => (
                ClientRequest::PrintLog {
                    from_slot: Slot(1),
                    max_entries: 1_000,
                },
                rest.first(),
            ),
            ("printview", rest) => (ClientRequest::PrintView, rest.first()),
            ("printstatus", [slot, rest @ ..]) => {
                let slot = slot
                    .parse::<u64>()
                    .map_err(|_| format!("bad slot {slot:?}"))?;
                (
                    ClientRequest::PrintStatus { slot: Slot(slot) },
                    rest.first(),
                )
            }
            _ => return Err(format!("unknown command {command:?}")),
        };
        let nodes = match node_arg {
            Some(n) => vec![parse_node(n)?],
            None => self.cluster.nodes().to_vec(),
        };
        let control = self.cluster.control();
        let mut out = String::new();
        for node in nodes {
            let answer = control
                .call(node, request.clone(), Duration::from_secs(1))
                .await;
            out.push_str(&render(node, answer));
        }
        Ok(out)
    }
}

const PROMPT_HELP: &str =
    "commands: next | printdb [node] | printlog [node] | printstatus <slot> [node] | printview [node] | kill leader";

/// Human-readable text of an introspection answer.
fn render(node: NodeId, answer: Result<ClientResponse, crate::transport::CallError>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    match answer {
        Err(e) => {
            let _ = writeln!(s, "{node}: unreachable ({e})");
        }
        Ok(ClientResponse::Db {
            exec_index,
            balances,
            ..
        }) => {
            let list: Vec<String> = balances.iter().map(|(a, b)| format!("{a}={b}")).collect();
            let _ = writeln!(s, "{node} (exec {exec_index}): {}", list.join(" "));
        }
        Ok(ClientResponse::Log {
            checkpoint_slot,
            entries,
            ..
        }) => {
            let _ = writeln!(s, "{node}: checkpoint at slot {checkpoint_slot}");
            for e in entries {
                let what = if e.noop {
                    "no-op".to_string()
                } else {
                    e.commands
                        .iter()
                        .map(|c| format!("{:?}", c.op))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                let _ = writeln!(
                    s,
                    "  slot {} [{}] ballot {}: {what}",
                    e.slot,
                    e.state.letter(),
                    e.ballot
                );
            }
        }
        Ok(ClientResponse::SlotStatus { slot, state, .. }) => {
            let _ = writeln!(s, "{node}: slot {slot} {}", state.letter());
        }
        Ok(ClientResponse::Views { views, .. }) => {
            let _ = writeln!(s, "{node}: {} views", views.len());
            for v in views {
                let _ = writeln!(
                    s,
                    "  ballot {} leader {} from slot {}",
                    v.ballot, v.leader, v.next_slot
                );
            }
        }
        Ok(other) => {
            let _ = writeln!(s, "{node}: {other:?}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    #[test]
    fn expected_balances_when_no_order_can_overdraw() {
        let s = parse(b"1,(A,B,3),[n1,n2,n3]\n,(B,C,12),\n", "x").unwrap();
        let accounts = scenario_accounts(&s);
        assert_eq!(accounts.len(), 10);
        assert_eq!(
            expected_balances(&s, &accounts, 10),
            None,
            "B sends 12 > 10: depends on order"
        );
        let s = parse(b"1,(A,B,3),[n1,n2,n3]\n,(B,C,2),\n,(Z,A,1),\n", "x").unwrap();
        let accounts = scenario_accounts(&s);
        assert_eq!(accounts.last().unwrap(), "Z");
        let e = expected_balances(&s, &accounts, 10).unwrap();
        assert_eq!((e["A"], e["B"], e["C"], e["Z"]), (8, 11, 12, 9));
    }

    #[tokio::test]
    async fn pending_drains() {
        let p = Arc::new(Pending::default());
        p.add();
        assert!(!p.drained(Duration::from_millis(20)).await);
        let q = p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            q.done();
        });
        assert!(p.drained(Duration::from_secs(1)).await);
    }
}
