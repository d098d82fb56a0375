//! [`Network`]: a replica's single QUIC endpoint, serving peers and clients on one UDP socket.
//!
//! Outgoing peer traffic goes through one [`peer`](super::peer) link per peer. Incoming
//! connections are sorted by the role their verified certificate states
//! ([`super::tls::peer_role`]):
//!
//! - a replica certificate of a cluster member may open unidirectional streams of frames; each
//!   frame is delivered to `Incoming::peer_rx` as `(that node, message)`;
//! - a client certificate may open bidirectional streams, each carrying one `ClientRequest`
//!   frame answered by one `ClientResponse` frame; requests reach `Incoming::client_rx` with a
//!   oneshot for the answer. A `Submit` under a client id the certificate does not allow is
//!   answered `Unauthorized` here and never reaches the core;
//! - anyone else (no role, a replica that is not a member, a client opening a peer stream), and
//!   anyone sending a malformed or oversize frame, gets its connection closed (and logged with
//!   its name). Other connections are not affected.
//!
//! Everything is bounded ([`NetLimits`]): the per-peer outgoing queues, the incoming channels,
//! connections (all, and client ones), client streams per connection (QUIC stream credit, so
//! a client cannot even open more) and over all connections, the size of a client request
//! frame (far below a peer's), and a client connection's receive window. When the shell's
//! client queue or the endpoint's client stream budget is full, a request is answered
//! `Overloaded` at once (definitely not executed; retry later) instead of being buffered.
//!
//! No one can lock the others out:
//!
//! - every new connection first proves its address (a QUIC Retry), so a flood from spoofed
//!   addresses costs us no state; unauthenticated handshakes then share a small budget
//!   ([`NetLimits::max_handshakes`]), and one that cannot get a slot is refused at once;
//! - a connection from a member's configured address skips that budget and the connection
//!   cap (it still has to present the member's certificate): a flood never keeps a
//!   restarting follower's links out. Behind the harness's relay this never matches (the
//!   relay forwards from ephemeral upstream ports, and the certificate is known only after
//!   the handshake), so relayed members share the budget;
//! - a client certificate (its client id range) gets a fair share, not the whole budget: at
//!   most [`NetLimits::max_connections_per_identity`] connections and
//!   [`NetLimits::max_client_streams_per_identity`] requests at once;
//! - a client connection with no request for [`NetLimits::client_idle_timeout`] is closed
//!   (QUIC keep-alives no longer hold a slot forever).

use super::codes;
use super::frame::{encode_frame, finish, read_frame, write_frame, FrameReader};
use super::peer::{
    mismatch_reason, run_link, LinkStats, PeerHeader, OLD_PEER_HEADER_BYTES, PEER_HEADER_BYTES,
};
use super::tls::{peer_name, peer_role, speaks_fingerprint, CertRole, TlsError, TlsIdentity};
use super::warnings::WarnLimiter;
use crate::client_proto::{ClientRequest, ClientResponse};
use crate::config::ConfigFingerprint;
use crate::types::{ClientIdRange, NodeId};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

/// Most connections served at once, handshakes included; beyond it new ones are refused.
pub const MAX_CONNECTIONS: usize = 256;
/// Most connections with a client certificate; beyond it a new one is closed as busy.
pub const MAX_CLIENT_CONNECTIONS: usize = 128;
/// Most client requests being served at once per connection (the QUIC stream credit).
pub const MAX_CLIENT_STREAMS_PER_CONNECTION: u32 = 64;
/// Most client requests being served at once over all connections.
pub const MAX_CLIENT_STREAMS: usize = 1024;
/// Most connections one client certificate (client id range) holds at once.
pub const MAX_CONNECTIONS_PER_IDENTITY: usize = 8;
/// Most requests of one client certificate being served at once: an eighth of the budget.
pub const MAX_CLIENT_STREAMS_PER_IDENTITY: usize = MAX_CLIENT_STREAMS / 8;
/// Most unauthenticated handshakes in progress at once (members' addresses excepted).
pub const MAX_HANDSHAKES: usize = 32;
/// A client connection with no request in flight for this long is closed.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest client request frame: a command with two 64-byte account names is ~150 bytes.
pub const MAX_REQUEST_BYTES: u32 = 8 * 1024;
/// A client connection's receive window: what it can make us buffer before we read it.
pub const CLIENT_CONNECTION_WINDOW: u32 = 256 * 1024;
/// Bidirectional streams a replica certificate may open (introspection only).
const REPLICA_BIDI_STREAMS: u32 = 16;
/// An incoming handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// A client must send its request frame within this time of opening the stream.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client stream waits for the shell's answer before it is finished unanswered.
pub const CLIENT_CALL_MAX_WAIT: Duration = Duration::from_secs(60);

/// What arrives from the network.
pub struct Incoming<M> {
    pub peer_rx: mpsc::Receiver<(NodeId, M)>,
    pub client_rx: mpsc::Receiver<ClientCall>,
}

/// One client request and where to send its answer. Dropping `respond` finishes the stream
/// unanswered (the client sees no response and must treat the outcome as unknown).
#[derive(Debug)]
pub struct ClientCall {
    pub request: ClientRequest,
    pub respond: oneshot::Sender<ClientResponse>,
}

/// What peers and clients can make one endpoint hold (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetLimits {
    /// Largest peer frame (and client response frame).
    pub max_frame_bytes: u32,
    pub max_request_bytes: u32,
    pub max_connections: usize,
    pub max_client_connections: usize,
    pub max_client_streams_per_connection: u32,
    pub max_client_streams: usize,
    pub client_connection_window: u32,
    pub max_connections_per_identity: usize,
    pub max_client_streams_per_identity: usize,
    pub max_handshakes: usize,
    pub client_idle_timeout: Duration,
    /// Announced on our peer streams and required on theirs ([`ConfigFingerprint`]).
    pub config_fingerprint: ConfigFingerprint,
}

impl NetLimits {
    /// The defaults above, with the cluster's peer frame limit.
    pub fn new(max_frame_bytes: u32) -> NetLimits {
        NetLimits {
            max_frame_bytes,
            max_request_bytes: MAX_REQUEST_BYTES.min(max_frame_bytes),
            max_connections: MAX_CONNECTIONS,
            max_client_connections: MAX_CLIENT_CONNECTIONS,
            max_client_streams_per_connection: MAX_CLIENT_STREAMS_PER_CONNECTION,
            max_client_streams: MAX_CLIENT_STREAMS,
            client_connection_window: CLIENT_CONNECTION_WINDOW,
            max_connections_per_identity: MAX_CONNECTIONS_PER_IDENTITY,
            max_client_streams_per_identity: MAX_CLIENT_STREAMS_PER_IDENTITY,
            max_handshakes: MAX_HANDSHAKES,
            client_idle_timeout: CLIENT_IDLE_TIMEOUT,
            config_fingerprint: ConfigFingerprint::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr} (UDP): {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The replica's network. Cheap to clone; all clones share one endpoint. Dropping the last
/// clone (or calling [`Network::shutdown`]) closes the endpoint.
pub struct Network<M> {
    shared: Arc<Shared>,
    _messages: PhantomData<fn(M) -> M>,
}

impl<M> Clone for Network<M> {
    fn clone(&self) -> Self {
        Network {
            shared: self.shared.clone(),
            _messages: PhantomData,
        }
    }
}

struct Shared {
    me: NodeId,
    endpoint: quinn::Endpoint,
    links: HashMap<NodeId, Link>,
    unroutable: LinkStats,
    max_frame_bytes: u32,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Link {
    queue: mpsc::Sender<Bytes>,
    stats: Arc<LinkStats>,
}

impl Shared {
    fn close(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(codes::SHUTDOWN), b"shutdown");
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.close();
    }
}

/// Per-link counters, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkCounters {
    pub peer: NodeId,
    pub sent: u64,
    pub dropped: u64,
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Network<M> {
    /// Binds `bind` (UDP), starts one link per peer and the accept loop. Must run inside a
    /// tokio runtime. `queue_bound` bounds each peer's outgoing queue and both incoming
    /// channels.
    pub async fn start(
        me: NodeId,
        bind: SocketAddr,
        peers: Vec<(NodeId, SocketAddr)>,
        tls: &TlsIdentity,
        max_frame_bytes: u32,
        queue_bound: usize,
    ) -> Result<(Network<M>, Incoming<M>), NetError> {
        let limits = NetLimits::new(max_frame_bytes);
        Self::start_with(me, bind, peers, tls, limits, queue_bound).await
    }

    /// [`Network::start`] with explicit limits.
    pub async fn start_with(
        me: NodeId,
        bind: SocketAddr,
        peers: Vec<(NodeId, SocketAddr)>,
        tls: &TlsIdentity,
        limits: NetLimits,
        queue_bound: usize,
    ) -> Result<(Network<M>, Incoming<M>), NetError> {
        let max_frame_bytes = limits.max_frame_bytes;
        let queue_bound = queue_bound.max(1);
        let mut endpoint = quinn::Endpoint::server(tls.server_config()?, bind)
            .map_err(|cause| NetError::Bind { addr: bind, cause })?;
        endpoint.set_default_client_config(tls.client_config()?);

        let mut tasks = Vec::new();
        let mut links = HashMap::new();
        let mut restarted = HashMap::new();
        let header = PeerHeader {
            incarnation: rand::random(),
            fingerprint: limits.config_fingerprint,
        };
        for (peer, addr) in peers.iter().copied().filter(|(peer, _)| *peer != me) {
            let (queue, rx) = mpsc::channel(queue_bound);
            let stats = Arc::new(LinkStats::new(peer.to_string()));
            let notify = Arc::new(Notify::new());
            tasks.push(tokio::spawn(run_link(
                endpoint.clone(),
                peer,
                addr,
                rx,
                stats.clone(),
                notify.clone(),
                header,
            )));
            links.insert(peer, Link { queue, stats });
            restarted.insert(peer, notify);
        }

        let (peer_tx, peer_rx) = mpsc::channel(queue_bound);
        // Each queued call holds a client stream permit, so the budget bounds it as well.
        let (client_tx, client_rx) =
            mpsc::channel(queue_bound.min(limits.max_client_streams.max(1)));
        let ctx = Arc::new(AcceptContext {
            me,
            limits,
            client_connections: Arc::new(Semaphore::new(limits.max_client_connections)),
            client_streams: Arc::new(Semaphore::new(limits.max_client_streams)),
            members: peers
                .iter()
                .map(|(peer, _)| *peer)
                .filter(|peer| *peer != me)
                .collect(),
            peer_tx,
            client_tx,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
            member_addrs: peers
                .iter()
                .filter(|(peer, _)| *peer != me)
                .map(|(_, addr)| *addr)
                .collect(),
            identities: Mutex::new(HashMap::new()),
            warnings: Arc::new(WarnLimiter::default()),
            restarted,
            incarnations: Mutex::new(HashMap::new()),
        });
        tasks.push(tokio::spawn(accept_loop(endpoint.clone(), ctx)));

        let shared = Shared {
            me,
            endpoint,
            links,
            unroutable: LinkStats::new("unknown destinations"),
            max_frame_bytes,
            tasks: Mutex::new(tasks),
        };
        let network = Network {
            shared: Arc::new(shared),
            _messages: PhantomData,
        };
        Ok((network, Incoming { peer_rx, client_rx }))
    }

    /// Queues `msg` for `to` without waiting. Dropped (counted, logged rate-limited) when the
    /// peer's queue is full or its link is down: the protocol retransmits.
    pub fn send(&self, to: NodeId, msg: M) {
        self.broadcast(std::iter::once(to), &msg);
    }

    /// Queues one message for several peers, encoding it once.
    pub fn broadcast(&self, to: impl IntoIterator<Item = NodeId>, msg: &M) {
        let frame = match encode_frame(msg, self.shared.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                let n = to.into_iter().count() as u64;
                self.shared
                    .unroutable
                    .note_drop(n, &format!("cannot encode the message: {e}"));
                return;
            }
        };
        for peer in to {
            self.enqueue(peer, frame.clone());
        }
    }

    fn enqueue(&self, to: NodeId, frame: Bytes) {
        let Some(link) = self.shared.links.get(&to) else {
            self.shared
                .unroutable
                .note_drop(1, &format!("{to} is not a peer of {}", self.shared.me));
            return;
        };
        match link.queue.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => link.stats.note_drop(1, "queue full"),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                link.stats.note_drop(1, "network shut down")
            }
        }
    }
}

impl<M> Network<M> {
    /// Closes the endpoint and stops every link. Idempotent.
    pub fn shutdown(&self) {
        self.shared.close();
    }

    /// Waits until the endpoint has finished closing its connections (after `shutdown`).
    pub async fn wait_closed(&self) {
        self.shared.endpoint.wait_idle().await;
    }

    pub fn me(&self) -> NodeId {
        self.shared.me
    }

    /// The bound UDP address (useful when binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// Messages sent and dropped per peer link, sorted by peer.
    pub fn counters(&self) -> Vec<LinkCounters> {
        let mut counters: Vec<LinkCounters> = self
            .shared
            .links
            .iter()
            .map(|(peer, link)| LinkCounters {
                peer: *peer,
                sent: link.stats.sent.load(Ordering::Relaxed),
                dropped: link.stats.dropped.load(Ordering::Relaxed),
            })
            .collect();
        counters.sort_by_key(|c| c.peer);
        counters
    }

    /// Connections the endpoint holds state for, draining ones included.
    pub fn open_connections(&self) -> usize {
        self.shared.endpoint.open_connections()
    }

    /// Total messages dropped (all links, plus unroutable ones).
    pub fn dropped(&self) -> u64 {
        let links: u64 = self.counters().iter().map(|c| c.dropped).sum();
        links + self.shared.unroutable.dropped.load(Ordering::Relaxed)
    }
}

/// What every incoming connection's tasks share.
struct AcceptContext<M> {
    me: NodeId,
    limits: NetLimits,
    members: HashSet<NodeId>,
    peer_tx: mpsc::Sender<(NodeId, M)>,
    client_tx: mpsc::Sender<ClientCall>,
    connections: Arc<Semaphore>,
    client_connections: Arc<Semaphore>,
    /// Client requests being served, over all connections.
    client_streams: Arc<Semaphore>,
    /// Unauthenticated handshakes in progress (members' addresses excepted).
    handshakes: Arc<Semaphore>,
    /// The members' configured addresses: their connections skip the handshake budget.
    member_addrs: HashSet<SocketAddr>,
    /// Per client certificate (client id range): its share of connections and streams.
    identities: Mutex<HashMap<ClientIdRange, Arc<Share>>>,
    /// Rate limits warnings about what remotes did.
    warnings: Arc<WarnLimiter>,
    /// Per peer: wakes our outgoing link to it when it restarted.
    restarted: HashMap<NodeId, Arc<Notify>>,
    /// Per peer: the incarnation its streams last announced.
    incarnations: Mutex<HashMap<NodeId, u64>>,
}

/// One client certificate's share of the endpoint.
struct Share {
    connections: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

impl<M> AcceptContext<M> {
    /// The share of the certificate allowing `ids` (created on first use; certificates are
    /// issued by the operator, so there are few).
    fn share(&self, ids: ClientIdRange) -> Arc<Share> {
        let mut shares = match self.identities.lock() {
            Ok(shares) => shares,
            Err(poisoned) => poisoned.into_inner(),
        };
        let limits = &self.limits;
        shares
            .entry(ids)
            .or_insert_with(|| {
                Arc::new(Share {
                    connections: Arc::new(Semaphore::new(limits.max_connections_per_identity)),
                    streams: Arc::new(Semaphore::new(limits.max_client_streams_per_identity)),
                })
            })
            .clone()
    }

    /// Whether a peer stream's header announces our configuration; if not, says so with both
    /// fingerprints and closes the connection.
    fn same_config(
        &self,
        node: NodeId,
        addr: SocketAddr,
        header: &PeerHeader,
        connection: &quinn::Connection,
    ) -> bool {
        let ours = self.limits.config_fingerprint;
        let theirs = header.fingerprint;
        if theirs == ours {
            return true;
        }
        let name = node.to_string();
        if let Some(left_out) = self
            .warnings
            .allow(&name, "config mismatch", Instant::now())
        {
            tracing::error!(
                peer = %node, remote = %addr, %ours, %theirs, left_out,
                "refusing {node} at {addr}: its configuration fingerprint {theirs} differs from ours \
                 {ours} (accounts, initial balance, members or shards differ; compare cluster.toml)"
            );
        }
        let reason = mismatch_reason(ours);
        connection.close(
            quinn::VarInt::from_u32(codes::CONFIG_MISMATCH),
            reason.as_bytes(),
        );
        false
    }

    /// Notes the incarnation a peer stream announced; a new one means the peer restarted,
    /// so our outgoing link to it must reconnect.
    fn note_incarnation(&self, node: NodeId, incarnation: u64) {
        let previous = match self.incarnations.lock() {
            Ok(mut seen) => seen.insert(node, incarnation),
            Err(poisoned) => poisoned.into_inner().insert(node, incarnation),
        };
        if previous.is_some_and(|p| p != incarnation) {
            tracing::info!(peer = %node, "{node} restarted; reconnecting to it");
            if let Some(notify) = self.restarted.get(&node) {
                notify.notify_one();
            }
        }
    }
}

/// Who is on the other end of a connection.
struct Remote {
    /// The certificate's first DNS name, for logs.
    name: String,
    role: Role,
    addr: SocketAddr,
}

/// What an accepted connection may do.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// A cluster member: peer streams (and introspection).
    Peer(NodeId),
    /// A client allowed these ids; an operator may also read the replica's state.
    Client {
        ids: crate::types::ClientIdRange,
        operator: bool,
    },
    /// A replica of another cluster (or a removed member): introspection only.
    Stranger,
}

async fn accept_loop<M: DeserializeOwned + Send + 'static>(
    endpoint: quinn::Endpoint,
    ctx: Arc<AcceptContext<M>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let addr = incoming.remote_address();
        if !incoming.remote_address_validated() && incoming.may_retry() {
            // Stateless: a spoofed source never sees the token, so it never gets further.
            if let Err(e) = incoming.retry() {
                tracing::debug!(remote = %addr, "cannot ask {addr} to retry: {e}");
            }
            continue;
        }
        let member = ctx.member_addrs.contains(&addr);
        let Some(permits) = admission(&endpoint, &ctx, member) else {
            tracing::debug!(remote = %addr, "refusing a connection from {addr}: no room");
            incoming.refuse();
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            serve_connection(incoming, ctx, permits).await;
        });
    }
}

/// What a connection holds while it is set up and served.
struct Permits {
    /// A slot of the connection cap (none for a member's address).
    _connection: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A slot of the handshake budget, released once the handshake is over.
    handshake: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Room for a new connection: members' addresses always, others within the connection cap
/// and the handshake budget.
fn admission<M>(
    endpoint: &quinn::Endpoint,
    ctx: &AcceptContext<M>,
    member: bool,
) -> Option<Permits> {
    if member {
        return Some(Permits {
            _connection: None,
            handshake: None,
        });
    }
    // quinn keeps a closed connection's state until it has drained, so count what the
    // endpoint still holds, not only the connections we are serving.
    if endpoint.open_connections() >= ctx.limits.max_connections {
        return None;
    }
    let connection = ctx.connections.clone().try_acquire_owned().ok()?;
    let handshake = ctx.handshakes.clone().try_acquire_owned().ok()?;
    Some(Permits {
        _connection: Some(connection),
        handshake: Some(handshake),
    })
}

async fn serve_connection<M: DeserializeOwned + Send + 'static>(
    incoming: quinn::Incoming,
    ctx: Arc<AcceptContext<M>>,
    mut permits: Permits,
) {
    let addr = incoming.remote_address();
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await;
    drop(permits.handshake.take());
    let connection = match handshake {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::info!(remote = %addr, "refused a connection from {addr}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(remote = %addr, "handshake from {addr} timed out");
            return;
        }
    };
    let name = peer_name(&connection).unwrap_or_else(|| "(no DNS name)".to_string());
    let Some(role) = admit(&connection, &name, addr, &ctx) else {
        return;
    };
    // Held while the connection lives: a client connection counts against its certificate's
    // share and the client cap.
    let (_client_permits, share) = match role {
        Role::Client { ids, .. } => {
            let share = ctx.share(ids);
            let Ok(own) = share.connections.clone().try_acquire_owned() else {
                tracing::debug!(remote = %addr, %name, "closing a client connection: {name} already holds {}", ctx.limits.max_connections_per_identity);
                close_for(
                    &connection,
                    codes::BUSY,
                    "too many connections for this certificate",
                );
                return;
            };
            let Ok(all) = ctx.client_connections.clone().try_acquire_owned() else {
                if let Some(left_out) = ctx.warnings.allow(&name, "client cap", Instant::now()) {
                    tracing::warn!(remote = %addr, %name, left_out, "closing a client connection: {} already open", ctx.limits.max_client_connections);
                }
                close_for(&connection, codes::BUSY, "too many client connections");
                return;
            };
            (Some((own, all)), Some(share))
        }
        Role::Peer(_) | Role::Stranger => (None, None),
    };
    limit_connection(&connection, role, &ctx.limits);
    let remote = Remote { name, role, addr };
    tracing::debug!(remote = %addr, name = %remote.name, "accepted a connection from {} at {addr}", remote.name);
    tokio::join!(
        accept_peer_streams(&connection, &remote, &ctx),
        accept_client_streams(&connection, &remote, &ctx, share)
    );
}

/// The role a new connection gets from its certificate, or `None` (and the connection closed).
fn admit<M>(
    connection: &quinn::Connection,
    name: &str,
    addr: SocketAddr,
    ctx: &AcceptContext<M>,
) -> Option<Role> {
    match peer_role(connection) {
        Some(CertRole::Replica(node)) if ctx.members.contains(&node) => Some(Role::Peer(node)),
        Some(CertRole::Replica(_)) => Some(Role::Stranger),
        Some(CertRole::Client(ids)) => Some(Role::Client {
            ids,
            operator: false,
        }),
        Some(CertRole::Operator(ids)) => Some(Role::Client {
            ids,
            operator: true,
        }),
        None => {
            if let Some(left_out) = ctx.warnings.allow(name, "no role", Instant::now()) {
                tracing::warn!(remote = %addr, %name, left_out, "connection from {name} at {addr} has no usable role in its certificate; closing it");
            }
            close_for(connection, codes::NO_IDENTITY, "no identity");
            None
        }
    }
}

/// Narrows what the other end may open to what its role needs.
fn limit_connection(connection: &quinn::Connection, role: Role, limits: &NetLimits) {
    match role {
        Role::Peer(_) => {
            connection.set_max_concurrent_bi_streams(REPLICA_BIDI_STREAMS.into());
            connection.set_receive_window(super::tls::CONNECTION_RECEIVE_WINDOW.into());
        }
        Role::Stranger => connection.set_max_concurrent_bi_streams(REPLICA_BIDI_STREAMS.into()),
        Role::Client { .. } => {
            connection.set_max_concurrent_uni_streams(0u32.into());
            connection
                .set_max_concurrent_bi_streams(limits.max_client_streams_per_connection.into());
            connection.set_receive_window(limits.client_connection_window.into());
        }
    }
}

fn close_for(connection: &quinn::Connection, code: u32, reason: &'static str) {
    connection.close(quinn::VarInt::from_u32(code), reason.as_bytes());
}

async fn accept_peer_streams<M: DeserializeOwned + Send + 'static>(
    connection: &quinn::Connection,
    remote: &Remote,
    ctx: &Arc<AcceptContext<M>>,
) {
    while let Ok(recv) = connection.accept_uni().await {
        let Role::Peer(node) = remote.role else {
            tracing::warn!(
                name = %remote.name, remote = %remote.addr,
                "{} at {} is not a cluster node but opened a peer stream; closing the connection",
                remote.name, remote.addr
            );
            close_for(connection, codes::NOT_A_PEER, "not a cluster node");
            return;
        };
        let (ctx, connection, addr) = (ctx.clone(), connection.clone(), remote.addr);
        tokio::spawn(async move {
            let mut recv = recv;
            // An older peer (`faultline/1`) sends no fingerprint: nothing to compare.
            let checked = speaks_fingerprint(&connection);
            let len = if checked {
                PEER_HEADER_BYTES
            } else {
                OLD_PEER_HEADER_BYTES
            };
            let mut header = [0u8; PEER_HEADER_BYTES];
            let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, recv.read_exact(&mut header[..len]));
            if !matches!(read.await, Ok(Ok(()))) {
                tracing::debug!(peer = %node, remote = %addr, "peer stream from {node} ended before its header");
                return;
            }
            let header = PeerHeader::decode(&header);
            if checked && !ctx.same_config(node, addr, &header, &connection) {
                return;
            }
            ctx.note_incarnation(node, header.incarnation);
            let reader = FrameReader::new(recv, ctx.limits.max_frame_bytes);
            read_peer_stream(reader, node, addr, connection, ctx.peer_tx.clone()).await;
        });
    }
}

async fn read_peer_stream<M: DeserializeOwned>(
    mut reader: FrameReader,
    node: NodeId,
    addr: SocketAddr,
    connection: quinn::Connection,
    peer_tx: mpsc::Sender<(NodeId, M)>,
) {
    loop {
        match reader.next::<M>().await {
            Ok(Some(msg)) => {
                if peer_tx.send((node, msg)).await.is_err() {
                    return; // the shell is gone
                }
            }
            Ok(None) => return,
            Err(e) if e.is_protocol_violation() => {
                tracing::warn!(peer = %node, remote = %addr, "bad frame from {node} at {addr}: {e}; closing the connection");
                close_for(&connection, codes::BAD_FRAME, "bad frame");
                return;
            }
            Err(e) => {
                tracing::debug!(peer = %node, "peer stream from {node} ended: {e}");
                return;
            }
        }
    }
}

async fn accept_client_streams<M>(
    connection: &quinn::Connection,
    remote: &Remote,
    ctx: &Arc<AcceptContext<M>>,
    share: Option<Arc<Share>>,
) {
    let allowed = match remote.role {
        Role::Client { ids, .. } => Some(ids),
        Role::Peer(_) | Role::Stranger => None,
    };
    let inspects = matches!(
        remote.role,
        Role::Peer(_) | Role::Client { operator: true, .. }
    );
    // QUIC stream credit already bounds the streams open per connection; the semaphore keeps
    // us from accepting more than that even while answers are still being written.
    let per_connection = ctx.limits.max_client_streams_per_connection as usize;
    let in_flight = Arc::new(Semaphore::new(per_connection.max(1)));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some((send, recv)) = next_stream(connection, remote, ctx, &in_flight).await else {
            return;
        };
        let stream = ClientStream {
            send,
            recv,
            connection: connection.clone(),
            name: remote.name.clone(),
            addr: remote.addr,
            me: ctx.me,
            allowed,
            inspects,
            limits: ctx.limits,
            warnings: ctx.warnings.clone(),
        };
        // A request needs room in its certificate's share and in the endpoint's budget.
        let own = match &share {
            Some(share) => share.streams.clone().try_acquire_owned().ok().map(Some),
            None => Some(None),
        };
        let budget = own.and_then(|own| {
            let all = ctx.client_streams.clone().try_acquire_owned().ok()?;
            Some((own, all))
        });
        let client_tx = ctx.client_tx.clone();
        tokio::spawn(async move {
            match budget {
                Some(budget) => {
                    stream.serve(client_tx).await;
                    drop(budget);
                }
                None => stream.busy().await,
            }
            drop(permit);
        });
    }
}

/// The connection's next stream. A client connection with no request in flight for the idle
/// timeout is closed (`None`), as is any connection that ended.
async fn next_stream<M>(
    connection: &quinn::Connection,
    remote: &Remote,
    ctx: &AcceptContext<M>,
    in_flight: &Semaphore,
) -> Option<(quinn::SendStream, quinn::RecvStream)> {
    let per_connection = ctx.limits.max_client_streams_per_connection.max(1) as usize;
    if !matches!(remote.role, Role::Client { .. }) {
        return connection.accept_bi().await.ok();
    }
    loop {
        match tokio::time::timeout(ctx.limits.client_idle_timeout, connection.accept_bi()).await {
            Ok(accepted) => return accepted.ok(),
            // One permit is held by the caller for the stream it waits for.
            Err(_) if in_flight.available_permits() + 1 >= per_connection => {
                tracing::debug!(name = %remote.name, remote = %remote.addr, "closing an idle client connection");
                close_for(connection, codes::BUSY, "idle");
                return None;
            }
            Err(_) => continue,
        }
    }
}

/// One request/response exchange with a client.
struct ClientStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    connection: quinn::Connection,
    name: String,
    addr: SocketAddr,
    me: NodeId,
    /// The client ids this connection's certificate allows (none for a replica).
    allowed: Option<crate::types::ClientIdRange>,
    /// May read the replica's state: an operator or a member.
    inspects: bool,
    limits: NetLimits,
    warnings: Arc<WarnLimiter>,
}

impl ClientStream {
    async fn serve(mut self, client_tx: mpsc::Sender<ClientCall>) {
        let Some(request) = self.read_request().await else {
            return;
        };
        if let Some(refusal) = self.refuse(&request) {
            self.answer(refusal).await;
            return;
        }
        let (respond, answer) = oneshot::channel();
        match client_tx.try_send(ClientCall { request, respond }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Backpressure, not buffering: the shell is behind, the client retries later.
                let busy = ClientResponse::Overloaded { node: self.me };
                self.answer(busy).await;
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return, // the shell is gone
        }
        let answer = tokio::select! {
            answer = answer => answer.ok(),
            _ = self.send.stopped() => return, // the client gave up; dropping `answer` tells the shell
            _ = tokio::time::sleep(CLIENT_CALL_MAX_WAIT) => None,
        };
        match answer {
            Some(response) => self.answer(response).await,
            None => {
                let _ = finish(&mut self.send);
            }
        }
    }

    /// Answers `Overloaded` without reading the request (it stays in QUIC's flow-controlled
    /// buffers until the stream is dropped): the endpoint's client budget is spent.
    async fn busy(mut self) {
        self.answer(ClientResponse::Overloaded { node: self.me })
            .await;
    }

    /// A submit under a client id this connection's certificate does not allow, or a read of
    /// the replica's state by neither an operator nor a member.
    fn refuse(&self, request: &ClientRequest) -> Option<ClientResponse> {
        if request.needs_operator() && !self.inspects {
            if let Some(left_out) =
                self.warnings
                    .allow(&self.name, "not an operator", Instant::now())
            {
                tracing::warn!(
                    name = %self.name, remote = %self.addr, left_out,
                    "{} at {} is not an operator: print-db, print-log, fetch-executed and failpoints refused",
                    self.name, self.addr
                );
            }
            return Some(ClientResponse::OperatorOnly { node: self.me });
        }
        let ClientRequest::Submit(command) = request else {
            return None;
        };
        if self.allowed.is_some_and(|ids| ids.contains(command.client)) {
            return None;
        }
        if let Some(left_out) = self
            .warnings
            .allow(&self.name, "unauthorized", Instant::now())
        {
            tracing::warn!(
                name = %self.name, remote = %self.addr, client = %command.client, left_out,
                "{} at {} may not submit as client {}; refused", self.name, self.addr, command.client
            );
        }
        Some(ClientResponse::Unauthorized {
            node: self.me,
            client: command.client,
        })
    }

    async fn answer(&mut self, response: ClientResponse) {
        if let Err(e) = write_frame(&mut self.send, &response, self.limits.max_frame_bytes).await {
            tracing::debug!(name = %self.name, "cannot answer {} at {}: {e}", self.name, self.addr);
            return;
        }
        let _ = finish(&mut self.send);
    }

    async fn read_request(&mut self) -> Option<ClientRequest> {
        let read = read_frame::<ClientRequest>(&mut self.recv, self.limits.max_request_bytes);
        match tokio::time::timeout(REQUEST_READ_TIMEOUT, read).await {
            Ok(Ok(request)) => request,
            Ok(Err(e)) if e.is_protocol_violation() => {
                if let Some(left_out) = self.warnings.allow(&self.name, "bad frame", Instant::now())
                {
                    tracing::warn!(
                        name = %self.name, remote = %self.addr, left_out,
                        "bad request frame from {} at {}: {e}; closing the connection", self.name, self.addr
                    );
                }
                close_for(&self.connection, codes::BAD_FRAME, "bad frame");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(name = %self.name, "client stream from {} failed: {e}", self.name);
                None
            }
            Err(_) => {
                tracing::debug!(name = %self.name, "client {} sent no request within {REQUEST_READ_TIMEOUT:?}", self.name);
                None
            }
        }
    }
}
