//! RADIUS packets (RFC 2865 section 3) and the cryptography around them:
//! User-Password hiding (RFC 2865 section 5.2), the Response Authenticator
//! (RFC 2865 section 3), Message-Authenticator (RFC 3579 section 3.2,
//! RFC 2869 section 5.14) and the salt encryption of the Microsoft MPPE key
//! attributes (RFC 2548 sections 2.4.1 to 2.4.3).
//!
//! [`Packet`] is a view over bytes in smoltcp's manner: [`Packet::new_checked`]
//! validates the header and every attribute's length once, so no accessor
//! panics afterwards. Requests are built by [`AccessRequest::emit`]; the
//! attributes we do not know are kept raw ([`Attribute`]) for the caller to
//! ignore or log.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Field offsets of the header (RFC 2865 section 3).
mod field {
    use std::ops::{Range, RangeFrom};
    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const AUTHENTICATOR: Range<usize> = 4..20;
    pub const ATTRIBUTES: RangeFrom<usize> = 20..;
    /// Within an attribute: Type, Length, Value (RFC 2865 section 5).
    pub const ATTR_TYPE: usize = 0;
    pub const ATTR_LENGTH: usize = 1;
    pub const ATTR_VALUE: RangeFrom<usize> = 2..;
    /// Within Vendor-Specific (RFC 2865 section 5.26): Vendor-Id, then
    /// the vendor's own Type, Length, Value (RFC 2548 section 2).
    pub const VENDOR_ID: Range<usize> = 0..4;
    pub const VENDOR_SUBATTRS: RangeFrom<usize> = 4..;
}

/// Header length (RFC 2865 section 3).
pub const HEADER_LEN: usize = 20;
/// Largest packet (RFC 2865 section 3: 4096 octets).
pub const MAX_LEN: usize = 4096;
/// Largest attribute value (Length is one octet and counts the two of
/// Type and Length).
pub const MAX_VALUE_LEN: usize = 253;
/// Longest User-Password (RFC 2865 section 5.2).
pub const MAX_PASSWORD_LEN: usize = 128;

/// The Code field (RFC 2865 section 3, RFC 2866 section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    /// Status-Server (RFC 5997 section 3).
    StatusServer,
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(value: u8) -> Self {
        match value {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            other => Code::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> Self {
        match code {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::Unknown(other) => other,
        }
    }
}

/// Attribute types (RFC 2865 section 5, RFC 2869 section 5, RFC 2866
/// section 5) that we send or read.
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const CHAP_PASSWORD: u8 = 3;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const NAS_PORT: u8 = 5;
    pub const SERVICE_TYPE: u8 = 6;
    pub const FRAMED_PROTOCOL: u8 = 7;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const FRAMED_IP_NETMASK: u8 = 9;
    pub const FILTER_ID: u8 = 11;
    pub const FRAMED_MTU: u8 = 12;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const STATE: u8 = 24;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
    pub const IDLE_TIMEOUT: u8 = 28;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const PROXY_STATE: u8 = 33;
    pub const CHAP_CHALLENGE: u8 = 60;
    pub const NAS_PORT_TYPE: u8 = 61;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    pub const FRAMED_POOL: u8 = 88;

    /// Service-Type Framed (RFC 2865 section 5.6).
    pub const SERVICE_TYPE_FRAMED: u32 = 2;
    /// Framed-Protocol PPP (RFC 2865 section 5.7).
    pub const FRAMED_PROTOCOL_PPP: u32 = 1;
    /// NAS-Port-Type Virtual (RFC 2865 section 5.41).
    pub const NAS_PORT_TYPE_VIRTUAL: u32 = 5;
}

/// Microsoft's vendor attributes (RFC 2548 section 2), vendor 311.
pub mod ms {
    pub const VENDOR_ID: u32 = 311;
    pub const CHAP_RESPONSE: u8 = 1;
    pub const CHAP_ERROR: u8 = 2;
    pub const CHAP_MPPE_KEYS: u8 = 12;
    pub const CHAP_CHALLENGE: u8 = 11;
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    pub const MPPE_SEND_KEY: u8 = 16;
    pub const MPPE_RECV_KEY: u8 = 17;
    pub const CHAP2_RESPONSE: u8 = 25;
    pub const CHAP2_SUCCESS: u8 = 26;
}

/// Why bytes are not a RADIUS packet, or a request cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("truncated: {have} octets, a RADIUS header needs {HEADER_LEN}")]
    Truncated { have: usize },
    #[error("bad Length {length}: the datagram has {have} octets (20 to 4096 allowed)")]
    BadLength { length: usize, have: usize },
    #[error("attribute at offset {offset}: bad length {length}")]
    BadAttributeLength { offset: usize, length: usize },
    #[error("attribute type {kind}: value of {len} octets is longer than {MAX_VALUE_LEN}")]
    ValueTooLong { kind: u8, len: usize },
    #[error("password of {len} octets is longer than {MAX_PASSWORD_LEN}")]
    PasswordTooLong { len: usize },
    #[error("the request would be {len} octets, more than {MAX_LEN}")]
    PacketTooLong { len: usize },
}

/// A read-only view of a RADIUS packet (RFC 2865 section 3).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the header and the attribute lengths. Octets past Length
    /// are padding and ignored (RFC 2865 section 3).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let bytes = buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated { have: bytes.len() });
        }
        let length = usize::from(u16::from_be_bytes([
            bytes[field::LENGTH.start],
            bytes[field::LENGTH.start + 1],
        ]));
        if !(HEADER_LEN..=MAX_LEN).contains(&length) || length > bytes.len() {
            return Err(Error::BadLength {
                length,
                have: bytes.len(),
            });
        }
        let mut offset = HEADER_LEN;
        while offset < length {
            let attr_len = match bytes.get(offset + field::ATTR_LENGTH) {
                Some(&l) if offset + field::ATTR_LENGTH < length => usize::from(l),
                _ => 0,
            };
            if attr_len < 2 || offset + attr_len > length {
                return Err(Error::BadAttributeLength {
                    offset,
                    length: attr_len,
                });
            }
            offset += attr_len;
        }
        Ok(Packet { buffer })
    }

    /// The packet up to Length.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.length()]
    }

    pub fn code(&self) -> Code {
        Code::from(self.buffer.as_ref()[field::CODE])
    }

    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[field::IDENTIFIER]
    }

    pub fn length(&self) -> usize {
        let b = &self.buffer.as_ref()[field::LENGTH];
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn authenticator(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::AUTHENTICATOR]);
        a
    }

    /// The attributes, in order, unknown ones included.
    pub fn attributes(&self) -> Attributes<'_> {
        Attributes {
            bytes: &self.as_bytes()[field::ATTRIBUTES],
            offset: HEADER_LEN,
        }
    }
}

/// One attribute (RFC 2865 section 5), raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub kind: u8,
    pub value: &'a [u8],
    /// Offset of its Type octet in the packet.
    pub offset: usize,
}

impl<'a> Attribute<'a> {
    /// The value as a 32-bit integer (RFC 2865 section 5: "integer").
    pub fn as_u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.value.try_into().ok()?))
    }

    /// The sub-attributes of a Vendor-Specific attribute in the format
    /// RFC 2865 section 5.26 recommends (Microsoft's, RFC 2548 section 2),
    /// or `None` when this is not one or is malformed.
    pub fn vendor(&self) -> Option<(u32, VendorAttributes<'a>)> {
        if self.kind != attr::VENDOR_SPECIFIC {
            return None;
        }
        let id = self.value.get(field::VENDOR_ID)?;
        let vendor = u32::from_be_bytes(id.try_into().ok()?);
        Some((
            vendor,
            VendorAttributes {
                bytes: self.value.get(field::VENDOR_SUBATTRS)?,
            },
        ))
    }
}

/// Iterator over the attributes of a checked [`Packet`].
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Attribute<'a>> {
        let kind = *self.bytes.get(field::ATTR_TYPE)?;
        let len = usize::from(*self.bytes.get(field::ATTR_LENGTH)?);
        let value = self.bytes.get(field::ATTR_VALUE.start..len)?;
        let offset = self.offset;
        self.bytes = &self.bytes[len..];
        self.offset += len;
        Some(Attribute {
            kind,
            value,
            offset,
        })
    }
}

/// Iterator over the (type, value) sub-attributes of a Vendor-Specific
/// attribute; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct VendorAttributes<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for VendorAttributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let kind = *self.bytes.get(field::ATTR_TYPE)?;
        let len = usize::from(*self.bytes.get(field::ATTR_LENGTH)?);
        let Some(value) = self.bytes.get(field::ATTR_VALUE.start..len.max(2)) else {
            self.bytes = &[];
            return None;
        };
        if len < 2 {
            self.bytes = &[];
            return None;
        }
        self.bytes = &self.bytes[len..];
        Some((kind, value))
    }
}

/// One attribute of an Access-Request, before the secret is applied.
#[derive(Clone, PartialEq, Eq)]
pub enum RequestAttribute {
    /// A standard attribute, sent as it is.
    Plain { kind: u8, value: Vec<u8> },
    /// A Vendor-Specific attribute with one sub-attribute (RFC 2865
    /// section 5.26).
    Vendor {
        vendor: u32,
        kind: u8,
        value: Vec<u8>,
    },
    /// User-Password, hidden with the secret (RFC 2865 section 5.2).
    UserPassword(Vec<u8>),
}

impl std::fmt::Debug for RequestAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestAttribute::Plain { kind, value } => {
                write!(f, "Plain({kind}, {} octets)", value.len())
            }
            RequestAttribute::Vendor {
                vendor,
                kind,
                value,
            } => write!(f, "Vendor({vendor}, {kind}, {} octets)", value.len()),
            RequestAttribute::UserPassword(_) => f.write_str("UserPassword(..)"),
        }
    }
}

impl RequestAttribute {
    pub fn plain(kind: u8, value: impl Into<Vec<u8>>) -> Self {
        RequestAttribute::Plain {
            kind,
            value: value.into(),
        }
    }

    pub fn integer(kind: u8, value: u32) -> Self {
        RequestAttribute::plain(kind, value.to_be_bytes())
    }

    pub fn microsoft(kind: u8, value: impl Into<Vec<u8>>) -> Self {
        RequestAttribute::Vendor {
            vendor: ms::VENDOR_ID,
            kind,
            value: value.into(),
        }
    }
}

/// An Access-Request (RFC 2865 section 4.1) in the abstract: the same
/// request is emitted once per server, each with its own secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRequest {
    pub attributes: Vec<RequestAttribute>,
}

impl AccessRequest {
    /// The request on the wire: Message-Authenticator first (RFC 3579
    /// section 3.2; its HMAC-MD5 over the whole packet with itself zeroed),
    /// then the attributes in order, User-Password hidden with `secret`
    /// and `authenticator` (the random Request Authenticator).
    pub fn emit(
        &self,
        identifier: u8,
        authenticator: &[u8; 16],
        secret: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        out.push(u8::from(Code::AccessRequest));
        out.push(identifier);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(authenticator);
        push_attr(&mut out, attr::MESSAGE_AUTHENTICATOR, &[0; 16])?;
        let ma_value = HEADER_LEN + 2;
        push_attributes(&mut out, &self.attributes, Some((authenticator, secret)))?;
        set_length(&mut out)?;
        let mac = hmac_md5(secret, &out);
        out[ma_value..ma_value + 16].copy_from_slice(&mac);
        Ok(out)
    }
}

/// Appends request attributes: Vendor-Specific ones wrapped (RFC 2865
/// section 5.26), User-Password hidden with the Request Authenticator and
/// the secret (section 5.2) when `hiding` is given, left out otherwise.
fn push_attributes(
    out: &mut Vec<u8>,
    attributes: &[RequestAttribute],
    hiding: Option<(&[u8; 16], &[u8])>,
) -> Result<(), Error> {
    for a in attributes {
        match a {
            RequestAttribute::Plain { kind, value } => push_attr(out, *kind, value)?,
            RequestAttribute::Vendor {
                vendor,
                kind,
                value,
            } => {
                if value.len() > MAX_VALUE_LEN - 6 {
                    return Err(Error::ValueTooLong {
                        kind: *kind,
                        len: value.len(),
                    });
                }
                push_attr(
                    out,
                    attr::VENDOR_SPECIFIC,
                    &vendor_value(*vendor, *kind, value),
                )?;
            }
            RequestAttribute::UserPassword(password) => {
                if let Some((authenticator, secret)) = hiding {
                    let hidden = hide_password(password, secret, authenticator)?;
                    push_attr(out, attr::USER_PASSWORD, &hidden)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks the packet's size (RFC 2865 section 3) and writes its Length.
fn set_length(out: &mut [u8]) -> Result<(), Error> {
    if out.len() > MAX_LEN {
        return Err(Error::PacketTooLong { len: out.len() });
    }
    let len = out.len() as u16;
    out[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn push_attr(out: &mut Vec<u8>, kind: u8, value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLong {
            kind,
            len: value.len(),
        });
    }
    out.push(kind);
    out.push(value.len() as u8 + 2);
    out.extend_from_slice(value);
    Ok(())
}

/// HMAC-MD5 (RFC 2104), for Message-Authenticator. Written out here: ten
/// lines against a new dependency; tested with the RFC 2202 vectors.
pub fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Hides a User-Password (RFC 2865 section 5.2): padded with zeros to a
/// multiple of 16 octets, each block XORed with MD5(secret + previous
/// ciphertext block), the first with MD5(secret + Request Authenticator).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, Error> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordTooLong {
            len: password.len(),
        });
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded, 0);
    xor_chain(&mut out, secret, authenticator, true);
    Ok(out)
}

/// Undoes [`hide_password`] (the same XOR chain; also RFC 2548 section
/// 2.4.1's MS-CHAP-MPPE-Keys, which are hidden this way).
pub fn unhide_password(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut out = hidden.to_vec();
    xor_chain(&mut out, secret, authenticator, false);
    out
}

/// b(1) = MD5(S + seed), c(i) = p(i) xor b(i), b(i) = MD5(S + c(i-1)):
/// RFC 2865 section 5.2 (seed = Request Authenticator) and RFC 2548
/// section 2.4.2 (seed = Request Authenticator + Salt). A trailing partial
/// block is XORed as far as it goes.
fn xor_chain(data: &mut [u8], secret: &[u8], seed: &[u8], encrypting: bool) {
    let mut previous: Vec<u8> = seed.to_vec();
    for block in data.chunks_mut(16) {
        let mut md5 = Md5::new();
        md5.update(secret);
        md5.update(&previous);
        let b = md5.finalize();
        let cipher_in = block.to_vec();
        for (x, k) in block.iter_mut().zip(b.iter()) {
            *x ^= k;
        }
        previous = if encrypting {
            block.to_vec()
        } else {
            cipher_in
        };
    }
}

/// Why an encrypted key attribute could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{len} octets: a salt-encrypted value has a 2-octet salt and 16-octet blocks")]
    BadLength { len: usize },
    #[error("the salt's most significant bit is not set")]
    BadSalt,
    #[error("the key length {key_len} is more than the {room} decrypted octets")]
    BadKeyLength { key_len: usize, room: usize },
}

/// Decrypts MS-MPPE-Send-Key / MS-MPPE-Recv-Key (RFC 2548 sections 2.4.2
/// and 2.4.3): Salt (2 octets, high bit set), then the String: Key-Length,
/// Key, padding, encrypted with b(1) = MD5(secret + Request Authenticator +
/// Salt), b(i) = MD5(secret + c(i-1)). Returns the key.
pub fn decrypt_salted_key(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, KeyError> {
    let len = value.len();
    if len < 2 + 16 || !(len - 2).is_multiple_of(16) {
        return Err(KeyError::BadLength { len });
    }
    let (salt, string) = value.split_at(2);
    if salt[0] & 0x80 == 0 {
        return Err(KeyError::BadSalt);
    }
    let mut seed = request_authenticator.to_vec();
    seed.extend_from_slice(salt);
    let mut plain = string.to_vec();
    xor_chain(&mut plain, secret, &seed, false);
    let key_len = usize::from(plain[0]);
    let room = plain.len() - 1;
    if key_len > room {
        return Err(KeyError::BadKeyLength { key_len, room });
    }
    Ok(plain[1..=key_len].to_vec())
}

/// Encrypts a key as RFC 2548 section 2.4.2 describes (what a server
/// does); for tests and simulations.
pub fn encrypt_salted_key(
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Vec<u8> {
    let mut plain = vec![key.len() as u8];
    plain.extend_from_slice(key);
    plain.resize(plain.len().div_ceil(16) * 16, 0);
    let mut seed = request_authenticator.to_vec();
    seed.extend_from_slice(&salt);
    xor_chain(&mut plain, secret, &seed, true);
    let mut out = salt.to_vec();
    out.extend_from_slice(&plain);
    out
}

/// Why a response was dropped (RFC 2865 section 3, RFC 3579 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed: {0}")]
    Malformed(Error),
    #[error("identifier {got}, the request had {want}")]
    WrongIdentifier { got: u8, want: u8 },
    #[error("code {0:?} is not an answer to an Access-Request")]
    UnexpectedCode(Code),
    #[error("bad Response Authenticator")]
    BadResponseAuthenticator,
    #[error("no Message-Authenticator (required: CVE-2024-3596, BlastRADIUS)")]
    MissingMessageAuthenticator,
    #[error("bad Message-Authenticator")]
    BadMessageAuthenticator,
}

/// Checks a response to the request with `identifier` and
/// `request_authenticator`: its code (Access-Accept, -Reject or
/// -Challenge), its identifier, the Response Authenticator
/// MD5(Code + Identifier + Length + Request Authenticator + Attributes +
/// Secret) (RFC 2865 section 3) and a Message-Authenticator, which we
/// require on every response (RFC 3579 section 3.2; BlastRADIUS,
/// CVE-2024-3596): HMAC-MD5 over the response with the Request
/// Authenticator in place of its own and the Message-Authenticator zeroed.
pub fn check_response<'a>(
    datagram: &'a [u8],
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Packet<&'a [u8]>, ResponseError> {
    let packet = Packet::new_checked(datagram).map_err(ResponseError::Malformed)?;
    let code = packet.code();
    if !matches!(
        code,
        Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
    ) {
        return Err(ResponseError::UnexpectedCode(code));
    }
    check_response_authenticator(&packet, identifier, request_authenticator, secret)?;
    let bytes = packet.as_bytes();
    let mut mas = packet
        .attributes()
        .filter(|a| a.kind == attr::MESSAGE_AUTHENTICATOR);
    let (Some(ma), None) = (mas.next(), mas.next()) else {
        return Err(ResponseError::MissingMessageAuthenticator);
    };
    check_message_authenticator(bytes, &ma, request_authenticator, secret)?;
    Ok(packet)
}

/// Builds a response as a server would (Message-Authenticator first, then
/// the Response Authenticator over it), for tests and simulations.
pub fn emit_response(
    code: Code,
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    attributes: &[(u8, Vec<u8>)],
    with_message_authenticator: bool,
) -> Vec<u8> {
    emit_signed(
        u8::from(code),
        identifier,
        request_authenticator,
        secret,
        attributes,
        with_message_authenticator,
    )
}

/// A packet whose authenticator is MD5 over Code, Identifier, Length,
/// `base`, Attributes and Secret: a response (`base` is the Request
/// Authenticator, RFC 2865 section 3) or an accounting or
/// dynamic-authorization request (`base` is 16 zero octets, RFC 2866
/// section 3, RFC 5176 section 3.5).
/// `attributes` in order, after a Message-Authenticator when asked (RFC
/// 3579 section 3.2: HMAC-MD5 with `base` in the authenticator field).
/// For tests and simulations.
pub fn emit_signed(
    code: u8,
    identifier: u8,
    base: &[u8; 16],
    secret: &[u8],
    attributes: &[(u8, Vec<u8>)],
    with_message_authenticator: bool,
) -> Vec<u8> {
    let mut out = vec![code, identifier, 0, 0];
    out.extend_from_slice(base);
    if with_message_authenticator {
        out.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        out.extend_from_slice(&[0; 16]);
    }
    for (kind, value) in attributes {
        out.push(*kind);
        out.push(value.len() as u8 + 2);
        out.extend_from_slice(value);
    }
    let len = out.len() as u16;
    out[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    if with_message_authenticator {
        let mac = hmac_md5(secret, &out);
        out[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&mac);
    }
    let mut md5 = Md5::new();
    md5.update(&out);
    md5.update(secret);
    let auth: [u8; 16] = md5.finalize().into();
    out[field::AUTHENTICATOR].copy_from_slice(&auth);
    out
}

/// A Vendor-Specific value with one sub-attribute, for tests and
/// simulations.
pub fn vendor_value(vendor: u32, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vendor.to_be_bytes().to_vec();
    v.push(kind);
    v.push(value.len() as u8 + 2);
    v.extend_from_slice(value);
    v
}

/// Accounting attribute types (RFC 2866 section 5, RFC 2869 section 5).
pub mod acct {
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_DELAY_TIME: u8 = 41;
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_AUTHENTIC: u8 = 45;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_INPUT_PACKETS: u8 = 47;
    pub const ACCT_OUTPUT_PACKETS: u8 = 48;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    pub const EVENT_TIMESTAMP: u8 = 55;

    /// Acct-Status-Type values (RFC 2866 section 5.1).
    pub const STATUS_START: u32 = 1;
    pub const STATUS_STOP: u32 = 2;
    pub const STATUS_INTERIM_UPDATE: u32 = 3;
    pub const STATUS_ACCOUNTING_ON: u32 = 7;
    pub const STATUS_ACCOUNTING_OFF: u32 = 8;
    /// Acct-Authentic RADIUS (RFC 2866 section 5.6).
    pub const AUTHENTIC_RADIUS: u32 = 1;
}

/// An Accounting-Request (RFC 2866 section 4.1) in the abstract: emitted
/// once per transmission, since the Request Authenticator depends on the
/// secret and on Acct-Delay-Time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountingRequest {
    /// [`RequestAttribute::UserPassword`] is not allowed here (RFC 2866
    /// section 4.1) and is left out.
    pub attributes: Vec<RequestAttribute>,
}

impl AccountingRequest {
    /// The request on the wire: the attributes in order, then the Request
    /// Authenticator MD5(Code + Identifier + Length + 16 zero octets +
    /// Attributes + Secret) (RFC 2866 section 3). No Message-Authenticator:
    /// RFC 2866 does not ask for one.
    pub fn emit(&self, identifier: u8, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        out.push(u8::from(Code::AccountingRequest));
        out.push(identifier);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&[0; 16]);
        // RFC 2866 section 5: no User-Password in accounting.
        push_attributes(&mut out, &self.attributes, None)?;
        set_length(&mut out)?;
        let mut md5 = Md5::new();
        md5.update(&out);
        md5.update(secret);
        let auth: [u8; 16] = md5.finalize().into();
        out[field::AUTHENTICATOR].copy_from_slice(&auth);
        Ok(out)
    }
}

/// Checks an Accounting-Response (RFC 2866 section 4.2) to the request
/// with `identifier` and `request_authenticator`: code, identifier and
/// the Response Authenticator MD5(Code + Identifier + Length + Request
/// Authenticator + Attributes + Secret) (RFC 2866 section 3). A
/// Message-Authenticator, if present, must be valid too (RFC 3579 section
/// 3.2); it is not required.
pub fn check_accounting_response<'a>(
    datagram: &'a [u8],
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Packet<&'a [u8]>, ResponseError> {
    let packet = Packet::new_checked(datagram).map_err(ResponseError::Malformed)?;
    let code = packet.code();
    if code != Code::AccountingResponse {
        return Err(ResponseError::UnexpectedCode(code));
    }
    check_response_authenticator(&packet, identifier, request_authenticator, secret)?;
    let bytes = packet.as_bytes();
    if let Some(ma) = packet
        .attributes()
        .find(|a| a.kind == attr::MESSAGE_AUTHENTICATOR)
    {
        check_message_authenticator(bytes, &ma, request_authenticator, secret)?;
    }
    Ok(packet)
}

/// The identifier of a response and its Response Authenticator
/// MD5(Code + Identifier + Length + Request Authenticator + Attributes +
/// Secret) (RFC 2865 section 3, RFC 2866 section 3, RFC 5176 section 3.5).
pub(super) fn check_response_authenticator<T: AsRef<[u8]>>(
    packet: &Packet<T>,
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<(), ResponseError> {
    if packet.identifier() != identifier {
        return Err(ResponseError::WrongIdentifier {
            got: packet.identifier(),
            want: identifier,
        });
    }
    let bytes = packet.as_bytes();
    let mut md5 = Md5::new();
    md5.update(&bytes[..field::AUTHENTICATOR.start]);
    md5.update(request_authenticator);
    md5.update(&bytes[field::ATTRIBUTES]);
    md5.update(secret);
    let expected: [u8; 16] = md5.finalize().into();
    if bool::from(expected.ct_eq(&packet.authenticator())) {
        Ok(())
    } else {
        Err(ResponseError::BadResponseAuthenticator)
    }
}

/// A response's Message-Authenticator `ma` (RFC 3579 section 3.2):
/// HMAC-MD5 over the response with the Request Authenticator in place of
/// its own and the Message-Authenticator's value zeroed.
pub(super) fn check_message_authenticator(
    bytes: &[u8],
    ma: &Attribute<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<(), ResponseError> {
    if ma.value.len() != 16 {
        return Err(ResponseError::BadMessageAuthenticator);
    }
    let mut copy = bytes.to_vec();
    copy[field::AUTHENTICATOR].copy_from_slice(request_authenticator);
    let at = ma.offset + field::ATTR_VALUE.start;
    copy[at..at + 16].fill(0);
    if bool::from(hmac_md5(secret, &copy).ct_eq(ma.value)) {
        Ok(())
    } else {
        Err(ResponseError::BadMessageAuthenticator)
    }
}
