//! TLS and QUIC configuration: mutual TLS against the cluster CA, two ALPN versions, tuned
//! transport.
//!
//! Every connection is mutually authenticated: the server requires a client certificate
//! signed by the cluster CA (rustls' WebPKI client verifier), and the client verifies the
//! server against the same CA under the expected name (a node id such as `n2`). Only TLS 1.3
//! with the ring provider is offered (QUIC requires 1.3).
//!
//! The CA vouches for names; [`cert_role`] reads what a verified certificate may do (be a
//! replica, or submit as some clients).
//!
//! Dead peers are found by the protocol's heartbeats, not by QUIC, so the idle timeout is
//! only a backstop that eventually frees connections to vanished peers; keep-alives stop a
//! quiet but healthy link from idling out.

use super::certs::{CLIENT_ROLE_PREFIX, OPERATOR_ROLE_PREFIX, REPLICA_ROLE_PREFIX};
use crate::types::{ClientIdRange, NodeId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{AckFrequencyConfig, IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The application protocol every faultline endpoint speaks.
pub const ALPN: &[u8] = b"faultline/1";
/// The same, but peer streams start with the sender's configuration fingerprint too
/// (`peer::PEER_HEADER_BYTES`). Offered first and preferred; an endpoint of an older version
/// negotiates [`ALPN`], so a rolling restart still mixes versions (without the check).
pub const ALPN_FINGERPRINT: &[u8] = b"faultline/2";

/// Both protocols, the preferred first.
fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![ALPN_FINGERPRINT.to_vec(), ALPN.to_vec()]
}

/// Whether the connection negotiated [`ALPN_FINGERPRINT`].
pub fn speaks_fingerprint(connection: &quinn::Connection) -> bool {
    connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|protocol| protocol == ALPN_FINGERPRINT)
}

pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Client requests in flight on one connection (one bidirectional stream each) until the
/// accepting side narrows it for the connection's role (`endpoint::limit_connection`).
pub const MAX_BIDI_STREAMS: u32 = 64;
pub const MAX_UNI_STREAMS: u32 = 64;
/// Flow-control windows: far above the bandwidth-delay product of a LAN or loopback, and small
/// enough that a paused peer cannot make us buffer much (everything buffered while a link is
/// stalled is stale by the time it is delivered).
const STREAM_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;
pub const CONNECTION_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;
/// What an accepted connection may send before we know its role: small, because whoever has a
/// client certificate can open hundreds of connections. A peer's window is widened to
/// [`CONNECTION_RECEIVE_WINDOW`] once its certificate says it is one (`endpoint`).
pub const ACCEPTED_RECEIVE_WINDOW: u32 = 256 * 1024;
/// Connection attempts quinn queues before we accept them, and the bytes they may buffer.
const MAX_INCOMING: usize = 128;
const INCOMING_BUFFER_BYTES: u64 = 64 * 1024;
const INCOMING_BUFFER_TOTAL_BYTES: u64 = 4 * 1024 * 1024;
/// Unacknowledged data we keep per accepted connection (answers to clients who read slowly
/// stay in it): small for the same reason.
pub const ACCEPTED_SEND_WINDOW: u64 = 512 * 1024;
const SEND_WINDOW: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{path} holds no {what}")]
    Missing { what: &'static str, path: PathBuf },
    #[error("the CA certificate in {path} is unusable: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("TLS configuration with certificate {cert} and key {key}: {reason}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// A loaded identity: the CA to trust, our certificate chain and private key.
#[derive(Debug)]
pub struct TlsIdentity {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_path: PathBuf,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca_path: self.ca_path.clone(),
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
        }
    }
}

impl TlsIdentity {
    /// Loads PEM files: the CA certificate(s), our certificate chain and our private key.
    pub fn load(ca_cert: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let ca_certs = read_certs(ca_cert, "CA certificate")?;
        let mut roots = RootCertStore::empty();
        for ca in ca_certs {
            roots.add(ca).map_err(|e| TlsError::BadCa {
                path: ca_cert.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let chain = read_certs(cert, "certificate")?;
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("private key", key, e))?;
        Ok(TlsIdentity {
            roots: Arc::new(roots),
            chain,
            key: key_der,
            ca_path: ca_cert.to_path_buf(),
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
        })
    }

    /// A QUIC server configuration requiring CA-signed client certificates.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::BadCa {
                    path: self.ca_path.clone(),
                    reason: e.to_string(),
                })?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| self.config_error(e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.config_error(e))?;
        tls.alpn_protocols = alpn_protocols();
        let quic = QuicServerConfig::try_from(tls).map_err(|e| self.config_error(e))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        // quinn's defaults let 65,536 handshakes and 100 MiB of their packets wait for us.
        config
            .max_incoming(MAX_INCOMING)
            .incoming_buffer_size(INCOMING_BUFFER_BYTES)
            .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL_BYTES);
        let mut transport = transport_config();
        transport
            .receive_window(VarInt::from_u32(ACCEPTED_RECEIVE_WINDOW))
            .send_window(ACCEPTED_SEND_WINDOW);
        config.transport_config(Arc::new(transport));
        Ok(config)
    }

    /// A QUIC client configuration presenting our certificate and trusting only the CA.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        self.client_config_offering(alpn_protocols())
    }

    /// [`TlsIdentity::client_config`] offering only `protocols` (an older version's, say).
    pub fn client_config_offering(
        &self,
        protocols: Vec<Vec<u8>>,
    ) -> Result<quinn::ClientConfig, TlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| self.config_error(e))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.config_error(e))?;
        tls.alpn_protocols = protocols;
        let quic = QuicClientConfig::try_from(tls).map_err(|e| self.config_error(e))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(Arc::new(transport_config()));
        Ok(config)
    }

    fn config_error(&self, e: impl std::fmt::Display) -> TlsError {
        TlsError::Config {
            cert: self.cert_path.clone(),
            key: self.key_path.clone(),
            reason: e.to_string(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn pem_error(what: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    let reason = match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind".to_string(),
        other => format!("{other:?}"),
    };
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

/// Ack-eliciting packets the other end may receive before it must acknowledge (QUIC's ACK
/// frequency extension). Without it a receiver answers every second packet with an ACK-only
/// datagram: on a peer link, whose data flows one way, that is a `sendmsg` on one side and a
/// wake-up plus `recvmmsg` on the other for every two ACCEPTs or ACCEPTEDs.
const ACK_ELICITING_THRESHOLD: u32 = 7;
/// Bytes a connection may have in flight before its first acknowledgement: with ACKs every
/// eighth packet, quinn's default (ten full datagrams) would let a burst of large ACCEPTs wait
/// for the other end's ACK delay. Far below the flow-control windows.
const INITIAL_CONGESTION_WINDOW_BYTES: u64 = 256 * 1024;

/// Transport settings shared by every endpoint (see the module docs for the timeouts).
pub fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    let mut ack_frequency = AckFrequencyConfig::default();
    ack_frequency.ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD));
    let mut congestion = quinn::congestion::CubicConfig::default();
    congestion.initial_window(INITIAL_CONGESTION_WINDOW_BYTES);
    transport
        .ack_frequency_config(Some(ack_frequency))
        .congestion_controller_factory(Arc::new(congestion));
    transport
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(
            IDLE_TIMEOUT.as_millis() as u32,
        ))))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(None);
    transport
}

/// What a certificate entitles its holder to (see [`super::certs`] for how it is written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// A cluster replica: may send peer messages as this node.
    Replica(NodeId),
    /// A client: may submit commands under these client ids.
    Client(ClientIdRange),
    /// An operator: a client that may also read the replica's state (print-db, print-log,
    /// fetch-executed).
    Operator(ClientIdRange),
}

impl CertRole {
    /// The client ids a client or operator may submit under.
    pub fn client_ids(self) -> Option<ClientIdRange> {
        match self {
            CertRole::Client(ids) | CertRole::Operator(ids) => Some(ids),
            CertRole::Replica(_) => None,
        }
    }
}

impl TlsIdentity {
    /// The role our own certificate states, if it states exactly one.
    pub fn role(&self) -> Option<CertRole> {
        cert_role(self.chain.first()?.as_ref())
    }
}

/// The first DNS name of the peer's verified certificate: who is on the other end.
pub fn peer_name(connection: &quinn::Connection) -> Option<String> {
    first_dns_name(peer_leaf(connection)?.as_ref())
}

/// The role stated by the peer's verified certificate.
pub fn peer_role(connection: &quinn::Connection) -> Option<CertRole> {
    cert_role(peer_leaf(connection)?.as_ref())
}

fn peer_leaf(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().cloned()
}

/// The role a DER certificate states, strictly: exactly one `faultline:` URI name, well
/// formed. A replica certificate must also allow server authentication and carry its node id
/// as its first DNS name; anything else (a client certificate naming a node, two roles, no
/// role) gets no role at all.
pub fn cert_role(der: &[u8]) -> Option<CertRole> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut roles = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("faultline:") => Some(*uri),
            _ => None,
        });
    let (uri, None) = (roles.next()?, roles.next()) else {
        return None;
    };
    if let Some(id) = uri.strip_prefix(REPLICA_ROLE_PREFIX) {
        let node: NodeId = id.parse().ok()?;
        let server_auth = cert
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|eku| eku.value.server_auth);
        let named = first_dns_name(der).is_some_and(|dns| dns == node.to_string());
        return (server_auth && named).then_some(CertRole::Replica(node));
    }
    if let Some(ids) = uri.strip_prefix(OPERATOR_ROLE_PREFIX) {
        return Some(CertRole::Operator(ids.parse().ok()?));
    }
    let ids = uri.strip_prefix(CLIENT_ROLE_PREFIX)?.parse().ok()?;
    Some(CertRole::Client(ids))
}

/// The first DNS subject alternative name of a DER certificate.
pub fn first_dns_name(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        _ => None,
    })
}
