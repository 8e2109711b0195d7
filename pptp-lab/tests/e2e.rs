//! End to end across network namespaces: the real daemon binary in a
//! server namespace, our client in a client namespace, a LAN host behind
//! the server. Needs root; fails (never skips) without it.
//!
//! The daemon binary belongs to another package, so cargo does not build it
//! for these tests: the first test builds it (a no-op when it is fresh) with
//! the cargo and profile that built this test.

use std::{path::Path, time::Duration};

use pptp_daemon::server::ctl::DataPath;
use pptp_lab::lab::{LAN_HOST, Lab, LabOptions, Process};
use pptp_netns as netns;

mod common;
use common::bin;

use serde_json::Value;

fn lab(options: LabOptions) -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(bin(), &options).unwrap_or_else(|e| panic!("{e}"))
}

/// Waits for the client's "all_up" line and returns the "up" lines.
fn wait_up(client: &mut Process, lab: &Lab, sessions: usize) -> Vec<Value> {
    let mut ups = Vec::new();
    let r = client.wait_for_line(Duration::from_secs(60 + sessions as u64), |line| {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        match v["event"].as_str() {
            Some("up") => {
                ups.push(v);
                false
            }
            Some("all_up") => true,
            Some("failed") | Some("down") => {
                panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log())
            }
            _ => false,
        }
    });
    r.unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    ups
}

fn address(up: &Value) -> String {
    up["address"].as_str().expect("address").to_owned()
}

#[test]
fn session_passes_ping_and_tcp_on_the_userspace_path() {
    let lab = lab(LabOptions {
        xdp: false,
        ..LabOptions::default()
    });
    let mut client = lab.client(&[]).unwrap();
    let ups = wait_up(&mut client, &lab, 1);
    let addr = address(&ups[0]);
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    lab.tcp_echo(&addr, 2_000_000)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let sessions = lab.sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.user.as_deref(), Some("alice"));
    assert_eq!(s.path, DataPath::Userspace);
    assert!(s.rx_bytes > 2_000_000 && s.tx_bytes > 2_000_000, "{s:?}");
}

/// Everything a session held is back: no call, address, route, XDP entry
/// or socket.
fn assert_clean(lab: &Lab) {
    assert_clean_from(lab, None)
}

/// Like [`assert_clean`], also checking that the daemon holds no more file
/// descriptors than `baseline` (taken before the sessions started).
fn assert_clean_from(lab: &Lab, baseline: Option<usize>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = lab.stats().unwrap();
        let routes = lab
            .topology
            .server
            .ip(&["-4", "route", "show", "dev", "pptp0"])
            .unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        let held: Vec<_> = [
            "calls",
            "clients_routed",
            "pool_in_use",
            "call_ids_live",
            "xdp_sessions_installed",
            "xdp_clients_installed",
        ]
        .iter()
        .filter(|k| stats.get(**k).copied().unwrap_or(0) != 0)
        .map(|k| format!("{k}={}", stats[*k]))
        .collect();
        let fds = lab.daemon_fds();
        let fds_ok = baseline.is_none_or(|b| fds <= b);
        if held.is_empty()
            && fds_ok
            && !routes.contains("198.19.")
            && lab.sessions().unwrap().is_empty()
        {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "left behind: {held:?}, routes: {routes}, fds {fds} (baseline {baseline:?})\ndaemon log:\n{}",
                lab.daemon_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `forwarding = "stack"` (the default): the data goes through the stack
/// on the tunnel device, the kernel programs at both ends of it.
#[test]
fn session_data_goes_through_xdp_both_ways() {
    data_through_the_kernel_both_ways(LabOptions::default());
}

/// `forwarding = "xdp"`: routed by the XDP program itself.
#[test]
fn session_data_goes_through_xdp_both_ways_in_xdp_forwarding() {
    data_through_the_kernel_both_ways(LabOptions {
        forwarding: "xdp",
        ..LabOptions::default()
    });
}

fn data_through_the_kernel_both_ways(options: LabOptions) {
    let lab = lab(options);
    let mut client = lab.client(&[]).unwrap();
    let ups = wait_up(&mut client, &lab, 1);
    let addr = address(&ups[0]);
    let before = lab.stats().unwrap();
    lab.ping(&addr, LAN_HOST, 5)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    lab.tcp_echo(&addr, 4_000_000).unwrap_or_else(|e| {
        panic!(
            "{e}\n{:?}\n{}",
            lab.stats(),
            lab.daemon_log()
                .lines()
                .filter(|l| !l.contains("DEBUG"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let after = lab.stats().unwrap();
    let delta = |k: &str| after[k] - before.get(k).copied().unwrap_or(0);
    // Thousands of data frames each way went through the kernel ...
    assert!(delta("xdp_gre_decapsulated") > 1000, "{after:?}");
    assert!(delta("xdp_encapsulated") > 1000, "{after:?}");
    // ... while userspace saw only a handful (the TCP SYNs, clamped there,
    // acknowledgments, keepalives), never the data.
    assert!(delta("userspace_tun_rx") < 10, "{after:?}");
    assert!(delta("userspace_gre_rx") < 20, "{after:?}");
    let s = &lab.sessions().unwrap()[0];
    assert_eq!(s.path, DataPath::Xdp);
    assert!(
        s.rx_bytes > 4_000_000 && s.tx_bytes > 4_000_000,
        "kernel counters reach `sessions`: {s:?}"
    );

    // The client hangs up (Call-Clear-Request, then Stop-Control-Connection).
    assert!(
        client
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_clean(&lab);
}

#[test]
fn mppe_sessions_work_next_to_clear_xdp_ones() {
    let lab = lab(LabOptions::default());
    let mut plain = lab.client(&["--tun", "plain0"]).unwrap();
    let plain_addr = address(&wait_up(&mut plain, &lab, 1)[0]);
    lab.ping(&plain_addr, LAN_HOST, 3).unwrap();
    // The second client's route to the LAN replaces the first one's; from
    // here on the LAN is reached through the MPPE client.
    let mut enc = lab.client(&["--mppe", "--tun", "mppe0"]).unwrap();
    let ups = wait_up(&mut enc, &lab, 1);
    assert_eq!(ups[0]["mppe"], Value::Bool(true));
    let enc_addr = address(&ups[0]);
    lab.ping(&enc_addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    lab.tcp_echo(&enc_addr, 1_000_000).unwrap_or_else(|e| {
        panic!(
            "{e}\n{:?}\n{}",
            lab.stats(),
            lab.daemon_log()
                .lines()
                .filter(|l| l.contains("dropped"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let sessions = lab.sessions().unwrap();
    let by_addr = |a: &str| {
        sessions
            .iter()
            .find(|s| s.client_addr.map(|c| c.to_string()).as_deref() == Some(a))
            .unwrap()
            .clone()
    };
    let e = by_addr(&enc_addr);
    // Stateless MPPE is received and sent in XDP, issue 14.
    assert_eq!(e.path, DataPath::Xdp);
    assert_eq!(e.mppe.as_deref(), Some("128-bit stateless"));
    assert!(e.rx_bytes > 1_000_000, "{e:?}");
    assert_eq!(by_addr(&plain_addr).path, DataPath::Xdp);
    drop(enc);
    drop(plain);
    assert_clean(&lab);
}

#[test]
fn packets_above_an_mppe_session_mtu_are_fragmented_or_refused() {
    // MPPE takes 4 bytes of the 1400-byte MRU: the session MTU is 1396,
    // below the TUN device's 1400. A 1400-byte packet towards the client
    // must be fragmented (DF clear) or answered with ICMP Fragmentation
    // Needed (DF set), never silently dropped.
    let lab = lab(LabOptions::default());
    let mut enc = lab.client(&["--mppe", "--tun", "mtu0"]).unwrap();
    let addr = address(&wait_up(&mut enc, &lab, 1)[0]);
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();

    // DF set: the sender learns the MTU.
    let out = lab
        .topology
        .lan
        .command("ping")
        .args(["-c", "1", "-W", "2", "-M", "do", "-s", "1372", &addr])
        .output()
        .expect("ping (install iputils-ping: `cargo xtask setup`)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mtu = 1396"), "{text}\n{}", lab.daemon_log());

    // DF clear: 1400 bytes arrive, in fragments, and are reassembled.
    let receiver = lab
        .topology
        .client
        .run(|| std::net::UdpSocket::bind((ip, 0)))
        .unwrap()
        .unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let port = receiver.local_addr().unwrap().port();
    let payload: Vec<u8> = (0..1372u32).map(|i| (i % 251) as u8).collect();
    let mut got = None;
    for _ in 0..5 {
        lab.topology
            .lan
            .run(|| {
                use std::os::fd::AsRawFd as _;
                let s = std::net::UdpSocket::bind((LAN_HOST, 0)).unwrap();
                let dont: libc::c_int = libc::IP_PMTUDISC_DONT;
                // SAFETY: a valid socket and an int option.
                let rc = unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::IPPROTO_IP,
                        libc::IP_MTU_DISCOVER,
                        (&dont as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as u32,
                    )
                };
                assert_eq!(rc, 0, "IP_MTU_DISCOVER");
                s.send_to(&payload, (ip, port)).unwrap();
            })
            .unwrap();
        let mut buf = [0u8; 2048];
        if let Ok(n) = receiver.recv(&mut buf) {
            got = Some(buf[..n].to_vec());
            break;
        }
    }
    let stats = lab.stats();
    assert_eq!(got.as_deref(), Some(&payload[..]), "{stats:?}");
    drop(enc);
    assert_clean(&lab);
}

fn signal(process: &Process, sig: i32) {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(process.child.id() as i32, sig) };
}

/// Reads client lines until a "down" event; returns it.
fn wait_down(client: &mut Process, lab: &Lab, within: Duration) -> Value {
    let line = client
        .wait_for_line(within, |l| l.contains("\"down\""))
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    serde_json::from_str(&line).unwrap()
}

#[test]
fn silenced_client_is_torn_down_by_keepalive() {
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab, 1);
    assert_eq!(lab.sessions().unwrap().len(), 1);
    // The client stops answering anything (LCP and PPTP echoes alike).
    signal(&client, libc::SIGSTOP);
    // LCP echo every 5 s, 3 failures: gone within about 20 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !lab.sessions().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still up:\n{}",
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        lab.daemon_log().contains("session ended"),
        "{}",
        lab.daemon_log()
    );
    assert_clean(&lab);
    signal(&client, libc::SIGCONT);
}

#[test]
fn call_clear_then_tcp_close_like_pptp_linux_ends_the_session() {
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&["--no-stop"]).unwrap();
    wait_up(&mut client, &lab, 1);
    signal(&client, libc::SIGTERM);
    let down = wait_down(&mut client, &lab, Duration::from_secs(20));
    assert!(
        down["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("shutdown"),
        "{down}"
    );
    assert_clean(&lab);
    assert!(
        lab.daemon_log().contains("PeerEof")
            || lab.daemon_log().contains("without Stop-Control-Connection"),
        "{}",
        lab.daemon_log()
    );
}

#[test]
fn daemon_shutdown_says_goodbye() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab, 1);
    lab.stop_daemon().unwrap();
    // The client hears LCP Terminate-Request, Call-Disconnect-Notify and
    // Stop-Control-Connection-Request before the connection closes.
    let down = wait_down(&mut client, &lab, Duration::from_secs(20));
    let reason = down["reason"].as_str().unwrap_or("").to_owned();
    assert!(
        reason.contains("Terminate")
            || reason.contains("PeerDisconnected")
            || reason.contains("Stop"),
        "{down}"
    );
    let log = lab.daemon_log();
    assert!(
        log.contains("SIGTERM: shutting down") && log.contains("stopped"),
        "{log}"
    );
    // Nothing of the daemon is left in the kernel: no XDP program, no TUN.
    let links = lab.topology.server.ip(&["link", "show"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains("xdp") && !links.contains("pptp0"),
        "{links}"
    );
}

#[test]
fn hundred_sessions_from_one_address_with_colliding_call_ids() {
    let lab = lab(LabOptions::default());
    let fds = lab.daemon_fds();
    let mut client = lab
        .client(&["--sessions", "100", "--same-call-id"])
        .unwrap();
    let ups = wait_up(&mut client, &lab, 100);
    assert_eq!(ups.len(), 100);
    assert!(
        ups.iter().all(|u| u["call_id"] == 1),
        "every client call ID is 1"
    );
    let sessions = lab.sessions().unwrap();
    assert_eq!(sessions.len(), 100);
    let mut ours: Vec<u16> = sessions.iter().map(|s| s.call_id).collect();
    ours.sort_unstable();
    ours.dedup();
    assert_eq!(ours.len(), 100, "our call IDs are unique");
    assert!(
        sessions
            .iter()
            .all(|s| s.peer_call_id == 1 && s.path == DataPath::Xdp)
    );
    // No GRE frame found its call missing: a call is registered before the
    // Outgoing-Call-Reply that lets the client send goes out (otherwise the
    // first LCP request of some sessions is lost and they stall a restart
    // interval).
    let stats = lab.stats().unwrap();
    assert_eq!(
        stats.get("userspace_gre_unknown_call"),
        Some(&0),
        "{stats:?}"
    );
    // Nor in the kernel's call map, which drops GRE for calls it lacks.
    assert_eq!(stats.get("xdp_gre_unknown_call"), Some(&0), "{stats:?}");
    // Traffic through a sample of them, first, middle, last.
    for i in [0, 49, 99] {
        let a = address(&ups[i]);
        lab.ping(&a, LAN_HOST, 2).unwrap_or_else(|e| {
            panic!(
                "session {i}: {e}\n{:?}\n{:?}",
                lab.stats(),
                lab.sessions()
                    .unwrap()
                    .iter()
                    .find(|s| s.client_addr.map(|c| c.to_string()) == Some(a.clone()))
            )
        });
    }
    lab.tcp_echo(&address(&ups[17]), 500_000).unwrap();
    signal(&client, libc::SIGTERM);
    assert!(client.terminate(Duration::from_secs(60)).is_some());
    assert!(lab.daemon_fds() > 0);
    assert_clean_from(&lab, Some(fds));
}

#[test]
fn garbage_on_the_wire_harms_no_session() {
    use std::io::Write as _;
    let lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    let addr = address(&wait_up(&mut client, &lab, 1)[0]);
    // Malformed control streams: bad magic cookie, impossible length, junk.
    for junk in [
        &b"\x00\x9c\x00\x01\xde\xad\xbe\xef"[..],
        &b"\x00\x05\x00\x01\x1a\x2b\x3c\x4d\x00\x01\x00\x00"[..],
        &[0xFFu8; 300][..],
    ] {
        lab.topology
            .client
            .run(|| {
                let mut s = std::net::TcpStream::connect(("198.18.0.1", 1723)).unwrap();
                let _ = s.write_all(junk);
                let _ = s.shutdown(std::net::Shutdown::Write);
                let mut rest = Vec::new();
                let _ = std::io::Read::read_to_end(&mut s, &mut rest);
            })
            .unwrap();
    }
    // Bad GRE: version 0, unknown call, truncated, flags the RFC forbids.
    let sock = common::raw_gre_socket(&lab.topology.client);
    let dst: std::net::SocketAddr = "198.18.0.1:0".parse().unwrap();
    for frame in [
        &[0u8, 0, 0x08, 0, 0x45, 0][..],
        &[
            0x30, 0x01, 0x88, 0x0B, 0, 4, 0x77, 0x77, 0, 0, 0, 1, 0xFF, 0x03, 0xC0, 0x21,
        ][..],
        &[0x30, 0x01, 0x88][..],
        &[0xB0, 0x01, 0x88, 0x0B, 0, 0, 0, 1][..],
    ] {
        sock.send_to(frame, &dst.into()).unwrap();
    }
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    assert_eq!(lab.sessions().unwrap().len(), 1);
    let stats = lab.stats().unwrap();
    assert!(
        stats["userspace_gre_unknown_call"]
            + stats["xdp_gre_unknown_call"]
            + stats["userspace_gre_malformed"]
            + stats["xdp_gre_not_pptp"]
            + stats["xdp_gre_truncated"]
            >= 3,
        "{stats:?}"
    );
    assert!(
        lab.daemon_log().contains("malformed control stream"),
        "{}",
        lab.daemon_log()
    );
}

#[test]
fn failed_xdp_attach_keeps_sessions_on_the_userspace_path() {
    let lab = lab(LabOptions {
        wan: "nosuch0",
        ..LabOptions::default()
    });
    assert!(
        lab.daemon_log().contains("XDP unavailable"),
        "{}",
        lab.daemon_log()
    );
    let mut client = lab.client(&[]).unwrap();
    let addr = address(&wait_up(&mut client, &lab, 1)[0]);
    lab.ping(&addr, LAN_HOST, 3).unwrap();
    assert_eq!(lab.sessions().unwrap()[0].path, DataPath::Userspace);
}

#[test]
fn restart_after_a_crash_finds_nothing_stale() {
    let mut lab = lab(LabOptions::default());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab, 1);
    lab.kill_daemon();
    // The kernel dropped the XDP links the daemon held. The tunnel veth
    // pair (`stack` forwarding) outlives a crash: the next start replaces it.
    let links = lab.topology.server.ip(&["link", "show"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert!(!links.contains("xdp"), "{links}");
    drop(client);
    lab.restart_daemon().unwrap();
    assert!(
        lab.daemon_log()
            .contains("deleting a tunnel veth pair left over"),
        "{}",
        lab.daemon_log()
    );
    assert!(lab.sessions().unwrap().is_empty());
    let mut client = lab.client(&[]).unwrap();
    let addr = address(&wait_up(&mut client, &lab, 1)[0]);
    lab.ping(&addr, LAN_HOST, 3)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    assert_eq!(lab.sessions().unwrap()[0].path, DataPath::Xdp);
}

/// This crate's binary (load generator, bench, lab).
fn lab_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pptp-lab"))
}

/// Runs `pptp-lab loadgen` and returns its delivered packets per second.
fn loadgen(args: &[&str]) -> f64 {
    let out = std::process::Command::new(lab_bin())
        .arg("loadgen")
        .args(args)
        .output()
        .expect("running pptp-lab loadgen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("delivered_pps="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no delivered_pps in {text:?}"))
}

#[test]
fn loadgen_counts_what_a_router_forwards() {
    // a -- r -- b: the generator in a, a plain router r, the sink in b.
    // What r forwards must be well-formed IPv4 (it drops bad checksums),
    // plain and inside GRE towards b's address.
    netns::require_root().expect("prerequisite");
    let a = netns::Netns::new("pxla").unwrap();
    let r = netns::Netns::new("pxlr").unwrap();
    let b = netns::Netns::new("pxlb").unwrap();
    netns::veth(&a, "a0", &r, "r0").unwrap();
    netns::veth(&r, "r1", &b, "b0").unwrap();
    for (ns, dev, addr) in [
        (&a, "a0", "198.18.60.2/24"),
        (&r, "r0", "198.18.60.1/24"),
        (&r, "r1", "198.18.61.1/24"),
        (&b, "b0", "198.18.61.2/24"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev]).unwrap();
        ns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    r.command("sysctl")
        .args(["-qw", "net.ipv4.ip_forward=1"])
        .status()
        .unwrap();
    // The sink drops everything it receives, ARP too: r's entry for b
    // must not need resolving during a run (it went stale between the
    // two runs now and then, and the GRE run delivered nothing).
    let b_mac = b
        .mac("b0")
        .unwrap()
        .iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    r.ip(&[
        "neigh",
        "replace",
        "198.18.61.2",
        "lladdr",
        &b_mac,
        "dev",
        "r1",
        "nud",
        "permanent",
    ])
    .unwrap();
    let (from, via, sink) = (
        format!("{}:a0", a.name()),
        format!("{}:r0", r.name()),
        format!("{}:b0", b.name()),
    );
    let common = [
        "--from",
        &from,
        "--via",
        &via,
        "--sink",
        &sink,
        "--seconds",
        "0.3",
    ];
    let plain = loadgen(
        &[
            &common[..],
            &["--src", "198.18.60.2", "--dst", "198.18.61.2"],
        ]
        .concat(),
    );
    assert!(plain > 0.0, "nothing delivered");
    let gre = loadgen(
        &[
            &common[..],
            &[
                "--src",
                "198.19.0.2",
                "--dst",
                "198.18.1.2",
                "--gre",
                "198.18.60.2,198.18.61.2,7",
                "--size",
                "1400",
            ],
        ]
        .concat(),
    );
    assert!(gre > 0.0, "no GRE frame delivered");
    // A namespace that does not exist is an error that names it.
    let out = std::process::Command::new(lab_bin())
        .args([
            "loadgen",
            "--from",
            "pxl-none:a0",
            "--via",
            &via,
            "--sink",
            &sink,
        ])
        .args(["--src", "198.18.60.2", "--dst", "198.18.61.2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pxl-none"));
}
