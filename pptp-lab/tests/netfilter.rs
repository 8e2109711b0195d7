//! The operator's network policy on the fast path (issue 17): the real
//! daemon in `forwarding = "stack"` mode behind a realistic nftables
//! ruleset (Debian's nft) with reverse-path filtering strict on every
//! interface of the server namespace. A MASQUERADE rule makes the LAN host
//! see the server's address for a client's TCP and UDP (and the LAN has no
//! route back to the pool, so only NAT makes it work), a FORWARD drop rule
//! for one client's destination blocks it while other traffic flows, and a
//! host on the WAN side cannot reach a client around the FORWARD chain;
//! meanwhile the data goes through the kernel program both ways, not
//! through userspace. Each runs with a fast-path session and with an MPPE
//! one (whose data takes the path `ctl sessions` reports for it). The
//! same WAN-side frame with `forwarding = "xdp"` does reach the client:
//! the documented bypass, and the proof that the test sees it. A client
//! reaches the server itself under strict rp_filter, which in xdp mode
//! drops what the fast path hands the stack. Needs root and nft; fails
//! (never skips) without them.
//!
//! The ruleset is the example of docs/netfilter.md.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use pptp_daemon::server::ctl::DataPath;
use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, PASSWORD, Process, SERVER_LAN, TUNNEL_NET, Topology, USER},
    nft,
};
use pptp_netns::{self as netns, Netns, RawSocket};

mod common;
use common::bin;

/// The ruleset of a PPTP concentrator whose clients reach a private LAN
/// (l0) through NAT: the server itself takes PPTP (the control
/// connection and GRE) and ICMP only, forwarding is denied but for the
/// tunnel's own traffic and its replies, one client (bob, 198.19.200.7) may not reach
/// one LAN host, and what leaves on the LAN is masqueraded. Named
/// counters show which rule saw what.
const RULESET: &str = r#"
table inet pptp_lab {
    counter blocked { }
    counter from_tunnel { }
    counter forward_dropped { }
    counter masqueraded { }

    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iif "lo" accept
        tcp dport 1723 accept
        meta l4proto gre accept
        meta l4proto { icmp, ipv6-icmp } accept
    }

    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "pptp0" ip saddr 198.19.200.7 ip daddr 198.18.1.3 counter name "blocked" drop
        iifname "pptp0" counter name "from_tunnel" accept
        counter name "forward_dropped"
    }

    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "l0" counter name "masqueraded" masquerade
    }
}
"#;
const TABLE: (&str, &str) = ("inet", "pptp_lab");

/// The second LAN address, the one bob may not reach.
const BLOCKED: &str = "198.18.1.3";
/// bob's fixed address (the lab's chap-secrets).
const BOB: &str = "198.19.200.7";
const BOB_PASSWORD: &str = "bobsecret";
/// A host on the WAN segment, next to the clients.
const WAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);
/// The session's MTU bounds the payload of one tunnel frame: moving N
/// bytes takes at least N / MTU frames.
const TUNNEL_MTU: u64 = 1400;

/// The lab in `forwarding` mode behind [`RULESET`], rp_filter strict on
/// every interface of the server, the LAN host with a second address
/// ([`BLOCKED`]) and without the lab's route back to the pool.
fn start(forwarding: &'static str) -> Lab {
    netns::require_root().expect("prerequisite");
    nft::nft_binary().expect("prerequisite");
    let topology = Topology::new().unwrap_or_else(|e| panic!("{e}"));
    // The operator's LAN does not know the pool: replies come back only
    // through NAT.
    topology
        .lan
        .ip(&["route", "del", TUNNEL_NET, "via", SERVER_LAN])
        .unwrap();
    topology
        .lan
        .ip(&["addr", "add", &format!("{BLOCKED}/24"), "dev", "h0"])
        .unwrap();
    nft::set_rp_filter(&topology.server, 1).unwrap();
    nft::load(&topology.server, RULESET).unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            forwarding,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The daemon's devices (pptp0, and pptp0p in stack mode) exist now.
    nft::set_rp_filter(&lab.topology.server, 1).unwrap();
    lab
}

/// rp_filter is still strict on every interface of the server, the
/// daemon's tunnel device (and in stack mode its inject end) included.
fn assert_rp_filter_strict(lab: &Lab, forwarding: &str) {
    let values = nft::rp_filter(&lab.topology.server).unwrap();
    let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
    let stack = ["pptp0p"];
    let extra: &[&str] = if forwarding == "stack" { &stack } else { &[] };
    for needed in ["all", "default", "s0", "l0", "pptp0"].iter().chain(extra) {
        assert!(names.contains(needed), "no {needed} in {values:?}");
    }
    assert!(values.iter().all(|(_, v)| *v == 1), "{values:?}");
    // And it had nothing to drop: every packet arrived where its source
    // routes back to.
    if forwarding == "stack" {
        let drops = nft::rp_filter_drops(&lab.topology.server).unwrap();
        assert_eq!(drops, 0, "reverse-path filter drops\n{}", state(lab));
    }
}

/// Starts a client as `user` (MPPE-128 when `mppe`) and returns it with
/// its session's address once it is up.
fn client(lab: &Lab, user: &str, mppe: bool, extra: &[&str]) -> (Process, String) {
    let password = if user == USER { PASSWORD } else { BOB_PASSWORD };
    let mut args = extra.to_vec();
    if mppe {
        args.push("--mppe");
    }
    let mut client = lab.client_as(user, password, &args).unwrap();
    match client.session_outcome(Duration::from_secs(30)) {
        Ok(Ok(up)) => {
            assert_eq!(up["mppe"], serde_json::Value::Bool(mppe), "{up}");
            let addr = up["address"].as_str().expect("address").to_owned();
            (client, addr)
        }
        Ok(Err(line)) => panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log()),
        Err(e) => panic!("{e}\ndaemon log:\n{}", lab.daemon_log()),
    }
}

/// The data counted between `before` and `after` went the sessions' data
/// path (all sessions on the same one): at least `up` frames from the
/// clients and `down` to them. On the fast path, userspace carried at
/// most `detours` data packets each way.
fn assert_carried(
    lab: &Lab,
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
    (up, down): (u64, u64),
    detours: u64,
) {
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let summary = [
        "xdp_gre_decapsulated",
        "xdp_encapsulated",
        "xdp_mppe_decrypted",
        "xdp_mppe_encrypted",
        "userspace_data_rx_packets",
        "userspace_data_tx_packets",
    ]
    .map(|k| format!("{k} +{}", delta(k)))
    .join(", ");
    println!("{summary}");
    let sessions = lab.sessions().unwrap();
    let paths: Vec<DataPath> = sessions.iter().map(|s| s.path).collect();
    // MPPE sessions on the fast path are received and sent there too
    // (issue 14): their frames are decrypted and encrypted in XDP.
    let mppe = sessions.iter().any(|s| s.mppe.is_some());
    let (rx, tx) = match paths[..] {
        [DataPath::Xdp, ..] => {
            for key in ["userspace_data_rx_packets", "userspace_data_tx_packets"] {
                assert!(
                    delta(key) <= detours,
                    "{key} grew {} > {detours}; {summary}\n{}",
                    delta(key),
                    state(lab)
                );
            }
            if mppe {
                ("xdp_mppe_decrypted", "xdp_mppe_encrypted")
            } else {
                ("xdp_gre_decapsulated", "xdp_encapsulated")
            }
        }
        _ => ("userspace_data_rx_packets", "userspace_data_tx_packets"),
    };
    assert!(
        paths.iter().all(|p| *p == paths[0]),
        "sessions on different paths: {paths:?}"
    );
    assert!(
        delta(rx) >= up && delta(tx) >= down,
        "expected {up} frames up and {down} down on {:?}: {summary}\n{}",
        paths[0],
        state(lab)
    );
}

/// Traffic from `from` (a tunnel address in the client namespace) leaves
/// through `tun`: a routing rule per source, as two sessions in one
/// namespace each add the same route to the LAN.
fn route_from(lab: &Lab, from: &str, tun: &str, table: &str) {
    let client = &lab.topology.client;
    client
        .ip(&["route", "add", "198.18.1.0/24", "dev", tun, "table", table])
        .unwrap();
    client
        .ip(&["rule", "add", "from", from, "lookup", table, "pref", table])
        .unwrap();
}

fn counter(lab: &Lab, name: &str) -> u64 {
    nft::counter(&lab.topology.server, TABLE.0, TABLE.1, name)
        .unwrap_or_else(|e| panic!("{e}"))
        .packets
}

/// What failure messages show: the daemon's counters, the ruleset with
/// its counters, the daemon's warnings and errors.
fn state(lab: &Lab) -> String {
    let mut stats: Vec<_> = lab
        .stats()
        .map(|s| s.into_iter().filter(|(_, v)| *v != 0).collect())
        .unwrap_or_default();
    stats.sort();
    format!(
        "counters: {stats:?}\nruleset:\n{}\ndaemon warnings:\n{}",
        nft::ruleset(&lab.topology.server).unwrap_or_else(|e| e.to_string()),
        lab.daemon_log()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// A UDP echo server on the LAN host's addresses (one socket each, so
/// that a reply leaves from the address the request went to), noting who
/// sent.
struct UdpEcho {
    port: u16,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    fn start(lan: &Netns) -> Self {
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut port = 0;
        let mut threads = Vec::new();
        for addr in [LAN_HOST, BLOCKED] {
            let ip: Ipv4Addr = addr.parse().unwrap();
            let socket = lan.run(|| UdpSocket::bind((ip, port))).unwrap().unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            port = socket.local_addr().unwrap().port();
            let (peers, stop) = (peers.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                        peers.lock().unwrap().push(peer);
                        let _ = socket.send_to(&buf[..n], peer);
                    }
                }
            }));
        }
        Self {
            port,
            peers,
            stop,
            threads,
        }
    }

    fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends `count` datagrams of `size` bytes from `from` (client namespace)
/// to `to:port` one after another, each waiting up to `wait` for its
/// echo; how many came back intact.
fn udp_echoes(
    lab: &Lab,
    from: &str,
    to: &str,
    port: u16,
    count: usize,
    size: usize,
    wait: Duration,
) -> usize {
    let from: Ipv4Addr = from.parse().unwrap();
    let to: Ipv4Addr = to.parse().unwrap();
    let socket = lab
        .topology
        .client
        .run(|| UdpSocket::bind((from, 0)))
        .unwrap()
        .unwrap();
    socket.connect((to, port)).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut back = 0;
    let mut buf = vec![0u8; size + 1];
    for i in 0..count {
        let payload: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
        socket.send(&payload).unwrap();
        // A late echo of an earlier datagram does not count for this one.
        while let Ok(n) = socket.recv(&mut buf) {
            if buf[..n] == payload[..] {
                back += 1;
                break;
            }
        }
    }
    back
}

/// Sends `bytes` over TCP from `from` (client namespace) to a listener
/// on the LAN host, which echoes them back; checks every byte both ways
/// and returns the peer address the LAN host saw.
fn tcp_echo(lab: &Lab, from: &str, bytes: usize) -> Result<SocketAddr, String> {
    let listener = lab
        .topology
        .lan
        .run(|| TcpListener::bind((LAN_HOST, 0)))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let echo = std::thread::spawn(move || -> std::io::Result<(SocketAddr, usize)> {
        let (mut s, peer) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = vec![0u8; 65536];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok((peer, total));
            }
            s.write_all(&buf[..n])?;
            total += n;
        }
    });
    let from: Ipv4Addr = from.parse().map_err(|e| format!("{e}"))?;
    let lan: Ipv4Addr = LAN_HOST.parse().expect("constant");
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 + i / 251) as u8).collect();
    let result = lab
        .topology
        .client
        .run(|| -> std::io::Result<()> {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.bind(&SocketAddr::from((from, 0)).into())?;
            sock.connect_timeout(
                &SocketAddr::from((lan, port)).into(),
                Duration::from_secs(10),
            )?;
            let mut stream: TcpStream = sock.into();
            // A connection that hangs after connect() (NAT on the SYN
            // only) fails here.
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut writer = stream.try_clone()?;
            let sent = data.clone();
            let sender = std::thread::spawn(move || -> std::io::Result<()> {
                writer.write_all(&sent)?;
                writer.shutdown(std::net::Shutdown::Write)
            });
            let mut back = Vec::with_capacity(bytes);
            let read = stream.read_to_end(&mut back);
            // Unblock a sender stuck on a full window before joining it.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let sent = sender
                .join()
                .map_err(|_| std::io::Error::other("sender panicked"))?;
            read?;
            sent?;
            if back != data {
                return Err(std::io::Error::other(format!(
                    "echo differs: sent {bytes} bytes, got {}",
                    back.len()
                )));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    result.map_err(|e| format!("TCP transfer from {from}: {e}"))?;
    let (peer, echoed) = echo
        .join()
        .map_err(|_| "echo server panicked".to_owned())?
        .map_err(|e| format!("echo server: {e}"))?;
    if echoed != bytes {
        return Err(format!("echo server saw {echoed} bytes, expected {bytes}"));
    }
    Ok(peer)
}

/// A client's TCP and UDP through the tunnel reach a LAN host that has
/// no route back to the pool, and the LAN host sees the server's address.
fn masquerade(mppe: bool, bytes: usize) {
    const DATAGRAMS: usize = 50;
    let lab = start("stack");
    let (_client, addr) = client(&lab, USER, mppe, &[]);
    nft::set_rp_filter(&lab.topology.server, 1).unwrap();
    let udp = UdpEcho::start(&lab.topology.lan);
    let before = lab.stats().unwrap();
    let masqueraded = counter(&lab, "masqueraded");

    let peer = tcp_echo(&lab, &addr, bytes).unwrap_or_else(|e| panic!("{e}\n{}", state(&lab)));
    let echoed = udp_echoes(
        &lab,
        &addr,
        LAN_HOST,
        udp.port,
        DATAGRAMS,
        1200,
        Duration::from_secs(1),
    );
    let after = lab.stats().unwrap();

    // The LAN host saw the server's LAN address, for TCP and UDP alike.
    let server_lan: Ipv4Addr = SERVER_LAN.parse().unwrap();
    assert_eq!(peer.ip(), server_lan, "TCP peer\n{}", state(&lab));
    assert_eq!(echoed, DATAGRAMS, "UDP echoes\n{}", state(&lab));
    let peers = udp.peers();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.ip() == server_lan),
        "UDP peers {peers:?}\n{}",
        state(&lab)
    );
    // One TCP connection and one UDP flow: NAT saw their first packets.
    assert!(
        counter(&lab, "masqueraded") - masqueraded >= 2,
        "{}",
        state(&lab)
    );

    // Every data frame went the session's path both ways: moving `bytes`
    // takes at least bytes / MTU frames each way, plus the datagrams. On
    // the fast path userspace carried none of the data, only the TCP
    // handshake, whose SYN (up) and SYN-ACK (down) carry the MSS option
    // that the kernel program hands to userspace for clamping. Within the
    // 10 s connect timeout a SYN is sent at most 4 times (at 0, 1, 3 and
    // 7 s), so at most 4 each way.
    let least = bytes as u64 / TUNNEL_MTU + DATAGRAMS as u64;
    assert_carried(&lab, &before, &after, (least, least), 4);
    assert_rp_filter_strict(&lab, "stack");
}

#[test]
fn masquerade_hides_a_client_behind_the_server_on_the_fast_path() {
    masquerade(false, 4_000_000);
}

#[test]
fn masquerade_hides_an_mppe_client_behind_the_server() {
    masquerade(true, 1_000_000);
}

/// Two sessions; the ruleset forbids one of them one LAN address.
fn forward_drop(mppe: bool) {
    let lab = start("stack");
    // bob (A) holds 198.19.200.7, whom the ruleset forbids BLOCKED; alice
    // (B) may go anywhere.
    let (_a, a_addr) = client(&lab, "bob", mppe, &["--tun", "nfa0"]);
    assert_eq!(a_addr, BOB);
    let (_b, b_addr) = client(&lab, USER, mppe, &["--tun", "nfb0"]);
    route_from(&lab, &a_addr, "nfa0", "101");
    route_from(&lab, &b_addr, "nfb0", "102");
    nft::set_rp_filter(&lab.topology.server, 1).unwrap();
    let udp = UdpEcho::start(&lab.topology.lan);
    let blocked_before = counter(&lab, "blocked");
    let before = lab.stats().unwrap();
    let wait = Duration::from_millis(500);

    // What flows: A to the other LAN address, B to both.
    for (from, to) in [(&a_addr, LAN_HOST), (&b_addr, LAN_HOST), (&b_addr, BLOCKED)] {
        lab.ping(from, to, 3)
            .unwrap_or_else(|e| panic!("{e}\n{}", state(&lab)));
        assert_eq!(
            udp_echoes(&lab, from, to, udp.port, 5, 500, Duration::from_secs(1)),
            5,
            "UDP {from} -> {to}\n{}",
            state(&lab)
        );
    }
    // What does not: A to BLOCKED, neither ICMP nor UDP.
    assert!(
        lab.ping(&a_addr, BLOCKED, 2).is_err(),
        "{a_addr} reached {BLOCKED}\n{}",
        state(&lab)
    );
    assert_eq!(
        udp_echoes(&lab, &a_addr, BLOCKED, udp.port, 3, 500, wait),
        0,
        "UDP {a_addr} -> {BLOCKED}\n{}",
        state(&lab)
    );
    // The LAN host never heard from A at BLOCKED (nor anyone with A's
    // address: everything arrived masqueraded).
    let peers = udp.peers();
    assert!(
        peers.iter().all(|p| p.ip().to_string() == SERVER_LAN),
        "{peers:?}"
    );
    assert_eq!(peers.len(), 15, "{peers:?}");
    // The drop rule did it: 2 echo requests and 3 datagrams.
    let blocked = counter(&lab, "blocked") - blocked_before;
    assert!(blocked >= 5, "blocked counted {blocked}\n{}", state(&lab));
    // The allowed traffic (3 pings and 5 datagrams each way, three
    // times) and the blocked one (5 up) went the sessions' data path; no
    // TCP here, so on the fast path none of it went through userspace.
    let after = lab.stats().unwrap();
    assert_carried(&lab, &before, &after, (3 * (3 + 5) + 5, 3 * (3 + 5)), 0);
    assert_rp_filter_strict(&lab, "stack");
}

#[test]
fn forward_drop_blocks_one_clients_destination_and_nothing_else() {
    forward_drop(false);
}

#[test]
fn forward_drop_blocks_one_mppe_clients_destination_and_nothing_else() {
    forward_drop(true);
}

/// An IPv4/UDP frame from [`WAN_HOST`] to `to:port` as a host on the WAN
/// segment would send it to the server (its next hop towards the pool).
fn wan_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    to: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 28 + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&0x5151u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&WAN_HOST.octets());
    ip[16..20].copy_from_slice(&to.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    // No UDP checksum (allowed over IPv4, RFC 768).
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A host on the WAN segment sends `FRAMES` datagrams straight to the
/// client's tunnel address (the server being its next hop); how many
/// reached a socket bound to that address in the client namespace (where
/// only the tunnel delivers to it), and the forward chain's policy
/// counter's growth.
fn wan_host_to_client(lab: &Lab, mppe: bool) -> (usize, u64) {
    const FRAMES: usize = 5;
    let (session, addr) = client(lab, USER, mppe, &[]);
    let addr: Ipv4Addr = addr.parse().unwrap();
    nft::set_rp_filter(&lab.topology.server, 1).unwrap();
    let receiver = lab
        .topology
        .client
        .run(|| UdpSocket::bind(SocketAddrV4::new(addr, 0)))
        .unwrap()
        .unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = receiver.local_addr().unwrap().port();
    let mut buf = [0u8; 256];
    // The receiver works: what the server itself sends to the client
    // (through the tunnel, in either mode) arrives.
    let control = b"from the server";
    let sender = lab
        .topology
        .server
        .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    // (The client reports its session up when its IPCP opens; the
    // server's route to the address may follow a moment later: until then
    // sending fails with "network unreachable", so try for a while.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let heard = loop {
        let sent = sender.send_to(control, (addr, port)).is_ok();
        if sent && matches!(receiver.recv(&mut buf), Ok(n) if &buf[..n] == control) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        if !sent {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(heard, "the server cannot reach {addr}\n{}", state(lab));
    while receiver.recv(&mut buf).is_ok() {}
    let s0 = lab.topology.server.mac("s0").unwrap();
    let c0 = lab.topology.client.mac("c0").unwrap();
    let raw = lab
        .topology
        .client
        .run(|| RawSocket::open("c0"))
        .unwrap()
        .expect("packet socket on c0");
    let dropped_before = counter(lab, "forward_dropped");
    let payload = b"from the WAN, around the firewall";
    for _ in 0..FRAMES {
        raw.send(&wan_frame(s0, c0, addr, port, payload))
            .expect("sending the frame");
        std::thread::sleep(Duration::from_millis(20));
    }
    // What arrives does within a second of the last frame (in the lab, a
    // few milliseconds); the socket times out after 200 ms of silence.
    let mut arrived = 0;
    let deadline = Instant::now() + Duration::from_secs(1);
    while arrived < FRAMES && Instant::now() < deadline {
        if let Ok((n, from)) = receiver.recv_from(&mut buf)
            && &buf[..n] == payload
            && from.ip() == WAN_HOST
        {
            arrived += 1;
        }
    }
    let dropped = counter(lab, "forward_dropped") - dropped_before;
    drop(session);
    (arrived, dropped)
}

/// In stack mode a frame from the WAN side to a client goes through the
/// forward chain, whose policy drops it.
fn wan_host_blocked(mppe: bool) {
    let lab = start("stack");
    let (arrived, dropped) = wan_host_to_client(&lab, mppe);
    assert_eq!(arrived, 0, "{}", state(&lab));
    // The forward chain saw them and its policy dropped them.
    assert!(
        dropped >= 5,
        "forward_dropped grew {dropped}\n{}",
        state(&lab)
    );
    assert_rp_filter_strict(&lab, "stack");
}

#[test]
fn a_wan_host_cannot_reach_a_client_around_the_forward_chain() {
    wan_host_blocked(false);
}

#[test]
fn a_wan_host_cannot_reach_an_mppe_client_around_the_forward_chain() {
    wan_host_blocked(true);
}

#[test]
fn xdp_mode_lets_a_wan_host_reach_a_client_around_the_forward_chain() {
    // The documented bypass of `forwarding = "xdp"`: the kernel program
    // encapsulates whatever arrives for a client, before netfilter. This
    // also shows that the test above would see the frames arrive.
    let lab = start("xdp");
    let (arrived, dropped) = wan_host_to_client(&lab, false);
    assert_eq!(arrived, 5, "{}", state(&lab));
    assert_eq!(dropped, 0, "{}", state(&lab));
    assert_rp_filter_strict(&lab, "xdp");
}

/// A client pings the server's LAN address: a packet for the server
/// itself, which the stack must handle. Whether it was answered, and how
/// many packets strict reverse-path filtering dropped meanwhile.
fn client_pings_the_server(lab: &Lab) -> (bool, u64) {
    let (_client, addr) = client(lab, USER, false, &[]);
    nft::set_rp_filter(&lab.topology.server, 1).unwrap();
    let before = nft::rp_filter_drops(&lab.topology.server).unwrap();
    let answered = lab.ping(&addr, SERVER_LAN, 3).is_ok();
    let drops = nft::rp_filter_drops(&lab.topology.server).unwrap() - before;
    (answered, drops)
}

#[test]
fn a_client_reaches_the_server_itself_under_strict_rp_filter() {
    let lab = start("stack");
    let (answered, drops) = client_pings_the_server(&lab);
    assert!(answered, "no answer from {SERVER_LAN}\n{}", state(&lab));
    // Once in many runs the kernel counted one reverse-path drop during
    // the pings (all answered; not yet explained, see the closing note of
    // 2026-12-01): xdp mode drops every one of them.
    assert!(drops <= 1, "{drops} reverse-path drops\n{}", state(&lab));
    assert_rp_filter_strict(&lab, "stack");
}

#[test]
fn xdp_mode_hands_the_stack_packets_that_strict_rp_filter_drops() {
    // The documented limit of `forwarding = "xdp"`: what the fast path
    // passes to the stack arrives on the WAN interface with the client's
    // source, which routes back through pptp0.
    let lab = start("xdp");
    let (answered, drops) = client_pings_the_server(&lab);
    assert!(!answered, "{SERVER_LAN} answered\n{}", state(&lab));
    assert!(drops >= 3, "rp_filter dropped {drops}\n{}", state(&lab));
    assert_rp_filter_strict(&lab, "xdp");
}
