//! One CPU sends each session's frames (`dataplane.steer_sends`, on by
//! default): traffic for one client that arrives on two CPUs at once, as
//! a multi-queue NIC delivers several flows, leaves the server in the
//! order of its GRE sequence numbers and MPPE coherency counts. Linux's
//! pptp drops a GRE data frame that arrives after a higher sequence
//! number, and ppp_mppe one that arrives after a higher count; kernel PPTP
//! sends a channel's frames one at a time, and so must we.
//!
//! The lab's LAN link has two queues here; senders on two CPUs send UDP
//! to the client from many source ports (both queues, so under `xdp`
//! forwarding the XDP program on l0 runs on both CPUs at the same time),
//! alone on each CPU and then on both at once; a capture on the client's
//! link reads every GRE data frame from the server. Without steering, 59
//! of 44,000 clear frames and 585 of 44,000 MPPE frames arrived after a
//! higher sequence number here. Under `stack` forwarding the stack routes
//! into the tunnel device; with one queue (the default) the pair's program
//! runs on one CPU at a time and nothing is steered; with
//! `tunnel_queues = "per_cpu"` each CPU forwards through its own queue
//! (XPS), the program runs on both CPUs at once, and steering keeps the
//! order (without it, 110 to 165 of 44,000 MPPE frames arrived after a
//! higher sequence number).
//! Needs root and two CPUs; fails (never skips) without them.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use pptp_lab::lab::{LAN_HOST, Lab, LabOptions, SERVER_WAN, Topology};
use pptp_netns::{self as netns, RawSocket};

mod common;
use common::{bin, wait_up};

/// Datagrams each sender sends in the phase where both send at once.
const CONCURRENT: usize = 20_000;
/// Datagrams of each phase with one sender.
const ALONE: usize = 2_000;
/// Source ports each sender rotates through: its flows hash to both
/// queues of the LAN link.
const FLOWS: usize = 8;

/// What the capture saw of one GRE data frame from the server.
#[derive(Clone, Copy, Debug)]
struct DataFrame {
    seq: u32,
    /// The MPPE coherency count, for an MPPE frame.
    count: Option<u16>,
}

/// The GRE data frame (PPP IPv4 or MPPE) from the server in Ethernet
/// frame `f`, if it is one.
fn data_frame(f: &[u8], server: [u8; 4]) -> Option<DataFrame> {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0F) * 4;
    if ip[9] != 47 || ip[12..16] != server || ip.len() < ihl + 8 {
        return None;
    }
    let gre = &ip[ihl..];
    let flags = u16::from_be_bytes([gre[0], gre[1]]);
    if flags & 0x1000 == 0 || gre.len() < 12 {
        return None; // no sequence number: an ack-only frame
    }
    let seq = u32::from_be_bytes([gre[8], gre[9], gre[10], gre[11]]);
    let mut ppp = &gre[if flags & 0x0080 != 0 { 16 } else { 12 }..];
    if ppp.len() >= 2 && ppp[..2] == [0xFF, 0x03] {
        ppp = &ppp[2..];
    }
    let (protocol, rest) = match ppp {
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return None,
    };
    match protocol {
        0x0021 => Some(DataFrame { seq, count: None }),
        0x00FD if rest.len() >= 2 => Some(DataFrame {
            seq,
            count: Some(u16::from_be_bytes([rest[0], rest[1]]) & 0x0FFF),
        }),
        _ => None,
    }
}

/// Senders in the LAN namespace, one per CPU of `cpus`, at the same time,
/// each sending `count` datagrams of 64 bytes to `to` from [`FLOWS`]
/// source ports in turn.
fn send_from(lab: &Lab, cpus: &[usize], count: usize, to: (Ipv4Addr, u16)) {
    lab.topology
        .lan
        .run(|| {
            std::thread::scope(|s| {
                for &cpu in cpus {
                    s.spawn(move || {
                        netns::pin_to_cpu(cpu).expect("pinning a sender");
                        let sockets: Vec<UdpSocket> = (0..FLOWS)
                            .map(|_| UdpSocket::bind((LAN_HOST, 0)).expect("bind"))
                            .collect();
                        let payload = [0x5a; 64];
                        for i in 0..count {
                            // A full queue drops; the order is what counts.
                            let _ = sockets[i % FLOWS].send_to(&payload, to);
                        }
                    });
                }
            });
        })
        .expect("entering the LAN namespace");
}

/// The frames XDP ran on from each receive queue of `dev` in the server's
/// namespace (`ethtool -S`: `rx_queue_<n>_xdp_packets`), by queue.
fn xdp_frames_per_queue(lab: &Lab, dev: &str) -> Vec<u64> {
    let out = lab
        .topology
        .server
        .command("ethtool")
        .args(["-S", dev])
        .output()
        .expect("ethtool (cargo xtask setup installs it)");
    assert!(out.status.success(), "ethtool -S {dev}: {out:?}");
    let mut queues = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((name, value)) = line.trim().split_once(':') else {
            continue;
        };
        if let Some(queue) = name
            .strip_prefix("rx_queue_")
            .and_then(|q| q.strip_suffix("_xdp_packets"))
        {
            let queue: usize = queue.parse().expect("queue number");
            if queues.len() <= queue {
                queues.resize(queue + 1, 0);
            }
            queues[queue] = value.trim().parse().expect("counter");
        }
    }
    queues
}

/// How the server is set up: `dataplane.forwarding` and more keys of
/// `[dataplane]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// `forwarding = "xdp"`: the LAN link's two queues, steered.
    Xdp,
    /// `forwarding = "stack"`, one tunnel queue: one CPU at a time, not
    /// steered.
    StackOneQueue,
    /// `forwarding = "stack"`, `tunnel_queues = "per_cpu"`: steered.
    StackPerCpu,
}

fn sends_in_order(setup: Setup, mppe: bool) {
    netns::require_root().expect("prerequisite");
    let (a, b) = netns::two_cpus().expect("prerequisite");
    let topology = Topology::with_lan_queues(2).unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            mppe: if mppe { "require" } else { "allow" },
            forwarding: if setup == Setup::Xdp { "xdp" } else { "stack" },
            dataplane: if setup == Setup::StackPerCpu {
                "tunnel_queues = \"per_cpu\"\n"
            } else {
                ""
            },
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let args: &[&str] = if mppe {
        &["--mppe", "--mppe-bits", "128", "--tun", "ste0"]
    } else {
        &["--tun", "ste0"]
    };
    let mut client = lab.client(args).unwrap();
    let up = wait_up(&mut client, &lab, Duration::from_secs(30));
    let addr: Ipv4Addr = up["address"].as_str().expect("address").parse().unwrap();

    // The client's side: a capture of its link and a UDP receiver.
    let (capture, receiver) = lab
        .topology
        .client
        .run(|| {
            let capture = RawSocket::capture("c0", 64 << 20, Duration::from_millis(200))
                .expect("capture socket on c0");
            let receiver = UdpSocket::bind((addr, 0)).expect("UDP receiver");
            receiver
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            (capture, receiver)
        })
        .unwrap();
    let port = receiver.local_addr().unwrap().port();
    let done = Arc::new(AtomicBool::new(false));
    let captured = {
        let done = done.clone();
        std::thread::spawn(move || {
            let server: Ipv4Addr = SERVER_WAN.parse().unwrap();
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = capture.recv(&mut buf)
                    && let Some(f) = data_frame(&buf[..n], server.octets())
                {
                    frames.push(f);
                }
            }
            frames
        })
    };
    let delivered = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            let mut buf = [0u8; 256];
            while !done.load(Ordering::Relaxed) {
                if receiver.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            n
        })
    };

    let before = lab.stats().unwrap();
    send_from(&lab, &[a], ALONE, (addr, port));
    send_from(&lab, &[b], ALONE, (addr, port));
    send_from(&lab, &[a, b], CONCURRENT, (addr, port));
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let frames = captured.join().unwrap();
    let delivered = delivered.join().unwrap();
    let after = lab.stats().unwrap();
    let tunnel_queues = (setup != Setup::Xdp).then(|| xdp_frames_per_queue(&lab, "pptp0p"));
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let counters: HashMap<&str, u64> = [
        "xdp_encapsulated",
        "xdp_encap_steered",
        "xdp_steered_taken",
        "xdp_encap_passed",
        "xdp_mppe_encrypted",
        "xdp_mppe_tx_to_userspace",
        "userspace_data_tx_packets",
    ]
    .into_iter()
    .map(|k| (k, delta(k)))
    .collect();
    let sent = 2 * ALONE + 2 * CONCURRENT;
    // The frames the daemon sent itself (none expected) take their
    // sequence number and count on another path: they may be late.
    let own = counters["userspace_data_tx_packets"] + counters["xdp_mppe_tx_to_userspace"];
    let late_seq = frames
        .windows(2)
        .filter(|w| (w[1].seq.wrapping_sub(w[0].seq) as i32) <= 0)
        .count() as u64;
    let counts: Vec<u16> = frames.iter().filter_map(|f| f.count).collect();
    let late_count = counts
        .windows(2)
        .filter(|w| !(1..2048).contains(&(w[1].wrapping_sub(w[0]) & 0x0FFF)))
        .count() as u64;
    let report = format!(
        "sent {sent}, captured {} data frames ({late_seq} after a higher sequence number, \
         {late_count} after a higher coherency count), delivered {delivered}; counters {counters:?}; \
         frames the tunnel program took from each of the pair's queues {tunnel_queues:?}",
        frames.len()
    );
    eprintln!("REPORT {setup:?} mppe={mppe}: {report}");
    assert!(
        frames.len() > sent / 4,
        "too little came through to judge the order: {report}"
    );
    // Our client (userspace, MPPE included) takes what it keeps up with;
    // what it took decrypted and decoded as UDP to its address.
    assert!(delivered > 1_000, "{report}");
    assert!(
        counters["xdp_encapsulated"] as usize > sent / 4,
        "the kernel did not send the frames: {report}"
    );
    match setup {
        // Both CPUs had frames for the client (under `xdp` forwarding from
        // the LAN link's two queues, under `stack` from the tunnel pair's
        // queue of each CPU): the one that does not send the session's
        // frames queued them to the one that does, whose program took them
        // from its queue (all but what a full queue dropped).
        Setup::Xdp | Setup::StackPerCpu => {
            assert!(counters["xdp_encap_steered"] > 0, "{report}");
            assert!(
                counters["xdp_steered_taken"] > 0
                    && counters["xdp_steered_taken"] <= counters["xdp_encap_steered"],
                "{report}"
            );
        }
        // One queue: the tunnel program ran on one CPU at a time, and
        // nothing was steered.
        Setup::StackOneQueue => {
            assert_eq!(counters["xdp_encap_steered"], 0, "{report}");
            assert_eq!(tunnel_queues.as_ref().map(Vec::len), Some(1), "{report}");
        }
    }
    if setup == Setup::StackPerCpu
        && let Some(queues) = &tunnel_queues
    {
        // A queue per CPU and each CPU forwarding through its own (XPS):
        // what one sender alone sent went through its CPU's queue, so each
        // queue ran the program for at least that much.
        assert!(
            queues.len() >= 2 && queues.iter().all(|&n| n >= ALONE as u64),
            "{report}"
        );
    }
    assert!(
        late_seq <= own,
        "{late_seq} GRE data frames arrived after a higher sequence number: {report}"
    );
    if mppe {
        assert!(counts.len() > sent / 4, "{report}");
        assert!(
            late_count <= own,
            "{late_count} MPPE frames arrived after a higher coherency count: {report}"
        );
    }
    drop(client);
}

#[test]
fn clear_sends_in_order_xdp_forwarding() {
    sends_in_order(Setup::Xdp, false);
}

#[test]
fn mppe_sends_in_order_xdp_forwarding() {
    sends_in_order(Setup::Xdp, true);
}

#[test]
fn mppe_sends_in_order_stack_forwarding_one_queue() {
    sends_in_order(Setup::StackOneQueue, true);
}

#[test]
fn mppe_sends_in_order_stack_forwarding_queue_per_cpu() {
    sends_in_order(Setup::StackPerCpu, true);
}
