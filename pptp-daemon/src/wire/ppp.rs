//! PPP framing inside enhanced GRE: the PPP encapsulation of RFC 1661
//! section 2 with the address and control fields of RFC 1662 section 3.1,
//! both of which LCP can negotiate away.
//!
//! ```text
//! +----------+----------+----------+-------------
//! | Address  | Control  | Protocol | Information
//! |   0xFF   |   0x03   | 8/16 bits|     ...
//! +----------+----------+----------+-------------
//! ```
//!
//! - Address-and-Control-Field-Compression (ACFC, RFC 1661 section 6.6)
//!   omits the first two octets. A frame whose first octet is 0xFF carries
//!   them: no protocol field starts with 0xFF (it would be odd in its first
//!   octet, or the reserved one-octet value 0x00FF).
//! - Protocol-Field-Compression (PFC, RFC 1661 section 6.5) sends protocols
//!   below 0x100 in one octet. A protocol field is odd in its last octet and
//!   even in its first, so an odd first octet is a one-octet field.
//!
//! On receive both forms are accepted whatever LCP negotiated (RFC 1661
//! asks receivers to be liberal). On send, [`Repr::new`] applies the
//! negotiated compressions where the RFC allows them: never on LCP frames,
//! which always carry address, control and a two-octet protocol field.
//!
//! PPP in GRE has neither flag sequences nor a frame check sequence: the
//! information field runs to the end of the GRE payload.

use pptp_common::consts::{PPP_ADDRESS, PPP_CONTROL, ppp_proto};

use super::{Error, Result};

/// Length of the longest header: address, control, two-octet protocol.
pub const MAX_HEADER_LEN: usize = 4;
/// Length of the shortest header: a one-octet protocol field alone.
pub const MIN_HEADER_LEN: usize = 1;

const WHAT: &str = "PPP header";

/// Protocol 0x00FF is reserved (IANA: "compression inefficient"): its
/// one-octet form is indistinguishable from the address field.
const RESERVED_UNCOMPRESSIBLE: u16 = 0x00FF;

mod field {
    pub const ADDRESS: usize = 0;
    pub const CONTROL: usize = 1;
    /// Where the protocol field starts when address and control are present.
    pub const PROTOCOL_AFTER_ADDRESS_CONTROL: usize = 2;
}

/// A PPP protocol number (RFC 1661 section 2; IANA "PPP DLL Protocol
/// Numbers"). Numbers without a variant are kept in `Unknown`: an LCP
/// Protocol-Reject must echo them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Internet Protocol version 4 (RFC 1332).
    Ipv4,
    /// Internet Protocol version 6 (RFC 5072).
    Ipv6,
    /// Compressed datagram (RFC 1962 section 4): MPPE/MPPC payload (RFC 3078).
    Compressed,
    /// IP Control Protocol (RFC 1332).
    Ipcp,
    /// IPv6 Control Protocol (RFC 5072).
    Ipv6cp,
    /// Compression Control Protocol (RFC 1962).
    Ccp,
    /// Link Control Protocol (RFC 1661).
    Lcp,
    /// Password Authentication Protocol (RFC 1334).
    Pap,
    /// Link Quality Report (RFC 1989).
    Lqr,
    /// Challenge Handshake Authentication Protocol (RFC 1994).
    Chap,
    /// Extensible Authentication Protocol (RFC 3748).
    Eap,
    /// Any other number, kept as received.
    Unknown(u16),
}

impl Protocol {
    /// Extensible Authentication Protocol (RFC 3748 section 4); not in
    /// `pptp_common::consts::ppp_proto`, which only lists what the data
    /// path needs.
    const EAP: u16 = 0xC227;

    /// Whether the number is a valid protocol field value (RFC 1661 section
    /// 2): the least significant bit of the last octet is 1 and that of
    /// the first octet is 0.
    pub const fn is_valid(value: u16) -> bool {
        value & 0x0001 == 1 && value & 0x0100 == 0
    }

    /// Whether a protocol field carrying this number may be compressed to
    /// one octet (RFC 1661 section 6.5): numbers below 0x100, except the
    /// reserved 0x00FF, whose one-octet form would read as the address.
    pub const fn is_compressible(value: u16) -> bool {
        value < 0x100 && value != RESERVED_UNCOMPRESSIBLE
    }
}

impl From<u16> for Protocol {
    fn from(value: u16) -> Self {
        match value {
            ppp_proto::IPV4 => Protocol::Ipv4,
            ppp_proto::IPV6 => Protocol::Ipv6,
            ppp_proto::COMPRESSED => Protocol::Compressed,
            ppp_proto::IPCP => Protocol::Ipcp,
            ppp_proto::IPV6CP => Protocol::Ipv6cp,
            ppp_proto::CCP => Protocol::Ccp,
            ppp_proto::LCP => Protocol::Lcp,
            ppp_proto::PAP => Protocol::Pap,
            ppp_proto::LQR => Protocol::Lqr,
            ppp_proto::CHAP => Protocol::Chap,
            Protocol::EAP => Protocol::Eap,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u16 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Ipv4 => ppp_proto::IPV4,
            Protocol::Ipv6 => ppp_proto::IPV6,
            Protocol::Compressed => ppp_proto::COMPRESSED,
            Protocol::Ipcp => ppp_proto::IPCP,
            Protocol::Ipv6cp => ppp_proto::IPV6CP,
            Protocol::Ccp => ppp_proto::CCP,
            Protocol::Lcp => ppp_proto::LCP,
            Protocol::Pap => ppp_proto::PAP,
            Protocol::Lqr => ppp_proto::LQR,
            Protocol::Chap => ppp_proto::CHAP,
            Protocol::Eap => Protocol::EAP,
            Protocol::Unknown(other) => other,
        }
    }
}

/// A read/write view of a PPP frame (RFC 1661 section 2, RFC 1662 section
/// 3.1), address/control and protocol field in either form.
///
/// [`Packet::new_checked`] validates the header once; afterwards no
/// accessor can panic. Accessors of a packet made with
/// [`Packet::new_unchecked`] panic if the buffer does not hold the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (for emitting).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a received frame after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the header: control 0x03 after address 0xFF, a complete
    /// protocol field, a valid protocol number.
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let truncated = |need| Error::Truncated {
            what: WHAT,
            need,
            have: data.len(),
        };
        let start = match data.first() {
            None => return Err(truncated(MIN_HEADER_LEN)),
            Some(&PPP_ADDRESS) => match data.get(field::CONTROL) {
                None => return Err(truncated(field::PROTOCOL_AFTER_ADDRESS_CONTROL + 1)),
                Some(&PPP_CONTROL) => field::PROTOCOL_AFTER_ADDRESS_CONTROL,
                Some(_) => {
                    return Err(Error::Malformed {
                        what: WHAT,
                        why: "address 0xff not followed by control 0x03 (RFC 1662 section 3.1)",
                    });
                }
            },
            Some(_) => 0,
        };
        let Some(&first) = data.get(start) else {
            return Err(truncated(start + 1));
        };
        if first & 1 == 1 {
            if u16::from(first) == RESERVED_UNCOMPRESSIBLE {
                return Err(Error::Malformed {
                    what: WHAT,
                    why: "one-octet protocol field 0xff (reserved 0x00ff)",
                });
            }
            return Ok(());
        }
        let Some(&last) = data.get(start + 1) else {
            return Err(truncated(start + 2));
        };
        if !Protocol::is_valid(u16::from_be_bytes([first, last])) {
            return Err(Error::Malformed {
                what: WHAT,
                why: "protocol number even in its last octet (RFC 1661 section 2)",
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether the frame carries address 0xFF and control 0x03.
    pub fn has_address_control(&self) -> bool {
        self.buffer.as_ref().first() == Some(&PPP_ADDRESS)
    }

    fn protocol_start(&self) -> usize {
        if self.has_address_control() {
            field::PROTOCOL_AFTER_ADDRESS_CONTROL
        } else {
            field::ADDRESS
        }
    }

    /// Length of the protocol field: 1 (compressed) or 2.
    pub fn protocol_len(&self) -> usize {
        if self.buffer.as_ref()[self.protocol_start()] & 1 == 1 {
            1
        } else {
            2
        }
    }

    /// Length of the header: address/control if present and the protocol
    /// field.
    pub fn header_len(&self) -> usize {
        self.protocol_start() + self.protocol_len()
    }

    /// The protocol number.
    pub fn protocol_number(&self) -> u16 {
        let data = self.buffer.as_ref();
        let start = self.protocol_start();
        if self.protocol_len() == 1 {
            u16::from(data[start])
        } else {
            u16::from_be_bytes([data[start], data[start + 1]])
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.protocol_number())
    }

    /// The information field: everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The information field, for filling in after [`Repr::emit`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A PPP header as it is on the wire (RFC 1661 section 2, RFC 1662 section
/// 3.1): the protocol and which compressions the frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub protocol: Protocol,
    /// Address and control omitted (ACFC, RFC 1661 section 6.6).
    pub acfc: bool,
    /// Protocol field sent in one octet (PFC, RFC 1661 section 6.5).
    pub pfc: bool,
}

impl Repr {
    /// The header to send `protocol` with when LCP negotiated the peer's
    /// acceptance of ACFC and PFC as given: each compression is applied
    /// only where RFC 1661 allows it (not to LCP; PFC only to protocols
    /// below 0x100).
    pub fn new(protocol: Protocol, acfc: bool, pfc: bool) -> Repr {
        let number = u16::from(protocol);
        Repr {
            protocol,
            acfc: acfc && protocol != Protocol::Lcp,
            pfc: pfc && Protocol::is_compressible(number),
        }
    }

    /// The header with address, control and a two-octet protocol field.
    pub const fn uncompressed(protocol: Protocol) -> Repr {
        Repr {
            protocol,
            acfc: false,
            pfc: false,
        }
    }

    /// Parses a checked (or unchecked: it is checked again) frame.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check()?;
        Ok(Repr {
            protocol: packet.protocol(),
            acfc: !packet.has_address_control(),
            pfc: packet.protocol_len() == 1,
        })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        (if self.acfc { 0 } else { 2 }) + if self.pfc { 1 } else { 2 }
    }

    /// Length of a frame with `payload_len` octets of information.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    fn validate(&self) -> Result<u16> {
        let number = u16::from(self.protocol);
        if !Protocol::is_valid(number) {
            return Err(Error::Malformed {
                what: WHAT,
                why: "invalid protocol number (RFC 1661 section 2: odd last octet, even first)",
            });
        }
        if self.pfc && !Protocol::is_compressible(number) {
            return Err(Error::Malformed {
                what: WHAT,
                why: "protocol field compression of a protocol above 0xff",
            });
        }
        if self.acfc && self.protocol == Protocol::Lcp {
            return Err(Error::Malformed {
                what: WHAT,
                why: "LCP sent without address and control (RFC 1661 section 6.6)",
            });
        }
        Ok(number)
    }

    /// Writes the header into the start of `buf` and returns its length;
    /// the information field goes right after it.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<usize> {
        let number = self.validate()?;
        let len = self.header_len();
        let Some(header) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall {
                what: WHAT,
                need: len,
                have: buf.len(),
            });
        };
        let protocol = number.to_be_bytes();
        let protocol: &[u8] = if self.pfc { &protocol[1..] } else { &protocol };
        let (address_control, protocol_field) = header.split_at_mut(len - protocol.len());
        if !self.acfc {
            address_control.copy_from_slice(&[PPP_ADDRESS, PPP_CONTROL]);
        }
        protocol_field.copy_from_slice(protocol);
        Ok(len)
    }

    /// Writes the header into the start of the packet's buffer; the
    /// information field is then filled through [`Packet::payload_mut`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        self.emit_header(packet.buffer.as_mut()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pptp_common::hdr::PppHdr;

    /// LCP Configure-Request header as every client sends it.
    const LCP_FULL: [u8; 8] = [0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04];
    /// IPv4 with ACFC and PFC: protocol 0x21 alone.
    const IPV4_BOTH: [u8; 3] = [0x21, 0x45, 0x00];
    /// IPv4 with PFC only.
    const IPV4_PFC: [u8; 4] = [0xff, 0x03, 0x21, 0x45];
    /// IPv4 with ACFC only.
    const IPV4_ACFC: [u8; 3] = [0x00, 0x21, 0x45];
    /// CCP with ACFC (two-octet protocol, no address/control).
    const CCP_ACFC: [u8; 3] = [0x80, 0xfd, 0x0e];

    #[test]
    fn header_length_matches_the_xdp_header() {
        assert_eq!(PppHdr::LEN, MAX_HEADER_LEN);
        assert_eq!(Repr::uncompressed(Protocol::Ipv4).header_len(), PppHdr::LEN);
        assert_eq!(
            Repr::new(Protocol::Lcp, true, true).header_len(),
            PppHdr::LEN
        );
    }

    #[test]
    fn protocol_numbers() {
        let named = [
            (0x0021, Protocol::Ipv4),
            (0x0057, Protocol::Ipv6),
            (0x00fd, Protocol::Compressed),
            (0x8021, Protocol::Ipcp),
            (0x8057, Protocol::Ipv6cp),
            (0x80fd, Protocol::Ccp),
            (0xc021, Protocol::Lcp),
            (0xc023, Protocol::Pap),
            (0xc025, Protocol::Lqr),
            (0xc223, Protocol::Chap),
            (0xc227, Protocol::Eap),
            (0x002b, Protocol::Unknown(0x002b)),
        ];
        for (number, protocol) in named {
            assert_eq!(Protocol::from(number), protocol);
            assert_eq!(u16::from(protocol), number);
            assert!(Protocol::is_valid(number), "{number:#06x}");
        }
        for invalid in [0x0000, 0x0020, 0xc020, 0x0121, 0xff21, 0x00fe] {
            assert!(!Protocol::is_valid(invalid), "{invalid:#06x}");
        }
    }

    #[test]
    fn parse_uncompressed() {
        let packet = Packet::new_checked(&LCP_FULL[..]).unwrap();
        assert!(packet.has_address_control());
        assert_eq!(packet.protocol_len(), 2);
        assert_eq!(packet.header_len(), 4);
        assert_eq!(packet.protocol(), Protocol::Lcp);
        assert_eq!(packet.payload(), &[0x01, 0x01, 0x00, 0x04]);
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr::uncompressed(Protocol::Lcp)
        );
    }

    #[test]
    fn parse_compressed_forms() {
        let cases: [(&[u8], Repr, &[u8]); 4] = [
            (
                &IPV4_BOTH,
                Repr {
                    protocol: Protocol::Ipv4,
                    acfc: true,
                    pfc: true,
                },
                &[0x45, 0x00],
            ),
            (
                &IPV4_PFC,
                Repr {
                    protocol: Protocol::Ipv4,
                    acfc: false,
                    pfc: true,
                },
                &[0x45],
            ),
            (
                &IPV4_ACFC,
                Repr {
                    protocol: Protocol::Ipv4,
                    acfc: true,
                    pfc: false,
                },
                &[0x45],
            ),
            (
                &CCP_ACFC,
                Repr {
                    protocol: Protocol::Ccp,
                    acfc: true,
                    pfc: false,
                },
                &[0x0e],
            ),
        ];
        for (bytes, repr, payload) in cases {
            let packet = Packet::new_checked(bytes).unwrap();
            assert_eq!(Repr::parse(&packet).unwrap(), repr, "{bytes:02x?}");
            assert_eq!(packet.payload(), payload);
            assert_eq!(packet.header_len(), repr.header_len());
        }
    }

    #[test]
    fn lcp_without_address_control_is_accepted_on_receive() {
        // Forbidden on send (RFC 1661 section 6.6) but harmless to accept.
        let packet = Packet::new_checked(&[0xc0, 0x21, 0x09][..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                protocol: Protocol::Lcp,
                acfc: true,
                pfc: false
            }
        );
        assert!(matches!(
            repr.emit_header(&mut [0u8; 4]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn new_applies_compressions_only_where_allowed() {
        assert_eq!(
            Repr::new(Protocol::Ipv4, true, true),
            Repr {
                protocol: Protocol::Ipv4,
                acfc: true,
                pfc: true
            }
        );
        assert_eq!(
            Repr::new(Protocol::Lcp, true, true),
            Repr::uncompressed(Protocol::Lcp)
        );
        assert_eq!(
            Repr::new(Protocol::Chap, true, true),
            Repr {
                protocol: Protocol::Chap,
                acfc: true,
                pfc: false
            }
        );
        assert_eq!(
            Repr::new(Protocol::Compressed, false, true),
            Repr {
                protocol: Protocol::Compressed,
                acfc: false,
                pfc: true
            }
        );
        assert_eq!(
            Repr::new(Protocol::Ipv6, false, false),
            Repr::uncompressed(Protocol::Ipv6)
        );
    }

    fn emit(repr: Repr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.buffer_len(payload.len())];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet).unwrap();
        packet.payload_mut().copy_from_slice(payload);
        buf
    }

    #[test]
    fn emit_known_bytes() {
        assert_eq!(
            emit(Repr::new(Protocol::Lcp, true, true), &LCP_FULL[4..]),
            LCP_FULL
        );
        assert_eq!(
            emit(Repr::new(Protocol::Ipv4, true, true), &IPV4_BOTH[1..]),
            IPV4_BOTH
        );
        assert_eq!(
            emit(Repr::new(Protocol::Ipv4, false, true), &IPV4_PFC[3..]),
            IPV4_PFC
        );
        assert_eq!(
            emit(Repr::new(Protocol::Ipv4, true, false), &IPV4_ACFC[2..]),
            IPV4_ACFC
        );
        assert_eq!(
            emit(Repr::new(Protocol::Ccp, true, true), &CCP_ACFC[2..]),
            CCP_ACFC
        );
    }

    #[test]
    fn emit_header_leaves_the_rest_alone() {
        let mut buf = [0xa5u8; 6];
        let len = Repr::new(Protocol::Ipv4, true, true)
            .emit_header(&mut buf)
            .unwrap();
        assert_eq!(len, 1);
        assert_eq!(buf, [0x21, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5]);
        let len = Repr::uncompressed(Protocol::Ccp)
            .emit_header(&mut buf)
            .unwrap();
        assert_eq!(len, 4);
        assert_eq!(buf, [0xff, 0x03, 0x80, 0xfd, 0xa5, 0xa5]);
    }

    #[test]
    fn emit_rejects_what_the_rfc_forbids() {
        let mut buf = [0u8; 8];
        let bad = [
            Repr::uncompressed(Protocol::Unknown(0x0020)),
            Repr::uncompressed(Protocol::Unknown(0x0121)),
            Repr {
                protocol: Protocol::Ccp,
                acfc: false,
                pfc: true,
            },
            Repr {
                protocol: Protocol::Lcp,
                acfc: true,
                pfc: false,
            },
            Repr {
                protocol: Protocol::Unknown(0x00ff),
                acfc: true,
                pfc: true,
            },
        ];
        for repr in bad {
            assert!(
                matches!(repr.emit_header(&mut buf), Err(Error::Malformed { .. })),
                "{repr:?}"
            );
        }
        assert_eq!(
            Repr::uncompressed(Protocol::Ipv4).emit_header(&mut buf[..3]),
            Err(Error::BufferTooSmall {
                what: WHAT,
                need: 4,
                have: 3
            })
        );
    }

    #[test]
    fn round_trips() {
        for protocol in [
            Protocol::Ipv4,
            Protocol::Lcp,
            Protocol::Compressed,
            Protocol::Unknown(0x4021),
        ] {
            for (acfc, pfc) in [(false, false), (false, true), (true, false), (true, true)] {
                let repr = Repr::new(protocol, acfc, pfc);
                let bytes = emit(repr, &[1, 2, 3]);
                let packet = Packet::new_checked(&bytes[..]).unwrap();
                assert_eq!(Repr::parse(&packet).unwrap(), repr);
                assert_eq!(packet.payload(), &[1, 2, 3]);
            }
        }
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            Packet::new_checked(&[][..]),
            Err(Error::Truncated {
                what: WHAT,
                need: 1,
                have: 0
            })
        );
        assert_eq!(
            Packet::new_checked(&[0xff][..]),
            Err(Error::Truncated {
                what: WHAT,
                need: 3,
                have: 1
            })
        );
        assert_eq!(
            Packet::new_checked(&[0xff, 0x03][..]),
            Err(Error::Truncated {
                what: WHAT,
                need: 3,
                have: 2
            })
        );
        assert_eq!(
            Packet::new_checked(&[0xff, 0x03, 0xc0][..]),
            Err(Error::Truncated {
                what: WHAT,
                need: 4,
                have: 3
            })
        );
        assert_eq!(
            Packet::new_checked(&[0x80][..]),
            Err(Error::Truncated {
                what: WHAT,
                need: 2,
                have: 1
            })
        );
        assert!(matches!(
            Packet::new_checked(&[0xff, 0x01, 0x00, 0x21][..]),
            Err(Error::Malformed { why, .. }) if why.contains("control")
        ));
        assert!(matches!(
            Packet::new_checked(&[0xff, 0x03, 0xc0, 0x20][..]),
            Err(Error::Malformed { why, .. }) if why.contains("even")
        ));
        assert!(matches!(
            Packet::new_checked(&[0x00, 0x20][..]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            Packet::new_checked(&[0xff, 0x03, 0xff, 0x00][..]),
            Err(Error::Malformed { why, .. }) if why.contains("0x00ff")
        ));
        // A header alone, without information, is a valid (empty) frame.
        assert_eq!(
            Packet::new_checked(&[0x21][..]).unwrap().payload(),
            &[] as &[u8]
        );
    }

    #[test]
    fn every_short_input_is_handled_without_panic() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for bytes in [
                    &[a][..],
                    &[a, b][..],
                    &[0xff, 0x03, a, b][..],
                    &[0xff, 0x03, a][..],
                ] {
                    if let Ok(packet) = Packet::new_checked(bytes) {
                        let repr = Repr::parse(&packet).unwrap();
                        assert!(Protocol::is_valid(u16::from(repr.protocol)));
                        assert_eq!(packet.header_len() + packet.payload().len(), bytes.len());
                    }
                }
            }
        }
    }
}
