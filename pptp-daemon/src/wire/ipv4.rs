//! The IPv4 header (RFC 791 section 3.1), read where the data path needs
//! it: the inner packet's source (the anti-spoofing check), destination
//! (which session a packet from the TUN device goes to), protocol and
//! fragment offset (TCP MSS clamping).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Our own view rather than smoltcp's `wire` or etherparse: the data path
//! reads six fields and writes none, so a hundred lines with the same
//! contract as the other views of this module (and their error type) cost
//! less than a dependency with its own error and feature sets; nothing here
//! needs `no_std` (the XDP program reads headers through
//! `network-types`). There is no `Repr`: the daemon never builds an IPv4
//! header, it only forwards packets. The header checksum is not verified:
//! the packet came through the tunnel or the local stack, and whoever
//! routes it next checks it.

use std::net::Ipv4Addr;

use super::{Error, Result};

/// Length of the header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const WHAT: &str = "IPv4 header";

mod field {
    pub type Field = core::ops::Range<usize>;

    /// Version (high nibble) and Internet Header Length in 32-bit words.
    pub const VER_IHL: usize = 0;
    pub const LENGTH: Field = 2..4;
    /// Flags (3 high bits) and Fragment Offset in 8-octet units.
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers") the
/// data path looks for.
pub mod protocol {
    /// Transmission Control Protocol (RFC 9293).
    pub const TCP: u8 = 6;
    /// User Datagram Protocol (RFC 768).
    pub const UDP: u8 = 17;
}

/// Flag bits of the Flags/Fragment Offset field (RFC 791 section 3.1).
const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1FFF;

/// A read/write view of an IPv4 packet (RFC 791 section 3.1).
///
/// [`Packet::new_checked`] validates the version, the header length and
/// the total length once; afterwards no accessor can panic.
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

    /// Checks that the buffer holds an IPv4 header (version 4, IHL of at
    /// least five words, within the buffer) and that Total Length covers
    /// the header and fits in the buffer. Octets past Total Length are
    /// link-layer padding and are ignored.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_LEN,
                have: data.len(),
            });
        }
        if self.version() != 4 {
            return Err(Error::Unknown {
                what: "IP version",
                value: u32::from(self.version()),
            });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::BadLength {
                what: WHAT,
                len: header_len,
                why: "IHL below five words",
            });
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::BadLength {
                what: WHAT,
                len: total_len,
                why: "Total Length below the header length",
            });
        }
        if total_len > data.len() {
            return Err(Error::Truncated {
                what: "IPv4 packet",
                need: total_len,
                have: data.len(),
            });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4 in a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in octets, options included (IHL times four).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// Total Length: header and data, in octets.
    pub fn total_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn flags_offset(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLG_OFF];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DONT_FRAGMENT != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MORE_FRAGMENTS != 0
    }

    /// Fragment Offset in octets (0 for an unfragmented packet and for the
    /// first fragment, the only one that carries the transport header).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & FRAGMENT_OFFSET_MASK) * 8
    }

    /// Time to Live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload ([`protocol`]).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Source Address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination Address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The data after the header, up to Total Length.
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The data after the header, up to Total Length, to modify in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP datagram from 198.18.1.2 to 198.19.0.2: DF set, TTL 64, four
    /// octets of data, then two octets of link-layer padding.
    const PACKET: [u8; 30] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 198, 18, 1, 2, 198,
        19, 0, 2, // header
        0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, // data (8 octets of UDP header)
        0xa5, 0xa5, // padding
    ];

    #[test]
    fn known_bytes_to_fields() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 19, 0, 2));
        // The padding past Total Length is not payload.
        assert_eq!(p.payload(), &PACKET[20..28]);
    }

    #[test]
    fn options_and_fragments() {
        let mut bytes = vec![0x46, 0, 0, 32, 0, 0, 0x20, 0x03, 1, protocol::TCP];
        bytes.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0]);
        bytes.extend_from_slice(&[7; 8]);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 24);
        assert_eq!(p.protocol(), protocol::TCP);
        p.payload_mut()[0] = 9;
        assert_eq!(p.payload(), &[9, 7, 7, 7, 7, 7, 7, 7]);
    }

    #[test]
    fn truncated_and_malformed() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET[..n]),
                Err(Error::Truncated {
                    what: WHAT,
                    need: HEADER_LEN,
                    have: n
                })
            );
        }
        // Total Length beyond the buffer.
        assert_eq!(
            Packet::new_checked(&PACKET[..27]),
            Err(Error::Truncated {
                what: "IPv4 packet",
                need: 28,
                have: 27
            })
        );
        let mut ipv6 = PACKET;
        ipv6[0] = 0x60;
        assert_eq!(
            Packet::new_checked(&ipv6[..]),
            Err(Error::Unknown {
                what: "IP version",
                value: 6
            })
        );
        let mut short_ihl = PACKET;
        short_ihl[0] = 0x44;
        assert!(matches!(
            Packet::new_checked(&short_ihl[..]),
            Err(Error::BadLength { len: 16, .. })
        ));
        // IHL running past Total Length.
        let mut long_ihl = PACKET;
        long_ihl[0] = 0x48;
        assert!(matches!(
            Packet::new_checked(&long_ihl[..]),
            Err(Error::BadLength { len: 28, .. })
        ));
    }
}
