//! Loading a sharded run's final.json for checking: walked by the reader the classic
//! loader uses (`crate::load::final_doc`, through the sliding window of `crate::load::window`), each
//! log entry parsed by `crate::load::fastjson` (by serde when the fast path gives up) and laid
//! over its shard's agreed log as it is read, so no replica's log is ever held: only one
//! agreed copy per shard.
//!
//! The first replica (in file order) to log an index gives the agreed entry; every
//! later replica's entry there is compared with it on the spot (shard agreement,
//! `crate::checks::shard_agreement`), and a replica's own list is checked to run
//! without gaps. What is left of each replica is [`ShardNodeState`]: its name, shard,
//! balances, error and the stretches of indices it logged. The format: docs/sharded.md.

use crate::checks::agreement::{Agreement, Side};
use crate::final_state::FinalError;
use crate::load::fastjson::{once, put, Cur, Lit, Miss};
use crate::load::final_doc::{self, text_mark, within, Doc, TEXT_LEN};
use crate::load::window::{parse_one, Attempt, ScanError, Scanner};
use crate::shards::{
    EntryValue, FailedTransferValue, FnName, LogEntry, Phase, ReadValue, ShardEntry, ShardEvent,
    ShardId, ShardLog, ShardNodeState, ShardPositions, SnapshotValue, TransferValue, TxnId, Vote,
};
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// A sharded final.json, loaded for checking.
#[derive(Debug, Default)]
pub(crate) struct ShardFinalLoad {
    /// The replicas in file order.
    pub nodes: Vec<ShardNodeState>,
    /// Per shard, its agreed log: the union of its replicas' logs by exec index.
    pub logs: BTreeMap<ShardId, ShardLog>,
    /// The most slots a shard's log may take (from the file's size).
    max_slots: u64,
    /// Divergences and jumps found while laying the logs.
    pub agreement: Agreement,
    reading: Reading,
}

/// Streams a sharded final.json. `Ok(None)` when the file does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<ShardFinalLoad>, FinalError> {
    let Some((file, size)) = final_doc::open(path)? else {
        return Ok(None);
    };
    let mut out = ShardFinalLoad {
        // Every entry takes at least 50 bytes of the file.
        max_slots: size / 50 + 1_000_000,
        ..ShardFinalLoad::default()
    };
    final_doc::read(
        path,
        file,
        &mut out,
        "a sharded final.json (see docs/sharded.md): ",
    )?;
    for log in out.logs.values_mut() {
        log.shrink();
    }
    Ok(Some(out))
}

/// The replica being read: entries read before its `shard` (not how the harness
/// writes it) wait for it.
#[derive(Debug, Default)]
struct Reading {
    node: usize,
    shard: Option<ShardId>,
    waiting: Vec<LogEntry>,
    /// Which of shard, balances, executed and error were seen.
    seen: u16,
}

impl Reading {
    fn once(&mut self, bit: u16, key: &str) -> Result<(), String> {
        if self.seen & (1 << bit) != 0 {
            return Err(format!("duplicate field `{key}`"));
        }
        self.seen |= 1 << bit;
        Ok(())
    }
}

impl Doc for ShardFinalLoad {
    fn begin_node(&mut self, name: &str) -> Result<(), String> {
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(format!("replica {name} appears twice"));
        }
        self.nodes.push(ShardNodeState {
            name: name.to_string(),
            ..ShardNodeState::default()
        });
        self.reading = Reading {
            node: self.nodes.len() - 1,
            ..Reading::default()
        };
        Ok(())
    }

    /// `shard`, `balances` and `error` (each at most once); others are skipped.
    fn node_field<R: Read>(&mut self, key: &str, sc: &mut Scanner<R>) -> Result<(), ScanError> {
        let node = self.reading.node;
        let bit = match key {
            "shard" => 0,
            "balances" => 1,
            "error" => 3,
            _ => {
                sc.value::<IgnoredAny>()?;
                return Ok(());
            }
        };
        self.reading.once(bit, key).map_err(|m| sc.error(m))?;
        match key {
            "shard" => {
                let s: ShardId = sc.value().map_err(within("shard"))?;
                self.nodes[node].shard = s;
                self.reading.shard = Some(s);
                for e in std::mem::take(&mut self.reading.waiting) {
                    self.lay(node, e, 0).map_err(|m| sc.error(m))?;
                }
            }
            "balances" => self.nodes[node].balances = sc.value().map_err(within("balances"))?,
            _ => self.nodes[node].error = sc.value().map_err(within("error"))?,
        }
        Ok(())
    }

    fn begin_executed(&mut self) -> Result<(), String> {
        self.reading.once(2, "executed")
    }

    fn entry(&mut self, window: &[u8], eof: bool) -> Attempt {
        if let Some(n) = self.confirm_verbatim(window) {
            return Attempt::Done(n);
        }
        let (e, n) = match fast_entry(window) {
            Ok(got) => got,
            Err(Miss::End) if !eof => return Attempt::NeedMore,
            Err(_) => match parse_one::<ShardEntry>(window, eof) {
                Ok(Some((e, n))) => (LogEntry::from(e), n),
                Ok(None) => return Attempt::NeedMore,
                Err(m) => return Attempt::Fail(m),
            },
        };
        if self.reading.shard.is_none() {
            self.reading.waiting.push(e);
            return Attempt::Done(n);
        }
        match self.lay(self.reading.node, e, text_mark(&window[..n])) {
            Ok(()) => Attempt::Done(n),
            Err(m) => Attempt::Fail(m),
        }
    }

    fn end_node(&mut self) -> Result<(), String> {
        match self.reading.shard {
            Some(_) => Ok(()),
            None => Err("missing field `shard`".into()),
        }
    }
}

impl ShardFinalLoad {
    /// Every replica of a shard logs every entry, most often in the very same bytes:
    /// an entry whose text matches the one laid at its exec index (by its
    /// [`text_mark`]) only confirms it, and is taken without being parsed (two thirds
    /// of final.json). Returns the bytes it took, or `None` to parse it (another text
    /// may still mean the same entry). As the classic loader does
    /// (`crate::run::final_load`).
    fn confirm_verbatim(&mut self, window: &[u8]) -> Option<usize> {
        let shard = self.reading.shard?;
        let mut c = Cur::new(window);
        c.eat(b'{').ok()?;
        if c.key().ok()? != b"exec_index" {
            return None;
        }
        let exec = c.u64().ok()?;
        let laid = self.logs.get(&shard)?.mark(exec);
        let n = (laid & TEXT_LEN) as usize;
        let text = window.get(..n).filter(|_| n > 0)?;
        if text_mark(text) != laid {
            return None;
        }
        self.track(self.reading.node, exec);
        self.agreement.compared();
        Some(n)
    }

    /// Follows replica `node`'s list of exec indices: its stretches, and a jump.
    fn track(&mut self, node: usize, exec: u64) {
        let n = &mut self.nodes[node];
        if n.entries > 0 && exec != n.last + 1 {
            let (label, last) = (n.label(), n.last);
            self.agreement.jump(&label, last, exec);
        }
        let n = &mut self.nodes[node];
        match n.runs.last_mut() {
            Some(run) if n.entries > 0 && exec == run.1 + 1 => run.1 = exec,
            _ => n.runs.push((exec, exec)),
        }
        if n.entries == 0 {
            n.first = exec;
        }
        n.last = exec;
        n.entries += 1;
    }

    /// Lays one entry of replica `node` over its shard's agreed log; `mark` is its
    /// text's [`text_mark`] (0 for none).
    fn lay(&mut self, node: usize, e: LogEntry, mark: u64) -> Result<(), String> {
        let exec = e.exec_index;
        self.track(node, exec);
        let shard = self.nodes[node].shard;
        let log = self.logs.entry(shard).or_default();
        let Some((agreed, e)) = log.lay(e, mark, self.max_slots)? else {
            return Ok(());
        };
        self.agreement.compared();
        if agreed == e {
            return Ok(());
        }
        let owner = self
            .nodes
            .iter()
            .find(|o| o.shard == shard && o.holds(exec))
            .map_or_else(|| "another replica".into(), ShardNodeState::label);
        self.agreement.divergence(
            exec,
            Side {
                node: &owner,
                entry: describe(&agreed),
            },
            Side {
                node: &self.nodes[node].label(),
                entry: describe(&e),
            },
        );
        Ok(())
    }
}

/// A log entry in a few words, for a divergence.
pub(crate) fn describe(e: &LogEntry) -> String {
    let mut s = format!(
        "client {}'s request {} {} {}",
        e.client, e.request_id, e.f, e.value
    );
    if let Some(p) = e.phase {
        s.push_str(&format!(" ({p:?} applying {})", e.applied().unwrap_or(0)).to_lowercase());
    }
    s
}

/// Parses one log entry without serde (see `crate::load::fastjson`), returning it and the
/// bytes it took; any miss goes to serde, which gives the same entry or the error.
fn fast_entry(slice: &[u8]) -> Result<(LogEntry, usize), Miss> {
    let mut c = Cur::new(slice);
    let (mut exec_index, mut client, mut request_id, mut f, mut kind) =
        (None, None, None, None, None);
    let (mut value, mut txn, mut phase, mut vote, mut applied) = (None, None, None, None, None);
    let mut seen = 0u16;
    c.object_hinted(shard_entry_key, |c, k| {
        let bit = match k {
            b"exec_index" => put(&mut exec_index, c.u64()?, 0),
            b"client" => put(&mut client, c.u64()?, 1),
            b"request_id" => put(&mut request_id, c.u64()?, 2),
            b"f" => put(&mut f, fn_name(c)?, 3),
            b"value" => put(&mut value, value_here(c, entry_value)?, 4),
            b"type" => put(&mut kind, c.event_type()?, 5),
            b"txn" => put(&mut txn, nullable(c, txn_id)?, 6),
            b"phase" => put(&mut phase, nullable(c, phase_word)?, 7),
            b"vote" => put(&mut vote, nullable(c, vote_word)?, 8),
            b"applied" => put(&mut applied, nullable(c, Cur::i64)?, 9),
            _ => {
                c.skip()?;
                return Ok(());
            }
        };
        once(&mut seen, bit)
    })?;
    let key = (
        exec_index.ok_or(Miss::Other)?,
        client.ok_or(Miss::Other)?,
        request_id.ok_or(Miss::Other)?,
    );
    let entry = LogEntry::new(
        key,
        f.ok_or(Miss::Other)?,
        value.ok_or(Miss::Other)?,
        kind.ok_or(Miss::Other)?,
        txn.flatten(),
        phase.flatten(),
        vote.flatten(),
        applied.flatten(),
    );
    Ok((entry, c.pos()))
}

/// The keys of a sharded log entry, in the order the harness writes them (see
/// `Cur::object_hinted`): the classic entry's, then a transaction's.
fn shard_entry_key(n: usize, prev: &[u8]) -> [Lit; 2] {
    const TXN: Lit = Lit::new(b"\"txn\":");
    const PHASE: Lit = Lit::new(b"\"phase\":");
    const VOTE: Lit = Lit::new(b"\"vote\":");
    const APPLIED: Lit = Lit::new(b"\"applied\":");
    match prev {
        b"type" => [TXN, Lit::NONE],
        b"txn" => [PHASE, Lit::NONE],
        b"phase" => [VOTE, APPLIED],
        b"vote" => [APPLIED, Lit::NONE],
        _ => crate::load::fastjson::entry_key(n, prev),
    }
}

/// The keys of a sharded history line, in the order the harness writes them: the
/// classic line's, with `positions` after `node`.
fn shard_event_key(n: usize, prev: &[u8]) -> [Lit; 2] {
    const POSITIONS: Lit = Lit::new(b"\"positions\":");
    match prev {
        b"node" => [POSITIONS, Lit::NONE],
        _ => crate::load::fastjson::event_key(n, prev),
    }
}

/// Parses a sharded history line without serde (see `crate::load::fastjson`); `None` lets
/// serde decide (it reads the same event or names what is wrong with the line).
pub(crate) fn fast_event(line: &[u8]) -> Option<ShardEvent> {
    let mut c = Cur::new(line);
    let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
    let (mut value, mut request_id, mut positions) = (None, None, None);
    let mut seen = 0u16;
    c.object_hinted(shard_event_key, |c, k| {
        let bit = match k {
            b"index" => put(&mut index, c.u64()?, 0),
            b"time_ns" => put(&mut time_ns, c.u64()?, 1),
            b"process" => put(&mut process, c.process()?, 2),
            b"type" => put(&mut kind, c.event_type()?, 3),
            b"f" => put(&mut f, fn_name(c)?, 4),
            b"value" => put(&mut value, value_here(c, event_value)?, 5),
            b"request_id" => put(&mut request_id, nullable(c, Cur::u64)?, 6),
            b"node" => nullable(c, Cur::str).map(|_| 7)?,
            b"exec_index" => nullable(c, Cur::u64).map(|_| 8)?,
            b"positions" => put(&mut positions, nullable(c, position_map)?, 9),
            _ => {
                c.skip()?;
                return Ok(());
            }
        };
        once(&mut seen, bit)
    })
    .ok()?;
    if !c.at_end() {
        return None;
    }
    Some(ShardEvent {
        index: index?,
        time_ns: time_ns?,
        process: process?,
        kind: kind?,
        f: f?,
        value: value.unwrap_or_default(),
        request_id: request_id.flatten(),
        positions: positions.flatten(),
    })
}

/// `value` as [`EntryValue::from`] gives it from serde's `Value`.
fn event_value(text: &str) -> Result<EntryValue, Miss> {
    if let Some(v) = fast_value(text) {
        return Ok(v);
    }
    serde_json::from_str::<serde_json::Value>(text)
        .map(EntryValue::from)
        .map_err(|_| Miss::Other)
}

/// The value at `c`: read in place when it has a compact shape (see [`fast_value`]),
/// else its text skipped and given to `slow`.
fn value_here(
    c: &mut Cur<'_>,
    slow: fn(&str) -> Result<EntryValue, Miss>,
) -> Result<EntryValue, Miss> {
    if c.null()? {
        // A read_all's invocation: what `Value::Null` gives, without serde.
        return Ok(EntryValue::default());
    }
    let rest = c.rest();
    let mut here = Cur::new(rest);
    let fast = match rest.get(1..4) {
        Some(b"\"ac") => ReadValue::read(&mut here).map(EntryValue::Read),
        Some(b"\"ba") => SnapshotValue::read(&mut here).map(EntryValue::Snapshot),
        _ => TransferValue::read(&mut here)
            .map(EntryValue::Transfer)
            .or_else(|| {
                here = Cur::new(rest);
                FailedTransferValue::read(&mut here).map(EntryValue::FailedTransfer)
            }),
    };
    match fast {
        Some(v) => {
            c.advance(here.pos());
            Ok(v)
        }
        None => slow(c.skip()?),
    }
}

/// A transfer's or a read's value, without serde.
fn fast_value(text: &str) -> Option<EntryValue> {
    match text.as_bytes().get(1..4) {
        Some(b"\"ac") => ReadValue::fast(text.as_bytes()).map(EntryValue::Read),
        Some(b"\"ba") => SnapshotValue::fast(text.as_bytes()).map(EntryValue::Snapshot),
        _ => TransferValue::fast(text.as_bytes())
            .map(EntryValue::Transfer)
            .or_else(|| FailedTransferValue::fast(text.as_bytes()).map(EntryValue::FailedTransfer)),
    }
}

/// `{"1": 17, "2": 4}`: shard id to position.
fn position_map(c: &mut Cur<'_>) -> Result<ShardPositions, Miss> {
    let mut out = ShardPositions::default();
    c.object(|c, k| {
        let id: ShardId = std::str::from_utf8(k)
            .ok()
            .filter(|t| {
                t.bytes().all(|b| b.is_ascii_digit()) && (t.len() == 1 || !t.starts_with('0'))
            })
            .and_then(|t| t.parse().ok())
            .ok_or(Miss::Other)?;
        if out.contains_key(&id) {
            return Err(Miss::Other);
        }
        out.insert(id, c.u64()?);
        Ok(())
    })?;
    out.shrink_to_fit();
    Ok(out)
}

fn nullable<'a, T>(
    c: &mut Cur<'a>,
    f: impl FnOnce(&mut Cur<'a>) -> Result<T, Miss>,
) -> Result<Option<T>, Miss> {
    if c.null()? {
        Ok(None)
    } else {
        f(c).map(Some)
    }
}

/// A value's text as the compact form serde would give it.
fn entry_value(text: &str) -> Result<EntryValue, Miss> {
    if let Some(v) = fast_value(text) {
        return Ok(v);
    }
    serde_json::from_str(text).map_err(|_| Miss::Other)
}

fn txn_id(c: &mut Cur<'_>) -> Result<TxnId, Miss> {
    let (mut coordinator, mut client, mut request_id) = (None, None, None);
    let mut seen = 0u16;
    let hint = |n: usize, _: &[u8]| {
        const KEYS: [Lit; 3] = [
            Lit::new(b"\"coordinator\":"),
            Lit::new(b"\"client\":"),
            Lit::new(b"\"request_id\":"),
        ];
        [KEYS.get(n).copied().unwrap_or(Lit::NONE), Lit::NONE]
    };
    c.object_hinted(hint, |c, k| {
        let bit = match k {
            b"coordinator" => put(
                &mut coordinator,
                u32::try_from(c.u64()?).map_err(|_| Miss::Other)?,
                0,
            ),
            b"client" => put(&mut client, c.u64()?, 1),
            b"request_id" => put(&mut request_id, c.u64()?, 2),
            _ => {
                c.skip()?;
                return Ok(());
            }
        };
        once(&mut seen, bit)
    })?;
    Ok(TxnId {
        coordinator: coordinator.ok_or(Miss::Other)?,
        client: client.ok_or(Miss::Other)?,
        request_id: request_id.ok_or(Miss::Other)?,
    })
}

/// An operation's function, the bank's three matched in place.
fn fn_name(c: &mut Cur<'_>) -> Result<FnName, Miss> {
    const WORDS: [(Lit, FnName); 3] = [
        (Lit::new(b"\"transfer\""), FnName::TRANSFER),
        (Lit::new(b"\"read\""), FnName::READ),
        (Lit::new(b"\"read_all\""), FnName::READ_ALL),
    ];
    match known_word(c, &WORDS)? {
        Some(f) => Ok(f),
        None => c.str().map(FnName::new),
    }
}

/// The value of the first of `words` (each a quoted string) that the input goes on
/// with, taken; `None` (nothing taken) when none does.
fn known_word<T: Copy>(c: &mut Cur<'_>, words: &[(Lit, T)]) -> Result<Option<T>, Miss> {
    c.peek()?;
    Ok(words.iter().find(|(w, _)| c.take(*w)).map(|&(_, t)| t))
}

fn phase_word(c: &mut Cur<'_>) -> Result<Phase, Miss> {
    const WORDS: [(Lit, Phase); 3] = [
        (Lit::new(b"\"prepare\""), Phase::Prepare),
        (Lit::new(b"\"commit\""), Phase::Commit),
        (Lit::new(b"\"abort\""), Phase::Abort),
    ];
    if let Some(p) = known_word(c, &WORDS)? {
        return Ok(p);
    }
    match c.str()? {
        "prepare" => Ok(Phase::Prepare),
        "commit" => Ok(Phase::Commit),
        "abort" => Ok(Phase::Abort),
        _ => Err(Miss::Other),
    }
}

fn vote_word(c: &mut Cur<'_>) -> Result<Vote, Miss> {
    const WORDS: [(Lit, Vote); 2] = [
        (Lit::new(b"\"yes\""), Vote::Yes),
        (Lit::new(b"\"no\""), Vote::No),
    ];
    if let Some(v) = known_word(c, &WORDS)? {
        return Ok(v);
    }
    match c.str()? {
        "yes" => Ok(Vote::Yes),
        "no" => Ok(Vote::No),
        _ => Err(Miss::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.json");
        std::fs::write(&path, text).unwrap();
        let classic = crate::run::final_load::load_log(&path, crate::model::Accounts::default());
        let sharded = load(&path);
        (
            classic.err().map(|e| e.to_string()).unwrap_or_default(),
            sharded.err().map(|e| e.to_string()).unwrap_or_default(),
        )
    }

    /// Both loaders walk the same reader (`crate::load::final_doc`), so they name a fault in
    /// the same words.
    #[test]
    fn classic_and_sharded_name_a_bad_entry_alike() {
        let (classic, sharded) =
            errors(r#"{"nodes":{"n1":{"shard":1,"executed":[{"exec_index":"x"}]}}}"#);
        for msg in [&classic, &sharded] {
            assert!(msg.contains("nodes.n1: executed[0]: "), "{msg}");
        }
        assert!(sharded.contains("a sharded final.json"), "{sharded}");
        let (classic, sharded) = errors(r#"{"nodes":{},"nodes":{}}"#);
        for msg in [&classic, &sharded] {
            assert!(msg.contains("field `nodes` appears twice"), "{msg}");
        }
        let (classic, sharded) = errors(r#"{"positions":"unique"}"#);
        for msg in [&classic, &sharded] {
            assert!(msg.contains("field `nodes` is missing"), "{msg}");
        }
    }

    /// A replica's entry in the very bytes of the one laid is confirmed unparsed; one
    /// in other bytes is parsed and compared (the same entry with its keys in another
    /// order agrees, a different one diverges), and every replica's stretch is followed.
    #[test]
    fn verbatim_entries_confirm_and_others_are_compared() {
        let e1 = r#"{"exec_index":1,"client":1,"request_id":1,"f":"read","value":{"account":"A","balance":7},"type":"ok"}"#;
        let e2 = r#"{"exec_index":2,"client":1,"request_id":2,"f":"read","value":{"account":"A","balance":7},"type":"ok"}"#;
        let e2_keys = r#"{"exec_index":2,"type":"ok","request_id":2,"client":1,"f":"read","value":{"balance":7,"account":"A"}}"#;
        let e2_other = r#"{"exec_index":2,"client":1,"request_id":2,"f":"read","value":{"account":"A","balance":8},"type":"ok"}"#;
        let node =
            |entries: &[&str]| format!(r#"{{"shard":1,"executed":[{}]}}"#, entries.join(","));
        let text = format!(
            r#"{{"nodes":{{"n1":{},"n2":{},"n3":{},"n4":{}}}}}"#,
            node(&[e1, e2]),
            node(&[e1, e2]),
            node(&[e1, e2_keys]),
            node(&[e1, e2_other])
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.json");
        std::fs::write(&path, text).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        let r = loaded.agreement.finish(None);
        assert_eq!(r.anomaly_count, 1, "{r:#?}");
        assert!(r.anomalies[0].message.contains("n4 (shard 1)"), "{r:#?}");
        assert!(loaded
            .nodes
            .iter()
            .all(|n| (n.first, n.last, n.entries) == (1, 2, 2)));
        // The agreed entry is the first replica's; its balance was compared while
        // the replicas were laid and is not held after.
        let agreed = loaded.logs[&1].get(&2);
        assert_eq!(
            agreed.as_ref().and_then(|e| e.value.str_field("account")),
            Some("A")
        );
        assert_eq!(agreed.and_then(|e| e.value.i64_field("balance")), None);
    }

    /// The fast path gives exactly what serde gives, or leaves the entry to serde.
    #[test]
    fn fast_entries_equal_serdes() {
        for text in [
            r#"{"exec_index":3,"client":2,"request_id":9,"f":"transfer","value":{"amount":3,"from":"A","to":"C"},"type":"ok","txn":{"coordinator":1,"client":2,"request_id":9},"phase":"prepare","vote":"yes","applied":-3}"#,
            r#"{"exec_index":4,"client":2,"request_id":9,"f":"transfer","value":{"amount":2,"from":"A","from_balance":8,"to":"B","to_balance":12},"type":"ok"}"#,
            r#"{"exec_index":5,"client":1,"request_id":1,"f":"read","value":{"account":"A","balance":7},"type":"ok","txn":null,"extra":[1,2]}"#,
            r#"{"exec_index":6,"client":1,"request_id":2,"f":"transfer","value":{"amount":30,"error":"insufficient-funds","from":"D","to":"B"},"type":"fail"}"#,
            r#"{"exec_index":7,"client":1,"request_id":3,"f":"read_all","value":null,"type":"ok"}"#,
        ] {
            let serde: ShardEntry = serde_json::from_str(text).unwrap();
            let serde = LogEntry::from(serde);
            let (fast, n) = fast_entry(format!("{text} ").as_bytes()).unwrap();
            assert_eq!(fast, serde, "{text}");
            assert_eq!(n, text.len());
        }
        for miss in [
            r#"{"exec_index":3,"exec_index":4,"client":2,"request_id":9,"f":"read","value":null,"type":"ok"} "#,
            r#"{"exec_index":3,"client":2,"request_id":9,"f":"read","value":null,"type":"ok","phase":"later"} "#,
        ] {
            assert_eq!(
                fast_entry(miss.as_bytes()).err(),
                Some(Miss::Other),
                "{miss}"
            );
        }
    }
}
