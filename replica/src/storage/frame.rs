//! The on-disk record frame and the recovery scan shared by every storage file.
//!
//! A frame is `[u32 len LE][u32 crc32 LE of payload][payload]`. Recovery reads frames from the
//! start of a file until the first one that is damaged (short, over the size bound, checksum
//! mismatch, or rejected by the caller's decoder). It then has to decide whether that damage is
//! a torn tail (cut it) or corruption in the middle (refuse): it searches the rest of the file,
//! at every byte offset, for a frame that is complete, has the right checksum and decodes. A
//! crash mid-write leaves only a prefix of the last write, which contains no such frame; if one
//! is found, cutting the file would lose real records, so recovery fails instead.
//!
//! The search is bounded ([`RESYNC_BUDGET_BYTES`] of checksummed candidate bytes): past the
//! budget it gives up and reports corruption, which is the safe answer.

use super::{FsFile, StorageError, TornTail};
use serde::Serialize;
use std::io::ErrorKind;
use std::path::Path;

pub const HEADER_BYTES: usize = 8;

/// Takes each good frame `(offset, payload)` during recovery; `Err(reason)` marks it damaged.
pub type AcceptFrame<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// Most candidate payload bytes the middle-corruption search checksums before giving up.
const RESYNC_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// Read buffer of the recovery scan.
const SCAN_BUFFER_BYTES: usize = 1024 * 1024;

/// Lets postcard append straight into a caller's buffer (and lets us undo a failed record).
struct Extender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Extender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Appends one framed `record` to `buf`. On error `buf` is left as it was.
pub fn encode_into<R: Serialize>(
    buf: &mut Vec<u8>,
    record: &R,
    max: u32,
    path: &Path,
) -> Result<(), StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_BYTES]);
    if let Err(source) = postcard::to_extend(record, Extender(buf)) {
        buf.truncate(start);
        return Err(StorageError::Encode {
            path: path.to_path_buf(),
            cause: source,
        });
    }
    let len = buf.len() - start - HEADER_BYTES;
    if len == 0 || len > max as usize {
        buf.truncate(start);
        return Err(if len == 0 {
            StorageError::EmptyRecord {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::RecordTooLarge {
                path: path.to_path_buf(),
                len,
                max,
            }
        });
    }
    let crc = crc32fast::hash(&buf[start + HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The payload of the one frame at the start of `bytes`, if it is complete and its checksum
/// matches (for small fixed-place records such as the superblock's copies).
pub fn decode_one(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..HEADER_BYTES)?;
    let (len, crc) = parse_header(header);
    let payload = bytes.get(HEADER_BYTES..HEADER_BYTES.checked_add(len as usize)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some(payload)
}

/// Splits a frame header into `(len, crc)`.
fn parse_header(header: &[u8]) -> (u32, u32) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    len.copy_from_slice(&header[..4]);
    crc.copy_from_slice(&header[4..8]);
    (u32::from_le_bytes(len), u32::from_le_bytes(crc))
}

/// Checks a header against the size bound and the file length; the reason if it is damaged.
fn check_len(len: u32, offset: u64, file_len: u64, max: u32) -> Result<(), String> {
    if len == 0 {
        return Err("zero-length frame".into());
    }
    if len > max {
        return Err(format!("frame length {len} exceeds the limit {max}"));
    }
    let end = offset + HEADER_BYTES as u64 + u64::from(len);
    if end > file_len {
        return Err(format!(
            "frame of {len} bytes runs past the end of the file ({file_len} bytes)"
        ));
    }
    Ok(())
}

/// Where a recovery scan stopped.
struct ScanStop {
    /// End of the last good frame.
    good_end: u64,
    file_len: u64,
    /// Why the frame at `good_end` is damaged, if the scan did not reach the end cleanly.
    damage: Option<String>,
}

/// Reads a file front to back through a bounded buffer of positioned reads, lending out
/// slices of its buffer: a frame's payload is checksummed and decoded where it was read, never
/// copied again.
struct SeqReader<'a> {
    file: &'a dyn FsFile,
    path: &'a Path,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    file_len: u64,
}

impl SeqReader<'_> {
    /// The `n` bytes at file offset `at`, which must lie within the file. Offsets asked for
    /// only grow, so the buffer is refilled from `at` when they are not all in it (a frame
    /// longer than the buffer grows it to that frame).
    fn bytes_at(&mut self, at: u64, n: usize) -> Result<&[u8], StorageError> {
        let end = at + n as u64;
        if at < self.buf_start || end > self.buf_start + self.buf.len() as u64 {
            let want = (self.file_len.saturating_sub(at)).min(SCAN_BUFFER_BYTES.max(n) as u64);
            if want < n as u64 {
                // The length was checked against the file size, so running out means the
                // file shrank under us: an I/O problem rather than damage.
                return Err(StorageError::Io {
                    op: "read",
                    path: self.path.to_path_buf(),
                    cause: std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "file shrank while being read",
                    ),
                });
            }
            self.buf.resize(want as usize, 0);
            self.file
                .read_exact_at(&mut self.buf, at)
                .map_err(StorageError::io("read", self.path))?;
            self.buf_start = at;
        }
        let from = (at - self.buf_start) as usize;
        Ok(&self.buf[from..from + n])
    }
}

/// Reads frames from the start of `reader`'s file, handing `(offset, payload)` to `accept`
/// until the first damaged frame or the end of the file.
fn scan(
    reader: &mut SeqReader<'_>,
    max: u32,
    accept: &mut AcceptFrame<'_>,
) -> Result<ScanStop, StorageError> {
    let file_len = reader.file_len;
    let mut offset = 0u64;
    loop {
        let stop = |damage: Option<String>| {
            Ok(ScanStop {
                good_end: offset,
                file_len,
                damage,
            })
        };
        if offset == file_len {
            return stop(None);
        }
        if file_len - offset < HEADER_BYTES as u64 {
            return stop(Some(format!(
                "partial frame header of {} bytes",
                file_len - offset
            )));
        }
        let (len, crc) = parse_header(reader.bytes_at(offset, HEADER_BYTES)?);
        if let Err(reason) = check_len(len, offset, file_len, max) {
            return stop(Some(reason));
        }
        let payload = reader.bytes_at(offset + HEADER_BYTES as u64, len as usize)?;
        if crc32fast::hash(payload) != crc {
            return stop(Some("checksum mismatch".into()));
        }
        if let Err(reason) = accept(offset, payload) {
            return stop(Some(reason));
        }
        offset += HEADER_BYTES as u64 + u64::from(len);
    }
}

/// Searches `(after, file_len)` for the offset of a complete, checksummed frame that
/// `is_valid` accepts. `Err(())` when the search budget ran out before an answer.
fn find_valid_frame(
    file: &dyn FsFile,
    path: &Path,
    after: u64,
    file_len: u64,
    max: u32,
    is_valid: &dyn Fn(&[u8]) -> bool,
) -> Result<Result<Option<u64>, ()>, StorageError> {
    let mut window = Vec::new();
    let mut window_start = after + 1;
    let mut budget = RESYNC_BUDGET_BYTES;
    let mut pos = after + 1;
    while pos + HEADER_BYTES as u64 <= file_len {
        if pos + HEADER_BYTES as u64 > window_start + window.len() as u64 {
            let want = (file_len - pos).min(SCAN_BUFFER_BYTES as u64) as usize;
            window.resize(want, 0);
            file.read_exact_at(&mut window, pos)
                .map_err(StorageError::io("read", path))?;
            window_start = pos;
        }
        let at = (pos - window_start) as usize;
        let (len, crc) = parse_header(&window[at..at + HEADER_BYTES]);
        if check_len(len, pos, file_len, max).is_ok() {
            if budget < u64::from(len) {
                return Ok(Err(()));
            }
            budget -= u64::from(len);
            let body_start = pos + HEADER_BYTES as u64;
            let body_end = body_start + u64::from(len);
            let owned;
            let payload = if body_end <= window_start + window.len() as u64 {
                let from = (body_start - window_start) as usize;
                &window[from..from + len as usize]
            } else {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, body_start)
                    .map_err(StorageError::io("read", path))?;
                owned = buf;
                &owned[..]
            };
            if crc32fast::hash(payload) == crc && is_valid(payload) {
                return Ok(Ok(Some(pos)));
            }
        }
        pos += 1;
    }
    Ok(Ok(None))
}

/// How recovery treats damage.
pub struct RecoverRules<'a> {
    /// Says whether a payload found by the middle-corruption search is a real record.
    pub is_valid: &'a dyn Fn(&[u8]) -> bool,
    /// Derived files (the journal) cut at any damage, even with valid records after it:
    /// nothing is lost that cannot be rebuilt, and a power cut can leave holes in data that
    /// was never fsynced.
    pub cut_middle: bool,
    /// Files written into zeros laid down ahead of them (the WAL): a run of zero bytes from
    /// the first damaged frame to the end of the file is space not yet written, the file's
    /// written end, neither cut nor reported. A frame never starts with a zero length, so
    /// zeros there cannot be a record; anything else in that run (a torn frame, stray bytes)
    /// is damage as in any other file.
    pub zero_tail_is_end: bool,
}

/// Reads every frame of the file at `path` (opened for writing as `file`), cutting a torn
/// tail. Returns the length of the good part and what was cut, if anything.
///
/// `accept` receives each good frame in order and may reject it (a decode or structure error,
/// treated as damage at that frame).
pub fn recover(
    file: &dyn FsFile,
    path: &Path,
    max: u32,
    accept: &mut AcceptFrame<'_>,
    rules: &RecoverRules<'_>,
) -> Result<(u64, Option<TornTail>), StorageError> {
    let file_len = file.len().map_err(StorageError::io("stat", path))?;
    let mut reader = SeqReader {
        file,
        path,
        buf: Vec::new(),
        buf_start: 0,
        file_len,
    };
    let stop = scan(&mut reader, max, accept)?;
    let Some(reason) = stop.damage else {
        return Ok((stop.good_end, None));
    };
    if rules.zero_tail_is_end && all_zero(&mut reader, stop.good_end, stop.file_len)? {
        return Ok((stop.good_end, None));
    }
    let search = if rules.cut_middle {
        Ok(None)
    } else {
        let is_valid = rules.is_valid;
        find_valid_frame(file, path, stop.good_end, stop.file_len, max, is_valid)?
    };
    match search {
        Ok(None) => {}
        Ok(Some(next_valid)) => {
            return Err(StorageError::CorruptMiddle {
                path: path.to_path_buf(),
                offset: stop.good_end,
                reason,
                next_valid,
            })
        }
        Err(()) => {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "damaged frame at byte offset {} ({reason}) and {} bytes after it that \
                     could not be proven to be a torn write",
                    stop.good_end,
                    stop.file_len - stop.good_end
                ),
            })
        }
    }
    cut_tail(file, path, stop.good_end)?;
    let torn = TornTail {
        path: path.to_path_buf(),
        offset: stop.good_end,
        dropped_bytes: stop.file_len - stop.good_end,
        reason,
    };
    tracing::warn!(
        file = %path.display(),
        offset = torn.offset,
        dropped_bytes = torn.dropped_bytes,
        reason = %torn.reason,
        "cut a torn tail off {} at byte offset {}",
        path.display(),
        torn.offset
    );
    Ok((stop.good_end, Some(torn)))
}

/// Whether the bytes `from..to` of the reader's file are all zero (read in bounded chunks;
/// the scan that stopped at `from` has most of them in its buffer already).
fn all_zero(reader: &mut SeqReader<'_>, from: u64, to: u64) -> Result<bool, StorageError> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(SCAN_BUFFER_BYTES as u64) as usize;
        if !is_zero(reader.bytes_at(at, n)?) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Whether every byte is zero: OR-ed a page at a time, which the compiler vectorizes (a
/// byte-by-byte search for a non-zero byte was a tenth of a simulated restart).
fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(4096)
        .all(|page| page.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Truncates the file to `len` and makes that durable before anything is appended after it.
fn cut_tail(file: &dyn FsFile, path: &Path, len: u64) -> Result<(), StorageError> {
    file.set_len(len)
        .map_err(StorageError::io("truncate", path))?;
    file.sync_all().map_err(StorageError::io("fsync", path))
}
