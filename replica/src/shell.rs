//! The shell's logic, written once for both worlds: it turns the core's effects into WAL
//! appends, fsyncs, journal writes, checkpoints, sends and client replies.
//!
//! Why a separate piece: `replica run` (the tokio/quinn `server`) and the deterministic
//! simulator (the `sim` crate) must run the *same* durability code, or a simulated crash tests
//! something that never ships. So the shell is synchronous and knows nothing of sockets or
//! clocks: the caller passes the time in, plugs a file system ([`crate::storage::Fs`]) under
//! the storage, and receives sends and replies through [`ShellIo`].
//!
//! One burst goes: feed inputs (`on_peer`, `on_client`, `on_tick`), then [`Shell::finish_burst`],
//! which flushes the core and carries out its effects in the order `core::effect` demands:
//! non-vote sends first, then every `Persist` and `Checkpoint` under ONE fsync, then votes and
//! replies. Any storage error stops the burst before a vote or a reply leaves; the caller must
//! then stop the replica (after a failed fsync nothing written since the last good one can be
//! trusted), never carry on.
//!
//! The disk work that backs no vote or reply of its burst comes after them: the WAL's idle
//! confirm (a mark vouching for votes an earlier fsync already made durable) and the
//! superblock (a record of lengths already durable, allowed to lag). Neither may delay a reply
//! it does not back, and the confirm waits until the WAL has been idle for
//! [`CONFIRM_IDLE_MS`]: under load the next burst's own mark vouches for the votes at no cost,
//! so an fsync that backs nothing never sits between one burst and the next.

use crate::bank::Executed;
use crate::client_proto::{ClientRequest, ClientResponse};
use crate::core::{Checkpoint, Core, CoreConfig, Effect, PeerMsg, ReplyToken, WalRecord};
use crate::storage::superblock::{Missing, SUPERBLOCK_INTERVAL_MS};
use crate::storage::{
    self, FsRef, Journal, JournalLimits, StorageError, SuperblockWriter, Wal,
    DEFAULT_MAX_RECORD_BYTES,
};
use crate::types::{ExecIndex, NodeId};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A WAL idle this long after its last fsync of votes confirms them (see the module docs).
pub const CONFIRM_IDLE_MS: u64 = 5;

/// Past this size the WAL is rewritten with only what the core still needs.
pub const WAL_COMPACT_BYTES: u64 = 32 * 1024 * 1024;
/// Most entries one FetchExecuted / PrintLog answer carries.
pub const MAX_PAGE_ENTRIES: u32 = 10_000;

/// Where sends and replies go, and who watches what executes.
pub trait ShellIo {
    fn send(&mut self, to: NodeId, msg: PeerMsg);
    fn reply(&mut self, token: ReplyToken, response: ClientResponse);
    /// Sees every executed entry as it is appended to the journal (the simulator checks
    /// agreement across replicas with it, and keeps the entry: it is handed over, not
    /// copied). The real server ignores it.
    fn executed(&mut self, _entry: Executed) {}
}

/// Everything the shell needs to open a replica's disk and start its core.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    pub core: CoreConfig,
    pub data_dir: PathBuf,
    /// Seed of the core's randomness (election timeouts).
    pub seed: u64,
    /// Off only for benchmarks that measure the network alone.
    pub fsync: bool,
    /// Planted bug `forget-promises`: acceptor state never reaches the disk.
    pub forget_promises: bool,
    /// Planted bug `misread-log`: recovery misreads its own WAL frames, takes the whole log
    /// for a torn tail, cuts it to nothing and trusts the cut (see [`misread_log`]).
    pub misread_log: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{context}: {cause}")]
    Storage {
        context: &'static str,
        cause: StorageError,
    },
    #[error(
        "the checkpoint in {dir} holds accounts {found:?}, but the cluster config names \
         {expected:?}: refusing to start with state that belongs to another configuration"
    )]
    CheckpointMismatch {
        dir: PathBuf,
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error(transparent)]
    Missing(#[from] Missing),
}

fn storage(context: &'static str) -> impl FnOnce(StorageError) -> ShellError {
    move |cause| ShellError::Storage { context, cause }
}

/// PLANTED BUG `misread-log`: a recovery that reads each frame's length from its checksum
/// field finds the first frame running past the end of the file, takes the whole WAL for a
/// torn tail and cuts it to nothing, durably; [`Shell::open`] then trusts the cut instead of
/// the superblock, so the replica restarts as a fresh acceptor that forgot its promises and
/// accepted values. It leaves an empty WAL behind a disk that once vouched for more (the
/// simulator must not trip over that), and the checker must see the damage.
fn misread_log(fs: &dyn storage::Fs, dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(storage::wal::WAL_FILE);
    if !fs.exists(&path).map_err(StorageError::io("stat", &path))? {
        return Ok(());
    }
    let file = fs
        .open(&path, storage::OpenMode::ReadWriteCreate)
        .map_err(StorageError::io("open", &path))?;
    file.set_len(0)
        .map_err(StorageError::io("truncate", &path))?;
    file.sync_all().map_err(StorageError::io("fsync", &path))
}

/// One replica's shell state: its core and its disk.
pub struct Shell {
    core: Core,
    me: NodeId,
    fs: FsRef,
    wal: Wal<WalRecord>,
    journal: Journal,
    data_dir: PathBuf,
    forget_promises: bool,
    /// Votes were fsynced and no synced-length mark after them is durable yet.
    votes_unvouched: bool,
    /// When the WAL was last fsynced with votes in it (the shell's clock).
    votes_synced_ms: u64,
    superblock: SuperblockWriter,
    /// When the superblock was last written (the shell's clock).
    superblock_ms: u64,
    /// The slot of the newest checkpoint in place.
    checkpoint_slot: u64,
}

impl Shell {
    /// Recovers the replica from `config.data_dir` on `fs` and starts its core at `now_ms`.
    /// The effects of re-executing committed entries are carried out through `io`.
    pub fn open(
        fs: FsRef,
        config: &ShellConfig,
        now_ms: u64,
        io: &mut dyn ShellIo,
    ) -> Result<Shell, ShellError> {
        let dir = &config.data_dir;
        let me = config.core.me;
        storage::ensure_dir(&*fs, dir).map_err(storage("cannot create the data directory"))?;
        // A planted bug: compiled out of builds without the `bugs` feature.
        let misread = cfg!(feature = "bugs") && config.misread_log;
        if misread {
            misread_log(&*fs, dir).map_err(storage("cannot cut the write-ahead log"))?;
        }
        let checkpoint: Option<Checkpoint> = storage::read_checkpoint_in(&*fs, dir)
            .map_err(storage("cannot read the checkpoint"))?;
        if let Some(checkpoint) = &checkpoint {
            check_accounts(dir, checkpoint, &config.core)?;
        }
        let checkpoint_slot = checkpoint.as_ref().map(|c| c.slot.0);
        let checkpoint_exec = checkpoint.as_ref().map_or(0, |c| c.bank.exec_index());
        // The WAL is replayed as it is read (a bounded buffer), never loaded whole.
        let mut recovery = Core::recover(config.core.clone(), checkpoint, config.seed, now_ms);
        let mut records = 0u64;
        let (mut wal, torn) = Wal::<WalRecord>::open_streaming_encoded(
            fs.clone(),
            dir,
            DEFAULT_MAX_RECORD_BYTES,
            &mut |bytes| {
                records += 1;
                recovery.replay_encoded(bytes).map_err(|e| e.to_string())
            },
        )
        .map_err(storage("cannot open the write-ahead log"))?;
        if let Some(torn) = torn {
            tracing::warn!(node = %me, ?torn, "cut a torn tail off the write-ahead log");
        }
        wal.set_fsync(config.fsync);
        let recorded = storage::read_superblock_in(&*fs, dir)
            .map_err(storage("cannot read the superblock"))?;
        if let Some(recorded) = recorded.filter(|_| !misread) {
            recorded.check(dir, wal.path(), wal.size_bytes(), checkpoint_slot)?;
        }
        let mut superblock = SuperblockWriter::open_in(&fs, dir, recorded, config.fsync)
            .map_err(storage("cannot open the superblock"))?;
        let checkpoint_slot = checkpoint_slot.unwrap_or(0);
        superblock
            .write(wal.synced_len(), checkpoint_slot)
            .map_err(storage("cannot write the superblock"))?;
        let journal = open_journal(&fs, dir, checkpoint_exec, me)?;
        tracing::info!(
            node = %me,
            records,
            checkpoint_exec,
            "recovered state from {}",
            dir.display()
        );
        let (core, effects) = recovery.finish();
        let mut shell = Shell {
            core,
            me,
            fs,
            wal,
            journal,
            data_dir: dir.clone(),
            // A planted bug: compiled out of builds without the `bugs` feature.
            forget_promises: cfg!(feature = "bugs") && config.forget_promises,
            votes_unvouched: false,
            votes_synced_ms: now_ms,
            superblock,
            superblock_ms: now_ms,
            checkpoint_slot,
        };
        shell.carry_out(now_ms, effects, io)?;
        Ok(shell)
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn on_peer(&mut self, now_ms: u64, from: NodeId, msg: PeerMsg, out: &mut Vec<Effect>) {
        self.core.on_message(now_ms, from, msg, out);
    }

    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.core.on_tick(now_ms, out);
    }

    /// A client submitted `command`; the answer comes as a `Reply` for `token`.
    pub fn on_client(
        &mut self,
        now_ms: u64,
        token: ReplyToken,
        command: crate::bank::Command,
        out: &mut Vec<Effect>,
    ) {
        self.core.on_client(now_ms, token, command, out);
    }

    /// Ends a burst: flushes the core and carries out every effect of the burst.
    pub fn finish_burst(
        &mut self,
        now_ms: u64,
        out: Vec<Effect>,
        io: &mut dyn ShellIo,
    ) -> Result<(), ShellError> {
        let burst = self.start_burst(now_ms, out, io);
        self.end_burst(burst, io)
    }

    /// [`Shell::finish_burst`]'s first half: flushes the core and sends what need not wait
    /// for the disk (requests to peers). A caller whose sockets are served by the thread that
    /// is about to block in the fsync lets them go out in between (`server`); the simulator
    /// calls `finish_burst`, which is the same two halves back to back.
    pub fn start_burst(
        &mut self,
        now_ms: u64,
        mut out: Vec<Effect>,
        io: &mut dyn ShellIo,
    ) -> Burst {
        self.core.flush(now_ms, &mut out);
        Burst::send_ahead(now_ms, out, io)
    }

    /// [`Shell::finish_burst`]'s second half: the disk under one fsync, then votes and
    /// replies, then the disk work that backs none of them.
    pub fn end_burst(&mut self, burst: Burst, io: &mut dyn ShellIo) -> Result<(), ShellError> {
        self.carry_out_rest(burst, io)
    }

    /// PrintDB, PrintLog, PrintStatus, PrintView, FetchExecuted, Status: answered from the
    /// core's and the journal's current state, never through the log. `Submit` and
    /// `ArmFailpoint` are not introspection requests; they are answered with an error here.
    pub fn introspect(&mut self, request: ClientRequest) -> ClientResponse {
        let node = self.me;
        match request {
            ClientRequest::PrintDb => {
                let (exec_index, balances) = self.core.balances();
                ClientResponse::Db {
                    node,
                    exec_index,
                    balances,
                }
            }
            ClientRequest::PrintLog {
                from_slot,
                max_entries,
            } => {
                let (checkpoint_slot, entries) = self
                    .core
                    .log_view(from_slot, max_entries.min(MAX_PAGE_ENTRIES));
                ClientResponse::Log {
                    node,
                    checkpoint_slot,
                    entries,
                }
            }
            ClientRequest::PrintStatus { slot } => ClientResponse::SlotStatus {
                node,
                slot,
                state: self.core.slot_state(slot),
            },
            ClientRequest::PrintView => ClientResponse::Views {
                node,
                views: self.core.views(),
            },
            ClientRequest::Status => ClientResponse::Status(self.core.status()),
            ClientRequest::FetchExecuted {
                from_exec_index,
                max_entries,
            } => self.fetch_executed(from_exec_index, max_entries),
            ClientRequest::Submit(_) => ClientResponse::Error {
                node,
                message: "a submit is not an introspection request".into(),
            },
            ClientRequest::ArmFailpoint { .. } => ClientResponse::Error {
                node,
                message: "failpoints are armed by `replica run` (replica-bugs), not here".into(),
            },
        }
    }

    fn fetch_executed(&mut self, from: u64, max_entries: u32) -> ClientResponse {
        let max = max_entries.min(MAX_PAGE_ENTRIES) as usize;
        // The caller kept everything below `from` (docs/client-protocol.md, FetchExecuted).
        let read = self
            .journal
            .release_below(from)
            .and_then(|()| self.journal.read(from.max(1), max));
        match read {
            Ok(entries) => ClientResponse::Executed {
                node: self.me,
                first_available: self.journal.first_available(),
                last: self.journal.last(),
                entries,
            },
            Err(e) => ClientResponse::Error {
                node: self.me,
                message: format!("cannot read the executed journal: {e}"),
            },
        }
    }

    /// Carries out one burst's effects: requests to peers first, then the disk under one fsync,
    /// then votes and client replies (see the core's `Effect` contract).
    fn carry_out(
        &mut self,
        now_ms: u64,
        effects: Vec<Effect>,
        io: &mut dyn ShellIo,
    ) -> Result<(), ShellError> {
        let burst = Burst::send_ahead(now_ms, effects, io);
        self.carry_out_rest(burst, io)
    }

    /// Everything of a burst after its requests to peers left (see [`Shell::carry_out`]).
    fn carry_out_rest(&mut self, burst: Burst, io: &mut dyn ShellIo) -> Result<(), ShellError> {
        let Burst {
            now_ms,
            mut effects,
            ..
        } = burst;
        let mut wrote_wal = false;
        let mut took_checkpoint = false;
        for slot in effects.iter_mut() {
            if let Some(Effect::Executed(_)) = slot {
                // Appended, then handed to `io` (nothing after this loop needs it).
                let Some(Effect::Executed(executed)) = slot.take() else {
                    unreachable!("matched just above")
                };
                let appended = self.journal.append(&executed);
                io.executed(executed);
                appended.map_err(storage("cannot append to the executed journal"))?;
                continue;
            }
            let Some(effect) = slot.as_ref() else {
                continue;
            };
            match effect {
                Effect::Persist(record) if !self.forget_promises => {
                    self.wal
                        .append(record)
                        .map_err(storage("cannot append to the write-ahead log"))?;
                    // A commit point is a hint (it can be learned again from the leader), so
                    // it rides along with the next fsync instead of costing one before the
                    // replies of the burst that committed.
                    wrote_wal |= !matches!(record, WalRecord::Committed { .. });
                }
                Effect::Persist(_) => {}
                Effect::Checkpoint(checkpoint) => {
                    // A checkpoint must never be ahead of the journal on disk, even after a
                    // power cut: a journal that ends before the checkpoint's exec index could
                    // not be refilled.
                    self.journal
                        .sync()
                        .map_err(storage("cannot sync the executed journal"))?;
                    storage::write_checkpoint_in(&*self.fs, &self.data_dir, &**checkpoint)
                        .map_err(storage("cannot write the checkpoint"))?;
                    self.journal
                        .note_checkpoint(checkpoint.bank.exec_index())
                        .map_err(storage("cannot compact the executed journal"))?;
                    self.checkpoint_slot = checkpoint.slot.0;
                    took_checkpoint = true;
                }
                Effect::Executed(_) => {}
                Effect::ResetJournal { next_exec_index } => self
                    .journal
                    .reset(*next_exec_index)
                    .map_err(storage("cannot reset the executed journal"))?,
                Effect::Send { .. } | Effect::Reply { .. } => {}
            }
        }
        self.journal
            .flush()
            .map_err(storage("cannot write the executed journal"))?;
        if wrote_wal {
            self.wal
                .sync()
                .map_err(storage("cannot sync the write-ahead log"))?;
            self.votes_unvouched = true;
            self.votes_synced_ms = now_ms;
        }
        if took_checkpoint && self.wal.size_bytes() > WAL_COMPACT_BYTES {
            self.compact_wal()?;
        }
        for effect in effects.into_iter().flatten() {
            match effect {
                Effect::Send { to, msg } => io.send(to, msg),
                Effect::Reply { token, response } => io.reply(token, response),
                _ => {}
            }
        }
        // What follows backs none of the sends and replies above (see the module docs).
        let idle = now_ms >= self.votes_synced_ms.saturating_add(CONFIRM_IDLE_MS);
        let confirmed = !wrote_wal && idle && std::mem::take(&mut self.votes_unvouched);
        if confirmed {
            // Vouch for the last burst's votes now, so a bit flip in them is refused on
            // restart rather than cut as a torn write.
            self.wal
                .confirm()
                .map_err(storage("cannot confirm the write-ahead log"))?;
        }
        let due = now_ms >= self.superblock_ms.saturating_add(SUPERBLOCK_INTERVAL_MS);
        let grew = self.wal.synced_len() > self.superblock.last().wal_len;
        if took_checkpoint || (grew && (confirmed || due)) {
            self.record_superblock(now_ms)?;
        }
        Ok(())
    }
}

impl Shell {
    /// Records in the superblock what is durable now (see `storage::superblock`).
    fn record_superblock(&mut self, now_ms: u64) -> Result<(), ShellError> {
        self.superblock
            .write(self.wal.synced_len(), self.checkpoint_slot)
            .map_err(storage("cannot write the superblock"))?;
        self.superblock_ms = now_ms;
        Ok(())
    }

    /// Rewrites the WAL with only what the core still needs. The superblock first stops
    /// vouching for the old file's length (the new file is shorter), then, once the new file
    /// is in place, `carry_out` records its length.
    fn compact_wal(&mut self) -> Result<(), ShellError> {
        self.superblock
            .write(0, self.checkpoint_slot)
            .map_err(storage("cannot write the superblock"))?;
        self.wal
            .rewrite(&self.core.durable_records())
            .map_err(storage("cannot compact the write-ahead log"))
    }
}

/// A burst between its two halves ([`Shell::start_burst`], [`Shell::end_burst`]): its
/// requests to peers have left, the rest waits for the disk.
pub struct Burst {
    now_ms: u64,
    effects: Vec<Option<Effect>>,
    sent_ahead: usize,
}

impl Burst {
    /// Releases the sends that need not wait for the fsync, taking them out of the effects.
    fn send_ahead(now_ms: u64, effects: Vec<Effect>, io: &mut dyn ShellIo) -> Burst {
        let mut effects: Vec<Option<Effect>> = effects.into_iter().map(Some).collect();
        let mut sent_ahead = 0;
        for slot in effects.iter_mut() {
            if matches!(slot, Some(Effect::Send { msg, .. }) if !msg.is_vote()) {
                if let Some(Effect::Send { to, msg }) = slot.take() {
                    io.send(to, msg);
                    sent_ahead += 1;
                }
            }
        }
        Burst {
            now_ms,
            effects,
            sent_ahead,
        }
    }

    /// How many messages left ahead of the disk work.
    pub fn sent_ahead(&self) -> usize {
        self.sent_ahead
    }
}

/// Refuses a checkpoint written for other accounts: the WAL was compacted past it, so
/// ignoring it would silently restart from less state than this replica acknowledged.
fn check_accounts(
    dir: &Path,
    checkpoint: &Checkpoint,
    config: &CoreConfig,
) -> Result<(), ShellError> {
    let found: BTreeSet<&crate::types::Account> = checkpoint.bank.balances().keys().collect();
    let expected: BTreeSet<&crate::types::Account> = config.accounts.iter().collect();
    if found == expected {
        return Ok(());
    }
    Err(ShellError::CheckpointMismatch {
        dir: dir.to_path_buf(),
        found: found.into_iter().map(ToString::to_string).collect(),
        expected: expected.into_iter().map(ToString::to_string).collect(),
    })
}

/// Opens the executed journal and cuts it back to the checkpoint, as the core's recovery
/// contract asks (re-execution refills the rest).
fn open_journal(
    fs: &FsRef,
    dir: &Path,
    checkpoint_exec: ExecIndex,
    me: NodeId,
) -> Result<Journal, ShellError> {
    let (mut journal, cuts) = Journal::open_in(fs.clone(), dir, JournalLimits::default())
        .map_err(storage("cannot open the executed journal"))?;
    for cut in cuts {
        tracing::warn!(
            node = %me,
            file = %cut.path.display(),
            offset = cut.offset,
            dropped_bytes = cut.dropped_bytes,
            reason = %cut.reason,
            "cut damage off the executed journal: {} from byte offset {}",
            cut.path.display(),
            cut.offset
        );
    }
    journal
        .truncate_after(checkpoint_exec)
        .map_err(storage("cannot truncate the executed journal"))?;
    if journal.next_exec_index() <= checkpoint_exec {
        // Killed between installing a snapshot and resetting the journal, or damage cut it:
        // the entries up to the checkpoint are not known here, so the journal goes on after
        // it, keeping what it holds.
        tracing::warn!(
            node = %me,
            journal_next = journal.next_exec_index(),
            checkpoint_exec,
            "the executed journal ends before the checkpoint; continuing it after the checkpoint"
        );
        journal
            .restart_at(checkpoint_exec + 1)
            .map_err(storage("cannot restart the executed journal"))?;
    }
    journal
        .note_checkpoint(checkpoint_exec)
        .map_err(storage("cannot compact the executed journal"))?;
    Ok(journal)
}
