//! The TCP header (RFC 9293 section 3.1) and its options, as far as the
//! data path needs them: the SYN flag, the Maximum Segment Size option
//! (RFC 9293 section 3.7.1) and the checksum, for MSS clamping.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           [Options]                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Our own view for the reasons given in [`super::ipv4`]. No `Repr`: the
//! daemon only rewrites one option of segments it forwards.

use core::ops::Range;

use super::{Error, Result};

/// Length of the header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

const WHAT: &str = "TCP header";

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// Data Offset in 32-bit words (high nibble).
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Flag bits of the flags octet (RFC 9293 section 3.1).
mod flag {
    pub const SYN: u8 = 0x02;
    pub const ACK: u8 = 0x10;
}

/// Option kinds (RFC 9293 section 3.2).
pub mod option {
    /// End of Option List.
    pub const END: u8 = 0;
    /// No-Operation.
    pub const NOP: u8 = 1;
    /// Maximum Segment Size, with two octets of data.
    pub const MSS: u8 = 2;
}

/// A read/write view of a TCP segment (RFC 9293 section 3.1).
///
/// [`Packet::new_checked`] validates the header length once; afterwards no
/// accessor can panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header is there and that Data Offset covers
    /// it and fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_LEN,
                have: len,
            });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::BadLength {
                what: WHAT,
                len: header_len,
                why: "Data Offset below five words",
            });
        }
        if header_len > len {
            return Err(Error::Truncated {
                what: WHAT,
                need: header_len,
                have: len,
            });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source Port.
    pub fn src_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SRC_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Destination Port.
    pub fn dst_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::DST_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Header length in octets, options included (Data Offset times four).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The SYN flag.
    pub fn syn(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & flag::SYN != 0
    }

    /// The ACK flag.
    pub fn ack(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & flag::ACK != 0
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The options: the octets between the fixed header and Data Offset.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// The options, to modify in place.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// One option found in the options octets (RFC 9293 section 3.2): its kind
/// and where its data lies, relative to the start of the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    pub kind: u8,
    pub data: Range<usize>,
}

/// The options of a segment, in order ([`Packet::options`]). Stops at End
/// of Option List, at the end of the octets, and at the first option whose
/// length is below two or runs past the end (RFC 9293 section 3.2 asks a
/// receiver to treat such a length as the end of a malformed list).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Options<'a> {
    /// The options in `bytes` (the octets [`Packet::options`] returns).
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { bytes, at: 0 }
    }
}

impl Iterator for Options<'_> {
    type Item = RawOption;

    fn next(&mut self) -> Option<RawOption> {
        loop {
            let start = self.at;
            let kind = *self.bytes.get(start)?;
            match kind {
                option::END => {
                    self.at = self.bytes.len();
                    return None;
                }
                option::NOP => self.at += 1,
                _ => {
                    let len = self.bytes.get(start + 1).map(|&l| usize::from(l));
                    let end = len.map(|len| start + len);
                    match (len, end) {
                        (Some(len), Some(end)) if len >= 2 && end <= self.bytes.len() => {
                            self.at = end;
                            return Some(RawOption {
                                kind,
                                data: start + 2..end,
                            });
                        }
                        _ => {
                            self.at = self.bytes.len();
                            return None;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from port 12345 to 80 with MSS 1460, SACK permitted, NOP and
    /// window scale 7, as Linux sends it (checksum made up).
    const SYN: [u8; 32] = [
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0x02, 0xff, 0xff, 0xbe, 0xef, 0, 0,
        2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7, 0, 0,
    ];

    #[test]
    fn known_bytes_to_fields() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.header_len(), 32);
        assert!(p.syn() && !p.ack());
        assert_eq!(p.checksum(), 0xbeef);
        let options: Vec<_> = Options::new(p.options()).collect();
        assert_eq!(
            options,
            [
                RawOption {
                    kind: option::MSS,
                    data: 2..4
                },
                RawOption {
                    kind: 4,
                    data: 6..6
                },
                RawOption {
                    kind: 3,
                    data: 9..10
                },
            ]
        );
    }

    #[test]
    fn fields_to_bytes() {
        let mut bytes = SYN;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_checksum(0x1234);
        p.options_mut()[2..4].copy_from_slice(&1360u16.to_be_bytes());
        let mut expected = SYN;
        expected[16..18].copy_from_slice(&[0x12, 0x34]);
        expected[22..24].copy_from_slice(&[0x05, 0x50]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn truncated_and_malformed_headers() {
        for n in 0..HEADER_LEN {
            assert!(matches!(
                Packet::new_checked(&SYN[..n]),
                Err(Error::Truncated { need: 20, .. })
            ));
        }
        // Data Offset past the buffer.
        assert_eq!(
            Packet::new_checked(&SYN[..31]),
            Err(Error::Truncated {
                what: WHAT,
                need: 32,
                have: 31
            })
        );
        let mut short = SYN;
        short[12] = 0x40;
        assert!(matches!(
            Packet::new_checked(&short[..]),
            Err(Error::BadLength { len: 16, .. })
        ));
    }

    #[test]
    fn malformed_options_end_the_list() {
        // Length 1, length running past the end, kind without a length.
        for bytes in [&[2, 1, 0, 0][..], &[1, 2, 9, 5, 0xb4], &[1, 1, 2]] {
            assert_eq!(Options::new(bytes).count(), 0, "{bytes:?}");
        }
        // End of Option List hides what follows it.
        assert_eq!(Options::new(&[0, 2, 4, 5, 0xb4]).count(), 0);
    }
}
