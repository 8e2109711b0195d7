//! One task per control connection (RFC 2637 section 3): TCP bytes in and
//! out of the sans-IO `proto::control::ControlConnection`, a session task
//! started for every call it connects, and the goodbyes on shutdown.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::{Call, CallInput, Counters, Shared, session};
use crate::{
    proto::control::{ControlConnection, ControlEvent},
    wire::pptp::StopReason,
};

/// How long sessions get to say goodbye (LCP Terminate) on shutdown before
/// the control connection ends them.
const SESSION_GOODBYE: Duration = Duration::from_millis(1500);

/// Runs one control connection until it closes.
pub async fn run(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: Ipv4Addr,
    local: Ipv4Addr,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = shared.config.control_settings();
    let mut conn =
        ControlConnection::server(settings, Box::new(shared.call_ids.clone()), Instant::now());
    let (to_control, mut from_sessions) = mpsc::channel::<session::ToControl>(256);
    let mut calls: HashMap<u16, Arc<Call>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; 4096];
    let mut eof = false;
    let mut shutting_down = false;
    let mut goodbye_deadline: Option<tokio::time::Instant> = None;
    tracing::debug!(%peer, "control connection");

    loop {
        // Events before bytes: a call is registered before the
        // Outgoing-Call-Reply that announces it goes out, since the client
        // sends its first GRE frame as soon as it reads the reply.
        loop {
            while let Some(event) = conn.poll_event() {
                match event {
                    ControlEvent::Established(info) => {
                        tracing::info!(%peer, host = %info.host_name.to_string_lossy(), vendor = %info.vendor_string.to_string_lossy(), "control connection established");
                    }
                    ControlEvent::CallConnected(info) => {
                        let (input_tx, input_rx) = mpsc::channel(256);
                        let call = Arc::new(Call {
                            peer,
                            local,
                            call_id: info.our_call_id,
                            peer_call_id: info.peer_call_id,
                            started: Instant::now(),
                            input: input_tx,
                            data: RwLock::new(None),
                            user: Mutex::new(None),
                            counters: Counters::default(),
                        });
                        shared
                            .calls
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert((peer, info.our_call_id), call.clone());
                        calls.insert(info.our_call_id, call.clone());
                        tracing::info!(%peer, call_id = info.our_call_id, peer_call_id = info.peer_call_id, "call connected");
                        tasks.spawn(session::run(
                            shared.clone(),
                            call,
                            input_rx,
                            to_control.clone(),
                        ));
                    }
                    ControlEvent::CallEnded { call, reason } => {
                        tracing::info!(%peer, call_id = call.our_call_id, ?reason, "call ended");
                        if let Some(c) = calls.remove(&call.our_call_id) {
                            let _ = c
                                .input
                                .try_send(CallInput::LowerDown(format!("call ended: {reason:?}")));
                        }
                    }
                    ControlEvent::CallRejected {
                        peer_call_id,
                        result,
                        ..
                    } => {
                        tracing::warn!(%peer, peer_call_id, ?result, "call refused");
                    }
                    ControlEvent::CallFailed {
                        our_call_id,
                        reason,
                    } => {
                        tracing::debug!(%peer, our_call_id, ?reason, "call failed");
                    }
                    ControlEvent::LinkInfo {
                        our_call_id,
                        send_accm,
                        receive_accm,
                    } => {
                        tracing::debug!(%peer, our_call_id, send_accm, receive_accm, "Set-Link-Info");
                    }
                    ControlEvent::WanError {
                        our_call_id,
                        report,
                    } => {
                        tracing::warn!(%peer, our_call_id, ?report, "WAN-Error-Notify");
                    }
                    ControlEvent::Ignored { message, reason } => {
                        tracing::debug!(%peer, ?message, "ignored: {reason}");
                    }
                    ControlEvent::Closed(reason) => {
                        tracing::info!(%peer, "control connection closed: {reason}");
                    }
                }
            }
            let Some(bytes) = conn.poll_transmit() else {
                break;
            };
            if let Err(e) = stream.write_all(&bytes).await {
                tracing::debug!(%peer, "control write: {e}");
                conn.handle_eof(Instant::now());
            }
        }
        if conn.is_closed() {
            break;
        }
        let timeout = conn.poll_timeout().map(tokio::time::Instant::from_std);
        let wake = match (timeout, goodbye_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            read = stream.read(&mut buf), if !eof => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => {
                        eof = true;
                        conn.handle_eof(now);
                    }
                    Ok(n) => conn.handle_bytes(now, &buf[..n]),
                }
            }
            Some(msg) = from_sessions.recv() => match msg {
                session::ToControl::Ended { call_id, reason } => {
                    if calls.remove(&call_id).is_some() {
                        tracing::debug!(%peer, call_id, "clearing call: {reason}");
                        let _ = conn.clear_call(Instant::now(), call_id);
                    }
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                for c in calls.values() {
                    let _ = c.input.try_send(CallInput::Close("the server is shutting down".into()));
                }
                goodbye_deadline = Some(tokio::time::Instant::now() + SESSION_GOODBYE);
                if calls.is_empty() {
                    conn.close(Instant::now(), StopReason::StopLocalShutdown);
                    goodbye_deadline = None;
                }
            }
            _ = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                if goodbye_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                    goodbye_deadline = None;
                    conn.close(now, StopReason::StopLocalShutdown);
                } else {
                    conn.handle_timeout(now);
                }
            }
        }
        // During shutdown, once every session has said goodbye, stop.
        if shutting_down && goodbye_deadline.is_some() && calls.is_empty() {
            goodbye_deadline = None;
            conn.close(Instant::now(), StopReason::StopLocalShutdown);
        }
    }
    let _ = stream.shutdown().await;
    // Every remaining session ends with the connection.
    for c in calls.values() {
        let _ = c
            .input
            .try_send(CallInput::LowerDown("control connection closed".into()));
    }
    drop(to_control);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        tracing::warn!(%peer, "sessions did not end in time; aborting them");
        tasks.abort_all();
    }
}
