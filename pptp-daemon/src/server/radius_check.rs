//! `--check-config` for the RADIUS section: every configured
//! authentication server (with `auth.backend = "radius"`) and accounting
//! server (with `radius.accounting`) is asked with Status-Server (RFC 5997,
//! [`crate::auth::radius::status`]) using the configured timeout and
//! retries. One line per server: answered in N ms, no answer (with what
//! came back instead), or unreachable (the route lookup or the send
//! failed, e.g. ENETUNREACH). The secrets themselves were checked when the
//! configuration was parsed (1 to 128 bytes, field named).

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::net::UdpSocket;

use crate::{
    auth::{
        radius::{
            packet::ResponseError,
            status::{NO_ANSWER_HINT, Port, StatusRequest},
        },
        random::{RandomSource, os_random},
    },
    config::{AuthBackend, Config},
};

/// What one probe found.
#[derive(Debug)]
pub enum Outcome {
    /// A valid answer this long after the request it answers was sent.
    Answered(Duration),
    /// No valid answer to `tries` requests. `refused`: an ICMP port
    /// unreachable came back (nothing listens there); `invalid`: answers
    /// came that did not verify (a wrong secret, usually).
    NoAnswer {
        tries: u32,
        refused: bool,
        invalid: Option<ResponseError>,
    },
    /// The socket could not be connected or the request not sent.
    Unreachable(io::Error),
}

/// One server's probe, as printed.
#[derive(Debug)]
pub struct Probe {
    /// `radius.servers[i]`.
    pub field: String,
    pub port: Port,
    pub address: SocketAddr,
    pub outcome: Outcome,
}

impl Probe {
    pub fn answered(&self) -> bool {
        matches!(self.outcome, Outcome::Answered(_))
    }

    /// The report line (without a leading `#`).
    pub fn line(&self) -> String {
        let what = format!(
            "RADIUS {} server {} ({})",
            self.port.name(),
            self.address,
            self.field
        );
        match &self.outcome {
            Outcome::Answered(rtt) => {
                format!("{what}: answered Status-Server in {} ms", rtt.as_millis())
            }
            Outcome::NoAnswer {
                tries,
                refused,
                invalid,
            } => {
                let why = match (refused, invalid) {
                    (_, Some(ResponseError::MissingMessageAuthenticator)) => {
                        "it answers without Message-Authenticator, and the daemon drops such \
                         answers (BlastRADIUS, CVE-2024-3596), Access-Accepts included; \
                         FreeRADIUS before 3.2.5 needs `update reply { Message-Authenticator \
                         := 0x00 }` in post-auth and in `Autz-Type Status-Server`"
                            .to_owned()
                    }
                    (_, Some(e)) => format!(
                        "answers did not verify ({e}): is the secret the one the server has \
                         for this client?"
                    ),
                    (true, None) => "ICMP port unreachable: nothing listens on that port; is the \
                                     server running?"
                        .to_owned(),
                    (false, None) => NO_ANSWER_HINT.to_owned(),
                };
                format!("{what}: no answer to {tries} Status-Server request(s); {why}")
            }
            Outcome::Unreachable(e) => format!("{what}: unreachable: {}", describe(e)),
        }
    }
}

/// An I/O error with the errno name operators search for.
fn describe(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ENETUNREACH) => "ENETUNREACH, no route to that network",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH, no route to that host",
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL, no local address to reach it from",
        Some(libc::EACCES) | Some(libc::EPERM) => "a firewall refused the packet",
        _ => return e.to_string(),
    };
    format!("{e} ({name})")
}

/// Asks `address` (a server's `port`) with Status-Server, `retries + 1`
/// tries of `timeout` each, each a new request (RFC 5997 section 4); an
/// answer to any try counts.
pub async fn probe(
    address: SocketAddr,
    port: Port,
    secret: &[u8],
    nas_identifier: &str,
    timeout: Duration,
    retries: u32,
    random: &RandomSource,
) -> Outcome {
    let bind: SocketAddr = if address.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return Outcome::Unreachable(e),
    };
    // connect(2) on UDP looks the route up: ENETUNREACH shows here.
    if let Err(e) = socket.connect(address).await {
        return Outcome::Unreachable(e);
    }
    let mut first_id = [0u8; 1];
    random(&mut first_id);
    let mut sent: Vec<(StatusRequest, Instant)> = Vec::new();
    let mut refused = false;
    let mut invalid = None;
    let mut buf = vec![0u8; 4096];
    for attempt in 0..=retries {
        let mut authenticator = [0u8; 16];
        random(&mut authenticator);
        let identifier = first_id[0].wrapping_add(attempt as u8);
        let request = match StatusRequest::new(identifier, authenticator, secret, nas_identifier) {
            Ok(r) => r,
            Err(e) => return Outcome::Unreachable(io::Error::other(e.to_string())),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        match socket.send(&request.bytes).await {
            Ok(_) => sent.push((request, Instant::now())),
            // The ICMP error of an earlier try, reported on this send.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                refused = true;
                tokio::time::sleep_until(deadline).await;
                continue;
            }
            Err(e) => return Outcome::Unreachable(e),
        }
        loop {
            let received = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
                Ok(Err(e)) => return Outcome::Unreachable(e),
                Ok(Ok(n)) => &buf[..n],
            };
            for (request, at) in &sent {
                match request.check_answer(received, port, secret) {
                    Ok(()) => return Outcome::Answered(at.elapsed()),
                    Err(ResponseError::WrongIdentifier { .. }) => {}
                    Err(e) => invalid = Some(e),
                }
            }
        }
    }
    Outcome::NoAnswer {
        tries: retries + 1,
        refused,
        invalid,
    }
}

/// Probes every server the configuration uses, all at once; in
/// configuration order, authentication before accounting.
pub async fn probe_all(config: &Config) -> Vec<Probe> {
    let radius = &config.radius;
    let timeout = Duration::from_millis(radius.timeout_ms.max(1));
    let random = os_random();
    let mut targets = Vec::new();
    for (i, server) in radius.servers.iter().enumerate() {
        let field = format!("radius.servers[{i}]");
        if config.auth.backend == AuthBackend::Radius {
            targets.push((field.clone(), Port::Authentication, server.address, server));
        }
        if config.accounting_policy().is_some() {
            targets.push((field, Port::Accounting, server.accounting_address(), server));
        }
    }
    let probes = targets.iter().map(|(_, port, address, server)| {
        probe(
            *address,
            *port,
            server.secret.as_bytes(),
            &radius.nas_identifier,
            timeout,
            radius.retries,
            &random,
        )
    });
    let outcomes = futures::future::join_all(probes).await;
    targets
        .into_iter()
        .zip(outcomes)
        .map(|((field, port, address, _), outcome)| Probe {
            field,
            port,
            address,
            outcome,
        })
        .collect()
}

/// `--check-config`'s RADIUS part: prints one `# ` line per server and
/// fails when any does not answer.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let probes = runtime.block_on(probe_all(config));
    for p in &probes {
        println!("# {}", p.line());
    }
    let failed: Vec<String> = probes
        .iter()
        .filter(|p| !p.answered())
        .map(|p| format!("{} {}", p.port.name(), p.address))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "RADIUS server(s) not answering: {}; {NO_ANSWER_HINT}",
            failed.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_line(outcome: Outcome) -> String {
        Probe {
            field: "radius.servers[1]".into(),
            port: Port::Accounting,
            address: "192.0.2.10:1813".parse().unwrap(),
            outcome,
        }
        .line()
    }

    #[test]
    fn lines_name_the_server_and_say_why() {
        assert_eq!(
            probe_line(Outcome::Answered(Duration::from_millis(12))),
            "RADIUS accounting server 192.0.2.10:1813 (radius.servers[1]): answered \
             Status-Server in 12 ms"
        );
        let unreachable = probe_line(Outcome::Unreachable(io::Error::from_raw_os_error(
            libc::ENETUNREACH,
        )));
        assert!(
            unreachable.starts_with(
                "RADIUS accounting server 192.0.2.10:1813 (radius.servers[1]): unreachable: "
            ) && unreachable.contains("ENETUNREACH"),
            "{unreachable}"
        );
        let silent = probe_line(Outcome::NoAnswer {
            tries: 3,
            refused: false,
            invalid: None,
        });
        assert!(
            silent.contains("no answer to 3 Status-Server request(s)")
                && silent.contains("status_server = yes"),
            "{silent}"
        );
        let refused = probe_line(Outcome::NoAnswer {
            tries: 3,
            refused: true,
            invalid: None,
        });
        assert!(refused.contains("nothing listens"), "{refused}");
        let wrong_secret = probe_line(Outcome::NoAnswer {
            tries: 3,
            refused: false,
            invalid: Some(ResponseError::BadResponseAuthenticator),
        });
        assert!(wrong_secret.contains("is the secret"), "{wrong_secret}");
        let unsigned = probe_line(Outcome::NoAnswer {
            tries: 3,
            refused: false,
            invalid: Some(ResponseError::MissingMessageAuthenticator),
        });
        assert!(
            unsigned.contains("Message-Authenticator := 0x00"),
            "{unsigned}"
        );
    }
}
