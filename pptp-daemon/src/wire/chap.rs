//! CHAP packets (RFC 1994 section 4) and the Microsoft sub-formats carried
//! inside them: the MS-CHAPv1 Response value (RFC 2433 section 6), the
//! MS-CHAPv2 Response value (RFC 2759 section 4), the MS-CHAPv2 Success
//! message (RFC 2759 section 5) and the MS-CHAP Failure message (RFC 2433
//! section 8, RFC 2759 section 6).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Value-Size   |  Value ...  (Challenge, Response)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Name ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Message ...  (Success, Failure)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Octets after Length are link padding and ignored (RFC 1994 section 4).

use super::{Error, Result};

/// Length of the Code, Identifier and Length fields.
pub const HEADER_LEN: usize = field::LENGTH.end;

const WHAT: &str = "CHAP packet";

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Field = 2..4;
    /// Challenge and Response: the size of the Value that follows.
    pub const VALUE_SIZE: usize = LENGTH.end;
    /// Challenge and Response: where the Value starts.
    pub const VALUE_START: usize = VALUE_SIZE + 1;
}

/// CHAP packet codes (RFC 1994 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Challenge,
    Response,
    Success,
    Failure,
    /// Any other code, kept as received (RFC 2759's Change-Password is 7).
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(value: u8) -> Self {
        match value {
            1 => Code::Challenge,
            2 => Code::Response,
            3 => Code::Success,
            4 => Code::Failure,
            other => Code::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> u8 {
        match code {
            Code::Challenge => 1,
            Code::Response => 2,
            Code::Success => 3,
            Code::Failure => 4,
            Code::Unknown(other) => other,
        }
    }
}

impl Code {
    /// Challenge and Response carry a Value and a Name; the others a Message.
    fn has_value(self) -> bool {
        matches!(self, Code::Challenge | Code::Response)
    }
}

/// A read/write view of a CHAP packet (RFC 1994 section 4).
///
/// [`Packet::new_checked`] validates the Length field (and, for Challenge
/// and Response, the Value-Size) once; afterwards no accessor can panic.
/// Accessors of a packet made with [`Packet::new_unchecked`] panic if the
/// buffer contradicts its own length fields.
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

    /// Checks the header, that Length covers the header and fits in the
    /// buffer, and for Challenge and Response that Value-Size fits in Length.
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let len = super::check_code_id_length(data, WHAT)?;
        if self.code().has_value() {
            if len <= field::VALUE_SIZE {
                return Err(Error::BadLength {
                    what: WHAT,
                    len,
                    why: "no room for Value-Size",
                });
            }
            if field::VALUE_START + usize::from(self.value_size()) > len {
                return Err(Error::BadLength {
                    what: WHAT,
                    len,
                    why: "Value-Size runs past Length",
                });
            }
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

    /// Everything after the header, up to Length.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }

    /// Challenge and Response: the Value-Size field.
    pub fn value_size(&self) -> u8 {
        self.buffer.as_ref()[field::VALUE_SIZE]
    }

    /// Challenge and Response: the Value field.
    pub fn value(&self) -> &[u8] {
        let start = field::VALUE_START;
        &self.buffer.as_ref()[start..start + usize::from(self.value_size())]
    }

    /// Challenge and Response: the Name field (the rest, up to Length).
    pub fn name(&self) -> &[u8] {
        let start = field::VALUE_START + usize::from(self.value_size());
        &self.buffer.as_ref()[start..usize::from(self.length())]
    }

    /// Success and Failure: the Message field (the rest, up to Length).
    pub fn message(&self) -> &[u8] {
        self.data()
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

    pub fn set_value_size(&mut self, size: u8) {
        self.buffer.as_mut()[field::VALUE_SIZE] = size;
    }

    /// Everything after the header, up to Length (set Length first).
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A parsed CHAP packet (RFC 1994 section 4). Values and names borrow from
/// the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// RFC 1994 section 4.1: the authenticator's challenge and its name.
    Challenge {
        identifier: u8,
        value: &'a [u8],
        name: &'a [u8],
    },
    /// RFC 1994 section 4.1: the peer's response and its name.
    Response {
        identifier: u8,
        value: &'a [u8],
        name: &'a [u8],
    },
    /// RFC 1994 section 4.2.
    Success { identifier: u8, message: &'a [u8] },
    /// RFC 1994 section 4.2.
    Failure { identifier: u8, message: &'a [u8] },
}

impl<'a> Repr<'a> {
    /// Parses a packet. Unknown codes are an error (the engines drop them);
    /// an empty Value is malformed (RFC 1994 section 4.1: one or more octets).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check()?;
        let buffer: &'a [u8] = T::as_ref(packet.buffer);
        let view = Packet::new_unchecked(buffer);
        let identifier = view.identifier();
        let value_and_name = |view: &Packet<&'a [u8]>| -> Result<(&'a [u8], &'a [u8])> {
            let size = usize::from(view.value_size());
            if size == 0 {
                return Err(Error::Malformed {
                    what: WHAT,
                    why: "empty Value",
                });
            }
            let start = field::VALUE_START;
            let end = usize::from(view.length());
            Ok((&buffer[start..start + size], &buffer[start + size..end]))
        };
        match view.code() {
            Code::Challenge => {
                let (value, name) = value_and_name(&view)?;
                Ok(Repr::Challenge {
                    identifier,
                    value,
                    name,
                })
            }
            Code::Response => {
                let (value, name) = value_and_name(&view)?;
                Ok(Repr::Response {
                    identifier,
                    value,
                    name,
                })
            }
            Code::Success => Ok(Repr::Success {
                identifier,
                message: &buffer[HEADER_LEN..usize::from(view.length())],
            }),
            Code::Failure => Ok(Repr::Failure {
                identifier,
                message: &buffer[HEADER_LEN..usize::from(view.length())],
            }),
            Code::Unknown(code) => Err(Error::Unknown {
                what: "CHAP code",
                value: code.into(),
            }),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Repr::Challenge { .. } => Code::Challenge,
            Repr::Response { .. } => Code::Response,
            Repr::Success { .. } => Code::Success,
            Repr::Failure { .. } => Code::Failure,
        }
    }

    pub fn identifier(&self) -> u8 {
        match *self {
            Repr::Challenge { identifier, .. }
            | Repr::Response { identifier, .. }
            | Repr::Success { identifier, .. }
            | Repr::Failure { identifier, .. } => identifier,
        }
    }

    /// Length of the emitted packet (the Length field).
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Challenge { value, name, .. } | Repr::Response { value, name, .. } => {
                field::VALUE_START + value.len() + name.len()
            }
            Repr::Success { message, .. } | Repr::Failure { message, .. } => {
                HEADER_LEN + message.len()
            }
        }
    }

    /// Writes the packet into the first [`Repr::buffer_len`] octets of the
    /// packet's buffer; later octets are left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        let length = u16::try_from(len).map_err(|_| Error::BadLength {
            what: WHAT,
            len,
            why: "longer than the 16-bit Length field",
        })?;
        let have = packet.buffer.as_ref().len();
        if have < len {
            return Err(Error::BufferTooSmall {
                what: WHAT,
                need: len,
                have,
            });
        }
        if let Repr::Challenge { value, .. } | Repr::Response { value, .. } = self {
            if value.is_empty() {
                return Err(Error::Malformed {
                    what: WHAT,
                    why: "empty Value",
                });
            }
            if value.len() > usize::from(u8::MAX) {
                return Err(Error::BadLength {
                    what: WHAT,
                    len: value.len(),
                    why: "Value longer than 255 octets",
                });
            }
        }
        packet.set_code(self.code());
        packet.set_identifier(self.identifier());
        packet.set_length(length);
        match self {
            Repr::Challenge { value, name, .. } | Repr::Response { value, name, .. } => {
                // Checked above: 1..=255 octets.
                packet.set_value_size(value.len() as u8);
                let data = packet.data_mut();
                let (value_out, name_out) = data[1..].split_at_mut(value.len());
                value_out.copy_from_slice(value);
                name_out.copy_from_slice(name);
            }
            Repr::Success { message, .. } | Repr::Failure { message, .. } => {
                packet.data_mut().copy_from_slice(message);
            }
        }
        Ok(())
    }

    /// The emitted packet in a new vector (for the control plane, where a
    /// packet is sent a handful of times per session).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut out[..]))?;
        Ok(out)
    }
}

/// The MS-CHAPv1 Response value (RFC 2433 section 6): 24 octets of LAN
/// Manager response, 24 octets of Windows NT response and the "use Windows
/// NT compatible challenge response" flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV1Response {
    pub lm_response: [u8; 24],
    pub nt_response: [u8; 24],
    /// The flag octet: 1 when the NT response is to be used. Any non-zero
    /// octet reads as set.
    pub use_nt_response: bool,
}

mod v1_field {
    pub type Field = core::ops::Range<usize>;
    pub const LM_RESPONSE: Field = 0..24;
    pub const NT_RESPONSE: Field = 24..48;
    pub const FLAGS: usize = 48;
}

impl MsChapV1Response {
    /// Length of the Value (RFC 2433 section 6: Value-Size is 49).
    pub const LEN: usize = 49;

    /// Parses a Response Value of exactly [`Self::LEN`] octets.
    pub fn parse(value: &[u8]) -> Result<Self> {
        let value: &[u8; Self::LEN] = value.try_into().map_err(|_| Error::BadLength {
            what: "MS-CHAPv1 Response value",
            len: value.len(),
            why: "must be 49 octets",
        })?;
        let mut out = MsChapV1Response {
            lm_response: [0; 24],
            nt_response: [0; 24],
            use_nt_response: value[v1_field::FLAGS] != 0,
        };
        out.lm_response
            .copy_from_slice(&value[v1_field::LM_RESPONSE]);
        out.nt_response
            .copy_from_slice(&value[v1_field::NT_RESPONSE]);
        Ok(out)
    }

    /// The Value octets.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[v1_field::LM_RESPONSE].copy_from_slice(&self.lm_response);
        out[v1_field::NT_RESPONSE].copy_from_slice(&self.nt_response);
        out[v1_field::FLAGS] = u8::from(self.use_nt_response);
        out
    }
}

/// The MS-CHAPv2 Response value (RFC 2759 section 4): 16 octets of
/// Peer-Challenge, 8 reserved octets, 24 octets of NT-Response and a Flags
/// octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Response {
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    /// Reserved, must be zero; kept as received.
    pub flags: u8,
}

mod v2_field {
    pub type Field = core::ops::Range<usize>;
    pub const PEER_CHALLENGE: Field = 0..16;
    pub const RESERVED: Field = 16..24;
    pub const NT_RESPONSE: Field = 24..48;
    pub const FLAGS: usize = 48;
}

impl MsChapV2Response {
    /// Length of the Value (RFC 2759 section 4: 16 + 8 + 24 + 1).
    pub const LEN: usize = 49;

    /// Parses a Response Value of exactly [`Self::LEN`] octets. The
    /// reserved octets are not checked (they carry nothing), and are
    /// written as zero.
    pub fn parse(value: &[u8]) -> Result<Self> {
        let value: &[u8; Self::LEN] = value.try_into().map_err(|_| Error::BadLength {
            what: "MS-CHAPv2 Response value",
            len: value.len(),
            why: "must be 49 octets",
        })?;
        let mut out = MsChapV2Response {
            peer_challenge: [0; 16],
            nt_response: [0; 24],
            flags: value[v2_field::FLAGS],
        };
        out.peer_challenge
            .copy_from_slice(&value[v2_field::PEER_CHALLENGE]);
        out.nt_response
            .copy_from_slice(&value[v2_field::NT_RESPONSE]);
        Ok(out)
    }

    /// The Value octets.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[v2_field::PEER_CHALLENGE].copy_from_slice(&self.peer_challenge);
        out[v2_field::RESERVED].fill(0);
        out[v2_field::NT_RESPONSE].copy_from_slice(&self.nt_response);
        out[v2_field::FLAGS] = self.flags;
        out
    }
}

/// The MS-CHAPv2 Success message (RFC 2759 section 5):
/// `S=<40 uppercase hex digits> M=<message>`.
///
/// Parsing accepts lowercase hex digits, `M=` without the space and a
/// missing `M=` part (Windows 98 wants none, see `crate::auth::server`); emitting
/// writes uppercase digits, and ` M=` only when there is a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Success<'a> {
    /// The Authenticator Response (RFC 2759 section 8.7).
    pub authenticator_response: [u8; 20],
    /// The human-readable text after `M=`.
    pub message: Option<&'a [u8]>,
}

const SUCCESS_WHAT: &str = "MS-CHAPv2 Success message";

impl<'a> MsChapV2Success<'a> {
    pub fn parse(message: &'a [u8]) -> Result<Self> {
        let rest = message.strip_prefix(b"S=").ok_or(Error::Malformed {
            what: SUCCESS_WHAT,
            why: "does not start with S=",
        })?;
        let Some((digits, rest)) = rest.split_at_checked(40) else {
            return Err(Error::Truncated {
                what: SUCCESS_WHAT,
                need: 42,
                have: message.len(),
            });
        };
        let mut authenticator_response = [0u8; 20];
        decode_hex(digits, &mut authenticator_response).ok_or(Error::Malformed {
            what: SUCCESS_WHAT,
            why: "authenticator response is not 40 hex digits",
        })?;
        // pppd also accepts "M=" without the space.
        let message = match rest {
            [] => None,
            _ => Some(
                rest.strip_prefix(b" M=")
                    .or_else(|| rest.strip_prefix(b"M="))
                    .ok_or(Error::Malformed {
                        what: SUCCESS_WHAT,
                        why: "text after the authenticator response is not \" M=\"",
                    })?,
            ),
        };
        Ok(MsChapV2Success {
            authenticator_response,
            message,
        })
    }

    pub fn buffer_len(&self) -> usize {
        42 + self.message.map_or(0, |m| 3 + m.len())
    }

    /// The message in a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.extend_from_slice(b"S=");
        push_hex(&mut out, &self.authenticator_response);
        if let Some(message) = self.message {
            out.extend_from_slice(b" M=");
            out.extend_from_slice(message);
        }
        out
    }
}

/// MS-CHAP error codes of the Failure message's `E=` field (RFC 2433
/// section 8, RFC 2759 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// 646 ERROR_RESTRICTED_LOGON_HOURS
    RestrictedLogonHours,
    /// 647 ERROR_ACCT_DISABLED
    AcctDisabled,
    /// 648 ERROR_PASSWD_EXPIRED
    PasswdExpired,
    /// 649 ERROR_NO_DIALIN_PERMISSION
    NoDialinPermission,
    /// 691 ERROR_AUTHENTICATION_FAILURE
    AuthenticationFailure,
    /// 709 ERROR_CHANGING_PASSWORD
    ChangingPassword,
    /// Any other code, kept as received.
    Unknown(u32),
}

impl From<u32> for FailureCode {
    fn from(value: u32) -> Self {
        match value {
            646 => FailureCode::RestrictedLogonHours,
            647 => FailureCode::AcctDisabled,
            648 => FailureCode::PasswdExpired,
            649 => FailureCode::NoDialinPermission,
            691 => FailureCode::AuthenticationFailure,
            709 => FailureCode::ChangingPassword,
            other => FailureCode::Unknown(other),
        }
    }
}

impl From<FailureCode> for u32 {
    fn from(code: FailureCode) -> u32 {
        match code {
            FailureCode::RestrictedLogonHours => 646,
            FailureCode::AcctDisabled => 647,
            FailureCode::PasswdExpired => 648,
            FailureCode::NoDialinPermission => 649,
            FailureCode::AuthenticationFailure => 691,
            FailureCode::ChangingPassword => 709,
            FailureCode::Unknown(other) => other,
        }
    }
}

/// The new challenge of a Failure message's `C=` field: 16 hex digits in
/// MS-CHAPv1 (RFC 2433 section 8), 32 in MS-CHAPv2 (RFC 2759 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureChallenge {
    MsChapV1([u8; 8]),
    MsChapV2([u8; 16]),
}

impl FailureChallenge {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            FailureChallenge::MsChapV1(c) => c,
            FailureChallenge::MsChapV2(c) => c,
        }
    }
}

/// The MS-CHAP Failure message (RFC 2433 section 8, RFC 2759 section 6):
/// `E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>`.
///
/// Parsing takes the fields in any order, separated by spaces; `E=` is
/// required, `R=` defaults to 0, `C=`, `V=` and `M=` are optional (an
/// MS-CHAPv2 peer needs `C=` to retry); `M=` takes the rest of the text;
/// unknown fields are ignored, as RFC 2433 asks. Emitting writes the fields
/// in the RFC's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapFailure<'a> {
    pub error: FailureCode,
    /// `R=1`: the peer may retry with new credentials.
    pub retry: bool,
    pub challenge: Option<FailureChallenge>,
    /// `V=`: the password-change protocol version (3 for MS-CHAPv2).
    pub version: Option<u32>,
    pub message: Option<&'a [u8]>,
}

const FAILURE_WHAT: &str = "MS-CHAP Failure message";

impl<'a> MsChapFailure<'a> {
    pub fn parse(text: &'a [u8]) -> Result<Self> {
        let malformed = |why| Error::Malformed {
            what: FAILURE_WHAT,
            why,
        };
        let mut error = None;
        let mut retry = false;
        let mut challenge = None;
        let mut version = None;
        let mut message = None;
        let mut rest = text;
        loop {
            while let [b' ', tail @ ..] = rest {
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            if let Some(m) = rest.strip_prefix(b"M=") {
                message = Some(m);
                break;
            }
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let (token, tail) = rest.split_at(end);
            rest = tail;
            let Some(eq) = token.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (&token[..eq], &token[eq + 1..]);
            match key {
                b"E" => {
                    let code =
                        parse_decimal(value).ok_or(malformed("E= is not a decimal number"))?;
                    error = Some(FailureCode::from(code));
                }
                b"R" => {
                    retry = match value {
                        b"0" => false,
                        b"1" => true,
                        _ => return Err(malformed("R= is neither 0 nor 1")),
                    }
                }
                b"C" => {
                    challenge = Some(match value.len() {
                        16 => {
                            let mut c = [0u8; 8];
                            decode_hex(value, &mut c).ok_or(malformed("C= is not hex"))?;
                            FailureChallenge::MsChapV1(c)
                        }
                        32 => {
                            let mut c = [0u8; 16];
                            decode_hex(value, &mut c).ok_or(malformed("C= is not hex"))?;
                            FailureChallenge::MsChapV2(c)
                        }
                        len => {
                            return Err(Error::BadLength {
                                what: FAILURE_WHAT,
                                len,
                                why: "C= must have 16 or 32 hex digits",
                            });
                        }
                    })
                }
                b"V" => {
                    version =
                        Some(parse_decimal(value).ok_or(malformed("V= is not a decimal number"))?)
                }
                _ => {}
            }
        }
        Ok(MsChapFailure {
            error: error.ok_or(malformed("no E= field"))?,
            retry,
            challenge,
            version,
            message,
        })
    }

    /// The message in a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(80);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "E={} R={}",
            u32::from(self.error),
            u8::from(self.retry)
        );
        if let Some(challenge) = &self.challenge {
            out.extend_from_slice(b" C=");
            push_hex(&mut out, challenge.as_bytes());
        }
        if let Some(version) = self.version {
            let _ = write!(out, " V={version}");
        }
        if let Some(message) = self.message {
            out.extend_from_slice(b" M=");
            out.extend_from_slice(message);
        }
        out
    }
}

/// Decimal digits (1 to 10) as a `u32`; `None` on anything else.
fn parse_decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Decodes exactly `2 * out.len()` hex digits of either case.
pub(crate) fn decode_hex(digits: &[u8], out: &mut [u8]) -> Option<()> {
    if digits.len() != 2 * out.len() {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

/// Appends uppercase hex digits (RFC 2759 section 5: A-F MUST be uppercase).
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MS-CHAPv2 Challenge as pptpd's pppd sends it: identifier 0x2a, a
    /// 16-octet value, Name "pptpd".
    const CHALLENGE: [u8; 26] = [
        0x01, 0x2a, 0x00, 0x1a, 0x10, //
        0x5b, 0x5d, 0x7c, 0x7d, 0x7b, 0x3f, 0x2f, 0x3e, //
        0x3c, 0x2c, 0x60, 0x21, 0x32, 0x26, 0x26, 0x28, //
        b'p', b'p', b't', b'p', b'd',
    ];

    /// The MS-CHAPv2 Response of RFC 2759 section 9.2 (user "User"), with
    /// identifier 0x2a.
    const RESPONSE: [u8; 58] = [
        0x02, 0x2a, 0x00, 0x3a, 0x31, //
        // Peer-Challenge
        0x21, 0x40, 0x23, 0x24, 0x25, 0x5e, 0x26, 0x2a, //
        0x28, 0x29, 0x5f, 0x2b, 0x3a, 0x33, 0x7c, 0x7e, //
        // Reserved
        0, 0, 0, 0, 0, 0, 0, 0, //
        // NT-Response
        0x82, 0x30, 0x9e, 0xcd, 0x8d, 0x70, 0x8b, 0x5e, //
        0xa0, 0x8f, 0xaa, 0x39, 0x81, 0xcd, 0x83, 0x54, //
        0x42, 0x33, 0x11, 0x4a, 0x3d, 0x85, 0xd6, 0xdf, //
        // Flags
        0x00, //
        b'U', b's', b'e', b'r',
    ];

    #[test]
    fn parse_challenge_known_bytes() {
        let packet = Packet::new_checked(&CHALLENGE[..]).unwrap();
        assert_eq!(packet.code(), Code::Challenge);
        assert_eq!(packet.identifier(), 0x2a);
        assert_eq!(packet.length(), 26);
        assert_eq!(packet.value_size(), 16);
        assert_eq!(packet.name(), b"pptpd");
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::Challenge {
                identifier: 0x2a,
                value: &CHALLENGE[5..21],
                name: b"pptpd"
            }
        );
    }

    #[test]
    fn parse_response_known_bytes() {
        let packet = Packet::new_checked(&RESPONSE[..]).unwrap();
        let Repr::Response {
            identifier,
            value,
            name,
        } = Repr::parse(&packet).unwrap()
        else {
            panic!("not a Response");
        };
        assert_eq!((identifier, name), (0x2a, &b"User"[..]));
        let v2 = MsChapV2Response::parse(value).unwrap();
        assert_eq!(
            v2.peer_challenge,
            [
                0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33,
                0x7C, 0x7E
            ]
        );
        assert_eq!(v2.nt_response[..4], [0x82, 0x30, 0x9e, 0xcd]);
        assert_eq!(v2.nt_response[20..], [0x3d, 0x85, 0xd6, 0xdf]);
        assert_eq!(v2.flags, 0);
        assert_eq!(v2.to_bytes()[..], *value);
    }

    #[test]
    fn parse_success_and_failure_known_bytes() {
        let bytes = [0x03, 0x07, 0x00, 0x06, b'O', b'K', 0xa5, 0xa5];
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr::Success {
                identifier: 7,
                message: b"OK"
            }
        );
        let bytes = [0x04, 0x08, 0x00, 0x04];
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr::Failure {
                identifier: 8,
                message: b""
            }
        );
    }

    #[test]
    fn emit_known_bytes_leaves_the_rest() {
        let repr = Repr::Challenge {
            identifier: 0x2a,
            value: &CHALLENGE[5..21],
            name: b"pptpd",
        };
        assert_eq!(repr.buffer_len(), 26);
        let mut buf = [0xa5u8; 30];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf[..26], CHALLENGE);
        assert_eq!(buf[26..], [0xa5; 4]);

        let repr = Repr::Failure {
            identifier: 3,
            message: b"E=691 R=0",
        };
        let mut buf = [0xa5u8; 14];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, *b"\x04\x03\x00\x0dE=691 R=0\xa5");
    }

    #[test]
    fn round_trips() {
        for bytes in [
            &CHALLENGE[..],
            &RESPONSE[..],
            &[0x03, 0x01, 0x00, 0x05, b'x'][..],
        ] {
            let repr = Repr::parse(&Packet::new_checked(bytes).unwrap()).unwrap();
            assert_eq!(repr.to_vec().unwrap(), bytes);
        }
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut bytes = CHALLENGE.to_vec();
        bytes.extend_from_slice(&[0xff, 0xff]);
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.to_vec().unwrap(), CHALLENGE);
    }

    #[test]
    fn truncated_and_malformed() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&CHALLENGE[..len]),
                Err(Error::Truncated {
                    what: WHAT,
                    need: 4,
                    have: len
                })
            );
        }
        // Length beyond the buffer.
        assert_eq!(
            Packet::new_checked(&CHALLENGE[..25]),
            Err(Error::Truncated {
                what: WHAT,
                need: 26,
                have: 25
            })
        );
        // Length below the header.
        assert!(matches!(
            Packet::new_checked(&[0x03, 0x01, 0x00, 0x03][..]),
            Err(Error::BadLength { len: 3, .. })
        ));
        // A Challenge without Value-Size.
        assert!(matches!(
            Packet::new_checked(&[0x01, 0x01, 0x00, 0x04][..]),
            Err(Error::BadLength { len: 4, .. })
        ));
        // Value-Size past Length.
        assert!(matches!(
            Packet::new_checked(&[0x01, 0x01, 0x00, 0x06, 0x02, 0xaa, 0xbb][..]),
            Err(Error::BadLength { len: 6, .. })
        ));
        // An empty Value.
        let empty = [0x02, 0x01, 0x00, 0x06, 0x00, b'n'];
        assert!(matches!(
            Repr::parse(&Packet::new_checked(&empty[..]).unwrap()),
            Err(Error::Malformed { .. })
        ));
        // An unknown code (MS-CHAPv2 Change-Password) is kept by the view.
        let change = [0x07, 0x01, 0x00, 0x04];
        let packet = Packet::new_checked(&change[..]).unwrap();
        assert_eq!(packet.code(), Code::Unknown(7));
        assert_eq!(
            Repr::parse(&packet),
            Err(Error::Unknown {
                what: "CHAP code",
                value: 7
            })
        );
    }

    #[test]
    fn emit_refuses_what_cannot_be_encoded() {
        let long = [0u8; 256];
        let repr = Repr::Response {
            identifier: 1,
            value: &long,
            name: b"",
        };
        assert!(matches!(repr.to_vec(), Err(Error::BadLength { .. })));
        let repr = Repr::Response {
            identifier: 1,
            value: b"",
            name: b"",
        };
        assert!(matches!(repr.to_vec(), Err(Error::Malformed { .. })));
        let repr = Repr::Success {
            identifier: 1,
            message: b"hello",
        };
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut [0u8; 8][..])),
            Err(Error::BufferTooSmall {
                what: WHAT,
                need: 9,
                have: 8
            })
        );
        let huge = vec![0u8; 70_000];
        let repr = Repr::Success {
            identifier: 1,
            message: &huge,
        };
        assert!(matches!(repr.to_vec(), Err(Error::BadLength { .. })));
    }

    #[test]
    fn ms_chap_v1_response_value() {
        // RFC 2433 section 6: LM response zero-filled, NT response from
        // appendix B.2, flag 1.
        let mut value = [0u8; 49];
        value[24..48].copy_from_slice(&[
            0x4E, 0x9D, 0x3C, 0x8F, 0x9C, 0xFD, 0x38, 0x5D, 0x5B, 0xF4, 0xD3, 0x24, 0x67, 0x91,
            0x95, 0x6C, 0xA4, 0xC3, 0x51, 0xAB, 0x40, 0x9A, 0x3D, 0x61,
        ]);
        value[48] = 1;
        let parsed = MsChapV1Response::parse(&value).unwrap();
        assert_eq!(parsed.lm_response, [0; 24]);
        assert_eq!(parsed.nt_response[..2], [0x4E, 0x9D]);
        assert!(parsed.use_nt_response);
        assert_eq!(parsed.to_bytes(), value);
        assert!(matches!(
            MsChapV1Response::parse(&value[..48]),
            Err(Error::BadLength { len: 48, .. })
        ));
        assert!(matches!(
            MsChapV2Response::parse(&[0u8; 50]),
            Err(Error::BadLength { len: 50, .. })
        ));
    }

    #[test]
    fn ms_chap_v2_response_reserved_is_written_as_zero() {
        let mut value = [0x11u8; 49];
        value[48] = 0;
        let parsed = MsChapV2Response::parse(&value).unwrap();
        let out = parsed.to_bytes();
        assert_eq!(out[16..24], [0; 8]);
        assert_eq!(out[..16], value[..16]);
        assert_eq!(out[24..], value[24..]);
    }

    #[test]
    fn ms_chap_v2_success_message() {
        let text = b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Access granted";
        let parsed = MsChapV2Success::parse(text).unwrap();
        assert_eq!(
            parsed.authenticator_response,
            [
                0x40, 0x7A, 0x55, 0x89, 0x11, 0x5F, 0xD0, 0xD6, 0x20, 0x9F, 0x51, 0x0F, 0xE9, 0xC0,
                0x45, 0x66, 0x93, 0x2C, 0xDA, 0x56
            ]
        );
        assert_eq!(parsed.message, Some(&b"Access granted"[..]));
        assert_eq!(parsed.to_vec(), text);
        assert_eq!(parsed.buffer_len(), text.len());

        let glued = b"S=407A5589115FD0D6209F510FE9C04566932CDA56M=hi";
        assert_eq!(
            MsChapV2Success::parse(glued).unwrap().message,
            Some(&b"hi"[..])
        );

        let bare = b"S=407a5589115fd0d6209f510fe9c04566932cda56";
        let parsed = MsChapV2Success::parse(bare).unwrap();
        assert_eq!(parsed.message, None);
        assert_eq!(parsed.to_vec(), bare.to_ascii_uppercase());

        for bad in [
            &b"407A5589115FD0D6209F510FE9C04566932CDA56"[..],
            b"S=407A5589115FD0D6209F510FE9C04566932CDAZZ",
            b"S=407A5589115FD0D6209F510FE9C04566932CDA56 X=1",
        ] {
            assert!(
                matches!(MsChapV2Success::parse(bad), Err(Error::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            MsChapV2Success::parse(b"S=407A"),
            Err(Error::Truncated { need: 42, .. })
        ));
    }

    #[test]
    fn ms_chap_failure_message() {
        let text = b"E=691 R=1 C=5B5D7C7D7B3F2F3E3C2C602132262628 V=3 M=Authentication failed";
        let parsed = MsChapFailure::parse(text).unwrap();
        assert_eq!(
            parsed,
            MsChapFailure {
                error: FailureCode::AuthenticationFailure,
                retry: true,
                challenge: Some(FailureChallenge::MsChapV2([
                    0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32,
                    0x26, 0x26, 0x28
                ])),
                version: Some(3),
                message: Some(b"Authentication failed"),
            }
        );
        assert_eq!(parsed.to_vec(), text);

        // MS-CHAPv1 as Windows NT sends it: no C=, no V=, no M=.
        let parsed = MsChapFailure::parse(b"E=691 R=1").unwrap();
        assert_eq!(parsed.error, FailureCode::AuthenticationFailure);
        assert!(parsed.retry && parsed.challenge.is_none() && parsed.version.is_none());
        assert_eq!(parsed.to_vec(), b"E=691 R=1");

        // A v1 challenge, another order, an unknown field, extra spaces.
        let parsed = MsChapFailure::parse(b"R=0  X=9 E=648 C=102DB5DF085D3041 V=2").unwrap();
        assert_eq!(parsed.error, FailureCode::PasswdExpired);
        assert_eq!(
            parsed.challenge,
            Some(FailureChallenge::MsChapV1([
                0x10, 0x2D, 0xB5, 0xDF, 0x08, 0x5D, 0x30, 0x41
            ]))
        );
        assert_eq!(parsed.to_vec(), b"E=648 R=0 C=102DB5DF085D3041 V=2");
        assert_eq!(
            MsChapFailure::parse(b"E=9999").unwrap().error,
            FailureCode::Unknown(9999)
        );

        for bad in [
            &b"R=1"[..],
            b"E=abc",
            b"E=99999999999",
            b"E=691 R=2",
            b"E=691 C=5B5D7C7D7B3F2F3E3C2C6021322626ZZ",
        ] {
            assert!(
                matches!(MsChapFailure::parse(bad), Err(Error::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            MsChapFailure::parse(b"E=691 C=5B5D"),
            Err(Error::BadLength { len: 4, .. })
        ));
    }

    #[test]
    fn failure_codes_round_trip() {
        for code in [646, 647, 648, 649, 691, 709, 1] {
            assert_eq!(u32::from(FailureCode::from(code)), code);
        }
    }
}
