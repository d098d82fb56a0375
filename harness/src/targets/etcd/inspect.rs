//! The scenario prompt's questions ([`Inspect`]) on etcd, in etcd's own terms: revisions where
//! faultline has slots, raft terms where it has ballots.
//!
//! Every question goes to each member on its own through the direct control clients (never
//! cut by the relay), so a lagging member shows its own state:
//! - PrintDB: a serializable read of the accounts on that member, at its own revision;
//! - PrintLog: the bank's writes in revision order from a watch on that member, from the first
//!   revision after the initial balances up to the member's own revision (etcd's history, the
//!   same source as `final.json`);
//! - PrintStatus [n]: from Status, whether the member's store has reached revision n (or the
//!   latest revision any member holds), with its raft index and applied index;
//! - PrintView and status: from Status, the member's raft term and the leader it follows.
//!
//! A member that is down or paused is not asked (it could not answer); the tables say so.
//! The rendering functions are plain functions of the answers, tested without etcd.

use super::{
    balances_of, executed_entry, header_revision, watch_history, EtcdTarget, Revision,
    ACCOUNT_PREFIX, CONTROL_TIMEOUT,
};
use crate::os::process::ReplicaState;
use crate::scenario::repl::{balances_table, table, BalancesRow};
use crate::targets::{Inspect, Target};
use checker::history::EventType;
use etcd_client::GetOptions;
use replica::types::NodeId;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Longest wait for one member's history (PrintLog).
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// A member's answer, or why there is none, in words.
pub(crate) type Reply<T> = Result<T, String>;

/// What one member's Status says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemberStatus {
    pub term: u64,
    /// The leader it follows (itself when it leads); `None` when it knows of none.
    pub leader: Option<NodeId>,
    /// Its store's revision: the last write it applied.
    pub revision: i64,
    pub raft_index: u64,
    pub applied_index: u64,
}

/// A member's balances at its own revision.
pub(crate) type MemberDb = (i64, BTreeMap<String, i64>);
/// A member's writes after the initial balances, by revision, up to its own revision.
pub(crate) type MemberLog = (i64, BTreeMap<i64, Revision>);

impl EtcdTarget {
    pub(super) async fn answer(&mut self, question: &Inspect) -> String {
        let asked = match question {
            Inspect::Db(node) | Inspect::Log(node) | Inspect::View(node) => *node,
            Inspect::Position { node, .. } => *node,
            Inspect::Overview => None,
        };
        let nodes: Vec<NodeId> = match asked {
            Some(n) => vec![n],
            None => self.nodes.clone(),
        };
        let processes: Vec<(NodeId, ReplicaState)> =
            nodes.iter().map(|&n| (n, self.state(n))).collect();
        let this = &*self;
        match question {
            Inspect::Db(_) => {
                let asks = processes
                    .iter()
                    .map(|&(n, p)| async move { (n, this.ask(p, this.member_db(n)).await) });
                render_db(&crate::os::transport::join_all(asks).await)
            }
            Inspect::Log(_) => {
                let asks = processes
                    .iter()
                    .map(|&(n, p)| async move { (n, this.ask(p, this.member_log(n)).await) });
                render_log(
                    self.base_revision,
                    &crate::os::transport::join_all(asks).await,
                )
            }
            Inspect::Position { at, .. } => render_position(
                *at,
                self.base_revision,
                &self.member_statuses(&processes).await,
            ),
            Inspect::View(_) => render_view(&self.member_statuses(&processes).await),
            Inspect::Overview => render_overview(&self.member_statuses(&processes).await),
        }
    }

    /// Runs `ask` unless the member cannot answer (down or paused).
    async fn ask<T>(
        &self,
        process: ReplicaState,
        ask: impl std::future::Future<Output = Reply<T>>,
    ) -> Reply<T> {
        match process {
            ReplicaState::Down => Err("down".into()),
            ReplicaState::Paused => Err("paused (SIGSTOP): it cannot answer".into()),
            ReplicaState::Running => ask.await,
        }
    }

    async fn member_statuses(
        &self,
        processes: &[(NodeId, ReplicaState)],
    ) -> Vec<(NodeId, ReplicaState, Reply<MemberStatus>)> {
        let asks = processes
            .iter()
            .map(|&(n, p)| async move { (n, p, self.ask(p, self.member_status(n)).await) });
        crate::os::transport::join_all(asks).await
    }

    fn control_client(&self, node: NodeId) -> Reply<etcd_client::Client> {
        self.control
            .get(&node)
            .cloned()
            .ok_or_else(|| format!("no client for {node}"))
    }

    async fn member_status(&self, node: NodeId) -> Reply<MemberStatus> {
        let mut client = self.control_client(node)?;
        let status = tokio::time::timeout(CONTROL_TIMEOUT, client.status())
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| format!("no answer ({e})"))?;
        Ok(MemberStatus {
            term: status.raft_term(),
            leader: self.member_ids.get(&status.leader()).copied(),
            revision: header_revision(status.header()).unwrap_or(0),
            raft_index: status.raft_index(),
            applied_index: status.raft_applied_index(),
        })
    }

    /// The accounts as this member holds them (a serializable read is served by the member
    /// itself, without asking the leader).
    async fn member_db(&self, node: NodeId) -> Reply<MemberDb> {
        let mut client = self.control_client(node)?;
        let options = GetOptions::new().with_prefix().with_serializable();
        let resp = tokio::time::timeout(CONTROL_TIMEOUT, client.get(ACCOUNT_PREFIX, Some(options)))
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| format!("no answer ({e})"))?;
        let balances = balances_of(&resp).map_err(|e| e.to_string())?;
        Ok((header_revision(resp.header()).unwrap_or(0), balances))
    }

    /// The member's writes after the initial balances, up to its own revision (a watch is
    /// served by the member it is opened on).
    async fn member_log(&self, node: NodeId) -> Reply<MemberLog> {
        let (revision, _) = self.member_db(node).await?;
        if revision <= self.base_revision {
            return Ok((revision, BTreeMap::new()));
        }
        let client = self.control_client(node)?;
        let history = tokio::time::timeout(
            LOG_TIMEOUT,
            watch_history(&client, self.base_revision + 1, revision),
        )
        .await
        .map_err(|_| format!("its history did not arrive within {LOG_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
        Ok((revision, history))
    }
}

fn no_answer() -> String {
    format!("no answer within {CONTROL_TIMEOUT:?} (cut off or overloaded?)")
}

fn process_word(process: ReplicaState) -> &'static str {
    match process {
        ReplicaState::Running => "running",
        ReplicaState::Paused => "paused",
        ReplicaState::Down => "down",
    }
}

fn leader_word(leader: Option<NodeId>) -> String {
    leader.map_or("none".into(), |l| l.to_string())
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// PrintDB: one row per member (its revision, each account, the total).
pub(crate) fn render_db(answers: &[(NodeId, Reply<MemberDb>)]) -> String {
    let rows: Vec<BalancesRow> = answers
        .iter()
        .map(|(node, answer)| match answer {
            Ok((revision, balances)) => (*node, Ok((Some(revision.to_string()), balances.clone()))),
            Err(why) => (*node, Err(why.clone())),
        })
        .collect();
    let mut out = balances_table("member", Some("revision"), &rows);
    out.push_str(
        "(each member read on its own, serializable: a lagging member shows its own state)\n",
    );
    out
}

/// PrintLog: the writes of the most advanced member as a table; every other member is either
/// the same history (perhaps shorter) in one line, or its own table when it differs.
pub(crate) fn render_log(base: i64, answers: &[(NodeId, Reply<MemberLog>)]) -> String {
    let reference = answers
        .iter()
        .filter_map(|(n, a)| a.as_ref().ok().map(|log| (*n, log)))
        .max_by_key(|(n, (revision, _))| (*revision, std::cmp::Reverse(*n)));
    let mut out = String::new();
    if let Some((first, log)) = reference {
        out.push_str(&log_table(first, base, log));
    }
    for (node, answer) in answers {
        match (answer, reference) {
            (Err(why), _) => {
                let _ = writeln!(out, "{node}: {why}");
            }
            (Ok(_), Some((first, _))) if *node == first => {}
            (Ok((revision, history)), Some((first, (_, reference))))
                if history
                    .iter()
                    .all(|(r, puts)| reference.get(r) == Some(puts)) =>
            {
                let behind = reference.range(revision + 1..).count() as u64;
                let _ = write!(
                    out,
                    "{node}: the same writes as {first}, up to revision {revision}"
                );
                if behind > 0 {
                    let _ = write!(out, " ({} behind)", checker::text::count(behind, "write"));
                }
                out.push('\n');
            }
            (Ok(log), _) => {
                out.push_str(&format!("{node} differs:\n"));
                out.push_str(&log_table(*node, base, log));
            }
        }
    }
    out
}

/// One member's writes: a header line, then one row per revision.
fn log_table(node: NodeId, base: i64, (revision, history): &MemberLog) -> String {
    let mut out = format!(
        "{node}: {} after the initial balances (revision {base}), up to revision {revision}\n",
        checker::text::count(history.len() as u64, "write")
    );
    if history.is_empty() {
        return out;
    }
    let header = strings([
        "  revision",
        "client",
        "request",
        "command",
        "balances after",
    ]);
    let rows: Vec<Vec<String>> = history.iter().map(|(&r, puts)| log_row(r, puts)).collect();
    out.push_str(&table(&header, &rows));
    out
}

fn log_row(revision: i64, puts: &Revision) -> Vec<String> {
    let entry = executed_entry(revision, puts);
    let v = &entry.value;
    let text = |key: &str| v[key].as_str().unwrap_or("?").to_string();
    let number = |key: &str| v[key].as_i64().map_or("?".into(), |n| n.to_string());
    if entry.f != "transfer" || entry.kind != EventType::Ok {
        let keys: Vec<&str> = puts.iter().map(|(k, _)| k.as_str()).collect();
        return vec![
            format!("  {revision}"),
            String::new(),
            String::new(),
            format!("not a bank transfer: puts {}", keys.join(", ")),
        ];
    }
    let (from, to) = (text("from"), text("to"));
    vec![
        format!("  {revision}"),
        entry.client.to_string(),
        entry.request_id.to_string(),
        format!("transfer {from}→{to} {}", number("amount")),
        format!(
            "{from} {}, {to} {}",
            number("from_balance"),
            number("to_balance")
        ),
    ]
}

/// PrintStatus [n]: whether revision `at` (default: the latest any member holds) is applied on
/// each member.
pub(crate) fn render_position(
    at: Option<u64>,
    base: i64,
    answers: &[(NodeId, ReplicaState, Reply<MemberStatus>)],
) -> String {
    let latest = answers
        .iter()
        .filter_map(|(_, _, a)| a.as_ref().ok().map(|s| s.revision))
        .max();
    let target = match (at, latest) {
        (Some(n), _) => i64::try_from(n).unwrap_or(i64::MAX),
        (None, Some(latest)) => latest,
        (None, None) => {
            let mut out = "no member answered\n".to_string();
            for (node, process, _) in answers {
                let _ = writeln!(out, "{node}: {}", process_word(*process));
            }
            return out;
        }
    };
    let mut out = match at {
        Some(_) => format!("revision {target}"),
        None => format!("revision {target}, the latest any member holds"),
    };
    if target <= base {
        let _ = write!(
            out,
            " (not a transfer: revision {base} wrote the initial balances, transfers start at {})",
            base + 1
        );
    }
    out.push('\n');
    let column = format!("revision {target}");
    let header = vec![
        "member".to_string(),
        "process".into(),
        "revision".into(),
        "raft index".into(),
        "applied index".into(),
        column,
    ];
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(node, process, answer)| match answer {
            Ok(s) => vec![
                node.to_string(),
                process_word(*process).into(),
                s.revision.to_string(),
                s.raft_index.to_string(),
                s.applied_index.to_string(),
                if s.revision >= target {
                    "applied".into()
                } else {
                    format!("not yet ({} behind)", target - s.revision)
                },
            ],
            Err(why) => vec![node.to_string(), process_word(*process).into(), why.clone()],
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out.push_str(
        "a member applies a revision once raft has committed it; etcd shows no per-entry \
         state like faultline's slots (accepted, committed, executed)\n",
    );
    out
}

/// PrintView: each member's raft term and the leader it follows.
pub(crate) fn render_view(answers: &[(NodeId, ReplicaState, Reply<MemberStatus>)]) -> String {
    let header = strings(["member", "term", "leader"]);
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(node, _, answer)| match answer {
            Ok(s) => vec![node.to_string(), s.term.to_string(), leader_word(s.leader)],
            Err(why) => vec![node.to_string(), why.clone()],
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push_str(
        "etcd reports only the current term and leader; earlier terms are in each member's \
         log (nX.log in the run directory)\n",
    );
    out
}

/// `status`: one row per member: process, role, term, leader, revision, raft progress.
pub(crate) fn render_overview(answers: &[(NodeId, ReplicaState, Reply<MemberStatus>)]) -> String {
    let header = strings([
        "member",
        "process",
        "role",
        "term",
        "leader",
        "revision",
        "raft index",
        "applied index",
    ]);
    let rows: Vec<Vec<String>> = answers
        .iter()
        .map(|(node, process, answer)| match answer {
            Ok(s) => {
                let role = match s.leader {
                    Some(l) if l == *node => "leader",
                    Some(_) => "follower",
                    None => "no leader",
                };
                vec![
                    node.to_string(),
                    process_word(*process).into(),
                    role.into(),
                    s.term.to_string(),
                    leader_word(s.leader),
                    s.revision.to_string(),
                    s.raft_index.to_string(),
                    s.applied_index.to_string(),
                ]
            }
            Err(_) if *process != ReplicaState::Running => {
                vec![node.to_string(), process_word(*process).into()]
            }
            Err(why) => vec![node.to_string(), process_word(*process).into(), why.clone()],
        })
        .collect();
    table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::etcd::{ACCOUNT_PREFIX, OP_PREFIX};

    fn transfer(client: u64, request: u64, from: &str, to: &str, amount: i64) -> Revision {
        let (fb, tb) = (10 - amount, 10 + amount);
        vec![
            (format!("{ACCOUNT_PREFIX}{from}"), fb.to_string()),
            (format!("{ACCOUNT_PREFIX}{to}"), tb.to_string()),
            (
                format!("{OP_PREFIX}{client}/{request}"),
                serde_json::json!({"from": from, "to": to, "amount": amount,
                                   "from_balance": fb, "to_balance": tb})
                .to_string(),
            ),
        ]
    }

    fn history() -> BTreeMap<i64, Revision> {
        BTreeMap::from([
            (3, transfer(0, 1, "A", "B", 3)),
            (4, transfer(2, 1, "C", "D", 1)),
        ])
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn the_log_is_one_row_per_revision_and_lagging_members_say_how_far_behind() {
        let mut short = history();
        short.remove(&4);
        let answers = vec![
            (NodeId(1), Ok((3, short))),
            (NodeId(2), Ok((4, history()))),
            (NodeId(3), Err("down".to_string())),
        ];
        let text = render_log(2, &answers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "n2: 2 writes after the initial balances (revision 2), up to revision 4",
            "{text}"
        );
        assert!(
            lines[1].contains("revision") && lines[1].contains("command"),
            "{text}"
        );
        assert_eq!(
            words(lines[2]),
            ["3", "0", "1", "transfer", "A→B", "3", "A", "7,", "B", "13"]
        );
        assert_eq!(
            words(lines[3])[..6],
            ["4", "2", "1", "transfer", "C→D", "1"]
        );
        assert_eq!(
            lines[4],
            "n1: the same writes as n2, up to revision 3 (1 write behind)"
        );
        assert_eq!(lines[5], "n3: down");
    }

    #[test]
    fn a_member_whose_history_differs_gets_its_own_table() {
        let mut other = history();
        other.insert(4, transfer(5, 9, "F", "G", 2));
        let answers = vec![(NodeId(1), Ok((4, history()))), (NodeId(2), Ok((4, other)))];
        let text = render_log(2, &answers);
        assert!(text.contains("n2 differs:"), "{text}");
        assert!(text.contains("transfer F→G 2"), "{text}");
    }

    #[test]
    fn a_write_that_is_not_a_transfer_is_named_not_hidden() {
        let odd = BTreeMap::from([(3, vec![("/elsewhere".to_string(), "x".to_string())])]);
        let text = render_log(2, &[(NodeId(1), Ok((3, odd)))]);
        assert!(
            text.contains("not a bank transfer: puts /elsewhere"),
            "{text}"
        );
    }

    #[test]
    fn printdb_shows_each_members_revision_and_total() {
        let db = BTreeMap::from([("A".to_string(), 7), ("B".to_string(), 13)]);
        let answers = vec![
            (NodeId(1), Ok((3, db.clone()))),
            (
                NodeId(2),
                Ok((
                    2,
                    BTreeMap::from([("A".to_string(), 10), ("B".to_string(), 10)]),
                )),
            ),
            (
                NodeId(3),
                Err("paused (SIGSTOP): it cannot answer".to_string()),
            ),
        ];
        let text = render_db(&answers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(words(lines[0]), ["member", "revision", "A", "B", "total"]);
        assert_eq!(words(lines[1]), ["n1", "3", "7", "13", "20"]);
        assert_eq!(words(lines[2]), ["n2", "2", "10", "10", "20"]);
        assert_eq!(lines[3], "n3: paused (SIGSTOP): it cannot answer");
    }

    fn status(revision: i64, leader: u32) -> Reply<MemberStatus> {
        Ok(MemberStatus {
            term: 4,
            leader: Some(NodeId(leader)),
            revision,
            raft_index: 20,
            applied_index: 19,
        })
    }

    #[test]
    fn printstatus_says_where_a_revision_is_applied() {
        let answers = vec![
            (NodeId(1), ReplicaState::Running, status(7, 1)),
            (NodeId(2), ReplicaState::Running, status(5, 1)),
            (NodeId(3), ReplicaState::Down, Err("down".to_string())),
        ];
        let text = render_position(None, 2, &answers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "revision 7, the latest any member holds",
            "{text}"
        );
        assert!(lines[2].ends_with("applied"), "{text}");
        assert!(lines[3].ends_with("not yet (2 behind)"), "{text}");
        assert_eq!(words(lines[4]), ["n3", "down", "down"], "{text}");
        let text = render_position(Some(5), 2, &answers);
        assert!(text.lines().nth(3).unwrap().ends_with("applied"), "{text}");
        let text = render_position(Some(2), 2, &answers);
        assert!(
            text.contains("not a transfer: revision 2 wrote the initial balances"),
            "{text}"
        );
    }

    #[test]
    fn views_and_status_name_terms_and_leaders() {
        let answers = vec![
            (NodeId(1), ReplicaState::Running, status(7, 1)),
            (NodeId(2), ReplicaState::Running, status(7, 1)),
            (NodeId(3), ReplicaState::Down, Err("down".to_string())),
        ];
        let text = render_view(&answers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(words(lines[0]), ["member", "term", "leader"]);
        assert_eq!(words(lines[1]), ["n1", "4", "n1"]);
        assert!(text.contains("only the current term"), "{text}");
        let text = render_overview(&answers);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(words(lines[1])[..5], ["n1", "running", "leader", "4", "n1"]);
        assert_eq!(words(lines[2])[..3], ["n2", "running", "follower"]);
        assert_eq!(words(lines[3]), ["n3", "down"]);
    }
}
