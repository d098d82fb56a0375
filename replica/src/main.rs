//! `replica`: see `replica::cli`.

fn main() -> std::process::ExitCode {
    replica::cli::main()
}
