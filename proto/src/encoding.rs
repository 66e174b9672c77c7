//! Primitive encodings: little-endian words, NUL-terminated padded
//! text, length-prefixed blobs, and the 8-byte message header.

use bytes::Bytes;

use crate::error::Malformed;
use crate::value::Text;

/// Size of a message header and of one body word.
pub const WORD: usize = 8;

/// Rounds `n` up to a multiple of 8 (`None` on overflow).
pub(crate) fn pad8(n: usize) -> Option<usize> {
    n.checked_add(7).map(|v| v & !7)
}

/// The 8-byte header in front of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body length in 8-byte words.
    pub words: u32,
    /// Message type code.
    pub kind: u8,
    /// Body layout revision.
    pub schema: u8,
}

impl Header {
    /// Decodes a header from its 8 bytes (the last two, `extra`, are ignored).
    pub fn decode(b: [u8; 8]) -> Header {
        let [w0, w1, w2, w3, kind, schema, _, _] = b;
        Header {
            words: u32::from_le_bytes([w0, w1, w2, w3]),
            kind,
            schema,
        }
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> u64 {
        u64::from(self.words) * WORD as u64
    }
}

/// A message body longer than a header can describe (its length is a `u32` count of 8-byte
/// words, so at most 32 GiB); nothing was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The body's length in bytes.
    pub bytes: u64,
}

/// Appends one message to `buf`: header, then whatever `body` writes, zero-padded to whole
/// words. A body that writes nothing gets one zero word, so no zero-word message can exist.
/// A body too long for the header's length word is taken back out of `buf` and refused.
pub(crate) fn put_message(
    buf: &mut Vec<u8>,
    kind: u8,
    schema: u8,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), BodyTooLarge> {
    let start = buf.len();
    buf.extend_from_slice(&[0; WORD]);
    body(buf);
    let mut len = buf.len() - start - WORD;
    if len == 0 {
        buf.extend_from_slice(&[0; WORD]);
        len = WORD;
    }
    let padded = (len + 7) & !7;
    let Ok(words) = u32::try_from(padded / WORD) else {
        buf.truncate(start);
        return Err(BodyTooLarge {
            bytes: padded as u64,
        });
    };
    buf.resize(start + WORD + padded, 0);
    let w = words.to_le_bytes();
    let header = [w[0], w[1], w[2], w[3], kind, schema, 0, 0];
    if let Some(slot) = buf.get_mut(start..start + WORD) {
        slot.copy_from_slice(&header);
    }
    Ok(())
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Text: bytes, NUL, zero padding to a word boundary. The caller has checked for NULs.
pub(crate) fn put_text(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    let total = (s.len() + 1 + 7) & !7;
    buf.resize(buf.len() + total - s.len(), 0);
}

/// Blob: u64 length, bytes, zero padding to a word boundary.
pub(crate) fn put_blob(buf: &mut Vec<u8>, b: &[u8]) {
    put_u64(buf, b.len() as u64);
    buf.extend_from_slice(b);
    let pad = ((b.len() + 7) & !7) - b.len();
    buf.resize(buf.len() + pad, 0);
}

/// Position of the first NUL in `s`, if any.
pub(crate) fn find_nul(s: &str) -> Option<usize> {
    s.bytes().position(|b| b == 0)
}

/// Position of the first zero byte, a word at a time (texts are NUL-terminated and padded to
/// whole words, so the terminator is usually found in the first few words), and whether
/// every byte before it is ASCII (then it is valid UTF-8 without further checks).
fn find_nul_byte(bytes: &[u8]) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    // The bits of every byte before the terminator, or-ed together.
    let mut seen = 0u64;
    for chunk in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let v = u64::from_le_bytes(w);
        // Classic "has a zero byte" test: exact for the lowest zero byte.
        let zeros = v.wrapping_sub(ONES) & !v & HIGHS;
        if zeros != 0 {
            let at = zeros.trailing_zeros() / 8;
            // The bytes below the terminator: `at` is 0..=7, so the shift is in range.
            let below = (1u64 << (8 * at)).wrapping_sub(1);
            seen |= v & below;
            return Some((offset + at as usize, seen & HIGHS == 0));
        }
        seen |= v;
        offset += 8;
    }
    let rest = chunks.remainder();
    let at = rest.iter().position(|&b| b == 0)?;
    let ascii = seen & HIGHS == 0 && rest.iter().take(at).all(u8::is_ascii);
    Some((offset + at, ascii))
}

/// A cursor over one message body. Every read is bounds-checked and returns
/// [`Malformed`] instead of panicking; text and blobs are zero-copy slices.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    body: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Reader {
        Reader { body, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    #[cfg(feature = "server")]
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Malformed::Truncated { field })?;
        let s = self
            .body
            .get(self.pos..end)
            .ok_or(Malformed::Truncated { field })?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, Malformed> {
        let s = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// Two u32 fields packed in one word.
    pub(crate) fn u32_pair(&mut self, field: &'static str) -> Result<(u32, u32), Malformed> {
        let w = self.u64(field)?;
        Ok((w as u32, (w >> 32) as u32))
    }

    /// The next word without consuming it.
    pub(crate) fn peek_u64(&self) -> Option<u64> {
        let s = self.body.get(self.pos..self.pos.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }

    /// `n` raw bytes, then padding to a word boundary.
    pub(crate) fn bytes_padded(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<Bytes, Malformed> {
        let padded = pad8(n).ok_or(Malformed::Truncated { field })?;
        if padded > self.remaining() {
            return Err(Malformed::Truncated { field });
        }
        let start = self.pos;
        self.pos += padded;
        Ok(self.body.slice(start..start + n))
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<Text, Malformed> {
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let (len, ascii) = find_nul_byte(rest).ok_or(Malformed::UnterminatedText { field })?;
        let padded = pad8(len + 1).ok_or(Malformed::Truncated { field })?;
        if padded > self.remaining() {
            return Err(Malformed::Truncated { field });
        }
        let start = self.pos;
        // Validate in place, then take one slice of the frame (one reference count bump).
        if !ascii {
            let raw = rest.get(..len).unwrap_or_default();
            std::str::from_utf8(raw).map_err(|_| Malformed::InvalidUtf8 { field })?;
        }
        self.pos += padded;
        Ok(Text::from_validated(self.body.slice(start..start + len)))
    }

    pub(crate) fn blob(&mut self, field: &'static str) -> Result<Bytes, Malformed> {
        let len = self.u64(field)?;
        let len = usize::try_from(len).map_err(|_| Malformed::Truncated { field })?;
        self.bytes_padded(len, field)
    }

    /// Fails unless the whole body was consumed.
    pub(crate) fn finish(&self) -> Result<(), Malformed> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Malformed::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_nul_terminated_and_padded() {
        let mut b = Vec::new();
        put_text(&mut b, "");
        assert_eq!(b, [0; 8]);
        b.clear();
        put_text(&mut b, "abcdefg");
        assert_eq!(b, b"abcdefg\0");
        b.clear();
        put_text(&mut b, "abcdefgh");
        assert_eq!(b, b"abcdefgh\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn blob_is_length_prefixed_and_padded() {
        let mut b = Vec::new();
        put_blob(&mut b, &[1, 2, 3]);
        assert_eq!(b, [3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0]);
        b.clear();
        put_blob(&mut b, &[]);
        assert_eq!(b, [0; 8]);
    }

    #[test]
    fn empty_body_gets_one_word() {
        let mut b = Vec::new();
        put_message(&mut b, 0, 0, |_| {}).unwrap();
        assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    proptest::proptest! {
        /// `Text::as_str` skips UTF-8 validation on the strength of this search's ASCII flag
        /// (through `Reader::text`): it must agree with a plain byte-by-byte reading for any
        /// input, and every text the reader returns must be valid UTF-8.
        #[test]
        fn nul_search_and_text_reader_agree_with_the_plain_definitions(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            skew in 0usize..8,
        ) {
            let input = bytes.get(skew.min(bytes.len())..).unwrap_or_default();
            let plain = input
                .iter()
                .position(|&b| b == 0)
                .map(|at| (at, input[..at].is_ascii()));
            proptest::prop_assert_eq!(find_nul_byte(input), plain);
            let mut body = input.to_vec();
            body.resize(input.len().div_ceil(8) * 8, 0);
            if let Ok(text) = Reader::new(Bytes::from(body)).text("t") {
                proptest::prop_assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            }
        }
    }

    #[test]
    fn nul_search_finds_the_first_zero_byte_and_tells_ascii() {
        for len in 0..40 {
            for garbage in [0x00u8, 0x01, 0x80, 0xff] {
                let mut b = vec![b'a'; len];
                b.push(0);
                b.extend([garbage; 9]);
                // Bytes after the terminator never count against ASCII.
                assert_eq!(
                    find_nul_byte(&b),
                    Some((len, true)),
                    "len {len} garbage {garbage}"
                );
                // One non-ASCII byte anywhere before it does.
                for at in 0..len {
                    let mut b = b.clone();
                    b[at] = 0xc3;
                    assert_eq!(find_nul_byte(&b), Some((len, false)), "len {len} at {at}");
                }
            }
            assert_eq!(find_nul_byte(&vec![0x80; len]), None);
            assert_eq!(find_nul_byte(&vec![0x01; len]), None);
        }
        // Bytes just above zero in the lanes around a zero must not fool the search.
        assert_eq!(find_nul_byte(&[1, 0, 1, 1, 1, 1, 1, 1]), Some((1, true)));
        assert_eq!(
            find_nul_byte(&[0x80, 0x01, 0x00, 0xff, 0, 0, 0, 0]),
            Some((2, false))
        );
    }

    #[test]
    fn text_checks_utf8_beyond_ascii() {
        let mut ok = Vec::new();
        put_text(&mut ok, "naïve ✓");
        assert_eq!(Reader::new(Bytes::from(ok)).text("t").unwrap(), "naïve ✓");
        let bad = Bytes::from_static(&[b'a', 0xc3, 0x28, 0, 0, 0, 0, 0]);
        assert_eq!(
            Reader::new(bad).text("t"),
            Err(Malformed::InvalidUtf8 { field: "t" })
        );
    }

    #[test]
    fn reader_rejects_overruns() {
        let mut r = Reader::new(Bytes::from_static(&[3, 0, 0, 0, 0, 0, 0, 0, 1, 2]));
        assert_eq!(
            r.clone().blob("b"),
            Err(Malformed::Truncated { field: "b" })
        );
        r.u64("x").unwrap();
        assert_eq!(r.u64("y"), Err(Malformed::Truncated { field: "y" }));
        let mut r = Reader::new(Bytes::from_static(&[0xff; 8]));
        assert!(r.blob("huge").is_err());
        let mut r = Reader::new(Bytes::from_static(b"abc"));
        assert_eq!(r.text("t"), Err(Malformed::UnterminatedText { field: "t" }));
        let mut r = Reader::new(Bytes::from_static(b"ab\xff\0\0\0\0\0"));
        assert_eq!(r.text("t"), Err(Malformed::InvalidUtf8 { field: "t" }));
        let mut r = Reader::new(Bytes::from_static(b"abc\0"));
        assert_eq!(r.text("t"), Err(Malformed::Truncated { field: "t" }));
    }
}
