//! Submitting one command until it has a definite answer or its deadline passes.
//!
//! The rules come from the client protocol: a timeout or a broken connection says nothing about
//! whether the command executed, so the same request id is sent again — to another replica,
//! since the one we asked may be dead, paused or cut off. `NotLeader` and `Overloaded` are
//! definite "not executed by that replica", so we follow the leader hint (or try the next
//! replica) after a short backoff. Only `Reply` and `Rejected` end the attempt; if the deadline
//! comes first, the outcome is indefinite and the history says `info`, never `fail`.
//!
//! Leader knowledge is shared between all callers of a run through [`LeaderHint`], so one
//! client's discovery of a new leader saves the others a round of timeouts.

use crate::os::transport::{CallError, Transport};
use replica::bank::{Command, Invalid, Reply};
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::NodeId;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Backoff after `NotLeader` without a usable hint or `Overloaded`, doubling up to the cap.
const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(200);

/// The last leader any caller heard of (0 = unknown).
#[derive(Debug, Default)]
pub struct LeaderHint(AtomicU32);

impl LeaderHint {
    pub fn get(&self) -> Option<NodeId> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            k => Some(NodeId(k)),
        }
    }

    pub fn set(&self, node: NodeId) {
        self.0.store(node.0, Ordering::Relaxed);
    }

    /// Forgets the hint if it names `node`, which just failed to answer: a dead hinted leader
    /// must not keep pulling every client back to it (see [`retry_target`]).
    pub fn forget(&self, node: NodeId) {
        let _ = self
            .0
            .compare_exchange(node.0, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Where a request goes after `failed` did not answer it usefully: the shared leader hint if it
/// names another replica, else the replica after `failed`, so that successive retries visit
/// every replica. The real caller and the simulated clients both follow this one rule.
///
/// Why the hint is forgotten when its own node times out (see [`LeaderHint::forget`]): with the
/// hint on a dead replica whose successor is dead too, every client bounced between the two
/// forever (hint, successor, hint...) while the live majority and its leader, heard by every
/// follower so that no election timer fired, committed nothing. That was the 30 s stall of the
/// scenario runs with two replicas killed; the simulator reproduced it (seeds 1, 12 and 47 of
/// `harness sim --faults kill --nemesis-interval 5s --ops 12000`).
pub fn retry_target(
    nodes: &[NodeId],
    hint: Option<NodeId>,
    failed: NodeId,
    rotation: usize,
) -> NodeId {
    match hint {
        Some(h) if h != failed && nodes.contains(&h) => h,
        _ => next_after(nodes, failed, rotation),
    }
}

/// How a submission ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The command executed (ok, or failed as insufficient funds): it has an exec index.
    Executed { node: NodeId, reply: Reply },
    /// Definitely never proposed.
    Rejected { node: NodeId, reason: Invalid },
    /// No definite answer before the deadline: it may or may not have executed.
    Unknown {
        last_error: String,
        last_node: Option<NodeId>,
    },
}

/// Timing of the retry loop.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// One attempt's timeout.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempt_timeout: Duration::from_millis(500),
        }
    }
}

/// Submits `command` until a definite answer or `deadline`. `start` is where to begin when no
/// leader is known (callers spread over the replicas this way).
pub async fn submit(
    transport: &dyn Transport,
    nodes: &[NodeId],
    hint: &LeaderHint,
    command: &Command,
    start: usize,
    deadline: Instant,
    policy: RetryPolicy,
) -> Submitted {
    let mut rotation = start;
    let mut node = hint
        .get()
        .filter(|n| nodes.contains(n))
        .unwrap_or_else(|| pick(nodes, rotation));
    let mut backoff = BACKOFF_START;
    let mut last_error = String::from("never sent");
    let mut last_node = None;
    loop {
        let now = Instant::now();
        if now >= deadline || nodes.is_empty() {
            return Submitted::Unknown {
                last_error,
                last_node,
            };
        }
        let timeout = policy.attempt_timeout.min(deadline - now);
        let request = ClientRequest::Submit(command.clone());
        last_node = Some(node);
        let next_hop = match transport.call(node, request, timeout).await {
            Ok(ClientResponse::Reply { node, reply }) => {
                hint.set(node);
                return Submitted::Executed { node, reply };
            }
            Ok(ClientResponse::Rejected { node, reason }) => {
                return Submitted::Rejected { node, reason }
            }
            // Refusals no retry can change. `Expired` may follow an earlier attempt that did
            // execute, and `Unauthorized` is not worth proving otherwise: both stay unknown
            // (`info`), never `fail`.
            Ok(ClientResponse::Unauthorized { node, client }) => {
                return Submitted::Unknown {
                    last_error: format!("{node}: our certificate may not submit as {client}"),
                    last_node: Some(node),
                }
            }
            Ok(ClientResponse::Expired { node, client, .. }) => {
                return Submitted::Unknown {
                    last_error: format!("{node}: {client} was evicted from the reply table"),
                    last_node: Some(node),
                }
            }
            Ok(ClientResponse::NotLeader {
                leader_hint: Some(leader),
                ..
            }) if leader != node && nodes.contains(&leader) => {
                last_error = format!("{node} is not the leader");
                hint.set(leader);
                Hop::Now(leader)
            }
            Ok(ClientResponse::NotLeader { .. }) => {
                last_error = format!("{node} is not the leader and knows none");
                Hop::After(BACKOFF_START.max(backoff))
            }
            Ok(ClientResponse::Overloaded { .. }) => {
                last_error = format!("{node} is overloaded");
                Hop::After(backoff)
            }
            Ok(other) => {
                last_error = format!("{node} answered a submit with {other:?}");
                Hop::After(backoff)
            }
            Err(e @ CallError::Timeout { .. }) | Err(e @ CallError::Failed { .. }) => {
                last_error = e.to_string();
                hint.forget(node);
                // A fast failure (connection refused) must not spin.
                Hop::After(BACKOFF_START)
            }
        };
        match next_hop {
            Hop::Now(leader) => node = leader,
            Hop::After(pause) => {
                let pause = pause.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(BACKOFF_CAP);
                rotation += 1;
                // Try the shared hint if someone found a leader meanwhile, else move on.
                node = retry_target(nodes, hint.get(), node, rotation);
            }
        }
    }
}

enum Hop {
    Now(NodeId),
    After(Duration),
}

fn pick(nodes: &[NodeId], k: usize) -> NodeId {
    nodes
        .get(k % nodes.len().max(1))
        .copied()
        .unwrap_or(NodeId(1))
}

/// The replica after `node` in `nodes` (wrapping), so successive retries visit every replica.
fn next_after(nodes: &[NodeId], node: NodeId, rotation: usize) -> NodeId {
    match nodes.iter().position(|&n| n == node) {
        Some(i) => nodes[(i + 1) % nodes.len()],
        None => pick(nodes, rotation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::faultline::fake::FakeCluster;
    use replica::bank::{Op, OpResult};
    use replica::types::{ClientId, RequestId};

    fn accounts() -> Vec<replica::types::Account> {
        vec!["A".into(), "B".into()]
    }

    fn transfer(request: u64, amount: i64) -> Command {
        Command {
            client: ClientId(0),
            request: RequestId(request),
            op: Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount,
            },
        }
    }

    fn nodes() -> Vec<NodeId> {
        (1..=3).map(NodeId).collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn follows_the_leader_hint() {
        let fake = FakeCluster::new(3, &accounts(), 10);
        fake.set_leader(Some(NodeId(3)));
        let hint = LeaderHint::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 3), 0, deadline, fast()).await;
        match out {
            Submitted::Executed { node, reply } => {
                assert_eq!(node, NodeId(3));
                assert_eq!(reply.exec_index, 1);
                assert_eq!(
                    reply.result,
                    OpResult::Transferred {
                        from_balance: 7,
                        to_balance: 13
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(hint.get(), Some(NodeId(3)));
    }

    #[tokio::test]
    async fn a_lost_reply_is_retried_with_the_same_id_and_executes_once() {
        let fake = FakeCluster::new(3, &accounts(), 10);
        fake.lose_next_replies(1);
        let hint = LeaderHint::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 3), 0, deadline, fast()).await;
        assert!(
            matches!(out, Submitted::Executed { ref reply, .. } if reply.exec_index == 1),
            "{out:?}"
        );
        assert_eq!(fake.executed().len(), 1, "executed exactly once");
        assert_eq!(fake.balances()["A"], 7);
    }

    /// Answers every call with one fixed response.
    struct Always(ClientResponse);

    impl Transport for Always {
        fn call(
            &self,
            _node: NodeId,
            _request: ClientRequest,
            _timeout: Duration,
        ) -> crate::os::transport::CallFuture<'_> {
            let response = self.0.clone();
            Box::pin(async move { Ok(response) })
        }
    }

    #[tokio::test]
    async fn refusals_no_retry_can_change_end_at_once_as_unknown() {
        let refusals = [
            ClientResponse::Unauthorized {
                node: NodeId(1),
                client: ClientId(0),
            },
            ClientResponse::Expired {
                node: NodeId(1),
                client: ClientId(0),
                floor: RequestId(9),
            },
        ];
        for refusal in refusals {
            let hint = LeaderHint::default();
            let deadline = Instant::now() + Duration::from_secs(30);
            let started = Instant::now();
            let transport = Always(refusal.clone());
            let out = submit(
                &transport,
                &nodes(),
                &hint,
                &transfer(1, 3),
                0,
                deadline,
                fast(),
            )
            .await;
            assert!(
                matches!(out, Submitted::Unknown { .. }),
                "{refusal:?}: {out:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{refusal:?} was retried"
            );
        }
    }

    #[tokio::test]
    async fn no_leader_until_the_deadline_is_unknown() {
        let fake = FakeCluster::new(3, &accounts(), 10);
        fake.set_leader(None);
        let hint = LeaderHint::default();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(150);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 3), 0, deadline, fast()).await;
        assert!(matches!(out, Submitted::Unknown { .. }), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "the deadline bounds the loop"
        );
    }

    #[tokio::test]
    async fn a_hint_on_a_dead_replica_whose_successor_is_dead_too_does_not_trap_the_client() {
        // The 30 s stall: hint n1, n1 and n2 dead. Before, every retry went n1, n2, n1 (the
        // hint), n2... and never reached n3, which led all along.
        let fake = FakeCluster::new(3, &accounts(), 10);
        fake.set_down(NodeId(1), true);
        fake.set_down(NodeId(2), true);
        fake.set_leader(Some(NodeId(3)));
        let hint = LeaderHint::default();
        hint.set(NodeId(1));
        let deadline = Instant::now() + Duration::from_secs(2);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 3), 0, deadline, fast()).await;
        assert!(
            matches!(
                out,
                Submitted::Executed {
                    node: NodeId(3),
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(hint.get(), Some(NodeId(3)));
    }

    #[test]
    fn retries_follow_the_hint_unless_it_just_failed() {
        let nodes = nodes();
        assert_eq!(
            retry_target(&nodes, Some(NodeId(3)), NodeId(1), 0),
            NodeId(3)
        );
        assert_eq!(
            retry_target(&nodes, Some(NodeId(1)), NodeId(1), 0),
            NodeId(2)
        );
        assert_eq!(retry_target(&nodes, None, NodeId(3), 0), NodeId(1));
    }

    #[tokio::test]
    async fn a_dead_leader_is_skipped_once_another_leads() {
        let fake = FakeCluster::new(3, &accounts(), 10);
        fake.set_down(NodeId(1), true);
        fake.set_leader(Some(NodeId(2)));
        let hint = LeaderHint::default();
        hint.set(NodeId(1));
        let deadline = Instant::now() + Duration::from_secs(2);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 3), 0, deadline, fast()).await;
        assert!(
            matches!(
                out,
                Submitted::Executed {
                    node: NodeId(2),
                    ..
                }
            ),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn invalid_commands_are_rejected_definitely() {
        let fake = FakeCluster::new(3, &accounts(), 10);
        let hint = LeaderHint::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        let out = submit(&fake, &nodes(), &hint, &transfer(1, 0), 0, deadline, fast()).await;
        assert!(
            matches!(
                out,
                Submitted::Rejected {
                    reason: Invalid::NonPositiveAmount(0),
                    ..
                }
            ),
            "{out:?}"
        );
    }
}
