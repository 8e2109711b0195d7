//! The local control socket behind `pptp-daemon ctl` (as accel-ppp's
//! accel-cmd): one JSON request line in, one JSON response line out, one
//! request per connection.
//!
//! The socket is a Unix socket of mode 0600; a client is served only when
//! its peer credentials (SO_PEERCRED) name root or the daemon's own user.
//! Every client is bounded: [`MAX_REQUEST`] bytes of request,
//! [`MAX_CLIENTS`] clients at once, [`REQUEST_TIME_LIMIT`] from accept to
//! the last byte of the answer.
//!
//! The tables and filters of the command line are in [`super::ctl_view`];
//! the daemon's answers in [`super::ops`].

pub use super::ctl_view::format_sessions;

use std::{
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
};

/// The longest request line accepted (the newline included).
pub const MAX_REQUEST: usize = 4096;
/// Clients served at once; more are answered "busy" and closed.
pub const MAX_CLIENTS: usize = 8;
/// From accept to the last byte of the answer.
pub const REQUEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// A request on the control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Every session, unfiltered (the lab's and older clients' request).
    Sessions,
    /// The global counters of the XDP program and the userspace path.
    Stats,
    /// The sessions that pass every filter, in `order`.
    List {
        #[serde(default)]
        filters: Vec<Filter>,
        #[serde(default)]
        order: Option<Order>,
    },
    /// One session, with everything known about it.
    Show { session: String },
    /// End the sessions `target` names.
    Terminate { target: Target, mode: Mode },
    /// Sessions by state, setups and failures, counters, memory, uptime.
    Stat,
    /// What SIGHUP does; answered with its outcome.
    Reload,
    /// Stop the daemon: `soft` waits for the sessions to end.
    Shutdown { mode: Mode },
}

/// Soft (with the protocol's goodbyes) or hard (at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Soft,
    Hard,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "soft" => Ok(Mode::Soft),
            "hard" => Ok(Mode::Hard),
            _ => Err(format!("{s:?}: expected soft or hard")),
        }
    }
}

/// Where a session is, as `ctl sessions` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// From the call request to the network phase.
    Starting,
    /// The network phase is up.
    #[default]
    Up,
    /// Asked to end (terminate, timeout, shutdown), not yet gone.
    Ending,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Ending => "ending",
        }
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "starting" => Ok(State::Starting),
            "up" => Ok(State::Up),
            "ending" => Ok(State::Ending),
            _ => Err(format!("{s:?}: expected starting, up or ending")),
        }
    }
}

/// One condition of `ctl sessions` (`user=alice`, `ip=198.19.0.2`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The session id (Acct-Session-Id).
    Sid(String),
    User(String),
    /// The client's tunnel address.
    Ip(Ipv4Addr),
    /// The peer's public address.
    Peer(Ipv4Addr),
    State(State),
}

impl FromStr for Filter {
    type Err = String;
    /// `key=value` with key sid, user, ip, peer or state.
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected key=value (sid, user, ip, peer, state)"))?;
        let addr = |v: &str| {
            v.parse::<Ipv4Addr>()
                .map_err(|e| format!("{key}={v}: not an IPv4 address: {e}"))
        };
        match key {
            "sid" => Ok(Filter::Sid(value.to_owned())),
            "user" | "username" => Ok(Filter::User(value.to_owned())),
            "ip" => Ok(Filter::Ip(addr(value)?)),
            "peer" => Ok(Filter::Peer(addr(value)?)),
            "state" => Ok(Filter::State(value.parse()?)),
            _ => Err(format!(
                "{key:?}: unknown filter (expected sid, user, ip, peer or state)"
            )),
        }
    }
}

/// What `ctl terminate` ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    All,
    Sid(String),
    User(String),
    Ip(Ipv4Addr),
    Peer(Ipv4Addr),
}

impl FromStr for Target {
    type Err = String;
    /// `all`, `sid=..`, `user=..`, `ip=..`, `peer=..`, or a bare session id.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Target::All);
        }
        if !s.contains('=') {
            return Ok(Target::Sid(s.to_owned()));
        }
        match s.parse::<Filter>()? {
            Filter::Sid(v) => Ok(Target::Sid(v)),
            Filter::User(v) => Ok(Target::User(v)),
            Filter::Ip(v) => Ok(Target::Ip(v)),
            Filter::Peer(v) => Ok(Target::Peer(v)),
            Filter::State(_) => Err("terminate: state= is not a target".into()),
        }
    }
}

/// The order of `ctl sessions`: names ascending, uptime and traffic
/// descending (the oldest and the busiest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Uptime,
    User,
    Ip,
    Rx,
    Tx,
}

/// Which data path carries a session's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPath {
    /// Decapsulated and encapsulated by the XDP program.
    Xdp,
    /// Through the daemon (MPPE, no XDP, or XDP off).
    Userspace,
    /// Not yet: the PPP session is still negotiating.
    Negotiating,
}

impl DataPath {
    pub fn name(self) -> &'static str {
        match self {
            DataPath::Xdp => "xdp",
            DataPath::Userspace => "userspace",
            DataPath::Negotiating => "negotiating",
        }
    }
}

/// One session as `pptp-daemon ctl sessions` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: Option<String>,
    pub peer: Ipv4Addr,
    pub call_id: u16,
    pub peer_call_id: u16,
    pub client_addr: Option<Ipv4Addr>,
    pub uptime_secs: u64,
    /// From the client (decapsulated).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// To the client (encapsulated).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// `"128-bit stateless"` and the like; `None` without MPPE.
    pub mppe: Option<String>,
    pub path: DataPath,
    /// Acct-Session-Id (RFC 2866 section 5.5), what RADIUS Disconnect and
    /// CoA requests (RFC 5176) name the session by, and `ctl`'s session id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub acct_session_id: String,
    #[serde(default)]
    pub state: State,
    /// The session's rate limit as shown to operators; `None`: unlimited.
    #[serde(default)]
    pub rate: Option<String>,
}

/// What the session's PPP negotiation agreed (LCP, IPCP, CCP) and what the
/// back end gave with its accept: published by the session task when its
/// network comes up, shown by `ctl show`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    /// LCP (RFC 1661 section 6): the largest frame the peer may send us.
    pub mru: u16,
    /// The largest frame we may send (the peer's MRU).
    pub peer_mru: u16,
    /// Protocol-Field-Compression and Address-and-Control-Field-Compression
    /// on what we send (RFC 1661 sections 6.5, 6.6).
    pub pfc: bool,
    pub acfc: bool,
    pub peer_accm: Option<u32>,
    pub magic: u32,
    pub peer_magic: u32,
    /// The authentication protocol (`MS-CHAPv2`, ...).
    pub auth: Option<String>,
    /// IPCP (RFC 1332, RFC 1877).
    pub local_address: Option<Ipv4Addr>,
    pub client_address: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub nbns: Vec<Ipv4Addr>,
    /// CCP/MPPE (RFC 3078).
    pub mppe: Option<String>,
    /// The data path's MTU towards the client, and the TCP MSS clamp.
    pub mtu: u16,
    pub mss_clamp: Option<u16>,
    /// From the back end (RADIUS reply attributes, RFC 2865/2869).
    pub session_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub acct_interim_secs: Option<u64>,
    pub framed_mtu: Option<u16>,
    /// Class attributes, hex.
    pub class: Vec<String>,
}

/// `ctl show`: everything known about one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetails {
    pub info: SessionInfo,
    /// When the call was connected and when its network came up, seconds
    /// since the epoch.
    pub started_unix: u64,
    pub up_since_unix: Option<u64>,
    /// Why it is ending, when it is.
    pub ending: Option<String>,
    /// Time left before the Session-Timeout ends it.
    pub session_timeout_left_secs: Option<u64>,
    /// `None` until the network phase is up.
    pub negotiated: Option<Negotiated>,
}

/// Sessions by state and by data path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub starting: u64,
    pub up: u64,
    pub ending: u64,
    pub xdp: u64,
    pub userspace: u64,
}

/// `ctl stat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatReport {
    pub uptime_secs: u64,
    /// Resident set size (`/proc/self/statm`).
    pub rss_bytes: Option<u64>,
    pub sessions: StateCounts,
    pub connections: u64,
    /// Calls created; setups that reached the network phase; of those in
    /// the last minute, and per second over it.
    pub calls_started: u64,
    pub setups: u64,
    pub setups_last_minute: u64,
    pub setups_per_second: f64,
    /// Sessions that ended before their network phase, per reason.
    pub setup_failures: Vec<(String, u64)>,
    /// Sessions ended, per reason.
    pub ended: Vec<(String, u64)>,
    /// Connections, calls and users refused, per reason.
    pub refused: Vec<(String, u64)>,
    pub auth_accepted: u64,
    pub auth_rejected: u64,
    /// A soft shutdown is waiting for the sessions to end.
    pub draining: bool,
    /// Every counter of the data paths (`stats`).
    pub counters: Vec<(String, u64)>,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Sessions {
        sessions: Vec<SessionInfo>,
    },
    Stats {
        counters: Vec<(String, u64)>,
    },
    Session {
        details: Box<SessionDetails>,
    },
    Terminated {
        count: usize,
    },
    Stat {
        stat: Box<StatReport>,
    },
    /// Reload succeeded; what changed.
    Reloaded {
        outcome: String,
    },
    ShuttingDown {
        mode: Mode,
        sessions: usize,
    },
    Error {
        message: String,
    },
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: bad answer: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("control socket {path}: the daemon closed the connection without answering")]
    NoAnswer { path: PathBuf },
    #[error("control socket {path}: no answer within {limit:?}")]
    Timeout { path: PathBuf, limit: Duration },
}

/// Whether a client with user id `uid` may use the socket: root, or the
/// daemon's own user.
pub fn uid_allowed(uid: u32, own_uid: u32) -> bool {
    uid == 0 || uid == own_uid
}

/// Reads one request line of at most [`MAX_REQUEST`] bytes and parses it.
async fn read_request<R: tokio::io::AsyncRead + Unpin>(read: R) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut limited = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    parse_request(&line)
}

/// One request line (its newline optional) as a [`Request`].
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    if line.is_empty() {
        return Err("empty request".into());
    }
    serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))
}

/// Warnings about refused local clients: at most one a second, with the
/// count of those suppressed.
struct RefusalLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RefusalLog {
    fn warn(&mut self, uid: Option<u32>, pid: Option<i32>) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        tracing::warn!(
            ?uid,
            ?pid,
            suppressed,
            "control socket: client refused (only root and the daemon's user may use it)"
        );
    }
}

/// Listens on `path` (replacing a stale socket file, mode 0600) and
/// answers each request with `answer`, which runs on a blocking thread.
/// Runs until the task is dropped.
pub async fn serve<F>(path: &Path, answer: F) -> Result<(), CtlError>
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    let io = |source| CtlError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // Between bind and chmod the file has the umask's mode; the peer
    // credentials check below refuses strangers in that moment too.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    // SAFETY: geteuid has no preconditions.
    let own_uid = unsafe { libc::geteuid() };
    let answer = Arc::new(answer);
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let refusals = Arc::new(Mutex::new(RefusalLog {
        last: None,
        suppressed: 0,
    }));
    loop {
        let (stream, _) = listener.accept().await.map_err(io)?;
        let cred = stream.peer_cred().ok();
        if !cred.is_some_and(|c| uid_allowed(c.uid(), own_uid)) {
            refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .warn(cred.map(|c| c.uid()), cred.and_then(|c| c.pid()));
            let _ = stream.try_write(&answer_line(&Response::Error {
                message: "permission denied: only root and the daemon's user may use this socket"
                    .into(),
            }));
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(&answer_line(&Response::Error {
                message: format!("busy: {MAX_CLIENTS} control clients already connected"),
            }));
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (read, mut write) = stream.into_split();
            let served = tokio::time::timeout(REQUEST_TIME_LIMIT, async {
                let response = match read_request(read).await {
                    Ok(req) => {
                        let answer = answer.clone();
                        tokio::task::spawn_blocking(move || answer(req))
                            .await
                            .unwrap_or_else(|e| Response::Error {
                                message: format!("the request failed: {e}"),
                            })
                    }
                    Err(message) => Response::Error { message },
                };
                write.write_all(&answer_line(&response)).await
            })
            .await;
            match served {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("control socket: writing the answer: {e}"),
                Err(_) => tracing::warn!(
                    "control socket: request not served within {REQUEST_TIME_LIMIT:?}; closed"
                ),
            }
        });
    }
}

fn answer_line(response: &Response) -> Vec<u8> {
    let mut out = serde_json::to_vec(response).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Sends one request to the daemon at `path` and returns its answer.
pub async fn request(path: &Path, req: &Request) -> Result<Response, CtlError> {
    let io = |source| CtlError::Io {
        path: path.to_owned(),
        source,
    };
    let exchange = async {
        let stream = UnixStream::connect(path).await.map_err(io)?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(req).map_err(|source| CtlError::Json {
            path: path.to_owned(),
            source,
        })?;
        line.push(b'\n');
        // A refused client is answered at once and closed: a failed write
        // still leaves the answer to read.
        let _ = write.write_all(&line).await;
        let mut lines = BufReader::new(read).lines();
        let answer = lines
            .next_line()
            .await
            .map_err(io)?
            .ok_or_else(|| CtlError::NoAnswer {
                path: path.to_owned(),
            })?;
        serde_json::from_str(&answer).map_err(|source| CtlError::Json {
            path: path.to_owned(),
            source,
        })
    };
    // The daemon's own limit, plus the time to reach it.
    let limit = REQUEST_TIME_LIMIT + Duration::from_secs(2);
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| CtlError::Timeout {
            path: path.to_owned(),
            limit,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn info() -> SessionInfo {
        SessionInfo {
            user: Some("alice".into()),
            peer: Ipv4Addr::new(198, 18, 0, 2),
            call_id: 4711,
            peer_call_id: 1,
            client_addr: Some(Ipv4Addr::new(198, 19, 0, 2)),
            uptime_secs: 12,
            rx_packets: 3,
            rx_bytes: 300,
            tx_packets: 4,
            tx_bytes: 400,
            mppe: None,
            path: DataPath::Xdp,
            acct_session_id: "5f5e1000-1267-00000000".into(),
            state: State::Up,
            rate: None,
        }
    }

    fn socket_path(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pptp-ctl-{}-{name}", std::process::id()));
        (dir.join("ctl.sock"), dir)
    }

    async fn first_answer(path: &Path, req: &Request) -> Response {
        for _ in 0..200 {
            if let Ok(a) = request(path, req).await {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the socket never answered");
    }

    #[tokio::test]
    async fn request_and_answer_over_the_socket() {
        let (path, dir) = socket_path("answer");
        let server = {
            let path = path.clone();
            tokio::spawn(async move {
                serve(&path, |req| match req {
                    Request::Sessions => Response::Sessions {
                        sessions: vec![info()],
                    },
                    Request::Stats => Response::Stats {
                        counters: vec![("frames".into(), 7)],
                    },
                    other => Response::Error {
                        message: format!("{other:?}"),
                    },
                })
                .await
            })
        };
        assert_eq!(
            first_answer(&path, &Request::Sessions).await,
            Response::Sessions {
                sessions: vec![info()]
            }
        );
        assert_eq!(
            request(&path, &Request::Stats).await.unwrap(),
            Response::Stats {
                counters: vec![("frames".into(), 7)]
            }
        );
        // Mode 0600: the socket is not for other users.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        server.abort();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_oversized_request_is_refused() {
        let (path, dir) = socket_path("limits");
        let server = {
            let path = path.clone();
            tokio::spawn(async move { serve(&path, |_| Response::Terminated { count: 0 }).await })
        };
        first_answer(&path, &Request::Stat).await;
        // More than MAX_REQUEST bytes without a newline: refused without
        // reading the rest.
        let mut stream = UnixStream::connect(&path).await.unwrap();
        let big = vec![b'x'; MAX_REQUEST * 4];
        let _ = stream.write_all(&big).await;
        let mut answer = String::new();
        let _ = BufReader::new(&mut stream).read_line(&mut answer).await;
        assert!(answer.contains("longer than 4096"), "{answer}");
        let _ = std::fs::remove_dir_all(dir);
        server.abort();
    }

    #[tokio::test]
    async fn clients_beyond_the_bound_are_told_busy() {
        let (path, dir) = socket_path("busy");
        let server = {
            let path = path.clone();
            tokio::spawn(async move { serve(&path, |_| Response::Terminated { count: 0 }).await })
        };
        first_answer(&path, &Request::Stat).await;
        // MAX_CLIENTS clients that send nothing hold every slot (accepted,
        // and their slots taken, in order before the next client).
        let mut idle = Vec::new();
        for _ in 0..MAX_CLIENTS {
            idle.push(UnixStream::connect(&path).await.unwrap());
        }
        match request(&path, &Request::Stat).await {
            Ok(Response::Error { message }) => assert!(message.contains("busy"), "{message}"),
            other => panic!("expected busy, got {other:?}"),
        }
        // A slot frees when a client goes (once its task has seen it go).
        drop(idle.pop());
        let mut answer = None;
        for _ in 0..500 {
            match request(&path, &Request::Stat).await {
                Ok(Response::Error { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => {
                    answer = Some(other.unwrap());
                    break;
                }
            }
        }
        assert_eq!(answer, Some(Response::Terminated { count: 0 }));
        server.abort();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn requests_parse_with_their_bounds() {
        assert_eq!(
            parse_request(b"{\"cmd\":\"sessions\"}\n"),
            Ok(Request::Sessions)
        );
        assert_eq!(
            parse_request(
                br#"{"cmd":"list","filters":[{"user":"alice"},{"ip":"198.19.0.2"},{"state":"up"}],"order":"rx"}"#
            ),
            Ok(Request::List {
                filters: vec![
                    Filter::User("alice".into()),
                    Filter::Ip(Ipv4Addr::new(198, 19, 0, 2)),
                    Filter::State(State::Up)
                ],
                order: Some(Order::Rx)
            })
        );
        assert_eq!(
            parse_request(br#"{"cmd":"terminate","target":"all","mode":"hard"}"#),
            Ok(Request::Terminate {
                target: Target::All,
                mode: Mode::Hard
            })
        );
        assert_eq!(
            parse_request(br#"{"cmd":"terminate","target":{"peer":"198.18.0.2"},"mode":"soft"}"#),
            Ok(Request::Terminate {
                target: Target::Peer(Ipv4Addr::new(198, 18, 0, 2)),
                mode: Mode::Soft
            })
        );
        // A terminate without a target is not "all".
        assert!(parse_request(br#"{"cmd":"terminate","mode":"soft"}"#).is_err());
        assert!(parse_request(b"").unwrap_err().contains("empty"));
        assert!(parse_request(b"{\"cmd\":\"format_disk\"}").is_err());
        let mut long = br#"{"cmd":"show","session":""#.to_vec();
        long.resize(MAX_REQUEST + 10, b'a');
        assert!(parse_request(&long).unwrap_err().contains("longer than"));
        // Every request round-trips through JSON.
        for req in [
            Request::Stat,
            Request::Reload,
            Request::Shutdown { mode: Mode::Soft },
            Request::Show {
                session: "5f5e1000-1267-00000000".into(),
            },
        ] {
            let line = serde_json::to_vec(&req).unwrap();
            assert_eq!(parse_request(&line), Ok(req));
        }
    }

    #[test]
    fn command_line_filters_and_targets_parse() {
        assert_eq!("user=bob".parse(), Ok(Filter::User("bob".into())));
        assert_eq!(
            "peer=198.18.0.2".parse(),
            Ok(Filter::Peer(Ipv4Addr::new(198, 18, 0, 2)))
        );
        assert_eq!("state=ending".parse(), Ok(Filter::State(State::Ending)));
        assert!("ip=not-an-address".parse::<Filter>().is_err());
        assert!("colour=blue".parse::<Filter>().is_err());
        assert!("alice".parse::<Filter>().is_err());
        assert_eq!("all".parse(), Ok(Target::All));
        assert_eq!(
            "5f5e1000-1267-00000000".parse(),
            Ok(Target::Sid("5f5e1000-1267-00000000".into()))
        );
        assert_eq!(
            "ip=198.19.0.9".parse(),
            Ok(Target::Ip(Ipv4Addr::new(198, 19, 0, 9)))
        );
        assert!("state=up".parse::<Target>().is_err());
        assert_eq!("hard".parse(), Ok(Mode::Hard));
        assert!("gentle".parse::<Mode>().is_err());
    }

    #[test]
    fn only_root_and_the_daemons_user_are_allowed() {
        assert!(uid_allowed(0, 1000));
        assert!(uid_allowed(1000, 1000));
        assert!(!uid_allowed(65534, 1000));
        assert!(!uid_allowed(65534, 0));
    }

    #[tokio::test]
    async fn missing_daemon_names_the_socket() {
        let err = request(Path::new("/nonexistent/pptp.sock"), &Request::Sessions)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pptp.sock"), "{err}");
    }
}
