//! Helpers shared by the network tests: certificates, free loopback ports, test messages.
#![allow(dead_code)]

use replica::config::ClusterConfig;
use replica::net::certs::{generate_cluster, generate_foreign_client_cert, ClientCert};
use replica::net::{Incoming, NetLimits, Network, TlsIdentity};
use replica::types::{ClientIdRange, NodeId};
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

/// A certificate directory for nodes n1..=n3 (and n9, not a member of test clusters), a
/// client "client" (the default ids), "alice" (ids 100-199) and "bob" (ids 200-299), and a
/// foreign "rogue". The CA key sits in a directory of its own, as it should.
pub struct Certs {
    pub dir: TempDir,
    pub ca_dir: TempDir,
}

pub fn ids(first: u64, last: u64) -> ClientIdRange {
    ClientIdRange::new(first, last).unwrap()
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = tempfile::tempdir().unwrap();
        let nodes = [NodeId(1), NodeId(2), NodeId(3), NodeId(9)];
        let clients = [
            ClientCert::operator("client", ClientIdRange::DEFAULT),
            ClientCert::new("alice", ids(100, 199)),
            ClientCert::new("bob", ids(200, 299)),
        ];
        let ca_key = ca_dir.path().join("ca.key");
        generate_cluster(dir.path(), &nodes, &clients, Some(&ca_key)).unwrap();
        generate_foreign_client_cert(dir.path(), "rogue").unwrap();
        Certs { dir, ca_dir }
    }

    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir.path().join("ca.key")
    }

    /// Writes `<name>.pem`/`.key` signed by the cluster CA with exactly these DNS names,
    /// extended key usages and URI names: for certificates the generator refuses to make.
    pub fn forge(&self, name: &str, dns: &[&str], server_auth: bool, uris: &[&str]) {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.ca_key()).unwrap()).unwrap();
        let ca_params = CertificateParams::from_ca_cert_pem(
            &std::fs::read_to_string(self.path("ca.pem")).unwrap(),
        )
        .unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.to_string().try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
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
    let identity = certs.identity(&format!("n{me}"));
    start_as(&identity, me, addrs, NetLimits::new(MAX_FRAME), 1024).await
}

/// Starts node `me` presenting `identity`, with explicit limits and incoming queue bound.
pub async fn start_as(
    identity: &TlsIdentity,
    me: u32,
    addrs: &[SocketAddr],
    limits: NetLimits,
    queue_bound: usize,
) -> (Network<TestMsg>, Incoming<TestMsg>) {
    let peers: Vec<(NodeId, SocketAddr)> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| (NodeId(i as u32 + 1), *addr))
        .collect();
    let bind = addrs[me as usize - 1];
    // A just-closed socket on the same port may take a moment to be released.
    for _ in 0..100 {
        let started = Network::start_with(
            NodeId(me),
            bind,
            peers.clone(),
            identity,
            limits,
            queue_bound,
        );
        match started.await {
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
