//! Tier 3: one certificate floods the leader; an honest client is still served (issue 21,
//! item 2). The flood: 130 idle connections from one client certificate (once enough to
//! take every client connection), 64 half-sent requests on each connection it gets, and
//! unauthenticated handshakes (a certificate of a foreign CA) as fast as 64 concurrent
//! attempts go. Prints the honest client's latency and the leader's peak RSS:
//!
//! ```text
//! cargo test -p replica --test process_flood -- --nocapture
//! ```

mod process_support;

use process_support::*;
use replica::net::TlsIdentity;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ELECTION: Duration = Duration::from_secs(10);
const IDLE_CONNECTIONS: usize = 130;
const HALF_SENT_PER_CONNECTION: usize = 64;
const HANDSHAKE_WORKERS: usize = 64;
const HONEST_TRANSFERS: u64 = 40;

fn identity(cluster: &Cluster, name: &str) -> TlsIdentity {
    let certs = cluster.dir.path().join("certs");
    TlsIdentity::load(
        &certs.join("ca.pem"),
        &certs.join(format!("{name}.pem")),
        &certs.join(format!("{name}.key")),
    )
    .expect("identity")
}

fn endpoint(identity: &TlsIdentity) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(identity.client_config().unwrap());
    endpoint
}

/// Opens idle connections and half-sent requests as `plain`; returns what it holds.
async fn hold_connections(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server: &str,
) -> Vec<(quinn::Connection, Vec<quinn::SendStream>)> {
    let mut held = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        let Ok(connecting) = endpoint.connect(addr, server) else {
            continue;
        };
        let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(2), connecting).await
        else {
            continue;
        };
        let mut streams = Vec::new();
        for _ in 0..HALF_SENT_PER_CONNECTION {
            let open = tokio::time::timeout(Duration::from_millis(200), connection.open_bi());
            let Ok(Ok((mut send, _recv))) = open.await else {
                break;
            };
            // Two bytes of a four-byte frame length: a request that never completes.
            if send.write_all(&[0x10, 0x00]).await.is_ok() {
                streams.push(send);
            }
        }
        held.push((connection, streams));
    }
    held
}

/// `count` honest transfers one after the other (alternating A→B and B→A); their latencies,
/// sorted.
async fn honest_transfers(cluster: &Cluster, first: u64, count: u64) -> Vec<Duration> {
    let client = cluster.client();
    let mut latencies = Vec::new();
    for r in first..first + count {
        let (from, to) = if r % 2 == 1 { ("A", "B") } else { ("B", "A") };
        let begin = Instant::now();
        let answer = submit(&client, &transfer(5, r, from, to, 1), ELECTION).await;
        assert!(
            answer.as_ref().is_some_and(transferred),
            "honest transfer {r}: {answer:?}\n{}",
            cluster.logs_tail()
        );
        latencies.push(begin.elapsed());
    }
    latencies.sort();
    latencies
}

fn quantiles(latencies: &[Duration]) -> String {
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    format!("p50 {:?} p90 {:?} max {:?}", at(0.5), at(0.9), at(1.0))
}

/// Starts unauthenticated handshakes against `addr` until `stop`; counts them.
fn flood_handshakes(
    identity: &TlsIdentity,
    addr: SocketAddr,
    server: String,
    stop: Arc<AtomicBool>,
) -> Arc<AtomicU64> {
    let attempts = Arc::new(AtomicU64::new(0));
    for _ in 0..HANDSHAKE_WORKERS {
        let (endpoint, server) = (endpoint(identity), server.clone());
        let (stop, attempts) = (stop.clone(), attempts.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                attempts.fetch_add(1, Ordering::Relaxed);
                if let Ok(connecting) = endpoint.connect(addr, &server) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), connecting).await;
                }
            }
        });
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flooding_certificate_does_not_lock_an_honest_client_out() {
    let cluster = Cluster::start(3);
    let leader = wait_for_leader(&cluster.client(), &cluster.live(), ELECTION)
        .await
        .expect("a leader");
    let addr = cluster
        .config
        .client_addr(leader)
        .expect("the leader's address");
    let server = leader.to_string();
    let pid = cluster.pid(leader).expect("leader pid");

    let calm = honest_transfers(&cluster, 1, HONEST_TRANSFERS).await;

    let plain = endpoint(&identity(&cluster, "plain"));
    let held = hold_connections(&plain, addr, &server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let attempts = flood_handshakes(&identity(&cluster, "rogue"), addr, server, stop.clone());
    let flooded = honest_transfers(&cluster, HONEST_TRANSFERS + 1, HONEST_TRANSFERS).await;
    let flood_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peak = peak_rss_kib(pid);
    let alive: Vec<_> = held
        .iter()
        .filter(|(c, _)| c.close_reason().is_none())
        .collect();
    println!(
        "flood by one certificate: {} of {IDLE_CONNECTIONS} connections kept open, {} half-sent \
         requests on them; {:.0} unauthenticated handshakes/s for {flood_secs:.1} s",
        alive.len(),
        alive.iter().map(|(_, s)| s.len()).sum::<usize>(),
        attempts.load(Ordering::Relaxed) as f64 / flood_secs,
    );
    println!(
        "honest transfers ({HONEST_TRANSFERS} each, all committed): before the flood {}; \
         during it {}; leader {leader} peak RSS {} MiB",
        quantiles(&calm),
        quantiles(&flooded),
        peak >> 10
    );
    drop(held);
}
