//! The `harness` command line: campaigns, scenarios, replays, benchmarks.
//!
//! Exit codes follow Jepsen for a checked run (0 valid, 1 invalid, 2 unknown); 64 is a usage
//! error and 70 a harness error (the run could not be made or checked). Whatever way the harness
//! ends — normal exit, error, panic, Ctrl-C, SIGTERM — every replica it started is killed first
//! (and if the harness is SIGKILLed, the kernel kills them: see `harness::os::process`).

use clap::{Parser, Subcommand};
use harness::commands;
use harness::commands::bench::BenchArgs;
use harness::commands::campaign::CampaignArgs;
use harness::commands::exit::{
    exit_code_for, render_error, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE,
};
use harness::commands::merge::MergeArgs;
use harness::commands::prune::PruneArgs;
use harness::commands::replay::ReplayArgs;
use harness::commands::run::{print_summary, RunArgs};
use harness::commands::scenario::ScenarioArgs;
use harness::commands::zoo::ZooArgs;
use harness::os::process::kill_all_children;

/// mimalloc, not glibc's malloc: a simulated seed allocates and frees per message, per
/// executed entry and per restart, and glibc's allocator was a fifth of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Fault-injection harness for the faultline replicated bank",
    long_about = "Starts a local replica cluster, drives concurrent clients while a seeded nemesis \
                  kills, pauses and partitions replicas, records the history and checks it.\n\n\
                  Without a subcommand but with flags (`harness --time 10s`), `harness` runs \
                  one campaign, as `harness run` does; alone it prints this help (exit 64).\n\
                  Exit codes: 0 valid, 1 invalid, 2 unknown, 64 usage error, 70 harness error.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One fault campaign (the default).
    Run(RunArgs),
    /// Run a scenario CSV (`Set Number,Transactions,Live Nodes`) set by set.
    Scenario(ScenarioArgs),
    /// Many seeded runs back to back, with reports/index.html listing every run.
    Campaign(CampaignArgs),
    /// Run a saved run's seed, parameters, operations and schedule again on a fresh cluster.
    Replay(ReplayArgs),
    /// Throughput and latency without faults, direct and through the relay.
    Bench(BenchArgs),
    /// Deterministic simulation of the real replica code: many seeded runs on virtual time,
    /// each checked like a real run; failing seeds are kept as run directories to replay.
    Sim(harness::sim::cli::SimArgs),
    /// Merge fleet tasks' results (`--slice` directories) into one report of unique failures:
    /// exits 0 all valid, 1 any invalid, 2 any unknown or a task or seed missing.
    Merge(MergeArgs),
    /// Campaigns against every planted replica bug (needs `replica-bugs`, built with
    /// `cargo build --release -p replica --features bugs --bin replica-bugs`): each must be caught,
    /// and the same campaigns without a bug must pass.
    Zoo(ZooArgs),
    /// Delete saved runs by age, count or verdict (never the one `latest` points at), and
    /// print the size of what is kept.
    Prune(PruneArgs),
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => commands::run::run_one(&cli.run).await,
        Some(Command::Run(args)) => commands::run::run_one(&args).await,
        Some(Command::Scenario(args)) => commands::scenario::scenario(&args).await,
        Some(Command::Campaign(args)) => commands::campaign::campaign(&args).await,
        Some(Command::Sim(args)) => harness::sim::cli::run(&args),
        Some(Command::Replay(args)) => commands::replay::replay(&args).await,
        Some(Command::Merge(args)) => commands::merge::merge(&args),
        Some(Command::Zoo(args)) => commands::zoo::run(&args).await,
        Some(Command::Prune(args)) => commands::prune::prune(&args),
        Some(Command::Bench(args)) => commands::bench::bench(&args).await,
    }
}

/// The name of the first SIGINT or SIGTERM to arrive.
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    match term {
        Some(term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Watches for Ctrl-C and SIGTERM. The first one, while a run is in progress, is sent on the
/// returned channel so `main` can stop the run and save it; otherwise (and on a second
/// signal, for someone who will not wait for the check) every replica is killed and the
/// process exits at once. A command busy on this thread (`sim`) is exited the same way.
fn install_signal_handlers() -> tokio::sync::oneshot::Receiver<&'static str> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: cannot watch SIGTERM: {e}");
                    None
                }
            };
        let first = next_signal(&mut term).await;
        if !harness::run::interrupt::in_progress() || tx.send(first).is_err() {
            exit_at_once();
        }
        next_signal(&mut term).await;
        exit_at_once();
    });
    rx
}

fn exit_at_once() -> ! {
    kill_all_children();
    eprintln!("\ninterrupted: every replica was stopped; the history so far is on disk");
    std::process::exit(EXIT_INTERRUPTED);
}

/// After a signal: the run was dropped (its replicas are being killed); check and save it.
fn save_interrupted(signal: &str) -> i32 {
    match harness::run::interrupt::finish_interrupted(signal) {
        Some(Ok(summary)) => {
            print_summary(&summary);
            eprintln!(
                "interrupted by {signal}: every replica was stopped; run directory {}",
                summary.dir.display()
            );
        }
        Some(Err(e)) => eprintln!("interrupted by {signal}; cannot save the run: {e}"),
        None => eprintln!("interrupted by {signal}"),
    }
    EXIT_INTERRUPTED
}

/// Runs the command until it ends or a signal interrupts it.
async fn run_until_signal(cli: Cli) -> i32 {
    let signals = install_signal_handlers();
    let mut command = Box::pin(dispatch(cli));
    let outcome = tokio::select! {
        result = &mut command => Ok(result),
        Ok(signal) = signals => Err(signal),
    };
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {}", render_error(&e));
            exit_code_for(&e)
        }
        Err(signal) => {
            eprintln!(
                "\n{signal}: stopping every replica and checking what was recorded \
                 (again to quit at once)"
            );
            kill_all_children();
            drop(command);
            save_interrupted(signal)
        }
    }
}

/// Log timestamps under `harness sim`: the simulated world's clock, not the wall's.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match sim::world::virtual_now_ms() {
            Some(ms) => write!(w, "virtual {:>4}.{:03} s", ms / 1000, ms % 1000),
            None => write!(w, "virtual    -    "),
        }
    }
}

/// Bare `harness` (no subcommand, no flag): the help, not a 60 s fault run nobody asked for.
/// Exit 64, so a script that lost its arguments does not read it as a valid run.
fn help_when_bare(args: usize) -> Option<i32> {
    use clap::CommandFactory;
    if args > 1 {
        return None;
    }
    let _ = Cli::command().print_long_help();
    Some(EXIT_USAGE)
}

fn main() {
    if let Some(code) = help_when_bare(std::env::args_os().len()) {
        std::process::exit(code);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // `RUST_LOG=replica=info harness sim --seeds 1 --from-seed S` shows what the simulated
    // replicas log (elections, leader changes, step-downs) for one seed, stamped with virtual
    // time; plain text unless stderr is a terminal.
    if std::env::var_os("RUST_LOG").is_some() {
        use std::io::IsTerminal;
        let logs = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match cli.command {
            Some(Command::Sim(_)) => logs.with_timer(VirtualTime).try_init(),
            _ => logs.try_init(),
        };
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all_children();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(EXIT_ERROR);
        }
    };
    let code = runtime.block_on(run_until_signal(cli));
    kill_all_children();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::commands::exit::usage;
    use harness::commands::prune::parse_age;
    use harness::commands::run::DEFAULT_NEMESIS_INTERVAL_MS;
    use harness::faults::schedule::FaultFamily;
    use harness::run::rundir::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_cli_is_well_formed_and_run_is_the_default() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["harness", "--time", "10s", "--nemesis", "kill,pause"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.time, Duration::from_secs(10));
        assert_eq!(
            cli.run.options().params.nemesis,
            vec![FaultFamily::Kill, FaultFamily::Pause]
        );
        let cli = Cli::try_parse_from(["harness", "run", "--nemesis", "none"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Run(ref a)) if a.options().params.nemesis.is_empty())
        );
        assert!(Cli::try_parse_from(["harness", "scenario", "x.csv", "--interactive"]).is_ok());
        assert!(Cli::try_parse_from(["harness", "--nemesis", "meteor"]).is_err());
    }

    /// Help texts say the defaults and the relays as they are, without stray spaces.
    #[test]
    fn help_texts_say_defaults_and_relays() {
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        // The interval is drawn from the seed unless pinned; --defaults gives the fixed one.
        let default = format!("{}s with --defaults", DEFAULT_NEMESIS_INTERVAL_MS / 1000);
        assert!(help.contains(&default), "{help}");
        assert!(help.contains("drawn from the seed"), "{help}");
        assert!(
            help.contains("UDP relay") && help.contains("TCP relay for etcd"),
            "{help}"
        );
        assert!(
            help.contains("isolate-follower,crash-coordinator"),
            "{help}"
        );
        assert_eq!(help_when_bare(2), None);
    }

    #[test]
    fn prune_ages_parse() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_age("soon").is_err());
    }

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("harness"), command)];
        while let Some((path, command)) = stack.pop() {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("harness").chain(args.iter().copied()))
    }

    fn refusal(args: &[&str]) -> String {
        let cli = parse(args).unwrap_or_else(|e| panic!("{args:?} should parse: {e}"));
        let run = match cli.command {
            None => cli.run,
            Some(Command::Run(run)) => run,
            Some(Command::Campaign(c)) => c.run,
            other => panic!("not a run: {other:?}"),
        };
        let e = harness::run::validate(&run.options().params)
            .expect_err("refused")
            .into();
        assert_eq!(exit_code_for(&e), EXIT_USAGE, "{e}");
        e.to_string()
    }

    #[test]
    fn bad_values_are_usage_errors_that_name_the_flag() {
        assert!(refusal(&["--loss", "-0.1"]).contains("--loss -0.1"));
        assert!(refusal(&["--loss", "2"]).contains("--loss 2"));
        assert!(refusal(&["--nodes", "0"]).contains("--nodes 0"));
        assert!(refusal(&["run", "--clients", "0"]).contains("--clients 0"));
        assert!(refusal(&["--time", "0s"]).contains("--time"));
        assert!(refusal(&["--rate", "0"]).contains("--rate 0"));
        assert!(refusal(&["campaign", "--rate", "-5"]).contains("--rate -5"));
        assert!(refusal(&["--nemesis-interval", "0s"]).contains("no fault"));
        let e = parse(&["campaign", "--runs", "0"]).unwrap_err();
        assert!(e.use_stderr() && e.to_string().contains("--runs"), "{e}");
        assert!(
            parse(&["zoo", "--progress"]).is_err(),
            "it is --no-progress now"
        );
        assert!(parse(&["zoo", "--no-progress"]).is_ok());
        assert!(parse(&["zoo", "--sim", "--rate", "5", "--jobs", "1"]).is_ok());
        assert!(
            parse(&["zoo", "--rate", "0"]).is_err(),
            "a rate of no seeds"
        );
        assert!(parse(&["replay", "x", "--out", "elsewhere"]).is_ok());
    }

    #[test]
    fn odd_but_allowed_values_are_warned_about() {
        let params = |args: &[&str]| parse(args).unwrap().run.options().params;
        let warnings = harness::run::warnings(&params(&["--nodes", "2"]));
        assert!(warnings[0].contains("--nodes 2"), "{warnings:?}");
        let warnings = harness::run::warnings(&params(&["--clients", "11"]));
        assert!(warnings[0].contains("11 accounts (A..K)"), "{warnings:?}");
        assert!(harness::run::warnings(&params(&[])).is_empty());
        assert!(harness::run::validate(&params(&[
            "--nemesis",
            "none",
            "--nemesis-interval",
            "0s"
        ]))
        .is_ok());
    }

    #[test]
    fn errors_name_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(harness::run::rundir::RunDirError::Read {
            path: "x/run.toml".into(),
            cause: io,
        });
        let text = render_error(&e.context("cannot replay"));
        assert_eq!(text.matches("not found").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot replay: cannot read x/run.toml"),
            "{text}"
        );
        assert_eq!(exit_code_for(&usage("bad")), EXIT_USAGE);
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), EXIT_ERROR);
    }
}
