//! The `checker` command: `check`, `report` and `bench`.
//!
//! Exit codes follow Jepsen: 0 valid, 1 invalid, 2 unknown. Anything that prevents a
//! verdict exits 3 for a usage error and 254 when the run cannot be read or the
//! report not written, so scripts never mistake an error for a verdict (clap's own
//! usage errors would exit 2, which means "unknown" here, so they are remapped).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Usage errors.
const EXIT_USAGE: u8 = 3;
/// The run could not be checked or reported.
const EXIT_ERROR: u8 = 254;

#[derive(Parser)]
#[command(
    name = "checker",
    version,
    about = "Checks a faultline run and draws its report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a run; writes results.json (and the report unless --no-report).
    Check {
        /// A run directory, or its history.jsonl.
        path: PathBuf,
        /// Do not write report.html and the charts.
        #[arg(long)]
        no_report: bool,
    },
    /// Write report.html and the charts for a run (checking it if results.json is
    /// missing).
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
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Check { path, no_report } => check(&path, no_report),
        Command::Report { run_dir } => report(&run_dir),
        Command::Bench { events, out } => bench(events, out),
    }
}

fn check(path: &Path, no_report: bool) -> anyhow::Result<u8> {
    let files = checker::RunFiles::locate(path)?;
    let results = checker::check_run(path)?;
    print!("{}", results.summary());
    if no_report {
        results
            .write_json(&files.dir)
            .with_context(|| format!("writing results.json in {}", files.dir.display()))?;
    } else {
        let written = checker::report::write_report(&files.dir, &results)?;
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

fn bench(events: usize, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let dir = out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()))
    });
    let report = checker::bench::run(events, &dir);
    if out.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = report?;
    print!("{}", report.summary());
    Ok(0)
}
