//! An in-memory stand-in for a replica cluster, for tests of the client side.
//!
//! One [`Bank`] plays the replicated state; one node leads, the others answer `NotLeader` with
//! a hint; nodes can be made unreachable (calls time out) and replies can be lost after the
//! command executed, which is exactly the ambiguity the harness must record as `info`.

use crate::os::transport::{CallError, CallFuture, Transport};
use replica::bank::{Bank, Executed, Outcome};
use replica::client_proto::{ClientRequest, ClientResponse, NodeStatus, Role};
use replica::types::{Account, Ballot, NodeId, Slot};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub struct FakeCluster {
    nodes: Vec<NodeId>,
    state: Mutex<State>,
    /// Calls served, for tests that count attempts.
    pub calls: AtomicU64,
}

struct State {
    bank: Bank,
    log: Vec<Executed>,
    leader: Option<NodeId>,
    down: BTreeSet<NodeId>,
    /// This many upcoming submits execute but their reply is lost.
    lose_replies: u32,
}

impl FakeCluster {
    pub fn new(nodes: u32, accounts: &[Account], initial: i64) -> FakeCluster {
        FakeCluster {
            nodes: (1..=nodes).map(NodeId).collect(),
            state: Mutex::new(State {
                bank: Bank::new(accounts, initial),
                log: Vec::new(),
                leader: Some(NodeId(1)),
                down: BTreeSet::new(),
                lose_replies: 0,
            }),
            calls: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_leader(&self, leader: Option<NodeId>) {
        self.state().leader = leader;
    }

    pub fn set_down(&self, node: NodeId, down: bool) {
        let mut state = self.state();
        if down {
            state.down.insert(node);
        } else {
            state.down.remove(&node);
        }
    }

    pub fn lose_next_replies(&self, n: u32) {
        self.state().lose_replies = n;
    }

    pub fn balances(&self) -> std::collections::BTreeMap<Account, i64> {
        self.state().bank.balances().clone()
    }

    pub fn executed(&self) -> Vec<Executed> {
        self.state().log.clone()
    }

    fn serve(&self, node: NodeId, request: ClientRequest) -> Option<ClientResponse> {
        let mut state = self.state();
        if state.down.contains(&node) || !self.nodes.contains(&node) {
            return None;
        }
        let exec_index = state.bank.exec_index();
        Some(match request {
            ClientRequest::Submit(command) => {
                if state.leader != Some(node) {
                    return Some(ClientResponse::NotLeader {
                        node,
                        leader_hint: state.leader,
                    });
                }
                if let Err(reason) = state.bank.validate(&command.op) {
                    return Some(ClientResponse::Rejected { node, reason });
                }
                let reply = match state.bank.execute(&command, true) {
                    Outcome::Executed(e) => {
                        let reply = replica::bank::Reply {
                            exec_index: e.exec_index,
                            result: e.result.clone(),
                        };
                        state.log.push(e);
                        reply
                    }
                    Outcome::Duplicate(reply) => reply,
                    Outcome::Stale => return None,
                    Outcome::Expired { floor } => {
                        let client = command.client;
                        return Some(ClientResponse::Expired {
                            node,
                            client,
                            floor,
                        });
                    }
                };
                if state.lose_replies > 0 {
                    state.lose_replies -= 1;
                    return None;
                }
                ClientResponse::Reply { node, reply }
            }
            ClientRequest::Status => ClientResponse::Status(NodeStatus {
                node,
                role: if state.leader == Some(node) {
                    Role::Leader
                } else {
                    Role::Backup
                },
                ballot: Ballot {
                    round: 1,
                    node: state.leader.unwrap_or(NodeId(1)),
                },
                leader: state.leader,
                commit_slot: Slot(exec_index),
                executed_slot: Slot(exec_index),
                exec_index,
                checkpoint_slot: Slot(0),
            }),
            ClientRequest::PrintDb => ClientResponse::Db {
                node,
                exec_index,
                balances: state.bank.balances().clone(),
            },
            ClientRequest::FetchExecuted {
                from_exec_index,
                max_entries,
            } => {
                let entries: Vec<Executed> = state
                    .log
                    .iter()
                    .filter(|e| e.exec_index >= from_exec_index)
                    .take(max_entries as usize)
                    .cloned()
                    .collect();
                ClientResponse::Executed {
                    node,
                    first_available: 1,
                    last: exec_index,
                    entries,
                }
            }
            other => ClientResponse::Error {
                node,
                message: format!("fake cluster does not serve {other:?}"),
            },
        })
    }
}

impl Transport for FakeCluster {
    fn call(&self, node: NodeId, request: ClientRequest, timeout: Duration) -> CallFuture<'_> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.serve(node, request) {
                Some(response) => Ok(response),
                None => {
                    tokio::time::sleep(timeout).await;
                    Err(CallError::Timeout { node, timeout })
                }
            }
        })
    }
}
