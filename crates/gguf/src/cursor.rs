//! A bounds-checked little-endian reader over the header bytes.
//!
//! Every read checks the remaining length first, so a truncated or hostile file ends in
//! `GgufError::Truncated` naming the offset, never in a slice panic.

use crate::GgufError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// Fails unless `needed` bytes remain. Used before allocating for a count read from the
    /// file: a claimed array of N elements must be backed by at least N * (min element size)
    /// bytes, which bounds every allocation by the file's size.
    pub(crate) fn require(&self, needed: u64, what: &'static str) -> Result<(), GgufError> {
        if needed > self.remaining() {
            return Err(GgufError::Truncated {
                offset: self.pos(),
                what,
                needed,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    /// Like `require`, for `count` items of at least `min_size` bytes each.
    pub(crate) fn require_n(
        &self,
        count: u64,
        min_size: u64,
        what: &'static str,
    ) -> Result<(), GgufError> {
        match count.checked_mul(min_size) {
            Some(n) => self.require(n, what),
            None => Err(GgufError::Truncated {
                offset: self.pos(),
                what,
                needed: u64::MAX,
                remaining: self.remaining(),
            }),
        }
    }

    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        self.require(n, what)?;
        // `require` proved n <= remaining, which fits in usize.
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes (no terminator).
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let start = self.pos();
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(GgufError::InvalidUtf8 {
                offset: start + e.valid_up_to() as u64,
            }),
        }
    }
}
