//! Splitting a received byte stream into messages, without copying, within the size limit.

use bytes::{Bytes, BytesMut};

use crate::encoding::{Header, WORD};
use crate::error::{Error, LimitExceeded, Malformed};

/// Most bytes reserved for a partly received frame beyond those already buffered.
const RESERVE_AHEAD: usize = 64 * 1024;

/// One complete message: its header and body (a zero-copy slice of the receive buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The body, `header.words * 8` bytes.
    pub body: Bytes,
}

/// Accumulates received bytes and splits off complete messages.
///
/// "Need more bytes" is `Ok(None)`, not an error.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: BytesMut,
    max_body: u64,
}

impl Deframer {
    /// A deframer refusing bodies larger than `max_frame_bytes`.
    pub fn new(max_frame_bytes: u64) -> Deframer {
        Deframer {
            buf: BytesMut::new(),
            max_body: max_frame_bytes,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as frames.
    #[cfg(any(test, feature = "server"))]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error for an empty
    /// or oversized body (checked as soon as the header is in, before buffering the body).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        let Some(head) = self.buf.get(..WORD) else {
            return Ok(None);
        };
        let mut h = [0u8; WORD];
        h.copy_from_slice(head);
        let header = Header::decode(h);
        if header.words == 0 {
            return Err(Malformed::EmptyBody.into());
        }
        let body_len = header.body_len();
        if body_len > self.max_body {
            return Err(LimitExceeded {
                what: "frame size",
                limit: self.max_body,
                actual: body_len,
            }
            .into());
        }
        // Bounded by max_body above, which the caller chose to fit in memory.
        let total = WORD + body_len as usize;
        if self.buf.len() < total {
            // Room for the rest of the frame, but never more ahead than has arrived (plus
            // 64 KiB): a header alone, true or not, cannot make the client hold its length.
            let missing = total - self.buf.len();
            self.buf
                .reserve(missing.min(self.buf.len().max(RESERVE_AHEAD)));
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        let body = frame.split_off(WORD).freeze();
        Ok(Some(Frame { header, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_more() {
        let mut d = Deframer::new(1024);
        d.push(&[1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[0, 0, 0, 0, 0, 2, 0, 0]);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(
            f.header,
            Header {
                words: 1,
                kind: 8,
                schema: 0
            }
        );
        assert_eq!(f.body.len(), 8);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.buffered(), 3);
    }

    #[test]
    fn a_header_alone_does_not_reserve_its_length() {
        let mut d = Deframer::new(1 << 30);
        // A header declaring 512 MiB, and nothing else yet.
        d.push(&[0, 0, 0, 4, 8, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert!(
            d.buf.capacity() <= WORD + RESERVE_AHEAD,
            "{}",
            d.buf.capacity()
        );
    }

    #[test]
    fn refuses_empty_and_oversized_bodies() {
        let mut d = Deframer::new(1024);
        d.push(&[0, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(Error::Malformed(Malformed::EmptyBody)));
        let mut d = Deframer::new(1024);
        d.push(&[0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0]);
        assert!(matches!(d.next_frame(), Err(Error::Limit(_))));
    }
}
