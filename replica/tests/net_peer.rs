//! Peer links over real QUIC on 127.0.0.1: delivery, reconnection, and who may send what.

use replica::config::ConfigFingerprint;
use replica::net::frame::encode_frame;
use replica::net::{codes, NetLimits};
use replica::types::NodeId;
use std::time::Duration;
use tokio::time::timeout;

mod net_support;
use net_support::*;

#[tokio::test]
async fn two_nodes_exchange_messages_both_ways_in_order() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (n1, mut in1) = start_node(&certs, 1, &addrs).await;
    let (n2, mut in2) = start_node(&certs, 2, &addrs).await;

    for i in 0..100 {
        n1.send(NodeId(2), TestMsg::Ping(i));
    }
    for i in 0..100 {
        let got = timeout(WAIT, in2.peer_rx.recv()).await.unwrap().unwrap();
        assert_eq!(got, (NodeId(1), TestMsg::Ping(i)));
    }
    n2.broadcast([NodeId(1)], &TestMsg::Data(vec![7; 1000]));
    let got = timeout(WAIT, in1.peer_rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, (NodeId(2), TestMsg::Data(vec![7; 1000])));
    assert_eq!(n1.counters()[0].sent, 100);
}

#[tokio::test]
async fn a_restarted_peer_on_the_same_port_is_reconnected() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (n1, _in1) = start_node(&certs, 1, &addrs).await;
    let (n2, mut in2) = start_node(&certs, 2, &addrs).await;
    n1.send(NodeId(2), TestMsg::Ping(1));
    assert_eq!(
        timeout(WAIT, in2.peer_rx.recv()).await.unwrap(),
        Some((NodeId(1), TestMsg::Ping(1)))
    );

    n2.shutdown();
    n2.wait_closed().await;
    drop((n2, in2));
    let (_n2, mut in2) = start_node(&certs, 2, &addrs).await;

    // n1 keeps sending (as Paxos would retransmit) until the new n2 hears it.
    let delivered = timeout(WAIT, async {
        let mut i = 100;
        loop {
            n1.send(NodeId(2), TestMsg::Ping(i));
            i += 1;
            if let Ok(Some((from, _))) =
                timeout(Duration::from_millis(50), in2.peer_rx.recv()).await
            {
                return from;
            }
        }
    })
    .await;
    assert_eq!(delivered.unwrap(), NodeId(1));
}

#[tokio::test]
async fn messages_to_a_missing_peer_are_dropped_not_blocked() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()]; // nobody listens on n2's address
    let (n1, _in1) = start_node(&certs, 1, &addrs).await;
    for i in 0..5000 {
        n1.send(NodeId(2), TestMsg::Ping(i)); // never waits
    }
    n1.send(NodeId(7), TestMsg::Ping(0));
    assert!(n1.dropped() >= 5000 - 1024, "dropped {}", n1.dropped());
}

#[tokio::test]
async fn a_client_certificate_cannot_inject_peer_messages() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_n1, mut in1) = start_node(&certs, 1, &addrs).await;

    // Both a client certificate and a valid node certificate of a non-member (n9) are refused.
    for name in ["client", "n9"] {
        let connection = raw_connect(&certs.identity(name), addrs[0], "n1").await;
        let mut stream = connection.open_uni().await.unwrap();
        let frame = encode_frame(&TestMsg::Ping(666), MAX_FRAME).unwrap();
        let _ = stream.write_all(&frame).await;
        let _ = stream.finish();
        let reason = timeout(WAIT, connection.closed())
            .await
            .expect("the server closes the connection");
        assert!(closed_with(&reason, codes::NOT_A_PEER), "{name}: {reason}");
    }
    assert!(
        timeout(Duration::from_millis(300), in1.peer_rx.recv())
            .await
            .is_err(),
        "nothing was delivered"
    );
}

#[tokio::test]
async fn a_malformed_peer_frame_drops_that_connection_only() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_n1, mut in1) = start_node(&certs, 1, &addrs).await;

    // Posing as n2 (with n2's real certificate) but sending an oversize frame header.
    let connection = raw_connect(&certs.identity("n2"), addrs[0], "n1").await;
    let mut stream = connection.open_uni().await.unwrap();
    let _ = stream.write_all(&peer_header(7, 0)).await; // incarnation, fingerprint
    let _ = stream.write_all(&(MAX_FRAME + 1).to_le_bytes()).await;
    let reason = timeout(WAIT, connection.closed()).await.unwrap();
    assert!(closed_with(&reason, codes::BAD_FRAME), "{reason}");

    // Garbage that is not a TestMsg.
    let connection = raw_connect(&certs.identity("n2"), addrs[0], "n1").await;
    let mut stream = connection.open_uni().await.unwrap();
    let _ = stream.write_all(&peer_header(7, 0)).await;
    let _ = stream.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).await;
    timeout(WAIT, connection.closed()).await.unwrap();

    // The server survived: the real n2 still gets through.
    let (n2, _in2) = start_node(&certs, 2, &addrs).await;
    n2.send(NodeId(1), TestMsg::Ping(5));
    assert_eq!(
        timeout(WAIT, in1.peer_rx.recv()).await.unwrap(),
        Some((NodeId(2), TestMsg::Ping(5)))
    );
}

#[tokio::test]
async fn a_client_certificate_named_like_a_node_is_not_a_peer() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_n1, mut in1) = start_node(&certs, 1, &addrs).await;
    // Signed by the cluster CA, first DNS name "n2": once enough to pass as n2.
    certs.forge("named-n2", &["n2"], false, &[]);
    certs.forge("client-n2", &["n2"], false, &["faultline:clients:0-9"]);
    for name in ["named-n2", "client-n2"] {
        let connection = raw_connect(&certs.identity(name), addrs[0], "n1").await;
        if let Ok(mut stream) = connection.open_uni().await {
            let _ = stream.write_all(&peer_header(7, 0)).await;
            let frame = encode_frame(&TestMsg::Ping(666), MAX_FRAME).unwrap();
            let _ = stream.write_all(&frame).await;
            let _ = stream.finish();
        }
        let reason = timeout(WAIT, connection.closed())
            .await
            .expect("the server closes the connection");
        assert!(
            closed_with(&reason, codes::NOT_A_PEER) || closed_with(&reason, codes::NO_IDENTITY),
            "{name}: {reason}"
        );
    }
    assert!(
        timeout(Duration::from_millis(300), in1.peer_rx.recv())
            .await
            .is_err(),
        "nothing was delivered as n2"
    );
}

#[tokio::test]
async fn a_replica_sends_only_to_the_replica_certificate_it_expects() {
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    // At n2's address: a server certificate for the name n2 whose role is a client.
    certs.forge("evil-n2", &["n2"], true, &["faultline:clients:0-9"]);
    let evil = certs.identity("evil-n2");
    let (_evil, mut evil_in) = start_as(&evil, 2, &addrs, NetLimits::new(MAX_FRAME), 64).await;
    let (n1, _in1) = start_node(&certs, 1, &addrs).await;
    for k in 0..20 {
        n1.send(NodeId(2), TestMsg::Ping(k));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        timeout(Duration::from_millis(500), evil_in.peer_rx.recv())
            .await
            .is_err(),
        "n1 talked to an impostor"
    );
}

/// The 12-byte header every peer stream starts with: incarnation, configuration fingerprint.
fn peer_header(incarnation: u64, fingerprint: u32) -> Vec<u8> {
    let mut header = incarnation.to_le_bytes().to_vec();
    header.extend_from_slice(&fingerprint.to_le_bytes());
    header
}

fn with_fingerprint(fingerprint: u32) -> NetLimits {
    NetLimits {
        config_fingerprint: ConfigFingerprint(fingerprint),
        ..NetLimits::new(MAX_FRAME)
    }
}

#[tokio::test]
async fn a_peer_with_another_configuration_is_refused() {
    // Issue 21: a replica started with other accounts joined the cluster and diverged.
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_n1, mut in1) = start_as(&certs.identity("n1"), 1, &addrs, with_fingerprint(1), 64).await;
    let (n2, _in2) = start_as(&certs.identity("n2"), 2, &addrs, with_fingerprint(2), 64).await;
    for i in 0..10 {
        n2.send(NodeId(1), TestMsg::Ping(i));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        timeout(Duration::from_millis(500), in1.peer_rx.recv())
            .await
            .is_err(),
        "nothing from a peer with another configuration is delivered"
    );
    // On the wire: the connection is closed with CONFIG_MISMATCH, naming what n1 expects.
    let connection = raw_connect(&certs.identity("n2"), addrs[0], "n1").await;
    let mut stream = connection.open_uni().await.unwrap();
    let _ = stream.write_all(&peer_header(9, 2)).await;
    let _ = stream
        .write_all(&encode_frame(&TestMsg::Ping(666), MAX_FRAME).unwrap())
        .await;
    let reason = timeout(WAIT, connection.closed()).await.unwrap();
    assert!(closed_with(&reason, codes::CONFIG_MISMATCH), "{reason}");
    assert!(reason.to_string().contains("00000001"), "{reason}");
    drop(n2);

    // The same n2 with the same configuration gets through.
    let (n2, _in2) = start_as(&certs.identity("n2"), 2, &addrs, with_fingerprint(1), 64).await;
    n2.send(NodeId(1), TestMsg::Ping(5));
    assert_eq!(
        timeout(WAIT, in1.peer_rx.recv()).await.unwrap(),
        Some((NodeId(2), TestMsg::Ping(5)))
    );
}

#[tokio::test]
async fn a_peer_of_the_previous_version_still_gets_through() {
    // A rolling restart mixes versions: a peer that speaks only faultline/1 sends the 8-byte
    // incarnation header and no fingerprint, and is not refused for it.
    let certs = Certs::new();
    let addrs = [free_addr(), free_addr()];
    let (_n1, mut in1) = start_as(&certs.identity("n1"), 1, &addrs, with_fingerprint(1), 64).await;
    let identity = certs.identity("n2");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let old = identity
        .client_config_offering(vec![replica::net::ALPN.to_vec()])
        .unwrap();
    endpoint.set_default_client_config(old);
    let connection = endpoint.connect(addrs[0], "n1").unwrap().await.unwrap();
    let mut stream = connection.open_uni().await.unwrap();
    stream.write_all(&7u64.to_le_bytes()).await.unwrap();
    let frame = encode_frame(&TestMsg::Ping(3), MAX_FRAME).unwrap();
    stream.write_all(&frame).await.unwrap();
    assert_eq!(
        timeout(WAIT, in1.peer_rx.recv()).await.unwrap(),
        Some((NodeId(2), TestMsg::Ping(3)))
    );
}
