//! A real cluster of `replica` processes on loopback, for the process-level tests.
//!
//! Each test gets its own temp dir, certificates and free UDP ports, so tests run in parallel.
//! Every process is killed when the `Cluster` is dropped, even when the test panics.

#![allow(dead_code)]

use replica::bank::{Command, Op, OpResult};
use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse, Role};
use replica::config::ClusterConfig;
use replica::net::certs::ClientCert;
use replica::types::{Amount, ClientId, ClientIdRange, NodeId, RequestId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: ClusterConfig,
    pub config_path: PathBuf,
    children: BTreeMap<NodeId, Child>,
    /// The replica binary every node runs.
    bin: PathBuf,
}

/// The first client id of the `plain` certificate's range (1,000 ids).
pub const PLAIN_FIRST_ID: u64 = 1 << 33;

/// Free UDP ports on loopback: bind to port 0, note the port, release it.
fn free_udp_ports(count: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..count)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("local addr").port())
        .collect()
}

impl Cluster {
    /// Writes certificates and `cluster.toml` for `nodes` replicas and starts them all.
    pub fn start(nodes: u32) -> Cluster {
        Cluster::start_with(
            ClusterConfig::local(nodes, 1, Path::new("certs")),
            env!("CARGO_BIN_EXE_replica").into(),
        )
    }

    /// [`Cluster::start`] for `shards` × `replicas_per_shard` replicas (shard k is the k-th run
    /// of consecutive node ids; accounts A–J dealt round-robin).
    pub fn start_sharded(shards: u32, replicas_per_shard: u32) -> Cluster {
        Cluster::start_sharded_with(shards, replicas_per_shard, env!("CARGO_BIN_EXE_replica"))
    }

    /// [`Cluster::start_sharded`] running `bin` (say, `replica-bugs`) on every node.
    pub fn start_sharded_with(
        shards: u32,
        replicas_per_shard: u32,
        bin: impl Into<PathBuf>,
    ) -> Cluster {
        let config =
            ClusterConfig::local_sharded(shards, replicas_per_shard, 1, Path::new("certs"))
                .expect("a sharded config");
        Cluster::start_with(config, bin.into())
    }

    /// Gives every node of `config` a free port, writes certificates and `cluster.toml`, and
    /// starts every replica.
    fn start_with(config: ClusterConfig, bin: PathBuf) -> Cluster {
        let mut cluster = Cluster::prepare_with(config, bin);
        for id in cluster.config.node_ids() {
            cluster.start_node(id);
        }
        cluster
    }

    /// Certificates and `cluster.toml` for `nodes` replicas running `bin`, none started yet
    /// (a test fills a data directory first, then [`Cluster::start_node`]s).
    pub fn prepare(nodes: u32, bin: impl Into<PathBuf>) -> Cluster {
        Cluster::prepare_with(
            ClusterConfig::local(nodes, 1, Path::new("certs")),
            bin.into(),
        )
    }

    fn prepare_with(mut config: ClusterConfig, bin: PathBuf) -> Cluster {
        // The interval these tests were written for (the default before issue 22): a few
        // dozen transfers take a replica through several checkpoints and restarts through
        // them.
        config.limits.checkpoint_interval_slots = 10;
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_dir = dir.path().join("certs");
        let nodes = config.nodes.len();
        for (node, port) in config.nodes.iter_mut().zip(free_udp_ports(nodes)) {
            node.addr.set_port(port);
        }
        // `plain`: a client certificate of its own id range (its own share of every limit).
        let plain_ids = ClientIdRange::new(PLAIN_FIRST_ID, PLAIN_FIRST_ID + 999).expect("ids");
        let clients = [
            ClientCert::operator("client", ClientIdRange::DEFAULT),
            ClientCert::new("plain", plain_ids),
        ];
        replica::net::certs::generate_cluster(&cert_dir, &config.node_ids(), &clients, None)
            .expect("certificates");
        // `rogue`: signed by a CA the cluster does not trust (its handshakes fail).
        replica::net::certs::generate_foreign_client_cert(&cert_dir, "rogue")
            .expect("a foreign certificate");
        let config_path = dir.path().join("cluster.toml");
        config.save(&config_path).expect("write cluster.toml");
        let config = ClusterConfig::load(&config_path).expect("reload cluster.toml");
        Cluster {
            dir,
            config,
            config_path,
            children: BTreeMap::new(),
            bin,
        }
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("data-{id}"))
    }

    pub fn start_node(&mut self, id: NodeId) {
        let config_path = self.config_path.clone();
        self.start_node_with(id, &config_path);
    }

    /// Starts `id` reading `config_path` rather than the cluster's own `cluster.toml`.
    pub fn start_node_with(&mut self, id: NodeId, config_path: &Path) {
        let log = self.dir.path().join(format!("{id}.log"));
        // REPLICA_WRAPPER (say `heaptrack`) runs each replica under a profiler.
        let bin = &self.bin;
        let mut process = match std::env::var_os("REPLICA_WRAPPER") {
            Some(wrapper) => {
                let mut p = Process::new(wrapper);
                p.arg(bin);
                p
            }
            None => Process::new(bin),
        };
        let child = process
            .arg("run")
            .arg("--config")
            .arg(config_path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--log-file")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a replica");
        self.children.insert(id, child);
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: NodeId) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client::new(
            &self.config,
            &self.config.tls.client_cert,
            &self.config.tls.client_key,
        )
        .expect("client")
    }

    /// Waits until the process of `id` exits by itself (a failpoint's abort, say) or `within`
    /// passes; its exit status, or `None` if it still runs. An exited node counts as down.
    pub async fn wait_exit(
        &mut self,
        id: NodeId,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.children.get_mut(&id)?;
            if let Ok(Some(status)) = child.try_wait() {
                self.children.remove(&id);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The OS process id of a running replica.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.children.get(&id).map(|child| child.id())
    }

    pub fn live(&self) -> Vec<NodeId> {
        self.children.keys().copied().collect()
    }

    /// A log line count of every node, for a failing test's message.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for id in self.config.node_ids() {
            let path = self.dir.path().join(format!("{id}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(8)..];
            out.push_str(&format!("--- {id}\n{}\n", tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("FAULTLINE_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("kept the cluster directory {}", kept.keep().display());
        }
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn transfer(client: u64, request: u64, from: &str, to: &str, amount: Amount) -> ClientRequest {
    ClientRequest::Submit(Command::transfer(client, request, from, to, amount))
}

pub fn read_all(client: u64, request: u64) -> ClientRequest {
    ClientRequest::Submit(Command {
        client: ClientId(client),
        request: RequestId(request),
        op: Op::ReadAll,
    })
}

/// Submits until a definite answer or `within` passes.
pub async fn submit(
    client: &Client,
    request: &ClientRequest,
    within: Duration,
) -> Option<ClientResponse> {
    let deadline = Instant::now() + within;
    client
        .call_until_definite(request, None, Duration::from_millis(500), deadline)
        .await
        .ok()
}

/// Waits until some live node says it is the leader; returns it.
pub async fn wait_for_leader(
    client: &Client,
    nodes: &[NodeId],
    within: Duration,
) -> Option<NodeId> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for &node in nodes {
            if let Ok(ClientResponse::Status(s)) = client
                .call(node, &ClientRequest::Status, Duration::from_millis(300))
                .await
            {
                if s.role == Role::Leader {
                    return Some(node);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Waits until every node in `nodes` reports the same exec index and balances; returns them.
pub async fn wait_identical(
    client: &Client,
    nodes: &[NodeId],
    within: Duration,
) -> Result<(u64, BTreeMap<replica::types::Account, Amount>), String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut seen = Vec::new();
        for &node in nodes {
            match client
                .call(node, &ClientRequest::PrintDb, Duration::from_millis(500))
                .await
            {
                Ok(ClientResponse::Db {
                    exec_index,
                    balances,
                    ..
                }) => seen.push((exec_index, balances)),
                other => seen.push((u64::MAX, BTreeMap::from([(format!("{other:?}").into(), 0)]))),
            }
        }
        if seen.windows(2).all(|w| w[0] == w[1]) && seen[0].0 != u64::MAX {
            return Ok(seen.swap_remove(0));
        }
        last = format!("{seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("replicas did not converge: {last}"))
}

/// The outcome of a transfer reply, or a panic message naming what came back.
pub fn transferred(response: &ClientResponse) -> bool {
    match response {
        ClientResponse::Reply { reply, .. } => matches!(reply.result, OpResult::Transferred { .. }),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The balances every replica of `nodes` (one shard's live replicas) agrees on once
/// `account` holds `expected` there, waiting at most `within`. The coordinator answers the
/// client when it decides; a participant applies the decision when it hears it, a little
/// later, so a test that reads the other shard right after the answer must wait for it.
pub async fn settled(
    client: &Client,
    nodes: &[NodeId],
    account: &str,
    expected: Amount,
    within: Duration,
) -> BTreeMap<replica::types::Account, Amount> {
    let deadline = Instant::now() + within;
    loop {
        let (_, balances) = wait_identical(client, nodes, within)
            .await
            .unwrap_or_else(|e| panic!("shard {nodes:?}: {e}"));
        if balances.get(account) == Some(&expected) {
            return balances;
        }
        assert!(
            Instant::now() < deadline,
            "shard {nodes:?} never showed {account} = {expected}: {balances:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `VmHWM` (peak RSS) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
