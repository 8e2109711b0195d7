//! Stateless MPPE in the XDP program (issue 14), through
//! BPF_PROG_TEST_RUN. Receive: frames encrypted by the daemon's own cipher
//! (`mppe::cipher`, as our client encrypts) with random payloads, for 40,
//! 56 and 128 bits; the program's output bytes are compared with the
//! plaintext exactly, and what it leaves to userspace must come out
//! untouched and decrypt in userspace from the kernel's key chain. Send:
//! IPv4 for the client encrypted by the program, compared byte for byte
//! with what the daemon's cipher makes of it at the same coherency count,
//! and decrypted by the client's. Needs root; fails (never skips) without
//! it.

mod common;

use common::*;
use pptp_common::maps::{
    CallEntry, MPPE_PREP_DEPTH, MPPE_RX_CATCH_UP_BURST, MPPE_RX_CATCH_UP_RATE,
    MPPE_RX_EVIDENCE_SLACK, MPPE_RX_MAX_CATCH_UP, MPPE_RX_MAX_EVIDENCED, MPPE_RX_MAX_JUMP,
    MPPE_TX_MAX_WALK, MppeTx, SESSION_F_ACFC, SESSION_F_DECAP, SESSION_F_ENCAP, SESSION_F_MPPE_RX,
    SESSION_F_MPPE_TX, SESSION_F_MSS_CLAMP, SESSION_F_PFC, SeqState, Session, Stat, TunnelConf,
    programs,
};
use pptp_daemon::{
    dataplane::{mppe_chain::MppeSlot, xdp::XdpDataplane},
    mppe::{
        KeyLength, MppeParams, Role,
        cipher::{Decryptor, Encryptor, MppeCipher, SentSince},
        keys::{mschapv2_material, start_keys},
    },
};
use pptp_netns::{self as netns, Netns};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const PEER: [u8; 4] = [198, 18, 0, 2];
const WAN: [u8; 4] = [198, 18, 0, 1];
const LAN_HOST: [u8; 4] = [198, 18, 1, 2];
const CLIENT: [u8; 4] = [198, 19, 0, 2];
const LAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
const OUR_CALL: u16 = 7;
const SLOT: u32 = 5;
/// MS-CHAPv2 inputs of the keys (RFC 3079 section 3.5's).
const HASH_HASH: [u8; 16] = [
    0x41, 0xC0, 0x0C, 0x58, 0x4B, 0xD2, 0xD9, 0x1C, 0x40, 0x17, 0xA2, 0xA1, 0x2F, 0xA5, 0x9F, 0x3F,
];
const NT_RESPONSE: [u8; 24] = [
    0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E, 0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD, 0x83, 0x54,
    0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF,
];

fn session(flags: u32) -> Session {
    Session {
        peer_addr: PEER,
        local_addr: WAN,
        client_addr: CLIENT,
        slot: SLOT,
        flags,
        call_id: OUR_CALL,
        peer_call_id: 0x4242,
        mtu: 1400,
        ..Session::default()
    }
}

/// A namespace in which FIB lookups resolve (as in tests/xdp.rs), with a
/// tunnel veth pair for `stack` forwarding.
struct Fib {
    ns: Netns,
    wan: u32,
    lan: u32,
    wan_mac: [u8; 6],
    lan_mac: [u8; 6],
    tunnel: TunnelConf,
}

fn fib() -> Fib {
    let ns = Netns::new("pxm").unwrap();
    netns::veth(&ns, "wan0", &ns, "wanp").unwrap();
    netns::veth(&ns, "lan0", &ns, "lanp").unwrap();
    netns::veth(&ns, "tun0", &ns, "tun0p").unwrap();
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "wan0"])
        .unwrap();
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "lan0"])
        .unwrap();
    ns.ip(&[
        "neigh",
        "add",
        "198.18.1.2",
        "lladdr",
        "02:00:00:00:00:03",
        "dev",
        "lan0",
        "nud",
        "permanent",
    ])
    .unwrap();
    // The peer's neighbour entry, for what the program encapsulates.
    ns.ip(&[
        "neigh",
        "add",
        "198.18.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "wan0",
        "nud",
        "permanent",
    ])
    .unwrap();
    netns::run(ns.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"])).unwrap();
    let wan = ns.ifindex("wan0").unwrap();
    let tunnel = TunnelConf {
        inject_ifindex: ns.ifindex("tun0p").unwrap(),
        wan_ifindex: wan,
        tunnel_mac: ns.mac("tun0").unwrap(),
        inject_mac: ns.mac("tun0p").unwrap(),
    };
    Fib {
        wan,
        lan: ns.ifindex("lan0").unwrap(),
        wan_mac: ns.mac("wan0").unwrap(),
        lan_mac: ns.mac("lan0").unwrap(),
        tunnel,
        ns,
    }
}

fn random(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    getrandom::fill(&mut b).unwrap();
    b
}

/// A random inner payload length, 1 to 1276 octets.
fn random_len() -> usize {
    1 + usize::from(random(1)[0]) * 5
}

/// Inner payload lengths (after a 20-octet IPv4 header and the 2-octet PPP
/// protocol field) whose RC4 run ends one octet before, at and one octet
/// after the program's 64-octet keystream step and octets 256 and 512,
/// where RC4's index i wraps (the program derives i from the position).
const BOUNDARY_LENS: [usize; 9] = [41, 42, 43, 233, 234, 235, 489, 490, 491];

/// An IPv4/UDP packet from the client with a random payload of `len`.
fn udp(len: usize) -> Vec<u8> {
    with_ttl(ipv4(CLIENT, LAN_HOST, 17, &random(len)), 64)
}

/// The client's side (encryptor, decryptor) and the server's (decryptor,
/// receive and send start keys).
struct Keys {
    client: Encryptor,
    server: Decryptor,
    start: pptp_daemon::mppe::keys::StartKey,
    client_rx: Decryptor,
    send_start: pptp_daemon::mppe::keys::StartKey,
}

fn keys(length: KeyLength) -> Keys {
    let params = MppeParams {
        key_length: length,
        stateless: true,
    };
    let client = MppeCipher::new(
        &mschapv2_material(&HASH_HASH, &NT_RESPONSE, Role::Client),
        params,
    );
    let server_material = mschapv2_material(&HASH_HASH, &NT_RESPONSE, Role::Server);
    let server = MppeCipher::new(&server_material, params);
    Keys {
        client: client.encryptor,
        server: server.decryptor,
        start: start_keys(&server_material, length).recv,
        client_rx: client.decryptor,
        send_start: start_keys(&server_material, length).send,
    }
}

/// The MPPE packet (header and ciphertext) of `inner` with its PPP
/// protocol field `proto`, at the encryptor's next count.
fn seal(tx: &mut Encryptor, proto: &[u8], inner: &[u8]) -> Vec<u8> {
    let plain = [proto, inner].concat();
    let mut out = vec![0xa5; plain.len() + 2];
    tx.encrypt(&plain, &mut out).unwrap();
    out
}

/// The GRE frame from the peer carrying an MPPE packet, with PPP header
/// `ppp` (protocol 0x00FD in one of its forms).
fn from_peer(ppp: &[u8], mppe: &[u8], seq: u32) -> Vec<u8> {
    frame(
        PEER,
        WAN,
        47,
        &gre(OUR_CALL, Some(seq), Some(1), &[ppp, mppe].concat()),
    )
}

const FULL: [u8; 4] = [0xFF, 0x03, 0x00, 0xFD];

struct Runner<'a> {
    dp: &'a XdpDataplane,
    fib: &'a Fib,
    program: &'static str,
    seq: u32,
    /// The change of the [`REASONS`] counters in the last run.
    reasons: [u64; REASONS.len()],
}

/// The counters of why an MPPE frame went to userspace (besides
/// `MppeToUserspace`).
const REASONS: [Stat; 5] = [
    Stat::MppeRxFar,
    Stat::MppeRxJump,
    Stat::MppeRxKeyGone,
    Stat::MppeRxNotForwarded,
    Stat::MppeRxRaced,
];

impl Runner<'_> {
    /// Runs a frame; returns the action, the output and the change of
    /// (MppeDecrypted, MppeToUserspace).
    fn run(&mut self, frame: &[u8]) -> (u32, Vec<u8>, (u64, u64)) {
        let before = self.dp.stats().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = self
            .fib
            .ns
            .run(|| {
                self.dp
                    .test_run_program(self.program, frame, &mut out, Some(self.fib.wan))
            })
            .unwrap()
            .unwrap();
        let after = self.dp.stats().unwrap();
        let d = |s: Stat| after[s as usize] - before[s as usize];
        self.reasons = REASONS.map(d);
        out.truncate(len);
        (
            action,
            out,
            (d(Stat::MppeDecrypted), d(Stat::MppeToUserspace)),
        )
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// What the program makes of a decrypted `inner`.
    fn expected(&self, inner: &[u8]) -> (u32, Vec<u8>) {
        if self.program == programs::STACK {
            let t = &self.fib.tunnel;
            let mut f = eth(t.tunnel_mac, t.inject_mac, 0x0800);
            f.extend_from_slice(inner);
            (XDP_REDIRECT, f)
        } else {
            let mut f = eth(LAN_HOST_MAC, self.fib.lan_mac, 0x0800);
            f.extend_from_slice(&hop(inner));
            (XDP_REDIRECT, f)
        }
    }

    /// `inner` sealed at the next count goes through decrypted; returns
    /// the frame.
    fn decrypted(&mut self, name: &str, tx: &mut Encryptor, ppp: &[u8], proto: &[u8]) -> Vec<u8> {
        self.decrypted_len(name, tx, ppp, proto, random_len())
    }

    /// As [`Runner::decrypted`], with an inner payload of `len` octets.
    fn decrypted_len(
        &mut self,
        name: &str,
        tx: &mut Encryptor,
        ppp: &[u8],
        proto: &[u8],
        len: usize,
    ) -> Vec<u8> {
        let inner = udp(len);
        let mppe = seal(tx, proto, &inner);
        let seq = self.next_seq();
        let frame = from_peer(ppp, &mppe, seq);
        self.decrypts(name, &frame, &inner);
        frame
    }

    /// `frame` goes through with `inner` decrypted.
    fn decrypts(&mut self, name: &str, frame: &[u8], inner: &[u8]) {
        let (action, out, (dec, up)) = self.run(frame);
        let (want_action, want) = self.expected(inner);
        assert_eq!(action, want_action, "{name}: action");
        assert_eq!(out, want, "{name}: output bytes");
        assert_eq!((dec, up), (1, 0), "{name}: counted as decrypted");
        assert_eq!(
            self.reasons,
            [0; REASONS.len()],
            "{name}: no reason counted"
        );
    }

    /// `frame` goes to userspace untouched, counted under the reason
    /// `why` (`None`: under none of [`REASONS`], as duplicates and headers
    /// the program does not take).
    fn passed(&mut self, name: &str, frame: &[u8], why: Option<Stat>) {
        let (action, out, (dec, up)) = self.run(frame);
        assert_eq!(action, XDP_PASS, "{name}: action");
        assert_eq!(out, frame, "{name}: untouched");
        assert_eq!((dec, up), (0, 1), "{name}: counted as left to userspace");
        let want = REASONS.map(|r| u64::from(Some(r) == why));
        assert_eq!(self.reasons, want, "{name}: reason {why:?} counted");
    }
}

/// The MPPE packet of a GRE frame built by [`from_peer`] with [`FULL`].
/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn mppe_of(frame: &[u8]) -> &[u8] {
    &frame[14 + 20 + 16 + 4..]
}

fn receive_on(program: &'static str, length: KeyLength) {
    let fib = fib();
    netns::require_root().expect("prerequisite");
    let mut dp = XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program");
    if program == programs::STACK {
        dp.set_tunnel(fib.tunnel).unwrap();
    }
    let Keys {
        client: mut tx,
        server: mut rx,
        start,
        ..
    } = keys(length);
    dp.install_mppe_rx(SLOT, &start).unwrap();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_MPPE_RX | SESSION_F_MSS_CLAMP),
        Default::default(),
    )
    .unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();
    let shared = dp.mppe_rx().slot(SLOT).unwrap();
    let mut r = Runner {
        dp: &dp,
        fib: &fib,
        program,
        seq: 0,
        reasons: [0; REASONS.len()],
    };
    let ctx = |s: &str| format!("{program} {length:?}: {s}");

    // In order from count 0, every PPP and inner protocol field form.
    r.decrypted(&ctx("count 0"), &mut tx, &FULL, &[0x00, 0x21]);
    r.decrypted(&ctx("count 1, ACFC"), &mut tx, &[0x00, 0xFD], &[0x21]);
    r.decrypted(
        &ctx("count 2, ACFC and PFC"),
        &mut tx,
        &[0xFD],
        &[0x00, 0x21],
    );
    r.decrypted(&ctx("count 3, PFC"), &mut tx, &[0xFF, 0x03, 0xFD], &[0x21]);
    for len in BOUNDARY_LENS {
        r.decrypted_len(
            &ctx(&format!("{len}-octet payload")),
            &mut tx,
            &FULL,
            &[0x00, 0x21],
            len,
        );
    }

    // Lost frames: jumps of 2, of the most the kernel follows for free, and
    // beyond (within the catch-up budget: 1 + 56 extra key changes).
    for jump in [
        2,
        MPPE_RX_MAX_JUMP,
        MPPE_RX_MAX_JUMP + 1,
        MPPE_RX_MAX_CATCH_UP,
    ] {
        for _ in 1..jump {
            seal(&mut tx, &[0x21], &udp(8));
        }
        r.decrypted(&ctx(&format!("jump of {jump}")), &mut tx, &FULL, &[0x21]);
    }

    // A duplicate: userspace's, untouched.
    let last = r.decrypted(&ctx("before the duplicate"), &mut tx, &FULL, &[0x21]);
    r.passed(&ctx("duplicate"), &last, None);

    // FLUSHED clear (stateless frames must carry it): userspace's, and
    // the count is not used up.
    let inner = udp(100);
    let mppe = seal(&mut tx, &[0x21], &inner);
    let mut unflushed = mppe.clone();
    unflushed[0] &= !0x80;
    let seq = r.next_seq();
    r.passed(
        &ctx("FLUSHED clear"),
        &from_peer(&FULL, &unflushed, seq),
        None,
    );
    let seq = r.next_seq();
    r.decrypts(
        &ctx("the same count with FLUSHED"),
        &from_peer(&FULL, &mppe, seq),
        &inner,
    );

    // Inner packets the kernel does not forward: IPv6, a SYN to clamp.
    let ipv6 = random(60);
    let seq = r.next_seq();
    r.passed(
        &ctx("IPv6 inside"),
        &from_peer(&FULL, &seal(&mut tx, &[0x57], &ipv6), seq),
        Some(Stat::MppeRxNotForwarded),
    );
    let mut syn = ipv4(CLIENT, LAN_HOST, 6, &{
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp
    });
    syn[8] = 64;
    let seq = r.next_seq();
    r.passed(
        &ctx("TCP SYN to clamp"),
        &from_peer(&FULL, &seal(&mut tx, &[0x21], &syn), seq),
        Some(Stat::MppeRxNotForwarded),
    );
    r.decrypted(
        &ctx("after two frames left to userspace"),
        &mut tx,
        &FULL,
        &[0x21],
    );

    // A jump beyond what the kernel follows: userspace's, which continues
    // from the kernel's chain and hands its own back.
    let mut skipped = Vec::new();
    for _ in 0..MPPE_RX_MAX_CATCH_UP {
        skipped.push(seal(&mut tx, &[0x21], &udp(8)));
    }
    let inner = udp(200);
    let far = seal(&mut tx, &[0x21], &inner);
    let seq = r.next_seq();
    let frame = from_peer(&FULL, &far, seq);
    r.passed(
        &ctx("jump beyond the kernel's"),
        &frame,
        Some(Stat::MppeRxJump),
    );
    assert!(shared.sync(&mut rx), "userspace follows the kernel's chain");
    let mut plain = vec![0u8; far.len() - 2];
    rx.decrypt(mppe_of(&frame), &mut plain)
        .expect("userspace decrypts what the kernel passed");
    assert_eq!(plain, [&[0x21], &inner[..]].concat());
    assert!(shared.publish(&rx), "the kernel follows userspace's chain");
    r.decrypted(
        &ctx("in order after userspace's frame"),
        &mut tx,
        &FULL,
        &[0x21],
    );
    let seq = r.next_seq();
    r.passed(
        &ctx("late frame"),
        &from_peer(&FULL, &skipped[3], seq),
        Some(Stat::MppeRxJump),
    );

    // The count wraps from 4095 to 0: userspace follows the client to
    // count 4093, the kernel takes over.
    assert!(shared.sync(&mut rx));
    while tx.next_count() != 4094 {
        let p = seal(&mut tx, &[0x21], &udp(4));
        let mut plain = vec![0u8; p.len() - 2];
        rx.decrypt(&p, &mut plain).unwrap();
        // (A head only moves forward by less than half the count space.)
        if rx.last_count() % 1024 == 0 {
            assert!(shared.publish(&rx));
        }
    }
    assert!(shared.publish(&rx));
    for count in [4094, 4095, 0, 1] {
        assert_eq!(tx.next_count(), count);
        r.decrypted(&ctx(&format!("count {count}")), &mut tx, &FULL, &[0x21]);
    }
    seal(&mut tx, &[0x21], &udp(4));
    r.decrypted(&ctx("jump of 2 after the wrap"), &mut tx, &FULL, &[0x21]);

    // Loss runs of 63 frames, again and again: the catch-up budget's burst
    // takes at least 8 more (57 of its 512 extra key changes were used
    // above, 56 each; the budget refills with time, which only adds).
    let catch_up = |r: &mut Runner, tx: &mut Encryptor| {
        for _ in 1..MPPE_RX_MAX_CATCH_UP {
            seal(tx, &[0x21], &udp(8));
        }
        let inner = udp(30);
        let mppe = seal(tx, &[0x21], &inner);
        let seq = r.next_seq();
        (from_peer(&FULL, &mppe, seq), inner)
    };
    let per_jump = u64::from(MPPE_RX_MAX_CATCH_UP - MPPE_RX_MAX_JUMP);
    for i in 0..(MPPE_RX_CATCH_UP_BURST - 57) / per_jump {
        let (frame, inner) = catch_up(&mut r, &mut tx);
        r.decrypts(&ctx(&format!("catch-up {i} of the burst")), &frame, &inner);
    }
    // An empty budget: a catch-up is left to userspace, which hands the
    // chain back; a jump of 8 or less needs no budget.
    shared.set_catch_up_tat(u64::MAX / 2);
    let (frame, inner) = catch_up(&mut r, &mut tx);
    r.passed(
        &ctx("a catch-up over the budget"),
        &frame,
        Some(Stat::MppeRxJump),
    );
    assert!(shared.sync(&mut rx));
    let mut plain = vec![0u8; mppe_of(&frame).len() - 2];
    rx.decrypt(mppe_of(&frame), &mut plain).unwrap();
    assert_eq!(plain, [&[0x21], &inner[..]].concat());
    assert!(shared.publish(&rx));
    for _ in 1..MPPE_RX_MAX_JUMP {
        seal(&mut tx, &[0x21], &udp(8));
    }
    r.decrypted(&ctx("a jump of 8, budget empty"), &mut tx, &FULL, &[0x21]);
    shared.set_catch_up_tat(0);
    let (frame, inner) = catch_up(&mut r, &mut tx);
    r.decrypts(&ctx("a catch-up, budget full again"), &frame, &inner);

    // Loss runs whose frames the peer did send, as their sequence numbers
    // show (63 lost, each with its number; up to 64 clear frames may lie
    // between): taken in the kernel with the budget empty, again and
    // again, as an overloaded device queue loses them.
    shared.set_catch_up_tat(u64::MAX / 2);
    let evidenced_jump =
        |r: &mut Runner, tx: &mut Encryptor, jump: u16, (lost, clear): (u32, u32)| {
            for _ in 1..jump {
                seal(tx, &[0x21], &udp(8));
            }
            r.seq += lost + clear;
            let inner = udp(30);
            let mppe = seal(tx, &[0x21], &inner);
            let seq = r.next_seq();
            (from_peer(&FULL, &mppe, seq), inner)
        };
    let evidenced = |r: &mut Runner, tx: &mut Encryptor, seqs: (u32, u32)| {
        evidenced_jump(r, tx, MPPE_RX_MAX_CATCH_UP, seqs)
    };
    let lost = u32::from(MPPE_RX_MAX_CATCH_UP) - 1;
    for (i, clear) in [0, 1, MPPE_RX_EVIDENCE_SLACK, 0, 0].into_iter().enumerate() {
        let (frame, inner) = evidenced(&mut r, &mut tx, (lost, clear));
        r.decrypts(
            &ctx(&format!("evidenced catch-up {i}, budget empty")),
            &frame,
            &inner,
        );
    }
    // A frame the kernel passed up: userspace follows the kernel's chain
    // (already at its head when the kernel did not move since), decrypts
    // it, and hands its own chain back.
    let userspace_takes = |rx: &mut Decryptor, frame: &[u8], inner: &[u8]| {
        shared.sync(rx);
        let mut plain = vec![0u8; mppe_of(frame).len() - 2];
        rx.decrypt(mppe_of(frame), &mut plain).unwrap();
        assert_eq!(plain, [&[0x21], inner].concat());
        assert!(shared.publish(rx));
    };
    // Evidence that disagrees with the count: fewer frames sent than
    // counts used, or more clear frames between than the slack. Both are
    // userspace's (which hands the chain back each time).
    for (name, seqs) in [
        ("fewer frames than counts", (lost - 1, 0)),
        ("too many clear frames", (lost, MPPE_RX_EVIDENCE_SLACK + 1)),
    ] {
        let (frame, inner) = evidenced(&mut r, &mut tx, seqs);
        r.passed(&ctx(name), &frame, Some(Stat::MppeRxJump));
        userspace_takes(&mut rx, &frame, &inner);
    }
    // Longer evidenced loss runs (a CPU stalled for milliseconds): up to
    // MPPE_RX_MAX_EVIDENCED counts in the kernel, paid from the budget
    // (with it empty, userspace's); one more is userspace's. Without the
    // evidence, beyond 64 is userspace's too (the "jump beyond the
    // kernel's" above).
    // (A frame in order first: the newest sequence number the kernel
    // accepted is then this one's; the daemon's sequencer, which records
    // what userspace accepts, is not in this test.)
    r.decrypted(&ctx("in order again"), &mut tx, &FULL, &[0x21]);
    let most = MPPE_RX_MAX_EVIDENCED;
    for (name, jump, budget, taken) in [
        ("an evidenced jump of the most", most, true, true),
        ("an evidenced jump of 300", 300, true, true),
        ("an evidenced jump of 100, budget empty", 100, false, false),
        ("an evidenced jump beyond the most", most + 1, true, false),
    ] {
        shared.set_catch_up_tat(if budget { 0 } else { u64::MAX / 2 });
        let lost = u32::from(jump) - 1;
        let (frame, inner) = evidenced_jump(&mut r, &mut tx, jump, (lost, 2));
        if taken {
            r.decrypts(&ctx(name), &frame, &inner);
        } else {
            // Shown by the sequence numbers: the preparer is told.
            r.passed(&ctx(name), &frame, Some(Stat::MppeRxFar));
            // Userspace too takes the jump on the sequence numbers'
            // evidence (beyond half the count space the count alone would
            // make the frame late).
            let seq = u32::from_be_bytes(frame[42..46].try_into().unwrap());
            let frames = lost + 2 + 1;
            rx.expect(Some(SentSince {
                frames,
                newest: seq - frames,
            }));
            userspace_takes(&mut rx, &frame, &inner);
            // In order after it: the kernel's newest sequence number is
            // this frame's again (see above).
            r.decrypted(
                &ctx(&format!("{name}: in order after")),
                &mut tx,
                &FULL,
                &[0x21],
            );
        }
    }
    // Evidenced catch-ups of the peer's own frames (they decrypt to IPv4)
    // cost the budget nothing: loss runs of 299, again and again, more
    // than its burst holds (one such jump), all in the kernel.
    shared.set_catch_up_tat(0);
    for i in 0..4 {
        let (frame, inner) = evidenced_jump(&mut r, &mut tx, 300, (299, 0));
        r.decrypts(
            &ctx(&format!("the peer's jump of 300, {i}")),
            &frame,
            &inner,
        );
        assert_eq!(shared.catch_up_tat(), 0, "{}", ctx("not charged"));
    }
    // One forged by someone who sees the sequence numbers (count and
    // sequence number right, the ciphertext not the peer's): walked, does
    // not decrypt to IPv4, and then pays its extra key changes (the
    // bucket's theoretical arrival time moves that far past the clock).
    let (mut forged, _) = evidenced_jump(&mut r, &mut tx, 300, (299, 0));
    forged[14 + 20 + 16 + 4 + 2] ^= 0xFF;
    let before = monotonic_ns();
    r.passed(
        &ctx("a forged jump of 300"),
        &forged,
        Some(Stat::MppeRxNotForwarded),
    );
    let after = monotonic_ns();
    let cost = u64::from(300 - MPPE_RX_MAX_JUMP) * 1_000_000_000 / MPPE_RX_CATCH_UP_RATE;
    let tat = shared.catch_up_tat();
    assert!(
        tat >= before + cost && tat <= after + cost,
        "{}: {tat} not within {}..={}",
        ctx("the forged jump charged"),
        before + cost,
        after + cost
    );
    // The head did not move: the peer's next frame is 301 ahead (taken
    // once the budget has room again).
    shared.set_catch_up_tat(0);
    let (frame, inner) = evidenced_jump(&mut r, &mut tx, 1, (0, 0));
    r.decrypts(&ctx("the peer's frame after the forgery"), &frame, &inner);
    shared.set_catch_up_tat(0);

    // Off: without the session flag, MPPE is userspace's again.
    let seq = r.next_seq();
    dp.remove(&session(0)).unwrap();
    dp.remove_mppe_rx(SLOT).unwrap();
    dp.install(&session(SESSION_F_DECAP), Default::default())
        .unwrap();
    let before = dp.stats().unwrap();
    let frame = from_peer(&FULL, &seal(&mut tx, &[0x21], &udp(20)), seq);
    let mut out = vec![0u8; frame.len() + 256];
    let (action, len) = fib
        .ns
        .run(|| dp.test_run_program(program, &frame, &mut out, Some(fib.wan)))
        .unwrap()
        .unwrap();
    assert_eq!((action, &out[..len]), (XDP_PASS, &frame[..]));
    let after = dp.stats().unwrap();
    assert_eq!(
        after[Stat::MppeDecrypted as usize],
        before[Stat::MppeDecrypted as usize]
    );
}

#[test]
fn stateless_mppe_128_decrypted_by_pptp_xdp() {
    receive_on(programs::XDP, KeyLength::Bits128);
}

#[test]
fn stateless_mppe_56_decrypted_by_pptp_xdp() {
    receive_on(programs::XDP, KeyLength::Bits56);
}

#[test]
fn stateless_mppe_40_decrypted_by_pptp_xdp() {
    receive_on(programs::XDP, KeyLength::Bits40);
}

#[test]
fn stateless_mppe_128_decrypted_by_pptp_xdp_stack() {
    receive_on(programs::STACK, KeyLength::Bits128);
}

#[test]
fn stateless_mppe_40_decrypted_by_pptp_xdp_stack() {
    receive_on(programs::STACK, KeyLength::Bits40);
}

/// What the encapsulating program sends for an MPPE packet `mppe` with
/// PPP header `ppp` and GRE sequence number `seq` (no acknowledgment).
/// Receive with RC4 states prepared by the daemon (`dataplane::mppe_prep`):
/// the same bytes out as from the program's own key changes, counted as
/// prepared only when the entry holds the frame's position for the
/// session's epoch.
fn prepared_on(program: &'static str, length: KeyLength) {
    let fib = fib();
    netns::require_root().expect("prerequisite");
    let mut dp = XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program");
    if program == programs::STACK {
        dp.set_tunnel(fib.tunnel).unwrap();
    }
    let Keys {
        client: mut tx,
        start,
        ..
    } = keys(length);
    // Off until enabled.
    dp.install_mppe_rx(SLOT, &start).unwrap();
    assert_eq!(dp.mppe_prepared_rows(), 0);
    dp.remove_mppe_rx(SLOT).unwrap();
    dp.enable_mppe_prepare();
    dp.install_mppe_rx(SLOT, &start).unwrap();
    assert_eq!(dp.mppe_prepared_rows(), 1);
    assert_eq!(dp.prepare_mppe_now(), MPPE_PREP_DEPTH as usize);
    // The session goes and another takes its slot and row: the entries
    // prepared for the first (positions 1 to 256, the same keys, as the
    // start key is the same) carry its epoch, and the program does not
    // use them.
    dp.remove_mppe_rx(SLOT).unwrap();
    assert_eq!(dp.mppe_prepared_rows(), 0);
    dp.install_mppe_rx(SLOT, &start).unwrap();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_MPPE_RX),
        Default::default(),
    )
    .unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();
    let mut r = Runner {
        dp: &dp,
        fib: &fib,
        program,
        seq: 0,
        reasons: [0; REASONS.len()],
    };
    let ctx = |s: &str| format!("{program} {length:?}: {s}");
    let prepared = |dp: &XdpDataplane| dp.stats().unwrap()[Stat::MppeRxPrepared as usize];
    let frame = |r: &mut Runner, name: &str, tx: &mut Encryptor, from_prepared: bool| {
        let before = prepared(r.dp);
        r.decrypted(&ctx(name), tx, &FULL, &[0x21]);
        assert_eq!(
            prepared(r.dp) - before,
            u64::from(from_prepared),
            "{}: from a prepared state",
            ctx(name)
        );
    };
    frame(&mut r, "count 0, another epoch's entry", &mut tx, false);

    // Prepared from the head (position 1): in order and with small jumps.
    assert_eq!(dp.prepare_mppe_now(), MPPE_PREP_DEPTH as usize);
    for i in 0..24 {
        for _ in 0..i % 3 {
            seal(&mut tx, &[0x21], &udp(8));
        }
        frame(&mut r, &format!("prepared {i}"), &mut tx, true);
    }
    // A loss run past what is prepared (evidenced, in the budget): the
    // program's own key changes, walked from the key of the farthest
    // position the preparer keeps (head + 256, prepared by the pass just
    // before), not from the head: 20 key changes instead of 276.
    let walked = |dp: &XdpDataplane| dp.stats().unwrap()[Stat::MppeRxWalkedFromPrepared as usize];
    assert!(dp.prepare_mppe_now() > 0, "{}", ctx("up to head + 256"));
    let before = walked(&dp);
    let jump = MPPE_PREP_DEPTH as u16 + 20;
    for _ in 1..jump {
        seal(&mut tx, &[0x21], &udp(8));
    }
    r.seq += u32::from(jump) - 1;
    frame(&mut r, "a jump past the prepared", &mut tx, false);
    assert_eq!(
        walked(&dp) - before,
        1,
        "{}",
        ctx("walked from a prepared key")
    );
    // The next pass finds the head past everything it prepared (as when
    // frames outrun the preparer): it starts again half the depth ahead
    // of the head, where the program, walking meanwhile, finds them.
    let half = MPPE_PREP_DEPTH as u16 / 2;
    assert_eq!(dp.prepare_mppe_now(), usize::from(half));
    frame(&mut r, "walked while the preparer leaps", &mut tx, false);
    for _ in 1..half {
        seal(&mut tx, &[0x21], &udp(8));
    }
    r.seq += u32::from(half) - 1;
    frame(&mut r, "prepared half the depth ahead", &mut tx, true);
    frame(&mut r, "and the next", &mut tx, true);
    // A frame 1,000 counts ahead that the sequence numbers do not show
    // (a forger who does not see the traffic): to userspace, and the
    // preparer is told nothing.
    dp.prepare_mppe_now();
    let s0 = r.seq;
    for _ in 1..1_000 {
        seal(&mut tx, &[0x21], &udp(8));
    }
    let unshown = from_peer(&FULL, &seal(&mut tx, &[0x21], &udp(8)), s0 + 1);
    r.passed(
        &ctx("1,000 ahead, not shown by the sequence numbers"),
        &unshown,
        Some(Stat::MppeRxJump),
    );
    assert_eq!(dp.prepare_mppe_now(), 0, "{}", ctx("nothing to chase"));
    // A loss run longer than the program follows (6,000 frames since the
    // newest accepted, more than a turn of the count), shown by the
    // sequence numbers: to userspace, which under the load that caused
    // such a run is further behind still; the program tells the preparer
    // where the peer is, the preparer walks there and prepares after it,
    // and the program's next frame takes the chain back from those states
    // (before 2026-12-03 the chain stayed with userspace).
    let run = 6_000;
    for _ in 1_001..run {
        seal(&mut tx, &[0x21], &udp(8));
    }
    r.seq = s0 + run - 1;
    let far = from_peer(&FULL, &seal(&mut tx, &[0x21], &udp(8)), r.next_seq());
    r.passed(
        &ctx("6,000 ahead, shown by the sequence numbers"),
        &far,
        Some(Stat::MppeRxFar),
    );
    let mut passes = 0;
    while dp.prepare_mppe_now() != MPPE_PREP_DEPTH as usize + 1 {
        passes += 1;
        assert!(passes < 3, "{}: the preparer goes there", ctx(""));
    }
    frame(&mut r, "the chain back after the loss run", &mut tx, true);
    frame(&mut r, "and on from there", &mut tx, true);
    // Gone with the session: its frames (were there any) would walk.
    dp.remove_mppe_rx(SLOT).unwrap();
    assert_eq!(dp.prepare_mppe_now(), 0);
}

#[test]
fn stateless_mppe_128_decrypted_from_prepared_states_by_pptp_xdp() {
    prepared_on(programs::XDP, KeyLength::Bits128);
}

#[test]
fn stateless_mppe_40_decrypted_from_prepared_states_by_pptp_xdp_stack() {
    prepared_on(programs::STACK, KeyLength::Bits40);
}

#[test]
fn stateless_mppe_56_decrypted_from_prepared_states_by_pptp_xdp() {
    prepared_on(programs::XDP, KeyLength::Bits56);
}

fn to_peer(fib: &Fib, ppp: &[u8], mppe: &[u8], seq: u32) -> Vec<u8> {
    let mut f = eth(CLIENT_MAC, fib.wan_mac, 0x0800);
    let gre_packet = gre(0x4242, Some(seq), None, &[ppp, mppe].concat());
    f.extend_from_slice(&outer_ipv4(WAN, PEER, seq, &gre_packet));
    f
}

/// IPv4/UDP from the LAN host to the client, random payload of `len`.
fn udp_down(len: usize) -> Vec<u8> {
    with_ttl(ipv4(LAN_HOST, CLIENT, 17, &random(len)), 64)
}

/// The kernel's send side against the daemon's cipher, for one program
/// (`pptp_xdp` on the LAN side, `pptp_xdp_tunnel` for what the stack
/// routed), key length and PPP framing (`flags`: ACFC, PFC; `ppp`: the
/// header the program must write).
/// What the daemon's cipher makes at `position` of `inner` as the program
/// forwards it (one hop on, unless through the tunnel program): the
/// plaintext (protocol field 0x0021 and the packet) and the MPPE payload.
fn sealed_at(
    reference: &mut Encryptor,
    position: u64,
    inner: &[u8],
    tunnel: bool,
) -> (Vec<u8>, Vec<u8>) {
    let sent = if tunnel { inner.to_vec() } else { hop(inner) };
    let plain = [&[0x00, 0x21], &sent[..]].concat();
    if reference.position() + 1 < position {
        reference.skip_to(position, None).unwrap();
    }
    let mut mppe = vec![0u8; plain.len() + 2];
    reference.encrypt(&plain, &mut mppe).unwrap();
    assert_eq!(reference.position(), position);
    (plain, mppe)
}

/// The daemon sends a frame of its own on the send chain (a SYN it
/// clamped, say): takes a position, encrypts, publishes. Returns the
/// frame's MPPE payload and whether the head moved.
fn daemon_sends(chain: &MppeSlot<MppeTx>, user: &mut Encryptor) -> (Vec<u8>, bool) {
    chain.take(user).unwrap();
    let mut out = vec![0u8; 5];
    user.encrypt(&[0x00, 0x21, 0x45], &mut out).unwrap();
    let moved = chain.publish(user);
    (out, moved)
}

fn send_on(program: &'static str, length: KeyLength, flags: u32, ppp: &[u8]) {
    let fib = fib();
    netns::require_root().expect("prerequisite");
    let mut dp = XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program");
    let tunnel = program == programs::TUNNEL;
    if tunnel {
        dp.set_tunnel(fib.tunnel).unwrap();
    }
    let Keys {
        send_start: start,
        client_rx: mut client,
        ..
    } = keys(length);
    // The daemon's encryptor when the session went up: position 0.
    let mut user = Encryptor::new(&start, true);
    dp.install_mppe_tx(SLOT, &start, user.position(), user.session_key())
        .unwrap();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP | SESSION_F_MPPE_TX | flags),
        SeqState {
            tx_next: 100,
            ..SeqState::default()
        },
    )
    .unwrap();
    let chain = dp.mppe_tx().slot(SLOT).unwrap();
    // What the daemon's cipher makes of a packet at a given position.
    let mut reference = Encryptor::new(&start, true);
    let mut seq = 100u32;
    let ctx = |s: &str| format!("{program} {length:?} flags {flags:#x}: {s}");
    let run = |frame: &[u8]| -> (u32, Vec<u8>, [u64; 2]) {
        let before = dp.stats().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let ifindex = if tunnel {
            fib.tunnel.inject_ifindex
        } else {
            fib.lan
        };
        let (action, len) = fib
            .ns
            .run(|| dp.test_run_program(program, frame, &mut out, Some(ifindex)))
            .unwrap()
            .unwrap();
        let after = dp.stats().unwrap();
        let d = |s: Stat| after[s as usize] - before[s as usize];
        out.truncate(len);
        (
            action,
            out,
            [d(Stat::MppeEncrypted), d(Stat::MppeTxToUserspace)],
        )
    };
    let from_lan = |inner: &[u8]| {
        let mut f = eth(fib.lan_mac, LAN_HOST_MAC, 0x0800);
        f.extend_from_slice(inner);
        f
    };
    // The program encrypts a packet into `position`: the same bytes as
    // the daemon's cipher at that position, and the client decrypts them.
    let mut encrypts =
        |name: &str, position: u64, seq: &mut u32, client: &mut Decryptor, len: usize| {
            let inner = udp_down(len);
            let (action, out, counted) = run(&from_lan(&inner));
            let (plain, mppe) = sealed_at(&mut reference, position, &inner, tunnel);
            assert_eq!(action, XDP_REDIRECT, "{}: action", ctx(name));
            assert_eq!(
                out,
                to_peer(&fib, ppp, &mppe, *seq),
                "{}: output bytes",
                ctx(name)
            );
            assert_eq!(counted, [1, 0], "{}: counted as encrypted", ctx(name));
            *seq += 1;
            let mut decrypted = vec![0u8; mppe.len() - 2];
            client.decrypt(&mppe, &mut decrypted).unwrap();
            assert_eq!(decrypted, plain, "{}: the client decrypts", ctx(name));
        };

    // In order from position 1 (count 0).
    for position in 1..=5 {
        encrypts(
            &format!("position {position}"),
            position,
            &mut seq,
            &mut client,
            random_len(),
        );
    }
    let mut last = 5;
    for len in BOUNDARY_LENS {
        last += 1;
        encrypts(
            &format!("{len}-octet payload"),
            last,
            &mut seq,
            &mut client,
            len,
        );
    }
    // The daemon sends frames of its own (a SYN it clamped, say) from
    // the same chain: the kernel continues after them.
    for user_frames in [1, 3] {
        for _ in 0..user_frames {
            daemon_sends(&chain, &mut user);
            // The client loses them here; its receiver follows the jump.
        }
        last += user_frames + 1;
        encrypts(
            &format!("after {user_frames} of the daemon's"),
            last,
            &mut seq,
            &mut client,
            random_len(),
        );
    }
    // Senders that took positions and did not publish their keys (as many
    // as the kernel walks past, then one more): the kernel leaves the
    // frame to userspace untouched, the daemon's sender walks any
    // distance and publishes, and the kernel continues from there.
    let next = chain.next_position();
    assert_eq!(next, last + 1);
    for _ in 0..MPPE_TX_MAX_WALK - 1 {
        assert_eq!(
            chain.take(&mut Encryptor::new(&start, true)).map(|_| ()),
            Ok(()),
        );
    }
    encrypts(
        "past 7 positions not published",
        next + MPPE_TX_MAX_WALK - 1,
        &mut seq,
        &mut client,
        random_len(),
    );
    let next = chain.next_position();
    for _ in 0..MPPE_TX_MAX_WALK {
        let mut other = Encryptor::new(&start, true);
        chain.take(&mut other).unwrap();
    }
    let inner = udp_down(40);
    let frame = from_lan(&inner);
    let (action, out, counted) = run(&frame);
    assert_eq!(action, XDP_PASS, "{}", ctx("9 positions behind: action"));
    assert_eq!(out, frame, "{}", ctx("left to userspace untouched"));
    assert_eq!(counted, [0, 1], "{}", ctx("counted as left to userspace"));
    let position = chain.take(&mut user).unwrap();
    assert_eq!(position, next + MPPE_TX_MAX_WALK + 1);
    let mut out = vec![0u8; 30];
    user.encrypt(&[0x00, 0x21, 0x45], &mut out).unwrap();
    assert!(chain.publish(&user));
    encrypts(
        "after the daemon caught up",
        position + 1,
        &mut seq,
        &mut client,
        random_len(),
    );
    // The count wraps at 4096: the daemon sends up to position 4093 (the
    // client decrypts each), then the kernel crosses the wrap (position
    // 4097 is count 0 again).
    if length == KeyLength::Bits128 && flags == 0 {
        while chain.next_position() < 4094 {
            let (out, _) = daemon_sends(&chain, &mut user);
            let mut plain = vec![0u8; 3];
            client.decrypt(&out, &mut plain).unwrap();
            assert_eq!(plain, [0x00, 0x21, 0x45]);
        }
        for position in 4094..=4100 {
            encrypts(
                &format!("position {position}"),
                position,
                &mut seq,
                &mut client,
                random_len(),
            );
        }
    }
    dp.remove(&session(0)).unwrap();
    dp.remove_mppe_tx(SLOT).unwrap();
}

#[test]
fn stateless_mppe_128_encrypted_by_pptp_xdp() {
    send_on(programs::XDP, KeyLength::Bits128, 0, &FULL);
}

#[test]
fn stateless_mppe_56_encrypted_by_pptp_xdp_with_acfc() {
    send_on(
        programs::XDP,
        KeyLength::Bits56,
        SESSION_F_ACFC,
        &[0x00, 0xFD],
    );
}

#[test]
fn stateless_mppe_40_encrypted_by_pptp_xdp_with_pfc() {
    send_on(
        programs::XDP,
        KeyLength::Bits40,
        SESSION_F_PFC,
        &[0xFF, 0x03, 0xFD],
    );
}

#[test]
fn stateless_mppe_128_encrypted_by_pptp_xdp_tunnel_with_acfc_and_pfc() {
    send_on(
        programs::TUNNEL,
        KeyLength::Bits128,
        SESSION_F_ACFC | SESSION_F_PFC,
        &[0xFD],
    );
}

/// The send side with states the daemon prepared (`PPTP_MPPE_TX_PREP`):
/// the program encrypts with the prepared permutation of the frame's
/// position instead of a key change and a key schedule, to the same bytes
/// as the daemon's cipher; a state of another epoch (the slot's earlier
/// session) or beyond what is prepared is not used, and a prepared
/// position needs no walk from the newest key published.
fn send_prepared_on(program: &'static str, length: KeyLength) {
    let fib = fib();
    netns::require_root().expect("prerequisite");
    let mut dp = XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program");
    let tunnel = program == programs::TUNNEL;
    if tunnel {
        dp.set_tunnel(fib.tunnel).unwrap();
    }
    let ifindex = if tunnel {
        fib.tunnel.inject_ifindex
    } else {
        fib.lan
    };
    let Keys {
        send_start: start,
        client_rx: mut client,
        ..
    } = keys(length);
    let user = Encryptor::new(&start, true);
    // Off until enabled.
    dp.install_mppe_tx(SLOT, &start, user.position(), user.session_key())
        .unwrap();
    assert_eq!(dp.mppe_tx_prepared_rows(), 0);
    dp.remove_mppe_tx(SLOT).unwrap();
    dp.enable_mppe_prepare();
    dp.install_mppe_tx(SLOT, &start, user.position(), user.session_key())
        .unwrap();
    assert_eq!(dp.mppe_tx_prepared_rows(), 1);
    assert_eq!(dp.prepare_mppe_now(), MPPE_PREP_DEPTH as usize);
    // The session goes and another takes its slot and row: the entries
    // prepared for the first (the same keys: the same start key) carry its
    // epoch, and the program does not use them.
    dp.remove_mppe_tx(SLOT).unwrap();
    assert_eq!(dp.mppe_tx_prepared_rows(), 0);
    dp.install_mppe_tx(SLOT, &start, user.position(), user.session_key())
        .unwrap();
    assert_eq!(dp.mppe_tx_prepared_rows(), 1);
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP | SESSION_F_MPPE_TX),
        SeqState {
            tx_next: 100,
            ..SeqState::default()
        },
    )
    .unwrap();
    let chain = dp.mppe_tx().slot(SLOT).unwrap();
    let mut reference = Encryptor::new(&start, true);
    let mut seq = 100u32;
    let ctx = |s: &str| format!("{program} {length:?}: {s}");
    // Runs the program on a packet from the LAN; it must encrypt it into
    // `position` (from a prepared state or not) exactly as the daemon's
    // cipher does, and the client must decrypt it.
    let mut encrypts = |name: &str, position: u64, from_prepared: bool| {
        let inner = udp_down(random_len());
        let mut frame = eth(fib.lan_mac, LAN_HOST_MAC, 0x0800);
        frame.extend_from_slice(&inner);
        let before = dp.stats().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = fib
            .ns
            .run(|| dp.test_run_program(program, &frame, &mut out, Some(ifindex)))
            .unwrap()
            .unwrap();
        out.truncate(len);
        let after = dp.stats().unwrap();
        let d = |s: Stat| after[s as usize] - before[s as usize];
        let (plain, mppe) = sealed_at(&mut reference, position, &inner, tunnel);
        assert_eq!(action, XDP_REDIRECT, "{}: action", ctx(name));
        assert_eq!(
            out,
            to_peer(&fib, &FULL, &mppe, seq),
            "{}: output bytes",
            ctx(name)
        );
        assert_eq!(
            [d(Stat::MppeEncrypted), d(Stat::MppeTxPrepared)],
            [1, u64::from(from_prepared)],
            "{}: counted as encrypted (and from a prepared state)",
            ctx(name)
        );
        seq += 1;
        let mut decrypted = vec![0u8; mppe.len() - 2];
        client.decrypt(&mppe, &mut decrypted).unwrap();
        assert_eq!(decrypted, plain, "{}: the client decrypts", ctx(name));
    };
    encrypts("position 1, another epoch's entry", 1, false);

    // Prepared after the head (position 1): every frame from its state,
    // the daemon's own frames (a SYN it clamped, say) between them.
    assert_eq!(dp.prepare_mppe_now(), MPPE_PREP_DEPTH as usize);
    let mut user = Encryptor::new(&start, true);
    let mut position = 1;
    for i in 0..20u64 {
        for _ in 0..i % 3 {
            assert!(daemon_sends(&chain, &mut user).1);
            position += 1;
        }
        position += 1;
        encrypts(&format!("prepared {i}"), position, true);
    }
    // Senders that took more positions than the program walks past and
    // did not publish (without a prepared state the frame would go to
    // userspace, see `send_on`): a prepared position needs no walk.
    for _ in 0..=MPPE_TX_MAX_WALK {
        chain.take(&mut Encryptor::new(&start, true)).unwrap();
    }
    position += MPPE_TX_MAX_WALK + 2;
    encrypts("prepared, 9 positions past the newest key", position, true);
    // The daemon sends past everything prepared: the program walks from
    // its newest key again, and the next pass prepares after the head.
    let mut user = Encryptor::new(&start, true);
    while chain.next_position() <= position + u64::from(MPPE_PREP_DEPTH) {
        assert!(daemon_sends(&chain, &mut user).1);
    }
    position = chain.next_position();
    encrypts("past the prepared", position, false);
    // The next pass finds the head past everything it prepared (as when
    // frames outrun the preparer): it starts again half the depth ahead of
    // the head, where the senders, walking meanwhile, find them.
    let half = u64::from(MPPE_PREP_DEPTH / 2);
    assert_eq!(dp.prepare_mppe_now(), half as usize);
    encrypts("walked while the preparer leaps", position + 1, false);
    while chain.next_position() <= position + half {
        assert!(daemon_sends(&chain, &mut user).1);
    }
    for i in 1..=3 {
        encrypts(&format!("prepared again {i}"), position + half + i, true);
    }
    dp.remove(&session(0)).unwrap();
    dp.remove_mppe_tx(SLOT).unwrap();
    assert_eq!(dp.mppe_tx_prepared_rows(), 0);
}

#[test]
fn stateless_mppe_128_encrypted_from_prepared_states_by_pptp_xdp() {
    send_prepared_on(programs::XDP, KeyLength::Bits128);
}

#[test]
fn stateless_mppe_40_encrypted_from_prepared_states_by_pptp_xdp() {
    send_prepared_on(programs::XDP, KeyLength::Bits40);
}

#[test]
fn stateless_mppe_56_encrypted_from_prepared_states_by_pptp_xdp_tunnel() {
    send_prepared_on(programs::TUNNEL, KeyLength::Bits56);
}
