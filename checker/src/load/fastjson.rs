//! A fast path for parsing the two record shapes that make up almost all input: a
//! history line and a final.json log entry.
//!
//! serde_json is general: it validates every key as UTF-8, dispatches each through
//! visitors, and so spends about 8,000 instructions on a 150-byte record; at ten
//! million records that is most of the time budget. [`Cur`] reads the same JSON with
//! byte comparisons: keys are matched as bytes, strings are found with `memchr`, and
//! integers are accumulated digit by digit.
//!
//! It accepts only what it fully understands. Anything else (an escape in a string,
//! a float where an integer belongs, a duplicated or oddly typed field) is a [`Miss`],
//! and the caller falls back to serde, which either parses the record anyway or gives
//! the precise error. So the fast path changes speed, never results.

use crate::load::event_parts::{CowStr, EventType, Process};
use crate::load::fields::{Balances, ErrText, Fields, Shape, ValueFields};
use std::borrow::Cow;

/// Why the fast path gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// The input ended inside the record (more may follow in a file window).
    End,
    /// Something the fast path does not handle: use serde.
    Other,
}

pub(crate) type R<T> = Result<T, Miss>;

/// A position in a byte slice.
pub(crate) struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    pub fn new(b: &'a [u8]) -> Cur<'a> {
        Cur { b, i: 0 }
    }

    /// Bytes consumed.
    pub fn pos(&self) -> usize {
        self.i
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> R<u8> {
        // Generated JSON is compact: the next byte is usually not whitespace.
        match self.b.get(self.i) {
            Some(&c) if c > b' ' => Ok(c),
            _ => {
                self.ws();
                self.b.get(self.i).copied().ok_or(Miss::End)
            }
        }
    }

    pub fn eat(&mut self, c: u8) -> R<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Miss::Other)
        }
    }

    /// Only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// The bytes of a string without escapes (escapes go to serde).
    fn raw_str(&mut self) -> R<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let n = string_end(rest)?;
        self.i += n + 1;
        Ok(&rest[..n])
    }

    pub fn str(&mut self) -> R<&'a str> {
        std::str::from_utf8(self.raw_str()?).map_err(|_| Miss::Other)
    }

    fn cow(&mut self) -> R<CowStr<'a>> {
        Ok(CowStr(Cow::Borrowed(self.str()?)))
    }

    /// An object key and its colon.
    pub fn key(&mut self) -> R<&'a [u8]> {
        let k = self.raw_str()?;
        self.eat(b':')?;
        Ok(k)
    }

    /// An object key and its colon, `hint` (written `"name":`) matched in place when
    /// it is next, so the usual scan for the key's end is skipped; any other key is
    /// read as [`Cur::key`] reads it. The key returned is the same either way.
    #[inline]
    pub fn key_hinted(&mut self, hints: [Lit; 2]) -> R<&'a [u8]> {
        self.peek()?;
        let rest = &self.b[self.i..];
        for hint in hints {
            if hint.len > 3 && hint.starts(rest) {
                self.i += hint.len;
                return Ok(&rest[1..hint.len - 2]);
            }
        }
        self.key()
    }

    /// Takes `lit` if the input goes on with it.
    #[inline]
    pub fn take(&mut self, lit: Lit) -> bool {
        let hit = lit.starts(&self.b[self.i..]);
        if hit {
            self.i += lit.len;
        }
        hit
    }

    /// Walks an object's members: `f` is called with each key and must consume its
    /// value.
    pub fn object(&mut self, f: impl FnMut(&mut Self, &'a [u8]) -> R<()>) -> R<()> {
        self.object_hinted(|_, _| [Lit::NONE; 2], f)
    }

    /// [`Cur::object`] for objects whose keys usually come in a known order:
    /// `hint(n, previous key)` gives the keys expected as member `n` (as `"name":`,
    /// or [`Lit::NONE`] for no guess). A right guess saves scanning the key; a wrong one only
    /// costs a comparison, and the keys `f` sees are the same.
    pub fn object_hinted(
        &mut self,
        hint: impl Fn(usize, &[u8]) -> [Lit; 2],
        mut f: impl FnMut(&mut Self, &'a [u8]) -> R<()>,
    ) -> R<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        let mut prev: &[u8] = b"";
        for n in 0.. {
            let k = self.key_hinted(hint(n, prev))?;
            prev = k;
            f(self, k)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Miss::Other),
            }
        }
        Err(Miss::Other)
    }

    fn digits(&mut self) -> R<u64> {
        let start = self.i;
        let rest = &self.b[start..];
        // Eight digits at a time while whole words remain; the file's tail by bytes.
        let (mut v, mut n) = (0u64, 0usize);
        loop {
            match rest.get(n..n + 8) {
                Some(word) => {
                    let (d, k) =
                        eight_digits(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
                    v = v.wrapping_mul(POW10[k]).wrapping_add(d);
                    n += k;
                    if k < 8 {
                        break;
                    }
                }
                None => {
                    while let Some(&c) = rest.get(n).filter(|c| c.is_ascii_digit()) {
                        v = v.wrapping_mul(10).wrapping_add((c - b'0') as u64);
                        n += 1;
                    }
                    break;
                }
            }
        }
        self.i += n;
        // Nineteen digits cannot overflow: only longer numbers need checking.
        if n > 19 {
            v = rest[..n]
                .iter()
                .try_fold(0u64, |v, &c| {
                    v.checked_mul(10)?.checked_add((c - b'0') as u64)
                })
                .ok_or(Miss::Other)?;
        }
        match self.b.get(self.i) {
            None => Err(Miss::End),
            Some(b'.' | b'e' | b'E') => Err(Miss::Other),
            _ if n == 0 || (n > 1 && self.b[start] == b'0') => Err(Miss::Other),
            _ => Ok(v),
        }
    }

    pub fn u64(&mut self) -> R<u64> {
        self.peek()?;
        self.digits()
    }

    pub fn i64(&mut self) -> R<i64> {
        if self.peek()? == b'-' {
            self.i += 1;
            let v = self.digits()?;
            return 0i64.checked_sub_unsigned(v).ok_or(Miss::Other);
        }
        i64::try_from(self.digits()?).map_err(|_| Miss::Other)
    }

    /// `null`: true (consumed); anything else: false (not consumed).
    pub fn null(&mut self) -> R<bool> {
        if self.peek()? != b'n' {
            return Ok(false);
        }
        if self.b.len() < self.i + 4 {
            return Err(Miss::End);
        }
        if &self.b[self.i..self.i + 4] != b"null" {
            return Err(Miss::Other);
        }
        self.i += 4;
        Ok(true)
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.null()? {
            Ok(None)
        } else {
            f(self).map(Some)
        }
    }

    pub fn opt_u64(&mut self) -> R<Option<u64>> {
        self.opt(Self::u64)
    }

    fn opt_i64(&mut self) -> R<Option<i64>> {
        self.opt(Self::i64)
    }

    pub fn opt_str(&mut self) -> R<Option<&'a str>> {
        self.opt(Self::str)
    }

    fn opt_cow(&mut self) -> R<Option<CowStr<'a>>> {
        self.opt(Self::cow)
    }

    /// Skips any value (checking it is well-formed JSON) and returns its text.
    pub fn skip(&mut self) -> R<&'a str> {
        self.peek()?;
        let start = self.i;
        self.skip_value(0)?;
        std::str::from_utf8(&self.b[start..self.i]).map_err(|_| Miss::Other)
    }

    fn skip_value(&mut self, depth: usize) -> R<()> {
        if depth > 100 {
            return Err(Miss::Other);
        }
        match self.peek()? {
            b'"' => self.raw_str().map(drop),
            b'{' => self.object(|c, _| c.skip_value(depth + 1)),
            b'[' => self.array(depth),
            _ => self.scalar(),
        }
    }

    fn array(&mut self, depth: usize) -> R<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_value(depth + 1)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Miss::Other),
            }
        }
    }

    /// `true`, `false`, `null` or a number.
    fn scalar(&mut self) -> R<()> {
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
        if self.i == self.b.len() {
            return Err(Miss::End);
        }
        let text = &self.b[start..self.i];
        if matches!(text, b"true" | b"false" | b"null") || is_number(text) {
            Ok(())
        } else {
            Err(Miss::Other)
        }
    }

    /// `value`: an object's fields, `null`, or anything else skipped.
    #[cfg(test)]
    pub fn value_fields(&mut self) -> R<ValueFields<'a>> {
        let mut out = ValueFields::default();
        self.value_fields_into(&mut out)?;
        Ok(out)
    }

    /// [`Cur::value_fields`] into `out`, which must be the default: the fields are a
    /// few hundred bytes, and moving them out through results showed as memcpy in
    /// profiles.
    pub fn value_fields_into(&mut self, out: &mut ValueFields<'a>) -> R<()> {
        match self.peek()? {
            b'{' => {
                out.shape = Shape::Object;
                self.fields_into(&mut out.fields)
            }
            b'n' if self.null()? => Ok(()),
            _ => {
                self.skip()?;
                out.shape = Shape::Other;
                Ok(())
            }
        }
    }

    fn fields_into(&mut self, v: &mut Fields<'a>) -> R<()> {
        let mut seen = 0u16;
        self.object_hinted(value_key_after, |c, k| {
            let bit = match k {
                b"from" => set(&mut v.from, c.opt_cow()?, 0),
                b"to" => set(&mut v.to, c.opt_cow()?, 1),
                b"amount" => set(&mut v.amount, c.opt_i64()?, 2),
                b"from_balance" => set(&mut v.from_balance, c.opt_i64()?, 3),
                b"to_balance" => set(&mut v.to_balance, c.opt_i64()?, 4),
                b"account" => set(&mut v.account, c.opt_cow()?, 5),
                b"balance" => set(&mut v.balance, c.opt_i64()?, 6),
                b"error" => {
                    let text = c.skip()?;
                    v.error = (text != "null").then_some(ErrText(text));
                    7
                }
                b"balances" => set(&mut v.balances, c.opt(Self::balances)?, 8),
                _ => {
                    c.skip()?;
                    return Ok(());
                }
            };
            once(&mut seen, bit)
        })
    }

    fn balances(&mut self) -> R<Balances<'a>> {
        let mut out = Vec::with_capacity(8);
        self.object(|c, k| {
            let name = std::str::from_utf8(k).map_err(|_| Miss::Other)?;
            out.push((CowStr(Cow::Borrowed(name)), c.i64()?));
            Ok(())
        })?;
        Ok(Balances(out))
    }

    pub fn process(&mut self) -> R<Process> {
        if self.peek()? == b'"' {
            return match self.raw_str()? {
                b"nemesis" => Ok(Process::Nemesis),
                _ => Err(Miss::Other),
            };
        }
        self.u64().map(Process::Client)
    }

    pub fn event_type(&mut self) -> R<EventType> {
        const TYPES: [(Lit, EventType); 4] = [
            (Lit::new(b"\"invoke\""), EventType::Invoke),
            (Lit::new(b"\"ok\""), EventType::Ok),
            (Lit::new(b"\"fail\""), EventType::Fail),
            (Lit::new(b"\"info\""), EventType::Info),
        ];
        self.peek()?;
        for (text, kind) in TYPES {
            if self.take(text) {
                return Ok(kind);
            }
        }
        match self.raw_str()? {
            b"invoke" => Ok(EventType::Invoke),
            b"ok" => Ok(EventType::Ok),
            b"fail" => Ok(EventType::Fail),
            b"info" => Ok(EventType::Info),
            _ => Err(Miss::Other),
        }
    }

    pub fn f(&mut self) -> R<CowStr<'a>> {
        const NAMES: [(Lit, &str); 3] = [
            (Lit::new(b"\"transfer\""), "transfer"),
            (Lit::new(b"\"read\""), "read"),
            (Lit::new(b"\"read_all\""), "read_all"),
        ];
        self.peek()?;
        for (text, name) in NAMES {
            if self.take(text) {
                return Ok(CowStr(Cow::Borrowed(name)));
            }
        }
        self.cow()
    }
}

/// A literal of up to 16 bytes, compared with the input as one 16-byte word (a
/// comparison of slices of unknown length is a call to `memcmp`, which showed in
/// profiles).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lit {
    word: u128,
    mask: u128,
    len: usize,
}

impl Lit {
    /// No literal: matches nothing.
    pub const NONE: Lit = Lit {
        word: 0,
        mask: 0,
        len: 0,
    };

    pub const fn new(text: &[u8]) -> Lit {
        assert!(text.len() <= 16, "a literal is at most 16 bytes");
        let mut word = 0u128;
        let mut i = 0;
        while i < text.len() {
            word |= (text[i] as u128) << (8 * i);
            i += 1;
        }
        let mask = match text.len() {
            16 => u128::MAX,
            n => (1u128 << (8 * n)) - 1,
        };
        Lit {
            word,
            mask,
            len: text.len(),
        }
    }

    /// Whether `rest` begins with this literal (never, for [`Lit::NONE`]).
    #[inline]
    fn starts(&self, rest: &[u8]) -> bool {
        if self.len == 0 {
            return false;
        }
        match rest.get(..16) {
            Some(w) => {
                let w = u128::from_le_bytes(w.try_into().unwrap_or([0; 16]));
                (w ^ self.word) & self.mask == 0
            }
            None => rest.starts_with(&self.word.to_le_bytes()[..self.len]),
        }
    }
}

/// The key a history event's or log entry's `value` usually has after `prev` (see
/// [`Cur::object_hinted`]): the orders the harness and the replicas write.
fn value_key_after(_: usize, prev: &[u8]) -> [Lit; 2] {
    const AMOUNT: Lit = Lit::new(b"\"amount\":");
    const ACCOUNT: Lit = Lit::new(b"\"account\":");
    const ERROR: Lit = Lit::new(b"\"error\":");
    const FROM: Lit = Lit::new(b"\"from\":");
    const FROM_BALANCE: Lit = Lit::new(b"\"from_balance\":");
    const TO: Lit = Lit::new(b"\"to\":");
    const TO_BALANCE: Lit = Lit::new(b"\"to_balance\":");
    const BALANCE: Lit = Lit::new(b"\"balance\":");
    const BALANCES: Lit = Lit::new(b"\"balances\":");
    match prev {
        b"" => [AMOUNT, ACCOUNT],
        b"amount" => [FROM, ERROR],
        b"from" => [TO, FROM_BALANCE],
        b"from_balance" | b"error" => [TO, FROM],
        b"to" => [TO_BALANCE, Lit::NONE],
        b"account" => [BALANCE, Lit::NONE],
        _ => [BALANCES, Lit::NONE],
    }
}

impl<'a> Cur<'a> {
    /// The input from the next value on (after whitespace), for a parser of its own
    /// that then [`Cur::advance`]s past what it took.
    pub fn rest(&mut self) -> &'a [u8] {
        let _ = self.peek();
        &self.b[self.i..]
    }

    /// Takes `n` bytes of [`Cur::rest`].
    pub fn advance(&mut self, n: usize) {
        self.i = (self.i + n).min(self.b.len());
    }
}

/// [`value_key_after`] for the sharded values' own parsers (`crate::shards`).
pub(crate) fn value_key_hint(n: usize, prev: &[u8]) -> [Lit; 2] {
    value_key_after(n, prev)
}

/// The keys of a history line, in the order the harness writes them.
pub(crate) fn event_key(n: usize, _: &[u8]) -> [Lit; 2] {
    const KEYS: [Lit; 9] = [
        Lit::new(b"\"index\":"),
        Lit::new(b"\"time_ns\":"),
        Lit::new(b"\"process\":"),
        Lit::new(b"\"type\":"),
        Lit::new(b"\"f\":"),
        Lit::new(b"\"value\":"),
        Lit::new(b"\"request_id\":"),
        Lit::new(b"\"node\":"),
        Lit::new(b"\"exec_index\":"),
    ];
    [KEYS.get(n).copied().unwrap_or(Lit::NONE), Lit::NONE]
}

/// The keys of a final.json log entry, in the order the harness writes them.
pub(crate) fn entry_key(n: usize, _: &[u8]) -> [Lit; 2] {
    const KEYS: [Lit; 6] = [
        Lit::new(b"\"exec_index\":"),
        Lit::new(b"\"client\":"),
        Lit::new(b"\"request_id\":"),
        Lit::new(b"\"f\":"),
        Lit::new(b"\"value\":"),
        Lit::new(b"\"type\":"),
    ];
    [KEYS.get(n).copied().unwrap_or(Lit::NONE), Lit::NONE]
}

/// Powers of ten up to 10^8, for appending `k` digits to a number.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The leading digits of eight bytes read little-endian (the first byte lowest): their
/// value and how many there are (0 to 8). A byte is a digit when `b - '0'` is below 10:
/// then neither that difference nor it plus 6 has a high nibble. Bytes before the first
/// non-digit are digits and borrow or carry nothing, so that one is found exactly.
fn eight_digits(w: u64) -> (u64, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let sub = w.wrapping_sub(ONES * b'0' as u64);
    let bad = (sub | sub.wrapping_add(ONES * 6)) & (ONES * 0xf0);
    let k = (bad.trailing_zeros() / 8) as usize;
    if k == 0 {
        return (0, 0);
    }
    // The k digits moved to the top bytes (zero bytes below them are leading zeros),
    // then summed pairwise: 2 digits per 16 bits, 4 per 32, 8 in all.
    let d = (sub << (8 * (8 - k))) & (ONES * 0x0f);
    let d = (d.wrapping_mul(10 * 256 + 1) >> 8) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_ffff_0000_ffff;
    let d = d.wrapping_mul(10_000 * (1 << 32) + 1) >> 32;
    (d, k)
}

/// The length of a string's contents (up to its closing quote), or `Other` at an
/// escape or control character. Eight bytes at a time (SWAR): a word has a byte
/// equal to `q` where `has_zero(w ^ q)`, below 0x20 where `(w - 0x20..) & !w & 0x80..`.
fn string_end(rest: &[u8]) -> R<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut n = 0;
    while let Some(chunk) = rest.get(n..n + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let hit = has_zero(w ^ (ONES * b'"' as u64))
            | has_zero(w ^ (ONES * b'\\' as u64))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hit != 0 {
            n += (hit.trailing_zeros() / 8) as usize;
            return if rest[n] == b'"' {
                Ok(n)
            } else {
                Err(Miss::Other)
            };
        }
        n += 8;
    }
    loop {
        match rest.get(n) {
            Some(b'"') => return Ok(n),
            Some(&c) if c == b'\\' || c < 0x20 => return Err(Miss::Other),
            Some(_) => n += 1,
            None => return Err(Miss::End),
        }
    }
}

/// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_number(t: &[u8]) -> bool {
    let digits = |t: &[u8], i: &mut usize| {
        let s = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    let mut i = usize::from(t.first() == Some(&b'-'));
    let int_start = i;
    if !digits(t, &mut i) || (t[int_start] == b'0' && i - int_start > 1) {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(t, &mut i) {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(t, &mut i) {
            return false;
        }
    }
    i == t.len()
}

/// Stores an optional parsed field and returns its bit for [`once`].
pub(crate) fn set<T>(slot: &mut Option<T>, v: Option<T>, bit: u16) -> u16 {
    *slot = v;
    bit
}

/// Stores a required parsed field and returns its bit for [`once`].
pub(crate) fn put<T>(slot: &mut Option<T>, v: T, bit: u16) -> u16 {
    *slot = Some(v);
    bit
}

/// Marks field `bit` as seen; a field given twice goes to serde (which rejects it).
pub(crate) fn once(seen: &mut u16, bit: u16) -> R<()> {
    if *seen & (1 << bit) != 0 {
        return Err(Miss::Other);
    }
    *seen |= 1 << bit;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_skips_the_rest() {
        let text = br#"{"amount":3,"extra":{"a":[1,"xy",{}]},"from":"A","to":"B","from_balance":-7,"error":"insufficient-funds","balances":{"A":1,"B":2}} "#;
        let mut c = Cur::new(text);
        let v = c.value_fields().unwrap();
        assert!(c.at_end());
        assert_eq!(v.fields.amount, Some(3));
        assert_eq!(v.fields.from_balance, Some(-7));
        assert_eq!(&*v.fields.from.unwrap(), "A");
        assert_eq!(v.fields.error.unwrap().0, "\"insufficient-funds\"");
        assert_eq!(v.fields.balances.unwrap().0.len(), 2);
    }

    #[test]
    fn gives_up_on_what_serde_should_judge() {
        for bad in [
            r#"{"from":"A\u0041"}"#,
            r#"{"amount":3.5}"#,
            r#"{"amount":1,"amount":2}"#,
            r#"{"amount":007}"#,
        ] {
            assert_eq!(
                Cur::new(bad.as_bytes()).value_fields().err(),
                Some(Miss::Other),
                "{bad}"
            );
        }
        assert_eq!(
            Cur::new(br#"{"amount":3"#).value_fields().err(),
            Some(Miss::End)
        );
    }

    #[test]
    fn reads_integers_of_every_length_wherever_they_end() {
        let mut n = 0u64;
        let mut values = vec![
            0,
            9,
            10,
            u64::MAX,
            u64::MAX / 10,
            10_000_000_000_000_000_000,
        ];
        for _ in 0..400 {
            n = n
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            values.push(n >> (n % 64));
        }
        for v in values {
            for tail in [",", "}", " ", "]", ",\"a\":1234567890123}"] {
                let text = format!("{v}{tail}");
                let mut c = Cur::new(text.as_bytes());
                assert_eq!(c.u64(), Ok(v), "{text}");
                assert_eq!(c.pos(), v.to_string().len(), "{text}");
            }
            let text = format!("-{v}");
            let expect = 0i64.checked_sub_unsigned(v).ok_or(Miss::Other);
            assert_eq!(
                Cur::new(format!("{text},").as_bytes()).i64(),
                expect,
                "{text}"
            );
        }
        for bad in [
            "18446744073709551616,",
            "99999999999999999999,",
            "012,",
            "1.5,",
            "7e3,",
        ] {
            assert_eq!(Cur::new(bad.as_bytes()).u64(), Err(Miss::Other), "{bad}");
        }
        assert_eq!(Cur::new(b"12345678").u64(), Err(Miss::End));
        assert_eq!(Cur::new(b"123456789012").u64(), Err(Miss::End));
    }

    #[test]
    fn hinted_keys_are_the_keys_read_without_hints() {
        let text = br#"{"index":3,"time_ns" :4, "process":5,"typo":"ok","f":"read","value":{"account":"B","balance":-3},"request_id":1}"#;
        let walk = |hinted: bool| {
            let mut keys = Vec::new();
            let mut c = Cur::new(text);
            let hint = |n: usize, p: &[u8]| {
                if hinted {
                    event_key(n, p)
                } else {
                    [Lit::NONE; 2]
                }
            };
            c.object_hinted(hint, |c, k| {
                keys.push(String::from_utf8_lossy(k).into_owned());
                c.skip().map(drop)
            })
            .unwrap();
            assert!(c.at_end());
            keys
        };
        assert_eq!(walk(true), walk(false));
        assert_eq!(walk(true)[3], "typo");
        let v = Cur::new(br#"{"account":"B","balance":-3}"#)
            .value_fields()
            .unwrap();
        assert_eq!(
            (v.fields.account.as_deref(), v.fields.balance),
            (Some("B"), Some(-3))
        );
    }

    #[test]
    fn finds_string_ends_in_words_and_tails() {
        assert_eq!(string_end(b"abc\"rest"), Ok(3));
        assert_eq!(string_end(b"exec_index\":12"), Ok(10));
        assert_eq!(string_end(b"0123456789abcdef\""), Ok(16));
        assert_eq!(string_end(b"ab\\\"cdefghijk\""), Err(Miss::Other));
        assert_eq!(string_end(b"abcdefgh\nij\""), Err(Miss::Other));
        assert_eq!(string_end(b"abc"), Err(Miss::End));
        assert_eq!(string_end("caf\u{e9}s\"".as_bytes()), Ok(6));
    }

    #[test]
    fn skips_scalars_and_nested_values() {
        let mut c = Cur::new(br#"[1, {"a": "]"}] , true,-1.5e3 "#);
        assert_eq!(c.skip().unwrap(), r#"[1, {"a": "]"}]"#);
        c.eat(b',').unwrap();
        assert_eq!(c.skip().unwrap(), "true");
        c.eat(b',').unwrap();
        assert_eq!(c.skip().unwrap(), "-1.5e3");
        for bad in ["tru ", "01 ", "1. ", "[1 2] ", r#"{"a" 1} "#] {
            assert_eq!(
                Cur::new(bad.as_bytes()).skip().err(),
                Some(Miss::Other),
                "{bad}"
            );
        }
    }
}
