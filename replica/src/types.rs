//! Domain newtypes shared by the protocol core, the bank and the wire.
//!
//! They exist so that a slot can never be passed where a ballot is expected, and so that the
//! wire format (postcard) of every message is spelled out in one place. Never reorder fields of
//! a wire type: postcard encodes by position.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A replica's identity. Displayed and parsed as `n<k>` (`n1`, `n2`, ...); `k >= 1`.
///
/// Human-readable formats (TOML, JSON) carry it as the string `"n1"`, so config files and
/// reports read like the rest of the project; postcard carries the bare number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            u32::deserialize(deserializer).map(NodeId)
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad node id {0:?}: expected n<number>, e.g. n1")]
pub struct BadNodeId(pub String);

impl FromStr for NodeId {
    type Err = BadNodeId;
    /// Strict: exactly `n` and a decimal number without sign or leading zero, so that one id
    /// has one spelling (`n01`, `n+1` and ` n1` are not `n1`: a certificate name must not
    /// alias a node id).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadNodeId(s.to_string());
        let digits = s.strip_prefix('n').ok_or_else(bad)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return Err(bad());
        }
        digits.parse::<u32>().map(NodeId).map_err(|_| bad())
    }
}

/// A Paxos ballot. Totally ordered by `(round, node)`, so two proposers never share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    /// The ballot below every real ballot: nothing was promised or accepted yet.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// A position in the replicated log. Slots start at 1; `Slot(0)` means "before the first slot".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Slot(pub u64);

impl Slot {
    /// The slot after this one. Saturates: slot numbers arrive from the network, and
    /// `Slot(u64::MAX)` is a ceiling no real log reaches, never a reason to panic.
    pub fn next(self) -> Slot {
        Slot(self.0.saturating_add(1))
    }

    /// `n` slots further, saturating like [`Slot::next`].
    pub fn plus(self, n: u64) -> Slot {
        Slot(self.0.saturating_add(n))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client's identity. The harness uses its client (process) number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The client ids a client certificate may use, both ends included. Written in certificates
/// as `first-last` (see `net::certs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientIdRange {
    pub first: ClientId,
    pub last: ClientId,
}

impl ClientIdRange {
    /// What `replica init`, the harness and the test clusters give their client certificate:
    /// the harness numbers its clients from 0, and `replica ctl` picks ids in the upper half.
    pub const DEFAULT: ClientIdRange = ClientIdRange {
        first: ClientId(0),
        last: ClientId(u32::MAX as u64),
    };

    /// A range, or `None` if `first > last`.
    pub fn new(first: u64, last: u64) -> Option<ClientIdRange> {
        (first <= last).then_some(ClientIdRange {
            first: ClientId(first),
            last: ClientId(last),
        })
    }

    pub fn contains(&self, client: ClientId) -> bool {
        self.first <= client && client <= self.last
    }

    /// An id in the upper half of the range chosen by `seed`: a one-shot client (`replica
    /// ctl`) that must not collide with long-lived clients numbered from the bottom.
    pub fn pick_upper(&self, seed: u64) -> ClientId {
        let span = self.last.0 - self.first.0;
        let half = span / 2;
        let offset = half + seed % (span - half).saturating_add(1);
        ClientId(self.first.0 + offset.min(span))
    }
}

impl fmt::Display for ClientIdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first.0, self.last.0)
    }
}

impl FromStr for ClientIdRange {
    type Err = BadClientIdRange;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadClientIdRange(s.to_string());
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let number = |t: &str| {
            let canonical = !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
                && (t == "0" || !t.starts_with('0'));
            canonical.then(|| t.parse::<u64>().ok()).flatten()
        };
        let (first, last) = (
            number(first).ok_or_else(bad)?,
            number(last).ok_or_else(bad)?,
        );
        ClientIdRange::new(first, last).ok_or_else(bad)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad client id range {0:?}: expected <first>-<last>, e.g. 0-99")]
pub struct BadClientIdRange(pub String);

/// A client's request number: increasing per client; a retry reuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A shard of a sharded bank: one Paxos group owning some of the accounts. Shards are
/// numbered 1..=S; an unsharded cluster is the single shard 1. Displayed as `s<k>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl ShardId {
    /// The shard of an unsharded cluster.
    pub const ONLY: ShardId = ShardId(1);
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// 1-based position of an executed command in the single total order, equal on every replica.
pub type ExecIndex = u64;

/// An account name such as `A`.
///
/// A small string held inline (up to 24 bytes), not a `String`: commands and results carry
/// their account names through every replica's core, log, bank and reply, and the simulator
/// clones each per replica and per executed entry, where heap copies of one-letter names were
/// a tenth of a simulated seed's CPU. Its serde form is exactly a string's, so postcard bytes
/// (the wire, the WAL, checkpoints) and JSON are what a `String` made.
pub type Account = compact_str::CompactString;

/// Money. Signed so that a planted overdraft bug is visible as a negative balance instead of
/// wrapping around.
pub type Amount = i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_parse_and_display() {
        assert_eq!("n3".parse::<NodeId>().unwrap(), NodeId(3));
        assert_eq!(NodeId(12).to_string(), "n12");
        assert!("n0".parse::<NodeId>().is_err());
        assert!("x1".parse::<NodeId>().is_err());
        assert!("n".parse::<NodeId>().is_err());
    }

    #[test]
    fn node_ids_have_one_spelling() {
        for alias in ["n01", "n+1", " n1", "n1 ", "N1", "n0", "n4294967296"] {
            assert!(alias.parse::<NodeId>().is_err(), "{alias:?} parsed");
        }
    }

    #[test]
    fn client_id_ranges_parse_strictly_and_contain_their_ends() {
        let r: ClientIdRange = "10-19".parse().unwrap();
        assert!(r.contains(ClientId(10)) && r.contains(ClientId(19)));
        assert!(!r.contains(ClientId(9)) && !r.contains(ClientId(20)));
        assert_eq!(r.to_string(), "10-19");
        for bad in ["19-10", "1", "-1", "01-2", "1-2-3", "a-b", ""] {
            assert!(bad.parse::<ClientIdRange>().is_err(), "{bad:?} parsed");
        }
        for seed in [0, 1, 7, u64::MAX] {
            let id = r.pick_upper(seed);
            assert!(r.contains(id) && id.0 >= 14, "{id}");
        }
        let all = ClientIdRange::new(0, u64::MAX).unwrap();
        assert!(all.contains(all.pick_upper(u64::MAX)));
    }

    #[test]
    fn node_ids_are_strings_in_text_and_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&NodeId(2)).unwrap(), "\"n2\"");
        assert_eq!(serde_json::from_str::<NodeId>("\"n7\"").unwrap(), NodeId(7));
        assert!(serde_json::from_str::<NodeId>("\"x\"").is_err());
        let bytes = postcard::to_allocvec(&NodeId(300)).unwrap();
        assert_eq!(postcard::from_bytes::<NodeId>(&bytes).unwrap(), NodeId(300));
        assert!(bytes.len() <= 2);
    }

    #[test]
    fn ballots_order_by_round_then_node() {
        let a = Ballot {
            round: 1,
            node: NodeId(5),
        };
        let b = Ballot {
            round: 2,
            node: NodeId(1),
        };
        let c = Ballot {
            round: 2,
            node: NodeId(2),
        };
        assert!(Ballot::ZERO < a && a < b && b < c);
    }
}
