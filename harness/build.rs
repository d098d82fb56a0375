//! Records the commit the harness was built from (`FAULTLINE_COMMIT`), for a fleet task's
//! build identity. A build outside a git checkout (a container image built from a tarball)
//! passes it in the environment instead; otherwise it is "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FAULTLINE_COMMIT");
    let commit = std::env::var("FAULTLINE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FAULTLINE_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !commit.trim().is_empty()).then_some(commit)
}
