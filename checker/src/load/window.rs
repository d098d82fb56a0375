//! Streaming over one large JSON document through a sliding window.
//!
//! serde_json parses fastest from a slice, where strings can be borrowed, but
//! final.json can be larger than we want to hold in memory, and its `io::Read` path is
//! several times slower (it handles one byte at a time). [`Scanner`] keeps a window of
//! the file in a buffer, walks the few levels of structure by hand (`{`, keys, `,`,
//! `[`), and hands each value to serde as a slice of the window. A value that runs
//! past the window is retried after the window is refilled and, if need be, grown, so
//! any value fits however large; memory stays a few megabytes.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Deserializer;
use std::io::{self, Read};

/// Why the document could not be read.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(io::Error),
    /// What is wrong, and the byte offset in the file where it was found.
    Syntax {
        offset: u64,
        message: String,
    },
}

const START_WINDOW: usize = 4 << 20;
const START_AHEAD: usize = 1 << 20;

pub(crate) struct Scanner<R: Read> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes of the file before `buf[0]`.
    dropped: u64,
    /// Parse a value only with at least this much of the file buffered after it
    /// starts (unless at the end), so nearly every value parses on the first try.
    ahead: usize,
}

/// serde_json's message without its position, which is relative to the window.
fn message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl<R: Read> Scanner<R> {
    pub fn new(src: R) -> Scanner<R> {
        Scanner {
            src,
            buf: vec![0; START_WINDOW],
            pos: 0,
            end: 0,
            eof: false,
            dropped: 0,
            ahead: START_AHEAD,
        }
    }

    /// The file offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.dropped + self.pos as u64
    }

    pub fn error(&self, message: impl Into<String>) -> ScanError {
        ScanError::Syntax {
            offset: self.offset(),
            message: message.into(),
        }
    }

    /// Moves the unread bytes to the front and reads until the buffer is full.
    fn fill(&mut self) -> Result<(), ScanError> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.dropped += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        while !self.eof && self.end < self.buf.len() {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ScanError::Io(e)),
            }
        }
        Ok(())
    }

    fn top_up(&mut self) -> Result<(), ScanError> {
        if !self.eof && self.end - self.pos < self.ahead {
            self.fill()?;
        }
        Ok(())
    }

    /// A value did not fit: look further ahead from now on.
    fn grow(&mut self) -> Result<(), ScanError> {
        self.ahead *= 2;
        if self.buf.len() < 2 * self.ahead {
            self.buf.resize(2 * self.ahead, 0);
        }
        self.fill()
    }

    /// The next byte that is not whitespace, without consuming it.
    pub fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            while self.pos < self.end {
                let b = self.buf[self.pos];
                if !b.is_ascii_whitespace() {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Consumes `b` (after whitespace), or fails saying `what` was expected.
    pub fn expect(&mut self, b: u8, what: &str) -> Result<(), ScanError> {
        match self.peek()? {
            Some(x) if x == b => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(self.error(format!("expected {what}, found `{}`", x as char))),
            None => Err(self.error(format!("expected {what}, found the end of the file"))),
        }
    }

    /// After a member of an object or array: true if another follows (`,`), false
    /// at `close`.
    pub fn more(&mut self, close: u8) -> Result<bool, ScanError> {
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(x) if x == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error(format!("expected `,` or `{}`", close as char))),
        }
    }

    /// Hands the window from the next value on to `attempt`, which parses one value
    /// from its start (see [`parse_one`]) and says how many bytes it took, or that
    /// it needs more of the file; then consumes those bytes.
    pub fn parse_with(
        &mut self,
        mut attempt: impl FnMut(&[u8], bool) -> Attempt,
    ) -> Result<(), ScanError> {
        self.peek()?;
        loop {
            self.top_up()?;
            match attempt(&self.buf[self.pos..self.end], self.eof) {
                Attempt::Done(n) => {
                    self.pos += n;
                    return Ok(());
                }
                Attempt::NeedMore => self.grow()?,
                Attempt::Fail(m) => return Err(self.error(m)),
            }
        }
    }

    /// Parses the next value into an owned `T`.
    pub fn value<T: DeserializeOwned>(&mut self) -> Result<T, ScanError> {
        let mut out = None;
        self.parse_with(|slice, eof| match parse_one::<T>(slice, eof) {
            Ok(Some((v, n))) => {
                out = Some(v);
                Attempt::Done(n)
            }
            Ok(None) => Attempt::NeedMore,
            Err(m) => Attempt::Fail(m),
        })?;
        out.ok_or_else(|| self.error("no value"))
    }

    /// Reads an object's next key and its colon; `None` at the closing brace.
    /// `first` says whether this is the first member (no comma before it).
    pub fn key(&mut self, first: bool) -> Result<Option<String>, ScanError> {
        if first {
            if self.peek()? == Some(b'}') {
                self.pos += 1;
                return Ok(None);
            }
        } else if !self.more(b'}')? {
            return Ok(None);
        }
        let k: String = self.value()?;
        self.expect(b':', "`:`")?;
        Ok(Some(k))
    }
}

/// What an attempt to parse from the window came to.
pub(crate) enum Attempt {
    /// Parsed, using this many bytes.
    Done(usize),
    /// The value runs past the window.
    NeedMore,
    Fail(String),
}

/// Parses one value from the start of `slice`; `Ok(None)` when it may run past the
/// end of the slice and `eof` is false.
pub(crate) fn parse_one<'s, T: Deserialize<'s>>(
    slice: &'s [u8],
    eof: bool,
) -> Result<Option<(T, usize)>, String> {
    let mut it = Deserializer::from_slice(slice).into_iter::<T>();
    match it.next() {
        // A value ending exactly at the window's edge may be a cut-off number.
        Some(Ok(v)) if it.byte_offset() < slice.len() || eof => Ok(Some((v, it.byte_offset()))),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) if e.is_eof() && !eof => Ok(None),
        Some(Err(e)) => Err(message(&e)),
        None if eof => Err("unexpected end of the file".into()),
        None => Ok(None),
    }
}
