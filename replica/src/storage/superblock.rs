//! The superblock: what must exist on disk, so a log cut short is refused, not replayed.
//!
//! The WAL's own frames cannot prove that nothing is missing after them: a file cut at a record
//! boundary (or emptied, or a lost synced write) reads as a shorter, perfectly valid log, and
//! a replica that starts from it has forgotten promises and votes it sent. So, as
//! TigerBeetle's superblock records what its data file must hold, a small file `superblock`
//! records how many WAL bytes were durable and which checkpoint was written; the replica
//! refuses to start when less is there ([`Superblock::check`]).
//!
//! The file holds two fixed-size copies, each one frame (see [`super::frame`]) with a sequence
//! number; a write replaces the older copy in place and fdatasyncs it, so a torn write leaves
//! the other copy, and reading takes the valid copy with the higher sequence. It is written
//! at start, after every checkpoint, when an idle WAL confirms its last burst, and at most
//! every [`SUPERBLOCK_INTERVAL_MS`] under load: it may lag the WAL by that much. A WAL
//! compaction first lowers the recorded length to zero, then records the new file's length.
//!
//! A data directory without a superblock was written before superblocks existed, or never
//! got past its first start: it is accepted as it is.

use super::frame::{decode_one, encode_into};
use super::{ensure_dir, fsync_dir, Fs, FsFile, FsRef, OpenMode, StorageError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SUPERBLOCK_FILE: &str = "superblock";

/// Bytes of one copy: a frame header and a small postcard payload, padded.
const COPY_BYTES: usize = 64;

/// Under load the superblock is rewritten at most this often (one fdatasync each).
pub const SUPERBLOCK_INTERVAL_MS: u64 = 100;

/// What the data directory must hold. Disk format: never reorder fields; append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superblock {
    /// Higher is newer; the copy written next is `sequence % 2`.
    pub sequence: u64,
    /// The WAL held at least this many durable bytes.
    pub wal_len: u64,
    /// A checkpoint of at least this slot was durably in place (0: none yet).
    pub checkpoint_slot: u64,
}

/// What is missing, in words naming the file (the replica's refusal to start).
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error(
        "{path} holds {found} bytes, but the superblock {superblock} records that {expected} \
         bytes of it were durable: the write-ahead log was cut short or lost synced writes; \
         refusing to start with promises and votes missing"
    )]
    WalCutShort {
        path: PathBuf,
        superblock: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error(
        "{path} {found}, but the superblock {superblock} records a checkpoint of slot \
         {expected}: the checkpoint was lost; refusing to start from less state"
    )]
    CheckpointLost {
        path: PathBuf,
        superblock: PathBuf,
        found: String,
        expected: u64,
    },
}

impl Superblock {
    /// Compares what is on disk with what the superblock says must be there.
    pub fn check(
        &self,
        dir: &Path,
        wal_path: &Path,
        wal_len: u64,
        checkpoint_slot: Option<u64>,
    ) -> Result<(), Missing> {
        let superblock = dir.join(SUPERBLOCK_FILE);
        if wal_len < self.wal_len {
            return Err(Missing::WalCutShort {
                path: wal_path.to_path_buf(),
                superblock,
                found: wal_len,
                expected: self.wal_len,
            });
        }
        if checkpoint_slot.unwrap_or(0) < self.checkpoint_slot {
            let found = match checkpoint_slot {
                None => "is missing".to_string(),
                Some(slot) => format!("holds slot {slot}"),
            };
            return Err(Missing::CheckpointLost {
                path: dir.join(super::checkpoint::CHECKPOINT_FILE),
                superblock,
                found,
                expected: self.checkpoint_slot,
            });
        }
        Ok(())
    }
}

/// Reads the newest valid copy in `dir`; `None` if there is no superblock (or no valid copy:
/// a first write torn by a crash).
pub fn read_superblock_in(fs: &dyn Fs, dir: &Path) -> Result<Option<Superblock>, StorageError> {
    let path = dir.join(SUPERBLOCK_FILE);
    if !fs.exists(&path).map_err(StorageError::io("stat", &path))? {
        return Ok(None);
    }
    let file = fs
        .open(&path, OpenMode::Read)
        .map_err(StorageError::io("open", &path))?;
    let len = file.len().map_err(StorageError::io("stat", &path))?;
    let mut bytes = vec![0u8; (len as usize).min(2 * COPY_BYTES)];
    file.read_exact_at(&mut bytes, 0)
        .map_err(StorageError::io("read", &path))?;
    Ok(parse_superblock(&bytes))
}

/// The newest valid copy in the bytes of a superblock file.
pub fn parse_superblock(bytes: &[u8]) -> Option<Superblock> {
    bytes
        .chunks(COPY_BYTES)
        .filter_map(decode_one)
        .filter_map(|payload| postcard::from_bytes::<Superblock>(payload).ok())
        .max_by_key(|s| s.sequence)
}

/// Writes the superblock, one copy at a time (see the module docs).
pub struct SuperblockWriter {
    file: Box<dyn FsFile>,
    path: PathBuf,
    last: Superblock,
    fsync: bool,
}

impl SuperblockWriter {
    /// Opens (creating, durably) the superblock of `dir`; `last` is what it holds now.
    pub fn open_in(
        fs: &FsRef,
        dir: &Path,
        last: Option<Superblock>,
        fsync: bool,
    ) -> Result<SuperblockWriter, StorageError> {
        ensure_dir(&**fs, dir)?;
        let path = dir.join(SUPERBLOCK_FILE);
        let existed = fs.exists(&path).map_err(StorageError::io("stat", &path))?;
        let file = fs
            .open(&path, OpenMode::ReadWriteCreate)
            .map_err(StorageError::io("open", &path))?;
        if !existed {
            fsync_dir(&**fs, dir)?;
        }
        Ok(SuperblockWriter {
            file,
            path,
            last: last.unwrap_or_default(),
            fsync,
        })
    }

    /// What was last written.
    pub fn last(&self) -> Superblock {
        self.last
    }

    /// Durably records that the WAL holds at least `wal_len` bytes and a checkpoint of slot
    /// `checkpoint_slot` is in place.
    pub fn write(&mut self, wal_len: u64, checkpoint_slot: u64) -> Result<(), StorageError> {
        let next = Superblock {
            sequence: self.last.sequence + 1,
            wal_len,
            checkpoint_slot,
        };
        let mut buf = Vec::with_capacity(COPY_BYTES);
        encode_into(&mut buf, &next, COPY_BYTES as u32, &self.path)?;
        buf.resize(COPY_BYTES, 0);
        let offset = (next.sequence % 2) * COPY_BYTES as u64;
        self.file
            .write_all_at(&buf, offset)
            .map_err(StorageError::io("write", &self.path))?;
        if self.fsync {
            self.file
                .sync_data()
                .map_err(StorageError::io("fdatasync", &self.path))?;
        }
        self.last = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs;

    #[test]
    fn the_newest_valid_copy_wins_and_a_torn_copy_leaves_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::real();
        assert_eq!(read_superblock_in(&*real, dir.path()).unwrap(), None);
        let mut writer = SuperblockWriter::open_in(&real, dir.path(), None, true).unwrap();
        writer.write(100, 0).unwrap();
        writer.write(250, 7).unwrap();
        let read = read_superblock_in(&*real, dir.path()).unwrap().unwrap();
        assert_eq!((read.wal_len, read.checkpoint_slot), (250, 7));
        // Tear the newest copy (sequence 2 lives in copy 0).
        let path = dir.path().join(SUPERBLOCK_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let read = read_superblock_in(&*real, dir.path()).unwrap().unwrap();
        assert_eq!((read.sequence, read.wal_len), (1, 100));
    }

    #[test]
    fn less_than_recorded_is_refused_naming_the_file() {
        let block = Superblock {
            sequence: 3,
            wal_len: 1_000,
            checkpoint_slot: 40,
        };
        let dir = Path::new("/data");
        let wal = dir.join("wal.log");
        assert!(block.check(dir, &wal, 1_000, Some(40)).is_ok());
        let short = block.check(dir, &wal, 0, Some(40)).unwrap_err().to_string();
        assert!(
            short.contains("/data/wal.log") && short.contains("1000"),
            "{short}"
        );
        let lost = block.check(dir, &wal, 2_000, None).unwrap_err().to_string();
        assert!(
            lost.contains("/data/checkpoint") && lost.contains("slot 40"),
            "{lost}"
        );
    }
}
