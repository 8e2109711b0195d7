//! The XDP program, loaded into the kernel: run on crafted frames through
//! BPF_PROG_TEST_RUN, and attached to a veth inside namespaces this test
//! creates. Needs root; fails (never skips) without it.

mod common;

use common::*;
use pptp_common::maps::{SESSION_F_FAST_PATH, Session, SessionKey, Stat};
use pptp_daemon::{
    config::XdpMode,
    dataplane::xdp::{AttachedMode, XdpDataplane},
    netns::{self, Netns, RawSocket},
};

const XDP_PASS: u32 = 2;
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const SERVER: [u8; 4] = [198, 18, 0, 1];

fn load() -> XdpDataplane {
    netns::require_root().expect("prerequisite");
    XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program")
}

/// One frame per verdict counter, with the counter it must land in.
fn crafted_frames() -> Vec<(&'static str, Vec<u8>, Stat)> {
    let ppp_ip = [0xFF, 0x03, 0x00, 0x21, 0x45, 0, 0, 20];
    let mut arp = eth([0xFF; 6], CLIENT_MAC, 0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    let mut vlan_gre = eth(SERVER_MAC, CLIENT_MAC, 0x8100);
    vlan_gre.extend_from_slice(&[0x00, 0x0A, 0x08, 0x00]);
    vlan_gre.extend_from_slice(&ipv4(CLIENT, SERVER, 47, &gre(0x9999, Some(1), None, &ppp_ip)));
    let mut fragment = frame(CLIENT, SERVER, 47, &gre(7, Some(1), None, &ppp_ip));
    fragment[14 + 6] = 0x20; // more fragments
    let mut truncated = frame(CLIENT, SERVER, 47, &gre(7, Some(1), None, &ppp_ip));
    truncated.truncate(truncated.len() - 3);
    vec![
        ("ARP", arp, Stat::NotIpv4),
        ("IPv4 cut", eth(SERVER_MAC, CLIENT_MAC, 0x0800), Stat::NotIpv4),
        ("UDP", frame(CLIENT, SERVER, 17, &[0u8; 16]), Stat::NotGre),
        ("TCP 1723", frame(CLIENT, SERVER, 6, &[0u8; 20]), Stat::NotGre),
        ("fragment", fragment, Stat::Ipv4Unusual),
        ("GRE v0", frame(CLIENT, SERVER, 47, &[0, 0, 0x08, 0, 0x45, 0, 0, 20]), Stat::GreNotPptp),
        ("GRE cut", frame(CLIENT, SERVER, 47, &[0x30, 0x01, 0x88]), Stat::GreTruncated),
        ("GRE short payload", truncated, Stat::GreTruncated),
        ("unknown call", frame(CLIENT, SERVER, 47, &gre(0x9999, Some(1), None, &ppp_ip)), Stat::GreUnknownCall),
        ("unknown call, VLAN", vlan_gre, Stat::GreUnknownCall),
        ("known call", frame(CLIENT, SERVER, 47, &gre(7, Some(1), Some(0), &ppp_ip)), Stat::GreToUserspace),
        ("spoofed peer", frame([198, 18, 0, 99], SERVER, 47, &gre(7, Some(1), None, &ppp_ip)), Stat::GreUnknownCall),
    ]
}

fn install_session(dp: &mut XdpDataplane) {
    let session = Session {
        client_addr: [198, 19, 0, 2],
        local_addr: SERVER,
        flags: SESSION_F_FAST_PATH,
        peer_call_id: 0x4242,
        mtu: 1400,
    };
    dp.sessions()
        .unwrap()
        .insert(SessionKey::new(CLIENT, 7), session, 0)
        .unwrap();
}

fn verdict_counts(stats: &[u64]) -> Vec<(Stat, u64)> {
    Stat::ALL[2..].iter().map(|s| (*s, stats[*s as usize])).collect()
}

#[test]
fn test_run_classifies_crafted_frames() {
    let mut dp = load();
    install_session(&mut dp);
    let frames = crafted_frames();
    let mut expected = [0u64; Stat::COUNT as usize];
    for (name, frame, stat) in &frames {
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = dp.test_run(frame, &mut out).unwrap();
        assert_eq!(action, XDP_PASS, "{name}");
        assert_eq!(&out[..len], &frame[..], "{name}: passed frames leave untouched");
        expected[*stat as usize] += 1;
        expected[Stat::Frames as usize] += 1;
        expected[Stat::Bytes as usize] += frame.len() as u64;
        let stats = dp.stats().unwrap();
        assert_eq!(stats[*stat as usize], expected[*stat as usize], "{name} counted under {stat:?}");
    }
    let stats = dp.stats().unwrap();
    assert_eq!(stats, expected);
    let verdicts: u64 = verdict_counts(&stats).iter().map(|(_, n)| n).sum();
    assert_eq!(verdicts, stats[Stat::Frames as usize]);
}

#[test]
fn attached_on_veth_counts_gre_and_other_frames() {
    netns::require_root().expect("prerequisite");
    let client = Netns::new("pxc").unwrap();
    let server = Netns::new("pxs").unwrap();
    netns::veth(&client, "c0", &server, "s0").unwrap();
    // Frames must reach the server's MAC to be seen by the stack afterwards;
    // XDP sees every frame on the wire either way.
    let server_mac = server.mac("s0").unwrap();

    let mut dp = load();
    install_session(&mut dp);
    let mode = server
        .run(|| dp.attach("s0", XdpMode::Driver))
        .unwrap()
        .expect("native XDP on veth");
    assert_eq!(mode, AttachedMode::Driver);
    let shown = server.ip(&["link", "show", "s0"]).unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("xdp"), "ip link shows the program");

    let frames = crafted_frames();
    client
        .run(|| {
            let sock = RawSocket::open("c0").unwrap();
            for (_, frame, _) in &frames {
                let mut f = frame.clone();
                f[..6].copy_from_slice(&server_mac);
                sock.send(&f).unwrap();
            }
        })
        .unwrap();

    // The veth delivers synchronously, but give the softirq a moment.
    let mut stats = dp.stats().unwrap();
    for _ in 0..100 {
        if stats[Stat::Frames as usize] >= frames.len() as u64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        stats = dp.stats().unwrap();
    }
    // IPv6 router solicitations and the like may also cross the link; the
    // GRE counters see only our frames.
    for stat in [
        Stat::NotGre,
        Stat::Ipv4Unusual,
        Stat::GreNotPptp,
        Stat::GreTruncated,
        Stat::GreUnknownCall,
        Stat::GreToUserspace,
    ] {
        let want = frames.iter().filter(|(_, _, s)| *s == stat).count() as u64;
        assert_eq!(stats[stat as usize], want, "{stat:?}");
    }
    assert!(stats[Stat::NotIpv4 as usize] >= 2);

    drop(dp);
    let shown = server.ip(&["link", "show", "s0"]).unwrap();
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("xdp"), "detached on drop");
}
