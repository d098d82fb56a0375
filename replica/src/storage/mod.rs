//! The replica's disk: the write-ahead log, checkpoints and the executed journal.
//!
//! Everything on disk uses one record frame, `[u32 len LE][u32 crc32 LE of payload][payload]`
//! with a postcard payload (see [`frame`]), so every file is checked the same way when it is
//! read back. The rules that follow from "a process may die at any instant":
//!
//! - A damaged *tail* (a partial frame, a bad checksum or an undecodable record at the end of
//!   a file) is what a crash mid-write leaves behind. It is cut off with a warning and reported
//!   as a [`TornTail`]; the records before it survive.
//! - The WAL is written into zeros it lays down ahead of itself (see [`wal`]), so that its
//!   fdatasync has no metadata to commit: zeros from the first damaged frame to the end of
//!   its file are its written end, neither cut nor reported (`RecoverRules::zero_tail_is_end`).
//! - Damage followed by valid records is not a torn write: something else corrupted the file.
//!   That is a [`StorageError::CorruptMiddle`] naming the file and offset, never silently
//!   "repaired", because cutting there would throw away acknowledged data.
//! - A power cut can keep any subset of the pages written since the last fsync, so the tail
//!   rule alone cannot tell a torn write from a flipped bit in the last acknowledged records.
//!   The WAL therefore follows every fsynced burst with a small synced-length mark (with the
//!   next burst, or on its own when the log goes idle): an acknowledged record always has a
//!   valid frame after it, so damage in it is middle corruption, never a tail to cut.
//! - The executed journal is derived state and is never fsynced between checkpoints: any
//!   damage in it is cut, never fatal, and costs at most the rest of one segment file.
//! - Whole-file replacements (WAL compaction, checkpoints) go through a temporary file, fsync,
//!   rename and a directory fsync, so a reader sees either the old file or the new one.
//! - Truncation does not look like damage: a file cut at a record boundary reads as a valid,
//!   shorter file. The [`superblock`] records how much WAL and which checkpoint must exist,
//!   and a data directory holding less is refused.
//! - After a failed write a file handle refuses further writes ([`StorageError::Poisoned`]):
//!   a partial frame followed by later appends would look like middle corruption on restart.

pub mod checkpoint;
pub mod frame;
pub mod fs;
pub mod journal;
pub mod superblock;
pub mod wal;

pub use checkpoint::{read_checkpoint, read_checkpoint_in, write_checkpoint, write_checkpoint_in};
pub use fs::{Fs, FsFile, FsRef, OpenMode, RealFs};
pub use journal::{Journal, JournalLimits};
pub use superblock::{read_superblock_in, Superblock, SuperblockWriter};
pub use wal::Wal;

use std::io;
use std::path::{Path, PathBuf};

/// Largest WAL or journal record accepted by default (a WAL record carries one slot's batch).
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;

/// Largest checkpoint file accepted (the checkpoint holds the whole bank and reply table).
pub const MAX_CHECKPOINT_BYTES: u32 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot {op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error(
        "{path} is corrupt at byte offset {offset} ({reason}) and valid records follow at \
         offset {next_valid}: this is not a torn write, refusing to cut the file"
    )]
    CorruptMiddle {
        path: PathBuf,
        offset: u64,
        reason: String,
        next_valid: u64,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("a record of {len} bytes for {path} exceeds the limit of {max} bytes")]
    RecordTooLarge { path: PathBuf, len: usize, max: u32 },
    #[error("a record for {path} encodes to zero bytes; records must not be empty")]
    EmptyRecord { path: PathBuf },
    #[error("cannot encode a record for {path}: {cause}")]
    Encode {
        path: PathBuf,
        cause: postcard::Error,
    },
    #[error("journal {path}: expected exec index {expected}, got {got}")]
    JournalGap {
        path: PathBuf,
        expected: u64,
        got: u64,
    },
    #[error("{path}: an earlier write failed, so this handle refuses further writes; restart to recover from disk")]
    Poisoned { path: PathBuf },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |cause| StorageError::Io { op, path, cause }
    }
}

/// What was cut off the end of a file when it was opened: the trace of a crash mid-write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Byte offset of the first damaged frame; the file now ends here.
    pub offset: u64,
    /// How many bytes were cut.
    pub dropped_bytes: u64,
    pub reason: String,
}

/// Makes a rename or file creation in `dir` durable.
pub(crate) fn fsync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir)
        .map_err(StorageError::io("fsync directory", dir))
}

/// Writes an append buffer at `*written` and moves `*written` past it. On failure part of the
/// buffer may be on disk, so later appends would sit behind a partial frame: the file is
/// `poisoned` and refuses further writes.
pub(crate) fn write_buffer_at(
    file: &dyn FsFile,
    path: &Path,
    buf: &mut Vec<u8>,
    written: &mut u64,
    poisoned: &mut bool,
) -> Result<(), StorageError> {
    if let Err(source) = file.write_all_at(buf, *written) {
        *poisoned = true;
        return Err(StorageError::Io {
            op: "write",
            path: path.to_path_buf(),
            cause: source,
        });
    }
    *written += buf.len() as u64;
    buf.clear();
    Ok(())
}

/// fdatasyncs `file`. After a failed fsync the kernel may have dropped the dirty pages, so
/// nothing written since the last good sync can be trusted: the handle is `poisoned`.
pub(crate) fn sync_or_poison(
    file: &dyn FsFile,
    path: &Path,
    poisoned: &mut bool,
) -> Result<(), StorageError> {
    file.sync_data().map_err(|source| {
        *poisoned = true;
        StorageError::Io {
            op: "fdatasync",
            path: path.to_path_buf(),
            cause: source,
        }
    })
}

/// Creates `dir` and any missing parents, durably: each new directory's name is fsynced in
/// its parent, so a power cut soon after the first boot cannot drop the data directory (and
/// with it every promise the replica made).
pub fn ensure_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if fs.exists(path).map_err(StorageError::io("stat", path))? {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    for path in missing.into_iter().rev() {
        match fs.create_dir(path) {
            Ok(()) => {}
            // Another process (or a racing thread) made it: still sync the parent below.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::io("create directory", path)(e)),
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        fsync_dir(fs, parent.unwrap_or(Path::new(".")))?;
    }
    Ok(())
}
