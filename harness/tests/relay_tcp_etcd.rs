//! The TCP relay against real etcd members: the relay must recognise etcd's own peer traffic
//! (its `X-Server-From` headers), so that isolating the leader through the relay makes the
//! others elect a new one and leaves the old one unable to serve a linearizable read, and
//! healing reunites them. Needs the `etcd` and `etcdctl` binaries (Debian's etcd-server and
//! etcd-client); skipped with a message when they are absent, unless FAULTLINE_REQUIRE_ETCD is
//! set (as CI sets it).

mod common;

use harness::os::process::Child;
use harness::os::relay::Peer;
use harness::os::relay_tcp::{TcpPathSpec, TcpRelay};
use replica::types::NodeId;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MEMBERS: u32 = 3;

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// `etcdctl ... -w json` against one client address.
fn etcdctl(client: SocketAddr, args: &[&str]) -> Option<Value> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &client.to_string(),
            "--command-timeout=2s",
            "-w",
            "json",
        ])
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// (member id, leader id) as one member sees them.
fn status(client: SocketAddr) -> Option<(u64, u64)> {
    let status = etcdctl(client, &["endpoint", "status"])?;
    let header = status.get(0)?.get("Status")?;
    let member = header.get("header")?.get("member_id")?.as_u64()?;
    let leader = header.get("leader")?.as_u64()?;
    Some((member, leader))
}

fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_or_explain(what, timeout, probe, String::new)
}

/// Waits like [`wait_for`]; on a timeout the panic carries `explain()`, so a failure on a
/// loaded CI machine says what the members and the relay saw.
fn wait_or_explain<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What each member reports, the relay's cuts and counters, and the tail of each member's log.
fn explain(dir: &Path, clients: &[SocketAddr], relay: &TcpRelay) -> String {
    let mut text = String::new();
    for (k, &client) in clients.iter().enumerate() {
        let member = k + 1;
        text += &format!("n{member} status (member, leader): {:?}\n", status(client));
        let log = std::fs::read_to_string(dir.join(format!("n{member}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        text += &format!("n{member} log tail:\n  {}\n", tail.join("\n  "));
    }
    text += &format!("relay cuts: {:?}\n", relay.cuts());
    for from in 1..=MEMBERS {
        for to in (1..=MEMBERS).filter(|&to| to != from) {
            let link = (Peer::Node(NodeId(from)), Peer::Node(NodeId(to)));
            text += &format!(
                "relay n{from} -> n{to}: {:?}\n",
                relay.counters(link.0, link.1)
            );
        }
    }
    text
}

fn start_member(
    dir: &Path,
    k: u32,
    peer: SocketAddr,
    client: SocketAddr,
    cluster: &str,
    advertised: SocketAddr,
) -> Child {
    let log = std::fs::File::create(dir.join(format!("n{k}.log"))).expect("log file");
    let mut command = Command::new("etcd");
    command
        .args(["--name", &format!("n{k}")])
        .arg("--data-dir")
        .arg(dir.join(format!("n{k}.etcd")))
        .args(["--listen-peer-urls", &format!("http://{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://{advertised}"),
        ])
        .args(["--listen-client-urls", &format!("http://{client}")])
        .args(["--advertise-client-urls", &format!("http://{client}")])
        .args(["--initial-cluster", cluster])
        .args([
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "relay-test",
        ])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdout(Stdio::null())
        .stderr(log);
    Child::spawn(command).expect("etcd starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_etcd_leader_through_the_relay_elects_another_and_heals() {
    if !common::etcd_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<NodeId> = (1..=MEMBERS).map(NodeId).collect();
    let peers: Vec<SocketAddr> = nodes.iter().map(|_| free_port()).collect();
    let clients: Vec<SocketAddr> = nodes.iter().map(|_| free_port()).collect();
    let paths: Vec<TcpPathSpec> = nodes
        .iter()
        .zip(&peers)
        .map(|(&to, &target)| TcpPathSpec {
            from: Peer::Node(to),
            to,
            target,
        })
        .collect();
    let relay = TcpRelay::start(&paths).await.expect("relay");
    let advertised = |node: NodeId| {
        relay
            .listen_addr(Peer::Node(node), node)
            .expect("peer port")
    };
    let cluster = nodes
        .iter()
        .map(|&n| format!("{n}=http://{}", advertised(n)))
        .collect::<Vec<_>>()
        .join(",");
    let _members: Vec<Child> = nodes
        .iter()
        .zip(peers.iter().zip(&clients))
        .map(|(&n, (&peer, &client))| {
            start_member(dir.path(), n.0, peer, client, &cluster, advertised(n))
        })
        .collect();

    let ids: Vec<u64> = clients
        .iter()
        .map(|&c| wait_for("members to start", Duration::from_secs(30), || status(c)).0)
        .collect();
    for (&id, &node) in ids.iter().zip(&nodes) {
        relay.register_member(id, node);
    }
    let leader_id = wait_for("a leader", Duration::from_secs(30), || {
        status(clients[0]).map(|s| s.1).filter(|&l| l != 0)
    });
    let leader_at = ids
        .iter()
        .position(|&id| id == leader_id)
        .expect("leader is a member");
    let leader = Peer::Node(nodes[leader_at]);
    let cuts: Vec<_> = nodes
        .iter()
        .map(|&n| Peer::Node(n))
        .filter(|&p| p != leader)
        .flat_map(|p| [(p, leader), (leader, p)])
        .collect();
    relay.set_cuts(&cuts);

    let survivor = clients[(leader_at + 1) % clients.len()];
    // Generous: an election takes about a second, but CI machines are shared and slow.
    let new_leader = wait_or_explain(
        "the majority to elect another leader",
        Duration::from_secs(45),
        || {
            status(survivor)
                .map(|s| s.1)
                .filter(|&l| l != 0 && l != leader_id)
        },
        || explain(dir.path(), &clients, &relay),
    );
    assert!(ids.contains(&new_leader));
    assert!(
        etcdctl(clients[leader_at], &["get", "k"]).is_none(),
        "the isolated old leader cannot serve a linearizable read"
    );
    assert!(
        etcdctl(survivor, &["put", "k", "v"]).is_some(),
        "the majority accepts writes"
    );

    relay.heal_all();
    wait_or_explain(
        "the old leader to rejoin and see the write",
        Duration::from_secs(45),
        || {
            let kvs = etcdctl(clients[leader_at], &["get", "k"])?;
            let found = kvs.get("kvs")?.as_array()?.len() == 1;
            found.then_some(())
        },
        || explain(dir.path(), &clients, &relay),
    );
}
