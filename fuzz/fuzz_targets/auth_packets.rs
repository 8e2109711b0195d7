#![no_main]
//! Arbitrary bytes through the CHAP and PAP parsers and the MS-CHAP
//! sub-format parsers (Response values, Success and Failure messages).
//! Whatever parses is emitted again and must parse back to the same thing.

use libfuzzer_sys::fuzz_target;
use pptp_daemon::wire::{
    chap::{self, MsChapFailure, MsChapV1Response, MsChapV2Response, MsChapV2Success},
    pap,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = chap::Packet::new_checked(data) {
        // The accessors must not panic on a checked packet.
        let _ = (packet.code(), packet.identifier(), packet.data());
        if let Ok(repr) = chap::Repr::parse(&packet) {
            let bytes = repr.to_vec().expect("a parsed CHAP packet emits");
            assert_eq!(bytes.len(), repr.buffer_len());
            let again = chap::Packet::new_checked(&bytes[..]).expect("emitted CHAP packet checks");
            assert_eq!(chap::Repr::parse(&again), Ok(repr));
            match repr {
                chap::Repr::Response { value, .. } => {
                    if let Ok(v1) = MsChapV1Response::parse(value) {
                        assert_eq!(MsChapV1Response::parse(&v1.to_bytes()), Ok(v1));
                    }
                    if let Ok(v2) = MsChapV2Response::parse(value) {
                        assert_eq!(MsChapV2Response::parse(&v2.to_bytes()), Ok(v2));
                    }
                }
                chap::Repr::Success { message, .. } | chap::Repr::Failure { message, .. } => {
                    success_and_failure(message);
                }
                chap::Repr::Challenge { .. } => {}
            }
        }
    }
    // The message parsers also get the raw input.
    success_and_failure(data);

    if let Ok(packet) = pap::Packet::new_checked(data) {
        let _ = (packet.code(), packet.identifier());
        if let Ok(repr) = pap::Repr::parse(&packet) {
            let bytes = repr.to_vec().expect("a parsed PAP packet emits");
            assert_eq!(bytes.len(), repr.buffer_len());
            let again = pap::Packet::new_checked(&bytes[..]).expect("emitted PAP packet checks");
            assert_eq!(pap::Repr::parse(&again), Ok(repr));
        }
    }
});

fn success_and_failure(message: &[u8]) {
    if let Ok(success) = MsChapV2Success::parse(message) {
        let bytes = success.to_vec();
        assert_eq!(bytes.len(), success.buffer_len());
        assert_eq!(MsChapV2Success::parse(&bytes), Ok(success));
    }
    if let Ok(failure) = MsChapFailure::parse(message) {
        assert_eq!(MsChapFailure::parse(&failure.to_vec()), Ok(failure));
    }
}
