//! The scenario prompt's questions ([`Inspect`]) on the faultline replica. Each is one of the
//! replica's own introspection requests (PrintDB, PrintLog, PrintStatus, PrintView, Status)
//! sent to every replica (or one) at once over the control transport, which relay cuts do not
//! touch; the answers are drawn as the tables of [`crate::scenario::repl`].

use super::FaultlineTarget;
use crate::os::process::ReplicaState;
use crate::scenario::repl::{
    render_db, render_log, render_slot, render_slots, render_status, render_views, Answer,
};
use crate::targets::Inspect;
use replica::client_proto::ClientRequest;
use replica::types::{NodeId, Slot};
use std::time::Duration;

/// How long the prompt waits for one replica's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Most slots `printstatus` without a slot shows.
const STATUS_SLOTS: usize = 40;

impl FaultlineTarget {
    pub(super) async fn answer(&mut self, question: &Inspect) -> String {
        match question {
            Inspect::Overview => self.overview().await,
            Inspect::Db(node) => render_db(&self.ask(*node, ClientRequest::PrintDb).await),
            Inspect::Log(node) => self
                .ask(*node, full_log())
                .await
                .iter()
                .map(|(n, a)| render_log(*n, a))
                .collect::<Vec<_>>()
                .join("\n"),
            Inspect::Position {
                at: Some(slot),
                node,
            } => {
                let request = ClientRequest::PrintStatus { slot: Slot(*slot) };
                render_slot(*slot, &self.ask(*node, request).await)
            }
            Inspect::Position { at: None, node } => {
                render_slots(&self.ask(*node, full_log()).await, STATUS_SLOTS)
            }
            Inspect::View(node) => render_views(&self.ask(*node, ClientRequest::PrintView).await),
        }
    }

    /// Asks `node` (or every replica) concurrently; answers in node order.
    async fn ask(&self, node: Option<NodeId>, request: ClientRequest) -> Vec<(NodeId, Answer)> {
        let nodes = match node {
            Some(n) => vec![n],
            None => self.cluster.nodes().to_vec(),
        };
        let control = self.cluster.control();
        let asks = nodes.iter().map(|&n| {
            let control = control.clone();
            let request = request.clone();
            async move {
                let answer = control
                    .call(n, request, ASK_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string());
                (n, answer)
            }
        });
        crate::os::transport::join_all(asks).await
    }

    async fn overview(&mut self) -> String {
        let statuses = self.cluster.statuses().await;
        let rows: Vec<_> = self
            .cluster
            .nodes()
            .to_vec()
            .into_iter()
            .map(|n| {
                let process = match self.cluster.state(n) {
                    ReplicaState::Running => "running",
                    ReplicaState::Paused => "paused",
                    ReplicaState::Down => "down",
                };
                (n, process, statuses.get(&n).cloned())
            })
            .collect();
        render_status(&rows)
    }
}

/// Every entry of a replica's log above its checkpoint (PrintLog).
fn full_log() -> ClientRequest {
    ClientRequest::PrintLog {
        from_slot: Slot(1),
        max_entries: 1_000,
    }
}
