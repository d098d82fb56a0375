//! A TCP relay that puts a TCP system's links under the harness's control, so partitions of a
//! system like etcd need no root, no iptables and no network namespaces, as with the UDP
//! [`crate::os::relay`] for the replica.
//!
//! How: every node gets one listening port for its peers and one for clients; the system under
//! test is told to advertise the relay's ports instead of its own. A connection accepted on a
//! port is forwarded to the node's real address on a connection of its own, byte for byte.
//!
//! TCP hides who is calling: all peers connect from `127.0.0.1` and ephemeral ports, and every
//! peer dials the same advertised address. The relay learns the caller from the request head:
//! etcd's peer traffic is HTTP, and every raft request (streams, pipeline, snapshots) carries
//! `X-Server-From: <member id in hex>`. The harness tells the relay which member id is which node
//! ([`TcpRelay::register_member`]); the id is resolved at every check, so connections made
//! before the ids were registered are judged correctly from then on. A peer connection without
//! that header (etcd's version and liveness probes) has an unknown caller and is treated as cut
//! whenever any link into (or, for its answers, out of) its node is cut: an isolated node must
//! not learn anything through it, and such requests are short and retried.
//!
//! A cut link is silent, like a dropped datagram on a real network: the relay stops forwarding
//! the bytes of that direction and stops reading more, so the sender's kernel buffers fill and
//! its writes block as they would with a dead cable. Nothing is dropped and no connection is
//! reset: when the link heals, the held bytes flow on, as TCP retransmission would deliver them.
//! New connections across a cut are accepted (the kernel does that) but not forwarded until the
//! link heals. Each direction is cut on its own, so one-way partitions work: cutting `n1 → n2`
//! holds n1's bytes to n2 both on n1's connections to n2 and on n2's connections to n1 (where n1
//! only answers).

use crate::os::relay::{Link, Peer, RelayError};
use replica::types::NodeId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Bytes read from one side before they are written to the other.
const CHUNK_BYTES: usize = 64 * 1024;
/// The longest request head the relay reads to find the caller; an HTTP head is far shorter.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long the relay waits for the rest of a request head, once its first byte came, before
/// forwarding with an unknown caller. The first byte itself has no deadline: an HTTP client
/// may dial a keep-alive connection and leave it idle for seconds before its first request
/// (Go's transport does, when another connection served the request it dialed for), and a
/// connection judged unknown stays unknown for life, held under every cut into its node.
const HEAD_TIMEOUT: Duration = Duration::from_millis(500);
/// Most connections one listening port forwards at once; beyond it new ones are closed, so a
/// runaway client cannot make the relay hold unbounded sockets.
const MAX_CONNECTIONS_PER_PATH: usize = 1_024;
/// How long the relay tries to reach a node before closing the caller's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What one listening port carries: traffic from `from` to node `to`, forwarded to `target`.
///
/// `from` is [`Peer::Clients`] for client traffic, whose caller is known by the port. Any
/// [`Peer::Node`] value declares the node's peer port, shared by every other node: the caller
/// of each connection is found from its request head.
#[derive(Clone, Debug)]
pub struct TcpPathSpec {
    pub from: Peer,
    pub to: NodeId,
    pub target: SocketAddr,
}

impl TcpPathSpec {
    fn kind(&self) -> PathKind {
        match self.from {
            Peer::Clients => PathKind::Clients,
            Peer::Node(_) => PathKind::Peers,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PathKind {
    Clients,
    Peers,
}

/// Counters of one directed link, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpLinkCounters {
    /// Bytes written to the receiving side.
    pub bytes: u64,
    /// Chunks that had to wait for a cut to heal.
    pub held: u64,
}

#[derive(Debug, Default)]
struct LinkState {
    cut: AtomicBool,
    bytes: AtomicU64,
    held: AtomicU64,
}

/// What every connection task shares: the links, the member registry and the change signal.
struct Shared {
    nodes: Vec<NodeId>,
    links: HashMap<Link, Arc<LinkState>>,
    members: RwLock<HashMap<u64, NodeId>>,
    delay_us: AtomicU64,
    /// Bumped on every change of a cut or a registration, so held directions look again.
    changed: watch::Sender<u64>,
}

/// The running relay. Dropping it closes every listening port and forwarded connection.
pub struct TcpRelay {
    shared: Arc<Shared>,
    listen: HashMap<(PathKind, NodeId), SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl TcpRelay {
    /// Binds a loopback port for every path and starts accepting. Must run inside tokio.
    pub async fn start(paths: &[TcpPathSpec]) -> Result<TcpRelay, RelayError> {
        let mut nodes: Vec<NodeId> = paths.iter().map(|p| p.to).collect();
        nodes.sort();
        nodes.dedup();
        let shared = Arc::new(Shared {
            links: all_links(&nodes),
            nodes,
            members: RwLock::new(HashMap::new()),
            delay_us: AtomicU64::new(0),
            changed: watch::channel(0).0,
        });
        let mut relay = TcpRelay {
            shared,
            listen: HashMap::new(),
            tasks: Vec::new(),
        };
        for path in paths {
            let key = (path.kind(), path.to);
            if relay.listen.contains_key(&key) {
                return Err(RelayError::DuplicatePath {
                    from: path.from,
                    to: Peer::Node(path.to),
                });
            }
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let bind_error = |cause| RelayError::Bind { addr: any, cause };
            let listener = TcpListener::bind(any).await.map_err(bind_error)?;
            relay
                .listen
                .insert(key, listener.local_addr().map_err(bind_error)?);
            let port = PortTask {
                shared: relay.shared.clone(),
                kind: path.kind(),
                to: path.to,
                target: path.target,
            };
            relay.tasks.push(tokio::spawn(port.run(listener)));
        }
        Ok(relay)
    }

    /// The address `from` must dial to reach `to` through the relay (for peers, the same for
    /// every calling node).
    pub fn listen_addr(&self, from: Peer, to: NodeId) -> Option<SocketAddr> {
        let kind = match from {
            Peer::Clients => PathKind::Clients,
            Peer::Node(_) => PathKind::Peers,
        };
        self.listen.get(&(kind, to)).copied()
    }

    /// Tells the relay that peer requests carrying `X-Server-From: <member_id in hex>` come
    /// from `node`.
    pub fn register_member(&self, member_id: u64, node: NodeId) {
        if let Ok(mut members) = self.shared.members.write() {
            members.insert(member_id, node);
        }
        self.shared.bump();
    }

    /// Holds every byte from `from` to `to` until healed. Unknown links are ignored.
    pub fn cut(&self, from: Peer, to: Peer) {
        self.set_cut(from, to, true);
    }

    pub fn heal(&self, from: Peer, to: Peer) {
        self.set_cut(from, to, false);
    }

    fn set_cut(&self, from: Peer, to: Peer, cut: bool) {
        if let Some(link) = self.shared.links.get(&(from, to)) {
            link.cut.store(cut, Ordering::Relaxed);
        }
        self.shared.bump();
    }

    /// Makes exactly `cuts` cut and every other link whole.
    pub fn set_cuts(&self, cuts: &[Link]) {
        for (key, link) in &self.shared.links {
            link.cut.store(cuts.contains(key), Ordering::Relaxed);
        }
        self.shared.bump();
    }

    pub fn heal_all(&self) {
        self.set_cuts(&[]);
    }

    pub fn is_cut(&self, from: Peer, to: Peer) -> bool {
        self.shared.is_cut(from, to)
    }

    /// The links cut right now, sorted.
    pub fn cuts(&self) -> Vec<Link> {
        super::relay::cut_links(&self.shared.links, |l| &l.cut)
    }

    /// A fixed delay on every chunk of every link (zero: none). TCP does not lose bytes, so
    /// there is no loss setting: loss on a real network shows up as delay.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::Relaxed);
    }

    pub fn counters(&self, from: Peer, to: Peer) -> Option<TcpLinkCounters> {
        self.shared.links.get(&(from, to)).map(|l| TcpLinkCounters {
            bytes: l.bytes.load(Ordering::Relaxed),
            held: l.held.load(Ordering::Relaxed),
        })
    }

    /// Counters summed over every link.
    pub fn totals(&self) -> TcpLinkCounters {
        let mut total = TcpLinkCounters::default();
        for link in self.shared.links.values() {
            total.bytes += link.bytes.load(Ordering::Relaxed);
            total.held += link.held.load(Ordering::Relaxed);
        }
        total
    }
}

/// Every directed link between the nodes, and between each node and the clients.
fn all_links(nodes: &[NodeId]) -> HashMap<Link, Arc<LinkState>> {
    let mut peers: Vec<Peer> = nodes.iter().map(|&n| Peer::Node(n)).collect();
    peers.push(Peer::Clients);
    let mut links = HashMap::new();
    for &a in &peers {
        for &b in &peers {
            if a != b && (a != Peer::Clients || b != Peer::Clients) {
                links.insert((a, b), Arc::default());
            }
        }
    }
    links
}

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn is_cut(&self, from: Peer, to: Peer) -> bool {
        self.links
            .get(&(from, to))
            .is_some_and(|l| l.cut.load(Ordering::Relaxed))
    }

    fn member(&self, member_id: u64) -> Option<NodeId> {
        self.members.read().ok()?.get(&member_id).copied()
    }

    /// The caller of a connection as known now.
    fn caller(&self, caller: Caller) -> Option<Peer> {
        match caller {
            Caller::Clients => Some(Peer::Clients),
            Caller::Member(id) => self.member(id).map(Peer::Node),
            Caller::Unknown => None,
        }
    }

    /// Whether bytes in direction `dir` of a connection from `caller` to `node` must wait.
    fn holds(&self, caller: Caller, node: NodeId, dir: Direction) -> bool {
        let node = Peer::Node(node);
        match (self.caller(caller), dir) {
            (Some(caller), Direction::ToNode) => self.is_cut(caller, node),
            (Some(caller), Direction::FromNode) => self.is_cut(node, caller),
            // An unknown caller may be any node: held if any of them is cut off.
            (None, dir) => self.nodes.iter().map(|&n| Peer::Node(n)).any(|other| {
                other != node
                    && match dir {
                        Direction::ToNode => self.is_cut(other, node),
                        Direction::FromNode => self.is_cut(node, other),
                    }
            }),
        }
    }

    /// The link whose counters a direction feeds, when the caller is known.
    fn link(&self, caller: Caller, node: NodeId, dir: Direction) -> Option<&Arc<LinkState>> {
        let caller = self.caller(caller)?;
        let key = match dir {
            Direction::ToNode => (caller, Peer::Node(node)),
            Direction::FromNode => (Peer::Node(node), caller),
        };
        self.links.get(&key)
    }

    /// Waits until direction `dir` of the connection may flow; returns whether it had to wait.
    async fn wait_open(&self, caller: Caller, node: NodeId, dir: Direction) -> bool {
        let mut changes = self.changed.subscribe();
        let mut waited = false;
        // Subscribing before the check means a heal between the two is not missed.
        while self.holds(caller, node, dir) {
            waited = true;
            if changes.changed().await.is_err() {
                break;
            }
        }
        waited
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }
}

/// Who opened a connection, as far as the relay can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Clients,
    /// An etcd member id from `X-Server-From`; which node it is may be registered later.
    Member(u64),
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// From the caller to the node the port belongs to.
    ToNode,
    /// The node's answers back to the caller.
    FromNode,
}

/// One listening port.
struct PortTask {
    shared: Arc<Shared>,
    kind: PathKind,
    to: NodeId,
    target: SocketAddr,
}

impl PortTask {
    async fn run(self, listener: TcpListener) {
        let this = Arc::new(self);
        // Dropping the set (when the relay aborts this task) aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors and the like: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if connections.len() >= MAX_CONNECTIONS_PER_PATH {
                tracing::warn!(node = %this.to, "tcp relay: too many connections, closing one");
                continue;
            }
            let _ = stream.set_nodelay(true);
            connections.spawn(this.clone().forward(stream));
        }
    }

    /// Forwards one accepted connection until either side closes it.
    async fn forward(self: Arc<Self>, mut caller_stream: TcpStream) {
        let (caller, head) = match self.kind {
            PathKind::Clients => (Caller::Clients, Vec::new()),
            PathKind::Peers => match read_caller(&mut caller_stream).await {
                Some(found) => found,
                // Closed before its first request: nothing to forward.
                None => return,
            },
        };
        let shared = &self.shared;
        shared.wait_open(caller, self.to, Direction::ToNode).await;
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.target));
        let Ok(Ok(mut node_stream)) = connect.await else {
            // The node is down: the caller sees its connection closed, and retries.
            return;
        };
        let _ = node_stream.set_nodelay(true);
        let (caller_read, caller_write) = caller_stream.split();
        let (node_read, node_write) = node_stream.split();
        let to_node = Pump {
            shared,
            caller,
            node: self.to,
            dir: Direction::ToNode,
        };
        let from_node = Pump {
            dir: Direction::FromNode,
            ..to_node
        };
        // An error on either side ends both directions (the sockets are dropped); a clean
        // end of one direction is passed on and the other may still finish.
        let _ = tokio::try_join!(
            to_node.run(head, caller_read, node_write),
            from_node.run(Vec::new(), node_read, caller_write),
        );
    }
}

/// Reads the request head of a peer connection and finds its `X-Server-From`. Returns the
/// bytes read, which must still be forwarded, or `None` when the caller closed (or failed)
/// before sending anything.
async fn read_caller(stream: &mut TcpStream) -> Option<(Caller, Vec<u8>)> {
    let mut buf = [0u8; 4096];
    // Waits as long as the connection idles; see HEAD_TIMEOUT for why.
    let first = match stream.read(&mut buf).await {
        Ok(n) if n > 0 => n,
        _ => return None,
    };
    let mut head = Vec::with_capacity(first.max(1024));
    head.extend_from_slice(&buf[..first]);
    let deadline = Instant::now() + HEAD_TIMEOUT;
    while head.len() < MAX_HEAD_BYTES && !head_complete(&head) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let caller = server_from(&head).map_or(Caller::Unknown, Caller::Member);
    Some((caller, head))
}

fn head_complete(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n")
}

/// The member id in an HTTP head's `X-Server-From` header (hex, as etcd writes it).
fn server_from(head: &[u8]) -> Option<u64> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let text = std::str::from_utf8(&head[..end]).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("x-server-from") {
            return None;
        }
        u64::from_str_radix(value.trim(), 16).ok()
    })
}

/// One direction of a forwarded connection.
#[derive(Clone, Copy)]
struct Pump<'a> {
    shared: &'a Shared,
    caller: Caller,
    node: NodeId,
    dir: Direction,
}

impl Pump<'_> {
    /// Copies `first` and then everything `from` yields into `to`, holding while cut.
    async fn run(
        self,
        first: Vec<u8>,
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
    ) -> std::io::Result<()> {
        if !first.is_empty() {
            self.pass(&first, Instant::now(), &mut to).await?;
        }
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return to.shutdown().await;
            }
            self.pass(&buf[..n], Instant::now(), &mut to).await?;
        }
    }

    /// Writes one chunk once the direction is open and its delay has passed.
    async fn pass(
        &self,
        chunk: &[u8],
        read_at: Instant,
        to: &mut (impl AsyncWrite + Unpin),
    ) -> std::io::Result<()> {
        let held = self
            .shared
            .wait_open(self.caller, self.node, self.dir)
            .await;
        let delay = self.shared.delay();
        if !delay.is_zero() {
            tokio::time::sleep_until(read_at + delay).await;
        }
        to.write_all(chunk).await?;
        if let Some(link) = self.shared.link(self.caller, self.node, self.dir) {
            link.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if held {
                link.held.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
