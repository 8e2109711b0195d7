//! Enhanced GRE, the data channel of a PPTP call (RFC 2637 section 4.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Key (HW) Payload Length    |       Key (LW) Call ID        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Sequence Number (Optional)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Acknowledgment Number (Optional)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! What this codec accepts (anything else is an error that says why):
//! version 1; K set; C, R, s, Recur and the reserved flags clear; protocol
//! type 0x880B (PPP); either a data packet (S set, the sequence number
//! present, A optional, a payload of at least one byte) or an
//! acknowledgment-only packet (S clear, A set, payload length 0). The payload length must fit in the buffer; bytes
//! after the payload (link-layer padding) are ignored.
//!
//! The header lengths equal those of `pptp_common::hdr::GreHdr`, which the
//! XDP program uses (a test below checks it).

use pptp_common::consts::{GRE_PROTO_PPP, gre_flags};

use super::{Error, Result};

/// Length of the fixed part of the header (flags, protocol, key).
pub const HEADER_LEN: usize = field::KEY_END;
/// Length of each optional field (sequence number, acknowledgment number).
pub const OPTION_LEN: usize = 4;
/// Longest header: fixed part, sequence number and acknowledgment number.
pub const MAX_HEADER_LEN: usize = HEADER_LEN + 2 * OPTION_LEN;

const WHAT: &str = "enhanced GRE header";

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    /// Key, high half.
    pub const PAYLOAD_LEN: Field = 4..6;
    /// Key, low half.
    pub const CALL_ID: Field = 6..8;
    pub const KEY_END: usize = CALL_ID.end;
}

/// A read/write view of an enhanced GRE packet (RFC 2637 section 4.1).
///
/// [`Packet::new_checked`] validates the whole header and the payload
/// length once; afterwards no accessor can panic. Accessors of a packet
/// made with [`Packet::new_unchecked`] panic if the buffer is shorter than
/// the header the flags announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (for emitting into a buffer the
    /// caller sized with [`Repr::buffer_len`]).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a received buffer after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the header (flags, version, protocol type, which optional
    /// fields are present) and that the announced payload fits in the
    /// buffer.
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_LEN,
                have: data.len(),
            });
        }
        let flags = be16(data, field::FLAGS_VERSION);
        let protocol = be16(data, field::PROTOCOL);
        let payload_len = be16(data, field::PAYLOAD_LEN);
        match flags & gre_flags::VERSION_MASK {
            gre_flags::VERSION_ENHANCED => {}
            0 => {
                return Err(Error::Malformed {
                    what: WHAT,
                    why: "GRE version 0 (RFC 2784 GRE), not enhanced GRE version 1",
                });
            }
            version => {
                return Err(Error::Unknown {
                    what: "GRE version",
                    value: u32::from(version),
                });
            }
        }
        if flags & gre_flags::C != 0 {
            return Err(malformed("checksum present bit C set (must be 0)"));
        }
        if flags & gre_flags::R != 0 {
            return Err(malformed("routing present bit R set (must be 0)"));
        }
        if flags & gre_flags::STRICT != 0 {
            return Err(malformed("strict source route bit s set (must be 0)"));
        }
        if flags & gre_flags::RECUR_MASK != 0 {
            return Err(malformed("recursion control not 0"));
        }
        if flags & gre_flags::RESERVED_MASK != 0 {
            return Err(malformed("reserved flags set (must be 0)"));
        }
        if flags & gre_flags::K == 0 {
            return Err(malformed("key present bit K clear (must be 1)"));
        }
        if protocol != GRE_PROTO_PPP {
            return Err(Error::Unknown {
                what: "GRE protocol type (PPTP carries PPP, 0x880b)",
                value: u32::from(protocol),
            });
        }
        let has_seq = flags & gre_flags::S != 0;
        let has_ack = flags & gre_flags::A != 0;
        if !has_seq && !has_ack {
            return Err(malformed(
                "neither sequence nor acknowledgment number (S and A clear)",
            ));
        }
        if !has_seq && payload_len != 0 {
            return Err(malformed(
                "payload without a sequence number (S clear, payload length not 0)",
            ));
        }
        if has_seq && payload_len == 0 {
            return Err(malformed(
                "data packet without payload (S set, payload length 0)",
            ));
        }
        let header_len = header_len(has_seq, has_ack);
        if data.len() < header_len {
            return Err(Error::Truncated {
                what: WHAT,
                need: header_len,
                have: data.len(),
            });
        }
        let total = header_len + usize::from(payload_len);
        if data.len() < total {
            return Err(Error::Truncated {
                what: "enhanced GRE payload",
                need: total,
                have: data.len(),
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags and version word.
    pub fn flags_version(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_VERSION)
    }

    /// The protocol type (0x880B once checked).
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Payload length: the high half of the key.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Call ID: the low half of the key, the receiver's call ID.
    pub fn call_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CALL_ID)
    }

    /// Whether the S bit announces a sequence number.
    pub fn has_seq(&self) -> bool {
        self.flags_version() & gre_flags::S != 0
    }

    /// Whether the A bit announces an acknowledgment number.
    pub fn has_ack(&self) -> bool {
        self.flags_version() & gre_flags::A != 0
    }

    /// Length of the header including the optional fields present.
    pub fn header_len(&self) -> usize {
        header_len(self.has_seq(), self.has_ack())
    }

    /// The sequence number, if present.
    pub fn seq(&self) -> Option<u32> {
        self.has_seq()
            .then(|| be32(self.buffer.as_ref(), seq_field()))
    }

    /// The acknowledgment number, if present.
    pub fn ack(&self) -> Option<u32> {
        self.has_ack()
            .then(|| be32(self.buffer.as_ref(), ack_field(self.has_seq())))
    }

    /// The payload: exactly payload-length bytes after the header.
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        &self.buffer.as_ref()[start..start + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags and version word.
    pub fn set_flags_version(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLAGS_VERSION].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol(&mut self, value: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the call ID.
    pub fn set_call_id(&mut self, value: u16) {
        self.buffer.as_mut()[field::CALL_ID].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the sequence number (the S bit must be set first).
    pub fn set_seq(&mut self, value: u32) {
        self.buffer.as_mut()[seq_field()].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the acknowledgment number where the flags put it (set the
    /// flags first).
    pub fn set_ack(&mut self, value: u32) {
        let range = ack_field(self.has_seq());
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// The payload, for filling in after [`Repr::emit`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let len = usize::from(self.payload_len());
        &mut self.buffer.as_mut()[start..start + len]
    }
}

/// A parsed enhanced GRE header (RFC 2637 section 4.1): a data packet
/// (`seq` is `Some`, `payload_len` above 0) or an acknowledgment-only packet (`seq` is `None`,
/// `ack` is `Some`, `payload_len` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The receiver's call ID (the peer's, when we send).
    pub call_id: u16,
    /// Sequence number of a data packet.
    pub seq: Option<u32>,
    /// Highest sequence number received from the other side.
    pub ack: Option<u32>,
    /// Length of the PPP frame after the header.
    pub payload_len: u16,
}

impl Repr {
    /// A data packet.
    pub const fn data(call_id: u16, seq: u32, ack: Option<u32>, payload_len: u16) -> Repr {
        Repr {
            call_id,
            seq: Some(seq),
            ack,
            payload_len,
        }
    }

    /// An acknowledgment-only packet.
    pub const fn ack_only(call_id: u16, ack: u32) -> Repr {
        Repr {
            call_id,
            seq: None,
            ack: Some(ack),
            payload_len: 0,
        }
    }

    /// Parses a checked (or unchecked: it is checked again) packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check()?;
        Ok(Repr {
            call_id: packet.call_id(),
            seq: packet.seq(),
            ack: packet.ack(),
            payload_len: packet.payload_len(),
        })
    }

    /// Whether this is an acknowledgment-only packet.
    pub const fn is_ack_only(&self) -> bool {
        self.seq.is_none()
    }

    /// The flags and version word this header is sent with.
    pub const fn flags_version(&self) -> u16 {
        let mut flags = gre_flags::BASE;
        if self.seq.is_some() {
            flags |= gre_flags::S;
        }
        if self.ack.is_some() {
            flags |= gre_flags::A;
        }
        flags
    }

    /// Length of the header alone.
    pub const fn header_len(&self) -> usize {
        header_len(self.seq.is_some(), self.ack.is_some())
    }

    /// Length of the whole packet: header and payload.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len as usize
    }

    /// Checks that the representation is one the RFC allows.
    fn validate(&self) -> Result<()> {
        match (self.seq, self.ack, self.payload_len) {
            (Some(_), _, 0) => Err(malformed(
                "data packet without payload (S set, payload length 0)",
            )),
            (Some(_), _, _) | (None, Some(_), 0) => Ok(()),
            (None, None, _) => Err(malformed(
                "neither sequence nor acknowledgment number (S and A clear)",
            )),
            (None, Some(_), _) => Err(malformed(
                "payload without a sequence number (S clear, payload length not 0)",
            )),
        }
    }

    /// Writes the header into the start of `buf` and returns its length;
    /// the caller puts the `payload_len` bytes of payload right after it.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<usize> {
        self.validate()?;
        let len = self.header_len();
        let Some(header) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall {
                what: WHAT,
                need: len,
                have: buf.len(),
            });
        };
        let mut packet = Packet::new_unchecked(header);
        packet.set_flags_version(self.flags_version());
        packet.set_protocol(GRE_PROTO_PPP);
        packet.set_payload_len(self.payload_len);
        packet.set_call_id(self.call_id);
        if let Some(seq) = self.seq {
            packet.set_seq(seq);
        }
        if let Some(ack) = self.ack {
            packet.set_ack(ack);
        }
        Ok(len)
    }

    /// Writes the header into a packet buffer of at least
    /// [`Repr::buffer_len`] bytes; the payload is then filled through
    /// [`Packet::payload_mut`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let have = packet.buffer.as_ref().len();
        if have < self.buffer_len() {
            return Err(Error::BufferTooSmall {
                what: "enhanced GRE packet",
                need: self.buffer_len(),
                have,
            });
        }
        self.emit_header(packet.buffer.as_mut()).map(|_| ())
    }
}

const fn header_len(has_seq: bool, has_ack: bool) -> usize {
    HEADER_LEN + if has_seq { OPTION_LEN } else { 0 } + if has_ack { OPTION_LEN } else { 0 }
}

const fn seq_field() -> field::Field {
    HEADER_LEN..HEADER_LEN + OPTION_LEN
}

const fn ack_field(has_seq: bool) -> field::Field {
    let start = if has_seq {
        HEADER_LEN + OPTION_LEN
    } else {
        HEADER_LEN
    };
    start..start + OPTION_LEN
}

fn malformed(why: &'static str) -> Error {
    Error::Malformed { what: WHAT, why }
}

/// Reads a field the caller has checked to be inside `data`.
fn be16(data: &[u8], range: field::Field) -> u16 {
    let b = &data[range];
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a field the caller has checked to be inside `data`.
fn be32(data: &[u8], range: field::Field) -> u32 {
    let b = &data[range];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use pptp_common::hdr::GreHdr;

    /// Data packet, call ID 0x1234, seq 1, ack 7, 4 payload bytes: the
    /// layout of RFC 2637 section 4.1 written out by hand.
    const DATA_SEQ_ACK: [u8; 20] = [
        0x30, 0x81, // K S A, version 1
        0x88, 0x0b, // PPP
        0x00, 0x04, // payload length
        0x12, 0x34, // call ID
        0x00, 0x00, 0x00, 0x01, // sequence number
        0x00, 0x00, 0x00, 0x07, // acknowledgment number
        0xff, 0x03, 0xc0, 0x21, // payload
    ];

    /// Acknowledgment only: S clear, A set, no payload.
    const ACK_ONLY: [u8; 12] = [
        0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xfe,
    ];

    /// Data packet without acknowledgment.
    const DATA_SEQ: [u8; 14] = [
        0x30, 0x01, 0x88, 0x0b, 0x00, 0x02, 0x00, 0x2a, 0x80, 0x00, 0x00, 0x00, 0x21, 0x45,
    ];

    #[test]
    fn header_lengths_match_the_xdp_headers() {
        assert_eq!(GreHdr::LEN, HEADER_LEN);
        assert_eq!(GreHdr::MAX_LEN, MAX_HEADER_LEN);
        assert_eq!(GreHdr::SEQ_LEN, OPTION_LEN);
        assert_eq!(GreHdr::ACK_LEN, OPTION_LEN);
        assert_eq!(Repr::data(1, 0, Some(0), 0).header_len(), GreHdr::MAX_LEN);
        assert_eq!(
            Repr::data(1, 0, None, 0).header_len(),
            GreHdr::LEN + GreHdr::SEQ_LEN
        );
        assert_eq!(
            Repr::ack_only(1, 0).header_len(),
            GreHdr::LEN + GreHdr::ACK_LEN
        );
    }

    #[test]
    fn parse_data_with_seq_and_ack() {
        let packet = Packet::new_checked(&DATA_SEQ_ACK[..]).unwrap();
        assert_eq!(packet.flags_version(), 0x3081);
        assert_eq!(packet.protocol(), 0x880b);
        assert_eq!(packet.call_id(), 0x1234);
        assert_eq!(packet.payload_len(), 4);
        assert_eq!(packet.seq(), Some(1));
        assert_eq!(packet.ack(), Some(7));
        assert_eq!(packet.header_len(), 16);
        assert_eq!(packet.payload(), &[0xff, 0x03, 0xc0, 0x21]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr, Repr::data(0x1234, 1, Some(7), 4));
        assert!(!repr.is_ack_only());
    }

    #[test]
    fn parse_data_without_ack() {
        let packet = Packet::new_checked(&DATA_SEQ[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr, Repr::data(42, 0x8000_0000, None, 2));
        assert_eq!(packet.payload(), &[0x21, 0x45]);
    }

    #[test]
    fn parse_ack_only() {
        let packet = Packet::new_checked(&ACK_ONLY[..]).unwrap();
        assert_eq!(packet.seq(), None);
        assert_eq!(packet.ack(), Some(0xffff_fffe));
        assert_eq!(packet.payload(), &[] as &[u8]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr, Repr::ack_only(0xbeef, 0xffff_fffe));
        assert!(repr.is_ack_only());
    }

    #[test]
    fn trailing_bytes_after_the_payload_are_ignored() {
        let mut padded = DATA_SEQ.to_vec();
        padded.extend_from_slice(&[0, 0, 0, 0]);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &[0x21, 0x45]);
    }

    fn emit(repr: &Repr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.buffer_len()];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet).unwrap();
        packet.payload_mut().copy_from_slice(payload);
        buf
    }

    #[test]
    fn emit_known_bytes() {
        assert_eq!(
            emit(
                &Repr::data(0x1234, 1, Some(7), 4),
                &[0xff, 0x03, 0xc0, 0x21]
            ),
            DATA_SEQ_ACK
        );
        assert_eq!(emit(&Repr::ack_only(0xbeef, 0xffff_fffe), &[]), ACK_ONLY);
        assert_eq!(
            emit(&Repr::data(42, 0x8000_0000, None, 2), &[0x21, 0x45]),
            DATA_SEQ
        );
    }

    #[test]
    fn emit_header_leaves_the_payload_alone() {
        let mut buf = [0xa5u8; 20];
        let repr = Repr::data(0x1234, 1, Some(7), 4);
        assert_eq!(repr.emit_header(&mut buf).unwrap(), 16);
        assert_eq!(buf[..16], DATA_SEQ_ACK[..16]);
        assert_eq!(buf[16..], [0xa5; 4]);
    }

    #[test]
    fn emit_rejects_small_buffers_and_invalid_reprs() {
        let repr = Repr::data(1, 2, Some(3), 10);
        let mut small = [0u8; 25];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall {
                what: "enhanced GRE packet",
                need: 26,
                have: 25
            })
        );
        assert!(matches!(
            repr.emit_header(&mut small[..15]),
            Err(Error::BufferTooSmall {
                need: 16,
                have: 15,
                ..
            })
        ));
        let mut buf = [0u8; 32];
        let no_fields = Repr {
            call_id: 1,
            seq: None,
            ack: None,
            payload_len: 0,
        };
        assert!(matches!(
            no_fields.emit_header(&mut buf),
            Err(Error::Malformed { .. })
        ));
        let ack_with_payload = Repr {
            call_id: 1,
            seq: None,
            ack: Some(1),
            payload_len: 1,
        };
        assert!(matches!(
            ack_with_payload.emit_header(&mut buf),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            Repr::data(1, 2, None, 0).emit_header(&mut buf),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn round_trips() {
        let reprs = [
            Repr::data(0, 0, None, 1),
            Repr::data(0xffff, u32::MAX, Some(u32::MAX), 1500),
            Repr::data(7, 12345, Some(0), 3),
            Repr::ack_only(9, 0),
        ];
        for repr in reprs {
            let payload: Vec<u8> = (0..repr.payload_len).map(|i| i as u8).collect();
            let bytes = emit(&repr, &payload);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&packet).unwrap(), repr);
            assert_eq!(packet.payload(), &payload[..]);
        }
    }

    #[test]
    fn truncated_inputs() {
        for len in 0..DATA_SEQ_ACK.len() {
            let err = Packet::new_checked(&DATA_SEQ_ACK[..len]).unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{len}: {err:?}");
        }
        for len in 0..ACK_ONLY.len() {
            assert!(matches!(
                Packet::new_checked(&ACK_ONLY[..len]),
                Err(Error::Truncated { .. })
            ));
        }
        // A payload length beyond the buffer.
        let mut long = DATA_SEQ;
        long[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&long[..]),
            Err(Error::Truncated {
                what: "enhanced GRE payload",
                need: 15,
                have: 14
            })
        );
    }

    fn with_flags(flags: u16) -> Result<Packet<[u8; 20]>> {
        let mut bytes = DATA_SEQ_ACK;
        bytes[0..2].copy_from_slice(&flags.to_be_bytes());
        Packet::new_checked(bytes)
    }

    fn why(result: Result<Packet<[u8; 20]>>) -> &'static str {
        match result {
            Err(Error::Malformed { why, .. }) => why,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn malformed_headers_say_why() {
        assert!(with_flags(0x3081).is_ok());
        assert!(why(with_flags(0x3080)).contains("version 0"));
        assert_eq!(
            with_flags(0x3082).map(|_| ()),
            Err(Error::Unknown {
                what: "GRE version",
                value: 2
            })
        );
        assert!(why(with_flags(0xb081)).contains("bit C"));
        assert!(why(with_flags(0x7081)).contains("bit R"));
        assert!(why(with_flags(0x3881)).contains("bit s"));
        assert!(why(with_flags(0x3181)).contains("recursion"));
        assert!(why(with_flags(0x3481)).contains("recursion"));
        assert!(why(with_flags(0x3089)).contains("reserved"));
        assert!(why(with_flags(0x30c1)).contains("reserved"));
        assert!(why(with_flags(0x1081)).contains("bit K"));
        assert!(why(with_flags(0x2001)).contains("neither"));
        // S clear with a payload.
        assert!(why(with_flags(0x2081)).contains("payload without"));
        // S set with payload length 0.
        let mut empty = ACK_ONLY;
        empty[0..2].copy_from_slice(&0x3001u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&empty[..]),
            Err(Error::Malformed { why, .. }) if why.contains("without payload")
        ));

        let mut ip = DATA_SEQ_ACK;
        ip[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&ip[..]).map(|_| ()),
            Err(Error::Unknown {
                what: "GRE protocol type (PPTP carries PPP, 0x880b)",
                value: 0x0800
            })
        );
    }

    #[test]
    fn every_prefix_and_flag_word_is_handled_without_panic() {
        let mut bytes = DATA_SEQ_ACK;
        for flags in 0..=u16::MAX {
            bytes[0..2].copy_from_slice(&flags.to_be_bytes());
            for len in [0, 7, 8, 11, 12, 15, 16, 20] {
                if let Ok(packet) = Packet::new_checked(&bytes[..len]) {
                    let repr = Repr::parse(&packet).unwrap();
                    assert_eq!(repr.flags_version(), flags);
                    let _ = packet.payload();
                }
            }
        }
    }
}
