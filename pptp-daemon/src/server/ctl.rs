//! The local control socket: `pptp-daemon sessions` asks the running daemon
//! for its session list over a Unix socket. One JSON request line in, one
//! JSON response line out.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

/// A request on the control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The session list.
    Sessions,
    /// The global counters of the XDP program and the userspace path.
    Stats,
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

/// One session as `pptp-daemon sessions` shows it.
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
    /// CoA requests (RFC 5176) name the session by.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub acct_session_id: String,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Sessions { sessions: Vec<SessionInfo> },
    Stats { counters: Vec<(String, u64)> },
    Error { message: String },
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
}

/// Listens on `path` (replacing a stale socket file) and answers each
/// request with `answer`. Runs until the task is dropped.
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
    let answer = std::sync::Arc::new(answer);
    loop {
        let (stream, _) = listener.accept().await.map_err(io)?;
        let answer = answer.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let response = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => answer(req),
                    Err(e) => Response::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                let mut out = serde_json::to_string(&response).unwrap_or_default();
                out.push('\n');
                if write.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Sends one request to the daemon at `path` and returns its answer.
pub async fn request(path: &Path, req: &Request) -> Result<Response, CtlError> {
    let io = |source| CtlError::Io {
        path: path.to_owned(),
        source,
    };
    let stream = UnixStream::connect(path).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(|source| CtlError::Json {
        path: path.to_owned(),
        source,
    })?;
    line.push('\n');
    write.write_all(line.as_bytes()).await.map_err(io)?;
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
}

/// The session list as a table for humans.
pub fn format_sessions(sessions: &[SessionInfo]) -> String {
    let mut out = format!(
        "{:<16} {:<15} {:>6} {:>6} {:<15} {:>8} {:>10} {:>12} {:>10} {:>12} {:<18} {}\n",
        "USER",
        "PEER",
        "CALL",
        "PEER#",
        "CLIENT",
        "UPTIME",
        "RX PKTS",
        "RX BYTES",
        "TX PKTS",
        "TX BYTES",
        "MPPE",
        "PATH"
    );
    for s in sessions {
        out.push_str(&format!(
            "{:<16} {:<15} {:>6} {:>6} {:<15} {:>7}s {:>10} {:>12} {:>10} {:>12} {:<18} {}\n",
            s.user.as_deref().unwrap_or("-"),
            s.peer,
            s.call_id,
            s.peer_call_id,
            s.client_addr.map_or("-".to_owned(), |a| a.to_string()),
            s.uptime_secs,
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            s.mppe.as_deref().unwrap_or("none"),
            match s.path {
                DataPath::Xdp => "xdp",
                DataPath::Userspace => "userspace",
                DataPath::Negotiating => "negotiating",
            },
        ));
    }
    out.push_str(&format!("{} session(s)\n", sessions.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SessionInfo {
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
        }
    }

    #[tokio::test]
    async fn request_and_answer_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("pptp-ctl-{}", std::process::id()));
        let path = dir.join("ctl.sock");
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
                })
                .await
            })
        };
        let mut answer = None;
        for _ in 0..100 {
            match request(&path, &Request::Sessions).await {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        assert_eq!(
            answer,
            Some(Response::Sessions {
                sessions: vec![info()]
            })
        );
        assert_eq!(
            request(&path, &Request::Stats).await.unwrap(),
            Response::Stats {
                counters: vec![("frames".into(), 7)]
            }
        );
        server.abort();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn table_shows_every_field() {
        let t = format_sessions(&[info()]);
        for needle in [
            "alice",
            "198.18.0.2",
            "4711",
            "198.19.0.2",
            "12s",
            "300",
            "400",
            "none",
            "xdp",
            "1 session(s)",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }

    #[tokio::test]
    async fn missing_daemon_names_the_socket() {
        let err = request(Path::new("/nonexistent/pptp.sock"), &Request::Sessions)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pptp.sock"), "{err}");
    }
}
