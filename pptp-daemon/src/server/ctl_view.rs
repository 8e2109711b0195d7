//! What `pptp-daemon ctl` shows: session filters and ordering (shared by
//! `sessions` and `terminate`), and the tables of `sessions`, `show` and
//! `stat`. Pure functions over the protocol types of [`super::ctl`].
//!
//! Client-supplied strings (user names) go through
//! [`crate::logsafe::Escaped`]: a table never carries a terminal escape
//! sequence or a line break from a peer.

use std::fmt::Write as _;

use super::ctl::{Filter, Order, SessionDetails, SessionInfo, StatReport, Target};
use crate::logsafe::Escaped;

/// Whether `s` passes `filter`.
pub fn matches(s: &SessionInfo, filter: &Filter) -> bool {
    match filter {
        Filter::Sid(sid) => s.acct_session_id == *sid,
        Filter::User(user) => s.user.as_deref() == Some(user.as_str()),
        Filter::Ip(ip) => s.client_addr == Some(*ip),
        Filter::Peer(peer) => s.peer == *peer,
        Filter::State(state) => s.state == *state,
    }
}

/// Whether `terminate target` names `s`.
pub fn targeted(s: &SessionInfo, target: &Target) -> bool {
    match target {
        Target::All => true,
        Target::Sid(v) => matches(s, &Filter::Sid(v.clone())),
        Target::User(v) => matches(s, &Filter::User(v.clone())),
        Target::Ip(v) => matches(s, &Filter::Ip(*v)),
        Target::Peer(v) => matches(s, &Filter::Peer(*v)),
    }
}

/// The sessions that pass every filter, in `order` (by peer and call ID
/// without one).
pub fn select(
    mut sessions: Vec<SessionInfo>,
    filters: &[Filter],
    order: Option<Order>,
) -> Vec<SessionInfo> {
    sessions.retain(|s| filters.iter().all(|f| matches(s, f)));
    sort(&mut sessions, order);
    sessions
}

/// Sorts by `order`: names and addresses ascending, uptime and traffic
/// descending; ties by peer and call ID, so the order is stable.
pub fn sort(sessions: &mut [SessionInfo], order: Option<Order>) {
    use std::cmp::Reverse;
    sessions.sort_by_key(|s| (s.peer, s.call_id));
    match order {
        None => {}
        Some(Order::Uptime) => sessions.sort_by_key(|s| Reverse(s.uptime_secs)),
        Some(Order::User) => sessions.sort_by(|a, b| a.user.cmp(&b.user)),
        // Sessions without an address yet last.
        Some(Order::Ip) => sessions.sort_by_key(|s| (s.client_addr.is_none(), s.client_addr)),
        Some(Order::Rx) => sessions.sort_by_key(|s| Reverse(s.rx_bytes)),
        Some(Order::Tx) => sessions.sort_by_key(|s| Reverse(s.tx_bytes)),
    }
}

/// `HH:MM:SS`, with days in front past one day (`2d 03:04:05`).
pub fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn user(s: &SessionInfo) -> String {
    s.user.as_deref().map_or("-".to_owned(), |u| {
        Escaped::new(u).max_chars(32).to_string()
    })
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// The session list as a table for humans.
pub fn format_sessions(sessions: &[SessionInfo]) -> String {
    let header = [
        "SID", "USER", "IP", "PEER", "CALLS", "STATE", "UPTIME", "PATH", "MPPE", "RATE",
        "RX BYTES", "TX BYTES", "RX PKTS", "TX PKTS",
    ];
    let rows: Vec<[String; 14]> = sessions
        .iter()
        .map(|s| {
            [
                if s.acct_session_id.is_empty() {
                    "-".to_owned()
                } else {
                    s.acct_session_id.clone()
                },
                user(s),
                opt(s.client_addr),
                s.peer.to_string(),
                format!("{}/{}", s.call_id, s.peer_call_id),
                s.state.name().to_owned(),
                format_uptime(s.uptime_secs),
                s.path.name().to_owned(),
                s.mppe.clone().unwrap_or_else(|| "-".to_owned()),
                s.rate.clone().unwrap_or_else(|| "-".to_owned()),
                s.rx_bytes.to_string(),
                s.tx_bytes.to_string(),
                s.rx_packets.to_string(),
                s.tx_packets.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers right-aligned (the last four columns).
    let numeric = |i: usize| i >= 10;
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if numeric(i) {
                let _ = write!(l, "{cell:>w$}");
            } else {
                let _ = write!(l, "{cell:<w$}");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    let _ = writeln!(out, "{} session(s)", sessions.len());
    out
}

/// `ctl show`: one `key: value` line per fact.
pub fn format_details(d: &SessionDetails) -> String {
    let s = &d.info;
    let mut out = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<22} {v}");
    };
    kv("session id:", s.acct_session_id.clone());
    kv("user:", user(s));
    kv("state:", s.state.name().to_owned());
    if let Some(why) = &d.ending {
        kv("ending because:", why.clone());
    }
    kv("peer:", s.peer.to_string());
    kv("client address:", opt(s.client_addr));
    kv(
        "call ids (ours/peer):",
        format!("{}/{}", s.call_id, s.peer_call_id),
    );
    kv("data path:", s.path.name().to_owned());
    kv("mppe:", s.mppe.clone().unwrap_or_else(|| "-".into()));
    kv("rate limit:", s.rate.clone().unwrap_or_else(|| "-".into()));
    kv("uptime:", format_uptime(s.uptime_secs));
    kv("started (unix):", d.started_unix.to_string());
    kv("network up (unix):", opt(d.up_since_unix));
    kv(
        "rx:",
        format!("{} bytes, {} packets", s.rx_bytes, s.rx_packets),
    );
    kv(
        "tx:",
        format!("{} bytes, {} packets", s.tx_bytes, s.tx_packets),
    );
    if let Some(left) = d.session_timeout_left_secs {
        kv("session timeout in:", format_uptime(left));
    }
    let Some(n) = &d.negotiated else {
        kv("negotiated:", "- (network phase not up)".into());
        return out;
    };
    let list = |v: &[std::net::Ipv4Addr]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    kv("auth:", n.auth.clone().unwrap_or_else(|| "none".into()));
    kv(
        "lcp:",
        format!(
            "mru {} peer-mru {} pfc {} acfc {} accm {} magic {:08x}/{:08x}",
            n.mru,
            n.peer_mru,
            on(n.pfc),
            on(n.acfc),
            n.peer_accm.map_or("-".to_owned(), |a| format!("{a:08x}")),
            n.magic,
            n.peer_magic
        ),
    );
    kv(
        "ipcp:",
        format!(
            "local {} client {} dns {} nbns {}",
            opt(n.local_address),
            opt(n.client_address),
            list(&n.dns),
            list(&n.nbns)
        ),
    );
    kv(
        "ccp:",
        n.mppe.clone().map_or("-".into(), |m| format!("mppe {m}")),
    );
    kv(
        "mtu:",
        format!("{} (mss clamp {})", n.mtu, opt(n.mss_clamp)),
    );
    kv("session timeout:", secs(n.session_timeout_secs));
    kv("idle timeout:", secs(n.idle_timeout_secs));
    kv("interim interval:", secs(n.acct_interim_secs));
    kv("framed mtu:", opt(n.framed_mtu));
    kv(
        "class:",
        if n.class.is_empty() {
            "-".into()
        } else {
            n.class.join(", ")
        },
    );
    out
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn secs(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |s| format!("{s}s"))
}

/// `ctl stat`.
pub fn format_stat(r: &StatReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "uptime:              {}", format_uptime(r.uptime_secs));
    let _ = writeln!(
        out,
        "memory (rss):        {}",
        r.rss_bytes
            .map_or("-".to_owned(), |b| format!("{} kB", b / 1024))
    );
    if r.draining {
        let _ = writeln!(
            out,
            "shutdown:            soft, waiting for sessions to end"
        );
    }
    let s = &r.sessions;
    let _ = writeln!(
        out,
        "sessions:            {} (starting {}, up {}, ending {}; xdp {}, userspace {})",
        s.starting + s.up + s.ending,
        s.starting,
        s.up,
        s.ending,
        s.xdp,
        s.userspace
    );
    let _ = writeln!(out, "control connections: {}", r.connections);
    let _ = writeln!(
        out,
        "setups:              {} of {} calls ({} in the last minute, {:.2}/s)",
        r.setups, r.calls_started, r.setups_last_minute, r.setups_per_second
    );
    let _ = writeln!(
        out,
        "authentication:      {} accepted, {} rejected",
        r.auth_accepted, r.auth_rejected
    );
    for (title, list) in [
        ("failed setups", &r.setup_failures),
        ("ended", &r.ended),
        ("refused", &r.refused),
    ] {
        let nonzero: Vec<_> = list.iter().filter(|(_, v)| *v != 0).collect();
        let total: u64 = list.iter().map(|(_, v)| v).sum();
        let _ = writeln!(out, "{:<20} {total}", format!("{title}:"));
        for (name, v) in nonzero {
            let _ = writeln!(out, "  {name:<30} {v}");
        }
    }
    let _ = writeln!(out, "counters:");
    for (name, v) in &r.counters {
        let _ = writeln!(out, "  {name:<30} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::server::ctl::{DataPath, Negotiated, State, StateCounts};

    fn session(sid: &str, user: &str, ip: [u8; 4], peer: [u8; 4], call: u16) -> SessionInfo {
        SessionInfo {
            user: Some(user.into()),
            peer: Ipv4Addr::from(peer),
            call_id: call,
            peer_call_id: 1,
            client_addr: Some(Ipv4Addr::from(ip)),
            uptime_secs: 12,
            rx_packets: 3,
            rx_bytes: 300,
            tx_packets: 4,
            tx_bytes: 400,
            mppe: None,
            path: DataPath::Xdp,
            acct_session_id: sid.into(),
            state: State::Up,
            rate: None,
        }
    }

    fn three() -> Vec<SessionInfo> {
        let mut a = session("s-a", "alice", [198, 19, 0, 2], [198, 18, 0, 2], 10);
        a.uptime_secs = 100;
        a.rx_bytes = 50;
        a.tx_bytes = 9000;
        let mut b = session("s-b", "bob", [198, 19, 0, 9], [198, 18, 0, 3], 20);
        b.uptime_secs = 5;
        b.rx_bytes = 7000;
        b.tx_bytes = 10;
        b.state = State::Ending;
        let mut c = session("s-c", "alice", [198, 19, 0, 1], [198, 18, 0, 2], 5);
        c.client_addr = None;
        c.state = State::Starting;
        c.path = DataPath::Negotiating;
        vec![b, a, c]
    }

    fn sids(v: &[SessionInfo]) -> Vec<&str> {
        v.iter().map(|s| s.acct_session_id.as_str()).collect()
    }

    #[test]
    fn filters_combine_with_and() {
        let user = |u: &str| Filter::User(u.into());
        assert_eq!(
            sids(&select(three(), &[user("alice")], None)),
            ["s-c", "s-a"]
        );
        assert_eq!(
            sids(&select(
                three(),
                &[user("alice"), Filter::State(State::Up)],
                None
            )),
            ["s-a"]
        );
        assert_eq!(
            sids(&select(
                three(),
                &[Filter::Peer(Ipv4Addr::new(198, 18, 0, 2))],
                None
            )),
            ["s-c", "s-a"]
        );
        assert_eq!(
            sids(&select(
                three(),
                &[Filter::Ip(Ipv4Addr::new(198, 19, 0, 9))],
                None
            )),
            ["s-b"]
        );
        assert_eq!(
            sids(&select(three(), &[Filter::Sid("s-b".into())], None)),
            ["s-b"]
        );
        assert!(select(three(), &[user("carol")], None).is_empty());
        // No filter: everything, by peer and call ID.
        assert_eq!(sids(&select(three(), &[], None)), ["s-c", "s-a", "s-b"]);
    }

    #[test]
    fn orders() {
        let by = |o| sids(&select(three(), &[], Some(o))).join(" ");
        assert_eq!(by(Order::Uptime), "s-a s-c s-b");
        assert_eq!(by(Order::User), "s-c s-a s-b");
        // Without an address: last.
        assert_eq!(by(Order::Ip), "s-a s-b s-c");
        assert_eq!(by(Order::Rx), "s-b s-c s-a");
        assert_eq!(by(Order::Tx), "s-a s-c s-b");
    }

    #[test]
    fn targets() {
        let s = three();
        let hit = |t: Target| {
            s.iter()
                .filter(|x| targeted(x, &t))
                .map(|x| x.acct_session_id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(hit(Target::All).len(), 3);
        assert_eq!(hit(Target::User("bob".into())), ["s-b"]);
        assert_eq!(hit(Target::Sid("s-a".into())), ["s-a"]);
        assert_eq!(hit(Target::Ip(Ipv4Addr::new(198, 19, 0, 2))), ["s-a"]);
        assert_eq!(hit(Target::Peer(Ipv4Addr::new(198, 18, 0, 2))).len(), 2);
        assert!(hit(Target::Sid("nope".into())).is_empty());
    }

    #[test]
    fn uptime_format() {
        assert_eq!(format_uptime(0), "00:00:00");
        assert_eq!(format_uptime(3 * 3600 + 62), "03:01:02");
        assert_eq!(format_uptime(2 * 86_400 + 5), "2d 00:00:05");
    }

    #[test]
    fn table_shows_every_column_aligned_and_escapes_names() {
        let mut rows = three();
        rows[0].user = Some("evil\x1b[2Jname\n".into());
        rows[1].mppe = Some("128-bit stateless".into());
        rows[1].rate = Some("10M/2M".into());
        let t = format_sessions(&rows);
        for needle in [
            "SID",
            "USER",
            "IP",
            "PEER",
            "CALLS",
            "STATE",
            "UPTIME",
            "PATH",
            "MPPE",
            "RATE",
            "RX BYTES",
            "TX BYTES",
            "RX PKTS",
            "TX PKTS",
            "s-a",
            "alice",
            "198.19.0.2",
            "198.18.0.2",
            "10/1",
            "up",
            "ending",
            "starting",
            "00:01:40",
            "xdp",
            "negotiating",
            "128-bit stateless",
            "10M/2M",
            "9000",
            "7000",
            "3 session(s)",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
        assert!(!t.contains('\x1b'), "{t}");
        assert!(t.contains("evil\\x1b[2Jname\\n"), "{t}");
        // One header, three rows, the count: each row as wide as its cells.
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        // Right-aligned numbers end in the same column.
        let end = |l: &str| l.len();
        assert_eq!(end(lines[0]), end(lines[2]), "{t}");
        // A session without an address or a rate shows "-".
        assert!(lines[1..4].iter().any(|l| l.contains(" - ")), "{t}");
    }

    #[test]
    fn details_show_the_negotiated_options() {
        let info = three().remove(1);
        let mut d = SessionDetails {
            info,
            started_unix: 1_700_000_000,
            up_since_unix: Some(1_700_000_002),
            ending: None,
            session_timeout_left_secs: Some(3590),
            negotiated: None,
        };
        assert!(format_details(&d).contains("network phase not up"));
        d.negotiated = Some(Negotiated {
            mru: 1400,
            peer_mru: 1450,
            pfc: true,
            acfc: false,
            peer_accm: Some(0),
            magic: 0x1234_5678,
            peer_magic: 0x9abc_def0,
            auth: Some("MS-CHAPv2".into()),
            local_address: Some(Ipv4Addr::new(198, 19, 0, 1)),
            client_address: Some(Ipv4Addr::new(198, 19, 0, 2)),
            dns: vec![Ipv4Addr::new(198, 18, 1, 2)],
            nbns: vec![],
            mppe: Some("128-bit stateless".into()),
            mtu: 1396,
            mss_clamp: Some(1356),
            session_timeout_secs: Some(3600),
            idle_timeout_secs: None,
            acct_interim_secs: Some(60),
            framed_mtu: None,
            class: vec!["636c617373".into()],
        });
        let t = format_details(&d);
        for needle in [
            "s-a",
            "alice",
            "MS-CHAPv2",
            "mru 1400 peer-mru 1450 pfc on acfc off accm 00000000 magic 12345678/9abcdef0",
            "dns 198.18.1.2 nbns -",
            "mppe 128-bit stateless",
            "1396 (mss clamp 1356)",
            "3600s",
            "636c617373",
            "00:59:50",
            "1700000002",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }

    #[test]
    fn stat_lists_nonzero_reasons_and_totals() {
        let r = StatReport {
            uptime_secs: 3661,
            rss_bytes: Some(8 << 20),
            sessions: StateCounts {
                starting: 1,
                up: 2,
                ending: 0,
                xdp: 1,
                userspace: 1,
            },
            connections: 3,
            calls_started: 9,
            setups: 7,
            setups_last_minute: 3,
            setups_per_second: 0.05,
            setup_failures: vec![("auth_failed".into(), 2), ("no_address".into(), 0)],
            ended: vec![("admin_reset".into(), 4)],
            refused: vec![("server_full".into(), 0)],
            auth_accepted: 7,
            auth_rejected: 2,
            draining: true,
            counters: vec![("xdp_rx".into(), 42)],
        };
        let t = format_stat(&r);
        for needle in [
            "01:01:01",
            "8192 kB",
            "soft",
            "3 (starting 1, up 2, ending 0; xdp 1, userspace 1)",
            "7 of 9 calls (3 in the last minute, 0.05/s)",
            "7 accepted, 2 rejected",
            "auth_failed",
            "admin_reset",
            "xdp_rx",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
        assert!(!t.contains("no_address"), "zero reasons are left out\n{t}");
    }
}
