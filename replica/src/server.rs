//! The replica's shell: drives the pure protocol core with real sockets, disk and timers.
//!
//! The core decides everything; this loop only moves bytes. It waits for an input (a peer
//! message, a client request, a tick), drains whatever else is already queued (bounded), feeds
//! it all to the core, asks the core to `flush` (cut pending commands into batched slots), and
//! then carries out the effects in the order the core's contract demands: every `Persist` and
//! `Checkpoint` of the burst goes to disk under ONE fsync (group commit), and only then are the
//! sends and client replies released. Draining a burst before the fsync is what batches: the
//! longer an fsync takes, the more work the next burst carries.

use crate::bank::Executed;
use crate::client_proto::{ClientRequest, ClientResponse};
use crate::config::ClusterConfig;
use crate::core::{
    Bugs, Checkpoint, Core, CoreConfig, Effect, PeerMsg, Recovered, ReplyToken, WalRecord,
};
use crate::net::{ClientCall, Incoming, Network};
use crate::storage::{self, Journal, Wal};
use crate::types::NodeId;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most inputs handled in one burst before the effects are carried out: bounds the latency a
/// burst adds and the memory it holds.
const MAX_BURST_INPUTS: usize = 4096;
/// Past this size the WAL is rewritten with only what the core still needs.
const WAL_COMPACT_BYTES: u64 = 32 * 1024 * 1024;
/// Bound of each peer's outgoing queue in the network layer.
const PEER_QUEUE_BOUND: usize = 16_384;
/// Most entries one FetchExecuted / PrintLog answer carries.
const MAX_PAGE_ENTRIES: u32 = 10_000;

/// Everything `replica run` needs.
pub struct ServerOptions {
    pub config: ClusterConfig,
    pub id: NodeId,
    pub data_dir: PathBuf,
    pub bugs: Bugs,
    /// Seed of the core's randomness (election timeouts).
    pub seed: u64,
    /// Off only for benchmarks that measure the network alone.
    pub fsync: bool,
    /// Planted bug `forget-promises`: acceptor state never reaches the disk.
    pub forget_promises: bool,
}

/// Runs a replica until the process is told to stop.
pub async fn run(options: ServerOptions) -> anyhow::Result<()> {
    let mut shell = Shell::open(&options)?;
    let (network, incoming) = start_network(&options).await?;
    shell.network = Some(network);
    let outcome = shell.serve(incoming, &options).await;
    if let Some(network) = &shell.network {
        network.shutdown();
    }
    outcome
}

async fn start_network(
    options: &ServerOptions,
) -> anyhow::Result<(Network<PeerMsg>, Incoming<PeerMsg>)> {
    let config = &options.config;
    let me = config
        .node(options.id)
        .with_context(|| format!("node {} is not in the cluster config", options.id))?;
    let identity = crate::net::TlsIdentity::load(&config.tls.ca_cert, &me.cert, &me.key)?;
    let peers = config
        .node_ids()
        .into_iter()
        .filter(|&id| id != options.id)
        .filter_map(|id| config.peer_addr(options.id, id).map(|addr| (id, addr)))
        .collect();
    let started = Network::start(
        options.id,
        me.addr,
        peers,
        &identity,
        config.limits.max_frame_bytes,
        PEER_QUEUE_BOUND,
    )
    .await
    .with_context(|| format!("cannot start the network of {} on {}", options.id, me.addr))?;
    Ok(started)
}

/// One input to the core.
enum Input {
    Peer(NodeId, PeerMsg),
    Client(ClientCall),
    Tick,
}

struct Shell {
    core: Core,
    me: NodeId,
    wal: Wal<WalRecord>,
    journal: Journal,
    data_dir: PathBuf,
    network: Option<Network<PeerMsg>>,
    waiting: HashMap<ReplyToken, Waiting>,
    next_token: ReplyToken,
    started: Instant,
    forget_promises: bool,
    client_wait: Duration,
}

struct Waiting {
    respond: oneshot::Sender<ClientResponse>,
    since: Instant,
}

impl Shell {
    fn open(options: &ServerOptions) -> anyhow::Result<Shell> {
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let (mut wal, records, torn) = Wal::<WalRecord>::open(dir)?;
        if let Some(torn) = torn {
            tracing::warn!(?torn, "cut a torn tail off the write-ahead log");
        }
        wal.set_fsync(options.fsync);
        let checkpoint: Option<Checkpoint> = storage::read_checkpoint(dir)?;
        let (mut journal, torn_journal) = Journal::open(dir)?;
        if let Some(torn) = torn_journal {
            tracing::warn!(?torn, "cut a torn tail off the executed journal");
        }
        let checkpoint_exec = checkpoint.as_ref().map_or(0, |c| c.bank.exec_index());
        journal.truncate_after(checkpoint_exec)?;
        if journal.next_exec_index() <= checkpoint_exec {
            // Killed between installing a snapshot and resetting the journal: the entries up
            // to the checkpoint are not known here, so the journal restarts after it.
            tracing::warn!(
                journal_next = journal.next_exec_index(),
                checkpoint_exec,
                "the executed journal ends before the checkpoint; restarting it after the checkpoint"
            );
            journal.reset(checkpoint_exec + 1)?;
        }
        tracing::info!(
            node = %options.id,
            records = records.len(),
            checkpoint_exec,
            "recovered state from {}",
            dir.display()
        );
        let core_config = CoreConfig {
            bugs: options.bugs,
            ..CoreConfig::from_cluster(&options.config, options.id)
        };
        let client_wait = Duration::from_millis(core_config.client_wait_timeout_ms);
        let recovered = Recovered {
            checkpoint,
            records,
        };
        let started = Instant::now();
        let (core, effects) = Core::new(core_config, recovered, options.seed, 0);
        let mut shell = Shell {
            core,
            me: options.id,
            wal,
            journal,
            data_dir: dir.clone(),
            network: None,
            waiting: HashMap::new(),
            next_token: 1,
            started,
            forget_promises: options.forget_promises,
            client_wait,
        };
        shell.carry_out(effects)?;
        Ok(shell)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn serve(
        &mut self,
        mut incoming: Incoming<PeerMsg>,
        options: &ServerOptions,
    ) -> anyhow::Result<()> {
        let tick = Duration::from_millis(options.config.timing.tick_interval_ms.max(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(());
        });
        loop {
            let first = tokio::select! {
                Some((from, msg)) = incoming.peer_rx.recv() => Input::Peer(from, msg),
                Some(call) = incoming.client_rx.recv() => Input::Client(call),
                _ = ticker.tick() => Input::Tick,
                _ = &mut stop_rx => {
                    tracing::info!(node = %self.me, "shutting down on signal");
                    return Ok(());
                }
            };
            let mut out = Vec::new();
            self.feed(first, &mut out);
            for _ in 1..MAX_BURST_INPUTS {
                let next = if let Ok((from, msg)) = incoming.peer_rx.try_recv() {
                    Input::Peer(from, msg)
                } else if let Ok(call) = incoming.client_rx.try_recv() {
                    Input::Client(call)
                } else {
                    break;
                };
                self.feed(next, &mut out);
            }
            let now = self.now_ms();
            self.core.flush(now, &mut out);
            tokio::task::block_in_place(|| self.carry_out(out))?;
            if last_sweep.elapsed() > Duration::from_secs(1) {
                self.sweep_waiting();
                last_sweep = Instant::now();
            }
        }
    }

    fn feed(&mut self, input: Input, out: &mut Vec<Effect>) {
        let now = self.now_ms();
        match input {
            Input::Peer(from, msg) => self.core.on_message(now, from, msg, out),
            Input::Tick => self.core.on_tick(now, out),
            Input::Client(call) => self.on_client_call(now, call, out),
        }
    }

    fn on_client_call(&mut self, now: u64, call: ClientCall, out: &mut Vec<Effect>) {
        let response = match call.request {
            ClientRequest::Submit(command) => {
                let token = self.next_token;
                self.next_token += 1;
                self.waiting.insert(
                    token,
                    Waiting {
                        respond: call.respond,
                        since: Instant::now(),
                    },
                );
                self.core.on_client(now, token, command, out);
                return;
            }
            request => self.introspect(request),
        };
        // The client may have given up; nothing to do then.
        let _ = call.respond.send(response);
    }

    /// PrintDB, PrintLog, PrintStatus, PrintView, FetchExecuted, Status: answered from the
    /// core's and the journal's current state, never through the log.
    fn introspect(&mut self, request: ClientRequest) -> ClientResponse {
        let node = self.me;
        match request {
            ClientRequest::PrintDb => {
                let (exec_index, balances) = self.core.balances();
                ClientResponse::Db {
                    node,
                    exec_index,
                    balances,
                }
            }
            ClientRequest::PrintLog {
                from_slot,
                max_entries,
            } => {
                let (checkpoint_slot, entries) = self
                    .core
                    .log_view(from_slot, max_entries.min(MAX_PAGE_ENTRIES));
                ClientResponse::Log {
                    node,
                    checkpoint_slot,
                    entries,
                }
            }
            ClientRequest::PrintStatus { slot } => ClientResponse::SlotStatus {
                node,
                slot,
                state: self.core.slot_state(slot),
            },
            ClientRequest::PrintView => ClientResponse::Views {
                node,
                views: self.core.views(),
            },
            ClientRequest::Status => ClientResponse::Status(self.core.status()),
            ClientRequest::FetchExecuted {
                from_exec_index,
                max_entries,
            } => self.fetch_executed(from_exec_index, max_entries),
            ClientRequest::Submit(_) => unreachable!("submits are handled by on_client_call"),
        }
    }

    fn fetch_executed(&mut self, from: u64, max_entries: u32) -> ClientResponse {
        let max = max_entries.min(MAX_PAGE_ENTRIES) as usize;
        match self.journal.read(from.max(1), max) {
            Ok(entries) => ClientResponse::Executed {
                node: self.me,
                first_available: self.journal.first_available(),
                last: self.journal.last(),
                entries,
            },
            Err(e) => ClientResponse::Error {
                node: self.me,
                message: format!("cannot read the executed journal: {e}"),
            },
        }
    }

    /// Carries out one burst's effects: requests to peers first, then the disk under one fsync,
    /// then votes and client replies (see the core's `Effect` contract).
    fn carry_out(&mut self, effects: Vec<Effect>) -> anyhow::Result<()> {
        let mut effects: Vec<Option<Effect>> = effects.into_iter().map(Some).collect();
        self.send_non_votes(&mut effects);
        let mut wrote_wal = false;
        let mut took_checkpoint = false;
        for effect in effects.iter().flatten() {
            match effect {
                Effect::Persist(record) if !self.forget_promises => {
                    self.wal.append(record)?;
                    // A commit point is a hint (it can be learned again from the leader), so
                    // it rides along with the next fsync instead of costing one before the
                    // replies of the burst that committed.
                    wrote_wal |= !matches!(record, WalRecord::Committed { .. });
                }
                Effect::Persist(_) => {}
                Effect::Checkpoint(checkpoint) => {
                    // A checkpoint must never be ahead of the journal on disk: a journal that
                    // ends before the checkpoint's exec index could not be refilled.
                    self.journal.flush()?;
                    storage::write_checkpoint(&self.data_dir, checkpoint)?;
                    took_checkpoint = true;
                }
                Effect::Executed(executed) => self.journal_append(executed)?,
                Effect::ResetJournal { next_exec_index } => self.journal.reset(*next_exec_index)?,
                Effect::Send { .. } | Effect::Reply { .. } => {}
            }
        }
        self.journal
            .flush()
            .context("cannot write the executed journal")?;
        if wrote_wal {
            self.wal.sync().context("cannot sync the write-ahead log")?;
        }
        if took_checkpoint && self.wal.size_bytes() > WAL_COMPACT_BYTES {
            self.wal
                .rewrite(&self.core.durable_records())
                .context("cannot compact the write-ahead log")?;
        }
        for effect in effects.into_iter().flatten() {
            match effect {
                Effect::Send { to, msg } => {
                    if let Some(network) = &self.network {
                        network.send(to, msg);
                    }
                }
                Effect::Reply { token, response } => {
                    if let Some(waiting) = self.waiting.remove(&token) {
                        let _ = waiting.respond.send(response);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Releases the sends that need not wait for the fsync, taking them out of `effects`.
    fn send_non_votes(&mut self, effects: &mut [Option<Effect>]) {
        let Some(network) = &self.network else { return };
        for slot in effects.iter_mut() {
            if matches!(slot, Some(Effect::Send { msg, .. }) if !msg.is_vote()) {
                if let Some(Effect::Send { to, msg }) = slot.take() {
                    network.send(to, msg);
                }
            }
        }
    }

    fn journal_append(&mut self, executed: &Executed) -> anyhow::Result<()> {
        self.journal
            .append(executed)
            .context("cannot append to the executed journal")
    }

    /// Forgets replies nobody waits for any more, so the table stays bounded.
    fn sweep_waiting(&mut self) {
        let limit = self.client_wait * 2;
        self.waiting
            .retain(|_, w| !w.respond.is_closed() && w.since.elapsed() < limit);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
