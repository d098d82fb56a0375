//! Collecting every replica's executed log during the run, for `final.json`.
//!
//! Why not just fetch it at the end: a replica that falls behind (killed, paused, cut off)
//! catches up by installing another replica's snapshot, and its executed journal then restarts
//! after the snapshot. Every replica may do that at some point of a long faulty run, and then no
//! replica still holds the beginning of the log at the end: the checker would see a hole and
//! could decide nothing. So the harness polls each replica's journal (`FetchExecuted`, over its
//! direct control channel) every second while the run goes on, and keeps what it saw.
//!
//! How: per replica, the entries are appended to files under `journals/`, one file per
//! contiguous *segment*; a replica whose journal jumps forward (it installed a snapshot) starts a
//! new segment. Nothing is held in memory, so long runs cost disk, not RAM. `final.json` is then
//! streamed out: each replica's last segment under its own name with its final balances, and
//! any earlier segment as an extra entry named `<node>:<first>-<last>` with no balances (what
//! that replica reported executing before it jumped), so every list the checker reads is
//! contiguous and the union covers the whole log.
//!
//! On a sharded bank ([`JournalCollector::sharded`]) each replica's entries are written in the
//! sharded shape (docs/sharded.md, [`crate::record::shard_entry`]) and each replica in
//! final.json names its `shard`.

use crate::os::transport::join_all;
use crate::os::transport::Transport;
use crate::record::{executed_entry, shard_entry};
use checker::final_state::ExecutedEntry;
use checker::shards::ShardEntry;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::{Account, Amount, ExecIndex, NodeId};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the replicas' executed journals are collected during a run.
pub const JOURNAL_EVERY: Duration = Duration::from_millis(100);

/// Entries asked for per FetchExecuted.
const PAGE: u32 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// An executed-log entry in one of final.json's shapes.
trait LogLine: serde::Serialize {
    fn exec_index(&self) -> ExecIndex;
}

impl LogLine for ExecutedEntry {
    fn exec_index(&self) -> ExecIndex {
        self.exec_index
    }
}

impl LogLine for ShardEntry {
    fn exec_index(&self) -> ExecIndex {
        self.exec_index
    }
}

/// One contiguous run of a replica's executed log, on disk.
struct Segment {
    path: PathBuf,
    first: ExecIndex,
    last: ExecIndex,
}

/// How far polling one replica got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Everything the replica reported up to `last` is collected.
    CaughtUp { last: ExecIndex },
    /// More remains (the page budget ran out).
    Behind,
    /// The replica did not answer.
    Failed(String),
}

/// The collection of one replica's journal.
struct NodeLog {
    node: NodeId,
    dir: PathBuf,
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    /// The exec index wanted next.
    next: ExecIndex,
    /// The replica's shard, on a sharded bank.
    shard: Option<u32>,
}

impl NodeLog {
    fn new(node: NodeId, dir: &Path, shard: Option<u32>) -> NodeLog {
        NodeLog {
            node,
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            writer: None,
            next: 1,
            shard,
        }
    }

    fn last(&self) -> ExecIndex {
        self.next.saturating_sub(1)
    }

    /// Fetches new entries, at most `max_pages` pages.
    async fn poll(
        &mut self,
        transport: &dyn Transport,
        timeout: Duration,
        max_pages: u32,
    ) -> Result<Poll, JournalError> {
        for _ in 0..max_pages {
            let request = ClientRequest::FetchExecuted {
                from_exec_index: self.next,
                max_entries: PAGE,
            };
            let (first_available, last, entries) = match transport
                .call(self.node, request, timeout)
                .await
            {
                Ok(ClientResponse::Executed {
                    first_available,
                    last,
                    entries,
                    ..
                }) => (first_available, last, entries),
                Ok(ClientResponse::Error { message, .. }) => return Ok(Poll::Failed(message)),
                Ok(other) => return Ok(Poll::Failed(format!("FetchExecuted answered {other:?}"))),
                Err(e) => return Ok(Poll::Failed(e.to_string())),
            };
            if entries.is_empty() {
                if first_available > self.next && first_available <= last {
                    // Jumped past what we have and the page came back empty: ask again from
                    // where its journal starts now.
                    self.next = first_available;
                    self.end_segment()?;
                    continue;
                }
                return Ok(Poll::CaughtUp { last: self.last() });
            }
            // A restarted replica re-executes from its checkpoint: skip what we already have.
            let fresh = entries.iter().filter(|e| e.exec_index >= self.next);
            if self.shard.is_some() {
                self.append(&fresh.map(shard_entry).collect::<Vec<_>>())?;
            } else {
                self.append(&fresh.map(executed_entry).collect::<Vec<_>>())?;
            }
            if self.next > last {
                return Ok(Poll::CaughtUp { last: self.last() });
            }
        }
        Ok(Poll::Behind)
    }

    fn end_segment(&mut self) -> Result<(), JournalError> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush().map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    /// Appends contiguous `entries` (from `next` or later), starting a new segment when they do
    /// not follow on from the current one.
    fn append<L: LogLine>(&mut self, entries: &[L]) -> Result<(), JournalError> {
        let Some(first) = entries.first().map(LogLine::exec_index) else {
            return Ok(());
        };
        let follows =
            self.writer.is_some() && self.segments.last().is_some_and(|s| s.last + 1 == first);
        if !follows {
            self.end_segment()?;
            let path = self
                .dir
                .join(format!("{}.{}.jsonl", self.node, self.segments.len() + 1));
            let file = File::create(&path).map_err(io_err(&path))?;
            self.writer = Some(BufWriter::new(file));
            self.segments.push(Segment {
                path,
                first,
                last: first - 1,
            });
        }
        let (Some(writer), Some(segment)) = (self.writer.as_mut(), self.segments.last_mut()) else {
            return Ok(());
        };
        for entry in entries {
            if entry.exec_index() != segment.last + 1 {
                // Not contiguous within one answer; end the segment here to keep lists honest.
                break;
            }
            let line = serde_json::to_vec(entry).map_err(|e| io_err(&segment.path)(e.into()))?;
            writer.write_all(&line).map_err(io_err(&segment.path))?;
            writer.write_all(b"\n").map_err(io_err(&segment.path))?;
            segment.last = entry.exec_index();
        }
        self.next = segment.last + 1;
        Ok(())
    }
}

pub struct JournalCollector {
    dir: PathBuf,
    nodes: BTreeMap<NodeId, NodeLog>,
}

impl JournalCollector {
    /// Collects into `dir` (created).
    pub fn new(dir: &Path, nodes: &[NodeId]) -> Result<JournalCollector, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        Self::with_shards(dir, nodes, &BTreeMap::new())
    }

    /// A collector for a sharded bank's replicas, each in its shard (`node_shards`).
    pub fn sharded(
        dir: &Path,
        node_shards: &BTreeMap<NodeId, u32>,
    ) -> Result<JournalCollector, JournalError> {
        let nodes: Vec<NodeId> = node_shards.keys().copied().collect();
        Self::with_shards(dir, &nodes, node_shards)
    }

    fn with_shards(
        dir: &Path,
        nodes: &[NodeId],
        node_shards: &BTreeMap<NodeId, u32>,
    ) -> Result<JournalCollector, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let nodes = nodes
            .iter()
            .map(|&node| {
                let shard = node_shards.get(&node).copied();
                (node, NodeLog::new(node, dir, shard))
            })
            .collect();
        Ok(JournalCollector {
            dir: dir.to_path_buf(),
            nodes,
        })
    }

    /// Fetches new entries from every replica concurrently, at most `max_pages` pages each.
    pub async fn poll_all(
        &mut self,
        transport: &dyn Transport,
        timeout: Duration,
        max_pages: u32,
    ) -> Result<BTreeMap<NodeId, Poll>, JournalError> {
        let polls = join_all(self.nodes.values_mut().map(|log| async move {
            let node = log.node;
            (node, log.poll(transport, timeout, max_pages).await)
        }))
        .await;
        polls
            .into_iter()
            .map(|(node, poll)| poll.map(|p| (node, p)))
            .collect()
    }

    /// Fetches new entries from one replica.
    pub async fn poll(
        &mut self,
        transport: &dyn Transport,
        node: NodeId,
        timeout: Duration,
        max_pages: u32,
    ) -> Result<Poll, JournalError> {
        match self.nodes.get_mut(&node) {
            Some(log) => log.poll(transport, timeout, max_pages).await,
            None => Ok(Poll::Failed(format!("unknown replica {node}"))),
        }
    }

    /// The last exec index collected from `node` (0 if none).
    pub fn last(&self, node: NodeId) -> ExecIndex {
        self.nodes.get(&node).map_or(0, NodeLog::last)
    }

    /// Streams `final.json`: every replica's current segment with its balances (or the error
    /// that kept them from us), and earlier segments as extra, balance-less entries.
    pub fn write_final(
        &mut self,
        path: &Path,
        balances: &BTreeMap<NodeId, Result<BTreeMap<Account, Amount>, String>>,
    ) -> Result<(), JournalError> {
        for log in self.nodes.values_mut() {
            log.end_segment()?;
        }
        let file = File::create(path).map_err(io_err(path))?;
        let mut out = BufWriter::new(file);
        let mut first_node = true;
        let mut write = || -> std::io::Result<()> {
            out.write_all(b"{\"nodes\":{")?;
            for (node, log) in &self.nodes {
                let (node_balances, error) = match balances.get(node) {
                    Some(Ok(b)) => (Some(b), None),
                    Some(Err(e)) => (None, Some(e.clone())),
                    None => (None, Some("not fetched".to_string())),
                };
                let count = log.segments.len();
                for (k, segment) in log.segments.iter().enumerate() {
                    if k + 1 == count {
                        let name = node.to_string();
                        write_node(
                            &mut out,
                            &mut first_node,
                            &name,
                            log.shard,
                            node_balances,
                            Some(&segment.path),
                            error.clone(),
                        )?;
                    } else {
                        let name = format!("{node}:{}-{}", segment.first, segment.last);
                        write_node(
                            &mut out,
                            &mut first_node,
                            &name,
                            log.shard,
                            None,
                            Some(&segment.path),
                            None,
                        )?;
                    }
                }
                if count == 0 {
                    write_node(
                        &mut out,
                        &mut first_node,
                        &node.to_string(),
                        log.shard,
                        node_balances,
                        None,
                        error,
                    )?;
                }
            }
            out.write_all(b"}}\n")?;
            out.flush()
        };
        write().map_err(io_err(path))
    }

    /// Removes the segment files (final.json holds their contents).
    pub fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_node(
    out: &mut impl Write,
    first_node: &mut bool,
    name: &str,
    shard: Option<u32>,
    balances: Option<&BTreeMap<Account, Amount>>,
    entries: Option<&Path>,
    error: Option<String>,
) -> std::io::Result<()> {
    if !*first_node {
        out.write_all(b",")?;
    }
    *first_node = false;
    serde_json::to_writer(&mut *out, name)?;
    out.write_all(b":{")?;
    if let Some(shard) = shard {
        write!(out, "\"shard\":{shard},")?;
    }
    out.write_all(b"\"balances\":")?;
    serde_json::to_writer(&mut *out, &balances)?;
    out.write_all(b",\"executed\":[")?;
    if let Some(path) = entries {
        let mut first = true;
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            out.write_all(line.as_bytes())?;
        }
    }
    out.write_all(b"],\"error\":")?;
    serde_json::to_writer(&mut *out, &error)?;
    out.write_all(b"}")
}

/// Collection in the background while the run goes on: one polling task per replica, so a
/// paused replica's timeouts do not slow the others.
pub struct Sampler {
    dir: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<NodeLog, JournalError>>>,
}

/// Polls every replica every `every` (each poll bounded by `timeout` and a page budget).
pub fn spawn_sampler(
    collector: JournalCollector,
    transport: std::sync::Arc<dyn Transport>,
    every: Duration,
    timeout: Duration,
) -> Sampler {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = collector
        .nodes
        .into_values()
        .map(|mut log| {
            let transport = transport.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return Ok(log),
                        _ = tokio::time::sleep(every) => {}
                    }
                    log.poll(transport.as_ref(), timeout, SAMPLE_PAGES).await?;
                }
            })
        })
        .collect();
    Sampler {
        dir: collector.dir,
        stop,
        tasks,
    }
}

/// Pages one background poll may take (it catches up over the next polls).
const SAMPLE_PAGES: u32 = 20;

impl Sampler {
    /// Stops polling and hands the collector back.
    pub async fn finish(self) -> Result<JournalCollector, JournalError> {
        let _ = self.stop.send(true);
        let mut nodes = BTreeMap::new();
        for task in self.tasks {
            let log = match task.await {
                Ok(result) => result?,
                Err(e) => {
                    return Err(JournalError::Io {
                        path: self.dir.clone(),
                        cause: std::io::Error::other(e),
                    })
                }
            };
            nodes.insert(log.node, log);
        }
        Ok(JournalCollector {
            dir: self.dir,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::faultline::fake::FakeCluster;
    use checker::final_state::FinalState;
    use replica::bank::{Command, Op};
    use replica::types::{ClientId, RequestId};

    fn read_all(request: u64) -> ClientRequest {
        ClientRequest::Submit(Command {
            client: ClientId(0),
            request: RequestId(request),
            op: Op::ReadAll,
        })
    }

    #[tokio::test]
    async fn collects_incrementally_and_writes_a_readable_final_json() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCluster::new(2, &["A".into(), "B".into()], 10);
        let nodes = [NodeId(1), NodeId(2)];
        let mut collector = JournalCollector::new(&dir.path().join("journals"), &nodes).unwrap();
        let t = Duration::from_millis(20);
        for r in 1..=3 {
            fake.call(NodeId(1), read_all(r), t).await.unwrap();
        }
        let polls = collector.poll_all(&fake, t, 10).await.unwrap();
        assert_eq!(polls[&NodeId(1)], Poll::CaughtUp { last: 3 });
        for r in 4..=5 {
            fake.call(NodeId(1), read_all(r), t).await.unwrap();
        }
        fake.set_down(NodeId(2), true);
        let polls = collector.poll_all(&fake, t, 10).await.unwrap();
        assert_eq!(polls[&NodeId(1)], Poll::CaughtUp { last: 5 });
        assert!(matches!(polls[&NodeId(2)], Poll::Failed(_)));
        assert_eq!(
            collector.last(NodeId(2)),
            3,
            "n2 keeps what it reported before"
        );
        let balances = BTreeMap::from([
            (NodeId(1), Ok(fake.balances())),
            (NodeId(2), Err("unreachable".to_string())),
        ]);
        let path = dir.path().join("final.json");
        collector.write_final(&path, &balances).unwrap();
        let state = FinalState::load(&path).unwrap();
        assert_eq!(state.nodes["n1"].executed.len(), 5);
        assert_eq!(state.nodes["n1"].executed[4].exec_index, 5);
        assert_eq!(state.nodes["n1"].balances.as_ref().unwrap()["A"], 10);
        assert_eq!(state.nodes["n2"].executed.len(), 3);
        assert_eq!(state.nodes["n2"].error.as_deref(), Some("unreachable"));
    }

    #[test]
    fn a_jump_starts_a_new_segment_written_as_an_extra_entry() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId(1);
        let mut collector = JournalCollector::new(dir.path(), &[node]).unwrap();
        let entry = |i: u64| ExecutedEntry {
            exec_index: i,
            client: 0,
            request_id: i,
            f: "read_all".into(),
            value: serde_json::json!({"balances": {}}),
            kind: checker::history::EventType::Ok,
        };
        let log = collector.nodes.get_mut(&node).unwrap();
        log.append(&[entry(1), entry(2)]).unwrap();
        log.append(&[entry(3)]).unwrap();
        // The replica installed a snapshot: its journal now starts at 10.
        log.append(&[entry(10), entry(11)]).unwrap();
        let path = dir.path().join("final.json");
        let balances = BTreeMap::from([(node, Ok(BTreeMap::from([("A".into(), 10)])))]);
        collector.write_final(&path, &balances).unwrap();
        let state = FinalState::load(&path).unwrap();
        let early = &state.nodes["n1:1-3"];
        assert_eq!(early.executed.len(), 3);
        assert!(early.balances.is_none() && early.error.is_none());
        let current = &state.nodes["n1"];
        assert_eq!(
            current
                .executed
                .iter()
                .map(|e| e.exec_index)
                .collect::<Vec<_>>(),
            vec![10, 11]
        );
        assert!(current.balances.is_some());
    }
}
