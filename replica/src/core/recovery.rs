//! Starting a core, fresh or from what a previous run left on disk.
//!
//! The checkpoint gives the executed state up to its slot; the WAL records, replayed in order,
//! give the acceptor state above it: the highest promise, per slot the value accepted with the
//! highest ballot, and the commit point. Committed entries above the checkpoint are executed
//! again (the shell truncated its journal to the checkpoint's exec index), which emits their
//! `Executed` effects once more, so `new` returns effects as well as the core. A restarted
//! replica always starts as a backup: it never reuses a ballot it may have led with.

use super::clients::Waiters;
use super::effect::Effect;
use super::log::{Entry, Log};
use super::wire::{Checkpoint, Recovered, WalRecord};
use super::{Core, CoreConfig, RoleState};
use crate::types::{Ballot, Slot};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::sync::Arc;

impl Core {
    /// Builds a core from its config and what was recovered from disk (`Recovered::default()`
    /// for a fresh node), returning the effects of re-executing committed entries (`Executed`,
    /// possibly `Checkpoint`) for the shell to apply like any other burst.
    ///
    /// `seed` drives the election timeouts; it is mixed with the node id so that nodes given the
    /// same seed still draw different timeouts.
    ///
    /// Panics if the config is invalid (`CoreConfig::validate`): that is a local setup error,
    /// not input from the network.
    pub fn new(
        config: CoreConfig,
        recovered: Recovered,
        seed: u64,
        now_ms: u64,
    ) -> (Core, Vec<Effect>) {
        let mut recovery = Core::recover(config, recovered.checkpoint, seed, now_ms);
        for record in recovered.records {
            recovery.replay(record);
        }
        recovery.finish()
    }

    /// Starts recovering a core from its checkpoint; the WAL records then go to
    /// [`Recovery::replay`] one by one as the shell reads them, and [`Recovery::finish`] gives
    /// what [`Core::new`] gives. So a restart never holds the whole WAL in memory, only the
    /// log entries above the checkpoint.
    pub fn recover(
        config: CoreConfig,
        checkpoint: Option<Checkpoint>,
        seed: u64,
        now_ms: u64,
    ) -> Recovery {
        if let Err(e) = config.validate() {
            panic!("invalid core config: {e}");
        }
        let mut bank = config.new_bank();
        config.bugs.plant_in(&mut bank);
        let mixed = seed ^ u64::from(config.me.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let max_waiters = config.max_pending_commands as usize;
        let mut core = Core {
            rng: SmallRng::seed_from_u64(mixed),
            promised: Ballot::ZERO,
            log: Log::default(),
            commit: Slot(0),
            bank: super::invariants::Watched::new(bank),
            executed: Slot(0),
            checkpoint: None,
            decided_ballot: Ballot::ZERO,
            role: RoleState::Backup,
            leader: None,
            election_deadline_ms: 0,
            known_commit: Slot(0),
            catchup_retry_ms: None,
            leader_heard_ms: None,
            prevote: None,
            snapshot_parts: None,
            waiters: Waiters::new(max_waiters),
            views: VecDeque::new(),
            cfg: config,
        };
        core.reset_election_timer(now_ms);
        if let Some(checkpoint) = checkpoint {
            core.restore_checkpoint(checkpoint);
        }
        Recovery {
            core,
            commit_hint: Slot(0),
        }
    }

    /// Takes over a checkpoint found on disk (no effects: it is already there).
    fn restore_checkpoint(&mut self, checkpoint: Checkpoint) {
        if !self.checkpoint_fits(&checkpoint) {
            tracing::error!(node = %self.me(), "checkpoint on disk does not match the accounts; ignoring it");
            return;
        }
        *self.bank = checkpoint.bank.clone();
        self.cfg.bugs.plant_in(&mut self.bank);
        self.log.truncate_through(checkpoint.slot);
        self.executed = checkpoint.slot;
        self.commit = checkpoint.slot;
        self.promised = self.promised.max(checkpoint.ballot);
        self.decided_ballot = checkpoint.ballot;
        self.checkpoint = Some(Arc::new(checkpoint));
    }

    /// Replays one WAL record; returns the commit point it records, if any.
    fn replay_record(&mut self, record: WalRecord) -> Option<Slot> {
        match record {
            WalRecord::Promised(ballot) => self.promised = self.promised.max(ballot),
            WalRecord::Accepted {
                slot,
                ballot,
                value,
            } => {
                self.promised = self.promised.max(ballot);
                if slot > self.log.base() && self.log.get(slot).is_none_or(|e| e.ballot <= ballot) {
                    let entry = Entry {
                        ballot,
                        value,
                        committed: false,
                    };
                    self.log.insert(slot, entry);
                }
            }
            WalRecord::Committed { upto } => return Some(upto),
        }
        None
    }

    /// Moves the commit point over recovered committed entries without persisting it again.
    fn advance_commit_quietly(&mut self) {
        self.commit = self.log.committed_prefix_end(self.commit);
        self.known_commit = self.commit;
    }
}

/// A core being rebuilt from disk: see [`Core::recover`].
pub struct Recovery {
    core: Core,
    /// The highest commit point the WAL recorded so far.
    commit_hint: Slot,
}

impl Recovery {
    /// Replays the next WAL record (in file order).
    pub fn replay(&mut self, record: WalRecord) {
        if let Some(upto) = self.core.replay_record(record) {
            self.commit_hint = self.commit_hint.max(upto);
        }
    }

    /// Replays the next WAL record from its postcard bytes. A value accepted in a slot the
    /// checkpoint already covers is never decoded: only its ballot counts (as a promise), which
    /// is all [`Recovery::replay`] would take from it. A WAL is compacted only past
    /// `WAL_COMPACT_BYTES`, so most of a restarted replica's records are such.
    pub fn replay_encoded(&mut self, bytes: &[u8]) -> Result<(), postcard::Error> {
        /// The first fields of a [`WalRecord`], variant for variant.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        enum Head {
            Promised(Ballot),
            Accepted { slot: Slot, ballot: Ballot },
            Committed { upto: Slot },
        }
        if let Ok((Head::Accepted { slot, ballot }, _)) = postcard::take_from_bytes::<Head>(bytes) {
            if slot <= self.core.log.base() {
                self.replay(WalRecord::Promised(ballot));
                return Ok(());
            }
        }
        self.replay(postcard::from_bytes(bytes)?);
        Ok(())
    }

    /// Ends the replay: re-executes the committed entries above the checkpoint and returns the
    /// core with the effects of that (`Executed`, possibly `Checkpoint`).
    pub fn finish(self) -> (Core, Vec<Effect>) {
        let Recovery {
            mut core,
            commit_hint,
        } = self;
        let mut out = Vec::new();
        core.log.mark_committed_upto(commit_hint);
        core.advance_commit_quietly();
        core.execute_committed(&mut out);
        core.assert_invariants("recovery");
        (core, out)
    }
}
