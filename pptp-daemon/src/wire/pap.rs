//! PAP packets (RFC 1334 section 2.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Peer-ID Length|  Peer-Id ...  | Passwd-Length |  Password ...   (Authenticate-Request)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Msg-Length   |  Message ...                                    (Authenticate-Ack/Nak)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Octets after Length are link padding and ignored (RFC 1334 section
//! 2.2); so are octets after the last field inside Length. An Ack or Nak
//! without Msg-Length (Length 4) reads as an empty message, as pppd accepts
//! it. `Debug` of a [`Repr`] never shows the password.

use std::fmt;

use super::{Error, Result};

/// Length of the Code, Identifier and Length fields.
pub const HEADER_LEN: usize = field::LENGTH.end;

const WHAT: &str = "PAP packet";

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Field = 2..4;
    /// Authenticate-Request: Peer-ID Length; Ack/Nak: Msg-Length.
    pub const FIRST_LEN: usize = LENGTH.end;
    pub const FIRST_START: usize = FIRST_LEN + 1;
}

/// PAP packet codes (RFC 1334 section 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    AuthenticateRequest,
    AuthenticateAck,
    AuthenticateNak,
    /// Any other code, kept as received.
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(value: u8) -> Self {
        match value {
            1 => Code::AuthenticateRequest,
            2 => Code::AuthenticateAck,
            3 => Code::AuthenticateNak,
            other => Code::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> u8 {
        match code {
            Code::AuthenticateRequest => 1,
            Code::AuthenticateAck => 2,
            Code::AuthenticateNak => 3,
            Code::Unknown(other) => other,
        }
    }
}

/// A read/write view of a PAP packet (RFC 1334 section 2.2).
///
/// [`Packet::new_checked`] validates Length and the inner length octets
/// once; afterwards no accessor can panic. Accessors of a packet made with
/// [`Packet::new_unchecked`] panic if the buffer contradicts its length
/// fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> fmt::Debug for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer may hold a password.
        f.debug_struct("Packet")
            .field("len", &self.buffer.as_ref().len())
            .finish_non_exhaustive()
    }
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

    /// Checks the header, that Length covers it and fits in the buffer, and
    /// that the inner length octets stay inside Length.
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let len = super::check_code_id_length(data, WHAT)?;
        let bad = |why| {
            Err(Error::BadLength {
                what: WHAT,
                len,
                why,
            })
        };
        match self.code() {
            Code::AuthenticateRequest => {
                if len <= field::FIRST_LEN {
                    return bad("no room for Peer-ID Length");
                }
                let passwd_len_at = field::FIRST_START + usize::from(data[field::FIRST_LEN]);
                if passwd_len_at >= len {
                    return bad("Peer-ID runs past Length or no Passwd-Length");
                }
                if passwd_len_at + 1 + usize::from(data[passwd_len_at]) > len {
                    return bad("Password runs past Length");
                }
            }
            Code::AuthenticateAck | Code::AuthenticateNak => {
                if len > field::FIRST_LEN
                    && field::FIRST_START + usize::from(data[field::FIRST_LEN]) > len
                {
                    return bad("Message runs past Length");
                }
            }
            Code::Unknown(_) => {}
        }
        Ok(())
    }

    /// Returns the underlying buffer.
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

    /// Authenticate-Request: the Peer-ID field.
    pub fn peer_id(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let len = usize::from(data[field::FIRST_LEN]);
        &data[field::FIRST_START..field::FIRST_START + len]
    }

    /// Authenticate-Request: the Password field.
    pub fn password(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let at = field::FIRST_START + usize::from(data[field::FIRST_LEN]);
        let len = usize::from(data[at]);
        &data[at + 1..at + 1 + len]
    }

    /// Authenticate-Ack and -Nak: the Message field (empty without
    /// Msg-Length).
    pub fn message(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        if usize::from(self.length()) <= field::FIRST_LEN {
            return &[];
        }
        let len = usize::from(data[field::FIRST_LEN]);
        &data[field::FIRST_START..field::FIRST_START + len]
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
}

/// A parsed PAP packet (RFC 1334 section 2.2). `Debug` hides the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// RFC 1334 section 2.2.1.
    AuthenticateRequest {
        identifier: u8,
        peer_id: &'a [u8],
        password: &'a [u8],
    },
    /// RFC 1334 section 2.2.2.
    AuthenticateAck { identifier: u8, message: &'a [u8] },
    /// RFC 1334 section 2.2.2.
    AuthenticateNak { identifier: u8, message: &'a [u8] },
}

impl fmt::Debug for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::AuthenticateRequest {
                identifier,
                peer_id,
                password,
            } => f
                .debug_struct("AuthenticateRequest")
                .field("identifier", identifier)
                .field("peer_id", &String::from_utf8_lossy(peer_id))
                .field("password_len", &password.len())
                .finish(),
            Repr::AuthenticateAck {
                identifier,
                message,
            } => f
                .debug_struct("AuthenticateAck")
                .field("identifier", identifier)
                .field("message", &String::from_utf8_lossy(message))
                .finish(),
            Repr::AuthenticateNak {
                identifier,
                message,
            } => f
                .debug_struct("AuthenticateNak")
                .field("identifier", identifier)
                .field("message", &String::from_utf8_lossy(message))
                .finish(),
        }
    }
}

impl<'a> Repr<'a> {
    /// Parses a packet; unknown codes are an error.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check()?;
        let view = Packet::new_unchecked(T::as_ref(packet.buffer));
        let identifier = view.identifier();
        Ok(match view.code() {
            Code::AuthenticateRequest => Repr::AuthenticateRequest {
                identifier,
                peer_id: split_field(view.buffer, field::FIRST_LEN).0,
                password: split_field(view.buffer, field::FIRST_LEN).1,
            },
            Code::AuthenticateAck => Repr::AuthenticateAck {
                identifier,
                message: message_of(view.buffer, view.length()),
            },
            Code::AuthenticateNak => Repr::AuthenticateNak {
                identifier,
                message: message_of(view.buffer, view.length()),
            },
            Code::Unknown(code) => {
                return Err(Error::Unknown {
                    what: "PAP code",
                    value: code.into(),
                });
            }
        })
    }

    pub fn code(&self) -> Code {
        match self {
            Repr::AuthenticateRequest { .. } => Code::AuthenticateRequest,
            Repr::AuthenticateAck { .. } => Code::AuthenticateAck,
            Repr::AuthenticateNak { .. } => Code::AuthenticateNak,
        }
    }

    pub fn identifier(&self) -> u8 {
        match *self {
            Repr::AuthenticateRequest { identifier, .. }
            | Repr::AuthenticateAck { identifier, .. }
            | Repr::AuthenticateNak { identifier, .. } => identifier,
        }
    }

    /// Length of the emitted packet (the Length field).
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::AuthenticateRequest {
                peer_id, password, ..
            } => HEADER_LEN + 1 + peer_id.len() + 1 + password.len(),
            Repr::AuthenticateAck { message, .. } | Repr::AuthenticateNak { message, .. } => {
                HEADER_LEN + 1 + message.len()
            }
        }
    }

    /// Writes the packet into the first [`Repr::buffer_len`] octets of the
    /// packet's buffer; later octets are left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        let have = packet.buffer.as_ref().len();
        if have < len {
            return Err(Error::BufferTooSmall {
                what: WHAT,
                need: len,
                have,
            });
        }
        let (fields, count): ([&[u8]; 2], usize) = match *self {
            Repr::AuthenticateRequest {
                peer_id, password, ..
            } => ([peer_id, password], 2),
            Repr::AuthenticateAck { message, .. } | Repr::AuthenticateNak { message, .. } => {
                ([message, &[]], 1)
            }
        };
        let fields = &fields[..count];
        let mut lens = [0u8; 2];
        for (slot, f) in lens.iter_mut().zip(fields) {
            *slot = u8::try_from(f.len()).map_err(|_| Error::BadLength {
                what: WHAT,
                len: f.len(),
                why: "field longer than 255 octets",
            })?;
        }
        // A field is at most 255 octets, so `len` fits in 16 bits.
        packet.set_code(self.code());
        packet.set_identifier(self.identifier());
        packet.set_length(len as u16);
        let out = &mut packet.buffer.as_mut()[HEADER_LEN..len];
        let mut at = 0;
        for (f, l) in fields.iter().zip(lens) {
            out[at] = l;
            out[at + 1..at + 1 + f.len()].copy_from_slice(f);
            at += 1 + f.len();
        }
        Ok(())
    }

    /// The emitted packet in a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut out[..]))?;
        Ok(out)
    }
}

/// The Peer-ID and Password of a checked Authenticate-Request.
fn split_field(data: &[u8], at: usize) -> (&[u8], &[u8]) {
    let first_len = usize::from(data[at]);
    let first = &data[at + 1..at + 1 + first_len];
    let second_at = at + 1 + first_len;
    let second_len = usize::from(data[second_at]);
    (first, &data[second_at + 1..second_at + 1 + second_len])
}

/// The Message of a checked Ack or Nak.
fn message_of(data: &[u8], length: u16) -> &[u8] {
    if usize::from(length) <= field::FIRST_LEN {
        return &[];
    }
    let len = usize::from(data[field::FIRST_LEN]);
    &data[field::FIRST_START..field::FIRST_START + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Authenticate-Request as pppd sends it: id 1, user "alice",
    /// password "hunter2".
    const REQUEST: [u8; 18] = [
        0x01, 0x01, 0x00, 0x12, 0x05, b'a', b'l', b'i', b'c', b'e', 0x07, b'h', b'u', b'n', b't',
        b'e', b'r', b'2',
    ];

    #[test]
    fn parse_request_known_bytes() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.code(), Code::AuthenticateRequest);
        assert_eq!(packet.identifier(), 1);
        assert_eq!(packet.length(), 18);
        assert_eq!(packet.peer_id(), b"alice");
        assert_eq!(packet.password(), b"hunter2");
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr::AuthenticateRequest {
                identifier: 1,
                peer_id: b"alice",
                password: b"hunter2"
            }
        );
    }

    #[test]
    fn parse_ack_nak_known_bytes() {
        let ack = [0x02, 0x01, 0x00, 0x07, 0x02, b'O', b'K'];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&ack[..]).unwrap()).unwrap(),
            Repr::AuthenticateAck {
                identifier: 1,
                message: b"OK"
            }
        );
        // No Msg-Length at all: an empty message.
        let nak = [0x03, 0x09, 0x00, 0x04];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&nak[..]).unwrap()).unwrap(),
            Repr::AuthenticateNak {
                identifier: 9,
                message: b""
            }
        );
    }

    #[test]
    fn emit_known_bytes_leaves_the_rest() {
        let repr = Repr::AuthenticateRequest {
            identifier: 1,
            peer_id: b"alice",
            password: b"hunter2",
        };
        let mut buf = [0xa5u8; 20];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf[..18], REQUEST);
        assert_eq!(buf[18..], [0xa5, 0xa5]);

        let repr = Repr::AuthenticateNak {
            identifier: 4,
            message: b"",
        };
        let mut buf = [0xa5u8; 6];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, [0x03, 0x04, 0x00, 0x05, 0x00, 0xa5]);
    }

    #[test]
    fn round_trips() {
        let ack = [0x02u8, 0x07, 0x00, 0x08, 0x03, b'y', b'e', b's'];
        for bytes in [&REQUEST[..], &ack[..]] {
            let repr = Repr::parse(&Packet::new_checked(bytes).unwrap()).unwrap();
            assert_eq!(repr.to_vec().unwrap(), bytes);
        }
        // Padding after Length and after the last field is dropped.
        let mut padded = REQUEST.to_vec();
        padded[3] += 1;
        padded.extend_from_slice(&[0xee, 0xff]);
        let repr = Repr::parse(&Packet::new_checked(&padded[..]).unwrap()).unwrap();
        assert_eq!(repr.to_vec().unwrap(), REQUEST);
    }

    #[test]
    fn truncated_and_malformed() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&REQUEST[..len]),
                Err(Error::Truncated {
                    what: WHAT,
                    need: 4,
                    have: len
                })
            );
        }
        assert_eq!(
            Packet::new_checked(&REQUEST[..17]),
            Err(Error::Truncated {
                what: WHAT,
                need: 18,
                have: 17
            })
        );
        let cases: [&[u8]; 5] = [
            // Length 3.
            &[0x01, 0x01, 0x00, 0x03],
            // Request without Peer-ID Length.
            &[0x01, 0x01, 0x00, 0x04],
            // Peer-ID past Length.
            &[0x01, 0x01, 0x00, 0x06, 0x05, b'a'],
            // No Passwd-Length.
            &[0x01, 0x01, 0x00, 0x06, 0x01, b'a'],
            // Password past Length.
            &[0x01, 0x01, 0x00, 0x08, 0x01, b'a', 0x02, b'p'],
        ];
        for bytes in cases {
            assert!(
                matches!(Packet::new_checked(bytes), Err(Error::BadLength { .. })),
                "{bytes:?}"
            );
        }
        assert!(matches!(
            Packet::new_checked(&[0x02, 0x01, 0x00, 0x06, 0x05, b'x'][..]),
            Err(Error::BadLength { .. })
        ));
        let unknown = [0x09, 0x01, 0x00, 0x04];
        let packet = Packet::new_checked(&unknown[..]).unwrap();
        assert_eq!(packet.code(), Code::Unknown(9));
        assert_eq!(
            Repr::parse(&packet),
            Err(Error::Unknown {
                what: "PAP code",
                value: 9
            })
        );
        let long = [b'x'; 256];
        let repr = Repr::AuthenticateAck {
            identifier: 1,
            message: &long,
        };
        assert!(matches!(
            repr.to_vec(),
            Err(Error::BadLength { len: 256, .. })
        ));
        assert!(matches!(
            Repr::AuthenticateAck {
                identifier: 1,
                message: b"hi"
            }
            .emit(&mut Packet::new_unchecked(&mut [0u8; 6][..])),
            Err(Error::BufferTooSmall { need: 7, .. })
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        for shown in [format!("{repr:?}"), format!("{packet:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(format!("{repr:?}").contains("alice"));
    }
}
