//! Fixed-layout headers that the XDP program reads and writes in place.
//!
//! Fields are byte arrays in network order, so the structs have alignment 1
//! and can sit at any offset in a packet. The daemon's codecs in
//! `pptp_daemon::wire` own validation and the full representations; a host
//! test there checks that these lengths equal the codecs' header lengths.

use crate::consts::gre_flags;

/// Enhanced GRE header without the optional fields (RFC 2637 section 4.1).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Key (HW) Payload Length    |       Key (LW) Call ID        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Sequence Number (Optional)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               Acknowledgment Number (Optional)                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreHdr {
    pub flags_version: [u8; 2],
    pub protocol: [u8; 2],
    pub payload_len: [u8; 2],
    pub call_id: [u8; 2],
}

impl GreHdr {
    /// Length of the fixed part.
    pub const LEN: usize = 8;
    /// Length of the optional sequence number.
    pub const SEQ_LEN: usize = 4;
    /// Length of the optional acknowledgment number.
    pub const ACK_LEN: usize = 4;
    /// Longest enhanced GRE header: fixed part, sequence and acknowledgment.
    pub const MAX_LEN: usize = Self::LEN + Self::SEQ_LEN + Self::ACK_LEN;

    #[inline(always)]
    pub fn flags_version(&self) -> u16 {
        u16::from_be_bytes(self.flags_version)
    }

    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        u16::from_be_bytes(self.protocol)
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes(self.payload_len)
    }

    #[inline(always)]
    pub fn call_id(&self) -> u16 {
        u16::from_be_bytes(self.call_id)
    }

    /// Whether the flags word is that of enhanced GRE (K set, version 1, C, R,
    /// s, Recur and the reserved flags clear).
    #[inline(always)]
    pub fn is_enhanced(&self) -> bool {
        let f = self.flags_version();
        f & (gre_flags::MUST_BE_ZERO | gre_flags::K | gre_flags::VERSION_MASK) == gre_flags::BASE
    }

    #[inline(always)]
    pub fn has_seq(&self) -> bool {
        self.flags_version() & gre_flags::S != 0
    }

    #[inline(always)]
    pub fn has_ack(&self) -> bool {
        self.flags_version() & gre_flags::A != 0
    }

    /// Length of the whole header including the optional fields it announces.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        Self::LEN
            + if self.has_seq() { Self::SEQ_LEN } else { 0 }
            + if self.has_ack() { Self::ACK_LEN } else { 0 }
    }
}

/// PPP header in HDLC-like framing with address and control present and a
/// two-byte protocol field (RFC 1661 section 2, RFC 1662 section 3.1).
/// With ACFC and/or PFC negotiated the header is shorter; the XDP program
/// handles those cases byte by byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PppHdr {
    pub address: u8,
    pub control: u8,
    pub protocol: [u8; 2],
}

impl PppHdr {
    pub const LEN: usize = 4;

    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        u16::from_be_bytes(self.protocol)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layouts_have_no_padding_and_alignment_one() {
        assert_eq!(size_of::<GreHdr>(), GreHdr::LEN);
        assert_eq!(align_of::<GreHdr>(), 1);
        assert_eq!(size_of::<PppHdr>(), PppHdr::LEN);
        assert_eq!(align_of::<PppHdr>(), 1);
    }

    #[test]
    fn enhanced_gre_flags() {
        let hdr = |f: u16| GreHdr {
            flags_version: f.to_be_bytes(),
            protocol: 0x880Bu16.to_be_bytes(),
            payload_len: [0, 0],
            call_id: [0x12, 0x34],
        };
        let h = hdr(0x3081);
        assert!(h.is_enhanced() && h.has_seq() && h.has_ack());
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.call_id(), 0x1234);
        assert_eq!(h.protocol(), 0x880B);
        assert!(hdr(0x2001).is_enhanced());
        assert_eq!(hdr(0x2001).header_len(), 8);
        assert_eq!(hdr(0x2081).header_len(), 12);
        // GRE version 0, missing key, checksum, routing, recursion: not enhanced GRE.
        for bad in [0x2000, 0x0001, 0xA001, 0x6001, 0x2101, 0x2009, 0x2801] {
            assert!(!hdr(bad).is_enhanced(), "{bad:#06x}");
        }
    }
}
