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
//! [`FnName`], so a log entry ([`LogEntry`], 88 bytes) or an operation ([`Op`], 168)
//! costs a small fixed size; a replay's balances are a [`Bank`]. The properties are in
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

/// One entry of a shard's agreed log as the checks hold it: a [`ShardEntry`] with its
/// function as an [`FnName`] (an agreed log holds one per exec index of the run), in
/// about 100 bytes: the transaction id and `applied` are packed beside the small
/// fields (an `Option<TxnId>` takes 32 bytes and an `Option<i64>` 16).
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
}

fn intern(s: &str) -> Option<u16> {
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
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardLog {
    /// The exec index of the first slot.
    start: u64,
    /// Slots `k * LOG_CHUNK..(k + 1) * LOG_CHUNK` from `start`; every chunk but the last
    /// is full.
    chunks: Vec<Vec<Option<LogEntry>>>,
    /// Beside each slot while the logs are laid, the mark of the text its entry was
    /// read from (`crate::run::shard_load`; 0 for none); dropped by [`ShardLog::shrink`].
    marks: Vec<Vec<u64>>,
    /// Slots in all.
    len: usize,
}

/// Slots per chunk of a [`ShardLog`].
const LOG_CHUNK: usize = 4096;

impl ShardLog {
    pub fn get(&self, exec: &u64) -> Option<&LogEntry> {
        let i = usize::try_from(exec.checked_sub(self.start)?).ok()?;
        self.chunks.get(i / LOG_CHUNK)?.get(i % LOG_CHUNK)?.as_ref()
    }

    /// The slot `exec` is laid in.
    pub fn slot_of(&self, exec: u64) -> Option<u64> {
        exec.checked_sub(self.start)
    }

    /// The entry in slot `slot`.
    pub fn at_slot(&self, slot: u64) -> Option<&LogEntry> {
        let i = usize::try_from(slot).ok()?;
        self.chunks.get(i / LOG_CHUNK)?.get(i % LOG_CHUNK)?.as_ref()
    }

    /// The entries in exec-index order.
    pub fn values(&self) -> impl Iterator<Item = &LogEntry> {
        self.chunks.iter().flatten().flatten()
    }

    /// The highest exec index laid.
    pub fn last_index(&self) -> Option<u64> {
        let (k, i) = self.chunks.iter().enumerate().rev().find_map(|(k, c)| {
            let i = c.iter().rposition(Option::is_some)?;
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
        let mark = self
            .marks
            .get(i / LOG_CHUNK)
            .and_then(|c| c.get(i % LOG_CHUNK));
        mark.copied().unwrap_or(0)
    }

    /// Gives back the room kept for growth and the marks, once every replica's log is
    /// laid.
    pub fn shrink(&mut self) {
        self.marks = Vec::new();
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
    }

    /// The slot for `exec`, made if need be; `Err` when that would take more than
    /// `max_slots` slots (a corrupt index must not make the log balloon).
    pub fn slot_mut(
        &mut self,
        exec: u64,
        max_slots: u64,
    ) -> Result<(&mut Option<LogEntry>, &mut u64), String> {
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
            let marks = std::mem::take(&mut self.marks);
            self.len = 0;
            let slots = std::iter::repeat_with(|| (None, 0))
                .take(more as usize)
                .chain(old.into_iter().flatten().zip(marks.into_iter().flatten()));
            for (slot, mark) in slots {
                self.push(slot, mark);
            }
            self.start = exec;
        }
        let i = exec - self.start;
        if i >= max_slots {
            return Err(too_far());
        }
        let i = i as usize;
        while self.len <= i {
            self.push(None, 0);
        }
        let (k, j) = (i / LOG_CHUNK, i % LOG_CHUNK);
        Ok((&mut self.chunks[k][j], &mut self.marks[k][j]))
    }

    fn push(&mut self, slot: Option<LogEntry>, mark: u64) {
        self.len += 1;
        match (self.chunks.last_mut(), self.marks.last_mut()) {
            (Some(c), Some(m)) if c.len() < LOG_CHUNK => {
                c.push(slot);
                m.push(mark);
            }
            _ => {
                let mut c = Vec::with_capacity(LOG_CHUNK);
                c.push(slot);
                self.chunks.push(c);
                let mut m = Vec::with_capacity(LOG_CHUNK);
                m.push(mark);
                self.marks.push(m);
            }
        }
    }
}

/// Everything the sharded checks look at.
pub(crate) struct Sharded {
    pub specs: Vec<ShardSpec>,
    pub account_shard: crate::model::FxMap<String, ShardId>,
    pub initial_balance: Option<i64>,
    pub ops: Vec<Op>,
    /// (client, request_id) to the op.
    pub op_by_key: crate::model::FxMap<(u64, u64), usize>,
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
        mut key: impl FnMut(&LogEntry) -> Option<K>,
    ) -> Option<Vec<(K, u64)>> {
        let keyed = self
            .logs
            .values()
            .flat_map(|l| l.values())
            .filter(|e| key(e).is_some());
        let mut out = Vec::with_capacity(keyed.count());
        for (k, log) in self.logs.values().enumerate() {
            for e in log.values() {
                if let Some(key) = key(e) {
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

    /// The entry [`Sharded::pack`] packed, with its shard's id.
    pub fn unpack(&self, packed: u64) -> Option<(ShardId, &LogEntry)> {
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
            .get(&(client, request_id))
            .map_or_else(Vec::new, |&o| self.ops[o].indices())
    }

    /// Shard `id`'s balances before its log: run.toml's initial balance on each of its
    /// accounts.
    pub fn initial_bank(&self, id: ShardId) -> Bank {
        let accounts = self.spec(id).map_or(&[][..], |s| &s.accounts[..]);
        Bank::new(accounts, self.initial_balance.unwrap_or(0))
    }

    /// The state of shard `id` replayed from its agreed log up to `upto` (inclusive);
    /// `Err(gap)` when the log lacks an index first.
    pub fn replay_shard(
        &self,
        id: ShardId,
        upto: u64,
        mut each: impl FnMut(u64, &LogEntry, &Bank),
    ) -> Result<Bank, u64> {
        let mut bank = self.initial_bank(id);
        let Some(log) = self.logs.get(&id) else {
            return Ok(bank);
        };
        for exec in 1..=upto {
            let Some(e) = log.get(&exec) else {
                return Err(exec);
            };
            apply_entry(&mut bank, e);
            each(exec, e, &bank);
        }
        Ok(bank)
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
            let (slot, mark) = log.slot_mut(exec, 20_000).unwrap();
            (*slot, *mark) = (Some(entry(exec)), exec);
        }
        let laid: Vec<u64> = log.values().map(|e| e.exec_index).collect();
        assert_eq!(laid, vec![4, 5, 6, 9000, 10_000]);
        assert_eq!(log.get(&9000).map(|e| e.request_id), Some(9000));
        assert!(log.get(&7).is_none() && log.get(&3).is_none() && log.get(&20_000).is_none());
        assert_eq!(log.last_index(), Some(10_000));
        assert_eq!((log.mark(9000), log.mark(4), log.mark(7)), (9000, 4, 0));
        assert!(log.slot_mut(30_000, 20_000).is_err());
        assert!(
            log.slot_mut(1, 9_999).is_err(),
            "would take 9_997 + 3 slots"
        );
        log.shrink();
        assert_eq!(log.last_index(), Some(10_000));
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
