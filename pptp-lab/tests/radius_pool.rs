//! Several concentrators behind one FreeRADIUS and one address pool: a
//! real FreeRADIUS 3.2 whose rlm_sqlippool hands out Framed-IP-Address
//! from a real PostgreSQL (Debian's postgresql and freeradius-postgresql),
//! both started by the tests in a namespace of their own ([`Postgres`],
//! [`FreeRadius::start_with_options`]). Needs root, the real eBPF build and
//! the packages freeradius, freeradius-utils, freeradius-postgresql and
//! postgresql (`cargo xtask setup`); fails (never skips) without them.
//!
//! ```text
//!  lab A: client ns -- server ns (pptp-daemon A) r0 198.18.2.1 --- ra 198.18.2.2 \
//!                                                                        backend ns: lo 198.18.4.1
//!  lab B: client ns -- server ns (pptp-daemon B) r0 198.18.3.1 --- rb 198.18.3.2 /  FreeRADIUS + PostgreSQL
//! ```

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use pptp_lab::{
    lab::{LAN_HOST, Lab, LabOptions, Process, Topology},
    postgres::{DB_USER, Postgres},
    radius_lab::{
        DetailRecord, FreeRadius, FreeRadiusOptions, PASSWORD, SqlIpPool, USER,
        daemon_radius_config,
    },
};
use pptp_netns::{self as netns, Netns};
use serde_json::Value;

mod common;
use common::bin;

/// FreeRADIUS's address, on the loopback of the backend namespace and
/// routed there from both server namespaces.
const RADIUS_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 1);
/// The pool's name in `radippool` (set by the users file's DEFAULT entry).
const POOL: &str = "pptp-shared";
/// The pool: 198.19.128.1 to 198.19.128.250, outside the daemons' own
/// pool (198.19.64.0/18), so an address from it came from RADIUS.
const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 19, 128, 1);
const POOL_SIZE: u32 = 250;
/// Sessions per daemon.
const SESSIONS: usize = 100;

fn in_pool(a: Ipv4Addr) -> bool {
    (u32::from(POOL_FIRST)..u32::from(POOL_FIRST) + POOL_SIZE).contains(&u32::from(a))
}

/// PostgreSQL with FreeRADIUS's `radippool` schema and the pool, and
/// FreeRADIUS with sql + sqlippool on [`RADIUS_ADDRESS`], in `ns`. Fields
/// drop in order: FreeRADIUS, PostgreSQL, then the namespace.
struct Backend {
    radius: FreeRadius,
    db: Postgres,
    ns: Netns,
}

impl Backend {
    /// `clients`: the networks FreeRADIUS accepts requests from (besides
    /// 127.0.0.1).
    fn start(clients: &[&str]) -> Self {
        netns::require_root().expect("prerequisite");
        let ns = Netns::new("pxrp").expect("namespace");
        ns.ip(&["addr", "add", &format!("{RADIUS_ADDRESS}/32"), "dev", "lo"])
            .expect("address");
        let db = Postgres::start(&ns, "radius").unwrap_or_else(|e| panic!("{e}"));
        db.load_ippool_schema().unwrap_or_else(|e| panic!("{e}"));
        db.add_pool(POOL, POOL_FIRST, POOL_SIZE)
            .unwrap_or_else(|e| panic!("{e}"));
        let radius = FreeRadius::start_with_options(
            &ns,
            &FreeRadiusOptions {
                listen: RADIUS_ADDRESS,
                // radclient in the namespace sends from RADIUS_ADDRESS.
                clients: clients
                    .iter()
                    .map(|c| (*c).to_owned())
                    .chain([format!("{RADIUS_ADDRESS}/32")])
                    .collect(),
                sqlippool: Some(SqlIpPool {
                    server: db.address(),
                    database: db.database().to_owned(),
                    login: DB_USER.to_owned(),
                    pool_name: POOL.to_owned(),
                    lease_duration_secs: 3600,
                }),
                ..FreeRadiusOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nPostgreSQL log:\n{}", db.log()));
        Backend { radius, db, ns }
    }

    /// Leases that sqlippool would not hand out (its free rows have
    /// `expiry_time < 'now'::timestamp(0)`): (NAS-IP-Address, pool_key,
    /// address, user).
    fn leases(&self) -> Vec<(String, String, Ipv4Addr, String)> {
        self.db
            .query(
                "SELECT nasipaddress, pool_key, host(framedipaddress), username \
                 FROM radippool WHERE expiry_time >= 'now'::timestamp(0) \
                 ORDER BY framedipaddress",
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|row| {
                let [nas, key, address, user] = <[String; 4]>::try_from(row)
                    .unwrap_or_else(|row| panic!("four columns: {row:?}"));
                (nas, key, address.parse().expect("an address"), user)
            })
            .collect()
    }

    /// Waits up to `within` until `leases` says yes; returns the last
    /// leases either way.
    fn wait_leases(
        &self,
        within: Duration,
        done: impl Fn(&[(String, String, Ipv4Addr, String)]) -> bool,
    ) -> Vec<(String, String, Ipv4Addr, String)> {
        let deadline = Instant::now() + within;
        loop {
            let leases = self.leases();
            if done(&leases) || Instant::now() > deadline {
                return leases;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        format!(
            "FreeRADIUS log (tail):\n{}\nPostgreSQL log:\n{}",
            tail(&self.radius.log(), 200),
            self.db.log()
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The fixtures alone, with radclient from the backend namespace: an
/// Access-Accept carries a Framed-IP-Address from the pool, leased in the
/// database to that NAS-IP-Address and NAS-Port; another port of the same
/// NAS, and the same port of another NAS, get other addresses; the same
/// port again gets its address again; Interim-Update extends a lease,
/// accounting Stop frees it and Accounting-On frees every lease of its
/// NAS, and no other.
#[test]
fn sqlippool_leases_by_nas_and_port_and_frees_on_stop() {
    let b = Backend::start(&[]);
    assert_eq!(
        b.db.query(&format!(
            "SELECT count(*) FROM radippool WHERE pool_name = '{POOL}'"
        ))
        .unwrap_or_else(|e| panic!("{e}")),
        vec![vec![POOL_SIZE.to_string()]]
    );
    assert!(b.leases().is_empty());
    let auth = |nas: &str, port: u16| -> Ipv4Addr {
        let r = b
            .radius
            .radclient(
                "auth",
                &format!(
                    "User-Name = {USER}, User-Password = \"{PASSWORD}\", \
                     NAS-IP-Address = {nas}, NAS-Port = {port}, Calling-Station-Id = \"198.18.0.2\""
                ),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", b.logs()));
        assert_eq!(r.code, "Access-Accept", "{r:?}\n{}", b.logs());
        r.get("Framed-IP-Address")
            .unwrap_or_else(|| panic!("no Framed-IP-Address: {r:?}\n{}", b.logs()))
            .parse()
            .expect("an address")
    };
    let acct = |status: &str, nas: &str, port: u16, address: Option<Ipv4Addr>| {
        let mut attributes = format!(
            "Acct-Status-Type = {status}, NAS-IP-Address = {nas}, \
             Acct-Session-Id = \"{nas}-{port}\""
        );
        if let Some(address) = address {
            attributes.push_str(&format!(
                ", User-Name = {USER}, NAS-Port = {port}, Calling-Station-Id = \"198.18.0.2\", \
                 Framed-IP-Address = {address}"
            ));
        }
        let r = b
            .radius
            .radclient("acct", &attributes)
            .unwrap_or_else(|e| panic!("{e}\n{}", b.logs()));
        assert_eq!(r.code, "Accounting-Response", "{r:?}");
    };
    let a1 = auth("198.18.2.1", 1);
    let a2 = auth("198.18.2.1", 2);
    let b1 = auth("198.18.3.1", 1);
    for a in [a1, a2, b1] {
        assert!(in_pool(a), "{a} is not from the pool");
    }
    assert_eq!(
        HashSet::from([a1, a2, b1]).len(),
        3,
        "one address each: {a1} {a2} {b1}"
    );
    let leases = b.leases();
    assert_eq!(
        leases,
        {
            let mut l = vec![
                ("198.18.2.1".into(), "1".into(), a1, USER.into()),
                ("198.18.2.1".into(), "2".into(), a2, USER.into()),
                ("198.18.3.1".into(), "1".into(), b1, USER.into()),
            ];
            l.sort_by_key(|(_, _, a, _)| u32::from(*a));
            l
        },
        "{}",
        b.logs()
    );
    // The same NAS and port again (a retry of the same call): the same lease.
    assert_eq!(auth("198.18.2.1", 1), a1);
    assert_eq!(b.leases().len(), 3);

    acct("Start", "198.18.2.1", 1, Some(a1));
    // Interim-Update extends the lease by lease_duration (3600 s).
    b.db.execute(&format!(
        "UPDATE radippool SET expiry_time = 'now'::timestamp(0) + '60 second'::interval \
         WHERE framedipaddress = '{a1}'"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let seconds_left = || -> i64 {
        b.db.query(&format!(
            "SELECT extract(epoch FROM expiry_time - 'now'::timestamp(0))::bigint \
             FROM radippool WHERE framedipaddress = '{a1}'"
        ))
        .unwrap_or_else(|e| panic!("{e}"))[0][0]
            .parse()
            .expect("a number")
    };
    assert!(seconds_left() <= 60);
    acct("Interim-Update", "198.18.2.1", 1, Some(a1));
    assert!(
        seconds_left() > 3000,
        "Interim-Update extends the lease\n{}",
        b.logs()
    );
    acct("Stop", "198.18.2.1", 1, Some(a1));
    let leases = b.leases();
    assert!(
        leases.iter().all(|(_, _, a, _)| *a != a1) && leases.len() == 2,
        "{a1} freed by Stop: {leases:?}\n{}",
        b.logs()
    );
    acct("Accounting-On", "198.18.2.1", 0, None);
    assert_eq!(
        b.leases()
            .into_iter()
            .map(|(nas, _, a, _)| (nas, a))
            .collect::<Vec<_>>(),
        vec![("198.18.3.1".to_owned(), b1)],
        "Accounting-On of 198.18.2.1 frees its leases only\n{}",
        b.logs()
    );
}

/// A lab whose daemon authenticates with RADIUS at [`RADIUS_ADDRESS`]
/// (MS-CHAPv2, no MPPE, the XDP path) and sends accounting there, as NAS
/// `nas_ip`; its server namespace joined to `backend` by a veth pair on
/// `link` (`/24`, the server's end `.1`, the backend's `.2`, the backend
/// end named `backend_if`).
fn pool_lab(backend: &Backend, link: [u8; 3], backend_if: &str, nas_id: &str) -> (Lab, Ipv4Addr) {
    let topology = Topology::new().expect("topology");
    let [a, b, c] = link;
    let nas_ip = Ipv4Addr::new(a, b, c, 1);
    let peer = Ipv4Addr::new(a, b, c, 2);
    netns::veth(&topology.server, "r0", &backend.ns, backend_if).expect("veth");
    topology
        .server
        .ip(&["addr", "add", &format!("{nas_ip}/24"), "dev", "r0"])
        .expect("address");
    backend
        .ns
        .ip(&["addr", "add", &format!("{peer}/24"), "dev", backend_if])
        .expect("address");
    topology
        .server
        .ip(&[
            "route",
            "add",
            &format!("{RADIUS_ADDRESS}/32"),
            "via",
            &peer.to_string(),
        ])
        .expect("route");
    let extra = daemon_radius_config(&[backend.radius.auth_address()])
        .replacen(
            "nas_identifier = \"pptp-xdp\"\n",
            &format!("nas_identifier = \"{nas_id}\"\nnas_ip_address = \"{nas_ip}\"\n"),
            1,
        )
        .replacen(
            "dead_time_secs = 30\n",
            "dead_time_secs = 30\naccounting = true\n",
            1,
        );
    let lab = Lab::start_in(
        topology,
        bin(),
        &LabOptions {
            auth: Some(
                "backend = \"radius\"\nmethods = [\"mschapv2\"]\nfailure_delay_ms = 100".into(),
            ),
            extra,
            ..LabOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", backend.logs()));
    (lab, nas_ip)
}

/// Reads the client's lines until "all_up"; returns the "up" events.
fn wait_up(client: &mut Process, lab: &Lab, backend: &Backend) -> Vec<Value> {
    let mut ups = Vec::new();
    client
        .wait_for_line(Duration::from_secs(120), |line| {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("up") => {
                    ups.push(v);
                    false
                }
                Some("all_up") => true,
                Some("failed") | Some("down") => panic!(
                    "client: {line}\ndaemon log (tail):\n{}\n{}",
                    tail(&lab.daemon_log(), 100),
                    backend.logs()
                ),
                _ => false,
            }
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\ndaemon log (tail):\n{}\n{}",
                tail(&lab.daemon_log(), 100),
                backend.logs()
            )
        });
    ups
}

fn signal(process: &Process, sig: i32) {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(process.child.id() as i32, sig) };
}

/// Records of `status` in the detail file per NAS-IP-Address.
fn per_nas(records: &[DetailRecord], status: &str) -> HashMap<String, Vec<DetailRecord>> {
    let mut map: HashMap<String, Vec<DetailRecord>> = HashMap::new();
    for r in records.iter().filter(|r| r.status() == Some(status)) {
        map.entry(r.get("NAS-IP-Address").unwrap_or_default().to_owned())
            .or_default()
            .push(r.clone());
    }
    map
}

/// Waits up to `within` until the detail file holds `count` records of
/// `status` from each of `nas`; returns them per NAS.
fn wait_records(
    backend: &Backend,
    status: &str,
    nas: &[Ipv4Addr],
    count: usize,
    within: Duration,
) -> HashMap<String, Vec<DetailRecord>> {
    let deadline = Instant::now() + within;
    loop {
        let by_nas = per_nas(&backend.radius.accounting_records(), status);
        let done = nas
            .iter()
            .all(|n| by_nas.get(&n.to_string()).map_or(0, Vec::len) >= count);
        if done {
            return by_nas;
        }
        if Instant::now() > deadline {
            let counts: Vec<_> = by_nas.iter().map(|(k, v)| (k, v.len())).collect();
            panic!(
                "{status}: {counts:?}, expected {count} from each of {nas:?}\n{}",
                backend.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two daemons, each in a lab of its own, share one FreeRADIUS and its
/// sqlippool: 100 sessions on each, every client address from the
/// database's pool and none twice across both daemons, each lease tied in
/// the database to the NAS and the call ID (NAS-Port) of its session, the
/// Start records of both NAS in the one detail file, traffic through a
/// session of each; after the clients hang up, the Stop records of all 200
/// sessions arrive and every address is back in the pool (while both
/// daemons still run, so Accounting-Off does not free them), and neither
/// daemon has a session left.
#[test]
fn two_daemons_share_one_sqlippool() {
    let started = Instant::now();
    let backend = Backend::start(&["198.18.2.0/24", "198.18.3.0/24"]);
    let (lab_a, nas_a) = pool_lab(&backend, [198, 18, 2], "ra", "pptp-a");
    let (lab_b, nas_b) = pool_lab(&backend, [198, 18, 3], "rb", "pptp-b");
    let labs = [(&lab_a, nas_a), (&lab_b, nas_b)];
    // Accounting-On frees every lease of its NAS: let it pass before the
    // sessions take theirs.
    wait_records(
        &backend,
        "Accounting-On",
        &[nas_a, nas_b],
        1,
        Duration::from_secs(20),
    );

    let ready = started.elapsed();
    let sessions = SESSIONS.to_string();
    let mut client_a = lab_a.client(&["--sessions", &sessions]).expect("client");
    let mut client_b = lab_b.client(&["--sessions", &sessions]).expect("client");
    let ups_a = wait_up(&mut client_a, &lab_a, &backend);
    let ups_b = wait_up(&mut client_b, &lab_b, &backend);
    let setup = started.elapsed() - ready;
    assert_eq!((ups_a.len(), ups_b.len()), (SESSIONS, SESSIONS));

    // Every address from the database's pool, none twice across both.
    let mut owner: HashMap<Ipv4Addr, (Ipv4Addr, u16)> = HashMap::new();
    for (lab, nas) in labs {
        let sessions = lab.sessions().expect("sessions");
        assert_eq!(sessions.len(), SESSIONS, "{nas}: {sessions:?}");
        for s in &sessions {
            let a = s
                .client_addr
                .unwrap_or_else(|| panic!("{nas}: session without an address: {s:?}"));
            assert!(
                in_pool(a),
                "{nas}: {a} is not from the RADIUS pool (the daemon's own pool is 198.19.64.0/18)"
            );
            if let Some(other) = owner.insert(a, (nas, s.call_id)) {
                panic!("{a} handed out twice: {other:?} and {:?}", (nas, s.call_id));
            }
        }
    }
    assert_eq!(owner.len(), 2 * SESSIONS);
    let client_addresses: HashSet<Ipv4Addr> = ups_a
        .iter()
        .chain(&ups_b)
        .map(|u| {
            u["address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .expect("address")
        })
        .collect();
    assert_eq!(
        client_addresses,
        owner.keys().copied().collect::<HashSet<_>>(),
        "the clients got the addresses the daemons show"
    );

    // The database: 200 leases, each to the NAS and call ID of the
    // session that holds the address.
    let leases = backend.leases();
    assert_eq!(leases.len(), 2 * SESSIONS, "{leases:?}");
    for (nas, key, address, user) in &leases {
        let (want_nas, call_id) = owner
            .get(address)
            .unwrap_or_else(|| panic!("{address} leased in the database but used by no session"));
        assert_eq!(
            (nas.as_str(), key.as_str(), user.as_str()),
            (
                want_nas.to_string().as_str(),
                call_id.to_string().as_str(),
                USER
            ),
            "lease of {address}"
        );
    }

    // All accounting in one place: the Start of every session of both NAS.
    let starts = wait_records(
        &backend,
        "Start",
        &[nas_a, nas_b],
        SESSIONS,
        Duration::from_secs(30),
    );
    for (nas, id) in [(nas_a, "pptp-a"), (nas_b, "pptp-b")] {
        let records = &starts[&nas.to_string()];
        assert_eq!(records.len(), SESSIONS);
        for r in records {
            assert_eq!(r.get("NAS-Identifier"), Some(id), "{r:?}");
            let a: Ipv4Addr = r
                .get("Framed-IP-Address")
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("Start without Framed-IP-Address: {r:?}"));
            let port: u16 = r.number("NAS-Port").expect("NAS-Port") as u16;
            assert_eq!(owner.get(&a), Some(&(nas, port)), "{r:?}");
        }
    }

    // Traffic through a session of each daemon.
    for (lab, ups) in [(&lab_a, &ups_a), (&lab_b, &ups_b)] {
        for up in [&ups[0], &ups[SESSIONS - 1]] {
            let a = up["address"].as_str().expect("address");
            lab.ping(a, LAN_HOST, 2).unwrap_or_else(|e| {
                panic!("{e}\ndaemon log (tail):\n{}", tail(&lab.daemon_log(), 50))
            });
        }
    }

    // The clients hang up: every Stop arrives, every address is back.
    signal(&client_a, libc::SIGTERM);
    signal(&client_b, libc::SIGTERM);
    assert!(client_a.terminate(Duration::from_secs(60)).is_some());
    assert!(client_b.terminate(Duration::from_secs(60)).is_some());
    let stops = wait_records(
        &backend,
        "Stop",
        &[nas_a, nas_b],
        SESSIONS,
        Duration::from_secs(60),
    );
    for nas in [nas_a, nas_b] {
        assert_eq!(stops[&nas.to_string()].len(), SESSIONS);
    }
    let leases = backend.wait_leases(Duration::from_secs(10), <[_]>::is_empty);
    assert!(
        leases.is_empty(),
        "{} addresses still leased after every Stop: {leases:?}\n{}",
        leases.len(),
        backend.logs()
    );
    for (lab, nas) in labs {
        let left = lab.sessions().expect("sessions");
        assert!(left.is_empty(), "{nas}: sessions left: {left:?}");
    }
    assert!(
        backend
            .radius
            .accounting_records()
            .iter()
            .all(|r| r.status() != Some("Accounting-Off")),
        "no daemon stopped yet: the addresses came back through the Stops"
    );
    eprintln!(
        "backend and both labs ready in {ready:.1?}; {} sessions through the shared pool up in {setup:.1?}; all done in {:.1?}",
        2 * SESSIONS,
        started.elapsed()
    );
}
