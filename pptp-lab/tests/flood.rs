//! GRE floods against the real daemon across network namespaces (issue
//! 17): random call IDs, the right call IDs from a spoofed source address,
//! and a data flood (frames that go to userspace) on an MPPE session's own
//! call, all from the client namespace towards the server's WAN address,
//! bounded in count
//! and time. Meanwhile a fast-path session keeps answering pings and a new
//! session sets up in normal time; afterwards the XDP program's counters
//! account for the flood and the daemon's userspace receive path saw only
//! a small part of it. Needs root; fails (never skips) without it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use pptp_lab::lab::{LAB_LIMITS, LAN_HOST, Lab, LabOptions, SERVER_WAN};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, client_without_route, raw_gre_socket, wait_up};

/// The spoofing host's address, next to the legitimate client's on c0.
const SPOOFED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 77);
/// Frames of each of the three floods.
const PER_FLOOD: u64 = 70_000;
/// The floods are spread over about this long.
const FLOOD_TIME: Duration = Duration::from_secs(4);
/// Data frames per second and burst one call may send up to the daemon.
const DATA_RATE: u64 = 5000;
const DATA_BURST: u64 = 500;

/// Enhanced GRE (RFC 2637 section 4.1) with a sequence number, carrying
/// `ppp`.
fn gre(call_id: u16, seq: u32, ppp: &[u8]) -> Vec<u8> {
    let mut g = vec![0x30, 0x01, 0x88, 0x0B];
    g.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&seq.to_be_bytes());
    g.extend_from_slice(ppp);
    g
}

/// Replies `ping` got out of `count` from `from` to the LAN host.
/// Frames c0 (the client's end of the WAN link) dropped on sending: the
/// veth drops what the server's end cannot take in (its XDP ring full,
/// when other tests load the CPUs), before any program sees it.
fn c0_tx_dropped(lab: &Lab) -> u64 {
    let out = lab
        .topology
        .client
        .command("cat")
        .arg("/sys/class/net/c0/statistics/tx_dropped")
        .output()
        .expect("reading c0's tx_dropped");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("c0 tx_dropped {out:?}: {e}"))
}

fn ping_replies(lab: &Lab, from: &str, count: u32) -> u32 {
    let out = lab
        .topology
        .client
        .command("ping")
        .args([
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            from,
            LAN_HOST,
        ])
        .output()
        .expect("ping (install iputils-ping: `cargo xtask setup`)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn gre_floods_are_stopped_in_the_kernel() {
    netns::require_root().expect("prerequisite");
    let lab = Lab::start(
        bin(),
        &LabOptions {
            limits: format!(
                "{LAB_LIMITS}userspace_frames_per_call = {DATA_RATE}\n\
                 userspace_frames_burst = {DATA_BURST}\n"
            ),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    lab.topology
        .client
        .ip(&["addr", "add", &format!("{SPOOFED}/24"), "dev", "c0"])
        .expect("spoofed address");

    // A userspace session (MPPE) whose call the data flood targets, then
    // the fast-path session that holds the route to the LAN.
    let mut mppe = client_without_route(&lab, &["--mppe", "--tun", "mppe0"]);
    let mppe_up = wait_up(&mut mppe, &lab, Duration::from_secs(30));
    let mut plain = lab.client(&["--tun", "plain0"]).unwrap();
    let plain_addr = wait_up(&mut plain, &lab, Duration::from_secs(30))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ping_replies(&lab, &plain_addr, 3),
        3,
        "{}",
        lab.daemon_log()
    );
    let sessions = lab.sessions().unwrap();
    // (Both are on the XDP path: stateless MPPE is received there too, and
    // what the flood sends, MPPE frames without the D bit, goes up.)
    let call_of = |mppe: bool| {
        sessions
            .iter()
            .find(|s| s.mppe.is_some() == mppe)
            .unwrap_or_else(|| panic!("no session with mppe {mppe} in {sessions:?}"))
            .call_id
    };
    let mppe_call = call_of(true);
    let plain_call = call_of(false);
    assert_eq!(mppe_up["mppe"], Value::Bool(true));
    let before = lab.stats().unwrap();
    let dropped_before = c0_tx_dropped(&lab);

    // The floods, interleaved, paced to FLOOD_TIME.
    let running = Arc::new(AtomicBool::new(true));
    let flood = {
        let real = raw_gre_socket(&lab.topology.client);
        let spoofer = raw_gre_socket(&lab.topology.client);
        spoofer
            .bind(&SocketAddr::from((SPOOFED, 0)).into())
            .expect("binding the spoofed address");
        let running = running.clone();
        std::thread::spawn(move || {
            let dst = SocketAddr::from((SERVER_WAN.parse::<Ipv4Addr>().unwrap(), 0)).into();
            // LCP Configure-Request, and an MPPE frame (protocol 0x00FD,
            // flushed, coherency count 1) of junk.
            let lcp = [0xFF, 0x03, 0xC0, 0x21, 1, 1, 0, 4];
            let mut mppe_frame = vec![0xFF, 0x03, 0x00, 0xFD, 0x80, 0x01];
            mppe_frame.extend_from_slice(&[0x5a; 60]);
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let started = Instant::now();
            let mut sent = [0u64; 3];
            for i in 0..PER_FLOOD {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let random_call = rng as u16;
                let seq = i as u32;
                if random_call != mppe_call && random_call != plain_call {
                    sent[0] += real.send_to(&gre(random_call, seq, &lcp), &dst).is_ok() as u64;
                }
                let target = if i % 2 == 0 { plain_call } else { mppe_call };
                sent[1] += spoofer.send_to(&gre(target, seq, &lcp), &dst).is_ok() as u64;
                sent[2] += real
                    .send_to(&gre(mppe_call, seq, &mppe_frame), &dst)
                    .is_ok() as u64;
                if i % 1000 == 999 {
                    let due = FLOOD_TIME.mul_f64((i + 1) as f64 / PER_FLOOD as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            running.store(false, Ordering::Relaxed);
            (sent, started.elapsed())
        })
    };

    // During the flood: a new session sets up, the fast-path one answers.
    std::thread::sleep(Duration::from_millis(500));
    let setup_started = Instant::now();
    let mut newcomer = client_without_route(&lab, &["--tun", "new0"]);
    let new_up = wait_up(&mut newcomer, &lab, Duration::from_secs(30));
    let setup = setup_started.elapsed();
    let replies = ping_replies(&lab, &plain_addr, 10);
    let still_flooding = running.load(Ordering::Relaxed);
    let (sent, took) = flood.join().unwrap();
    // Counters are read once the last frames are through.
    std::thread::sleep(Duration::from_millis(300));
    let after = lab.stats().unwrap();
    let veth_dropped = c0_tx_dropped(&lab) - dropped_before;
    let delta = |k: &str| {
        // (A counter the daemon lacks reads 0, and the checks below fail.)
        after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
    };
    let unknown = delta("xdp_gre_unknown_call");
    let data_limited = delta("xdp_userspace_data_limited");
    let control_limited = delta("xdp_userspace_control_limited");
    let to_userspace = delta("xdp_gre_to_userspace");
    let userspace_rx = delta("userspace_gre_rx");
    let total: u64 = sent.iter().sum();
    println!(
        "flood: sent {sent:?} = {total} frames in {took:?}; new session up in {setup:?} \
         (its own setup_ms {}), during the flood: {still_flooding}; pings {replies}/10; \
         xdp_gre_unknown_call {unknown}, xdp_userspace_data_limited {data_limited}, \
         xdp_userspace_control_limited {control_limited}, xdp_gre_to_userspace {to_userspace}, \
         userspace_gre_rx {userspace_rx}, userspace_gre_unknown_call {}, \
         userspace_gre_control_first {}, dropped by c0 before XDP {veth_dropped}",
        new_up["setup_ms"],
        delta("userspace_gre_unknown_call"),
        delta("userspace_gre_control_first"),
    );

    assert!(
        still_flooding,
        "the new session came up after the flood ended"
    );
    assert!(
        setup < Duration::from_secs(5),
        "new session took {setup:?} during the flood"
    );
    assert!(
        replies >= 9,
        "the fast-path session answered {replies}/10 pings"
    );
    // Random call IDs and spoofed sources: all dropped in the kernel (but
    // a random ID that the new session happened to be given meanwhile, and
    // what the veth dropped before the program saw it, of any of the three
    // floods: a loaded CPU's, not the daemon's doing).
    let spurious = sent[0] + sent[1];
    assert!(
        unknown <= spurious && (unknown + veth_dropped) * 1000 >= spurious * 999,
        "unknown {unknown} of {spurious} sent ({veth_dropped} dropped by c0)"
    );
    // The data flood on the MPPE call: the call's data bucket lets through
    // what its rate allows over the flood's time (plus the last frames'
    // way through), the rest dropped.
    let admitted = sent[2] - data_limited;
    let allowed = DATA_BURST + (DATA_RATE as f64 * (took.as_secs_f64() + 0.5)) as u64;
    assert!(
        admitted <= allowed && data_limited >= sent[2] / 2,
        "data flood: {data_limited} of {} dropped, {admitted} admitted (allowed {allowed})",
        sent[2]
    );
    // Userspace saw a small part of the flood (its own sessions' frames
    // included).
    assert!(
        userspace_rx < total / 5,
        "userspace received {userspace_rx} of {total}"
    );
    // Every session survived, the flooded MPPE one included.
    let sessions = lab.sessions().unwrap();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    drop(newcomer);
    drop(plain);
    drop(mppe);
}
