//! Ticks: election timeouts, heartbeats, retransmission, candidate retries.

use crate::util::*;
use replica::client_proto::Role;
use replica::core::{Core, CoreConfig, PeerMsg, Recovered};
use replica::types::Slot;

/// First tick time (10 ms ticks) at which `core` asks for pre-votes.
fn first_campaign(core: &mut Core) -> u64 {
    for now in (0..10_000).step_by(10) {
        let mut out = Vec::new();
        core.on_tick(now, &mut out);
        if !prevotes(&out).is_empty() {
            return now;
        }
    }
    panic!("never campaigned");
}

fn prepares(out: &[replica::core::Effect], to: u32) -> Vec<PeerMsg> {
    sent_to(out, to)
        .into_iter()
        .filter(|m| matches!(m, PeerMsg::Prepare { .. }))
        .collect()
}

#[test]
fn a_backup_campaigns_after_a_random_timeout_within_the_bounds() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let (mut core, _) = Core::new(cfg(2, 5), Recovered::default(), seed, 0);
        let at = first_campaign(&mut core);
        assert!((150..=310).contains(&at), "campaigned at {at}");
        seen.insert(at);
    }
    assert!(seen.len() > 3, "timeouts are randomized: {seen:?}");
}

#[test]
fn a_campaign_sends_prepare_with_the_commit_point_to_every_peer() {
    let mut core = fresh(3, 5);
    let (ballot, out) = campaign(&mut core, 1_000);
    assert_eq!(ballot, b(1, 3));
    for peer in [1, 2, 4, 5] {
        assert_eq!(
            prepares(&out, peer),
            vec![PeerMsg::Prepare {
                ballot,
                commit: Slot(0)
            }]
        );
    }
}

#[test]
fn a_candidate_without_a_majority_resends_prepare_to_those_missing_at_the_same_ballot() {
    let mut core = fresh(3, 5);
    let (first, _) = campaign(&mut core, 1_000);
    let mut out = Vec::new();
    core.on_message(1_001, n(1), promise(first, 0), &mut out);
    let mut now = 1_001;
    let resent = loop {
        now += 10;
        let mut out = Vec::new();
        core.on_tick(now, &mut out);
        if !prepares(&out, 2).is_empty() {
            break out;
        }
        assert!(now < 1_400, "no resend");
    };
    assert_eq!(core.status().ballot, first, "no round burnt");
    assert_eq!(core.status().role, Role::Candidate);
    assert!(prepares(&resent, 1).is_empty(), "n1 already promised");
    for peer in [2, 4, 5] {
        assert_eq!(
            prepares(&resent, peer),
            vec![PeerMsg::Prepare {
                ballot: first,
                commit: Slot(0)
            }]
        );
    }
}

#[test]
fn the_leader_heartbeats_every_interval() {
    let (mut core, ballot) = leader(1, 3);
    let mut beats = 0;
    for now in (1_000..=1_300).step_by(10) {
        let mut out = Vec::new();
        core.on_message(now, n(2), PeerMsg::HeartbeatAck { ballot }, &mut out);
        core.on_tick(now, &mut out);
        beats += sent_to(&out, 2)
            .iter()
            .filter(|m| matches!(m, PeerMsg::Heartbeat { .. }))
            .count();
        assert!(sent_to(&out, 2).iter().all(|m| *m
            == PeerMsg::Heartbeat {
                ballot,
                commit: Slot(0)
            }));
    }
    assert_eq!(beats, 300 / 30);
    assert!(
        core.leads(),
        "a leader that hears a majority never times out"
    );
}

#[test]
fn unacknowledged_slots_are_retransmitted_to_those_missing_only() {
    let (mut core, ballot) = leader(1, 5);
    submit(&mut core, 1_000, 1, transfer(1, 1, "A", "B", 1));
    let mut out = Vec::new();
    core.on_message(
        1_001,
        n(2),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(1),
        },
        &mut out,
    );
    core.on_tick(1_030, &mut out);
    assert!(
        !sent_to(&out, 3)
            .iter()
            .any(|m| matches!(m, PeerMsg::Accept { .. })),
        "too early"
    );
    core.on_tick(1_070, &mut out);
    let resent: Vec<u32> = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, PeerMsg::Accept { .. }))
        .map(|(to, _)| to.0)
        .collect();
    assert_eq!(resent, vec![3, 4, 5]);
}

#[test]
fn a_one_node_cluster_elects_itself_and_commits_alone() {
    let config = CoreConfig {
        nodes: vec![n(1)],
        ..cfg(1, 1)
    };
    let mut core = fresh_with(config);
    let mut out = Vec::new();
    core.on_tick(1_000, &mut out);
    assert!(core.leads());
    let out = submit(&mut core, 1_001, 1, transfer(1, 1, "A", "B", 1));
    assert_eq!(replies(&out).len(), 1);
}
