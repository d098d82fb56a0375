//! `cluster.toml`: everything a replica or a client needs to know about the cluster.
//!
//! One file describes the whole cluster (nodes, addresses, accounts, timeouts, checkpoint
//! interval, certificate paths) so that every process reads the same facts. Relative paths are
//! resolved against the directory of the file. `routes` lets a tester (the harness's relay)
//! point one node's traffic to a peer at another address without the replica knowing why.

use crate::shard::{ShardMap, ShardSpec};
use crate::types::{Account, Amount, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read cluster config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cluster config {path} is not valid TOML for a cluster: {cause}")]
    Parse {
        path: PathBuf,
        cause: toml::de::Error,
    },
    #[error("cluster config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Longest timing a config may set (one hour).
pub const MAX_TIMING_MS: u64 = 3_600_000;
/// Largest checkpoint interval a config may set.
pub const MAX_CHECKPOINT_INTERVAL: u64 = 1 << 32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub accounts: Vec<Account>,
    pub initial_balance: Amount,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub limits: Limits,
    pub tls: TlsPaths,
    pub nodes: Vec<NodeConfig>,
    /// Per-link address overrides: traffic from `from` to `to` goes to `addr`.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Optional `[[shards]]` tables (see `shard`); absent means one shard of everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Where the replica listens (UDP, QUIC) for peers and clients.
    pub addr: SocketAddr,
    /// Where clients should connect to reach this node; defaults to `addr`. The harness's relay
    /// sets it to put client traffic through a cuttable link.
    #[serde(default)]
    pub client_addr: Option<SocketAddr>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub from: NodeId,
    pub to: NodeId,
    pub addr: SocketAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    /// A client certificate for `replica ctl` and the harness.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// Core tick period of the shell.
    pub tick_interval_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval_ms: 30,
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            tick_interval_ms: 10,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A checkpoint every this many executed slots (K).
    pub checkpoint_interval_slots: u64,
    /// Most commands one slot carries.
    pub max_batch_commands: u32,
    /// Most slots a leader has proposed but not yet committed.
    pub max_inflight_slots: u32,
    /// Most client commands waiting for a slot at the leader; beyond it, `Overloaded`.
    pub max_pending_commands: u32,
    /// Largest frame accepted from the network.
    pub max_frame_bytes: u32,
    /// Most cross-shard transactions a shard has in flight (coordinated plus participated);
    /// beyond it a transfer fails `busy` and a PREPARE is voted no. Unused unsharded.
    pub max_inflight_txns: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Each checkpoint costs a file written and fsynced, two renames and a directory
            // fsync: every 100 slots it is about 15% less CPU per command than every 10
            // (issue 22, measured with `harness bench --checkpoint-interval`), and restarts
            // replay at most 100 slots more. The simulator draws the interval per seed.
            checkpoint_interval_slots: 100,
            max_batch_commands: 1024,
            max_inflight_slots: 64,
            max_pending_commands: 65_536,
            max_frame_bytes: 8 * 1024 * 1024,
            max_inflight_txns: 1024,
        }
    }
}

/// What two replicas must agree on to build the same state: a CRC-32 of the accounts, the
/// initial balance, the members, the shard layout and the transaction limit of a config.
/// Exchanged when peers connect (docs/peer-protocol.md): a peer whose fingerprint differs is
/// refused. Addresses, routes, certificate paths, timings and the other limits are left out,
/// so the harness's relay and per-node tuning change nothing. It catches mistakes, not
/// attacks: members are trusted, and CRC-32 is no cryptographic hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfigFingerprint(pub u32);

impl std::fmt::Display for ConfigFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The fingerprinted part of a config, in a canonical order. Its encoding is the fingerprint's
/// input: never reorder fields (append, and accept that old and new builds then differ).
#[derive(Serialize)]
struct Fingerprinted<'a> {
    accounts: BTreeSet<&'a Account>,
    initial_balance: Amount,
    members: BTreeSet<NodeId>,
    shards: Vec<(u32, BTreeSet<&'a Account>, BTreeSet<NodeId>)>,
    max_inflight_txns: u32,
}

impl ClusterConfig {
    /// See [`ConfigFingerprint`].
    pub fn fingerprint(&self) -> ConfigFingerprint {
        let shards = self
            .shards
            .iter()
            .map(|s| {
                let accounts = s.accounts.iter().collect();
                (s.id.0, accounts, s.nodes.iter().copied().collect())
            })
            .collect();
        let fingerprinted = Fingerprinted {
            accounts: self.accounts.iter().collect(),
            initial_balance: self.initial_balance,
            members: self.nodes.iter().map(|n| n.id).collect(),
            shards,
            max_inflight_txns: self.limits.max_inflight_txns,
        };
        // Encoding a struct of sets and integers into a Vec cannot fail.
        let bytes = postcard::to_allocvec(&fingerprinted).unwrap_or_default();
        ConfigFingerprint(crc32fast::hash(&bytes))
    }

    /// Reads, validates and resolves relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            cause: source,
        })?;
        let mut config: ClusterConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                cause: source,
            })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write cluster config {}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("no nodes".into());
        }
        let ids: BTreeSet<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        if ids.len() != self.nodes.len() {
            return Err("two nodes share an id".into());
        }
        let accounts: BTreeSet<&Account> = self.accounts.iter().collect();
        if accounts.is_empty() || accounts.len() != self.accounts.len() {
            return Err("accounts must be non-empty and distinct".into());
        }
        if self.accounts.iter().any(|a| a.is_empty() || a.len() > 64) {
            return Err("account names must be 1 to 64 characters".into());
        }
        if self.initial_balance < 0 {
            return Err(format!(
                "initial_balance {} is negative",
                self.initial_balance
            ));
        }
        // Money is conserved, so this bounds every balance and every sum of balances.
        let fits = Amount::try_from(self.accounts.len())
            .ok()
            .and_then(|n| n.checked_mul(self.initial_balance))
            .is_some();
        if !fits {
            return Err(format!(
                "{} accounts × initial_balance {} does not fit in a 64-bit balance",
                self.accounts.len(),
                self.initial_balance
            ));
        }
        let t = &self.timing;
        if t.election_timeout_ms_min == 0 || t.election_timeout_ms_min > t.election_timeout_ms_max {
            return Err("need 0 < election_timeout_ms_min <= election_timeout_ms_max".into());
        }
        if t.heartbeat_interval_ms == 0 || t.heartbeat_interval_ms >= t.election_timeout_ms_min {
            return Err("heartbeat_interval_ms must be below election_timeout_ms_min".into());
        }
        // Bounded so that sums and multiples of these (timer deadlines, retransmission
        // periods, log windows) can never overflow.
        if t.election_timeout_ms_max > MAX_TIMING_MS || t.tick_interval_ms > MAX_TIMING_MS {
            return Err(format!("timings must be at most {MAX_TIMING_MS} ms"));
        }
        let l = &self.limits;
        if l.checkpoint_interval_slots > MAX_CHECKPOINT_INTERVAL {
            return Err(format!(
                "checkpoint_interval_slots must be at most {MAX_CHECKPOINT_INTERVAL}"
            ));
        }
        if l.checkpoint_interval_slots == 0
            || l.max_batch_commands == 0
            || l.max_inflight_slots == 0
            || l.max_pending_commands == 0
            || l.max_inflight_txns == 0
            || l.max_frame_bytes < 1024
        {
            return Err("limits must be positive (max_frame_bytes at least 1024)".into());
        }
        for route in &self.routes {
            if !ids.contains(&route.from) || !ids.contains(&route.to) {
                return Err(format!(
                    "route {} -> {} names an unknown node",
                    route.from, route.to
                ));
            }
        }
        ShardMap::new(
            &self.shards,
            &self.accounts,
            &ids.into_iter().collect::<Vec<_>>(),
        )
        .map_err(|e| format!("[[shards]]: {e}"))?;
        Ok(())
    }

    /// Accounts and members per shard. Call on a validated config: an invalid `[[shards]]`
    /// list falls back to one shard of everything.
    pub fn shard_map(&self) -> ShardMap {
        ShardMap::new(&self.shards, &self.accounts, &self.node_ids())
            .unwrap_or_else(|_| ShardMap::single(&self.accounts, &self.node_ids()))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.tls.ca_cert);
        fix(&mut self.tls.client_cert);
        fix(&mut self.tls.client_key);
        for node in &mut self.nodes {
            fix(&mut node.cert);
            fix(&mut node.key);
        }
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Where `from` sends its traffic for `to`: a route override, else `to`'s own address.
    pub fn peer_addr(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        self.routes
            .iter()
            .find(|r| r.from == from && r.to == to)
            .map(|r| r.addr)
            .or_else(|| self.node(to).map(|n| n.addr))
    }

    /// Where a client reaches `node`.
    pub fn client_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.node(node).map(|n| n.client_addr.unwrap_or(n.addr))
    }

    /// Size of a majority (f + 1).
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// A local cluster of `nodes` replicas on consecutive loopback ports, accounts A–J at 10,
    /// with certificate paths under `cert_dir` (as written by `replica certs`).
    pub fn local(nodes: u32, base_port: u16, cert_dir: &Path) -> ClusterConfig {
        let accounts = (b'A'..=b'J')
            .map(|c| (c as char).to_string().into())
            .collect();
        let nodes = (1..=nodes)
            .map(|k| NodeConfig {
                id: NodeId(k),
                // Saturating: `replica init` checks that the ports fit before calling this.
                addr: SocketAddr::from((
                    [127, 0, 0, 1],
                    base_port.saturating_add(u16::try_from(k - 1).unwrap_or(u16::MAX)),
                )),
                client_addr: None,
                cert: cert_dir.join(format!("n{k}.pem")),
                key: cert_dir.join(format!("n{k}.key")),
            })
            .collect();
        ClusterConfig {
            accounts,
            initial_balance: 10,
            timing: Timing::default(),
            limits: Limits::default(),
            tls: TlsPaths {
                ca_cert: cert_dir.join("ca.pem"),
                client_cert: cert_dir.join("client.pem"),
                client_key: cert_dir.join("client.key"),
            },
            nodes,
            routes: Vec::new(),
            shards: Vec::new(),
        }
    }

    /// A local sharded cluster: `shards` × `replicas_per_shard` replicas (shard k is the k-th
    /// run of consecutive node ids) with accounts A–J dealt round-robin (see `shard::spread`).
    pub fn local_sharded(
        shards: u32,
        replicas_per_shard: u32,
        base_port: u16,
        cert_dir: &Path,
    ) -> Result<ClusterConfig, crate::shard::ShardError> {
        let nodes = shards.saturating_mul(replicas_per_shard);
        let mut config = ClusterConfig::local(nodes, base_port, cert_dir);
        config.shards = crate::shard::spread(&config.accounts, shards, replicas_per_shard)?;
        Ok(config)
    }

    /// Initial balances as a map.
    pub fn initial_balances(&self) -> BTreeMap<Account, Amount> {
        self.accounts
            .iter()
            .map(|a| (a.clone(), self.initial_balance))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_covers_what_makes_state_diverge_and_nothing_else() {
        let base = ClusterConfig::local(3, 7100, Path::new("certs"));
        let fp = base.fingerprint();
        let changed = |edit: &dyn Fn(&mut ClusterConfig)| {
            let mut config = base.clone();
            edit(&mut config);
            config.fingerprint()
        };
        // Diverging state: other accounts, balances, members, shards, transaction limit.
        assert_ne!(changed(&|c| c.accounts.push("Z".into())), fp);
        assert_ne!(changed(&|c| c.initial_balance += 1), fp);
        assert_ne!(changed(&|c| c.nodes.truncate(2)), fp);
        assert_ne!(changed(&|c| c.limits.max_inflight_txns += 1), fp);
        let sharded = ClusterConfig::local_sharded(3, 1, 7100, Path::new("certs")).unwrap();
        let mut reshuffled = sharded.clone();
        let moved = reshuffled.shards[0].accounts.pop().unwrap();
        reshuffled.shards[1].accounts.push(moved);
        assert_ne!(sharded.fingerprint(), reshuffled.fingerprint());
        // Not state: addresses, routes, paths, timings, other limits, the order of accounts.
        assert_eq!(changed(&|c| c.nodes[0].addr.set_port(1)), fp);
        assert_eq!(changed(&|c| c.tls.ca_cert = "elsewhere.pem".into()), fp);
        assert_eq!(changed(&|c| c.timing.heartbeat_interval_ms += 1), fp);
        assert_eq!(changed(&|c| c.limits.checkpoint_interval_slots += 1), fp);
        assert_eq!(changed(&|c| c.accounts.reverse()), fp);
        assert_eq!(fp.to_string().len(), 8);
    }

    #[test]
    fn local_config_round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig::local(5, 7100, Path::new("certs"));
        let path = dir.path().join("cluster.toml");
        config.save(&path).unwrap();
        let loaded = ClusterConfig::load(&path).unwrap();
        assert_eq!(loaded.nodes.len(), 5);
        assert_eq!(loaded.quorum(), 3);
        assert_eq!(loaded.tls.ca_cert, dir.path().join("certs/ca.pem"));
        assert_eq!(
            loaded.peer_addr(NodeId(1), NodeId(2)),
            Some(config.nodes[1].addr)
        );
    }

    #[test]
    fn a_bad_config_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        let mut config = ClusterConfig::local(3, 7100, Path::new("certs"));
        config.timing.election_timeout_ms_min = 10;
        config.save(&path).unwrap();
        let err = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("cluster.toml") && err.contains("heartbeat"),
            "{err}"
        );
        let mut config = ClusterConfig::local(3, 7100, Path::new("certs"));
        config.initial_balance = Amount::MAX / 5;
        config.save(&path).unwrap();
        let err = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("initial_balance"), "{err}");
        std::fs::write(&path, "nodes = 3").unwrap();
        let err = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn sharded_config_round_trips_and_bad_shards_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        let config = ClusterConfig::local_sharded(3, 3, 7100, Path::new("certs")).unwrap();
        config.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[[shards]]"), "{text}");
        let loaded = ClusterConfig::load(&path).unwrap();
        assert_eq!(loaded.shard_map().count(), 3);
        assert_eq!(
            loaded.shard_map().shard_of_node(NodeId(9)),
            Some(crate::types::ShardId(3))
        );
        let mut bad = config.clone();
        bad.shards[1].accounts.push("A".into());
        bad.save(&path).unwrap();
        let err = ClusterConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("[[shards]]") && err.contains("\"A\""), "{err}");
    }

    #[test]
    fn a_shard_core_sees_its_own_group_and_the_others_accounts() {
        use crate::core::CoreConfig;
        use crate::types::ShardId;
        let config = ClusterConfig::local_sharded(3, 3, 7100, Path::new("certs")).unwrap();
        let core = CoreConfig::from_cluster(&config, NodeId(5));
        assert_eq!(core.nodes, vec![NodeId(4), NodeId(5), NodeId(6)]);
        assert_eq!(core.accounts, ["B", "E", "H"]);
        let sharding = core.sharding.as_ref().unwrap();
        assert_eq!(sharding.shard, ShardId(2));
        assert_eq!(sharding.remote.get("A"), Some(&ShardId(1)));
        assert_eq!(core.shard_of_peer(NodeId(9)), Some(ShardId(3)));
        assert_eq!(core.shard_of_peer(NodeId(4)), None, "own shard");
        assert!(core.validate().is_ok());
        let classic =
            CoreConfig::from_cluster(&ClusterConfig::local(5, 7100, Path::new("c")), NodeId(1));
        assert!(classic.sharding.is_none());
        assert_eq!(classic.nodes.len(), 5);
    }

    #[test]
    fn an_unsharded_config_writes_no_shard_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        ClusterConfig::local(5, 7100, Path::new("certs"))
            .save(&path)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("shards"), "{text}");
        assert_eq!(ClusterConfig::load(&path).unwrap().shard_map().count(), 1);
    }
}
