//! The packet format shared by the PPP control protocols LCP, IPCP and CCP
//! (RFC 1661 section 5): code, identifier, length and data, plus the
//! type-length-value options of the Configure-* packets (RFC 1661 section 6)
//! and the bodies of the codes that carry more than opaque data.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Data ...
//! +-+-+-+-+
//! ```
//!
//! Bytes after `Length` are padding and ignored (RFC 1661 section 5: "Octets
//! outside the range of the Length field are treated as padding").

use crate::wire::{Error, Result};

/// Code field of a control-protocol packet: RFC 1661 section 5 (1 to 11),
/// RFC 1570 section 2 (Identification 12, Time-Remaining 13) and RFC 1962
/// section 2.2 (CCP Reset-Request 14, Reset-Ack 15). Unknown codes are kept:
/// the automaton answers them with a Code-Reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    ConfigureRequest,
    ConfigureAck,
    ConfigureNak,
    ConfigureReject,
    TerminateRequest,
    TerminateAck,
    CodeReject,
    ProtocolReject,
    EchoRequest,
    EchoReply,
    DiscardRequest,
    Identification,
    TimeRemaining,
    ResetRequest,
    ResetAck,
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(value: u8) -> Self {
        match value {
            1 => Code::ConfigureRequest,
            2 => Code::ConfigureAck,
            3 => Code::ConfigureNak,
            4 => Code::ConfigureReject,
            5 => Code::TerminateRequest,
            6 => Code::TerminateAck,
            7 => Code::CodeReject,
            8 => Code::ProtocolReject,
            9 => Code::EchoRequest,
            10 => Code::EchoReply,
            11 => Code::DiscardRequest,
            12 => Code::Identification,
            13 => Code::TimeRemaining,
            14 => Code::ResetRequest,
            15 => Code::ResetAck,
            other => Code::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> Self {
        match code {
            Code::ConfigureRequest => 1,
            Code::ConfigureAck => 2,
            Code::ConfigureNak => 3,
            Code::ConfigureReject => 4,
            Code::TerminateRequest => 5,
            Code::TerminateAck => 6,
            Code::CodeReject => 7,
            Code::ProtocolReject => 8,
            Code::EchoRequest => 9,
            Code::EchoReply => 10,
            Code::DiscardRequest => 11,
            Code::Identification => 12,
            Code::TimeRemaining => 13,
            Code::ResetRequest => 14,
            Code::ResetAck => 15,
            Code::Unknown(other) => other,
        }
    }
}

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Field = 2..4;
    /// First byte of Data; `Length` bounds it.
    pub const DATA: usize = 4;
}

/// Length of the code, identifier and length fields.
pub const HEADER_LEN: usize = field::DATA;

/// The largest value the 16-bit Length field can hold.
pub const MAX_LEN: usize = u16::MAX as usize;

/// A read/write view of a control-protocol packet (RFC 1661 section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short
    /// buffer. Use [`Self::new_checked`] for untrusted input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header is present, that Length is at least the
    /// header and does not run past the buffer. Bytes after Length are
    /// padding (RFC 1661 section 5).
    pub fn check_len(&self) -> Result<()> {
        super::check_code_id_length(self.buffer.as_ref(), "control-protocol packet").map(drop)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn code(&self) -> Code {
        Code::from(self.buffer.as_ref()[field::CODE])
    }

    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[field::IDENTIFIER]
    }

    /// The Length field: the whole packet, header included.
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The Data field, up to Length (padding excluded).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..usize::from(self.length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_code(&mut self, code: Code) {
        self.buffer.as_mut()[field::CODE] = code.into();
    }

    pub fn set_identifier(&mut self, identifier: u8) {
        self.buffer.as_mut()[field::IDENTIFIER] = identifier;
    }

    pub fn set_length(&mut self, length: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&length.to_be_bytes());
    }

    /// The Data field, up to Length.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::DATA..end]
    }
}

/// A parsed control-protocol packet (RFC 1661 section 5). `data` is
/// interpreted per code: options for Configure-* (see [`Options`]),
/// [`ProtocolReject`], [`MagicBody`], [`TimeRemaining`]; opaque otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    pub code: Code,
    pub identifier: u8,
    pub data: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buf: &'a [u8] = packet.buffer.as_ref();
        let length = usize::from(packet.length());
        Ok(Repr {
            code: packet.code(),
            identifier: packet.identifier(),
            data: buf.get(field::DATA..length).unwrap_or_default(),
        })
    }

    /// Parses bytes (a PPP payload after the protocol field).
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Repr<'a>> {
        Self::parse(&Packet::new_checked(bytes)?)
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the packet into `packet`, whose buffer must be exactly
    /// [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        if len > MAX_LEN {
            return Err(Error::BadLength {
                what: "control-protocol packet",
                len,
                why: "longer than the 16-bit Length field allows",
            });
        }
        let have = packet.buffer.as_ref().len();
        if have != len {
            return Err(Error::BufferTooSmall {
                what: "control-protocol packet",
                need: len,
                have,
            });
        }
        packet.set_code(self.code);
        packet.set_identifier(self.identifier);
        packet.set_length(len as u16);
        packet.data_mut().copy_from_slice(self.data);
        Ok(())
    }

    /// The emitted packet in a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut out[..]))?;
        Ok(out)
    }
}

/// Body of Protocol-Reject (RFC 1661 section 5.7): the rejected protocol
/// and the start of the rejected packet's information field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolReject<'a> {
    pub protocol: u16,
    pub information: &'a [u8],
}

impl<'a> ProtocolReject<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        match data {
            [hi, lo, information @ ..] => Ok(ProtocolReject {
                protocol: u16::from_be_bytes([*hi, *lo]),
                information,
            }),
            _ => Err(Error::Truncated {
                what: "Protocol-Reject",
                need: 2,
                have: data.len(),
            }),
        }
    }

    pub fn buffer_len(&self) -> usize {
        2 + self.information.len()
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let (proto, rest) = split_exact(buf, self.buffer_len(), 2, "Protocol-Reject")?;
        proto.copy_from_slice(&self.protocol.to_be_bytes());
        rest.copy_from_slice(self.information);
        Ok(())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = self.protocol.to_be_bytes().to_vec();
        out.extend_from_slice(self.information);
        out
    }
}

/// Body of the LCP codes that start with a Magic-Number: Echo-Request,
/// Echo-Reply and Discard-Request (RFC 1661 sections 5.8 and 5.9) and
/// Identification (RFC 1570 section 2.1, where `data` is the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MagicBody<'a> {
    pub magic_number: u32,
    pub data: &'a [u8],
}

impl<'a> MagicBody<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        match data {
            [a, b, c, d, rest @ ..] => Ok(MagicBody {
                magic_number: u32::from_be_bytes([*a, *b, *c, *d]),
                data: rest,
            }),
            _ => Err(Error::Truncated {
                what: "Magic-Number of an LCP packet",
                need: 4,
                have: data.len(),
            }),
        }
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let (magic, rest) = split_exact(buf, self.buffer_len(), 4, "LCP magic body")?;
        magic.copy_from_slice(&self.magic_number.to_be_bytes());
        rest.copy_from_slice(self.data);
        Ok(())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = self.magic_number.to_be_bytes().to_vec();
        out.extend_from_slice(self.data);
        out
    }
}

/// Body of LCP Time-Remaining (RFC 1570 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRemaining<'a> {
    pub magic_number: u32,
    pub seconds_remaining: u32,
    pub message: &'a [u8],
}

impl<'a> TimeRemaining<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        match data {
            [a, b, c, d, e, f, g, h, message @ ..] => Ok(TimeRemaining {
                magic_number: u32::from_be_bytes([*a, *b, *c, *d]),
                seconds_remaining: u32::from_be_bytes([*e, *f, *g, *h]),
                message,
            }),
            _ => Err(Error::Truncated {
                what: "Time-Remaining",
                need: 8,
                have: data.len(),
            }),
        }
    }

    pub fn buffer_len(&self) -> usize {
        8 + self.message.len()
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let (head, message) = split_exact(buf, self.buffer_len(), 8, "Time-Remaining")?;
        let (magic, seconds) = head.split_at_mut(4);
        magic.copy_from_slice(&self.magic_number.to_be_bytes());
        seconds.copy_from_slice(&self.seconds_remaining.to_be_bytes());
        message.copy_from_slice(self.message);
        Ok(())
    }
}

/// Checks `buf` is exactly `len` bytes and splits off a `head`-byte prefix.
fn split_exact<'b>(
    buf: &'b mut [u8],
    len: usize,
    head: usize,
    what: &'static str,
) -> Result<(&'b mut [u8], &'b mut [u8])> {
    if buf.len() != len {
        return Err(Error::BufferTooSmall {
            what,
            need: len,
            have: buf.len(),
        });
    }
    Ok(buf.split_at_mut(head))
}

/// One Configuration Option as it appears on the wire (RFC 1661 section
/// 6): the type and the bytes after the length octet. What the type means
/// is up to the protocol (`wire::lcp`, `wire::ipcp`, `wire::ccp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

impl RawOption<'_> {
    /// Length of the option with its type and length octets.
    pub fn buffer_len(&self) -> usize {
        2 + self.data.len()
    }

    /// The option as bytes, type and length included.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        push_option(&mut out, self.kind, self.data).unwrap_or_default();
        out
    }
}

/// Iterator over the options of a Configure-* packet (RFC 1661 section 6).
/// A malformed list (an option length below 2 or running past the end)
/// yields one error and then ends.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Options { rest: data }
    }

    /// Checks that the whole list is well formed.
    pub fn check(data: &[u8]) -> Result<()> {
        Options::new(data).try_for_each(|o| o.map(drop))
    }

    /// Collects a well-formed list.
    pub fn collect_all(data: &'a [u8]) -> Result<Vec<RawOption<'a>>> {
        Options::new(data).collect()
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let (kind, len) = match rest {
            [] => return None,
            [kind, len, ..] => (*kind, usize::from(*len)),
            [_] => {
                self.rest = &[];
                return Some(Err(Error::Truncated {
                    what: "configuration option header",
                    need: 2,
                    have: 1,
                }));
            }
        };
        if len < 2 {
            self.rest = &[];
            return Some(Err(Error::BadLength {
                what: "configuration option",
                len,
                why: "Length is below 2",
            }));
        }
        let Some(option) = rest.get(..len) else {
            self.rest = &[];
            return Some(Err(Error::Truncated {
                what: "configuration option",
                need: len,
                have: rest.len(),
            }));
        };
        self.rest = rest.get(len..).unwrap_or_default();
        Some(Ok(RawOption {
            kind,
            data: option.get(2..).unwrap_or_default(),
        }))
    }
}

/// Writes options one after another into a caller's buffer.
#[derive(Debug)]
pub struct OptionsWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> OptionsWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        OptionsWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an option whose data `fill` writes into a slice of
    /// `data_len` bytes.
    pub fn push_with(
        &mut self,
        kind: u8,
        data_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        let total = data_len + 2;
        let Ok(len_octet) = u8::try_from(total) else {
            return Err(Error::BadLength {
                what: "configuration option",
                len: total,
                why: "longer than the 8-bit Length field allows",
            });
        };
        let have = self.buf.len() - self.len;
        let Some(slot) = self.buf.get_mut(self.len..self.len + total) else {
            return Err(Error::BufferTooSmall {
                what: "configuration options",
                need: total,
                have,
            });
        };
        let (head, data) = slot.split_at_mut(2);
        head.copy_from_slice(&[kind, len_octet]);
        fill(data);
        self.len += total;
        Ok(())
    }

    /// Appends an option with raw data.
    pub fn push(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        self.push_with(kind, data.len(), |d| d.copy_from_slice(data))
    }
}

/// Appends one option (type, length, data) to a vector.
pub fn push_option(out: &mut Vec<u8>, kind: u8, data: &[u8]) -> Result<()> {
    let total = data.len() + 2;
    let Ok(len_octet) = u8::try_from(total) else {
        return Err(Error::BadLength {
            what: "configuration option",
            len: total,
            why: "longer than the 8-bit Length field allows",
        });
    };
    out.extend_from_slice(&[kind, len_octet]);
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LCP Configure-Request written from RFC 1661 section 5.1 and 6.1/6.4:
    /// id 1, MRU 1400, Magic-Number 0x12345678, and 3 bytes of padding.
    const CONF_REQ: [u8; 17] = [
        0x01, 0x01, 0x00, 0x0e, // code 1, id 1, length 14
        0x01, 0x04, 0x05, 0x78, // MRU 1400
        0x05, 0x06, 0x12, 0x34, 0x56, 0x78, // Magic-Number
        0xde, 0xad, 0xbe, // padding beyond Length
    ];

    #[test]
    fn known_bytes_to_fields() {
        let packet = Packet::new_checked(&CONF_REQ[..]).unwrap();
        assert_eq!(packet.code(), Code::ConfigureRequest);
        assert_eq!(packet.identifier(), 1);
        assert_eq!(packet.length(), 14);
        assert_eq!(packet.data(), &CONF_REQ[4..14]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.data.len(), 10, "padding ignored");
        let options = Options::collect_all(repr.data).unwrap();
        assert_eq!(
            options,
            [
                RawOption {
                    kind: 1,
                    data: &[0x05, 0x78]
                },
                RawOption {
                    kind: 5,
                    data: &[0x12, 0x34, 0x56, 0x78]
                },
            ]
        );
    }

    #[test]
    fn fields_to_bytes() {
        let repr = Repr {
            code: Code::ConfigureRequest,
            identifier: 1,
            data: &CONF_REQ[4..14],
        };
        let mut buf = [0xa5; 14];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, CONF_REQ[..14]);
        assert_eq!(repr.to_vec().unwrap(), CONF_REQ[..14]);
    }

    #[test]
    fn emit_checks_buffer_length() {
        let repr = Repr {
            code: Code::EchoRequest,
            identifier: 9,
            data: &[0, 0, 0, 0],
        };
        let mut short = [0xa5; 7];
        assert!(matches!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall {
                need: 8,
                have: 7,
                ..
            })
        ));
        let big = vec![0; MAX_LEN];
        let repr = Repr {
            code: Code::DiscardRequest,
            identifier: 0,
            data: &big,
        };
        assert!(matches!(repr.to_vec(), Err(Error::BadLength { .. })));
    }

    #[test]
    fn every_code_round_trips() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(Code::from(raw)), raw);
        }
        assert_eq!(Code::from(12), Code::Identification);
        assert_eq!(Code::from(13), Code::TimeRemaining);
        assert_eq!(Code::from(14), Code::ResetRequest);
        assert_eq!(Code::from(15), Code::ResetAck);
        assert_eq!(Code::from(16), Code::Unknown(16));
        assert_eq!(Code::from(0), Code::Unknown(0));
    }

    #[test]
    fn truncated_and_bad_lengths() {
        assert!(matches!(
            Packet::new_checked(&[1u8, 2, 0][..]),
            Err(Error::Truncated {
                need: 4,
                have: 3,
                ..
            })
        ));
        assert!(matches!(
            Packet::new_checked(&[1u8, 2, 0, 3][..]),
            Err(Error::BadLength { len: 3, .. })
        ));
        assert!(matches!(
            Packet::new_checked(&[1u8, 2, 0, 9, 0, 0][..]),
            Err(Error::Truncated {
                need: 9,
                have: 6,
                ..
            })
        ));
        // Length exactly the header: empty data.
        let repr = Repr::parse_bytes(&[6, 7, 0, 4, 0xff]).unwrap();
        assert_eq!(
            (repr.code, repr.identifier, repr.data),
            (Code::TerminateAck, 7, &[][..])
        );
    }

    #[test]
    fn malformed_option_lists() {
        // Length 1.
        let mut it = Options::new(&[1, 1, 0]);
        assert!(matches!(
            it.next(),
            Some(Err(Error::BadLength { len: 1, .. }))
        ));
        assert!(it.next().is_none(), "iteration stops after an error");
        // Runs past the end.
        assert!(matches!(
            Options::check(&[7, 2, 1, 4, 5]),
            Err(Error::Truncated {
                need: 4,
                have: 3,
                ..
            })
        ));
        // A lone type octet.
        assert!(matches!(
            Options::check(&[7, 2, 8]),
            Err(Error::Truncated {
                need: 2,
                have: 1,
                ..
            })
        ));
        // Length 0 (would loop forever if accepted).
        assert!(Options::check(&[3, 0]).is_err());
        // Empty list is fine; Length 2 options are fine.
        assert!(Options::check(&[]).is_ok());
        assert_eq!(Options::collect_all(&[7, 2, 8, 2]).unwrap().len(), 2);
    }

    #[test]
    fn options_writer() {
        let mut buf = [0xa5; 10];
        let mut w = OptionsWriter::new(&mut buf);
        w.push(1, &[0x05, 0x78]).unwrap();
        w.push(7, &[]).unwrap();
        assert_eq!(w.len(), 6);
        assert!(matches!(
            w.push(5, &[1, 2, 3, 4]),
            Err(Error::BufferTooSmall {
                need: 6,
                have: 4,
                ..
            })
        ));
        assert_eq!(buf, [1, 4, 0x05, 0x78, 7, 2, 0xa5, 0xa5, 0xa5, 0xa5]);
        let mut v = Vec::new();
        assert!(push_option(&mut v, 1, &[0; 254]).is_err());
        push_option(&mut v, 1, &[0; 253]).unwrap();
        assert_eq!(v.len(), 255);
        assert_eq!(v[1], 255);
    }

    #[test]
    fn bodies() {
        // Protocol-Reject of IPV6CP with the start of its packet.
        let pr = ProtocolReject::parse(&[0x80, 0x57, 0x01, 0x01, 0x00, 0x0e]).unwrap();
        assert_eq!(pr.protocol, 0x8057);
        assert_eq!(pr.information, &[0x01, 0x01, 0x00, 0x0e]);
        let mut buf = [0xa5; 6];
        pr.emit(&mut buf).unwrap();
        assert_eq!(buf, [0x80, 0x57, 0x01, 0x01, 0x00, 0x0e]);
        assert_eq!(pr.to_vec(), buf);
        assert!(ProtocolReject::parse(&[0x80]).is_err());

        let echo = MagicBody::parse(&[0xde, 0xad, 0xbe, 0xef, b'h', b'i']).unwrap();
        assert_eq!((echo.magic_number, echo.data), (0xdead_beef, &b"hi"[..]));
        let mut buf = [0xa5; 6];
        echo.emit(&mut buf).unwrap();
        assert_eq!(buf, [0xde, 0xad, 0xbe, 0xef, b'h', b'i']);
        assert!(MagicBody::parse(&[0, 0, 0]).is_err());
        assert!(echo.emit(&mut [0; 5]).is_err());

        let tr = TimeRemaining::parse(&[0, 0, 0, 1, 0, 0, 0x0e, 0x10, b'x']).unwrap();
        assert_eq!(
            (tr.magic_number, tr.seconds_remaining, tr.message),
            (1, 3600, &b"x"[..])
        );
        let mut buf = [0xa5; 9];
        tr.emit(&mut buf).unwrap();
        assert_eq!(buf, [0, 0, 0, 1, 0, 0, 0x0e, 0x10, b'x']);
        assert!(TimeRemaining::parse(&[0; 7]).is_err());
    }
}
