//! The bounded reply table at the core (issue 8, item 8): a request of a client evicted from
//! the reply table, at or below the eviction floor, is refused `Expired`, never proposed.

use crate::util::*;
use replica::bank::{Bank, ReplyLimits};
use replica::client_proto::ClientResponse;
use replica::core::{Checkpoint, PeerMsg};
use replica::types::{ClientId, RequestId, Slot};

/// A leader that installed a checkpoint in which client 1 (last request 5) was evicted.
fn leader_after_an_eviction() -> replica::core::Core {
    let config = cfg(1, 3);
    let mut core = fresh_with(config.clone());
    let (ballot, _) = campaign(&mut core, 1_000);
    let mut bank = Bank::new(&config.accounts, 10).with_reply_limits(ReplyLimits {
        max_clients: 1,
        idle_commands: 0,
    });
    bank.execute(&transfer(1, 5, "A", "B", 1), true);
    bank.execute(&read(2, 1, "A"), true);
    assert_eq!(bank.expired(ClientId(1), RequestId(5)), Some(RequestId(5)));
    let promise = PeerMsg::Promise {
        ballot,
        commit: Slot(20),
        entries: vec![],
        checkpoint: Some(Checkpoint {
            slot: Slot(20),
            bank,
            ballot: b(0, 2),
        }),
    };
    let mut out = Vec::new();
    core.on_message(1_001, n(2), promise, &mut out);
    assert!(core.leads());
    core
}

#[test]
fn an_evicted_clients_old_request_is_refused_as_expired_and_not_proposed() {
    let mut core = leader_after_an_eviction();
    let out = submit(&mut core, 2_000, 11, transfer(1, 5, "A", "B", 1));
    assert_eq!(
        replies(&out),
        vec![(
            11,
            ClientResponse::Expired {
                node: n(1),
                client: ClientId(1),
                floor: RequestId(5)
            }
        )]
    );
    assert!(
        sends(&out)
            .iter()
            .all(|(_, m)| !matches!(m, PeerMsg::Accept { .. })),
        "nothing proposed"
    );
}

#[test]
fn an_evicted_client_with_a_new_request_id_is_served() {
    let mut core = leader_after_an_eviction();
    let out = submit(&mut core, 2_000, 12, transfer(1, 6, "A", "B", 1));
    assert!(replies(&out).is_empty(), "waiting for execution");
    assert!(sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, PeerMsg::Accept { .. })));
}
