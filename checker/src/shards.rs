//! The sharded bank: its additions to the run format, and the model its checks read.
//!
//! A run is sharded when run.toml has `[[shards]]` tables; then the history's
//! completions carry `positions` (shard id to position) instead of one `exec_index`,
//! and final.json's replicas each name their `shard` and hold that shard's log, in
//! which a cross-shard transfer appears as `prepare` and `commit`/`abort` entries of a
//! transaction. The format is written down in docs/sharded.md.
//!
//! The classic path (`crate::ops`, `crate::final_state`) is built for ten-million-event
//! histories of one log; a sharded run is streamed by `crate::run::shard_load` (final.json:
//! one agreed [`ShardLog`] per shard, replicas compared as they are read) and
//! `crate::run::sharded` (the history, one pass, no event held) into the owned values
//! here. Values are held as an [`EntryValue`] (a transfer's, a failed transfer's, a
//! read's or a `read_all`'s fields inline, account names and error words as 2-byte
//! [`Interned`] numbers, any other shape as written) and functions as an 8-byte
//! [`FnName`], so an operation ([`Op`], 168 bytes) costs a small fixed size; an agreed
//! log holds each entry packed in 40 bytes (see [`ShardLog`]) and gives it back as a
//! [`LogEntry`] (88) to the check reading it; a replay's balances are a [`Bank`]. The
//! operations are found by (client, request) through an [`OpIndex`]. The properties are in
//! `checks::{atomicity, bank_conservation, shard_agreement, serializability}` and read
//! [`Sharded`] from here; `crate::run::sharded` loads a run into it and runs them.

#![doc = include_str!("../../docs/sharded.md")]

use crate::history::EventType;
use crate::run_params::{RunParams, RunParamsError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Shard ids are 1-based.
pub type ShardId = u32;

impl ShardEntry {
    /// Whether this entry changed a balance on its shard.
    pub fn applies(&self) -> bool {
        match self.txn {
            Some(_) => self.applied.unwrap_or(0) != 0,
            None => self.f == "transfer" && self.kind == EventType::Ok,
        }
    }
}

/// An operation's function in 8 bytes, compared by pointer: the bank's three point at
/// static names, and any other name at its one copy, made the first time it is met
/// and kept for the life of the process (a run names a handful). An enum of the three
/// and a boxed other name took 16 bytes (a box leaves room for one more variant only).
#[derive(Clone, Copy)]
pub(crate) struct FnName(&'static FnText);

/// The text behind an [`FnName`].
#[derive(Debug)]
pub(crate) struct FnText(&'static str);

static TRANSFER: FnText = FnText("transfer");
static READ: FnText = FnText("read");
static READ_ALL: FnText = FnText("read_all");

/// The other function names met so far.
static OTHER_FNS: std::sync::Mutex<Option<HashMap<&'static str, &'static FnText>>> =
    std::sync::Mutex::new(None);

impl FnName {
    pub const TRANSFER: FnName = FnName(&TRANSFER);
    pub const READ: FnName = FnName(&READ);
    pub const READ_ALL: FnName = FnName(&READ_ALL);

    pub fn new(f: &str) -> FnName {
        match f {
            "transfer" => FnName::TRANSFER,
            "read" => FnName::READ,
            "read_all" => FnName::READ_ALL,
            other => {
                let mut all = OTHER_FNS.lock().unwrap_or_else(|e| e.into_inner());
                let all = all.get_or_insert_with(HashMap::new);
                if let Some(&t) = all.get(other) {
                    return FnName(t);
                }
                let text: &'static str = Box::leak(other.to_string().into_boxed_str());
                let t: &'static FnText = Box::leak(Box::new(FnText(text)));
                all.insert(text, t);
                FnName(t)
            }
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.0 .0
    }
}

impl PartialEq for FnName {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for FnName {}

impl std::fmt::Debug for FnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::ops::Deref for FnName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for FnName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for FnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a shard's agreed log as the checks read it: a [`ShardEntry`] with its
/// function as an [`FnName`], in 88 bytes: the transaction id and `applied` are packed
/// beside the small fields (an `Option<TxnId>` takes 32 bytes and an `Option<i64>` 16).
/// A [`ShardLog`] holds it packed smaller still and makes one when it is read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogEntry {
    pub exec_index: u64,
    pub client: u64,
    pub request_id: u64,
    pub value: EntryValue,
    /// `applied` when `has_applied`, else 0.
    applied: i64,
    /// A transaction id that does not name the entry's own request (or names
    /// coordinator 0), whole.
    txn_other: Option<Box<TxnId>>,
    pub f: FnName,
    /// The coordinator of a transaction that names the entry's own request; 0 for
    /// none (shard ids are 1-based).
    txn_own: ShardId,
    pub kind: EventType,
    pub phase: Option<Phase>,
    pub vote: Option<Vote>,
    has_applied: bool,
}

impl LogEntry {
    /// The transaction this entry belongs to, if any.
    pub fn txn(&self) -> Option<TxnId> {
        if self.txn_own != 0 {
            return Some(TxnId {
                coordinator: self.txn_own,
                client: self.client,
                request_id: self.request_id,
            });
        }
        self.txn_other.as_deref().copied()
    }

    /// On transaction entries: the amount applied to this shard's account.
    pub fn applied(&self) -> Option<i64> {
        self.has_applied.then_some(self.applied)
    }

    /// [`ShardEntry`]'s fields, the transaction's as an `Option<TxnId>`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        (exec_index, client, request_id): (u64, u64, u64),
        f: FnName,
        value: EntryValue,
        kind: EventType,
        txn: Option<TxnId>,
        phase: Option<Phase>,
        vote: Option<Vote>,
        applied: Option<i64>,
    ) -> LogEntry {
        let (txn_own, txn_other) = match txn {
            None => (0, None),
            Some(t) if (t.client, t.request_id) == (client, request_id) && t.coordinator != 0 => {
                (t.coordinator, None)
            }
            Some(t) => (0, Some(Box::new(t))),
        };
        LogEntry {
            exec_index,
            client,
            request_id,
            value,
            applied: applied.unwrap_or(0),
            txn_other,
            f,
            txn_own,
            kind,
            phase,
            vote,
            has_applied: applied.is_some(),
        }
    }

    /// Whether this entry changed a balance on its shard.
    pub fn applies(&self) -> bool {
        match self.txn() {
            Some(_) => self.applied != 0,
            None => self.f == "transfer" && self.kind == EventType::Ok,
        }
    }
}

impl From<ShardEntry> for LogEntry {
    fn from(e: ShardEntry) -> LogEntry {
        LogEntry::new(
            (e.exec_index, e.client, e.request_id),
            FnName::new(&e.f),
            e.value,
            e.kind,
            e.txn,
            e.phase,
            e.vote,
            e.applied,
        )
    }
}

/// One `[[shards]]` table of run.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub id: ShardId,
    pub accounts: Vec<String>,
    pub nodes: Vec<String>,
}

/// Reads run.toml's `[[shards]]`; `Ok(None)` when there are none (a classic run).
pub fn shard_specs(
    params: &RunParams,
    path: &Path,
) -> Result<Option<Vec<ShardSpec>>, RunParamsError> {
    let Some(v) = params.table.get("shards") else {
        return Ok(None);
    };
    let bad = |message: String| RunParamsError {
        path: path.to_path_buf(),
        field: Some("shards".into()),
        message,
    };
    let specs: Vec<ShardSpec> = v.clone().try_into().map_err(|e: toml::de::Error| {
        bad(format!(
            "expected [[shards]] tables with id, accounts and nodes: {}",
            e.message()
        ))
    })?;
    let mut owner: HashMap<&str, ShardId> = HashMap::new();
    for s in &specs {
        if s.id == 0 {
            return Err(bad("shard ids are 1-based; found id 0".into()));
        }
        if specs.iter().filter(|o| o.id == s.id).count() > 1 {
            return Err(bad(format!("shard id {} appears twice", s.id)));
        }
        for a in &s.accounts {
            if let Some(other) = owner.insert(a, s.id) {
                return Err(bad(format!(
                    "account {a} is in shards {other} and {}",
                    s.id
                )));
            }
        }
    }
    Ok(Some(specs))
}

/// A transaction's id: its coordinator shard and the client request it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub coordinator: ShardId,
    pub client: u64,
    pub request_id: u64,
}

/// The phase a transaction entry records on one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepare,
    Commit,
    Abort,
}

/// A participant's vote at prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Yes,
    No,
}

/// One entry of a shard's executed log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// 1-based position in this shard's execution order.
    pub exec_index: u64,
    pub client: u64,
    pub request_id: u64,
    pub f: String,
    pub value: EntryValue,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Set on the entries of a cross-shard transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<TxnId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// On `prepare` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<Vote>,
    /// On transaction entries: the amount applied to this shard's account (negative
    /// for the debit on the source shard, positive for the credit on the destination,
    /// 0 when nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<i64>,
}

/// What was fetched from one replica of a sharded bank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardNode {
    pub shard: ShardId,
    pub balances: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    pub executed: Vec<ShardEntry>,
    #[serde(default)]
    pub error: Option<String>,
}

/// final.json of a sharded run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardedFinal {
    pub nodes: BTreeMap<String, ShardNode>,
}

impl ShardedFinal {
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::from)?;
        std::fs::write(path, text + "\n")
    }
}

/// A log entry's `value`, held compactly: a transfer's (with the balances an `ok` one
/// reports) takes 32 bytes and no allocation, where a `serde_json::Value` map takes
/// about 800; any other shape is kept as it was written. A million-entry final.json is
/// most of a sharded run's memory, so this is what keeps it in proportion to the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntryValue {
    Transfer(TransferValue),
    Read(ReadValue),
    Snapshot(SnapshotValue),
    FailedTransfer(FailedTransferValue),
    Other(Box<Value>),
}

/// `{"amount", "error", "from", "to"}`: a transfer that failed, with its error word
/// (up to 23 bytes), inline; a `Value` map of it takes about 600 bytes, and refusals
/// for insufficient funds are a good part of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedTransferValue {
    amount: i64,
    error: ErrorWord,
    from: AccountName,
    to: AccountName,
}

impl FailedTransferValue {
    /// Like [`TransferValue::fast`], for a failed transfer's value.
    pub(crate) fn fast(text: &[u8]) -> Option<FailedTransferValue> {
        let mut c = crate::load::fastjson::Cur::new(text);
        let v = FailedTransferValue::read(&mut c)?;
        c.at_end().then_some(v)
    }

    /// The value at `c` (which it takes), as [`FailedTransferValue::fast`] reads a whole text.
    pub(crate) fn read(c: &mut crate::load::fastjson::Cur<'_>) -> Option<FailedTransferValue> {
        use crate::load::fastjson::{once, put, Cur, Miss};
        let (mut amount, mut error, mut from, mut to) = (None, None, None, None);
        let mut seen = 0u16;
        let name = |c: &mut Cur<'_>| AccountName::inline(c.str()?).ok_or(Miss::Other);
        c.object_hinted(crate::load::fastjson::value_key_hint, |c, k| {
            let bit = match k {
                b"amount" => put(&mut amount, c.i64()?, 0),
                b"error" => put(
                    &mut error,
                    ErrorWord::inline(c.str()?).ok_or(Miss::Other)?,
                    1,
                ),
                b"from" => put(&mut from, name(c)?, 2),
                b"to" => put(&mut to, name(c)?, 3),
                _ => return Err(Miss::Other),
            };
            once(&mut seen, bit)
        })
        .ok()?;
        Some(FailedTransferValue {
            amount: amount?,
            error: error?,
            from: from?,
            to: to?,
        })
    }
}

/// An error word of up to 23 bytes, interned (longer ones keep the value a `Value`).
pub type ErrorWord = Interned<23>;

/// `{"balances": {"A": 10, ...}}`: a `read_all`'s answer (or its part on one shard),
/// held as (account, balance) pairs sorted by name, 16 bytes an account where a
/// `Value` map takes several hundred.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SnapshotFields", into = "SnapshotFields")]
pub struct SnapshotValue {
    balances: Vec<(AccountName, i64)>,
}

/// How a [`SnapshotValue`] is written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFields {
    balances: BTreeMap<String, i64>,
}

impl SnapshotValue {
    /// Like [`TransferValue::fast`], for a `read_all`'s value.
    pub(crate) fn fast(text: &[u8]) -> Option<SnapshotValue> {
        let mut c = crate::load::fastjson::Cur::new(text);
        let v = SnapshotValue::read(&mut c)?;
        c.at_end().then_some(v)
    }

    /// The value at `c` (which it takes), as [`SnapshotValue::fast`] reads a whole text.
    pub(crate) fn read(c: &mut crate::load::fastjson::Cur<'_>) -> Option<SnapshotValue> {
        use crate::load::fastjson::Miss;
        let mut balances = Vec::new();
        c.object(|c, k| {
            if k != b"balances" || !balances.is_empty() {
                return Err(Miss::Other);
            }
            c.object(|c, name| {
                let name = std::str::from_utf8(name).map_err(|_| Miss::Other)?;
                let name = AccountName::inline(name).ok_or(Miss::Other)?;
                balances.push((name, c.i64()?));
                Ok(())
            })
        })
        .ok()?;
        if balances.is_empty() {
            return None;
        }
        balances.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        if balances.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(SnapshotValue { balances })
    }
}

impl TryFrom<SnapshotFields> for SnapshotValue {
    type Error = String;
    fn try_from(f: SnapshotFields) -> Result<Self, String> {
        let balances = f
            .balances
            .into_iter()
            .map(|(a, b)| Ok((AccountName::try_from(a)?, b)));
        Ok(SnapshotValue {
            balances: balances.collect::<Result<_, String>>()?,
        })
    }
}

impl From<SnapshotValue> for SnapshotFields {
    fn from(v: SnapshotValue) -> Self {
        let balances = v
            .balances
            .into_iter()
            .map(|(a, b)| (a.as_str().to_string(), b));
        SnapshotFields {
            balances: balances.collect(),
        }
    }
}

/// `{"account"}` and, on an `ok`, `balance`: a read's value, inline (a `Value` map of
/// it takes about 300 bytes); fields in the order a `Value` map writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadValue {
    account: AccountName,
    #[serde(
        default,
        deserialize_with = "some_i64",
        skip_serializing_if = "Option::is_none"
    )]
    balance: Option<i64>,
}

impl ReadValue {
    /// Like [`TransferValue::fast`], for a read's value.
    pub(crate) fn fast(text: &[u8]) -> Option<ReadValue> {
        let mut c = crate::load::fastjson::Cur::new(text);
        let v = ReadValue::read(&mut c)?;
        c.at_end().then_some(v)
    }

    /// The value at `c` (which it takes), as [`ReadValue::fast`] reads a whole text.
    pub(crate) fn read(c: &mut crate::load::fastjson::Cur<'_>) -> Option<ReadValue> {
        use crate::load::fastjson::{once, put, Miss};
        let (mut account, mut balance) = (None, None);
        let mut seen = 0u16;
        c.object_hinted(crate::load::fastjson::value_key_hint, |c, k| {
            let bit = match k {
                b"account" => put(
                    &mut account,
                    AccountName::inline(c.str()?).ok_or(Miss::Other)?,
                    0,
                ),
                b"balance" => put(&mut balance, c.i64()?, 1),
                _ => return Err(Miss::Other),
            };
            once(&mut seen, bit)
        })
        .ok()?;
        Some(ReadValue {
            account: account?,
            balance,
        })
    }
}

/// `{"from", "to", "amount"}` and, on an `ok`, `from_balance` and `to_balance`; fields
/// are in the order a `Value` map writes them, so final.json reads back byte-identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferValue {
    /// A byte of no meaning whose unused values let [`EntryValue`] keep its variant
    /// there (8 bytes less an entry).
    #[serde(skip)]
    shape: TransferShape,
    amount: i64,
    from: AccountName,
    #[serde(default, skip_serializing_if = "Balance::is_none")]
    from_balance: Balance,
    to: AccountName,
    #[serde(default, skip_serializing_if = "Balance::is_none")]
    to_balance: Balance,
}

/// See [`TransferValue`]'s `shape`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
enum TransferShape {
    #[default]
    Transfer = 1,
}

/// An optional balance in 8 bytes (an `Option<i64>` takes 16): `i64::MIN` is none, and
/// a balance of exactly `i64::MIN` keeps its value a `Value`. A present field must be
/// an integer (`null` leaves the value in its written shape too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Balance(i64);

impl Balance {
    const NONE: Balance = Balance(i64::MIN);

    pub fn get(self) -> Option<i64> {
        (self != Balance::NONE).then_some(self.0)
    }

    fn is_none(&self) -> bool {
        *self == Balance::NONE
    }

    fn some(b: i64) -> Result<Balance, crate::load::fastjson::Miss> {
        (b != i64::MIN)
            .then_some(Balance(b))
            .ok_or(crate::load::fastjson::Miss::Other)
    }
}

impl Default for Balance {
    fn default() -> Self {
        Balance::NONE
    }
}

impl TryFrom<i64> for Balance {
    type Error = String;
    fn try_from(b: i64) -> Result<Self, String> {
        Balance::some(b).map_err(|_| format!("a balance of {b} is not held compactly"))
    }
}

impl From<Balance> for i64 {
    fn from(b: Balance) -> i64 {
        b.0
    }
}

impl TransferValue {
    /// Parses `{"amount", "from", "to"}` (with `from_balance` and `to_balance`, in any
    /// order) without serde; `None` for anything else, which serde then reads (maybe
    /// as [`EntryValue::Other`]), so the fast path changes speed, never the result.
    pub(crate) fn fast(text: &[u8]) -> Option<TransferValue> {
        let mut c = crate::load::fastjson::Cur::new(text);
        let v = TransferValue::read(&mut c)?;
        c.at_end().then_some(v)
    }

    /// The value at `c` (which it takes), as [`TransferValue::fast`] reads a whole text.
    pub(crate) fn read(c: &mut crate::load::fastjson::Cur<'_>) -> Option<TransferValue> {
        use crate::load::fastjson::{once, put, Cur};
        let (mut amount, mut from, mut to, mut from_balance, mut to_balance) =
            (None, None, None, None, None);
        let mut seen = 0u16;
        let name = |c: &mut Cur<'_>| {
            AccountName::inline(c.str()?).ok_or(crate::load::fastjson::Miss::Other)
        };
        c.object_hinted(crate::load::fastjson::value_key_hint, |c, k| {
            let bit = match k {
                b"amount" => put(&mut amount, c.i64()?, 0),
                b"from" => put(&mut from, name(c)?, 1),
                b"to" => put(&mut to, name(c)?, 2),
                b"from_balance" => put(&mut from_balance, Balance::some(c.i64()?)?, 3),
                b"to_balance" => put(&mut to_balance, Balance::some(c.i64()?)?, 4),
                _ => return Err(crate::load::fastjson::Miss::Other),
            };
            once(&mut seen, bit)
        })
        .ok()?;
        Some(TransferValue {
            shape: TransferShape::Transfer,
            amount: amount?,
            from: from?,
            from_balance: from_balance.unwrap_or_default(),
            to: to?,
            to_balance: to_balance.unwrap_or_default(),
        })
    }
}

/// A present field must be a number (`null` leaves the value in its written shape).
fn some_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
}

/// An account name of up to 15 bytes, interned (longer names keep the value a `Value`).
pub type AccountName = Interned<15>;

/// A short string of up to `N` bytes, interned for the process: 2 bytes (its number)
/// where the text inline took `N + 1`, compared by number. A sharded run names a
/// handful of accounts and error words millions of times; the interner keeps at most
/// [`MAX_INTERNED`] strings (each leaked once, for the life of the process), and a
/// string met after that keeps its value a `Value`, as a long one does.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Interned<const N: usize>(u16);

/// The most strings the process interns (a run names a few dozen).
pub const MAX_INTERNED: usize = 1 << 16;

/// The interned strings by number, each set once and read without a lock.
static INTERNED_TEXT: [std::sync::OnceLock<&'static str>; MAX_INTERNED] =
    [const { std::sync::OnceLock::new() }; MAX_INTERNED];

/// The interned strings by text, for interning.
static INTERNED: std::sync::Mutex<Option<HashMap<&'static str, u16>>> = std::sync::Mutex::new(None);

thread_local! {
    /// This thread's copy of what it has looked up, so a lookup takes no lock.
    static SEEN: std::cell::RefCell<crate::model::FxMap<&'static str, u16>> =
        Default::default();
    /// This thread's latest lookups, one per [`recent_slot`]: a run names a handful of
    /// accounts and error words millions of times, and a hit here spares the map's
    /// hashing and probing (interning was 3.4% of a sharded check's instructions).
    static RECENT: [std::cell::Cell<Option<(&'static str, u16)>>; RECENT_SLOTS] =
        const { [const { std::cell::Cell::new(None) }; RECENT_SLOTS] };
}

/// Slots of `RECENT`.
const RECENT_SLOTS: usize = 64;

/// Where `s` is kept among the latest lookups: by its length and end bytes, which
/// tell a run's account names (`A`, `B`, `A26`) apart.
fn recent_slot(s: &str) -> usize {
    let b = s.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    let (first, last) = (
        usize::from(first.unwrap_or(0)),
        usize::from(last.unwrap_or(0)),
    );
    (first * 31 + last * 7 + b.len()) % RECENT_SLOTS
}

fn intern(s: &str) -> Option<u16> {
    let slot = recent_slot(s);
    let recent = RECENT.with(|r| r[slot].get());
    if let Some((_, id)) = recent.filter(|&(text, _)| text == s) {
        return Some(id);
    }
    let id = intern_seen(s)?;
    if let Some(&text) = INTERNED_TEXT[usize::from(id)].get() {
        RECENT.with(|r| r[slot].set(Some((text, id))));
    }
    Some(id)
}

/// [`intern`] past the latest lookups.
fn intern_seen(s: &str) -> Option<u16> {
    if let Some(id) = SEEN.with(|m| m.borrow().get(s).copied()) {
        return Some(id);
    }
    let (text, id) = {
        let mut all = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
        let all = all.get_or_insert_with(HashMap::new);
        match all.get_key_value(s) {
            Some((&text, &id)) => (text, id),
            None => {
                let id = u16::try_from(all.len()).ok()?;
                let text: &'static str = Box::leak(s.to_string().into_boxed_str());
                INTERNED_TEXT[usize::from(id)].set(text).ok()?;
                all.insert(text, id);
                (text, id)
            }
        }
    };
    SEEN.with(|m| m.borrow_mut().insert(text, id));
    Some(id)
}

impl<const N: usize> Interned<N> {
    pub fn as_str(&self) -> &'static str {
        // Only numbers handed out by `intern`, after it set their text, exist.
        INTERNED_TEXT[usize::from(self.0)]
            .get()
            .copied()
            .unwrap_or("")
    }

    /// Its number in the order the process interned it (dense, from 0).
    pub fn id(&self) -> u16 {
        self.0
    }

    /// `None` when longer than `N` bytes (or the interner is full).
    pub(crate) fn inline(s: &str) -> Option<Interned<N>> {
        if s.len() > N {
            return None;
        }
        intern(s).map(Interned)
    }
}

impl<const N: usize> PartialEq for Interned<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<const N: usize> Eq for Interned<N> {}

impl<const N: usize> std::fmt::Debug for Interned<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl<const N: usize> TryFrom<String> for Interned<N> {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Interned::inline(&s).ok_or_else(|| format!("{s:?} is longer than {N} bytes"))
    }
}

impl<const N: usize> From<Interned<N>> for String {
    fn from(a: Interned<N>) -> String {
        a.as_str().to_string()
    }
}

impl From<Value> for EntryValue {
    /// Takes the compact shape exactly when reading the same JSON from final.json would.
    fn from(v: Value) -> Self {
        if let Ok(t) = TransferValue::deserialize(&v) {
            return EntryValue::Transfer(t);
        }
        if let Ok(r) = ReadValue::deserialize(&v) {
            return EntryValue::Read(r);
        }
        if let Ok(b) = SnapshotValue::deserialize(&v) {
            return EntryValue::Snapshot(b);
        }
        match FailedTransferValue::deserialize(&v) {
            Ok(t) => EntryValue::FailedTransfer(t),
            Err(_) => EntryValue::Other(Box::new(v)),
        }
    }
}

impl EntryValue {
    /// A transfer's accounts and amount.
    pub fn transfer(&self) -> Option<(&str, &str, i64)> {
        match self {
            EntryValue::Transfer(t) => Some((t.from.as_str(), t.to.as_str(), t.amount)),
            EntryValue::FailedTransfer(t) => Some((t.from.as_str(), t.to.as_str(), t.amount)),
            EntryValue::Read(_) | EntryValue::Snapshot(_) => None,
            EntryValue::Other(v) => transfer_parts(v),
        }
    }

    /// A string field, e.g. `error`.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        match self {
            EntryValue::Transfer(t) => match key {
                "from" => Some(t.from.as_str()),
                "to" => Some(t.to.as_str()),
                _ => None,
            },
            EntryValue::FailedTransfer(t) => match key {
                "from" => Some(t.from.as_str()),
                "to" => Some(t.to.as_str()),
                "error" => Some(t.error.as_str()),
                _ => None,
            },
            EntryValue::Read(r) => (key == "account").then(|| r.account.as_str()),
            EntryValue::Snapshot(_) => None,
            EntryValue::Other(v) => v.get(key).and_then(Value::as_str),
        }
    }

    /// An integer field, e.g. `amount` or `from_balance`.
    pub fn i64_field(&self, key: &str) -> Option<i64> {
        match self {
            EntryValue::Transfer(t) => match key {
                "amount" => Some(t.amount),
                "from_balance" => t.from_balance.get(),
                "to_balance" => t.to_balance.get(),
                _ => None,
            },
            EntryValue::FailedTransfer(t) => (key == "amount").then_some(t.amount),
            EntryValue::Read(r) => r.balance.filter(|_| key == "balance"),
            EntryValue::Snapshot(_) => None,
            EntryValue::Other(v) => v.get(key).and_then(Value::as_i64),
        }
    }

    /// The value as written, when it is not a transfer's.
    pub fn json(&self) -> Option<&Value> {
        match self {
            EntryValue::Other(v) => Some(v),
            _ => None,
        }
    }

    /// A `read_all` answer's `balances`, account by account (`None` for a balance
    /// that is not an integer), when the value has a `balances` object.
    pub fn balances(&self) -> Option<Vec<(&str, Option<i64>)>> {
        match self {
            EntryValue::Snapshot(b) => Some(
                b.balances
                    .iter()
                    .map(|(a, v)| (a.as_str(), Some(*v)))
                    .collect(),
            ),
            EntryValue::Other(v) => {
                let map = v.get("balances")?.as_object()?;
                Some(map.iter().map(|(a, v)| (a.as_str(), v.as_i64())).collect())
            }
            EntryValue::Transfer(_) | EntryValue::Read(_) | EntryValue::FailedTransfer(_) => None,
        }
    }

    /// The value as JSON, for reports and for tests that edit it.
    pub fn to_value(&self) -> Value {
        match self {
            EntryValue::Transfer(t) => serde_json::to_value(t).unwrap_or(Value::Null),
            EntryValue::Read(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            EntryValue::Snapshot(b) => serde_json::to_value(b).unwrap_or(Value::Null),
            EntryValue::FailedTransfer(t) => serde_json::to_value(t).unwrap_or(Value::Null),
            EntryValue::Other(v) => (**v).clone(),
        }
    }
}

impl Default for EntryValue {
    fn default() -> Self {
        EntryValue::Other(Box::new(Value::Null))
    }
}

impl std::fmt::Display for EntryValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_value().fmt(f)
    }
}

/// A transfer's accounts and amount, from a `value`.
pub(crate) fn transfer_parts(v: &Value) -> Option<(&str, &str, i64)> {
    Some((
        v.get("from")?.as_str()?,
        v.get("to")?.as_str()?,
        v.get("amount")?.as_i64()?,
    ))
}

/// One history line as the sharded checks read it: parsed, used once while the
/// history streams (`crate::run::sharded`), then dropped. Serde reads it through
/// [`crate::history::Event`]; `crate::run::shard_load::fast_event` without serde.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "crate::history::Event")]
pub(crate) struct ShardEvent {
    pub index: u64,
    pub time_ns: u64,
    pub process: crate::history::Process,
    pub kind: EventType,
    pub f: FnName,
    pub value: EntryValue,
    pub request_id: Option<u64>,
    pub positions: Option<ShardPositions>,
}

impl From<crate::history::Event> for ShardEvent {
    fn from(e: crate::history::Event) -> Self {
        ShardEvent {
            index: e.index,
            time_ns: e.time_ns,
            process: e.process,
            kind: e.kind,
            f: FnName::new(&e.f),
            value: e.value.into(),
            request_id: e.request_id,
            positions: e.positions.map(ShardPositions::from),
        }
    }
}

/// What the real-time order needs of a client's history line, in history order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientStep {
    pub request_id: u64,
    pub index: u64,
    pub client: u64,
    pub invoke: bool,
}

/// The client steps of a history in 4 bytes a line (a [`ClientStep`] takes 32): a line
/// that invoked an operation or gave the answer recorded in it is held as that
/// operation's number and whether it invoked; any other line (an answer no invocation
/// waits for) whole, aside.
#[derive(Debug, Default)]
pub(crate) struct ClientSteps {
    /// `op | INVOKED`, or `ASIDE | k` for `aside[k]`.
    steps: Vec<u32>,
    aside: Vec<ClientStep>,
}

/// A step's flags, and the largest operation number held inline.
const INVOKED: u32 = 1 << 31;
const ASIDE: u32 = 1 << 30;
const STEP_NUMBER: u32 = ASIDE - 1;

/// One step as [`ClientSteps`] gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Operation `ops[op]` was invoked here.
    Invoked(usize),
    /// `ops[op]`'s recorded answer is this line.
    Answered(usize),
    /// Any other client line.
    Other(ClientStep),
}

impl ClientSteps {
    /// The invocation of `ops[op]`.
    pub fn invoked(&mut self, op: usize, step: ClientStep) {
        self.push(op, INVOKED, step);
    }

    /// The answer recorded in `ops[op]`.
    pub fn answered(&mut self, op: usize, step: ClientStep) {
        self.push(op, 0, step);
    }

    /// A line that is neither.
    pub fn other(&mut self, step: ClientStep) {
        self.push(usize::MAX, 0, step);
    }

    fn push(&mut self, op: usize, flag: u32, step: ClientStep) {
        match u32::try_from(op).ok().filter(|&o| o <= STEP_NUMBER) {
            Some(o) => self.steps.push(o | flag),
            None => {
                let k = self.aside.len() as u32;
                self.steps.push(ASIDE | k.min(STEP_NUMBER));
                self.aside.push(step);
            }
        }
    }

    pub fn shrink_to_fit(&mut self) {
        self.steps.shrink_to_fit();
        self.aside.shrink_to_fit();
    }

    /// The steps in history order.
    pub fn iter(&self) -> impl Iterator<Item = Step> + '_ {
        let mut aside = self.aside.iter();
        self.steps.iter().map(move |&s| {
            let n = (s & STEP_NUMBER) as usize;
            if s & INVOKED != 0 {
                Step::Invoked(n)
            } else if s & ASIDE != 0 {
                // Aside steps are taken in order (a count past the field's bound only
                // saturates the number).
                Step::Other(aside.next().copied().unwrap_or(ClientStep {
                    request_id: 0,
                    index: 0,
                    client: 0,
                    invoke: false,
                }))
            } else {
                Step::Answered(n)
            }
        })
    }
}

/// One client operation: its invocation and (maybe) its completion.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub client: u64,
    pub request_id: u64,
    pub f: FnName,
    /// The invocation's value.
    pub value: EntryValue,
    pub invoke_index: u64,
    /// When it was invoked (`time_ns` of its invocation).
    pub invoke_ns: u64,
    pub complete: Option<Completion>,
}

#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub index: u64,
    pub time_ns: u64,
    pub kind: EventType,
    pub value: EntryValue,
    pub positions: ShardPositions,
}

/// An answer's positions (shard id to position), sorted by shard: the one or two an
/// answer usually names inline, more in a vector (a vector of one or two takes a heap
/// block besides itself, and a `BTreeMap` a 200-byte node).
#[derive(Debug, Clone)]
pub(crate) enum ShardPositions {
    Inline(u8, [(ShardId, u64); 2]),
    Heap(Vec<(ShardId, u64)>),
}

type PositionRef = fn(&(ShardId, u64)) -> (&ShardId, &u64);

impl Default for ShardPositions {
    fn default() -> Self {
        ShardPositions::Inline(0, [(0, 0); 2])
    }
}

impl PartialEq for ShardPositions {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ShardPositions {}

impl ShardPositions {
    fn as_slice(&self) -> &[(ShardId, u64)] {
        match self {
            ShardPositions::Inline(n, items) => &items[..usize::from(*n)],
            ShardPositions::Heap(v) => v,
        }
    }

    pub fn get(&self, shard: &ShardId) -> Option<&u64> {
        self.as_slice()
            .iter()
            .find(|(s, _)| s == shard)
            .map(|(_, p)| p)
    }

    pub fn contains_key(&self, shard: &ShardId) -> bool {
        self.get(shard).is_some()
    }

    pub fn insert(&mut self, shard: ShardId, position: u64) {
        let at = self.as_slice().binary_search_by_key(&shard, |&(s, _)| s);
        match (self, at) {
            (ShardPositions::Inline(_, items), Ok(i)) => items[i].1 = position,
            (ShardPositions::Heap(v), Ok(i)) => v[i].1 = position,
            (ShardPositions::Inline(n, items), Err(i)) if usize::from(*n) < items.len() => {
                items.copy_within(i..usize::from(*n), i + 1);
                items[i] = (shard, position);
                *n += 1;
            }
            (this, Err(i)) => {
                let mut v = this.as_slice().to_vec();
                v.insert(i, (shard, position));
                *this = ShardPositions::Heap(v);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn shrink_to_fit(&mut self) {
        if let ShardPositions::Heap(v) = self {
            v.shrink_to_fit();
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &ShardId> {
        self.as_slice().iter().map(|(s, _)| s)
    }

    pub fn iter(&self) -> std::iter::Map<std::slice::Iter<'_, (ShardId, u64)>, PositionRef> {
        fn split(e: &(ShardId, u64)) -> (&ShardId, &u64) {
            (&e.0, &e.1)
        }
        self.as_slice().iter().map(split as PositionRef)
    }
}

impl<'a> IntoIterator for &'a ShardPositions {
    type Item = (&'a ShardId, &'a u64);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (ShardId, u64)>, PositionRef>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<BTreeMap<ShardId, u64>> for ShardPositions {
    fn from(m: BTreeMap<ShardId, u64>) -> Self {
        let mut out = ShardPositions::default();
        for (s, p) in m {
            out.insert(s, p);
        }
        out.shrink_to_fit();
        out
    }
}

impl Op {
    /// History indices of its events.
    pub fn indices(&self) -> Vec<u64> {
        let mut v = vec![self.invoke_index];
        v.extend(self.complete.as_ref().map(|c| c.index));
        v
    }

    /// A few words naming it, e.g. `client 3's transfer A→E of 2 (request 7)`.
    pub fn describe(&self) -> String {
        let what = match (self.f.as_str(), self.value.transfer()) {
            ("transfer", Some((from, to, amount))) => format!("transfer {from}→{to} of {amount}"),
            ("read", _) => format!("read of {}", self.value.str_field("account").unwrap_or("?")),
            (f, _) => f.to_string(),
        };
        format!(
            "client {}'s {what} (request {})",
            self.client, self.request_id
        )
    }
}

/// What is kept of one replica of a sharded bank once its log has been laid.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardNodeState {
    pub name: String,
    pub shard: ShardId,
    pub balances: Option<BTreeMap<String, i64>>,
    pub error: Option<String>,
    /// The first and last exec index it logged (0 when none) and how many entries.
    pub first: u64,
    pub last: u64,
    pub entries: u64,
    /// Its stretches of consecutive indices (one unless its list jumps), to name the
    /// replica that gave an agreed entry.
    pub runs: Vec<(u64, u64)>,
}

impl ShardNodeState {
    /// `n1 (shard 2)`.
    pub fn label(&self) -> String {
        format!("{} (shard {})", self.name, self.shard)
    }

    pub fn holds(&self, exec: u64) -> bool {
        self.runs.iter().any(|&(a, b)| (a..=b).contains(&exec))
    }
}

/// One shard's agreed log: its entries by exec index, in fixed chunks of slots from the
/// lowest index laid (a `BTreeMap` filled in order leaves its nodes half empty, about
/// twice the memory, and one growing vector holds up to twice its entries while it
/// moves). Gaps are empty slots.
///
/// An entry is held as a [`Packed`] slot of 40 bytes (a [`LogEntry`] takes 88): its
/// exec index is the slot's, and what only agreement needs (a transfer's and a read's
/// balances, a `read_all`'s snapshot) is held beside the slot while the replicas are
/// laid and dropped by [`ShardLog::shrink`]: afterwards an entry reads back with those
/// parts empty (no check after agreement reads them). An entry that does not pack
/// (another function, a value of another shape, a large client or request number, a
/// transaction naming another request) is kept whole, aside.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardLog {
    /// The exec index of the first slot.
    start: u64,
    /// Slots `k * LOG_CHUNK..(k + 1) * LOG_CHUNK` from `start`; every chunk but the last
    /// is full.
    chunks: Vec<Vec<Packed>>,
    /// The entries kept whole.
    aside: Vec<LogEntry>,
    /// Beside each slot while the logs are laid: the mark of the text its entry was
    /// read from (`crate::run::shard_load`; 0 for none) and its value's balances.
    /// One flat vector (not chunks): given back whole, it leaves the allocator no
    /// holes that the operations built after cannot reuse.
    laying: Vec<Laying>,
    /// While the logs are laid, the snapshots of `read_all` entries one after the
    /// other (a slot holds where its own starts and how many accounts it has).
    snapshot_parts: Vec<(AccountName, i64)>,
    /// Slots in all.
    len: usize,
}

/// Slots per chunk of a [`ShardLog`].
const LOG_CHUNK: usize = 4096;

/// A log entry's exec index, request, transaction and phase: what most passes over
/// every entry of a log need ([`ShardLog::briefs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Brief {
    pub exec_index: u64,
    pub client: u64,
    pub request_id: u64,
    pub txn: Option<TxnId>,
    pub phase: Option<Phase>,
    pub f: FnName,
    /// [`LogEntry::applies`].
    pub applies: bool,
}

impl Brief {
    fn of(e: &LogEntry) -> Brief {
        Brief {
            exec_index: e.exec_index,
            client: e.client,
            request_id: e.request_id,
            txn: e.txn(),
            phase: e.phase,
            f: e.f,
            applies: e.applies(),
        }
    }
}

/// What a slot holds only while the logs are laid.
#[derive(Debug, Clone, Copy)]
struct Laying {
    mark: u64,
    /// A transfer's `from_balance` and `to_balance`, or a read's `balance` first.
    balances: [Balance; 2],
}

const NOT_LAID: Laying = Laying {
    mark: 0,
    balances: [Balance::NONE; 2],
};

/// A [`LogEntry`] in 40 bytes (see [`ShardLog`]).
#[derive(Debug, Clone, Copy)]
struct Packed {
    /// Client and request ([`pack_request`]); for an entry aside, its place there.
    key: u64,
    amount: i64,
    applied: i64,
    /// The coordinator of a transaction naming the entry's own request; 0 for none.
    txn_own: ShardId,
    /// A transfer's accounts.
    from: u16,
    to: u16,
    /// A failed transfer's error word, or a read's account.
    word: u16,
    /// One of the `F_` codes.
    f: u8,
    kind: u8,
    /// 0 for none, else the phase's or vote's place in its enum plus one.
    phase: u8,
    vote: u8,
    /// One of the `V_` codes.
    value: u8,
    has_applied: bool,
}

const F_EMPTY: u8 = 0;
const F_TRANSFER: u8 = 1;
const F_READ: u8 = 2;
const F_READ_ALL: u8 = 3;
const F_ASIDE: u8 = u8::MAX;

const V_NULL: u8 = 0;
const V_TRANSFER: u8 = 1;
const V_FAILED: u8 = 2;
const V_READ: u8 = 3;
const V_SNAPSHOT: u8 = 4;

const KINDS: [EventType; 4] = [
    EventType::Invoke,
    EventType::Ok,
    EventType::Fail,
    EventType::Info,
];
const PHASES: [Phase; 3] = [Phase::Prepare, Phase::Commit, Phase::Abort];
const VOTES: [Vote; 2] = [Vote::Yes, Vote::No];

/// `x`'s place in `all` plus one; 0 for none.
fn code<T: PartialEq + Copy>(all: &[T], x: Option<T>) -> u8 {
    x.and_then(|x| all.iter().position(|&y| y == x))
        .map_or(0, |i| i as u8 + 1)
}

/// What [`code`] coded.
fn decode<T: Copy>(all: &[T], c: u8) -> Option<T> {
    all.get(usize::from(c.checked_sub(1)?)).copied()
}

impl Packed {
    /// What [`Brief::of`] gives for the entry unpacked at `exec`.
    fn brief(&self, exec: u64) -> Brief {
        let (client, request_id) = (self.key >> 40, self.key & ((1 << 40) - 1));
        let txn = (self.txn_own != 0).then_some(TxnId {
            coordinator: self.txn_own,
            client,
            request_id,
        });
        let f = match self.f {
            F_TRANSFER => FnName::TRANSFER,
            F_READ => FnName::READ,
            _ => FnName::READ_ALL,
        };
        let kind = decode(&KINDS, self.kind).unwrap_or(EventType::Ok);
        let applies = match txn {
            Some(_) => self.applied != 0,
            None => f == FnName::TRANSFER && kind == EventType::Ok,
        };
        Brief {
            exec_index: exec,
            client,
            request_id,
            txn,
            phase: decode(&PHASES, self.phase),
            f,
            applies,
        }
    }

    const EMPTY: Packed = Packed {
        key: 0,
        amount: 0,
        applied: 0,
        txn_own: 0,
        from: 0,
        to: 0,
        word: 0,
        f: F_EMPTY,
        kind: 0,
        phase: 0,
        vote: 0,
        value: V_NULL,
        has_applied: false,
    };

    fn aside(at: usize) -> Packed {
        Packed {
            key: at as u64,
            f: F_ASIDE,
            ..Packed::EMPTY
        }
    }

    /// `e` packed, with what is held only while laid; `Err(e)` when it does not pack
    /// exactly. Every field of a [`LogEntry`] is either held or checked to be the one
    /// value [`Packed::unpack`] gives back.
    #[allow(clippy::result_large_err)]
    fn pack(e: LogEntry) -> Result<(Packed, Laying, Option<SnapshotValue>), LogEntry> {
        let Some(key) = pack_request(e.client, e.request_id) else {
            return Err(e);
        };
        let f = if e.f == FnName::TRANSFER {
            F_TRANSFER
        } else if e.f == FnName::READ {
            F_READ
        } else if e.f == FnName::READ_ALL {
            F_READ_ALL
        } else {
            return Err(e);
        };
        if e.txn_other.is_some() {
            return Err(e);
        }
        let mut p = Packed {
            key,
            applied: e.applied,
            txn_own: e.txn_own,
            f,
            kind: code(&KINDS, Some(e.kind)),
            phase: code(&PHASES, e.phase),
            vote: code(&VOTES, e.vote),
            has_applied: e.has_applied,
            ..Packed::EMPTY
        };
        let mut laying = NOT_LAID;
        let snapshot = match e.value {
            EntryValue::Transfer(t) => {
                (p.value, p.amount, p.from, p.to) = (V_TRANSFER, t.amount, t.from.0, t.to.0);
                laying.balances = [t.from_balance, t.to_balance];
                None
            }
            EntryValue::FailedTransfer(t) => {
                (p.value, p.amount, p.from, p.to) = (V_FAILED, t.amount, t.from.0, t.to.0);
                p.word = t.error.0;
                None
            }
            EntryValue::Read(ref r) => {
                let balance = match r.balance {
                    None => Balance::NONE,
                    Some(b) => match Balance::some(b) {
                        Ok(b) => b,
                        Err(_) => return Err(e),
                    },
                };
                (p.value, p.word) = (V_READ, r.account.0);
                laying.balances[0] = balance;
                None
            }
            EntryValue::Snapshot(b) => match u16::try_from(b.balances.len()) {
                Ok(n) => {
                    (p.value, p.word) = (V_SNAPSHOT, n);
                    Some(b)
                }
                Err(_) => {
                    let value = EntryValue::Snapshot(b);
                    return Err(LogEntry { value, ..e });
                }
            },
            EntryValue::Other(ref v) if **v == Value::Null => None,
            EntryValue::Other(_) => return Err(e),
        };
        Ok((p, laying, snapshot))
    }

    /// The entry at `exec`, with what was held while laid (`None` once it is dropped:
    /// balances none and snapshots empty).
    fn unpack(
        &self,
        exec: u64,
        laying: Option<&Laying>,
        snapshot: Option<&[(AccountName, i64)]>,
    ) -> LogEntry {
        let balances = laying.map_or([Balance::NONE; 2], |l| l.balances);
        let value = match self.value {
            V_TRANSFER => EntryValue::Transfer(TransferValue {
                shape: TransferShape::Transfer,
                amount: self.amount,
                from: Interned(self.from),
                from_balance: balances[0],
                to: Interned(self.to),
                to_balance: balances[1],
            }),
            V_FAILED => EntryValue::FailedTransfer(FailedTransferValue {
                amount: self.amount,
                error: Interned(self.word),
                from: Interned(self.from),
                to: Interned(self.to),
            }),
            V_READ => EntryValue::Read(ReadValue {
                account: Interned(self.word),
                balance: balances[0].get(),
            }),
            V_SNAPSHOT => EntryValue::Snapshot(SnapshotValue {
                balances: snapshot.map_or_else(Vec::new, <[_]>::to_vec),
            }),
            _ => EntryValue::default(),
        };
        let f = match self.f {
            F_TRANSFER => FnName::TRANSFER,
            F_READ => FnName::READ,
            _ => FnName::READ_ALL,
        };
        LogEntry {
            exec_index: exec,
            client: self.key >> 40,
            request_id: self.key & ((1 << 40) - 1),
            value,
            applied: self.applied,
            txn_other: None,
            f,
            txn_own: self.txn_own,
            kind: decode(&KINDS, self.kind).unwrap_or(EventType::Ok),
            phase: decode(&PHASES, self.phase),
            vote: decode(&VOTES, self.vote),
            has_applied: self.has_applied,
        }
    }
}

impl ShardLog {
    pub fn get(&self, exec: &u64) -> Option<LogEntry> {
        self.at_slot(exec.checked_sub(self.start)?)
    }

    /// The slot `exec` is laid in.
    pub fn slot_of(&self, exec: u64) -> Option<u64> {
        exec.checked_sub(self.start)
    }

    /// The entry in slot `slot`.
    pub fn at_slot(&self, slot: u64) -> Option<LogEntry> {
        let i = usize::try_from(slot).ok()?;
        let p = self.chunks.get(i / LOG_CHUNK)?.get(i % LOG_CHUNK)?;
        self.unpack(i, p)
    }

    /// The entry packed as `p` in slot `i`.
    fn unpack(&self, i: usize, p: &Packed) -> Option<LogEntry> {
        match p.f {
            F_EMPTY => None,
            F_ASIDE => self.aside.get(p.key as usize).cloned(),
            _ => {
                let exec = self.start + i as u64;
                let laying = self.laying.get(i);
                let snapshot = match p.value {
                    V_SNAPSHOT => {
                        let at = p.amount as usize;
                        self.snapshot_parts.get(at..at + usize::from(p.word))
                    }
                    _ => None,
                };
                Some(p.unpack(exec, laying, snapshot))
            }
        }
    }

    /// What most passes over every entry look at, in exec-index order, read from the
    /// packed slots without making each entry whole (which costs several times as much).
    pub fn briefs(&self) -> impl Iterator<Item = Brief> + '_ {
        let slots = self.chunks.iter().flatten().enumerate();
        slots.filter_map(|(i, p)| self.brief(i, p))
    }

    /// The briefs of the entries kept whole (see [`ShardLog`]): only these can have a
    /// client of 2^24 or more or a request of 2^40 or more ([`pack_request`]), so a
    /// check that packs those numbers asks only these whether they all fit.
    pub fn whole_briefs(&self) -> impl Iterator<Item = Brief> + '_ {
        self.aside.iter().map(Brief::of)
    }

    /// The [`Brief`] of the entry in slot `slot`.
    pub fn brief_at(&self, slot: u64) -> Option<Brief> {
        let i = usize::try_from(slot).ok()?;
        self.brief(i, self.chunks.get(i / LOG_CHUNK)?.get(i % LOG_CHUNK)?)
    }

    /// The [`Brief`] of the entry packed as `p` in slot `i`.
    fn brief(&self, i: usize, p: &Packed) -> Option<Brief> {
        match p.f {
            F_EMPTY => None,
            F_ASIDE => self.aside.get(p.key as usize).map(Brief::of),
            _ => Some(p.brief(self.start + i as u64)),
        }
    }

    /// The entries in exec-index order (the checks read [`ShardLog::briefs`], or
    /// make whole only the entries they need).
    #[cfg(test)]
    pub fn values(&self) -> impl Iterator<Item = LogEntry> + '_ {
        let slots = self.chunks.iter().flatten().enumerate();
        slots.filter_map(|(i, p)| self.unpack(i, p))
    }

    /// The highest exec index laid.
    pub fn last_index(&self) -> Option<u64> {
        let (k, i) = self.chunks.iter().enumerate().rev().find_map(|(k, c)| {
            let i = c.iter().rposition(|p| p.f != F_EMPTY)?;
            Some((k, i))
        })?;
        Some(self.start + (k * LOG_CHUNK + i) as u64)
    }

    /// The mark of the text the entry at `exec` was read from (0 when none).
    pub fn mark(&self, exec: u64) -> u64 {
        let Some(i) = exec
            .checked_sub(self.start)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return 0;
        };
        self.laying.get(i).map_or(0, |l| l.mark)
    }

    /// Gives back the room kept for growth and what is held only while laid, once
    /// every replica's log is laid.
    pub fn shrink(&mut self) {
        self.laying = Vec::new();
        self.snapshot_parts = Vec::new();
        self.aside.shrink_to_fit();
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
    }

    /// Lays `e` at its exec index, its text marked `mark`, when the slot is empty;
    /// else gives back the entry there (as it was laid) and `e`. `Err` when the slot
    /// would take more than `max_slots` slots (a corrupt index must not make the log
    /// balloon).
    #[allow(clippy::type_complexity)]
    pub fn lay(
        &mut self,
        e: LogEntry,
        mark: u64,
        max_slots: u64,
    ) -> Result<Option<(LogEntry, LogEntry)>, String> {
        let exec = e.exec_index;
        let i = self.slot_for(exec, max_slots)?;
        let (k, j) = (i / LOG_CHUNK, i % LOG_CHUNK);
        if self.chunks[k][j].f != F_EMPTY {
            let laid = self.unpack(i, &self.chunks[k][j]);
            return Ok(laid.map(|laid| (laid, e)));
        }
        let (packed, mut laying) = match Packed::pack(e) {
            Ok((mut p, laying, snapshot)) => {
                if let Some(b) = snapshot {
                    p.amount = self.snapshot_parts.len() as i64;
                    self.snapshot_parts.extend(b.balances);
                }
                (p, laying)
            }
            Err(e) => {
                self.aside.push(e);
                (Packed::aside(self.aside.len() - 1), NOT_LAID)
            }
        };
        laying.mark = mark;
        (self.chunks[k][j], self.laying[i]) = (packed, laying);
        Ok(None)
    }

    /// The slot for `exec` (made if need be).
    fn slot_for(&mut self, exec: u64, max_slots: u64) -> Result<usize, String> {
        let too_far =
            || format!("exec_index {exec} is further from the others than the file has entries");
        if self.chunks.is_empty() {
            self.start = exec;
        }
        if exec < self.start {
            // Rare (a replica's list starting below the first one's): lay the slots
            // out again from `exec`.
            let more = self.start - exec;
            if more + self.len as u64 > max_slots {
                return Err(too_far());
            }
            let old = std::mem::take(&mut self.chunks);
            let laying = std::mem::take(&mut self.laying);
            self.len = 0;
            let slots = std::iter::repeat_n((Packed::EMPTY, NOT_LAID), more as usize)
                .chain(old.into_iter().flatten().zip(laying));
            for (slot, laid) in slots {
                self.push(slot, laid);
            }
            self.start = exec;
        }
        let i = exec - self.start;
        if i >= max_slots {
            return Err(too_far());
        }
        let i = i as usize;
        while self.len <= i {
            self.push(Packed::EMPTY, NOT_LAID);
        }
        Ok(i)
    }

    fn push(&mut self, slot: Packed, laid: Laying) {
        self.len += 1;
        self.laying.push(laid);
        match self.chunks.last_mut() {
            Some(c) if c.len() < LOG_CHUNK => c.push(slot),
            _ => {
                let mut c = Vec::with_capacity(LOG_CHUNK);
                c.push(slot);
                self.chunks.push(c);
            }
        }
    }
}

/// The operations by (client, request id), for the checks that start from a log entry
/// or a history line: every operation's key packed in one integer, sorted, beside its
/// number (12 bytes an operation; a hash map of them took about 50 with its empty
/// buckets, a tenth of a sharded check's peak). A request invoked more than once (a
/// retry) names its last operation, as a map filled in history order did. A key too
/// large to pack goes in a small map aside.
#[derive(Debug, Default)]
pub(crate) struct OpIndex {
    /// Packed keys ([`pack_request`]), sorted; equal keys in operation order.
    keys: Vec<u64>,
    /// `ops[i]` is the operation whose key is `keys[i]`.
    ops: Vec<u32>,
    aside: crate::model::FxMap<(u64, u64), usize>,
}

/// A (client, request id) in one integer ordered as the pair, when they fit (clients
/// below 2^24, requests below 2^40).
pub(crate) fn pack_request(client: u64, request_id: u64) -> Option<u64> {
    (client < 1 << 24 && request_id < 1 << 40).then_some((client << 40) | request_id)
}

impl OpIndex {
    pub fn new(ops: &[Op]) -> OpIndex {
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(ops.len());
        let mut aside = crate::model::FxMap::default();
        for (i, o) in ops.iter().enumerate() {
            match (pack_request(o.client, o.request_id), u32::try_from(i)) {
                (Some(k), Ok(n)) => pairs.push((k, n)),
                _ => {
                    aside.insert((o.client, o.request_id), i);
                }
            }
        }
        pairs.sort_unstable();
        let (keys, ops) = pairs.into_iter().unzip();
        OpIndex { keys, ops, aside }
    }

    /// The last operation of (client, request id), if any.
    pub fn get(&self, client: u64, request_id: u64) -> Option<usize> {
        if let Some(&o) = self.aside.get(&(client, request_id)) {
            return Some(o);
        }
        let k = pack_request(client, request_id)?;
        let end = self.keys.partition_point(|&x| x <= k);
        (end > 0 && self.keys[end - 1] == k).then(|| self.ops[end - 1] as usize)
    }

    pub fn contains(&self, client: u64, request_id: u64) -> bool {
        self.get(client, request_id).is_some()
    }

    /// For every operation of `ops` (those it was made from), the last operation of its
    /// key: what [`OpIndex::get`] gives for it, all at once.
    pub fn last_of_each(&self, ops: &[Op]) -> Vec<usize> {
        let mut out: Vec<usize> = (0..ops.len()).collect();
        for (i, o) in ops.iter().enumerate() {
            if let Some(&last) = self.aside.get(&(o.client, o.request_id)) {
                out[i] = last;
            }
        }
        let mut at = 0;
        while at < self.keys.len() {
            let end = at + self.keys[at..].partition_point(|&x| x == self.keys[at]);
            let last = self.ops[end - 1] as usize;
            for &o in &self.ops[at..end] {
                out[o as usize] = last;
            }
            at = end;
        }
        out
    }
}

/// Everything the sharded checks look at.
pub(crate) struct Sharded {
    pub specs: Vec<ShardSpec>,
    pub account_shard: crate::model::FxMap<String, ShardId>,
    pub initial_balance: Option<i64>,
    pub ops: Vec<Op>,
    /// (client, request_id) to the op.
    pub op_by_key: OpIndex,
    /// What is left of each replica once final.json was streamed (`None` without one).
    pub fin: Option<Vec<ShardNodeState>>,
    /// Per shard, its agreed log: the union of its replicas' logs by exec index.
    pub logs: BTreeMap<ShardId, ShardLog>,
    pub total: Option<i128>,
}

impl Sharded {
    /// The log entries `key` gives a key, as (key, shard and slot packed by
    /// [`Sharded::pack`]) pairs sorted by key, then shard, then position: the sort
    /// compares plain integers, never an entry behind a pointer. `None` when there are
    /// more than a million shards.
    pub fn sorted_entries<K: Ord + Copy>(
        &self,
        mut key: impl FnMut(&Brief) -> Option<K>,
    ) -> Option<Vec<(K, u64)>> {
        // Counted first: grown by doubling, the vector would hold up to twice its
        // entries at the peak.
        let keyed = self
            .logs
            .values()
            .flat_map(|l| l.briefs())
            .filter(|e| key(e).is_some());
        let mut out = Vec::with_capacity(keyed.count());
        for (k, log) in self.logs.values().enumerate() {
            for e in log.briefs() {
                if let Some(key) = key(&e) {
                    out.push((key, Sharded::pack(k, log.slot_of(e.exec_index)?)?));
                }
            }
        }
        out.sort_unstable();
        Some(out)
    }

    /// A shard (by its place among the logs) and a slot of its log in one integer,
    /// ordered as the pair.
    fn pack(shard: usize, slot: u64) -> Option<u64> {
        (shard < 1 << 20 && slot < 1 << 44).then_some(((shard as u64) << 44) | slot)
    }

    /// The [`Brief`] of the entry [`Sharded::pack`] packed, with its shard's id.
    pub fn brief(&self, packed: u64) -> Option<(ShardId, Brief)> {
        let (shard, log) = self.logs.iter().nth((packed >> 44) as usize)?;
        Some((*shard, log.brief_at(packed & ((1 << 44) - 1))?))
    }

    /// The entry [`Sharded::pack`] packed, with its shard's id.
    pub fn unpack(&self, packed: u64) -> Option<(ShardId, LogEntry)> {
        let (shard, log) = self.logs.iter().nth((packed >> 44) as usize)?;
        Some((*shard, log.at_slot(packed & ((1 << 44) - 1))?))
    }

    pub fn shard_of(&self, account: &str) -> Option<ShardId> {
        self.account_shard.get(account).copied()
    }

    pub fn spec(&self, id: ShardId) -> Option<&ShardSpec> {
        self.specs.iter().find(|s| s.id == id)
    }

    /// History indices of the operation behind (client, request id), if any.
    pub fn indices_of(&self, client: u64, request_id: u64) -> Vec<u64> {
        self.op_by_key
            .get(client, request_id)
            .map_or_else(Vec::new, |o| self.ops[o].indices())
    }

    /// Shard `id`'s balances before its log: run.toml's initial balance on each of its
    /// accounts.
    pub fn initial_bank(&self, id: ShardId) -> Bank {
        let accounts = self.spec(id).map_or(&[][..], |s| &s.accounts[..]);
        Bank::new(accounts, self.initial_balance.unwrap_or(0))
    }
}

/// A check following a replay of one shard's agreed log (see
/// [`Sharded::replay_watched`]).
pub(crate) trait Watch {
    /// The last exec index it needs the replay to reach (0: only the state before the
    /// log).
    fn upto(&self) -> u64;
    /// The entry at `exec` (at most [`Watch::upto`]) and the state after it.
    fn step(&mut self, exec: u64, e: &LogEntry, bank: &Bank);
    /// Where the replay ended for it: the state at its `upto` (the state before the
    /// log when the shard has no log), or the first exec index up to `upto` that the
    /// log lacks (the replay stops there).
    fn end(&mut self, end: Result<&Bank, u64>);
}

impl Sharded {
    /// Replays shard `id` from its initial balances once for every watcher, as far as
    /// the furthest needs: each sees the replay up to its own `upto`. Replay,
    /// bank conservation and agreement each replayed every shard before: three
    /// unpackings of every entry and three banks kept.
    pub fn replay_watched(&self, id: ShardId, watchers: &mut [&mut dyn Watch]) {
        let mut bank = self.initial_bank(id);
        let upto = watchers.iter().map(|w| w.upto()).max().unwrap_or(0);
        let log = self.logs.get(&id);
        for w in watchers
            .iter_mut()
            .filter(|w| w.upto() == 0 || log.is_none())
        {
            w.end(Ok(&bank));
        }
        let Some(log) = log else { return };
        for exec in 1..=upto {
            let Some(e) = log.get(&exec) else {
                for w in watchers.iter_mut().filter(|w| w.upto() >= exec) {
                    w.end(Err(exec));
                }
                return;
            };
            apply_entry(&mut bank, &e);
            for w in watchers.iter_mut().filter(|w| w.upto() >= exec) {
                w.step(exec, &e, &bank);
                if w.upto() == exec {
                    w.end(Ok(&bank));
                }
            }
        }
    }
}

/// A shard's balances during a replay: its accounts in name order (the order a map of
/// them lists them), found by binary search, their balances in one vector (a
/// `BTreeMap<String, i64>` is rebuilt, searched through its nodes and walked for every
/// entry of every replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bank {
    names: Vec<String>,
    balances: Vec<i64>,
}

impl Bank {
    /// `accounts` at `initial` each (a name given twice is one account).
    pub fn new(accounts: &[String], initial: i64) -> Bank {
        let mut names = accounts.to_vec();
        names.sort_unstable();
        names.dedup();
        let balances = vec![initial; names.len()];
        Bank { names, balances }
    }

    fn slot(&self, account: &str) -> Option<usize> {
        self.names
            .binary_search_by(|n| n.as_str().cmp(account))
            .ok()
    }

    pub fn contains(&self, account: &str) -> bool {
        self.slot(account).is_some()
    }

    pub fn get(&self, account: &str) -> Option<i64> {
        self.slot(account).map(|i| self.balances[i])
    }

    /// Adds `delta` to `account`'s balance, if the shard holds it.
    fn add(&mut self, account: &str, delta: i64) {
        if let Some(i) = self.slot(account) {
            self.balances[i] += delta;
        }
    }

    /// (account, balance) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.balances.iter().copied())
    }

    /// The first account (in name order) below zero.
    pub fn negative(&self) -> Option<(&str, i64)> {
        let i = self.balances.iter().position(|&b| b < 0)?;
        Some((&self.names[i], self.balances[i]))
    }

    pub fn sum(&self) -> i128 {
        self.balances.iter().map(|&b| i128::from(b)).sum()
    }

    pub fn to_map(&self) -> BTreeMap<String, i64> {
        self.iter().map(|(a, b)| (a.to_string(), b)).collect()
    }
}

/// Applies one log entry to its shard's balances.
pub(crate) fn apply_entry(bank: &mut Bank, e: &LogEntry) {
    let plain_ok = e.f == FnName::TRANSFER && e.kind == EventType::Ok;
    apply_parts(bank, &e.value, (e.txn().is_some(), e.applied()), plain_ok);
}

/// [`apply_entry`] for an entry as written.
pub(crate) fn apply_shard_entry(bank: &mut Bank, e: &ShardEntry) {
    let plain_ok = e.f == "transfer" && e.kind == EventType::Ok;
    apply_parts(bank, &e.value, (e.txn.is_some(), e.applied), plain_ok);
}

/// `txn`: whether the entry belongs to a transaction, and what it applied; `plain_ok`:
/// the entry is an executed transfer outside a transaction.
fn apply_parts(bank: &mut Bank, value: &EntryValue, txn: (bool, Option<i64>), plain_ok: bool) {
    let Some((from, to, amount)) = value.transfer() else {
        return;
    };
    match txn {
        (true, Some(delta)) if delta != 0 => {
            // The debit lands on the source's shard, the credit on the destination's.
            let account = if bank.contains(from) { from } else { to };
            bank.add(account, delta);
        }
        (true, _) => {}
        (false, _) if plain_ok => {
            bank.add(from, -amount);
            bank.add(to, amount);
        }
        (false, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exec: u64) -> LogEntry {
        let value = EntryValue::default();
        let f = FnName::READ;
        LogEntry::new(
            (exec, 1, exec),
            f,
            value,
            EventType::Ok,
            None,
            None,
            None,
            None,
        )
    }

    /// What keeps a run in proportion to its size: an entry's value and a log entry
    /// stay small records, and a history line's step takes 4 bytes.
    #[test]
    fn entries_values_and_steps_stay_small() {
        assert!(std::mem::size_of::<EntryValue>() <= 32);
        assert!(std::mem::size_of::<LogEntry>() <= 88);
        assert!(std::mem::size_of::<Packed>() <= 40);
        assert!(std::mem::size_of::<FnName>() == 8);
        assert!(std::mem::size_of::<Op>() <= 168);
        assert!(std::mem::size_of::<Interned<15>>() == 2);
    }

    /// One copy per text: equal texts give the same handle, longer ones none.
    #[test]
    fn interned_names_are_one_copy_each() {
        let a = AccountName::inline("acct-A").unwrap();
        let b = AccountName::try_from("acct-A".to_string()).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, AccountName::inline("acct-B").unwrap());
        assert_ne!(a.id(), AccountName::inline("acct-B").unwrap().id());
        assert!(AccountName::inline("sixteen-bytes-xx").is_none());
        // Texts kept in the same slot of the latest lookups, looked up in turn.
        assert_eq!(recent_slot("AxB"), recent_slot("AyB"));
        for _ in 0..2 {
            let (x, y) = (AccountName::inline("AxB"), AccountName::inline("AyB"));
            assert_ne!(x, y);
            assert_eq!((x.unwrap().as_str(), y.unwrap().as_str()), ("AxB", "AyB"));
        }
        let from_thread = std::thread::spawn(|| AccountName::inline("acct-A").unwrap().id());
        assert_eq!(from_thread.join().unwrap(), a.id());
    }

    /// Positions stay sorted by shard, inline up to two, in a vector past that.
    #[test]
    fn positions_stay_sorted_inline_or_not() {
        let mut p = ShardPositions::default();
        for (s, at) in [(3, 30), (1, 10), (3, 31), (2, 20)] {
            p.insert(s, at);
            assert!(p.as_slice().windows(2).all(|w| w[0].0 < w[1].0), "{p:?}");
        }
        assert_eq!(p.as_slice(), &[(1, 10), (2, 20), (3, 31)]);
        assert!(matches!(p, ShardPositions::Heap(_)));
        let two = ShardPositions::from(BTreeMap::from([(2, 5), (1, 4)]));
        assert!(matches!(two, ShardPositions::Inline(2, _)));
        assert_eq!((two.get(&1), two.get(&3)), (Some(&4), None));
        assert_eq!(two, ShardPositions::from(BTreeMap::from([(1, 4), (2, 5)])));
    }

    /// Steps come back in history order, those of operations by number and any other
    /// whole.
    #[test]
    fn client_steps_read_back_in_order() {
        let step = |index, invoke| ClientStep {
            request_id: 7,
            index,
            client: 2,
            invoke,
        };
        let mut steps = ClientSteps::default();
        steps.invoked(0, step(1, true));
        steps.other(step(2, false));
        steps.answered(0, step(3, false));
        steps.invoked(usize::MAX, step(4, true));
        let got: Vec<Step> = steps.iter().collect();
        assert_eq!(
            got,
            vec![
                Step::Invoked(0),
                Step::Other(step(2, false)),
                Step::Answered(0),
                Step::Other(step(4, true)),
            ]
        );
    }

    /// A bank lists its accounts in name order, finds them, and applies a plain
    /// transfer to both sides and a transaction's amount to the side it holds.
    #[test]
    fn a_bank_replays_transfers_by_account() {
        let mut bank = Bank::new(&["C".into(), "A".into()], 10);
        let transfer = |text: &str| serde_json::from_str::<EntryValue>(text).unwrap();
        let plain = LogEntry::new(
            (1, 1, 1),
            FnName::TRANSFER,
            transfer(r#"{"amount":3,"from":"A","to":"C"}"#),
            EventType::Ok,
            None,
            None,
            None,
            None,
        );
        apply_entry(&mut bank, &plain);
        let txn = Some(TxnId {
            coordinator: 2,
            client: 1,
            request_id: 2,
        });
        let credit = LogEntry::new(
            (2, 1, 2),
            FnName::TRANSFER,
            transfer(r#"{"amount":20,"from":"B","to":"A"}"#),
            EventType::Ok,
            txn,
            Some(Phase::Commit),
            None,
            Some(-20),
        );
        apply_entry(&mut bank, &credit);
        assert_eq!(bank.iter().collect::<Vec<_>>(), vec![("A", -13), ("C", 13)]);
        assert_eq!((bank.get("C"), bank.get("B")), (Some(13), None));
        assert_eq!(bank.negative(), Some(("A", -13)));
        assert_eq!(bank.sum(), 0);
    }

    /// A transaction id is held as its coordinator when it names the entry's own
    /// request, whole otherwise; both read back the same.
    #[test]
    fn a_log_entry_reads_back_its_transaction() {
        let own = TxnId {
            coordinator: 2,
            client: 1,
            request_id: 5,
        };
        let other = TxnId { client: 9, ..own };
        for txn in [None, Some(own), Some(other)] {
            let e = LogEntry::new(
                (3, 1, 5),
                FnName::TRANSFER,
                EntryValue::default(),
                EventType::Ok,
                txn,
                Some(Phase::Commit),
                None,
                Some(4),
            );
            assert_eq!(e.txn(), txn);
        }
    }

    /// Slots across chunks, gaps, an index below the first, and the bound.
    #[test]
    fn a_log_lays_entries_by_exec_index_across_chunks() {
        let mut log = ShardLog::default();
        for exec in [5u64, 6, 9000, 4, 10_000] {
            assert!(log.lay(entry(exec), exec, 20_000).unwrap().is_none());
        }
        let laid: Vec<u64> = log.values().map(|e| e.exec_index).collect();
        assert_eq!(laid, vec![4, 5, 6, 9000, 10_000]);
        assert_eq!(log.get(&9000).map(|e| e.request_id), Some(9000));
        assert!(log.get(&7).is_none() && log.get(&3).is_none() && log.get(&20_000).is_none());
        assert_eq!(log.last_index(), Some(10_000));
        assert_eq!((log.mark(9000), log.mark(4), log.mark(7)), (9000, 4, 0));
        let mut again = entry(6);
        again.request_id = 60;
        let (laid, given) = log.lay(again.clone(), 1, 20_000).unwrap().unwrap();
        assert_eq!((laid, given), (entry(6), again), "the first one laid stays");
        assert!(log.lay(entry(30_000), 0, 20_000).is_err());
        assert!(
            log.lay(entry(1), 0, 9_999).is_err(),
            "would take 9_997 + 3 slots"
        );
        log.shrink();
        assert_eq!(log.last_index(), Some(10_000));
        assert_eq!(log.mark(9000), 0, "marks are dropped");
    }

    fn op(client: u64, request_id: u64) -> Op {
        Op {
            client,
            request_id,
            f: FnName::READ,
            value: EntryValue::default(),
            invoke_index: 0,
            invoke_ns: 0,
            complete: None,
        }
    }

    /// A key names its last operation (a retry's), as a map filled in history order
    /// did, whether it packs or is kept aside; every operation is told that one.
    #[test]
    fn the_op_index_names_a_requests_last_operation() {
        let big = 1 << 30;
        let ops = [
            op(2, 7),
            op(1, 7),
            op(2, 7),
            op(big, 1),
            op(3, 1),
            op(big, 1),
        ];
        let index = OpIndex::new(&ops);
        assert_eq!(index.get(2, 7), Some(2));
        assert_eq!(index.get(1, 7), Some(1));
        assert_eq!(index.get(big, 1), Some(5));
        assert_eq!(index.get(3, 1), Some(4));
        assert_eq!(
            (index.get(1, 8), index.get(0, 0), index.get(big, 2)),
            (None, None, None)
        );
        assert!(index.contains(3, 1) && !index.contains(3, 2));
        assert_eq!(index.last_of_each(&ops), vec![2, 1, 2, 5, 4, 5]);
    }

    /// Each watcher of a shared replay sees the steps up to its own `upto` and its end
    /// there: the state then, or the first gap up to it.
    #[test]
    fn a_shared_replay_ends_for_each_watcher_where_it_asked() {
        /// A watcher's end: the bank's sum, or the gap.
        type End = Option<Result<i128, u64>>;
        #[derive(Default)]
        struct Seen {
            upto: u64,
            steps: Vec<u64>,
            end: End,
        }
        impl Watch for Seen {
            fn upto(&self) -> u64 {
                self.upto
            }
            fn step(&mut self, exec: u64, e: &LogEntry, _: &Bank) {
                assert_eq!(e.exec_index, exec);
                self.steps.push(exec);
            }
            fn end(&mut self, end: Result<&Bank, u64>) {
                assert!(self.end.is_none(), "told its end twice");
                self.end = Some(end.map(Bank::sum));
            }
        }
        let mut log = ShardLog::default();
        for exec in [1, 2, 3, 5] {
            log.lay(entry(exec), 0, 100).unwrap();
        }
        let data = Sharded {
            specs: vec![ShardSpec {
                id: 1,
                accounts: vec!["A".into(), "B".into()],
                nodes: Vec::new(),
            }],
            account_shard: Default::default(),
            initial_balance: Some(10),
            ops: Vec::new(),
            op_by_key: OpIndex::default(),
            fin: None,
            logs: BTreeMap::from([(1, log)]),
            total: None,
        };
        let mut w: Vec<Seen> = [0, 2, 3, 6]
            .into_iter()
            .map(|upto| Seen {
                upto,
                ..Seen::default()
            })
            .collect();
        let mut watchers: Vec<&mut dyn Watch> = w.iter_mut().map(|s| s as &mut dyn Watch).collect();
        data.replay_watched(1, &mut watchers);
        let got: Vec<(Vec<u64>, End)> = w.into_iter().map(|s| (s.steps, s.end)).collect();
        assert_eq!(
            got,
            vec![
                (vec![], Some(Ok(20))),
                (vec![1, 2], Some(Ok(20))),
                (vec![1, 2, 3], Some(Ok(20))),
                (vec![1, 2, 3], Some(Err(4))),
            ]
        );
        // A shard without a log ends at its initial state for every watcher.
        let mut none = Seen {
            upto: 4,
            ..Seen::default()
        };
        data.replay_watched(2, &mut [&mut none]);
        assert_eq!((none.steps, none.end), (vec![], Some(Ok(0))));
    }

    /// An entry reads back as it was laid while the replicas are laid, and with only
    /// its balances and snapshot dropped after; one that does not pack is kept whole.
    #[test]
    fn packed_entries_read_back_as_laid() {
        let value = |text: &str| serde_json::from_str::<EntryValue>(text).unwrap();
        let txn = |client| TxnId {
            coordinator: 2,
            client,
            request_id: 5,
        };
        let make = |exec, client, f, v: &str, kind, txn, applied| {
            LogEntry::new(
                (exec, client, 5),
                f,
                value(v),
                kind,
                txn,
                Some(Phase::Prepare),
                Some(Vote::No),
                applied,
            )
        };
        let transfer = r#"{"amount":2,"from":"A","from_balance":8,"to":"B","to_balance":12}"#;
        let entries = [
            make(
                1,
                1,
                FnName::TRANSFER,
                transfer,
                EventType::Ok,
                Some(txn(1)),
                Some(-2),
            ),
            make(
                2,
                1,
                FnName::TRANSFER,
                r#"{"amount":30,"error":"insufficient-funds","from":"D","to":"B"}"#,
                EventType::Fail,
                None,
                None,
            ),
            make(
                3,
                1,
                FnName::READ,
                r#"{"account":"A","balance":7}"#,
                EventType::Ok,
                None,
                Some(0),
            ),
            make(
                4,
                1,
                FnName::READ,
                r#"{"account":"A"}"#,
                EventType::Info,
                None,
                None,
            ),
            make(
                5,
                1,
                FnName::READ_ALL,
                r#"{"balances":{"A":10,"B":-2}}"#,
                EventType::Ok,
                None,
                None,
            ),
            make(6, 1, FnName::READ_ALL, "null", EventType::Ok, None, None),
            // Kept whole: a transaction naming another client, a client past 2^24,
            // another function, a value of another shape, a balance of i64::MIN.
            make(
                7,
                1,
                FnName::TRANSFER,
                transfer,
                EventType::Ok,
                Some(txn(9)),
                None,
            ),
            make(
                8,
                1 << 30,
                FnName::TRANSFER,
                transfer,
                EventType::Ok,
                None,
                None,
            ),
            make(9, 1, FnName::new("noop"), "null", EventType::Ok, None, None),
            make(
                10,
                1,
                FnName::READ,
                r#"{"account":"A","at":3}"#,
                EventType::Ok,
                None,
                None,
            ),
            make(
                11,
                1,
                FnName::READ,
                &format!(r#"{{"account":"A","balance":{}}}"#, i64::MIN),
                EventType::Ok,
                None,
                None,
            ),
        ];
        let mut log = ShardLog::default();
        for e in &entries {
            assert!(log.lay(e.clone(), 0, 100).unwrap().is_none());
        }
        assert_eq!(log.aside.len(), 5);
        assert_eq!(log.values().collect::<Vec<_>>(), entries.to_vec());
        let briefs: Vec<Brief> = entries.iter().map(Brief::of).collect();
        assert_eq!(log.briefs().collect::<Vec<_>>(), briefs);
        assert_eq!(briefs[0].txn, Some(txn(1)));
        log.shrink();
        let after: Vec<LogEntry> = log.values().collect();
        for (was, now) in entries.iter().zip(&after) {
            let mut was = was.clone();
            match (&mut was.value, was.exec_index) {
                (EntryValue::Transfer(t), 1) => {
                    (t.from_balance, t.to_balance) = (Balance::NONE, Balance::NONE)
                }
                (EntryValue::Read(r), 3) => r.balance = None,
                (EntryValue::Snapshot(b), 5) => b.balances.clear(),
                _ => {}
            }
            assert_eq!(&was, now);
        }
    }

    fn reread(text: &str) -> (EntryValue, String) {
        let v: EntryValue = serde_json::from_str(text).expect("a JSON value");
        let again = serde_json::to_string(&v).expect("serializes");
        (v, again)
    }

    #[test]
    fn transfer_values_are_compact_and_read_back_byte_identical() {
        for text in [
            r#"{"amount":3,"from":"A","to":"C"}"#,
            r#"{"amount":2,"from":"A","from_balance":8,"to":"B","to_balance":12}"#,
        ] {
            let (v, again) = reread(text);
            assert!(matches!(v, EntryValue::Transfer(_)), "{text}");
            assert_eq!(again, text);
            assert_eq!(
                v,
                EntryValue::from(serde_json::from_str::<Value>(text).unwrap())
            );
        }
        for text in [r#"{"account":"A","balance":7}"#, r#"{"account":"A"}"#] {
            let (v, again) = reread(text);
            assert!(matches!(v, EntryValue::Read(_)), "{text}");
            assert_eq!(again, text);
            assert_eq!(
                ReadValue::fast(text.as_bytes()).map(EntryValue::Read),
                Some(v.clone())
            );
            assert_eq!(
                v,
                EntryValue::from(serde_json::from_str::<Value>(text).unwrap())
            );
            assert_eq!(v.str_field("account"), Some("A"));
        }
        let text = r#"{"balances":{"A":10,"B":-2}}"#;
        let (v, again) = reread(text);
        assert!(matches!(v, EntryValue::Snapshot(_)), "{text}");
        assert_eq!(again, text);
        assert_eq!(
            v,
            EntryValue::from(serde_json::from_str::<Value>(text).unwrap())
        );
        assert_eq!(v.balances(), Some(vec![("A", Some(10)), ("B", Some(-2))]));
        let shuffled = br#"{"balances":{"B":-2,"A":10}}"#;
        assert_eq!(
            SnapshotValue::fast(shuffled).map(EntryValue::Snapshot),
            Some(v)
        );
        let (v, _) = reread(r#"{"to":"C","from":"A","amount":3}"#);
        assert_eq!(v.transfer(), Some(("A", "C", 3)));
        assert_eq!(v.i64_field("amount"), Some(3));
        assert_eq!(v.str_field("error"), None);
    }

    #[test]
    fn other_shapes_keep_every_field() {
        for text in [
            r#"{"amount":30,"error":"an-error-word-over-23-bytes","from":"D","to":"B"}"#,
            r#"{"amount":30,"error":"busy","from":"D","to":"B","to_balance":3}"#,
            r#"{"amount":3,"from":"A","from_balance":null,"to":"C"}"#,
            r#"{"amount":3.5,"from":"A","to":"C"}"#,
            r#"{"amount":3,"from":"a-very-long-account-name","to":"C"}"#,
            r#"{"account":"A","at":3,"balance":7}"#,
            r#"{"account":"A","balance":null}"#,
            r#"{"balances":{"A":1.5}}"#,
            r#"{"balances":{"A":1},"error":"x"}"#,
            r#"null"#,
        ] {
            let (v, again) = reread(text);
            assert!(matches!(v, EntryValue::Other(_)), "{text}");
            assert_eq!(again, text);
        }
        let (v, _) =
            reread(r#"{"amount":30,"error":"an-error-word-over-23-bytes","from":"D","to":"B"}"#);
        assert_eq!(v.str_field("error"), Some("an-error-word-over-23-bytes"));
        assert_eq!(v.transfer(), Some(("D", "B", 30)));
    }

    /// A failed transfer's value is held inline, reads back byte-identical, and the
    /// fast path gives what serde gives.
    #[test]
    fn failed_transfers_are_compact() {
        let text = r#"{"amount":30,"error":"insufficient-funds","from":"D","to":"B"}"#;
        let (v, again) = reread(text);
        assert!(matches!(v, EntryValue::FailedTransfer(_)), "{v:?}");
        assert_eq!(again, text);
        assert_eq!(
            v,
            EntryValue::from(serde_json::from_str::<Value>(text).unwrap())
        );
        let shuffled = br#"{"from":"D","error":"insufficient-funds","to":"B","amount":30}"#;
        assert_eq!(
            FailedTransferValue::fast(shuffled).map(EntryValue::FailedTransfer),
            Some(v.clone())
        );
        assert_eq!(v.str_field("error"), Some("insufficient-funds"));
        assert_eq!(v.transfer(), Some(("D", "B", 30)));
        assert_eq!(v.i64_field("amount"), Some(30));
        assert_eq!(v.i64_field("from_balance"), None);
        assert!(v.balances().is_none() && v.json().is_none());
    }
}
