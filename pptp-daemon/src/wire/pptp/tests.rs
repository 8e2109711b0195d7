//! Tests of the PPTP control message codec. The "known bytes" are written
//! by hand from the layouts of RFC 2637 section 2 (with values real clients
//! send), not produced by the emitter under test.

use super::*;

/// Big-endian helpers to write messages by hand.
fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// `text` padded with NULs to `n` bytes.
fn pad(text: &str, n: usize) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.resize(n, 0);
    v
}

/// Header: Length, PPTP Message Type 1, Magic Cookie, Control Message Type,
/// Reserved0 (RFC 2637 section 1.4).
fn header(len: u16, control_type: u16) -> Vec<u8> {
    [
        &be16(len)[..],
        &be16(1),
        &[0x1a, 0x2b, 0x3c, 0x4d],
        &be16(control_type),
        &[0, 0],
    ]
    .concat()
}

/// Start-Control-Connection-Request as Windows sends it: version 1.0,
/// asynchronous framing, analog bearer, no channels, firmware 2600, no host
/// name, vendor "Microsoft Windows NT".
pub(crate) fn sccrq_windows() -> Vec<u8> {
    [
        header(156, 1),
        be16(0x0100).to_vec(),
        vec![0, 0], // Reserved1
        be32(1).to_vec(),
        be32(1).to_vec(),
        be16(0).to_vec(),
        be16(2600).to_vec(),
        pad("", 64),
        pad("Microsoft Windows NT", 64),
    ]
    .concat()
}

/// Start-Control-Connection-Reply of a server: success, both framings,
/// both bearers, 10000 channels, firmware 1, host "vpn-gw", vendor "linux".
pub(crate) fn sccrp_server() -> Vec<u8> {
    [
        header(156, 2),
        be16(0x0100).to_vec(),
        vec![1, 0], // Result Code, Error Code
        be32(3).to_vec(),
        be32(3).to_vec(),
        be16(10000).to_vec(),
        be16(1).to_vec(),
        pad("vpn-gw", 64),
        pad("linux", 64),
    ]
    .concat()
}

/// Stop-Control-Connection-Request, reason 3 (Stop-Local-Shutdown).
pub(crate) fn stopccrq() -> Vec<u8> {
    [header(16, 3), vec![3, 0, 0, 0]].concat()
}

/// Stop-Control-Connection-Reply, result 1 (OK).
pub(crate) fn stopccrp() -> Vec<u8> {
    [header(16, 4), vec![1, 0, 0, 0]].concat()
}

/// Echo-Request, identifier 0x0000002a.
pub(crate) fn echo_request() -> Vec<u8> {
    [header(16, 5), be32(42).to_vec()].concat()
}

/// Echo-Reply to identifier 0x0000002a, result 1 (OK).
pub(crate) fn echo_reply() -> Vec<u8> {
    [header(20, 6), be32(42).to_vec(), vec![1, 0, 0, 0]].concat()
}

/// Outgoing-Call-Request as Windows sends it: call ID 0xc9a3, serial 3,
/// 300 to 100 000 000 bps, any bearer, any framing, window 64, no delay,
/// no phone number.
pub(crate) fn ocrq_windows() -> Vec<u8> {
    [
        header(168, 7),
        be16(0xc9a3).to_vec(),
        be16(3).to_vec(),
        be32(300).to_vec(),
        be32(100_000_000).to_vec(),
        be32(3).to_vec(),
        be32(3).to_vec(),
        be16(64).to_vec(),
        be16(0).to_vec(),
        be16(0).to_vec(),
        vec![0, 0], // Reserved1
        pad("", 64),
        pad("", 64),
    ]
    .concat()
}

/// Outgoing-Call-Reply: our call ID 0x1f40, the peer's 0xc9a3, connected,
/// 100 Mbit/s, window 64, delay 0, channel 0.
pub(crate) fn ocrp() -> Vec<u8> {
    [
        header(32, 8),
        be16(0x1f40).to_vec(),
        be16(0xc9a3).to_vec(),
        vec![1, 0],
        be16(0).to_vec(),
        be32(100_000_000).to_vec(),
        be16(64).to_vec(),
        be16(0).to_vec(),
        be32(0).to_vec(),
    ]
    .concat()
}

/// Incoming-Call-Request: call ID 0x0102, serial 9, analog bearer,
/// channel 5, dialed "5551234", dialing "5550000", no subaddress.
pub(crate) fn icrq() -> Vec<u8> {
    [
        header(220, 9),
        be16(0x0102).to_vec(),
        be16(9).to_vec(),
        be32(1).to_vec(),
        be32(5).to_vec(),
        be16(7).to_vec(),
        be16(7).to_vec(),
        pad("5551234", 64),
        pad("5550000", 64),
        pad("", 64),
    ]
    .concat()
}

/// Incoming-Call-Reply refusing call 0x0102 (result 3, Do Not Accept).
pub(crate) fn icrp() -> Vec<u8> {
    [
        header(24, 10),
        be16(0).to_vec(),
        be16(0x0102).to_vec(),
        vec![3, 0],
        be16(0).to_vec(),
        be16(0).to_vec(),
        vec![0, 0],
    ]
    .concat()
}

/// Incoming-Call-Connected for peer call 0x0304 at 64 kbit/s, window 16,
/// delay 2, synchronous framing.
pub(crate) fn iccn() -> Vec<u8> {
    [
        header(28, 11),
        be16(0x0304).to_vec(),
        vec![0, 0],
        be32(64_000).to_vec(),
        be16(16).to_vec(),
        be16(2).to_vec(),
        be32(2).to_vec(),
    ]
    .concat()
}

/// Call-Clear-Request for the PNS's call 0xc9a3.
pub(crate) fn ccrq() -> Vec<u8> {
    [header(16, 12), be16(0xc9a3).to_vec(), vec![0, 0]].concat()
}

/// Call-Disconnect-Notify for call 0xc9a3, result 4 (Request), with a
/// statistics text.
pub(crate) fn cdn() -> Vec<u8> {
    [
        header(148, 13),
        be16(0xc9a3).to_vec(),
        vec![4, 0],
        be16(0).to_vec(),
        vec![0, 0],
        pad("rx 10 tx 12", 128),
    ]
    .concat()
}

/// WAN-Error-Notify for call 0xc9a3 with counters 1 to 6.
pub(crate) fn wen() -> Vec<u8> {
    [
        header(40, 14),
        be16(0xc9a3).to_vec(),
        vec![0, 0],
        be32(1).to_vec(),
        be32(2).to_vec(),
        be32(3).to_vec(),
        be32(4).to_vec(),
        be32(5).to_vec(),
        be32(6).to_vec(),
    ]
    .concat()
}

/// Set-Link-Info as Windows sends it after the call connects: the PAC's
/// call ID 0x1f40, both ACCMs 0xffffffff.
pub(crate) fn sli_windows() -> Vec<u8> {
    [
        header(24, 15),
        be16(0x1f40).to_vec(),
        vec![0, 0],
        be32(0xffff_ffff).to_vec(),
        be32(0xffff_ffff).to_vec(),
    ]
    .concat()
}

fn string(text: &str) -> NulPadded<STRING_LEN> {
    NulPadded::new(text.as_bytes()).unwrap()
}

/// Every hand-written message with the representation it must parse to.
fn known() -> Vec<(Vec<u8>, ControlMessage)> {
    vec![
        (
            sccrq_windows(),
            StartControlConnectionRequest {
                protocol_version: 0x0100,
                framing_capabilities: FramingCapabilities::ASYNCHRONOUS,
                bearer_capabilities: BearerCapabilities::ANALOG,
                maximum_channels: 0,
                firmware_revision: 2600,
                host_name: NulPadded::EMPTY,
                vendor_string: string("Microsoft Windows NT"),
            }
            .into(),
        ),
        (
            sccrp_server(),
            StartControlConnectionReply {
                protocol_version: 0x0100,
                result_code: StartResult::Success,
                error_code: ErrorCode::None,
                framing_capabilities: FramingCapabilities::ASYNCHRONOUS
                    | FramingCapabilities::SYNCHRONOUS,
                bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
                maximum_channels: 10000,
                firmware_revision: 1,
                host_name: string("vpn-gw"),
                vendor_string: string("linux"),
            }
            .into(),
        ),
        (
            stopccrq(),
            StopControlConnectionRequest {
                reason: StopReason::StopLocalShutdown,
            }
            .into(),
        ),
        (
            stopccrp(),
            StopControlConnectionReply {
                result_code: StopResult::Ok,
                error_code: ErrorCode::None,
            }
            .into(),
        ),
        (echo_request(), EchoRequest { identifier: 42 }.into()),
        (
            echo_reply(),
            EchoReply {
                identifier: 42,
                result_code: EchoResult::Ok,
                error_code: ErrorCode::None,
            }
            .into(),
        ),
        (
            ocrq_windows(),
            OutgoingCallRequest {
                call_id: 0xc9a3,
                call_serial_number: 3,
                minimum_bps: 300,
                maximum_bps: 100_000_000,
                bearer_type: BearerType::Any,
                framing_type: FramingType::Any,
                packet_receive_window_size: 64,
                packet_processing_delay: 0,
                phone_number_length: 0,
                phone_number: NulPadded::EMPTY,
                subaddress: NulPadded::EMPTY,
            }
            .into(),
        ),
        (
            ocrp(),
            OutgoingCallReply {
                call_id: 0x1f40,
                peer_call_id: 0xc9a3,
                result_code: OutgoingCallResult::Connected,
                error_code: ErrorCode::None,
                cause_code: 0,
                connect_speed: 100_000_000,
                packet_receive_window_size: 64,
                packet_processing_delay: 0,
                physical_channel_id: 0,
            }
            .into(),
        ),
        (
            icrq(),
            IncomingCallRequest {
                call_id: 0x0102,
                call_serial_number: 9,
                bearer_type: BearerType::Analog,
                physical_channel_id: 5,
                dialed_number_length: 7,
                dialing_number_length: 7,
                dialed_number: string("5551234"),
                dialing_number: string("5550000"),
                subaddress: NulPadded::EMPTY,
            }
            .into(),
        ),
        (
            icrp(),
            IncomingCallReply {
                call_id: 0,
                peer_call_id: 0x0102,
                result_code: IncomingCallResult::DoNotAccept,
                error_code: ErrorCode::None,
                packet_receive_window_size: 0,
                packet_transmit_delay: 0,
            }
            .into(),
        ),
        (
            iccn(),
            IncomingCallConnected {
                peer_call_id: 0x0304,
                connect_speed: 64_000,
                packet_receive_window_size: 16,
                packet_transmit_delay: 2,
                framing_type: FramingType::Synchronous,
            }
            .into(),
        ),
        (ccrq(), CallClearRequest { call_id: 0xc9a3 }.into()),
        (
            cdn(),
            CallDisconnectNotify {
                call_id: 0xc9a3,
                result_code: DisconnectResult::Request,
                error_code: ErrorCode::None,
                cause_code: 0,
                call_statistics: NulPadded::new(b"rx 10 tx 12").unwrap(),
            }
            .into(),
        ),
        (
            wen(),
            WanErrorNotify {
                peer_call_id: 0xc9a3,
                crc_errors: 1,
                framing_errors: 2,
                hardware_overruns: 3,
                buffer_overruns: 4,
                time_out_errors: 5,
                alignment_errors: 6,
            }
            .into(),
        ),
        (
            sli_windows(),
            SetLinkInfo {
                peer_call_id: 0x1f40,
                send_accm: 0xffff_ffff,
                receive_accm: 0xffff_ffff,
            }
            .into(),
        ),
    ]
}

#[test]
fn every_message_type_is_covered_with_its_rfc_length() {
    let known = known();
    assert_eq!(known.len(), 15);
    for (i, (bytes, message)) in known.iter().enumerate() {
        let kind = ControlMessageType::from(i as u16 + 1);
        assert_eq!(message.control_message_type(), kind);
        assert_eq!(Some(bytes.len()), kind.message_len(), "{kind}");
        assert_eq!(message.buffer_len(), bytes.len());
    }
    let lengths: Vec<usize> = (1..=15)
        .map(|t| ControlMessageType::from(t).message_len().unwrap())
        .collect();
    assert_eq!(
        lengths,
        [
            156, 156, 16, 16, 16, 20, 168, 32, 220, 24, 28, 16, 148, 40, 24
        ]
    );
    assert_eq!(lengths.iter().max(), Some(&MAX_MESSAGE_LEN));
    assert_eq!(lengths.iter().min(), Some(&MIN_MESSAGE_LEN));
}

#[test]
fn known_bytes_parse_to_fields() {
    for (bytes, expected) in known() {
        assert_eq!(ControlMessage::parse(&bytes), Ok(expected), "{bytes:02x?}");
    }
}

#[test]
fn fields_emit_to_known_bytes() {
    for (expected, message) in known() {
        let mut buf = [0xa5u8; MAX_MESSAGE_LEN + 4];
        let len = message.emit(&mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..], "{message:?}");
        // Nothing written past the message.
        assert!(buf[len..].iter().all(|&b| b == 0xa5));
        assert_eq!(message.to_vec(), expected);
    }
}

#[test]
fn packet_view_reads_the_header() {
    let bytes = ocrq_windows();
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.length(), 168);
    assert_eq!(packet.message_type(), MessageType::ControlMessage);
    assert_eq!(packet.magic_cookie(), 0x1a2b_3c4d);
    assert_eq!(
        packet.control_message_type(),
        ControlMessageType::OutgoingCallRequest
    );
    assert_eq!(packet.reserved0(), 0);
    assert_eq!(packet.body().len(), 156);
    assert!(matches!(
        ControlMessage::parse_packet(&packet),
        Ok(ControlMessage::OutgoingCallRequest(r)) if r.call_id == 0xc9a3
    ));
}

#[test]
fn unchecked_views_never_panic() {
    for len in 0..20 {
        let bytes = vec![0xffu8; len];
        let packet = Packet::new_unchecked(&bytes[..]);
        let _ = (packet.length(), packet.magic_cookie(), packet.body());
        assert!(ControlMessage::parse_packet(&packet).is_err());
        let mut out = vec![0u8; len];
        let mut packet = Packet::new_unchecked(&mut out[..]);
        packet.set_magic_cookie(MAGIC_COOKIE);
        packet.set_length(16);
    }
}

#[test]
fn round_trips_with_odd_values() {
    let messages: Vec<ControlMessage> = vec![
        StartControlConnectionReply {
            protocol_version: 0xffff,
            result_code: StartResult::Unknown(0),
            error_code: ErrorCode::Unknown(200),
            framing_capabilities: FramingCapabilities(0xffff_fffc),
            bearer_capabilities: BearerCapabilities(0x8000_0000),
            maximum_channels: u16::MAX,
            firmware_revision: u16::MAX,
            host_name: NulPadded::from_raw([b'x'; 64]),
            vendor_string: NulPadded::from_raw({
                let mut raw = [0u8; 64];
                raw[1] = b'z'; // bytes after the first NUL are kept
                raw
            }),
        }
        .into(),
        StopControlConnectionRequest {
            reason: StopReason::Unknown(0),
        }
        .into(),
        EchoReply {
            identifier: u32::MAX,
            result_code: EchoResult::GeneralError,
            error_code: ErrorCode::PacError,
        }
        .into(),
        OutgoingCallReply {
            call_id: u16::MAX,
            peer_call_id: 0,
            result_code: OutgoingCallResult::Unknown(0xff),
            error_code: ErrorCode::NoResource,
            cause_code: 0xabcd,
            connect_speed: u32::MAX,
            packet_receive_window_size: u16::MAX,
            packet_processing_delay: u16::MAX,
            physical_channel_id: 0x0102_0304,
        }
        .into(),
        OutgoingCallRequest {
            call_id: 1,
            call_serial_number: 2,
            minimum_bps: 3,
            maximum_bps: 4,
            bearer_type: BearerType::Unknown(0),
            framing_type: FramingType::Unknown(u32::MAX),
            packet_receive_window_size: 5,
            packet_processing_delay: 6,
            phone_number_length: 64,
            phone_number: NulPadded::from_raw([b'9'; 64]),
            subaddress: string("sub"),
        }
        .into(),
        CallDisconnectNotify {
            call_id: 0x8001,
            result_code: DisconnectResult::Unknown(0),
            error_code: ErrorCode::BadCallId,
            cause_code: 1,
            call_statistics: NulPadded::from_raw([0x7f; 128]),
        }
        .into(),
    ];
    for message in messages {
        let bytes = message.to_vec();
        assert_eq!(ControlMessage::parse(&bytes), Ok(message));
    }
}

#[test]
fn enums_keep_unknown_values_and_name_known_ones() {
    assert_eq!(
        StartResult::from(5),
        StartResult::UnsupportedProtocolVersion
    );
    assert_eq!(StartResult::from(9), StartResult::Unknown(9));
    assert_eq!(u8::from(StartResult::Unknown(9)), 9);
    assert_eq!(ErrorCode::from(5), ErrorCode::BadCallId);
    assert_eq!(DisconnectResult::from(4), DisconnectResult::Request);
    assert_eq!(IncomingCallResult::from(3), IncomingCallResult::DoNotAccept);
    assert_eq!(OutgoingCallResult::from(4), OutgoingCallResult::Busy);
    assert_eq!(u8::from(OutgoingCallResult::DoNotAccept), 7);
    assert_eq!(StopReason::from(2), StopReason::StopProtocol);
    assert_eq!(MessageType::from(2), MessageType::ManagementMessage);
    assert_eq!(
        ControlMessageType::from(16),
        ControlMessageType::Unknown(16)
    );
    assert_eq!(ControlMessageType::Unknown(16).message_len(), None);
    assert_eq!(ControlMessageType::SetLinkInfo.to_string(), "Set-Link-Info");
    assert!(FramingCapabilities(3).contains(FramingCapabilities::SYNCHRONOUS));
    assert!(!BearerCapabilities(1).contains(BearerCapabilities::DIGITAL));
}

#[test]
fn nul_padded_strings() {
    let s = NulPadded::<8>::new(b"abc").unwrap();
    assert_eq!(s.as_raw(), b"abc\0\0\0\0\0");
    assert_eq!(s.text(), b"abc");
    assert_eq!(s.to_string_lossy(), "abc");
    assert_eq!(format!("{s:?}"), "\"abc\"");
    assert_eq!(s.to_string(), "abc");
    assert!(!s.is_empty());
    assert!(NulPadded::<8>::EMPTY.is_empty());
    assert_eq!(NulPadded::<8>::default(), NulPadded::EMPTY);
    // Exactly the field's length: allowed, no NUL.
    let full = NulPadded::<4>::new(b"wxyz").unwrap();
    assert_eq!(full.text(), b"wxyz");
    assert_eq!(
        NulPadded::<4>::new(b"vwxyz"),
        Err(Error::BadLength {
            what: "NUL-padded PPTP string",
            len: 5,
            why: "longer than its field"
        })
    );
    assert_eq!(NulPadded::<4>::truncated(b"vwxyz").text(), b"vwxy");
    // Text stops at the first NUL; invalid UTF-8 is replaced.
    let raw = NulPadded::from_raw(*b"a\xffb\0cd\0\0");
    assert_eq!(raw.text(), b"a\xffb");
    assert_eq!(raw.to_string_lossy(), "a\u{fffd}b");
}

fn error_of(bytes: &[u8]) -> Error {
    ControlMessage::parse(bytes).unwrap_err()
}

#[test]
fn truncated_inputs_are_refused() {
    for (bytes, _) in known() {
        for len in 0..bytes.len() {
            let err = error_of(&bytes[..len]);
            assert!(matches!(err, Error::Truncated { .. }), "{len}: {err:?}");
        }
    }
    assert_eq!(
        error_of(&echo_request()[..11]),
        Error::Truncated {
            what: "PPTP control message header",
            need: 12,
            have: 11
        }
    );
    assert_eq!(
        error_of(&echo_request()[..15]),
        Error::Truncated {
            what: "PPTP control message",
            need: 16,
            have: 15
        }
    );
}

#[test]
fn oversized_inputs_are_refused() {
    let mut long = echo_request();
    long.push(0);
    assert_eq!(
        error_of(&long),
        Error::BadLength {
            what: "PPTP control message",
            len: 17,
            why: "input is longer than the message's Length field"
        }
    );
    // A Length above the longest message, with that many bytes present.
    let mut huge = vec![0u8; 300];
    huge[..12].copy_from_slice(&header(300, 5));
    assert!(matches!(
        error_of(&huge),
        Error::BadLength { len: 300, why, .. } if why.contains("220")
    ));
}

#[test]
fn wrong_length_for_the_type_is_refused() {
    // An Echo-Request claiming (and having) 20 bytes.
    let bytes = [header(20, 5), vec![0; 8]].concat();
    assert_eq!(
        error_of(&bytes),
        Error::BadLength {
            what: "Echo-Request",
            len: 20,
            why: "not the fixed length of this message type"
        }
    );
    // A Set-Link-Info cut to 16 bytes, Length field included.
    let mut short = sli_windows();
    short.truncate(16);
    short[0..2].copy_from_slice(&be16(16));
    assert!(matches!(
        error_of(&short),
        Error::BadLength {
            what: "Set-Link-Info",
            ..
        }
    ));
    // A bare header.
    let bare = header(12, 5);
    assert!(matches!(error_of(&bare), Error::BadLength { len: 12, .. }));
    // Length field below the header.
    let mut tiny = echo_request();
    tiny[0..2].copy_from_slice(&be16(4));
    assert!(matches!(
        error_of(&tiny),
        Error::BadLength {
            len: 4,
            why: "below the 12-byte header",
            ..
        }
    ));
}

#[test]
fn bad_headers_say_why() {
    let mut cookie = echo_request();
    cookie[4..8].copy_from_slice(&be32(0x1a2b_3c4e));
    assert_eq!(error_of(&cookie), Error::BadMagicCookie(0x1a2b_3c4e));

    let mut management = echo_request();
    management[2..4].copy_from_slice(&be16(2));
    assert_eq!(
        error_of(&management),
        Error::Malformed {
            what: "PPTP message type",
            why: "management messages (type 2) are not supported"
        }
    );

    let mut other = echo_request();
    other[2..4].copy_from_slice(&be16(7));
    assert_eq!(
        error_of(&other),
        Error::Unknown {
            what: "PPTP message type",
            value: 7
        }
    );

    let mut reserved = echo_request();
    reserved[11] = 1;
    assert_eq!(
        error_of(&reserved),
        Error::Malformed {
            what: "PPTP control message header",
            why: "Reserved0 is not zero"
        }
    );

    for unknown in [0u16, 16, 0xffff] {
        let mut bytes = echo_request();
        bytes[8..10].copy_from_slice(&be16(unknown));
        assert_eq!(
            error_of(&bytes),
            Error::Unknown {
                what: "PPTP control message type",
                value: u32::from(unknown)
            }
        );
    }
}

#[test]
fn reserved_body_fields_are_ignored() {
    // Reserved1 of Start-Control-Connection-Request, Reserved1/2 of
    // Stop-Control-Connection-Request, Reserved1 of Outgoing-Call-Request,
    // Call-Clear-Request, Set-Link-Info, Echo-Reply.
    for (mut bytes, expected, reserved) in [
        (sccrq_windows(), known()[0].1, 14..16),
        (stopccrq(), known()[2].1, 13..16),
        (echo_reply(), known()[5].1, 18..20),
        (ocrq_windows(), known()[6].1, 38..40),
        (ccrq(), known()[11].1, 14..16),
        (cdn(), known()[12].1, 18..20),
        (sli_windows(), known()[14].1, 14..16),
    ] {
        bytes[reserved].fill(0xee);
        assert_eq!(ControlMessage::parse(&bytes), Ok(expected));
        // ... and sent back as zeros.
        assert!(expected.to_vec() != bytes);
    }
}

#[test]
fn emit_refuses_small_buffers() {
    let message = ControlMessage::from(EchoRequest { identifier: 1 });
    let mut buf = [0u8; 15];
    assert_eq!(
        message.emit(&mut buf),
        Err(Error::BufferTooSmall {
            what: "Echo-Request",
            need: 16,
            have: 15
        })
    );
}

#[test]
fn every_byte_flip_of_every_message_is_handled() {
    for (bytes, _) in known() {
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                if let Ok(message) = ControlMessage::parse(&b) {
                    assert_eq!(ControlMessage::parse(&message.to_vec()), Ok(message));
                }
            }
        }
    }
}

/// The fuzz seeds: a chunking byte (see fuzz/fuzz_targets/control_stream.rs)
/// followed by hand-written messages.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let session = [
        sccrq_windows(),
        ocrq_windows(),
        sli_windows(),
        echo_request(),
        echo_reply(),
        ccrq(),
        stopccrq(),
    ]
    .concat();
    let server = [sccrp_server(), ocrp(), cdn(), stopccrp()].concat();
    vec![
        ("sccrq-windows", [vec![0xff], sccrq_windows()].concat()),
        ("sccrp", [vec![0xff], sccrp_server()].concat()),
        ("stopccrq", [vec![0xff], stopccrq()].concat()),
        ("stopccrp", [vec![0xff], stopccrp()].concat()),
        ("echo-request", [vec![0xff], echo_request()].concat()),
        ("echo-reply", [vec![0xff], echo_reply()].concat()),
        ("ocrq-windows", [vec![0xff], ocrq_windows()].concat()),
        ("ocrp", [vec![0xff], ocrp()].concat()),
        ("icrq", [vec![0xff], icrq()].concat()),
        ("icrp", [vec![0xff], icrp()].concat()),
        ("iccn", [vec![0xff], iccn()].concat()),
        ("ccrq", [vec![0xff], ccrq()].concat()),
        ("cdn", [vec![0xff], cdn()].concat()),
        ("wen", [vec![0xff], wen()].concat()),
        ("sli-windows", [vec![0xff], sli_windows()].concat()),
        (
            "windows-session-bytewise",
            [vec![0x00], session.clone()].concat(),
        ),
        ("windows-session-chunks", [vec![0x06], session].concat()),
        ("server-replies-chunks", [vec![0x0c], server].concat()),
    ]
}

/// The seed corpus on disk equals the hand-written messages. Run with
/// `PPTP_WRITE_SEEDS=1` to (re)write the files.
#[test]
fn fuzz_seed_corpus_is_up_to_date() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/control_stream");
    let write = std::env::var_os("PPTP_WRITE_SEEDS").is_some();
    for (name, bytes) in seeds() {
        let path = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with PPTP_WRITE_SEEDS=1)", path.display()));
        assert_eq!(on_disk, bytes, "{}", path.display());
    }
}
