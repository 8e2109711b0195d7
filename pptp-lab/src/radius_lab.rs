//! A real FreeRADIUS 3.2 for the tests: [`FreeRadius`] writes a complete
//! minimal configuration into a scratch folder of its own, starts
//! `freeradius -X -f -d <dir>` inside a network namespace (the lab's server
//! namespace, where the daemon reaches it at 127.0.0.1), waits until it is
//! ready and kills it on drop.
//!
//! The configuration (see [`FreeRadius::start`]) has only what the tests
//! need:
//! - modules `pap`, `chap`, `mschap` (`use_mppe`, `require_encryption`,
//!   `require_strong`: MS-CHAP2-Success, MS-MPPE-Send-Key/Recv-Key of 128
//!   bits for MS-CHAPv2, MS-CHAP-MPPE-Keys for MS-CHAPv1, MS-CHAP-Error on a
//!   wrong password), `files` with the users below, and `detail` writing
//!   accounting to [`FreeRadius::detail_file`];
//! - one client, 127.0.0.1, secret [`SECRET`], with
//!   `require_message_authenticator = yes`: a request without
//!   Message-Authenticator is dropped ("Insecure packet");
//! - auth on 127.0.0.1:`port`, accounting on `port + 1`.
//!
//! [`FreeRadius::start_with_options`] changes the listen address, adds
//! client networks and can add an address pool in PostgreSQL
//! ([`SqlIpPool`]: modules `sql` with rlm_sql_postgresql and `sqlippool`,
//! Framed-IP-Address allocated in post-auth, leases extended by accounting
//! Start and Interim-Update, freed by Stop and by Accounting-On/Off), as
//! several concentrators share one in production.
//!
//! Message-Authenticator in responses: Debian 12's FreeRADIUS 3.2.1
//! predates the BlastRADIUS changes of 3.2.5 (CVE-2024-3596) and sends
//! Access-Accept and Access-Reject without one, even when the request had
//! it (checked on the wire: a PAP Access-Accept is 20 octets long). The
//! configuration therefore adds `Message-Authenticator := 0x00` to every
//! reply in `post-auth` and `Post-Auth-Type REJECT`, which FreeRADIUS then
//! computes when it signs the packet (the workaround of the FreeRADIUS
//! BlastRADIUS advisory for older versions). Every Access-Accept and
//! Access-Reject of this server so carries a valid Message-Authenticator,
//! as a client that requires one (ours) needs; [`FreeRadius::start_unsigned`]
//! leaves the workaround out, for tests that such answers are refused.
//!
//! Missing binaries fail with the package names and `cargo xtask setup` as
//! the fix; nothing is skipped.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use pptp_netns::{self as netns, Netns, NetnsError};

/// The shared secret of the test client (127.0.0.1).
pub const SECRET: &str = "testing123";
/// A user FreeRADIUS accepts with [`PASSWORD`] (the lab's own user, so
/// `Lab::client` logs in with it unchanged).
pub const USER: &str = crate::lab::USER;
/// [`USER`]'s Cleartext-Password.
pub const PASSWORD: &str = crate::lab::PASSWORD;
/// A user whose account is disabled (`Auth-Type := Reject`): rejected
/// whatever the password, with a Reply-Message.
pub const DISABLED_USER: &str = "mallory";
/// A user whose Access-Accept ends the session after 3 s
/// (`Session-Timeout = 3`).
pub const SHORT_USER: &str = "shorty";
/// A user whose Access-Accept carries `Class = "gold"`,
/// `Acct-Interim-Interval = 2` and `Framed-MTU = 1300`.
pub const GOLD_USER: &str = "goldie";
/// A user whose Access-Accept carries `Idle-Timeout = 3`.
pub const IDLE_USER: &str = "idler";
/// Users whose Access-Accept carries `Framed-Pool = "gold"` resp.
/// `Framed-Pool = "nosuch"` (RFC 2869 section 5.18).
pub const POOL_USER: &str = "pooled";
pub const NO_POOL_USER: &str = "unpooled";
/// A user whose Access-Accept carries `Mikrotik-Rate-Limit = "2M/4M"`
/// (2 Mbit/s from the client, 4 Mbit/s to it).
pub const RATED_USER: &str = "rated";
/// A user whose Access-Accept carries `Filter-Id = "4000/2000"`
/// (accel-ppp's down/up kbit/s: 2 Mbit/s from the client, 4 Mbit/s to it).
pub const FILTERED_USER: &str = "filtered";
/// [`SHORT_USER`]'s, [`GOLD_USER`]'s, [`IDLE_USER`]'s, the pool users',
/// [`RATED_USER`]'s and [`FILTERED_USER`]'s Cleartext-Password.
pub const ATTR_PASSWORD: &str = "attr-password";
/// [`DISABLED_USER`]'s Cleartext-Password (still rejected).
pub const DISABLED_PASSWORD: &str = "mallory-password";
/// The Reply-Message of [`DISABLED_USER`]'s Access-Reject.
pub const DISABLED_MESSAGE: &str = "account disabled";

/// Why FreeRADIUS could not be set up or asked.
#[derive(Debug, thiserror::Error)]
pub enum FreeRadiusError {
    #[error(
        "`{program}` not found: install the Debian packages freeradius and freeradius-utils (`cargo xtask setup` does)"
    )]
    Missing { program: &'static str },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{path} not found: install the Debian package {package} (`cargo xtask setup` does)")]
    MissingModule { path: String, package: &'static str },
    #[error("FreeRADIUS did not come up ({reason}); its log:\n{log}")]
    NotReady { reason: String, log: String },
    #[error("radclient: {0}")]
    Radclient(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FreeRadiusError {
    let context = context.into();
    move |source| FreeRadiusError::Io { context, source }
}

/// Finds `program` on PATH or in /usr/sbin (where Debian puts
/// `freeradius`).
fn find_program(program: &'static str) -> Result<PathBuf, FreeRadiusError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(FreeRadiusError::Missing { program })
}

/// A running FreeRADIUS, killed (and its folder removed unless
/// `PPTP_LAB_KEEP` is set) on drop.
pub struct FreeRadius {
    child: Child,
    dir: PathBuf,
    netns: String,
    listen: Ipv4Addr,
    auth_port: u16,
}

/// How [`FreeRadius::start_with_options`] configures and runs FreeRADIUS
/// (the default is what [`FreeRadius::start`] does).
#[derive(Clone, Debug)]
pub struct FreeRadiusOptions {
    /// The address it listens on in its namespace (it must exist there).
    pub listen: Ipv4Addr,
    /// Its auth port (accounting on the next one); 0: a free pair.
    pub auth_port: u16,
    /// Networks (`198.18.2.0/24`…) allowed as clients with [`SECRET`],
    /// besides 127.0.0.1.
    pub clients: Vec<String>,
    /// Framed-IP-Address from a PostgreSQL pool (rlm_sqlippool).
    pub sqlippool: Option<SqlIpPool>,
}

impl Default for FreeRadiusOptions {
    fn default() -> Self {
        Self {
            listen: Ipv4Addr::LOCALHOST,
            auth_port: 0,
            clients: Vec::new(),
            sqlippool: None,
        }
    }
}

/// rlm_sql (driver rlm_sql_postgresql) and rlm_sqlippool against a
/// PostgreSQL with FreeRADIUS's `radippool` table (see
/// [`crate::postgres::Postgres`]), with Debian's PostgreSQL queries
/// ([`IPPOOL_QUERIES`]):
/// - `Pool-Name := pool` is set for every user by a `DEFAULT` entry of the
///   users file (authorize);
/// - post-auth allocates Framed-IP-Address: the lease is keyed on
///   NAS-IP-Address and `pool_key = %{NAS-Port}` (our call ID, unique per
///   NAS; every session of the lab comes from one client address, so
///   Calling-Station-Id would not tell them apart);
/// - accounting Start and Interim-Update extend the lease, Stop frees it,
///   Accounting-On and Accounting-Off free every lease of that NAS.
#[derive(Clone, Debug)]
pub struct SqlIpPool {
    /// Where PostgreSQL listens (as seen from FreeRADIUS's namespace).
    pub server: SocketAddr,
    /// The database holding `radippool`.
    pub database: String,
    /// The user FreeRADIUS logs in as (`trust` authentication, no password).
    pub login: String,
    /// The `pool_name` of the rows to hand out.
    pub pool_name: String,
    /// `lease_duration` (seconds): a lease not extended or freed by then
    /// expires.
    pub lease_duration_secs: u32,
}

/// Debian's PostgreSQL queries for rlm_sqlippool (freeradius-config).
pub const IPPOOL_QUERIES: &str =
    "/etc/freeradius/3.0/mods-config/sql/ippool/postgresql/queries.conf";

/// What radclient received: the reply's code (`Access-Accept`…) and its
/// attributes as radclient prints them (name, value), encrypted ones
/// (MS-MPPE-Send-Key…) already decrypted with the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: String,
    pub attributes: Vec<(String, String)>,
}

impl Reply {
    /// The first value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of an octets attribute printed as `0x…`, decoded.
    pub fn octets(&self, name: &str) -> Option<Vec<u8>> {
        let hex = self.get(name)?.strip_prefix("0x")?;
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

impl FreeRadius {
    /// Writes the configuration and starts FreeRADIUS in `ns` on free
    /// ports of 127.0.0.1 there (auth, and accounting on auth + 1); returns
    /// once it logs "Ready to process requests".
    pub fn start(ns: &Netns) -> Result<Self, FreeRadiusError> {
        let auth_port = free_port_pair(ns, Ipv4Addr::LOCALHOST)?;
        Self::start_on(ns, auth_port)
    }

    /// As [`FreeRadius::start`], on the given auth port (accounting on the
    /// next one).
    pub fn start_on(ns: &Netns, auth_port: u16) -> Result<Self, FreeRadiusError> {
        Self::start_with(
            ns,
            &FreeRadiusOptions {
                auth_port,
                ..FreeRadiusOptions::default()
            },
            true,
        )
    }

    /// As [`FreeRadius::start`], configured by `options` (listen address,
    /// more clients, an SQL address pool).
    pub fn start_with_options(
        ns: &Netns,
        options: &FreeRadiusOptions,
    ) -> Result<Self, FreeRadiusError> {
        let mut options = options.clone();
        if options.auth_port == 0 {
            options.auth_port = free_port_pair(ns, options.listen)?;
        }
        Self::start_with(ns, &options, true)
    }

    /// As [`FreeRadius::start`], but as Debian's 3.2.1 behaves out of the
    /// box: Access-Accept and Access-Reject without Message-Authenticator
    /// (what a client must refuse since BlastRADIUS, CVE-2024-3596).
    pub fn start_unsigned(ns: &Netns) -> Result<Self, FreeRadiusError> {
        let auth_port = free_port_pair(ns, Ipv4Addr::LOCALHOST)?;
        Self::start_with(
            ns,
            &FreeRadiusOptions {
                auth_port,
                ..FreeRadiusOptions::default()
            },
            false,
        )
    }

    fn start_with(
        ns: &Netns,
        options: &FreeRadiusOptions,
        sign: bool,
    ) -> Result<Self, FreeRadiusError> {
        let program = find_program("freeradius")?;
        if options.sqlippool.is_some() {
            let module = Path::new("/usr/lib/freeradius/rlm_sql_postgresql.so");
            if !module.is_file() {
                return Err(FreeRadiusError::MissingModule {
                    path: module.display().to_string(),
                    package: "freeradius-postgresql",
                });
            }
            if !Path::new(IPPOOL_QUERIES).is_file() {
                return Err(FreeRadiusError::MissingModule {
                    path: IPPOOL_QUERIES.to_owned(),
                    package: "freeradius-config",
                });
            }
        }
        let dir = std::env::temp_dir().join(format!("pptp-{}", netns::unique_name("frad")));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        write_config(&dir, options, sign)?;
        let log = dir.join("radiusd.log");
        let out = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(&program)
            .args(["-X", "-f", "-d"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {}", program.display())))?;
        let mut server = FreeRadius {
            child,
            dir,
            netns: ns.name().to_owned(),
            listen: options.listen,
            auth_port: options.auth_port,
        };
        server.wait_ready(Duration::from_secs(20))?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), FreeRadiusError> {
        let log = self.dir.join("radiusd.log");
        crate::lab::wait_for_log(&mut self.child, &log, "Ready to process requests", timeout)
            .map_err(|reason| FreeRadiusError::NotReady {
                reason,
                log: self.log(),
            })
    }

    /// Where it answers Access-Requests (127.0.0.1 of its namespace
    /// unless [`FreeRadiusOptions::listen`] said otherwise).
    pub fn auth_address(&self) -> SocketAddr {
        SocketAddr::from((self.listen, self.auth_port))
    }

    /// Where it answers Accounting-Requests (the auth port + 1).
    pub fn acct_address(&self) -> SocketAddr {
        SocketAddr::from((self.listen, self.auth_port + 1))
    }

    /// The configuration folder (radiusd.conf, users, the log, the detail file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `detail` module's file: every Accounting-Request it received.
    pub fn detail_file(&self) -> PathBuf {
        self.dir.join("detail")
    }

    /// Its debug log (`-X`) so far.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.join("radiusd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Access-Requests it accepted for `user` so far ("Login OK" lines).
    pub fn logins_ok(&self, user: &str) -> usize {
        self.log().matches(&format!("Login OK: [{user}]")).count()
    }

    /// Access-Requests it rejected for `user` so far ("Login incorrect").
    pub fn logins_incorrect(&self, user: &str) -> usize {
        let log = self.log();
        log.lines()
            .filter(|l| {
                l.contains("Login incorrect")
                    && (l.contains(&format!("[{user}/")) || l.contains(&format!("[{user}]")))
            })
            .count()
    }

    /// Sends one request with radclient from the same namespace and returns
    /// the reply. `code` is radclient's (`auth`, `acct`, `status`…),
    /// `attributes` its input (`Name = value, …`); a Message-Authenticator
    /// is added to Access-Requests, as `require_message_authenticator`
    /// demands.
    pub fn radclient(&self, code: &str, attributes: &str) -> Result<Reply, FreeRadiusError> {
        self.send(code, attributes, true)
    }

    /// As [`FreeRadius::radclient`], without adding a Message-Authenticator
    /// (FreeRADIUS drops such an Access-Request: an error, "no reply").
    pub fn radclient_unsigned(
        &self,
        code: &str,
        attributes: &str,
    ) -> Result<Reply, FreeRadiusError> {
        self.send(code, attributes, false)
    }

    fn send(&self, code: &str, attributes: &str, sign: bool) -> Result<Reply, FreeRadiusError> {
        let to = if code == "acct" {
            self.acct_address()
        } else {
            self.auth_address()
        };
        let mut input = attributes.to_owned();
        if sign && code == "auth" && !input.contains("Message-Authenticator") {
            input.push_str(", Message-Authenticator = 0x00");
        }
        input.push('\n');
        run_radclient(&self.netns, to, code, SECRET, &input, 3)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("PPTP_LAB_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The daemon's `[radius]` table (and its `[[radius.servers]]`) for
/// `servers`, tried in order, each with [`SECRET`]: the lab's timing
/// (1 s per try, 2 retries, 30 s hold-down of a dead server).
pub fn daemon_radius_config(servers: &[SocketAddr]) -> String {
    let mut text = String::from(
        "\n[radius]\nnas_identifier = \"pptp-xdp\"\ntimeout_ms = 1000\nretries = 2\ndead_time_secs = 30\n",
    );
    for server in servers {
        let _ = write!(
            text,
            "\n[[radius.servers]]\naddress = \"{server}\"\nsecret = \"{SECRET}\"\n"
        );
    }
    text
}

/// A UDP port `p` of `address` in `ns` with `p + 1` free as well.
fn free_port_pair(ns: &Netns, address: Ipv4Addr) -> Result<u16, FreeRadiusError> {
    let port = ns
        .run(|| -> std::io::Result<u16> {
            for _ in 0..100 {
                let a = UdpSocket::bind((address, 0))?;
                let port = a.local_addr()?.port();
                if port < u16::MAX && UdpSocket::bind((address, port + 1)).is_ok() {
                    return Ok(port);
                }
            }
            Err(std::io::Error::other("no two consecutive free UDP ports"))
        })?
        .map_err(io("finding free ports"))?;
    Ok(port)
}

/// A UDP port of 127.0.0.1 in `ns` where nothing listens (for a dead
/// server in failover tests).
pub fn unused_port(ns: &Netns) -> Result<u16, FreeRadiusError> {
    let port = ns
        .run(|| -> std::io::Result<u16> {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            s.local_addr().map(|a| a.port())
        })?
        .map_err(io("finding a free port"))?;
    Ok(port)
}

/// radclient's `-x` output: the last "Received <code> Id …" line and the
/// tab-indented `Name = value` lines after it.
fn parse_radclient(out: &str) -> Option<Reply> {
    let mut reply = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            let code = rest.split(" Id ").next()?.to_owned();
            reply = Some(Reply {
                code,
                attributes: Vec::new(),
            });
        } else if let (Some(r), Some(attr)) = (reply.as_mut(), line.strip_prefix('\t'))
            && let Some((name, value)) = attr.split_once(" = ")
        {
            r.attributes.push((
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ));
        }
    }
    reply
}

fn write_config(
    dir: &Path,
    options: &FreeRadiusOptions,
    sign: bool,
) -> Result<(), FreeRadiusError> {
    let d = dir.display();
    let listen = options.listen;
    let auth_port = options.auth_port;
    let acct_port = auth_port + 1;
    let mut clients = String::new();
    for (i, network) in options.clients.iter().enumerate() {
        let _ = write!(
            clients,
            "\nclient net{i} {{\n\tipaddr = {network}\n\tsecret = {SECRET}\n\t\
             require_message_authenticator = yes\n\tnas_type = other\n}}\n"
        );
    }
    let (sql_modules, pool_post_auth, pool_accounting, pool_users) = match &options.sqlippool {
        Some(pool) => (
            sqlippool_modules(pool),
            "sqlippool",
            "sqlippool",
            format!(
                "DEFAULT\tPool-Name := \"{}\"\n\tFall-Through = yes\n\n",
                pool.pool_name
            ),
        ),
        None => (String::new(), "", "", String::new()),
    };
    let sign_reply = if sign {
        "update reply {\n\t\t\tMessage-Authenticator := 0x00\n\t\t}"
    } else {
        "# unsigned: replies as stock FreeRADIUS 3.2.1 sends them"
    };
    let radiusd = format!(
        r#"# Written by pptp-daemon's radius_lab for one test run.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {d}
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}
certdir = ${{confdir}}
cadir = ${{confdir}}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no

log {{
	destination = stdout
	colourise = no
	auth = yes
	auth_badpass = yes
	auth_goodpass = no
}}

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}

thread pool {{
	start_servers = 2
	max_servers = 8
	min_spare_servers = 1
	max_spare_servers = 8
	max_requests_per_server = 0
}}

client localhost {{
	ipaddr = 127.0.0.1
	secret = {SECRET}
	require_message_authenticator = yes
	nas_type = other
}}
{clients}
modules {{
	pap {{
	}}
	chap {{
	}}
	mschap {{
		use_mppe = yes
		require_encryption = yes
		require_strong = yes
	}}
	files {{
		filename = ${{confdir}}/users
		acctusersfile = ${{confdir}}/acct_users
	}}
	always ok {{
		rcode = ok
	}}
	detail {{
		filename = ${{radacctdir}}/detail
		permissions = 0600
		header = "%t"
	}}
{sql_modules}}}

server default {{
	listen {{
		type = auth
		ipaddr = {listen}
		port = {auth_port}
	}}
	listen {{
		type = acct
		ipaddr = {listen}
		port = {acct_port}
	}}
	authorize {{
		files
		chap
		mschap
		pap
		Autz-Type Status-Server {{
			{sign_reply}
			ok
		}}
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type CHAP {{
			chap
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
	}}
	preacct {{
	}}
	accounting {{
		detail
		{pool_accounting}
	}}
	# FreeRADIUS 3.2.1 signs no reply of its own accord (see the module
	# documentation): ask for a Message-Authenticator in every one.
	post-auth {{
		{pool_post_auth}
		{sign_reply}
		Post-Auth-Type REJECT {{
			{sign_reply}
		}}
	}}
}}
"#
    );
    let users = format!(
        "{pool_users}{USER}\tCleartext-Password := \"{PASSWORD}\"\n\
         {DISABLED_USER}\tCleartext-Password := \"{DISABLED_PASSWORD}\", Auth-Type := Reject\n\
         \tReply-Message = \"{DISABLED_MESSAGE}\"\n\
         {SHORT_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\
         \tSession-Timeout = 3\n\
         {GOLD_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\
         \tClass = \"gold\", Acct-Interim-Interval = 2, Framed-MTU = 1300\n\
         {IDLE_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\
         \tIdle-Timeout = 3\n\
         {POOL_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\tFramed-Pool = \"gold\"\n\
         {NO_POOL_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\tFramed-Pool = \"nosuch\"\n\
         {RATED_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\
         \tMikrotik-Rate-Limit = \"2M/4M\"\n\
         {FILTERED_USER}\tCleartext-Password := \"{ATTR_PASSWORD}\"\n\
         \tFilter-Id = \"4000/2000\"\n"
    );
    for (name, text) in [
        ("radiusd.conf", radiusd.as_str()),
        ("users", users.as_str()),
        ("acct_users", ""),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// The `sql` and `sqlippool` module sections for `pool` (see
/// [`SqlIpPool`]).
fn sqlippool_modules(pool: &SqlIpPool) -> String {
    let SqlIpPool {
        server,
        database,
        login,
        pool_name: _,
        lease_duration_secs,
    } = pool;
    let (host, port) = (server.ip(), server.port());
    format!(
        r#"	sql {{
		driver = "rlm_sql_postgresql"
		dialect = "postgresql"
		server = "{host}"
		port = {port}
		login = "{login}"
		password = ""
		radius_db = "{database}"
		sql_user_name = "%{{User-Name}}"
		read_clients = no
		pool {{
			start = 1
			min = 1
			max = 8
			spare = 2
			uses = 0
			retry_delay = 1
			lifetime = 0
			idle_timeout = 0
		}}
	}}
	sqlippool {{
		sql_module_instance = "sql"
		dialect = "postgresql"
		pool_name = "Pool-Name"
		ippool_table = "radippool"
		lease_duration = {lease_duration_secs}
		allocate_clear_timeout = 1
		attribute_name = Framed-IP-Address
		req_attribute_name = Framed-IP-Address
		# Unique per NAS: our call ID. Every session of the lab comes
		# from one client address, so not Calling-Station-Id.
		pool_key = "%{{NAS-Port}}"
		messages {{
			exists = "Existing IP: %{{reply:Framed-IP-Address}} (port %{{NAS-Port}} user %{{User-Name}})"
			success = "Allocated IP: %{{reply:Framed-IP-Address}} from %{{control:Pool-Name}} (port %{{NAS-Port}} user %{{User-Name}})"
			clear = "Released IP %{{request:Framed-IP-Address}} (user %{{User-Name}})"
			failed = "IP Allocation FAILED from %{{control:Pool-Name}} (port %{{NAS-Port}} user %{{User-Name}})"
			nopool = "No Pool-Name defined (port %{{NAS-Port}} user %{{User-Name}})"
		}}
		$INCLUDE {IPPOOL_QUERIES}
	}}
"#
    )
}

/// Sends one request with radclient from `ns` to `to` with `secret`, as
/// an operator's RADIUS server sends dynamic-authorization requests
/// (RFC 5176: `code` is `disconnect` or `coa`) to a NAS. One try, `wait`
/// seconds; no answer is an error.
pub fn radclient_to(
    ns: &Netns,
    to: SocketAddr,
    code: &str,
    secret: &str,
    attributes: &str,
    wait: u32,
) -> Result<Reply, FreeRadiusError> {
    run_radclient(
        ns.name(),
        to,
        code,
        secret,
        &format!("{attributes}\n"),
        wait,
    )
}

/// Runs radclient in namespace `netns` against `to`: one try, `wait`
/// seconds, `input` (attribute lines) on its standard input.
fn run_radclient(
    netns: &str,
    to: SocketAddr,
    code: &str,
    secret: &str,
    input: &str,
    wait: u32,
) -> Result<Reply, FreeRadiusError> {
    let program = find_program("radclient")?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(&program)
        .args(["-x", "-t", &wait.to_string(), "-r", "1"])
        .arg(to.to_string())
        .args([code, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting radclient"))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(input.as_bytes())
            .map_err(io("writing to radclient"))?;
    }
    let out = child.wait_with_output().map_err(io("running radclient"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_radclient(&stdout).ok_or_else(|| {
        FreeRadiusError::Radclient(format!(
            "no reply to {input:?} ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radclient_output_is_parsed_into_code_and_attributes() {
        let out = "Sent Access-Request Id 124 from 0.0.0.0:39226 to 127.0.0.1:18120 length 75\n\
                   \tUser-Name = \"alice\"\n\
                   Received Access-Reject Id 250 from 127.0.0.1:18120 to 127.0.0.1:33854 length 79\n\
                   \tMS-CHAP-Error = \"\\000E=691 R=1 C=5261fa48c7b85f93 V=2\"\n\
                   \tMessage-Authenticator = 0xf86d3db8c8601aacf6c0694700f8f12b\n";
        let reply = parse_radclient(out).expect("a reply");
        assert_eq!(reply.code, "Access-Reject");
        assert_eq!(
            reply.get("MS-CHAP-Error"),
            Some("\\000E=691 R=1 C=5261fa48c7b85f93 V=2")
        );
        assert_eq!(
            reply.octets("Message-Authenticator").map(|v| v.len()),
            Some(16)
        );
        assert_eq!(
            reply.get("User-Name"),
            None,
            "request attributes are not the reply's"
        );
        assert_eq!(
            parse_radclient("(0) No reply from server for ID 136 socket 3\n"),
            None
        );
    }

    #[test]
    fn a_missing_program_names_the_packages_and_the_fix() {
        let err = find_program("pptp-no-such-radius-program").expect_err("not installed");
        let text = err.to_string();
        assert!(
            text.contains("freeradius-utils") && text.contains("cargo xtask setup"),
            "{text}"
        );
    }

    #[test]
    fn daemon_config_lists_the_servers_in_order() {
        let text = daemon_radius_config(&[
            "127.0.0.1:9".parse().expect("address"),
            "127.0.0.1:1812".parse().expect("address"),
        ]);
        let value: toml::Table = text.parse().expect("valid TOML");
        let servers = value["radius"]["servers"].as_array().expect("servers");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0]["address"].as_str(), Some("127.0.0.1:9"));
        assert_eq!(servers[1]["secret"].as_str(), Some(SECRET));
        assert_eq!(value["radius"]["timeout_ms"].as_integer(), Some(1000));
    }
}

/// One record of FreeRADIUS's detail file: the attributes of one
/// Accounting-Request as the `detail` module wrote them (name, value with
/// the quotes of strings removed), FreeRADIUS's own additions included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailRecord {
    pub attributes: Vec<(String, String)>,
}

impl DetailRecord {
    /// The first value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of attribute `name` as a number.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }

    /// Acct-Status-Type (`Start`, `Stop`, `Interim-Update`,
    /// `Accounting-On`…).
    pub fn status(&self) -> Option<&str> {
        self.get("Acct-Status-Type")
    }
}

/// Parses a detail file: records separated by blank lines, each a header
/// line (the time) and then one `\tName = value` line per attribute.
pub fn parse_detail(text: &str) -> Vec<DetailRecord> {
    text.split("\n\n")
        .filter_map(|block| {
            let attributes: Vec<(String, String)> = block
                .lines()
                .filter(|l| l.starts_with('\t'))
                .filter_map(|l| {
                    let (name, value) = l.trim().split_once(" = ")?;
                    let value = value.trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    Some((name.to_owned(), value.to_owned()))
                })
                .collect();
            (!attributes.is_empty()).then_some(DetailRecord { attributes })
        })
        .collect()
}

impl FreeRadius {
    /// The accounting records received so far (empty before the first).
    pub fn accounting_records(&self) -> Vec<DetailRecord> {
        parse_detail(&std::fs::read_to_string(self.detail_file()).unwrap_or_default())
    }

    /// Waits up to `within` for a record that `matches`; returns it, or
    /// every record received when none did.
    pub fn wait_accounting(
        &self,
        within: Duration,
        matches: impl Fn(&DetailRecord) -> bool,
    ) -> Result<DetailRecord, Vec<DetailRecord>> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let records = self.accounting_records();
            if let Some(r) = records.iter().find(|r| matches(r)) {
                return Ok(r.clone());
            }
            if std::time::Instant::now() > deadline {
                return Err(records);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod detail_tests {
    use super::*;

    #[test]
    fn detail_records_are_parsed() {
        let text = "Tue Dec  1 12:00:00 2026\n\tAcct-Status-Type = Start\n\
            \tUser-Name = \"alice\"\n\tAcct-Input-Octets = 12\n\tTimestamp = 1\n\n\
            Tue Dec  1 12:00:01 2026\n\tAcct-Status-Type = Stop\n\
            \tAcct-Terminate-Cause = User-Request\n\n";
        let r = parse_detail(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].status(), Some("Start"));
        assert_eq!(r[0].get("User-Name"), Some("alice"));
        assert_eq!(r[0].number("Acct-Input-Octets"), Some(12));
        assert_eq!(r[1].get("Acct-Terminate-Cause"), Some("User-Request"));
    }
}
