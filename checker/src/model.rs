//! The bank as the checks see it: compact commands and a replayable state.
//!
//! Millions of operations are held in memory at once, so account names are interned
//! to small integers ([`Accounts`]) and a command is a small `Copy` value ([`Cmd`]).
//! [`Bank`] is the sequential specification: applying the agreed log to it from the
//! initial balances says what every command should have returned. [`NodeState`] is what
//! the checks keep of each replica of final.json.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with the fast [`Fx`] hasher, for keys that are not attacker-chosen.
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// An interned account name.
pub(crate) type Acct = u32;

/// Interns account names. The accounts named in run.toml come first; names met
/// elsewhere are added after them and counted as undeclared.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    names: Vec<String>,
    ids: FxMap<String, Acct>,
    declared: usize,
}

impl Accounts {
    /// Accounts declared by run.toml.
    pub fn declared(names: &[String]) -> Accounts {
        let mut a = Accounts::default();
        for n in names {
            a.intern(n);
        }
        a.declared = a.names.len();
        a
    }

    pub fn intern(&mut self, name: &str) -> Acct {
        // Banks under test have a handful of accounts: a scan beats hashing.
        if self.names.len() <= 16 {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                return i as Acct;
            }
        } else if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as Acct;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn name(&self, id: Acct) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    pub fn declared_count(&self) -> usize {
        self.declared
    }

    /// Adds `other`'s names and returns, for each of `other`'s ids, the id here.
    pub fn merge(&mut self, other: &Accounts) -> Vec<Acct> {
        other.names.iter().map(|n| self.intern(n)).collect()
    }

    /// Undeclared names, for warnings.
    pub fn undeclared(&self) -> &[String] {
        &self.names[self.declared..]
    }
}

/// The function of a client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FKind {
    Transfer,
    Read,
    ReadAll,
    Other,
}

impl FKind {
    pub fn parse(f: &str) -> FKind {
        match f {
            "transfer" => FKind::Transfer,
            "read" => FKind::Read,
            "read_all" => FKind::ReadAll,
            _ => FKind::Other,
        }
    }
}

/// A client command with interned accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Cmd {
    Transfer {
        from: Acct,
        to: Acct,
        amount: i64,
    },
    Read {
        account: Acct,
    },
    ReadAll,
    /// A function the checker does not know; only its identity is checked.
    Other,
}

/// A [`Cmd`] taken apart, for records held by the million: as an enum it takes 24
/// bytes (an `i64` beside two `u32`s and a tag), flat beside a record's own small
/// fields it takes 17 and lets the record pack tighter. See [`Cmd::pack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CmdParts {
    pub kind: u8,
    pub accounts: [Acct; 2],
    pub amount: i64,
}

impl Cmd {
    /// The command's parts, to store flat ([`Cmd::unpack`] gives it back).
    pub fn pack(self) -> CmdParts {
        let (kind, accounts, amount) = match self {
            Cmd::Transfer { from, to, amount } => (0, [from, to], amount),
            Cmd::Read { account } => (1, [account, 0], 0),
            Cmd::ReadAll => (2, [0, 0], 0),
            Cmd::Other => (3, [0, 0], 0),
        };
        CmdParts {
            kind,
            accounts,
            amount,
        }
    }

    /// The command [`Cmd::pack`] took apart.
    pub fn unpack(kind: u8, accounts: [Acct; 2], amount: i64) -> Cmd {
        match kind {
            0 => Cmd::Transfer {
                from: accounts[0],
                to: accounts[1],
                amount,
            },
            1 => Cmd::Read {
                account: accounts[0],
            },
            2 => Cmd::ReadAll,
            _ => Cmd::Other,
        }
    }

    /// Human-readable, e.g. `transfer A->B 3`.
    pub fn describe(&self, accounts: &Accounts) -> String {
        match *self {
            Cmd::Transfer { from, to, amount } => format!(
                "transfer {}->{} {}",
                accounts.name(from),
                accounts.name(to),
                amount
            ),
            Cmd::Read { account } => format!("read {}", accounts.name(account)),
            Cmd::ReadAll => "read_all".into(),
            Cmd::Other => "an unknown command".into(),
        }
    }

    /// Renumbers accounts after interners were merged.
    pub fn remap(&mut self, map: &[Acct]) {
        let m = |a: &mut Acct| *a = map.get(*a as usize).copied().unwrap_or(*a);
        match self {
            Cmd::Transfer { from, to, .. } => {
                m(from);
                m(to);
            }
            Cmd::Read { account } => m(account),
            Cmd::ReadAll | Cmd::Other => {}
        }
    }
}

/// What the specification says a command returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Transferred {
        from_balance: i64,
        to_balance: i64,
    },
    Insufficient,
    Balance(i64),
    /// `read_all`: the answer is the whole bank as it stands.
    All,
    /// A command the specification cannot evaluate (unknown function or account).
    Unknown,
    /// A transfer of a zero or negative amount: the bank rejects it before proposal,
    /// so it never belongs in the log.
    BadAmount,
    /// The transfer would take a balance past what an i64 holds: the replay cannot
    /// say what a correct bank answers from here on.
    Overflow,
}

/// The sequential bank: balances indexed by account id.
#[derive(Debug, Clone)]
pub(crate) struct Bank {
    pub balances: Vec<i64>,
    declared: usize,
}

impl Bank {
    /// Every declared account starts at `initial`.
    pub fn new(accounts: &Accounts, initial: i64) -> Bank {
        Bank {
            balances: vec![initial; accounts.declared_count()],
            declared: accounts.declared_count(),
        }
    }

    /// A bank holding `balances` (indexed by account id) with `accounts`' declared
    /// accounts, for searches that keep many states.
    pub fn from_balances(balances: Vec<i64>, accounts: &Accounts) -> Bank {
        Bank {
            balances,
            declared: accounts.declared_count(),
        }
    }

    /// Applies `cmd`, returning what it should answer. A transfer moves money only
    /// when the source holds at least the amount; otherwise it fails and changes
    /// nothing (it still occupies its slot).
    pub fn apply(&mut self, cmd: &Cmd) -> Effect {
        match *cmd {
            Cmd::Transfer { from, to, amount } => self.transfer(from, to, amount),
            _ => self.read_effect(cmd),
        }
    }

    /// What `cmd` would answer now, changing nothing: how an operation that only
    /// observes a position (shared positions, see `crate::final_state::Positions`) is
    /// judged.
    pub fn peek(&self, cmd: &Cmd) -> Effect {
        match *cmd {
            Cmd::Transfer { from, to, amount } => self.transfer_effect(from, to, amount),
            _ => self.read_effect(cmd),
        }
    }

    fn read_effect(&self, cmd: &Cmd) -> Effect {
        match *cmd {
            Cmd::Read { account } => match self.balances.get(account as usize) {
                Some(&b) => Effect::Balance(b),
                None => Effect::Unknown,
            },
            Cmd::ReadAll => Effect::All,
            _ => Effect::Unknown,
        }
    }

    fn transfer(&mut self, from: Acct, to: Acct, amount: i64) -> Effect {
        let effect = self.transfer_effect(from, to, amount);
        if let Effect::Transferred {
            from_balance,
            to_balance,
        } = effect
        {
            self.balances[from as usize] = from_balance;
            self.balances[to as usize] = to_balance;
        }
        effect
    }

    /// What the transfer answers from the current balances.
    fn transfer_effect(&self, from: Acct, to: Acct, amount: i64) -> Effect {
        let (f, t) = (from as usize, to as usize);
        if f >= self.declared || t >= self.declared {
            return Effect::Unknown;
        }
        if amount <= 0 {
            return Effect::BadAmount;
        }
        if self.balances[f] < amount {
            return Effect::Insufficient;
        }
        if f == t {
            // Out and back into one account: nothing moves (the replica rejects this
            // before proposal, so it can only come from a broken log).
            let b = self.balances[f];
            return Effect::Transferred {
                from_balance: b,
                to_balance: b,
            };
        }
        // Checked, so a log of huge amounts (or a huge initial balance) is reported,
        // never wrapped into a plausible-looking balance.
        match (
            self.balances[f].checked_sub(amount),
            self.balances[t].checked_add(amount),
        ) {
            (Some(from_balance), Some(to_balance)) => Effect::Transferred {
                from_balance,
                to_balance,
            },
            _ => Effect::Overflow,
        }
    }
}

/// A small fast hasher (FxHash) for fingerprints of log entries; not for security.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Whole words as loads (a copy of a variable-length chunk is a memcpy call,
        // which showed in profiles); the tail zero-padded.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut b = [0u8; 8];
            b[..tail.len()].copy_from_slice(tail);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Formats a list of history indices for messages, e.g. `12, 15`.
pub(crate) fn list(indices: &[u64]) -> String {
    indices
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The replica a final.json entry belongs to: `n1` for `n1` and for `n1:1-14274`, an
/// earlier stretch of n1's journal the harness saved apart.
pub fn replica_name(entry: &str) -> &str {
    entry.split_once(':').map_or(entry, |(node, _)| node)
}

/// What the checks keep of one replica.
#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub name: String,
    /// Sorted by account; `None` when not fetched.
    pub balances: Option<Vec<(Acct, i64)>>,
    pub error: Option<String>,
    /// First and last exec index of its executed list (0 when empty).
    pub first: u64,
    pub last: u64,
    pub entries: u64,
}

impl NodeState {
    /// Whether anything was fetched from the replica (an empty log counts, if it
    /// was fetched without error).
    pub fn fetched(&self) -> bool {
        self.balances.is_some() || self.entries > 0 || self.error.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_moves_money_or_fails_without_change() {
        let accts = Accounts::declared(&["A".into(), "B".into()]);
        let mut bank = Bank::new(&accts, 10);
        let t = Cmd::Transfer {
            from: 0,
            to: 1,
            amount: 7,
        };
        assert_eq!(
            bank.apply(&t),
            Effect::Transferred {
                from_balance: 3,
                to_balance: 17
            }
        );
        assert_eq!(bank.apply(&t), Effect::Insufficient);
        assert_eq!(bank.balances, vec![3, 17]);
        assert_eq!(bank.apply(&Cmd::Read { account: 1 }), Effect::Balance(17));
    }

    #[test]
    fn peek_answers_like_apply_without_changing_anything() {
        let accts = Accounts::declared(&["A".into(), "B".into()]);
        let bank = Bank::new(&accts, 10);
        let t = |amount| Cmd::Transfer {
            from: 0,
            to: 1,
            amount,
        };
        for cmd in [t(4), t(11), t(0), Cmd::Read { account: 1 }, Cmd::ReadAll] {
            let mut applied = bank.clone();
            assert_eq!(bank.peek(&cmd), applied.apply(&cmd), "{cmd:?}");
        }
        assert_eq!(bank.balances, vec![10, 10]);
    }

    #[test]
    fn non_positive_and_overflowing_transfers_change_nothing() {
        let accts = Accounts::declared(&["A".into(), "B".into()]);
        let mut bank = Bank::new(&accts, i64::MAX);
        for amount in [0, -3, i64::MIN] {
            let t = Cmd::Transfer {
                from: 0,
                to: 1,
                amount,
            };
            assert_eq!(bank.apply(&t), Effect::BadAmount, "{amount}");
        }
        let t = Cmd::Transfer {
            from: 0,
            to: 1,
            amount: 1,
        };
        assert_eq!(bank.apply(&t), Effect::Overflow);
        assert_eq!(bank.balances, vec![i64::MAX, i64::MAX]);
    }
}
