//! `final.json`: what the harness fetched from every replica after the cluster healed.
//!
//! ```json
//! {"nodes": {"n1": {"balances": {"A": 10, ...} | null,
//!                   "executed": [{"exec_index": 1, "client": 3, "request_id": 7,
//!                                 "f": "transfer", "value": {...}, "type": "ok"}, ...],
//!                   "error": null | "why it could not be fetched"}}}
//! ```
//!
//! [`FinalState`] is the owned form the harness fills and writes. The checker does not
//! load it that way: a long run's logs hold millions of entries per replica, so
//! `load_log` (in `crate::run::final_load`) walks the file through a sliding window
//! (`crate::load::window`), parses each entry in place (the fast path of `crate::load::fastjson`,
//! else serde), turns it into a compact `Slot` and lays it over the agreed log at once,
//! comparing it with what other replicas put there (agreement). Memory is one slot per
//! exec index (16 bytes packed, and 16 more while the file is read), whatever the
//! number of replicas. Replicas usually write an entry in the very same bytes: such a copy of an
//! entry already laid is recognized by its text's length and fingerprint and never
//! parsed, which is most of the file.
//!
//! A replica's list is contiguous but may start after 1 (it installed a checkpoint);
//! the agreed log is the union of all lists, and indices no replica covers stay empty
//! (checks that need them are `unknown`).
//!
//! A top-level `"positions"` says what an exec index means ([`Positions`]). Absent or
//! `"unique"`: every command, reads included, takes a position of its own and is in
//! the log (the replica). `"shared_reads"`: only writes (applied transfers) take
//! positions and are in the log; a read or a failed transfer observes the state after
//! a write and shares its position (etcd, whose revision counts writes only). There the
//! initial balances are written at a position of their own, `"base_revision"` (when
//! absent: the one before the first logged write), and the log must cover every
//! position after it.
//!
//! The contract, field by field, with the sharded and etcd shapes: docs/final-json.md.

use crate::history::EventType;
pub use crate::model::replica_name;
pub(crate) use crate::model::NodeState;
use crate::model::{Acct, Cmd};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What an exec index means, from final.json's top-level `"positions"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// Every command takes a position of its own and is in the log (the replica).
    #[default]
    Unique,
    /// Writes take unique positions and only they are in the log; reads and failed
    /// transfers observe the state after a write and share its position (etcd's
    /// revisions).
    SharedReads,
}

impl Positions {
    /// The word used in final.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Positions::Unique => "unique",
            Positions::SharedReads => "shared_reads",
        }
    }

    /// The default: every command has a position of its own.
    pub fn is_unique(&self) -> bool {
        *self == Positions::Unique
    }

    pub(crate) fn parse(word: &str) -> Option<Positions> {
        match word {
            "unique" => Some(Positions::Unique),
            "shared_reads" => Some(Positions::SharedReads),
            _ => None,
        }
    }
}

/// The whole of final.json, owned. Its `"positions"` is not a field here (adding one
/// would break writers that build this struct literally): see
/// [`FinalState::write_with_positions`] and [`FinalState::load_positions`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    /// Replica name (e.g. `n1`) to what was fetched from it.
    pub nodes: BTreeMap<String, NodeFinal>,
}

/// What was fetched from one replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFinal {
    /// Account to balance, or `None` when it could not be fetched.
    pub balances: Option<BTreeMap<String, i64>>,
    /// The replica's executed log, contiguous and increasing in `exec_index`.
    #[serde(default)]
    pub executed: Vec<ExecutedEntry>,
    /// Why the replica could not be fetched, if it could not.
    #[serde(default)]
    pub error: Option<String>,
}

/// One executed command with its result, as the replica recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutedEntry {
    pub exec_index: u64,
    /// The client id, which is the history's `process` number.
    pub client: u64,
    pub request_id: u64,
    pub f: String,
    /// The same shape as an `ok`/`fail` completion's value in the history.
    pub value: Value,
    /// `ok`, or `fail` for a command that executed as a no-op (insufficient funds).
    #[serde(rename = "type")]
    pub kind: EventType,
}

impl NodeFinal {
    /// A replica that could not be fetched.
    pub fn unreachable(error: impl Into<String>) -> NodeFinal {
        NodeFinal {
            balances: None,
            executed: Vec::new(),
            error: Some(error.into()),
        }
    }
}

impl FinalState {
    /// Reads a whole final.json into memory (for tools and tests; the checks stream).
    pub fn load(path: impl AsRef<Path>) -> Result<FinalState, FinalError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| FinalError::io(path, source))?;
        serde_json::from_reader(BufReader::new(file)).map_err(|e| FinalError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes final.json.
    pub fn write(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.write_with_positions(path, None, None)
    }

    /// Writes final.json with its top-level `"positions"` and `"base_revision"` (the
    /// initial balances' position under shared positions), each left out when `None`,
    /// so replica runs stay as they were.
    pub fn write_with_positions(
        &self,
        path: impl AsRef<Path>,
        positions: Option<Positions>,
        base_revision: Option<u64>,
    ) -> io::Result<()> {
        #[derive(Serialize)]
        struct WithPositions<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            positions: Option<Positions>,
            #[serde(skip_serializing_if = "Option::is_none")]
            base_revision: Option<u64>,
            nodes: &'a BTreeMap<String, NodeFinal>,
        }
        let mut out = BufWriter::new(File::create(path)?);
        let doc = WithPositions {
            positions,
            base_revision,
            nodes: &self.nodes,
        };
        serde_json::to_writer(&mut out, &doc)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// Reads only the top-level `"positions"` of a final.json (unique when absent).
    pub fn load_positions(path: impl AsRef<Path>) -> Result<Positions, FinalError> {
        #[derive(Deserialize)]
        struct Top {
            #[serde(default)]
            positions: Positions,
        }
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| FinalError::io(path, source))?;
        let top: Top =
            serde_json::from_reader(BufReader::new(file)).map_err(|e| FinalError::Malformed {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(top.positions)
    }
}

/// Errors reading final.json.
#[derive(Debug, thiserror::Error)]
pub enum FinalError {
    // Prints its cause rather than chaining it: `{:#}` would say it twice.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
}

impl FinalError {
    pub(crate) fn io(path: &Path, cause: io::Error) -> FinalError {
        FinalError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Marks an empty slot (no replica covers it).
pub(crate) const EMPTY: u16 = u16::MAX;

/// One agreed log entry, compact: one is kept per exec index, so its size bounds the
/// memory a long run needs (the client is a number into [`AgreedLog::client`]'s table).
/// The log stores it packed in 16 bytes ([`Slots`]).
/// What loading compares replicas' entries by is beside it ([`SlotMarks`]), dropped once
/// every replica's entries are laid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) client: u32,
    pub request_id: u64,
    /// The command, flat (see [`Slot::cmd`]).
    pub(crate) kind: u8,
    pub(crate) accounts: [Acct; 2],
    pub(crate) amount: i64,
    /// The replica whose entry this is.
    pub node: u16,
    /// Recorded `ok` (else `fail`, a no-op).
    pub ok: bool,
}

/// The log's slots, packed: 16 bytes a slot where [`Slot`] takes 32. A slot with a
/// number that does not fit (a request id past 32 bits, an amount past 31, more than
/// 65,536 clients or 256 accounts) is kept whole beside them, so nothing is lost.
#[derive(Debug, Default)]
struct Slots {
    packed: Vec<PackedSlot>,
    /// The slots that do not fit, numbered by their packed `request_id`.
    wide: Vec<Slot>,
}

/// [`Slot`] in 16 bytes; see [`Slots`].
#[derive(Debug, Clone, Copy)]
struct PackedSlot {
    /// The request id, or the slot's number in [`Slots::wide`] under [`WIDE_SLOT`].
    request_id: u32,
    amount: i32,
    client: u16,
    /// Always the slot's own (so an empty slot is seen without unpacking).
    node: u16,
    accounts: [u8; 2],
    kind: u8,
    ok: bool,
}

const _: () = assert!(
    std::mem::size_of::<PackedSlot>() <= 16,
    "a slot per exec index"
);

/// In [`PackedSlot::kind`]: the slot is in [`Slots::wide`] (commands' kinds are 0 to 3).
const WIDE_SLOT: u8 = 0x80;

const EMPTY_PACKED: PackedSlot = PackedSlot {
    request_id: 0,
    amount: 0,
    client: 0,
    node: EMPTY,
    accounts: [0; 2],
    kind: 3,
    ok: false,
};

impl PackedSlot {
    fn narrow(s: &Slot) -> Option<PackedSlot> {
        let acct = |a: Acct| u8::try_from(a).ok();
        Some(PackedSlot {
            request_id: u32::try_from(s.request_id).ok()?,
            amount: i32::try_from(s.amount).ok()?,
            client: u16::try_from(s.client).ok()?,
            node: s.node,
            accounts: [acct(s.accounts[0])?, acct(s.accounts[1])?],
            kind: (s.kind & WIDE_SLOT == 0).then_some(s.kind)?,
            ok: s.ok,
        })
    }

    fn unpack(&self) -> Slot {
        Slot {
            client: u32::from(self.client),
            request_id: u64::from(self.request_id),
            kind: self.kind,
            accounts: self.accounts.map(Acct::from),
            amount: i64::from(self.amount),
            node: self.node,
            ok: self.ok,
        }
    }
}

impl Slots {
    fn len(&self) -> usize {
        self.packed.len()
    }

    fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Whether no replica covers slot `i` (or there is none).
    fn empty_at(&self, i: usize) -> bool {
        self.packed.get(i).is_none_or(|p| p.node == EMPTY)
    }

    #[inline]
    fn get(&self, i: usize) -> Option<Slot> {
        let p = self.packed.get(i)?;
        Some(if p.kind & WIDE_SLOT == 0 {
            p.unpack()
        } else {
            self.wide[p.request_id as usize]
        })
    }

    fn set(&mut self, i: usize, slot: &Slot) {
        let p = &mut self.packed[i];
        if p.kind & WIDE_SLOT != 0 {
            self.wide[p.request_id as usize] = *slot;
            p.node = slot.node;
        } else if let Some(n) = PackedSlot::narrow(slot) {
            *p = n;
        } else {
            *p = PackedSlot {
                request_id: self.wide.len() as u32,
                kind: WIDE_SLOT,
                node: slot.node,
                ..EMPTY_PACKED
            };
            self.wide.push(*slot);
        }
    }
}

/// How a slot's entry is recognized while the replicas' logs are laid over each other:
/// needed only then, so kept apart from the [`Slot`]s and dropped after
/// ([`AgreedLog::laid`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SlotMarks {
    /// Fingerprint of the whole entry (command and recorded result), for comparing
    /// replicas without keeping their entries.
    pub hash: u64,
    /// The entry's exact text, fingerprinted (`text_mark` in `crate::run::final_load`): a
    /// replica that wrote the very same bytes agrees without its entry being parsed.
    pub text: u64,
}

pub(crate) const EMPTY_SLOT: Slot = Slot {
    client: 0,
    request_id: 0,
    kind: 3,
    accounts: [0, 0],
    amount: 0,
    node: EMPTY,
    ok: false,
};

impl Slot {
    /// The command the entry holds.
    pub fn cmd(&self) -> Cmd {
        Cmd::unpack(self.kind, self.accounts, self.amount)
    }

    fn set_cmd(&mut self, cmd: Cmd) {
        let p = cmd.pack();
        (self.kind, self.accounts, self.amount) = (p.kind, p.accounts, p.amount);
    }
}

/// The union of the replicas' executed logs: `slots[i]` is exec index `base + i`.
#[derive(Debug, Default)]
pub(crate) struct AgreedLog {
    base: u64,
    slots: Slots,
    /// Beside `slots`, one per slot, while the replicas' logs are being laid; empty
    /// after [`AgreedLog::laid`].
    marks: Vec<SlotMarks>,
    /// The first exec index the log must cover; 0 stands for 1 (see
    /// [`AgreedLog::start_after`]).
    origin: u64,
    /// The client process numbers the slots name, in order of first appearance.
    pub(crate) clients: Vec<u64>,
}

impl AgreedLog {
    /// The entry at `exec`, if some replica covers it.
    pub fn get(&self, exec: u64) -> Option<Slot> {
        let i = exec.checked_sub(self.base)?;
        self.at_index(usize::try_from(i).ok()?)
    }

    fn at_index(&self, i: usize) -> Option<Slot> {
        if self.slots.empty_at(i) {
            return None;
        }
        self.slots.get(i)
    }

    /// How the entry at `exec` is recognized, while the logs are being laid.
    pub(crate) fn marks(&self, exec: u64) -> Option<SlotMarks> {
        self.get(exec)?;
        let i = exec - self.base;
        self.marks.get(i as usize).copied()
    }

    /// Every replica's log is laid: the marks are not needed any more (they are a third
    /// of the log's memory), nor the room kept for growth.
    pub(crate) fn laid(&mut self) {
        self.marks = Vec::new();
        self.slots.packed.shrink_to_fit();
    }

    /// The client process number of a slot's entry.
    pub fn client(&self, slot: &Slot) -> u64 {
        self.client_process(slot.client)
    }

    /// The process number of the log's client numbered `c` (see [`AgreedLog::client_number`]).
    pub fn client_process(&self, c: u32) -> u64 {
        self.clients.get(c as usize).copied().unwrap_or(u64::MAX)
    }

    /// Slots are numbered from 0 at the first exec index the log holds.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The slot numbered `at` (see [`AgreedLog::slot_count`]), if some replica covers it.
    pub fn at(&self, at: u32) -> Option<Slot> {
        self.at_index(at as usize)
    }

    /// The exec index of the slot numbered `at`.
    pub fn exec_of(&self, at: u32) -> u64 {
        self.base + u64::from(at)
    }

    /// How many distinct clients the slots name (the table [`Slot`]s number into).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The table number of the slot's client (dense, from 0).
    pub fn client_number(&self, slot: &Slot) -> u32 {
        slot.client
    }

    /// The last exec index any replica reached (0 if none).
    pub fn last(&self) -> u64 {
        if self.slots.is_empty() {
            0
        } else {
            self.base + self.slots.len() as u64 - 1
        }
    }

    /// The first exec index the log covers (0 if none).
    pub fn first(&self) -> u64 {
        self.iter().next().map_or(0, |(e, _)| e)
    }

    /// With shared positions the log holds writes only, and the first of them follows
    /// the initial state's position `base`, whatever number that is (unknown: the log
    /// is taken to start at its first entry).
    pub fn start_after(&mut self, base: Option<u64>) {
        self.origin = match base {
            Some(b) => b.saturating_add(1),
            None => self.first(),
        };
    }

    /// The first exec index the log must cover.
    pub fn origin(&self) -> u64 {
        self.origin.max(1)
    }

    /// The first exec index in `origin()..=last()` no replica covers.
    pub fn first_gap(&self) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let origin = self.origin();
        if self.base > origin {
            return Some(origin);
        }
        self.slots
            .packed
            .iter()
            .skip((origin - self.base) as usize)
            .position(|s| s.node == EMPTY)
            .map(|i| origin + i as u64)
    }

    /// Entries with their exec indices, skipping empty slots.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Slot)> + '_ {
        (0..self.slots.len()).filter_map(move |i| Some((self.base + i as u64, self.at_index(i)?)))
    }

    pub fn remap_accounts(&mut self, map: &[Acct]) {
        for i in 0..self.slots.len() {
            let Some(mut s) = self.slots.get(i) else {
                continue;
            };
            let mut cmd = s.cmd();
            cmd.remap(map);
            s.set_cmd(cmd);
            self.slots.set(i, &s);
        }
    }

    /// The slot at `exec` (its `node` is [`EMPTY`] if none is laid there yet).
    pub(crate) fn slot_at(&self, exec: u64) -> Slot {
        exec.checked_sub(self.base)
            .and_then(|i| self.slots.get(usize::try_from(i).ok()?))
            .unwrap_or(EMPTY_SLOT)
    }

    /// Lays `slot` and its marks at `exec`, which [`AgreedLog::make_room`] made room for.
    pub(crate) fn lay(&mut self, exec: u64, slot: &Slot, marks: SlotMarks) {
        let i = (exec - self.base) as usize;
        self.slots.set(i, slot);
        self.marks[i] = marks;
    }

    /// Grows the log to hold `exec`. `limit` bounds how far the log may grow, so a
    /// corrupt index cannot make it allocate without end.
    pub(crate) fn make_room(&mut self, exec: u64, limit: u64) -> Result<(), String> {
        if self.slots.is_empty() {
            self.base = exec;
        }
        let (lo, hi) = (self.base.min(exec), self.last().max(exec));
        if hi - lo >= limit {
            return Err(format!(
                "exec_index {exec} is implausibly far from the other entries ({}..={})",
                self.base,
                self.last()
            ));
        }
        if exec < self.base {
            let more = (self.base - exec) as usize;
            self.slots
                .packed
                .splice(0..0, std::iter::repeat_n(EMPTY_PACKED, more));
            self.marks
                .splice(0..0, std::iter::repeat_n(SlotMarks::default(), more));
            self.base = exec;
        }
        let i = (exec - self.base) as usize;
        if i >= self.slots.len() {
            grow(&mut self.slots.packed, i + 1);
            grow(&mut self.marks, i + 1);
            self.slots.packed.resize(i + 1, EMPTY_PACKED);
            self.marks.resize(i + 1, SlotMarks::default());
        }
        Ok(())
    }
}

/// Room in `v` for `n` items, grown by an eighth at a time rather than doubled: the
/// slots and their marks are the largest thing held while final.json is read, and
/// a doubled vector can leave nearly half of it allocated and unused at the peak. (A
/// vector this large is its own mapping, which the allocator grows in place.)
fn grow<T>(v: &mut Vec<T>, n: usize) {
    if n > v.capacity() {
        let more = (n - v.len()).max(v.len() / 8).max(4096);
        v.reserve_exact(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(request_id: u64, amount: i64, to: Acct) -> Slot {
        let mut s = Slot {
            client: 1,
            request_id,
            node: 2,
            ok: true,
            ..EMPTY_SLOT
        };
        s.set_cmd(Cmd::Transfer {
            from: 0,
            to,
            amount,
        });
        s
    }

    fn same(a: Option<Slot>, b: &Slot) -> bool {
        format!("{a:?}") == format!("{:?}", Some(b))
    }

    #[test]
    fn slots_come_back_exactly_whether_they_fit_or_not_and_empty_ones_stay_empty() {
        let mut log = AgreedLog::default();
        let fits = slot(7, 3, 1);
        let wide = [slot(u64::MAX, 3, 1), slot(7, i64::MIN, 1), slot(7, 3, 999)];
        for e in [5, 9, 2, 3] {
            log.make_room(e, 100).unwrap();
        }
        log.lay(5, &fits, SlotMarks::default());
        log.lay(2, &wide[0], SlotMarks::default());
        log.lay(3, &wide[1], SlotMarks::default());
        log.lay(9, &wide[2], SlotMarks::default());
        assert!(same(log.get(5), &fits));
        assert!(same(log.get(2), &wide[0]));
        assert!(same(log.get(3), &wide[1]));
        assert!(same(log.get(9), &wide[2]));
        assert!(log.get(4).is_none() && log.get(1).is_none() && log.get(10).is_none());
        assert_eq!(log.first_gap(), Some(1));
        let laid: Vec<u64> = log.iter().map(|(e, _)| e).collect();
        assert_eq!(laid, [2, 3, 5, 9]);
        // Renumbering accounts reaches the slots kept whole as well.
        log.remap_accounts(&[0, 4]);
        assert_eq!(
            log.get(3).map(|s| s.cmd()),
            Some(Cmd::Transfer {
                from: 0,
                to: 4,
                amount: i64::MIN
            })
        );
        assert_eq!(log.get(9).map(|s| s.accounts), Some([0, 999]));
    }
}
