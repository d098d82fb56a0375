//! The `harness` binary as a person meets it: exit codes and messages of bad input, a replica
//! that cannot start, Ctrl-C in the middle of a run, and the interactive scenario prompt
//! driven through a pipe. Each test takes seconds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn harness() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command.stdin(Stdio::null());
    command
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(args: &[&str]) -> Output {
    harness().args(args).output().expect("harness runs")
}

#[test]
fn usage_errors_exit_64_with_a_clear_message() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["run", "--nodes", "0"], "--nodes 0"),
        (vec!["run", "--loss", "-0.1"], "--loss -0.1"),
        (vec!["--rate", "0"], "--rate 0"),
        (vec!["run", "--nemesis-interval", "0s"], "no fault"),
        (vec!["campaign", "--runs", "0"], "--runs"),
        (vec!["run", "--time", "five"], "bad duration"),
    ] {
        let mut args = args.clone();
        args.extend(["--out", out_dir]);
        let output = run(&args);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {all}");
        assert!(
            all.contains(expected),
            "{args:?} should say {expected:?}: {all}"
        );
    }
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing was started"
    );
}

#[test]
fn a_bad_scenario_lists_every_bad_line_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "Set Number,Transactions,Live Nodes\n1,\"(A, Z, 3)\",\"[n1, n2, n7]\"\n,\"(B, C, x)\",\n",
    )
    .unwrap();
    let output = run(&[
        "scenario",
        csv.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(all.contains("bad.csv:3: bad amount"), "{all}");
    // In the same pass: a syntax error does not hide the lines the cluster cannot run.
    assert!(all.contains("3 bad lines"), "{all}");
    assert!(all.contains("bad.csv:2: set 1 names n7"), "{all}");
    assert!(all.contains("bad.csv:2: unknown account Z"), "{all}");
    std::fs::write(
        &csv,
        "1,\"(A, Z, 3)\",\"[n1, n2, n7]\"\n,\"(B, C, 1)\",\n,\"(Y, A, 1)\",\n",
    )
    .unwrap();
    let output = run(&[
        "scenario",
        csv.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(all.contains("3 bad lines"), "{all}");
    assert!(all.contains("bad.csv:1: set 1 names n7"), "{all}");
    assert!(all.contains("bad.csv:1: unknown account Z"), "{all}");
    assert!(all.contains("bad.csv:3: unknown account Y"), "{all}");
}

#[test]
fn replaying_what_is_not_a_run_is_a_usage_error_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&["replay", dir.path().join("nothing").to_str().unwrap()]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(all.contains("is not a run directory"), "{all}");
    assert_eq!(all.matches("os error 2").count(), 1, "{all}");
}

/// Every error names what failed and then its cause, each once: an error type either prints
/// its cause or chains it, never both (a missing scenario file, a reports directory that is a
/// file).
#[test]
fn an_error_chain_says_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let output = run(&["scenario", missing.to_str().unwrap(), "--no-progress"]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(all.contains("missing.csv"), "{all}");
    assert_eq!(all.matches("os error 2").count(), 1, "{all}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let reports = file.join("reports");
    let output = run(&[
        "run",
        "--time",
        "1s",
        "--no-progress",
        "--out",
        reports.to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(70), "{all}");
    assert!(all.contains("cannot create run directory"), "{all}");
    assert_eq!(all.matches("os error 20").count(), 1, "{all}");
}

/// `harness sim --shards 3` keeps its run, and `harness replay` of it (a simulated run's
/// run.toml is not a real run's) reproduces it byte for byte.
#[test]
fn a_sharded_simulated_run_replays_from_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let args = [
        "sim",
        "--shards",
        "3",
        "--seeds",
        "1",
        "--from-seed",
        "4",
        "--ops",
        "200",
        "--keep",
        "all",
        "--no-progress",
        "--out",
        out_dir,
    ];
    let output = run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Kept runs are named by seed and the parameters that differ from the defaults.
    let dir = out.path().join("sim-4-shards-3-ops-200");
    assert!(dir.join("run.toml").is_file(), "{}", text(&output));
    let output = run(&["replay", dir.to_str().unwrap()]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("byte-identical"), "{all}");
}

/// A temporary reports directory and the run directory the harness made in it.
fn only_run_dir(out: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.is_symlink() && p.join("run.toml").is_file())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_replica_that_cannot_start_is_reported_at_once_with_its_words() {
    let out = tempfile::tempdir().unwrap();
    // A "replica" that dies at start-up with a message: the harness must say so, in the
    // replica's words, rather than wait for a leader.
    let replica_bin = out.path().join("replica");
    std::fs::write(
        &replica_bin,
        "#!/bin/sh\necho 'cannot bind 127.0.0.1: planted start-up failure' >&2\nexit 1\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&replica_bin).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&replica_bin, permissions).unwrap();
    let reports = out.path().join("reports");
    let output = run(&[
        "run",
        "--nodes",
        "3",
        "--time",
        "5s",
        "--no-progress",
        "--replica-bin",
        replica_bin.to_str().unwrap(),
        "--out",
        reports.to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(70), "{all}");
    assert!(all.contains("exited during start-up"), "{all}");
    assert!(
        all.contains("planted start-up failure"),
        "the replica's own words: {all}"
    );
    assert!(!all.contains("no leader elected"), "{all}");
}

/// `--bug` with the shipped replica (which plants none) cannot succeed: it is refused before
/// a run folder exists or `latest` moves, as a usage error.
#[test]
fn a_bug_the_replica_cannot_plant_is_refused_before_anything_is_created() {
    let out = tempfile::tempdir().unwrap();
    let replica_bin = common::replica_bin();
    for (bug, expected) in [
        ("no-dedup", "needs replica-bugs"),
        ("meteor", "unknown bug"),
    ] {
        for command in ["run", "campaign"] {
            let output = run(&[
                command,
                "--time",
                "5s",
                "--no-progress",
                "--bug",
                bug,
                "--replica-bin",
                replica_bin.to_str().unwrap(),
                "--out",
                out.path().to_str().unwrap(),
            ]);
            let all = text(&output);
            assert_eq!(
                output.status.code(),
                Some(64),
                "{command} --bug {bug}: {all}"
            );
            assert!(all.contains(expected), "{command} --bug {bug}: {all}");
        }
    }
    let csv = out.path().join("one.csv");
    std::fs::write(&csv, "1,\"(A, B, 3)\",\"[n1, n2, n3]\"\n").unwrap();
    let output = run(&[
        "scenario",
        csv.to_str().unwrap(),
        "--bug",
        "no-dedup",
        "--replica-bin",
        replica_bin.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "one.csv")
        .collect();
    assert!(left.is_empty(), "no run folder, no latest: {left:?}");
}

/// Bare `harness` prints its help (exit 64) instead of starting a 60 s fault run; with only
/// flags it still runs, as `harness run` does.
#[test]
fn bare_harness_prints_help() {
    let out = tempfile::tempdir().unwrap();
    let output = harness().current_dir(out.path()).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(all.contains("Usage:") && all.contains("scenario"), "{all}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing was started: {all}"
    );
}

/// Whether any process's command line mentions `needle` (the replicas name their data dirs).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn ctrl_c_stops_the_run_and_saves_it_as_unknown() {
    interrupt(&["run"]);
    // A campaign stops at its first run: no second one starts.
    interrupt(&["campaign", "--runs", "3", "--defaults"]);
}

/// Starts `harness <command>`, sends SIGINT once its clients have recorded something, and
/// checks that the run was stopped, checked and saved.
fn interrupt(command: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let child = harness()
        .args(command)
        .args([
            "--nodes",
            "3",
            "--clients",
            "3",
            "--time",
            "60s",
            "--nemesis-interval",
            "1s",
            "--no-progress",
            "--replica-bin",
            common::replica_bin().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the clients have recorded something.
    let deadline = Instant::now() + Duration::from_secs(40);
    let history = loop {
        let found = std::fs::read_dir(out.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.is_symlink())
            .map(|p| p.join("history.jsonl"))
            .find(|h| std::fs::metadata(h).is_ok_and(|m| m.len() > 2_000));
        if let Some(h) = found {
            break h;
        }
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(100));
    };
    let dir = history.parent().unwrap().to_path_buf();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(130), "{command:?}: {all}");
    assert!(
        all.contains(dir.to_str().unwrap()),
        "names the run directory: {all}"
    );
    assert!(
        processes_mentioning(dir.to_str().unwrap()).is_empty(),
        "every replica stopped"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("harness.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "unknown", "{summary}");
    assert_eq!(summary["reason"], "interrupted", "{summary}");
    assert!(summary["invoked"].as_u64().unwrap() > 0, "{summary}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], "unknown", "{results}");
    assert!(
        results["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{results}"
    );
    assert!(dir.join("report.html").is_file());
    let index = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(index.contains(name), "the index lists the run: {index}");
    assert_eq!(only_run_dir(out.path()), dir);
}

#[test]
fn the_interactive_prompt_reads_piped_commands() {
    let out = tempfile::tempdir().unwrap();
    let reports = out.path().join("reports");
    let replica_bin = common::replica_bin();
    let commands = "help\nprintdb\nnext\nprintlog\nprintstatus\nprintstatus 1\nprintview n2\n\
                    kill n3\nstatus\nrestart n3\ncut n1 n2\nheal\nfly away\nquit\n";
    let output = common::prompt_session(
        &reports,
        &["--replica-bin", replica_bin.to_str().unwrap()],
        commands,
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "2 sets in",
        "next: set 1 (line 2): live n1, n2, n3; 2 transfers",
        "kill nX | kill leader",
        "replica  exec   A   B",
        "transfer A→B 3",
        "E executed",
        "killed n3",
        "restarted n3",
        "cut n1 <-> n2",
        "healed every link",
        "unknown command \"fly\"",
        "quit at the prompt: 1 set not run",
        "final balances per replica:",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing: {all}");
    }
    assert!(!stdout.contains("Transfer {"), "{all}");
    let run_toml = std::fs::read_to_string(only_run_dir(&reports).join("run.toml")).unwrap();
    assert!(
        run_toml.contains("stall_ms = 2000") && run_toml.contains("set_timeout_ms = 30000"),
        "replay needs the scenario's timeouts: {run_toml}"
    );
    // Set 1 ran (A→B 3, B→C 1), set 2 did not: every replica ends with A 7, B 12, C 11.
    common::assert_only_set_one_ran(&stdout, "final balances per replica:");
}

/// What the operator did at the prompt is recorded and replayed: `kill n3` before set 1 keeps
/// n3 down through set 1 (which lists it live), and says so; `quit` skips set 2. The replay
/// types the same lines at the same prompts and says what it compared.
#[test]
fn prompt_commands_are_recorded_and_replayed() {
    let out = tempfile::tempdir().unwrap();
    let reports = out.path().join("reports");
    let replica_bin = common::replica_bin();
    let output = common::prompt_session(
        &reports,
        &["--replica-bin", replica_bin.to_str().unwrap()],
        "kill n3\ncut n1\nnext\nquit\n",
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Piped input: the prompt and the line read are both shown.
    assert!(stdout.contains("set 1> kill n3"), "{all}");
    assert!(stdout.contains("missing argument"), "{all}");
    assert!(stdout.contains("stays down"), "{all}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("n3 stays down: killed at the prompt"),
        "{all}"
    );
    let original = only_run_dir(&reports);
    let log = std::fs::read_to_string(original.join("prompt.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let typed: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["prompt"].as_u64().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert_eq!(
        typed,
        [(0, "kill n3"), (0, "cut n1"), (0, "next"), (1, "quit")],
        "{log}"
    );
    let replays = out.path().join("replays");
    let replay = || {
        run(&[
            "replay",
            original.to_str().unwrap(),
            "--no-progress",
            "--out",
            replays.to_str().unwrap(),
        ])
    };
    let output = replay();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("set 1> kill n3   (replayed)"), "{all}");
    assert!(stdout.contains("set 2> quit   (replayed)"), "{all}");
    assert!(
        stdout.contains("compared with the original: verdict valid (was valid)"),
        "{all}"
    );
    assert!(!stdout.contains("not comparable"), "{all}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("n3 stays down"),
        "{all}"
    );
    // Without its prompt.jsonl the same run cannot be replayed faithfully: never "reproduced".
    std::fs::remove_file(original.join("prompt.jsonl")).unwrap();
    let output = replay();
    let all = text(&output);
    assert!(
        all.contains(
            "not comparable (the original's commands at the interactive prompt were not recorded"
        ),
        "{all}"
    );
    assert!(!all.contains(": reproduced"), "{all}");
}
