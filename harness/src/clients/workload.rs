//! The bank workload: which operation each client asks for next.
//!
//! Client `i` owns account `i` and transfers from it to a random other account a random amount
//! (small against the initial balance, so both successes and insufficient-funds failures
//! happen), mixed with single-account reads and whole-bank reads. Each client draws from its own
//! ChaCha stream of the seed, so `replay` regenerates each client's exact sequence whatever the
//! timing.
//!
//! On a sharded bank ([`OpGen::with_shards`]) a stated share of transfers goes to an account of
//! another shard (two-phase commit) and the rest stay within the source's shard; a whole-bank
//! read is the bank's cross-shard snapshot.

use crate::rng;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use replica::bank::Op;
use replica::types::{Account, Amount};
use serde::{Deserialize, Serialize};

/// Share of single reads and whole-bank reads by default, in percent (transfers: the rest).
const READ_PCT: u32 = 15;
const READ_ALL_PCT: u32 = 15;
/// Largest transfer amount (initial balances are 10).
const MAX_AMOUNT: Amount = 5;

/// Account names for `n` clients: `A`..`Z`, then `A1`..`Z1`, `A2`...
pub fn account_names(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| {
            let letter = char::from(b'A' + (i % 26) as u8);
            match i / 26 {
                0 => letter.to_string().into(),
                round => format!("{letter}{round}").into(),
            }
        })
        .collect()
}

/// The shape of a workload: its mix of operations and how much the clients contend. The
/// default is the mix every run used before shapes were drawn (70% transfers, 15% reads, 15%
/// whole-bank reads, destinations uniform); `harness sim` draws one per seed (swarm testing,
/// see `sim::swarm`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadShape {
    /// Share of single-account reads, in percent.
    pub read_pct: u32,
    /// Share of whole-bank reads (`read_all`; a cross-shard snapshot when sharded), in percent.
    pub read_all_pct: u32,
    /// Contention: share of transfers that go to the first account (the hot one), in percent.
    pub hot_pct: u32,
}

impl Default for WorkloadShape {
    fn default() -> WorkloadShape {
        WorkloadShape {
            read_pct: READ_PCT,
            read_all_pct: READ_ALL_PCT,
            hot_pct: 0,
        }
    }
}

/// One client's operation generator.
pub struct OpGen {
    rng: ChaCha8Rng,
    own: usize,
    /// With more accounts than clients, every account this client sends from (see
    /// [`OpGen::spread_over`]); empty otherwise: it sends from `own` alone.
    owned: Vec<usize>,
    accounts: Vec<Account>,
    transfers_only: bool,
    shards: Option<ShardMix>,
    shape: WorkloadShape,
}

/// Where a sharded workload's transfers go (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ShardMix {
    /// The shard of each account, by account index.
    pub shard_of: Vec<u32>,
    /// Share of transfers to another shard's account, 0 to 1.
    pub cross_share: f64,
}

impl OpGen {
    /// Client `client` owning `accounts[client % len]`.
    pub fn new(seed: u64, client: u64, accounts: Vec<impl Into<Account>>) -> OpGen {
        let accounts: Vec<Account> = accounts.into_iter().map(Into::into).collect();
        let own = usize::try_from(client).unwrap_or(0) % accounts.len().max(1);
        OpGen {
            rng: rng::client_stream(seed, client),
            own,
            owned: Vec::new(),
            accounts,
            transfers_only: false,
            shards: None,
            shape: WorkloadShape::default(),
        }
    }

    /// Client `client` of `clients`: with more accounts than clients (`--accounts`), it owns
    /// every account `j` with `j ≡ client (mod clients)` and draws each transfer's source
    /// among them, so money flows out of every account, not only the first `clients`. With
    /// as many accounts as clients or fewer, nothing changes (nor does any draw).
    pub fn spread_over(mut self, clients: u64) -> OpGen {
        let clients = usize::try_from(clients).unwrap_or(usize::MAX).max(1);
        if self.accounts.len() > clients {
            let first = self.own % clients;
            self.owned = (first..self.accounts.len()).step_by(clients).collect();
        }
        self
    }

    /// This mix of operations and contention instead of the default.
    pub fn with_shape(mut self, shape: WorkloadShape) -> OpGen {
        self.shape = shape;
        self
    }

    /// A sharded bank's workload (see the module docs).
    pub fn with_shards(mut self, mix: ShardMix) -> OpGen {
        self.shards = Some(mix);
        self
    }

    /// Only transfers (benchmarks measure durable writes).
    pub fn transfers_only(mut self) -> OpGen {
        self.transfers_only = true;
        self
    }

    pub fn next_op(&mut self) -> Op {
        let n = self.accounts.len();
        let roll = if self.transfers_only {
            0
        } else {
            self.rng.gen_range(0..100)
        };
        let transfer_pct = 100u32.saturating_sub(self.shape.read_pct + self.shape.read_all_pct);
        if roll < transfer_pct && n >= 2 {
            if self.owned.len() > 1 {
                self.own = self.owned[self.rng.gen_range(0..self.owned.len())];
            }
            let hot = self.shape.hot_pct > 0
                && self.own != 0
                && self.rng.gen_range(0..100) < self.shape.hot_pct;
            let to = match self.shards.clone() {
                _ if hot => 0,
                Some(mix) => self.sharded_destination(&mix),
                None => self.any_other(),
            };
            let amount = self.rng.gen_range(1..=MAX_AMOUNT);
            Op::Transfer {
                from: self.accounts[self.own].clone(),
                to: self.accounts[to].clone(),
                amount,
            }
        } else if roll < transfer_pct + self.shape.read_pct && n >= 1 {
            Op::Read {
                account: self.accounts[self.rng.gen_range(0..n)].clone(),
            }
        } else {
            Op::ReadAll
        }
    }

    /// Any account but our own.
    fn any_other(&mut self) -> usize {
        let n = self.accounts.len();
        let mut to = self.rng.gen_range(0..n - 1);
        if to >= self.own {
            to += 1;
        }
        to
    }

    /// Another shard's account with the mix's share, else another account of our shard
    /// (either side falls back to the other when it has no account).
    fn sharded_destination(&mut self, mix: &ShardMix) -> usize {
        let mine = mix.shard_of.get(self.own).copied();
        let (mut cross, mut local): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for i in (0..self.accounts.len()).filter(|&i| i != self.own) {
            if mix.shard_of.get(i).copied() == mine {
                local.push(i);
            } else {
                cross.push(i);
            }
        }
        let want_cross = self.rng.gen_bool(mix.cross_share.clamp(0.0, 1.0));
        let pool = match (want_cross, cross.is_empty(), local.is_empty()) {
            (true, false, _) | (false, false, true) => cross,
            _ => local,
        };
        match pool.len() {
            0 => self.any_other(),
            k => pool[self.rng.gen_range(0..k)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let names = account_names(28);
        assert_eq!(names[0], "A");
        assert_eq!(names[25], "Z");
        assert_eq!(names[26], "A1");
        assert_eq!(names[27], "B1");
    }

    #[test]
    fn with_more_accounts_than_clients_every_account_is_a_source() {
        let accounts = account_names(100);
        let mut sources = std::collections::BTreeSet::new();
        for client in 0..10 {
            let mut ops = OpGen::new(3, client, accounts.clone())
                .spread_over(10)
                .transfers_only();
            for _ in 0..200 {
                let Op::Transfer { from, .. } = ops.next_op() else {
                    panic!("transfers only")
                };
                let index = accounts.iter().position(|a| *a == from).unwrap();
                assert_eq!(
                    index % 10,
                    client as usize,
                    "client {client} sends from its own"
                );
                sources.insert(from);
            }
        }
        assert_eq!(sources.len(), 100);
        // As many accounts as clients: the same operations as without it.
        let ten = account_names(10);
        let mut plain = OpGen::new(3, 4, ten.clone());
        let mut spread = OpGen::new(3, 4, ten).spread_over(10);
        for _ in 0..50 {
            assert_eq!(plain.next_op(), spread.next_op());
        }
    }

    fn mix(share: f64) -> ShardMix {
        // Ten accounts dealt over three shards, as `replica init --shards 3` does.
        ShardMix {
            shard_of: (0..10).map(|i| i % 3 + 1).collect(),
            cross_share: share,
        }
    }

    /// Share of client `client`'s transfers that cross shards, its transfers, single reads and
    /// whole-bank reads.
    fn cross_share_of(share: f64, client: u64) -> (f64, usize, usize, usize) {
        let accounts = account_names(10);
        let m = mix(share);
        let mut ops = OpGen::new(9, client, accounts.clone()).with_shards(m.clone());
        let (mut cross, mut transfers, mut reads, mut snapshots) = (0, 0, 0, 0);
        for _ in 0..2_000 {
            match ops.next_op() {
                Op::Transfer { from, to, .. } => {
                    let shard = |a: &str| m.shard_of[accounts.iter().position(|x| x == a).unwrap()];
                    transfers += 1;
                    if shard(&from) != shard(&to) {
                        cross += 1;
                    }
                }
                Op::Read { .. } => reads += 1,
                Op::ReadAll => snapshots += 1,
            }
        }
        (
            f64::from(cross) / f64::from(transfers),
            transfers as usize,
            reads,
            snapshots,
        )
    }

    #[test]
    fn a_sharded_workload_crosses_shards_with_the_share_asked() {
        for share in [0.0, 0.5, 1.0] {
            for client in [0, 4] {
                let (got, transfers, reads, snapshots) = cross_share_of(share, client);
                assert!((got - share).abs() < 0.05, "share {share}: {got}");
                assert!(transfers > 1_000 && reads > 200, "{transfers} / {reads}");
                assert!(
                    snapshots > 200,
                    "whole-bank reads are snapshots: {snapshots}"
                );
            }
        }
    }

    #[test]
    fn ops_are_reproducible_and_well_formed() {
        let accounts = account_names(10);
        let mut a = OpGen::new(5, 3, accounts.clone());
        let mut b = OpGen::new(5, 3, accounts.clone());
        let ops: Vec<Op> = (0..500).map(|_| a.next_op()).collect();
        assert_eq!(ops, (0..500).map(|_| b.next_op()).collect::<Vec<_>>());
        let mut kinds = [0; 3];
        for op in &ops {
            match op {
                Op::Transfer { from, to, amount } => {
                    assert_eq!(from, "D", "client 3 owns D");
                    assert_ne!(to, "D");
                    assert!((1..=MAX_AMOUNT).contains(amount));
                    kinds[0] += 1;
                }
                Op::Read { .. } => kinds[1] += 1,
                Op::ReadAll => kinds[2] += 1,
            }
        }
        assert!(kinds.iter().all(|&k| k > 20), "a mix: {kinds:?}");
        let mut other = OpGen::new(5, 4, accounts);
        assert_ne!(
            ops[..20],
            (0..20).map(|_| other.next_op()).collect::<Vec<_>>()[..]
        );
    }
}
