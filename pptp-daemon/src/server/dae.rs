//! The dynamic-authorization listener (RFC 5176, `[radius.dae]`): one UDP
//! socket, one task. Datagrams from sources not in `clients` are dropped
//! and counted; the rest go through the sans-IO [`Dae`], whose decision
//! this task carries out on the concentrator (terminate, or a new session
//! deadline) before sending the answer.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use tokio::net::UdpSocket;

use super::{Call, Shared};
use crate::{
    auth::radius::{
        dae::{Action, Dae, DaeSession, NasIdentity, Outcome},
        packet::MAX_LEN,
    },
    config::DaeConfig,
    proto::end::EndReason,
};

/// Binds the listener (at start, so that a wrong address fails the start).
pub async fn bind(config: &DaeConfig) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(config.listen).await
}

/// The sessions as [`Dae`] matches them: Acct-Session-Id from the call,
/// user and address from the concentrator.
fn sessions(shared: &Shared) -> Vec<DaeSession> {
    let calls: Vec<Arc<Call>> = shared
        .calls
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let core = shared.core();
    calls
        .iter()
        .filter_map(|c| {
            let e = core.session(c.session)?;
            Some(DaeSession {
                id: c.session,
                acct_session_id: c.acct_session_id.clone(),
                user: e.user.clone(),
                address: e.address,
            })
        })
        .collect()
}

/// Serves Disconnect-Requests and CoA-Requests on `socket` until the task
/// is aborted.
pub async fn run(shared: Arc<Shared>, socket: UdpSocket, config: DaeConfig) {
    let clients: Vec<IpAddr> = config.clients.iter().map(|ip| ip.to_canonical()).collect();
    let live = shared.live();
    let mut dae = Dae::new(
        config.secret.as_bytes(),
        NasIdentity {
            nas_identifier: live.config.radius.nas_identifier.clone(),
            nas_ip_address: live.config.radius.nas_ip_address,
        },
    );
    tracing::info!(listen = %config.listen, clients = ?clients, "RADIUS dynamic authorization (RFC 5176) listening");
    let mut buf = vec![0u8; MAX_LEN + 1];
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("dynamic authorization receive: {e}");
                continue;
            }
        };
        let stats = &shared.stats;
        if !clients.contains(&source.ip().to_canonical()) {
            stats.dae_dropped_source.fetch_add(1, Ordering::Relaxed);
            warn(
                &shared,
                source,
                format_args!(
                    "dynamic authorization request from a source not in radius.dae.clients: dropped"
                ),
            );
            continue;
        }
        let now = Instant::now();
        let outcome = dae.handle_datagram(now, source, &buf[..len], || sessions(&shared));
        let response = match outcome {
            Outcome::Drop(reason) => {
                stats.dae_dropped_invalid.fetch_add(1, Ordering::Relaxed);
                warn(
                    &shared,
                    source,
                    format_args!("dynamic authorization request dropped: {reason}"),
                );
                continue;
            }
            Outcome::Duplicate(response) => {
                stats.dae_duplicates.fetch_add(1, Ordering::Relaxed);
                response
            }
            Outcome::Answer {
                request,
                decision,
                response,
            } => {
                match decision.error_cause {
                    None => stats.dae_acks.fetch_add(1, Ordering::Relaxed),
                    Some(_) => stats.dae_naks.fetch_add(1, Ordering::Relaxed),
                };
                tracing::info!(
                    %source,
                    kind = ?request.kind,
                    user = ?request.user_name,
                    acct_session_id = ?request.acct_session_id,
                    framed_ip = ?request.framed_ip_address,
                    error_cause = ?decision.error_cause,
                    action = ?decision.action,
                    "dynamic authorization"
                );
                match decision.action {
                    Action::None => {}
                    Action::Disconnect(ids) => {
                        {
                            let mut core = shared.core();
                            for id in ids {
                                core.terminate(id, EndReason::AdminReset);
                            }
                        }
                        shared.dispatch();
                    }
                    Action::SessionTimeout(ids, timeout) => {
                        let deadline = timeout.and_then(|t| now.checked_add(t));
                        let mut core = shared.core();
                        for id in ids {
                            core.set_session_deadline(now, id, deadline);
                        }
                    }
                }
                response
            }
        };
        if let Err(e) = socket.send_to(&response, source).await {
            tracing::debug!(%source, "dynamic authorization answer: {e}");
        }
    }
}

/// A rate-limited warning about a source (per address for IPv4).
fn warn(shared: &Shared, source: SocketAddr, message: std::fmt::Arguments<'_>) {
    match source.ip().to_canonical() {
        IpAddr::V4(v4) => shared.warn_peer(v4, message),
        IpAddr::V6(_) => tracing::debug!(%source, "{message}"),
    }
}
