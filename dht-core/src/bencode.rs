//! Bencode: a zero-copy, validating decoder and a small encoder.
//!
//! The decoder borrows everything from its input: byte strings are slices of it, and
//! every value remembers its raw span, because a BEP 44 value must be kept exactly as it
//! was bencoded on the wire (its hash and signature cover those bytes). It never panics,
//! never allocates, bounds nesting at [`MAX_DEPTH`], and accepts only canonical
//! integers and string lengths (no leading zeros, no `-0`, no overflow). Dictionary key
//! order is *not* checked: peers in the wild do not all sort their keys, and nothing in
//! KRPC depends on the order.
//!
//! The encoder appends to a `Vec<u8>`; [`DictWriter`] emits keys in the order it is
//! given them and checks, in debug builds, that this order is sorted, as bencode requires.

/// Deepest nesting the decoder accepts (the protocol needs 3; a BEP 44 value may nest more).
pub const MAX_DEPTH: usize = 32;

/// Why a byte string is not one valid bencoded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {offset}: {reason}")]
pub struct Error {
    /// Offset in the input where decoding gave up.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

/// One decoded value: its kind and the exact bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
    kind: Kind<'a>,
}

/// What a [`Value`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i...e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(&'a [u8]),
    /// `l...e`, already validated; iterate with [`List::iter`].
    List(List<'a>),
    /// `d...e`, already validated; iterate with [`Dict::iter`].
    Dict(Dict<'a>),
}

/// A validated bencoded list, decoded lazily.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List<'a> {
    raw: &'a [u8],
}

/// A validated bencoded dictionary, decoded lazily.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dict<'a> {
    raw: &'a [u8],
}

impl<'a> Value<'a> {
    /// The exact bytes this value was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// What the value is.
    pub fn kind(&self) -> Kind<'a> {
        self.kind
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a>> {
        match self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        match self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl<'a> List<'a> {
    /// The raw bytes of the list, `l` to `e` inclusive.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The elements in order.
    pub fn iter(&self) -> ListIter<'a> {
        ListIter {
            parser: Parser::new(self.raw, 1),
        }
    }
}

impl<'a> Dict<'a> {
    /// The raw bytes of the dictionary, `d` to `e` inclusive.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The entries in wire order.
    pub fn iter(&self) -> DictIter<'a> {
        DictIter {
            parser: Parser::new(self.raw, 1),
        }
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Iterator over a [`List`].
#[derive(Clone, Debug)]
pub struct ListIter<'a> {
    parser: Parser<'a>,
}

/// Iterator over a [`Dict`]: `(key, value)` pairs.
#[derive(Clone, Debug)]
pub struct DictIter<'a> {
    parser: Parser<'a>,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.parser.peek() == Some(b'e') {
            return None;
        }
        // The list was validated when it was decoded, so re-parsing it cannot fail; were it
        // to, ending the iteration is the panic-free answer. Depth 0 is safe for the same
        // reason: the subtree already passed a stricter depth check.
        match self.parser.value(0) {
            Ok(v) => Some(v),
            Err(_) => {
                self.parser.pos = self.parser.buf.len();
                None
            }
        }
    }
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<(&'a [u8], Value<'a>)> {
        if self.parser.peek() == Some(b'e') {
            return None;
        }
        // See `ListIter::next`: validated already, so errors only end the iteration.
        match self.parser.entry(0) {
            Ok(kv) => Some(kv),
            Err(_) => {
                self.parser.pos = self.parser.buf.len();
                None
            }
        }
    }
}

/// Decodes `input`, which must be exactly one bencoded value (no trailing bytes).
pub fn decode(input: &[u8]) -> Result<Value<'_>, Error> {
    let mut p = Parser::new(input, 0);
    let v = p.value(0)?;
    if p.pos != input.len() {
        return Err(p.err("trailing bytes after the value"));
    }
    Ok(v)
}

/// A single-pass reader for callers that know the shape they expect: it walks
/// dictionaries in place, so a KRPC message is scanned once instead of being validated
/// first and walked again. It applies the same rules as [`decode`] (depth, canonical
/// integers, lengths checked before use); call [`Cursor::finish`] to reject trailing bytes.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    parser: Parser<'a>,
    depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Cursor {
            parser: Parser::new(input, 0),
            depth: 0,
        }
    }

    /// Enters the dictionary at the cursor and returns true; returns false, consuming
    /// nothing, if the next value is not a dictionary.
    pub fn enter_dict(&mut self) -> Result<bool, Error> {
        if self.parser.peek() != Some(b'd') {
            return Ok(false);
        }
        self.parser.open(self.depth)?;
        self.depth += 1;
        Ok(true)
    }

    /// The next key of the dictionary being walked, or `None` once its end is consumed.
    /// After a key, the caller must consume its value with [`Cursor::value`] or
    /// [`Cursor::enter_dict`].
    pub fn next_key(&mut self) -> Result<Option<&'a [u8]>, Error> {
        match self.parser.peek() {
            Some(b'e') if self.depth > 0 => {
                self.parser.pos += 1;
                self.depth -= 1;
                Ok(None)
            }
            Some(b'0'..=b'9') if self.depth > 0 => self.parser.bytes().map(Some),
            Some(_) => Err(self.parser.err("dictionary key is not a byte string")),
            None => Err(self.parser.err("unexpected end of input")),
        }
    }

    /// The whole value at the cursor.
    pub fn value(&mut self) -> Result<Value<'a>, Error> {
        self.parser.value(self.depth)
    }

    /// Checks that the input ended exactly where the outermost value did.
    pub fn finish(&self) -> Result<(), Error> {
        if self.depth != 0 {
            return Err(self.parser.err("unterminated dictionary"));
        }
        if self.parser.pos != self.parser.buf.len() {
            return Err(self.parser.err("trailing bytes after the value"));
        }
        Ok(())
    }
}

/// Checks that `input` is exactly one valid bencoded value (what a BEP 44 `v` must be).
pub fn validate(input: &[u8]) -> Result<(), Error> {
    decode(input).map(|_| ())
}

/// True when `input` is exactly one valid bencoded value.
pub fn is_valid(input: &[u8]) -> bool {
    validate(input).is_ok()
}

#[derive(Clone, Debug)]
struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        Parser { buf, pos }
    }

    fn err(&self, reason: &'static str) -> Error {
        Error {
            offset: self.pos,
            reason,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Parses one value whose enclosing containers number `depth`.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'i') => Kind::Int(self.int()?),
            Some(b'0'..=b'9') => Kind::Bytes(self.bytes()?),
            Some(b'l') => {
                self.open(depth)?;
                while self.peek() != Some(b'e') {
                    self.value(depth + 1)?;
                }
                self.pos += 1;
                Kind::List(List {
                    raw: self.span(start)?,
                })
            }
            Some(b'd') => {
                self.open(depth)?;
                while self.peek() != Some(b'e') {
                    self.entry(depth + 1)?;
                }
                self.pos += 1;
                Kind::Dict(Dict {
                    raw: self.span(start)?,
                })
            }
            Some(_) => return Err(self.err("not the start of a value")),
            None => return Err(self.err("unexpected end of input")),
        };
        Ok(Value {
            raw: self.span(start)?,
            kind,
        })
    }

    /// Steps over the `l`/`d` of a container that would sit at depth `depth + 1`.
    fn open(&mut self, depth: usize) -> Result<(), Error> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        Ok(())
    }

    /// One dictionary entry; the loop that calls this ensures we are not at `e`,
    /// and an end of input is reported by `bytes`.
    fn entry(&mut self, depth: usize) -> Result<(&'a [u8], Value<'a>), Error> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.err("dictionary key is not a byte string"));
        }
        let key = self.bytes()?;
        let value = self.value(depth)?;
        Ok((key, value))
    }

    fn span(&self, start: usize) -> Result<&'a [u8], Error> {
        self.buf
            .get(start..self.pos)
            .ok_or_else(|| self.err("internal: span out of range"))
    }

    /// `i<digits>e` with a canonical, in-range integer.
    fn int(&mut self) -> Result<i64, Error> {
        self.pos += 1; // 'i', checked by the caller
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let first = self.pos;
        // Accumulate towards the sign so that i64::MIN parses without overflow.
        let mut acc: i64 = 0;
        loop {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    if self.pos > first && self.buf.get(first) == Some(&b'0') {
                        return Err(self.err("integer with a leading zero"));
                    }
                    let d = i64::from(c - b'0');
                    acc = acc
                        .checked_mul(10)
                        .and_then(|a| {
                            if negative {
                                a.checked_sub(d)
                            } else {
                                a.checked_add(d)
                            }
                        })
                        .ok_or_else(|| self.err("integer out of range"))?;
                    self.pos += 1;
                }
                Some(b'e') => break,
                Some(_) => return Err(self.err("bad character in integer")),
                None => return Err(self.err("unexpected end of input in integer")),
            }
        }
        if self.pos == first {
            return Err(self.err("integer without digits"));
        }
        if negative && acc == 0 {
            return Err(self.err("negative zero"));
        }
        self.pos += 1; // 'e'
        Ok(acc)
    }

    /// `<len>:<bytes>`, the length checked against what remains before anything is taken.
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let first = self.pos;
        // Every KRPC key, id, token and transaction id has a length of one or two digits:
        // read those without the general loop's per-digit checks. Anything else, and any
        // error, goes the general way, which reports it as before.
        let (len, head) = match self.buf.get(first..first + 3) {
            Some(&[d @ b'0'..=b'9', b':', _]) => (usize::from(d - b'0'), 2),
            Some(&[d @ b'1'..=b'9', e @ b'0'..=b'9', b':']) => {
                (usize::from(d - b'0') * 10 + usize::from(e - b'0'), 3)
            }
            _ => (usize::MAX, 0),
        };
        if let Some(s) = self
            .buf
            .get(first + head..)
            .and_then(|rest| rest.get(..len))
        {
            self.pos = first + head + len;
            return Ok(s);
        }
        let mut len: usize = 0;
        loop {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    if self.pos > first && self.buf.get(first) == Some(&b'0') {
                        return Err(self.err("string length with a leading zero"));
                    }
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(c - b'0')))
                        .ok_or_else(|| self.err("string length out of range"))?;
                    self.pos += 1;
                }
                Some(b':') => break,
                Some(_) => return Err(self.err("bad character in string length")),
                None => return Err(self.err("unexpected end of input in string length")),
            }
        }
        if self.pos == first {
            return Err(self.err("string length without digits"));
        }
        self.pos += 1; // ':'
        let remaining = self.buf.len().saturating_sub(self.pos);
        if len > remaining {
            return Err(self.err("string longer than the input"));
        }
        let s = self
            .buf
            .get(self.pos..self.pos + len) // cannot overflow: len <= remaining
            .ok_or_else(|| self.err("string longer than the input"))?;
        self.pos += len;
        Ok(s)
    }
}

/// Appends `b` as a bencoded byte string.
#[inline]
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_len(out, b.len());
    out.extend_from_slice(b);
}

/// Appends the `<len>:` prefix of a byte string whose `len` bytes the caller appends next,
/// so that compact lists can be written in place without an intermediate buffer.
#[inline]
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    write_uint(out, len as u64);
    out.push(b':');
}

/// Appends `i` as a bencoded integer.
#[inline]
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    write_uint(out, i.unsigned_abs());
    out.push(b'e');
}

/// Decimal digits of `n`, without going through `fmt`.
#[inline]
fn write_uint(out: &mut Vec<u8>, mut n: u64) {
    // Lengths of keys, ids, tokens and compact lists: one or two digits, written without
    // the copy of a variable-length slice (a call to memcpy each, 10 per reply).
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes a dictionary entry by entry; call [`DictWriter::finish`] to close it.
///
/// Bencode requires keys in sorted (raw byte) order; the caller supplies them in that
/// order, and debug builds assert it.
#[derive(Debug)]
pub struct DictWriter<'o, 'k> {
    out: &'o mut Vec<u8>,
    last_key: Option<&'k [u8]>,
}

impl<'o, 'k> DictWriter<'o, 'k> {
    /// Opens a dictionary at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'd');
        DictWriter {
            out,
            last_key: None,
        }
    }

    /// Writes `key` and returns the buffer, for the caller to append exactly one value.
    pub fn key(&mut self, key: &'k [u8]) -> &mut Vec<u8> {
        debug_assert!(
            self.last_key.is_none_or(|last| last < key),
            "bencode dictionary keys out of order"
        );
        self.last_key = Some(key);
        write_bytes(self.out, key);
        self.out
    }

    /// Writes `key` with a byte-string value.
    pub fn bytes(&mut self, key: &'k [u8], value: &[u8]) {
        // Room for both lengths too (at most 20 digits and a colon each): one capacity
        // check instead of one per push.
        self.out.reserve(key.len() + value.len() + 42);
        write_bytes(self.key(key), value);
    }

    /// Writes `key` with an integer value.
    pub fn int(&mut self, key: &'k [u8], value: i64) {
        write_int(self.key(key), value);
    }

    /// Writes `key` with a value that is already bencoded.
    pub fn raw(&mut self, key: &'k [u8], bencoded: &[u8]) {
        self.key(key).extend_from_slice(bencoded);
    }

    /// Closes the dictionary.
    pub fn finish(self) {
        self.out.push(b'e');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(s: &[u8]) -> Result<i64, Error> {
        decode(s).map(|v| v.as_int().unwrap_or(i64::MAX - 1))
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(int(b"i0e"), Ok(0));
        assert_eq!(int(b"i42e"), Ok(42));
        assert_eq!(int(b"i-42e"), Ok(-42));
        assert_eq!(int(b"i9223372036854775807e"), Ok(i64::MAX));
        assert_eq!(int(b"i-9223372036854775808e"), Ok(i64::MIN));
        for bad in [
            &b"i9223372036854775808e"[..],
            b"i-9223372036854775809e",
            b"i-0e",
            b"i03e",
            b"i-03e",
            b"i00e",
            b"ie",
            b"i-e",
            b"i1",
            b"i1x",
            b"i+1e",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn strings_and_lengths() {
        assert_eq!(decode(b"0:").map(|v| v.as_bytes()), Ok(Some(&b""[..])));
        assert_eq!(
            decode(b"3:abc").map(|v| v.as_bytes()),
            Ok(Some(&b"abc"[..]))
        );
        for bad in [
            &b"03:abc"[..],
            b"4:abc",
            b"3abc",
            b":abc",
            b"99999999999999999999999999:x",
            b"18446744073709551615:x",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn containers_keep_raw_spans() {
        let input = b"d1:ad2:id3:abce1:ll1:xi-1ee1:v12:Hello World!e";
        let top = decode(input).unwrap().as_dict().unwrap();
        let keys: Vec<&[u8]> = top.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"a"[..], b"l", b"v"]);
        assert_eq!(top.get(b"a").unwrap().raw(), b"d2:id3:abce");
        assert_eq!(top.get(b"v").unwrap().raw(), b"12:Hello World!");
        let l: Vec<Value<'_>> = top.get(b"l").unwrap().as_list().unwrap().iter().collect();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].as_bytes(), Some(&b"x"[..]));
        assert_eq!(l[1].as_int(), Some(-1));
        assert_eq!(l[1].raw(), b"i-1e");
    }

    #[test]
    fn rejects_malformed_containers() {
        for bad in [
            &b""[..],
            b"d",
            b"l",
            b"di1e1:xe",
            b"d1:ae",
            b"d1:a1:b",
            b"le1:x",
            b"x",
            b"e",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(is_valid(b"le"));
        assert!(is_valid(b"de"));
    }

    #[test]
    fn depth_is_bounded() {
        let ok = [b"l".repeat(MAX_DEPTH), b"e".repeat(MAX_DEPTH)].concat();
        assert!(is_valid(&ok));
        let too_deep = [b"l".repeat(MAX_DEPTH + 1), b"e".repeat(MAX_DEPTH + 1)].concat();
        assert!(!is_valid(&too_deep));
        assert!(!is_valid(&b"l".repeat(100_000)));
    }

    #[test]
    fn cursor_walks_in_place() {
        let input = b"d1:ad2:id3:abce1:q4:ping1:xli1eee";
        let mut c = Cursor::new(input);
        assert_eq!(c.enter_dict(), Ok(true));
        assert_eq!(c.next_key(), Ok(Some(&b"a"[..])));
        assert_eq!(c.enter_dict(), Ok(true));
        assert_eq!(c.next_key(), Ok(Some(&b"id"[..])));
        assert_eq!(c.value().map(|v| v.as_bytes()), Ok(Some(&b"abc"[..])));
        assert_eq!(c.next_key(), Ok(None));
        assert_eq!(c.next_key(), Ok(Some(&b"q"[..])));
        assert_eq!(c.enter_dict(), Ok(false));
        assert_eq!(c.value().map(|v| v.raw()), Ok(&b"4:ping"[..]));
        assert_eq!(c.next_key(), Ok(Some(&b"x"[..])));
        assert_eq!(c.value().map(|v| v.raw()), Ok(&b"li1ee"[..]));
        assert!(c.finish().is_err());
        assert_eq!(c.next_key(), Ok(None));
        assert_eq!(c.finish(), Ok(()));
        assert!(c.next_key().is_err());

        let mut c = Cursor::new(b"de1:x");
        assert_eq!(c.enter_dict(), Ok(true));
        assert_eq!(c.next_key(), Ok(None));
        assert!(c.finish().is_err());
    }

    #[test]
    fn cursor_bounds_depth() {
        let deep = [b"d1:x".repeat(MAX_DEPTH + 1), b"e".repeat(MAX_DEPTH + 1)].concat();
        let mut c = Cursor::new(&deep);
        for _ in 0..MAX_DEPTH {
            assert_eq!(c.enter_dict(), Ok(true));
            assert_eq!(c.next_key(), Ok(Some(&b"x"[..])));
        }
        assert!(c.enter_dict().is_err());
        let mut c = Cursor::new(&deep);
        assert_eq!(c.enter_dict(), Ok(true));
        assert_eq!(c.next_key(), Ok(Some(&b"x"[..])));
        assert!(c.value().is_err());
    }

    #[test]
    fn encoder() {
        let mut out = Vec::new();
        let mut d = DictWriter::new(&mut out);
        d.int(b"a", i64::MIN);
        d.bytes(b"b", b"xyz");
        d.raw(b"c", b"le");
        write_int(d.key(b"d"), 0);
        d.finish();
        assert_eq!(out, b"d1:ai-9223372036854775808e1:b3:xyz1:cle1:di0ee");
        assert!(is_valid(&out));
    }
}
