//! deploy/k8s as Kubernetes would run it, without a cluster: the manifests are read as YAML,
//! and each container's command runs here with the environment the Job gives its pod of index
//! i (JOB_COMPLETION_INDEX, the manifest's env, the job-name label through the downward API),
//! for every i, the shared volume being a temporary directory. Then the merge Job's command
//! merges the night, and the report is checked as on Slurm. The CronJobs must run the same
//! containers as the one-off Jobs.
//!
//! `kubectl` cannot validate the manifests here: even `--dry-run=client` asks an API server
//! for its schema, and there is none.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use yaml_rust2::{Yaml, YamlLoader};

const NIGHT: &str = "faultline-sweep-test";
/// Shortened from the manifest's night, as the Slurm tier shortens its script.
const SEEDS: u64 = 30;

fn manifests(name: &str) -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/k8s")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Job's spec, or a CronJob's job template's.
fn job_spec(doc: &Yaml) -> &Yaml {
    match doc["kind"].as_str() {
        Some("Job") => &doc["spec"],
        Some("CronJob") => &doc["spec"]["jobTemplate"]["spec"],
        other => panic!("not a Job or CronJob: {other:?}"),
    }
}

fn only_container(spec: &Yaml) -> &Yaml {
    let containers = spec["template"]["spec"]["containers"]
        .as_vec()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `container` here as the pod of completion `index` would, with `overrides` on top of
/// its env (the shortened night, the volume's local path); returns the exit code and output.
fn run_container(
    container: &Yaml,
    index: Option<u64>,
    overrides: &[(&str, String)],
    path_dir: &Path,
) -> (i32, String) {
    let argv: Vec<String> = strings(&container["command"])
        .into_iter()
        .chain(strings(&container["args"]))
        .collect();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear().stdin(Stdio::null());
    let path = format!(
        "{}:{}",
        path_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command.env("PATH", path);
    for var in container["env"].as_vec().into_iter().flatten() {
        let name = var["name"].as_str().unwrap();
        let value = match (
            var["value"].as_str(),
            &var["valueFrom"]["fieldRef"]["fieldPath"],
        ) {
            (Some(v), _) => v.to_string(),
            (None, Yaml::String(field)) => {
                assert_eq!(field, "metadata.labels['batch.kubernetes.io/job-name']");
                NIGHT.to_string()
            }
            other => panic!("env {name}: {other:?}"),
        };
        command.env(name, value);
    }
    if let Some(i) = index {
        command.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    for (name, value) in overrides {
        command.env(name, value);
    }
    let out = command.output().expect("the container's command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_k8s_night_runs_each_index_once_and_merges_into_one_group() {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    let bin_dir = harness.parent().unwrap();
    let volume = tempfile::tempdir().unwrap();

    let sweep_doc = &manifests("sweep-job.yaml")[0];
    let sweep = job_spec(sweep_doc);
    assert_eq!(sweep["completionMode"].as_str(), Some("Indexed"));
    let completions = sweep["completions"].as_i64().expect("completions") as u64;
    let container = only_container(sweep);
    let env_value = |c: &Yaml, name: &str| {
        c["env"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|v| v["name"].as_str() == Some(name))
            .and_then(|v| v["value"].as_str().map(str::to_string))
    };
    assert_eq!(
        env_value(container, "JOB_COMPLETIONS"),
        Some(completions.to_string()),
        "JOB_COMPLETIONS must equal spec.completions"
    );
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(env_value(container, "RESULTS").as_deref(), Some(mount));
    let overrides = [
        ("RESULTS", volume.path().display().to_string()),
        ("SIM_SEEDS", SEEDS.to_string()),
        ("SIM_JOBS", "1".to_string()),
        ("SIM_FLAGS", "--ops 300 --bug no-dedup".to_string()),
    ];
    for i in 0..completions {
        let (code, text) = run_container(container, Some(i), &overrides, bin_dir);
        assert_eq!(code, 0, "index {i}: findings are not a pod failure: {text}");
    }
    // Kubernetes retries a pod (its node died): the index resumes and runs nothing twice.
    let (code, text) = run_container(container, Some(0), &overrides, bin_dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("already done, 0 to run"), "{text}");

    let merge_doc = &manifests("merge-job.yaml")[0];
    let merge = only_container(job_spec(merge_doc));
    let (code, text) = run_container(merge, None, &overrides[..1], bin_dir);
    assert_eq!(code, 1, "invalid seeds make the night invalid: {text}");
    let merged_dir = volume.path().join(NIGHT).join("merged");
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged_dir.join("summary.json")).unwrap()).unwrap();
    let tasks = merged["tasks"]["present"].as_array().unwrap();
    assert_eq!(tasks.len() as u64, completions, "{merged:#}");
    assert!(tasks.iter().all(|t| t["complete"] == true), "{merged:#}");
    assert_eq!(merged["tasks"]["missing"], serde_json::json!([]));
    assert_eq!(merged["seeds_done"], SEEDS, "{merged:#}");
    assert_eq!(merged["seeds_twice"], serde_json::json!([]), "{merged:#}");
    let groups = merged["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{merged:#}");
    let replay = groups[0]["replay"].as_str().unwrap();
    let words: Vec<&str> = replay.split_whitespace().collect();
    let out = Command::new(&harness).args(&words[1..]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("byte-identical"), "{replay}: {said}");

    // The nightly CronJobs run exactly these containers.
    let cron = manifests("nightly-cronjob.yaml");
    let night = job_spec(&cron[0]);
    assert_eq!(night["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(night["completions"], sweep["completions"]);
    assert_eq!(
        only_container(night),
        container,
        "the nightly sweep drifted from sweep-job.yaml"
    );
    assert_eq!(
        only_container(job_spec(&cron[1])),
        merge,
        "the morning merge drifted"
    );
}
