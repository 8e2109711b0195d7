//! A stateless MPPE session whose peer's key chain the daemon lost: its
//! sender went on through 4096 or more frames that never arrived, so the
//! 12-bit coherency count wrapped and every later frame decrypts with the
//! wrong key. MPPE has no way back (RFC 3078); the daemon ends the session
//! (`ended_mppe_sync_lost`, RADIUS Acct-Terminate-Cause Port Error) as
//! pppd ends the link, rather than keeping a session up that carries
//! nothing. Frames in step before that are delivered. Needs root; fails
//! (never skips) without it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use pptp_daemon::mppe::{KeyLength, cipher::Encryptor, keys::StartKey};
use pptp_lab::lab::{LAN_HOST, Lab, LabOptions, SERVER_WAN};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, client_without_route as client, raw_gre_socket, wait_up};

/// An IPv4/UDP packet from `src` to the LAN host, behind PPP protocol
/// 0x0021, as MPPE encrypts it.
fn plaintext(src: Ipv4Addr) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&LAN_HOST.parse::<Ipv4Addr>().unwrap().octets());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip.extend_from_slice(&[0, 9, 0, 9, 0, 28, 0, 0]);
    ip.resize(48, 0x5a);
    [&[0x00, 0x21][..], &ip].concat()
}

/// Enhanced GRE with sequence number `seq` for `call_id`, carrying PPP
/// `protocol` and its `packet`.
fn gre_ppp(call_id: u16, seq: u32, protocol: u16, packet: &[u8]) -> Vec<u8> {
    let ppp = [&[0xFF, 0x03][..], &protocol.to_be_bytes(), packet].concat();
    let mut g = vec![0x30, 0x01, 0x88, 0x0B];
    g.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&seq.to_be_bytes());
    g.extend_from_slice(&ppp);
    g
}

fn stat(lab: &Lab, name: &str) -> u64 {
    lab.stats().unwrap().get(name).copied().unwrap_or(0)
}

/// The client's sending side, played by the test: its MPPE send key
/// (from `client --report-mppe-keys`) and GRE sequence numbers, frames
/// sent from a raw socket in the client's namespace.
struct Peer {
    tx: Encryptor,
    call: u16,
    address: Ipv4Addr,
    socket: socket2::Socket,
    dst: socket2::SockAddr,
    seq: u32,
}

impl Peer {
    fn new(lab: &Lab, up: &Value) -> Peer {
        let hex = up["mppe_keys"]["send"]
            .as_str()
            .unwrap_or_else(|| panic!("no keys: {up}"));
        let octets: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let key = StartKey::new(&octets, KeyLength::Bits128).unwrap();
        Peer {
            tx: Encryptor::new(&key, true),
            call: up["peer_call_id"].as_u64().unwrap() as u16,
            address: up["address"].as_str().unwrap().parse().unwrap(),
            socket: raw_gre_socket(&lab.topology.client),
            dst: SocketAddr::from((SERVER_WAN.parse::<Ipv4Addr>().unwrap(), 0)).into(),
            seq: 1_000_000,
        }
    }

    /// `n` encrypted IPv4 frames, 2 ms apart, in sequence.
    fn send(&mut self, n: usize) {
        self.send_from(self.address, n);
    }

    /// As [`Self::send`], with inner source address `src`.
    fn send_from(&mut self, src: Ipv4Addr, n: usize) {
        for _ in 0..n {
            let clear = plaintext(src);
            let mut mppe = vec![0u8; clear.len() + 2];
            self.tx.encrypt(&clear, &mut mppe).unwrap();
            self.send_ppp(0x00FD, &mppe);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// One PPP frame of `protocol`, next in sequence.
    fn send_ppp(&mut self, protocol: u16, packet: &[u8]) {
        self.socket
            .send_to(&gre_ppp(self.call, self.seq, protocol, packet), &self.dst)
            .unwrap();
        self.seq += 1;
    }

    /// `n` coherency counts used up without sending (frames lost with
    /// their sequence numbers when `with_sequence_numbers`).
    fn lose(&mut self, n: u32, with_sequence_numbers: bool) {
        let mut scratch = vec![0u8; 64];
        for _ in 0..n {
            self.tx
                .encrypt(&plaintext(self.address), &mut scratch)
                .unwrap();
        }
        if with_sequence_numbers {
            self.seq += n;
        }
    }
}

/// A lab whose userspace path decrypts (no XDP: the daemon's own
/// receiver), keepalives on or off, with our client's MPPE session up on
/// TUN device `tun`; the client, and the test's side of its sending.
fn session(keepalives: bool, tun: &str) -> (Lab, pptp_lab::lab::Process, Peer) {
    netns::require_root().expect("prerequisite");
    let mut lab = Lab::start(
        bin(),
        &LabOptions {
            xdp: false,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if !keepalives {
        lab.edit_config(|t| t.replace("lcp_echo_interval_secs = 5", "lcp_echo_interval_secs = 0"))
            .unwrap();
        lab.restart_daemon().unwrap();
    }
    let mut target = client(&lab, &["--mppe", "--report-mppe-keys", "--tun", tun]);
    let up = wait_up(&mut target, &lab, Duration::from_secs(30));
    let mut peer = Peer::new(&lab, &up);
    // In step: delivered.
    let before = stat(&lab, "userspace_data_rx_packets");
    peer.send(20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        stat(&lab, "userspace_data_rx_packets") - before,
        20,
        "frames in step are delivered"
    );
    assert_eq!(stat(&lab, "ended_mppe_sync_lost"), 0);
    (lab, target, peer)
}

/// Waits up to 10 s for the session to be gone; whether it is.
fn ended(lab: &Lab) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.sessions().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.sessions().unwrap().is_empty()
}

#[test]
fn a_session_whose_key_chain_is_lost_is_ended() {
    let (lab, mut target, mut peer) = session(true, "msy0");

    // 4096 counts used up (the frames lost, their sequence numbers not):
    // the count wraps, the key chain is lost.
    peer.lose(4096, false);
    peer.send(63);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.sessions().unwrap().len(),
        1,
        "63 undecryptable frames: still up"
    );
    peer.send(10);
    assert!(ended(&lab), "the session was not ended");
    assert_eq!(stat(&lab, "ended_mppe_sync_lost"), 1);
    // The client was told (LCP Terminate-Request, then the call cleared).
    let down = target
        .wait_for_line(Duration::from_secs(10), |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == "down")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(down.contains("down"), "{down}");
}

/// The server's LCP Echo-Requests on `socket` (raw GRE, IPv4 header
/// first): their identifiers, waiting up to `within` for the first.
fn echo_requests(socket: &socket2::Socket, within: Duration) -> Vec<u8> {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut ids = Vec::new();
    let mut buf = [0u8; 2048];
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while Instant::now() < deadline && ids.is_empty() {
        let Ok(n) = (&*socket).read(&mut buf) else {
            continue;
        };
        let packet = &buf[..n];
        let ihl = usize::from(packet[0] & 0x0F) * 4;
        let Some(gre) = packet.get(ihl..) else {
            continue;
        };
        if gre.len() < 8 || u16::from_be_bytes([gre[2], gre[3]]) != 0x880B {
            continue;
        }
        let mut at = 8;
        if gre[0] & 0x10 != 0 {
            at += 4; // sequence number
        }
        if gre[1] & 0x80 != 0 {
            at += 4; // acknowledgment number
        }
        let mut ppp = gre.get(at..).unwrap_or_default();
        if ppp.starts_with(&[0xFF, 0x03]) {
            ppp = &ppp[2..];
        }
        if ppp.len() >= 4 && ppp[..2] == [0xC0, 0x21] && ppp[2] == 9 {
            ids.push(ppp[3]);
        }
    }
    ids
}

/// A loss run longer than the key chain can be followed over (more than
/// 16 turns of the count, 65,536 frames: beyond the bounded work the
/// daemon spends on one jump). The frames after it are far ahead of the
/// newest GRE sequence number accepted, which is no evidence that they
/// are the peer's (a blind spoofer guesses such numbers), so they neither
/// decrypt nor count towards ending the session. The server asks the peer
/// for a frame in its sequence (an LCP Echo-Request, whatever the
/// keepalive setting: it is off here); the Echo-Reply brings the sequence
/// numbers back in line, and the session ends by the chain-lost rule. It
/// is never left up for good carrying nothing.
#[test]
fn a_loss_run_beyond_the_followed_jump_ends_the_session_after_a_probe() {
    // No keepalives: an Echo-Request can only be the probe.
    let (lab, _target, mut peer) = session(false, "msy1");
    assert!(
        echo_requests(&peer.socket, Duration::from_millis(500)).is_empty(),
        "no Echo-Request while the frames decrypt"
    );

    // 70,000 frames lost on the way: counts and sequence numbers both ran on.
    peer.lose(70_000, true);
    let delivered = stat(&lab, "userspace_data_rx_packets");
    peer.send(40);
    let probes = echo_requests(&peer.socket, Duration::from_secs(3));
    assert!(!probes.is_empty(), "the server did not probe the peer");
    assert_eq!(
        stat(&lab, "userspace_data_rx_packets"),
        delivered,
        "nothing after the loss run decrypts (no garbage is delivered)"
    );
    assert_eq!(stat(&lab, "ended_mppe_sync_lost"), 0);
    assert_eq!(lab.sessions().unwrap().len(), 1);

    // The peer answers in its sequence.
    peer.send_ppp(0xC021, &[10, probes[0], 0, 8, 0, 0, 0, 0]);
    std::thread::sleep(Duration::from_millis(100));
    peer.send(70);
    assert!(
        ended(&lab),
        "the session was not ended once the sequence numbers were back in line"
    );
    assert_eq!(stat(&lab, "ended_mppe_sync_lost"), 1);
    assert_eq!(
        stat(&lab, "userspace_data_rx_packets"),
        delivered,
        "no garbage was delivered"
    );
}

/// A session whose frames a device queue drops in runs, as one does when
/// the peer sends faster than the receiver decrypts: the sequence numbers
/// show that the peer sent every frame of a run, so the kernel stays on
/// the key chain however long the loss goes on (its catch-up budget,
/// which frames without that evidence draw on, would be empty within the
/// first 20 runs here; up to 2,048 counts, free when the frames decrypt),
/// and runs longer than the kernel follows are caught
/// up in userspace at every frame, far beyond its own rekey budget, and
/// handed back; and a run whose next frame userspace does not take is
/// followed by the kernel from states the daemon prepared where the peer
/// is. Before that evidence counted, a bench run that offered a session
/// 150,000 frames a second left it delivering nothing from then on.
#[test]
fn loss_runs_the_sequence_numbers_account_for_never_lose_the_chain() {
    netns::require_root().expect("prerequisite");
    let lab = Lab::start(
        bin(),
        &LabOptions {
            mppe: "require",
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut target = client(&lab, &["--mppe", "--report-mppe-keys", "--tun", "msy2"]);
    let up = wait_up(&mut target, &lab, Duration::from_secs(30));
    let mut peer = Peer::new(&lab, &up);
    let counters = |lab: &Lab| {
        let s = lab.stats().unwrap();
        let get = |k: &str| s.get(k).copied().unwrap_or(0);
        [
            get("xdp_mppe_decrypted"),
            get("xdp_mppe_to_userspace"),
            get("userspace_data_rx_packets"),
            get("userspace_mppe_rekey_dropped"),
        ]
    };
    // What changed since `before`: (kernel decrypted, left to userspace,
    // userspace delivered, rekey drops).
    let changed = |lab: &Lab, before: [u64; 4], want: [u64; 4]| {
        // The XDP counters are summed over CPUs when read: give the last
        // frames a moment.
        std::thread::sleep(Duration::from_millis(300));
        let after = counters(lab);
        assert_eq!(
            [0, 1, 2, 3].map(|i| after[i] - before[i]),
            want,
            "(kernel decrypted, left to userspace, userspace delivered, rekey drops)\n{}",
            lab.daemon_log()
        );
    };

    // 300 runs of 39 lost frames: 11,400 extra key changes in 0.6 s, where
    // the budget for frames without evidence holds 512 and refills 4,096 a
    // second. Every frame after a run is decrypted in the kernel.
    let before = counters(&lab);
    peer.send(10);
    for _ in 0..300 {
        peer.lose(39, true);
        peer.send(1);
    }
    changed(&lab, before, [310, 0, 0, 0]);

    // Runs beyond the 64 counts the kernel follows free on the evidence
    // alone: 5 of 99 lost frames, then 20 of 599 (beyond the budget's
    // burst of 512). Within the 2,048 counts it follows on the evidence
    // when the budget has room, and since their frames decrypt, the
    // budget pays nothing. A CPU stalled for milliseconds loses such
    // runs: until 2026-12-03 runs of 99 went to userspace, until
    // 2026-12-04 runs of 599, and under a load that outran the CPU the
    // session then lost its chain (guest runs M13 and M14).
    for (runs, lost) in [(5u32, 99), (20, 599)] {
        let before = counters(&lab);
        for _ in 0..runs {
            peer.lose(lost, true);
            peer.send(1);
        }
        peer.send(10);
        changed(&lab, before, [u64::from(runs) + 10, 0, 0, 0]);
    }

    // 60 runs of 2,099 lost frames, beyond the 2,048 counts the kernel
    // follows: 125,880 extra key changes, beyond userspace's budget of
    // 4,096 at once and 2,048 a second. Userspace takes each one on the
    // evidence, and the kernel goes on from its chain.
    let before = counters(&lab);
    for run in 0..60 {
        peer.lose(2_099, true);
        peer.send(1);
        // Until userspace has taken the frame and handed the chain back,
        // the peer's next frames would go up too (far ahead of the
        // kernel's head), and any the kernel took meanwhile would make
        // them late: on a loaded machine, wait for it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while counters(&lab)[2] - before[2] <= run && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    peer.send(10);
    changed(&lab, before, [10, 60, 60, 0]);

    // A run of 2,999 lost frames whose next frame userspace does not move
    // the chain for (its inner source is not the client's: dropped,
    // nothing published; as when userspace, under the load that caused
    // the run, lags further behind than the kernel follows): the kernel
    // told the daemon's preparer where the peer is, and the frames after
    // it are decrypted in the kernel from the states prepared there. Until
    // 2026-12-03 they went to userspace, each too far ahead of the head.
    let before = counters(&lab);
    peer.lose(2_999, true);
    peer.send_from(Ipv4Addr::new(198, 18, 99, 99), 1);
    std::thread::sleep(Duration::from_millis(300));
    peer.send(10);
    changed(&lab, before, [10, 1, 0, 0]);
    assert_eq!(lab.sessions().unwrap().len(), 1);
    assert_eq!(stat(&lab, "ended_mppe_sync_lost"), 0);
}
