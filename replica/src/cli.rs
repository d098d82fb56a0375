//! The `replica` command line: run a replica, make a cluster's certificates and config, or talk
//! to a running cluster by hand (`ctl`: PrintDB, PrintLog, PrintStatus, PrintView, transfers
//! and reads).
//!
//! It lives in the library so that two binaries share it: `replica`, and `replica-bugs`, which
//! exists only in builds with the `bugs` feature, the only ones where `--bug` plants anything.

use crate::bank::{Command, Op, OpResult};
use crate::client::Client;
use crate::client_proto::{ClientRequest, ClientResponse};
use crate::config::ClusterConfig;
use crate::core::Bugs;
use crate::net::certs::ClientCert;
use crate::types::{ClientIdRange, NodeId, RequestId, Slot};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "replica",
    version,
    about = "A stable-leader Multi-Paxos bank ledger replica"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one replica of the cluster until SIGTERM / Ctrl-C.
    Run(RunArgs),
    /// Write a local cluster: certificates and cluster.toml in one directory.
    Init {
        /// Directory to create (certs/ and cluster.toml go inside).
        #[arg(long, default_value = "cluster")]
        dir: PathBuf,
        /// Number of replicas, named n1..nN (an unsharded cluster).
        #[arg(long, default_value_t = 5, conflicts_with_all = ["shards", "replicas_per_shard"])]
        nodes: u32,
        /// Write a sharded cluster of this many shards (default 3 with --replicas-per-shard):
        /// shard k is nodes n((k-1)R+1)..n(kR), accounts A-J dealt round-robin over the shards.
        #[arg(long)]
        shards: Option<u32>,
        /// Replicas per shard of a sharded cluster (default 3 with --shards).
        #[arg(long)]
        replicas_per_shard: Option<u32>,
        /// UDP port of n1; n2 gets the next one, and so on.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
        /// Keep the CA's private key in this file (outside --dir) to sign more clients later;
        /// by default it is discarded. Replicas never need it.
        #[arg(long)]
        ca_key_out: Option<PathBuf>,
    },
    /// Write a CA and certificates for the nodes and clients of a cluster config.
    Certs {
        /// The cluster.toml whose nodes and client get certificates (written beside it).
        #[arg(long)]
        config: PathBuf,
        /// Keep the CA's private key in this file (not beside the certificates).
        #[arg(long)]
        ca_key_out: Option<PathBuf>,
    },
    /// Talk to a running cluster as a client.
    Ctl(CtlArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The cluster's cluster.toml (every replica's address, the certificates).
    #[arg(long)]
    config: PathBuf,
    /// Which replica of the config this process is, e.g. n1.
    #[arg(long)]
    id: NodeId,
    /// Where this replica keeps its write-ahead log and checkpoints (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Write logs here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Past this size the log file is renamed to <file>.1 and a new one started.
    #[arg(long, default_value_t = crate::logfile::DEFAULT_LOG_MAX_BYTES)]
    log_max_bytes: u64,
    /// Seed of the election timeouts (default: derived from the node id and the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Do not fsync the write-ahead log (benchmarks of the network path only; unsafe).
    #[arg(long)]
    no_fsync: bool,
    /// Plant a known bug (needs a build with the `bugs` feature): no-dedup, early-commit,
    /// forget-promises, no-view-merge, local-reads, no-funds-check, stale-leader, stuck-leader,
    /// misread-log (and the sharded recovery-aborts, apply-at-prepare, keep-locks-on-abort).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// A sharded bank's lock policy: what a transfer or read that meets an account locked by
    /// a cross-shard transaction does. wait-die: the leader holds it back up to 250 ms for the
    /// lock (a participant's PREPARE only behind younger transactions; it votes no at once
    /// behind an older one); no-wait: it fails lock-conflict at once. Unsharded: no locks.
    #[arg(long, value_enum, default_value_t = crate::core::LockPolicy::NoWait)]
    lock_policy: crate::core::LockPolicy,
}

#[derive(clap::Args)]
struct CtlArgs {
    /// The cluster's cluster.toml (addresses, and the client certificate to use).
    #[arg(long, default_value = "cluster/cluster.toml")]
    config: PathBuf,
    /// Replica to ask (default: any; commands follow the leader).
    #[arg(long)]
    node: Option<NodeId>,
    /// How long to wait for an answer, e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    what: CtlCmd,
}

#[derive(Subcommand)]
enum CtlCmd {
    /// PrintDB: balances of the replica.
    PrintDb,
    /// PrintLog: the replica's Paxos log.
    PrintLog {
        /// First slot to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most slots to show.
        #[arg(long, default_value_t = 1000)]
        max: u32,
    },
    /// PrintStatus: A / C / E / X for one slot.
    PrintStatus {
        /// The slot to ask about.
        slot: u64,
    },
    /// PrintView: every NEW_VIEW the replica has seen.
    PrintView,
    /// Role, ballot, leader and progress.
    Status,
    /// Move money: transfer FROM TO AMOUNT.
    Transfer {
        /// The account the money leaves.
        from: String,
        /// The account it goes to.
        to: String,
        /// How much, a positive whole number.
        amount: i64,
    },
    /// Read one balance through the log.
    Read {
        /// The account to read, e.g. A.
        account: String,
    },
    /// Read every balance through the log.
    ReadAll,
    /// Arm a failpoint on the replica named by --node (replica-bugs only): it crashes at that
    /// step of two-phase commit. Names: coordinator-after-start, participant-after-prepare,
    /// coordinator-before-decision, coordinator-after-decision-before-send,
    /// coordinator-after-send.
    ArmFailpoint {
        /// The failpoint's name.
        name: String,
        /// Fire at every hit instead of the next one only.
        #[arg(long)]
        every: bool,
    },
}

/// `60s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {s:?}: e.g. 60s, 500ms, 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "bad duration unit {other:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Parses the command line and runs it; the process exit code.
/// `replica`: the shipped binary. It never plants a bug, whatever features the library was
/// built with (a workspace build unifies features: the simulator's `bugs` must not leak here).
pub fn main() -> std::process::ExitCode {
    main_with(false)
}

/// `replica-bugs`: `--bug` plants bugs (the binary exists only with the `bugs` feature).
pub fn main_with_bugs() -> std::process::ExitCode {
    main_with(true)
}

fn main_with(bugs_allowed: bool) -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(args, bugs_allowed),
        Cmd::Init {
            dir,
            nodes,
            shards,
            replicas_per_shard,
            base_port,
            ca_key_out,
        } => {
            let layout = match (shards, replicas_per_shard) {
                (None, None) => Layout::Classic { nodes },
                (s, r) => Layout::Sharded {
                    shards: s.unwrap_or(3),
                    replicas_per_shard: r.unwrap_or(3),
                },
            };
            init_with(&dir, layout, base_port, ca_key_out.as_deref())
        }
        Cmd::Certs { config, ca_key_out } => certs(&config, ca_key_out.as_deref()),
        Cmd::Ctl(args) => ctl(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replica: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs, bugs_allowed: bool) -> anyhow::Result<()> {
    init_logging(args.log_file.as_deref(), args.log_max_bytes)?;
    // A refusal to start or a fatal disk error goes to the log too (not only to stderr),
    // where whoever reads the log of a replica that stopped looks for it.
    run_logged(args, bugs_allowed).inspect_err(|e| tracing::error!("replica stopped: {e:#}"))
}

fn run_logged(args: RunArgs, bugs_allowed: bool) -> anyhow::Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    if config.node(args.id).is_none() {
        bail!("node {} is not in {}", args.id, args.config.display());
    }
    let (bugs, forget_promises, misread_log) = parse_bugs(&args.bugs, bugs_allowed)?;
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(args.id.0) << 48)
    });
    let options = crate::server::ServerOptions {
        config,
        id: args.id,
        data_dir: args.data_dir,
        bugs,
        seed,
        fsync: !args.no_fsync,
        forget_promises,
        misread_log,
        // Like --bug: only replica-bugs arms failpoints, whatever the library was built with.
        failpoints: bugs_allowed,
        lock_policy: args.lock_policy,
    };
    // One thread: five replicas share a few cores, and a multi-thread runtime hands each
    // message between its workers (a context switch each); see `server::Server::finish_burst`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::server::run(options))
}

/// The core's bugs, and the shell's: `forget-promises`, `misread-log`.
fn parse_bugs(names: &[String], bugs_allowed: bool) -> anyhow::Result<(Bugs, bool, bool)> {
    let mut bugs = Bugs::default();
    let mut forget_promises = false;
    let mut misread_log = false;
    let planting_allowed = bugs_allowed && cfg!(feature = "bugs");
    if !names.is_empty() && !planting_allowed {
        bail!(
            "--bug plants a bug only in `replica-bugs`, built with `cargo build --release -p \
             replica --features bugs --bin replica-bugs`; this replica never does"
        );
    }
    for name in names {
        if name == "forget-promises" {
            forget_promises = true;
        } else if name == "misread-log" {
            misread_log = true;
        } else if !bugs.plant(name) {
            bail!(
                "unknown bug {name:?}; known: {}",
                crate::core::config::BUG_NAMES.join(", ")
            );
        }
    }
    Ok((bugs, forget_promises, misread_log))
}

fn init_logging(log_file: Option<&Path>, max_bytes: u64) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match log_file {
        Some(path) => {
            let file = crate::logfile::CappedLog::open(path, max_bytes)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// What `replica init` writes: the classic cluster, or shards of replicas.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Classic {
        nodes: u32,
    },
    Sharded {
        shards: u32,
        replicas_per_shard: u32,
    },
}

#[cfg(test)]
fn init(dir: &Path, nodes: u32, base_port: u16, ca_key_out: Option<&Path>) -> anyhow::Result<()> {
    init_with(dir, Layout::Classic { nodes }, base_port, ca_key_out)
}

fn init_with(
    dir: &Path,
    layout: Layout,
    base_port: u16,
    ca_key_out: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(key) = ca_key_out {
        // Resolved, so `other/../cluster/...` or a symlink into the cluster is caught too.
        let resolved = crate::net::certs::resolved;
        let inside = resolved(key).starts_with(resolved(dir));
        if inside {
            bail!(
                "--ca-key-out {} is inside the cluster directory {}; keep the CA key elsewhere",
                key.display(),
                dir.display()
            );
        }
    }
    let nodes = match layout {
        Layout::Classic { nodes } => nodes,
        Layout::Sharded {
            shards,
            replicas_per_shard,
        } => {
            if shards == 0 || replicas_per_shard == 0 {
                bail!("--shards and --replicas-per-shard must be positive");
            }
            shards.saturating_mul(replicas_per_shard)
        }
    };
    if nodes == 0 || nodes > 15 {
        bail!("a cluster has between 1 and 15 replicas, asked for {nodes}");
    }
    if u32::from(base_port) + nodes - 1 > u32::from(u16::MAX) {
        bail!("--base-port {base_port} leaves no room for {nodes} ports");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = match layout {
        Layout::Classic { nodes } => ClusterConfig::local(nodes, base_port, Path::new("certs")),
        Layout::Sharded {
            shards,
            replicas_per_shard,
        } => {
            ClusterConfig::local_sharded(shards, replicas_per_shard, base_port, Path::new("certs"))
                .map_err(|e| anyhow::anyhow!("--shards {shards}: {e}"))?
        }
    };
    let path = dir.join("cluster.toml");
    config.save(&path)?;
    let ids = config.node_ids();
    // The cluster's own client certificate serves `replica ctl`: an operator.
    let client = ClientCert::operator("client", ClientIdRange::DEFAULT);
    crate::net::certs::generate_cluster(&dir.join("certs"), &ids, &[client], ca_key_out)?;
    println!(
        "wrote {} and certificates in {}",
        path.display(),
        dir.join("certs").display()
    );
    for id in ids {
        println!(
            "  replica run --config {} --id {id} --data-dir {}",
            path.display(),
            dir.join(format!("data-{id}")).display()
        );
    }
    Ok(())
}

fn certs(config_path: &Path, ca_key_out: Option<&Path>) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let dir = config
        .tls
        .ca_cert
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let client = config
        .tls
        .client_cert
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("client")
        .to_string();
    let client = ClientCert::operator(&client, ClientIdRange::DEFAULT);
    crate::net::certs::generate_cluster(&dir, &config.node_ids(), &[client], ca_key_out)?;
    println!("wrote certificates in {}", dir.display());
    Ok(())
}

fn ctl(args: CtlArgs) -> anyhow::Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = Client::new(&config, &config.tls.client_cert, &config.tls.client_key)?;
        let timeout = args
            .timeout
            .max(Duration::from_millis(1))
            .min(crate::client::MAX_CALL_WAIT);
        let ids = client.client_ids().with_context(|| {
            format!(
                "{} states no client ids; make it with `replica init` or `replica certs`",
                config.tls.client_cert.display()
            )
        })?;
        let request = ctl_request(&args.what, ids);
        let arming = matches!(request, ClientRequest::ArmFailpoint { .. });
        if arming && args.node.is_none() {
            bail!("arm-failpoint arms one replica: name it with --node");
        }
        let response = match args.node {
            // One node named: ask it and show whatever it says (PrintDB of a backup, say).
            Some(node) => client.call(node, &request, timeout).await?,
            None => {
                let deadline = tokio::time::Instant::now() + timeout;
                let per_try = Duration::from_millis(1000).min(timeout);
                client
                    .call_until_definite(&request, None, per_try, deadline)
                    .await
                    .map_err(|tries| {
                        anyhow::anyhow!(
                            "no definite answer within {timeout:?}: {}",
                            tries.join("; ")
                        )
                    })?
            }
        };
        print_response(&response);
        if let (true, ClientResponse::Error { node, message }) = (arming, &response) {
            bail!("{node} did not arm the failpoint: {message}");
        }
        Ok(())
    })
}

fn ctl_request(what: &CtlCmd, ids: ClientIdRange) -> ClientRequest {
    let submit = |op| {
        // A fresh client id per invocation, from the upper half of what our certificate allows:
        // ctl commands never collide with the harness's clients (numbered from the bottom).
        // The request id is the clock, so it stays above the reply table's eviction floor.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        ClientRequest::Submit(Command {
            client: ids.pick_upper(nanos),
            request: RequestId(nanos.max(1)),
            op,
        })
    };
    match what {
        CtlCmd::PrintDb => ClientRequest::PrintDb,
        CtlCmd::PrintLog { from, max } => ClientRequest::PrintLog {
            from_slot: Slot(*from),
            max_entries: *max,
        },
        CtlCmd::PrintStatus { slot } => ClientRequest::PrintStatus { slot: Slot(*slot) },
        CtlCmd::PrintView => ClientRequest::PrintView,
        CtlCmd::Status => ClientRequest::Status,
        CtlCmd::Transfer { from, to, amount } => submit(Op::Transfer {
            from: from.as_str().into(),
            to: to.as_str().into(),
            amount: *amount,
        }),
        CtlCmd::Read { account } => submit(Op::Read {
            account: account.as_str().into(),
        }),
        CtlCmd::ReadAll => submit(Op::ReadAll),
        CtlCmd::ArmFailpoint { name, every } => ClientRequest::ArmFailpoint {
            name: name.clone(),
            once: !every,
        },
    }
}

fn print_response(response: &ClientResponse) {
    match response {
        ClientResponse::Reply { node, reply } => {
            let what = match &reply.result {
                OpResult::Transferred {
                    from_balance,
                    to_balance,
                } => {
                    format!("ok: from balance {from_balance}, to balance {to_balance}")
                }
                OpResult::InsufficientFunds { from_balance } => {
                    format!("failed: insufficient funds (balance {from_balance})")
                }
                OpResult::Balance { balance } => format!("balance {balance}"),
                OpResult::Balances { balances } => format_balances(balances),
                OpResult::LockConflict { account } => {
                    format!("failed: account {account} is locked by a cross-shard transfer")
                }
                OpResult::Busy => "failed: too many cross-shard transfers in flight".into(),
                OpResult::Aborted { reason } => format!("failed: aborted ({reason:?})"),
                OpResult::Credited { to_balance } => format!("credited: balance {to_balance}"),
                OpResult::Snapshot {
                    balances,
                    positions,
                } => {
                    let at: Vec<String> =
                        positions.iter().map(|(s, i)| format!("{s}@{i}")).collect();
                    format!(
                        "{} (snapshot at {})",
                        format_balances(balances),
                        at.join(" ")
                    )
                }
            };
            println!("{node}: exec_index {} {what}", reply.exec_index);
        }
        ClientResponse::Rejected { node, reason } => println!("{node}: rejected: {reason}"),
        ClientResponse::NotLeader { node, leader_hint } => {
            let hint = leader_hint.map_or("unknown".to_string(), |l| l.to_string());
            println!("{node}: not the leader (leader: {hint})")
        }
        ClientResponse::Overloaded { node } => println!("{node}: overloaded, try again"),
        ClientResponse::Db {
            node,
            exec_index,
            balances,
        } => {
            println!(
                "{node}: exec_index {exec_index}: {}",
                format_balances(balances)
            )
        }
        ClientResponse::Log {
            node,
            checkpoint_slot,
            entries,
        } => {
            println!("{node}: checkpoint at slot {checkpoint_slot}");
            for e in entries {
                let body = if e.noop {
                    "no-op".to_string()
                } else {
                    e.commands
                        .iter()
                        .map(format_command)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "  slot {:>6} [{}] ballot {} {body}",
                    e.slot,
                    e.state.letter(),
                    e.ballot
                );
            }
        }
        ClientResponse::SlotStatus { node, slot, state } => {
            println!("{node}: slot {slot}: {}", state.letter())
        }
        ClientResponse::Views { node, views } => {
            println!("{node}: {} views", views.len());
            for v in views {
                println!(
                    "  ballot {} leader {} from slot {}",
                    v.ballot, v.leader, v.next_slot
                );
            }
        }
        ClientResponse::Executed {
            node,
            first_available,
            last,
            entries,
        } => {
            println!(
                "{node}: executed {first_available}..={last}, {} shown",
                entries.len()
            )
        }
        ClientResponse::Status(s) => println!(
            "{}: {:?} ballot {} leader {} commit {} executed {} exec_index {} checkpoint {}",
            s.node,
            s.role,
            s.ballot,
            s.leader.map_or("unknown".to_string(), |l| l.to_string()),
            s.commit_slot,
            s.executed_slot,
            s.exec_index,
            s.checkpoint_slot
        ),
        ClientResponse::Error { node, message } => println!("{node}: error: {message}"),
        ClientResponse::Unauthorized { node, client } => {
            println!("{node}: refused: this certificate may not submit as client {client}")
        }
        ClientResponse::Expired {
            node,
            client,
            floor,
        } => println!(
            "{node}: expired: client {client} was evicted from the reply table; \
             use a request id above {floor} (this one may or may not have executed)"
        ),
        ClientResponse::FailpointArmed { node, name, once } => {
            let when = if *once { "its next hit" } else { "every hit" };
            println!("{node}: failpoint {name} armed: the replica aborts at {when}")
        }
        ClientResponse::OperatorOnly { node } => println!(
            "{node}: refused: this request needs an operator certificate \
             (faultline:operator:..., as `replica init` writes for client.pem)"
        ),
    }
}

fn format_balances(balances: &std::collections::BTreeMap<crate::types::Account, i64>) -> String {
    let parts: Vec<String> = balances.iter().map(|(a, b)| format!("{a}={b}")).collect();
    format!(
        "{} (total {})",
        parts.join(" "),
        balances.values().sum::<i64>()
    )
}

fn format_command(c: &Command) -> String {
    let op = match &c.op {
        Op::Transfer { from, to, amount } => format!("transfer({from},{to},{amount})"),
        Op::Read { account } => format!("read({account})"),
        Op::ReadAll => "read_all".to_string(),
    };
    format!("{}#{} {op}", c.client, c.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("replica"), command)];
        while let Some((path, command)) = stack.pop() {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn ctl_takes_a_duration() {
        let cli = Cli::try_parse_from(["replica", "ctl", "--timeout", "500ms", "status"]).unwrap();
        let Cmd::Ctl(args) = cli.command else {
            panic!("not ctl")
        };
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert!(
            Cli::try_parse_from(["replica", "ctl", "--timeout", "5 parsecs", "status"]).is_err()
        );
    }

    #[test]
    fn ctl_arms_one_failpoint_once_unless_told_every() {
        let request = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Cmd::Ctl(ctl) = cli.command else {
                panic!("not ctl")
            };
            ctl_request(&ctl.what, ClientIdRange::DEFAULT)
        };
        let once = request(&["replica", "ctl", "--node", "n1", "arm-failpoint", "x"]);
        assert_eq!(
            once,
            ClientRequest::ArmFailpoint {
                name: "x".into(),
                once: true
            }
        );
        let every = request(&["replica", "ctl", "arm-failpoint", "--every", "y"]);
        assert_eq!(
            every,
            ClientRequest::ArmFailpoint {
                name: "y".into(),
                once: false
            }
        );
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn init_leaves_no_ca_key_in_the_cluster_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        init(&dir, 3, 7001, None).unwrap();
        let ca_pem = std::fs::read_to_string(dir.join("certs/ca.pem")).unwrap();
        assert!(ca_pem.contains("CERTIFICATE"));
        let keys: Vec<PathBuf> = files_under(&dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .collect();
        let names: Vec<String> = keys
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut expected = vec!["client.key", "n1.key", "n2.key", "n3.key"];
        let mut sorted = names.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "only leaf keys: {names:?}");
    }

    #[test]
    fn init_keeps_the_ca_key_only_where_asked_and_never_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        let inside = dir.join("ca.key");
        assert!(init(&dir, 3, 7001, Some(&inside)).is_err());
        let sneaky = tmp.path().join("other/../cluster/certs/ca.key");
        assert!(init(&dir, 3, 7001, Some(&sneaky)).is_err(), "a .. path");
        let link = tmp.path().join("link");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(
            init(&dir, 3, 7001, Some(&link.join("ca.key"))).is_err(),
            "a symlink"
        );
        let outside = tmp.path().join("ca.key");
        init(&dir, 3, 7001, Some(&outside)).unwrap();
        assert!(std::fs::read_to_string(&outside)
            .unwrap()
            .contains("PRIVATE KEY"));
        assert!(!dir.join("certs/ca.key").exists());
    }

    #[test]
    fn init_writes_a_sharded_cluster_only_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sharded");
        let layout = Layout::Sharded {
            shards: 3,
            replicas_per_shard: 3,
        };
        init_with(&dir, layout, 7001, None).unwrap();
        let config = ClusterConfig::load(&dir.join("cluster.toml")).unwrap();
        assert_eq!(config.nodes.len(), 9);
        assert_eq!(config.shard_map().count(), 3);
        assert!(dir.join("certs/n9.pem").exists());
        let classic = tmp.path().join("classic");
        init(&classic, 5, 7001, None).unwrap();
        let config = ClusterConfig::load(&classic.join("cluster.toml")).unwrap();
        assert!(config.shards.is_empty());
        let too_many = Layout::Sharded {
            shards: 11,
            replicas_per_shard: 1,
        };
        let err = init_with(&tmp.path().join("x"), too_many, 7001, None).unwrap_err();
        assert!(err.to_string().contains("--shards 11"), "{err}");
    }

    #[test]
    fn init_takes_either_nodes_or_shards() {
        assert!(Cli::try_parse_from(["replica", "init", "--shards", "3"]).is_ok());
        assert!(Cli::try_parse_from(["replica", "init", "--nodes", "3"]).is_ok());
        let both = [
            "replica",
            "init",
            "--nodes",
            "3",
            "--replicas-per-shard",
            "3",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn init_refuses_ports_beyond_65535() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(init(&tmp.path().join("c"), 5, 65_534, None).is_err());
    }

    #[test]
    fn ctl_submits_under_an_id_its_certificate_allows() {
        let ids = ClientIdRange::new(100, 199).unwrap();
        let ClientRequest::Submit(command) = ctl_request(&CtlCmd::ReadAll, ids) else {
            panic!("not a submit")
        };
        assert!(ids.contains(command.client), "{}", command.client);
    }
}
