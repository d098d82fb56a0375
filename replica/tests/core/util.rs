//! Helpers shared by the core tests: configs, commands, effect filters, and a core driven into
//! the leader role.

#![allow(dead_code)]

use replica::bank::{Command, Op};
use replica::client_proto::ClientResponse;
use replica::core::{
    Checkpoint, Core, CoreConfig, Effect, PeerMsg, Recovered, SlotEntry, Value, WalRecord,
};
use replica::types::{Ballot, ClientId, NodeId, RequestId, Slot};

pub fn n(k: u32) -> NodeId {
    NodeId(k)
}

pub fn b(round: u64, node: u32) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

pub fn cfg(me: u32, nodes: u32) -> CoreConfig {
    CoreConfig::for_test(me, nodes)
}

/// A fresh core at time 0.
pub fn fresh(me: u32, nodes: u32) -> Core {
    fresh_with(cfg(me, nodes))
}

pub fn fresh_with(config: CoreConfig) -> Core {
    let (core, effects) = Core::new(config, Recovered::default(), 7, 0);
    assert!(effects.is_empty(), "a fresh core has nothing to re-execute");
    core
}

pub fn transfer(client: u64, request: u64, from: &str, to: &str, amount: i64) -> Command {
    Command::transfer(client, request, from, to, amount)
}

pub fn read(client: u64, request: u64, account: &str) -> Command {
    Command {
        client: ClientId(client),
        request: RequestId(request),
        op: Op::Read {
            account: account.into(),
        },
    }
}

pub fn read_all(client: u64, request: u64) -> Command {
    Command {
        client: ClientId(client),
        request: RequestId(request),
        op: Op::ReadAll,
    }
}

pub fn batch(commands: Vec<Command>) -> Value {
    Value::Batch(commands)
}

pub fn entry(slot: u64, ballot: Ballot, value: Value) -> SlotEntry {
    SlotEntry {
        slot: Slot(slot),
        ballot,
        value,
    }
}

pub fn sends(out: &[Effect]) -> Vec<(NodeId, PeerMsg)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

/// Messages sent to `to`.
pub fn sent_to(out: &[Effect], to: u32) -> Vec<PeerMsg> {
    sends(out)
        .into_iter()
        .filter(|(t, _)| *t == NodeId(to))
        .map(|(_, m)| m)
        .collect()
}

pub fn persists(out: &[Effect]) -> Vec<WalRecord> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn replies(out: &[Effect]) -> Vec<(u64, ClientResponse)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Reply { token, response } => Some((*token, response.clone())),
            _ => None,
        })
        .collect()
}

pub fn executed(out: &[Effect]) -> Vec<replica::bank::Executed> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Executed(x) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

pub fn checkpoints(out: &[Effect]) -> Vec<Checkpoint> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Checkpoint(c) => Some(Checkpoint::clone(c)),
            _ => None,
        })
        .collect()
}

/// Index of the first effect matching `pred` (panics if none).
pub fn position(out: &[Effect], pred: impl Fn(&Effect) -> bool) -> usize {
    out.iter().position(pred).expect("no matching effect")
}

/// Starts an election on `core` (its timer has surely fired by 1 s; a majority of peers grants
/// its pre-vote) and returns the ballot.
pub fn campaign(core: &mut Core, now_ms: u64) -> (Ballot, Vec<Effect>) {
    let mut out = Vec::new();
    core.on_tick(now_ms, &mut out);
    grant_prevotes(core, now_ms, &mut out);
    let ballot = core.status().ballot;
    assert_eq!(
        ballot.node,
        core.status().node,
        "the tick started an election"
    );
    (ballot, out)
}

/// The pre-votes `out` asks for.
pub fn prevotes(out: &[Effect]) -> Vec<(NodeId, Ballot)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, msg)| match msg {
            PeerMsg::PreVote { ballot, .. } => Some((to, ballot)),
            _ => None,
        })
        .collect()
}

/// Grants the pre-vote `out` asks for from just enough peers for a majority.
pub fn grant_prevotes(core: &mut Core, now_ms: u64, out: &mut Vec<Effect>) {
    let asked = prevotes(out);
    // A majority of n is n / 2 + 1: this node and n / 2 = ceil((n - 1) / 2) of its peers.
    let needed = asked.len().div_ceil(2);
    for (peer, ballot) in asked.into_iter().take(needed) {
        let reply = PeerMsg::PreVoteReply {
            ballot,
            granted: true,
            promised: Ballot::ZERO,
        };
        core.on_message(now_ms, peer, reply, out);
    }
}

/// An empty promise for `ballot` from `from`.
pub fn promise(ballot: Ballot, commit: u64) -> PeerMsg {
    PeerMsg::Promise {
        ballot,
        commit: Slot(commit),
        entries: vec![],
        checkpoint: None,
    }
}

/// Node `me` of `nodes`, elected at time 1000 with empty promises. Returns the core, its ballot.
pub fn leader(me: u32, nodes: u32) -> (Core, Ballot) {
    leader_with(cfg(me, nodes))
}

pub fn leader_with(config: CoreConfig) -> (Core, Ballot) {
    let me = config.me;
    let nodes = config.nodes.clone();
    let quorum = config.quorum();
    let mut core = fresh_with(config);
    let (ballot, _) = campaign(&mut core, 1_000);
    let mut out = Vec::new();
    for peer in nodes.into_iter().filter(|p| *p != me).take(quorum - 1) {
        core.on_message(1_000, peer, promise(ballot, 0), &mut out);
    }
    assert!(core.leads());
    (core, ballot)
}

/// A backup (node `me` of `nodes`) that follows `leader` at `ballot` (via a heartbeat).
pub fn backup_of(me: u32, nodes: u32, ballot: Ballot) -> Core {
    let mut core = fresh(me, nodes);
    let mut out = Vec::new();
    core.on_message(
        10,
        ballot.node,
        PeerMsg::Heartbeat {
            ballot,
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(core.status().leader, Some(ballot.node));
    core
}

/// Client command submitted to `core` then flushed; returns the effects.
pub fn submit(core: &mut Core, now_ms: u64, token: u64, command: Command) -> Vec<Effect> {
    let mut out = Vec::new();
    core.on_client(now_ms, token, command, &mut out);
    core.flush(now_ms, &mut out);
    out
}

/// The only element of `items` (panics with the list otherwise).
pub fn one<T: std::fmt::Debug>(items: Vec<T>) -> T {
    assert_eq!(items.len(), 1, "expected exactly one: {items:?}");
    items.into_iter().next().unwrap()
}
