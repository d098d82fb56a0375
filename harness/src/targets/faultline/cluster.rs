//! A local cluster of replica processes, as the harness sees it: certificates, `cluster.toml`,
//! one supervised OS process per replica, the relay in front of them, and the two client
//! transports (the workload's, through the relay, and the harness's own control channel, direct,
//! so a partition never blinds the nemesis or the final phase).
//!
//! A sharded bank ([`ClusterSpec::shards`]) is one such cluster whose `cluster.toml` splits
//! the replicas and accounts into `[[shards]]`: every Paxos group runs in it, and the waits
//! below (a leader, quiet) hold per shard.
//!
//! Processes are [`crate::os::process::Child`]ren: their own process group, SIGKILL on harness
//! death, killed on drop. Dropping a `Cluster` therefore stops every replica.

use crate::os::ports::reservable_range;
use crate::os::process::{Child, ReplicaState};
use crate::os::relay::{Link, PathSpec, Peer, Relay};
use crate::os::transport::{join_all, QuicTransport, Transport};
use crate::params::NetMode;
use rand::Rng;
use replica::client_proto::{ClientRequest, ClientResponse, NodeStatus, Role};
use replica::config::{ClusterConfig, Route};
use replica::net::certs::ClientCert;
use replica::types::{ClientIdRange, NodeId};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a Status poll waits for one replica.
const STATUS_TIMEOUT: Duration = Duration::from_millis(300);
/// Pause between polls while waiting for a leader or for quiet.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot generate certificates in {dir}: {message}")]
    Certs { dir: PathBuf, message: String },
    #[error("cannot pick free ports: {0}")]
    Ports(std::io::Error),
    #[error(transparent)]
    Relay(#[from] crate::os::relay::RelayError),
    #[error("cannot write or load {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot create the client: {0}")]
    Client(String),
    #[error("cannot start replica {node} ({bin}): {cause}")]
    Spawn {
        node: NodeId,
        bin: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot prepare {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("replica binary {0} not found: build it with `cargo build -p replica` or pass --replica-bin")]
    NoBinary(PathBuf),
    #[error("no leader elected within {0:?}")]
    NoLeader(Duration),
    #[error("replica {node} exited during start-up ({status}); the end of {stderr_file}:\n{tail}")]
    ExitedAtStart {
        node: NodeId,
        status: String,
        stderr_file: PathBuf,
        tail: String,
    },
    #[error("unknown replica {0}")]
    UnknownNode(NodeId),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub nodes: u32,
    pub net: NetMode,
    pub replica_bin: PathBuf,
    pub bug: Option<String>,
    pub accounts: Vec<String>,
    pub initial_balance: i64,
    /// The replicas' checkpoint interval K (None: the replica's default).
    pub checkpoint_interval_slots: Option<u64>,
    /// A campaign's drawn tunables (override the checkpoint interval).
    pub tunables: Option<crate::faults::tunables::Tunables>,
    /// A sharded bank (`nodes` must then be shards × replicas per shard).
    pub shards: Option<crate::params::ShardParams>,
}

/// One replica's files and process.
struct Replica {
    data_dir: PathBuf,
    log_file: PathBuf,
    stderr_file: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Holds the replica's port until its first start.
    reservation: Option<UdpSocket>,
}

pub struct Cluster {
    dir: PathBuf,
    config_path: PathBuf,
    /// The config as loaded back (paths resolved), routes included.
    config: ClusterConfig,
    nodes: Vec<NodeId>,
    replicas: BTreeMap<NodeId, Replica>,
    relay: Option<Arc<Relay>>,
    control: Arc<dyn Transport>,
    workload: Arc<dyn Transport>,
    spec: ClusterSpec,
}

impl Cluster {
    /// Writes certificates and `cluster.toml` into `dir` and starts the relay (no replica yet).
    pub async fn prepare(dir: &Path, spec: ClusterSpec) -> Result<Cluster, ClusterError> {
        if !spec.replica_bin.is_file() {
            return Err(ClusterError::NoBinary(spec.replica_bin.clone()));
        }
        let nodes: Vec<NodeId> = (1..=spec.nodes).map(NodeId).collect();
        let cert_dir = dir.join("certs");
        // The harness's one identity also fetches journals and arms failpoints: an operator.
        let operator = ClientCert::operator("client", ClientIdRange::DEFAULT);
        replica::net::certs::generate_cluster(&cert_dir, &nodes, &[operator], None).map_err(
            |e| ClusterError::Certs {
                dir: cert_dir.clone(),
                message: e.to_string(),
            },
        )?;
        // Relative certificate paths keep the run directory movable; load() resolves them.
        let mut config = ClusterConfig::local(spec.nodes, 0, Path::new("certs"));
        config.accounts = spec.accounts.iter().map(|a| a.as_str().into()).collect();
        config.initial_balance = spec.initial_balance;
        if let Some(k) = spec.checkpoint_interval_slots {
            config.limits.checkpoint_interval_slots = k;
        }
        if let Some(tunables) = &spec.tunables {
            tunables.apply_to_cluster(&mut config);
        }
        if let Some(shape) = &spec.shards {
            config.shards =
                replica::shard::spread(&config.accounts, shape.shards, shape.replicas_per_shard)
                    .map_err(|e| ClusterError::Config {
                        path: dir.join("cluster.toml"),
                        message: e.to_string(),
                    })?;
        }
        let reservations = reserve_udp_ports(nodes.len())?;
        for (node, socket) in config.nodes.iter_mut().zip(&reservations) {
            node.addr = socket.local_addr().map_err(ClusterError::Ports)?;
        }
        let relay = match spec.net {
            NetMode::Relay => Some(Arc::new(start_relay(&mut config).await?)),
            NetMode::Direct => None,
        };
        let config_path = dir.join("cluster.toml");
        let config_err = |message: String| ClusterError::Config {
            path: config_path.clone(),
            message,
        };
        config
            .save(&config_path)
            .map_err(|e| config_err(e.to_string()))?;
        let config = ClusterConfig::load(&config_path).map_err(|e| config_err(e.to_string()))?;
        let workload = client_transport(&config)?;
        let mut direct = config.clone();
        for node in &mut direct.nodes {
            node.client_addr = None;
        }
        let control = client_transport(&direct)?;
        let mut replicas = BTreeMap::new();
        for (&node, reservation) in nodes.iter().zip(reservations) {
            let data_dir = dir.join(node.to_string());
            std::fs::create_dir_all(&data_dir).map_err(|source| ClusterError::Io {
                path: data_dir.clone(),
                cause: source,
            })?;
            replicas.insert(
                node,
                Replica {
                    data_dir,
                    log_file: dir.join(format!("{node}.log")),
                    stderr_file: dir.join(format!("{node}.stderr")),
                    child: None,
                    paused: false,
                    reservation: Some(reservation),
                },
            );
        }
        Ok(Cluster {
            dir: dir.to_path_buf(),
            config_path,
            config,
            nodes,
            replicas,
            relay,
            control,
            workload,
            spec,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Each replica's shard (every replica in shard 1 on a classic cluster).
    pub fn node_shards(&self) -> BTreeMap<NodeId, u32> {
        let map = self.config.shard_map();
        self.nodes
            .iter()
            .map(|&n| (n, map.shard_of_node(n).map_or(1, |s| s.0)))
            .collect()
    }

    /// The replicas of each shard, by shard id (one shard of all on a classic cluster).
    pub fn shard_members(&self) -> BTreeMap<u32, Vec<NodeId>> {
        let mut members: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
        for (node, shard) in self.node_shards() {
            members.entry(shard).or_default().push(node);
        }
        members
    }

    /// Whether the cluster is a sharded bank.
    pub fn is_sharded(&self) -> bool {
        !self.config.shards.is_empty()
    }

    pub fn relay(&self) -> Option<&Arc<Relay>> {
        self.relay.as_ref()
    }

    /// The transport clients use (through the relay when there is one).
    pub fn workload(&self) -> Arc<dyn Transport> {
        self.workload.clone()
    }

    /// A new client (its own QUIC endpoint) on the workload's path, for spreading many
    /// concurrent requests over several connections.
    pub fn new_workload_transport(&self) -> Result<Arc<dyn Transport>, ClusterError> {
        client_transport(&self.config)
    }

    /// The harness's direct line to every replica.
    pub fn control(&self) -> Arc<dyn Transport> {
        self.control.clone()
    }

    /// Starts every replica that is not running.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for node in self.nodes.clone() {
            if self.state(node) == ReplicaState::Down {
                self.start(node)?;
            }
        }
        Ok(())
    }

    /// Starts (or restarts, on the same data directory) one replica.
    pub fn start(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let bin = self.spec.replica_bin.clone();
        let bug = self.spec.bug.clone();
        let config_path = self.config_path.clone();
        let replica = self
            .replicas
            .get_mut(&node)
            .ok_or(ClusterError::UnknownNode(node))?;
        if let Some(mut old) = replica.child.take() {
            old.kill();
        }
        let (stdout, stderr) =
            crate::os::process::append_output(&replica.stderr_file).map_err(|source| {
                ClusterError::Io {
                    path: replica.stderr_file.clone(),
                    cause: source,
                }
            })?;
        replica.reservation = None;
        let mut command = Command::new(&bin);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--id")
            .arg(node.to_string())
            .arg("--data-dir")
            .arg(&replica.data_dir)
            .arg("--log-file")
            .arg(&replica.log_file)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(bug) = &bug {
            command.arg("--bug").arg(bug);
        }
        if let Some(shape) = &self.spec.shards {
            command.arg("--lock-policy").arg(shape.lock_policy.name());
        }
        let child =
            Child::spawn(command).map_err(|cause| ClusterError::Spawn { node, bin, cause })?;
        replica.child = Some(child);
        replica.paused = false;
        Ok(())
    }

    /// SIGKILLs one replica. Killing a replica that is down does nothing.
    pub fn kill(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let replica = self
            .replicas
            .get_mut(&node)
            .ok_or(ClusterError::UnknownNode(node))?;
        if let Some(mut child) = replica.child.take() {
            child.kill();
        }
        replica.paused = false;
        Ok(())
    }

    /// SIGSTOPs one running replica.
    pub fn pause(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let replica = self
            .replicas
            .get_mut(&node)
            .ok_or(ClusterError::UnknownNode(node))?;
        if let Some(child) = &replica.child {
            if child.pause().is_ok() {
                replica.paused = true;
            }
        }
        Ok(())
    }

    /// SIGCONTs one paused replica.
    pub fn resume(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let replica = self
            .replicas
            .get_mut(&node)
            .ok_or(ClusterError::UnknownNode(node))?;
        if let Some(child) = &replica.child {
            let _ = child.resume();
        }
        replica.paused = false;
        Ok(())
    }

    /// Running, paused or down (a process that died on its own counts as down).
    pub fn state(&mut self, node: NodeId) -> ReplicaState {
        let Some(replica) = self.replicas.get_mut(&node) else {
            return ReplicaState::Down;
        };
        ReplicaState::of(replica.child.as_mut(), replica.paused)
    }

    /// Pids of the replica processes alive now.
    pub fn pids(&self) -> BTreeMap<NodeId, u32> {
        self.replicas
            .iter()
            .filter_map(|(id, r)| r.child.as_ref().map(|c| (*id, c.pid())))
            .collect()
    }

    /// Makes exactly `cuts` cut on the relay (no-op on a direct network).
    pub fn set_cuts(&self, cuts: &[Link]) {
        if let Some(relay) = &self.relay {
            relay.set_cuts(cuts);
        }
    }

    /// Heals the network, resumes paused and restarts dead replicas.
    pub fn heal_everything(&mut self) -> Result<Vec<String>, ClusterError> {
        let mut done = Vec::new();
        if let Some(relay) = &self.relay {
            if !relay.cuts().is_empty() {
                done.push("healed the network".to_string());
            }
            relay.heal_all();
        }
        for node in self.nodes.clone() {
            match self.state(node) {
                ReplicaState::Paused => {
                    self.resume(node)?;
                    done.push(format!("resumed {node}"));
                }
                ReplicaState::Down => {
                    self.start(node)?;
                    done.push(format!("restarted {node}"));
                }
                ReplicaState::Running => {}
            }
        }
        Ok(done)
    }

    /// Stops every replica (SIGKILL: the replicas must survive it anyway).
    pub fn stop_all(&mut self) {
        for replica in self.replicas.values_mut() {
            if let Some(mut child) = replica.child.take() {
                child.kill();
            }
            replica.paused = false;
        }
    }

    /// Status of every replica that answers within a short timeout, asked concurrently.
    pub async fn statuses(&self) -> BTreeMap<NodeId, NodeStatus> {
        statuses(self.control.as_ref(), &self.nodes).await
    }

    /// The replica that claims to lead with the highest ballot, if any answers.
    /// The leader of each shard that has one (by ballot, among its replicas' answers).
    pub async fn shard_leaders(&self) -> BTreeMap<u32, NodeId> {
        let statuses = self.statuses().await;
        let mut leaders = BTreeMap::new();
        for (shard, members) in self.shard_members() {
            let mine: BTreeMap<NodeId, NodeStatus> = members
                .iter()
                .filter_map(|n| statuses.get(n).map(|s| (*n, s.clone())))
                .collect();
            if let Some(leader) = leader_of(&mine) {
                leaders.insert(shard, leader);
            }
        }
        leaders
    }

    pub async fn leader(&self) -> Option<NodeId> {
        leader_of(&self.statuses().await)
    }

    /// Waits until a leader is acknowledged by a majority. Bounded by `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        let shards = self.shard_members();
        loop {
            let statuses = self.statuses().await;
            let leaders: Vec<Option<NodeId>> = shards
                .values()
                .map(|members| followed_leader(&statuses, members))
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if leaders.iter().all(Option::is_some) {
                    return Ok(*first);
                }
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader(timeout));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// [`Cluster::wait_for_leader`] for a cluster that was just started: a replica that exits
    /// meanwhile (a bad flag, a `--bug` its build cannot plant, a config it rejects) ends the
    /// wait at once with the replica's own words, instead of a leaderless timeout.
    pub async fn wait_for_first_leader(
        &mut self,
        timeout: Duration,
    ) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.fail_on_early_exit()?;
            let poll = POLL_INTERVAL.max(STATUS_TIMEOUT);
            let now = Instant::now();
            if now >= deadline {
                return Err(ClusterError::NoLeader(timeout));
            }
            let left = deadline - now;
            if let Ok(leader) = self.wait_for_leader(poll.min(left)).await {
                return Ok(leader);
            }
        }
    }

    /// The first replica that has exited, as an error carrying the tail of its stderr.
    fn fail_on_early_exit(&mut self) -> Result<(), ClusterError> {
        for (node, replica) in &mut self.replicas {
            let Some(status) = replica.child.as_mut().and_then(|c| c.try_wait()) else {
                continue;
            };
            return Err(ClusterError::ExitedAtStart {
                node: *node,
                status: status.to_string(),
                stderr_file: replica.stderr_file.clone(),
                tail: stderr_tail(&replica.stderr_file, STDERR_TAIL_LINES),
            });
        }
        Ok(())
    }

    /// Waits until every replica answers and all report the same executed slot and exec index
    /// twice in a row. Returns whether it got there before `timeout`.
    pub async fn wait_for_quiet(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut previous: Option<Vec<(u64, u64)>> = None;
        loop {
            let statuses = self.statuses().await;
            // Per shard: its replicas at one point (shards' logs are unrelated).
            let points: Vec<Vec<(u64, u64)>> = self
                .shard_members()
                .values()
                .map(|members| {
                    let of =
                        |n: &NodeId| statuses.get(n).map(|s| (s.executed_slot.0, s.exec_index));
                    members.iter().filter_map(of).collect()
                })
                .collect();
            let all_same = statuses.len() == self.nodes.len()
                && points.iter().all(|p| p.windows(2).all(|w| w[0] == w[1]));
            let now: Vec<(u64, u64)> = points.iter().filter_map(|p| p.first().copied()).collect();
            let now = Some(now);
            if all_same && previous.is_some() && previous == now {
                return true;
            }
            previous = if all_same { now } else { None };
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// How many of a replica's last stderr lines a start-up error quotes.
const STDERR_TAIL_LINES: usize = 12;

/// The last `lines` lines of a replica's stderr file, indented for an error message.
fn stderr_tail(path: &Path, lines: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("  (cannot read it: {e})"),
    };
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return "  (empty)".to_string();
    }
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Status of every node that answers, concurrently.
pub async fn statuses(transport: &dyn Transport, nodes: &[NodeId]) -> BTreeMap<NodeId, NodeStatus> {
    let asks = nodes.iter().map(|&node| async move {
        match transport
            .call(node, ClientRequest::Status, STATUS_TIMEOUT)
            .await
        {
            Ok(ClientResponse::Status(status)) => Some((node, status)),
            _ => None,
        }
    });
    let answers = join_all(asks).await;
    answers.into_iter().flatten().collect()
}

/// The replica claiming leadership with the highest ballot.
/// The leader of the group `members` that a majority of them follow, if any.
fn followed_leader(statuses: &BTreeMap<NodeId, NodeStatus>, members: &[NodeId]) -> Option<NodeId> {
    let mine: BTreeMap<NodeId, NodeStatus> = members
        .iter()
        .filter_map(|n| statuses.get(n).map(|s| (*n, s.clone())))
        .collect();
    let leader = leader_of(&mine)?;
    let followers = mine.values().filter(|s| s.leader == Some(leader)).count();
    (followers > members.len() / 2).then_some(leader)
}

pub fn leader_of(statuses: &BTreeMap<NodeId, NodeStatus>) -> Option<NodeId> {
    statuses
        .values()
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| s.ballot)
        .map(|s| s.node)
}

/// Reserves `n` loopback UDP ports for the replicas by binding them; the caller releases each
/// just before its replica binds it. Ports are drawn below the kernel's ephemeral range, so no
/// socket bound to port 0 (the relay's, the clients', another test's) can take one meanwhile;
/// only another harness drawing the same port in that instant could.
fn reserve_udp_ports(n: usize) -> Result<Vec<UdpSocket>, ClusterError> {
    let (low, high) = reservable_range();
    let mut rng = rand::thread_rng();
    let mut reserved = Vec::with_capacity(n);
    for _ in 0..n.saturating_mul(200).max(200) {
        if reserved.len() == n {
            break;
        }
        let port = rng.gen_range(low..high);
        if let Ok(socket) = UdpSocket::bind(("127.0.0.1", port)) {
            reserved.push(socket);
        }
    }
    if reserved.len() < n {
        // Nearly everything below the ephemeral range is taken: fall back to ephemeral ports.
        while reserved.len() < n {
            reserved.push(UdpSocket::bind("127.0.0.1:0").map_err(ClusterError::Ports)?);
        }
    }
    Ok(reserved)
}

/// Starts a relay path for every replica pair and for clients to every replica, and rewrites
/// `config` so that all traffic goes through it.
async fn start_relay(config: &mut ClusterConfig) -> Result<Relay, ClusterError> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut paths = Vec::new();
    for from in &config.nodes {
        for to in &config.nodes {
            if from.id != to.id {
                paths.push(PathSpec {
                    from: Peer::Node(from.id),
                    to: Peer::Node(to.id),
                    listen: any,
                    target: to.addr,
                });
            }
        }
        paths.push(PathSpec {
            from: Peer::Clients,
            to: Peer::Node(from.id),
            listen: any,
            target: from.addr,
        });
    }
    let relay = Relay::start(&paths).await?;
    config.routes.clear();
    for path in &paths {
        let Some(addr) = relay.listen_addr(path.from, path.to) else {
            continue;
        };
        match (path.from, path.to) {
            (Peer::Node(from), Peer::Node(to)) => config.routes.push(Route { from, to, addr }),
            (Peer::Clients, Peer::Node(to)) => {
                if let Some(node) = config.nodes.iter_mut().find(|n| n.id == to) {
                    node.client_addr = Some(addr);
                }
            }
            _ => {}
        }
    }
    Ok(relay)
}

fn client_transport(config: &ClusterConfig) -> Result<Arc<dyn Transport>, ClusterError> {
    let client =
        replica::client::Client::new(config, &config.tls.client_cert, &config.tls.client_key)
            .map_err(|e| ClusterError::Client(e.to_string()))?;
    Ok(Arc::new(QuicTransport::new(client)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica::net::{CertRole, TlsIdentity};

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[tokio::test]
    async fn a_prepared_cluster_holds_no_ca_key_and_a_client_cert_for_its_clients() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ClusterSpec {
            nodes: 3,
            net: NetMode::Direct,
            // Never started: prepare only checks that the binary exists.
            replica_bin: std::env::current_exe().unwrap(),
            bug: None,
            accounts: vec!["A".into(), "B".into()],
            initial_balance: 10,
            checkpoint_interval_slots: None,
            tunables: None,
            shards: None,
        };
        let cluster = Cluster::prepare(dir.path(), spec).await.unwrap();
        let files = files_under(dir.path());
        assert!(
            !files.iter().any(|f| f.ends_with("ca.key")),
            "the CA key sits in the run directory: {files:?}"
        );
        let tls = &cluster.config().tls;
        let identity = TlsIdentity::load(&tls.ca_cert, &tls.client_cert, &tls.client_key).unwrap();
        // An operator: it fetches journals and arms failpoints besides submitting.
        let Some(CertRole::Operator(ids)) = identity.role() else {
            panic!("the harness's certificate is no operator's")
        };
        // Workers are numbered from 0; the bench runs hundreds of clients.
        for client in [0, 9, 999] {
            assert!(ids.contains(replica::types::ClientId(client)), "{ids}");
        }
    }
}
