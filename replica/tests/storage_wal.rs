//! WAL behaviour on disk: round trips, crashes, torn tails, middle corruption, compaction.

use proptest::prelude::*;
use replica::storage::wal::{PREALLOCATE_BYTES, WAL_FILE};
use replica::storage::{StorageError, Wal};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

mod storage_support;
use storage_support::with_captured_logs;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Rec {
    n: u64,
    data: Vec<u8>,
}

fn rec(n: u64) -> Rec {
    Rec {
        n,
        data: vec![n as u8; (n % 50) as usize + 1],
    }
}

fn open(dir: &Path) -> (Wal<Rec>, Vec<Rec>, Option<replica::storage::TornTail>) {
    Wal::<Rec>::open(dir).expect("open wal")
}

/// Writes records 1..=n and syncs them; returns the byte offset where each frame starts.
fn write_records(dir: &Path, n: u64) -> Vec<u64> {
    write_records_to_end(dir, n).0
}

/// Like [`write_records`], also returning where the written records end (the zeroed space
/// laid down ahead of them follows).
fn write_records_to_end(dir: &Path, n: u64) -> (Vec<u64>, u64) {
    let (mut wal, _, _) = open(dir);
    let mut starts = Vec::new();
    for i in 1..=n {
        starts.push(wal.size_bytes());
        wal.append(&rec(i)).unwrap();
    }
    wal.sync().unwrap();
    (starts, wal.size_bytes())
}

/// Whether the file at `path` holds only zeros from `from` to its end, at least `at_least`
/// of them.
fn zeros_from(path: &Path, from: u64, at_least: u64) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.len() as u64 >= from + at_least && bytes[from as usize..].iter().all(|&b| b == 0)
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn records_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 100);
    let (wal, records, torn) = open(dir.path());
    assert_eq!(records, (1..=100).map(rec).collect::<Vec<_>>());
    assert!(torn.is_none());
    let path = dir.path().join(WAL_FILE);
    assert!(zeros_from(&path, wal.size_bytes(), PREALLOCATE_BYTES / 2));
}

#[test]
fn a_crash_keeps_synced_records_and_loses_only_unsynced_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _, _) = open(dir.path());
        for i in 1..=10 {
            wal.append(&rec(i)).unwrap();
        }
        wal.sync().unwrap();
        wal.append(&rec(11)).unwrap();
        // Dropped without sync: the process "crashes" here.
    }
    let (mut wal, records, torn) = open(dir.path());
    assert_eq!(records.len(), 10);
    assert!(torn.is_none());
    wal.append(&rec(11)).unwrap();
    wal.sync().unwrap();
    assert_eq!(open(dir.path()).1.len(), 11);
}

#[test]
fn a_record_cut_mid_write_is_trimmed_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (starts, len) = write_records_to_end(dir.path(), 10);
    let path = dir.path().join(WAL_FILE);
    set_len(&path, len - 3);

    let (mut wal, records, torn) = open(dir.path());
    assert_eq!(records, (1..=9).map(rec).collect::<Vec<_>>());
    let torn = torn.expect("a torn tail is reported");
    assert_eq!(torn.offset, starts[9]);
    assert_eq!(torn.dropped_bytes, len - 3 - starts[9]);
    assert_eq!(
        file_len(&path),
        starts[9],
        "the file is cut back to the last good record"
    );

    wal.append(&rec(10)).unwrap();
    wal.sync().unwrap();
    assert_eq!(open(dir.path()).1, (1..=10).map(rec).collect::<Vec<_>>());
}

#[test]
fn a_flipped_byte_in_the_last_record_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let starts = write_records(dir.path(), 10);
    let path = dir.path().join(WAL_FILE);
    flip_byte(&path, starts[9] + 9);

    let (logs, (_, records, torn)) = with_captured_logs(|| open(dir.path()));
    assert_eq!(records.len(), 9);
    let torn = torn.unwrap();
    assert_eq!(torn.offset, starts[9]);
    assert!(torn.reason.contains("checksum"), "{}", torn.reason);
    assert!(
        logs.contains("WARN") && logs.contains("wal.log") && logs.contains(&starts[9].to_string()),
        "{logs}"
    );
}

#[test]
fn a_partial_header_and_garbage_at_the_end_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (starts, end) = write_records_to_end(dir.path(), 3);
    let path = dir.path().join(WAL_FILE);
    // Garbage after the zeroed space: not zeros to the end, so the zeros before it are no
    // written end but damage, and everything from the last record on is cut.
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[7, 0, 0])
        .unwrap();
    let (_, records, torn) = open(dir.path());
    assert_eq!((records.len(), torn.unwrap().offset), (3, end));
    assert_eq!(file_len(&path), end);

    // A partial header in place of the zeros.
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[7, 0, 0])
        .unwrap();
    let (_, records, torn) = open(dir.path());
    assert_eq!((records.len(), torn.unwrap().dropped_bytes), (3, 3));
    assert_eq!(starts.len(), 3);
}

#[test]
fn zeros_after_the_last_record_are_the_written_end_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_records_to_end(dir.path(), 3);
    let path = dir.path().join(WAL_FILE);
    for zeros in [0, 3, 4096] {
        set_len(&path, end + zeros);
        let (logs, (wal, records, torn)) = with_captured_logs(|| open(dir.path()));
        assert_eq!(records.len(), 3);
        assert!(torn.is_none(), "{zeros} zeros: {torn:?}");
        assert!(!logs.contains("WARN"), "{logs}");
        assert_eq!(wal.size_bytes(), end);
        assert_eq!(file_len(&path), end + zeros, "the zeros are kept, not cut");
    }
}

#[test]
fn one_stray_byte_deep_in_the_zeroed_space_makes_it_damage_not_the_written_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_records_to_end(dir.path(), 3);
    let path = dir.path().join(WAL_FILE);
    let len = file_len(&path);
    // Past the first page of zeros and with zeros after it: the zero check goes a page at a
    // time and must still look at every byte.
    let stray = end + 3 * 4096 + 1234;
    assert!(stray < len, "the zeroed space reaches past {stray}");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[stray as usize] = 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (_, records, torn) = open(dir.path());
    let torn = torn.expect("not zeros to the end: cut as damage");
    assert_eq!((records.len(), torn.offset), (3, end));
    assert_eq!(file_len(&path), end);
}

#[test]
fn records_larger_than_the_read_buffer_are_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = |n: u64| Rec {
        n,
        data: (0..3 * 1024 * 1024 + 7)
            .map(|i| (i % 251) as u8 ^ n as u8)
            .collect(),
    };
    {
        let (mut wal, _, _) = open(dir.path());
        wal.append(&rec(1)).unwrap();
        wal.append(&big(2)).unwrap();
        wal.append(&rec(3)).unwrap();
        wal.append(&big(4)).unwrap();
        wal.sync().unwrap();
    }
    let (_, records, torn) = open(dir.path());
    assert!(torn.is_none(), "{torn:?}");
    assert_eq!(records, vec![rec(1), big(2), rec(3), big(4)]);
}

#[test]
fn a_torn_frame_followed_by_zeros_is_cut_and_the_zeroed_space_laid_down_again() {
    let dir = tempfile::tempdir().unwrap();
    let (starts, end) = write_records_to_end(dir.path(), 10);
    let path = dir.path().join(WAL_FILE);
    // A crash mid-write: the first half of record 10's frame landed, its second half and
    // what follows are the zeros laid down ahead.
    let mut bytes = std::fs::read(&path).unwrap();
    let half = (starts[9] + (end - starts[9]) / 2) as usize;
    bytes[half..end as usize].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let (mut wal, records, torn) = open(dir.path());
    assert_eq!(records, (1..=9).map(rec).collect::<Vec<_>>());
    let torn = torn.expect("the torn frame is reported");
    assert_eq!(torn.offset, starts[9]);
    assert!(torn.reason.contains("checksum"), "{}", torn.reason);
    assert_eq!(file_len(&path), starts[9], "cut at the torn frame");

    wal.append(&rec(10)).unwrap();
    wal.sync().unwrap();
    assert!(zeros_from(&path, wal.size_bytes(), PREALLOCATE_BYTES / 2));
    let (_, records, torn) = open(dir.path());
    assert_eq!(records, (1..=10).map(rec).collect::<Vec<_>>());
    assert!(torn.is_none());
}

#[test]
fn a_log_written_before_the_zeroed_space_opens_and_gains_it() {
    // main's build wrote the same frames with nothing after the last one: the file ends
    // where its records do.
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = write_records_to_end(dir.path(), 20);
    let path = dir.path().join(WAL_FILE);
    set_len(&path, end);
    let (logs, (mut wal, records, torn)) = with_captured_logs(|| open(dir.path()));
    assert_eq!(records, (1..=20).map(rec).collect::<Vec<_>>());
    assert!(torn.is_none() && !logs.contains("WARN"), "{logs}");
    assert_eq!(file_len(&path), end, "opening writes nothing");
    wal.append(&rec(21)).unwrap();
    wal.sync().unwrap();
    assert!(zeros_from(&path, wal.size_bytes(), PREALLOCATE_BYTES / 2));
    assert_eq!(open(dir.path()).1, (1..=21).map(rec).collect::<Vec<_>>());
}

#[test]
fn bursts_inside_the_zeroed_space_keep_the_file_length_until_they_cross_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(dir.path());
    let path = dir.path().join(WAL_FILE);
    wal.append(&rec(1)).unwrap();
    wal.sync().unwrap();
    let laid = file_len(&path);
    assert_eq!(laid % PREALLOCATE_BYTES, 0);
    let big = |n: u64| Rec {
        n,
        data: vec![n as u8; 16 * 1024],
    };
    let mut lens = std::collections::BTreeSet::new();
    let mut n = 2;
    while wal.size_bytes() < laid {
        wal.append(&big(n)).unwrap();
        wal.sync().unwrap();
        lens.insert(file_len(&path));
        n += 1;
    }
    // Every burst but the one that crossed the end wrote inside the file.
    assert_eq!(lens.len(), 2, "{lens:?}");
    assert!(zeros_from(&path, wal.size_bytes(), PREALLOCATE_BYTES / 2));
    drop(wal);
    let expected: Vec<Rec> = std::iter::once(rec(1)).chain((2..n).map(big)).collect();
    assert_eq!(open(dir.path()).1, expected);
}

#[test]
fn corruption_followed_by_valid_records_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let starts = write_records(dir.path(), 10);
    let path = dir.path().join(WAL_FILE);
    flip_byte(&path, starts[4] + 10);

    let err = Wal::<Rec>::open(dir.path())
        .err()
        .expect("middle corruption must fail");
    match &err {
        StorageError::CorruptMiddle {
            offset, next_valid, ..
        } => {
            assert_eq!((*offset, *next_valid), (starts[4], starts[5]));
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("wal.log") && text.contains(&starts[4].to_string()),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap().len() as u64,
        file_len(&path),
        "nothing was cut"
    );
}

#[test]
fn a_corrupt_length_field_in_the_middle_is_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let starts = write_records(dir.path(), 10);
    let path = dir.path().join(WAL_FILE);
    flip_byte(&path, starts[2] + 1); // the length now runs past the end of the file
    let err = Wal::<Rec>::open(dir.path()).err().expect("must fail");
    assert!(
        matches!(err, StorageError::CorruptMiddle { offset, .. } if offset == starts[2]),
        "{err}"
    );
}

#[test]
fn rewrite_replaces_the_log_atomically() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 20);
    // A crash during an earlier rewrite left a temporary file: it must be ignored.
    std::fs::write(dir.path().join("wal.log.tmp"), b"half-written garbage").unwrap();
    let (mut wal, records, _) = open(dir.path());
    assert_eq!(records.len(), 20);

    wal.append(&rec(99)).unwrap(); // unsynced: discarded by the rewrite
    wal.rewrite(&[rec(18), rec(19), rec(20)]).unwrap();
    assert!(!dir.path().join("wal.log.tmp").exists());
    wal.append(&rec(21)).unwrap();
    wal.sync().unwrap();
    let path = dir.path().join(WAL_FILE);
    assert!(zeros_from(&path, wal.size_bytes(), PREALLOCATE_BYTES / 2));
    drop(wal);
    let (_, records, torn) = open(dir.path());
    assert_eq!(records, vec![rec(18), rec(19), rec(20), rec(21)]);
    assert!(torn.is_none());
}

#[test]
fn an_oversized_record_is_refused_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = Wal::<Rec>::open_with_limit(dir.path(), 100).unwrap();
    wal.append(&rec(1)).unwrap();
    let big = Rec {
        n: 2,
        data: vec![1; 200],
    };
    assert!(matches!(
        wal.append(&big),
        Err(StorageError::RecordTooLarge { .. })
    ));
    wal.append(&rec(3)).unwrap();
    wal.sync().unwrap();
    let (_, records, _) = Wal::<Rec>::open_with_limit(dir.path(), 100).unwrap();
    assert_eq!(records, vec![rec(1), rec(3)]);
}

#[test]
fn with_fsync_off_sync_still_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(dir.path());
    wal.set_fsync(false);
    wal.append(&rec(1)).unwrap();
    wal.sync().unwrap();
    assert_eq!(open(dir.path()).1, vec![rec(1)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever prefix of the file survives a crash, recovery yields exactly the records whose
    /// frames are complete, and never fails.
    #[test]
    fn any_truncation_point_recovers_the_complete_prefix(n in 1u64..40, cut_seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let (mut starts, len) = write_records_to_end(dir.path(), n);
        let path = dir.path().join(WAL_FILE);
        starts.push(len);
        let cut = cut_seed % (len + 1);
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();

        let (_, records, torn) = open(dir.path());
        let complete = starts.iter().skip(1).filter(|&&end| end <= cut).count();
        prop_assert_eq!(records, (1..=complete as u64).map(rec).collect::<Vec<_>>());
        prop_assert_eq!(torn.is_some(), cut != starts[complete]);
        prop_assert_eq!(file_len(&path), starts[complete]);
    }

    /// A byte flipped anywhere in the last frame loses that record only.
    #[test]
    fn any_damage_to_the_last_record_loses_only_it(n in 2u64..20, at_seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        let (starts, end) = write_records_to_end(dir.path(), n);
        let path = dir.path().join(WAL_FILE);
        let last = *starts.last().unwrap();
        let at = last + at_seed % (end - last);
        flip_byte(&path, at);
        let (_, records, torn) = open(dir.path());
        prop_assert_eq!(records.len() as u64, n - 1);
        prop_assert!(torn.is_some());
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_of_an_idle_log_is_refused() {
    // The idle log's mark vouches for its last burst: that record was fsynced (and may have
    // been acknowledged), so damage in it is refused. Without the mark it would be the file's
    // last frame, and cut as a torn write.
    let dir = tempfile::tempdir().unwrap();
    let starts = write_records(dir.path(), 5);
    {
        let (mut wal, _, _) = open(dir.path());
        wal.confirm().unwrap();
    }
    let path = dir.path().join(WAL_FILE);
    let len = file_len(&path);
    flip_byte(&path, starts[4] + 9);
    let err = Wal::<Rec>::open(dir.path()).err().expect("refused");
    assert!(
        matches!(err, StorageError::CorruptMiddle { offset, .. } if offset == starts[4]),
        "{err}"
    );
    assert_eq!(file_len(&path), len, "nothing was cut");
}

#[test]
fn an_idle_log_confirms_its_last_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(dir.path());
    wal.append(&rec(1)).unwrap();
    wal.sync().unwrap();
    wal.confirm().unwrap();
    drop(wal);
    let path = dir.path().join(WAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[9] ^= 0x5a; // inside record 1, which the mark after it vouches for
    std::fs::write(&path, &bytes).unwrap();
    assert!(Wal::<Rec>::open(dir.path()).is_err());
}

/// A file system that counts what is read through it.
struct CountingFs {
    read_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    largest_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

struct CountingFile {
    inner: Box<dyn replica::storage::FsFile>,
    read_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    largest_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl replica::storage::FsFile for CountingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        self.read_bytes.fetch_add(buf.len() as u64, SeqCst);
        self.largest_read.fetch_max(buf.len() as u64, SeqCst);
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
}

impl replica::storage::Fs for CountingFs {
    fn open(
        &self,
        path: &Path,
        mode: replica::storage::OpenMode,
    ) -> std::io::Result<Box<dyn replica::storage::FsFile>> {
        Ok(Box::new(CountingFile {
            inner: replica::storage::RealFs.open(path, mode)?,
            read_bytes: self.read_bytes.clone(),
            largest_read: self.largest_read.clone(),
        }))
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        replica::storage::RealFs.exists(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        replica::storage::RealFs.create_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        replica::storage::RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        replica::storage::RealFs.remove_file(path)
    }
    fn list_files(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        replica::storage::RealFs.list_files(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        replica::storage::RealFs.sync_dir(dir)
    }
}

#[test]
fn a_restart_replays_the_wal_as_it_reads_it_in_bounded_chunks() {
    // Issue 21: restart memory grew with the WAL, which was loaded whole before replay.
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(dir.path());
    let big = |n: u64| Rec {
        n,
        data: vec![n as u8; 4096],
    };
    for n in 1..=2048 {
        wal.append(&big(n)).unwrap();
    }
    wal.sync().unwrap();
    let file_len = wal.size_bytes();
    drop(wal);
    assert!(file_len > 8 * 1024 * 1024, "{file_len}");

    let read_bytes = Arc::new(AtomicU64::new(0));
    let largest_read = Arc::new(AtomicU64::new(0));
    let fs = Arc::new(CountingFs {
        read_bytes: read_bytes.clone(),
        largest_read: largest_read.clone(),
    });
    let mut seen = 0u64;
    let mut read_at_first = None;
    let (_wal, torn) = Wal::<Rec>::open_streaming(fs, dir.path(), 1 << 20, &mut |r| {
        seen += 1;
        assert_eq!(r, big(seen), "records come in file order");
        read_at_first.get_or_insert(read_bytes.load(SeqCst));
    })
    .unwrap();
    assert!(torn.is_none());
    assert_eq!(seen, 2048);
    let chunk = 1024 * 1024;
    assert!(
        read_at_first.unwrap() <= chunk,
        "the first record is replayed after reading {} bytes, not the whole log",
        read_at_first.unwrap()
    );
    assert!(
        largest_read.load(SeqCst) <= chunk,
        "every read is one bounded chunk"
    );
    assert!(
        read_bytes.load(SeqCst) < 2 * file_len,
        "the log is read about once"
    );
}
