//! PPTP control messages (RFC 2637 section 2) and the framer of the TCP
//! control connection that carries them.
//!
//! Every control message starts with the same 12-byte header and has a
//! fixed length that depends on its type (RFC 2637 sections 2.1 to 2.16):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |       PPTP Message Type       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Magic Cookie                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Control Message Type      |           Reserved0           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! | message                               | type | length |
//! |---------------------------------------|------|--------|
//! | Start-Control-Connection-Request      | 1    | 156    |
//! | Start-Control-Connection-Reply        | 2    | 156    |
//! | Stop-Control-Connection-Request       | 3    | 16     |
//! | Stop-Control-Connection-Reply         | 4    | 16     |
//! | Echo-Request                          | 5    | 16     |
//! | Echo-Reply                            | 6    | 20     |
//! | Outgoing-Call-Request                 | 7    | 168    |
//! | Outgoing-Call-Reply                   | 8    | 32     |
//! | Incoming-Call-Request                 | 9    | 220    |
//! | Incoming-Call-Reply                   | 10   | 24     |
//! | Incoming-Call-Connected               | 11   | 28     |
//! | Call-Clear-Request                    | 12   | 16     |
//! | Call-Disconnect-Notify                | 13   | 148    |
//! | WAN-Error-Notify                      | 14   | 40     |
//! | Set-Link-Info                         | 15   | 24     |
//!
//! What the parser accepts (anything else is an error that says why):
//! a Length equal to the input length and to the fixed length of the
//! message type; PPTP Message Type 1 (control message; type 2, management,
//! is refused with that reason); the magic cookie 0x1A2B3C4D; a known
//! control message type; Reserved0 equal to 0.
//!
//! Reserved fields inside the message bodies (Reserved1, Reserved2) are
//! **ignored** on receipt and always sent as 0. The RFC says they must be 0,
//! but they carry no meaning, and refusing a whole control connection
//! because a peer left stack garbage in one of them would only hurt
//! interoperability; Reserved0 in the header is different, because a
//! non-zero value there is a sign of a desynchronised or hostile stream,
//! so it is refused.
//!
//! Host names, vendor strings, phone numbers and subaddresses are 64-byte
//! fields padded with NULs, and the call statistics 128 bytes: they are
//! kept as raw bytes in [`NulPadded`], whose [`NulPadded::text`] gives the
//! bytes before the first NUL. Result and error codes are enums that keep
//! unknown values; capabilities are bit sets that keep unknown bits.
//!
//! [`ControlFramer`] cuts the byte stream of the TCP connection into
//! messages.

mod framer;

use std::borrow::Cow;
use std::fmt;

use pptp_common::consts::{PPTP_MAGIC_COOKIE, PPTP_PROTOCOL_VERSION};

use super::{Error, Result};

pub use framer::ControlFramer;

/// Length of the header every control message starts with.
pub const HEADER_LEN: usize = 12;
/// Length of the shortest control message (Stop-Control-Connection-Request,
/// Stop-Control-Connection-Reply, Echo-Request, Call-Clear-Request).
pub const MIN_MESSAGE_LEN: usize = 16;
/// Length of the longest control message (Incoming-Call-Request).
pub const MAX_MESSAGE_LEN: usize = 220;
/// Length of the host name, vendor string, phone number and subaddress
/// fields.
pub const STRING_LEN: usize = 64;
/// Length of the call statistics field of Call-Disconnect-Notify.
pub const CALL_STATISTICS_LEN: usize = 128;
/// The protocol version this codec speaks: 1.0.
pub const PROTOCOL_VERSION: u16 = PPTP_PROTOCOL_VERSION;
/// The magic cookie of every control message (RFC 2637 section 1.4).
pub const MAGIC_COOKIE: u32 = PPTP_MAGIC_COOKIE;

const WHAT: &str = "PPTP control message";

/// Field offsets, from the start of the message (RFC 2637 section 2).
mod field {
    pub type Field = core::ops::Range<usize>;

    pub const LENGTH: Field = 0..2;
    pub const MESSAGE_TYPE: Field = 2..4;
    pub const MAGIC_COOKIE: Field = 4..8;
    pub const CONTROL_MESSAGE_TYPE: Field = 8..10;
    pub const RESERVED0: Field = 10..12;

    /// Start-Control-Connection-Request and -Reply (sections 2.1, 2.2).
    pub mod start {
        use super::Field;
        pub const PROTOCOL_VERSION: Field = 12..14;
        /// Reply only; Reserved1 in the request.
        pub const RESULT_CODE: usize = 14;
        /// Reply only; Reserved1 in the request.
        pub const ERROR_CODE: usize = 15;
        pub const FRAMING_CAPABILITIES: Field = 16..20;
        pub const BEARER_CAPABILITIES: Field = 20..24;
        pub const MAXIMUM_CHANNELS: Field = 24..26;
        pub const FIRMWARE_REVISION: Field = 26..28;
        pub const HOST_NAME: Field = 28..92;
        pub const VENDOR_STRING: Field = 92..156;
    }

    /// Stop-Control-Connection-Request and -Reply (sections 2.3, 2.4).
    pub mod stop {
        /// Reason in the request, Result Code in the reply.
        pub const REASON_OR_RESULT: usize = 12;
        /// Error Code in the reply, Reserved1 in the request.
        pub const ERROR_CODE: usize = 13;
    }

    /// Echo-Request and Echo-Reply (sections 2.5, 2.6).
    pub mod echo {
        use super::Field;
        pub const IDENTIFIER: Field = 12..16;
        pub const RESULT_CODE: usize = 16;
        pub const ERROR_CODE: usize = 17;
    }

    /// Outgoing-Call-Request (section 2.7).
    pub mod ocrq {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
        pub const CALL_SERIAL_NUMBER: Field = 14..16;
        pub const MINIMUM_BPS: Field = 16..20;
        pub const MAXIMUM_BPS: Field = 20..24;
        pub const BEARER_TYPE: Field = 24..28;
        pub const FRAMING_TYPE: Field = 28..32;
        pub const PACKET_RECV_WINDOW_SIZE: Field = 32..34;
        pub const PACKET_PROCESSING_DELAY: Field = 34..36;
        pub const PHONE_NUMBER_LENGTH: Field = 36..38;
        pub const PHONE_NUMBER: Field = 40..104;
        pub const SUBADDRESS: Field = 104..168;
    }

    /// Outgoing-Call-Reply (section 2.8).
    pub mod ocrp {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
        pub const PEER_CALL_ID: Field = 14..16;
        pub const RESULT_CODE: usize = 16;
        pub const ERROR_CODE: usize = 17;
        pub const CAUSE_CODE: Field = 18..20;
        pub const CONNECT_SPEED: Field = 20..24;
        pub const PACKET_RECV_WINDOW_SIZE: Field = 24..26;
        pub const PACKET_PROCESSING_DELAY: Field = 26..28;
        pub const PHYSICAL_CHANNEL_ID: Field = 28..32;
    }

    /// Incoming-Call-Request (section 2.9).
    pub mod icrq {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
        pub const CALL_SERIAL_NUMBER: Field = 14..16;
        pub const BEARER_TYPE: Field = 16..20;
        pub const PHYSICAL_CHANNEL_ID: Field = 20..24;
        pub const DIALED_NUMBER_LENGTH: Field = 24..26;
        pub const DIALING_NUMBER_LENGTH: Field = 26..28;
        pub const DIALED_NUMBER: Field = 28..92;
        pub const DIALING_NUMBER: Field = 92..156;
        pub const SUBADDRESS: Field = 156..220;
    }

    /// Incoming-Call-Reply (section 2.10).
    pub mod icrp {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
        pub const PEER_CALL_ID: Field = 14..16;
        pub const RESULT_CODE: usize = 16;
        pub const ERROR_CODE: usize = 17;
        pub const PACKET_RECV_WINDOW_SIZE: Field = 18..20;
        pub const PACKET_TRANSMIT_DELAY: Field = 20..22;
    }

    /// Incoming-Call-Connected (section 2.11).
    pub mod iccn {
        use super::Field;
        pub const PEER_CALL_ID: Field = 12..14;
        pub const CONNECT_SPEED: Field = 16..20;
        pub const PACKET_RECV_WINDOW_SIZE: Field = 20..22;
        pub const PACKET_TRANSMIT_DELAY: Field = 22..24;
        pub const FRAMING_TYPE: Field = 24..28;
    }

    /// Call-Clear-Request (section 2.12).
    pub mod ccrq {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
    }

    /// Call-Disconnect-Notify (section 2.13).
    pub mod cdn {
        use super::Field;
        pub const CALL_ID: Field = 12..14;
        pub const RESULT_CODE: usize = 14;
        pub const ERROR_CODE: usize = 15;
        pub const CAUSE_CODE: Field = 16..18;
        pub const CALL_STATISTICS: Field = 20..148;
    }

    /// WAN-Error-Notify (section 2.14).
    pub mod wen {
        use super::Field;
        pub const PEER_CALL_ID: Field = 12..14;
        pub const CRC_ERRORS: Field = 16..20;
        pub const FRAMING_ERRORS: Field = 20..24;
        pub const HARDWARE_OVERRUNS: Field = 24..28;
        pub const BUFFER_OVERRUNS: Field = 28..32;
        pub const TIME_OUT_ERRORS: Field = 32..36;
        pub const ALIGNMENT_ERRORS: Field = 36..40;
    }

    /// Set-Link-Info (section 2.15).
    pub mod sli {
        use super::Field;
        pub const PEER_CALL_ID: Field = 12..14;
        pub const SEND_ACCM: Field = 16..20;
        pub const RECEIVE_ACCM: Field = 20..24;
    }
}

/// Declares an enum over a wire integer that keeps unknown values.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $ty:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value the RFC does not name, kept as received. Build
            /// values with `From` so that named values never end up here.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> $ty {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

wire_enum! {
    /// PPTP Message Type of the header (RFC 2637 section 1.4).
    pub enum MessageType: u16 {
        /// Control Message: every message of RFC 2637 section 2.
        ControlMessage = 1,
        /// Management Message: defined by the RFC, used by nobody, refused.
        ManagementMessage = 2,
    }
}

wire_enum! {
    /// Control Message Type of the header (RFC 2637 section 1.4).
    pub enum ControlMessageType: u16 {
        StartControlConnectionRequest = 1,
        StartControlConnectionReply = 2,
        StopControlConnectionRequest = 3,
        StopControlConnectionReply = 4,
        EchoRequest = 5,
        EchoReply = 6,
        OutgoingCallRequest = 7,
        OutgoingCallReply = 8,
        IncomingCallRequest = 9,
        IncomingCallReply = 10,
        IncomingCallConnected = 11,
        CallClearRequest = 12,
        CallDisconnectNotify = 13,
        WanErrorNotify = 14,
        SetLinkInfo = 15,
    }
}

impl ControlMessageType {
    /// The fixed length of a message of this type, header included; `None`
    /// for an unknown type.
    pub const fn message_len(self) -> Option<usize> {
        Some(match self {
            Self::StartControlConnectionRequest | Self::StartControlConnectionReply => 156,
            Self::StopControlConnectionRequest
            | Self::StopControlConnectionReply
            | Self::EchoRequest
            | Self::CallClearRequest => 16,
            Self::EchoReply => 20,
            Self::OutgoingCallRequest => 168,
            Self::OutgoingCallReply => 32,
            Self::IncomingCallRequest => 220,
            Self::IncomingCallReply | Self::SetLinkInfo => 24,
            Self::IncomingCallConnected => 28,
            Self::CallDisconnectNotify => 148,
            Self::WanErrorNotify => 40,
            Self::Unknown(_) => return None,
        })
    }

    /// The RFC's name of the message.
    pub const fn name(self) -> &'static str {
        match self {
            Self::StartControlConnectionRequest => "Start-Control-Connection-Request",
            Self::StartControlConnectionReply => "Start-Control-Connection-Reply",
            Self::StopControlConnectionRequest => "Stop-Control-Connection-Request",
            Self::StopControlConnectionReply => "Stop-Control-Connection-Reply",
            Self::EchoRequest => "Echo-Request",
            Self::EchoReply => "Echo-Reply",
            Self::OutgoingCallRequest => "Outgoing-Call-Request",
            Self::OutgoingCallReply => "Outgoing-Call-Reply",
            Self::IncomingCallRequest => "Incoming-Call-Request",
            Self::IncomingCallReply => "Incoming-Call-Reply",
            Self::IncomingCallConnected => "Incoming-Call-Connected",
            Self::CallClearRequest => "Call-Clear-Request",
            Self::CallDisconnectNotify => "Call-Disconnect-Notify",
            Self::WanErrorNotify => "WAN-Error-Notify",
            Self::SetLinkInfo => "Set-Link-Info",
            Self::Unknown(_) => "unknown PPTP control message",
        }
    }
}

impl fmt::Display for ControlMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(value) => write!(f, "unknown PPTP control message type {value}"),
            known => f.write_str(known.name()),
        }
    }
}

wire_enum! {
    /// Result Code of Start-Control-Connection-Reply (RFC 2637 section 2.2).
    pub enum StartResult: u8 {
        /// Successful channel establishment.
        Success = 1,
        /// General error; the Error Code says which.
        GeneralError = 2,
        /// Command channel already exists.
        ChannelAlreadyExists = 3,
        /// Requester is not authorized to establish a command channel.
        NotAuthorized = 4,
        /// The protocol version of the requester is not supported.
        UnsupportedProtocolVersion = 5,
    }
}

wire_enum! {
    /// General Error Codes (RFC 2637 section 2.16), carried next to the
    /// result codes of replies when the result is "general error".
    pub enum ErrorCode: u8 {
        /// No general error.
        None = 0,
        /// No control connection exists yet for this PAC-PNS pair.
        NotConnected = 1,
        /// Length is wrong or Magic Cookie value is incorrect.
        BadFormat = 2,
        /// One of the field values was out of range or a reserved field
        /// was non-zero.
        BadValue = 3,
        /// Insufficient resources to handle this command now.
        NoResource = 4,
        /// The Call ID is invalid in this context.
        BadCallId = 5,
        /// A generic vendor-specific error occurred in the PAC.
        PacError = 6,
    }
}

wire_enum! {
    /// Reason of Stop-Control-Connection-Request (RFC 2637 section 2.3).
    pub enum StopReason: u8 {
        /// General request to clear the control connection.
        None = 1,
        /// Can't support the peer's version of the protocol.
        StopProtocol = 2,
        /// Requester is being shut down.
        StopLocalShutdown = 3,
    }
}

wire_enum! {
    /// Result Code of Stop-Control-Connection-Reply (RFC 2637 section 2.4).
    pub enum StopResult: u8 {
        /// Control connection closed.
        Ok = 1,
        /// Control connection not closed; the Error Code says why.
        GeneralError = 2,
    }
}

wire_enum! {
    /// Result Code of Echo-Reply (RFC 2637 section 2.6).
    pub enum EchoResult: u8 {
        /// The Echo-Reply is valid.
        Ok = 1,
        /// Echo-Request not accepted; the Error Code says why.
        GeneralError = 2,
    }
}

wire_enum! {
    /// Result Code of Outgoing-Call-Reply (RFC 2637 section 2.8).
    pub enum OutgoingCallResult: u8 {
        /// Call established with no errors.
        Connected = 1,
        /// Outgoing call not established; the Error Code says why.
        GeneralError = 2,
        /// Outgoing call failed due to no carrier detected.
        NoCarrier = 3,
        /// Outgoing call failed due to detection of a busy signal.
        Busy = 4,
        /// Outgoing call failed due to lack of a dial tone.
        NoDialTone = 5,
        /// Outgoing call was not established within the time allotted.
        TimeOut = 6,
        /// Outgoing call administratively prohibited.
        DoNotAccept = 7,
    }
}

wire_enum! {
    /// Result Code of Incoming-Call-Reply (RFC 2637 section 2.10).
    pub enum IncomingCallResult: u8 {
        /// The PAC should answer the incoming call.
        Connect = 1,
        /// The incoming call should not be established; the Error Code
        /// says why.
        GeneralError = 2,
        /// The PAC should not accept the incoming call.
        DoNotAccept = 3,
    }
}

wire_enum! {
    /// Result Code of Call-Disconnect-Notify (RFC 2637 section 2.13).
    pub enum DisconnectResult: u8 {
        /// Call disconnected due to loss of carrier.
        LostCarrier = 1,
        /// Call disconnected for the reason the Error Code gives.
        GeneralError = 2,
        /// Call disconnected for administrative reasons.
        AdminShutdown = 3,
        /// Call disconnected due to receipt of a Call-Clear-Request.
        Request = 4,
    }
}

wire_enum! {
    /// Bearer Type of Outgoing-Call-Request and Incoming-Call-Request
    /// (RFC 2637 sections 2.7, 2.9).
    pub enum BearerType: u32 {
        /// Call to be placed on an analog channel.
        Analog = 1,
        /// Call to be placed on a digital channel.
        Digital = 2,
        /// Call can be placed on any type of channel.
        Any = 3,
    }
}

wire_enum! {
    /// Framing Type of Outgoing-Call-Request and Incoming-Call-Connected
    /// (RFC 2637 sections 2.7, 2.11).
    pub enum FramingType: u32 {
        /// Call uses asynchronous framing.
        Asynchronous = 1,
        /// Call uses synchronous framing.
        Synchronous = 2,
        /// Call can use either type of framing.
        Any = 3,
    }
}

/// Framing Capabilities of Start-Control-Connection-Request and -Reply, a
/// bit set (RFC 2637 section 2.1); unknown bits are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FramingCapabilities(pub u32);

impl FramingCapabilities {
    /// Asynchronous Framing supported.
    pub const ASYNCHRONOUS: Self = Self(1);
    /// Synchronous Framing supported.
    pub const SYNCHRONOUS: Self = Self(2);

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for FramingCapabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Bearer Capabilities of Start-Control-Connection-Request and -Reply, a
/// bit set (RFC 2637 section 2.1); unknown bits are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BearerCapabilities(pub u32);

impl BearerCapabilities {
    /// Analog access supported.
    pub const ANALOG: Self = Self(1);
    /// Digital access supported.
    pub const DIGITAL: Self = Self(2);

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for BearerCapabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A fixed-size string field padded with NULs: host names, vendor strings,
/// phone numbers, subaddresses (64 bytes) and call statistics (128 bytes)
/// of RFC 2637 section 2.
///
/// The raw bytes are kept as received (including anything after the first
/// NUL), so a parsed message emits back to the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NulPadded<const N: usize>([u8; N]);

impl<const N: usize> NulPadded<N> {
    /// The empty string: all NULs.
    pub const EMPTY: Self = Self([0; N]);

    /// A field holding `text`, padded with NULs; refuses text longer than
    /// the field (a text of exactly `N` bytes fills it without a NUL, as
    /// the RFC allows).
    pub fn new(text: &[u8]) -> Result<Self> {
        if text.len() > N {
            return Err(Error::BadLength {
                what: "NUL-padded PPTP string",
                len: text.len(),
                why: "longer than its field",
            });
        }
        Ok(Self::truncated(text))
    }

    /// A field holding as much of `text` as fits, padded with NULs.
    pub fn truncated(text: &[u8]) -> Self {
        let mut raw = [0; N];
        for (dst, src) in raw.iter_mut().zip(text) {
            *dst = *src;
        }
        Self(raw)
    }

    /// The field exactly as it is on the wire.
    pub const fn from_raw(raw: [u8; N]) -> Self {
        Self(raw)
    }

    /// The raw bytes of the field, padding included.
    pub const fn as_raw(&self) -> &[u8; N] {
        &self.0
    }

    /// The text: the bytes before the first NUL (all of them if there is
    /// none).
    pub fn text(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(N);
        self.0.get(..end).unwrap_or(&[])
    }

    /// The text as UTF-8, with invalid sequences replaced.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.text())
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.text().is_empty()
    }
}

impl<const N: usize> Default for NulPadded<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> fmt::Debug for NulPadded<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl<const N: usize> fmt::Display for NulPadded<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// A read/write view of one PPTP control message (RFC 2637 section 2).
///
/// [`Packet::new_checked`] validates the header and the fixed length of the
/// message type once. Accessors never panic, even on an unchecked packet:
/// a field outside the buffer reads as zeros and writes nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps exactly one received message after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the header and the length: the buffer holds exactly one
    /// message whose Length, PPTP Message Type, Magic Cookie, Control
    /// Message Type and Reserved0 are what RFC 2637 section 2 requires.
    pub fn check(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                what: "PPTP control message header",
                need: HEADER_LEN,
                have,
            });
        }
        let len = usize::from(self.length());
        check_length_field(len)?;
        if have < len {
            return Err(Error::Truncated {
                what: WHAT,
                need: len,
                have,
            });
        }
        if have > len {
            return Err(Error::BadLength {
                what: WHAT,
                len: have,
                why: "input is longer than the message's Length field",
            });
        }
        if self.magic_cookie() != MAGIC_COOKIE {
            return Err(Error::BadMagicCookie(self.magic_cookie()));
        }
        match self.message_type() {
            MessageType::ControlMessage => {}
            MessageType::ManagementMessage => {
                return Err(Error::Malformed {
                    what: "PPTP message type",
                    why: "management messages (type 2) are not supported",
                });
            }
            MessageType::Unknown(value) => {
                return Err(Error::Unknown {
                    what: "PPTP message type",
                    value: u32::from(value),
                });
            }
        }
        if self.reserved0() != 0 {
            return Err(Error::Malformed {
                what: "PPTP control message header",
                why: "Reserved0 is not zero",
            });
        }
        let kind = self.control_message_type();
        let Some(expected) = kind.message_len() else {
            return Err(Error::Unknown {
                what: "PPTP control message type",
                value: u32::from(u16::from(kind)),
            });
        };
        if len != expected {
            return Err(Error::BadLength {
                what: kind.name(),
                len,
                why: "not the fixed length of this message type",
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Length field: the whole message, header included.
    pub fn length(&self) -> u16 {
        self.get_u16(field::LENGTH)
    }

    /// The PPTP Message Type field.
    pub fn message_type(&self) -> MessageType {
        self.get_u16(field::MESSAGE_TYPE).into()
    }

    /// The Magic Cookie field.
    pub fn magic_cookie(&self) -> u32 {
        self.get_u32(field::MAGIC_COOKIE)
    }

    /// The Control Message Type field.
    pub fn control_message_type(&self) -> ControlMessageType {
        self.get_u16(field::CONTROL_MESSAGE_TYPE).into()
    }

    /// The Reserved0 field.
    pub fn reserved0(&self) -> u16 {
        self.get_u16(field::RESERVED0)
    }

    /// The message bytes after the header.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    fn get_u8(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn get_u16(&self, range: field::Field) -> u16 {
        u16::from_be_bytes(self.get_array(range))
    }

    fn get_u32(&self, range: field::Field) -> u32 {
        u32::from_be_bytes(self.get_array(range))
    }

    fn get_array<const N: usize>(&self, range: field::Field) -> [u8; N] {
        self.buffer
            .as_ref()
            .get(range)
            .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
            .unwrap_or([0; N])
    }

    fn get_string<const N: usize>(&self, range: field::Field) -> NulPadded<N> {
        NulPadded::from_raw(self.get_array(range))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Length field.
    pub fn set_length(&mut self, value: u16) {
        self.set_bytes(field::LENGTH, &value.to_be_bytes());
    }

    /// Sets the PPTP Message Type field.
    pub fn set_message_type(&mut self, value: MessageType) {
        self.set_bytes(field::MESSAGE_TYPE, &u16::from(value).to_be_bytes());
    }

    /// Sets the Magic Cookie field.
    pub fn set_magic_cookie(&mut self, value: u32) {
        self.set_bytes(field::MAGIC_COOKIE, &value.to_be_bytes());
    }

    /// Sets the Control Message Type field.
    pub fn set_control_message_type(&mut self, value: ControlMessageType) {
        self.set_bytes(field::CONTROL_MESSAGE_TYPE, &u16::from(value).to_be_bytes());
    }

    /// Sets the Reserved0 field.
    pub fn set_reserved0(&mut self, value: u16) {
        self.set_bytes(field::RESERVED0, &value.to_be_bytes());
    }

    fn set_u8(&mut self, at: usize, value: u8) {
        if let Some(byte) = self.buffer.as_mut().get_mut(at) {
            *byte = value;
        }
    }

    fn set_u16(&mut self, range: field::Field, value: u16) {
        self.set_bytes(range, &value.to_be_bytes());
    }

    fn set_u32(&mut self, range: field::Field, value: u32) {
        self.set_bytes(range, &value.to_be_bytes());
    }

    fn set_bytes(&mut self, range: field::Field, value: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(range) {
            for (d, s) in dst.iter_mut().zip(value) {
                *d = *s;
            }
        }
    }
}

/// Checks a Length field against the bounds every message obeys.
fn check_length_field(len: usize) -> Result<()> {
    if len < HEADER_LEN {
        return Err(Error::BadLength {
            what: WHAT,
            len,
            why: "below the 12-byte header",
        });
    }
    if len > MAX_MESSAGE_LEN {
        return Err(Error::BadLength {
            what: WHAT,
            len,
            why: "above the longest control message (220 bytes)",
        });
    }
    Ok(())
}

/// How each message body is read and written; the header is handled by
/// [`ControlMessage`].
trait Body: Sized {
    const TYPE: ControlMessageType;
    /// Reads the body of a packet that passed [`Packet::check`].
    fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Self;
    /// Writes the body into a zeroed buffer of the right length.
    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>);
}

/// Start-Control-Connection-Request (RFC 2637 section 2.1): the first
/// message of a control connection, sent by the side that opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StartControlConnectionRequest {
    /// Version of the protocol the sender wishes to use: 0x0100 (1.0).
    pub protocol_version: u16,
    pub framing_capabilities: FramingCapabilities,
    pub bearer_capabilities: BearerCapabilities,
    /// Total number of PPP sessions a PAC supports (0 from a PNS).
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: NulPadded<STRING_LEN>,
    pub vendor_string: NulPadded<STRING_LEN>,
}

impl Body for StartControlConnectionRequest {
    const TYPE: ControlMessageType = ControlMessageType::StartControlConnectionRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::start::*;
        Self {
            protocol_version: p.get_u16(PROTOCOL_VERSION),
            framing_capabilities: FramingCapabilities(p.get_u32(FRAMING_CAPABILITIES)),
            bearer_capabilities: BearerCapabilities(p.get_u32(BEARER_CAPABILITIES)),
            maximum_channels: p.get_u16(MAXIMUM_CHANNELS),
            firmware_revision: p.get_u16(FIRMWARE_REVISION),
            host_name: p.get_string(HOST_NAME),
            vendor_string: p.get_string(VENDOR_STRING),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::start::*;
        p.set_u16(PROTOCOL_VERSION, self.protocol_version);
        p.set_u32(FRAMING_CAPABILITIES, self.framing_capabilities.0);
        p.set_u32(BEARER_CAPABILITIES, self.bearer_capabilities.0);
        p.set_u16(MAXIMUM_CHANNELS, self.maximum_channels);
        p.set_u16(FIRMWARE_REVISION, self.firmware_revision);
        p.set_bytes(HOST_NAME, self.host_name.as_raw());
        p.set_bytes(VENDOR_STRING, self.vendor_string.as_raw());
    }
}

/// Start-Control-Connection-Reply (RFC 2637 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StartControlConnectionReply {
    pub protocol_version: u16,
    pub result_code: StartResult,
    pub error_code: ErrorCode,
    pub framing_capabilities: FramingCapabilities,
    pub bearer_capabilities: BearerCapabilities,
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: NulPadded<STRING_LEN>,
    pub vendor_string: NulPadded<STRING_LEN>,
}

impl Body for StartControlConnectionReply {
    const TYPE: ControlMessageType = ControlMessageType::StartControlConnectionReply;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::start::*;
        Self {
            protocol_version: p.get_u16(PROTOCOL_VERSION),
            result_code: p.get_u8(RESULT_CODE).into(),
            error_code: p.get_u8(ERROR_CODE).into(),
            framing_capabilities: FramingCapabilities(p.get_u32(FRAMING_CAPABILITIES)),
            bearer_capabilities: BearerCapabilities(p.get_u32(BEARER_CAPABILITIES)),
            maximum_channels: p.get_u16(MAXIMUM_CHANNELS),
            firmware_revision: p.get_u16(FIRMWARE_REVISION),
            host_name: p.get_string(HOST_NAME),
            vendor_string: p.get_string(VENDOR_STRING),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::start::*;
        p.set_u16(PROTOCOL_VERSION, self.protocol_version);
        p.set_u8(RESULT_CODE, self.result_code.into());
        p.set_u8(ERROR_CODE, self.error_code.into());
        p.set_u32(FRAMING_CAPABILITIES, self.framing_capabilities.0);
        p.set_u32(BEARER_CAPABILITIES, self.bearer_capabilities.0);
        p.set_u16(MAXIMUM_CHANNELS, self.maximum_channels);
        p.set_u16(FIRMWARE_REVISION, self.firmware_revision);
        p.set_bytes(HOST_NAME, self.host_name.as_raw());
        p.set_bytes(VENDOR_STRING, self.vendor_string.as_raw());
    }
}

/// Stop-Control-Connection-Request (RFC 2637 section 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StopControlConnectionRequest {
    pub reason: StopReason,
}

impl Body for StopControlConnectionRequest {
    const TYPE: ControlMessageType = ControlMessageType::StopControlConnectionRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            reason: p.get_u8(field::stop::REASON_OR_RESULT).into(),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_u8(field::stop::REASON_OR_RESULT, self.reason.into());
    }
}

/// Stop-Control-Connection-Reply (RFC 2637 section 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StopControlConnectionReply {
    pub result_code: StopResult,
    pub error_code: ErrorCode,
}

impl Body for StopControlConnectionReply {
    const TYPE: ControlMessageType = ControlMessageType::StopControlConnectionReply;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            result_code: p.get_u8(field::stop::REASON_OR_RESULT).into(),
            error_code: p.get_u8(field::stop::ERROR_CODE).into(),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_u8(field::stop::REASON_OR_RESULT, self.result_code.into());
        p.set_u8(field::stop::ERROR_CODE, self.error_code.into());
    }
}

/// Echo-Request (RFC 2637 section 2.5): the keep-alive of the control
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EchoRequest {
    /// Chosen by the sender, returned in the Echo-Reply.
    pub identifier: u32,
}

impl Body for EchoRequest {
    const TYPE: ControlMessageType = ControlMessageType::EchoRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            identifier: p.get_u32(field::echo::IDENTIFIER),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_u32(field::echo::IDENTIFIER, self.identifier);
    }
}

/// Echo-Reply (RFC 2637 section 2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EchoReply {
    /// The identifier of the Echo-Request answered.
    pub identifier: u32,
    pub result_code: EchoResult,
    pub error_code: ErrorCode,
}

impl Body for EchoReply {
    const TYPE: ControlMessageType = ControlMessageType::EchoReply;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::echo::*;
        Self {
            identifier: p.get_u32(IDENTIFIER),
            result_code: p.get_u8(RESULT_CODE).into(),
            error_code: p.get_u8(ERROR_CODE).into(),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::echo::*;
        p.set_u32(IDENTIFIER, self.identifier);
        p.set_u8(RESULT_CODE, self.result_code.into());
        p.set_u8(ERROR_CODE, self.error_code.into());
    }
}

/// Outgoing-Call-Request (RFC 2637 section 2.7): the PNS (a remote-access
/// client) asks the PAC for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutgoingCallRequest {
    /// The sender's (PNS's) Call ID: the PAC puts it in the GRE key of
    /// every packet it sends on this call.
    pub call_id: u16,
    pub call_serial_number: u16,
    pub minimum_bps: u32,
    pub maximum_bps: u32,
    pub bearer_type: BearerType,
    pub framing_type: FramingType,
    /// How many GRE data packets the PNS can buffer for this call.
    pub packet_receive_window_size: u16,
    /// The PNS's packet processing delay, in 1/10 seconds.
    pub packet_processing_delay: u16,
    /// Number of valid digits in the phone number (kept as received).
    pub phone_number_length: u16,
    pub phone_number: NulPadded<STRING_LEN>,
    pub subaddress: NulPadded<STRING_LEN>,
}

impl Body for OutgoingCallRequest {
    const TYPE: ControlMessageType = ControlMessageType::OutgoingCallRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::ocrq::*;
        Self {
            call_id: p.get_u16(CALL_ID),
            call_serial_number: p.get_u16(CALL_SERIAL_NUMBER),
            minimum_bps: p.get_u32(MINIMUM_BPS),
            maximum_bps: p.get_u32(MAXIMUM_BPS),
            bearer_type: p.get_u32(BEARER_TYPE).into(),
            framing_type: p.get_u32(FRAMING_TYPE).into(),
            packet_receive_window_size: p.get_u16(PACKET_RECV_WINDOW_SIZE),
            packet_processing_delay: p.get_u16(PACKET_PROCESSING_DELAY),
            phone_number_length: p.get_u16(PHONE_NUMBER_LENGTH),
            phone_number: p.get_string(PHONE_NUMBER),
            subaddress: p.get_string(SUBADDRESS),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::ocrq::*;
        p.set_u16(CALL_ID, self.call_id);
        p.set_u16(CALL_SERIAL_NUMBER, self.call_serial_number);
        p.set_u32(MINIMUM_BPS, self.minimum_bps);
        p.set_u32(MAXIMUM_BPS, self.maximum_bps);
        p.set_u32(BEARER_TYPE, self.bearer_type.into());
        p.set_u32(FRAMING_TYPE, self.framing_type.into());
        p.set_u16(PACKET_RECV_WINDOW_SIZE, self.packet_receive_window_size);
        p.set_u16(PACKET_PROCESSING_DELAY, self.packet_processing_delay);
        p.set_u16(PHONE_NUMBER_LENGTH, self.phone_number_length);
        p.set_bytes(PHONE_NUMBER, self.phone_number.as_raw());
        p.set_bytes(SUBADDRESS, self.subaddress.as_raw());
    }
}

/// Outgoing-Call-Reply (RFC 2637 section 2.8): the PAC's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutgoingCallReply {
    /// The sender's (PAC's) Call ID for this call.
    pub call_id: u16,
    /// The Call ID of the Outgoing-Call-Request answered.
    pub peer_call_id: u16,
    pub result_code: OutgoingCallResult,
    pub error_code: ErrorCode,
    pub cause_code: u16,
    pub connect_speed: u32,
    /// How many GRE data packets the PAC can buffer for this call.
    pub packet_receive_window_size: u16,
    /// The PAC's packet processing delay, in 1/10 seconds.
    pub packet_processing_delay: u16,
    pub physical_channel_id: u32,
}

impl Body for OutgoingCallReply {
    const TYPE: ControlMessageType = ControlMessageType::OutgoingCallReply;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::ocrp::*;
        Self {
            call_id: p.get_u16(CALL_ID),
            peer_call_id: p.get_u16(PEER_CALL_ID),
            result_code: p.get_u8(RESULT_CODE).into(),
            error_code: p.get_u8(ERROR_CODE).into(),
            cause_code: p.get_u16(CAUSE_CODE),
            connect_speed: p.get_u32(CONNECT_SPEED),
            packet_receive_window_size: p.get_u16(PACKET_RECV_WINDOW_SIZE),
            packet_processing_delay: p.get_u16(PACKET_PROCESSING_DELAY),
            physical_channel_id: p.get_u32(PHYSICAL_CHANNEL_ID),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::ocrp::*;
        p.set_u16(CALL_ID, self.call_id);
        p.set_u16(PEER_CALL_ID, self.peer_call_id);
        p.set_u8(RESULT_CODE, self.result_code.into());
        p.set_u8(ERROR_CODE, self.error_code.into());
        p.set_u16(CAUSE_CODE, self.cause_code);
        p.set_u32(CONNECT_SPEED, self.connect_speed);
        p.set_u16(PACKET_RECV_WINDOW_SIZE, self.packet_receive_window_size);
        p.set_u16(PACKET_PROCESSING_DELAY, self.packet_processing_delay);
        p.set_u32(PHYSICAL_CHANNEL_ID, self.physical_channel_id);
    }
}

/// Incoming-Call-Request (RFC 2637 section 2.9): a PAC announces a call
/// it received. This concentrator refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IncomingCallRequest {
    pub call_id: u16,
    pub call_serial_number: u16,
    pub bearer_type: BearerType,
    pub physical_channel_id: u32,
    pub dialed_number_length: u16,
    pub dialing_number_length: u16,
    pub dialed_number: NulPadded<STRING_LEN>,
    pub dialing_number: NulPadded<STRING_LEN>,
    pub subaddress: NulPadded<STRING_LEN>,
}

impl Body for IncomingCallRequest {
    const TYPE: ControlMessageType = ControlMessageType::IncomingCallRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::icrq::*;
        Self {
            call_id: p.get_u16(CALL_ID),
            call_serial_number: p.get_u16(CALL_SERIAL_NUMBER),
            bearer_type: p.get_u32(BEARER_TYPE).into(),
            physical_channel_id: p.get_u32(PHYSICAL_CHANNEL_ID),
            dialed_number_length: p.get_u16(DIALED_NUMBER_LENGTH),
            dialing_number_length: p.get_u16(DIALING_NUMBER_LENGTH),
            dialed_number: p.get_string(DIALED_NUMBER),
            dialing_number: p.get_string(DIALING_NUMBER),
            subaddress: p.get_string(SUBADDRESS),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::icrq::*;
        p.set_u16(CALL_ID, self.call_id);
        p.set_u16(CALL_SERIAL_NUMBER, self.call_serial_number);
        p.set_u32(BEARER_TYPE, self.bearer_type.into());
        p.set_u32(PHYSICAL_CHANNEL_ID, self.physical_channel_id);
        p.set_u16(DIALED_NUMBER_LENGTH, self.dialed_number_length);
        p.set_u16(DIALING_NUMBER_LENGTH, self.dialing_number_length);
        p.set_bytes(DIALED_NUMBER, self.dialed_number.as_raw());
        p.set_bytes(DIALING_NUMBER, self.dialing_number.as_raw());
        p.set_bytes(SUBADDRESS, self.subaddress.as_raw());
    }
}

/// Incoming-Call-Reply (RFC 2637 section 2.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IncomingCallReply {
    pub call_id: u16,
    /// The Call ID of the Incoming-Call-Request answered.
    pub peer_call_id: u16,
    pub result_code: IncomingCallResult,
    pub error_code: ErrorCode,
    pub packet_receive_window_size: u16,
    pub packet_transmit_delay: u16,
}

impl Body for IncomingCallReply {
    const TYPE: ControlMessageType = ControlMessageType::IncomingCallReply;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::icrp::*;
        Self {
            call_id: p.get_u16(CALL_ID),
            peer_call_id: p.get_u16(PEER_CALL_ID),
            result_code: p.get_u8(RESULT_CODE).into(),
            error_code: p.get_u8(ERROR_CODE).into(),
            packet_receive_window_size: p.get_u16(PACKET_RECV_WINDOW_SIZE),
            packet_transmit_delay: p.get_u16(PACKET_TRANSMIT_DELAY),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::icrp::*;
        p.set_u16(CALL_ID, self.call_id);
        p.set_u16(PEER_CALL_ID, self.peer_call_id);
        p.set_u8(RESULT_CODE, self.result_code.into());
        p.set_u8(ERROR_CODE, self.error_code.into());
        p.set_u16(PACKET_RECV_WINDOW_SIZE, self.packet_receive_window_size);
        p.set_u16(PACKET_TRANSMIT_DELAY, self.packet_transmit_delay);
    }
}

/// Incoming-Call-Connected (RFC 2637 section 2.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IncomingCallConnected {
    pub peer_call_id: u16,
    pub connect_speed: u32,
    pub packet_receive_window_size: u16,
    pub packet_transmit_delay: u16,
    pub framing_type: FramingType,
}

impl Body for IncomingCallConnected {
    const TYPE: ControlMessageType = ControlMessageType::IncomingCallConnected;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::iccn::*;
        Self {
            peer_call_id: p.get_u16(PEER_CALL_ID),
            connect_speed: p.get_u32(CONNECT_SPEED),
            packet_receive_window_size: p.get_u16(PACKET_RECV_WINDOW_SIZE),
            packet_transmit_delay: p.get_u16(PACKET_TRANSMIT_DELAY),
            framing_type: p.get_u32(FRAMING_TYPE).into(),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::iccn::*;
        p.set_u16(PEER_CALL_ID, self.peer_call_id);
        p.set_u32(CONNECT_SPEED, self.connect_speed);
        p.set_u16(PACKET_RECV_WINDOW_SIZE, self.packet_receive_window_size);
        p.set_u16(PACKET_TRANSMIT_DELAY, self.packet_transmit_delay);
        p.set_u32(FRAMING_TYPE, self.framing_type.into());
    }
}

/// Call-Clear-Request (RFC 2637 section 2.12): the PNS hangs up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallClearRequest {
    /// The PNS's own Call ID for the call (not the PAC's: the PNS may not
    /// know that one yet when it aborts a call being set up).
    pub call_id: u16,
}

impl Body for CallClearRequest {
    const TYPE: ControlMessageType = ControlMessageType::CallClearRequest;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            call_id: p.get_u16(field::ccrq::CALL_ID),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_u16(field::ccrq::CALL_ID, self.call_id);
    }
}

/// Call-Disconnect-Notify (RFC 2637 section 2.13): the PAC reports that a
/// call ended, because of a Call-Clear-Request or for another reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallDisconnectNotify {
    /// Which call ended; see the control connection for which side's Call
    /// ID goes here.
    pub call_id: u16,
    pub result_code: DisconnectResult,
    pub error_code: ErrorCode,
    pub cause_code: u16,
    /// Vendor-specific call statistics, text padded with NULs.
    pub call_statistics: NulPadded<CALL_STATISTICS_LEN>,
}

impl Body for CallDisconnectNotify {
    const TYPE: ControlMessageType = ControlMessageType::CallDisconnectNotify;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::cdn::*;
        Self {
            call_id: p.get_u16(CALL_ID),
            result_code: p.get_u8(RESULT_CODE).into(),
            error_code: p.get_u8(ERROR_CODE).into(),
            cause_code: p.get_u16(CAUSE_CODE),
            call_statistics: p.get_string(CALL_STATISTICS),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::cdn::*;
        p.set_u16(CALL_ID, self.call_id);
        p.set_u8(RESULT_CODE, self.result_code.into());
        p.set_u8(ERROR_CODE, self.error_code.into());
        p.set_u16(CAUSE_CODE, self.cause_code);
        p.set_bytes(CALL_STATISTICS, self.call_statistics.as_raw());
    }
}

/// WAN-Error-Notify (RFC 2637 section 2.14): cumulative error counters a
/// PAC reports for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WanErrorNotify {
    /// The receiver's (PNS's) Call ID.
    pub peer_call_id: u16,
    pub crc_errors: u32,
    pub framing_errors: u32,
    pub hardware_overruns: u32,
    pub buffer_overruns: u32,
    pub time_out_errors: u32,
    pub alignment_errors: u32,
}

impl Body for WanErrorNotify {
    const TYPE: ControlMessageType = ControlMessageType::WanErrorNotify;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::wen::*;
        Self {
            peer_call_id: p.get_u16(PEER_CALL_ID),
            crc_errors: p.get_u32(CRC_ERRORS),
            framing_errors: p.get_u32(FRAMING_ERRORS),
            hardware_overruns: p.get_u32(HARDWARE_OVERRUNS),
            buffer_overruns: p.get_u32(BUFFER_OVERRUNS),
            time_out_errors: p.get_u32(TIME_OUT_ERRORS),
            alignment_errors: p.get_u32(ALIGNMENT_ERRORS),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::wen::*;
        p.set_u16(PEER_CALL_ID, self.peer_call_id);
        p.set_u32(CRC_ERRORS, self.crc_errors);
        p.set_u32(FRAMING_ERRORS, self.framing_errors);
        p.set_u32(HARDWARE_OVERRUNS, self.hardware_overruns);
        p.set_u32(BUFFER_OVERRUNS, self.buffer_overruns);
        p.set_u32(TIME_OUT_ERRORS, self.time_out_errors);
        p.set_u32(ALIGNMENT_ERRORS, self.alignment_errors);
    }
}

/// Set-Link-Info (RFC 2637 section 2.15): the PNS passes the PPP
/// async-control-character maps it negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetLinkInfo {
    /// The receiver's (PAC's) Call ID.
    pub peer_call_id: u16,
    pub send_accm: u32,
    pub receive_accm: u32,
}

impl Body for SetLinkInfo {
    const TYPE: ControlMessageType = ControlMessageType::SetLinkInfo;

    fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        use field::sli::*;
        Self {
            peer_call_id: p.get_u16(PEER_CALL_ID),
            send_accm: p.get_u32(SEND_ACCM),
            receive_accm: p.get_u32(RECEIVE_ACCM),
        }
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        use field::sli::*;
        p.set_u16(PEER_CALL_ID, self.peer_call_id);
        p.set_u32(SEND_ACCM, self.send_accm);
        p.set_u32(RECEIVE_ACCM, self.receive_accm);
    }
}

/// Any PPTP control message (RFC 2637 section 2), parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlMessage {
    StartControlConnectionRequest(StartControlConnectionRequest),
    StartControlConnectionReply(StartControlConnectionReply),
    StopControlConnectionRequest(StopControlConnectionRequest),
    StopControlConnectionReply(StopControlConnectionReply),
    EchoRequest(EchoRequest),
    EchoReply(EchoReply),
    OutgoingCallRequest(OutgoingCallRequest),
    OutgoingCallReply(OutgoingCallReply),
    IncomingCallRequest(IncomingCallRequest),
    IncomingCallReply(IncomingCallReply),
    IncomingCallConnected(IncomingCallConnected),
    CallClearRequest(CallClearRequest),
    CallDisconnectNotify(CallDisconnectNotify),
    WanErrorNotify(WanErrorNotify),
    SetLinkInfo(SetLinkInfo),
}

/// Runs `$body` with `$m` bound to the message inside any variant.
macro_rules! each_variant {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            ControlMessage::StartControlConnectionRequest($m) => $body,
            ControlMessage::StartControlConnectionReply($m) => $body,
            ControlMessage::StopControlConnectionRequest($m) => $body,
            ControlMessage::StopControlConnectionReply($m) => $body,
            ControlMessage::EchoRequest($m) => $body,
            ControlMessage::EchoReply($m) => $body,
            ControlMessage::OutgoingCallRequest($m) => $body,
            ControlMessage::OutgoingCallReply($m) => $body,
            ControlMessage::IncomingCallRequest($m) => $body,
            ControlMessage::IncomingCallReply($m) => $body,
            ControlMessage::IncomingCallConnected($m) => $body,
            ControlMessage::CallClearRequest($m) => $body,
            ControlMessage::CallDisconnectNotify($m) => $body,
            ControlMessage::WanErrorNotify($m) => $body,
            ControlMessage::SetLinkInfo($m) => $body,
        }
    };
}

macro_rules! impl_from_body {
    ($($name:ident),+) => {$(
        impl From<$name> for ControlMessage {
            fn from(message: $name) -> Self {
                ControlMessage::$name(message)
            }
        }
    )+};
}

impl_from_body!(
    StartControlConnectionRequest,
    StartControlConnectionReply,
    StopControlConnectionRequest,
    StopControlConnectionReply,
    EchoRequest,
    EchoReply,
    OutgoingCallRequest,
    OutgoingCallReply,
    IncomingCallRequest,
    IncomingCallReply,
    IncomingCallConnected,
    CallClearRequest,
    CallDisconnectNotify,
    WanErrorNotify,
    SetLinkInfo
);

impl ControlMessage {
    /// Parses exactly one message (as [`ControlFramer`] yields them).
    pub fn parse(bytes: &[u8]) -> Result<ControlMessage> {
        Self::parse_packet(&Packet::new_checked(bytes)?)
    }

    /// Parses a packet view; the packet is checked (again) first.
    pub fn parse_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<ControlMessage> {
        packet.check()?;
        fn body<B: Body + Into<ControlMessage>, T: AsRef<[u8]>>(
            packet: &Packet<T>,
        ) -> ControlMessage {
            B::parse(packet).into()
        }
        use ControlMessageType as K;
        Ok(match packet.control_message_type() {
            K::StartControlConnectionRequest => body::<StartControlConnectionRequest, T>(packet),
            K::StartControlConnectionReply => body::<StartControlConnectionReply, T>(packet),
            K::StopControlConnectionRequest => body::<StopControlConnectionRequest, T>(packet),
            K::StopControlConnectionReply => body::<StopControlConnectionReply, T>(packet),
            K::EchoRequest => body::<EchoRequest, T>(packet),
            K::EchoReply => body::<EchoReply, T>(packet),
            K::OutgoingCallRequest => body::<OutgoingCallRequest, T>(packet),
            K::OutgoingCallReply => body::<OutgoingCallReply, T>(packet),
            K::IncomingCallRequest => body::<IncomingCallRequest, T>(packet),
            K::IncomingCallReply => body::<IncomingCallReply, T>(packet),
            K::IncomingCallConnected => body::<IncomingCallConnected, T>(packet),
            K::CallClearRequest => body::<CallClearRequest, T>(packet),
            K::CallDisconnectNotify => body::<CallDisconnectNotify, T>(packet),
            K::WanErrorNotify => body::<WanErrorNotify, T>(packet),
            K::SetLinkInfo => body::<SetLinkInfo, T>(packet),
            K::Unknown(value) => {
                // `check` refuses unknown types; kept for completeness.
                return Err(Error::Unknown {
                    what: "PPTP control message type",
                    value: u32::from(value),
                });
            }
        })
    }

    /// The Control Message Type of this message.
    pub fn control_message_type(&self) -> ControlMessageType {
        fn kind<B: Body>(_: &B) -> ControlMessageType {
            B::TYPE
        }
        each_variant!(self, m => kind(m))
    }

    /// The length of the message on the wire (fixed by its type).
    pub fn buffer_len(&self) -> usize {
        self.control_message_type().message_len().unwrap_or(0)
    }

    /// Writes the message into the first [`ControlMessage::buffer_len`]
    /// bytes of `buf` (reserved fields as zeros) and returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let have = buf.len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall {
                what: self.control_message_type().name(),
                need: len,
                have,
            });
        };
        out.fill(0);
        let mut packet = Packet::new_unchecked(out);
        // Every length is at most 220: the conversion cannot fail.
        packet.set_length(u16::try_from(len).unwrap_or(u16::MAX));
        packet.set_message_type(MessageType::ControlMessage);
        packet.set_magic_cookie(MAGIC_COOKIE);
        packet.set_control_message_type(self.control_message_type());
        packet.set_reserved0(0);
        each_variant!(self, m => m.emit(&mut packet));
        Ok(len)
    }

    /// The message as a freshly allocated buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0; self.buffer_len()];
        // The buffer has exactly the right length, so emit cannot fail.
        let _ = self.emit(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests;
