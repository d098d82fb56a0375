//! Which way a classic run is read, by the memory it may take. The two ways give the same
//! results (`checker/tests/streamed.rs` holds them equal); they trade memory for wall time:
//!
//! - the streamed check ([`super::streamed`]) reads final.json, then the history, judging
//!   each operation as its client moves past it: about 15 bytes per event, but one file
//!   after the other on one thread, so its wall time is its CPU time;
//! - the full check ([`super::classic`]) reads both files at once on two threads and holds
//!   a record per operation: about 38 bytes per event, and on two cores about 1.6 times
//!   faster in wall time (docs/measurements.md).
//!
//! By default ([`Memory::Auto`]) the full check runs when its peak, estimated from the
//! history's size, fits in half the memory available now (the container's limit counts),
//! on a machine with two cores or more to read on; otherwise the streamed one does.

use std::path::Path;

/// How much memory the classic check may take (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Memory {
    /// The full check when its estimated peak fits in half the memory available,
    /// else the streamed one.
    #[default]
    Auto,
    /// The streamed check first (it hands a run with any finding to the full one).
    Lean,
    /// The full check, both files read at once.
    Fast,
}

/// A history line takes about 160 bytes and the full check peaks at about 38 bytes per
/// event (37 at 30M events): a quarter of the history's bytes covers it with room.
const HISTORY_BYTES_PER_FULL_PEAK_BYTE: u64 = 4;

impl Memory {
    /// Whether the streamed check is tried first for the history at `history`.
    pub(crate) fn streams(self, history: &Path) -> bool {
        match self {
            Memory::Lean => true,
            Memory::Fast => false,
            Memory::Auto => !full_check_fits(history),
        }
    }
}

fn full_check_fits(history: &Path) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // On one core the full check's second thread buys nothing.
    if cores < 2 {
        return false;
    }
    let Ok(meta) = std::fs::metadata(history) else {
        return false;
    };
    let Some(available) = available_bytes() else {
        return false;
    };
    meta.len() / HISTORY_BYTES_PER_FULL_PEAK_BYTE <= available / 2
}

/// Memory available to this process now: the system's `MemAvailable`, or less when a
/// cgroup limit leaves less (a Slurm task or a Kubernetes pod). `None` when the
/// system does not say, and the caller then takes the lean way.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let system = meminfo_available(&meminfo)?;
    Some(match cgroup_room() {
        Some(room) => system.min(room),
        None => system,
    })
}

fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The room under this process's cgroup memory limit, when it has one: v2's
/// `memory.max` less `memory.current`, or v1's `memory.limit_in_bytes` less
/// `memory.usage_in_bytes` (v1's "no limit" is a huge number, which leaves the system's
/// figure the smaller). Both usages count page cache the kernel could reclaim, so the
/// room is understated, which only ever picks the lean way.
fn cgroup_room() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = Path::new("/sys/fs/cgroup");
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let v1 = own.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, rel) = rest.split_once(':')?;
        controllers.split(',').any(|c| c == "memory").then_some(rel)
    });
    if let Some(rel) = v1 {
        let dir = root.join("memory").join(rel.trim_start_matches('/'));
        let max = read(&dir, "memory.limit_in_bytes")?;
        return cgroup_room_of(&max, &read(&dir, "memory.usage_in_bytes")?);
    }
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = root.join(rel.trim_start_matches('/'));
    cgroup_room_of(&read(&dir, "memory.max")?, &read(&dir, "memory.current")?)
}

/// A limit less a usage; `None` when the limit is v2's `max` (none).
fn cgroup_room_of(max: &str, current: &str) -> Option<u64> {
    let max: u64 = max.trim().parse().ok()?;
    let current: u64 = current.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_available_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(meminfo_available(text), Some(2048 * 1024));
        assert_eq!(meminfo_available("MemTotal: 5 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn a_cgroup_limit_leaves_its_room_and_max_is_none() {
        assert_eq!(cgroup_room_of("1000\n", "400\n"), Some(600));
        assert_eq!(cgroup_room_of("1000\n", "4000\n"), Some(0));
        assert_eq!(cgroup_room_of("max\n", "400\n"), None);
    }

    #[test]
    fn this_machines_cgroup_reads_or_says_nothing() {
        // Whatever the machine, reading it must not fail loudly; a figure read is a
        // real one (below 2^63: v1's "no limit" less a usage).
        if let Some(room) = cgroup_room() {
            assert!(room < 1 << 63, "{room}");
        }
    }

    #[test]
    fn lean_always_streams_and_fast_never() {
        let missing = Path::new("/nonexistent/history.jsonl");
        assert!(Memory::Lean.streams(missing));
        assert!(!Memory::Fast.streams(missing));
        // A history that cannot be measured is read the lean way.
        assert!(Memory::Auto.streams(missing));
    }

    #[test]
    fn auto_reads_a_small_history_the_fast_way_where_memory_and_cores_allow() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.jsonl");
        std::fs::write(&history, "{}\n").unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let roomy = available_bytes().is_some_and(|b| b > 1 << 20);
        assert_eq!(Memory::Auto.streams(&history), !(cores >= 2 && roomy));
    }
}
