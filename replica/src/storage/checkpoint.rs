//! Checkpoint files: the executed state (bank, reply table, positions) at some slot.
//!
//! A checkpoint is one framed record (see [`super::frame`]) in `checkpoint`. Writing goes to
//! `checkpoint.tmp`, which is fsynced, then the current `checkpoint` becomes `checkpoint.prev`
//! and the new file is renamed into place, then the directory is fsynced. Reading prefers
//! `checkpoint` and falls back, with a warning, to `checkpoint.prev` when the newest is missing
//! (a crash between the two renames) or corrupt.
//!
//! The fallback is only lossless if the WAL still holds the records since the previous
//! checkpoint: the shell should compact the WAL back to the *previous* checkpoint, not the
//! newest one.

use super::frame::{encode_into, HEADER_BYTES};
use super::{ensure_dir, fsync_dir, StorageError, MAX_CHECKPOINT_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const CHECKPOINT_PREV_FILE: &str = "checkpoint.prev";
const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";

/// Durably replaces the checkpoint in `dir`, keeping the previous one as `checkpoint.prev`.
pub fn write_checkpoint<C: Serialize>(dir: &Path, checkpoint: &C) -> Result<(), StorageError> {
    ensure_dir(dir)?;
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    let mut buf = Vec::new();
    encode_into(&mut buf, checkpoint, MAX_CHECKPOINT_BYTES, &path)?;
    if let Err(e) = write_synced(&tmp, &buf) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if path.exists() {
        let prev = dir.join(CHECKPOINT_PREV_FILE);
        std::fs::rename(&path, &prev)
            .map_err(StorageError::io("rename to checkpoint.prev", &path))?;
    }
    std::fs::rename(&tmp, &path).map_err(StorageError::io("rename over", &path))?;
    fsync_dir(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    use std::io::Write;
    let mut file = File::create(path).map_err(StorageError::io("create", path))?;
    file.write_all(bytes)
        .map_err(StorageError::io("write", path))?;
    file.sync_all().map_err(StorageError::io("fsync", path))
}

/// Reads the newest usable checkpoint in `dir`; `None` if there has never been one.
pub fn read_checkpoint<C: DeserializeOwned>(dir: &Path) -> Result<Option<C>, StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    let prev = dir.join(CHECKPOINT_PREV_FILE);
    let newest_problem = match read_one::<C>(&path) {
        Ok(Some(checkpoint)) => return Ok(Some(checkpoint)),
        Ok(None) => None,
        Err(e) => Some(e),
    };
    match (read_one::<C>(&prev), newest_problem) {
        (Ok(None), None) => Ok(None),
        (Ok(None), Some(e)) => Err(e),
        (Ok(Some(checkpoint)), problem) => {
            let why = problem.map_or_else(|| "it is missing".to_string(), |e| e.to_string());
            tracing::warn!(
                "using the previous checkpoint {} because the newest, {}, is unusable: {why}",
                prev.display(),
                path.display()
            );
            Ok(Some(checkpoint))
        }
        (Err(prev_err), problem) => Err(StorageError::Corrupt {
            path,
            reason: format!(
                "{}; and the fallback is unusable too: {prev_err}",
                problem.map_or_else(|| "it is missing".to_string(), |e| e.to_string())
            ),
        }),
    }
}

/// Reads one checkpoint file: `None` if it does not exist.
fn read_one<C: DeserializeOwned>(path: &Path) -> Result<Option<C>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io {
                op: "open",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = file
        .metadata()
        .map_err(StorageError::io("stat", path))?
        .len();
    if len > u64::from(MAX_CHECKPOINT_BYTES) + HEADER_BYTES as u64 {
        return Err(corrupt(format!(
            "{len} bytes is over the limit of {MAX_CHECKPOINT_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut bytes)
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
