//! The replica's network: QUIC with mutual TLS, for both peer traffic and client requests.
//!
//! - [`certs`]: generating the cluster CA and the node and client certificates.
//! - [`tls`]: loading PEM identities, the quinn server/client configurations, and
//!   [`tls::peer_role`], the role (replica or client ids) of whoever is on the other end.
//! - [`frame`]: length-prefixed postcard frames on QUIC streams.
//! - [`endpoint`]: [`Network`], one UDP socket per replica acting as server and client: one
//!   outgoing link per peer ([`peer`]) and an accept loop sorting incoming streams into peer
//!   messages and client calls.
//!
//! Identity comes only from certificates. A peer's configured address may be a relay that
//! forwards datagrams, so source addresses prove nothing.

pub mod certs;
pub mod endpoint;
pub mod frame;
pub mod peer;
pub mod tls;
pub mod warnings;

pub use endpoint::{ClientCall, Incoming, NetError, NetLimits, Network};
pub use frame::FrameError;
pub use tls::{cert_role, peer_name, peer_role, CertRole, TlsError, TlsIdentity, ALPN};

/// QUIC application error codes used when we close a connection.
pub mod codes {
    /// Normal shutdown.
    pub const SHUTDOWN: u32 = 0;
    /// The peer sent a malformed or oversize frame.
    pub const BAD_FRAME: u32 = 1;
    /// A certificate that is not a cluster node tried to send peer messages.
    pub const NOT_A_PEER: u32 = 2;
    /// The connection has no usable certificate identity.
    pub const NO_IDENTITY: u32 = 3;
    /// Too many connections or requests: try again later.
    pub const BUSY: u32 = 4;
    /// A peer stream announced a configuration fingerprint other than ours.
    pub const CONFIG_MISMATCH: u32 = 5;
}
