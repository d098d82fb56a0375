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
//! - The file must fit the cluster: an account outside the bank (A..J) or a replica beyond
//!   `--nodes` is refused with its line, before anything starts.
//!
//! With `--interactive`, a prompt before each set and after the last lets a person look inside
//! the replicas (`printdb`, `printlog`, `printstatus`, `printview`, `status`), kill, restart,
//! cut and heal, then go on, run the rest, or quit (see [`crate::scenario::repl`]). Either way the run
//! ends by printing every replica's final balances.
//!
//! How: the runner drives any [`Target`] (`--target faultline|etcd`): nodes are started and
//! killed through it, each client submits through its [`Target::roaming_client`] (which gets
//! through whichever nodes are up), the ending is the target's own final phase, and the
//! prompt's questions are answered by [`Target::inspect`] in the system's own terms.

use crate::clients::caller::Submitted;
use crate::clients::workload::account_names;
use crate::faults::nemesis::{cuts_value, names};
use crate::os::process::ReplicaState;
use crate::os::relay::{Link, Peer};
use crate::params::TargetKind;
use crate::record::Recorder;
use crate::run;
use crate::run::shared::{RunError, RunOptions, RunSummary};
use crate::scenario::repl::{parse_command, Input, KillTarget, LineReader, ReplCommand, HELP};
use crate::scenario::{Scenario, Set, SetStep, Transfer};
use crate::targets::{BankClient, Inspect, Target};
use checker::text::count;
use replica::bank::{Command, Op, OpResult};
use replica::types::{ClientId, NodeId, RequestId};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
    /// A replay of an interactive run: what its operator typed at each prompt (its
    /// `prompt.jsonl`), played back instead of asking anyone.
    pub script: Option<Vec<PromptEntry>>,
}

/// The file of a run directory where an interactive scenario records what was typed at each
/// prompt, one JSON object a line, so that `harness replay` can do it again.
pub const PROMPT_FILE: &str = "prompt.jsonl";

/// The note a replay's summary carries when the recorded prompt session ran out before the
/// scenario ended (the original was interrupted there): the replay is then not faithful.
pub const SCRIPT_ENDED: &str = "the recorded prompt session ends";

/// One line typed at the prompt: which prompt (0 for the first shown), its label, the line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptEntry {
    pub prompt: u32,
    pub label: String,
    /// What was typed; Ctrl-D (the end of the input) is recorded as `quit`.
    pub line: String,
}

/// Reads a run's `prompt.jsonl`, if it has one.
pub fn load_prompt_log(dir: &std::path::Path) -> Result<Option<Vec<PromptEntry>>, RunError> {
    let path = dir.join(PROMPT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RunError::Invalid(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let mut entries = Vec::new();
    for (k, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry = serde_json::from_str(line).map_err(|e| {
            RunError::Invalid(format!(
                "{}:{}: not a prompt entry: {e}",
                path.display(),
                k + 1
            ))
        })?;
        entries.push(entry);
    }
    Ok(Some(entries))
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

/// The bank a scenario runs against (A..J, as in the original course); client k owns
/// `accounts[k]`.
pub fn bank_accounts() -> Vec<String> {
    let names = account_names(run::shared::DEFAULT_ACCOUNTS as usize);
    names.into_iter().map(String::from).collect()
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
        *balances.get_mut(t.from.as_str())? -= t.amount;
        *balances.get_mut(t.to.as_str())? += t.amount;
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
        // Scenario::check refused accounts outside the bank, so an owner exists.
        let Some(client) = self.owners.get(transfer.from.as_str()) else {
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
    let mut run_opts = opts.run.clone();
    run_opts.params.nemesis = Vec::new();
    run_opts.params.scenario = Some(opts.file.clone());
    run_opts.params.stall_ms = Some(run::shared::ms(opts.stall));
    run_opts.params.set_timeout_ms = Some(run::shared::ms(opts.set_timeout));
    run::validate(&run_opts.params)?;
    let accounts = bank_accounts();
    let scenario = Scenario::load_checked(&opts.file, &accounts, run_opts.params.nodes)
        .map_err(|e| RunError::Invalid(e.to_string()))?;
    // One client per account (processes 0..accounts); run.toml says so, which is how the
    // checker tells them from the final reads that follow (see `final_phase`).
    run_opts.params.clients = u32::try_from(accounts.len()).unwrap_or(u32::MAX);
    let (dir, mut target, info) =
        run::prepare_target(&run_opts, "scenario", accounts.clone()).await?;
    target.begin().await?;
    let copy = dir.join("scenario.csv");
    std::fs::copy(&opts.file, &copy).map_err(|cause| RunError::Write { path: copy, cause })?;
    let recorder = run::create_recorder(&dir)?;
    let node_shards = target.node_shards();
    if !node_shards.is_empty() {
        recorder.set_node_shards(node_shards);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let client = target.roaming_client();
    let pending = Arc::new(Pending::default());
    let mut senders = BTreeMap::new();
    let mut workers = Vec::new();
    let capacity = scenario.transfers().count().max(1);
    for (k, _) in accounts.iter().enumerate() {
        let (tx, rx) = mpsc::channel(capacity);
        senders.insert(k as u64, tx);
        let worker = ScenarioWorker {
            client: k as u64,
            bank: client.clone(),
            recorder: recorder.clone(),
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
    let prompt_log = match (opts.interactive || opts.script.is_some(), &opts.script) {
        (false, _) => None,
        (true, script) => {
            let path = dir.join(PROMPT_FILE);
            let file =
                std::fs::File::create(&path).map_err(|cause| RunError::Write { path, cause })?;
            if let Some(script) = script {
                println!(
                    "replaying {} typed at the original's prompt",
                    count(script.len() as u64, "line")
                );
            }
            Some(file)
        }
    };
    let mut runner = SetRunner {
        reader: None,
        target: target.as_mut(),
        recorder: &recorder,
        queues: &queues,
        opts,
        faults: 0,
        cuts: Vec::new(),
        held_down: Vec::new(),
        prompts: 0,
        prompt_log,
        script: opts.script.clone().map(Into::into),
        script_ran_out: false,
    };
    let mut notes = runner.run_sets(&scenario).await?;
    let faults = runner.faults;
    // Bring everyone back so the pending transfers can finish, then settle like a campaign.
    let restored = target.heal_everything()?;
    if !restored.is_empty() {
        recorder.nemesis("heal-all", json!({"actions": restored}));
    }
    let noun = target.kind().node_noun();
    if !wait_for_leader(
        target.as_ref(),
        Duration::from_millis(run_opts.params.start_timeout_ms),
    )
    .await
    {
        notes.push(format!("no leader after bringing every {noun} back"));
    }
    if !pending.drained(opts.set_timeout).await {
        notes.push(format!(
            "{} still pending at the end; recorded as info",
            count(pending.get() as u64, "transfer")
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
    let more = target.final_phase(&recorder, first_process).await?;
    notes.extend(more);
    target.stop_all();
    let mut summary = run::finish(&dir, &info, &recorder, faults, notes, wall)?;
    print_final_balances(&dir, target.kind());
    run::apply_retention(&mut summary, opts.run.keep_data)?;
    Ok(summary)
}

/// Polls the target until some node leads; whether one did within `timeout`.
async fn wait_for_leader(target: &dyn Target, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if target.leader().await.is_some() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node's final balances, from the run's final.json, as a table on stdout.
fn print_final_balances(dir: &std::path::Path, kind: TargetKind) {
    let noun = kind.node_noun();
    match checker::final_state::FinalState::load(dir.join("final.json")) {
        Ok(state) => {
            let balances = state
                .nodes
                .into_iter()
                .map(|(name, node)| (name, node.balances))
                .collect();
            println!("final balances per {noun}:");
            print!(
                "{}",
                crate::scenario::repl::render_balances(&balances, noun)
            );
        }
        Err(e) => println!("final balances: cannot read final.json: {e}"),
    }
}

/// One client of a scenario: runs its queue in order, each transfer until it is definite.
struct ScenarioWorker {
    client: u64,
    bank: Arc<dyn BankClient>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    pending: Arc<Pending>,
}

/// One submit round; a transfer is retried round after round until definite or stopped.
const ROUND: Duration = Duration::from_secs(2);
/// Pause before a transfer refused for now (see [`refused_for_now`]) is tried again.
const RETRY_REFUSED: Duration = Duration::from_millis(20);

/// A definite outcome that changed nothing and may go otherwise later: a lock held by a
/// cross-shard transaction, a shard too busy, an aborted transaction.
fn refused_for_now(outcome: &Submitted) -> bool {
    matches!(
        outcome,
        Submitted::Executed { reply, .. } if matches!(
            reply.result,
            OpResult::LockConflict { .. } | OpResult::Busy | OpResult::Aborted { .. }
        )
    )
}

impl ScenarioWorker {
    async fn run(self, mut queue: mpsc::Receiver<Transfer>) {
        let mut request = 0;
        while let Some(transfer) = queue.recv().await {
            let op = Op::Transfer {
                from: transfer.from.clone(),
                to: transfer.to.clone(),
                amount: transfer.amount,
            };
            // A sharded bank refuses a transfer that meets another's lock (no-wait) or is
            // aborted; it changed nothing, so the file's transfer is tried again, as a new
            // request, until it executes.
            loop {
                request += 1;
                let command = Command {
                    client: ClientId(self.client),
                    request: RequestId(request),
                    op: op.clone(),
                };
                self.recorder.invoke(self.client, &command);
                let outcome = self.until_definite(&command).await;
                self.recorder.complete(self.client, &command, &outcome);
                if !refused_for_now(&outcome) || self.stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(RETRY_REFUSED).await;
            }
            self.pending.done();
        }
    }

    /// Retries with the same request id until a definite answer or the scenario is stopped.
    async fn until_definite(&self, command: &Command) -> Submitted {
        loop {
            let outcome = self.bank.submit(command, Instant::now() + ROUND).await;
            if !matches!(outcome, Submitted::Unknown { .. }) || self.stop.load(Ordering::SeqCst) {
                return outcome;
            }
        }
    }
}

/// Where the prompt leaves the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Go {
    Next,
    /// The remaining sets without prompting.
    Continue,
    Quit,
}

struct SetRunner<'a> {
    /// The prompt's line reader, started at the first prompt.
    reader: Option<LineReader>,
    target: &'a mut dyn Target,
    recorder: &'a Recorder,
    queues: &'a ClientQueues,
    opts: &'a ScenarioOptions,
    faults: u32,
    /// The links cut at the prompt (only the prompt cuts links in a scenario).
    cuts: Vec<Link>,
    /// Nodes killed at the prompt: they stay down, even through sets that list them live,
    /// until `restart` at the prompt.
    held_down: Vec<NodeId>,
    /// Prompts shown so far.
    prompts: u32,
    /// Where each line typed at the prompt is recorded (`prompt.jsonl`).
    prompt_log: Option<std::fs::File>,
    /// A replay's recorded lines, played back instead of reading the terminal.
    script: Option<std::collections::VecDeque<PromptEntry>>,
    /// Whether the recorded lines ran out before the scenario ended.
    script_ran_out: bool,
}

impl SetRunner<'_> {
    /// Runs the sets in order, prompting before each and after the last when interactive.
    /// Returns notes for the summary (sets skipped by `quit`).
    async fn run_sets(&mut self, scenario: &Scenario) -> Result<Vec<String>, RunError> {
        let mut prompting = self.opts.interactive || self.script.is_some();
        if prompting {
            println!(
                "{} in {}. Enter (or next) runs the next one; help lists the commands.",
                count(scenario.sets.len() as u64, "set"),
                self.opts.file.display()
            );
        }
        for (k, set) in scenario.sets.iter().enumerate() {
            if prompting {
                println!("next: {}", describe_set(set));
                match self.prompt(&format!("set {}", set.number)).await {
                    Go::Next => {}
                    Go::Continue => prompting = false,
                    Go::Quit => {
                        let skipped = (scenario.sets.len() - k) as u64;
                        let mut notes = self.script_notes();
                        notes.push(format!(
                            "quit at the prompt: {} not run",
                            count(skipped, "set")
                        ));
                        return Ok(notes);
                    }
                }
            }
            self.run_set(set).await?;
        }
        if prompting {
            println!("every set ran; next (or quit) finishes the run: heal, settle, check");
            self.prompt("end").await;
        }
        Ok(self.script_notes())
    }

    /// Whether a replayed prompt session ran out before the scenario ended.
    fn script_notes(&self) -> Vec<String> {
        if !self.script_ran_out {
            return Vec::new();
        }
        vec![format!(
            "{SCRIPT_ENDED} before the scenario did (the original was interrupted at its \
             prompt): the replay quit there"
        )]
    }

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
        for node in self.target.nodes().to_vec() {
            let state = self.target.state(node);
            if live.contains(&node) {
                match state {
                    ReplicaState::Down if self.held_down.contains(&node) => {
                        eprintln!(
                            "  {node} stays down: killed at the prompt (restart {node} brings it back)"
                        );
                    }
                    ReplicaState::Down => {
                        self.target.start(node)?;
                        started.push(node);
                    }
                    ReplicaState::Paused => self.target.resume(node)?,
                    ReplicaState::Running => {}
                }
            } else if state != ReplicaState::Down {
                self.target.kill(node)?;
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
        let nodes = self.target.nodes().to_vec();
        nodes
            .into_iter()
            .filter(|&n| self.target.state(n) == ReplicaState::Running)
            .count()
    }

    /// Whether the running replicas make a quorum: of the cluster, or of every shard of a
    /// sharded bank (a shard without one stalls every transfer that touches it).
    fn has_quorum(&mut self) -> bool {
        let node_shards = self.target.node_shards();
        if node_shards.is_empty() {
            return self.live_count() >= self.target.quorum();
        }
        let mut per_shard: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
        for (node, shard) in node_shards {
            let (live, all) = per_shard.entry(shard).or_default();
            *all += 1;
            *live += usize::from(self.target.state(node) == ReplicaState::Running);
        }
        per_shard.values().all(|(live, all)| *live > all / 2)
    }

    /// Waits for the queued transfers: until they drain with a quorum up, or a short stall
    /// without one (they stay queued and resume when a quorum returns).
    async fn wait_for_set(&mut self) {
        let quorum = self.has_quorum();
        let wait = if quorum {
            self.opts.set_timeout
        } else {
            self.opts.stall
        };
        if !self.queues.pending.drained(wait).await && quorum {
            eprintln!(
                "  {} still pending after {wait:?}; moving on",
                count(self.queues.pending.get() as u64, "transfer")
            );
        }
    }

    /// `LF` / `kill leader`: kills whoever leads now (waiting briefly for someone to); on a
    /// sharded bank, every shard's leader.
    async fn fail_leader(&mut self, line: Option<u64>) -> Result<Vec<NodeId>, RunError> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut leaders = self.leaders().await;
        while leaders.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leaders = self.leaders().await;
        }
        match leaders.is_empty() {
            false => {
                for &node in &leaders {
                    self.target.kill(node)?;
                }
                self.faults += 1;
                let nodes = names(&leaders);
                let target = if leaders.len() > 1 {
                    "shard-leaders"
                } else {
                    "leader"
                };
                self.recorder.nemesis(
                    "kill",
                    json!({"nodes": nodes, "target": target, "line": line}),
                );
                eprintln!("  LF: killed {target} {}", nodes.join(", "));
            }
            true => {
                self.recorder
                    .nemesis("skip", json!({"reason": "no leader to fail", "line": line}));
                eprintln!("  LF: no leader to fail");
            }
        }
        Ok(leaders)
    }

    /// The leader, or on a sharded bank every shard leader known now.
    async fn leaders(&self) -> Vec<NodeId> {
        if self.target.node_shards().is_empty() {
            return self.target.leader().await.into_iter().collect();
        }
        self.target.shard_leaders().await.into_values().collect()
    }

    /// Reads and runs commands until one moves the scenario on.
    async fn prompt(&mut self, label: &str) -> Go {
        let number = self.prompts;
        self.prompts += 1;
        if self.reader.is_none() && self.script.is_none() {
            match LineReader::start() {
                Ok(reader) => self.reader = Some(reader),
                Err(e) => {
                    eprintln!("{e}; running the remaining sets without a prompt");
                    return Go::Continue;
                }
            }
        }
        loop {
            let input = if let Some(script) = self.script.as_mut() {
                match replayed(script, number, label) {
                    Some(line) => Input::Line(line),
                    None => {
                        self.script_ran_out = true;
                        Input::End
                    }
                }
            } else if let Some(reader) = &self.reader {
                reader.read(&format!("{label}> ")).await
            } else {
                Input::End
            };
            let line = match input {
                Input::Line(line) => line,
                Input::End => {
                    println!("quit");
                    self.log_line(number, label, "quit");
                    return Go::Quit;
                }
                Input::Interrupt => {
                    // The same as Ctrl-C anywhere: the signal handler saves the run and exits.
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
                    return std::future::pending().await;
                }
            };
            self.log_line(number, label, &line);
            match parse_command(&line) {
                Ok(ReplCommand::Next) => return Go::Next,
                Ok(ReplCommand::Continue) => return Go::Continue,
                Ok(ReplCommand::Quit) => return Go::Quit,
                Ok(ReplCommand::Help) => println!("{HELP}"),
                Ok(command) => print!("{}", self.execute(command).await),
                Err(e) => println!("{e}"),
            }
        }
    }

    /// Appends a typed line to `prompt.jsonl` (a line lost to a full disk costs the replay
    /// its faithfulness, which the replay then says, not the run).
    fn log_line(&mut self, prompt: u32, label: &str, line: &str) {
        use std::io::Write as _;
        let Some(file) = &mut self.prompt_log else {
            return;
        };
        let entry = PromptEntry {
            prompt,
            label: label.to_string(),
            line: line.to_string(),
        };
        if let Ok(text) = serde_json::to_string(&entry) {
            let _ = writeln!(file, "{text}");
        }
    }

    /// Runs one inspecting or fault command; the text to show.
    async fn execute(&mut self, command: ReplCommand) -> String {
        let result = match command {
            ReplCommand::Ask(question) => self.ask(question).await,
            ReplCommand::Kill(KillTarget::Leader) => match self.fail_leader(None).await {
                Ok(killed) => {
                    self.held_down.extend(killed.iter().copied());
                    Ok(String::new())
                }
                Err(e) => Err(e.to_string()),
            },
            ReplCommand::Kill(KillTarget::Node(node)) => self.kill(node),
            ReplCommand::Restart(node) => self.restart(node),
            ReplCommand::Cut(a, b) => self.cut(a, b),
            ReplCommand::Heal => Ok(self.heal()),
            ReplCommand::Next | ReplCommand::Continue | ReplCommand::Quit | ReplCommand::Help => {
                Ok(String::new())
            }
        };
        match result {
            Ok(text) => text,
            Err(e) => format!("{e}\n"),
        }
    }

    /// The target's answer to `question`, once the node it names (if any) is known to exist.
    async fn ask(&mut self, question: Inspect) -> Result<String, String> {
        if let Some(n) = question.node() {
            self.known(n)?;
        }
        Ok(self.target.inspect(&question).await)
    }

    fn known(&self, node: NodeId) -> Result<(), String> {
        if self.target.nodes().contains(&node) {
            return Ok(());
        }
        Err(format!(
            "no {} {node}: the cluster has n1..n{}",
            self.target.kind().node_noun(),
            self.target.nodes().len()
        ))
    }

    fn kill(&mut self, node: NodeId) -> Result<String, String> {
        self.known(node)?;
        if self.target.state(node) == ReplicaState::Down {
            return Ok(format!("{node} is already down\n"));
        }
        self.target.kill(node).map_err(|e| e.to_string())?;
        self.faults += 1;
        self.recorder.nemesis(
            "kill",
            json!({"nodes": [node.to_string()], "target": "prompt"}),
        );
        if !self.held_down.contains(&node) {
            self.held_down.push(node);
        }
        Ok(format!(
            "killed {node}; it stays down, even in sets that list it live, until restart {node}\n"
        ))
    }

    fn restart(&mut self, node: NodeId) -> Result<String, String> {
        self.known(node)?;
        self.held_down.retain(|&n| n != node);
        match self.target.state(node) {
            ReplicaState::Running => Ok(format!("{node} is already running\n")),
            ReplicaState::Paused => {
                self.target.resume(node).map_err(|e| e.to_string())?;
                self.recorder
                    .nemesis("resume", json!({"nodes": [node.to_string()]}));
                Ok(format!("resumed {node}\n"))
            }
            ReplicaState::Down => {
                self.target.start(node).map_err(|e| e.to_string())?;
                self.recorder
                    .nemesis("restart", json!({"nodes": [node.to_string()]}));
                Ok(format!("restarted {node} on its data directory\n"))
            }
        }
    }

    fn cut(&mut self, a: NodeId, b: NodeId) -> Result<String, String> {
        self.known(a)?;
        self.known(b)?;
        if !self.target.can_cut() {
            return Err("cut needs the relay (run with --net relay)".into());
        }
        let mut cuts = self.cuts.clone();
        for link in [
            (Peer::Node(a), Peer::Node(b)),
            (Peer::Node(b), Peer::Node(a)),
        ] {
            if !cuts.contains(&link) {
                cuts.push(link);
            }
        }
        cuts.sort();
        self.target.set_cuts(&cuts);
        self.cuts = cuts.clone();
        self.faults += 1;
        self.recorder.nemesis(
            "partition",
            json!({"cuts": cuts_value(&cuts), "target": "prompt"}),
        );
        Ok(format!(
            "cut {a} <-> {b} ({} now)\n",
            count(cuts.len() as u64 / 2, "link")
        ))
    }

    fn heal(&mut self) -> String {
        let had = self.cuts.len();
        self.target.set_cuts(&[]);
        self.cuts.clear();
        if had == 0 {
            return "no link was cut\n".to_string();
        }
        self.recorder.nemesis("heal", json!({"cuts": []}));
        "healed every link\n".to_string()
    }
}

/// The next recorded line of prompt `number`, shown as if typed; `None` when the recording
/// has no more lines for it (the original's session ended there).
fn replayed(
    script: &mut std::collections::VecDeque<PromptEntry>,
    number: u32,
    label: &str,
) -> Option<String> {
    // Lines of earlier prompts left over (a prompt that moved on by itself) are dropped.
    while script.front().is_some_and(|e| e.prompt < number) {
        script.pop_front();
    }
    match script.front() {
        Some(entry) if entry.prompt == number => {
            let line = entry.line.clone();
            script.pop_front();
            println!("{label}> {line}   (replayed)");
            Some(line)
        }
        _ => None,
    }
}

/// "set 2 (line 5): live n1, n3, n4; 3 transfers, 1 LF".
fn describe_set(set: &Set) -> String {
    let transfers = set
        .steps
        .iter()
        .filter(|s| matches!(s, SetStep::Transfer(_)))
        .count() as u64;
    let failures = set.steps.len() as u64 - transfers;
    let mut text = format!(
        "set {} (line {}): live {}; {}",
        set.number,
        set.line,
        names(&set.live).join(", "),
        count(transfers, "transfer")
    );
    if failures > 0 {
        text.push_str(&format!(", {failures} LF"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    #[test]
    fn expected_balances_when_no_order_can_overdraw() {
        let s = parse(b"1,(A,B,3),[n1,n2,n3]\n,(B,C,12),\n", "x").unwrap();
        let accounts = bank_accounts();
        assert_eq!(accounts.len(), 10);
        assert_eq!(
            expected_balances(&s, &accounts, 10),
            None,
            "B sends 12 > 10: depends on order"
        );
        let s = parse(b"1,(A,B,3),[n1,n2,n3]\n,(B,C,2),\n,(J,A,1),\n", "x").unwrap();
        let e = expected_balances(&s, &accounts, 10).unwrap();
        assert_eq!((e["A"], e["B"], e["C"], e["J"]), (8, 11, 12, 9));
        assert_eq!(
            e.values().sum::<i64>(),
            100,
            "the bank's total does not change"
        );
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
