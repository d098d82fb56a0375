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
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .trim()
            .strip_prefix('n')
            .ok_or_else(|| BadNodeId(s.to_string()))?;
        match digits.parse::<u32>() {
            Ok(k) if k >= 1 => Ok(NodeId(k)),
            _ => Err(BadNodeId(s.to_string())),
        }
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

/// A client's request number: increasing per client; a retry reuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 1-based position of an executed command in the single total order, equal on every replica.
pub type ExecIndex = u64;

/// An account name such as `A`.
pub type Account = String;

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
