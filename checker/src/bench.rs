//! `checker bench`: how fast parsing and checking are on a large generated run.
//!
//! Generates a valid run of N events with [`crate::gen`] (ten clients, retries,
//! timeouts, nemesis), then times [`crate::check_run`] on it and reports events per
//! second, wall and CPU time, and the peak resident memory of the check. The
//! generator's own memory is excluded by resetting the kernel's high-water mark
//! (`/proc/self/clear_refs`) before checking.
//!
//! The default shape is a real campaign's: five replicas that each log every command,
//! so final.json is about twice the size of the history. `Shape::Light` is the older
//! shape (a full, a checkpointed and a lagging replica), kept for comparison.
//! `Shape::SharedReads` is the realistic shape with etcd-like shared positions (only
//! writes in the log; reads and failed transfers share revisions). `Shape::Sharded` is
//! a sharded bank's run, checked by the sharded checks. `Shape::Linearizable` is the
//! realistic shape judged black-box as well (`--no-trust-exec-index`): the
//! linearization search over the clients' results alone, with its default budget.

use crate::gen::{self, GenOptions};
use crate::{check_run_with, CheckError, CheckOptions, Validity};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which final.json to generate beside the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Five replicas, each logging (nearly) every command: final.json ≈ 2× history.
    Realistic,
    /// Three replicas: full, checkpointed at half, lagging.
    Light,
    /// Five members, etcd-like: only writes are logged, reads share their positions.
    SharedReads,
    /// A sharded bank: `shards` shards of three replicas, half of the transfers crossing
    /// shards by two-phase commit (docs/sharded.md).
    Sharded { shards: u32 },
    /// The realistic shape, also searched black-box for a linearization (no exec
    /// index or log trusted), as `checker check --no-trust-exec-index` does.
    Linearizable,
}

impl Shape {
    /// How the run is checked: black-box for [`Shape::Linearizable`].
    pub fn check_options(self) -> CheckOptions {
        CheckOptions {
            trust_exec_index: self != Shape::Linearizable,
            ..CheckOptions::default()
        }
    }
}

/// What one benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub dir: PathBuf,
    pub events: u64,
    pub log_entries: u64,
    pub history_bytes: u64,
    pub final_bytes: u64,
    pub generate_secs: f64,
    pub check_secs: f64,
    /// CPU time (user + system, all threads) of the check, when /proc tells it.
    pub check_cpu_secs: Option<f64>,
    /// Peak resident memory during the check, in KiB, when /proc tells it.
    pub peak_rss_kib: Option<u64>,
    /// Whether the high-water mark could be reset before checking (if not, the peak
    /// includes the generator's memory).
    pub peak_is_check_only: bool,
    /// Resident memory when the check began, in KiB: what the generator freed but the
    /// allocator kept (the sharded generator holds its whole run) counts in the peak, so
    /// the bytes/event of a run checked alone (`checker check` under `/usr/bin/time -v`)
    /// can be lower.
    pub rss_at_start_kib: Option<u64>,
    pub valid: Validity,
    /// The black-box search's verdict, states explored and why it is unknown (if
    /// so), when it ran.
    pub linearizable: Option<String>,
}

impl BenchReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.check_secs.max(1e-9)
    }

    /// Lines for a terminal.
    pub fn summary(&self) -> String {
        let rss = match self.peak_rss_kib {
            Some(k) => format!(
                "{:.0} MiB ({:.0} bytes/event){}",
                k as f64 / 1024.0,
                k as f64 * 1024.0 / self.events.max(1) as f64,
                match (self.peak_is_check_only, self.rss_at_start_kib) {
                    (false, _) => ", includes generation".to_string(),
                    // Worth saying only when the generator's leftovers are a real part.
                    (true, Some(start)) if start * 4 > k => format!(
                        ", of which {:.0} MiB was resident before the check began \
                         (the generator's freed memory): `checker check` on the saved run \
                         measures the check alone",
                        start as f64 / 1024.0
                    ),
                    (true, _) => String::new(),
                }
            ),
            None => "unknown".into(),
        };
        let cpu = self.check_cpu_secs.map_or_else(
            || "unknown".into(),
            |c| {
                format!(
                    "{c:.2} s ({:.0} events/s of CPU)",
                    self.events as f64 / c.max(1e-9)
                )
            },
        );
        format!(
            "bench: {} events, {} log entries ({:.0} MiB history, {:.0} MiB final.json) in {}\n  generated in {:.1} s\n  parse+check: {:.0} events/s, verdict {}\n  wall {:.2} s, CPU {cpu}\n  peak RSS of the check: {rss}\n",
            self.events,
            self.log_entries,
            self.history_bytes as f64 / 1048576.0,
            self.final_bytes as f64 / 1048576.0,
            self.dir.display(),
            self.generate_secs,
            self.events_per_sec(),
            self.valid.as_str(),
            self.check_secs,
        ) + &self
            .linearizable
            .as_ref()
            .map_or_else(String::new, |l| format!("  linearizable: {l}\n"))
    }
}

/// The options the benchmark generates with.
pub fn bench_options(events: usize, shape: Shape) -> GenOptions {
    let base = GenOptions {
        seed: 42,
        events,
        unreachable_node: false,
        ..GenOptions::default()
    };
    match shape {
        Shape::Realistic => GenOptions {
            nodes: 5,
            checkpoint_node: false,
            ..base
        },
        // A faultline run: the search may close a timed-out transfer at its client's
        // next definite answer, as the reply table makes a late copy stale.
        Shape::Linearizable => GenOptions {
            nodes: 5,
            checkpoint_node: false,
            sessions: true,
            ..base
        },
        Shape::Light => GenOptions { nodes: 3, ..base },
        Shape::SharedReads => GenOptions {
            nodes: 5,
            checkpoint_node: false,
            positions: crate::final_state::Positions::SharedReads,
            ..base
        },
        Shape::Sharded { shards } => GenOptions {
            shards: Some(gen::ShardGen {
                shards,
                ..gen::ShardGen::default()
            }),
            ..base
        },
    }
}

/// Generates a run of `events` events into `dir` and times checking it.
pub fn run(events: usize, shape: Shape, dir: &Path) -> Result<BenchReport, CheckError> {
    let io = |e: std::io::Error| CheckError::Internal(format!("{}: {e}", dir.display()));
    let started = Instant::now();
    let options = bench_options(events, shape);
    let log_entries = match options.shards {
        Some(_) => {
            let run = gen::shards::generate(&options);
            run.write(dir).map_err(io)?;
            run.logs.iter().map(|l| l.len() as u64).sum()
        }
        None => gen::write_run(&options, dir).map_err(io)?,
    };
    let generate_secs = started.elapsed().as_secs_f64();
    let peak_is_check_only = reset_peak_rss();
    let rss_at_start_kib = status_kib("VmRSS:");
    let cpu_before = cpu_secs();
    let started = Instant::now();
    let results = check_run_with(dir, shape.check_options())?;
    let check_secs = started.elapsed().as_secs_f64();
    let check_cpu_secs = cpu_before.zip(cpu_secs()).map(|(a, b)| b - a);
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    Ok(BenchReport {
        dir: dir.to_path_buf(),
        events: results.history.events,
        log_entries,
        history_bytes: size("history.jsonl"),
        final_bytes: size("final.json"),
        generate_secs,
        check_secs,
        check_cpu_secs,
        peak_rss_kib: peak_rss_kib(),
        peak_is_check_only,
        rss_at_start_kib,
        valid: results.valid,
        linearizable: results.check("linearizable").map(describe_search),
    })
}

/// `valid, 123 states explored` (with the reason when unknown).
fn describe_search(c: &crate::CheckResult) -> String {
    let states = c.counts.get("states explored").copied().unwrap_or(0);
    let mut out = format!("{}, {states} states explored", c.valid.as_str());
    for why in &c.unknown {
        out.push_str(&format!("; {why}"));
    }
    out
}

/// Resets VmHWM (Linux: writing 5 to clear_refs). False if it could not.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM from /proc/self/status, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// A `/proc/self/status` line's figure (`VmHWM:`, `VmRSS:`), in KiB.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of this process (all threads) from /proc/self/stat, in
/// seconds, assuming the kernel's usual 100 clock ticks per second.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
