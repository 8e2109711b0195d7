//! The XDP program, loaded into the kernel: run on crafted frames through
//! BPF_PROG_TEST_RUN (exact output bytes and action for every case), and
//! attached to a veth inside namespaces this test creates. Needs root;
//! fails (never skips) without it.

mod common;

use common::*;
use pptp_common::maps::{
    CallEntry, NEXT_HOP_TTL_NS, SESSION_F_ACFC, SESSION_F_DECAP, SESSION_F_ENCAP,
    SESSION_F_MSS_CLAMP, SESSION_F_PFC, SeqState, Session, Stat, TunnelConf, programs,
};
use pptp_daemon::dataplane::{
    Forwarding,
    xdp::{AttachedMode, XdpDataplane, XdpMode},
};
use pptp_netns::{self as netns, Netns, RawSocket};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// The client's outer address, our WAN address, the LAN host.
const PEER: [u8; 4] = [198, 18, 0, 2];
const PEER2: [u8; 4] = [198, 18, 0, 3];
const WAN: [u8; 4] = [198, 18, 0, 1];
const LAN_HOST: [u8; 4] = [198, 18, 1, 2];
/// Addresses inside the tunnels.
const CLIENT: [u8; 4] = [198, 19, 0, 2];
const CLIENT2: [u8; 4] = [198, 19, 0, 3];
const LAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
const PEER2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x04];
const OUR_CALL: u16 = 7;
const PEER_CALL: u16 = 0x4242;

fn load() -> XdpDataplane {
    netns::require_root().expect("prerequisite");
    XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program")
}

fn session(flags: u32) -> Session {
    Session {
        peer_addr: PEER,
        local_addr: WAN,
        client_addr: CLIENT,
        slot: 3,
        flags,
        call_id: OUR_CALL,
        peer_call_id: PEER_CALL,
        mtu: 1400,
        ..Session::default()
    }
}

/// A second client's session, on both paths (its peer PEER2, its client
/// CLIENT2, our call 8, slot 4).
fn other_session() -> Session {
    Session {
        peer_addr: PEER2,
        client_addr: CLIENT2,
        call_id: 8,
        peer_call_id: 0x0909,
        slot: 4,
        ..session(SESSION_F_DECAP | SESSION_F_ENCAP)
    }
}

fn seq(tx_next: u64) -> SeqState {
    SeqState {
        tx_next,
        ..SeqState::default()
    }
}

/// A namespace in which FIB lookups resolve: WAN and LAN veths with
/// addresses, permanent neighbours and forwarding on.
struct Fib {
    ns: Netns,
    wan: u32,
    lan: u32,
    wan_mac: [u8; 6],
    lan_mac: [u8; 6],
}

fn fib() -> Fib {
    let ns = Netns::new("pxf").unwrap();
    netns::veth(&ns, "wan0", &ns, "wanp").unwrap();
    netns::veth(&ns, "lan0", &ns, "lanp").unwrap();
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "wan0"])
        .unwrap();
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "lan0"])
        .unwrap();
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for (addr, m, dev) in [
        ("198.18.0.2", CLIENT_MAC, "wan0"),
        ("198.18.0.3", PEER2_MAC, "wan0"),
        ("198.18.1.2", LAN_HOST_MAC, "lan0"),
    ] {
        ns.ip(&[
            "neigh",
            "add",
            addr,
            "lladdr",
            &mac(m),
            "dev",
            dev,
            "nud",
            "permanent",
        ])
        .unwrap();
    }
    netns::run(ns.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"])).unwrap();
    Fib {
        wan: ns.ifindex("wan0").unwrap(),
        lan: ns.ifindex("lan0").unwrap(),
        wan_mac: ns.mac("wan0").unwrap(),
        lan_mac: ns.mac("lan0").unwrap(),
        ns,
    }
}

/// An IPv4/UDP packet with a given TTL.
fn udp(src: [u8; 4], dst: [u8; 4], ttl: u8, len: usize) -> Vec<u8> {
    with_ttl(ipv4(src, dst, 17, &vec![0x5a; len]), ttl)
}

/// A GRE frame from `src` to our WAN address, as received on wan0.
fn from_peer(src: [u8; 4], gre_packet: &[u8]) -> Vec<u8> {
    frame(src, WAN, 47, gre_packet)
}

fn ppp(header: &[u8], inner: &[u8]) -> Vec<u8> {
    [header, inner].concat()
}

/// What we expect `pptp_xdp` to send towards a peer.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per header field under test"
)]
fn encapsulated(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    peer: [u8; 4],
    call: u16,
    seq: u32,
    ack: Option<u32>,
    ppp_header: &[u8],
    inner: &[u8],
) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, 0x0800);
    let gre_packet = gre(call, Some(seq), ack, &ppp(ppp_header, inner));
    f.extend_from_slice(&outer_ipv4(WAN, peer, seq, &gre_packet));
    f
}

struct Case<'a> {
    name: &'a str,
    frame: Vec<u8>,
    ifindex: u32,
    action: u32,
    stat: Stat,
    /// Expected output; `None`: the frame leaves untouched.
    out: Option<Vec<u8>>,
}

fn check(dp: &XdpDataplane, fib: &Fib, cases: Vec<Case<'_>>) {
    check_program(dp, fib, programs::XDP, cases);
}

/// [`check`] for program `program` of the object.
fn check_program(dp: &XdpDataplane, fib: &Fib, program: &'static str, cases: Vec<Case<'_>>) {
    for case in cases {
        let before = dp.stats().unwrap()[case.stat as usize];
        let mut out = vec![0u8; case.frame.len() + 256];
        let (action, len) = fib
            .ns
            .run(|| dp.test_run_program(program, &case.frame, &mut out, Some(case.ifindex)))
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(action, case.action, "{}: action", case.name);
        let want = case.out.as_ref().unwrap_or(&case.frame);
        assert_eq!(&out[..len], &want[..], "{}: output bytes", case.name);
        let after = dp.stats().unwrap()[case.stat as usize];
        assert_eq!(
            after,
            before + 1,
            "{}: counted under {:?}",
            case.name,
            case.stat
        );
    }
}

#[test]
fn decapsulation_on_crafted_frames() {
    let fib = fib();
    let mut dp = load();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP | SESSION_F_MSS_CLAMP),
        seq(0),
    )
    .unwrap();
    let other = other_session();
    dp.install(&other, seq(100)).unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();
    dp.register_call(PEER2, 8, CallEntry::default().network_up())
        .unwrap();

    let inner = udp(CLIENT, LAN_HOST, 64, 40);
    let forwarded = |inner: &[u8]| {
        let mut f = eth(LAN_HOST_MAC, fib.lan_mac, 0x0800);
        f.extend_from_slice(&hop(inner));
        f
    };
    let passed = |inner: &[u8]| {
        let mut f = eth(SERVER_MAC, CLIENT_MAC, 0x0800);
        f.extend_from_slice(inner);
        f
    };
    let full = [0xFF, 0x03, 0x00, 0x21];
    let gre_data = |hdr: &[u8], inner: &[u8]| gre(OUR_CALL, Some(42), Some(9), &ppp(hdr, inner));
    let local = udp(CLIENT, [198, 18, 1, 1], 64, 20);
    let nowhere = udp(CLIENT, [198, 18, 200, 1], 64, 20);
    let to_client2 = udp(CLIENT, CLIENT2, 64, 30);
    let spoofed = udp([198, 19, 0, 99], LAN_HOST, 64, 20);
    let mut syn = ipv4(CLIENT, LAN_HOST, 6, &{
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp
    });
    syn[8] = 64;
    let mut truncated = from_peer(PEER, &gre_data(&full, &inner));
    truncated.truncate(truncated.len() - 10);

    check(
        &dp,
        &fib,
        vec![
            Case {
                name: "PPP full header, seq and ack",
                frame: from_peer(PEER, &gre_data(&full, &inner)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(forwarded(&inner)),
            },
            Case {
                name: "ACFC and PFC",
                frame: from_peer(PEER, &gre_data(&[0x21], &inner)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(forwarded(&inner)),
            },
            Case {
                name: "ACFC only",
                frame: from_peer(PEER, &gre_data(&[0x00, 0x21], &inner)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(forwarded(&inner)),
            },
            Case {
                name: "PFC only, sequence without ack",
                frame: from_peer(
                    PEER,
                    &gre(OUR_CALL, Some(43), None, &ppp(&[0xFF, 0x03, 0x21], &inner)),
                ),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(forwarded(&inner)),
            },
            Case {
                name: "for the server itself: decapsulated, passed to the stack",
                frame: from_peer(PEER, &gre_data(&full, &local)),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreDecapPassed,
                out: Some(passed(&local)),
            },
            Case {
                name: "no route: decapsulated, passed to the stack",
                frame: from_peer(PEER, &gre_data(&full, &nowhere)),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreDecapPassed,
                out: Some(passed(&nowhere)),
            },
            Case {
                name: "for another client: straight into its tunnel",
                frame: from_peer(PEER, &gre_data(&full, &to_client2)),
                ifindex: fib.wan,
                action: XDP_TX,
                stat: Stat::Encapsulated,
                out: Some(encapsulated(
                    PEER2_MAC,
                    fib.wan_mac,
                    PEER2,
                    0x0909,
                    100,
                    None,
                    &full,
                    &hop(&to_client2),
                )),
            },
            Case {
                name: "spoofed inner source",
                frame: from_peer(PEER, &gre_data(&full, &spoofed)),
                ifindex: fib.wan,
                action: XDP_DROP,
                stat: Stat::GreSpoofed,
                out: None,
            },
            Case {
                name: "spoofed outer source",
                frame: from_peer([198, 18, 0, 66], &gre_data(&full, &inner)),
                ifindex: fib.wan,
                action: XDP_DROP,
                stat: Stat::GreUnknownCall,
                out: None,
            },
            Case {
                name: "unknown call ID",
                frame: from_peer(PEER, &gre(0x0666, Some(1), None, &ppp(&full, &inner))),
                ifindex: fib.wan,
                action: XDP_DROP,
                stat: Stat::GreUnknownCall,
                out: None,
            },
            Case {
                name: "LCP Echo-Request",
                frame: from_peer(
                    PEER,
                    &gre(
                        OUR_CALL,
                        Some(44),
                        None,
                        &[0xFF, 0x03, 0xC0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4],
                    ),
                ),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreToUserspace,
                out: None,
            },
            Case {
                name: "MPPE frame",
                frame: from_peer(
                    PEER,
                    &gre(
                        OUR_CALL,
                        Some(45),
                        None,
                        &[0xFF, 0x03, 0x00, 0xFD, 0x90, 0x01, 0xAA, 0xBB],
                    ),
                ),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreToUserspace,
                out: None,
            },
            Case {
                name: "ack-only",
                frame: from_peer(PEER, &gre(OUR_CALL, None, Some(12), &[])),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreToUserspace,
                out: None,
            },
            Case {
                name: "TCP SYN with MSS clamping",
                frame: from_peer(PEER, &gre_data(&full, &syn)),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreToUserspace,
                out: None,
            },
            Case {
                name: "truncated payload",
                frame: truncated,
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreTruncated,
                out: None,
            },
            Case {
                name: "GRE version 0",
                frame: from_peer(PEER, &[0, 0, 0x08, 0, 0x45, 0, 0, 20]),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreNotPptp,
                out: None,
            },
            Case {
                name: "GRE cut inside its header",
                frame: from_peer(PEER, &[0x30, 0x01, 0x88]),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreTruncated,
                out: None,
            },
            Case {
                name: "TCP to the control port",
                frame: frame(PEER, WAN, 6, &[0u8; 20]),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::NotGre,
                out: None,
            },
            Case {
                name: "ARP",
                frame: {
                    let mut f = eth([0xFF; 6], CLIENT_MAC, 0x0806);
                    f.extend_from_slice(&[0u8; 28]);
                    f
                },
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::NotIpv4,
                out: None,
            },
        ],
    );

    // The session's counters saw the five frames decapsulated for it (the
    // hairpinned one is counted as received by the first session and sent
    // by the second).
    let c = dp.counters(3).unwrap();
    assert_eq!(c.rx_packets, 7);
    assert_eq!(
        c.rx_bytes,
        4 * inner.len() as u64 + (local.len() + nowhere.len() + to_client2.len()) as u64
    );
    assert_eq!(dp.counters(4).unwrap().tx_packets, 1);
    // The highest sequence number received is what the next ack carries.
    assert_eq!(dp.seq().rx_highest(3).unwrap(), Some(43));
    assert_eq!(dp.seq().rx_highest(4).unwrap(), None);
}

/// Issue 17: GRE the fast path leaves to userspace. A (peer, call) the
/// call map does not hold is dropped (random call ID, or the right call ID
/// from another source); a call still negotiating sends no data up; once
/// its network is up, a known call's frames pass within its buckets,
/// 1 frame/s each (no refill during the test): data a burst of 3, control
/// (LCP, CHAP, IPCP, ack-only; with and without address/control) a burst
/// of 2 that the data flood before it did not touch. An unregistered call
/// is unknown again.
/// A tunnel veth pair in `fib`'s namespace (`tun0`, inject end `tun0p`)
/// as `forwarding = "stack"` configures it, towards `fib`'s WAN.
fn tunnel_pair(fib: &Fib) -> TunnelConf {
    netns::veth(&fib.ns, "tun0", &fib.ns, "tun0p").unwrap();
    TunnelConf {
        inject_ifindex: fib.ns.ifindex("tun0p").unwrap(),
        wan_ifindex: fib.wan,
        tunnel_mac: fib.ns.mac("tun0").unwrap(),
        inject_mac: fib.ns.mac("tun0p").unwrap(),
    }
}

/// `inner` as the tunnel pair's inject end receives it once the stack
/// routed it out of the tunnel device.
fn routed(tunnel: &TunnelConf, inner: &[u8]) -> Vec<u8> {
    let mut f = eth(tunnel.tunnel_mac, tunnel.tunnel_mac, 0x0800);
    f.extend_from_slice(inner);
    f
}

/// `inner`, routed by the stack to the client, as `pptp_xdp_tunnel` sends it
/// towards the client's peer with sequence number `seq` and `ack`.
fn tunnel_encapsulates<'a>(
    fib: &Fib,
    tunnel: &TunnelConf,
    name: &'a str,
    inner: &[u8],
    seq: u32,
    ack: Option<u32>,
) -> Case<'a> {
    Case {
        name,
        frame: routed(tunnel, inner),
        ifindex: tunnel.inject_ifindex,
        action: XDP_REDIRECT,
        stat: Stat::Encapsulated,
        out: Some(sent_to_peer(fib, CLIENT_MAC, PEER, seq, ack, inner)),
    }
}

/// `forwarding = "stack"`: `pptp_xdp_stack` on the WAN interface injects
/// every decapsulated packet into the tunnel device, untouched (the stack
/// routes it, TTL included), and never encapsulates; `pptp_xdp_tunnel` on
/// the tunnel pair's inject end encapsulates what the stack routed out of
/// the tunnel device, without touching the inner packet.
#[test]
fn stack_forwarding_on_crafted_frames() {
    let fib = fib();
    let tunnel = tunnel_pair(&fib);
    let (inject, tun_mac, inject_mac) =
        (tunnel.inject_ifindex, tunnel.tunnel_mac, tunnel.inject_mac);
    let mut dp = load();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP | SESSION_F_MSS_CLAMP),
        seq(20),
    )
    .unwrap();
    let other = other_session();
    dp.install(&other, seq(100)).unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();

    let full = [0xFF, 0x03, 0x00, 0x21];
    let gre_data = |hdr: &[u8], inner: &[u8]| gre(OUR_CALL, Some(42), Some(9), &ppp(hdr, inner));
    let inner = udp(CLIENT, LAN_HOST, 64, 40);

    // Before the daemon said where the tunnel device is: userspace's.
    check_program(
        &dp,
        &fib,
        programs::STACK,
        vec![Case {
            name: "no tunnel device yet: to the daemon",
            frame: from_peer(PEER, &gre_data(&full, &inner)),
            ifindex: fib.wan,
            action: XDP_PASS,
            stat: Stat::GreToUserspace,
            out: None,
        }],
    );
    dp.set_tunnel(tunnel).unwrap();

    let injected = |inner: &[u8]| {
        let mut f = eth(tun_mac, inject_mac, 0x0800);
        f.extend_from_slice(inner);
        f
    };
    let expiring = udp(CLIENT, LAN_HOST, 1, 40);
    let local = udp(CLIENT, [198, 18, 1, 1], 64, 20);
    let to_client2 = udp(CLIENT, CLIENT2, 64, 30);
    let spoofed = udp([198, 19, 0, 99], LAN_HOST, 64, 20);
    let mut syn = ipv4(CLIENT, LAN_HOST, 6, &{
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp
    });
    syn[8] = 64;
    let from_wan_host = {
        let mut f = eth(fib.wan_mac, PEER2_MAC, 0x0800);
        f.extend_from_slice(&udp([198, 18, 0, 9], CLIENT, 64, 20));
        f
    };
    check_program(
        &dp,
        &fib,
        programs::STACK,
        vec![
            Case {
                name: "data frame: into the tunnel device, inner packet untouched",
                frame: from_peer(PEER, &gre_data(&full, &inner)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(injected(&inner)),
            },
            Case {
                name: "ACFC and PFC",
                frame: from_peer(PEER, &gre_data(&[0x21], &inner)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(injected(&inner)),
            },
            Case {
                name: "TTL 1: the stack answers Time Exceeded",
                frame: from_peer(PEER, &gre_data(&full, &expiring)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(injected(&expiring)),
            },
            Case {
                name: "for the server itself: into the tunnel device",
                frame: from_peer(PEER, &gre_data(&full, &local)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(injected(&local)),
            },
            Case {
                name: "for another client: through the stack too",
                frame: from_peer(PEER, &gre_data(&full, &to_client2)),
                ifindex: fib.wan,
                action: XDP_REDIRECT,
                stat: Stat::GreDecapsulated,
                out: Some(injected(&to_client2)),
            },
            Case {
                name: "spoofed inner source",
                frame: from_peer(PEER, &gre_data(&full, &spoofed)),
                ifindex: fib.wan,
                action: XDP_DROP,
                stat: Stat::GreSpoofed,
                out: None,
            },
            Case {
                name: "TCP SYN to clamp: to the daemon",
                frame: from_peer(PEER, &gre_data(&full, &syn)),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::GreToUserspace,
                out: None,
            },
            Case {
                name: "unknown call: dropped",
                frame: from_peer(PEER2, &gre(77, Some(1), None, &ppp(&full, &inner))),
                ifindex: fib.wan,
                action: XDP_DROP,
                stat: Stat::GreUnknownCall,
                out: None,
            },
            Case {
                name: "IPv4 to a client from the WAN side: the stack decides",
                frame: from_wan_host.clone(),
                ifindex: fib.wan,
                action: XDP_PASS,
                stat: Stat::NotGre,
                out: None,
            },
        ],
    );

    // What the stack routed out of the tunnel device (its TTL already
    // decremented there), as the inject end receives it. The frames
    // accepted above (sequence 42) are acknowledged.
    let routed = |inner: &[u8]| routed(&tunnel, inner);
    let down = udp(LAN_HOST, CLIENT, 63, 100);
    let last_hop = udp(LAN_HOST, CLIENT, 1, 100);
    let mut fragment = udp(LAN_HOST, CLIENT, 63, 100);
    fragment[6] = 0x20; // more fragments
    fragment[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&fragment[..20]);
    fragment[10..12].copy_from_slice(&c.to_be_bytes());
    let mut syn_ack = ipv4(LAN_HOST, CLIENT, 6, &{
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[13] = 0x12;
        tcp
    });
    syn_ack[8] = 63;
    let not_ours = udp(LAN_HOST, [198, 19, 0, 77], 63, 20);
    check_program(
        &dp,
        &fib,
        programs::TUNNEL,
        vec![
            tunnel_encapsulates(
                &fib,
                &tunnel,
                "routed to a client: encapsulated towards its peer, inner untouched",
                &down,
                20,
                Some(42),
            ),
            tunnel_encapsulates(
                &fib,
                &tunnel,
                "TTL 1 after the stack's hop: still delivered",
                &last_hop,
                21,
                Some(42),
            ),
            Case {
                name: "fragment: the userspace path",
                frame: routed(&fragment),
                ifindex: inject,
                action: XDP_PASS,
                stat: Stat::Ipv4Unusual,
                out: None,
            },
            Case {
                name: "SYN-ACK to clamp: the userspace path",
                frame: routed(&syn_ack),
                ifindex: inject,
                action: XDP_PASS,
                stat: Stat::EncapPassed,
                out: None,
            },
            Case {
                name: "no session for the address: the userspace path",
                frame: routed(&not_ours),
                ifindex: inject,
                action: XDP_PASS,
                stat: Stat::NotGre,
                out: None,
            },
        ],
    );
    // Userspace continues the same sequence space.
    assert_eq!(dp.seq().load(3).unwrap().tx_next, 22);
}

#[test]
fn userspace_admission_on_crafted_frames() {
    let fib = fib();
    let mut dp = load();
    // A call still negotiating: no data yet, control within its bucket.
    dp.register_call(PEER, OUR_CALL, CallEntry::new(1, 3, 1, 2))
        .unwrap();
    assert_eq!(dp.calls_registered().unwrap(), 1);
    let full = [0xFF, 0x03];
    let mppe = gre(
        OUR_CALL,
        Some(1),
        None,
        &[0xFF, 0x03, 0x00, 0xFD, 0x90, 0x01, 1, 2],
    );
    let ipv4_pfc = gre(
        OUR_CALL,
        Some(2),
        None,
        &ppp(&[0x21], &udp(CLIENT, LAN_HOST, 64, 20)),
    );
    let lcp = gre(
        OUR_CALL,
        Some(3),
        None,
        &ppp(&full, &[0xC0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4]),
    );
    let chap_acfc = gre(OUR_CALL, Some(4), None, &[0xC2, 0x23, 1, 1, 0, 4]);
    let ipcp = gre(
        OUR_CALL,
        Some(5),
        Some(1),
        &ppp(&full, &[0x80, 0x21, 1, 1, 0, 4]),
    );
    let ack_only = gre(OUR_CALL, None, Some(2), &[]);
    let case = |name, frame: &[u8], src, action, stat| Case {
        name,
        frame: from_peer(src, frame),
        ifindex: fib.wan,
        action,
        stat,
        out: None,
    };
    check(
        &dp,
        &fib,
        vec![
            case(
                "data before the network is up",
                &mppe,
                PEER,
                XDP_DROP,
                Stat::UserspaceDataLimited,
            ),
            case(
                "LCP while negotiating",
                &lcp,
                PEER,
                XDP_PASS,
                Stat::GreToUserspace,
            ),
        ],
    );
    // The network is up (an MPPE session, on the userspace path): the
    // entry is replaced, its buckets full.
    dp.register_call(PEER, OUR_CALL, CallEntry::new(1, 3, 1, 2).network_up())
        .unwrap();
    assert_eq!(dp.calls_registered().unwrap(), 1);
    check(
        &dp,
        &fib,
        vec![
            case(
                "unknown call ID",
                &gre(0x0666, Some(1), None, &[0xFF, 0x03, 0xC0, 0x21, 1, 1, 0, 4]),
                PEER,
                XDP_DROP,
                Stat::GreUnknownCall,
            ),
            case(
                "right call ID, spoofed source",
                &lcp,
                [198, 18, 0, 66],
                XDP_DROP,
                Stat::GreUnknownCall,
            ),
            case("MPPE data 1", &mppe, PEER, XDP_PASS, Stat::GreToUserspace),
            case("MPPE data 2", &mppe, PEER, XDP_PASS, Stat::GreToUserspace),
            case(
                "IPv4 with PFC and ACFC",
                &ipv4_pfc,
                PEER,
                XDP_PASS,
                Stat::GreToUserspace,
            ),
            case(
                "data over budget",
                &mppe,
                PEER,
                XDP_DROP,
                Stat::UserspaceDataLimited,
            ),
            case(
                "IPv4 over budget",
                &ipv4_pfc,
                PEER,
                XDP_DROP,
                Stat::UserspaceDataLimited,
            ),
            case(
                "LCP passes after the data flood",
                &lcp,
                PEER,
                XDP_PASS,
                Stat::GreToUserspace,
            ),
            case(
                "CHAP with ACFC",
                &chap_acfc,
                PEER,
                XDP_PASS,
                Stat::GreToUserspace,
            ),
            case(
                "IPCP over the control budget",
                &ipcp,
                PEER,
                XDP_DROP,
                Stat::UserspaceControlLimited,
            ),
            case(
                "ack-only is control",
                &ack_only,
                PEER,
                XDP_DROP,
                Stat::UserspaceControlLimited,
            ),
        ],
    );
    dp.unregister_call(PEER, OUR_CALL).unwrap();
    assert_eq!(dp.calls_registered().unwrap(), 0);
    check(
        &dp,
        &fib,
        vec![case(
            "released call",
            &lcp,
            PEER,
            XDP_DROP,
            Stat::GreUnknownCall,
        )],
    );
}

#[test]
fn decapsulation_only_for_sessions_on_the_fast_path() {
    let fib = fib();
    let mut dp = load();
    // An MPPE session: installed for accounting but not for decapsulation.
    dp.install(&session(0), seq(0)).unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();
    let inner = udp(CLIENT, LAN_HOST, 64, 40);
    check(
        &dp,
        &fib,
        vec![Case {
            name: "session without SESSION_F_DECAP",
            frame: from_peer(
                PEER,
                &gre(
                    OUR_CALL,
                    Some(1),
                    None,
                    &ppp(&[0xFF, 0x03, 0x00, 0x21], &inner),
                ),
            ),
            ifindex: fib.wan,
            action: XDP_PASS,
            stat: Stat::GreToUserspace,
            out: None,
        }],
    );
}

/// A FIB namespace and the program with a session on both paths (its
/// next sequence number 10).
fn encapsulating() -> (Fib, XdpDataplane) {
    let fib = fib();
    let mut dp = load();
    dp.install(&session(SESSION_F_DECAP | SESSION_F_ENCAP), seq(10))
        .unwrap();
    (fib, dp)
}

/// `inner` as it arrives on the LAN interface from the LAN host.
fn lan_frame(fib: &Fib, inner: &[u8]) -> Vec<u8> {
    let mut f = eth(fib.lan_mac, LAN_HOST_MAC, 0x0800);
    f.extend_from_slice(inner);
    f
}

#[test]
fn encapsulation_on_crafted_frames() {
    let (fib, mut dp) = encapsulating();
    let from_lan = |inner: &[u8]| lan_frame(&fib, inner);
    let p = udp(LAN_HOST, CLIENT, 64, 100);
    let full = [0xFF, 0x03, 0x00, 0x21];
    check(
        &dp,
        &fib,
        vec![Case {
            name: "before anything was received: sequence, no ack",
            frame: from_lan(&p),
            ifindex: fib.lan,
            action: XDP_REDIRECT,
            stat: Stat::Encapsulated,
            out: Some(encapsulated(
                CLIENT_MAC,
                fib.wan_mac,
                PEER,
                PEER_CALL,
                10,
                None,
                &full,
                &hop(&p),
            )),
        }],
    );

    // Something arrived (on either path): the next frame carries the ack.
    let mut state = dp.seq().load(3).unwrap();
    (state.rx_highest, state.rx_valid) = (7, 1);
    dp.seq().store(3, state).unwrap();
    check(
        &dp,
        &fib,
        vec![Case {
            name: "piggy-backed ack",
            frame: from_lan(&p),
            ifindex: fib.lan,
            action: XDP_REDIRECT,
            stat: Stat::Encapsulated,
            out: Some(encapsulated(
                CLIENT_MAC,
                fib.wan_mac,
                PEER,
                PEER_CALL,
                11,
                Some(7),
                &full,
                &hop(&p),
            )),
        }],
    );
    assert_eq!(dp.seq().ack_sent(3).unwrap(), 7);
    // Userspace continues the same sequence space.
    assert_eq!(dp.seq().load(3).unwrap().tx_next, 12);

    let big = udp(LAN_HOST, CLIENT, 64, 1400);
    let expiring = udp(LAN_HOST, CLIENT, 1, 20);
    check(
        &dp,
        &fib,
        vec![
            Case {
                name: "larger than the tunnel MTU: left to the stack",
                frame: from_lan(&big),
                ifindex: fib.lan,
                action: XDP_PASS,
                stat: Stat::EncapPassed,
                out: None,
            },
            Case {
                name: "TTL expiring: left to the stack",
                frame: from_lan(&expiring),
                ifindex: fib.lan,
                action: XDP_PASS,
                stat: Stat::EncapPassed,
                out: None,
            },
            Case {
                name: "not for a client",
                frame: from_lan(&udp(LAN_HOST, [198, 18, 0, 9], 64, 10)),
                ifindex: fib.lan,
                action: XDP_PASS,
                stat: Stat::NotGre,
                out: None,
            },
        ],
    );

    // The peer accepted ACFC and PFC: one-byte PPP header.
    dp.remove(&session(0)).unwrap();
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP | SESSION_F_ACFC | SESSION_F_PFC),
        SeqState {
            tx_next: 13,
            rx_highest: 8,
            rx_valid: 1,
            ack_sent: 7,
            ack_valid: 1,
            ..SeqState::default()
        },
    )
    .unwrap();
    check(
        &dp,
        &fib,
        vec![Case {
            name: "ACFC and PFC",
            frame: from_lan(&p),
            ifindex: fib.lan,
            action: XDP_REDIRECT,
            stat: Stat::Encapsulated,
            out: Some(encapsulated(
                CLIENT_MAC,
                fib.wan_mac,
                PEER,
                PEER_CALL,
                13,
                Some(8),
                &[0x21],
                &hop(&p),
            )),
        }],
    );
    let c = dp.counters(3).unwrap();
    assert_eq!(
        (c.tx_packets, c.tx_bytes),
        (1, p.len() as u64),
        "counters reset on install"
    );

    // Removal takes the session off both paths.
    let state = dp.remove(&session(0)).unwrap();
    assert_eq!(state.tx_next, 14);
    assert_eq!(dp.installed().unwrap(), (0, 0));
    check(
        &dp,
        &fib,
        vec![Case {
            name: "after removal",
            frame: from_lan(&p),
            ifindex: fib.lan,
            action: XDP_PASS,
            stat: Stat::NotGre,
            out: None,
        }],
    );
}

/// The next hop towards a peer is cached per CPU and session slot
/// (`PPTP_NEXT_HOP`): a neighbour change reaches encapsulated traffic once
/// the cached hop is older than `NEXT_HOP_TTL_NS`, and a slot taken over
/// by a session with another peer never uses the old peer's hop. (The
/// test runs on one CPU, so every run sees the same cache.)
#[test]
fn encapsulation_follows_next_hop_changes() {
    pin_to_one_cpu();
    let (fib, mut dp) = encapsulating();
    let p = udp(LAN_HOST, CLIENT, 64, 100);
    let towards = |name, dst_mac, peer, seq| to_peer(&fib, name, &p, dst_mac, peer, seq, None);
    check(&dp, &fib, vec![towards("first", CLIENT_MAC, PEER, 10)]);

    // The peer's neighbour entry changes: within the TTL the cached hop
    // may still be used; after it, the new address is.
    let new_mac = [0x02, 0, 0, 0, 0, 0x09];
    fib.ns
        .ip(&[
            "neigh",
            "replace",
            "198.18.0.2",
            "lladdr",
            "02:00:00:00:00:09",
            "dev",
            "wan0",
            "nud",
            "permanent",
        ])
        .unwrap();
    // The program reads the coarse clock, up to a tick (10 ms at the
    // lowest HZ) behind: the TTL and two such ticks.
    std::thread::sleep(std::time::Duration::from_nanos(
        NEXT_HOP_TTL_NS + 20_000_000,
    ));
    check(&dp, &fib, vec![towards("after the TTL", new_mac, PEER, 11)]);

    // The slot goes to a session with another peer: its own hop at once.
    dp.remove(&session(0)).unwrap();
    dp.install(
        &Session {
            peer_addr: PEER2,
            ..session(SESSION_F_DECAP | SESSION_F_ENCAP)
        },
        seq(20),
    )
    .unwrap();
    check(
        &dp,
        &fib,
        vec![towards("slot reused", PEER2_MAC, PEER2, 20)],
    );
}

/// Pins the calling thread (and the threads it starts) to the CPU it runs
/// on.
fn pin_to_one_cpu() {
    // SAFETY: plain libc call.
    let cpu = unsafe { libc::sched_getcpu() };
    assert!(cpu >= 0, "sched_getcpu");
    pin_to(cpu as usize);
}

/// Pins the calling thread (and the threads it starts) to CPU `cpu`.
fn pin_to(cpu: usize) {
    netns::pin_to_cpu(cpu).unwrap_or_else(|e| panic!("pinning to CPU {cpu}: {e}"));
}

/// A case where `inner`, from the LAN host, leaves encapsulated towards
/// `peer` (Ethernet address `dst_mac`) with sequence number `seq`,
/// acknowledgment `ack` and a full PPP header.
fn to_peer<'a>(
    fib: &Fib,
    name: &'a str,
    inner: &[u8],
    dst_mac: [u8; 6],
    peer: [u8; 4],
    seq: u32,
    ack: Option<u32>,
) -> Case<'a> {
    Case {
        name,
        frame: lan_frame(fib, inner),
        ifindex: fib.lan,
        action: XDP_REDIRECT,
        stat: Stat::Encapsulated,
        out: Some(sent_to_peer(fib, dst_mac, peer, seq, ack, &hop(inner))),
    }
}

/// `inner` as sent from the WAN interface to `peer` (next hop `dst_mac`)
/// in call `PEER_CALL`, with `seq` and `ack`, PPP header uncompressed.
fn sent_to_peer(
    fib: &Fib,
    dst_mac: [u8; 6],
    peer: [u8; 4],
    seq: u32,
    ack: Option<u32>,
    inner: &[u8],
) -> Vec<u8> {
    encapsulated(
        dst_mac,
        fib.wan_mac,
        peer,
        PEER_CALL,
        seq,
        ack,
        &[0xFF, 0x03, 0x00, 0x21],
        inner,
    )
}

/// One CPU sends a session's frames (SESSION_F_STEER, set on every
/// session the dataplane installs once `steer_sends` is on): the first
/// CPU that encapsulates for the session claims it; on another CPU the
/// frame for the client goes, untouched and before taking a sequence
/// number or the rate bucket, to the claiming CPU's queue of the CPU map
/// (`XDP_REDIRECT`, counted `encap_steered`), also when it is a client's
/// packet for another client; a sending CPU without a queue does not
/// lose frames (they are sent where they arrive); without `steer_sends`
/// no CPU claims anything; a slot opened again is claimed anew; a frame
/// over the session's rate is dropped where it arrives, not queued.
#[test]
fn a_sessions_frames_are_sent_from_one_cpu() {
    let (a, b) = netns::two_cpus().expect("prerequisite");
    let (fib, mut dp) = encapsulating();
    // Installed before steering: no flag, every CPU sends, none claims.
    let p = udp(LAN_HOST, CLIENT, 64, 100);
    let full = [0xFF, 0x03, 0x00, 0x21];
    let sent = |name: &'static str, seq: u32| to_peer(&fib, name, &p, CLIENT_MAC, PEER, seq, None);
    // The frame from the LAN host, left untouched with `action`.
    let untouched = |name: &'static str, action: u32, stat: Stat| Case {
        name,
        frame: lan_frame(&fib, &p),
        ifindex: fib.lan,
        action,
        stat,
        out: None,
    };
    let steered = |name: &'static str| untouched(name, XDP_REDIRECT, Stat::EncapSteered);
    for (cpu, seq) in [(a, 10), (b, 11)] {
        pin_to(cpu);
        check(
            &dp,
            &fib,
            vec![sent("not steered: sent where it arrives", seq)],
        );
    }
    assert_eq!(dp.seq().load(3).unwrap().tx_cpu, 0, "claimed unsteered");

    let queues = dp.steer_sends(Forwarding::Xdp, 64).unwrap().len();
    assert!(queues >= 2, "{queues} CPU queues");
    dp.remove(&session(0)).unwrap();
    dp.install(&session(SESSION_F_DECAP | SESSION_F_ENCAP), seq(12))
        .unwrap();
    pin_to(b);
    check(&dp, &fib, vec![sent("first CPU: claims the session", 12)]);
    assert_eq!(dp.seq().load(3).unwrap().tx_cpu, b as u64 + 1);
    pin_to(a);
    check(&dp, &fib, vec![steered("other CPU: queued to the first")]);
    let state = dp.seq().load(3).unwrap();
    assert_eq!(state.tx_next, 13, "a steered frame took a sequence number");
    assert_eq!(state.tx_cpu, b as u64 + 1);

    // A client's packet for this client, decapsulated on another CPU: to
    // the sending CPU's queue as it is after decapsulation (its TTL is
    // decremented where it is encapsulated).
    let other = other_session();
    dp.install(&other, seq(100)).unwrap();
    let to_client = udp(CLIENT2, CLIENT, 64, 30);
    let from_client2 = frame(
        PEER2,
        WAN,
        47,
        &gre(8, Some(1), None, &ppp(&full, &to_client)),
    );
    let mut decapsulated = from_client2[..12].to_vec();
    decapsulated.extend_from_slice(&[0x08, 0x00]);
    decapsulated.extend_from_slice(&to_client);
    check(
        &dp,
        &fib,
        vec![Case {
            name: "client to client: queued once decapsulated",
            frame: from_client2,
            ifindex: fib.wan,
            action: XDP_REDIRECT,
            stat: Stat::EncapSteered,
            out: Some(decapsulated),
        }],
    );
    pin_to(b);
    check(&dp, &fib, vec![sent("back on the sending CPU", 13)]);

    // The sending CPU has no queue (the map holds none for it): sent
    // here rather than lost.
    let mut state = dp.seq().load(3).unwrap();
    state.tx_cpu = 1 << 20;
    dp.seq().store(3, state).unwrap();
    pin_to(a);
    check(&dp, &fib, vec![sent("no queue to the sending CPU", 14)]);

    // A new call in the slot: claimed anew, by the first CPU to send.
    dp.remove(&session(0)).unwrap();
    dp.seq()
        .open(3, PEER_CALL, pptp_daemon::proto::call::Config::new(0, 64))
        .unwrap();
    assert_eq!(dp.seq().load(3).unwrap().tx_cpu, 0);
    dp.install(
        &session(SESSION_F_DECAP | SESSION_F_ENCAP),
        dp.seq().load(3).unwrap(),
    )
    .unwrap();
    check(&dp, &fib, vec![sent("new call: claimed by this CPU", 0)]);
    assert_eq!(dp.seq().load(3).unwrap().tx_cpu, a as u64 + 1);
    pin_to(b);
    check(&dp, &fib, vec![steered("new call: the other CPU steers")]);

    // Over the rate, a frame is dropped where it arrives, not queued: at
    // 1 kbit/s a 128-octet packet costs 1.024 s, more than the 0.5 s
    // burst, so the full bucket lets one through and then none, on either
    // CPU (one bucket, charged once, on arrival).
    dp.set_rate(PEER, OUR_CALL, CLIENT, |s| {
        s.rate_down_kbps = 1;
        s.rate_burst_ns = 500_000_000;
    })
    .unwrap();
    check(&dp, &fib, vec![steered("within the rate: queued")]);
    let over = |name: &'static str| untouched(name, XDP_DROP, Stat::RateLimitedEncap);
    check(&dp, &fib, vec![over("over the rate: dropped on arrival")]);
    pin_to(a);
    check(
        &dp,
        &fib,
        vec![over("over the rate on the sending CPU too")],
    );
    assert_eq!(dp.seq().load(3).unwrap().tx_next, 1);
}

/// Steering under `forwarding = "stack"`: the tunnel pair has a queue per
/// CPU, so `pptp_xdp_tunnel` runs on every CPU that forwards towards
/// clients; the first CPU that encapsulates for a session claims it, and
/// on another CPU what the stack routed to that client goes, untouched and
/// without taking a sequence number, to the claiming CPU's queue
/// (`XDP_REDIRECT`, `encap_steered`), where `pptp_xdp_cpu_tunnel` sends
/// it (`dataplane.steer_sends` under `stack`).
#[test]
fn stack_forwarding_sends_a_session_from_one_cpu() {
    let (a, b) = netns::two_cpus().expect("prerequisite");
    let fib = fib();
    let tunnel = tunnel_pair(&fib);
    let mut dp = load();
    dp.set_tunnel(tunnel).unwrap();
    let queues = dp.steer_sends(Forwarding::Stack, 64).unwrap().len();
    assert!(queues >= 2, "{queues} CPU queues");
    dp.install(&session(SESSION_F_DECAP | SESSION_F_ENCAP), seq(30))
        .unwrap();
    let down = udp(LAN_HOST, CLIENT, 63, 100);
    let sent =
        |name: &'static str, seq: u32| tunnel_encapsulates(&fib, &tunnel, name, &down, seq, None);
    let steered = |name: &'static str| Case {
        name,
        frame: routed(&tunnel, &down),
        ifindex: tunnel.inject_ifindex,
        action: XDP_REDIRECT,
        stat: Stat::EncapSteered,
        out: None,
    };
    pin_to(a);
    check_program(
        &dp,
        &fib,
        programs::TUNNEL,
        vec![sent("first CPU: claims the session", 30)],
    );
    assert_eq!(dp.seq().load(3).unwrap().tx_cpu, a as u64 + 1);
    pin_to(b);
    check_program(
        &dp,
        &fib,
        programs::TUNNEL,
        vec![steered("other CPU: queued to the first, untouched")],
    );
    assert_eq!(
        dp.seq().load(3).unwrap().tx_next,
        31,
        "a steered frame took a sequence number"
    );
    pin_to(a);
    check_program(
        &dp,
        &fib,
        programs::TUNNEL,
        vec![sent("back on the sending CPU", 31)],
    );
}

/// The token buckets of the session entries (pptp_common::rate): at
/// 1 kbit/s a 312-byte packet costs 2.496 s, so a 4 s burst lets exactly
/// two through back to back and drops the third (refill during the test
/// is negligible: a third packet would need 1 s). Each direction has its
/// own bucket; a dropped packet takes no sequence number; a rate changed
/// in place applies to the next packet.
#[test]
fn rate_limits_on_crafted_frames() {
    let fib = fib();
    let mut dp = load();
    let mut limited = session(SESSION_F_DECAP | SESSION_F_ENCAP);
    limited.rate_up_kbps = 1;
    limited.rate_down_kbps = 1;
    limited.rate_burst_ns = 4_000_000_000;
    dp.install(&limited, seq(20)).unwrap();

    let full = [0xFF, 0x03, 0x00, 0x21];
    let up = udp(CLIENT, LAN_HOST, 64, 292);
    assert_eq!(up.len(), 312);
    let down = udp(LAN_HOST, CLIENT, 64, 292);
    let from_client = |seq: u32| from_peer(PEER, &gre(OUR_CALL, Some(seq), None, &ppp(&full, &up)));
    let forwarded = {
        let mut f = eth(LAN_HOST_MAC, fib.lan_mac, 0x0800);
        f.extend_from_slice(&hop(&up));
        f
    };
    let from_lan = lan_frame(&fib, &down);
    let decap = |name, seq| Case {
        name,
        frame: from_client(seq),
        ifindex: fib.wan,
        action: XDP_REDIRECT,
        stat: Stat::GreDecapsulated,
        out: Some(forwarded.clone()),
    };
    let decap_dropped = |name, seq| Case {
        name,
        frame: from_client(seq),
        ifindex: fib.wan,
        action: XDP_DROP,
        stat: Stat::RateLimitedDecap,
        out: None,
    };
    let encap = |name, seq| to_peer(&fib, name, &down, CLIENT_MAC, PEER, seq, Some(2));
    let encap_dropped = |name| Case {
        name,
        frame: from_lan.clone(),
        ifindex: fib.lan,
        action: XDP_DROP,
        stat: Stat::RateLimitedEncap,
        out: None,
    };
    check(
        &dp,
        &fib,
        vec![
            decap("from the client: 1st within the burst", 1),
            decap("from the client: 2nd within the burst", 2),
            decap_dropped("from the client: 3rd over the rate", 3),
            decap_dropped("from the client: 4th over the rate", 4),
        ],
    );
    // The up bucket's drops took nothing from the down bucket, nor did
    // they record their sequence numbers.
    assert_eq!(dp.seq().rx_highest(3).unwrap(), Some(2));
    check(
        &dp,
        &fib,
        vec![
            encap("to the client: 1st within the burst", 20),
            encap("to the client: 2nd within the burst", 21),
            encap_dropped("to the client: 3rd over the rate"),
        ],
    );
    // The dropped packet took no sequence number.
    assert_eq!(dp.seq().load(3).unwrap().tx_next, 22);
    let c = dp.counters(3).unwrap();
    assert_eq!(
        (c.rx_packets, c.tx_packets),
        (2, 2),
        "drops are not counted as traffic"
    );

    // A live change: no limit from the client, 1 Mbit/s to it (buckets full).
    dp.set_rate(PEER, OUR_CALL, CLIENT, |s| {
        s.rate_up_kbps = 0;
        s.rate_down_kbps = 1000;
        s.rate_tat = 0;
    })
    .unwrap();
    check(
        &dp,
        &fib,
        vec![
            encap("1 Mbit/s: passes again", 22),
            decap("no limit any more: 5th", 5),
            decap("no limit any more: 6th", 6),
            decap("no limit any more: 7th", 7),
        ],
    );
    // The other entry's fields were kept.
    assert_eq!(dp.installed().unwrap(), (1, 1));
    // A session that is not installed is an error, and nothing is added.
    assert!(dp.set_rate(PEER2, 9, CLIENT2, |_| {}).is_err());
    assert_eq!(dp.installed().unwrap(), (1, 1));
}

#[test]
fn attached_on_veth_counts_gre_and_other_frames() {
    netns::require_root().expect("prerequisite");
    let client = Netns::new("pxc").unwrap();
    let server = Netns::new("pxs").unwrap();
    netns::veth(&client, "c0", &server, "s0").unwrap();
    let server_mac = server.mac("s0").unwrap();

    let mut dp = load();
    dp.install(&session(0), seq(0)).unwrap();
    dp.register_call(PEER, OUR_CALL, CallEntry::default().network_up())
        .unwrap();
    let mode = server
        .run(|| dp.attach("s0", XdpMode::Driver))
        .unwrap()
        .expect("native XDP on veth");
    assert_eq!(mode, AttachedMode::Driver);
    let shown = server.ip(&["link", "show", "s0"]).unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("xdp"),
        "ip link shows the program"
    );

    let ppp_ip = [0xFF, 0x03, 0x00, 0x21, 0x45, 0, 0, 20];
    let frames = [
        (
            from_peer(PEER, &[0, 0, 0x08, 0, 0x45, 0, 0, 20]),
            Stat::GreNotPptp,
        ),
        (
            from_peer(PEER, &gre(0x0999, Some(1), None, &ppp_ip)),
            Stat::GreUnknownCall,
        ),
        (
            from_peer(PEER, &gre(OUR_CALL, Some(1), None, &ppp_ip)),
            Stat::GreToUserspace,
        ),
        (
            from_peer(PEER, &gre(OUR_CALL, None, Some(3), &[])),
            Stat::GreToUserspace,
        ),
        (frame(PEER, WAN, 17, &[0u8; 16]), Stat::NotGre),
        (frame(PEER, WAN, 6, &[0u8; 20]), Stat::NotGre),
    ];
    client
        .run(|| {
            let sock = RawSocket::open("c0").unwrap();
            for (frame, _) in &frames {
                let mut f = frame.clone();
                f[..6].copy_from_slice(&server_mac);
                sock.send(&f).unwrap();
            }
        })
        .unwrap();

    let mut stats = dp.stats().unwrap();
    for _ in 0..100 {
        if stats[Stat::Frames as usize] >= frames.len() as u64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        stats = dp.stats().unwrap();
    }
    // IPv6 neighbour discovery and the like may cross the link too; the
    // IPv4 counters see only our frames.
    for stat in [
        Stat::NotGre,
        Stat::GreNotPptp,
        Stat::GreUnknownCall,
        Stat::GreToUserspace,
    ] {
        let want = frames.iter().filter(|(_, s)| *s == stat).count() as u64;
        assert_eq!(stats[stat as usize], want, "{stat:?}");
    }

    drop(dp);
    let shown = server.ip(&["link", "show", "s0"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&shown.stdout).contains("xdp"),
        "detached on drop"
    );
}
