//! Cuts the byte stream of a PPTP control connection (TCP, RFC 2637
//! section 1.3) into messages by their Length field.

use super::{HEADER_LEN, MAGIC_COOKIE, MAX_MESSAGE_LEN, check_length_field, field};
use crate::wire::{Error, Result};

/// Bytes needed to read the Length field.
const LENGTH_END: usize = field::LENGTH.end;
/// Bytes needed to read the Magic Cookie.
const COOKIE_END: usize = field::MAGIC_COOKIE.end;

/// Reassembles PPTP control messages from TCP data that arrives split and
/// joined arbitrarily (RFC 2637 sections 1.3, 1.4).
///
/// Feed each chunk read from the socket to [`ControlFramer::next_message`]
/// until it returns `None`. A message lying whole in the chunk is returned
/// as a slice of the chunk, without a copy; only a message split across
/// chunks is gathered in an internal buffer of [`MAX_MESSAGE_LEN`] bytes,
/// which is all the memory the framer ever holds.
///
/// The framer checks what it needs to stay in step with the stream: the
/// Length field (at least the 12-byte header, at most the longest message)
/// and the Magic Cookie, as soon as their bytes arrive. Either error means
/// the stream cannot be trusted any more (RFC 2637 section 1.4: the
/// connection must then be closed); the framer reports it once and then
/// refuses all input. Everything else about a message (its type, its exact
/// length) is for [`super::ControlMessage::parse`] to judge.
#[derive(Clone)]
pub struct ControlFramer {
    buf: [u8; MAX_MESSAGE_LEN],
    /// Bytes of a partial message in `buf`.
    len: usize,
    failed: Option<Error>,
}

impl Default for ControlFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ControlFramer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlFramer")
            .field("buffered", &self.len)
            .field("failed", &self.failed)
            .finish()
    }
}

impl ControlFramer {
    /// A framer at the start of a stream.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_MESSAGE_LEN],
            len: 0,
            failed: None,
        }
    }

    /// Takes bytes from the front of `input` until one message is complete
    /// and returns it, advancing `input` past what was consumed. Returns
    /// `None` once `input` is used up without completing a message (the
    /// partial message stays buffered for the next chunk).
    ///
    /// On a framing error the error is returned, the rest of `input` is
    /// dropped and the framer fails: later calls drop their input and
    /// return the same error (or `None` for empty input), so a loop over
    /// this method always ends.
    pub fn next_message<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Option<Result<&'s [u8]>> {
        if let Some(error) = &self.failed {
            if input.is_empty() {
                return None;
            }
            *input = &[];
            return Some(Err(error.clone()));
        }
        if self.len == 0 {
            // Fast path: a whole message at the front of the input.
            match frame_len(input) {
                Err(error) => return Some(Err(self.fail(error, input))),
                Ok(Some(len)) if input.len() >= len => {
                    let (message, rest) = input.split_at(len);
                    *input = rest;
                    return Some(Ok(message));
                }
                Ok(_) => {}
            }
        }
        loop {
            let partial = self.buf.get(..self.len).unwrap_or(&[]);
            let want = match frame_len(partial) {
                Err(error) => return Some(Err(self.fail(error, input))),
                // Read the Length and the Magic Cookie first, so that a
                // bad stream is caught before the rest of the message.
                Ok(None) => LENGTH_END,
                Ok(Some(_)) if self.len < COOKIE_END => COOKIE_END,
                Ok(Some(len)) => len,
            };
            if self.len == want && want >= HEADER_LEN {
                self.len = 0;
                return Some(Ok(self.buf.get(..want).unwrap_or(&[])));
            }
            if input.is_empty() {
                return None;
            }
            let take = (want - self.len).min(input.len());
            let (chunk, rest) = input.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + take) {
                dst.copy_from_slice(chunk);
            }
            self.len += take;
            *input = rest;
        }
    }

    /// Bytes of an incomplete message held for the next chunk.
    pub const fn buffered(&self) -> usize {
        self.len
    }

    /// The framing error that stopped the framer, if any.
    pub const fn error(&self) -> Option<&Error> {
        self.failed.as_ref()
    }

    /// Whether a framing error stopped the framer.
    pub const fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail(&mut self, error: Error, input: &mut &[u8]) -> Error {
        *input = &[];
        self.len = 0;
        self.failed = Some(error.clone());
        error
    }
}

/// The length of the message starting `bytes` once its Length field is
/// there (`None` before), checking the Magic Cookie once it is there.
fn frame_len(bytes: &[u8]) -> Result<Option<usize>> {
    let Some(length) = bytes.get(field::LENGTH) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([
        length.first().copied().unwrap_or(0),
        length.get(1).copied().unwrap_or(0),
    ]));
    check_length_field(len)?;
    if let Some(cookie) = bytes.get(field::MAGIC_COOKIE) {
        let cookie = cookie
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        if cookie != MAGIC_COOKIE {
            return Err(Error::BadMagicCookie(cookie));
        }
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pptp::{CallClearRequest, ControlMessage, EchoRequest};

    fn echo(identifier: u32) -> Vec<u8> {
        ControlMessage::from(EchoRequest { identifier }).to_vec()
    }

    /// Feeds `stream` in chunks of the given sizes (cycled) and collects
    /// the messages, or the error that stopped the framer.
    fn run(stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, Option<Error>) {
        let mut framer = ControlFramer::new();
        let mut out = Vec::new();
        let mut rest = stream;
        let mut i = 0;
        while !rest.is_empty() {
            let size = sizes[i % sizes.len()].min(rest.len());
            i += 1;
            let (mut chunk, tail) = rest.split_at(size);
            rest = tail;
            while let Some(message) = framer.next_message(&mut chunk) {
                match message {
                    Ok(bytes) => out.push(bytes.to_vec()),
                    Err(error) => return (out, Some(error)),
                }
            }
            assert!(chunk.is_empty());
            assert!(framer.buffered() <= MAX_MESSAGE_LEN);
        }
        (out, framer.error().cloned())
    }

    fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let messages = vec![
            echo(1),
            ControlMessage::from(CallClearRequest { call_id: 7 }).to_vec(),
            echo(0xdead_beef),
        ];
        (messages.concat(), messages)
    }

    #[test]
    fn whole_messages_come_out_of_one_chunk_without_copy() {
        let (bytes, messages) = stream();
        let mut framer = ControlFramer::new();
        let mut input = &bytes[..];
        let first = framer.next_message(&mut input).unwrap().unwrap();
        // The message is the front of the input itself.
        assert_eq!(first.as_ptr(), bytes.as_ptr());
        assert_eq!(first, &messages[0][..]);
        assert_eq!(input.len(), bytes.len() - 16);
        assert_eq!(run(&bytes, &[bytes.len()]), (messages, None));
    }

    #[test]
    fn every_split_gives_the_same_messages() {
        let (bytes, messages) = stream();
        for sizes in [
            &[1][..],
            &[2],
            &[3],
            &[5, 1],
            &[7, 13],
            &[11],
            &[15, 17, 1],
            &[16],
            &[47],
        ] {
            assert_eq!(run(&bytes, sizes), (messages.clone(), None), "{sizes:?}");
        }
        for cut in 0..=bytes.len() {
            assert_eq!(
                run(&bytes, &[cut.max(1), bytes.len()]),
                (messages.clone(), None)
            );
        }
    }

    #[test]
    fn partial_message_waits_for_more() {
        let bytes = echo(5);
        let mut framer = ControlFramer::new();
        let mut input = &bytes[..10];
        assert!(framer.next_message(&mut input).is_none());
        assert_eq!(framer.buffered(), 10);
        let mut input = &bytes[10..];
        assert_eq!(
            framer.next_message(&mut input).unwrap().unwrap(),
            &bytes[..]
        );
        assert_eq!(framer.buffered(), 0);
        assert!(framer.next_message(&mut input).is_none());
    }

    #[test]
    fn bad_cookie_is_reported_as_soon_as_it_arrives_then_input_is_refused() {
        let mut bytes = echo(5);
        bytes[7] ^= 1;
        let mut framer = ControlFramer::new();
        let mut input = &bytes[..7];
        assert!(framer.next_message(&mut input).is_none());
        let mut input = &bytes[7..9];
        assert_eq!(
            framer.next_message(&mut input),
            Some(Err(Error::BadMagicCookie(0x1a2b_3c4c)))
        );
        assert!(input.is_empty());
        assert!(framer.is_failed());
        // Good bytes afterwards are refused too, and loops end.
        let good = echo(6);
        let mut input = &good[..];
        assert_eq!(
            framer.next_message(&mut input),
            Some(Err(Error::BadMagicCookie(0x1a2b_3c4c)))
        );
        assert!(input.is_empty());
        assert_eq!(framer.next_message(&mut input), None);
    }

    #[test]
    fn bad_cookie_in_the_fast_path() {
        let mut bytes = echo(5);
        bytes[4] = 0;
        assert_eq!(
            run(&bytes, &[100]),
            (vec![], Some(Error::BadMagicCookie(0x002b_3c4d)))
        );
    }

    #[test]
    fn lengths_outside_the_bounds_are_errors() {
        for (len, why) in [
            (0u16, "below the 12-byte header"),
            (11, "below the 12-byte header"),
            (221, "above the longest control message (220 bytes)"),
            (0xffff, "above the longest control message (220 bytes)"),
        ] {
            let mut bytes = echo(5);
            bytes[0..2].copy_from_slice(&len.to_be_bytes());
            let expected = Error::BadLength {
                what: "PPTP control message",
                len: usize::from(len),
                why,
            };
            // Caught on the Length field alone, before the cookie.
            assert_eq!(run(&bytes[..2], &[1]), (vec![], Some(expected.clone())));
            assert_eq!(run(&bytes, &[100]), (vec![], Some(expected)));
        }
    }

    #[test]
    fn boundary_lengths_are_framed() {
        // 12 (a bare header) and 220 frame; judging them is parse's job.
        for len in [12usize, 220] {
            let mut bytes = vec![0u8; len];
            bytes[0..2].copy_from_slice(&(len as u16).to_be_bytes());
            bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            assert_eq!(run(&bytes, &[3]), (vec![bytes.clone()], None));
            assert_eq!(run(&bytes, &[len]), (vec![bytes.clone()], None));
        }
    }

    #[test]
    fn messages_before_an_error_are_delivered() {
        let (mut bytes, messages) = stream();
        bytes.extend_from_slice(&[0, 5, 0, 1]);
        let (out, error) = run(&bytes, &[9]);
        assert_eq!(out, messages);
        assert!(matches!(error, Some(Error::BadLength { len: 5, .. })));
    }
}
