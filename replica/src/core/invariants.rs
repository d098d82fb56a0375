//! The core's invariants as code: checked after every input in test builds.
//!
//! Why: the module docs of `core` state what the handlers keep; a checker that finds the damage
//! after a run says only that something went wrong, long after and far from where. Checked at
//! the end of every handler, a broken invariant stops the simulator inside the transition that
//! broke it, naming the invariant and the input (TigerBeetle's replica asserts the same way).
//!
//! When: in debug builds and wherever the `invariants` feature is on (the `bugs` feature, which
//! the simulator and `replica-bugs` carry, turns it on), so `harness sim` checks them in release
//! too; the shipped `replica` pays nothing. A core with a planted bug is not checked: planted bugs
//! break invariants on purpose, and the zoo measures whether the checker finds the damage.
//!
//! Each check is cheap (a few comparisons, one range lookup in the log, one pass over the lock
//! table of a sharded bank and over a leader's lock waits), because it runs after every message.
//! The walk of the bank's lock table, the dearest, runs only after an input that could have
//! changed the bank: the core holds its bank in a [`Watched`], which notes every mutable borrow,
//! so a message that only moves the log (an ACCEPT, a heartbeat) skips it. Nothing is lost: a
//! table that passed and was not touched since would pass again. [`Core::check_invariants`]
//! still checks everything.

use super::{Bugs, Core, RoleState};
use crate::types::Slot;
use std::ops::{Deref, DerefMut};

/// Whether this build checks invariants after every input.
pub(super) const CHECKED: bool = cfg!(any(debug_assertions, feature = "invariants"));

/// A broken invariant: its name and what the state held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub invariant: &'static str,
    pub detail: String,
}

impl Core {
    /// Panics, naming the invariant and `handler`, if the state breaks one of the invariants of
    /// the module docs. `handler` names the input just handled (e.g. `on_message(Accept)`).
    pub(super) fn assert_invariants(&mut self, handler: &str) {
        self.assert_invariants_after(|| handler.to_string());
    }

    /// [`Core::assert_invariants`] naming the input only when one is broken (no allocation
    /// per message otherwise). The bank's invariants are checked only if the bank was borrowed
    /// mutably since they last held (see the module docs).
    pub(super) fn assert_invariants_after(&mut self, handler: impl FnOnce() -> String) {
        if !CHECKED || self.cfg.bugs != Bugs::default() {
            return;
        }
        let bank_touched = Watched::take_touched(&mut self.bank);
        let checked = self.check_protocol().and_then(|()| match bank_touched {
            true => self.check_bank(),
            false => Ok(()),
        });
        if let Err(broken) = checked {
            panic!(
                "invariant `{}` broken by {} on {}: {}",
                broken.invariant,
                handler(),
                self.me(),
                broken.detail
            );
        }
    }

    /// The first broken invariant, if any (see the module docs of `core`).
    pub fn check_invariants(&self) -> Result<(), Broken> {
        self.check_protocol()?;
        self.check_bank()
    }

    /// The invariants of the protocol state: ballots, slots, bounds and lock waits.
    fn check_protocol(&self) -> Result<(), Broken> {
        self.check_ballots()?;
        self.check_slots()?;
        self.check_bounds()?;
        self.check_lock_waits()
    }

    /// The bank's own: its lock table matches the transactions in flight.
    fn check_bank(&self) -> Result<(), Broken> {
        self.bank.check_lock_table().map_err(|detail| Broken {
            invariant: "locks match transactions",
            detail,
        })
    }

    /// Every decided value was accepted at or below the promise (`adopt`); a leader or
    /// candidate works in exactly the ballot it promised (a higher one made it step down).
    fn check_ballots(&self) -> Result<(), Broken> {
        ensure(
            self.decided_ballot <= self.promised,
            "decided ballot <= promised",
            || {
                format!(
                    "decided {} > promised {}",
                    self.decided_ballot, self.promised
                )
            },
        )?;
        let own = match &self.role {
            RoleState::Backup => None,
            RoleState::Candidate(c) => Some(c.ballot),
            RoleState::Leader(l) => Some(l.ballot),
        };
        match own {
            Some(ballot) => ensure(ballot == self.promised, "own ballot == promised", || {
                format!("{:?} in {ballot}, promised {}", self.role(), self.promised)
            }),
            None => Ok(()),
        }
    }

    /// checkpoint <= executed <= commit, and the commit point is backed by entries present
    /// here (in the log or the checkpoint).
    fn check_slots(&self) -> Result<(), Broken> {
        let (base, executed, commit) = (self.log.base(), self.executed, self.commit);
        ensure(base <= executed, "checkpoint <= executed", || {
            format!("checkpoint {base} > executed {executed}")
        })?;
        ensure(executed <= commit, "executed <= commit", || {
            format!("executed {executed} > commit {commit}")
        })?;
        let present = commit <= base || self.log.get(commit).is_some();
        ensure(present, "commit point present", || {
            format!("commit {commit} above checkpoint {base} has no entry here")
        })
    }

    /// No entry beyond the window above the executed slot (the view merge relies on it), and
    /// PrintView's memory stays bounded.
    fn check_bounds(&self) -> Result<(), Broken> {
        let last_allowed = self.executed.plus(self.cfg.window());
        // The highest slot is beyond if any is (a lookup at the end, not a range search).
        let beyond: Option<Slot> = self.log.last_slot().filter(|&s| s > last_allowed);
        ensure(beyond.is_none(), "log within window", || {
            format!(
                "entry at {} beyond executed {} + window {}",
                beyond.unwrap_or(last_allowed),
                self.executed,
                self.cfg.window()
            )
        })?;
        ensure(
            self.views.len() <= super::MAX_VIEWS,
            "views bounded",
            || format!("{} views remembered", self.views.len()),
        )
    }
}

impl Core {
    /// The leader's lock waits (`locks`): only under wait-die, bounded, none older than the
    /// longest wait at the last release, each command or transaction waiting once and never
    /// while also queued or proposed, and only PREPAREs of transactions other shards
    /// coordinate.
    fn check_lock_waits(&self) -> Result<(), Broken> {
        let RoleState::Leader(leader) = &self.role else {
            return Ok(());
        };
        let waits = &leader.locks;
        if waits.is_empty() {
            return Ok(());
        }
        let sharding = self.cfg.sharding.as_ref();
        let policy = sharding.map(|s| s.lock_policy);
        ensure(
            policy == Some(super::config::LockPolicy::WaitDie),
            "lock waits only under wait-die",
            || format!("{} waits under {policy:?}", waits.len()),
        )?;
        ensure(
            waits.len() <= super::locks::MAX_LOCK_WAITS,
            "lock waits bounded",
            || format!("{} waits", waits.len()),
        )?;
        let wait_ms = sharding.map_or(0, |s| s.lock_wait_ms);
        let mut commands = std::collections::BTreeSet::new();
        let mut txns = std::collections::BTreeSet::new();
        for wait in waits.iter() {
            let end = wait.since_ms.saturating_add(wait_ms);
            ensure(end > waits.released_ms(), "lock waits end in time", || {
                format!(
                    "{:?} waiting since {} ms, past {wait_ms} ms at the release at {} ms",
                    wait.what,
                    wait.since_ms,
                    waits.released_ms()
                )
            })?;
            let once = match &wait.what {
                super::locks::Waiting::Command(c) => {
                    let key = super::clients::key_of(c);
                    ensure(
                        !leader.proposals.contains(key),
                        "a waiting command is not proposed",
                        || format!("{c:?} waits and is queued or proposed"),
                    )?;
                    commands.insert(key)
                }
                super::locks::Waiting::Prepare(crate::bank::TxnEntry::Prepare { txn, .. }) => {
                    let foreign = sharding.is_some_and(|s| s.shard != txn.coordinator);
                    ensure(foreign, "waiting prepares are other shards'", || {
                        format!("{txn:?} waits here")
                    })?;
                    txns.insert(*txn)
                }
                super::locks::Waiting::Prepare(other) => {
                    return Err(Broken {
                        invariant: "waiting prepares are other shards'",
                        detail: format!("{other:?} waits"),
                    })
                }
            };
            ensure(once, "each waits once", || {
                format!("{:?} waits twice", wait.what)
            })?;
        }
        Ok(())
    }
}

/// A value that notes every mutable borrow (through `DerefMut`), so that the invariants over
/// it are checked again only after it may have changed. It starts touched.
pub(super) struct Watched<T> {
    value: T,
    touched: bool,
}

impl<T> Watched<T> {
    pub fn new(value: T) -> Watched<T> {
        Watched {
            value,
            touched: true,
        }
    }

    /// Whether it was borrowed mutably since the last call (an associated function, so that
    /// it never shadows a method of `T`).
    pub fn take_touched(this: &mut Watched<T>) -> bool {
        std::mem::take(&mut this.touched)
    }
}

impl<T> Deref for Watched<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Watched<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.touched = true;
        &mut self.value
    }
}

fn ensure(
    holds: bool,
    invariant: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), Broken> {
    if holds {
        Ok(())
    } else {
        Err(Broken {
            invariant,
            detail: detail(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Each invariant broken by hand in an otherwise healthy core, as a bug would break it.
    use super::super::log::Entry;
    use super::super::wire::{Recovered, Value};
    use super::super::{Core, CoreConfig};
    use crate::types::{Ballot, NodeId, Slot};

    fn core() -> Core {
        Core::new(CoreConfig::for_test(1, 3), Recovered::default(), 7, 0).0
    }

    fn broken(core: &Core) -> &'static str {
        core.check_invariants()
            .expect_err("an invariant is broken")
            .invariant
    }

    #[test]
    fn a_fresh_core_keeps_every_invariant() {
        assert_eq!(core().check_invariants(), Ok(()));
    }

    #[test]
    fn a_decided_ballot_above_the_promise_is_caught() {
        let mut core = core();
        core.decided_ballot = Ballot {
            round: 3,
            node: NodeId(2),
        };
        assert_eq!(broken(&core), "decided ballot <= promised");
    }

    #[test]
    fn execution_ahead_of_the_commit_point_is_caught() {
        let mut core = core();
        core.executed = Slot(1);
        assert_eq!(broken(&core), "executed <= commit");
    }

    #[test]
    fn a_commit_point_over_a_missing_entry_is_caught() {
        let mut core = core();
        core.commit = Slot(1);
        core.executed = Slot(1);
        assert_eq!(broken(&core), "commit point present");
    }

    #[test]
    fn an_entry_beyond_the_window_is_caught() {
        let mut core = core();
        let beyond = Slot(0).plus(core.cfg.window() + 1);
        let entry = Entry {
            ballot: Ballot::ZERO,
            value: Value::Noop,
            committed: false,
        };
        core.log.insert(beyond, entry);
        assert_eq!(broken(&core), "log within window");
    }

    // A release build without the `invariants` feature does not check them (see CHECKED).
    #[test]
    #[cfg(any(debug_assertions, feature = "invariants"))]
    #[should_panic(expected = "invariant `executed <= commit` broken by on_tick on n1")]
    fn a_handler_that_breaks_an_invariant_stops_naming_it_and_itself() {
        let mut core = core();
        core.executed = Slot(1);
        core.on_tick(1, &mut Vec::new());
    }

    /// The lock table's walk is skipped only while the bank is untouched: any mutable borrow
    /// of it (executing, installing a checkpoint) has the next input check it again.
    #[test]
    fn the_bank_is_checked_again_after_any_mutable_borrow() {
        use super::Watched;
        let mut bank = Watched::new(0u32);
        assert!(Watched::take_touched(&mut bank), "a new value is unchecked");
        assert!(!Watched::take_touched(&mut bank));
        assert_eq!(*bank + 1, 1, "reading does not touch");
        assert!(!Watched::take_touched(&mut bank));
        *bank += 1;
        assert!(Watched::take_touched(&mut bank));
        let mut core = core();
        assert!(
            !Watched::take_touched(&mut core.bank),
            "recovery checked it"
        );
        let _borrowed: &mut crate::bank::Bank = &mut core.bank;
        assert!(Watched::take_touched(&mut core.bank));
        let _borrowed: &mut crate::bank::Bank = &mut core.bank;
        core.on_tick(1, &mut Vec::new());
        assert!(
            !Watched::take_touched(&mut core.bank),
            "the tick checked it"
        );
    }

    #[test]
    fn a_core_with_a_planted_bug_is_not_stopped() {
        let mut cfg = CoreConfig::for_test(1, 3);
        cfg.bugs.no_dedup = true;
        let mut core = Core::new(cfg, Recovered::default(), 7, 0).0;
        core.executed = Slot(1);
        core.on_tick(1, &mut Vec::new());
    }
}
