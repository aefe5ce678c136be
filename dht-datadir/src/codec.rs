//! [`Reader`]: the bounds-checked cursor both stores decode their values and keys with,
//! and [`DecodeError`], what it says of bytes that do not decode. Each store's own
//! fields (addresses, ids, length-prefixed strings, its record version) are read by
//! that store on top of these primitives.

use std::fmt;

/// Bytes that do not decode: what was being decoded and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    what: &'static str,
    why: &'static str,
}

impl DecodeError {
    /// `what` (`"peer record"`, ...) did not decode because of `why` (`"truncated"`, ...).
    pub fn new(what: &'static str, why: &'static str) -> DecodeError {
        DecodeError { what, why }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable {}: {}", self.what, self.why)
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked cursor: every read checks the remaining length first, so corrupt
/// input yields a [`DecodeError`], never a panic or an allocation larger than the input.
/// Integers are big-endian.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`, which holds a `what` (named in errors).
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }

    /// The error for this input: it does not decode because of `why`.
    pub fn err(&self, why: &'static str) -> DecodeError {
        DecodeError::new(self.what, why)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// The next 2 bytes, big-endian.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// The next 4 bytes, big-endian.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// The next 8 bytes, big-endian.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.buf
    }

    /// Ok when everything was read: trailing bytes are an error.
    pub fn end(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut r = Reader::new(&[0, 1, 2, 3, 4, 5, 6, 7, 8], "test value");
        assert_eq!(r.u8(), Ok(0));
        assert_eq!(r.u64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(
            r.u16().unwrap_err().to_string(),
            "undecodable test value: truncated"
        );
        let r = Reader::new(&[1], "test value");
        assert_eq!(
            r.end(),
            Err(DecodeError::new("test value", "trailing bytes"))
        );
    }
}
