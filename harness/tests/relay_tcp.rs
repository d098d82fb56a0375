//! The TCP relay: forwarding, finding the caller of a peer connection from its request head,
//! silent cuts that hold bytes without losing or resetting anything, one-way cuts, and
//! callers the relay cannot name.

use harness::os::relay::Peer;
use harness::os::relay_tcp::{TcpPathSpec, TcpRelay};
use replica::types::NodeId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

/// A node that echoes every byte and counts what it received.
struct EchoNode {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
}

async fn echo_node() -> EchoNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    count.fetch_add(n as u64, Ordering::SeqCst);
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    EchoNode { addr, received }
}

/// A relay with peer and client ports for three echo nodes.
async fn relay_for_three() -> (TcpRelay, Vec<EchoNode>) {
    let nodes = vec![echo_node().await, echo_node().await, echo_node().await];
    let mut paths = Vec::new();
    for (node, echo) in [N1, N2, N3].into_iter().zip(&nodes) {
        for from in [Peer::Node(node), Peer::Clients] {
            paths.push(TcpPathSpec {
                from,
                to: node,
                target: echo.addr,
            });
        }
    }
    let relay = TcpRelay::start(&paths).await.expect("relay starts");
    for (id, node) in [(0xa1, N1), (0xa2, N2), (0xa3, N3)] {
        relay.register_member(id, node);
    }
    (relay, nodes)
}

fn head_from(member_id: Option<u64>) -> Vec<u8> {
    let from = member_id.map_or(String::new(), |id| format!("X-Server-From: {id:x}\r\n"));
    format!("GET /raft/stream/message/a2 HTTP/1.1\r\nHost: x\r\n{from}\r\n").into_bytes()
}

/// Dials `to`'s peer port as `member_id` and sends the request head.
async fn dial_peer(relay: &TcpRelay, member_id: Option<u64>, to: NodeId) -> (TcpStream, usize) {
    let addr = relay.listen_addr(Peer::Node(N1), to).expect("peer port");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = head_from(member_id);
    stream.write_all(&head).await.expect("send head");
    (stream, head.len())
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("bytes arrive in time")
        .expect("read");
    buf
}

/// Whether anything at all arrives within `wait`.
async fn silent_for(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(wait, stream.read(&mut byte))
        .await
        .is_err()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn client_traffic_is_forwarded_both_ways() {
    let (relay, _nodes) = relay_for_three().await;
    let addr = relay.listen_addr(Peer::Clients, N2).expect("client port");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"hello etcd").await.expect("send");
    assert_eq!(read_exactly(&mut stream, 10).await, b"hello etcd");
    assert_eq!(
        relay
            .counters(Peer::Clients, Peer::Node(N2))
            .map(|c| c.bytes),
        Some(10)
    );
    assert_eq!(
        relay
            .counters(Peer::Node(N2), Peer::Clients)
            .map(|c| c.bytes),
        Some(10)
    );
}

#[tokio::test]
async fn a_cut_holds_bytes_and_a_heal_delivers_every_one_in_order() {
    let (relay, nodes) = relay_for_three().await;
    let (mut stream, head_len) = dial_peer(&relay, Some(0xa1), N2).await;
    assert_eq!(
        read_exactly(&mut stream, head_len).await,
        head_from(Some(0xa1))
    );

    relay.cut(Peer::Node(N1), Peer::Node(N2));
    let before = nodes[1].received.load(Ordering::SeqCst);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let sent = payload.clone();
        let (mut read_half, mut write_half) = stream.into_split();
        let writer = tokio::spawn(async move {
            write_half.write_all(&sent).await.expect("write while cut");
            write_half
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            nodes[1].received.load(Ordering::SeqCst),
            before,
            "nothing crosses a cut link"
        );
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), read_half.read(&mut byte))
                .await
                .is_err(),
            "the connection stays open and silent"
        );
        relay.heal(Peer::Node(N1), Peer::Node(N2));
        let mut echoed = vec![0u8; payload.len()];
        tokio::time::timeout(Duration::from_secs(5), read_half.read_exact(&mut echoed))
            .await
            .expect("held bytes flow after the heal")
            .expect("read");
        assert_eq!(echoed, payload, "no byte lost or reordered");
        writer
    };
    writer.await.expect("writer finishes");
    let counters = relay
        .counters(Peer::Node(N1), Peer::Node(N2))
        .expect("link");
    assert!(
        counters.held >= 1,
        "the cut held at least one chunk: {counters:?}"
    );
}

#[tokio::test]
async fn a_one_way_cut_holds_only_the_answers() {
    let (relay, nodes) = relay_for_three().await;
    let (mut stream, head_len) = dial_peer(&relay, Some(0xa1), N2).await;
    read_exactly(&mut stream, head_len).await;

    relay.cut(Peer::Node(N2), Peer::Node(N1));
    let before = nodes[1].received.load(Ordering::SeqCst);
    stream.write_all(b"ping").await.expect("send");
    eventually("the request to reach n2", || {
        nodes[1].received.load(Ordering::SeqCst) == before + 4
    })
    .await;
    assert!(
        silent_for(&mut stream, Duration::from_millis(200)).await,
        "n2's answer to n1 is held"
    );
    relay.heal_all();
    assert_eq!(read_exactly(&mut stream, 4).await, b"ping");
}

#[tokio::test]
async fn links_not_involving_the_caller_do_not_hold_it() {
    let (relay, _nodes) = relay_for_three().await;
    let (mut stream, head_len) = dial_peer(&relay, Some(0xa1), N2).await;
    read_exactly(&mut stream, head_len).await;
    relay.set_cuts(&[
        (Peer::Node(N3), Peer::Node(N2)),
        (Peer::Node(N2), Peer::Node(N3)),
    ]);
    stream.write_all(b"still here").await.expect("send");
    assert_eq!(read_exactly(&mut stream, 10).await, b"still here");
    assert_eq!(
        relay.cuts(),
        vec![
            (Peer::Node(N2), Peer::Node(N3)),
            (Peer::Node(N3), Peer::Node(N2))
        ]
    );
}

#[tokio::test]
async fn an_unnamed_caller_is_held_while_any_link_into_the_node_is_cut() {
    let (relay, nodes) = relay_for_three().await;
    relay.cut(Peer::Node(N3), Peer::Node(N2));
    let (mut stream, _) = dial_peer(&relay, None, N2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        nodes[1].received.load(Ordering::SeqCst),
        0,
        "a caller without X-Server-From might be n3"
    );
    assert!(silent_for(&mut stream, Duration::from_millis(100)).await);
    relay.heal_all();
    let head = head_from(None);
    assert_eq!(read_exactly(&mut stream, head.len()).await, head);
}

#[tokio::test]
async fn a_connection_idle_before_its_first_request_is_still_named() {
    let (relay, _nodes) = relay_for_three().await;
    // While n3 → n2 is cut, a caller the relay cannot name is held.
    relay.cut(Peer::Node(N3), Peer::Node(N2));
    let addr = relay.listen_addr(Peer::Node(N1), N2).expect("peer port");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A keep-alive connection dialed ahead of need says nothing for a while.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let head = head_from(Some(0xa1));
    stream.write_all(&head).await.expect("send head");
    assert_eq!(
        read_exactly(&mut stream, head.len()).await,
        head,
        "n1 → n2 is whole, however late n1's first request came"
    );
}

#[tokio::test]
async fn a_member_registered_late_is_judged_from_then_on() {
    let (relay, _nodes) = relay_for_three().await;
    let (mut stream, head_len) = dial_peer(&relay, Some(0xbeef), N2).await;
    read_exactly(&mut stream, head_len).await;
    relay.register_member(0xbeef, N3);
    relay.cut(Peer::Node(N1), Peer::Node(N2));
    stream.write_all(b"n3 talks").await.expect("send");
    assert_eq!(
        read_exactly(&mut stream, 8).await,
        b"n3 talks",
        "n3 → n2 is whole"
    );
    relay.cut(Peer::Node(N3), Peer::Node(N2));
    stream.write_all(b"cut").await.expect("send");
    assert!(silent_for(&mut stream, Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_connection_to_a_node_that_is_down_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = listener.local_addr().expect("addr");
    drop(listener);
    let relay = TcpRelay::start(&[TcpPathSpec {
        from: Peer::Clients,
        to: N1,
        target: dead,
    }])
    .await
    .expect("relay starts");
    let addr = relay.listen_addr(Peer::Clients, N1).expect("port");
    let mut stream = TcpStream::connect(addr).await.expect("the relay accepts");
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
}

#[tokio::test]
async fn a_path_declared_twice_is_refused() {
    let spec = TcpPathSpec {
        from: Peer::Clients,
        to: N1,
        target: "127.0.0.1:9".parse().expect("addr"),
    };
    assert!(TcpRelay::start(&[spec.clone(), spec]).await.is_err());
}
