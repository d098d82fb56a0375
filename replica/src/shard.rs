//! Which shard owns which account, and which replicas make up each shard.
//!
//! A sharded bank is several Paxos groups; each owns a disjoint set of accounts and runs the
//! ordinary core over them, and a transfer between two shards runs two-phase commit (see
//! `bank::twopc`). `cluster.toml` may list the shards as `[[shards]]` tables (`id`, `accounts`,
//! `nodes`); without them the whole cluster is the single shard 1, which is the classic
//! unsharded cluster. [`ShardMap::new`] validates the tables: ids are 1..=S, no shard is empty,
//! and every account and every node belongs to exactly one shard.

use crate::types::{Account, NodeId, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One `[[shards]]` table of `cluster.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    pub id: ShardId,
    pub accounts: Vec<Account>,
    pub nodes: Vec<NodeId>,
}

/// Why the `[[shards]]` tables do not describe the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("shard ids must be 1..={count} in order, found {found} at position {position}")]
    BadId {
        count: usize,
        position: usize,
        found: ShardId,
    },
    #[error("shard {0} has no accounts")]
    NoAccounts(ShardId),
    #[error("shard {0} has no nodes")]
    NoNodes(ShardId),
    #[error("account {account:?} is in shards {first} and {second}")]
    AccountTwice {
        account: Account,
        first: ShardId,
        second: ShardId,
    },
    #[error("account {account:?} of shard {shard} is not in the cluster's accounts")]
    UnknownAccount { account: Account, shard: ShardId },
    #[error("account {0:?} is in no shard")]
    AccountInNoShard(Account),
    #[error("node {node} is in shards {first} and {second}")]
    NodeTwice {
        node: NodeId,
        first: ShardId,
        second: ShardId,
    },
    #[error("node {node} of shard {shard} is not one of the cluster's nodes")]
    UnknownNode { node: NodeId, shard: ShardId },
    #[error("node {0} is in no shard")]
    NodeInNoShard(NodeId),
    #[error(
        "cannot spread {accounts} accounts over {shards} shards: need 1 <= shards <= accounts"
    )]
    CannotSpread { accounts: usize, shards: u32 },
}

/// Accounts to shards and shards to members, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    shard_of_account: BTreeMap<Account, ShardId>,
    shard_of_node: BTreeMap<NodeId, ShardId>,
    members: BTreeMap<ShardId, Vec<NodeId>>,
}

impl ShardMap {
    /// One shard of everything: the classic cluster.
    pub fn single(accounts: &[Account], nodes: &[NodeId]) -> ShardMap {
        let spec = ShardSpec {
            id: ShardId::ONLY,
            accounts: accounts.to_vec(),
            nodes: nodes.to_vec(),
        };
        Self::build(&[spec])
    }

    /// The map the `[[shards]]` tables describe, for a cluster of `accounts` and `nodes`; an
    /// empty list means [`ShardMap::single`].
    pub fn new(
        specs: &[ShardSpec],
        accounts: &[Account],
        nodes: &[NodeId],
    ) -> Result<ShardMap, ShardError> {
        if specs.is_empty() {
            return Ok(Self::single(accounts, nodes));
        }
        for (position, spec) in specs.iter().enumerate() {
            if spec.id != ShardId(position as u32 + 1) {
                return Err(ShardError::BadId {
                    count: specs.len(),
                    position: position + 1,
                    found: spec.id,
                });
            }
            if spec.accounts.is_empty() {
                return Err(ShardError::NoAccounts(spec.id));
            }
            if spec.nodes.is_empty() {
                return Err(ShardError::NoNodes(spec.id));
            }
        }
        check_partition(
            specs,
            |s| &s.accounts,
            accounts,
            |account, first, second| ShardError::AccountTwice {
                account: account.clone(),
                first,
                second,
            },
            |account, shard| ShardError::UnknownAccount {
                account: account.clone(),
                shard,
            },
            |account| ShardError::AccountInNoShard(account.clone()),
        )?;
        check_partition(
            specs,
            |s| &s.nodes,
            nodes,
            |node, first, second| ShardError::NodeTwice {
                node: *node,
                first,
                second,
            },
            |node, shard| ShardError::UnknownNode { node: *node, shard },
            |node| ShardError::NodeInNoShard(*node),
        )?;
        Ok(Self::build(specs))
    }

    fn build(specs: &[ShardSpec]) -> ShardMap {
        let mut map = ShardMap {
            shard_of_account: BTreeMap::new(),
            shard_of_node: BTreeMap::new(),
            members: BTreeMap::new(),
        };
        for spec in specs {
            for account in &spec.accounts {
                map.shard_of_account.insert(account.clone(), spec.id);
            }
            for node in &spec.nodes {
                map.shard_of_node.insert(*node, spec.id);
            }
            map.members.insert(spec.id, spec.nodes.clone());
        }
        map
    }

    /// Number of shards (1 for an unsharded cluster).
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// Every replica of every shard, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.shard_of_node.keys().copied().collect()
    }

    pub fn shard_of_account(&self, account: &str) -> Option<ShardId> {
        self.shard_of_account.get(account).copied()
    }

    pub fn shard_of_node(&self, node: NodeId) -> Option<ShardId> {
        self.shard_of_node.get(&node).copied()
    }

    /// The replicas of `shard` (empty for an unknown shard).
    pub fn members(&self, shard: ShardId) -> &[NodeId] {
        self.members.get(&shard).map_or(&[], Vec::as_slice)
    }

    /// The accounts `shard` owns, in name order.
    pub fn accounts_of(&self, shard: ShardId) -> Vec<Account> {
        self.shard_of_account
            .iter()
            .filter(|(_, s)| **s == shard)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Every account owned by a shard other than `shard`, with its owner: what the bank of
    /// `shard` needs to route the credit side of a cross-shard transfer.
    pub fn remote_accounts(&self, shard: ShardId) -> BTreeMap<Account, ShardId> {
        self.shard_of_account
            .iter()
            .filter(|(_, s)| **s != shard)
            .map(|(a, s)| (a.clone(), *s))
            .collect()
    }
}

/// Checks that the `items` of the specs partition `all`: each in exactly one spec.
fn check_partition<T: Ord + Clone>(
    specs: &[ShardSpec],
    items: impl Fn(&ShardSpec) -> &Vec<T>,
    all: &[T],
    twice: impl Fn(&T, ShardId, ShardId) -> ShardError,
    unknown: impl Fn(&T, ShardId) -> ShardError,
    in_none: impl Fn(&T) -> ShardError,
) -> Result<(), ShardError> {
    let known: BTreeSet<&T> = all.iter().collect();
    let mut owner: BTreeMap<&T, ShardId> = BTreeMap::new();
    for spec in specs {
        for item in items(spec) {
            if !known.contains(item) {
                return Err(unknown(item, spec.id));
            }
            if let Some(first) = owner.insert(item, spec.id) {
                return Err(twice(item, first, spec.id));
            }
        }
    }
    match all.iter().find(|item| !owner.contains_key(item)) {
        Some(item) => Err(in_none(item)),
        None => Ok(()),
    }
}

/// `shards` shards of `nodes_per_shard` consecutive nodes each (n1..nR are shard 1, and so
/// on), with the accounts dealt out round-robin (A to shard 1, B to shard 2, ...), so that
/// neighbouring accounts, which hand-written scenarios tend to pair, sit on different shards.
pub fn spread(
    accounts: &[Account],
    shards: u32,
    nodes_per_shard: u32,
) -> Result<Vec<ShardSpec>, ShardError> {
    if shards == 0 || shards as usize > accounts.len() {
        return Err(ShardError::CannotSpread {
            accounts: accounts.len(),
            shards,
        });
    }
    Ok((1..=shards)
        .map(|k| ShardSpec {
            id: ShardId(k),
            accounts: accounts
                .iter()
                .skip(k as usize - 1)
                .step_by(shards as usize)
                .cloned()
                .collect(),
            nodes: (1..=nodes_per_shard)
                .map(|r| NodeId((k - 1) * nodes_per_shard + r))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(names: &str) -> Vec<Account> {
        names.chars().map(|c| c.to_string().into()).collect()
    }

    fn nodes(n: u32) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    fn spec(id: u32, accts: &str, ns: &[u32]) -> ShardSpec {
        ShardSpec {
            id: ShardId(id),
            accounts: accounts(accts),
            nodes: ns.iter().copied().map(NodeId).collect(),
        }
    }

    #[test]
    fn no_tables_is_one_shard_of_everything() {
        let map = ShardMap::new(&[], &accounts("ABC"), &nodes(5)).unwrap();
        assert_eq!(map.count(), 1);
        assert_eq!(map.shard_of_account("B"), Some(ShardId::ONLY));
        assert_eq!(map.members(ShardId::ONLY), nodes(5).as_slice());
        assert!(map.remote_accounts(ShardId::ONLY).is_empty());
    }

    #[test]
    fn a_valid_map_answers_both_ways() {
        let specs = [spec(1, "AC", &[1, 2]), spec(2, "B", &[3])];
        let map = ShardMap::new(&specs, &accounts("ABC"), &nodes(3)).unwrap();
        assert_eq!(map.shard_of_account("C"), Some(ShardId(1)));
        assert_eq!(map.shard_of_account("Z"), None);
        assert_eq!(map.shard_of_node(NodeId(3)), Some(ShardId(2)));
        assert_eq!(map.accounts_of(ShardId(1)), accounts("AC"));
        assert_eq!(
            map.remote_accounts(ShardId(1)),
            BTreeMap::from([("B".into(), ShardId(2))])
        );
    }

    #[test]
    fn bad_tables_are_refused_naming_the_problem() {
        let (a, n) = (accounts("ABC"), nodes(3));
        let check = |specs: &[ShardSpec], want: ShardError| {
            assert_eq!(ShardMap::new(specs, &a, &n), Err(want.clone()));
            assert!(!want.to_string().is_empty());
        };
        check(
            &[spec(2, "ABC", &[1, 2, 3])],
            ShardError::BadId {
                count: 1,
                position: 1,
                found: ShardId(2),
            },
        );
        check(
            &[spec(1, "", &[1]), spec(2, "ABC", &[2, 3])],
            ShardError::NoAccounts(ShardId(1)),
        );
        check(
            &[spec(1, "AB", &[1, 2, 3]), spec(2, "C", &[])],
            ShardError::NoNodes(ShardId(2)),
        );
        check(
            &[spec(1, "AB", &[1]), spec(2, "BC", &[2, 3])],
            ShardError::AccountTwice {
                account: "B".into(),
                first: ShardId(1),
                second: ShardId(2),
            },
        );
        check(
            &[spec(1, "AB", &[1]), spec(2, "C", &[2])],
            ShardError::NodeInNoShard(NodeId(3)),
        );
        check(
            &[spec(1, "A", &[1]), spec(2, "C", &[2, 3])],
            ShardError::AccountInNoShard("B".into()),
        );
        check(
            &[spec(1, "AB", &[1, 2]), spec(2, "CZ", &[3])],
            ShardError::UnknownAccount {
                account: "Z".into(),
                shard: ShardId(2),
            },
        );
        check(
            &[spec(1, "AB", &[1, 2]), spec(2, "C", &[2, 3])],
            ShardError::NodeTwice {
                node: NodeId(2),
                first: ShardId(1),
                second: ShardId(2),
            },
        );
        check(
            &[spec(1, "AB", &[1, 2, 3]), spec(2, "C", &[9])],
            ShardError::UnknownNode {
                node: NodeId(9),
                shard: ShardId(2),
            },
        );
    }

    #[test]
    fn spread_deals_accounts_round_robin_and_validates() {
        let a = accounts("ABCDEFGHIJ");
        let specs = spread(&a, 3, 3).unwrap();
        assert_eq!(specs[0].accounts, accounts("ADGJ"));
        assert_eq!(specs[1].accounts, accounts("BEH"));
        assert_eq!(specs[2].nodes, vec![NodeId(7), NodeId(8), NodeId(9)]);
        let map = ShardMap::new(&specs, &a, &nodes(9)).unwrap();
        assert_eq!(map.count(), 3);
        assert!(spread(&a, 0, 3).is_err());
        assert!(spread(&a, 11, 1).is_err());
    }
}
