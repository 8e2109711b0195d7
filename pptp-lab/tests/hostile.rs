//! Hostile peers against the real daemon across network namespaces: an
//! attacker that holds connections and calls, one that never reads, one
//! that floods a call's own control frames and then hangs up. Needs root;
//! fails (never skips) without it.
//!
//! The attacker speaks raw PPTP from a second address of the client
//! namespace (`ATTACKER`), so the per-source limits that stop it leave the
//! legitimate client (`CLIENT_WAN`) alone.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use pptp_daemon::wire::pptp::{
    BearerCapabilities, BearerType, CallClearRequest, ControlFramer, ControlMessage, EchoRequest,
    FramingCapabilities, FramingType, NulPadded, OutgoingCallRequest, OutgoingCallResult,
    PROTOCOL_VERSION, StartControlConnectionRequest,
};
use pptp_lab::lab::{Lab, LabOptions, Process, SERVER_WAN};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::{bin, raw_gre_socket};

/// The attacker's address, next to the legitimate client's on c0.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 66);

/// A lab whose daemon has these `[limits]`.
fn lab(limits: &str) -> Lab {
    netns::require_root().expect("prerequisite");
    let lab = Lab::start(
        bin(),
        &LabOptions {
            limits: limits.to_owned(),
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    lab.topology
        .client
        .ip(&["addr", "add", &format!("{ATTACKER}/24"), "dev", "c0"])
        .expect("attacker address");
    lab
}

/// A raw PPTP control connection from the attacker's address.
struct Attacker {
    stream: TcpStream,
    framer: ControlFramer,
}

impl Attacker {
    /// Connects from `ATTACKER`; `receive_buffer` shrinks the socket's
    /// receive buffer (a peer that does not read fills it at once).
    fn connect(lab: &Lab, receive_buffer: Option<usize>) -> std::io::Result<Self> {
        let stream = lab
            .topology
            .client
            .run(|| -> std::io::Result<TcpStream> {
                let socket = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )?;
                if let Some(size) = receive_buffer {
                    socket.set_recv_buffer_size(size)?;
                }
                socket.bind(&SocketAddr::V4(SocketAddrV4::new(ATTACKER, 0)).into())?;
                let server: Ipv4Addr = SERVER_WAN.parse().expect("address");
                socket.connect_timeout(
                    &SocketAddr::V4(SocketAddrV4::new(server, 1723)).into(),
                    Duration::from_secs(5),
                )?;
                Ok(socket.into())
            })
            .expect("entering the client namespace")?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self {
            stream,
            framer: ControlFramer::new(),
        })
    }

    fn send(&mut self, message: impl Into<ControlMessage>) -> std::io::Result<()> {
        self.stream.write_all(&message.into().to_vec())
    }

    /// The next message, or `None` on EOF, reset or timeout.
    fn recv(&mut self) -> Option<ControlMessage> {
        let mut buf = [0u8; 512];
        loop {
            // One byte at a time keeps the framer simple here.
            let n = match self.stream.read(&mut buf[..1]) {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let mut input = &buf[..n];
            if let Some(Ok(bytes)) = self.framer.next_message(&mut input) {
                return ControlMessage::parse(bytes).ok();
            }
        }
    }

    /// Start-Control-Connection, answered.
    fn start(&mut self) {
        assert!(self.try_start(), "no Start-Control-Connection-Reply");
    }

    /// Start-Control-Connection; whether the server answered.
    fn try_start(&mut self) -> bool {
        let sent = self.send(StartControlConnectionRequest {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FramingCapabilities::ASYNCHRONOUS,
            bearer_capabilities: BearerCapabilities::ANALOG,
            maximum_channels: 0,
            firmware_revision: 1,
            host_name: NulPadded::truncated(b"evil\nFORGED LOG LINE"),
            vendor_string: NulPadded::EMPTY,
        });
        sent.is_ok()
            && matches!(
                self.recv(),
                Some(ControlMessage::StartControlConnectionReply(_))
            )
    }

    /// Outgoing-Call-Request; the server's answer: (result, its call ID).
    fn call(&mut self, call_id: u16) -> (OutgoingCallResult, u16) {
        self.send(OutgoingCallRequest {
            call_id,
            call_serial_number: call_id,
            minimum_bps: 300,
            maximum_bps: 100_000_000,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            packet_receive_window_size: 64,
            packet_processing_delay: 0,
            phone_number_length: 0,
            phone_number: NulPadded::EMPTY,
            subaddress: NulPadded::EMPTY,
        })
        .expect("OCRQ");
        loop {
            match self.recv() {
                Some(ControlMessage::OutgoingCallReply(r)) => return (r.result_code, r.call_id),
                Some(_) => continue,
                None => panic!("no Outgoing-Call-Reply"),
            }
        }
    }
}

/// Waits for the client's "all_up" line; panics on failure.
fn wait_up(client: &mut Process, lab: &Lab) {
    client
        .wait_for_line(Duration::from_secs(60), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("all_up") => true,
                Some("failed") | Some("down") => {
                    panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log())
                }
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
}

/// Polls `check` until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Established TCP connections to port 1723 in the server namespace.
fn control_connections(lab: &Lab) -> usize {
    let out = netns::run(lab.topology.server.command("ss").args([
        "-Htn",
        "state",
        "established",
        "( sport = :1723 )",
    ]))
    .expect("ss");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Problem 1: an unauthenticated attacker holding connections and calls
/// cannot take the server's capacity; a legitimate client still connects.
#[test]
fn attacker_holding_calls_and_connections_leaves_room_for_a_client() {
    let lab = lab("calls_per_connection = 2\nconnections_per_source = 3\n\
         connection_rate_per_source = 100\nconnection_burst_per_source = 100\nmax_starting = 8");
    // The attacker opens as many connections and calls as it can.
    let mut held = Vec::new();
    let mut accepted_calls = 0;
    for _ in 0..6 {
        let Ok(mut a) = Attacker::connect(&lab, None) else {
            continue;
        };
        // A refused connection is closed before its first reply.
        if !a.try_start() {
            continue;
        }
        for id in 0..12u16 {
            let (result, _) = a.call(100 + id);
            if result == OutgoingCallResult::Connected {
                accepted_calls += 1;
            }
        }
        held.push(a);
    }
    assert_eq!(held.len(), 3, "connections per source");
    assert!(
        accepted_calls <= 6,
        "{accepted_calls} calls for one source (3 connections x 2 calls at most)"
    );
    // The legitimate client still gets a session.
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let stats = lab.stats().unwrap();
    assert!(
        stats["refused_source_connections"] >= 3,
        "refusals counted: {stats:?}"
    );
    drop(held);
}

/// Problem 2: a peer that never reads is closed within the write time
/// limit, even while it keeps sending.
#[test]
fn never_reading_peer_is_closed_in_time() {
    let lab = lab("write_timeout_secs = 2");
    let mut a = Attacker::connect(&lab, Some(2048)).expect("connect");
    a.start();
    a.stream.set_nonblocking(true).expect("nonblocking");
    // Flood Echo-Requests and never read the replies.
    let request = ControlMessage::from(EchoRequest { identifier: 7 }).to_vec();
    let flood_until = Instant::now() + Duration::from_secs(8);
    let mut sent = 0u64;
    while Instant::now() < flood_until && sent < 2_000_000 {
        match a.stream.write(&request) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    assert!(sent > 1000, "the flood did not get out ({sent} requests)");
    assert!(
        eventually(Duration::from_secs(10), || control_connections(&lab) == 0),
        "the never-reading peer still holds its connection\ndaemon log:\n{}",
        lab.daemon_log()
    );
    let stats = lab.stats().unwrap();
    assert_eq!(stats["connections_live"], 0, "{stats:?}");
    // The daemon still serves others.
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
}

/// Problem 3: a call whose own LCP frames flood its queue, then
/// Call-Clear-Request and a TCP close, still ends completely: no call,
/// call ID, address, route or XDP entry is left.
#[test]
fn teardown_survives_an_lcp_flood_of_the_call() {
    let lab = lab("");
    let mut a = Attacker::connect(&lab, None).expect("connect");
    a.start();
    let (result, server_call_id) = a.call(7);
    assert_eq!(result, OutgoingCallResult::Connected);
    // LCP Configure-Requests for the call, from the attacker's address
    // (its own call: no spoofing needed).
    let gre = raw_gre_socket(&lab.topology.client);
    gre.bind(&SocketAddr::V4(SocketAddrV4::new(ATTACKER, 0)).into())
        .expect("bind");
    let server: Ipv4Addr = SERVER_WAN.parse().unwrap();
    let to: socket2::SockAddr = SocketAddr::V4(SocketAddrV4::new(server, 0)).into();
    // ff 03 c0 21 | Configure-Request id 1 len 10 | MRU 1400
    let lcp = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x08, 0x01, 0x04, 0x05, 0x78,
    ];
    // The flood goes on while the call is cleared: bounded in time and
    // count, it keeps the call's frame queue full throughout.
    let flood = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(4);
        let mut seq = 0u32;
        while Instant::now() < until && seq < 2_000_000 {
            let mut frame = vec![0x30, 0x01, 0x88, 0x0b];
            frame.extend_from_slice(&(lcp.len() as u16).to_be_bytes());
            frame.extend_from_slice(&server_call_id.to_be_bytes());
            frame.extend_from_slice(&seq.to_be_bytes());
            frame.extend_from_slice(&lcp);
            let _ = gre.send_to(&frame, &to);
            seq += 1;
        }
        seq
    });
    std::thread::sleep(Duration::from_secs(1));
    // Hang up as pptp-linux does: Call-Clear-Request, then close TCP.
    a.send(CallClearRequest { call_id: 7 }).expect("CCRQ");
    drop(a);
    let sent = flood.join().expect("flood thread");
    assert!(sent > 10_000, "the flood did not get out ({sent} frames)");
    let clean = eventually(Duration::from_secs(15), || {
        let stats = lab.stats().unwrap();
        [
            "calls",
            "call_ids_live",
            "pool_in_use",
            "xdp_sessions_installed",
        ]
        .iter()
        .all(|k| stats.get(*k).copied().unwrap_or(0) == 0)
            && lab.sessions().unwrap().is_empty()
    });
    assert!(
        clean,
        "left behind: {:?}\ndaemon log:\n{}",
        lab.stats().unwrap(),
        lab.daemon_log()
    );
    let stats = lab.stats().unwrap();
    let ended: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("ended_"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(ended, 1, "the session ended once: {stats:?}");
    assert!(
        !lab.daemon_log().lines().any(|l| l.starts_with("FORGED")),
        "a peer's host name forged a log line"
    );
}
