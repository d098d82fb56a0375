//! A night on a real Slurm cluster of one node: `munged`, `slurmctld` and `slurmd` started here
//! with a configuration generated in a temporary directory, then the real `deploy/slurm/night.sh`
//! submitted, shortened by its parameters: a 5-task array of simulated seeds with a planted bug,
//! one short real campaign slice, and the merge job that depends on them (afterany). One array
//! element is `scancel`led mid-run.
//!
//! It checks what a morning reader relies on: every seed ran once, the planted bug is one group,
//! that group's replay line reproduces it byte for byte, the merge's exit code (Slurm's too),
//! and the cancelled element shows as partial. Every daemon is stopped by pid however the test
//! ends. Without Slurm, munge or root it is skipped, unless `FAULTLINE_REQUIRE_SLURM` is set
//! (as `.ci/run` does), when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SIM_TASKS: u64 = 5;
const SIM_SEEDS: u64 = 60;
/// The array element cancelled mid-run.
const CANCELLED: u64 = 5;

const SLURMCTLD: &str = "/usr/sbin/slurmctld";
const SLURMD: &str = "/usr/sbin/slurmd";
const MUNGED: &str = "/usr/sbin/munged";

/// Whether this machine can run the tier; a reason when not.
fn unavailable() -> Option<String> {
    for tool in [SLURMCTLD, SLURMD, MUNGED] {
        if !Path::new(tool).is_file() {
            return Some(format!(
                "{tool} is not installed (.ci/deps installs slurm-wlm and munge)"
            ));
        }
    }
    if !nix_is_root() {
        return Some("the single-node Slurm cluster runs as root".into());
    }
    None
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Started daemons, stopped by pid on drop (after cancelling every job left).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// The daemons' logs, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["munged.log", "slurmctld.log", "slurmd.log", "daemons.out"] {
            let body = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(40).collect();
            text.push_str(&format!("--- {name} (last lines) ---\n"));
            for line in tail.iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// `scontrol show job ID`'s `Key=Value` for `key`.
    fn job_field(&self, job: &str, key: &str) -> Option<String> {
        let out = self.run("scontrol", &["show", "job", job]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Jobs first, so no slurmstepd outlives its slurmd.
        let _ = self.run("scancel", &["--full", "--partition=fl"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self.run("squeue", &["-h", "-o", "%i"]);
            if !out.status.success() || out.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for (name, child) in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            if child.wait().is_err() {
                eprintln!("{name} (pid {}) could not be waited for", child.id());
            }
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn spawn(cluster: &mut Cluster, name: &'static str, program: &str, args: &[&str]) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cluster.dir.join("daemons.out"))
        .unwrap();
    let child = cluster
        .command(program)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    cluster.daemons.push((name, child));
}

/// Polls `ready` every 200 ms up to `limit`; panics with `what` and the logs when it never is.
fn wait_for(cluster: &Cluster, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} within {limit:?}\n{}", cluster.logs());
}

/// munged, slurmctld and slurmd with a generated config in `dir`; waits until the node is idle.
fn start_cluster(dir: &Path) -> Cluster {
    let munge = dir.join("munge");
    for sub in ["munge", "state", "spool"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let key: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let key_path = munge.join("munge.key");
    std::fs::write(&key_path, key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o711)).unwrap();
    let socket = munge.join("munge.sock");
    let host = hostname();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let d = dir.display();
    let conf = dir.join("slurm.conf");
    std::fs::write(
        &conf,
        format!(
            "ClusterName=faultline-test\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
             AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={socket}\n\
             SlurmUser=root\nSlurmdUser=root\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SchedulerType=sched/backfill\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nReturnToService=2\nMinJobAge=600\nKillWait=2\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=fl Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
        ),
    )
    .unwrap();
    let mut cluster = Cluster {
        dir: dir.to_path_buf(),
        conf,
        daemons: Vec::new(),
    };
    let arg = |name: &str, path: PathBuf| format!("--{name}={}", path.display());
    spawn(
        &mut cluster,
        "munged",
        MUNGED,
        &[
            "-F",
            "-f",
            &arg("socket", socket.clone()),
            &arg("key-file", key_path),
            &arg("log-file", dir.join("munged.log")),
            &arg("pid-file", munge.join("munged.pid")),
            &arg("seed-file", munge.join("munged.seed")),
        ],
    );
    wait_for(
        &cluster,
        "munged did not open its socket",
        Duration::from_secs(20),
        || socket.exists(),
    );
    spawn(&mut cluster, "slurmctld", SLURMCTLD, &["-D", "-i"]);
    spawn(&mut cluster, "slurmd", SLURMD, &["-D", "-N", &host]);
    wait_for(
        &cluster,
        "the node did not become idle",
        Duration::from_secs(90),
        || {
            let out = cluster.run("sinfo", &["-h", "-o", "%T"]);
            String::from_utf8_lossy(&out.stdout).trim() == "idle"
        },
    );
    cluster
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `seed N` line of every task's log: (seed, slice directory).
fn seed_lines(sim: &Path) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    for k in 1..=SIM_TASKS {
        let name = format!("slice-{k}-of-{SIM_TASKS}");
        let log = std::fs::read_to_string(sim.join(&name).join("task.log")).unwrap_or_default();
        for line in log.lines() {
            if let Some(seed) = line
                .strip_prefix("seed ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|s| s.parse().ok())
            {
                seen.push((seed, name.clone()));
            }
        }
    }
    seen
}

#[test]
fn a_night_on_slurm_merges_into_one_group_per_failure_and_names_the_cancelled_task() {
    if let Some(reason) = unavailable() {
        assert!(
            std::env::var_os("FAULTLINE_REQUIRE_SLURM").is_none(),
            "FAULTLINE_REQUIRE_SLURM is set but {reason}"
        );
        eprintln!("skipped: {reason}");
        return;
    }
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    let replica = common::replica_bin();
    let tmp = tempfile::Builder::new()
        .prefix("faultline-slurm")
        .tempdir()
        .unwrap();
    let cluster = start_cluster(tmp.path());
    let night = tmp.path().join("night");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/night.sh");
    let submit = cluster
        .command("bash")
        .arg(&script)
        .env("FAULTLINE_BIN", harness.parent().unwrap())
        .env("REPLICA_BIN", &replica)
        .env("NIGHT_DIR", &night)
        .env("SIM_TASKS", SIM_TASKS.to_string())
        .env("SIM_SEEDS", SIM_SEEDS.to_string())
        .env("SIM_FLAGS", "--ops 300 --bug no-dedup")
        .env("SIM_TIME", "15:00")
        .env("CAMPAIGN_TASKS", "1")
        .env("CAMPAIGN_RUNS", "1")
        .env("CAMPAIGN_SEED", "7")
        .env(
            "CAMPAIGN_FLAGS",
            "--time 3s --nodes 3 --nemesis kill --nemesis-interval 1s",
        )
        .env("CAMPAIGN_TIME", "15:00")
        .output()
        .expect("night.sh runs");
    let said = String::from_utf8_lossy(&submit.stdout).into_owned();
    assert!(
        submit.status.success(),
        "night.sh failed: {said}{}\n{}",
        String::from_utf8_lossy(&submit.stderr),
        cluster.logs()
    );
    let job = |kind: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(&format!("{kind} ")))
            .unwrap_or_else(|| panic!("night.sh did not print the {kind} job: {said}"))
            .trim()
            .to_string()
    };
    let (sim_job, merge_job) = (job("sim"), job("merge"));
    assert_eq!(
        cluster
            .job_field(&merge_job, "Dependency")
            .map(|d| d.starts_with("afterany")),
        Some(true)
    );

    // Cancel one element once it has finished a seed or two, before it finishes them all.
    let sim = night.join("sim");
    let cancelled_dir = sim.join(format!("slice-{CANCELLED}-of-{SIM_TASKS}"));
    wait_for(
        &cluster,
        "the element to cancel did not start",
        Duration::from_secs(300),
        || {
            seed_lines(&sim)
                .iter()
                .any(|(_, s)| s.ends_with(&format!("{CANCELLED}-of-{SIM_TASKS}")))
        },
    );
    let cancel = cluster.run("scancel", &[&format!("{sim_job}_{CANCELLED}")]);
    assert!(
        cancel.status.success(),
        "scancel: {}",
        String::from_utf8_lossy(&cancel.stderr)
    );

    wait_for(
        &cluster,
        "the merge job did not finish",
        Duration::from_secs(600),
        || {
            cluster
                .job_field(&merge_job, "JobState")
                .is_some_and(|s| !matches!(s.as_str(), "PENDING" | "RUNNING" | "CONFIGURING"))
        },
    );
    let merge_log = std::fs::read_to_string(night.join(format!("logs/merge-{merge_job}.out")))
        .unwrap_or_default();
    let merged = read_json(&night.join("merged/summary.json"));
    let context = format!("merge log:\n{merge_log}\nmerged: {merged:#}");

    // Every seed ran once: no seed in two logs; every finished task did its whole share; the
    // seeds done are the finished tasks' plus what the cancelled one's summary holds. That
    // summary is rewritten at most once a second, so it may lag its log by the seeds of the
    // last second before the kill (a retry runs those again): never more than the log.
    let lines = seed_lines(&sim);
    let mut seeds: Vec<u64> = lines.iter().map(|(s, _)| *s).collect();
    seeds.sort_unstable();
    let before = seeds.len();
    seeds.dedup();
    assert_eq!(before, seeds.len(), "a seed ran twice: {lines:?}");
    assert_eq!(merged["seeds_twice"], serde_json::json!([]), "{context}");
    let cancelled = read_json(&cancelled_dir.join("summary.json"));
    assert_eq!(
        cancelled["complete"], false,
        "the cancelled element finished: {cancelled:#}"
    );
    let share = SIM_SEEDS / SIM_TASKS;
    let cancelled_name = format!("slice-{CANCELLED}-of-{SIM_TASKS}");
    let cancelled_logged = lines.iter().filter(|(_, n)| *n == cancelled_name).count() as u64;
    assert_eq!(
        seeds.len() as u64 - cancelled_logged,
        (SIM_TASKS - 1) * share
    );
    let ranges = cancelled["seeds_done"].as_array().expect("seeds_done");
    let cancelled_done: u64 = ranges
        .iter()
        .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap() + 1)
        .sum();
    assert!(cancelled_done <= cancelled_logged, "{cancelled:#}");
    assert!(cancelled_done < share, "{context}");
    assert_eq!(
        merged["seeds_done"],
        (SIM_TASKS - 1) * share + cancelled_done,
        "{context}"
    );

    // The cancelled element is partial, in the summary and on the page.
    let partial: Vec<&serde_json::Value> = merged["tasks"]["present"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["complete"] == false)
        .collect();
    assert_eq!(partial.len(), 1, "{context}");
    assert_eq!(partial[0]["slice"], CANCELLED, "{context}");
    assert!(
        merge_log.contains(&format!("partial task {CANCELLED}/{SIM_TASKS}")),
        "{context}"
    );
    let page = std::fs::read_to_string(night.join("merged/index.html")).unwrap();
    assert!(
        page.contains("1 distinct failure") && page.contains("partial task"),
        "{page}"
    );

    // The planted bug is one group, and its one-line replay reproduces it byte for byte.
    let groups = merged["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{context}");
    assert!(
        groups[0]["signature"]
            .as_str()
            .unwrap()
            .contains("exactly-once"),
        "{context}"
    );
    let replay = groups[0]["replay"].as_str().expect("a replay line");
    let words: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(words[..2], ["harness", "replay"], "{replay}");
    let out = Command::new(&harness).args(&words[1..]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("byte-identical"), "{replay}: {text}");
    assert_eq!(out.status.code(), Some(1), "{replay}: {text}");

    // The exit code: invalid seeds make the night invalid, for the merge and for Slurm.
    let code = std::fs::read_to_string(night.join("merged/exit-code")).unwrap_or_default();
    assert_eq!(code.trim(), "1", "{context}");
    assert_eq!(
        cluster.job_field(&merge_job, "ExitCode").as_deref(),
        Some("1:0")
    );

    // The real campaign slice ran and merged on its own.
    let campaign = read_json(&night.join("merged-campaign/summary.json"));
    assert_eq!(campaign["kind"], "campaign", "{campaign:#}");
    assert_eq!(campaign["seeds_done"], 1, "{campaign:#}");
    drop(cluster);
}

/// The figure of the README, not a timed test: the same seeds as one Slurm task and as two,
/// submission to merged report, on this machine's cluster of one node.
///
/// `FAULTLINE_FIGURES_BIN=target/release cargo test -p harness --test fleet_slurm
///  one_task_against_two -- --ignored --nocapture` (the release harness is much faster).
#[test]
#[ignore]
fn one_task_against_two() {
    if let Some(reason) = unavailable() {
        panic!("{reason}");
    }
    let bin = std::env::var_os("FAULTLINE_FIGURES_BIN").map_or_else(
        || {
            PathBuf::from(env!("CARGO_BIN_EXE_harness"))
                .parent()
                .unwrap()
                .to_path_buf()
        },
        PathBuf::from,
    );
    let seeds: u64 = std::env::var("FAULTLINE_FIGURES_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let tmp = tempfile::Builder::new()
        .prefix("faultline-slurm")
        .tempdir()
        .unwrap();
    let cluster = start_cluster(tmp.path());
    let mut walls = Vec::new();
    for tasks in [1u64, 2] {
        let night = tmp.path().join(format!("night-{tasks}"));
        let started = Instant::now();
        let out = cluster
            .command("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/night.sh"))
            .env("FAULTLINE_BIN", &bin)
            .env("NIGHT_DIR", &night)
            .env("SIM_TASKS", tasks.to_string())
            .env("SIM_SEEDS", seeds.to_string())
            .env("SIM_FLAGS", "--ops 400 --keep none")
            .env("MERGE_FLAGS", "--no-shrink")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let merge_job = said
            .lines()
            .find_map(|l| l.strip_prefix("merge "))
            .unwrap_or_else(|| panic!("{said}"))
            .trim()
            .to_string();
        wait_for(
            &cluster,
            "the merge did not finish",
            Duration::from_secs(3600),
            || {
                cluster
                    .job_field(&merge_job, "JobState")
                    .is_some_and(|s| !matches!(s.as_str(), "PENDING" | "RUNNING" | "CONFIGURING"))
            },
        );
        let wall = started.elapsed().as_secs_f64();
        let merged = read_json(&night.join("merged/summary.json"));
        println!(
            "{tasks} task(s), {seeds} seeds: {wall:.1} s submission to report; tasks' wall {:.1} s \
             in all, longest {:.1} s; {} seeds done",
            merged["task_wall_s"].as_f64().unwrap_or(0.0),
            merged["longest_task_s"].as_f64().unwrap_or(0.0),
            merged["seeds_done"]
        );
        walls.push(wall);
    }
    println!("wall ratio, 1 task / 2 tasks: {:.2}", walls[0] / walls[1]);
}
