//! What a client certificate may do and how much a client can make a replica hold (issue 8,
//! items 8 and 9), against a real `Network` endpoint on 127.0.0.1.

use replica::bank::{Command, Op};
use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::net::frame::LEN_BYTES;
use replica::net::{codes, ClientCall, Incoming, NetLimits, Network};
use replica::types::{ClientId, NodeId, RequestId, Slot};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout;

mod net_support;
use net_support::*;

const CALL: Duration = Duration::from_secs(5);

/// One replica endpoint, n1, on a free loopback port with `limits` and a client queue of
/// `queue_bound`, and the certificates to reach it: where every test here starts.
struct One {
    certs: Certs,
    addrs: [SocketAddr; 1],
    net: Network<TestMsg>,
    incoming: Incoming<TestMsg>,
}

async fn one_node(limits: NetLimits, queue_bound: usize) -> One {
    let certs = Certs::new();
    let addrs = [free_addr()];
    let (net, incoming) = start_as(&certs.identity("n1"), 1, &addrs, limits, queue_bound).await;
    One {
        certs,
        addrs,
        net,
        incoming,
    }
}

fn submit(client: u64, request: u64) -> ClientRequest {
    ClientRequest::Submit(Command {
        client: ClientId(client),
        request: RequestId(request),
        op: Op::ReadAll,
    })
}

/// Answers every call that reaches the shell with an `Error` saying "seen", counting them.
fn spawn_counter(mut client_rx: mpsc::Receiver<ClientCall>) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Some(call) = client_rx.recv().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = call.respond.send(ClientResponse::Error {
                node: NodeId(1),
                message: "seen".into(),
            });
        }
    });
    seen
}

fn client(certs: &Certs, addrs: &[SocketAddr], name: &str) -> Client {
    Client::new(
        &certs.config(addrs),
        &certs.path(&format!("{name}.pem")),
        &certs.path(&format!("{name}.key")),
    )
    .unwrap()
}

fn seen() -> ClientResponse {
    ClientResponse::Error {
        node: NodeId(1),
        message: "seen".into(),
    }
}

fn limits() -> NetLimits {
    NetLimits::new(MAX_FRAME)
}

#[tokio::test]
async fn a_client_may_submit_only_under_its_certificates_ids() {
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits(), 64).await;
    let seen_count = spawn_counter(incoming.client_rx);
    let alice = client(&certs, &addrs, "alice");
    let bob = client(&certs, &addrs, "bob");
    assert_eq!(alice.client_ids(), Some(ids(100, 199)));

    async fn call(c: &Client, request: ClientRequest) -> ClientResponse {
        c.call(NodeId(1), &request, CALL).await.unwrap()
    }
    assert_eq!(call(&alice, submit(150, 1)).await, seen());
    assert_eq!(call(&bob, submit(250, 1)).await, seen());
    // Alice posing as one of Bob's clients, and as a client outside every range.
    for client in [250, 99, u64::MAX] {
        assert_eq!(
            call(&alice, submit(client, u64::MAX)).await,
            ClientResponse::Unauthorized {
                node: NodeId(1),
                client: ClientId(client)
            }
        );
    }
    // Introspection needs no client id.
    assert_eq!(call(&alice, ClientRequest::Status).await, seen());
    // A replica certificate (here a non-member's) submits under no client id at all.
    let n9 = client(&certs, &addrs, "n9");
    assert!(matches!(
        n9.call(NodeId(1), &submit(150, 2), CALL).await.unwrap(),
        ClientResponse::Unauthorized { .. }
    ));
    assert_eq!(
        seen_count.load(Ordering::SeqCst),
        3,
        "refusals never reach the shell"
    );
}

#[tokio::test]
async fn only_an_operator_or_a_member_may_read_the_replicas_state() {
    // Issue 21: print-db, print-log and fetch-executed were open to every client certificate
    // and to replica certificates of non-members.
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_net, incoming) = start_as(&certs.identity("n1"), 1, &addrs, limits(), 64).await;
    let seen_count = spawn_counter(incoming.client_rx);
    let reads = [
        ClientRequest::PrintDb,
        ClientRequest::PrintLog {
            from_slot: Slot(0),
            max_entries: 10,
        },
        ClientRequest::FetchExecuted {
            from_exec_index: 1,
            max_entries: 10,
        },
        ClientRequest::ArmFailpoint {
            name: "after-prepare".into(),
            once: true,
        },
    ];
    // A plain client (alice) and a non-member replica (n9) are refused, never reaching the shell.
    for name in ["alice", "n9"] {
        let c = client(&certs, &addrs, name);
        for request in &reads {
            assert_eq!(
                c.call(NodeId(1), request, CALL).await.unwrap(),
                ClientResponse::OperatorOnly { node: NodeId(1) },
                "{name}: {request:?}"
            );
        }
        // Status stays open: clients find the leader with it.
        assert_eq!(
            c.call(NodeId(1), &ClientRequest::Status, CALL)
                .await
                .unwrap(),
            seen()
        );
    }
    assert_eq!(seen_count.load(Ordering::SeqCst), 2);
    // The operator (the cluster's own client certificate) and a member (n2) are served.
    for name in ["client", "n2"] {
        let c = client(&certs, &addrs, name);
        for request in &reads {
            assert_eq!(
                c.call(NodeId(1), request, CALL).await.unwrap(),
                seen(),
                "{name}"
            );
        }
    }
    assert_eq!(seen_count.load(Ordering::SeqCst), 2 + 2 * reads.len());
}

#[tokio::test]
async fn a_request_frame_above_the_client_limit_closes_the_connection() {
    let limits = limits();
    assert!(
        limits.max_request_bytes < MAX_FRAME,
        "the point of the test"
    );
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits, 64).await;
    let seen_count = spawn_counter(incoming.client_rx);
    let connection = raw_connect(&certs.identity("alice"), addrs[0], "n1").await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let len = limits.max_request_bytes + 1;
    let mut frame = len.to_le_bytes().to_vec();
    frame.resize(LEN_BYTES + len as usize, 0);
    let _ = send.write_all(&frame).await;
    let reason = timeout(CALL, connection.closed()).await.unwrap();
    assert!(closed_with(&reason, codes::BAD_FRAME), "{reason}");
    assert_eq!(seen_count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_full_client_queue_answers_busy_at_once() {
    // Queue of one, and a shell that never reads it.
    let One {
        certs,
        addrs,
        net: _net,
        incoming: _held,
    } = one_node(limits(), 1).await;
    let alice = Arc::new(client(&certs, &addrs, "alice"));
    let first = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.call(NodeId(1), &submit(100, 1), CALL).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let second = alice.call(NodeId(1), &submit(101, 1), CALL).await.unwrap();
    assert_eq!(second, ClientResponse::Overloaded { node: NodeId(1) });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    first.abort();
}

#[tokio::test]
async fn a_flood_of_streams_is_bounded_per_connection_and_in_all() {
    let limits = NetLimits {
        max_client_streams_per_connection: 4,
        max_client_streams: 6,
        ..limits()
    };
    // The shell never answers: every admitted request stays in flight.
    let One {
        certs,
        addrs,
        net: _net,
        mut incoming,
    } = one_node(limits, 1024).await;
    let flood = |name: &'static str, n: u64| {
        let alice = Arc::new(client(&certs, &addrs, name));
        (0..n)
            .map(|k| {
                let alice = alice.clone();
                tokio::spawn(async move {
                    alice
                        .call(NodeId(1), &submit(100 + k, 1), Duration::from_secs(30))
                        .await
                })
            })
            .collect::<Vec<_>>()
    };
    let first = flood("alice", 20);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut admitted = Vec::new();
    while let Ok(call) = incoming.client_rx.try_recv() {
        admitted.push(call);
    }
    assert_eq!(admitted.len(), 4, "one connection gets 4 streams served");
    // A second connection gets the 2 left in the endpoint's budget; the rest are told busy.
    let second = flood("alice", 6);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let busy = second.iter().filter(|task| task.is_finished()).count();
    while let Ok(call) = incoming.client_rx.try_recv() {
        admitted.push(call);
    }
    assert_eq!(admitted.len(), 6, "no more than the budget in flight");
    assert_eq!(busy, 4, "the rest answered busy");
    for task in second {
        if task.is_finished() {
            let answer = task.await.unwrap().unwrap();
            assert_eq!(answer, ClientResponse::Overloaded { node: NodeId(1) });
        } else {
            task.abort();
        }
    }
    for task in first {
        task.abort();
    }
}

#[tokio::test]
async fn client_connections_are_bounded() {
    let limits = NetLimits {
        max_client_connections: 2,
        ..limits()
    };
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits, 64).await;
    spawn_counter(incoming.client_rx);
    let clients: Vec<Client> = (0..3).map(|_| client(&certs, &addrs, "alice")).collect();
    for c in &clients[..2] {
        assert_eq!(
            c.call(NodeId(1), &ClientRequest::Status, CALL)
                .await
                .unwrap(),
            seen()
        );
    }
    let third = clients[2]
        .call(NodeId(1), &ClientRequest::Status, CALL)
        .await;
    assert!(third.is_err(), "{third:?}");
    // Closing one makes room again.
    clients[0].close();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = client(&certs, &addrs, "alice");
    assert_eq!(
        again
            .call(NodeId(1), &ClientRequest::Status, CALL)
            .await
            .unwrap(),
        seen()
    );
}

#[tokio::test]
async fn connection_churn_never_holds_more_than_the_connection_cap() {
    let limits = NetLimits {
        max_connections: 3,
        ..limits()
    };
    let One {
        certs,
        addrs,
        net,
        incoming,
    } = one_node(limits, 64).await;
    spawn_counter(incoming.client_rx);
    let mut most = 0;
    let mut served = 0;
    for _ in 0..8 {
        // A burst of clients that connect, ask once and go away.
        let burst: Vec<_> = (0..4)
            .map(|_| {
                let c = client(&certs, &addrs, "alice");
                tokio::spawn(async move {
                    let answer = c
                        .call(NodeId(1), &ClientRequest::Status, Duration::from_secs(1))
                        .await;
                    c.close();
                    answer.is_ok()
                })
            })
            .collect();
        for task in burst {
            most = most.max(net.open_connections());
            served += usize::from(task.await.unwrap());
        }
        most = most.max(net.open_connections());
    }
    assert!(most <= 3, "held {most} connections");
    assert!(served > 0, "some clients were served");
}

#[tokio::test]
async fn a_call_with_an_unbounded_timeout_does_not_overflow_the_clock() {
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits(), 64).await;
    spawn_counter(incoming.client_rx);
    let alice = client(&certs, &addrs, "alice");
    let answer = alice
        .call(NodeId(1), &ClientRequest::Status, Duration::MAX)
        .await;
    assert_eq!(answer.unwrap(), seen());
}

/// Issue 21, item 2: one certificate holding as many idle connections as it can get leaves
/// the others their share: another certificate is still served at once.
#[tokio::test]
async fn one_certificate_cannot_take_every_client_connection() {
    let limits = NetLimits {
        max_client_connections: 16,
        ..limits()
    };
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits, 64).await;
    spawn_counter(incoming.client_rx);
    // Alice opens 20 connections and keeps them (before: she took all 16 client slots).
    let hogs: Vec<Client> = (0..20).map(|_| client(&certs, &addrs, "alice")).collect();
    let mut held = 0;
    for c in &hogs {
        held += usize::from(
            c.call(NodeId(1), &ClientRequest::Status, CALL)
                .await
                .is_ok(),
        );
    }
    assert_eq!(held, limits.max_connections_per_identity, "alice's share");
    let bob = client(&certs, &addrs, "bob");
    let answer = bob.call(NodeId(1), &ClientRequest::Status, CALL).await;
    assert_eq!(answer.unwrap(), seen(), "bob is served");
}

/// Issue 21, item 2: a client connection that sends nothing is closed after the idle timeout,
/// keep-alives or not, and its slot is free again.
#[tokio::test]
async fn an_idle_client_connection_is_closed() {
    let limits = NetLimits {
        max_connections_per_identity: 1,
        client_idle_timeout: Duration::from_millis(300),
        ..limits()
    };
    let One {
        certs,
        addrs,
        net: _net,
        incoming,
    } = one_node(limits, 64).await;
    spawn_counter(incoming.client_rx);
    let first = client(&certs, &addrs, "alice");
    assert_eq!(
        first
            .call(NodeId(1), &ClientRequest::Status, CALL)
            .await
            .unwrap(),
        seen()
    );
    let second = client(&certs, &addrs, "alice");
    assert!(
        second
            .call(NodeId(1), &ClientRequest::Status, CALL)
            .await
            .is_err(),
        "alice's one slot is taken"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let third = client(&certs, &addrs, "alice");
    assert_eq!(
        third
            .call(NodeId(1), &ClientRequest::Status, CALL)
            .await
            .unwrap(),
        seen(),
        "the idle connection was closed and its slot freed"
    );
}

/// Issue 21, item 2: one certificate's requests take at most its share of the endpoint's
/// request budget; another certificate's request still reaches the shell.
#[tokio::test]
async fn one_certificate_cannot_take_every_request_slot() {
    let limits = NetLimits {
        max_client_streams: 8,
        max_client_streams_per_identity: 4,
        max_client_streams_per_connection: 8,
        ..limits()
    };
    // The shell never answers: every admitted request stays in flight.
    let One {
        certs,
        addrs,
        net: _net,
        mut incoming,
    } = one_node(limits, 1024).await;
    let alice = Arc::new(client(&certs, &addrs, "alice"));
    let flood: Vec<_> = (0..20)
        .map(|k| {
            let alice = alice.clone();
            tokio::spawn(async move {
                alice
                    .call(NodeId(1), &submit(100 + k, 1), Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bob = Arc::new(client(&certs, &addrs, "bob"));
    let bobs = tokio::spawn(async move {
        bob.call(NodeId(1), &submit(200, 1), Duration::from_secs(30))
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut admitted = Vec::new();
    while let Ok(call) = incoming.client_rx.try_recv() {
        admitted.push(call);
    }
    let of = |client: u64| {
        admitted
            .iter()
            .filter(|c| matches!(&c.request, ClientRequest::Submit(cmd) if (cmd.client.0 >= client && cmd.client.0 < client + 100)))
            .count()
    };
    assert_eq!(of(100), 4, "alice's share");
    assert_eq!(of(200), 1, "bob's request reached the shell");
    for task in flood {
        task.abort();
    }
    bobs.abort();
}
