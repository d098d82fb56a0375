//! The write-ahead log: the acceptor's durable promises and accepted values.
//!
//! Records are framed (see [`super::frame`]) and appended to one file, `wal.log`, in the data
//! directory. `append` only buffers; `sync` writes the buffer and fdatasyncs once, so a batch of
//! records appended between two syncs costs one fsync (group commit). An acceptor answers
//! PROMISE / ACCEPTED only after the `sync` covering its record returned.
//!
//! Zeroed space ahead: the log is written into zeros laid down ahead of it, in stretches of
//! [`PREALLOCATE_BYTES`]. An `fdatasync` of bytes written inside the file's length, into
//! blocks already written, has no metadata to commit (no new size, no block allocation, no
//! unwritten extent to convert; `fallocate` would leave the last), so on ext4 it skips the
//! journal commit and costs the data write and the disk's cache flush. The write that crosses
//! the zeroed end carries the next stretch with it, under the same fsync: one metadata commit
//! per stretch instead of one per burst. The file therefore ends in zeros; recovery reads a
//! run of zeros from the first damaged frame to the end of the file as the written end (a
//! frame never starts with a zero length), and anything else there, such as a torn frame
//! followed by zeros, as damage under the usual rules. A log written before this (no zeros
//! after its last frame) reads the same, and gains its zeros at its next write.
//!
//! Compaction (`rewrite`) replaces the whole log atomically: the new contents go to a temporary
//! file which is fsynced, renamed over the log, and the directory is fsynced, so a crash leaves
//! either the old log or the new one.
//!
//! Synced-length marks: a torn write and a flipped bit in the last records look alike, and a
//! power cut may keep any subset of unsynced pages, so the tail rule alone would cut votes the
//! replica had fsynced and sent. So the first append after an fsync first writes a small
//! `Synced(len)` frame saying that the log's first `len` bytes were durable, and when the log
//! goes idle [`Wal::confirm`] writes that mark on its own (one extra fsync per idle spell).
//! Every acknowledged record then has a valid frame after it: damage in it is middle
//! corruption, which recovery refuses ([`StorageError::CorruptMiddle`]) instead of cutting.
//! Only the last burst before a crash, with no write after it, can still be cut as torn.

use super::frame::{encode_into, recover, RecoverRules};
use super::{
    ensure_dir, fs, fsync_dir, FsFile, FsRef, OpenMode, StorageError, TornTail,
    DEFAULT_MAX_RECORD_BYTES,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub const WAL_FILE: &str = "wal.log";
const WAL_TMP_FILE: &str = "wal.log.tmp";

/// Buffered bytes beyond which `append` writes them out (without fsync) to bound memory.
const WRITE_THRESHOLD_BYTES: usize = 4 * 1024 * 1024;

/// How much zeroed space the log lays down ahead of its written end at a time. One fdatasync
/// in a stretch commits metadata; a stretch holds thousands of commands' records, and the
/// simulator, which copies a disk's files on every power cut, stays cheap.
pub const PREALLOCATE_BYTES: u64 = 256 * 1024;

/// Where the zeroed space ends once a log whose data ends at `end` has laid down more: at a
/// multiple of [`PREALLOCATE_BYTES`], at least half a stretch past `end`.
fn preallocated_end(end: u64) -> u64 {
    (end + PREALLOCATE_BYTES / 2).div_ceil(PREALLOCATE_BYTES) * PREALLOCATE_BYTES
}

/// What [`Wal::open`] returns: the log, its records, and what was cut off its end.
pub type Opened<R> = (Wal<R>, Vec<R>, Option<TornTail>);

/// One frame of the log. Wire type: never reorder variants.
#[derive(Deserialize)]
enum Frame<R> {
    Record(R),
    /// The log's first `n` bytes were durable when this was written.
    Synced(u64),
}

/// How postcard encodes [`Frame::Record`]'s variant index (a one-byte varint).
const RECORD_TAG: u8 = 0;

/// The borrowed form of [`Frame`], encoded identically.
#[derive(Serialize)]
enum FrameRef<'a, R> {
    Record(&'a R),
    Synced(u64),
}

pub struct Wal<R> {
    fs: FsRef,
    dir: PathBuf,
    path: PathBuf,
    file: Box<dyn FsFile>,
    /// Framed records appended but not yet written to the file.
    buf: Vec<u8>,
    /// Bytes of records and marks in the file (the next write goes at this offset).
    written: u64,
    /// The file's length: zeros from `written` to here (see the module docs).
    allocated: u64,
    /// Bytes were written since the last fsync.
    unsynced: bool,
    /// Bytes made durable by the last fsync that returned.
    synced_len: u64,
    /// The newest synced-length mark written (buffered marks included).
    marked_len: u64,
    fsync: bool,
    max_record: u32,
    poisoned: bool,
    _records: PhantomData<fn(R) -> R>,
}

impl<R: Serialize + DeserializeOwned> Wal<R> {
    /// Opens (or creates) `dir/wal.log` on the machine's file system and reads every valid
    /// record, cutting a torn tail.
    pub fn open(dir: &Path) -> Result<Opened<R>, StorageError> {
        Self::open_in(fs::real(), dir, DEFAULT_MAX_RECORD_BYTES)
    }

    /// Like [`Wal::open`] with a bound on the size of one record (in payload bytes).
    pub fn open_with_limit(dir: &Path, max_record_bytes: u32) -> Result<Opened<R>, StorageError> {
        Self::open_in(fs::real(), dir, max_record_bytes)
    }

    /// Like [`Wal::open_with_limit`] on the file system `fs`.
    pub fn open_in(
        fs: FsRef,
        dir: &Path,
        max_record_bytes: u32,
    ) -> Result<Opened<R>, StorageError> {
        let mut records = Vec::new();
        let (wal, torn) = Self::open_streaming(fs, dir, max_record_bytes, &mut |r| {
            records.push(r);
        })?;
        Ok((wal, records, torn))
    }

    /// Like [`Wal::open_in`], but hands each record to `replay` as the file is read (through a
    /// bounded buffer) instead of collecting them: restarting costs the memory of what the
    /// caller keeps, not of the whole log. Records come in file order; if the open then fails
    /// (corruption in the middle), the caller must discard what it built.
    pub fn open_streaming(
        fs: FsRef,
        dir: &Path,
        max_record_bytes: u32,
        replay: &mut dyn FnMut(R),
    ) -> Result<(Wal<R>, Option<TornTail>), StorageError> {
        Self::open_streaming_encoded(fs, dir, max_record_bytes, &mut |bytes| {
            let record = postcard::from_bytes::<R>(bytes).map_err(|e| e.to_string())?;
            replay(record);
            Ok(())
        })
    }

    /// Like [`Wal::open_streaming`], but hands each record over still encoded (its postcard
    /// bytes, checksummed), for a caller that can tell from a record's first fields that it
    /// needs no more of it (a restart skips the values of slots its checkpoint covers). An
    /// `Err` from `replay` is an undecodable record.
    pub fn open_streaming_encoded(
        fs: FsRef,
        dir: &Path,
        max_record_bytes: u32,
        replay: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(Wal<R>, Option<TornTail>), StorageError> {
        ensure_dir(&*fs, dir)?;
        let path = dir.join(WAL_FILE);
        let file = open_log(&*fs, dir, &path)?;
        let mut marked = 0u64;
        let mut accept = |_offset: u64, payload: &[u8]| {
            // `Frame::Record` is variant 0, one byte, and the record's own bytes follow it.
            if let Some((&RECORD_TAG, record)) = payload.split_first() {
                return replay(record).map_err(|e| format!("undecodable record: {e}"));
            }
            match postcard::from_bytes::<Frame<R>>(payload) {
                // Variant 0 spelled in more than one byte: no writer of ours made it.
                Ok(Frame::Record(_)) => return Err("a record frame with a misspelled tag".into()),
                Ok(Frame::Synced(len)) => marked = marked.max(len),
                Err(e) => return Err(format!("undecodable record: {e}")),
            }
            Ok(())
        };
        let is_valid = |payload: &[u8]| postcard::from_bytes::<Frame<R>>(payload).is_ok();
        let rules = RecoverRules {
            is_valid: &is_valid,
            cut_middle: false,
            zero_tail_is_end: true,
        };
        let (written, torn) = recover(&*file, &path, max_record_bytes, &mut accept, &rules)?;
        let allocated = file.len().map_err(StorageError::io("stat", &path))?;
        // What survived may still sit only in the page cache (a process crash, not a power
        // cut): make it durable before any mark can vouch for it.
        file.sync_data()
            .map_err(StorageError::io("fdatasync", &path))?;
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            path,
            file,
            buf: Vec::new(),
            written,
            allocated: allocated.max(written),
            unsynced: false,
            synced_len: written,
            marked_len: marked,
            fsync: true,
            max_record: max_record_bytes,
            poisoned: false,
            _records: PhantomData,
        };
        Ok((wal, torn))
    }

    /// Buffers one record. It is durable only after the next [`Wal::sync`].
    pub fn append(&mut self, record: &R) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.mark_synced()?;
        encode_into(
            &mut self.buf,
            &FrameRef::Record(record),
            self.max_record,
            &self.path,
        )?;
        if self.buf.len() >= WRITE_THRESHOLD_BYTES {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Buffers a synced-length mark if the last fsync made bytes durable that no mark vouches
    /// for yet.
    fn mark_synced(&mut self) -> Result<(), StorageError> {
        if self.synced_len > self.marked_len {
            let mark = FrameRef::<R>::Synced(self.synced_len);
            encode_into(&mut self.buf, &mark, self.max_record, &self.path)?;
            self.marked_len = self.synced_len;
        }
        Ok(())
    }

    /// Writes and fsyncs a synced-length mark at the end of the log, for an idle log (see the
    /// module docs). It goes after whatever is buffered (commit hints), so every record in
    /// the file has a valid frame after it.
    pub fn confirm(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if !self.fsync {
            return Ok(());
        }
        let mark = FrameRef::<R>::Synced(self.synced_len);
        encode_into(&mut self.buf, &mark, self.max_record, &self.path)?;
        self.sync()?;
        // The mark's own bytes (and any commit hints beside it) need no mark.
        self.marked_len = self.synced_len;
        Ok(())
    }

    /// Writes everything appended so far and fdatasyncs it: one fsync for the whole batch.
    /// With fsync switched off (see [`Wal::set_fsync`]) it only writes.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.write_buffered()?;
        if self.fsync && self.unsynced {
            super::sync_or_poison(&*self.file, &self.path, &mut self.poisoned)?;
            self.unsynced = false;
            self.synced_len = self.written;
        }
        Ok(())
    }

    /// Bytes made durable by the last fsync (all of the file at open).
    pub fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// Size of the log including buffered records.
    pub fn size_bytes(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Atomically replaces the whole log with `records` (compaction). Records appended but not
    /// synced before the call are discarded: `records` is the new log.
    pub fn rewrite(&mut self, records: &[R]) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let tmp = self.dir.join(WAL_TMP_FILE);
        let (written, allocated) = match write_log_file(&*self.fs, &tmp, records, self.max_record) {
            Ok(lens) => lens,
            Err(e) => {
                let _ = self.fs.remove_file(&tmp);
                return Err(e);
            }
        };
        self.fs
            .rename(&tmp, &self.path)
            .map_err(StorageError::io("rename over", &self.path))?;
        // From here the old handle points at the replaced file: a failure leaves no usable log.
        self.poisoned = true;
        fsync_dir(&*self.fs, &self.dir)?;
        self.file = self
            .fs
            .open(&self.path, OpenMode::ReadWriteCreate)
            .map_err(StorageError::io("reopen", &self.path))?;
        self.buf.clear();
        self.written = written;
        self.allocated = allocated;
        self.unsynced = false;
        self.synced_len = written;
        // The new file ends with a mark covering everything before it (see write_log_file).
        self.marked_len = written;
        self.poisoned = false;
        Ok(())
    }

    /// Benchmark / planted-bug switch: when off, [`Wal::sync`] writes but does not fsync.
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
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

    /// Writes the buffer at the written end. A write that would cross the zeroed end lays
    /// the next stretch of zeros down in the same write (see the module docs).
    fn write_buffered(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.written + self.buf.len() as u64;
        let grow_to = (end > self.allocated).then(|| preallocated_end(end));
        if let Some(grow_to) = grow_to {
            self.buf.resize((grow_to - self.written) as usize, 0);
        }
        let mut at = self.written;
        super::write_buffer_at(
            &*self.file,
            &self.path,
            &mut self.buf,
            &mut at,
            &mut self.poisoned,
        )?;
        self.written = end;
        self.allocated = self.allocated.max(at);
        self.unsynced = true;
        if self.buf.capacity() > 2 * WRITE_THRESHOLD_BYTES {
            self.buf.shrink_to(WRITE_THRESHOLD_BYTES);
        }
        Ok(())
    }
}

/// Opens the log for reading and writing, creating it (durably) if it does not exist.
fn open_log(fs: &dyn fs::Fs, dir: &Path, path: &Path) -> Result<Box<dyn FsFile>, StorageError> {
    let existed = fs.exists(path).map_err(StorageError::io("stat", path))?;
    let file = fs
        .open(path, OpenMode::ReadWriteCreate)
        .map_err(StorageError::io("open", path))?;
    if !existed {
        fsync_dir(fs, dir)?;
    }
    Ok(file)
}

/// Writes `records` framed into a fresh file at `path`, followed by zeroed space, and fsyncs
/// it; returns where its data ends and its length.
fn write_log_file<R: Serialize>(
    fs: &dyn fs::Fs,
    path: &Path,
    records: &[R],
    max: u32,
) -> Result<(u64, u64), StorageError> {
    let file = fs
        .open(path, OpenMode::CreateTruncate)
        .map_err(StorageError::io("create", path))?;
    let mut buf = Vec::new();
    let mut written = 0u64;
    for record in records {
        encode_into(&mut buf, &FrameRef::Record(record), max, path)?;
        if buf.len() >= WRITE_THRESHOLD_BYTES {
            file.write_all_at(&buf, written)
                .map_err(StorageError::io("write", path))?;
            written += buf.len() as u64;
            buf.clear();
        }
    }
    // The file is renamed into place only after this fsync, so once it is the log, all of it
    // is durable: a closing mark says so, and damage anywhere in it is never cut as torn.
    let before_mark = written + buf.len() as u64;
    encode_into(&mut buf, &FrameRef::<R>::Synced(before_mark), max, path)?;
    let end = written + buf.len() as u64;
    let allocated = preallocated_end(end);
    buf.resize((allocated - written) as usize, 0);
    file.write_all_at(&buf, written)
        .map_err(StorageError::io("write", path))?;
    file.sync_all().map_err(StorageError::io("fsync", path))?;
    Ok((end, allocated))
}
