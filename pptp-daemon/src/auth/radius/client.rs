//! The RADIUS client without I/O: one [`Transaction`] per Access-Request,
//! with per-try timeout, retransmission, failover and a dead-server
//! hold-down ([`Health`]); and [`run_blocking`], its thin driver over
//! `std::net::UdpSocket`.
//!
//! A transaction tries the servers in [`Health::order`]: those not held
//! down, in configuration order (all of them, in order, when every one is
//! held down). It sends the request to a server, retransmits the same
//! datagram (same Identifier and Request Authenticator, RFC 5080 section
//! 2.2.1) `retries` times, each after `timeout` without a valid answer,
//! then reports the server dead ([`Event::ServerDead`]) and moves on with a
//! new Identifier and Request Authenticator (the packet depends on the
//! secret, which is per server). Datagrams from elsewhere, with another
//! Identifier, a bad Response Authenticator or a missing or bad
//! Message-Authenticator are dropped and reported ([`Event::Dropped`]);
//! the wait goes on.
//!
//! Each transaction has its own socket in the driver, so the Identifier
//! space (256 per socket) is never shared; the number of transactions in
//! flight is bounded by the caller (`super::RadiusVerifier`).

use std::{
    collections::VecDeque,
    fmt,
    net::{SocketAddr, UdpSocket},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::packet::{AccessRequest, Code, ResponseError, check_response};
use crate::auth::random::RandomSource;

/// One RADIUS server: address and shared secret. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    pub address: SocketAddr,
    pub secret: Vec<u8>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The client's policy (`[radius]` of the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// In order of preference.
    pub servers: Vec<Server>,
    /// Wait for an answer per transmission (`timeout_ms`).
    pub timeout: Duration,
    /// Retransmissions per server before failing over (`retries`).
    pub retries: u32,
    /// Hold-down of a server that did not answer (`dead_time_secs`).
    pub dead_time: Duration,
}

/// Which servers are held down, and until when. Shared by all
/// transactions (behind a mutex in the verifier); sans-IO.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    dead_until: Vec<Option<Instant>>,
}

impl Health {
    pub fn new(servers: usize) -> Health {
        Health {
            dead_until: vec![None; servers],
        }
    }

    fn is_dead(&self, server: usize, now: Instant) -> bool {
        self.dead_until
            .get(server)
            .copied()
            .flatten()
            .is_some_and(|t| now < t)
    }

    /// The servers to try: those not held down, in order; every server,
    /// in order, when all are held down.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let alive: Vec<usize> = (0..self.dead_until.len())
            .filter(|&i| !self.is_dead(i, now))
            .collect();
        if alive.is_empty() {
            (0..self.dead_until.len()).collect()
        } else {
            alive
        }
    }

    /// A transaction's event: a dead server is held down until `now +
    /// dead_time`, a server that answered is alive again.
    pub fn apply(&mut self, event: &Event, now: Instant, dead_time: Duration) {
        match *event {
            Event::ServerDead { server } => {
                if let Some(slot) = self.dead_until.get_mut(server) {
                    *slot = Some(now + dead_time);
                }
            }
            Event::Answered { server, .. } => {
                if let Some(slot) = self.dead_until.get_mut(server) {
                    *slot = None;
                }
            }
            _ => {}
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Index into [`ClientSettings::servers`].
    pub server: usize,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// What a [`Transaction`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A valid answer: the checked datagram, with what decoding it needs
    /// (the Request Authenticator for RFC 2548 key decryption).
    Answered {
        server: usize,
        response: Vec<u8>,
        request_authenticator: [u8; 16],
    },
    /// The server did not answer `1 + retries` transmissions.
    ServerDead { server: usize },
    /// A datagram was dropped; the wait goes on.
    Dropped {
        server: Option<usize>,
        reason: DropReason,
    },
    /// Every server was tried; no answer.
    Exhausted,
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not from the server the request went to.
    UnexpectedSource,
    Invalid(ResponseError),
}

/// The lifetime of one Access-Request (see the module documentation).
pub struct Transaction {
    settings: Arc<ClientSettings>,
    request: AccessRequest,
    random: RandomSource,
    order: Vec<usize>,
    position: usize,
    identifier: u8,
    authenticator: [u8; 16],
    packet: Vec<u8>,
    transmissions: u32,
    deadline: Option<Instant>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("order", &self.order)
            .field("position", &self.position)
            .field("transmissions", &self.transmissions)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// Starts: the first datagram goes to `order[0]` (from
    /// [`Health::order`]). An empty order, or a request that cannot be
    /// encoded, is [`Event::Exhausted`] at once.
    pub fn new(
        settings: Arc<ClientSettings>,
        request: AccessRequest,
        order: Vec<usize>,
        random: RandomSource,
        now: Instant,
    ) -> Transaction {
        let mut t = Transaction {
            settings,
            request,
            random,
            order,
            position: 0,
            identifier: 0,
            authenticator: [0; 16],
            packet: Vec::new(),
            transmissions: 0,
            deadline: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.start_server(now);
        t
    }

    fn current(&self) -> Option<(usize, &Server)> {
        let index = *self.order.get(self.position)?;
        Some((index, self.settings.servers.get(index)?))
    }

    /// Builds the packet for the server at `position` and sends it, or
    /// reports exhaustion.
    fn start_server(&mut self, now: Instant) {
        loop {
            let Some((index, server)) = self.current() else {
                self.deadline = None;
                self.events.push_back(Event::Exhausted);
                return;
            };
            let (address, secret) = (server.address, server.secret.clone());
            let mut id = [0u8; 17];
            (self.random)(&mut id);
            self.identifier = id[0];
            self.authenticator.copy_from_slice(&id[1..]);
            match self
                .request
                .emit(self.identifier, &self.authenticator, &secret)
            {
                Ok(packet) => {
                    self.packet = packet;
                    self.transmissions = 1;
                    self.deadline = Some(now + self.settings.timeout);
                    self.transmit.push_back(Transmit {
                        server: index,
                        destination: address,
                        payload: self.packet.clone(),
                    });
                    return;
                }
                Err(_) => {
                    // Cannot happen for one server and not another (sizes
                    // do not depend on the secret); end here.
                    self.order.truncate(self.position);
                }
            }
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let _ = now;
        let Some((index, server)) = self.current() else {
            return;
        };
        if self.deadline.is_none() {
            return;
        }
        if from != server.address {
            self.events.push_back(Event::Dropped {
                server: None,
                reason: DropReason::UnexpectedSource,
            });
            return;
        }
        match check_response(
            datagram,
            self.identifier,
            &self.authenticator,
            &server.secret,
        ) {
            Ok(packet) => {
                let response = packet.as_bytes().to_vec();
                debug_assert!(packet.code() != Code::AccessRequest);
                self.deadline = None;
                self.events.push_back(Event::Answered {
                    server: index,
                    response,
                    request_authenticator: self.authenticator,
                });
            }
            Err(reason) => self.events.push_back(Event::Dropped {
                server: Some(index),
                reason: DropReason::Invalid(reason),
            }),
        }
    }

    /// The deadline of [`Self::poll_timeout`] has passed: retransmit, or
    /// fail over to the next server.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        let Some((index, destination)) = self.current().map(|(i, s)| (i, s.address)) else {
            return;
        };
        if self.transmissions <= self.settings.retries {
            self.transmissions += 1;
            self.deadline = Some(now + self.settings.timeout);
            self.transmit.push_back(Transmit {
                server: index,
                destination,
                payload: self.packet.clone(),
            });
            return;
        }
        self.events.push_back(Event::ServerDead { server: index });
        self.position += 1;
        self.start_server(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// How a blocking run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        server: usize,
        response: Vec<u8>,
        request_authenticator: [u8; 16],
        /// Datagrams sent to the server that answered (1 + its
        /// retransmissions).
        transmissions: u32,
        /// From the last of them to the answer.
        rtt: Duration,
    },
    /// No server answered (or no socket could be opened).
    NoAnswer,
}

/// Runs a transaction on blocking UDP sockets (one per address family,
/// bound to an ephemeral port) until it ends. Meant for a blocking thread
/// (`Verifier::verify` runs in `tokio::task::spawn_blocking`). Events go
/// to `on_event` as they come (health updates, dropped datagrams).
pub fn run_blocking(
    mut transaction: Transaction,
    mut on_event: impl FnMut(&Event, Instant),
) -> Outcome {
    let mut v4: Option<UdpSocket> = None;
    let mut v6: Option<UdpSocket> = None;
    let mut buf = vec![0u8; super::packet::MAX_LEN];
    // The server last sent to, when, and how many times in a row.
    let mut last_sent: Option<(usize, Instant)> = None;
    let mut transmissions = 0u32;
    loop {
        while let Some(t) = transaction.poll_transmit() {
            if last_sent.map(|(server, _)| server) != Some(t.server) {
                transmissions = 0;
            }
            transmissions = transmissions.saturating_add(1);
            last_sent = Some((t.server, Instant::now()));
            let slot = if t.destination.is_ipv4() {
                &mut v4
            } else {
                &mut v6
            };
            if slot.is_none() {
                let bind: SocketAddr = if t.destination.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                match UdpSocket::bind(bind) {
                    Ok(s) => *slot = Some(s),
                    Err(e) => tracing::warn!("RADIUS: cannot open a UDP socket: {e}"),
                }
            }
            if let Some(s) = slot
                && let Err(e) = s.send_to(&t.payload, t.destination)
            {
                tracing::debug!(server = %t.destination, "RADIUS: send: {e}");
            }
        }
        while let Some(event) = transaction.poll_event() {
            on_event(&event, Instant::now());
            match event {
                Event::Answered {
                    server,
                    response,
                    request_authenticator,
                } => {
                    let rtt = last_sent.map_or(Duration::ZERO, |(_, at)| at.elapsed());
                    return Outcome::Answered {
                        server,
                        response,
                        request_authenticator,
                        transmissions,
                        rtt,
                    };
                }
                Event::Exhausted => return Outcome::NoAnswer,
                _ => {}
            }
        }
        let Some(deadline) = transaction.poll_timeout() else {
            return Outcome::NoAnswer;
        };
        let now = Instant::now();
        let wait = deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        // The socket of the server being waited for.
        let socket = match transaction.current().map(|(_, s)| s.address.is_ipv4()) {
            Some(true) => v4.as_ref(),
            Some(false) => v6.as_ref(),
            None => None,
        };
        let Some(socket) = socket else {
            std::thread::sleep(wait);
            transaction.handle_timeout(Instant::now());
            continue;
        };
        let _ = socket.set_read_timeout(Some(wait));
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => transaction.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                transaction.handle_timeout(Instant::now());
            }
            // Another error (e.g. ICMP reported on the socket): do not
            // spin on it until the deadline.
            Err(e) => {
                tracing::debug!("RADIUS: receive: {e}");
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                transaction.handle_timeout(Instant::now());
            }
        }
    }
}

/// Applies transaction events to shared [`Health`].
pub fn update_health(health: &Mutex<Health>, event: &Event, now: Instant, dead_time: Duration) {
    health
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .apply(event, now, dead_time);
}
