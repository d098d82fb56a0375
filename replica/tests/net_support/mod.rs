//! Helpers shared by the network tests: certificates, free loopback ports, test messages.
#![allow(dead_code)]

use replica::config::ClusterConfig;
use replica::net::certs::{generate_cluster_certs, generate_foreign_client_cert};
use replica::net::{Incoming, Network, TlsIdentity};
use replica::types::NodeId;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

pub const MAX_FRAME: u32 = 64 * 1024;
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestMsg {
    Ping(u64),
    Data(Vec<u8>),
}

/// A certificate directory for nodes n1..=n3, a client "client", and a foreign "rogue".
pub struct Certs {
    pub dir: TempDir,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [NodeId(1), NodeId(2), NodeId(3), NodeId(9)];
        generate_cluster_certs(dir.path(), &nodes, &["client"]).unwrap();
        generate_foreign_client_cert(dir.path(), "rogue").unwrap();
        Certs { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn identity(&self, name: &str) -> TlsIdentity {
        TlsIdentity::load(
            &self.path("ca.pem"),
            &self.path(&format!("{name}.pem")),
            &self.path(&format!("{name}.key")),
        )
        .unwrap()
    }

    /// A cluster config for nodes n1..=n3 at `addrs`.
    pub fn config(&self, addrs: &[SocketAddr]) -> ClusterConfig {
        let mut config = ClusterConfig::local(addrs.len() as u32, 7000, self.dir.path());
        for (node, addr) in config.nodes.iter_mut().zip(addrs) {
            node.addr = *addr;
        }
        config.limits.max_frame_bytes = MAX_FRAME;
        config
    }
}

/// A loopback UDP address that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts node `me` of a cluster whose nodes are at `addrs` (index 0 is n1).
pub async fn start_node(
    certs: &Certs,
    me: u32,
    addrs: &[SocketAddr],
) -> (Network<TestMsg>, Incoming<TestMsg>) {
    let peers: Vec<(NodeId, SocketAddr)> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| (NodeId(i as u32 + 1), *addr))
        .collect();
    let bind = addrs[me as usize - 1];
    let identity = certs.identity(&format!("n{me}"));
    // A just-closed socket on the same port may take a moment to be released.
    for _ in 0..100 {
        match Network::start(NodeId(me), bind, peers.clone(), &identity, MAX_FRAME, 1024).await {
            Ok(started) => return started,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("cannot bind {bind}");
}

/// A raw QUIC connection to `addr` (server name `server_name`) presenting `identity`.
pub async fn raw_connect(
    identity: &TlsIdentity,
    addr: SocketAddr,
    server_name: &str,
) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(identity.client_config().unwrap());
    endpoint.connect(addr, server_name).unwrap().await.unwrap()
}

pub fn cert_dir(certs: &Certs) -> &Path {
    certs.dir.path()
}

/// Whether a connection was closed by the application with `code`.
pub fn closed_with(reason: &quinn::ConnectionError, code: u32) -> bool {
    matches!(reason, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == quinn::VarInt::from_u32(code))
}
