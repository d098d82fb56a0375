//! The bank workload: which operation each client asks for next.
//!
//! Client `i` owns account `i` and transfers from it to a random other account a random amount
//! (small against the initial balance, so both successes and insufficient-funds failures
//! happen), mixed with single-account reads and whole-bank reads. Each client draws from its own
//! ChaCha stream of the seed, so `replay` regenerates each client's exact sequence whatever the
//! timing.

use crate::run::rng;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use replica::bank::Op;
use replica::types::{Account, Amount};

/// Share of transfers, single reads and whole-bank reads, in percent.
const TRANSFER_PCT: u32 = 70;
const READ_PCT: u32 = 15;
/// Largest transfer amount (initial balances are 10).
const MAX_AMOUNT: Amount = 5;

/// Account names for `n` clients: `A`..`Z`, then `A1`..`Z1`, `A2`...
pub fn account_names(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| {
            let letter = char::from(b'A' + (i % 26) as u8);
            match i / 26 {
                0 => letter.to_string(),
                round => format!("{letter}{round}"),
            }
        })
        .collect()
}

/// One client's operation generator.
pub struct OpGen {
    rng: ChaCha8Rng,
    own: usize,
    accounts: Vec<Account>,
    transfers_only: bool,
}

impl OpGen {
    /// Client `client` owning `accounts[client % len]`.
    pub fn new(seed: u64, client: u64, accounts: Vec<Account>) -> OpGen {
        let own = usize::try_from(client).unwrap_or(0) % accounts.len().max(1);
        OpGen {
            rng: rng::client_stream(seed, client),
            own,
            accounts,
            transfers_only: false,
        }
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
        if roll < TRANSFER_PCT && n >= 2 {
            // Any account but our own.
            let mut to = self.rng.gen_range(0..n - 1);
            if to >= self.own {
                to += 1;
            }
            let amount = self.rng.gen_range(1..=MAX_AMOUNT);
            Op::Transfer {
                from: self.accounts[self.own].clone(),
                to: self.accounts[to].clone(),
                amount,
            }
        } else if roll < TRANSFER_PCT + READ_PCT && n >= 1 {
            Op::Read {
                account: self.accounts[self.rng.gen_range(0..n)].clone(),
            }
        } else {
            Op::ReadAll
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
