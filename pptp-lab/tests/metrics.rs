//! The Prometheus endpoint and the log formats of the real daemon, across
//! network namespaces: `/metrics` scraped over plain HTTP from inside the
//! server namespace while a session is up and after it ended, on both data
//! paths; a failed login; the JSON log format. Needs root; fails (never
//! skips) without it.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, PASSWORD, Process, SERVER_WAN, Topology, USER},
    radius_lab::{FreeRadius, daemon_radius_config, unused_port},
};
use pptp_netns as netns;
use serde_json::Value;

mod common;
use common::bin;

const METRICS_PORT: u16 = 9750;

fn metrics_table() -> String {
    format!("\n[metrics]\nlisten = \"{SERVER_WAN}:{METRICS_PORT}\"\n")
}

fn lab(xdp: bool, extra: String) -> Lab {
    netns::require_root().expect("prerequisite");
    Lab::start(
        bin(),
        &LabOptions {
            xdp,
            extra,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `GET /metrics` from inside the server namespace; the status line and
/// the body.
fn get(lab: &Lab, path: &str) -> (String, String) {
    let mut stream = lab
        .topology
        .server
        .run(|| TcpStream::connect((SERVER_WAN, METRICS_PORT)))
        .expect("entering the server namespace")
        .unwrap_or_else(|e| panic!("connecting to the metrics port: {e}\n{}", lab.daemon_log()));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {SERVER_WAN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {answer:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

fn scrape(lab: &Lab) -> String {
    let (status, body) = get(lab, "/metrics");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    body
}

/// The value of the sample `series` (name and labels as written), if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Waits for the client's "all_up" line; returns the session's address.
fn wait_up(client: &mut Process, lab: &Lab) -> String {
    let mut address = None;
    client
        .wait_for_line(Duration::from_secs(60), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") => {
                    address = v["address"].as_str().map(str::to_owned);
                    false
                }
                Some("all_up") => true,
                Some("failed") | Some("down") => {
                    panic!("client: {line}\ndaemon log:\n{}", lab.daemon_log())
                }
                _ => false,
            }
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    address.expect("an up line with the address")
}

/// Scrapes until `pred` holds (metrics follow the session's teardown).
fn scrape_until(lab: &Lab, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(lab);
        if pred(&text) {
            return text;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: never seen in:\n{text}\ndaemon log:\n{}",
                lab.daemon_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const UP_XDP: &str = r#"pptp_sessions{state="up",path="xdp"}"#;
const UP_USERSPACE: &str = r#"pptp_sessions{state="up",path="userspace"}"#;

#[test]
fn metrics_follow_a_session_on_the_xdp_path() {
    let lab = lab(true, metrics_table());
    let before = scrape(&lab);
    assert_eq!(must(&before, UP_XDP), 0.0);
    assert_eq!(must(&before, "pptp_session_setups_total"), 0.0);
    let (status, _) = get(&lab, "/");
    assert!(status.contains(" 404 "), "{status}");

    let mut client = lab.client(&[]).unwrap();
    let addr = wait_up(&mut client, &lab);
    lab.ping(&addr, LAN_HOST, 5)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let up = scrape(&lab);
    assert_eq!(must(&up, UP_XDP), 1.0, "{up}");
    assert_eq!(must(&up, UP_USERSPACE), 0.0, "{up}");
    assert_eq!(must(&up, "pptp_session_setups_total"), 1.0, "{up}");
    assert_eq!(
        must(
            &up,
            r#"pptp_auth_results_total{method="mschapv2",outcome="success"}"#
        ),
        1.0,
        "{up}"
    );
    // The pings went through the kernel, both ways (the first may take
    // the userspace path while the kernel resolves its neighbour).
    for series in [
        r#"pptp_data_packets_total{path="xdp",direction="rx"}"#,
        r#"pptp_data_packets_total{path="xdp",direction="tx"}"#,
        r#"pptp_data_bytes_total{path="xdp",direction="rx"}"#,
        r#"pptp_xdp_frames_total{result="gre_decapsulated"}"#,
        r#"pptp_xdp_frames_total{result="encapsulated"}"#,
    ] {
        assert!(must(&up, series) > 0.0, "{series}:\n{up}");
    }
    assert_eq!(must(&up, "pptp_xdp_sessions_installed"), 1.0, "{up}");
    assert!(must(&up, "pptp_uptime_seconds") >= 0.0);

    // The client hangs up: the session ends, its counters stay.
    assert!(
        client
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    let after = scrape_until(&lab, "the session's end", |t| {
        value(t, r#"pptp_sessions{state="up",path="xdp"}"#) == Some(0.0)
            && value(t, "pptp_xdp_sessions_installed") == Some(0.0)
    });
    assert_eq!(
        must(
            &after,
            r#"pptp_session_endings_total{reason="call_cleared"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        must(
            &after,
            r#"pptp_data_packets_total{path="xdp",direction="rx"}"#
        ),
        must(&up, r#"pptp_data_packets_total{path="xdp",direction="rx"}"#),
        "the fast path's counters of an ended session stay counted:\n{after}"
    );
}

#[test]
fn metrics_count_userspace_traffic_and_a_failed_login() {
    let lab = lab(false, metrics_table());
    // A wrong password first.
    let mut wrong = lab.client_as(USER, "not the password", &[]).unwrap();
    wrong
        .wait_for_line(Duration::from_secs(30), |line| {
            line.contains("\"failed\"") || line.contains("\"down\"")
        })
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", lab.daemon_log()));
    drop(wrong);
    let failed = scrape_until(&lab, "the failed login", |t| {
        value(t, r#"pptp_session_endings_total{reason="auth_failed"}"#) == Some(1.0)
    });
    // One per attempt (MS-CHAP lets the client retry, up to
    // auth.max_attempts).
    assert!(
        must(
            &failed,
            r#"pptp_auth_results_total{method="mschapv2",outcome="bad_credentials"}"#
        ) >= 1.0,
        "{failed}"
    );
    assert_eq!(
        must(
            &failed,
            r#"pptp_auth_results_total{method="mschapv2",outcome="success"}"#
        ),
        0.0,
        "{failed}"
    );

    let mut client = lab.client_as(USER, PASSWORD, &[]).unwrap();
    let addr = wait_up(&mut client, &lab);
    lab.ping(&addr, LAN_HOST, 5)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.daemon_log()));
    let up = scrape(&lab);
    assert_eq!(must(&up, UP_USERSPACE), 1.0, "{up}");
    assert_eq!(must(&up, UP_XDP), 0.0, "{up}");
    for series in [
        r#"pptp_data_packets_total{path="userspace",direction="rx"}"#,
        r#"pptp_data_packets_total{path="userspace",direction="tx"}"#,
    ] {
        assert!(must(&up, series) >= 5.0, "{series}:\n{up}");
    }
    assert!(
        must(
            &up,
            r#"pptp_data_bytes_total{path="userspace",direction="tx"}"#
        ) >= 5.0 * 84.0
    );
    assert_eq!(
        must(&up, r#"pptp_data_packets_total{path="xdp",direction="rx"}"#),
        0.0
    );
    assert_eq!(
        must(
            &up,
            r#"pptp_auth_results_total{method="mschapv2",outcome="success"}"#
        ),
        1.0,
        "{up}"
    );
}

#[test]
fn json_log_lines_parse_and_carry_the_session() {
    let lab = lab(false, "\n[log]\nformat = \"json\"\n".into());
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let sid = lab.sessions().unwrap()[0].acct_session_id.clone();
    assert!(!sid.is_empty());
    assert!(client.terminate(Duration::from_secs(10)).is_some());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.daemon_log().contains("session ended") {
        assert!(
            Instant::now() < deadline,
            "no \"session ended\" line:\n{}",
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = lab.daemon_log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nlog:\n{log}"))
        })
        .collect();
    assert!(lines.len() > 5, "{log}");
    // The session task's lines carry its id and, once authenticated, the user.
    let of_session: Vec<&Value> = lines
        .iter()
        .filter(|v| v["span"]["name"] == "session")
        .collect();
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
    for wanted in ["authenticated", "session ended"] {
        let line = of_session
            .iter()
            .find(|v| message(v) == wanted)
            .unwrap_or_else(|| panic!("no {wanted:?} line in the session span:\n{log}"));
        assert_eq!(line["span"]["sid"], sid.as_str(), "{line}");
        assert_eq!(line["span"]["user"], USER, "{line}");
    }
    // The control connection's lines about the call name it too.
    for (wanted, user) in [("call connected", None), ("call ended", Some(USER))] {
        let line = lines
            .iter()
            .find(|v| message(v) == wanted)
            .unwrap_or_else(|| panic!("no {wanted:?} line:\n{log}"));
        assert_eq!(line["fields"]["sid"], sid.as_str(), "{line}");
        if let Some(user) = user {
            assert_eq!(line["fields"]["user"], user, "{line}");
        }
    }
    // And the connection's lines their peer.
    assert!(
        lines.iter().any(|v| v["spans"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["name"] == "conn" && s["peer"].is_string()))),
        "{log}"
    );
}

#[test]
fn a_silent_peer_on_the_metrics_port_does_not_hold_it() {
    // One scrape at a time, each connection 300 ms at most.
    let lab = lab(
        false,
        format!(
            "{}max_connections = 1\nrequest_timeout_ms = 300\n",
            metrics_table()
        ),
    );
    // Connections that never send a request hold the only slot ...
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| {
            lab.topology
                .server
                .run(|| TcpStream::connect((SERVER_WAN, METRICS_PORT)))
                .expect("entering the server namespace")
                .expect("connecting")
        })
        .collect();
    // ... until their time is up: then a scrape is answered (`get` gives
    // up after 10 s).
    let text = scrape(&lab);
    assert!(text.contains("pptp_sessions"), "{text}");
    // The silent ones were closed by the daemon.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            n == 0 || answer.starts_with("HTTP/1.1 408"),
            "a silent connection got {answer:?}"
        );
    }
}

#[test]
fn radius_requests_timeouts_and_round_trips_per_server() {
    netns::require_root().expect("prerequisite");
    let topology = Topology::new().expect("topology");
    let fr = FreeRadius::start(&topology.server).unwrap_or_else(|e| panic!("{e}"));
    // A server that never answers, then FreeRADIUS; short tries.
    let dead = std::net::SocketAddr::from((
        [127, 0, 0, 1],
        unused_port(&topology.server).expect("a port"),
    ));
    let extra = daemon_radius_config(&[dead, fr.auth_address()])
        .replacen(
            "timeout_ms = 1000\nretries = 2\n",
            "timeout_ms = 200\nretries = 1\n",
            1,
        )
        .replacen(
            "dead_time_secs = 30\n",
            "dead_time_secs = 30\naccounting = true\n",
            1,
        )
        + &metrics_table();
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            xdp: false,
            auth: Some(
                "backend = \"radius\"\nmethods = [\"mschapv2\"]\nfailure_delay_ms = 100".into(),
            ),
            extra,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut client = lab.client(&[]).unwrap();
    wait_up(&mut client, &lab);
    let text = scrape_until(&lab, "the accounting Start", |t| {
        value(t, r#"pptp_radius_acct_total{result="answered"}"#).is_some_and(|n| n >= 1.0)
    });
    let d = format!("{{server=\"{dead}\"}}");
    let f = format!("{{server=\"{}\"}}", fr.auth_address());
    for (series, want) in [
        (format!("pptp_radius_auth_requests_total{d}"), 1.0),
        (format!("pptp_radius_auth_timeouts_total{d}"), 1.0),
        (format!("pptp_radius_auth_retransmissions_total{d}"), 1.0),
        (format!("pptp_radius_auth_answers_total{d}"), 0.0),
        (format!("pptp_radius_auth_rtt_seconds_count{d}"), 0.0),
        (format!("pptp_radius_auth_requests_total{f}"), 1.0),
        (format!("pptp_radius_auth_answers_total{f}"), 1.0),
        (format!("pptp_radius_auth_timeouts_total{f}"), 0.0),
        (format!("pptp_radius_auth_rtt_seconds_count{f}"), 1.0),
        (
            r#"pptp_radius_auth_total{result="accepts"}"#.to_owned(),
            1.0,
        ),
        (
            r#"pptp_auth_results_total{method="mschapv2",outcome="success"}"#.to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(must(&text, &series), want, "{series}:\n{text}");
    }
    let rtt_bucket = format!(
        "pptp_radius_auth_rtt_seconds_bucket{{le=\"+Inf\",server=\"{}\"}}",
        fr.auth_address()
    );
    assert_eq!(must(&text, &rtt_bucket), 1.0, "{text}");
    assert!(must(&text, "pptp_radius_acct_queue_depth") >= 0.0);
    assert_eq!(
        must(
            &text,
            r#"pptp_radius_acct_dropped_total{reason="queue_full"}"#
        ),
        0.0
    );
    drop(client);
    drop(lab);
    drop(fr);
}
