//! Peers behind a VLAN: a FIB lookup towards them names a VLAN device,
//! which takes no XDP frames. The programs tag the frame themselves (the
//! VLAN device's TPID and ID, read by `dataplane::vlan::links`) and send it
//! out of the lower device. BPF_PROG_TEST_RUN on crafted frames with exact
//! output bytes, in a namespace this test creates. Needs root; fails
//! (never skips) without it. Ignored in `cargo test` on this host, whose
//! kernel has no VLAN devices; `cargo xtask test` runs it in the qemu guest.

mod common;

use common::*;
use pptp_common::maps::{
    SESSION_F_DECAP, SESSION_F_ENCAP, SeqState, Session, Stat, TunnelConf, programs,
};
use pptp_daemon::dataplane::{vlan, xdp::XdpDataplane};
use pptp_netns::{self as netns, Netns};

const XDP_REDIRECT: u32 = 4;

/// Our WAN address on the 802.1Q VLAN, the peer there; our address on the
/// 802.1ad VLAN, the peer there; the LAN host.
const WAN: [u8; 4] = [198, 18, 0, 1];
const PEER: [u8; 4] = [198, 18, 0, 2];
const WAN_AD: [u8; 4] = [198, 18, 2, 1];
const PEER_AD: [u8; 4] = [198, 18, 2, 2];
const LAN_HOST: [u8; 4] = [198, 18, 1, 2];
const CLIENT: [u8; 4] = [198, 19, 0, 2];
const CLIENT_AD: [u8; 4] = [198, 19, 0, 3];
const PEER_AD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x04];
const LAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

/// wan0 (a veth) carries no address; wan0.100 (802.1Q, VLAN 100) and
/// wan0.200 (802.1ad, VLAN 200) on top of it do, with a peer each; lan0
/// leads to the LAN host.
struct Net {
    ns: Netns,
    wan: u32,
    wan_mac: [u8; 6],
    lan: u32,
    lan_mac: [u8; 6],
}

fn net() -> Net {
    netns::require_root().expect("prerequisite");
    let ns = Netns::new("pxv").unwrap();
    netns::veth(&ns, "wan0", &ns, "wanp").unwrap();
    netns::veth(&ns, "lan0", &ns, "lanp").unwrap();
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for (name, proto, id, addr, peer, peer_mac) in [
        (
            "wan0.100",
            "802.1Q",
            "100",
            "198.18.0.1/24",
            "198.18.0.2",
            CLIENT_MAC,
        ),
        (
            "wan0.200",
            "802.1ad",
            "200",
            "198.18.2.1/24",
            "198.18.2.2",
            PEER_AD_MAC,
        ),
    ] {
        ns.ip(&[
            "link", "add", "link", "wan0", "name", name, "type", "vlan", "proto", proto, "id", id,
        ])
        .unwrap_or_else(|e| panic!("creating VLAN device {name} (kernel module 8021q): {e}"));
        ns.ip(&["link", "set", name, "up"]).unwrap();
        ns.ip(&["addr", "add", addr, "dev", name]).unwrap();
        ns.ip(&[
            "neigh",
            "add",
            peer,
            "lladdr",
            &mac(peer_mac),
            "dev",
            name,
            "nud",
            "permanent",
        ])
        .unwrap();
    }
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "lan0"])
        .unwrap();
    ns.ip(&[
        "neigh",
        "add",
        "198.18.1.2",
        "lladdr",
        &mac(LAN_HOST_MAC),
        "dev",
        "lan0",
        "nud",
        "permanent",
    ])
    .unwrap();
    netns::run(ns.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"])).unwrap();
    Net {
        wan: ns.ifindex("wan0").unwrap(),
        wan_mac: ns.mac("wan0").unwrap(),
        lan: ns.ifindex("lan0").unwrap(),
        lan_mac: ns.mac("lan0").unwrap(),
        ns,
    }
}

/// The namespace's VLAN devices, as the daemon reads them at start.
fn vlan_links(ns: &Netns) -> Vec<(u32, pptp_common::maps::VlanLink)> {
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            vlan::links(&handle).await.unwrap()
        })
    })
    .unwrap()
}

fn session(peer: [u8; 4], local: [u8; 4], client: [u8; 4], slot: u32, call: u16) -> Session {
    Session {
        peer_addr: peer,
        local_addr: local,
        client_addr: client,
        slot,
        flags: SESSION_F_DECAP | SESSION_F_ENCAP,
        call_id: call,
        peer_call_id: call + 0x100,
        mtu: 1400,
        ..Session::default()
    }
}

/// An IPv4/UDP packet with TTL `ttl`.
fn udp(src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    with_ttl(ipv4(src, dst, 17, &[0x5a; 48]), ttl)
}

/// What the program sends towards `peer` on a VLAN: Ethernet with the tag
/// (`tpid`, `vid`), then outer IPv4 from `local`, GRE with sequence `seq`,
/// PPP and `inner`.
fn tagged(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    (tpid, vid): (u16, u16),
    (local, peer): ([u8; 4], [u8; 4]),
    call: u16,
    seq: u32,
    inner: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ppp = [&[0xFF, 0x03, 0x00, 0x21][..], inner].concat();
    f.extend_from_slice(&outer_ipv4(
        local,
        peer,
        seq,
        &gre(call, Some(seq), None, &ppp),
    ));
    f
}

fn run(
    dp: &XdpDataplane,
    net: &Net,
    program: &'static str,
    frame: &[u8],
    ifindex: u32,
) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 256];
    let (action, len) = net
        .ns
        .run(|| dp.test_run_program(program, frame, &mut out, Some(ifindex)))
        .unwrap()
        .unwrap();
    out.truncate(len);
    (action, out)
}

#[test]
#[ignore = "needs VLAN devices (CONFIG_VLAN_8021Q), which this host's kernel lacks: `cargo xtask test` runs it in the qemu guest (`cargo xtask guest-tests`)"]
fn peers_behind_a_vlan_get_tagged_frames() {
    let net = net();
    let links = vlan_links(&net.ns);
    let mut found: Vec<(u32, [u8; 2], [u8; 2])> = links
        .iter()
        .map(|(_, l)| (l.parent_ifindex, l.tpid, l.tci))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (net.wan, [0x81, 0x00], [0, 100]),
            (net.wan, [0x88, 0xa8], [0, 200])
        ],
        "the namespace's two VLAN devices on wan0: {links:?}"
    );

    let mut dp = XdpDataplane::load(log::LevelFilter::Warn).expect("loading the XDP program");
    dp.install(
        &session(PEER, WAN, CLIENT, 3, 7),
        SeqState {
            tx_next: 10,
            ..SeqState::default()
        },
    )
    .unwrap();
    dp.install(
        &session(PEER_AD, WAN_AD, CLIENT_AD, 4, 8),
        SeqState {
            tx_next: 50,
            ..SeqState::default()
        },
    )
    .unwrap();
    let from_lan = |inner: &[u8]| [eth(net.lan_mac, LAN_HOST_MAC, 0x0800), inner.to_vec()].concat();
    let to_client = udp(LAN_HOST, CLIENT, 64);
    let to_client_ad = udp(LAN_HOST, CLIENT_AD, 64);

    // Without the VLAN devices in the map the redirect names wan0.100
    // itself, untagged: what this test exists to rule out.
    let (action, out) = run(&dp, &net, programs::XDP, &from_lan(&to_client), net.lan);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        &out[12..14],
        &[0x08, 0x00],
        "no tag before the VLANs are known"
    );

    assert_eq!(dp.set_vlans(&links).unwrap(), 0, "all VLAN devices fit");
    let before = dp.stats().unwrap()[Stat::Encapsulated as usize];
    // forwarding = "xdp": encapsulated on the LAN side, out of wan0 tagged.
    let (action, out) = run(&dp, &net, programs::XDP, &from_lan(&to_client), net.lan);
    assert_eq!(action, XDP_REDIRECT, "xdp mode, 802.1Q");
    assert_eq!(
        out,
        tagged(
            CLIENT_MAC,
            net.wan_mac,
            (0x8100, 100),
            (WAN, PEER),
            0x107,
            11,
            &hop(&to_client)
        ),
        "xdp mode, 802.1Q: output bytes"
    );
    let (action, out) = run(&dp, &net, programs::XDP, &from_lan(&to_client_ad), net.lan);
    assert_eq!(action, XDP_REDIRECT, "xdp mode, 802.1ad");
    assert_eq!(
        out,
        tagged(
            PEER_AD_MAC,
            net.wan_mac,
            (0x88a8, 200),
            (WAN_AD, PEER_AD),
            0x108,
            50,
            &hop(&to_client_ad)
        ),
        "xdp mode, 802.1ad: output bytes"
    );

    // forwarding = "stack": what the stack routed out of the tunnel device,
    // looked up from the WAN interface (wan0, the VLANs' lower device).
    netns::veth(&net.ns, "tun0", &net.ns, "tun0p").unwrap();
    let inject = net.ns.ifindex("tun0p").unwrap();
    let (tun_mac, inject_mac) = (net.ns.mac("tun0").unwrap(), net.ns.mac("tun0p").unwrap());
    dp.set_tunnel(TunnelConf {
        inject_ifindex: inject,
        wan_ifindex: net.wan,
        tunnel_mac: tun_mac,
        inject_mac,
    })
    .unwrap();
    let routed = [eth(inject_mac, tun_mac, 0x0800), to_client.clone()].concat();
    let (action, out) = run(&dp, &net, programs::TUNNEL, &routed, inject);
    assert_eq!(action, XDP_REDIRECT, "stack mode");
    assert_eq!(
        out,
        tagged(
            CLIENT_MAC,
            net.wan_mac,
            (0x8100, 100),
            (WAN, PEER),
            0x107,
            12,
            &to_client
        ),
        "stack mode: output bytes (the inner packet untouched: the stack made the hop)"
    );
    assert_eq!(dp.stats().unwrap()[Stat::Encapsulated as usize], before + 3);

    // The map follows the namespace: with the VLANs gone, nothing is tagged.
    assert_eq!(dp.set_vlans(&[]).unwrap(), 0);
    let (_, out) = run(&dp, &net, programs::XDP, &from_lan(&to_client), net.lan);
    assert_eq!(
        &out[12..14],
        &[0x08, 0x00],
        "untagged once the VLANs are removed"
    );
}
