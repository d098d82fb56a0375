//! The executed journal: every command this replica executed, in exec-index order.
//!
//! It is what the replica reports as its executed log (`FetchExecuted`, the harness's
//! `final.json`). It is derived state, rebuilt by re-execution after a restart, so it is only
//! fsynced before a checkpoint (the entries below a checkpoint cannot be rebuilt): on restart
//! the shell cuts it back to the checkpoint's exec index ([`Journal::truncate_after`]) and
//! re-execution appends the rest again.
//!
//! On disk it is a directory, `journal/`, of *segment* files named after the exec index they
//! start at (`journal/00000000000000000001.log`). Each is a sequence of frames (see
//! [`super::frame`]): a `Start` record naming its first exec index, then one `Entry` per
//! executed command with contiguous exec indices. Only the newest segment is appended to; once
//! it holds [`JournalLimits::segment_entries`] entries a new one starts. Segments buy two
//! things:
//!
//! - **Damage stays local.** A power cut may keep any subset of unsynced pages and a disk may
//!   flip a byte anywhere. Each segment is recovered on its own: damage cuts that segment at
//!   the damaged record (reported with the file and byte offset), and the segments after it
//!   survive. The journal then has a *hole*; a read never crosses one, so `FetchExecuted`
//!   answers stay contiguous and the next answer starts after the hole.
//! - **The journal is bounded.** Whole segments at or below the checkpoint are deleted once a
//!   `FetchExecuted` asked from past them ([`Journal::release_below`]: the caller, the
//!   harness, kept them), and in any case once more than [`JournalLimits::retain_entries`]
//!   entries at or below the checkpoint are kept. Memory is an offset table of 8 bytes per
//!   kept entry, so it is bounded too.
//!
//! Appends are buffered. Call [`Journal::flush`] after each executed batch, and in any case
//! before writing a checkpoint: a SIGKILL loses the buffer, and a journal that ends before the
//! checkpoint's exec index cannot be refilled by re-execution.

use super::frame::{encode_into, recover, RecoverRules, HEADER_BYTES};
use super::{
    ensure_dir, fs, fsync_dir, FsFile, FsRef, OpenMode, StorageError, TornTail,
    DEFAULT_MAX_RECORD_BYTES,
};
use crate::bank::Executed;
use crate::types::ExecIndex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The journal's directory inside the data directory.
pub const JOURNAL_DIR: &str = "journal";
/// The single-file journal of earlier versions; moved into [`JOURNAL_DIR`] on open.
pub const LEGACY_JOURNAL_FILE: &str = "journal.log";
const SEGMENT_SUFFIX: &str = ".log";

/// Buffered bytes beyond which `append` writes them out.
const WRITE_THRESHOLD_BYTES: usize = 64 * 1024;

/// Most bytes one `read` call loads (it returns fewer entries rather than more memory).
const READ_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

/// How big the journal may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalLimits {
    /// Entries per segment file: the most one damaged byte can cost.
    pub segment_entries: usize,
    /// Most entries at or below the checkpoint kept when nobody fetches them.
    pub retain_entries: u64,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            segment_entries: 4096,
            retain_entries: 1 << 20,
        }
    }
}

/// One frame of a segment file. Wire type: never reorder variants.
#[derive(Serialize, Deserialize)]
enum Record {
    Start(ExecIndex),
    Entry(Executed),
}

/// The borrowed form of [`Record`], encoded identically.
#[derive(Serialize)]
enum RecordRef<'a> {
    Start(ExecIndex),
    Entry(&'a Executed),
}

/// One segment file and where its entries are.
struct Segment {
    path: PathBuf,
    first: ExecIndex,
    /// `offsets[i]` is where the frame of exec index `first + i` begins.
    offsets: Vec<u64>,
    /// Bytes in the file (for the active segment: written, not counting the buffer).
    len: u64,
}

impl Segment {
    fn next(&self) -> ExecIndex {
        self.first + self.offsets.len() as u64
    }

    fn last(&self) -> ExecIndex {
        self.next() - 1
    }

    fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

pub struct Journal {
    fs: FsRef,
    dir: PathBuf,
    limits: JournalLimits,
    /// Older segments, oldest first; never empty of entries.
    sealed: VecDeque<Segment>,
    /// The segment appends go to.
    active: Segment,
    file: Box<dyn FsFile>,
    buf: Vec<u8>,
    /// Sealed segments (and the directory) written since the last [`Journal::sync`].
    unsynced: Vec<Box<dyn FsFile>>,
    dir_unsynced: bool,
    /// Exec index of the newest checkpoint: nothing above it is ever deleted.
    checkpoint_exec: ExecIndex,
    /// Entries below this were fetched by a `FetchExecuted` caller.
    released_below: ExecIndex,
    poisoned: bool,
}

impl Journal {
    /// Opens (or creates) `dir/journal/` on the machine's file system, cutting damage.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<TornTail>), StorageError> {
        Self::open_in(fs::real(), dir, JournalLimits::default())
    }

    /// Like [`Journal::open`] on the file system `fs` with `limits`. Returns every cut made:
    /// the file, the byte offset and why.
    pub fn open_in(
        fs: FsRef,
        data_dir: &Path,
        limits: JournalLimits,
    ) -> Result<(Journal, Vec<TornTail>), StorageError> {
        let dir = data_dir.join(JOURNAL_DIR);
        ensure_dir(&*fs, &dir)?;
        migrate_legacy(&*fs, data_dir, &dir)?;
        let mut cuts = Vec::new();
        let mut segments = load_segments(&*fs, &dir, &mut cuts)?;
        let (active, file) = match segments.pop_back() {
            Some(active) => {
                let file = open_rw(&*fs, &active.path, false)?;
                (active, file)
            }
            None => create_segment(&*fs, &dir, 1)?,
        };
        let journal = Journal {
            fs,
            dir,
            limits: JournalLimits {
                segment_entries: limits.segment_entries.max(1),
                ..limits
            },
            sealed: segments,
            active,
            file,
            buf: Vec::new(),
            unsynced: Vec::new(),
            dir_unsynced: true,
            checkpoint_exec: 0,
            released_below: 0,
            poisoned: false,
        };
        Ok((journal, cuts))
    }

    /// Appends the next executed entry; its exec index must be `next_exec_index()`.
    pub fn append(&mut self, entry: &Executed) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let expected = self.next_exec_index();
        if entry.exec_index != expected {
            return Err(StorageError::JournalGap {
                path: self.active.path.clone(),
                expected,
                got: entry.exec_index,
            });
        }
        if self.active.offsets.len() >= self.limits.segment_entries {
            self.start_segment(expected)?;
        }
        let offset = self.active.len + self.buf.len() as u64;
        encode_into(
            &mut self.buf,
            &RecordRef::Entry(entry),
            DEFAULT_MAX_RECORD_BYTES,
            &self.active.path,
        )?;
        self.active.offsets.push(offset);
        if self.buf.len() >= WRITE_THRESHOLD_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered entries to the file (no fsync: the journal is derived state).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        super::write_buffer_at(
            &*self.file,
            &self.active.path,
            &mut self.buf,
            &mut self.active.len,
            &mut self.poisoned,
        )
    }

    /// Writes buffered entries and fsyncs every segment written since the last sync. The shell
    /// calls it before every checkpoint: entries at or below a checkpoint cannot be rebuilt by
    /// re-execution, so they must not be lost to a power cut once the checkpoint exists.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        for sealed in std::mem::take(&mut self.unsynced) {
            super::sync_or_poison(&*sealed, &self.dir, &mut self.poisoned)?;
        }
        super::sync_or_poison(&*self.file, &self.active.path, &mut self.poisoned)?;
        if std::mem::take(&mut self.dir_unsynced) {
            fsync_dir(&*self.fs, &self.dir)?;
        }
        Ok(())
    }

    /// Drops every entry after `exec_index`. If that is before the first available entry, the
    /// journal restarts empty at `exec_index + 1` (re-execution from an older checkpoint will
    /// refill it).
    pub fn truncate_after(&mut self, exec_index: ExecIndex) -> Result<(), StorageError> {
        self.flush()?;
        if exec_index >= self.last() {
            return Ok(());
        }
        if exec_index < self.first_available() {
            return self.reset(exec_index.saturating_add(1));
        }
        while self.active.first > exec_index && self.drop_active()? {}
        if exec_index >= self.active.last() {
            // `exec_index` falls in a hole after the active segment: nothing left to cut.
            return Ok(());
        }
        let keep = (exec_index + 1 - self.active.first) as usize;
        let cut_at = self.active.offsets[keep];
        if let Err(e) = self.file.set_len(cut_at) {
            self.poisoned = true;
            return Err(StorageError::Io {
                op: "truncate",
                path: self.active.path.clone(),
                cause: e,
            });
        }
        self.active.len = cut_at;
        self.active.offsets.truncate(keep);
        Ok(())
    }

    /// Drops everything; the journal now starts at `next_exec_index` (after a snapshot install).
    pub fn reset(&mut self, next_exec_index: ExecIndex) -> Result<(), StorageError> {
        let next_exec_index = next_exec_index.max(1);
        self.buf.clear();
        self.unsynced.clear();
        // Newest first, so a crash half-way leaves a prefix of the old segments: still a
        // journal with no overlap.
        remove_file(&*self.fs, &self.active.path)?;
        while let Some(segment) = self.sealed.pop_back() {
            remove_file(&*self.fs, &segment.path)?;
        }
        let (active, file) = create_segment(&*self.fs, &self.dir, next_exec_index)?;
        fsync_dir(&*self.fs, &self.dir)?;
        self.active = active;
        self.file = file;
        self.poisoned = false;
        Ok(())
    }

    /// Continues the journal at `next_exec_index`, past a hole, keeping what it holds (the
    /// journal ended before the checkpoint: damage cut it, or a crash came between installing
    /// a snapshot and resetting the journal). No-op unless `next_exec_index` is past the end.
    pub fn restart_at(&mut self, next_exec_index: ExecIndex) -> Result<(), StorageError> {
        if next_exec_index <= self.next_exec_index() {
            return Ok(());
        }
        self.start_segment(next_exec_index)
    }

    /// Records the exec index of the newest checkpoint (everything up to it is synced) and
    /// deletes the segments below it that may go.
    pub fn note_checkpoint(&mut self, exec_index: ExecIndex) -> Result<(), StorageError> {
        self.checkpoint_exec = self.checkpoint_exec.max(exec_index);
        self.compact()
    }

    /// A `FetchExecuted` caller asked from `exec_index`: it kept everything below, so the
    /// segments below it (and below the checkpoint) may be deleted.
    pub fn release_below(&mut self, exec_index: ExecIndex) -> Result<(), StorageError> {
        self.released_below = self.released_below.max(exec_index);
        self.compact()
    }

    /// Deletes the oldest sealed segments while they are at or below the checkpoint and
    /// either fetched or beyond the retention bound.
    fn compact(&mut self) -> Result<(), StorageError> {
        let mut kept_below: u64 = self
            .sealed
            .iter()
            .filter(|s| s.last() <= self.checkpoint_exec)
            .map(|s| s.offsets.len() as u64)
            .sum();
        while let Some(oldest) = self.sealed.front() {
            let fetched = oldest.last() < self.released_below;
            let over = kept_below > self.limits.retain_entries;
            if oldest.last() > self.checkpoint_exec || !(fetched || over) {
                break;
            }
            if !fetched {
                tracing::info!(
                    file = %oldest.path.display(),
                    first = oldest.first,
                    last = oldest.last(),
                    "deleting executed-journal entries nobody fetched: more than {} entries \
                     below the checkpoint",
                    self.limits.retain_entries
                );
            }
            remove_file(&*self.fs, &oldest.path)?;
            kept_below -= oldest.offsets.len() as u64;
            self.sealed.pop_front();
            self.dir_unsynced = true;
        }
        Ok(())
    }

    /// Lowest exec index this journal can report.
    pub fn first_available(&self) -> ExecIndex {
        self.sealed.front().map_or(self.active.first, |s| s.first)
    }

    /// Exec index of the last entry; `first_available() - 1` when empty.
    pub fn last(&self) -> ExecIndex {
        self.active.last()
    }

    /// The exec index the next `append` must carry.
    pub fn next_exec_index(&self) -> ExecIndex {
        self.active.next()
    }

    /// Entries kept (sealed and active segments).
    pub fn len(&self) -> u64 {
        let sealed: usize = self.sealed.iter().map(|s| s.offsets.len()).sum();
        (sealed + self.active.offsets.len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` contiguous entries from `from_exec_index`, or, when that is in a hole or
    /// before the first available entry, from the next one kept. Never crosses a hole;
    /// returns fewer when they would exceed 16 MiB.
    pub fn read(
        &mut self,
        from_exec_index: ExecIndex,
        max: usize,
    ) -> Result<Vec<Executed>, StorageError> {
        self.flush()?;
        let mut entries: Vec<Executed> = Vec::new();
        let mut budget = READ_BUDGET_BYTES;
        let mut next = from_exec_index;
        for index in 0..=self.sealed.len() {
            let segment = self.sealed.get(index).unwrap_or(&self.active);
            if segment.is_empty() || segment.last() < next {
                continue;
            }
            let hole = !entries.is_empty() && segment.first != next;
            if hole || entries.len() >= max || (budget == 0 && !entries.is_empty()) {
                break;
            }
            let wanted = max - entries.len();
            let read = self.read_segment(segment, next, wanted, &mut budget)?;
            next = read.last().map_or(next, |e| e.exec_index + 1);
            entries.extend(read);
        }
        Ok(entries)
    }

    /// Up to `max` entries of `segment` from `from` (inside it or before it), within `budget`
    /// bytes (which it lowers), but at least one.
    fn read_segment(
        &self,
        segment: &Segment,
        from: ExecIndex,
        max: usize,
        budget: &mut u64,
    ) -> Result<Vec<Executed>, StorageError> {
        let from = from.max(segment.first);
        let is_active = std::ptr::eq(segment, &self.active);
        let file_len = if is_active {
            self.active.len
        } else {
            segment.len
        };
        let first = (from - segment.first) as usize;
        let end = first + max.min(segment.offsets.len() - first);
        let (end, range_end) = byte_budget(segment, file_len, first, end, *budget);
        let range_start = segment.offsets[first];
        *budget = budget.saturating_sub(range_end - range_start);
        let mut bytes = vec![0u8; (range_end - range_start) as usize];
        let path = &segment.path;
        if is_active {
            self.file.read_exact_at(&mut bytes, range_start)
        } else {
            let file = self
                .fs
                .open(path, OpenMode::Read)
                .map_err(StorageError::io("open", path))?;
            file.read_exact_at(&mut bytes, range_start)
        }
        .map_err(StorageError::io("read", path))?;
        decode_entries(&bytes, from, end - first).map_err(|reason| StorageError::Corrupt {
            path: path.clone(),
            reason,
        })
    }

    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Seals the active segment and starts a new one at `first`.
    fn start_segment(&mut self, first: ExecIndex) -> Result<(), StorageError> {
        self.flush()?;
        let (active, file) = create_segment(&*self.fs, &self.dir, first)?;
        let old_file = std::mem::replace(&mut self.file, file);
        let old = std::mem::replace(&mut self.active, active);
        self.dir_unsynced = true;
        if old.is_empty() {
            remove_file(&*self.fs, &old.path)?;
        } else {
            self.unsynced.push(old_file);
            self.sealed.push_back(old);
        }
        Ok(())
    }

    /// Deletes the active segment; the newest sealed one becomes active. False when there is
    /// none.
    fn drop_active(&mut self) -> Result<bool, StorageError> {
        let Some(previous) = self.sealed.pop_back() else {
            return Ok(false);
        };
        let file = open_rw(&*self.fs, &previous.path, false)?;
        let dropped = std::mem::replace(&mut self.active, previous);
        self.file = file;
        self.dir_unsynced = true;
        remove_file(&*self.fs, &dropped.path)?;
        Ok(true)
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.active.path.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Best effort on a clean shutdown; a crash loses the buffer, which re-execution refills.
        let _ = self.flush();
    }
}

/// Shrinks the entry range `first..end` of `segment` to fit `budget` bytes (keeping at least
/// one entry); returns the new end and the byte offset where it ends.
fn byte_budget(
    segment: &Segment,
    file_len: u64,
    first: usize,
    mut end: usize,
    budget: u64,
) -> (usize, u64) {
    let frame_end = |i: usize| segment.offsets.get(i).copied().unwrap_or(file_len);
    while end > first + 1 && frame_end(end) - segment.offsets[first] > budget {
        end = first + (end - first) / 2;
    }
    (end, frame_end(end))
}

/// The file name of the segment starting at `first`; sorts in exec-index order.
fn segment_path(dir: &Path, first: ExecIndex) -> PathBuf {
    dir.join(format!("{first:020}{SEGMENT_SUFFIX}"))
}

/// Creates an empty segment (its `Start` record only) at `first`.
fn create_segment(
    fs: &dyn fs::Fs,
    dir: &Path,
    first: ExecIndex,
) -> Result<(Segment, Box<dyn FsFile>), StorageError> {
    let path = segment_path(dir, first);
    let mut header = Vec::new();
    encode_into(
        &mut header,
        &RecordRef::Start(first),
        DEFAULT_MAX_RECORD_BYTES,
        &path,
    )?;
    let file = open_rw(fs, &path, true)?;
    file.write_all_at(&header, 0)
        .map_err(StorageError::io("write", &path))?;
    let segment = Segment {
        path,
        first,
        offsets: Vec::new(),
        len: header.len() as u64,
    };
    Ok((segment, file))
}

/// Moves an earlier version's `journal.log` into the journal directory as its first segment.
fn migrate_legacy(fs: &dyn fs::Fs, data_dir: &Path, dir: &Path) -> Result<(), StorageError> {
    let legacy = data_dir.join(LEGACY_JOURNAL_FILE);
    if !fs
        .exists(&legacy)
        .map_err(StorageError::io("stat", &legacy))?
    {
        return Ok(());
    }
    // Named 0 so that it sorts first; its `Start` record says where it really begins.
    let to = segment_path(dir, 0);
    fs.rename(&legacy, &to)
        .map_err(StorageError::io("rename", &legacy))?;
    fsync_dir(fs, dir)?;
    fsync_dir(fs, data_dir)
}

/// Reads every segment in `dir`, oldest first, cutting damage (recorded in `cuts`) and
/// deleting segments left with nothing usable.
fn load_segments(
    fs: &dyn fs::Fs,
    dir: &Path,
    cuts: &mut Vec<TornTail>,
) -> Result<VecDeque<Segment>, StorageError> {
    let mut names: Vec<(u64, PathBuf)> = fs
        .list_files(dir)
        .map_err(StorageError::io("list", dir))?
        .into_iter()
        .filter_map(|path| segment_number(&path).map(|n| (n, path)))
        .collect();
    names.sort();
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let count = names.len();
    for (i, (_, path)) in names.into_iter().enumerate() {
        let is_newest = i + 1 == count;
        let (segment, cut) = load_segment(fs, &path)?;
        cuts.extend(cut);
        let overlaps = match (&segment, segments.back()) {
            (Some(s), Some(prev)) => s.first < prev.next(),
            _ => false,
        };
        match segment {
            Some(s) if !overlaps && (is_newest || !s.is_empty()) => {
                warn_hole(segments.back(), &s);
                segments.push_back(s)
            }
            _ => {
                if overlaps {
                    tracing::warn!(file = %path.display(), "deleting a journal segment that overlaps the one before it");
                }
                remove_file(fs, &path)?;
            }
        }
    }
    Ok(segments)
}

/// Says which exec indices no segment holds between `prev` and `next`, if any.
fn warn_hole(prev: Option<&Segment>, next: &Segment) {
    if let Some(prev) = prev.filter(|p| p.next() < next.first) {
        tracing::warn!(
            after = %prev.path.display(),
            before = %next.path.display(),
            "the executed journal lacks exec indices {}..={} (cut by damage earlier)",
            prev.next(),
            next.first - 1
        );
    }
}

/// `Some(n)` for a segment file name `<n>.log`.
fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
}

/// Recovers one segment file: `None` when not even its `Start` record survived.
fn load_segment(
    fs: &dyn fs::Fs,
    path: &Path,
) -> Result<(Option<Segment>, Option<TornTail>), StorageError> {
    let file = open_rw(fs, path, false)?;
    let mut start = None;
    let mut offsets = Vec::new();
    let mut accept =
        |offset: u64, payload: &[u8]| accept_frame(&mut start, &mut offsets, offset, payload);
    let is_valid = |payload: &[u8]| postcard::from_bytes::<Record>(payload).is_ok();
    let rules = RecoverRules {
        is_valid: &is_valid,
        cut_middle: true,
        zero_tail_is_end: false,
    };
    let (len, torn) = recover(&*file, path, DEFAULT_MAX_RECORD_BYTES, &mut accept, &rules)?;
    let segment = start.map(|first| Segment {
        path: path.to_path_buf(),
        first,
        offsets,
        len,
    });
    Ok((segment, torn))
}

/// The first field of each [`Record`] variant, encoded identically: what opening a segment
/// needs of an entry (its exec index, [`Executed`]'s first field), without decoding its
/// command and result. Those are decoded when a `read` serves them.
#[derive(Deserialize)]
enum RecordHead {
    Start(ExecIndex),
    Entry(ExecIndex),
}

/// Recovery check of one frame: a `Start` first, then contiguous entries. The frame's
/// checksum already matched, so the rest of an entry is what its writer encoded; only its
/// exec index is read here (decoding every entry of every segment was most of a restart's
/// journal cost).
fn accept_frame(
    start: &mut Option<ExecIndex>,
    offsets: &mut Vec<u64>,
    offset: u64,
    payload: &[u8],
) -> Result<(), String> {
    let record = postcard::from_bytes::<RecordHead>(payload)
        .map_err(|e| format!("undecodable record: {e}"))?;
    match (record, *start) {
        (RecordHead::Start(first), None) if first >= 1 => {
            *start = Some(first);
            Ok(())
        }
        (RecordHead::Entry(exec_index), Some(first)) => {
            let expected = first + offsets.len() as u64;
            if exec_index != expected {
                return Err(format!(
                    "entry has exec index {exec_index}, expected {expected}"
                ));
            }
            offsets.push(offset);
            Ok(())
        }
        (RecordHead::Start(_), _) => Err("unexpected or invalid start record".into()),
        (RecordHead::Entry(_), None) => Err("entry before the start record".into()),
    }
}

/// Decodes `count` consecutive entry frames starting at exec index `from`.
fn decode_entries(bytes: &[u8], from: ExecIndex, count: usize) -> Result<Vec<Executed>, String> {
    let mut entries = Vec::with_capacity(count);
    let mut rest = bytes;
    while entries.len() < count {
        let expected = from + entries.len() as u64;
        if rest.len() < HEADER_BYTES {
            return Err(format!("entry {expected} is cut short"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let payload = rest
            .get(HEADER_BYTES..HEADER_BYTES + len)
            .ok_or(format!("entry {expected} is cut short"))?;
        if crc32fast::hash(payload) != crc {
            return Err(format!("entry {expected} fails its checksum"));
        }
        match postcard::from_bytes::<Record>(payload) {
            Ok(Record::Entry(entry)) if entry.exec_index == expected => entries.push(entry),
            _ => return Err(format!("entry {expected} is not the expected record")),
        }
        rest = &rest[HEADER_BYTES + len..];
    }
    Ok(entries)
}

fn remove_file(fs: &dyn fs::Fs, path: &Path) -> Result<(), StorageError> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path)(e)),
    }
}

fn open_rw(fs: &dyn fs::Fs, path: &Path, truncate: bool) -> Result<Box<dyn FsFile>, StorageError> {
    let mode = if truncate {
        OpenMode::CreateTruncate
    } else {
        OpenMode::ReadWriteCreate
    };
    fs.open(path, mode).map_err(StorageError::io("open", path))
}
