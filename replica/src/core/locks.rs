//! Bounded lock waits: the leader's side of the `wait-die` lock policy of a sharded bank.
//!
//! Why: under no-wait locking a transfer or read that meets an account locked by a cross-shard
//! transaction in flight fails `lock-conflict` at once, so under contention almost nothing
//! moves. Under wait-die the leader holds such a command (or a participant's PREPARE) back
//! instead, and proposes it once the lock is gone or its wait is over.
//!
//! How: nothing here is replicated state. The bank's lock table says who blocks what
//! ([`crate::bank::Bank::lock_blockers`], `prepare_blockers`); execution still decides every
//! outcome exactly as under no-wait, so a wait changes only *when* an entry is proposed. A
//! wait that ends with the lock still held proposes the entry all the same: it then fails
//! `lock-conflict` (or the PREPARE votes no), definitely, with its position, like a no-wait
//! conflict. A lost wait (the leader stepped down) is a command never proposed: the client's
//! retry, or the coordinator's resent PREPARE, finds the next leader.
//!
//! Who may wait: a client command holds no lock, so it always may. A PREPARE's transaction
//! holds its debited account at the coordinator, so it waits only when it is older
//! ([`crate::bank::TxnId::is_older_than`]) than every holder of the credited account and dies
//! (votes no at once) otherwise: every wait then goes from an older transaction to a younger
//! one, and waits never form a cycle.
//!
//! Bounds: at most [`MAX_LOCK_WAITS`] waits (beyond it an entry is proposed at once, as under
//! no-wait); each ends within `lock_wait_ms`, checked on every tick and every flush. Waits
//! end in arrival order where they compete: an entry released to take a lock *claims* its
//! account until it has executed (or for one `lock_wait_ms`), so the waits behind it stay.

use super::clients::{key_of, Enqueued, RequestKey};
use super::config::LockPolicy;
use super::{Core, RoleState};
use crate::bank::{Bank, Command, Op, TxnEntry, TxnId};
use crate::types::Account;
use std::collections::{BTreeMap, VecDeque};

/// Most commands and PREPAREs a leader keeps waiting for locks.
pub const MAX_LOCK_WAITS: usize = 4096;

/// What waits for a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Waiting {
    /// A client's command, proposed when it ends.
    Command(Command),
    /// A participant's [`TxnEntry::Prepare`], proposed when it ends.
    Prepare(TxnEntry),
}

#[derive(Clone, Debug)]
pub(super) struct LockWait {
    pub what: Waiting,
    pub since_ms: u64,
}

/// Who holds a claim on an account: an entry released from a wait that will lock it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claimant {
    Command(RequestKey),
    Prepare(TxnId),
}

/// A leader's lock waits (see the module docs).
#[derive(Default)]
pub(super) struct LockWaits {
    queue: VecDeque<LockWait>,
    claims: BTreeMap<Account, (Claimant, u64)>,
    /// The clock at the last release (every wait then had a deadline still ahead).
    released_ms: u64,
}

impl LockWaits {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LockWait> {
        self.queue.iter()
    }

    pub fn released_ms(&self) -> u64 {
        self.released_ms
    }

    pub fn waits_for_command(&self, key: RequestKey) -> bool {
        let same = |w: &LockWait| matches!(&w.what, Waiting::Command(c) if key_of(c) == key);
        self.queue.iter().any(same)
    }

    pub fn waits_for_txn(&self, txn: &TxnId) -> bool {
        let same =
            |w: &LockWait| matches!(&w.what, Waiting::Prepare(e) if prepare_txn(e) == Some(txn));
        self.queue.iter().any(same)
    }

    /// Parks `what` unless the waits are full (`false`: propose it now). A clock that went
    /// back since the last release counts from that release, which the next release then
    /// sees ahead of its clock and ends the wait (ending a wait early is always safe).
    fn park(&mut self, what: Waiting, now_ms: u64) -> bool {
        if self.queue.len() >= MAX_LOCK_WAITS {
            return false;
        }
        self.queue.push_back(LockWait {
            what,
            since_ms: now_ms.max(self.released_ms),
        });
        true
    }

    /// Drops the claims of entries that have executed, or that are older than `bound_ms`.
    fn settle_claims(&mut self, now_ms: u64, bound_ms: u64, done: impl Fn(&Claimant) -> bool) {
        self.claims
            .retain(|_, (who, since)| !done(who) && now_ms >= *since && now_ms - *since < bound_ms);
    }

    fn claimed(&self, accounts: &[&Account]) -> bool {
        accounts
            .iter()
            .any(|a| self.claims.contains_key(a.as_str()))
    }
}

/// The accounts of this shard an entry touches, and the one it locks if it starts a
/// transaction (the source of a cross-shard transfer, the credited account of a PREPARE).
fn accounts_of<'a>(bank: &Bank, what: &'a Waiting) -> (Vec<&'a Account>, Option<&'a Account>) {
    match what {
        Waiting::Command(c) => match &c.op {
            Op::Transfer { from, to, .. } if bank.is_remote(to) => (vec![from], Some(from)),
            Op::Transfer { from, to, .. } => (vec![from, to], None),
            Op::Read { account } => (vec![account], None),
            Op::ReadAll => (Vec::new(), None),
        },
        Waiting::Prepare(TxnEntry::Prepare { to, .. }) => (vec![to], Some(to)),
        Waiting::Prepare(_) => (Vec::new(), None),
    }
}

fn prepare_txn(entry: &TxnEntry) -> Option<&TxnId> {
    match entry {
        TxnEntry::Prepare { txn, .. } => Some(txn),
        _ => None,
    }
}

impl Core {
    /// The lock policy and the longest wait of this shard (`None` unsharded: no locks).
    fn lock_policy(&self) -> Option<(LockPolicy, u64)> {
        let s = self.cfg.sharding.as_ref()?;
        Some((s.lock_policy, s.lock_wait_ms))
    }

    fn waits_enabled(&self) -> bool {
        matches!(self.lock_policy(), Some((LockPolicy::WaitDie, _)))
    }

    /// A leader's client command that would meet a lock now: parks it (`true`; the caller
    /// keeps the client's waiter as for a queued command), or says to propose it (`false`).
    /// A retry of a command already waiting is parked already.
    pub(super) fn wait_for_locks(&mut self, now_ms: u64, command: &Command) -> bool {
        if !self.waits_enabled() {
            return false;
        }
        let blocked = !self.bank.lock_blockers(&command.op).is_empty();
        let dedup = !self.cfg.bugs.no_dedup();
        let RoleState::Leader(leader) = &mut self.role else {
            return false;
        };
        let key = key_of(command);
        if leader.locks.waits_for_command(key) {
            return true;
        }
        if dedup && leader.proposals.contains(key) {
            return false;
        }
        blocked && leader.locks.park(Waiting::Command(command.clone()), now_ms)
    }

    /// A leader's PREPARE that would meet a lock now: parks it if its transaction is older
    /// than every holder (`true`), else says to propose it now (`false`; it dies, voting no,
    /// or it meets no lock). A resent PREPARE of one waiting already is dropped (`true`).
    pub(super) fn prepare_waits(&mut self, now_ms: u64, entry: &TxnEntry) -> bool {
        let (Some(txn), TxnEntry::Prepare { to, .. }) = (prepare_txn(entry), entry) else {
            return false;
        };
        if !self.waits_enabled() {
            return false;
        }
        let blockers = self.bank.prepare_blockers(txn, to);
        let older = blockers.iter().all(|holder| txn.is_older_than(holder));
        let RoleState::Leader(leader) = &mut self.role else {
            return false;
        };
        if leader.locks.waits_for_txn(txn) {
            return true;
        }
        !blockers.is_empty() && older && leader.locks.park(Waiting::Prepare(entry.clone()), now_ms)
    }

    /// Ends the waits whose locks are free (and unclaimed) or whose time is up, in arrival
    /// order, proposing what they held: commands into the leader's pending queue, PREPAREs
    /// into its two-phase commit entries. Called on every tick and before every flush.
    pub(super) fn release_lock_waits(&mut self, now_ms: u64) {
        let Some((_, wait_ms)) = self.lock_policy() else {
            return;
        };
        let max_pending = self.cfg.max_pending_commands as usize;
        let dedup = !self.cfg.bugs.no_dedup();
        let bank = &self.bank;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let waits = &mut leader.locks;
        waits.released_ms = now_ms;
        if waits.queue.is_empty() && waits.claims.is_empty() {
            return;
        }
        let proposals = &leader.proposals;
        waits.settle_claims(now_ms, wait_ms, |who| match who {
            Claimant::Command(key) => !proposals.contains(*key),
            Claimant::Prepare(txn) => bank.prepared_here(txn),
        });
        let mut kept = VecDeque::with_capacity(waits.queue.len());
        while let Some(wait) = waits.queue.pop_front() {
            let (accounts, locks) = accounts_of(bank, &wait.what);
            let claimed = waits.claimed(&accounts);
            let locks = locks.cloned();
            let free = match &wait.what {
                Waiting::Command(c) => bank.lock_blockers(&c.op).is_empty(),
                Waiting::Prepare(TxnEntry::Prepare { txn, to, .. }) => {
                    bank.prepare_blockers(txn, to).is_empty()
                }
                Waiting::Prepare(_) => true,
            };
            // A clock that went back (a node's clock may jump) ends the wait too.
            let due = now_ms < wait.since_ms || now_ms - wait.since_ms >= wait_ms;
            if !(due || free && !claimed) {
                kept.push_back(wait);
                continue;
            }
            let claimant = match wait.what {
                Waiting::Command(command) => {
                    let key = key_of(&command);
                    match leader
                        .proposals
                        .enqueue(command.clone(), max_pending, dedup)
                    {
                        // The pending queue is full: wait on, or give up when due (the client's
                        // retry finds it free later; nothing was proposed).
                        Enqueued::Full if !due => {
                            kept.push_back(LockWait {
                                what: Waiting::Command(command),
                                since_ms: wait.since_ms,
                            });
                            continue;
                        }
                        Enqueued::Full => continue,
                        Enqueued::Queued | Enqueued::AlreadyProposed => Claimant::Command(key),
                    }
                }
                Waiting::Prepare(entry) => {
                    let txn = prepare_txn(&entry).copied();
                    leader.txn.push(entry);
                    match txn {
                        Some(txn) => Claimant::Prepare(txn),
                        None => continue,
                    }
                }
            };
            if let Some(account) = locks {
                waits.claims.insert(account, (claimant, now_ms));
            }
        }
        waits.queue = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ClientId, RequestId, ShardId};

    fn transfer(client: u64, request: u64) -> Command {
        Command {
            client: ClientId(client),
            request: RequestId(request),
            op: Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount: 1,
            },
        }
    }

    #[test]
    fn waits_are_bounded_and_found_by_request_and_transaction() {
        let mut waits = LockWaits::default();
        for r in 0..MAX_LOCK_WAITS as u64 {
            assert!(waits.park(Waiting::Command(transfer(1, r)), 0));
        }
        assert!(!waits.park(Waiting::Command(transfer(2, 1)), 0), "full");
        assert!(waits.waits_for_command((ClientId(1), RequestId(7))));
        assert!(!waits.waits_for_command((ClientId(2), RequestId(1))));
        let txn = TxnId {
            coordinator: ShardId(2),
            client: ClientId(3),
            request: RequestId(4),
        };
        assert!(!waits.waits_for_txn(&txn));
    }

    #[test]
    fn claims_end_when_their_entry_executed_or_after_the_bound() {
        let mut waits = LockWaits::default();
        let key = (ClientId(1), RequestId(1));
        waits
            .claims
            .insert("A".into(), (Claimant::Command(key), 100));
        waits.settle_claims(150, 100, |_| false);
        assert!(waits.claimed(&[&Account::from("A")]));
        waits.settle_claims(150, 100, |_| true);
        assert!(!waits.claimed(&[&Account::from("A")]));
        waits
            .claims
            .insert("A".into(), (Claimant::Command(key), 100));
        waits.settle_claims(200, 100, |_| false);
        assert!(!waits.claimed(&[&Account::from("A")]), "expired");
    }
}

#[cfg(test)]
mod invariant_tests {
    //! The lock-wait invariants (`invariants::check_lock_waits`), each broken by hand.
    use super::*;
    use crate::core::config::{CoreConfig, Sharding};
    use crate::core::wire::Recovered;
    use crate::types::{ClientId, NodeId, RequestId, ShardId};

    /// A one-replica shard 1 (accounts A–E) of a two-shard bank, leading.
    fn sharded_leader(policy: LockPolicy) -> Core {
        let mut cfg = CoreConfig::for_test(1, 1);
        cfg.sharding = Some(Sharding {
            shard: ShardId(1),
            others: BTreeMap::from([(ShardId(2), vec![NodeId(2)])]),
            remote: BTreeMap::from([("Z".into(), ShardId(2))]),
            vote_timeout_ms: 1_000,
            resend_interval_ms: 100,
            max_inflight_txns: 16,
            lock_policy: policy,
            lock_wait_ms: 250,
        });
        let mut core = Core::new(cfg, Recovered::default(), 7, 0).0;
        let mut out = Vec::new();
        for t in 1..100 {
            core.on_tick(t * 100, &mut out);
            core.flush(t * 100, &mut out);
            if core.is_leader() {
                return core;
            }
        }
        panic!("a one-replica shard elects itself")
    }

    fn park(core: &mut Core, what: Waiting, since_ms: u64) {
        let RoleState::Leader(leader) = &mut core.role else {
            panic!("not leading")
        };
        leader.locks.queue.push_back(LockWait { what, since_ms });
    }

    fn read(request: u64) -> Command {
        Command {
            client: ClientId(1),
            request: RequestId(request),
            op: Op::Read {
                account: "A".into(),
            },
        }
    }

    fn broken(core: &Core) -> &'static str {
        core.check_invariants().expect_err("broken").invariant
    }

    #[test]
    fn a_leader_with_a_fresh_wait_keeps_every_invariant() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        park(&mut core, Waiting::Command(read(1)), now);
        assert_eq!(core.check_invariants(), Ok(()));
    }

    #[test]
    fn a_wait_under_no_wait_is_caught() {
        let mut core = sharded_leader(LockPolicy::NoWait);
        park(&mut core, Waiting::Command(read(1)), 10_000);
        assert_eq!(broken(&core), "lock waits only under wait-die");
    }

    #[test]
    fn a_wait_past_its_bound_at_a_release_is_caught() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        park(
            &mut core,
            Waiting::Command(read(1)),
            now.saturating_sub(250),
        );
        assert_eq!(broken(&core), "lock waits end in time");
        // A release at the same time ends it (proposing the read).
        core.release_lock_waits(now);
        assert_eq!(core.check_invariants(), Ok(()));
        assert!(core.leader_locks().is_empty());
    }

    #[test]
    fn a_command_waiting_twice_or_also_proposed_is_caught() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        park(&mut core, Waiting::Command(read(1)), now);
        park(&mut core, Waiting::Command(read(1)), now);
        assert_eq!(broken(&core), "each waits once");
        let mut core = sharded_leader(LockPolicy::WaitDie);
        park(&mut core, Waiting::Command(read(2)), now);
        if let RoleState::Leader(leader) = &mut core.role {
            leader.proposals.enqueue(read(2), 64, true);
        }
        assert_eq!(broken(&core), "a waiting command is not proposed");
    }

    #[test]
    fn a_waiting_prepare_of_this_shards_own_transaction_is_caught() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        let own = TxnEntry::Prepare {
            txn: TxnId {
                coordinator: ShardId(1),
                client: ClientId(1),
                request: RequestId(1),
            },
            from: "Z".into(),
            to: "A".into(),
            amount: 1,
        };
        park(&mut core, Waiting::Prepare(own), now);
        assert_eq!(broken(&core), "waiting prepares are other shards'");
    }

    #[test]
    fn a_wait_parked_after_the_clock_went_back_keeps_the_invariants_and_ends_at_the_next_release() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        core.release_lock_waits(now + 1_000);
        // The clock jumps back 900 ms; a wait parked then counts from the last release.
        if let RoleState::Leader(leader) = &mut core.role {
            assert!(leader.locks.park(Waiting::Command(read(1)), now + 100));
        }
        assert_eq!(core.check_invariants(), Ok(()));
        core.release_lock_waits(now + 110);
        assert!(
            core.leader_locks().is_empty(),
            "ended: the clock is behind it"
        );
        assert_eq!(core.check_invariants(), Ok(()));
    }

    #[test]
    fn more_waits_than_the_bound_are_caught() {
        let mut core = sharded_leader(LockPolicy::WaitDie);
        let now = core.leader_locks().released_ms();
        for r in 0..=MAX_LOCK_WAITS as u64 {
            park(&mut core, Waiting::Command(read(r + 1)), now);
        }
        assert_eq!(broken(&core), "lock waits bounded");
    }

    impl Core {
        fn leader_locks(&self) -> &LockWaits {
            match &self.role {
                RoleState::Leader(leader) => &leader.locks,
                _ => panic!("not leading"),
            }
        }
    }
}
