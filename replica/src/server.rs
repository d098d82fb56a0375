//! `replica run`: the shared [`Shell`] driven by real sockets (quinn), the real disk and tokio's
//! timers.
//!
//! The core decides everything and the shell carries out its effects; this loop only moves
//! bytes. It waits for an input (a peer message, a client request, a tick), drains whatever
//! else is already queued (bounded), feeds it all to the shell, and ends the burst: every
//! `Persist` and `Checkpoint` of the burst goes to disk under ONE fsync (group commit), and
//! only then are votes and client replies released. Draining a burst before the fsync is what
//! batches: the longer an fsync takes, the more work the next burst carries. A storage error
//! stops the process: after a failed fsync nothing written since the last good one can be
//! trusted.
//!
//! In a build with failpoints (`crate::failpoints`), this is also where the named steps of
//! two-phase commit are: a cross-shard message about to leave (`ServerIo::send`) or about to
//! reach the core (`Server::feed`).

use crate::client_proto::{ClientRequest, ClientResponse};
use crate::config::ClusterConfig;
use crate::core::{Bugs, CoreConfig, Effect, PeerMsg, ReplyToken};
use crate::failpoints;
use crate::net::{ClientCall, Incoming, Network};
use crate::shell::{Shell, ShellConfig, ShellIo};
use crate::storage;
use crate::types::NodeId;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most inputs handled in one burst before the effects are carried out: bounds the latency a
/// burst adds and the memory it holds.
const MAX_BURST_INPUTS: usize = 4096;
/// Bound of each peer's outgoing queue in the network layer.
const PEER_QUEUE_BOUND: usize = 16_384;

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
    /// Planted bug `misread-log`: recovery cuts its own WAL to nothing and trusts the cut.
    pub misread_log: bool,
    /// Whether clients may arm failpoints (`replica-bugs` only; needs the feature too).
    pub failpoints: bool,
    /// What a command meeting a cross-shard lock does (`--lock-policy`; sharded banks only).
    pub lock_policy: crate::core::LockPolicy,
}

/// Runs a replica until the process is told to stop.
pub async fn run(options: ServerOptions) -> anyhow::Result<()> {
    let mut server = Server::open(&options)?;
    let (network, incoming) = start_network(&options).await?;
    server.network = Some(network);
    let outcome = server.serve(incoming, &options).await;
    if let Some(network) = &server.network {
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
    let limits = crate::net::NetLimits {
        config_fingerprint: config.fingerprint(),
        ..crate::net::NetLimits::new(config.limits.max_frame_bytes)
    };
    tracing::info!(
        node = %options.id,
        fingerprint = %limits.config_fingerprint,
        "configuration fingerprint {} (peers must announce the same)",
        limits.config_fingerprint
    );
    let started = Network::start_with(
        options.id,
        me.addr,
        peers,
        &identity,
        limits,
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

/// The tokio side of a replica: the shared [`Shell`] plus the client streams waiting for
/// their answers.
struct Server {
    shell: Shell,
    me: NodeId,
    network: Option<Network<PeerMsg>>,
    waiting: HashMap<ReplyToken, Waiting>,
    next_token: ReplyToken,
    started: Instant,
    client_wait: Duration,
    failpoints_allowed: bool,
}

struct Waiting {
    respond: oneshot::Sender<ClientResponse>,
    since: Instant,
}

/// Routes the shell's sends to the network and its replies to the waiting streams.
struct ServerIo<'a> {
    me: NodeId,
    network: Option<&'a Network<PeerMsg>>,
    waiting: &'a mut HashMap<ReplyToken, Waiting>,
}

impl ShellIo for ServerIo<'_> {
    fn send(&mut self, to: NodeId, msg: PeerMsg) {
        if failpoints::compiled_in() {
            if let Some(step) = failpoints::step_of_send(&msg) {
                failpoints::hit(self.me, step);
            }
        }
        if let Some(network) = self.network {
            network.send(to, msg);
        }
    }

    fn reply(&mut self, token: ReplyToken, response: ClientResponse) {
        if let Some(waiting) = self.waiting.remove(&token) {
            // The client may have given up; nothing to do then.
            let _ = waiting.respond.send(response);
        }
    }
}

impl Server {
    fn open(options: &ServerOptions) -> anyhow::Result<Server> {
        let mut core = CoreConfig {
            bugs: options.bugs,
            ..CoreConfig::from_cluster(&options.config, options.id)
        };
        if let Some(sharding) = core.sharding.as_mut() {
            sharding.lock_policy = options.lock_policy;
        }
        let client_wait = Duration::from_millis(core.client_wait_timeout_ms);
        let config = ShellConfig {
            core,
            data_dir: options.data_dir.clone(),
            seed: options.seed,
            fsync: options.fsync,
            forget_promises: options.forget_promises,
            misread_log: options.misread_log,
        };
        let started = Instant::now();
        let mut waiting = HashMap::new();
        let mut io = ServerIo {
            me: options.id,
            network: None,
            waiting: &mut waiting,
        };
        let shell = Shell::open(storage::fs::real(), &config, 0, &mut io)
            .with_context(|| format!("cannot start {}", options.id))?;
        Ok(Server {
            shell,
            me: options.id,
            network: None,
            waiting,
            next_token: 1,
            started,
            client_wait,
            failpoints_allowed: options.failpoints,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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
            self.finish_burst(out).await?;
            if last_sweep.elapsed() > Duration::from_secs(1) {
                self.sweep_waiting();
                last_sweep = Instant::now();
            }
        }
    }

    /// Carries out a burst's effects. The fsync blocks this thread, which also serves the
    /// sockets (a current-thread runtime), so the burst's requests to peers are handed to
    /// quinn first: one yield runs the links and the connections' drivers, and the followers
    /// fsync while we do.
    async fn finish_burst(&mut self, out: Vec<Effect>) -> anyhow::Result<()> {
        let now = self.now_ms();
        let mut io = ServerIo {
            me: self.me,
            network: self.network.as_ref(),
            waiting: &mut self.waiting,
        };
        let burst = self.shell.start_burst(now, out, &mut io);
        if burst.sent_ahead() > 0 {
            tokio::task::yield_now().await;
        }
        let mut io = ServerIo {
            me: self.me,
            network: self.network.as_ref(),
            waiting: &mut self.waiting,
        };
        self.shell
            .end_burst(burst, &mut io)
            .with_context(|| format!("{} stops: its disk failed", self.me))
    }

    fn feed(&mut self, input: Input, out: &mut Vec<Effect>) {
        let now = self.now_ms();
        match input {
            Input::Peer(from, msg) => {
                if failpoints::compiled_in() {
                    self.failpoint_on_receive(&msg);
                }
                self.shell.on_peer(now, from, msg, out)
            }
            Input::Tick => self.shell.on_tick(now, out),
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
                self.shell.on_client(now, token, command, out);
                return;
            }
            ClientRequest::ArmFailpoint { name, once } => {
                match failpoints::arm(self.me, &name, once, self.failpoints_allowed) {
                    Ok(_) => ClientResponse::FailpointArmed {
                        node: self.me,
                        name,
                        once,
                    },
                    Err(e) => ClientResponse::Error {
                        node: self.me,
                        message: e.to_string(),
                    },
                }
            }
            request => self.shell.introspect(request),
        };
        // The client may have given up; nothing to do then.
        let _ = call.respond.send(response);
    }

    /// Crashes here if `msg` reaches an armed step (a vote or an ACK the core would act on).
    fn failpoint_on_receive(&self, msg: &PeerMsg) {
        let core = self.shell.core();
        let step =
            failpoints::step_of_receive(msg, core.leads(), |txn| core.bank().coordinated(txn));
        if let Some(step) = step {
            failpoints::hit(self.me, step);
        }
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
