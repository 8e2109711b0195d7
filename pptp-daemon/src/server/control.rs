//! One task per control connection (RFC 2637 section 3): TCP bytes in and
//! out of the sans-IO `proto::control::ControlConnection`, a session task
//! started for every call it connects, and the goodbyes on shutdown.
//!
//! The concentrator decides (call IDs and every limit: calls per
//! connection, sessions, sessions still starting); this task only moves
//! bytes and timers. Every write has a time limit, so a peer that does not
//! read cannot hold the task: the connection ends with
//! [`EndReason::WriteTimeout`] and its sessions with it.

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

use super::{
    Call, Counters, Shared,
    registry::{Command, acct_session_id},
    session::{self, SessionGuard, ToControl},
};
use crate::{
    logsafe::Escaped,
    proto::{
        concentrator::{ConnectionCalls, ConnectionId},
        control::{CallEndReason, CloseReason, ControlConnection, ControlEvent},
        end::EndReason,
    },
    wire::pptp::StopReason,
};

/// How long sessions get to say goodbye (LCP Terminate) on shutdown before
/// the control connection ends them.
const SESSION_GOODBYE: Duration = Duration::from_millis(1500);

/// Frames from the data path a session may have queued; beyond this they
/// are dropped and counted (the peer is the one filling the queue).
const SESSION_QUEUE: usize = 256;

/// Owns a control connection's place in the concentrator (its share of the
/// per-source and starting limits): dropping it gives the place back, and
/// tells the concentrator that the connection's sessions lost their link.
pub struct ConnectionGuard {
    shared: Arc<Shared>,
    id: ConnectionId,
}

impl ConnectionGuard {
    pub fn new(shared: Arc<Shared>, id: ConnectionId) -> Self {
        Self { shared, id }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared
            .core()
            .handle_disconnect(Instant::now(), self.id);
        self.shared.dispatch();
    }
}

/// What ends the calls of a connection that closed.
fn end_reason(reason: &CloseReason) -> EndReason {
    match reason {
        CloseReason::PeerStop(_) => EndReason::ControlStopped,
        CloseReason::PeerEof => EndReason::ControlClosed,
        CloseReason::EchoTimeout { .. } => EndReason::ControlEchoTimeout,
        CloseReason::SetupTimeout => EndReason::SetupTimeout,
        CloseReason::Malformed(_) => EndReason::ControlMalformed,
        CloseReason::StartRefused { .. } => EndReason::NegotiationFailed,
        CloseReason::LocalStop | CloseReason::LocalStopTimeout | CloseReason::LocalAbort => {
            EndReason::Shutdown
        }
    }
}

/// Runs one control connection until it closes.
pub async fn run(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: Ipv4Addr,
    local: Ipv4Addr,
    guard: ConnectionGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = shared.live().settings.control.clone();
    let write_timeout = shared.core().limits().write_timeout;
    let mut conn = ControlConnection::server(
        settings,
        Box::new(ConnectionCalls::new(shared.core.clone(), guard.id)),
        Instant::now(),
    );
    let (to_control, mut from_sessions) = mpsc::unbounded_channel::<ToControl>();
    let mut calls: HashMap<u16, Arc<Call>> = HashMap::new();
    // Calls whose control connection closed under them; the reason follows.
    let mut orphaned: Vec<u16> = Vec::new();
    // Calls aborted (`ctl terminate .. hard`) whose end is still to come.
    let mut aborted: std::collections::HashSet<u16> = std::collections::HashSet::new();
    let mut ended: Option<EndReason> = None;
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; 4096];
    let mut eof = false;
    let mut shutting_down = false;
    let mut goodbye_deadline: Option<tokio::time::Instant> = None;
    tracing::debug!(%peer, "control connection");

    'connection: loop {
        // Events before bytes: a call is registered before the
        // Outgoing-Call-Reply that announces it goes out, since the client
        // sends its first GRE frame as soon as it reads the reply.
        loop {
            while let Some(event) = conn.poll_event() {
                match event {
                    ControlEvent::Established(info) => {
                        tracing::info!(
                            %peer,
                            host = %Escaped::new(info.host_name.text()),
                            vendor = %Escaped::new(info.vendor_string.text()),
                            "control connection established"
                        );
                    }
                    ControlEvent::CallConnected(info) => {
                        let Some(session) = shared.core().session_by_call(info.our_call_id) else {
                            // The concentrator gave this ID: it knows it.
                            tracing::error!(%peer, call_id = info.our_call_id, "call unknown to the concentrator");
                            let _ = conn.clear_call(Instant::now(), info.our_call_id);
                            continue;
                        };
                        shared.core().set_peer_call_id(session, info.peer_call_id);
                        let (input_tx, input_rx) = mpsc::channel(SESSION_QUEUE);
                        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
                        let call = Arc::new(Call {
                            peer,
                            local,
                            call_id: info.our_call_id,
                            peer_call_id: info.peer_call_id,
                            session,
                            started: Instant::now(),
                            acct_session_id: acct_session_id(shared.boot_secs, session),
                            input: input_tx,
                            commands: commands_tx,
                            data: RwLock::new(None),
                            user: Mutex::new(None),
                            counters: Counters::default(),
                            negotiated: Mutex::new(None),
                        });
                        let guard = SessionGuard::register(
                            shared.clone(),
                            call.clone(),
                            to_control.clone(),
                        );
                        tracing::info!(%peer, call_id = info.our_call_id, peer_call_id = info.peer_call_id, sid = %call.acct_session_id, "call connected");
                        calls.insert(info.our_call_id, call);
                        tasks.spawn(session::run(guard, input_rx, commands_rx));
                    }
                    ControlEvent::CallEnded { call, reason } => {
                        // The session's id and user, as its own lines carry them.
                        let (sid, user) =
                            calls
                                .get(&call.our_call_id)
                                .map_or_else(Default::default, |c| {
                                    let user =
                                        c.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
                                    (c.acct_session_id.clone(), user.unwrap_or_default())
                                });
                        tracing::info!(%peer, call_id = call.our_call_id, %sid, user = %Escaped::new(&user), ?reason, "call ended");
                        let why = match reason {
                            CallEndReason::PeerCleared => Some(EndReason::CallCleared),
                            CallEndReason::ControlClosed => {
                                orphaned.push(call.our_call_id);
                                None
                            }
                            // We cleared it: its session has ended already,
                            // or is closing for its own reason.
                            _ => None,
                        };
                        if let Some(why) = why
                            && let Some(c) = calls.remove(&call.our_call_id)
                        {
                            c.command(Command::LowerDown(why));
                        }
                    }
                    ControlEvent::CallRejected {
                        peer_call_id,
                        result,
                        ..
                    } => {
                        shared.warn_peer(
                            peer,
                            format_args!("call {peer_call_id} refused: {result:?}"),
                        );
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
                        tracing::debug!(%peer, our_call_id, ?report, "WAN-Error-Notify");
                    }
                    ControlEvent::Ignored { message, reason } => {
                        tracing::debug!(%peer, ?message, "ignored: {reason}");
                    }
                    ControlEvent::Closed(reason) => {
                        let why = end_reason(&reason);
                        tracing::info!(%peer, %why, "control connection closed: {reason}");
                        ended.get_or_insert(why);
                        for id in orphaned.drain(..) {
                            if let Some(c) = calls.remove(&id) {
                                c.command(Command::LowerDown(why));
                            }
                        }
                    }
                }
            }
            let Some(bytes) = conn.poll_transmit() else {
                break;
            };
            match tokio::time::timeout(write_timeout, stream.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "control write: {e}");
                    conn.handle_eof(Instant::now());
                }
                Err(_) => {
                    // The peer does not read: nothing more goes out.
                    shared.warn_peer(
                        peer,
                        format_args!("peer did not read for {write_timeout:?}: closing"),
                    );
                    ended = Some(EndReason::WriteTimeout);
                    break 'connection;
                }
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
                    Ok(n) => {
                        // The concentrator hands out call IDs with the
                        // latest time it has seen.
                        shared.core().handle_timeout(now);
                        conn.handle_bytes(now, &buf[..n]);
                    }
                }
            }
            Some(msg) = from_sessions.recv() => match msg {
                ToControl::Ended { call_id, reason } => {
                    let ours = calls.remove(&call_id).is_some();
                    if aborted.remove(&call_id) && calls.is_empty() {
                        // `ctl terminate .. hard` of the connection's last
                        // call: TCP closes without goodbyes.
                        tracing::info!(%peer, call_id, "call aborted: closing the control connection without goodbyes");
                        ended = Some(reason);
                        break 'connection;
                    }
                    if ours {
                        tracing::debug!(%peer, call_id, %reason, "clearing call");
                        let _ = conn.clear_call(Instant::now(), call_id);
                    }
                    // An operator's terminate of the connection's last
                    // call ends the connection too (accel-ppp does the
                    // same): Stop-Control-Connection-Request.
                    if reason == EndReason::AdminReset && calls.is_empty() && !shutting_down {
                        tracing::debug!(%peer, "no call left after an administrative reset: stopping the control connection");
                        conn.close(Instant::now(), StopReason::None);
                    }
                }
                ToControl::Aborted { call_id } => {
                    aborted.insert(call_id);
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                for c in calls.values() {
                    c.command(Command::Close(EndReason::Shutdown));
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
    // A peer that does not read gets no goodbye: the socket just closes;
    // nor does one whose last call was aborted.
    if ended != Some(EndReason::WriteTimeout) && ended != Some(EndReason::AdminReset) {
        let _ = tokio::time::timeout(write_timeout, stream.shutdown()).await;
    }
    drop(stream);
    // Every remaining session ends with the connection.
    let why = ended.unwrap_or(EndReason::ControlClosed);
    for c in calls.values() {
        c.command(Command::LowerDown(why));
    }
    drop(to_control);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        tracing::warn!(%peer, "sessions did not end in time; aborting them");
        // Their guards release everything as the tasks are dropped.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    drop(guard);
}
