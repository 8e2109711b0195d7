#![no_main]
//! The PPTP control stream (RFC 2637 sections 1.3 to 2.16): arbitrary bytes
//! through the framer in arbitrary chunks, every framed message parsed,
//! what parses emitted again and parsed back to the same value; the same
//! chunks also drive a server and a client control connection on a clock
//! that moves with the input.
//!
//! The first input byte picks the chunking: 0xff feeds everything at once,
//! 0 byte by byte, any other value chunks of varying sizes (so messages are
//! both split and joined). The seeds in corpus/control_stream are real
//! messages written by hand from the RFC layouts.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_daemon::proto::control::{CallIdPool, ControlConnection, ControlSettings};
use pptp_daemon::wire::pptp::{ControlFramer, ControlMessage, HEADER_LEN, MAX_MESSAGE_LEN};

fn chunk_len(selector: u8, index: usize) -> usize {
    match selector {
        0xff => usize::MAX,
        0 => 1,
        s => 1 + (usize::from(s) * (index + 1)) % (2 * MAX_MESSAGE_LEN),
    }
}

/// Runs every due timer and drains every output.
fn drive(connection: &mut ControlConnection, now: Instant) {
    if connection.poll_timeout().is_some_and(|at| at <= now) {
        connection.handle_timeout(now);
    }
    while let Some(bytes) = connection.poll_transmit() {
        // Whatever the machine sends must be a valid message.
        ControlMessage::parse(&bytes).expect("the machine sent an invalid message");
    }
    while connection.poll_event().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let settings = ControlSettings {
        setup_timeout: Duration::from_secs(30),
        echo_interval: Duration::from_secs(60),
        ..ControlSettings::default()
    };
    let mut server = ControlConnection::server(
        settings.clone(),
        Box::new(CallIdPool::new(64, u64::from(selector))),
        now,
    );
    let mut client = ControlConnection::client(settings, now);
    let _ = client.open_call(now, u16::from(selector));
    let mut framer = ControlFramer::new();
    let mut rest = stream;
    let mut index = 0;
    while !rest.is_empty() {
        let len = chunk_len(selector, index).min(rest.len());
        index += 1;
        let (mut chunk, tail) = rest.split_at(len);
        rest = tail;
        server.handle_bytes(now, chunk);
        client.handle_bytes(now, chunk);
        while let Some(framed) = framer.next_message(&mut chunk) {
            let Ok(bytes) = framed else {
                assert!(framer.is_failed());
                break;
            };
            assert!((HEADER_LEN..=MAX_MESSAGE_LEN).contains(&bytes.len()));
            if let Ok(message) = ControlMessage::parse(bytes) {
                let mut buf = [0u8; MAX_MESSAGE_LEN];
                let written = message
                    .emit(&mut buf)
                    .expect("a full-size buffer fits any message");
                assert_eq!(written, bytes.len());
                assert_eq!(written, message.buffer_len());
                assert_eq!(ControlMessage::parse(&buf[..written]), Ok(message));
            }
        }
        assert!(chunk.is_empty());
        assert!(framer.buffered() < MAX_MESSAGE_LEN);
        now += Duration::from_secs(u64::from(selector % 97));
        drive(&mut server, now);
        drive(&mut client, now);
    }
    server.handle_eof(now);
    client.handle_eof(now);
    drive(&mut server, now);
    drive(&mut client, now);
    assert!(server.is_closed() && client.is_closed());
});
