//! The `checker` command: `check`, `report` and `bench`.
//!
//! Exit codes follow Jepsen for verdicts (0 valid, 1 invalid, 2 unknown) and the BSD
//! sysexits for the rest, as the harness does: 64 usage error, 66 an input missing,
//! unreadable or malformed, 70 anything else (e.g. the report could not be written).
//! So scripts never mistake an error for a verdict (clap's own usage errors would exit
//! 2, which means "unknown" here, so they are remapped).

use anyhow::Context;
use checker::CheckError;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Every binary's exit codes: docs/exit-codes.md.

/// Usage errors (EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// An input is missing, unreadable or malformed (EX_NOINPUT).
const EXIT_INPUT: u8 = 66;
/// Anything else that prevents a verdict or its report (EX_SOFTWARE).
const EXIT_ERROR: u8 = 70;

const EXIT_CODES: &str = "Exit codes: 0 valid, 1 invalid, 2 unknown, 64 usage error, \
66 input missing, unreadable or malformed, 70 other error (e.g. the report could not be written).";

#[derive(Parser)]
#[command(
    name = "checker",
    version,
    about = "Checks a faultline run and draws its report",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a run; writes results.json (and the report unless --no-report).
    #[command(after_help = EXIT_CODES)]
    Check {
        /// A run directory, or its history.jsonl.
        path: PathBuf,
        /// Do not write report.html and the charts.
        #[arg(long)]
        no_report: bool,
        /// Write results.json and the report here (created if missing) instead of
        /// into the run directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Also search for a linearization without the system's exec indices or log
        /// (the `linearizable` check; slower, bounded by --search-budget).
        #[arg(long)]
        no_trust_exec_index: bool,
        /// States the linearization search may explore before it says unknown.
        #[arg(long, value_name = "N", default_value_t = checker::checks::linearizable::DEFAULT_BUDGET)]
        search_budget: u64,
        /// How the run is read; the results are the same. `fast`: both files at once on
        /// two threads, about 38 bytes of memory per history event. `lean`: final.json
        /// first, then the history judged as it streams, about 15 bytes per event and
        /// about 1.6x the wall time on two cores. `auto`: fast when its estimated peak
        /// fits in half the memory available (a cgroup limit counts), else lean.
        #[arg(long, value_enum, default_value_t = checker::Memory::Auto)]
        memory: checker::Memory,
    },
    /// Write report.html and the charts for a run (checking it if results.json is
    /// missing).
    #[command(after_help = EXIT_CODES)]
    Report {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Time parsing and checking of a generated valid run.
    Bench {
        /// How many history events to generate.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Where to write the run (default: a temporary directory, removed after).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Generate the old history-only shape (one full replica log, a checkpointed
        /// and a lagging one) instead of the realistic one.
        #[arg(long, conflicts_with_all = ["shared_reads", "shards"])]
        light: bool,
        /// Generate an etcd-like run: only writes in the log, reads and failed
        /// transfers sharing the revision of the write they observed.
        #[arg(long, conflicts_with = "shards")]
        shared_reads: bool,
        /// Also check the realistic run black-box (as `check --no-trust-exec-index`):
        /// the linearization search over the clients' results alone.
        #[arg(long, conflicts_with_all = ["light", "shared_reads", "shards"])]
        linearizable: bool,
        /// Generate a sharded bank's run of this many shards (3 replicas each, half
        /// of the transfers crossing shards), checked by the sharded checks.
        #[arg(long, value_parser = clap::value_parser!(u32).range(2..=10))]
        shards: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("checker: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// 66 when the run's own files are at fault, 70 otherwise.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<CheckError>() {
        Some(CheckError::Internal(_)) | None => EXIT_ERROR,
        Some(_) => EXIT_INPUT,
    }
}

fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Check {
            path,
            no_report,
            out,
            no_trust_exec_index,
            search_budget,
            memory,
        } => {
            let options = checker::CheckOptions {
                trust_exec_index: !no_trust_exec_index,
                search_budget,
                memory,
            };
            check(&path, no_report, out.as_deref(), options)
        }
        Command::Report { run_dir } => report(&run_dir),
        Command::Bench {
            events,
            out,
            light,
            shared_reads,
            linearizable,
            shards,
        } => {
            let shape = if let Some(shards) = shards {
                checker::bench::Shape::Sharded { shards }
            } else if light {
                checker::bench::Shape::Light
            } else if shared_reads {
                checker::bench::Shape::SharedReads
            } else if linearizable {
                checker::bench::Shape::Linearizable
            } else {
                checker::bench::Shape::Realistic
            };
            bench(events, out, shape)
        }
    }
}

fn check(
    path: &Path,
    no_report: bool,
    out: Option<&Path>,
    options: checker::CheckOptions,
) -> anyhow::Result<u8> {
    let files = checker::RunFiles::locate(path)?;
    let results = checker::check_run_with(path, options)?;
    print!("{}", results.summary());
    let out_dir = out.unwrap_or(&files.dir);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    if no_report {
        results
            .write_json(out_dir)
            .with_context(|| format!("writing results.json in {}", out_dir.display()))?;
    } else {
        let written = checker::report::write_report_to(&files.dir, out_dir, &results)?;
        println!("report: {}", written.html.display());
    }
    Ok(results.exit_code() as u8)
}

fn report(run_dir: &Path) -> anyhow::Result<u8> {
    let saved = run_dir.join(checker::results::RESULTS_FILE);
    let results = match checker::Results::read_json(&saved) {
        Ok(r) => r,
        Err(_) => checker::check_run(run_dir)?,
    };
    let written = checker::report::write_report(run_dir, &results)?;
    println!("report: {}", written.html.display());
    Ok(0)
}

fn bench(events: usize, out: Option<PathBuf>, shape: checker::bench::Shape) -> anyhow::Result<u8> {
    let dir = out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()))
    });
    let report = checker::bench::run(events, shape, &dir);
    if out.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = report?;
    print!("{}", report.summary());
    Ok(0)
}
