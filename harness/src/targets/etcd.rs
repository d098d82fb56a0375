//! etcd 3.4 as a [`Target`]: members as OS processes, the bank as etcd transactions.
//!
//! **Members.** Each member is an `etcd` process ([`crate::os::process::Child`]: own process group,
//! dies with the harness) with its data dir under `<run>/etcd/<node>` and its output in
//! `<run>/<node>.log`, on loopback ports picked below the ephemeral range (a restarted member
//! must get its ports back). A kill is SIGKILL, a restart reuses the data dir.
//!
//! **The bank** (the contract with the checker, see `checker::final_state`):
//! - one key per account, `/faultline/acct/<NAME>`, the balance as decimal text; the initial
//!   balances are written in one txn before the run, whose revision is the *base*;
//! - a transfer is one txn: both accounts' `mod_revision` equal what was read and
//!   `create_revision(/faultline/op/<client>/<request>) == 0`, then put both balances and the
//!   op key (the transfer as JSON, with the balances it left). A compare lost because an
//!   account moved re-reads (the txn's else branch reads them) and tries again; lost because
//!   the op key exists, the transfer was already applied by an earlier attempt whose answer
//!   was lost: `ok` at the op key's create revision. Retrying after a timeout is therefore
//!   exactly-once;
//! - read / read_all are one range request, linearizable unless `--etcd-reads serializable`;
//!   a transfer reads the accounts and its op key in one read-only txn (always linearizable), so
//!   a retry after a timed-out txn that did apply finds the op key rather than a balance too
//!   low for a second application, which would be reported as insufficient funds;
//! - every `ok`/`fail` carries `exec_index` = an etcd revision: an applied transfer's own
//!   (unique), a read's or an insufficient-funds transfer's header revision (shared with the
//!   write it observed).
//!
//! Each simulated client talks to one member (client `i` to member `i mod n`), as Jepsen's
//! do, so a partitioned or paused member's clients see it. A scenario's clients roam instead
//! ([`Target::roaming_client`]): a set may keep a client's member down, so a client that gets
//! no answer from one member moves on to the next (safe: the op key keeps every transfer
//! exactly-once on whichever member it lands).
//!
//! The scenario prompt's questions are answered from etcd's own state, member by member
//! ([`inspect`]).
//!
//! **final.json** is built from etcd's own history: for each member, the balances from a
//! serializable read on that member, and one executed entry per revision after the base, from
//! a watch on that member starting at base + 1 (each revision's account puts give the balances,
//! its op key gives client, request and transfer). Top-level `"positions": "shared_reads"`
//! tells the checker that reads share their write's position, `"base_revision"` where the
//! executed lists start.

pub mod error;
mod inspect;

use super::{BankClient, BoxFuture, Inspect, PrepareSpec, Target, TargetError};
use crate::clients::caller::Submitted;
use crate::os::process::Child;
use crate::os::process::ReplicaState;
use crate::os::relay::{Link, Peer};
use crate::os::relay_tcp::{TcpPathSpec, TcpRelay};
use crate::params::NetMode;
use crate::params::{ReadMode, TargetKind};
use crate::record::Recorder;
use crate::targets::etcd::error::EtcdError;
use checker::final_state::{ExecutedEntry, FinalState, NodeFinal};
use checker::history::{values, EventType};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, KeyValue, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use rand::Rng;
use replica::bank::{Command, Invalid, Op, OpResult, Reply};
use replica::types::{ClientId, NodeId, RequestId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command as OsCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Where the accounts live.
pub const ACCOUNT_PREFIX: &str = "/faultline/acct/";
/// Where applied transfers leave their mark (`<client>/<request>`).
pub const OP_PREFIX: &str = "/faultline/op/";
/// Status and control requests that take longer are given up (a paused member never answers).
const CONTROL_TIMEOUT: Duration = Duration::from_millis(700);
/// Pause between two attempts of one operation after an error.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

fn client_err(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Client(e.to_string())
}

/// The etcd binary: `--etcd-bin`, else `etcd` on PATH.
pub fn find_etcd_bin(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("etcd"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

/// `etcd --version`'s first line, or why it could not be had.
pub fn etcd_version(bin: &Path) -> String {
    match OsCommand::new(bin).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// One member's process and where it listens.
struct Member {
    name: String,
    data_dir: PathBuf,
    log_file: PathBuf,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    /// What the other members are told to dial: the relay's port for this member, or
    /// `peer_addr` on a direct network.
    advertised_peer: SocketAddr,
    /// Where the workload's clients connect: the relay's client port, or `client_addr`.
    workload_addr: SocketAddr,
    child: Option<Child>,
    paused: bool,
}

pub struct EtcdTarget {
    dir: PathBuf,
    bin: PathBuf,
    nodes: Vec<NodeId>,
    members: BTreeMap<NodeId, Member>,
    /// `n1=http://...,n2=...`: the advertised peer URLs.
    initial_cluster: String,
    /// The TCP relay every peer and client connection goes through (`--net relay`).
    relay: Option<Arc<TcpRelay>>,
    /// Direct clients for status and the final phase (never cut).
    control: BTreeMap<NodeId, Client>,
    /// The clients the workload uses, one per member.
    workload: Vec<(NodeId, Client)>,
    /// etcd member id to node.
    member_ids: BTreeMap<u64, NodeId>,
    reads: ReadMode,
    attempt_timeout: Duration,
    accounts: Vec<String>,
    /// The revision of the initial balances.
    base_revision: i64,
}

impl EtcdTarget {
    /// Starts every member, waits for a leader, writes the initial balances.
    pub async fn prepare(spec: &PrepareSpec<'_>) -> Result<EtcdTarget, TargetError> {
        let bin = spec.etcd_bin.to_path_buf();
        if !bin.is_file() {
            return Err(EtcdError::NoBinary(bin).into());
        }
        let params = spec.params;
        let nodes: Vec<NodeId> = (1..=params.nodes).map(NodeId).collect();
        let ports = reserve_tcp_ports(nodes.len() * 2)?;
        let mut members = BTreeMap::new();
        for (k, &node) in nodes.iter().enumerate() {
            let name = node.to_string();
            let data_dir = spec.dir.join("etcd").join(&name);
            std::fs::create_dir_all(&data_dir).map_err(|source| EtcdError::Io {
                path: data_dir.clone(),
                cause: source,
            })?;
            members.insert(
                node,
                Member {
                    log_file: spec.dir.join(format!("{name}.log")),
                    name,
                    data_dir,
                    client_addr: ports[2 * k],
                    peer_addr: ports[2 * k + 1],
                    advertised_peer: ports[2 * k + 1],
                    workload_addr: ports[2 * k],
                    child: None,
                    paused: false,
                },
            );
        }
        let relay = match params.net {
            NetMode::Relay => Some(Arc::new(start_relay(&mut members).await?)),
            NetMode::Direct => None,
        };
        if let Some(relay) = &relay {
            relay.set_delay(Duration::from_millis(params.delay_ms));
        }
        let initial_cluster = members
            .values()
            .map(|m| format!("{}=http://{}", m.name, m.advertised_peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut target = EtcdTarget {
            dir: spec.dir.to_path_buf(),
            bin,
            nodes: nodes.clone(),
            members,
            initial_cluster,
            relay,
            control: BTreeMap::new(),
            workload: Vec::new(),
            member_ids: BTreeMap::new(),
            reads: params.etcd_reads,
            attempt_timeout: Duration::from_millis(params.attempt_timeout_ms),
            accounts: spec.accounts.clone(),
            base_revision: 0,
        };
        for &node in &nodes {
            target.start(node)?;
        }
        for (&node, member) in &target.members {
            let direct = format!("http://{}", member.client_addr);
            target.control.insert(node, connect(&direct).await?);
            let workload = format!("http://{}", member.workload_addr);
            target.workload.push((node, connect(&workload).await?));
        }
        let timeout = Duration::from_millis(params.start_timeout_ms);
        target.wait_for_leader(timeout).await?;
        target.learn_member_ids(timeout).await?;
        target.base_revision = target.write_initial(spec.initial_balance, timeout).await?;
        Ok(target)
    }

    /// etcd member ids by node name, from MemberList.
    async fn learn_member_ids(&mut self, timeout: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            for client in self.control.values() {
                let mut c = client.clone();
                let Ok(Ok(list)) = tokio::time::timeout(CONTROL_TIMEOUT, c.member_list()).await
                else {
                    continue;
                };
                for m in list.members() {
                    if let Some((&node, _)) = self.members.iter().find(|(_, x)| x.name == m.name())
                    {
                        self.member_ids.insert(m.id(), node);
                    }
                }
                if self.member_ids.len() == self.nodes.len() {
                    if let Some(relay) = &self.relay {
                        for (&id, &node) in &self.member_ids {
                            relay.register_member(id, node);
                        }
                    }
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(EtcdError::Client(format!(
                    "MemberList did not name every member within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Puts every account's initial balance in one txn; returns its revision (the base).
    async fn write_initial(&self, balance: i64, timeout: Duration) -> Result<i64, EtcdError> {
        let puts: Vec<TxnOp> = self
            .accounts
            .iter()
            .map(|a| TxnOp::put(account_key(a), balance.to_string(), None))
            .collect();
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            for client in self.control.values() {
                let mut c = client.clone();
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    c.txn(Txn::new().and_then(puts.clone())),
                )
                .await
                {
                    Ok(Ok(resp)) => {
                        return header_revision(resp.header()).ok_or_else(|| {
                            EtcdError::Client("the initial txn's answer has no header".into())
                        })
                    }
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = "timed out".into(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EtcdError::Client(format!(
            "cannot write the initial balances: {last}"
        )))
    }

    fn member(&mut self, node: NodeId) -> Result<&mut Member, EtcdError> {
        self.members
            .get_mut(&node)
            .ok_or(EtcdError::UnknownNode(node))
    }

    /// Every answering member's (term, leader node, store revision), asked concurrently.
    async fn statuses(&self) -> BTreeMap<NodeId, (u64, Option<NodeId>, i64)> {
        let asks = self.control.iter().map(|(&node, client)| {
            let mut c = client.clone();
            async move {
                let r = tokio::time::timeout(CONTROL_TIMEOUT, c.status()).await;
                (node, r)
            }
        });
        let mut out = BTreeMap::new();
        for (node, r) in crate::os::transport::join_all(asks).await {
            if let Ok(Ok(s)) = r {
                let leader = self.member_ids.get(&s.leader()).copied().or_else(|| {
                    // Before the ids are known, a member that leads says so by its own id.
                    (s.leader() != 0 && s.header().map(|h| h.member_id()) == Some(s.leader()))
                        .then_some(node)
                });
                out.insert(
                    node,
                    (
                        s.raft_term(),
                        leader,
                        header_revision(s.header()).unwrap_or(0),
                    ),
                );
            }
        }
        out
    }

    /// The leader a majority of the answering members name at the highest term.
    async fn current_leader(&self) -> Option<NodeId> {
        let statuses = self.statuses().await;
        let term = statuses.values().map(|s| s.0).max()?;
        let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (t, leader, _) in statuses.values() {
            if let (true, Some(l)) = (*t == term, leader) {
                *votes.entry(*l).or_default() += 1;
            }
        }
        let majority = self.nodes.len() / 2 + 1;
        votes
            .into_iter()
            .filter(|(l, v)| *v >= majority || statuses.get(l).is_some_and(|s| s.1 == Some(*l)))
            .max_by_key(|(_, v)| *v)
            .map(|(l, _)| l)
    }

    async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.current_leader().await {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(EtcdError::NoLeader(timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every member answers with the same store revision.
    async fn wait_for_quiet(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.statuses().await;
            let revisions: BTreeSet<i64> = s.values().map(|v| v.2).collect();
            if s.len() == self.nodes.len() && revisions.len() == 1 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What one member holds: balances (serializable read) and its history after the base.
    async fn fetch_member(&self, node: NodeId) -> Result<NodeFinal, EtcdError> {
        let client = self
            .control
            .get(&node)
            .ok_or(EtcdError::UnknownNode(node))?;
        let mut c = client.clone();
        let opts = GetOptions::new().with_prefix().with_serializable();
        let resp = tokio::time::timeout(Duration::from_secs(5), c.get(ACCOUNT_PREFIX, Some(opts)))
            .await
            .map_err(|_| EtcdError::Client(format!("{node}: the final read timed out")))?
            .map_err(client_err)?;
        let revision = header_revision(resp.header()).unwrap_or(0);
        let balances = balances_of(&resp)?;
        let executed = if revision > self.base_revision {
            let history = watch_history(client, self.base_revision + 1, revision).await?;
            executed_entries(&history)
        } else {
            Vec::new()
        };
        Ok(NodeFinal {
            balances: Some(balances),
            executed,
            error: None,
        })
    }

    /// A read_all through each member, recorded as client operations.
    async fn final_reads(&self, recorder: &Recorder, first_process: u64) {
        for (k, (node, client)) in self.workload.iter().enumerate() {
            let process = first_process + k as u64;
            let command = Command {
                client: ClientId(process),
                request: RequestId(1),
                op: Op::ReadAll,
            };
            recorder.invoke(process, &command);
            let bank = Bank {
                node: *node,
                client: client.clone(),
                reads: self.reads,
                attempt_timeout: self.attempt_timeout,
                accounts: self.accounts.clone(),
            };
            let outcome = bank
                .run(&command, Instant::now() + Duration::from_secs(15))
                .await;
            recorder.complete(process, &command, &outcome);
        }
    }

    /// The bank on each member, through the workload's clients (and so the relay).
    fn banks(&self) -> Vec<Bank> {
        self.workload
            .iter()
            .map(|(node, client)| Bank {
                node: *node,
                client: client.clone(),
                reads: self.reads,
                attempt_timeout: self.attempt_timeout,
                accounts: self.accounts.clone(),
            })
            .collect()
    }

    fn write_final(&self, nodes: BTreeMap<String, NodeFinal>) -> Result<(), EtcdError> {
        let path = self.dir.join("final.json");
        let state = FinalState { nodes };
        let mut value = serde_json::to_value(&state).map_err(|e| EtcdError::Write {
            path: path.clone(),
            cause: std::io::Error::other(e),
        })?;
        if let Value::Object(map) = &mut value {
            map.insert("positions".into(), Value::from("shared_reads"));
            map.insert("base_revision".into(), Value::from(self.base_revision));
        }
        let text = serde_json::to_string(&value).map_err(|e| EtcdError::Write {
            path: path.clone(),
            cause: std::io::Error::other(e),
        })?;
        std::fs::write(&path, text + "\n").map_err(|cause| EtcdError::Write { path, cause })
    }
}

impl Target for EtcdTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Etcd
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    fn start(&mut self, node: NodeId) -> Result<(), TargetError> {
        let bin = self.bin.clone();
        let initial_cluster = self.initial_cluster.clone();
        let member = self.member(node)?;
        if let Some(mut old) = member.child.take() {
            old.kill();
        }
        let (log, log2) =
            crate::os::process::append_output(&member.log_file).map_err(|source| {
                EtcdError::Io {
                    path: member.log_file.clone(),
                    cause: source,
                }
            })?;
        let client_url = format!("http://{}", member.client_addr);
        let peer_url = format!("http://{}", member.peer_addr);
        let advertised_peer_url = format!("http://{}", member.advertised_peer);
        let mut command = OsCommand::new(&bin);
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&advertised_peer_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("faultline")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = Child::spawn(command).map_err(|cause| EtcdError::Spawn { node, bin, cause })?;
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
        let member = self.member(node)?;
        if let Some(mut child) = member.child.take() {
            child.kill();
        }
        member.paused = false;
        Ok(())
    }

    fn pause(&mut self, node: NodeId) -> Result<(), TargetError> {
        let member = self.member(node)?;
        if let Some(child) = &member.child {
            if child.pause().is_ok() {
                member.paused = true;
            }
        }
        Ok(())
    }

    fn resume(&mut self, node: NodeId) -> Result<(), TargetError> {
        let member = self.member(node)?;
        if let Some(child) = &member.child {
            let _ = child.resume();
        }
        member.paused = false;
        Ok(())
    }

    fn set_cuts(&self, cuts: &[Link]) {
        if let Some(relay) = &self.relay {
            relay.set_cuts(cuts);
        }
    }

    fn heal_everything(&mut self) -> Result<Vec<String>, TargetError> {
        let mut done = Vec::new();
        if let Some(relay) = &self.relay {
            if !relay.cuts().is_empty() {
                done.push("healed the network".to_string());
            }
            relay.heal_all();
        }
        for node in self.nodes.clone() {
            let member = self.member(node)?;
            let alive = member
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().is_none());
            if !alive {
                self.start(node)?;
                done.push(format!("restarted {node}"));
            } else if member.paused {
                self.resume(node)?;
                done.push(format!("resumed {node}"));
            }
        }
        Ok(done)
    }

    fn stop_all(&mut self) {
        for member in self.members.values_mut() {
            if let Some(mut child) = member.child.take() {
                child.kill();
            }
            member.paused = false;
        }
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(self.current_leader())
    }

    fn client(&self) -> Arc<dyn BankClient> {
        Arc::new(EtcdBank {
            members: self.banks(),
        })
    }

    fn begin(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async { Ok(()) })
    }

    fn final_phase<'a>(
        &'a mut self,
        recorder: &'a Recorder,
        first_process: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, TargetError>> {
        Box::pin(async move {
            let mut notes = Vec::new();
            let settle = Duration::from_secs(30);
            if let Err(e) = self.wait_for_leader(settle).await {
                notes.push(format!("after healing: {e}"));
            }
            if !self.wait_for_quiet(settle).await {
                notes.push("the members did not agree on a revision before the final reads".into());
            }
            self.final_reads(recorder, first_process).await;
            if !self.wait_for_quiet(settle).await {
                notes.push("the members did not agree on a revision after the final reads".into());
            }
            let mut nodes = BTreeMap::new();
            for &node in &self.nodes {
                let fetched = match self.fetch_member(node).await {
                    Ok(f) => f,
                    Err(e) => {
                        notes.push(format!("{node}: {e}"));
                        NodeFinal::unreachable(e.to_string())
                    }
                };
                nodes.insert(node.to_string(), fetched);
            }
            self.write_final(nodes)?;
            Ok(notes)
        })
    }

    fn state(&mut self, node: NodeId) -> ReplicaState {
        let Some(member) = self.members.get_mut(&node) else {
            return ReplicaState::Down;
        };
        ReplicaState::of(member.child.as_mut(), member.paused)
    }

    fn can_cut(&self) -> bool {
        self.relay.is_some()
    }

    fn roaming_client(&self) -> Arc<dyn BankClient> {
        Arc::new(RoamingBank {
            members: self.banks(),
            // Long enough for a transfer's read and txn on a member that answers.
            slice: self.attempt_timeout * 2,
            last: Mutex::new(BTreeMap::new()),
        })
    }

    fn inspect<'a>(&'a mut self, question: &'a Inspect) -> BoxFuture<'a, String> {
        Box::pin(self.answer(question))
    }
}

impl Drop for EtcdTarget {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts a relay path into every member's peer port (shared by all other members) and client
/// port, and points each member's advertised peer address and workload address at it.
async fn start_relay(members: &mut BTreeMap<NodeId, Member>) -> Result<TcpRelay, EtcdError> {
    let mut paths = Vec::new();
    for (&node, m) in members.iter() {
        paths.push(TcpPathSpec {
            from: Peer::Node(node),
            to: node,
            target: m.peer_addr,
        });
        paths.push(TcpPathSpec {
            from: Peer::Clients,
            to: node,
            target: m.client_addr,
        });
    }
    let relay = TcpRelay::start(&paths)
        .await
        .map_err(|e| EtcdError::Client(format!("cannot start the TCP relay: {e}")))?;
    for (&node, m) in members.iter_mut() {
        let missing = || EtcdError::Client(format!("the TCP relay has no port for {node}"));
        m.advertised_peer = relay
            .listen_addr(Peer::Node(node), node)
            .ok_or_else(missing)?;
        m.workload_addr = relay.listen_addr(Peer::Clients, node).ok_or_else(missing)?;
    }
    Ok(relay)
}

/// A client connection that gives up connecting quickly (a member may be down).
async fn connect(url: &str) -> Result<Client, EtcdError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    Client::connect([url], Some(options))
        .await
        .map_err(|e| EtcdError::Client(format!("cannot connect to {url}: {e}")))
}

fn account_key(account: &str) -> String {
    format!("{ACCOUNT_PREFIX}{account}")
}

fn op_key(client: u64, request: u64) -> String {
    format!("{OP_PREFIX}{client}/{request}")
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Option<i64> {
    h.map(|h| h.revision())
}

/// `2 * n` distinct loopback TCP ports below the ephemeral range (see
/// `os::ports::reservable_range`), free when picked.
fn reserve_tcp_ports(n: usize) -> Result<Vec<SocketAddr>, EtcdError> {
    let (low, high) = crate::os::ports::reservable_range();
    let mut rng = rand::thread_rng();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n.saturating_mul(200).max(200) {
        if held.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", rng.gen_range(low..high))) {
            held.push(l);
        }
    }
    while held.len() < n {
        held.push(TcpListener::bind("127.0.0.1:0").map_err(EtcdError::Ports)?);
    }
    held.iter()
        .map(|l| l.local_addr().map_err(EtcdError::Ports))
        .collect()
}

/// Account balances out of a range over [`ACCOUNT_PREFIX`].
fn balances_of(resp: &GetResponse) -> Result<BTreeMap<String, i64>, EtcdError> {
    resp.kvs().iter().map(account_entry).collect()
}

fn account_entry(kv: &KeyValue) -> Result<(String, i64), EtcdError> {
    let key = kv.key_str().map_err(client_err)?;
    let name = key.strip_prefix(ACCOUNT_PREFIX).unwrap_or(key).to_string();
    let text = kv.value_str().map_err(client_err)?;
    let balance = text
        .parse::<i64>()
        .map_err(|e| EtcdError::Client(format!("{key} holds {text:?}, not a balance: {e}")))?;
    Ok((name, balance))
}

/// One write revision as the watch delivered it: (key, value) of every put.
type Revision = Vec<(String, String)>;

/// Every put on `/faultline/` from `from` to `to` (revisions included), through one member.
async fn watch_history(
    client: &Client,
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, Revision>, EtcdError> {
    let mut c = client.clone();
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        c.watch("/faultline/", Some(options)),
    )
    .await
    .map_err(|_| EtcdError::Client("the history watch did not start".into()))?
    .map_err(client_err)?;
    let mut history: BTreeMap<i64, Revision> = BTreeMap::new();
    while history.keys().next_back().copied().unwrap_or(0) < to {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| EtcdError::Client(format!("the history watch stalled before {to}")))?
            .map_err(client_err)?;
        let Some(resp) = message else {
            return Err(EtcdError::Client("the history watch ended early".into()));
        };
        if resp.canceled() {
            return Err(EtcdError::Client(format!(
                "the history watch was cancelled: {} (compacted at {})",
                resp.cancel_reason(),
                resp.compact_revision()
            )));
        }
        for event in resp.events() {
            if let Some(kv) = event.kv() {
                let key = kv.key_str().map_err(client_err)?.to_string();
                let value = kv.value_str().map_err(client_err)?.to_string();
                history
                    .entry(kv.mod_revision())
                    .or_default()
                    .push((key, value));
            }
        }
    }
    history.retain(|&r, _| r <= to);
    Ok(history)
}

/// final.json's executed entries from the watched revisions.
fn executed_entries(history: &BTreeMap<i64, Revision>) -> Vec<ExecutedEntry> {
    history
        .iter()
        .map(|(&revision, puts)| executed_entry(revision, puts))
        .collect()
}

/// One revision as an executed transfer: the op key names it, the account puts give the
/// balances it left. A revision that is not a transfer of ours is kept as what it wrote, so
/// the checker sees it rather than a gap.
fn executed_entry(revision: i64, puts: &Revision) -> ExecutedEntry {
    let exec_index = u64::try_from(revision).unwrap_or(0);
    let op = puts.iter().find_map(|(k, v)| {
        let rest = k.strip_prefix(OP_PREFIX)?;
        let (client, request) = rest.split_once('/')?;
        let value: Value = serde_json::from_str(v).ok()?;
        Some((
            client.parse::<u64>().ok()?,
            request.parse::<u64>().ok()?,
            value,
        ))
    });
    let balance_of = |account: &str| {
        puts.iter()
            .find(|(k, _)| k.strip_prefix(ACCOUNT_PREFIX) == Some(account))
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    if let Some((client, request_id, op)) = op {
        let from = op["from"].as_str().unwrap_or_default();
        let to = op["to"].as_str().unwrap_or_default();
        let amount = op["amount"].as_i64().unwrap_or_default();
        if let (Some(fb), Some(tb)) = (balance_of(from), balance_of(to)) {
            return ExecutedEntry {
                exec_index,
                client,
                request_id,
                f: "transfer".into(),
                value: values::transfer_ok(from, to, amount, fb, tb),
                kind: EventType::Ok,
            };
        }
    }
    ExecutedEntry {
        exec_index,
        client: 0,
        request_id: 0,
        f: "write".into(),
        value: json!({"unexpected_write": puts}),
        kind: EventType::Ok,
    }
}

/// The bank's operations for the workload: client `i` on member `i mod n`.
struct EtcdBank {
    members: Vec<Bank>,
}

impl BankClient for EtcdBank {
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted> {
        Box::pin(async move {
            let n = self.members.len().max(1) as u64;
            let k = usize::try_from(command.client.0 % n).unwrap_or(0);
            match self.members.get(k) {
                Some(bank) => bank.run(command, deadline).await,
                None => Submitted::Unknown {
                    last_error: "no etcd member".into(),
                    last_node: None,
                },
            }
        })
    }
}

/// The bank for clients that must get through whichever members are up (scenarios): each
/// operation starts on the member that last answered this client (at first its own, `i mod
/// n`) and moves on to the next member whenever one gives no answer within `slice`.
struct RoamingBank {
    members: Vec<Bank>,
    /// How long one member is given before the next is tried.
    slice: Duration,
    /// The member (index into `members`) that last answered each client.
    last: Mutex<BTreeMap<u64, usize>>,
}

impl RoamingBank {
    fn first_member(&self, client: u64) -> usize {
        let own = usize::try_from(client % self.members.len().max(1) as u64).unwrap_or(0);
        self.last
            .lock()
            .map(|last| last.get(&client).copied().unwrap_or(own))
            .unwrap_or(own)
    }

    /// Where this client's next operation (or next round of this one) starts.
    fn remember(&self, client: u64, member: usize) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(client, member);
        }
    }
}

impl BankClient for RoamingBank {
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted> {
        Box::pin(async move {
            let n = self.members.len();
            let client = command.client.0;
            let mut k = self.first_member(client);
            let mut outcome = Submitted::Unknown {
                last_error: "no etcd member".into(),
                last_node: None,
            };
            while let Some(bank) = self.members.get(k) {
                outcome = bank
                    .run(command, deadline.min(Instant::now() + self.slice))
                    .await;
                if !matches!(outcome, Submitted::Unknown { .. }) {
                    self.remember(client, k);
                    return outcome;
                }
                // A caller that retries after the deadline goes on from the next member, so
                // a run of silent members is crossed over several rounds.
                k = (k + 1) % n;
                self.remember(client, k);
                if Instant::now() >= deadline {
                    break;
                }
            }
            outcome
        })
    }
}

/// The bank on one member.
struct Bank {
    node: NodeId,
    client: Client,
    reads: ReadMode,
    attempt_timeout: Duration,
    accounts: Vec<String>,
}

/// How one attempt ended short of an answer.
enum Retry {
    /// An error or timeout: read again and retry (the op key makes it exactly-once).
    Again(String),
}

impl Bank {
    async fn run(&self, command: &Command, deadline: Instant) -> Submitted {
        if let Some(reason) = self.invalid(&command.op) {
            return Submitted::Rejected {
                node: self.node,
                reason,
            };
        }
        let mut last_error = String::from("never sent");
        let mut read: Option<(GetResponse, u64)> = None;
        loop {
            if Instant::now() >= deadline {
                return Submitted::Unknown {
                    last_error,
                    last_node: Some(self.node),
                };
            }
            let step = match &command.op {
                Op::Read { account } => self.read(Some(account.as_str())).await.map(Step::Done),
                Op::ReadAll => self.read(None).await.map(Step::Done),
                Op::Transfer { from, to, amount } => {
                    self.transfer_step(command, from, to, *amount, read.take())
                        .await
                }
            };
            match step {
                Ok(Step::Done(s)) => return s,
                Ok(Step::Reread(r, revision)) => read = Some((r, revision)),
                Err(Retry::Again(e)) => {
                    last_error = e;
                    let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    fn invalid(&self, op: &Op) -> Option<Invalid> {
        let Op::Transfer { from, to, amount } = op else {
            return None;
        };
        if *amount <= 0 {
            return Some(Invalid::NonPositiveAmount(*amount));
        }
        if from == to {
            return Some(Invalid::SameAccount(from.clone()));
        }
        [from, to]
            .into_iter()
            .find(|a| !self.accounts.iter().any(|k| k == a.as_str()))
            .map(|a| Invalid::UnknownAccount(a.clone()))
    }

    /// One bounded call.
    async fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Retry> {
        match tokio::time::timeout(self.attempt_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Retry::Again(format!("{}: {what}: {e}", self.node))),
            Err(_) => Err(Retry::Again(format!(
                "{}: {what} timed out after {:?}",
                self.node, self.attempt_timeout
            ))),
        }
    }

    fn get_options(&self) -> GetOptions {
        match self.reads {
            ReadMode::Linearizable => GetOptions::new(),
            ReadMode::Serializable => GetOptions::new().with_serializable(),
        }
    }

    /// One account (`Some`) or all of them, in one range request.
    async fn read(&self, account: Option<&str>) -> Result<Submitted, Retry> {
        let mut c = self.client.clone();
        let resp = match account {
            Some(a) => {
                self.call("read", c.get(account_key(a), Some(self.get_options())))
                    .await?
            }
            None => {
                let opts = self.get_options().with_prefix();
                self.call("read_all", c.get(ACCOUNT_PREFIX, Some(opts)))
                    .await?
            }
        };
        let revision = self.revision(resp.header())?;
        let balances = balances_of(&resp).map_err(|e| Retry::Again(e.to_string()))?;
        let result = match account {
            Some(a) => OpResult::Balance {
                // A missing account reads as 0, and the checker will say the read is wrong.
                balance: balances.get(a).copied().unwrap_or(0),
            },
            None => OpResult::Balances {
                balances: balances.into_iter().map(|(a, b)| (a.into(), b)).collect(),
            },
        };
        Ok(self.executed(revision, result))
    }

    fn revision(&self, h: Option<&etcd_client::ResponseHeader>) -> Result<u64, Retry> {
        header_revision(h)
            .and_then(|r| u64::try_from(r).ok())
            .ok_or_else(|| Retry::Again(format!("{}: an answer without a header", self.node)))
    }

    fn executed(&self, revision: u64, result: OpResult) -> Submitted {
        Submitted::Executed {
            node: self.node,
            reply: Reply {
                exec_index: revision,
                result,
            },
        }
    }

    /// Reads (unless the last lost compare already did), then tries the txn once.
    async fn transfer_step(
        &self,
        command: &Command,
        from: &str,
        to: &str,
        amount: i64,
        read: Option<(GetResponse, u64)>,
    ) -> Result<Step, Retry> {
        let mut c = self.client.clone();
        let key = op_key(command.client.0, command.request.0);
        let (read, read_revision) = match read {
            Some(r) => r,
            None => {
                // The op key is read with the accounts: after an attempt whose txn timed out,
                // the transfer may be applied already, and the balances it left must not be
                // taken for insufficient funds. A read-only txn is linearizable.
                let both = Txn::new().and_then([
                    TxnOp::get(key.clone(), None),
                    TxnOp::get(ACCOUNT_PREFIX, Some(GetOptions::new().with_prefix())),
                ]);
                let resp = self.call("transfer read", c.txn(both)).await?;
                let revision = self.revision(resp.header())?;
                match self.applied_or_accounts(resp.op_responses())? {
                    Ok(done) => return Ok(Step::Done(done)),
                    Err(accounts) => (accounts, revision),
                }
            }
        };
        let find = |account: &str| {
            read.kvs()
                .iter()
                .find(|kv| kv.key() == account_key(account).as_bytes())
                .cloned()
        };
        let (Some(from_kv), Some(to_kv)) = (find(from), find(to)) else {
            return Err(Retry::Again(format!(
                "{}: account {from} or {to} is missing",
                self.node
            )));
        };
        let parse = |kv: &KeyValue| {
            account_entry(kv)
                .map(|(_, b)| b)
                .map_err(|e| Retry::Again(e.to_string()))
        };
        let (from_balance, to_balance) = (parse(&from_kv)?, parse(&to_kv)?);
        if from_balance < amount {
            return Ok(Step::Done(self.executed(
                read_revision,
                OpResult::InsufficientFunds { from_balance },
            )));
        }
        let (new_from, new_to) = (from_balance - amount, to_balance + amount);
        let mark = json!({"from": from, "to": to, "amount": amount,
                          "from_balance": new_from, "to_balance": new_to});
        let txn = Txn::new()
            .when([
                Compare::mod_revision(account_key(from), CompareOp::Equal, from_kv.mod_revision()),
                Compare::mod_revision(account_key(to), CompareOp::Equal, to_kv.mod_revision()),
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(account_key(from), new_from.to_string(), None),
                TxnOp::put(account_key(to), new_to.to_string(), None),
                TxnOp::put(key.clone(), mark.to_string(), None),
            ])
            .or_else([
                TxnOp::get(key, None),
                TxnOp::get(ACCOUNT_PREFIX, Some(GetOptions::new().with_prefix())),
            ]);
        let resp = self.call("transfer txn", c.txn(txn)).await?;
        let revision = self.revision(resp.header())?;
        if resp.succeeded() {
            return Ok(Step::Done(self.executed(
                revision,
                OpResult::Transferred {
                    from_balance: new_from,
                    to_balance: new_to,
                },
            )));
        }
        match self.applied_or_accounts(resp.op_responses())? {
            Ok(done) => Ok(Step::Done(done)),
            // An account moved since the read: the else branch's read (at the txn's revision)
            // is the next attempt's.
            Err(accounts) => Ok(Step::Reread(accounts, revision)),
        }
    }

    /// Reads `[get op key, get accounts]` responses: `Ok` with the answer when the op key
    /// exists (an earlier attempt of this very transfer was applied and its answer lost),
    /// else `Err` with the accounts.
    fn applied_or_accounts(
        &self,
        responses: Vec<TxnOpResponse>,
    ) -> Result<Result<Submitted, GetResponse>, Retry> {
        let mut responses = responses.into_iter();
        let (Some(TxnOpResponse::Get(mark)), Some(TxnOpResponse::Get(accounts))) =
            (responses.next(), responses.next())
        else {
            return Err(Retry::Again(format!(
                "{}: a txn's reads answered oddly",
                self.node
            )));
        };
        let Some(applied) = mark.kvs().first() else {
            return Ok(Err(accounts));
        };
        let value: Value = serde_json::from_slice(applied.value()).unwrap_or(Value::Null);
        let (Some(fb), Some(tb)) = (value["from_balance"].as_i64(), value["to_balance"].as_i64())
        else {
            return Err(Retry::Again(format!(
                "{}: the op mark {value} lacks balances",
                self.node
            )));
        };
        let at = u64::try_from(applied.create_revision()).unwrap_or(0);
        Ok(Ok(self.executed(
            at,
            OpResult::Transferred {
                from_balance: fb,
                to_balance: tb,
            },
        )))
    }
}
enum Step {
    Done(Submitted),
    /// The accounts as the lost txn's else branch read them, at its revision.
    Reread(GetResponse, u64),
}
