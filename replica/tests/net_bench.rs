//! Throughput figures for the network layer. Ignored by default; run in release:
//!
//! ```text
//! cargo test -p replica --release --test net_bench -- --ignored --nocapture
//! ```

use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod net_support;
use net_support::*;

/// Messages of about 200 bytes encoded.
fn message() -> TestMsg {
    TestMsg::Data(vec![0xab; 196])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn peer_link_messages_per_second() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (n1, _in1) = start_node(&certs, 1, &addrs).await;
    let (_n2, mut in2) = start_node(&certs, 2, &addrs).await;
    // Wait for the link: n1's first attempt may have gone out before n2 was listening, and
    // messages queued behind a failed attempt are dropped (the protocol resends; this loop
    // would wait for them forever).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        n1.send(NodeId(2), TestMsg::Ping(0));
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), in2.peer_rx.recv()).await
        {
            break;
        }
        assert!(Instant::now() < deadline, "the link never came up");
    }
    while in2.peer_rx.try_recv().is_ok() {}
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let (r, p) = (received.clone(), progress.clone());
    tokio::spawn(async move {
        while in2.peer_rx.recv().await.is_some() {
            if r.fetch_add(1, Ordering::Relaxed) % 128 == 0 {
                p.notify_one();
            }
        }
    });
    let frame_bytes = replica::net::frame::encode_frame(&message(), MAX_FRAME)
        .unwrap()
        .len();
    let window = 768; // below the 1024 queue bound, so nothing is dropped
    let run = Duration::from_secs(5);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < run {
        while sent - received.load(Ordering::Relaxed) >= window {
            progress.notified().await;
        }
        n1.send(NodeId(2), message());
        sent += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    println!(
        "peer link: {got} messages of {frame_bytes} bytes in {secs:.2} s = {:.0} msg/s ({:.1} MB/s), dropped {}",
        got as f64 / secs,
        got as f64 * frame_bytes as f64 / secs / 1e6,
        n1.dropped()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn client_calls_per_second_and_latency() {
    let certs = Certs::new();
    let addrs = [free_addr()];
    let (_network, mut incoming) = start_node(&certs, 1, &addrs).await;
    tokio::spawn(async move {
        while let Some(call) = incoming.client_rx.recv().await {
            let _ = call
                .respond
                .send(ClientResponse::Overloaded { node: NodeId(1) });
        }
    });
    let client = Arc::new(
        Client::new(
            &certs.config(&addrs),
            &certs.path("client.pem"),
            &certs.path("client.key"),
        )
        .unwrap(),
    );
    client
        .call(NodeId(1), &ClientRequest::Status, Duration::from_secs(5))
        .await
        .unwrap();
    let run = Duration::from_secs(5);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let start = Instant::now();
                while start.elapsed() < run {
                    let t = Instant::now();
                    client
                        .call(NodeId(1), &ClientRequest::Status, Duration::from_secs(5))
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "client calls (10 closed-loop tasks, one shared Client): {:.0} calls/s, p50 {:?}, p99 {:?}",
        latencies.len() as f64 / run.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
}
