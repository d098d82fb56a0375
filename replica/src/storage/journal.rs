//! The executed journal: every command this replica executed, in exec-index order.
//!
//! It is what the replica reports as its executed log (`FetchExecuted`, the harness's
//! `final.json`). It is derived state, rebuilt by re-execution after a restart, so it is only
//! fsynced before a checkpoint (the entries below a checkpoint cannot be rebuilt): on restart
//! the shell cuts it back to the checkpoint's exec index ([`Journal::truncate_after`]) and
//! re-execution appends the rest again. Damage anywhere in it (a power cut may keep any
//! subset of its unsynced pages) is cut, with a warning, never fatal.
//!
//! The file, `journal.log`, is a sequence of frames (see [`super::frame`]): first a `Start`
//! record naming the exec index of the first entry (1, or the index after an installed
//! snapshot), then one `Entry` per executed command with contiguous exec indices. An in-memory
//! table of frame offsets (8 bytes per entry) makes `read` one positioned read.
//!
//! Appends are buffered. Call [`Journal::flush`] after each executed batch, and in any case
//! before writing a checkpoint: a SIGKILL loses the buffer, and a journal that ends before the
//! checkpoint's exec index cannot be refilled by re-execution.

use super::frame::{encode_into, recover, RecoverRules, HEADER_BYTES};
use super::{
    ensure_dir, fs, FsFile, FsRef, OpenMode, StorageError, TornTail, DEFAULT_MAX_RECORD_BYTES,
};
use crate::bank::Executed;
use crate::types::ExecIndex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "journal.log";
const JOURNAL_TMP_FILE: &str = "journal.log.tmp";

/// Buffered bytes beyond which `append` writes them out.
const WRITE_THRESHOLD_BYTES: usize = 64 * 1024;

/// Most bytes one `read` call loads (it returns fewer entries rather than more memory).
const READ_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

/// One frame of the journal file. Wire type: never reorder variants.
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

pub struct Journal {
    fs: FsRef,
    dir: PathBuf,
    path: PathBuf,
    file: Box<dyn FsFile>,
    buf: Vec<u8>,
    /// Bytes in the file; offsets at or beyond this are still in `buf`.
    written: u64,
    /// Exec index of the first entry (also when there are none yet).
    start: ExecIndex,
    /// `offsets[i]` is where the frame of exec index `start + i` begins.
    offsets: Vec<u64>,
    poisoned: bool,
}

impl Journal {
    /// Opens (or creates) `dir/journal.log` on the machine's file system, cutting a torn tail.
    pub fn open(dir: &Path) -> Result<(Journal, Option<TornTail>), StorageError> {
        Self::open_in(fs::real(), dir)
    }

    /// Like [`Journal::open`] on the file system `fs`.
    pub fn open_in(fs: FsRef, dir: &Path) -> Result<(Journal, Option<TornTail>), StorageError> {
        ensure_dir(&*fs, dir)?;
        let path = dir.join(JOURNAL_FILE);
        let file = open_rw(&*fs, &path, false)?;
        let mut start = None;
        let mut offsets = Vec::new();
        let mut accept =
            |offset: u64, payload: &[u8]| accept_frame(&mut start, &mut offsets, offset, payload);
        let is_valid = |payload: &[u8]| postcard::from_bytes::<Record>(payload).is_ok();
        let rules = RecoverRules {
            is_valid: &is_valid,
            cut_middle: true,
        };
        let (written, torn) =
            recover(&*file, &path, DEFAULT_MAX_RECORD_BYTES, &mut accept, &rules)?;
        let mut journal = Journal {
            fs,
            dir: dir.to_path_buf(),
            path,
            file,
            buf: Vec::new(),
            written,
            start: start.unwrap_or(1),
            offsets,
            poisoned: false,
        };
        if start.is_none() {
            journal.reset(1)?;
        }
        Ok((journal, torn))
    }

    /// Appends the next executed entry; its exec index must be `last() + 1`.
    pub fn append(&mut self, entry: &Executed) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let expected = self.next_exec_index();
        if entry.exec_index != expected {
            return Err(StorageError::JournalGap {
                path: self.path.clone(),
                expected,
                got: entry.exec_index,
            });
        }
        let offset = self.written + self.buf.len() as u64;
        encode_into(
            &mut self.buf,
            &RecordRef::Entry(entry),
            DEFAULT_MAX_RECORD_BYTES,
            &self.path,
        )?;
        self.offsets.push(offset);
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
            &self.path,
            &mut self.buf,
            &mut self.written,
            &mut self.poisoned,
        )
    }

    /// Writes buffered entries and fsyncs them. The shell calls it before every checkpoint:
    /// entries at or below a checkpoint cannot be rebuilt by re-execution, so they must not be
    /// lost to a power cut once the checkpoint exists.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        super::sync_or_poison(&*self.file, &self.path, &mut self.poisoned)
    }

    /// Drops every entry after `exec_index`. If that is before the first available entry, the
    /// journal restarts empty at `exec_index + 1` (re-execution from an older checkpoint will
    /// refill it).
    pub fn truncate_after(&mut self, exec_index: ExecIndex) -> Result<(), StorageError> {
        self.flush()?;
        if exec_index.saturating_add(1) < self.start {
            return self.reset(exec_index + 1);
        }
        if exec_index >= self.last() {
            return Ok(());
        }
        let keep = (exec_index + 1 - self.start) as usize;
        let cut_at = self.offsets[keep];
        if let Err(e) = self.file.set_len(cut_at) {
            self.poisoned = true;
            return Err(StorageError::Io {
                op: "truncate",
                path: self.path.clone(),
                source: e,
            });
        }
        self.written = cut_at;
        self.offsets.truncate(keep);
        Ok(())
    }

    /// Drops everything; the journal now starts at `next_exec_index` (after a snapshot install).
    pub fn reset(&mut self, next_exec_index: ExecIndex) -> Result<(), StorageError> {
        let next_exec_index = next_exec_index.max(1);
        let tmp = self.dir.join(JOURNAL_TMP_FILE);
        let mut header = Vec::new();
        encode_into(
            &mut header,
            &RecordRef::Start(next_exec_index),
            DEFAULT_MAX_RECORD_BYTES,
            &tmp,
        )?;
        let tmp_file = open_rw(&*self.fs, &tmp, true)?;
        tmp_file
            .write_all_at(&header, 0)
            .map_err(StorageError::io("write", &tmp))?;
        self.fs
            .rename(&tmp, &self.path)
            .map_err(StorageError::io("rename over", &self.path))?;
        self.file = tmp_file;
        self.buf.clear();
        self.written = header.len() as u64;
        self.start = next_exec_index;
        self.offsets.clear();
        self.poisoned = false;
        Ok(())
    }

    /// Lowest exec index this journal can report.
    pub fn first_available(&self) -> ExecIndex {
        self.start
    }

    /// Exec index of the last entry; `first_available() - 1` when empty.
    pub fn last(&self) -> ExecIndex {
        self.start + self.offsets.len() as u64 - 1
    }

    /// The exec index the next `append` must carry.
    pub fn next_exec_index(&self) -> ExecIndex {
        self.start + self.offsets.len() as u64
    }

    /// Up to `max` entries from `from_exec_index` (or from the first available one, if later).
    /// Returns fewer when they would exceed 16 MiB.
    pub fn read(
        &mut self,
        from_exec_index: ExecIndex,
        max: usize,
    ) -> Result<Vec<Executed>, StorageError> {
        self.flush()?;
        let from = from_exec_index.max(self.start);
        if from > self.last() || max == 0 {
            return Ok(Vec::new());
        }
        let first = (from - self.start) as usize;
        let end = first + max.min(self.offsets.len() - first);
        let (end, range_end) = self.byte_budget(first, end);
        let range_start = self.offsets[first];
        let mut bytes = vec![0u8; (range_end - range_start) as usize];
        self.file
            .read_exact_at(&mut bytes, range_start)
            .map_err(StorageError::io("read", &self.path))?;
        let entries =
            decode_entries(&bytes, from, end - first).map_err(|reason| StorageError::Corrupt {
                path: self.path.clone(),
                reason,
            })?;
        Ok(entries)
    }

    /// Shrinks the entry range `first..end` to fit the read budget (keeping at least one entry);
    /// returns the new end and the byte offset where it ends.
    fn byte_budget(&self, first: usize, mut end: usize) -> (usize, u64) {
        let frame_end = |i: usize| self.offsets.get(i).copied().unwrap_or(self.written);
        while end > first + 1 && frame_end(end) - self.offsets[first] > READ_BUDGET_BYTES {
            end = first + (end - first) / 2;
        }
        (end, frame_end(end))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.path.clone(),
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

/// Recovery check of one frame: a `Start` first, then contiguous entries.
fn accept_frame(
    start: &mut Option<ExecIndex>,
    offsets: &mut Vec<u64>,
    offset: u64,
    payload: &[u8],
) -> Result<(), String> {
    let record =
        postcard::from_bytes::<Record>(payload).map_err(|e| format!("undecodable record: {e}"))?;
    match (record, *start) {
        (Record::Start(first), None) if first >= 1 => {
            *start = Some(first);
            Ok(())
        }
        (Record::Entry(entry), Some(first)) => {
            let expected = first + offsets.len() as u64;
            if entry.exec_index != expected {
                return Err(format!(
                    "entry has exec index {}, expected {expected}",
                    entry.exec_index
                ));
            }
            offsets.push(offset);
            Ok(())
        }
        (Record::Start(_), _) => Err("unexpected or invalid start record".into()),
        (Record::Entry(_), None) => Err("entry before the start record".into()),
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

fn open_rw(fs: &dyn fs::Fs, path: &Path, truncate: bool) -> Result<Box<dyn FsFile>, StorageError> {
    let mode = if truncate {
        OpenMode::CreateTruncate
    } else {
        OpenMode::ReadWriteCreate
    };
    fs.open(path, mode).map_err(StorageError::io("open", path))
}
