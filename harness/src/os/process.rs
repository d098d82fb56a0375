//! Child processes that can never outlive the harness.
//!
//! Why it is this involved: the harness must leave no replica running however it ends — normal
//! exit, error, panic, Ctrl-C, or SIGKILL of the harness itself. Four mechanisms cover it:
//!
//! - `PR_SET_PDEATHSIG(SIGKILL)` in the child (set between fork and exec): the kernel kills the
//!   child when its parent dies, even by SIGKILL. The signal fires when the *thread* that forked
//!   the child exits, not the process, so every child is forked by one dedicated spawner thread
//!   that lives as long as the process (never a tokio worker, which may be retired).
//! - Each child leads its own process group, so SIGSTOP / SIGCONT / SIGKILL reach whatever it
//!   forks, and Ctrl-C at the terminal (sent to the harness's group) does not reach it directly.
//! - [`Child`] kills its group on drop (error returns, panics that unwind).
//! - A registry of live groups lets a Ctrl-C / SIGTERM handler or a panic hook kill everything
//!   before `std::process::exit`, which runs no destructors ([`kill_all_children`]).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a SIGKILLed child may take to be reaped before we give up waiting (it is still
/// dead or dying; we just stop blocking on it).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

type SpawnReply = mpsc::SyncSender<io::Result<std::process::Child>>;

struct Spawner {
    requests: Mutex<mpsc::Sender<(Command, SpawnReply)>>,
}

static SPAWNER: OnceLock<Spawner> = OnceLock::new();
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn spawner() -> &'static Spawner {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        // The sender lives in a static, so this loop (and the thread) lasts as long as the
        // process: exactly what PR_SET_PDEATHSIG needs.
        std::thread::Builder::new()
            .name("faultline-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the process spawner thread");
        Spawner {
            requests: Mutex::new(tx),
        }
    })
}

/// Spawns `command` from the spawner thread, in its own process group, with SIGKILL as its
/// parent-death signal.
fn spawn_guarded(mut command: Command) -> io::Result<std::process::Child> {
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died between fork and prctl: then no signal will ever come.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner()
        .requests
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

fn register(pid: i32) {
    if let Ok(mut live) = LIVE_GROUPS.lock() {
        live.insert(pid);
    }
}

fn unregister(pid: i32) {
    if let Ok(mut live) = LIVE_GROUPS.lock() {
        live.remove(&pid);
    }
}

/// SIGKILLs the process group of every live child. For signal handlers and panic hooks, just
/// before the process exits; safe to call more than once.
/// A child's output file, opened for appending (a restart adds to what the last life wrote),
/// twice: one handle for its stdout, one for its stderr.
pub fn append_output(path: &std::path::Path) -> io::Result<(std::fs::File, std::fs::File)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let err = out.try_clone()?;
    Ok((out, err))
}

pub fn kill_all_children() {
    let groups: Vec<i32> = match LIVE_GROUPS.lock() {
        Ok(live) => live.iter().copied().collect(),
        Err(poisoned) => poisoned.into_inner().iter().copied().collect(),
    };
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Pids of the children alive now (for tests and diagnostics).
pub fn live_children() -> Vec<u32> {
    LIVE_GROUPS
        .lock()
        .map(|l| l.iter().map(|p| *p as u32).collect())
        .unwrap_or_default()
}

/// A supervised child process: own process group, dies with the harness, killed on drop.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    pid: i32,
    exited: Option<ExitStatus>,
}

impl Child {
    pub fn spawn(command: Command) -> io::Result<Child> {
        let inner = spawn_guarded(command)?;
        let pid = i32::try_from(inner.id()).map_err(|_| io::Error::other("pid out of range"))?;
        register(pid);
        Ok(Child {
            inner,
            pid,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The child's stdout, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.inner.stdout.take()
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        if self.exited.is_some() {
            return Err(io::Error::other(format!(
                "process {} already exited",
                self.pid
            )));
        }
        killpg(Pid::from_raw(self.pid), signal).map_err(io::Error::from)
    }

    /// SIGSTOP: the process keeps its sockets and state but does nothing.
    pub fn pause(&self) -> io::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    pub fn resume(&self) -> io::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Whether the child has exited (reaping it if so).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.inner.try_wait() {
                self.exited = Some(status);
                unregister(self.pid);
            }
        }
        self.exited
    }

    /// SIGKILLs the group and reaps the child (waiting at most a few seconds).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_some() {
            // The leader is gone; still kill anything it left in its group.
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            return self.exited;
        }
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let deadline = Instant::now() + REAP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
        unregister(self.pid);
    }
}

/// Whether `pid` is a live process; a zombie counts as dead (Linux `/proc`).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The state of one replica as the harness left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    Running,
    Paused,
    Down,
}

impl ReplicaState {
    /// A node's state from its process (none: never started or killed) and whether the
    /// harness paused it; a process that died on its own counts as down.
    pub fn of(child: Option<&mut Child>, paused: bool) -> ReplicaState {
        let alive = child.is_some_and(|c| c.try_wait().is_none());
        match (alive, paused) {
            (false, _) => ReplicaState::Down,
            (true, true) => ReplicaState::Paused,
            (true, false) => ReplicaState::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .chars()
            .next()
            .unwrap_or('?')
    }

    fn sleeper() -> Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        Child::spawn(cmd).unwrap()
    }

    #[test]
    fn drop_kills_the_child() {
        let child = sleeper();
        let pid = child.pid();
        assert!(alive(pid));
        assert!(live_children().contains(&pid));
        drop(child);
        assert!(!alive(pid));
        assert!(!live_children().contains(&pid));
    }

    #[test]
    fn pause_resume_and_kill() {
        let mut child = sleeper();
        let pid = child.pid();
        child.pause().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while state(pid) != 'T' && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(state(pid), 'T', "stopped");
        child.resume().unwrap();
        assert!(
            child.kill().is_some(),
            "a stopped-then-resumed child is reaped"
        );
        assert!(!alive(pid));
        assert!(
            child.pause().is_err(),
            "signals to an exited child are refused"
        );
    }

    #[test]
    fn the_child_leads_its_own_process_group() {
        let child = sleeper();
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(child.pid() as i32))).unwrap();
        assert_eq!(pgid.as_raw() as u32, child.pid());
    }

    #[test]
    fn children_spawned_from_a_short_lived_thread_survive_it() {
        // pdeathsig is per thread: spawning through the dedicated thread keeps the child alive
        // when the thread that asked for it ends.
        let child = std::thread::spawn(sleeper).join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(child.pid()));
    }

    #[test]
    fn a_killed_child_is_seen_as_exited() {
        let mut child = sleeper();
        let _ = killpg(Pid::from_raw(child.pid() as i32), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while child.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(child.try_wait().is_some());
    }
}
