//! The replica's `--log-file`, capped in size so logs cannot fill the disk.
//!
//! Past `max_bytes` the file is renamed to `<file>.1` (replacing the one before) and a fresh
//! file is started, so the logs of one replica take at most twice the cap. Rotation happens
//! between two writes (tracing writes each event in one call), so no line is split.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The default cap of one log file.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// An append-only log file that rotates once past its cap.
pub struct CappedLog {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
}

impl CappedLog {
    /// Opens `path` for appending (what it holds counts against the cap).
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<CappedLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(CappedLog {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes: max_bytes.max(1),
        })
    }

    /// The previous file's name: `<file>.1`.
    pub fn rotated_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, Self::rotated_path(&self.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for CappedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_past_its_cap_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.log");
        let mut log = CappedLog::open(&path, 100).unwrap();
        for i in 0..100 {
            // One write per event, as tracing's formatter does.
            let line = format!("line {i:04} of a chatty replica\n");
            log.write_all(line.as_bytes()).unwrap();
        }
        let current = std::fs::metadata(&path).unwrap().len();
        let old = std::fs::metadata(CappedLog::rotated_path(&path))
            .unwrap()
            .len();
        assert!(current <= 100 && old <= 100, "{current} {old}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("line 0099 of a chatty replica\n"), "{text}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
