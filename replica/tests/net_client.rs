//! The client library against a real `Network` endpoint on 127.0.0.1.

use replica::bank::{Command, Op};
use replica::client::{Client, ClientError};
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::net::{codes, ClientCall, Incoming};
use replica::types::{ClientId, NodeId, RequestId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

mod net_support;
use net_support::*;

const CALL: Duration = Duration::from_secs(5);

/// Answers every request with `Overloaded { node }` (or `Db` for PrintDb) until dropped.
fn spawn_responder(node: NodeId, mut client_rx: mpsc::Receiver<ClientCall>) {
    tokio::spawn(async move {
        while let Some(call) = client_rx.recv().await {
            let response = match call.request {
                ClientRequest::PrintDb => ClientResponse::Db {
                    node,
                    exec_index: 7,
                    balances: Default::default(),
                },
                _ => ClientResponse::Overloaded { node },
            };
            let _ = call.respond.send(response);
        }
    });
}

fn submit(request: u64) -> ClientRequest {
    ClientRequest::Submit(Command {
        client: ClientId(1),
        request: RequestId(request),
        op: Op::ReadAll,
    })
}

async fn one_node(
    certs: &Certs,
) -> (
    replica::net::Network<TestMsg>,
    Incoming<TestMsg>,
    Vec<SocketAddr>,
) {
    let addrs = vec![free_addr()];
    let (network, incoming) = start_node(certs, 1, &addrs).await;
    (network, incoming, addrs)
}

fn client(certs: &Certs, addrs: &[SocketAddr], name: &str) -> Client {
    let config = certs.config(addrs);
    Client::new(
        &config,
        &certs.path(&format!("{name}.pem")),
        &certs.path(&format!("{name}.key")),
    )
    .unwrap()
}

#[tokio::test]
async fn a_call_round_trips_and_calls_run_concurrently() {
    let certs = Certs::new();
    let (_network, incoming, addrs) = one_node(&certs).await;
    spawn_responder(NodeId(1), incoming.client_rx);
    let client = Arc::new(client(&certs, &addrs, "client"));

    let response = client
        .call(NodeId(1), &ClientRequest::PrintDb, CALL)
        .await
        .unwrap();
    assert!(
        matches!(response, ClientResponse::Db { exec_index: 7, .. }),
        "{response:?}"
    );

    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let response = client
                        .call(NodeId(1), &submit(t * 100 + i), CALL)
                        .await
                        .unwrap();
                    assert_eq!(response, ClientResponse::Overloaded { node: NodeId(1) });
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn unknown_nodes_timeouts_and_unanswered_calls_are_distinct_errors() {
    let certs = Certs::new();
    let (_network, mut incoming, addrs) = one_node(&certs).await;
    let client = client(&certs, &addrs, "client");
    assert!(matches!(
        client.call(NodeId(4), &ClientRequest::Status, CALL).await,
        Err(ClientError::UnknownNode(NodeId(4)))
    ));

    // The shell holds the request without answering: the client times out.
    let held = tokio::spawn(async move {
        let first = incoming.client_rx.recv().await.unwrap();
        // The second request's oneshot is dropped: the stream is finished unanswered.
        drop(incoming.client_rx.recv().await.unwrap());
        (first, incoming)
    });
    let err = client
        .call(
            NodeId(1),
            &ClientRequest::Status,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                node: NodeId(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("n1") && err.to_string().contains(&addrs[0].to_string()),
        "{err}"
    );
    let err = client
        .call(NodeId(1), &ClientRequest::Status, CALL)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoResponse { .. }), "{err}");
    let (mut first, _incoming) = held.await.unwrap();
    // The timed-out client stopped its stream, which the shell can see.
    timeout(CALL, first.respond.closed()).await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let certs = Certs::new();
    let (_network, mut incoming, addrs) = one_node(&certs).await;
    let rogue = client(&certs, &addrs, "rogue");
    let err = rogue
        .call(NodeId(1), &ClientRequest::Status, CALL)
        .await
        .unwrap_err();
    assert!(
        !matches!(err, ClientError::Timeout { .. }),
        "refused, not timed out: {err}"
    );
    assert!(
        incoming.client_rx.try_recv().is_err(),
        "nothing reached the shell"
    );
    assert!(
        timeout(Duration::from_millis(200), incoming.client_rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_oversize_request_drops_the_connection_but_not_the_server() {
    let certs = Certs::new();
    let (_network, incoming, addrs) = one_node(&certs).await;
    spawn_responder(NodeId(1), incoming.client_rx);

    let connection = raw_connect(&certs.identity("client"), addrs[0], "n1").await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let _ = send.write_all(&(MAX_FRAME + 1).to_le_bytes()).await;
    let reason = timeout(CALL, connection.closed()).await.unwrap();
    assert!(closed_with(&reason, codes::BAD_FRAME), "{reason}");

    // A request the client library refuses to encode never leaves it.
    let client = client(&certs, &addrs, "client");
    let huge = ClientRequest::Submit(Command {
        client: ClientId(1),
        request: RequestId(1),
        op: Op::Read {
            account: "x".repeat(MAX_FRAME as usize).into(),
        },
    });
    assert!(matches!(
        client.call(NodeId(1), &huge, CALL).await,
        Err(ClientError::Frame { .. })
    ));
    assert!(client
        .call(NodeId(1), &ClientRequest::PrintDb, CALL)
        .await
        .is_ok());
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_restarts() {
    let certs = Certs::new();
    let (network, incoming, addrs) = one_node(&certs).await;
    spawn_responder(NodeId(1), incoming.client_rx);
    let client = client(&certs, &addrs, "client");
    assert!(client
        .call(NodeId(1), &ClientRequest::PrintDb, CALL)
        .await
        .is_ok());

    network.shutdown();
    network.wait_closed().await;
    drop(network);
    assert!(client
        .call(
            NodeId(1),
            &ClientRequest::PrintDb,
            Duration::from_millis(500)
        )
        .await
        .is_err());

    let (_network, incoming) = start_node(&certs, 1, &addrs).await;
    spawn_responder(NodeId(1), incoming.client_rx);
    let mut answered = false;
    for _ in 0..20 {
        if client
            .call(
                NodeId(1),
                &ClientRequest::PrintDb,
                Duration::from_millis(500),
            )
            .await
            .is_ok()
        {
            answered = true;
            break;
        }
    }
    assert!(answered, "the client never reconnected");
}

#[test]
fn client_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    fn assert_send<T: Send>(_: &T) {}
    let certs = Certs::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async { client(&certs, &[free_addr()], "client") });
    assert_send(&client.call(NodeId(1), &ClientRequest::Status, CALL));
    assert!(matches!(
        Client::new(
            &certs.config(&[free_addr()]),
            &certs.path("client.pem"),
            &certs.path("client.key")
        ),
        Err(ClientError::Endpoint(_))
    ));
}
