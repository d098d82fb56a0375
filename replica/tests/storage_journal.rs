//! The executed journal: contiguous appends, reads, truncation on restart, snapshot resets.

use replica::bank::{Command, Executed, Op, OpResult};
use replica::storage::journal::{JOURNAL_DIR, LEGACY_JOURNAL_FILE};
use replica::storage::{fs, Journal, JournalLimits, StorageError};
use replica::types::{ClientId, RequestId};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

fn entry(exec_index: u64) -> Executed {
    Executed {
        exec_index,
        command: Command {
            client: ClientId(exec_index % 7),
            request: RequestId(exec_index),
            op: Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount: 1,
            },
        },
        result: OpResult::Transferred {
            from_balance: 9,
            to_balance: 11,
        },
        txn: None,
    }
}

fn open(dir: &Path) -> Journal {
    let (journal, cuts) = Journal::open(dir).unwrap();
    assert!(cuts.is_empty(), "{cuts:?}");
    journal
}

fn open_limited(dir: &Path, segment_entries: usize, retain_entries: u64) -> Journal {
    let limits = JournalLimits {
        segment_entries,
        retain_entries,
    };
    let (journal, cuts) = Journal::open_in(fs::real(), dir, limits).unwrap();
    assert!(cuts.is_empty(), "{cuts:?}");
    journal
}

/// The journal's segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(JOURNAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The only segment file of a small journal.
fn only_segment(dir: &Path) -> PathBuf {
    let files = segments(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn fill(journal: &mut Journal, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        journal.append(&entry(i)).unwrap();
    }
}

#[test]
fn entries_are_read_back_by_range_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    assert_eq!((journal.first_available(), journal.last()), (1, 0));
    assert!(journal.read(1, 10).unwrap().is_empty());
    fill(&mut journal, 1..=100);
    assert_eq!(
        journal.read(10, 5).unwrap(),
        (10..15).map(entry).collect::<Vec<_>>()
    );
    assert_eq!(journal.read(98, 50).unwrap().len(), 3);
    assert!(journal.read(101, 5).unwrap().is_empty());
    drop(journal);

    let mut journal = open(dir.path());
    assert_eq!((journal.first_available(), journal.last()), (1, 100));
    assert_eq!(
        journal.read(0, 1000).unwrap(),
        (1..=100).map(entry).collect::<Vec<_>>()
    );
}

#[test]
fn appends_must_be_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=3);
    let err = journal.append(&entry(5)).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::JournalGap {
                expected: 4,
                got: 5,
                ..
            }
        ),
        "{err}"
    );
    journal.append(&entry(4)).unwrap();
}

#[test]
fn truncate_after_cuts_back_for_re_execution() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=100);
    journal.truncate_after(200).unwrap();
    assert_eq!(journal.last(), 100);
    journal.truncate_after(60).unwrap();
    assert_eq!(journal.last(), 60);
    fill(&mut journal, 61..=70);
    drop(journal);
    let mut journal = open(dir.path());
    assert_eq!(
        journal.read(1, 1000).unwrap(),
        (1..=70).map(entry).collect::<Vec<_>>()
    );
    journal.truncate_after(0).unwrap();
    assert_eq!((journal.first_available(), journal.last()), (1, 0));
}

#[test]
fn reset_starts_over_after_a_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=10);
    journal.reset(1001).unwrap();
    assert_eq!((journal.first_available(), journal.last()), (1001, 1000));
    assert!(journal.read(1, 10).unwrap().is_empty());
    assert!(journal.append(&entry(11)).is_err());
    fill(&mut journal, 1001..=1005);
    drop(journal);

    let mut journal = open(dir.path());
    assert_eq!((journal.first_available(), journal.last()), (1001, 1005));
    assert_eq!(
        journal.read(0, 100).unwrap(),
        (1001..=1005).map(entry).collect::<Vec<_>>()
    );
    // Cutting back before the start (an older checkpoint) restarts the journal there.
    journal.truncate_after(500).unwrap();
    assert_eq!((journal.first_available(), journal.last()), (501, 500));
    fill(&mut journal, 501..=502);
}

#[test]
fn a_torn_tail_is_cut_and_the_earlier_entries_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=20);
    drop(journal);
    let path = only_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let (mut journal, cuts) = Journal::open(dir.path()).unwrap();
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(journal.last(), 19);
    fill(&mut journal, 20..=21);
    assert_eq!(
        journal.read(19, 10).unwrap(),
        (19..=21).map(entry).collect::<Vec<_>>()
    );
}

#[test]
fn an_empty_or_wholly_torn_file_starts_a_fresh_journal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(JOURNAL_DIR)).unwrap();
    let path = dir
        .path()
        .join(JOURNAL_DIR)
        .join("00000000000000000001.log");
    std::fs::write(path, [3u8, 0]).unwrap();
    let (mut journal, cuts) = Journal::open(dir.path()).unwrap();
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    fill(&mut journal, 1..=2);
    assert_eq!(journal.read(1, 5).unwrap().len(), 2);
}

#[test]
fn middle_damage_is_cut_not_fatal() {
    // The journal is never fsynced between checkpoints, so a power cut may keep a later page
    // and lose an earlier one. It is derived state: cut at the damage, rebuild by re-execution;
    // refusing to start over it would take a healthy replica out of the cluster.
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=20);
    drop(journal);
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[200] ^= 0x33;
    std::fs::write(&path, bytes).unwrap();
    let (journal, cuts) = Journal::open(dir.path()).expect("opens");
    let torn = cuts.first().expect("the damage is reported");
    assert!(torn.offset <= 200, "{torn:?}");
    assert!(journal.last() < 20 && journal.first_available() == 1);
}

#[test]
fn a_flipped_byte_early_costs_only_the_rest_of_its_segment() {
    // Issue 21: one flipped byte early in the journal used to discard every entry after it.
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_limited(dir.path(), 100, u64::MAX);
    fill(&mut journal, 1..=1000);
    drop(journal);
    let files = segments(dir.path());
    assert_eq!(files.len(), 10, "{files:?}");
    let damaged = files[0].clone();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[600] ^= 0x5a;
    std::fs::write(&damaged, bytes).unwrap();

    let limits = JournalLimits {
        segment_entries: 100,
        retain_entries: u64::MAX,
    };
    let (mut journal, cuts) = Journal::open_in(fs::real(), dir.path(), limits).unwrap();
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0].path, damaged, "the cut names the damaged file");
    assert!(
        cuts[0].offset <= 600,
        "and the offset of the damage: {cuts:?}"
    );
    assert_eq!((journal.first_available(), journal.last()), (1, 1000));
    let head = journal.read(1, 1000).unwrap();
    let kept = head.len() as u64;
    assert!((1..100).contains(&kept), "{kept}");
    assert_eq!(head, (1..=kept).map(entry).collect::<Vec<_>>());
    // A read never crosses the hole: asking from inside it starts after it (and goes on
    // across the segments that follow without one).
    let tail = journal.read(kept + 1, 1000).unwrap();
    assert_eq!(tail, (101..=1000).map(entry).collect::<Vec<_>>());
    assert_eq!(journal.len(), 1000 - (100 - kept));
    // Appends go on where they were.
    fill(&mut journal, 1001..=1001);
}

#[test]
fn fetched_segments_below_the_checkpoint_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_limited(dir.path(), 100, u64::MAX);
    fill(&mut journal, 1..=1000);
    // Fetched, but above the checkpoint: kept (a restart cuts back to the checkpoint and
    // re-executes, and the harness may need them again).
    journal.release_below(901).unwrap();
    assert_eq!(journal.first_available(), 1);
    journal.note_checkpoint(550).unwrap();
    // Whole segments at or below the checkpoint and below what was fetched: 1..=500.
    assert_eq!(journal.first_available(), 501);
    assert_eq!(journal.read(1, 5).unwrap()[0], entry(501));
    journal.note_checkpoint(1000).unwrap();
    assert_eq!(journal.first_available(), 901);
    drop(journal);
    let journal = open_limited(dir.path(), 100, u64::MAX);
    assert_eq!((journal.first_available(), journal.last()), (901, 1000));
    assert_eq!(segments(dir.path()).len(), 1);
}

#[test]
fn unfetched_entries_are_bounded_by_the_retention() {
    // Issue 21: the journal grew 8 bytes of memory (and a record on disk) per command forever.
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_limited(dir.path(), 100, 300);
    for chunk in 0..50u64 {
        fill(&mut journal, chunk * 100 + 1..=chunk * 100 + 100);
        journal.note_checkpoint(chunk * 100 + 100).unwrap();
        assert!(journal.len() <= 400, "{} entries kept", journal.len());
    }
    assert_eq!(journal.last(), 5000);
    assert!(journal.first_available() > 4500);
    assert!(segments(dir.path()).len() <= 5);
    // Entries above the checkpoint are never deleted, however many.
    fill(&mut journal, 5001..=6000);
    journal.note_checkpoint(5000).unwrap();
    assert_eq!(journal.read(5001, 10_000).unwrap().len(), 1000);
    assert!(journal.len() >= 1000);
}

#[test]
fn truncation_and_restart_work_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_limited(dir.path(), 10, u64::MAX);
    fill(&mut journal, 1..=95);
    journal.truncate_after(42).unwrap();
    assert_eq!(journal.last(), 42);
    assert_eq!(segments(dir.path()).len(), 5);
    fill(&mut journal, 43..=55);
    // Continue past a hole (the journal ended before a checkpoint).
    journal.restart_at(80).unwrap();
    fill(&mut journal, 80..=81);
    drop(journal);
    let mut journal = open_limited(dir.path(), 10, u64::MAX);
    assert_eq!(journal.read(1, 1000).unwrap().len(), 55);
    assert_eq!(journal.read(56, 1000).unwrap(), vec![entry(80), entry(81)]);
    journal.truncate_after(30).unwrap();
    assert_eq!(
        journal.read(1, 1000).unwrap(),
        (1..=30).map(entry).collect::<Vec<_>>()
    );
    journal.reset(7).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
}

#[test]
fn an_earlier_versions_single_file_journal_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open(dir.path());
    fill(&mut journal, 1..=30);
    drop(journal);
    std::fs::rename(
        only_segment(dir.path()),
        dir.path().join(LEGACY_JOURNAL_FILE),
    )
    .unwrap();
    std::fs::remove_dir(dir.path().join(JOURNAL_DIR)).unwrap();
    let mut journal = open(dir.path());
    assert_eq!(
        journal.read(1, 100).unwrap(),
        (1..=30).map(entry).collect::<Vec<_>>()
    );
    fill(&mut journal, 31..=31);
    assert!(!dir.path().join(LEGACY_JOURNAL_FILE).exists());
}
