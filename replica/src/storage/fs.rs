//! The file system under the storage code, as a trait, so one storage implementation serves
//! two worlds.
//!
//! `replica run` plugs in [`RealFs`] (std::fs, positioned I/O, real fsyncs). The simulator
//! (the `sim` crate) plugs in an in-memory disk that keeps what was fsynced apart from what was
//! only written, and can lose, tear or flip the latter on a simulated power cut. Because the
//! WAL, the journal and checkpoints only ever touch files through this trait, the code that
//! runs under simulated crashes is the code that ships.
//!
//! The surface is deliberately small: positioned reads and writes, length changes, file and
//! directory fsync, rename, remove and listing a directory's files. Durability rules are the POSIX ones the storage code
//! must respect: a write is durable after the file's fsync; a created, renamed or removed name
//! is durable after its directory's fsync.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`Fs::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write, creating the file if it does not exist (contents kept).
    ReadWriteCreate,
    /// Read and write, creating the file or emptying it.
    CreateTruncate,
}

/// An open file. Every method is positioned, so a handle carries no cursor.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O call, not a container's
pub trait FsFile: Send {
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: the file's data (and size) are durable when it returns Ok.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync: data and metadata.
    fn sync_all(&self) -> io::Result<()>;
}

/// A file system: names in directories, and files behind them.
pub trait Fs: Send + Sync {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates one directory; its parent must exist.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir` (not subdirectories), in no set order.
    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Makes the names in `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A shared handle to a file system.
pub type FsRef = Arc<dyn Fs>;

/// The machine's own file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A handle to [`RealFs`].
pub fn real() -> FsRef {
    Arc::new(RealFs)
}

impl Fs for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWriteCreate => {
                options.write(true).create(true).truncate(false);
            }
            OpenMode::CreateTruncate => {
                options.write(true).create(true).truncate(true);
            }
        }
        Ok(Box::new(RealFile(options.open(path)?)))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

struct RealFile(File);

impl FsFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}
