//! The history format: `history.jsonl`, one JSON object per line.
//!
//! This module is the single definition of that format, so the harness writes exactly
//! what the checker reads. It has three parts:
//!
//! - [`Event`], an owned, convenient event for writers and tests (its `value` is a
//!   `serde_json::Value`), with constructors and the [`values`] helpers for the shapes
//!   of `value` listed in docs/history.md.
//! - [`HistoryWriter`], which appends one line per event and (by default) flushes it, so
//!   a crashed harness leaves at most its last line cut off.
//! - [`HistoryReader`], a streaming reader that parses each line into a borrowed
//!   [`RawEvent`] without copying strings, reusing one line buffer. This is the fast
//!   path the checks use; [`HistoryReader::next_owned`] gives owned events for tools.
//!
//! A malformed line is an error naming the file, the line and the field. A last line
//! with no newline that does not parse is taken as a cut-off write: reading stops
//! there and [`HistoryReader::truncation`] says so, so the caller can warn.

pub use crate::load::event_parts::{CowStr, EventType, Process};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One line of `history.jsonl`, owned. Optional fields are left out when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, increasing by one per line (the harness numbers them).
    pub index: u64,
    /// Monotonic nanoseconds since the run started.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// `transfer`, `read`, `read_all` for clients; `kill`, `restart`, `pause`,
    /// `resume`, `partition`, `heal`, ... for the nemesis.
    pub f: String,
    /// Shapes per `f` and `type` are in docs/history.md; see [`values`].
    #[serde(default)]
    pub value: Value,
    /// On client events: the request id (a retry reuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
    /// On completions: the replica that answered, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// On completions: the command's 1-based position in the total order, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_index: Option<u64>,
    /// On completions in a sharded run (see docs/sharded.md): shard id to the
    /// operation's 1-based position in that shard's execution order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<std::collections::BTreeMap<u32, u64>>,
}

impl Event {
    /// A client invocation. `index` and `time_ns` start at 0; set them with [`Event::at`].
    pub fn invoke(process: u64, request_id: u64, f: &str, value: Value) -> Event {
        Event::client(EventType::Invoke, process, request_id, f, value)
    }

    /// A client completion (`ok`, `fail` or `info`); add node and exec index with
    /// [`Event::on_node`] and [`Event::with_exec_index`].
    pub fn client(kind: EventType, process: u64, request_id: u64, f: &str, value: Value) -> Event {
        Event {
            index: 0,
            time_ns: 0,
            process: Process::Client(process),
            kind,
            f: f.to_string(),
            value,
            request_id: Some(request_id),
            node: None,
            exec_index: None,
            positions: None,
        }
    }

    /// A nemesis action: an `info` event of process `"nemesis"`.
    pub fn nemesis(f: &str, value: Value) -> Event {
        Event {
            index: 0,
            time_ns: 0,
            process: Process::Nemesis,
            kind: EventType::Info,
            f: f.to_string(),
            value,
            request_id: None,
            node: None,
            exec_index: None,
            positions: None,
        }
    }

    /// Sets the position and time.
    pub fn at(mut self, index: u64, time_ns: u64) -> Event {
        self.index = index;
        self.time_ns = time_ns;
        self
    }

    /// Sets the answering replica.
    pub fn on_node(mut self, node: &str) -> Event {
        self.node = Some(node.to_string());
        self
    }

    /// Sets the exec index the answer carried.
    pub fn with_exec_index(mut self, exec_index: u64) -> Event {
        self.exec_index = Some(exec_index);
        self
    }

    /// Sets the positions a sharded run's answer carried (shard id to position).
    pub fn with_positions(mut self, positions: impl IntoIterator<Item = (u32, u64)>) -> Event {
        self.positions = Some(positions.into_iter().collect());
        self
    }
}

/// Builders for the `value` shapes of docs/history.md, so writers and tests agree on them.
pub mod values {
    use serde_json::{json, Map, Value};

    /// The error a transfer fails with when the source account is short.
    pub const INSUFFICIENT_FUNDS: &str = "insufficient-funds";

    /// `transfer` invoke (and info): `{"from","to","amount"}`.
    pub fn transfer(from: &str, to: &str, amount: i64) -> Value {
        json!({"from": from, "to": to, "amount": amount})
    }

    /// `transfer` ok: the invoke value plus the balances after the transfer.
    pub fn transfer_ok(
        from: &str,
        to: &str,
        amount: i64,
        from_balance: i64,
        to_balance: i64,
    ) -> Value {
        json!({"from": from, "to": to, "amount": amount,
               "from_balance": from_balance, "to_balance": to_balance})
    }

    /// `transfer` fail: the invoke value plus `"error"`.
    pub fn transfer_fail(from: &str, to: &str, amount: i64, error: &str) -> Value {
        json!({"from": from, "to": to, "amount": amount, "error": error})
    }

    /// `read` invoke: `{"account"}`.
    pub fn read(account: &str) -> Value {
        json!({"account": account})
    }

    /// `read` ok: `{"account","balance"}`.
    pub fn read_ok(account: &str, balance: i64) -> Value {
        json!({"account": account, "balance": balance})
    }

    /// `read_all` ok: `{"balances": {...}}`.
    pub fn read_all_ok<'a>(balances: impl IntoIterator<Item = (&'a str, i64)>) -> Value {
        let map: Map<String, Value> = balances
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        json!({ "balances": map })
    }

    /// Any fail: `{"error": ...}` added to the invoke value (or alone for `read_all`).
    pub fn with_error(invoke_value: &Value, error: &str) -> Value {
        let mut map = match invoke_value {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        map.insert("error".into(), Value::from(error));
        Value::Object(map)
    }
}

/// Appends events to `history.jsonl`, one line each.
///
/// [`HistoryWriter::create`] and [`HistoryWriter::new`] flush after every line, so the
/// file is always whole up to the last event (at most the last line is cut off by a
/// crash). [`HistoryWriter::buffered`] flushes only on [`HistoryWriter::flush`] and on
/// drop, for generators that write millions of events.
pub struct HistoryWriter<W: Write = File> {
    out: BufWriter<W>,
    line: Vec<u8>,
    flush_each: bool,
    next_index: u64,
}

impl HistoryWriter<File> {
    /// Creates (truncating) `path` and flushes after every event.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(HistoryWriter::new(File::create(path)?))
    }
}

impl<W: Write> HistoryWriter<W> {
    /// Writes to `inner`, flushing after every event.
    pub fn new(inner: W) -> Self {
        HistoryWriter {
            out: BufWriter::new(inner),
            line: Vec::with_capacity(256),
            flush_each: true,
            next_index: 0,
        }
    }

    /// Writes to `inner` through a large buffer, flushing only when asked.
    pub fn buffered(inner: W) -> Self {
        HistoryWriter {
            out: BufWriter::with_capacity(1 << 20, inner),
            line: Vec::with_capacity(256),
            flush_each: false,
            next_index: 0,
        }
    }

    /// Appends `event` as one line, exactly as given.
    pub fn append(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.next_index = event.index + 1;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Sets `event.index` to the next index (one past the last appended event, 0 at
    /// first) and appends it. Returns the index used.
    pub fn append_next(&mut self, mut event: Event) -> io::Result<u64> {
        event.index = self.next_index;
        self.append(&event)?;
        Ok(event.index)
    }

    /// The index [`HistoryWriter::append_next`] will use.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Errors reading a history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    // Prints its cause rather than chaining it: `{:#}` would say it twice.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("{}:{line}: {}{message}", path.display(), field_prefix(field))]
    Malformed {
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The offending field, e.g. `time_ns` or `value.amount`, when one is to blame.
        field: Option<String>,
        message: String,
    },
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("field `{f}`: "),
        None => String::new(),
    }
}

/// One history line parsed without copying: strings borrow from the line and `value`
/// is the raw JSON text, parsed later only as far as the checks need.
#[derive(Debug, Deserialize)]
pub struct RawEvent<'a> {
    pub index: u64,
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(borrow)]
    pub f: CowStr<'a>,
    #[serde(borrow, default)]
    pub value: Option<&'a RawValue>,
    #[serde(default)]
    pub request_id: Option<u64>,
    #[serde(borrow, default)]
    pub node: Option<CowStr<'a>>,
    #[serde(default)]
    pub exec_index: Option<u64>,
}

impl<'a> RawEvent<'a> {
    /// Parses a line without serde (see [`crate::load::fastjson`]); `None` means "let serde
    /// decide".
    pub(crate) fn fast(line: &'a [u8]) -> Option<RawEvent<'a>> {
        use crate::load::fastjson::{once, put, set, Cur};
        let mut c = Cur::new(line);
        let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut value, mut request_id, mut node, mut exec_index) = (None, None, None, None);
        let mut seen = 0u16;
        c.object(|c, k| {
            let bit = match k {
                b"index" => put(&mut index, c.u64()?, 0),
                b"time_ns" => put(&mut time_ns, c.u64()?, 1),
                b"process" => put(&mut process, c.process()?, 2),
                b"type" => put(&mut kind, c.event_type()?, 3),
                b"f" => put(&mut f, c.f()?, 4),
                b"value" => put(&mut value, c.skip()?, 5),
                b"request_id" => set(&mut request_id, c.opt_u64()?, 6),
                b"node" => set(&mut node, c.opt_str()?, 7),
                b"exec_index" => set(&mut exec_index, c.opt_u64()?, 8),
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
        // `value` was only delimited; serde wraps its text (no full parse).
        let value = match value {
            None | Some("null") => None,
            Some(text) => Some(serde_json::from_str::<&RawValue>(text).ok()?),
        };
        Some(RawEvent {
            index: index?,
            time_ns: time_ns?,
            process: process?,
            kind: kind?,
            f: f?,
            value,
            request_id,
            node: node.map(|n| CowStr(Cow::Borrowed(n))),
            exec_index,
        })
    }

    /// The owned form.
    pub fn to_event(&self) -> Event {
        let value = self
            .value
            .and_then(|v| serde_json::from_str(v.get()).ok())
            .unwrap_or(Value::Null);
        Event {
            index: self.index,
            time_ns: self.time_ns,
            process: self.process,
            kind: self.kind,
            f: self.f.to_string(),
            value,
            request_id: self.request_id,
            node: self.node.as_ref().map(|n| n.to_string()),
            exec_index: self.exec_index,
            positions: None,
        }
    }

    /// The raw JSON text of `value` (`null` when absent).
    pub fn value_text(&self) -> &str {
        self.value.map(|v| v.get()).unwrap_or("null")
    }
}

/// Where reading stopped because the last line was cut off mid-write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// 1-based number of the partial line.
    pub line: u64,
    /// How many bytes of it there were.
    pub bytes: usize,
}

struct ReadState {
    path: PathBuf,
    line_no: u64,
    truncation: Option<Truncation>,
}

/// Bytes read from the file at a time.
const BLOCK: usize = 1 << 20;

/// The longest line the reader accepts. Real events are a few hundred bytes (a
/// `read_all` of many accounts a few KiB); a line this long is a corrupt file, and
/// growing the buffer for it would take the memory without bound.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Streams a history file one line at a time, parsing each in place.
///
/// The file is read in large blocks and lines are found with `memchr`, so a line is
/// parsed where it lies in the buffer, never copied.
pub struct HistoryReader<R: Read = File> {
    src: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// The current line is `buf[line.0..line.1]`, without its line ending.
    line: (usize, usize),
    /// Whether the current line ended with a newline (a cut-off line does not).
    complete: bool,
    state: ReadState,
}

impl HistoryReader<File> {
    /// Opens `path` for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|cause| HistoryError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        Ok(HistoryReader::from_reader(file, path))
    }
}

impl<R: Read> HistoryReader<R> {
    /// Reads from `src`; `path` is used in error messages only.
    pub fn from_reader(src: R, path: impl AsRef<Path>) -> Self {
        HistoryReader {
            src,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            eof: false,
            line: (0, 0),
            complete: true,
            state: ReadState {
                path: path.as_ref().to_path_buf(),
                line_no: 0,
                truncation: None,
            },
        }
    }

    /// The 1-based number of the line last returned.
    pub fn line_no(&self) -> u64 {
        self.state.line_no
    }

    /// The file name used in messages.
    pub fn path(&self) -> &Path {
        &self.state.path
    }

    /// Set once reading stopped at a cut-off last line.
    pub fn truncation(&self) -> Option<&Truncation> {
        self.state.truncation.as_ref()
    }

    /// An error about the current line.
    pub fn error(&self, field: Option<String>, message: impl Into<String>) -> HistoryError {
        malformed(&self.state, field, message)
    }

    /// The text of the current line.
    pub fn line_text(&self) -> &str {
        std::str::from_utf8(&self.buf[self.line.0..self.line.1]).unwrap_or("<not UTF-8>")
    }

    /// Moves the unread tail to the front and reads another block after it.
    fn refill(&mut self) -> Result<(), HistoryError> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_LINE_BYTES {
                return Err(HistoryError::Malformed {
                    path: self.state.path.clone(),
                    // The line being read is the one after the last counted.
                    line: self.state.line_no + 1,
                    field: None,
                    message: format!(
                        "the line is longer than {MAX_LINE_BYTES} bytes, the most a history line may be"
                    ),
                });
            }
            // A line longer than the buffer: make room for it.
            self.buf.resize((self.buf.len() * 2).min(MAX_LINE_BYTES), 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(cause) => {
                    return Err(HistoryError::Io {
                        path: self.state.path.clone(),
                        cause,
                    })
                }
            }
        }
    }

    /// Finds the next line that is not blank; false at the end of the file.
    fn fill_line(&mut self) -> Result<bool, HistoryError> {
        loop {
            let (start, stop, complete) = match memchr::memchr(b'\n', &self.buf[self.pos..self.end])
            {
                Some(i) => (self.pos, self.pos + i, true),
                None if self.eof && self.pos < self.end => (self.pos, self.end, false),
                None if self.eof => return Ok(false),
                None => {
                    self.refill()?;
                    continue;
                }
            };
            self.pos = if complete { stop + 1 } else { stop };
            self.state.line_no += 1;
            let mut stop = stop;
            while stop > start && self.buf[stop - 1] == b'\r' {
                stop -= 1;
            }
            self.line = (start, stop);
            self.complete = complete;
            if !self.buf[start..stop].iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    /// Parses the next line into any event type (the checks use a leaner one than
    /// [`RawEvent`]). `None` at the end, or at a cut-off last line (see
    /// [`HistoryReader::truncation`]).
    pub fn next_as<'s, T: Deserialize<'s>>(&'s mut self) -> Result<Option<T>, HistoryError> {
        self.next_checked(|_| None, |_| Ok(()))
    }

    /// Like [`HistoryReader::next_as`], trying `fast` first (serde parses the line
    /// when it returns `None`); `check` may reject the event, naming a field and what
    /// is wrong with it.
    pub fn next_checked<'s, T: Deserialize<'s>>(
        &'s mut self,
        fast: impl Fn(&'s [u8]) -> Option<T>,
        check: impl Fn(&T) -> Result<(), (&'static str, &'static str)>,
    ) -> Result<Option<T>, HistoryError> {
        Ok(self.next_numbered(fast, check)?.map(|(_, ev)| ev))
    }

    /// Like [`HistoryReader::next_checked`], with the event's 1-based line number
    /// (the event borrows the reader, so [`HistoryReader::line_no`] cannot be asked
    /// while it is alive).
    pub fn next_numbered<'s, T: Deserialize<'s>>(
        &'s mut self,
        fast: impl Fn(&'s [u8]) -> Option<T>,
        check: impl Fn(&T) -> Result<(), (&'static str, &'static str)>,
    ) -> Result<Option<(u64, T)>, HistoryError> {
        if self.state.truncation.is_some() || !self.fill_line()? {
            return Ok(None);
        }
        // Split the borrows: the event borrows `buf` while errors update `state`.
        let HistoryReader {
            buf,
            line,
            complete,
            state,
            ..
        } = self;
        let text: &'s [u8] = &buf[line.0..line.1];
        let parsed = match fast(text) {
            Some(ev) => Ok(ev),
            None => serde_json::from_slice::<T>(text),
        };
        match parsed {
            Ok(ev) => match check(&ev) {
                Ok(()) => Ok(Some((state.line_no, ev))),
                Err((field, message)) => Err(malformed(state, Some(field.into()), message)),
            },
            Err(_) if !*complete => {
                // No newline at the end of the file: a write cut off by a crash.
                state.truncation = Some(Truncation {
                    line: state.line_no,
                    bytes: text.len(),
                });
                Ok(None)
            }
            Err(e) => {
                let (field, message) = diagnose(text, &e);
                Err(malformed(state, field, message))
            }
        }
    }

    /// The next event, or `None` at the end (or at a cut-off last line, see
    /// [`HistoryReader::truncation`]).
    pub fn next_event(&mut self) -> Result<Option<RawEvent<'_>>, HistoryError> {
        self.next_checked(RawEvent::fast, |ev: &RawEvent<'_>| {
            match (ev.process, ev.request_id) {
                (Process::Client(_), None) => Err(("request_id", "missing on a client event")),
                _ => Ok(()),
            }
        })
    }

    /// The next event, owned.
    pub fn next_owned(&mut self) -> Result<Option<Event>, HistoryError> {
        Ok(self.next_event()?.map(|e| e.to_event()))
    }
}

fn malformed(state: &ReadState, field: Option<String>, message: impl Into<String>) -> HistoryError {
    HistoryError::Malformed {
        path: state.path.clone(),
        line: state.line_no,
        field,
        message: message.into(),
    }
}

/// Reads a whole history into memory (for tests and small tools; the checks stream).
pub fn read_all_events(path: impl AsRef<Path>) -> Result<Vec<Event>, HistoryError> {
    let mut reader = HistoryReader::open(path)?;
    let mut out = Vec::new();
    while let Some(e) = reader.next_owned()? {
        out.push(e);
    }
    Ok(out)
}

/// What a field should hold, for error messages.
type FieldRule = (&'static str, bool, fn(&Value) -> bool, &'static str);

const EVENT_FIELDS: &[FieldRule] = &[
    ("index", true, Value::is_u64, "a non-negative integer"),
    ("time_ns", true, Value::is_u64, "a non-negative integer"),
    (
        "process",
        true,
        is_process,
        "a client number or \"nemesis\"",
    ),
    (
        "type",
        true,
        is_event_type,
        "one of \"invoke\", \"ok\", \"fail\", \"info\"",
    ),
    ("f", true, Value::is_string, "a string"),
    ("request_id", false, is_opt_u64, "a non-negative integer"),
    ("node", false, is_opt_string, "a string"),
    ("exec_index", false, is_opt_u64, "a non-negative integer"),
];

fn is_process(v: &Value) -> bool {
    v.is_u64() || v.as_str() == Some("nemesis")
}

fn is_event_type(v: &Value) -> bool {
    matches!(v.as_str(), Some("invoke" | "ok" | "fail" | "info"))
}

fn is_opt_u64(v: &Value) -> bool {
    v.is_null() || v.is_u64()
}

fn is_opt_string(v: &Value) -> bool {
    v.is_null() || v.is_string()
}

/// Describes a JSON value briefly for "found ..." in messages.
pub(crate) fn describe_json(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        let short: String = text.chars().take(40).collect();
        format!("{short}...")
    } else {
        text
    }
}

/// Finds which field made a line fail to parse (the slow path, only on errors).
fn diagnose(line: &[u8], err: &serde_json::Error) -> (Option<String>, String) {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return (None, format!("not valid JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return (
            None,
            format!("expected a JSON object, found {}", describe_json(&value)),
        );
    };
    for (name, required, ok, expected) in EVENT_FIELDS {
        match obj.get(*name) {
            None if *required => return (Some(name.to_string()), "missing".into()),
            None => {}
            Some(v) if !ok(v) => {
                return (
                    Some(name.to_string()),
                    format!("expected {expected}, found {}", describe_json(v)),
                )
            }
            Some(_) => {}
        }
    }
    if let Some(value) = obj.get("value") {
        if let Some(e) = diagnose_value(value) {
            return e;
        }
    }
    (None, err.to_string())
}

/// A `value` field: its name, a test of what it holds, and the words for that.
type ValueRule = (&'static str, fn(&Value) -> bool, &'static str);

/// What each field of `value` must hold, when present.
const VALUE_FIELDS: &[ValueRule] = &[
    ("from", Value::is_string, "a string"),
    ("to", Value::is_string, "a string"),
    ("account", Value::is_string, "a string"),
    ("amount", Value::is_i64, "an integer"),
    ("from_balance", Value::is_i64, "an integer"),
    ("to_balance", Value::is_i64, "an integer"),
    ("balance", Value::is_i64, "an integer"),
    ("balances", is_balance_map, "an object of integer balances"),
];

fn is_balance_map(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.values().all(Value::is_i64))
}

/// The field of an object `value` that breaks its shape, if one does.
pub(crate) fn diagnose_value(value: &Value) -> Option<(Option<String>, String)> {
    let obj = value.as_object()?;
    VALUE_FIELDS.iter().find_map(|(name, ok, expected)| {
        let v = obj.get(*name).filter(|v| !v.is_null() && !ok(v))?;
        Some((
            Some(format!("value.{name}")),
            format!("expected {expected}, found {}", describe_json(v)),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_str(text: &str) -> (Vec<Event>, Option<Truncation>, Option<HistoryError>) {
        let mut r = HistoryReader::from_reader(text.as_bytes(), "h.jsonl");
        r.buf = vec![0; 16]; // exercise refills and growth
        let mut out = Vec::new();
        loop {
            match r.next_owned() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => return (out, r.truncation().cloned(), None),
                Err(e) => return (out, r.truncation().cloned(), Some(e)),
            }
        }
    }

    #[test]
    fn writer_output_reads_back_identically() {
        let events = vec![
            Event::invoke(3, 7, "transfer", values::transfer("A", "B", 3)).at(0, 10),
            Event::client(
                EventType::Ok,
                3,
                7,
                "transfer",
                values::transfer_ok("A", "B", 3, 7, 13),
            )
            .at(1, 20)
            .on_node("n1")
            .with_exec_index(1),
            Event::nemesis("kill", json!(["n2"])).at(2, 30),
            Event::invoke(4, 1, "read_all", Value::Null).at(3, 40),
        ];
        let mut w = HistoryWriter::new(Vec::new());
        for e in &events {
            w.append(e).unwrap();
        }
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 4);
        let (back, trunc, err) = read_str(&text);
        assert!(err.is_none() && trunc.is_none());
        assert_eq!(back, events);
    }

    #[test]
    fn truncated_last_line_stops_with_a_note() {
        let text = "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":{\"account\":\"A\"},\"request_id\":1}\n{\"index\":1,\"time_ns\":2,\"proc";
        let (back, trunc, err) = read_str(text);
        assert!(err.is_none());
        assert_eq!(back.len(), 1);
        assert_eq!(trunc, Some(Truncation { line: 2, bytes: 28 }));
    }

    #[test]
    fn malformed_line_names_line_and_field() {
        let text = "{\"index\":0,\"time_ns\":\"soon\",\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"request_id\":1}\n";
        let (_, _, err) = read_str(&format!("\n{text}"));
        let msg = err.unwrap().to_string();
        assert!(msg.starts_with("h.jsonl:2: field `time_ns`"), "{msg}");
    }

    #[test]
    fn fast_path_agrees_with_serde() {
        let lines = [
            r#"{"index":1,"time_ns":20,"process":3,"type":"ok","f":"transfer","value":{"from":"A","to":"B","amount":3,"from_balance":7,"to_balance":13},"request_id":7,"node":"n1","exec_index":1}"#,
            r#"{"index":2,"time_ns":30,"process":"nemesis","type":"info","f":"partition","value":[["n1"],["n2","n3"]]}"#,
            r#"{"index":3,"time_ns":40,"process":4,"type":"invoke","f":"read_all","value":null,"request_id":1,"extra":{"x":[1,2.5e3,true]}}"#,
        ];
        for l in lines {
            let fast = RawEvent::fast(l.as_bytes()).unwrap_or_else(|| panic!("{l}"));
            let slow: RawEvent<'_> = serde_json::from_str(l).unwrap();
            assert_eq!(fast.to_event(), slow.to_event());
        }
        // Escapes are left to serde.
        assert!(RawEvent::fast(
            br#"{"index":1,"time_ns":1,"process":1,"type":"ok","f":"re\u0061d","request_id":1}"#
        )
        .is_none());
    }

    #[test]
    fn client_event_without_request_id_is_an_error() {
        let text = "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n";
        let msg = read_str(text).2.unwrap().to_string();
        assert!(msg.contains("field `request_id`"), "{msg}");
    }
}
