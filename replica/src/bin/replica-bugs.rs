//! `replica-bugs`: the replica with planted bugs available through `--bug NAME`, for
//! `harness zoo`. Built only with `--features bugs`; a normal build has no such binary.

fn main() -> std::process::ExitCode {
    replica::cli::main_with_bugs()
}
