//! The client library: how `replica ctl` and the harness talk to replicas.
//!
//! One QUIC endpoint per [`Client`], one cached connection per node, opened on first use and
//! reopened on demand. Each call is one bidirectional stream: one `ClientRequest` frame out,
//! one `ClientResponse` frame back. Any failure drops the cached connection (only if it is
//! still the one that failed, so a fresh connection made by a concurrent call survives), so
//! the next call reconnects: replicas restart, pause and get partitioned all the time here.
//!
//! On a sharded cluster a command goes to the nodes of the shard that holds its account (the
//! source account of a transfer, whose shard coordinates a cross-shard one); other requests
//! may go to any node.
//!
//! A timeout means "no answer": the command may or may not have executed, and the caller must
//! record it as unknown and retry with the same request id. `Client` is `Send + Sync`; share
//! it between tasks by reference or `Arc`.

use crate::bank::Op;
use crate::client_proto::{ClientRequest, ClientResponse};
use crate::config::ClusterConfig;
use crate::net::frame::{finish, read_frame, write_frame, FrameError};
use crate::net::tls::{peer_role, CertRole, TlsError, TlsIdentity};
use crate::shard::ShardMap;
use crate::types::{ClientIdRange, NodeId};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no node {0} in the cluster config")]
    UnknownNode(NodeId),
    #[error("no answer from {node} at {addr} within {after:?}")]
    Timeout {
        node: NodeId,
        addr: SocketAddr,
        after: Duration,
    },
    #[error("cannot connect to {node} at {addr}: {cause}")]
    Connect {
        node: NodeId,
        addr: SocketAddr,
        cause: quinn::ConnectError,
    },
    #[error("connection to {node} at {addr} failed: {cause}")]
    Connection {
        node: NodeId,
        addr: SocketAddr,
        cause: quinn::ConnectionError,
    },
    #[error("{node} at {addr}: {cause}")]
    Frame {
        node: NodeId,
        addr: SocketAddr,
        cause: FrameError,
    },
    #[error("{node} at {addr} finished the stream without answering")]
    NoResponse { node: NodeId, addr: SocketAddr },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot create the client endpoint: {0}")]
    Endpoint(String),
    #[error("{node} at {addr} did not present {node}'s replica certificate")]
    WrongIdentity { node: NodeId, addr: SocketAddr },
}

/// A connection to one replica, shared by concurrent calls.
struct NodeSlot {
    addr: SocketAddr,
    /// The async lock makes concurrent first calls wait for one handshake instead of racing.
    connection: tokio::sync::Mutex<Option<quinn::Connection>>,
}

/// Pause after a round of tries with no leader in sight, so retries do not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait a caller can ask for: longer timeouts are cut to it (a deadline past the
/// clock's range would panic).
pub const MAX_CALL_WAIT: Duration = Duration::from_secs(24 * 3600);

pub struct Client {
    endpoint: quinn::Endpoint,
    nodes: HashMap<NodeId, NodeSlot>,
    max_frame_bytes: u32,
    /// The client ids our certificate lets us submit under (`None`: it states no client role).
    ids: Option<ClientIdRange>,
    /// Which nodes serve which accounts (one shard of everything on a classic cluster).
    shards: ShardMap,
}

impl Client {
    /// A client presenting `cert`/`key` and trusting the cluster CA (`config.tls.ca_cert`).
    /// Must be called inside a tokio runtime.
    pub fn new(config: &ClusterConfig, cert: &Path, key: &Path) -> Result<Client, ClientError> {
        let identity = TlsIdentity::load(&config.tls.ca_cert, cert, key)?;
        let nodes: HashMap<NodeId, NodeSlot> = config
            .node_ids()
            .into_iter()
            .filter_map(|id| config.client_addr(id).map(|addr| (id, addr)))
            .map(|(id, addr)| {
                (
                    id,
                    NodeSlot {
                        addr,
                        connection: tokio::sync::Mutex::new(None),
                    },
                )
            })
            .collect();
        let endpoint = client_endpoint(&identity, nodes.values().map(|slot| slot.addr))?;
        let ids = identity.role().and_then(CertRole::client_ids);
        Ok(Client {
            endpoint,
            nodes,
            max_frame_bytes: config.limits.max_frame_bytes,
            ids,
            shards: config.shard_map(),
        })
    }

    /// The client ids this client's certificate allows; a submit under any other id is
    /// answered `Unauthorized`.
    pub fn client_ids(&self) -> Option<ClientIdRange> {
        self.ids
    }

    /// Sends one request to `node` and waits, at most `timeout` in all, for its response.
    pub async fn call(
        &self,
        node: NodeId,
        request: &ClientRequest,
        timeout: Duration,
    ) -> Result<ClientResponse, ClientError> {
        let slot = self
            .nodes
            .get(&node)
            .ok_or(ClientError::UnknownNode(node))?;
        let deadline = Instant::now() + timeout.min(MAX_CALL_WAIT);
        let timed_out = || ClientError::Timeout {
            node,
            addr: slot.addr,
            after: timeout,
        };
        let connection = tokio::time::timeout_at(deadline, self.connection(node, slot))
            .await
            .map_err(|_| timed_out())??;
        let exchange = exchange(&connection, request, self.max_frame_bytes);
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(e)) => Err(e.into_client_error(node, slot.addr)),
            Err(_) => Err(timed_out()),
        };
        forget(slot, &connection).await;
        result
    }

    /// Sends `request` to `first` (or the first node), then follows leader hints and moves on
    /// through the other nodes until one gives a definite answer or `deadline` passes.
    ///
    /// Definite means anything but `NotLeader`, `Overloaded` or no answer. A retry reuses the
    /// same request (and so the same request id): the replicas execute it at most once. Every
    /// failed try is kept, so the caller can say why nothing answered.
    pub async fn call_until_definite(
        &self,
        request: &ClientRequest,
        first: Option<NodeId>,
        per_try: Duration,
        deadline: Instant,
    ) -> Result<ClientResponse, Vec<String>> {
        let order = self.home_nodes(request);
        let mut next = first
            .filter(|node| order.contains(node))
            .or_else(|| order.first().copied());
        let mut cursor = 0usize;
        let mut failures = Vec::new();
        while let Some(node) = next {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let hint = match self.call(node, request, per_try.min(left)).await {
                Ok(ClientResponse::NotLeader { leader_hint, .. }) => {
                    failures.push(format!("{node}: not the leader"));
                    leader_hint.filter(|&leader| leader != node && order.contains(&leader))
                }
                Ok(ClientResponse::Overloaded { .. }) => {
                    failures.push(format!("{node}: overloaded"));
                    None
                }
                Ok(response) => return Ok(response),
                Err(e) => {
                    failures.push(e.to_string());
                    None
                }
            };
            if hint.is_none() && cursor % order.len().max(1) == order.len().max(1) - 1 {
                // A whole round without an answer: an election is probably under way.
                tokio::time::sleep(RETRY_PAUSE.min(left)).await;
            }
            cursor += 1;
            next = hint.or_else(|| order.get(cursor % order.len().max(1)).copied());
        }
        Err(failures)
    }

    /// The nodes that can execute `request`, in id order: the members of the shard holding
    /// the command's account, or every node for anything else (and for an account no shard
    /// holds, which any node rejects by name).
    fn home_nodes(&self, request: &ClientRequest) -> Vec<NodeId> {
        let account = match request {
            ClientRequest::Submit(command) => match &command.op {
                Op::Transfer { from, .. } => Some(from.as_str()),
                Op::Read { account } => Some(account.as_str()),
                Op::ReadAll => None,
            },
            _ => None,
        };
        let members = account
            .and_then(|a| self.shards.shard_of_account(a))
            .map(|shard| self.shards.members(shard));
        let mut order: Vec<NodeId> = match members {
            Some(members) => members
                .iter()
                .copied()
                .filter(|n| self.nodes.contains_key(n))
                .collect(),
            None => self.nodes.keys().copied().collect(),
        };
        order.sort();
        order
    }

    /// The addresses calls to each node go to.
    pub fn node_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.nodes.get(&node).map(|slot| slot.addr)
    }

    /// Closes every connection (pending calls fail).
    pub fn close(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"client closed");
    }

    /// The cached connection to `node`, or a new one.
    async fn connection(
        &self,
        node: NodeId,
        slot: &NodeSlot,
    ) -> Result<quinn::Connection, ClientError> {
        let mut cached = slot.connection.lock().await;
        if let Some(connection) = cached.as_ref() {
            if connection.close_reason().is_none() {
                return Ok(connection.clone());
            }
        }
        *cached = None;
        let addr = slot.addr;
        let connecting = self
            .endpoint
            .connect(addr, &node.to_string())
            .map_err(|cause| ClientError::Connect { node, addr, cause })?;
        let connection =
            connecting
                .await
                .map_err(|cause| ClientError::Connection { node, addr, cause })?;
        if peer_role(&connection) != Some(CertRole::Replica(node)) {
            connection.close(quinn::VarInt::from_u32(0), b"not the expected node");
            return Err(ClientError::WrongIdentity { node, addr });
        }
        *cached = Some(connection.clone());
        Ok(connection)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// Drops the cached connection if it is still `failed` (a concurrent call may have replaced it).
async fn forget(slot: &NodeSlot, failed: &quinn::Connection) {
    let mut cached = slot.connection.lock().await;
    if cached
        .as_ref()
        .is_some_and(|c| c.stable_id() == failed.stable_id())
    {
        *cached = None;
    }
}

/// Why one exchange failed, before the node and address are attached.
enum ExchangeError {
    Connection(quinn::ConnectionError),
    Frame(FrameError),
    NoResponse,
}

impl ExchangeError {
    fn into_client_error(self, node: NodeId, addr: SocketAddr) -> ClientError {
        match self {
            ExchangeError::Connection(source) => ClientError::Connection {
                node,
                addr,
                cause: source,
            },
            ExchangeError::Frame(source) => ClientError::Frame {
                node,
                addr,
                cause: source,
            },
            ExchangeError::NoResponse => ClientError::NoResponse { node, addr },
        }
    }
}

async fn exchange(
    connection: &quinn::Connection,
    request: &ClientRequest,
    max_frame_bytes: u32,
) -> Result<ClientResponse, ExchangeError> {
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(ExchangeError::Connection)?;
    write_frame(&mut send, request, max_frame_bytes)
        .await
        .map_err(ExchangeError::Frame)?;
    finish(&mut send).map_err(ExchangeError::Frame)?;
    match read_frame(&mut recv, max_frame_bytes).await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(ExchangeError::NoResponse),
        Err(e) => Err(ExchangeError::Frame(e)),
    }
}

/// A client-only endpoint on an ephemeral port of the right family: loopback when every node
/// is on loopback, otherwise the unspecified address.
fn client_endpoint(
    identity: &TlsIdentity,
    addrs: impl Iterator<Item = SocketAddr>,
) -> Result<quinn::Endpoint, ClientError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ClientError::Endpoint(
            "Client::new must be called inside a tokio runtime".into(),
        ));
    }
    let addrs: Vec<SocketAddr> = addrs.collect();
    let ip: IpAddr = if addrs.iter().any(|a| a.is_ipv6()) {
        Ipv6Addr::UNSPECIFIED.into()
    } else if addrs.iter().all(|a| a.ip().is_loopback()) {
        Ipv4Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let bind = SocketAddr::new(ip, 0);
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| ClientError::Endpoint(format!("cannot bind {bind}: {e}")))?;
    endpoint.set_default_client_config(identity.client_config()?);
    Ok(endpoint)
}
