//! A UDP relay that puts every replica↔replica and client↔replica link under the harness's
//! control, so partitions need no root, no iptables and no network namespaces.
//!
//! How: the cluster config's `routes` point each replica at a relay port for each peer, and
//! `client_addr` points clients at a relay port per replica. One *path* is one such listening
//! port with one target. A datagram arriving on the path's port from source `S` is forwarded to
//! the target from an upstream socket owned by `S` alone, so the target's answers (sent back to
//! that upstream socket) can be mapped back to `S` and sent from the listening port — the address
//! `S` talked to. QUIC authenticates by certificate, not by address, so the hop is invisible.
//!
//! Each path carries traffic in two directions: forward (`from → to`) and the replies
//! (`to → from`). Every *directed* link `(from, to)` has one [`LinkState`] shared by all paths
//! that carry it, so cutting `n1 → n2` drops n1's datagrams to n2 both on n1's own connection
//! and on n2's connection to n1 (where n1 only answers). Cuts, loss and delay are atomics: the
//! forwarding loops never take a lock.
//!
//! Cost: every datagram crosses the kernel twice more than on the direct path. Receives are
//! batched (`recvmmsg` and GRO through quinn-udp: 3 to 7 datagrams per call under load); sends
//! are one `sendmsg` each (GSO when a burst arrived coalesced). `LinkCounters::bursts` shows
//! the batching achieved.

use quinn_udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::types::NodeId;
use std::collections::HashMap;
use std::fmt;
use std::io::{ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Largest UDP payload, and the largest buffer one received batch entry may need (GRO).
const MAX_DATAGRAM: usize = 65_536;
/// Largest single QUIC datagram we expect (quinn stays below the loopback MTU).
const MAX_DATAGRAM_PAYLOAD: usize = 1_500;
/// Buffers per receive call.
const RECV_BATCH: usize = 8;
/// Most distinct sources one path keeps an upstream socket for; the least recently used one is
/// dropped beyond it (a source that comes back simply gets a new upstream socket).
const MAX_SOURCES_PER_PATH: usize = 256;
/// Most datagrams held back by the delay feature at once, over the whole relay; beyond it
/// datagrams are dropped, which UDP allows.
const MAX_DELAYED: usize = 16_384;
/// Loss is stored in parts per million.
const PPM: u32 = 1_000_000;

/// One end of a link: a replica, or the harness's clients as a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Peer {
    Node(NodeId),
    Clients,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Node(id) => write!(f, "{id}"),
            Peer::Clients => write!(f, "clients"),
        }
    }
}

/// A directed link.
pub type Link = (Peer, Peer);

/// The links of `links` whose cut flag (`cut` of its state) is set, sorted: what both relays,
/// this one and [`super::relay_tcp`], report as cut.
pub(super) fn cut_links<S>(
    links: &HashMap<Link, Arc<S>>,
    cut: impl Fn(&S) -> &AtomicBool,
) -> Vec<Link> {
    let mut cuts: Vec<Link> = links
        .iter()
        .filter(|(_, state)| cut(state).load(Ordering::Relaxed))
        .map(|(link, _)| *link)
        .collect();
    cuts.sort();
    cuts
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay cannot bind {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("relay path {from} -> {to} is declared twice")]
    DuplicatePath { from: Peer, to: Peer },
}

/// What a relay path does: listen on `listen` (port 0 picks a free one), forward to `target`.
#[derive(Clone, Debug)]
pub struct PathSpec {
    pub from: Peer,
    pub to: Peer,
    pub listen: SocketAddr,
    pub target: SocketAddr,
}

/// The fault settings and counters of one directed link.
#[derive(Debug, Default)]
pub struct LinkState {
    cut: AtomicBool,
    loss_ppm: AtomicU32,
    delay_us: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    /// Receive calls: `forwarded / bursts` is the batching achieved (recvmmsg and GRO).
    bursts: AtomicU64,
}

impl LinkState {
    /// Whether the next datagram on this link is dropped (cut, or lost at random).
    fn drops(&self, rng: &mut SmallRng) -> bool {
        if self.cut.load(Ordering::Relaxed) {
            return true;
        }
        let loss = self.loss_ppm.load(Ordering::Relaxed);
        loss > 0 && rng.gen_range(0..PPM) < loss
    }

    fn delay(&self) -> Option<Duration> {
        match self.delay_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// Counters of one directed link, for tests and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkCounters {
    pub forwarded: u64,
    pub dropped: u64,
    pub bursts: u64,
}

/// The running relay. Dropping it stops every forwarding task.
pub struct Relay {
    links: HashMap<Link, Arc<LinkState>>,
    listen: HashMap<Link, SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Binds every path and starts forwarding. Must run inside a tokio runtime.
    pub async fn start(paths: &[PathSpec]) -> Result<Relay, RelayError> {
        let mut relay = Relay {
            links: HashMap::new(),
            listen: HashMap::new(),
            tasks: Vec::new(),
        };
        let delayed = Arc::new(AtomicUsize::new(0));
        for (k, path) in paths.iter().enumerate() {
            if relay.listen.contains_key(&(path.from, path.to)) {
                return Err(RelayError::DuplicatePath {
                    from: path.from,
                    to: path.to,
                });
            }
            let socket = UdpSocket::bind(path.listen)
                .await
                .map_err(|source| RelayError::Bind {
                    addr: path.listen,
                    cause: source,
                })?;
            let local = socket.local_addr().map_err(|source| RelayError::Bind {
                addr: path.listen,
                cause: source,
            })?;
            relay.listen.insert((path.from, path.to), local);
            let listen = Io::new(socket).map_err(|source| RelayError::Bind {
                addr: path.listen,
                cause: source,
            })?;
            let task = PathTask {
                listen: Arc::new(listen),
                target: path.target,
                forward: relay.link(path.from, path.to),
                reverse: relay.link(path.to, path.from),
                delayed: delayed.clone(),
                rng: SmallRng::seed_from_u64(0x5eed ^ k as u64),
            };
            relay.tasks.push(tokio::spawn(task.run()));
        }
        Ok(relay)
    }

    fn link(&mut self, from: Peer, to: Peer) -> Arc<LinkState> {
        self.links.entry((from, to)).or_default().clone()
    }

    /// The relay port that carries `from → to` (what `from` must send to).
    pub fn listen_addr(&self, from: Peer, to: Peer) -> Option<SocketAddr> {
        self.listen.get(&(from, to)).copied()
    }

    /// Drops every datagram from `from` to `to` until healed. Unknown links are ignored.
    pub fn cut(&self, from: Peer, to: Peer) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.cut.store(true, Ordering::Relaxed);
        }
    }

    pub fn heal(&self, from: Peer, to: Peer) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.cut.store(false, Ordering::Relaxed);
        }
    }

    /// Makes exactly `cuts` cut and every other link whole.
    pub fn set_cuts(&self, cuts: &[Link]) {
        for (key, link) in &self.links {
            link.cut.store(cuts.contains(key), Ordering::Relaxed);
        }
    }

    pub fn heal_all(&self) {
        self.set_cuts(&[]);
    }

    pub fn is_cut(&self, from: Peer, to: Peer) -> bool {
        self.links
            .get(&(from, to))
            .is_some_and(|l| l.cut.load(Ordering::Relaxed))
    }

    /// The links cut right now, sorted.
    pub fn cuts(&self) -> Vec<Link> {
        cut_links(&self.links, |l| &l.cut)
    }

    /// Random loss (0.0 to 1.0) and a fixed delay on every link.
    pub fn set_impairment(&self, loss: f64, delay: Duration) {
        let ppm = (loss.clamp(0.0, 1.0) * f64::from(PPM)) as u32;
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        for link in self.links.values() {
            link.loss_ppm.store(ppm, Ordering::Relaxed);
            link.delay_us.store(us, Ordering::Relaxed);
        }
    }

    /// Counters summed over every link.
    pub fn totals(&self) -> LinkCounters {
        let sum = |f: fn(&LinkState) -> &AtomicU64| {
            self.links
                .values()
                .map(|l| f(l).load(Ordering::Relaxed))
                .sum()
        };
        LinkCounters {
            forwarded: sum(|l| &l.forwarded),
            dropped: sum(|l| &l.dropped),
            bursts: sum(|l| &l.bursts),
        }
    }

    pub fn counters(&self, from: Peer, to: Peer) -> Option<LinkCounters> {
        self.links.get(&(from, to)).map(|l| LinkCounters {
            forwarded: l.forwarded.load(Ordering::Relaxed),
            dropped: l.dropped.load(Ordering::Relaxed),
            bursts: l.bursts.load(Ordering::Relaxed),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A UDP socket with quinn's batched I/O: `recvmmsg` with GRO (one call returns a whole burst
/// of datagrams a QUIC sender wrote with GSO) and `sendmsg` with GSO. Forwarding a burst then
/// costs about the syscalls the direct path spends on it, instead of one per datagram.
struct Io {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl Io {
    fn new(socket: UdpSocket) -> std::io::Result<Io> {
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Io { socket, state })
    }

    async fn recv(&self, bufs: &mut Bufs, meta: &mut [RecvMeta]) -> std::io::Result<usize> {
        loop {
            self.socket.readable().await?;
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.0.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), &mut slices, meta)
            }) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `data` (datagrams of `stride` bytes, the last maybe shorter) to `to`. Errors (the
    /// target is down, buffers full) lose the datagrams, as UDP may.
    async fn send(&self, to: SocketAddr, data: &[u8], stride: usize, ecn: Option<EcnCodepoint>) {
        let max_segments = self.state.max_gso_segments().max(1);
        let stride = stride.clamp(1, data.len().max(1));
        for chunk in data.chunks(stride * max_segments) {
            let segment_size = (chunk.len() > stride).then_some(stride);
            let transmit = Transmit {
                destination: to,
                ecn,
                contents: chunk,
                segment_size,
                src_ip: None,
            };
            loop {
                if self.socket.writable().await.is_err() {
                    return;
                }
                match self.socket.try_io(Interest::WRITABLE, || {
                    self.state.try_send((&self.socket).into(), &transmit)
                }) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    _ => break,
                }
            }
        }
    }
}

/// Receive buffers for one batch.
struct Bufs(Vec<Vec<u8>>);

impl Bufs {
    fn new(state: &UdpSocketState) -> Bufs {
        // GRO hands over up to `gro_segments` datagrams in one buffer.
        let size =
            (MAX_DATAGRAM_PAYLOAD * state.gro_segments()).clamp(MAX_DATAGRAM_PAYLOAD, MAX_DATAGRAM);
        Bufs((0..RECV_BATCH).map(|_| vec![0u8; size]).collect())
    }
}

/// What to do with a received burst on one link.
async fn forward(
    link: &LinkState,
    rng: &mut SmallRng,
    delayed: &Arc<AtomicUsize>,
    out: &Arc<Io>,
    to: SocketAddr,
    data: &[u8],
    meta: &RecvMeta,
) {
    let stride = if meta.stride == 0 {
        data.len()
    } else {
        meta.stride
    };
    let datagrams = data.len().div_ceil(stride.max(1)) as u64;
    if link.cut.load(Ordering::Relaxed) {
        link.dropped.fetch_add(datagrams, Ordering::Relaxed);
        return;
    }
    let lossy = link.loss_ppm.load(Ordering::Relaxed) > 0;
    let delay = link.delay();
    if !lossy && delay.is_none() {
        link.forwarded.fetch_add(datagrams, Ordering::Relaxed);
        out.send(to, data, stride, meta.ecn).await;
        return;
    }
    // Impaired link: decide datagram by datagram.
    for datagram in data.chunks(stride.max(1)) {
        if link.drops(rng) {
            link.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        link.forwarded.fetch_add(1, Ordering::Relaxed);
        match delay {
            None => out.send(to, datagram, datagram.len(), meta.ecn).await,
            Some(delay) => send_later(link, delayed, out.clone(), to, datagram, meta.ecn, delay),
        }
    }
}

/// Sends after `delay` from a separate task (bounded by `MAX_DELAYED`).
fn send_later(
    link: &LinkState,
    delayed: &Arc<AtomicUsize>,
    out: Arc<Io>,
    to: SocketAddr,
    data: &[u8],
    ecn: Option<EcnCodepoint>,
    delay: Duration,
) {
    if delayed.fetch_add(1, Ordering::Relaxed) >= MAX_DELAYED {
        delayed.fetch_sub(1, Ordering::Relaxed);
        link.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let delayed = delayed.clone();
    let data = data.to_vec();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        out.send(to, &data, data.len(), ecn).await;
        delayed.fetch_sub(1, Ordering::Relaxed);
    });
}

/// One upstream socket: the relay's stand-in for one source towards the path's target.
struct Upstream {
    io: Arc<Io>,
    reverse_task: JoinHandle<()>,
    last_used: Instant,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.reverse_task.abort();
    }
}

struct PathTask {
    listen: Arc<Io>,
    target: SocketAddr,
    forward: Arc<LinkState>,
    reverse: Arc<LinkState>,
    delayed: Arc<AtomicUsize>,
    rng: SmallRng,
}

impl PathTask {
    async fn run(mut self) {
        let mut upstreams: HashMap<SocketAddr, Upstream> = HashMap::new();
        let mut bufs = Bufs::new(&self.listen.state);
        let mut meta = vec![RecvMeta::default(); RECV_BATCH];
        loop {
            // Errors on an unconnected UDP socket (e.g. ICMP unreachable reports) are transient.
            let Ok(n) = self.listen.recv(&mut bufs, &mut meta).await else {
                continue;
            };
            for (m, buf) in meta.iter().zip(&bufs.0).take(n) {
                let Some(io) = self.upstream_for(&mut upstreams, m.addr).await else {
                    continue;
                };
                forward(
                    &self.forward,
                    &mut self.rng,
                    &self.delayed,
                    &io,
                    self.target,
                    &buf[..m.len],
                    m,
                )
                .await;
            }
        }
    }

    async fn upstream_for(
        &self,
        upstreams: &mut HashMap<SocketAddr, Upstream>,
        source: SocketAddr,
    ) -> Option<Arc<Io>> {
        if let Some(up) = upstreams.get_mut(&source) {
            up.last_used = Instant::now();
            return Some(up.io.clone());
        }
        let up = self.new_upstream(source).await?;
        evict_if_full(upstreams);
        let io = up.io.clone();
        upstreams.insert(source, up);
        Some(io)
    }

    /// Binds an upstream socket for `source` and starts the task that carries replies back.
    async fn new_upstream(&self, source: SocketAddr) -> Option<Upstream> {
        let bind: SocketAddr = if self.target.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        let io = Arc::new(Io::new(UdpSocket::bind(bind).await.ok()?).ok()?);
        let reverse = ReverseTask {
            upstream: io.clone(),
            listen: self.listen.clone(),
            target: self.target,
            source,
            link: self.reverse.clone(),
            delayed: self.delayed.clone(),
            rng: SmallRng::seed_from_u64(u64::from(source.port())),
        };
        Some(Upstream {
            io,
            reverse_task: tokio::spawn(reverse.run()),
            last_used: Instant::now(),
        })
    }
}

fn evict_if_full(upstreams: &mut HashMap<SocketAddr, Upstream>) {
    if upstreams.len() < MAX_SOURCES_PER_PATH {
        return;
    }
    if let Some(oldest) = upstreams
        .iter()
        .min_by_key(|(_, up)| up.last_used)
        .map(|(k, _)| *k)
    {
        upstreams.remove(&oldest);
    }
}

/// Carries the target's answers to one source back, from the port the source talked to.
struct ReverseTask {
    upstream: Arc<Io>,
    listen: Arc<Io>,
    target: SocketAddr,
    source: SocketAddr,
    link: Arc<LinkState>,
    delayed: Arc<AtomicUsize>,
    rng: SmallRng,
}

impl ReverseTask {
    async fn run(mut self) {
        let mut bufs = Bufs::new(&self.upstream.state);
        let mut meta = vec![RecvMeta::default(); RECV_BATCH];
        loop {
            // ICMP "port unreachable" (target down) shows up as an error on a later receive;
            // the target may come back, so keep going.
            let Ok(n) = self.upstream.recv(&mut bufs, &mut meta).await else {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            self.link.bursts.fetch_add(1, Ordering::Relaxed);
            for (m, buf) in meta.iter().zip(&bufs.0).take(n) {
                // Only the target talks to this socket; anything else is noise.
                if m.addr != self.target {
                    continue;
                }
                let data = &buf[..m.len];
                forward(
                    &self.link,
                    &mut self.rng,
                    &self.delayed,
                    &self.listen,
                    self.source,
                    data,
                    m,
                )
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Peer = Peer::Node(NodeId(1));
    const B: Peer = Peer::Node(NodeId(2));

    async fn udp() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    /// A relay with one path a → b, where `b` is a plain socket.
    async fn one_path() -> (Relay, UdpSocket, UdpSocket, SocketAddr) {
        let a = udp().await;
        let b = udp().await;
        let spec = PathSpec {
            from: A,
            to: B,
            listen: "127.0.0.1:0".parse().unwrap(),
            target: b.local_addr().unwrap(),
        };
        let relay = Relay::start(&[spec]).await.unwrap();
        let port = relay.listen_addr(A, B).unwrap();
        (relay, a, b, port)
    }

    async fn recv(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 1500];
        match tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_both_ways_and_replies_come_from_the_relay_port() {
        let (_relay, a, b, port) = one_path().await;
        a.send_to(b"ping", port).await.unwrap();
        let (data, upstream) = recv(&b).await.expect("b gets the datagram");
        assert_eq!(data, b"ping");
        assert_ne!(upstream, a.local_addr().unwrap(), "b sees the relay, not a");
        b.send_to(b"pong", upstream).await.unwrap();
        let (data, from) = recv(&a).await.expect("a gets the reply");
        assert_eq!(data, b"pong");
        assert_eq!(from, port, "the reply comes from the port a talked to");
    }

    #[tokio::test]
    async fn a_cut_drops_until_healed() {
        let (relay, a, b, port) = one_path().await;
        relay.cut(A, B);
        a.send_to(b"lost", port).await.unwrap();
        assert!(recv(&b).await.is_none());
        assert_eq!(relay.counters(A, B).unwrap().dropped, 1);
        relay.heal(A, B);
        a.send_to(b"found", port).await.unwrap();
        assert_eq!(recv(&b).await.unwrap().0, b"found");
    }

    #[tokio::test]
    async fn a_one_way_cut_lets_the_other_direction_through() {
        let (relay, a, b, port) = one_path().await;
        a.send_to(b"hello", port).await.unwrap();
        let (_, upstream) = recv(&b).await.unwrap();
        // Cut only b → a: a still reaches b, b's answers vanish.
        relay.set_cuts(&[(B, A)]);
        assert!(relay.is_cut(B, A) && !relay.is_cut(A, B));
        b.send_to(b"answer", upstream).await.unwrap();
        assert!(recv(&a).await.is_none());
        a.send_to(b"again", port).await.unwrap();
        assert_eq!(recv(&b).await.unwrap().0, b"again");
        relay.heal_all();
        assert!(relay.cuts().is_empty());
        b.send_to(b"answer", upstream).await.unwrap();
        assert_eq!(recv(&a).await.unwrap().0, b"answer");
    }

    #[tokio::test]
    async fn each_source_gets_its_own_upstream() {
        let (_relay, a, b, port) = one_path().await;
        let other = udp().await;
        a.send_to(b"1", port).await.unwrap();
        other.send_to(b"2", port).await.unwrap();
        let (_, up1) = recv(&b).await.unwrap();
        let (_, up2) = recv(&b).await.unwrap();
        assert_ne!(up1, up2);
        b.send_to(b"x", up1).await.unwrap();
        b.send_to(b"y", up2).await.unwrap();
        let mut got = vec![recv(&a).await.unwrap().0, recv(&other).await.unwrap().0];
        got.sort();
        assert_eq!(got, vec![b"x".to_vec(), b"y".to_vec()]);
    }

    #[tokio::test]
    async fn loss_and_delay_apply() {
        let (relay, a, b, port) = one_path().await;
        relay.set_impairment(1.0, Duration::ZERO);
        a.send_to(b"gone", port).await.unwrap();
        assert!(recv(&b).await.is_none());
        relay.set_impairment(0.0, Duration::from_millis(100));
        let start = Instant::now();
        a.send_to(b"late", port).await.unwrap();
        assert_eq!(recv(&b).await.unwrap().0, b"late");
        assert!(start.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test]
    async fn a_target_that_is_down_does_not_stop_the_path() {
        let b = udp().await;
        let target = b.local_addr().unwrap();
        drop(b);
        let a = udp().await;
        let spec = PathSpec {
            from: A,
            to: B,
            listen: "127.0.0.1:0".parse().unwrap(),
            target,
        };
        let relay = Relay::start(&[spec]).await.unwrap();
        let port = relay.listen_addr(A, B).unwrap();
        for _ in 0..3 {
            a.send_to(b"into the void", port).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The target comes back on the same port.
        let b = UdpSocket::bind(target).await.unwrap();
        a.send_to(b"back", port).await.unwrap();
        let mut got = Vec::new();
        while let Some((d, _)) = recv(&b).await {
            got.push(d);
        }
        assert!(got.contains(&b"back".to_vec()), "{got:?}");
    }
}
