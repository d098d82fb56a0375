//! Checkpoint files: atomic replacement, the previous checkpoint as a fallback only when the
//! newest is missing, clear errors.

use replica::storage::checkpoint::{CHECKPOINT_FILE, CHECKPOINT_PREV_FILE};
use replica::storage::{read_checkpoint, write_checkpoint, StorageError};
use serde::{Deserialize, Serialize};
use std::path::Path;

mod storage_support;
use storage_support::with_captured_logs;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    slot: u64,
    balances: Vec<(String, i64)>,
}

fn state(slot: u64) -> State {
    State {
        slot,
        balances: vec![
            ("A".into(), 10 - slot as i64),
            ("B".into(), 10 + slot as i64),
        ],
    }
}

fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn no_checkpoint_yet_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_checkpoint::<State>(dir.path()).unwrap(), None);
    assert_eq!(
        read_checkpoint::<State>(&dir.path().join("missing")).unwrap(),
        None
    );
}

#[test]
fn the_newest_checkpoint_is_read_and_the_previous_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &state(1)).unwrap();
    write_checkpoint(dir.path(), &state(2)).unwrap();
    assert_eq!(
        read_checkpoint::<State>(dir.path()).unwrap(),
        Some(state(2))
    );
    assert!(dir.path().join(CHECKPOINT_PREV_FILE).exists());
    assert!(!dir.path().join("checkpoint.tmp").exists());
}

#[test]
fn a_corrupt_newest_checkpoint_is_refused_not_replaced_by_the_previous() {
    // The WAL is compacted up to the newest checkpoint, so falling back to the previous one
    // would restart the acceptor without the votes in between.
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &state(1)).unwrap();
    write_checkpoint(dir.path(), &state(2)).unwrap();
    damage(&dir.path().join(CHECKPOINT_FILE));
    let err = read_checkpoint::<State>(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().join(CHECKPOINT_FILE).display().to_string()),
        "{text}"
    );
}

#[test]
fn a_crash_between_the_renames_falls_back_to_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &state(1)).unwrap();
    write_checkpoint(dir.path(), &state(2)).unwrap();
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    std::fs::write(dir.path().join("checkpoint.tmp"), b"partial").unwrap();
    let (logs, read) = with_captured_logs(|| read_checkpoint::<State>(dir.path()));
    assert_eq!(read.unwrap(), Some(state(1)));
    assert!(
        logs.contains("WARN") && logs.contains("checkpoint.prev"),
        "{logs}"
    );
}

#[test]
fn a_corrupt_checkpoint_without_a_fallback_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &state(1)).unwrap();
    damage(&dir.path().join(CHECKPOINT_FILE));
    let err = read_checkpoint::<State>(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("checkpoint") && err.to_string().contains("checksum"),
        "{err}"
    );

    // Missing newest and a damaged fallback: an error naming both.
    std::fs::rename(
        dir.path().join(CHECKPOINT_FILE),
        dir.path().join(CHECKPOINT_PREV_FILE),
    )
    .unwrap();
    let err = read_checkpoint::<State>(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing") && err.contains("fallback"), "{err}");
}

#[test]
fn trailing_bytes_or_a_short_file_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CHECKPOINT_FILE);
    write_checkpoint(dir.path(), &state(1)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, &bytes).unwrap();
    assert!(read_checkpoint::<State>(dir.path()).is_err());
    std::fs::write(&path, &bytes[..5]).unwrap();
    assert!(read_checkpoint::<State>(dir.path()).is_err());
}
