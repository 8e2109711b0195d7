//! The MPPE packet header (RFC 3078 section 3): the first two octets of the
//! information field of a PPP frame with protocol 0x00FD (compressed
//! datagram); the encrypted data follows.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |A|B|C|D|    Coherency Count    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Encrypted Data ...
//! ```
//!
//! - A: the encryption tables were (re)initialised ("flushed"), as after a
//!   CCP Reset-Request or a key change in stateful mode;
//! - B, C: used by MPPC compression (RFC 2118 section 3.1): B the packet is
//!   at the front of the history buffer, C the packet is compressed;
//! - D: the packet is encrypted;
//! - coherency count: 12 bits, incremented for every packet sent.
//!
//! The codec reports the bits as received; what a cipher does with them is
//! up to `crate::mppe::cipher`.

use super::{Error, Result};

/// Length of the header.
pub const HEADER_LEN: usize = 2;

/// Bits of the header's first 16-bit word (RFC 3078 section 3).
pub mod flags {
    /// A: encryption tables flushed.
    pub const A: u16 = 0x8000;
    /// B: MPPC packet at the front of the history buffer.
    pub const B: u16 = 0x4000;
    /// C: MPPC packet compressed.
    pub const C: u16 = 0x2000;
    /// D: packet encrypted.
    pub const D: u16 = 0x1000;
    /// The 12-bit coherency count.
    pub const COHERENCY_COUNT_MASK: u16 = 0x0FFF;
}

/// Number of distinct coherency counts (the count wraps at 4096).
pub const COHERENCY_COUNT_SPACE: u16 = flags::COHERENCY_COUNT_MASK + 1;

const WHAT: &str = "MPPE header";

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const BITS_COUNT: Field = 0..2;
    pub const DATA: core::ops::RangeFrom<usize> = BITS_COUNT.end..;
}

/// A read/write view of an MPPE packet (RFC 3078 section 3) over the
/// information field of a 0x00FD PPP frame.
///
/// [`Packet::new_checked`] checks that the header is there; afterwards no
/// accessor can panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (for emitting).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a received buffer after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks that the two header octets are present.
    pub fn check(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_LEN,
                have,
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole first word: flag bits and coherency count.
    pub fn bits_and_count(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::BITS_COUNT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// A: encryption tables flushed.
    pub fn flushed(&self) -> bool {
        self.bits_and_count() & flags::A != 0
    }

    /// B: MPPC packet at the front of the history buffer.
    pub fn at_front(&self) -> bool {
        self.bits_and_count() & flags::B != 0
    }

    /// C: MPPC packet compressed.
    pub fn compressed(&self) -> bool {
        self.bits_and_count() & flags::C != 0
    }

    /// D: packet encrypted.
    pub fn encrypted(&self) -> bool {
        self.bits_and_count() & flags::D != 0
    }

    /// The 12-bit coherency count.
    pub fn coherency_count(&self) -> u16 {
        self.bits_and_count() & flags::COHERENCY_COUNT_MASK
    }

    /// The (encrypted) data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the first word: flag bits and coherency count.
    pub fn set_bits_and_count(&mut self, value: u16) {
        self.buffer.as_mut()[field::BITS_COUNT].copy_from_slice(&value.to_be_bytes());
    }

    /// The data after the header, for encrypting in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

/// A parsed MPPE header (RFC 3078 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Repr {
    /// A: encryption tables flushed.
    pub flushed: bool,
    /// B: MPPC packet at the front of the history buffer (RFC 2118).
    pub at_front: bool,
    /// C: MPPC packet compressed (RFC 2118).
    pub compressed: bool,
    /// D: packet encrypted.
    pub encrypted: bool,
    /// The coherency count, below 4096.
    pub coherency_count: u16,
}

impl Repr {
    /// The header of an encrypted packet, as MPPE without MPPC sends it.
    pub const fn encrypted(coherency_count: u16, flushed: bool) -> Repr {
        Repr {
            flushed,
            at_front: false,
            compressed: false,
            encrypted: true,
            coherency_count,
        }
    }

    /// Parses a checked (or unchecked: it is checked again) packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check()?;
        Ok(Repr {
            flushed: packet.flushed(),
            at_front: packet.at_front(),
            compressed: packet.compressed(),
            encrypted: packet.encrypted(),
            coherency_count: packet.coherency_count(),
        })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a packet with `payload_len` octets of data.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// The first word: flag bits and coherency count.
    pub fn bits_and_count(&self) -> Result<u16> {
        if self.coherency_count > flags::COHERENCY_COUNT_MASK {
            return Err(Error::Malformed {
                what: WHAT,
                why: "coherency count above 12 bits",
            });
        }
        let bit = |set: bool, bit: u16| if set { bit } else { 0 };
        Ok(bit(self.flushed, flags::A)
            | bit(self.at_front, flags::B)
            | bit(self.compressed, flags::C)
            | bit(self.encrypted, flags::D)
            | self.coherency_count)
    }

    /// Writes the header into the start of `buf` and returns its length.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<usize> {
        let word = self.bits_and_count()?;
        let Some(header) = buf.get_mut(field::BITS_COUNT) else {
            return Err(Error::BufferTooSmall {
                what: WHAT,
                need: HEADER_LEN,
                have: buf.len(),
            });
        };
        header.copy_from_slice(&word.to_be_bytes());
        Ok(HEADER_LEN)
    }

    /// Writes the header into the start of the packet's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        self.emit_header(packet.buffer.as_mut()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_known_bytes() {
        // D set, count 0x123: "encrypted, coherency count 291".
        let packet = Packet::new_checked(&[0x11, 0x23, 0xde, 0xad][..]).unwrap();
        assert!(
            packet.encrypted() && !packet.flushed() && !packet.at_front() && !packet.compressed()
        );
        assert_eq!(packet.coherency_count(), 0x123);
        assert_eq!(packet.payload(), &[0xde, 0xad]);
        assert_eq!(Repr::parse(&packet).unwrap(), Repr::encrypted(0x123, false));

        // A and D, count 0xfff (a stateful flush on the last count).
        let repr = Repr::parse(&Packet::new_checked(&[0x9f, 0xff][..]).unwrap()).unwrap();
        assert_eq!(repr, Repr::encrypted(0xfff, true));

        // Every bit set, count 0.
        let repr = Repr::parse(&Packet::new_checked(&[0xf0, 0x00][..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr {
                flushed: true,
                at_front: true,
                compressed: true,
                encrypted: true,
                coherency_count: 0
            }
        );
    }

    #[test]
    fn emit_known_bytes() {
        let mut buf = [0xa5u8; 4];
        assert_eq!(Repr::encrypted(0x123, false).emit_header(&mut buf), Ok(2));
        assert_eq!(buf, [0x11, 0x23, 0xa5, 0xa5]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        Repr::encrypted(0xfff, true).emit(&mut packet).unwrap();
        packet.payload_mut().copy_from_slice(&[1, 2]);
        assert_eq!(buf, [0x9f, 0xff, 1, 2]);
        let only_b_c = Repr {
            at_front: true,
            compressed: true,
            ..Repr::default()
        };
        assert_eq!(only_b_c.bits_and_count(), Ok(0x6000));
    }

    #[test]
    fn round_trips() {
        for word in [0x0000u16, 0x1000, 0x9001, 0x6abc, 0xffff] {
            let bytes = word.to_be_bytes();
            let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
            let mut out = [0xa5u8; 2];
            repr.emit_header(&mut out).unwrap();
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn truncated_and_invalid() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&[0x10, 0x00][..len]),
                Err(Error::Truncated {
                    what: WHAT,
                    need: 2,
                    have: len
                })
            );
        }
        assert_eq!(
            Repr::encrypted(0, false).emit_header(&mut [0u8; 1]),
            Err(Error::BufferTooSmall {
                what: WHAT,
                need: 2,
                have: 1
            })
        );
        assert!(matches!(
            Repr::encrypted(COHERENCY_COUNT_SPACE, false).emit_header(&mut [0u8; 2]),
            Err(Error::Malformed { .. })
        ));
    }
}
