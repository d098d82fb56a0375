//! A simulated disk that fails the way real ones do, under the replica's real storage code.
//!
//! Each replica gets one [`SimDisk`], which implements `replica::storage::Fs`. It keeps two
//! views of everything: what the process has written (the page cache: it survives a process
//! kill) and what is durable (it survives a power cut). The POSIX rules decide what moves from
//! one to the other:
//!
//! - file contents become durable when the file is fsynced (`sync_data` / `sync_all`);
//! - a created, renamed or removed name becomes durable when its directory is fsynced;
//! - a new directory's own name is durable when its parent directory is fsynced.
//!
//! Faults:
//! - [`SimDisk::power_cut`]: names fall back to their durable state, and every file keeps its
//!   durable contents plus *any subset* of the pages written since its last fsync, with one of
//!   them torn at a random byte, and a length anywhere between the two.
//! - [`SimDisk::arm_crash`]: the process dies inside a later storage call; a write in progress
//!   lands as a prefix, and every call after it fails (the process is gone).
//! - [`SimDisk::fail_next_syncs`]: fsync returns EIO and the data stays where it was: in the
//!   page cache, not durable. The replica must stop rather than carry on.
//! - [`SimDisk::flip_bit`]: a bit of synced, durable data flips. The replica must notice; the
//!   disk records where it flipped and reports a violation if the replica later cuts a file
//!   at or below that byte (silently truncating acknowledged data).
//! - [`SimDisk::cut_short`]: the WAL of a stopped replica loses its end: a lost synced write
//!   (the file falls back to what an earlier fsync left), or a cut at or between record
//!   boundaries, down to empty. The cut reaches below what the replica's superblock records as
//!   durable (below everything acknowledged when it keeps none), so the replica must refuse to
//!   start; the disk reports a violation if it starts ([`SimDisk::note_start`]).

use rand::Rng;
use replica::storage::superblock::{parse_superblock, SUPERBLOCK_FILE};
use replica::storage::{Fs, FsFile, OpenMode};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit a power cut keeps or loses independently.
pub const PAGE_BYTES: usize = 4096;

/// One replica's disk. Cloning shares it.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Default)]
struct DiskState {
    files: BTreeMap<u64, FileData>,
    next_inode: u64,
    /// File names as the process sees them, and as a power cut would leave them. Keyed by
    /// the path's bytes (the storage code builds every path by `join`, so the same file is
    /// always the same bytes): comparing bytes is what keeps a checkpoint's renames and
    /// directory fsyncs cheap, where `Path`'s component-wise order cost a tenth of a seed's
    /// storage work. Where the order shows (a bit flip's candidates, `list_files`) the names
    /// are put back in `Path` order first.
    names: BTreeMap<OsString, u64>,
    durable_names: BTreeMap<OsString, u64>,
    dirs: BTreeSet<OsString>,
    durable_dirs: BTreeSet<OsString>,
    /// Storage calls left before the armed crash; `None` when none is armed.
    crash_in_ops: Option<u32>,
    /// Fraction of the interrupted write that lands, for the armed crash.
    crash_tear: f64,
    /// The process died inside a storage call: everything fails until `revive`.
    dead: bool,
    failing_syncs: u32,
    /// Bit flips as (inode, byte offset), for the truncation check.
    flips: Vec<(u64, u64)>,
    /// A cut the replica has not started (or refused to start) from yet.
    pending_cut: Option<CutShort>,
    violations: Vec<String>,
    pub stats: DiskStats,
}

#[derive(Clone, Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Where the data the latest fsync made durable began: what came before it the process
    /// had made durable and then kept writing after (so it had every chance to vouch for
    /// it). For a file appended at its end that is its durable length before the fsync; for
    /// the WAL, written into zeros it laid down ahead, it is where its last burst began.
    vouched_len: usize,
    /// The lowest offset written or cut since the last fsync; `None` when `data` is all
    /// durable. An fsync copies only from here, so syncing a long log stays cheap.
    dirty_from: Option<usize>,
    /// The end of what was written or cut since the last fsync (meaningful with
    /// `dirty_from`): an fsync copies only up to here, so a file written into space laid
    /// down ahead (the WAL's zeroed tail) costs what was written, not its whole length.
    dirty_to: usize,
    /// Where the data of the latest fsyncs began (the ends of the data earlier fsyncs left):
    /// a lost synced write falls back to one of them.
    synced_lens: Vec<usize>,
}

/// Most fsync lengths a file remembers for [`SimDisk::cut_short`].
const SYNCED_LENS_KEPT: usize = 64;

/// How [`SimDisk::cut_short`] cut a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutKind {
    /// The file fell back to the length an earlier fsync left: later synced writes were lost.
    LostSyncedWrites,
    /// Cut at a record (frame) boundary: what is left reads as a valid, shorter log.
    AtRecordBoundary,
    /// Cut inside a record.
    BetweenRecordBoundaries,
}

/// A file cut short: where, from and to how many bytes, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutShort {
    pub path: PathBuf,
    pub from_len: u64,
    pub to_len: u64,
    pub kind: CutKind,
}

/// Counters, for tests and curiosity.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub power_cuts: u64,
    pub failed_syncs: u64,
    pub bit_flips: u64,
}

fn killed() -> io::Error {
    io::Error::other("simulated crash: the process died inside this call")
}

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the process died inside a storage call since the last `revive`.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// A new process may use the disk again (after a kill, a crash or a power cut).
    pub fn revive(&self) {
        let mut state = self.lock();
        state.dead = false;
        state.crash_in_ops = None;
        state.gc();
    }

    /// The process dies inside its `ops`-th storage call from now; a write it was doing lands
    /// as its first `tear` fraction.
    pub fn arm_crash(&self, ops: u32, tear: f64) {
        let mut state = self.lock();
        state.crash_in_ops = Some(ops);
        state.crash_tear = tear.clamp(0.0, 1.0);
    }

    /// Cancels an armed crash that has not fired.
    pub fn disarm(&self) {
        self.lock().crash_in_ops = None;
    }

    /// The next `n` fsyncs fail with EIO.
    pub fn fail_next_syncs(&self, n: u32) {
        self.lock().failing_syncs = n;
    }

    /// Power loss: see the module docs. The process is dead until `revive`.
    pub fn power_cut(&self, rng: &mut impl Rng) {
        let mut state = self.lock();
        state.stats.power_cuts += 1;
        state.names = state.durable_names.clone();
        state.dirs = state.durable_dirs.clone();
        // A name whose directory's own name was never made durable is gone with it.
        let reachable = |dirs: &BTreeSet<OsString>, path: &OsStr| {
            Path::new(path)
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty() && *a != Path::new("/"))
                .all(|a| dirs.contains(a.as_os_str()))
        };
        let dirs = state.dirs.clone();
        state.dirs.retain(|d| reachable(&dirs, d));
        let dirs = state.dirs.clone();
        state.names.retain(|p, _| reachable(&dirs, p));
        for file in state.files.values_mut() {
            file.lose_unsynced(rng);
        }
        state.dead = true;
        state.crash_in_ops = None;
    }

    /// Flips one bit of acknowledged data in the WAL or the checkpoint (the files whose loss
    /// loses promises); returns where. "Acknowledged" is data that an fsync made durable and
    /// that the process then wrote after: the replica vouches for what it syncs with its next
    /// write, so the very last fsynced burst of a crashed process is not a target.
    pub fn flip_bit(&self, rng: &mut impl Rng) -> Option<(PathBuf, u64)> {
        let mut state = self.lock();
        // A checkpoint is written whole and fsynced before it is renamed into place: all of it
        // is acknowledged once it is there.
        // Never past either view's end: a replica may have cut the file below what it once
        // vouched for (a buggy recovery can leave it empty), and that is its bug to show, not
        // an index out of bounds here.
        let vouched = |path: &Path, file: &FileData| {
            let len = match path.file_name() {
                Some(n) if n == "wal.log" => file.vouched_len,
                Some(n) if n == "checkpoint" => file.durable.len(),
                _ => 0,
            };
            len.min(file.durable.len()).min(file.data.len())
        };
        let mut candidates: Vec<(PathBuf, u64, usize)> = state
            .names
            .iter()
            .filter(|(path, _)| state.durable_names.contains_key(*path))
            .filter_map(|(path, inode)| {
                let path = PathBuf::from(path);
                let len = vouched(&path, state.files.get(inode)?);
                Some((path, *inode, len))
            })
            .filter(|(_, inode, len)| {
                *len > 0
                    && state
                        .files
                        .get(inode)
                        .is_some_and(|f| f.dirty_from.is_none())
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        let (path, inode, len) = candidates[rng.gen_range(0..candidates.len())].clone();
        let file = state.files.get_mut(&inode)?;
        let offset = rng.gen_range(0..len);
        let bit = 1u8 << rng.gen_range(0..8);
        file.durable[offset] ^= bit;
        file.data[offset] ^= bit;
        state.flips.push((inode, offset as u64));
        state.stats.bit_flips += 1;
        Some((path, offset as u64))
    }

    /// Cuts the WAL of a stopped replica short (see the module docs); `None` if it holds
    /// nothing it must keep. Call it between a crash and the restart.
    pub fn cut_short(&self, rng: &mut impl Rng) -> Option<CutShort> {
        let mut state = self.lock();
        let (path, inode) = state
            .names
            .iter()
            .map(|(p, i)| (PathBuf::from(p), *i))
            .filter(|(p, _)| p.file_name().is_some_and(|n| n == "wal.log"))
            .min()?;
        let recorded = path
            .parent()
            .and_then(|dir| state.names.get(dir.join(SUPERBLOCK_FILE).as_os_str()))
            .and_then(|sb| parse_superblock(&state.files[sb].data))
            .map(|sb| sb.wal_len as usize);
        let file = state.files.get_mut(&inode)?;
        // What the replica must have: what its superblock vouches for, or, without one,
        // everything acknowledged.
        let must_keep = recorded.unwrap_or(file.vouched_len).min(file.durable.len());
        if must_keep == 0 || file.dirty_from.is_some() {
            return None;
        }
        let boundaries: Vec<usize> = frame_ends(&file.durable)
            .into_iter()
            .filter(|&end| end < must_keep)
            .collect();
        let earlier: Vec<usize> = file
            .synced_lens
            .iter()
            .copied()
            .filter(|&len| len < must_keep)
            .collect();
        let (kind, to_len) = match rng.gen_range(0..3) {
            0 if !earlier.is_empty() => (
                CutKind::LostSyncedWrites,
                earlier[rng.gen_range(0..earlier.len())],
            ),
            1 => (
                CutKind::BetweenRecordBoundaries,
                rng.gen_range(0..must_keep),
            ),
            _ => {
                let at = rng.gen_range(0..=boundaries.len());
                (
                    CutKind::AtRecordBoundary,
                    boundaries.get(at).copied().unwrap_or(0),
                )
            }
        };
        let from_len = written_len(&file.durable) as u64;
        file.durable.truncate(to_len);
        file.data.truncate(to_len);
        file.vouched_len = file.vouched_len.min(to_len);
        file.synced_lens.retain(|&len| len <= to_len);
        let cut = CutShort {
            path,
            from_len,
            to_len: to_len as u64,
            kind,
        };
        state.pending_cut = Some(cut.clone());
        Some(cut)
    }

    /// Cuts `path` to `len` bytes, durably, as [`SimDisk::cut_short`] does (for tests that
    /// aim at one length). `false` if there is no such file or its written data (zeros laid
    /// down ahead of it aside) are not longer than `len`.
    pub fn cut(&self, path: &Path, len: u64) -> bool {
        let mut state = self.lock();
        let Some(&inode) = state.names.get(path.as_os_str()) else {
            return false;
        };
        let Some(file) = state.files.get_mut(&inode) else {
            return false;
        };
        let to = len as usize;
        if written_len(&file.durable) <= to {
            return false;
        }
        let from_len = written_len(&file.durable) as u64;
        file.durable.truncate(to);
        file.data.truncate(to);
        file.vouched_len = file.vouched_len.min(to);
        file.synced_lens.retain(|&l| l <= to);
        state.pending_cut = Some(CutShort {
            path: path.to_path_buf(),
            from_len,
            to_len: len,
            kind: CutKind::AtRecordBoundary,
        });
        true
    }

    /// The replica started from this disk (`started`) or refused to: a replica that starts
    /// from a WAL cut short below what it recorded is a violation.
    pub fn note_start(&self, started: bool) {
        let mut state = self.lock();
        if let (Some(cut), true) = (state.pending_cut.take(), started) {
            state.violations.push(format!(
                "{} was cut from {} to {} bytes ({:?}), below what the replica recorded as \
                 durable, and the replica started from it instead of refusing",
                cut.path.display(),
                cut.from_len,
                cut.to_len,
                cut.kind
            ));
        }
    }

    /// Flips one bit of `path` at `offset`, durably (for tests that aim at one record).
    pub fn corrupt(&self, path: &Path, offset: u64) -> bool {
        let mut state = self.lock();
        let Some(&inode) = state.names.get(path.as_os_str()) else {
            return false;
        };
        let Some(file) = state.files.get_mut(&inode) else {
            return false;
        };
        let at = offset as usize;
        if at >= file.data.len() || at >= file.durable.len() {
            return false;
        }
        file.data[at] ^= 0x10;
        file.durable[at] ^= 0x10;
        state.flips.push((inode, offset));
        true
    }

    /// What the disk saw the replica do wrong (truncating acknowledged data after a flip).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// The current contents of `path`, if it exists (for tests).
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path.as_os_str())?;
        Some(state.files[inode].data.clone())
    }

    /// Every file name, as the process sees them (for tests).
    pub fn file_names(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = self.lock().names.keys().map(PathBuf::from).collect();
        names.sort();
        names
    }
}

impl DiskState {
    /// Counts a storage call toward an armed crash. `Err` once the process is dead; `Ok(true)`
    /// when this very call is the one the process dies in.
    fn tick(&mut self) -> io::Result<bool> {
        if self.dead {
            return Err(killed());
        }
        match self.crash_in_ops.as_mut() {
            Some(0) => {
                self.dead = true;
                self.crash_in_ops = None;
                Ok(true)
            }
            Some(left) => {
                *left -= 1;
                Ok(false)
            }
            None => Ok(false),
        }
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() || p == Path::new("/") => true,
            Some(p) => self.dirs.contains(p.as_os_str()),
        }
    }

    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.names
            .get(path.as_os_str())
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }

    /// Forgets files no name points at any more (no process holds handles between lives).
    fn gc(&mut self) {
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.files.retain(|inode, _| live.contains(inode));
    }

    fn check_truncation(&mut self, inode: u64, len: u64) {
        if let Some((_, offset)) = self.flips.iter().find(|(i, o)| *i == inode && *o >= len) {
            let message = format!(
                "a file whose durable byte {offset} was flipped was cut to {len} bytes: \
                 acknowledged data silently truncated instead of refused or repaired"
            );
            self.violations.push(message);
        }
    }
}

/// Whether `name` is an entry of the directory `dir` (`Path::parent` of it is `dir`), by
/// bytes: both are built by `join`, so neither has `.`, `..` or doubled separators.
fn in_dir(name: &OsStr, dir: &Path) -> bool {
    let dir = dir.as_os_str().as_bytes();
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let rest = name.as_bytes().strip_prefix(dir);
    let entry = rest.and_then(|r| r.strip_prefix(b"/"));
    entry.is_some_and(|e| !e.is_empty() && !e.contains(&b'/'))
}

/// Where a file's written data ends: the end of its last complete frame when only zeros
/// follow it (the space the WAL lays down ahead of itself), else its length.
fn written_len(bytes: &[u8]) -> usize {
    let end = frame_ends(bytes).last().copied().unwrap_or(0);
    if bytes[end..].iter().all(|&b| b == 0) {
        end
    } else {
        bytes.len()
    }
}

/// The end offsets of the complete frames (`[u32 len][u32 crc][payload]`) from the start.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = at + 8 + len;
        if len == 0 || end > bytes.len() {
            break;
        }
        ends.push(end);
        at = end;
    }
    ends
}

impl FileData {
    /// `from..to` was written or cut since the last fsync.
    fn mark_dirty(&mut self, from: usize, to: usize) {
        if self.dirty_from.is_none() {
            self.dirty_to = 0;
        }
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
        self.dirty_to = self.dirty_to.max(to);
    }

    fn lose_unsynced(&mut self, rng: &mut impl Rng) {
        let Some(dirty_from) = self.dirty_from.take() else {
            return;
        };
        let dirty_to = std::mem::take(&mut self.dirty_to);
        let (old, new) = (self.durable.len(), self.data.len());
        let len = match rng.gen_range(0..3) {
            0 => old,
            1 => new,
            _ => rng.gen_range(old.min(new)..=old.max(new)),
        };
        let mut result = self.durable.clone();
        result.resize(len, 0);
        let pages = len.div_ceil(PAGE_BYTES);
        let mut kept = Vec::new();
        // Pages outside the unsynced writes are the same in both (past the end of both views
        // the page runs from the shorter view's end: that differs, and is covered by
        // `dirty_to`, which a growing write or length change moves there).
        for page in dirty_from / PAGE_BYTES..pages.min(dirty_to.div_ceil(PAGE_BYTES)) {
            let start = page * PAGE_BYTES;
            let end = (start + PAGE_BYTES).min(len);
            let differs =
                self.data.get(start..end.min(new)) != self.durable.get(start..end.min(old));
            if differs && rng.gen_bool(0.5) {
                let src_end = end.min(new);
                if start < src_end {
                    result[start..src_end].copy_from_slice(&self.data[start..src_end]);
                }
                kept.push(page);
            }
        }
        // One kept page may itself be torn at any byte: the rest of it keeps the old bytes.
        if !kept.is_empty() && rng.gen_bool(0.5) {
            let page = kept[rng.gen_range(0..kept.len())];
            let start = page * PAGE_BYTES;
            let end = (start + PAGE_BYTES).min(len);
            let cut = rng.gen_range(start..end.max(start + 1)).min(end);
            for (i, byte) in result.iter_mut().enumerate().take(end).skip(cut) {
                *byte = self.durable.get(i).copied().unwrap_or(0);
            }
        }
        self.durable = result.clone();
        self.data = result;
    }
}

impl Fs for SimDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.lock();
        if state.tick()? {
            return Err(killed());
        }
        let inode = match (state.names.get(path.as_os_str()).copied(), mode) {
            (Some(inode), OpenMode::CreateTruncate) => {
                let file = state.files.entry(inode).or_default();
                file.mark_dirty(0, file.data.len());
                file.data.clear();
                inode
            }
            (Some(inode), _) => inode,
            (None, OpenMode::Read) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}", path.display()),
                ))
            }
            (None, _) => {
                if !state.parent_exists(path) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no directory for {}", path.display()),
                    ));
                }
                state.next_inode += 1;
                let inode = state.next_inode;
                state.files.insert(inode, FileData::default());
                state.names.insert(path.as_os_str().to_owned(), inode);
                inode
            }
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
            writable: mode != OpenMode::Read,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        if state.dead {
            return Err(killed());
        }
        let name = path.as_os_str();
        Ok(state.names.contains_key(name) || state.dirs.contains(name) || path == Path::new("/"))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.tick()? {
            return Err(killed());
        }
        if state.dirs.contains(path.as_os_str()) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
        }
        if !state.parent_exists(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no parent"));
        }
        state.dirs.insert(path.as_os_str().to_owned());
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.tick()? {
            return Err(killed());
        }
        let inode = state.inode(from)?;
        state.names.remove(from.as_os_str());
        state.names.insert(to.as_os_str().to_owned(), inode);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.tick()? {
            return Err(killed());
        }
        state.inode(path)?;
        state.names.remove(path.as_os_str());
        Ok(())
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.lock();
        if state.dead {
            return Err(killed());
        }
        let mut files: Vec<PathBuf> = (state.names.keys())
            .filter(|p| in_dir(p, dir))
            .map(PathBuf::from)
            .collect();
        files.sort();
        Ok(files)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.tick()? {
            return Err(killed());
        }
        let state = &mut *state;
        // The directory's durable names become its names now: only the differences move.
        let names = &state.names;
        (state.durable_names).retain(|p, i| !in_dir(p, dir) || names.get(p) == Some(i));
        for (p, i) in names.iter().filter(|(p, _)| in_dir(p, dir)) {
            if state.durable_names.get(p) != Some(i) {
                state.durable_names.insert(p.clone(), *i);
            }
        }
        let dirs = &state.dirs;
        (state.durable_dirs).retain(|p| !in_dir(p, dir) || dirs.contains(p));
        for p in dirs.iter().filter(|p| in_dir(p, dir)) {
            if !state.durable_dirs.contains(p) {
                state.durable_dirs.insert(p.clone());
            }
        }
        Ok(())
    }
}

/// An open file on a [`SimDisk`].
struct SimFile {
    disk: SimDisk,
    inode: u64,
    writable: bool,
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        let mut state = self.disk.lock();
        if state.tick()? {
            return Err(killed());
        }
        state.stats.syncs += 1;
        if state.failing_syncs > 0 {
            state.failing_syncs -= 1;
            state.stats.failed_syncs += 1;
            return Err(io::Error::other("simulated EIO from fsync"));
        }
        let file = state.files.entry(self.inode).or_default();
        if let Some(from) = file.dirty_from.take() {
            let len = file.data.len();
            let from = from.min(len).min(file.durable.len());
            let to = std::mem::take(&mut file.dirty_to).clamp(from, len);
            file.vouched_len = from;
            // Only `from..to` and the length changed since the last fsync.
            file.durable.resize(len, 0);
            file.durable[from..to].copy_from_slice(&file.data[from..to]);
            file.synced_lens.retain(|&l| l < from);
            file.synced_lens.push(from);
            if file.synced_lens.len() > SYNCED_LENS_KEPT {
                file.synced_lens.remove(0);
            }
        }
        Ok(())
    }
}

impl FsFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let state = self.disk.lock();
        if state.dead {
            return Err(killed());
        }
        Ok(state.files.get(&self.inode).map_or(0, |f| f.data.len()) as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.disk.lock();
        if state.dead {
            return Err(killed());
        }
        let data = state
            .files
            .get(&self.inode)
            .map_or(&[][..], |f| &f.data[..]);
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start.saturating_add(buf.len());
        let src = data
            .get(start..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "read only"));
        }
        let mut state = self.disk.lock();
        let dies_here = state.tick()?;
        let landed = if dies_here {
            (buf.len() as f64 * state.crash_tear) as usize
        } else {
            buf.len()
        };
        state.stats.writes += 1;
        state.stats.bytes_written += landed as u64;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let file = state.files.entry(self.inode).or_default();
        file.mark_dirty(start, start + landed);
        if file.data.len() < start + landed {
            file.data.resize(start + landed, 0);
        }
        file.data[start..start + landed].copy_from_slice(&buf[..landed]);
        if dies_here {
            return Err(killed());
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.disk.lock();
        if state.tick()? {
            return Err(killed());
        }
        state.check_truncation(self.inode, len);
        let size = usize::try_from(len).map_err(io::Error::other)?;
        let file = state.files.entry(self.inode).or_default();
        // A truncation or extension is metadata the next fsync makes durable, like a write:
        // until then a power cut may undo it.
        file.mark_dirty(size.min(file.data.len()), size.max(file.data.len()));
        file.data.resize(size, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// `/n1/wal.log` on `disk`, its name and directory made durable (so a power cut keeps
    /// the file and only its data is at stake).
    fn durable_wal(disk: &SimDisk) -> (Box<dyn FsFile>, PathBuf) {
        let dir = Path::new("/n1");
        let wal = dir.join("wal.log");
        disk.create_dir(dir).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        let file = disk.open(&wal, OpenMode::ReadWriteCreate).unwrap();
        disk.sync_dir(dir).unwrap();
        (file, wal)
    }

    /// A truncation is made durable by the fsync after it, as a write is: a synced cut
    /// survives a power cut, and an unsynced one may be undone by it (before, `set_len` never
    /// marked the file dirty, so the fsync that was meant to make a torn-tail cut durable
    /// copied nothing and a power cut brought the cut bytes back).
    #[test]
    fn a_truncation_is_durable_after_its_fsync_and_only_then() {
        let disk = SimDisk::new();
        let (file, wal) = durable_wal(&disk);
        file.write_all_at(&[7u8; 100], 0).unwrap();
        file.sync_data().unwrap();
        file.set_len(40).unwrap();
        file.sync_all().unwrap();
        for seed in 0..32 {
            disk.power_cut(&mut SmallRng::seed_from_u64(seed));
            disk.revive();
            assert_eq!(disk.read(&wal).map(|d| d.len()), Some(40), "seed {seed}");
        }
        let lens: std::collections::BTreeSet<usize> = (0..32)
            .map(|seed| {
                let probe = SimDisk::new();
                let (f, _) = durable_wal(&probe);
                f.write_all_at(&[7u8; 40], 0).unwrap();
                f.sync_data().unwrap();
                f.set_len(10).unwrap();
                probe.power_cut(&mut SmallRng::seed_from_u64(seed));
                probe.read(&wal).map_or(0, |d| d.len())
            })
            .collect();
        assert!(lens.contains(&40), "an unsynced cut can be lost: {lens:?}");
    }

    /// The real WAL, written into the zeros it lays down ahead, on this disk: a power cut
    /// that keeps any subset of an unsynced burst's pages (one of them torn, the rest zeros)
    /// loses no synced record and yields a prefix of what was written; a lost page before a
    /// kept one is refused as middle damage, never cut, and anything cut is unsynced. An
    /// fsync copies only what was written, not the zeroed stretch after it.
    #[test]
    fn a_power_cut_inside_the_wals_zeroed_space_keeps_every_synced_record() {
        use replica::storage::{StorageError, Wal};
        let rec = |n: u64| vec![n as u8; 300 + (n as usize * 37) % 900];
        let (mut clean, mut torn, mut refused) = (0, 0, 0);
        for seed in 0..64 {
            let disk = SimDisk::new();
            let fs: replica::storage::FsRef = Arc::new(disk.clone());
            let dir = Path::new("/n1");
            let (mut wal, _, _) = Wal::<Vec<u8>>::open_in(fs.clone(), dir, 1 << 20).unwrap();
            for n in 0..20 {
                wal.append(&rec(n)).unwrap();
            }
            wal.sync().unwrap();
            let synced_end = wal.size_bytes();
            let file = disk.read(&dir.join("wal.log")).unwrap();
            assert!(
                file.len() as u64 >= synced_end + replica::storage::wal::PREALLOCATE_BYTES / 2,
                "zeros laid ahead"
            );
            let bytes_before = disk.stats().bytes_written;
            // An unsynced burst of several pages.
            for n in 20..40 {
                wal.append(&rec(n)).unwrap();
            }
            let written = wal.size_bytes() - synced_end;
            wal.sync().unwrap();
            assert!(disk.stats().bytes_written - bytes_before < written + 4096);
            for n in 40..60 {
                wal.append(&rec(n)).unwrap();
            }
            // Written, not synced: the power cut may keep any of it.
            wal.set_fsync(false);
            wal.sync().unwrap();
            drop(wal);
            disk.power_cut(&mut SmallRng::seed_from_u64(seed));
            disk.revive();
            match Wal::<Vec<u8>>::open_in(fs, dir, 1 << 20) {
                Ok((_, records, cut)) => {
                    assert!(
                        records.len() >= 40,
                        "seed {seed}: {} records",
                        records.len()
                    );
                    let expected: Vec<Vec<u8>> = (0..records.len() as u64).map(rec).collect();
                    assert_eq!(records, expected, "seed {seed}");
                    match cut {
                        Some(_) => torn += 1,
                        None => clean += 1,
                    }
                }
                Err(StorageError::CorruptMiddle { offset, .. }) => {
                    assert!(offset >= synced_end, "seed {seed}: refused at {offset}");
                    refused += 1;
                }
                Err(e) => panic!("seed {seed}: {e}"),
            }
            assert!(disk.violations().is_empty(), "{:?}", disk.violations());
        }
        assert!(
            clean > 0 && torn > 0,
            "{clean} clean, {torn} torn, {refused} refused"
        );
    }

    /// A WAL with two fsynced bursts (so its first burst is acknowledged), then cut to empty
    /// by its own replica, as a recovery that misreads its frames does: a bit flip must find
    /// nothing to flip rather than index past the end (issue 24, item 4: `flip_bit` panicked
    /// with "the len is 0").
    #[test]
    fn a_bit_flip_on_a_wal_its_replica_emptied_flips_nothing_and_does_not_panic() {
        let disk = SimDisk::new();
        let (file, _) = durable_wal(&disk);
        file.write_all_at(&[7u8; 64], 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(&[8u8; 64], 64).unwrap();
        file.sync_data().unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(
            disk.flip_bit(&mut rng).is_some(),
            "acknowledged bytes to flip"
        );
        file.set_len(0).unwrap();
        file.sync_all().unwrap();
        for seed in 0..64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            assert_eq!(
                disk.flip_bit(&mut rng),
                None,
                "seed {seed}: nothing is left"
            );
        }
    }
}
