//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` units
//! (`contrib/systemd/pptp-xdp.service`): `READY=1` once the PPTP listener
//! and the control socket are up, `RELOADING=1` then `READY=1` around a
//! SIGHUP reload, `STOPPING=1` when shutdown begins. Nothing is sent
//! unless `NOTIFY_SOCKET` is set (systemd sets it for `Type=notify`).
//!
//! The `sd-notify` crate does the sending: a small, dependency-free
//! implementation of the datagram protocol, kept up to date (abstract
//! socket addresses, `MONOTONIC_USEC`), rather than our own copy of it.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    // `false`: keep NOTIFY_SOCKET for the later messages (the scripts do
    // not inherit it: their environment is cleared).
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("notifying the service manager: {e}");
    }
}

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The daemon accepts connections and answers on its control socket.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) begins; [`ready`] ends it.
pub fn reloading() {
    // systemd 253 and later want the time of the reload with it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}
