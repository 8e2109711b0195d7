//! The independent-dissector oracle: frames built by our emitters are
//! written to a pcap file and read back by tshark (Wireshark's dissectors),
//! which must find the field values we meant and report no malformed packet
//! and no expert warning.
//!
//! Needs `tshark` (Debian package `tshark`); without it the tests fail with
//! the fix (`cargo xtask setup`), they never skip.
//!
//! Adding a frame is one line in a `cases` list: a constructor that wraps
//! the emitted bytes in Ethernet, IPv4 and GRE (or TCP port 1723 for
//! control messages), then `.num(field, value)` / `.text(field, value)` for
//! each tshark field to check and `.stack(..)` for the protocol stack
//! tshark must see. Field names: `tshark -G fields | grep -P '\tgre\.'`.

mod common;

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use pptp_daemon::{
    proto::call::{Config, Sequencer},
    wire::{gre, mppe, ppp},
};

const CLIENT: [u8; 4] = [198, 18, 0, 2];
const SERVER: [u8; 4] = [198, 18, 0, 1];
const IPPROTO_GRE: u8 = 47;
const IPPROTO_TCP: u8 = 6;
/// The client's call ID: what our GRE headers carry.
const PEER_CALL_ID: u16 = 0x8d41;
/// Our call ID: what the client's GRE headers carry.
const OUR_CALL_ID: u16 = 0x0007;

const FIX: &str = "run `cargo xtask setup` (it installs tshark)";

/// What tshark must find in one field: every occurrence, in order.
#[derive(Debug, Clone)]
enum Want {
    Nums(Vec<u64>),
    Texts(Vec<String>),
}

/// One frame and what tshark must find in it.
struct Case {
    name: String,
    frame: Vec<u8>,
    stack: Option<&'static str>,
    fields: Vec<(&'static str, Want)>,
}

impl Case {
    fn new(name: impl Into<String>, frame: Vec<u8>) -> Case {
        Case {
            name: name.into(),
            frame,
            stack: None,
            fields: Vec::new(),
        }
    }

    /// An enhanced GRE packet (its emitted bytes) from the server to the
    /// client, with the GRE header fields checked.
    fn gre(name: impl Into<String>, header: gre::Repr, payload: &[u8]) -> Case {
        let bytes = emit_gre(&header, payload);
        let case = Case::new(name, common::frame(SERVER, CLIENT, IPPROTO_GRE, &bytes))
            .num("gre.flags_and_version", header.flags_version().into())
            .num("gre.proto", 0x880b)
            .num("gre.key.payload_length", header.payload_len.into())
            .num("gre.key.call_id", header.call_id.into())
            .num("gre.flags.sequence_number", header.seq.is_some().into())
            .num("gre.flags.ack", header.ack.is_some().into());
        let case = match header.seq {
            Some(seq) => case.num("gre.sequence_number", seq.into()),
            None => case.absent("gre.sequence_number"),
        };
        match header.ack {
            Some(ack) => case.num("gre.ack_number", ack.into()),
            None => case.absent("gre.ack_number"),
        }
    }

    /// A PPP frame with `information` inside a GRE data packet whose header
    /// comes from `sequencer`, with the GRE and PPP headers checked.
    fn ppp(
        name: impl Into<String>,
        sequencer: &mut Sequencer,
        header: ppp::Repr,
        information: &[u8],
    ) -> Case {
        let frame = emit_ppp(&header, information);
        let len = u16::try_from(frame.len()).expect("test frames are small");
        let gre = sequencer
            .send_data(len, Instant::now())
            .expect("the test window is open");
        let case =
            Case::gre(name, gre, &frame).num("ppp.protocol", u16::from(header.protocol).into());
        if header.acfc {
            case.absent("ppp.address").absent("ppp.control")
        } else {
            case.num("ppp.address", 0xff).num("ppp.control", 0x03)
        }
    }

    /// A PPTP control message on TCP from the server's port 1723 (for the
    /// control-message codecs); each case is its own TCP stream.
    fn control(name: impl Into<String>, client_port: u16, message: &[u8]) -> Case {
        let segment = tcp(1723, client_port, message);
        Case::new(name, common::frame(SERVER, CLIENT, IPPROTO_TCP, &segment))
    }

    /// Checks a numeric field (every occurrence: `.nums` for several).
    fn num(self, field: &'static str, value: u64) -> Case {
        self.nums(field, &[value])
    }

    fn nums(mut self, field: &'static str, values: &[u64]) -> Case {
        self.fields.retain(|(f, _)| *f != field);
        self.fields.push((field, Want::Nums(values.to_vec())));
        self
    }

    /// Checks a text field (addresses, strings).
    fn text(self, field: &'static str, value: &str) -> Case {
        self.texts(field, &[value])
    }

    fn texts(mut self, field: &'static str, values: &[&str]) -> Case {
        self.fields.retain(|(f, _)| *f != field);
        let values = values.iter().map(|v| v.to_string()).collect();
        self.fields.push((field, Want::Texts(values)));
        self
    }

    /// Checks that tshark finds no such field.
    fn absent(self, field: &'static str) -> Case {
        self.nums(field, &[])
    }

    /// The protocol stack tshark must see (`frame.protocols`).
    fn stack(mut self, protocols: &'static str) -> Case {
        self.stack = Some(protocols);
        self
    }
}

fn emit_gre(header: &gre::Repr, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; header.buffer_len()];
    let mut packet = gre::Packet::new_unchecked(&mut buf[..]);
    header.emit(&mut packet).expect("emitting GRE");
    packet.payload_mut().copy_from_slice(payload);
    buf
}

fn emit_ppp(header: &ppp::Repr, information: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; header.buffer_len(information.len())];
    let mut packet = ppp::Packet::new_unchecked(&mut buf[..]);
    header.emit(&mut packet).expect("emitting PPP");
    packet.payload_mut().copy_from_slice(information);
    buf
}

fn emit_mppe(header: &mppe::Repr, data: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; header.buffer_len(data.len())];
    let mut packet = mppe::Packet::new_unchecked(&mut buf[..]);
    header.emit(&mut packet).expect("emitting MPPE");
    packet.payload_mut().copy_from_slice(data);
    buf
}

/// A TCP segment with PSH set and no ACK (so tshark's sequence analysis
/// has nothing to say about a stream it did not see start).
fn tcp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::with_capacity(20 + payload.len());
    segment.extend_from_slice(&src_port.to_be_bytes());
    segment.extend_from_slice(&dst_port.to_be_bytes());
    segment.extend_from_slice(&1u32.to_be_bytes()); // sequence number
    segment.extend_from_slice(&0u32.to_be_bytes()); // acknowledgment number
    segment.extend_from_slice(&[0x50, 0x08]); // data offset 5, PSH
    segment.extend_from_slice(&0xffffu16.to_be_bytes()); // window
    segment.extend_from_slice(&[0, 0, 0, 0]); // checksum (not validated), urgent
    segment.extend_from_slice(payload);
    segment
}

/// An IPv4 packet carrying an ICMP echo request (the inner datagram).
fn inner_ipv4_ping() -> Vec<u8> {
    let icmp = [0x08, 0x00, 0xf7, 0xfe, 0x00, 0x01, 0x00, 0x00];
    common::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1, &icmp)
}

/// Writes frames to a pcap file (libpcap format, Ethernet link type).
fn write_pcap(path: &Path, frames: &[&[u8]]) {
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic: microseconds
    file.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    file.extend_from_slice(&4u16.to_le_bytes());
    file.extend_from_slice(&0i32.to_le_bytes()); // time zone
    file.extend_from_slice(&0u32.to_le_bytes()); // accuracy
    file.extend_from_slice(&65535u32.to_le_bytes()); // snap length
    file.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, frame) in frames.iter().enumerate() {
        let len = u32::try_from(frame.len()).expect("small frame");
        let seconds = 1_700_000_000u32 + u32::try_from(i).expect("few frames");
        file.extend_from_slice(&seconds.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&len.to_le_bytes());
        file.extend_from_slice(&len.to_le_bytes());
        file.extend_from_slice(frame);
    }
    std::fs::write(path, file).expect("writing the pcap file");
}

/// Runs tshark on `pcap` with `args`; fails with the fix when tshark is
/// missing.
fn tshark(pcap: &Path, args: &[&str]) -> String {
    let output = match Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            panic!("tshark is not installed (Debian package `tshark`): {FIX}")
        }
        Err(err) => panic!("running tshark: {err}; {FIX}"),
    };
    assert!(
        output.status.success(),
        "tshark {args:?} on {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tshark prints UTF-8")
}

fn pcap_path(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oracle-{test}.pcap"))
}

fn parse_num(value: &str) -> Option<u64> {
    match value {
        "True" => Some(1),
        "False" => Some(0),
        _ => match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        },
    }
}

/// Writes the cases to a pcap file, has tshark dissect it, and returns every
/// mismatch (empty when tshark agrees with every case).
fn run_oracle(test: &str, cases: &[Case]) -> Vec<String> {
    let pcap = pcap_path(test);
    let frames: Vec<&[u8]> = cases.iter().map(|c| c.frame.as_slice()).collect();
    write_pcap(&pcap, &frames);

    let fields: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.fields.iter().map(|(f, _)| *f))
        .collect();
    let mut args = vec![
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-e",
        "frame.number",
        "-e",
        "frame.protocols",
    ];
    for field in &fields {
        args.extend(["-e", field]);
    }
    let table = tshark(&pcap, &args);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();

    let mut mismatches = Vec::new();
    if rows.len() != cases.len() {
        mismatches.push(format!(
            "tshark read {} frames, we wrote {}",
            rows.len(),
            cases.len()
        ));
    }
    for (case, row) in cases.iter().zip(&rows) {
        let column = |i: usize| row.get(i).copied().unwrap_or("");
        if let Some(stack) = case.stack
            && column(1) != stack
        {
            mismatches.push(format!(
                "{}: protocol stack {:?}, expected {stack:?}",
                case.name,
                column(1)
            ));
        }
        for (field, want) in &case.fields {
            let index = 2 + fields.iter().position(|f| f == field).expect("collected");
            let got = column(index);
            let occurrences: Vec<&str> = if got.is_empty() {
                Vec::new()
            } else {
                got.split(',').collect()
            };
            let ok = match want {
                Want::Nums(values) => {
                    let parsed: Vec<Option<u64>> =
                        occurrences.iter().map(|v| parse_num(v)).collect();
                    parsed == values.iter().map(|v| Some(*v)).collect::<Vec<_>>()
                }
                Want::Texts(values) => occurrences == *values,
            };
            if !ok {
                mismatches.push(format!(
                    "{}: {field} is {got:?}, expected {want:?}",
                    case.name
                ));
            }
        }
    }

    let flagged = tshark(
        &pcap,
        &[
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ],
    );
    for line in flagged.lines() {
        let mut columns = line.split('\t');
        let number: usize = columns.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let name = number
            .checked_sub(1)
            .and_then(|i| cases.get(i))
            .map_or("?", |c| c.name.as_str());
        mismatches.push(format!(
            "{name} (frame {number}): tshark says {:?}",
            columns.next().unwrap_or("")
        ));
    }
    mismatches
}

fn assert_oracle_agrees(test: &str, cases: &[Case]) {
    let mismatches = run_oracle(test, cases);
    if !mismatches.is_empty() {
        let mut report = String::new();
        for m in &mismatches {
            let _ = writeln!(report, "  {m}");
        }
        panic!(
            "tshark disagrees with our emitters ({} written to {}):\n{report}",
            cases.len(),
            pcap_path(test).display()
        );
    }
}

/// GRE and PPP framing from our codecs, with sequence and acknowledgment
/// numbers from the call's sequencer.
#[test]
fn gre_and_ppp_frames() {
    let now = Instant::now();
    let mut call = Sequencer::new(PEER_CALL_ID, Config::new(64, 64));
    let lcp_configure_request = [
        0x01, 0x01, 0x00, 0x0e, // Configure-Request, id 1, length 14
        0x01, 0x04, 0x05, 0x78, // MRU 1400
        0x05, 0x06, 0x12, 0x34, 0x56, 0x78, // Magic-Number
    ];
    let ping = inner_ipv4_ping();
    let encrypted = [0x5b, 0x2c, 0x9e, 0x01, 0xd4, 0xa7, 0xf3, 0x30];
    let ppp = |protocol, acfc, pfc| ppp::Repr::new(protocol, acfc, pfc);

    let mut cases = vec![
        // First data packet: sequence number 0, nothing to acknowledge.
        Case::ppp(
            "LCP Configure-Request",
            &mut call,
            ppp(ppp::Protocol::Lcp, true, true),
            &lcp_configure_request,
        )
        .stack("eth:ethertype:ip:gre:ppp:lcp")
        .num("ppp.code", 1)
        .num("ppp.identifier", 1)
        .num("lcp.opt.mru", 1400)
        .num("lcp.opt.magic_number", 0x1234_5678),
    ];
    // The client sends data: the next packet acknowledges it.
    call.handle_receive(&gre::Repr::data(OUR_CALL_ID, 41, None, 100), now);
    cases.extend([
        Case::ppp(
            "IPv4, ACFC and PFC, with ack",
            &mut call,
            ppp(ppp::Protocol::Ipv4, true, true),
            &ping,
        )
        .stack("eth:ethertype:ip:gre:ppp:ip:icmp")
        .num("gre.ack_number", 41)
        .texts("ip.src", &["198.18.0.1", "10.0.0.1"])
        .texts("ip.dst", &["198.18.0.2", "10.0.0.2"])
        .num("icmp.type", 8),
        Case::ppp(
            "IPv4, PFC only",
            &mut call,
            ppp(ppp::Protocol::Ipv4, false, true),
            &ping,
        )
        .stack("eth:ethertype:ip:gre:ppp:ip:icmp"),
        Case::ppp(
            "IPv4, ACFC only",
            &mut call,
            ppp(ppp::Protocol::Ipv4, true, false),
            &ping,
        )
        .stack("eth:ethertype:ip:gre:ppp:ip:icmp"),
        Case::ppp(
            "IPv4, uncompressed",
            &mut call,
            ppp(ppp::Protocol::Ipv4, false, false),
            &ping,
        )
        .stack("eth:ethertype:ip:gre:ppp:ip:icmp"),
        // tshark has no MPPE dissector: it sees a compressed datagram.
        Case::ppp(
            "MPPE, ACFC and PFC",
            &mut call,
            ppp(ppp::Protocol::Compressed, true, true),
            &emit_mppe(&mppe::Repr::encrypted(0, true), &encrypted),
        )
        .stack("eth:ethertype:ip:gre:ppp:comp_data"),
        Case::ppp(
            "MPPE, uncompressed",
            &mut call,
            ppp(ppp::Protocol::Compressed, false, false),
            &emit_mppe(&mppe::Repr::encrypted(0xfff, false), &encrypted),
        )
        .stack("eth:ethertype:ip:gre:ppp:comp_data"),
    ]);
    // More data from the client and nothing to send: an ack-only packet.
    call.handle_receive(&gre::Repr::data(OUR_CALL_ID, 42, None, 100), now);
    let ack_only = call
        .poll_transmit(now + Duration::from_secs(1))
        .expect("an ack is due");
    cases.push(
        Case::gre("ack-only", ack_only, &[])
            .stack("eth:ethertype:ip:gre")
            .num("gre.ack_number", 42),
    );
    // Sequence numbers across the wrap, and the acknowledgment with them.
    let mut wrapping = Sequencer::new(
        PEER_CALL_ID,
        Config {
            initial_seq: u32::MAX,
            ..Config::new(64, 64)
        },
    );
    wrapping.handle_receive(&gre::Repr::data(OUR_CALL_ID, u32::MAX, None, 100), now);
    for name in [
        "sequence number u32::MAX",
        "sequence number 0 after the wrap",
    ] {
        cases.push(
            Case::ppp(
                name,
                &mut wrapping,
                ppp(ppp::Protocol::Ipv4, true, true),
                &ping,
            )
            .stack("eth:ethertype:ip:gre:ppp:ip:icmp"),
        );
    }
    assert_oracle_agrees("gre_and_ppp_frames", &cases);
}

/// The oracle itself: a frame tshark must call malformed is reported, a
/// wrong expectation is reported, and control messages on TCP 1723 reach
/// the PPTP dissector without warnings (for the control-message cases).
#[test]
fn the_oracle_notices_disagreement() {
    let lcp_bad_length = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0xff, 0x01, 0x04, 0x05, 0x78,
    ];
    let header = gre::Repr::data(PEER_CALL_ID, 1, None, lcp_bad_length.len() as u16);
    // Start-Control-Connection-Request, RFC 2637 section 2.1, by hand.
    let mut sccrq = vec![
        0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, // length 156, control message, cookie
        0x00, 0x01, 0x00, 0x00, // type 1, reserved
        0x01, 0x00, 0x00, 0x00, // version 1.0, reserved
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, // framing, bearer capabilities
        0x00, 0x00, 0x00, 0x00, // maximum channels, firmware revision
    ];
    let mut host_name = [0u8; 64];
    host_name[..8].copy_from_slice(b"pptp-xdp");
    sccrq.extend_from_slice(&host_name);
    sccrq.extend_from_slice(&[0; 64]); // vendor
    let cases = [
        Case::gre("LCP length beyond the frame", header, &lcp_bad_length),
        Case::gre(
            "wrong expectation",
            gre::Repr::ack_only(PEER_CALL_ID, 5),
            &[],
        )
        .num("gre.ack_number", 6)
        .stack("eth:ethertype:ip:gre:ppp"),
        Case::control("SCCRQ by hand", 50_000, &sccrq)
            .stack("eth:ethertype:ip:tcp:pptp")
            .num("pptp.control_message_type", 1)
            .num("pptp.magic_cookie", 0x1a2b_3c4d)
            .text("pptp.host_name", "pptp-xdp"),
    ];
    let mismatches = run_oracle("the_oracle_notices_disagreement", &cases);
    let about = |name: &str| mismatches.iter().filter(|m| m.starts_with(name)).count();
    assert_eq!(about("LCP length beyond the frame"), 1, "{mismatches:#?}");
    assert_eq!(about("wrong expectation"), 2, "{mismatches:#?}");
    assert_eq!(about("SCCRQ by hand"), 0, "{mismatches:#?}");
}
