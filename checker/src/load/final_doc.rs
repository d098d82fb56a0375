//! final.json's outer shape, walked once for every kind of run.
//!
//! Classic and sharded final.json share one shape: `{"nodes": {"n1": {..., "executed":
//! [entry, ...]}, ...}, ...}` (docs/final-json.md, docs/sharded.md). [`read`] streams it
//! through the sliding window (`crate::load::window`), finds the replicas, their fields and
//! each log entry, and hands them to a [`Doc`]: the classic loader (`crate::run::final_load`)
//! and the sharded one (`crate::run::shard_load`) differ only in what an entry is and where
//! it is laid. So both read the file in the same bounded memory, at the same speed, and
//! name a fault in the same words (`byte 812: nodes.n1: executed[3]: ...`).

use crate::final_state::FinalError;
use crate::load::window::{Attempt, ScanError, Scanner};
use serde::de::IgnoredAny;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What a loader does with the parts of final.json the walk finds.
pub(crate) trait Doc {
    /// A top-level field other than `nodes`, at its value: read it or skip it.
    fn top_field<R: Read>(&mut self, key: &str, sc: &mut Scanner<R>) -> Result<(), ScanError> {
        let _ = key;
        sc.value::<IgnoredAny>()?;
        Ok(())
    }

    /// Replica `name`'s object begins; an error says why it cannot be taken.
    fn begin_node(&mut self, name: &str) -> Result<(), String>;

    /// A field of the current replica other than `executed`, at its value.
    fn node_field<R: Read>(&mut self, key: &str, sc: &mut Scanner<R>) -> Result<(), ScanError>;

    /// The current replica's `executed` begins (`null` or an array follows).
    fn begin_executed(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// One entry of the current replica's `executed`, from the start of `window`
    /// (`eof`: the file ends with it): parse it, lay it, say how many bytes it took.
    fn entry(&mut self, window: &[u8], eof: bool) -> Attempt;

    /// The current replica's object has ended.
    fn end_node(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Opens final.json: `Ok(None)` when it does not exist, else the file and its size.
pub(crate) fn open(path: &Path) -> Result<Option<(File, u64)>, FinalError> {
    match File::open(path) {
        Ok(f) => {
            let size = f.metadata().map_or(0, |m| m.len());
            Ok(Some((f, size)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FinalError::io(path, e)),
    }
}

/// Walks `file` (final.json at `path`) into `doc`. A syntax error names the byte
/// offset and where in the document it is, after `what` (e.g. "a sharded final.json
/// (see docs/sharded.md): ").
pub(crate) fn read<D: Doc>(
    path: &Path,
    file: File,
    doc: &mut D,
    what: &str,
) -> Result<(), FinalError> {
    let mut sc = Scanner::new(file);
    root(doc, &mut sc).map_err(|e| match e {
        ScanError::Io(cause) => FinalError::io(path, cause),
        ScanError::Syntax { offset, message } => FinalError::Malformed {
            path: path.to_path_buf(),
            message: format!("{what}byte {offset}: {message}"),
        },
    })
}

/// Adds `context` (where in the document) to a syntax error; `context` is only
/// formatted when there is an error.
pub(crate) fn within<C: std::fmt::Display>(context: C) -> impl FnOnce(ScanError) -> ScanError {
    move |e| match e {
        ScanError::Syntax { offset, message } => ScanError::Syntax {
            offset,
            message: format!("{context}: {message}"),
        },
        io => io,
    }
}

/// `{"nodes": {...}, ...}`
fn root<D: Doc, R: Read>(doc: &mut D, sc: &mut Scanner<R>) -> Result<(), ScanError> {
    sc.expect(b'{', "an object")?;
    let (mut seen, mut first) = (false, true);
    while let Some(key) = sc.key(first)? {
        first = false;
        if key == "nodes" && seen {
            return Err(sc.error("field `nodes` appears twice"));
        } else if key == "nodes" {
            nodes(doc, sc)?;
            seen = true;
        } else {
            doc.top_field(&key, sc)?;
        }
    }
    if sc.peek()?.is_some() {
        return Err(sc.error("unexpected text after the end of the document"));
    }
    if !seen {
        return Err(sc.error("field `nodes` is missing"));
    }
    Ok(())
}

/// `{"n1": {...}, ...}`
fn nodes<D: Doc, R: Read>(doc: &mut D, sc: &mut Scanner<R>) -> Result<(), ScanError> {
    sc.expect(b'{', "an object of replicas")?;
    let mut first = true;
    while let Some(name) = sc.key(first)? {
        first = false;
        node(doc, sc, &name).map_err(within(format_args!("nodes.{name}")))?;
    }
    Ok(())
}

/// `{"balances": ..., "executed": [...], "error": ..., ...}`
fn node<D: Doc, R: Read>(doc: &mut D, sc: &mut Scanner<R>, name: &str) -> Result<(), ScanError> {
    doc.begin_node(name).map_err(|m| sc.error(m))?;
    sc.expect(b'{', "an object with balances, executed and error")?;
    let mut first = true;
    while let Some(key) = sc.key(first)? {
        first = false;
        if key == "executed" {
            doc.begin_executed().map_err(|m| sc.error(m))?;
            executed(doc, sc)?;
        } else {
            doc.node_field(&key, sc)?;
        }
    }
    doc.end_node().map_err(|m| sc.error(m))
}

/// `[entry, ...]` or `null`; each entry goes to [`Doc::entry`] where it lies in the
/// window.
fn executed<D: Doc, R: Read>(doc: &mut D, sc: &mut Scanner<R>) -> Result<(), ScanError> {
    if sc.peek()? == Some(b'n') {
        return sc.value::<()>().map_err(within("executed"));
    }
    sc.expect(b'[', "an array").map_err(within("executed"))?;
    if sc.peek()? == Some(b']') {
        return sc.expect(b']', "`]`");
    }
    let mut i = 0u64;
    loop {
        sc.parse_with(|window, eof| doc.entry(window, eof))
            .map_err(within(Indexed("executed", i)))?;
        i += 1;
        if !sc.more(b']').map_err(within("executed"))? {
            return Ok(());
        }
    }
}

/// `name[i]`, formatted only when needed.
struct Indexed(&'static str, u64);

impl std::fmt::Display for Indexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// The bits of a [`text_mark`] that hold the text's length.
pub(crate) const TEXT_LEN: u64 = 0xffff;

/// An entry's exact text, marked (both loaders confirm a replica's copy of an entry already
/// laid by comparing marks, without parsing it): its length in the low 16 bits (0 when longer, so
/// never matched) and a fingerprint of its bytes above them.
pub(crate) fn text_mark(text: &[u8]) -> u64 {
    use std::hash::Hasher;
    let Ok(len) = u16::try_from(text.len()) else {
        return 0;
    };
    // Four words at a time into four independent lanes: one lane's multiplication
    // does not wait for another's (every entry of every replica is marked, and one
    // chain of dependent multiplications showed as 7% of the check in profiles).
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let mut lanes = [1u64, 2, 3, 4];
    let mut blocks = text.chunks_exact(32);
    for b in &mut blocks {
        for (l, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            *l = mix(*l, word(w));
        }
    }
    let mut h = crate::model::Fx::default();
    for l in lanes {
        h.write_u64(l);
    }
    h.write(blocks.remainder());
    (h.finish() & !TEXT_LEN) | u64::from(len)
}
