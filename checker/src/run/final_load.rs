//! Loading final.json for checking: walk it (`crate::load::final_doc`, the reader the sharded
//! loader shares) through a sliding window into the agreed log ([`crate::final_state::AgreedLog`]), comparing every replica's entries as they are
//! laid (agreement, [`crate::checks::agreement`]).
//!
//! The format and the agreed log are `crate::final_state`, below the checks that read
//! them; this loader sits above the agreement check it feeds, so no check imports back.
//! How it works: see `crate::final_state`'s module docs.

use crate::checks::agreement::{Agreement, Side};
use crate::final_state::{AgreedLog, FinalError, NodeState, Positions, Slot, SlotMarks, EMPTY};
use crate::history::CowStr;
use crate::history::EventType;
use crate::load::fastjson::{entry_key, once, put, Cur, Lit, Miss};
use crate::load::fields::ValueFields;
use crate::load::final_doc::{self, text_mark, within, Doc, TEXT_LEN};
use crate::load::window::{parse_one, Attempt, ScanError, Scanner};
use crate::model::{Accounts, Acct, Cmd, CmdParts, FKind, Fx};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io::Read;
use std::path::Path;

/// final.json, loaded for checking.
pub(crate) struct LogData {
    pub log: AgreedLog,
    pub nodes: Vec<NodeState>,
    /// The accounts as interned while loading (merged into the history's later).
    pub accounts: Accounts,
    pub agreement: Agreement,
    pub positions: Positions,
    /// Under shared positions, the initial balances' position, when final.json says.
    pub base_revision: Option<u64>,
}

/// Streams final.json into the agreed log. `Ok(None)` when the file does not exist.
pub(crate) fn load_log(path: &Path, accounts: Accounts) -> Result<Option<LogData>, FinalError> {
    let Some((file, size)) = final_doc::open(path)? else {
        return Ok(None);
    };
    let mut loader = Loader {
        data: LogData {
            log: AgreedLog::default(),
            nodes: Vec::new(),
            accounts,
            agreement: Agreement::default(),
            positions: Positions::Unique,
            base_revision: None,
        },
        // Every entry takes at least 50 bytes of the file, so no honest file needs
        // more slots than this; a corrupt exec index cannot make the log balloon.
        max_slots: (size / 50 + 1_000_000).min(u64::from(u32::MAX)),
        client_ids: Default::default(),
        node: 0,
    };
    final_doc::read(path, file, &mut loader, "")?;
    if loader.data.positions == Positions::SharedReads {
        loader.data.log.start_after(loader.data.base_revision);
    }
    loader.data.log.laid();
    Ok(Some(loader.data))
}

struct Loader {
    data: LogData,
    max_slots: u64,
    /// Client process number to its number in the log's table.
    client_ids: crate::model::FxMap<u64, u32>,
    /// The replica whose entries are being read.
    node: usize,
}

impl Loader {
    /// Lays `entry`, the first `n` bytes of `window`, over the log.
    fn attempt(&mut self, node: usize, entry: &EntryRaw<'_>, window: &[u8], n: usize) -> Attempt {
        match self.add(node, entry, text_mark(&window[..n])) {
            Ok(()) => Attempt::Done(n),
            Err(m) => Attempt::Fail(m),
        }
    }

    /// Every replica logs every command, most often in the very same bytes: an entry
    /// whose text matches the one laid at its exec index only confirms it, and is
    /// taken without being parsed (most of final.json). The laid text's length is in
    /// its mark, so not even the entry's end needs finding. Returns the bytes it
    /// took, or `None` to parse it (another text may still mean the same entry).
    fn confirm_verbatim(&mut self, node: usize, window: &[u8]) -> Option<usize> {
        let mut c = Cur::new(window);
        c.eat(b'{').ok()?;
        if c.key_hinted(entry_key(0, b"")).ok()? != b"exec_index" {
            return None;
        }
        let e = c.u64().ok()?;
        let laid = self.data.log.marks(e)?.text;
        let n = (laid & TEXT_LEN) as usize;
        let text = window.get(..n).filter(|_| n > 0)?;
        if text_mark(text) != laid {
            return None;
        }
        self.track_node(node, e);
        self.data.agreement.compared();
        Some(n)
    }

    fn add(&mut self, node: usize, entry: &EntryRaw<'_>, text: u64) -> Result<(), String> {
        let e = entry.exec_index;
        if e == 0 {
            return Err("exec_index must be at least 1".into());
        }
        self.track_node(node, e);
        let hash = entry.fingerprint();
        // Every replica logs every command: most entries only confirm one already
        // laid down, and equal fingerprints need no compact form (the first was
        // checked when it was laid down).
        if self.data.log.marks(e).is_some_and(|m| m.hash == hash) {
            self.data.agreement.compared();
            return Ok(());
        }
        let slot = self.compact(node, entry)?;
        let d = &mut self.data;
        d.log.make_room(e, self.max_slots)?;
        let target = d.log.slot_at(e);
        if target.node == EMPTY {
            d.log.lay(e, &slot, SlotMarks { hash, text });
            return Ok(());
        }
        d.agreement.compared();
        let target_hash = d.log.marks(e).map_or(0, |m| m.hash);
        if target_hash != hash {
            let first = describe_slot(&target, &d.log, &d.accounts);
            let first_node = d.nodes[target.node as usize].name.clone();
            let second = describe_slot(&slot, &d.log, &d.accounts);
            d.agreement.divergence(
                e,
                Side {
                    node: &first_node,
                    entry: first,
                },
                Side {
                    node: &d.nodes[node].name,
                    entry: second,
                },
            );
        }
        Ok(())
    }

    /// Checks the replica's own list is contiguous.
    fn track_node(&mut self, node: usize, e: u64) {
        let n = &mut self.data.nodes[node];
        if n.entries == 0 {
            n.first = e;
        } else if e != n.last + 1 {
            let (name, last) = (n.name.clone(), n.last);
            self.data.agreement.jump(&name, last, e);
        }
        let n = &mut self.data.nodes[node];
        n.last = e;
        n.entries += 1;
    }

    /// The log's table number for a client process (clients are few: a map lookup).
    fn client_id(&mut self, process: u64) -> u32 {
        let table = &mut self.data.log.clients;
        *self.client_ids.entry(process).or_insert_with(|| {
            table.push(process);
            (table.len() - 1) as u32
        })
    }

    fn compact(&mut self, node: usize, entry: &EntryRaw<'_>) -> Result<Slot, String> {
        let v = Some(&entry.value.fields);
        fn need<'n>(n: Option<&'n CowStr<'_>>, field: &str) -> Result<&'n str, String> {
            n.map(|s| &**s)
                .ok_or_else(|| format!("field `value.{field}` is missing"))
        }
        let accounts = &mut self.data.accounts;
        let cmd = match FKind::parse(&entry.f) {
            FKind::Transfer => Cmd::Transfer {
                from: accounts.intern(need(v.and_then(|v| v.from.as_ref()), "from")?),
                to: accounts.intern(need(v.and_then(|v| v.to.as_ref()), "to")?),
                amount: v
                    .and_then(|v| v.amount)
                    .ok_or("field `value.amount` is missing")?,
            },
            FKind::Read => Cmd::Read {
                account: accounts.intern(need(v.and_then(|v| v.account.as_ref()), "account")?),
            },
            FKind::ReadAll => Cmd::ReadAll,
            FKind::Other => Cmd::Other,
        };
        let ok = match entry.kind {
            EventType::Ok => true,
            EventType::Fail => false,
            other => return Err(format!("field `type`: expected ok or fail, found {other}")),
        };
        let CmdParts {
            kind,
            accounts,
            amount,
        } = cmd.pack();
        Ok(Slot {
            client: self.client_id(entry.client),
            request_id: entry.request_id,
            kind,
            accounts,
            amount,
            node: node as u16,
            ok,
        })
    }
}

fn describe_slot(s: &Slot, log: &AgreedLog, accounts: &Accounts) -> String {
    format!(
        "{} by client {} request {} ({})",
        s.cmd().describe(accounts),
        log.client(s),
        s.request_id,
        if s.ok { "ok" } else { "fail" }
    )
}

/// One executed entry, parsed in place (strings borrow from the window).
#[derive(Debug, Deserialize)]
struct EntryRaw<'a> {
    exec_index: u64,
    client: u64,
    request_id: u64,
    #[serde(borrow)]
    f: CowStr<'a>,
    #[serde(borrow, default)]
    value: ValueFields<'a>,
    #[serde(rename = "type")]
    kind: EventType,
}

impl<'a> EntryRaw<'a> {
    /// Parses an entry without serde (see [`crate::load::fastjson`]), returning it and the
    /// bytes it took.
    fn fast(slice: &'a [u8]) -> Result<(EntryRaw<'a>, usize), Miss> {
        match Self::as_written(slice) {
            Some(parsed) => Ok(parsed),
            None => Self::any_order(slice),
        }
    }

    /// An entry exactly as the harness writes it: its keys in that order, no spaces,
    /// no other key. Each key is one compare and needs no dispatch. `None` for
    /// anything else (or an entry cut off by the window), which
    /// [`EntryRaw::any_order`] reads or judges.
    fn as_written(slice: &'a [u8]) -> Option<(EntryRaw<'a>, usize)> {
        const EXEC: Lit = Lit::new(b"{\"exec_index\":");
        const CLIENT: Lit = Lit::new(b",\"client\":");
        const REQUEST: Lit = Lit::new(b",\"request_id\":");
        const F: Lit = Lit::new(b",\"f\":");
        const VALUE: Lit = Lit::new(b",\"value\":");
        const TYPE: Lit = Lit::new(b",\"type\":");
        const END: Lit = Lit::new(b"}");
        let mut c = Cur::new(slice);
        c.take(EXEC).then_some(())?;
        let exec_index = c.u64().ok()?;
        c.take(CLIENT).then_some(())?;
        let client = c.u64().ok()?;
        c.take(REQUEST).then_some(())?;
        let request_id = c.u64().ok()?;
        c.take(F).then_some(())?;
        let f = c.f().ok()?;
        c.take(VALUE).then_some(())?;
        let mut value = ValueFields::default();
        c.value_fields_into(&mut value).ok()?;
        c.take(TYPE).then_some(())?;
        let kind = c.event_type().ok()?;
        c.take(END).then_some(())?;
        let entry = EntryRaw {
            exec_index,
            client,
            request_id,
            f,
            value,
            kind,
        };
        Some((entry, c.pos()))
    }

    /// [`EntryRaw::fast`] for keys in any order (and spaces, and unknown keys).
    fn any_order(slice: &'a [u8]) -> Result<(EntryRaw<'a>, usize), Miss> {
        let mut c = Cur::new(slice);
        let (mut exec_index, mut client, mut request_id, mut f, mut kind) =
            (None, None, None, None, None);
        let mut value = ValueFields::default();
        let mut seen = 0u16;
        c.object_hinted(entry_key, |c, k| {
            let bit = match k {
                b"exec_index" => put(&mut exec_index, c.u64()?, 0),
                b"client" => put(&mut client, c.u64()?, 1),
                b"request_id" => put(&mut request_id, c.u64()?, 2),
                b"f" => put(&mut f, c.f()?, 3),
                b"value" => {
                    c.value_fields_into(&mut value)?;
                    4
                }
                b"type" => put(&mut kind, c.event_type()?, 5),
                _ => {
                    c.skip()?;
                    return Ok(());
                }
            };
            once(&mut seen, bit)
        })?;
        let entry = EntryRaw {
            exec_index: exec_index.ok_or(Miss::Other)?,
            client: client.ok_or(Miss::Other)?,
            request_id: request_id.ok_or(Miss::Other)?,
            f: f.ok_or(Miss::Other)?,
            value,
            kind: kind.ok_or(Miss::Other)?,
        };
        Ok((entry, c.pos()))
    }

    /// Fingerprint of everything but the exec index.
    fn fingerprint(&self) -> u64 {
        let mut h = Fx::default();
        h.write_u64(self.client);
        h.write_u64(self.request_id);
        h.write(self.f.as_bytes());
        h.write_u64(self.kind as u64);
        let v = &self.value.fields;
        for name in [&v.from, &v.to, &v.account] {
            h.write_u64(0xff);
            if let Some(n) = name {
                h.write(n.as_bytes());
            }
        }
        for n in [v.amount, v.from_balance, v.to_balance, v.balance] {
            // Presence apart from the value, so no number stands for "absent".
            h.write_u64(u64::from(n.is_some()));
            h.write_u64(n.unwrap_or(0) as u64);
        }
        if let Some(e) = v.error {
            h.write(e.0.as_bytes());
        }
        if let Some(b) = &v.balances {
            // Order-independent: replicas may list accounts in any order.
            let sum = b.0.iter().fold(0u64, |acc, (k, v)| {
                let mut e = Fx::default();
                e.write(k.as_bytes());
                e.write_u64(*v as u64);
                acc.wrapping_add(e.finish())
            });
            h.write_u64(sum);
        }
        h.finish()
    }
}

impl Doc for Loader {
    fn top_field<R: Read>(&mut self, key: &str, sc: &mut Scanner<R>) -> Result<(), ScanError> {
        match key {
            "positions" => {
                let word: String = sc.value().map_err(within("positions"))?;
                self.data.positions = Positions::parse(&word).ok_or_else(|| {
                    sc.error(format!(
                        "field `positions`: expected \"unique\" or \"shared_reads\", found {word:?}"
                    ))
                })?;
            }
            "base_revision" => {
                let base: u64 = sc.value().map_err(within("base_revision"))?;
                self.data.base_revision = Some(base);
            }
            _ => {
                sc.value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn begin_node(&mut self, name: &str) -> Result<(), String> {
        if self.data.nodes.len() >= EMPTY as usize {
            return Err("too many replicas".into());
        }
        self.data.nodes.push(NodeState {
            name: name.to_string(),
            balances: None,
            error: None,
            first: 0,
            last: 0,
            entries: 0,
        });
        self.node = self.data.nodes.len() - 1;
        Ok(())
    }

    fn node_field<R: Read>(&mut self, key: &str, sc: &mut Scanner<R>) -> Result<(), ScanError> {
        match key {
            "balances" => {
                let b: Option<BTreeMap<String, i64>> = sc.value().map_err(within("balances"))?;
                self.set_balances(self.node, b);
            }
            "error" => {
                let e: Option<String> = sc.value().map_err(within("error"))?;
                self.data.nodes[self.node].error = e;
            }
            _ => {
                sc.value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    /// The entry is used where it was parsed: it is a few hundred bytes, and moving
    /// it through wrappers showed up as memmove in profiles.
    fn entry(&mut self, window: &[u8], eof: bool) -> Attempt {
        let node = self.node;
        if let Some(n) = self.confirm_verbatim(node, window) {
            return Attempt::Done(n);
        }
        match EntryRaw::fast(window) {
            Ok((entry, n)) => return self.attempt(node, &entry, window, n),
            Err(Miss::End) if !eof => return Attempt::NeedMore,
            Err(_) => {}
        }
        match parse_one::<EntryRaw<'_>>(window, eof) {
            Ok(Some((entry, n))) => self.attempt(node, &entry, window, n),
            Ok(None) => Attempt::NeedMore,
            Err(m) => Attempt::Fail(m),
        }
    }
}

impl Loader {
    fn set_balances(&mut self, node: usize, b: Option<BTreeMap<String, i64>>) {
        let d = &mut self.data;
        d.nodes[node].balances = b.map(|b| {
            let mut v: Vec<(Acct, i64)> =
                b.iter().map(|(k, v)| (d.accounts.intern(k), *v)).collect();
            v.sort_unstable();
            v
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::final_state::{FinalState, NodeFinal, EMPTY_SLOT};

    #[test]
    fn entries_as_written_read_as_in_any_order_and_others_are_left_to_it() {
        let written = [
            r#"{"exec_index":1,"client":1,"request_id":1,"f":"transfer","value":{"amount":1,"from":"D","from_balance":9,"to":"A","to_balance":11},"type":"ok"},{"exec_index":2"#,
            r#"{"exec_index":4,"client":6,"request_id":1,"f":"transfer","value":{"amount":9,"error":"insufficient-funds","from":"E","to":"D"},"type":"fail"}]"#,
            r#"{"exec_index":5,"client":3,"request_id":1,"f":"read","value":{"account":"E","balance":7},"type":"ok"}"#,
        ];
        for w in written {
            let (a, n) = EntryRaw::as_written(w.as_bytes()).expect(w);
            let (b, m) = EntryRaw::any_order(w.as_bytes()).unwrap();
            assert_eq!((format!("{a:?}"), n), (format!("{b:?}"), m), "{w}");
            assert_eq!(a.fingerprint(), b.fingerprint());
        }
        let others = [
            r#"{"client":1,"exec_index":1,"request_id":1,"f":"read","value":null,"type":"ok"}"#,
            r#"{"exec_index":1, "client":1,"request_id":1,"f":"read","value":null,"type":"ok"}"#,
            r#"{"exec_index":1,"client":1,"request_id":1,"f":"read","value":null,"type":"ok","x":1}"#,
            r#"{"exec_index":1,"client":1,"request_id":1,"f":"read","value":null,"ty"#,
        ];
        for o in others {
            assert!(EntryRaw::as_written(o.as_bytes()).is_none(), "{o}");
        }
        assert_eq!(
            EntryRaw::fast(others[3].as_bytes()).err(),
            Some(Miss::End),
            "a cut-off entry still asks for more"
        );
        assert!(EntryRaw::fast(others[2].as_bytes()).is_ok());
    }

    fn log_with(execs: &[u64]) -> AgreedLog {
        let mut log = AgreedLog::default();
        for &e in execs {
            log.make_room(e, 1_000).unwrap();
            let slot = Slot {
                node: 0,
                ..EMPTY_SLOT
            };
            log.lay(e, &slot, SlotMarks::default());
        }
        log
    }

    /// Three replicas log exec index 1: n2 in the very bytes of n1 (confirmed
    /// unparsed), n3 in another key order (parsed, the same entry) and n4 with another
    /// balance (a divergence, whichever path it took).
    #[test]
    fn verbatim_copies_agree_and_any_other_text_is_compared_in_full() {
        let same = r#"{"exec_index":1,"client":3,"request_id":7,"f":"read","value":{"account":"A","balance":5},"type":"ok"}"#;
        let reordered = r#"{"exec_index":1,"type":"ok","request_id":7,"client":3,"f":"read","value":{"balance":5,"account":"A"}}"#;
        let other = same.replace(r#""balance":5"#, r#""balance":6"#);
        let node = |e: &str| format!(r#"{{"balances":null,"executed":[{e}]}}"#);
        let text = format!(
            r#"{{"nodes":{{"n1":{},"n2":{},"n3":{},"n4":{}}}}}"#,
            node(same),
            node(same),
            node(reordered),
            node(&other)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.json");
        std::fs::write(&path, text).unwrap();
        let data = load_log(&path, Accounts::default()).unwrap().unwrap();
        assert!(data.nodes.iter().all(|n| (n.first, n.last) == (1, 1)));
        let result = data.agreement.finish(Some(&data.nodes));
        assert_eq!(result.anomaly_count, 1, "{:?}", result.anomalies);
        assert!(
            result.anomalies[0].message.contains("n4"),
            "{:?}",
            result.anomalies
        );
    }

    #[test]
    fn gaps_count_from_the_origin() {
        let mut log = log_with(&[3, 4, 6]);
        assert_eq!(log.first_gap(), Some(1), "unique positions start at 1");
        log.start_after(None);
        assert_eq!(log.first_gap(), Some(5), "from the first entry");
        log.start_after(Some(1));
        assert_eq!(log.first_gap(), Some(2), "the first write is missing");
        log.start_after(Some(2));
        assert_eq!(log.first_gap(), Some(5));
        let mut full = log_with(&[3, 4]);
        full.start_after(Some(2));
        assert_eq!(full.first_gap(), None);
        full.start_after(Some(3));
        assert_eq!(
            full.first_gap(),
            None,
            "entries before the origin are not gaps"
        );
    }

    #[test]
    fn positions_are_written_only_when_given_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("final.json");
        let state = FinalState {
            nodes: [("n1".to_string(), NodeFinal::unreachable("down"))].into(),
        };
        state.write(&path).unwrap();
        let plain = std::fs::read_to_string(&path).unwrap();
        assert!(plain.starts_with("{\"nodes\""), "{plain}");
        assert_eq!(
            FinalState::load_positions(&path).unwrap(),
            Positions::Unique
        );
        state
            .write_with_positions(&path, Some(Positions::SharedReads), Some(7))
            .unwrap();
        assert_eq!(
            FinalState::load_positions(&path).unwrap(),
            Positions::SharedReads
        );
        assert_eq!(FinalState::load(&path).unwrap(), state);
        let loaded = load_log(&path, Accounts::default()).unwrap().unwrap();
        assert_eq!(loaded.positions, Positions::SharedReads);
        assert_eq!(loaded.base_revision, Some(7));
    }
}
