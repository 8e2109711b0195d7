//! A data frame as it arrives from the network: enhanced GRE (RFC 2637
//! section 4.1), the PPP frame inside it (RFC 1661 section 2, RFC 1662),
//! and the MPPE header (RFC 3078 section 3) when the protocol is 0x00FD.
//! No parser may panic; whatever parses is emitted again and must parse to
//! the same representation and the same payload.
#![no_main]

use pptp_daemon::wire::{gre, mppe, ppp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(packet) = gre::Packet::new_checked(data) else {
        return;
    };
    let gre_repr = gre::Repr::parse(&packet).expect("a checked packet parses");
    let payload = packet.payload();
    assert_eq!(payload.len(), usize::from(gre_repr.payload_len));

    let mut out = vec![0xa5; gre_repr.buffer_len()];
    let mut emitted = gre::Packet::new_unchecked(&mut out[..]);
    gre_repr.emit(&mut emitted).expect("a parsed header emits");
    emitted.payload_mut().copy_from_slice(payload);
    let again = gre::Packet::new_checked(&out[..]).expect("an emitted packet parses");
    assert_eq!(gre::Repr::parse(&again), Ok(gre_repr));
    assert_eq!(again.payload(), payload);
    // The emitted bytes equal the input up to the end of the payload.
    assert_eq!(&out[..], &data[..out.len()]);

    if gre_repr.is_ack_only() {
        return;
    }
    let Ok(frame) = ppp::Packet::new_checked(payload) else {
        return;
    };
    let ppp_repr = ppp::Repr::parse(&frame).expect("a checked frame parses");
    let information = frame.payload();
    let mut out = vec![0xa5; ppp_repr.buffer_len(information.len())];
    let mut emitted = ppp::Packet::new_unchecked(&mut out[..]);
    match ppp_repr.emit(&mut emitted) {
        Ok(()) => {
            emitted.payload_mut().copy_from_slice(information);
            let again = ppp::Packet::new_checked(&out[..]).expect("an emitted frame parses");
            assert_eq!(ppp::Repr::parse(&again), Ok(ppp_repr));
            assert_eq!(again.payload(), information);
            assert_eq!(&out[..], payload);
        }
        // Accepted on receive, never sent (RFC 1661 section 6.6).
        Err(_) => assert!(ppp_repr.protocol == ppp::Protocol::Lcp && ppp_repr.acfc),
    }
    // The compressions applied on send are always emittable.
    let normalised = ppp::Repr::new(ppp_repr.protocol, ppp_repr.acfc, ppp_repr.pfc);
    let mut header = [0xa5u8; ppp::MAX_HEADER_LEN];
    let len = normalised.emit_header(&mut header).expect("Repr::new emits");
    let reparsed = ppp::Packet::new_checked(&header[..len]).expect("Repr::new output parses");
    assert_eq!(ppp::Repr::parse(&reparsed), Ok(normalised));

    if ppp_repr.protocol != ppp::Protocol::Compressed {
        return;
    }
    let Ok(mppe_packet) = mppe::Packet::new_checked(information) else {
        return;
    };
    let mppe_repr = mppe::Repr::parse(&mppe_packet).expect("a checked header parses");
    let mut out = vec![0xa5; mppe_repr.buffer_len(mppe_packet.payload().len())];
    let mut emitted = mppe::Packet::new_unchecked(&mut out[..]);
    mppe_repr.emit(&mut emitted).expect("a parsed MPPE header emits");
    emitted.payload_mut().copy_from_slice(mppe_packet.payload());
    let again = mppe::Packet::new_checked(&out[..]).expect("an emitted header parses");
    assert_eq!(mppe::Repr::parse(&again), Ok(mppe_repr));
    assert_eq!(&out[..], information);
});
