//! One outgoing link to one peer: a bounded queue drained into one long-lived QUIC stream.
//!
//! [`Network::send`](super::Network::send) encodes a message once and puts the frame in the
//! peer's bounded queue without waiting. The link task owns the connection: it connects
//! (server name = the peer's node id, so TLS checks we reached the right replica even through
//! a relay), opens ONE unidirectional stream so that messages to a peer arrive in the order
//! they were sent, and writes queued frames in batches. On any error it discards what is
//! queued (stale by now; Paxos retransmits), waits with exponential backoff and reconnects:
//! peers restart, get paused and get cut off, and none of that may stall the sender.

use super::codes;
use crate::config::ConfigFingerprint;
use crate::types::NodeId;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// First reconnect delay; doubles up to [`BACKOFF_MAX`], reset after a connection was up.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// A handshake that takes longer than this is abandoned (a paused peer never answers).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes and frames written in one batch.
/// Every peer stream starts with a header: the sender's incarnation (u64 LE), then, on a
/// connection that negotiated `faultline/2` ([`super::tls::ALPN_FINGERPRINT`]), its
/// configuration fingerprint (u32 LE, [`ConfigFingerprint`]); on `faultline/1` (a peer of an
/// older version) the incarnation alone.
///
/// The incarnation is a random number drawn when its process starts. A receiver that sees a
/// new incarnation from a peer knows the peer restarted, and so that its own outgoing
/// connection to that peer leads to the dead process (QUIC would only notice at the idle
/// timeout, seconds later, while the restarted peer hears nothing). A receiver whose own
/// fingerprint differs refuses the stream: that peer would build other state.
pub const PEER_HEADER_BYTES: usize = 12;
/// The header of a `faultline/1` peer stream: the incarnation only.
pub const OLD_PEER_HEADER_BYTES: usize = 8;
const BATCH_BYTES: usize = 1024 * 1024;
const BATCH_FRAMES: usize = 1024;
/// Drops are logged at most once per this period per link.
const DROP_LOG_PERIOD: Duration = Duration::from_secs(1);

/// Counters of one link, shared between the senders and the link task.
#[derive(Debug)]
pub struct LinkStats {
    /// What the log lines call this link (`n2`, or a description).
    pub label: String,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    dropped_since_log: AtomicU64,
    last_log_ms: AtomicU64,
    epoch: Instant,
}

impl LinkStats {
    pub fn new(label: impl Into<String>) -> LinkStats {
        LinkStats {
            label: label.into(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_since_log: AtomicU64::new(0),
            last_log_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Counts dropped messages and logs, at most once per period, how many and why.
    pub fn note_drop(&self, count: u64, why: &str) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
        self.dropped_since_log.fetch_add(count, Ordering::Relaxed);
        // +1 so that 0 can mean "never logged".
        let now_ms = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < DROP_LOG_PERIOD.as_millis() as u64 {
            return;
        }
        if self
            .last_log_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let n = self.dropped_since_log.swap(0, Ordering::Relaxed);
            tracing::warn!(link = %self.label, dropped = n, "dropped {n} message(s) to {}: {why}", self.label);
        }
    }
}

/// Doubling delay between reconnect attempts.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    fn step(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// Why a link went down.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect: {0}")]
    Connect(quinn::ConnectError),
    #[error("handshake failed: {0}")]
    Handshake(quinn::ConnectionError),
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    #[error("connection lost: {0}")]
    Connection(quinn::ConnectionError),
    #[error("write failed: {0}")]
    Write(quinn::WriteError),
    #[error("the peer restarted; this connection went to its previous run")]
    PeerRestarted,
    #[error("the certificate at that address is not this node's replica certificate")]
    WrongIdentity,
}

// The variants print their cause, so none is also its `source` (an error chain shows each
// cause once): hence `From` by hand rather than `#[from]`.
impl From<quinn::ConnectError> for LinkError {
    fn from(e: quinn::ConnectError) -> Self {
        LinkError::Connect(e)
    }
}

impl From<quinn::ConnectionError> for LinkError {
    fn from(e: quinn::ConnectionError) -> Self {
        LinkError::Connection(e)
    }
}

impl From<quinn::WriteError> for LinkError {
    fn from(e: quinn::WriteError) -> Self {
        LinkError::Write(e)
    }
}

impl LinkError {
    /// The fingerprint the peer expects, if it refused us for a configuration mismatch.
    fn config_mismatch(&self) -> Option<String> {
        let LinkError::Connection(quinn::ConnectionError::ApplicationClosed(close)) = self else {
            return None;
        };
        if close.error_code != quinn::VarInt::from_u32(codes::CONFIG_MISMATCH) {
            return None;
        }
        let reason = String::from_utf8_lossy(&close.reason);
        let theirs = reason
            .strip_prefix("configuration fingerprint ")
            .unwrap_or(&reason);
        Some(theirs.trim_end_matches(" expected").to_string())
    }
}

/// Runs one link until its queue is closed (the network shut down).
pub(crate) async fn run_link(
    endpoint: quinn::Endpoint,
    peer: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
    stats: Arc<LinkStats>,
    restarted: Arc<Notify>,
    header: PeerHeader,
) {
    let mut backoff = Backoff::new();
    let mut reported_down = false;
    loop {
        let mut came_up = false;
        let link = LinkIo {
            queue: &mut queue,
            stats: &stats,
            restarted: &restarted,
            header,
        };
        match pump(&endpoint, peer, addr, link, &mut came_up).await {
            Ok(()) => return,
            Err(e) => {
                let mismatch = e.config_mismatch();
                // A refusal for our configuration is no link that came up: keep backing off.
                if came_up && mismatch.is_none() {
                    backoff.reset();
                    reported_down = false;
                }
                // The first failure is news; the retries behind it are not.
                if let Some(theirs) = mismatch {
                    if !reported_down {
                        tracing::error!(%peer, %addr, ours = %header.fingerprint, "{peer} at {addr} refuses our peer messages: it expects configuration fingerprint {theirs}, ours is {} (accounts, initial balance, members or shards differ; compare cluster.toml)", header.fingerprint);
                    }
                    reported_down = true;
                } else if reported_down {
                    tracing::debug!(%peer, %addr, "link to {peer} at {addr} still down: {e}");
                } else {
                    tracing::info!(%peer, %addr, "link to {peer} at {addr} down: {e}");
                    reported_down = true;
                }
            }
        }
        discard_queued(&mut queue, &stats);
        tokio::time::sleep(backoff.step()).await;
        if queue.is_closed() {
            return;
        }
    }
}

fn discard_queued(queue: &mut mpsc::Receiver<Bytes>, stats: &LinkStats) {
    let mut n = 0;
    while queue.try_recv().is_ok() {
        n += 1;
    }
    if n > 0 {
        stats.note_drop(n, "link down");
    }
}

/// Connects, opens the stream and writes queued frames until an error or the queue closes.
/// What one connection attempt of a link works with.
struct LinkIo<'a> {
    queue: &'a mut mpsc::Receiver<Bytes>,
    stats: &'a LinkStats,
    /// Notified when the peer was seen to restart: the connection in use is then a dead one.
    restarted: &'a Notify,
    header: PeerHeader,
}

/// What a link announces at the start of every stream (see [`PEER_HEADER_BYTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHeader {
    pub incarnation: u64,
    pub fingerprint: ConfigFingerprint,
}

impl PeerHeader {
    pub fn encode(&self) -> [u8; PEER_HEADER_BYTES] {
        let mut bytes = [0u8; PEER_HEADER_BYTES];
        bytes[..8].copy_from_slice(&self.incarnation.to_le_bytes());
        bytes[8..].copy_from_slice(&self.fingerprint.0.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8; PEER_HEADER_BYTES]) -> PeerHeader {
        let mut incarnation = [0u8; 8];
        incarnation.copy_from_slice(&bytes[..8]);
        let mut fingerprint = [0u8; 4];
        fingerprint.copy_from_slice(&bytes[8..]);
        PeerHeader {
            incarnation: u64::from_le_bytes(incarnation),
            fingerprint: ConfigFingerprint(u32::from_le_bytes(fingerprint)),
        }
    }
}

/// The close reason of a [`codes::CONFIG_MISMATCH`]: the refusing side's fingerprint.
pub fn mismatch_reason(ours: ConfigFingerprint) -> String {
    format!("configuration fingerprint {ours} expected")
}

async fn pump(
    endpoint: &quinn::Endpoint,
    peer: NodeId,
    addr: SocketAddr,
    link: LinkIo<'_>,
    came_up: &mut bool,
) -> Result<(), LinkError> {
    let connecting = endpoint.connect(addr, &peer.to_string())?;
    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => return Err(LinkError::Handshake(e)),
        Err(_) => return Err(LinkError::HandshakeTimeout(CONNECT_TIMEOUT)),
    };
    // The CA and the server name already checked; the role makes sure it is `peer` itself and
    // not some other certificate that happens to carry its name.
    if super::tls::peer_role(&connection) != Some(super::tls::CertRole::Replica(peer)) {
        connection.close(
            quinn::VarInt::from_u32(codes::NOT_A_PEER),
            b"not the expected node",
        );
        return Err(LinkError::WrongIdentity);
    }
    *came_up = true;
    tracing::debug!(%peer, %addr, "link to {peer} up");
    let result = write_queued(&connection, link).await;
    if result.is_ok() {
        connection.close(quinn::VarInt::from_u32(codes::SHUTDOWN), b"shutdown");
    }
    result
}

async fn write_queued(connection: &quinn::Connection, link: LinkIo<'_>) -> Result<(), LinkError> {
    let LinkIo {
        queue,
        stats,
        restarted,
        header,
    } = link;
    let mut stream = connection.open_uni().await?;
    // Tells the receiver which run of this process is talking, with which configuration
    // (see `PEER_HEADER_BYTES`).
    let encoded = header.encode();
    let len = if super::tls::speaks_fingerprint(connection) {
        PEER_HEADER_BYTES
    } else {
        OLD_PEER_HEADER_BYTES
    };
    stream.write_all(&encoded[..len]).await?;
    let mut batch = Vec::with_capacity(64);
    loop {
        let first = tokio::select! {
            frame = queue.recv() => frame,
            e = connection.closed() => return Err(LinkError::Connection(e)),
            _ = restarted.notified() => return Err(LinkError::PeerRestarted),
        };
        let Some(first) = first else {
            let _ = stream.finish();
            return Ok(());
        };
        let mut bytes = first.len();
        batch.push(first);
        while bytes < BATCH_BYTES && batch.len() < BATCH_FRAMES {
            let Ok(frame) = queue.try_recv() else { break };
            bytes += frame.len();
            batch.push(frame);
        }
        let count = batch.len() as u64;
        stream.write_all_chunks(&mut batch).await?;
        batch.clear();
        stats.sent.fetch_add(count, Ordering::Relaxed);
    }
}
