//! A stateless MPPE receiver behind a real sender that loses packets on
//! the way (an overloaded queue in front of the receiver drops most of
//! them): its rekey budget must never let it fall so far behind the sender
//! that the 12-bit coherency count wraps under it. Once the receiver is
//! 4096 key changes behind, every later packet decrypts with the wrong key
//! and the session is dead for good. Public API only, with a simulated
//! clock.

use std::time::{Duration, Instant};

use pptp_daemon::mppe::{
    KeyLength,
    cipher::{Decryptor, Encryptor, SentSince},
    keys::StartKey,
};

/// What the daemon tells the receiver before each packet (as
/// `server::datapath` does from the GRE sequence numbers): frame `n` of a
/// sender whose frames carry consecutive sequence numbers, the newest
/// accepted being `newest`.
fn expect(rx: &mut Decryptor, n: u32, newest: Option<u32>) {
    rx.expect(newest.map(|newest| SentSince {
        frames: n - newest,
        newest,
    }));
}

/// An IPv4 packet behind PPP protocol 0x0021, numbered `n`.
fn plaintext(n: u32) -> Vec<u8> {
    let mut p = vec![0x00, 0x21, 0x45, 0, 0, 40];
    p.extend_from_slice(&n.to_be_bytes());
    p.resize(42, 0x5a);
    p
}

#[test]
fn heavy_loss_never_makes_the_receiver_lose_the_key_chain() {
    let key = StartKey::new(&[0x3c; 16], KeyLength::Bits128).unwrap();
    let mut tx = Encryptor::new(&key, true);
    let mut rx = Decryptor::new(&key, true);
    let start = Instant::now();
    // 10,000 packets a second for 3 s, of which the receiver sees only one
    // in 8 (an overloaded worker queue): 7 extra key changes per packet
    // received, 8,750 a second, far beyond the budget's refill.
    let rate = 10_000u32;
    let mut n = 0u32;
    let mut newest = None;
    let mut decrypted = 0u32;
    for i in 0..rate * 3 {
        let mut packet = vec![0u8; 2 + 42];
        tx.encrypt(&plaintext(n), &mut packet).unwrap();
        n += 1;
        if i % 8 != 0 {
            continue;
        }
        rx.advance_clock(start + Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(rate)));
        expect(&mut rx, n - 1, newest);
        if rx.decrypt_in_place(&mut packet).is_ok() && packet[2..] == plaintext(n - 1)[..] {
            decrypted += 1;
            newest = Some(n - 1);
        }
    }
    assert!(decrypted > 0, "some of the overloaded packets get through");
    // The overload ends: every packet arrives. Within a few hundred packets
    // the receiver decrypts them all again.
    let mut last_bad = None;
    for i in 0..2_000u32 {
        let mut packet = vec![0u8; 2 + 42];
        tx.encrypt(&plaintext(n), &mut packet).unwrap();
        n += 1;
        rx.advance_clock(start + Duration::from_secs(3) + Duration::from_micros(u64::from(i) * 50));
        expect(&mut rx, n - 1, newest);
        let ok = rx.decrypt_in_place(&mut packet).is_ok() && packet[2..] == plaintext(n - 1)[..];
        if ok {
            newest = Some(n - 1);
        } else {
            last_bad = Some(i);
        }
    }
    assert!(
        last_bad.is_none_or(|i| i < 500),
        "still failing at packet {last_bad:?} of 2000 after the overload: the receiver lost the key chain"
    );
}
