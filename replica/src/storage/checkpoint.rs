//! Checkpoint files: the executed state (bank, reply table, positions) at some slot.
//!
//! A checkpoint is one framed record (see [`super::frame`]) in `checkpoint`. Writing goes to
//! `checkpoint.tmp`, which is fsynced, then the current `checkpoint` becomes `checkpoint.prev`
//! and the new file is renamed into place, then the directory is fsynced.
//!
//! Reading takes `checkpoint`. It falls back, with a warning, to `checkpoint.prev` only when
//! the newest is *missing*: a crash between the two renames, before the WAL was compacted past
//! the previous checkpoint. A newest checkpoint that exists but is damaged is an error: the WAL
//! was already compacted up to it, so the previous checkpoint plus the WAL would bring the
//! replica back with less than it promised (it would accept again for slots it had voted on).

use super::frame::{encode_into, HEADER_BYTES};
use super::{ensure_dir, fs, fsync_dir, Fs, OpenMode, StorageError, MAX_CHECKPOINT_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::ErrorKind;
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const CHECKPOINT_PREV_FILE: &str = "checkpoint.prev";
const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";

/// Durably replaces the checkpoint in `dir`, keeping the previous one as `checkpoint.prev`.
pub fn write_checkpoint<C: Serialize>(dir: &Path, checkpoint: &C) -> Result<(), StorageError> {
    write_checkpoint_in(&*fs::real(), dir, checkpoint)
}

/// Like [`write_checkpoint`] on the file system `fs`.
pub fn write_checkpoint_in<C: Serialize>(
    fs: &dyn Fs,
    dir: &Path,
    checkpoint: &C,
) -> Result<(), StorageError> {
    ensure_dir(fs, dir)?;
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    let mut buf = Vec::new();
    encode_into(&mut buf, checkpoint, MAX_CHECKPOINT_BYTES, &path)?;
    if let Err(e) = write_synced(fs, &tmp, &buf) {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    if fs.exists(&path).map_err(StorageError::io("stat", &path))? {
        let prev = dir.join(CHECKPOINT_PREV_FILE);
        fs.rename(&path, &prev)
            .map_err(StorageError::io("rename to checkpoint.prev", &path))?;
    }
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename over", &path))?;
    fsync_dir(fs, dir)
}

fn write_synced(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let file = fs
        .open(path, OpenMode::CreateTruncate)
        .map_err(StorageError::io("create", path))?;
    file.write_all_at(bytes, 0)
        .map_err(StorageError::io("write", path))?;
    file.sync_all().map_err(StorageError::io("fsync", path))
}

/// Reads the newest usable checkpoint in `dir`; `None` if there has never been one.
pub fn read_checkpoint<C: DeserializeOwned>(dir: &Path) -> Result<Option<C>, StorageError> {
    read_checkpoint_in(&*fs::real(), dir)
}

/// Like [`read_checkpoint`] on the file system `fs`.
pub fn read_checkpoint_in<C: DeserializeOwned>(
    fs: &dyn Fs,
    dir: &Path,
) -> Result<Option<C>, StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    let prev = dir.join(CHECKPOINT_PREV_FILE);
    match read_one::<C>(fs, &path)? {
        Some(checkpoint) => Ok(Some(checkpoint)),
        None => {
            // Missing newest: a crash between the two renames of `write_checkpoint`. The WAL is
            // only compacted after the new checkpoint is durable, so it still covers
            // everything since the previous one, and falling back loses nothing.
            let fallback = read_one::<C>(fs, &prev).map_err(|e| StorageError::Corrupt {
                path: path.clone(),
                reason: format!("it is missing, and the fallback is unusable too: {e}"),
            })?;
            if fallback.is_some() {
                tracing::warn!(
                    "using the previous checkpoint {} because the newest, {}, is missing \
                     (a crash between two renames)",
                    prev.display(),
                    path.display()
                );
            }
            Ok(fallback)
        }
    }
}

/// Reads one checkpoint file: `None` if it does not exist.
fn read_one<C: DeserializeOwned>(fs: &dyn Fs, path: &Path) -> Result<Option<C>, StorageError> {
    let file = match fs.open(path, OpenMode::Read) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io {
                op: "open",
                path: path.to_path_buf(),
                cause: e,
            })
        }
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = file.len().map_err(StorageError::io("stat", path))?;
    if len > u64::from(MAX_CHECKPOINT_BYTES) + HEADER_BYTES as u64 {
        return Err(corrupt(format!(
            "{len} bytes is over the limit of {MAX_CHECKPOINT_BYTES}"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(StorageError::io("read", path))?;
    decode_single_frame(&bytes).map(Some).map_err(corrupt)
}

/// Decodes a buffer that must hold exactly one intact frame.
fn decode_single_frame<C: DeserializeOwned>(bytes: &[u8]) -> Result<C, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "only {} bytes, shorter than a frame header",
            bytes.len()
        ));
    }
    let (header, payload) = bytes.split_at(HEADER_BYTES);
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len != payload.len() {
        return Err(format!(
            "header says {len} payload bytes, file holds {}",
            payload.len()
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    postcard::from_bytes(payload).map_err(|e| format!("undecodable: {e}"))
}
