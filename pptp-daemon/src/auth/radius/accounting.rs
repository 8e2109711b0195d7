//! RADIUS accounting without I/O (RFC 2866; RFC 2869 for Event-Timestamp
//! and Acct-Interim-Interval): a bounded queue of [`Record`]s and their
//! delivery to the accounting servers.
//!
//! - Every record stays queued until a server answers it with a valid
//!   Accounting-Response, or until the queue overflows: a record is not
//!   lost when the servers are down for a while. A record that does not
//!   fit ([`Settings::capacity`]) is dropped and counted
//!   ([`AcctCounters::dropped_queue_full`]).
//! - At most [`Settings::window`] records are in flight at once, each with
//!   its own Identifier.
//! - A record goes to a server `1 + retries` times, each after a timeout
//!   that doubles from [`Settings::timeout`] up to [`MAX_BACKOFF`]; then
//!   the server is held down for `dead_time` and the record moves on to
//!   the next server, in configuration order, round and round: it is
//!   never given up.
//! - Each transmission carries Acct-Delay-Time, the whole seconds since
//!   the record was made (RFC 2866 section 5.2). When it changes, the
//!   packet is a new one: a new Identifier and so a new Request
//!   Authenticator (RFC 2866 section 5.2: "a new Identifier and Request
//!   Authenticator").
//!
//! Inputs: [`Accounting::enqueue`], [`Accounting::handle_datagram`],
//! [`Accounting::handle_timeout`]; outputs: [`Accounting::poll_transmit`],
//! [`Accounting::poll_timeout`]. The core never reads the clock.

use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use super::{
    client::Server,
    packet::{AccountingRequest, RequestAttribute, acct, check_accounting_response},
};

/// Longest wait between two transmissions of a record.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how accounting is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Accounting servers, in order of preference (each with its own
    /// secret).
    pub servers: Vec<Server>,
    /// First wait for an answer; doubles per retransmission.
    pub timeout: Duration,
    /// Retransmissions to one server before the next one is tried.
    pub retries: u32,
    /// Hold-down of a server that did not answer.
    pub dead_time: Duration,
    /// Most records queued (in flight included).
    pub capacity: usize,
    /// Most records in flight (at most 255: one Identifier each).
    pub window: usize,
}

/// The accounting policy of `[radius]`: delivery, Interim-Update
/// interval and what identifies this NAS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcctPolicy {
    pub delivery: Settings,
    /// Interim-Update every this long; `None`: none.
    pub interim_interval: Option<Duration>,
    pub nas_identifier: String,
    pub nas_ip_address: Option<Ipv4Addr>,
}

/// One accounting record (RFC 2866 section 4.1), without Acct-Delay-Time,
/// which is added per transmission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Acct-Status-Type (`acct::STATUS_*`).
    pub status: u32,
    pub attributes: Vec<RequestAttribute>,
    /// When the event happened (for Acct-Delay-Time).
    pub created: Instant,
}

impl Record {
    /// A record whose first attribute is Acct-Status-Type.
    pub fn new(status: u32, attributes: Vec<RequestAttribute>, created: Instant) -> Record {
        Record {
            status,
            attributes,
            created,
        }
    }

    /// The request as sent at `now`: Acct-Status-Type, the attributes,
    /// then Acct-Delay-Time.
    pub fn request(&self, now: Instant) -> AccountingRequest {
        let mut attributes = Vec::with_capacity(self.attributes.len() + 2);
        attributes.push(RequestAttribute::integer(
            acct::ACCT_STATUS_TYPE,
            self.status,
        ));
        attributes.extend(self.attributes.iter().cloned());
        attributes.push(RequestAttribute::integer(
            acct::ACCT_DELAY_TIME,
            self.delay(now),
        ));
        AccountingRequest { attributes }
    }

    fn delay(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.created).as_secs()).unwrap_or(u32::MAX)
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub server: usize,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// What happened, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcctCounters {
    /// Records accepted into the queue.
    pub enqueued: u64,
    /// Records answered by a server.
    pub answered: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records that could not be encoded (too long).
    pub dropped_unencodable: u64,
    /// Datagrams sent, first transmissions and retransmissions.
    pub transmissions: u64,
    pub retransmissions: u64,
    /// Servers marked dead (no answer to `1 + retries` transmissions).
    pub server_dead: u64,
    /// Answers dropped: unknown Identifier, wrong source, bad
    /// authenticator, malformed.
    pub bad_responses: u64,
}

#[derive(Debug)]
struct InFlight {
    record: Record,
    server: usize,
    identifier: u8,
    request_authenticator: [u8; 16],
    delay: u32,
    /// Transmissions to `server` so far.
    tries: u32,
    /// Transmissions in all, for the backoff.
    total_tries: u32,
    deadline: Instant,
}

/// The accounting queue and its delivery (see the module documentation).
#[derive(Debug)]
pub struct Accounting {
    settings: Settings,
    waiting: VecDeque<Record>,
    in_flight: Vec<InFlight>,
    next_identifier: u8,
    dead_until: Vec<Option<Instant>>,
    transmit: VecDeque<Transmit>,
    counters: AcctCounters,
}

impl Accounting {
    pub fn new(settings: Settings) -> Accounting {
        let servers = settings.servers.len();
        Accounting {
            settings,
            waiting: VecDeque::new(),
            in_flight: Vec::new(),
            next_identifier: 0,
            dead_until: vec![None; servers],
            transmit: VecDeque::new(),
            counters: AcctCounters::default(),
        }
    }

    pub fn counters(&self) -> AcctCounters {
        self.counters
    }

    /// Records queued or in flight.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a record; `false` (and counted) when the queue is full or
    /// there is no server.
    pub fn enqueue(&mut self, record: Record, now: Instant) -> bool {
        if self.len() >= self.settings.capacity || self.settings.servers.is_empty() {
            self.counters.dropped_queue_full += 1;
            return false;
        }
        self.counters.enqueued += 1;
        self.waiting.push_back(record);
        self.fill(now);
        true
    }

    /// A datagram from `source`: the answer to one in-flight record, or
    /// dropped and counted.
    pub fn handle_datagram(&mut self, source: SocketAddr, datagram: &[u8], now: Instant) {
        let Some(&identifier) = datagram.get(1) else {
            self.counters.bad_responses += 1;
            return;
        };
        let Some(i) = self.in_flight.iter().position(|f| {
            f.identifier == identifier && self.settings.servers[f.server].address == source
        }) else {
            self.counters.bad_responses += 1;
            return;
        };
        let f = &self.in_flight[i];
        let secret = &self.settings.servers[f.server].secret;
        match check_accounting_response(datagram, identifier, &f.request_authenticator, secret) {
            Ok(_) => {
                let f = self.in_flight.swap_remove(i);
                self.dead_until[f.server] = None;
                self.counters.answered += 1;
                self.fill(now);
            }
            Err(_) => self.counters.bad_responses += 1,
        }
    }

    /// Retransmits or fails over whatever waited long enough.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].deadline <= now)
            .collect();
        for i in due {
            let server = self.in_flight[i].server;
            if self.in_flight[i].tries > self.settings.retries {
                // This server had its chances: hold it down, next one.
                if self.dead_until[server].is_none_or(|t| t <= now) {
                    self.counters.server_dead += 1;
                }
                self.dead_until[server] = Some(now + self.settings.dead_time);
                let next = self.next_server(server, now);
                let f = &mut self.in_flight[i];
                f.server = next;
                f.tries = 0;
            }
            self.counters.retransmissions += 1;
            self.send(i, now);
        }
        self.fill(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// When [`Accounting::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.iter().map(|f| f.deadline).min()
    }

    /// The first server after `after` (round and round) that is not held
    /// down; `after + 1` when every server is.
    fn next_server(&self, after: usize, now: Instant) -> usize {
        let n = self.settings.servers.len();
        (1..=n)
            .map(|k| (after + k) % n)
            .find(|&s| self.dead_until[s].is_none_or(|t| t <= now))
            .unwrap_or((after + 1) % n)
    }

    fn first_server(&self, now: Instant) -> usize {
        let n = self.settings.servers.len();
        (0..n)
            .find(|&s| self.dead_until[s].is_none_or(|t| t <= now))
            .unwrap_or(0)
    }

    /// Starts waiting records while the window has room.
    fn fill(&mut self, now: Instant) {
        let window = self.settings.window.clamp(1, 255);
        while self.in_flight.len() < window {
            let Some(record) = self.waiting.pop_front() else {
                return;
            };
            let server = self.first_server(now);
            self.in_flight.push(InFlight {
                record,
                server,
                identifier: 0,
                request_authenticator: [0; 16],
                delay: u32::MAX,
                tries: 0,
                total_tries: 0,
                deadline: now,
            });
            let i = self.in_flight.len() - 1;
            if !self.send(i, now) {
                self.in_flight.swap_remove(i);
            }
        }
    }

    /// An Identifier no record in flight uses.
    fn fresh_identifier(&mut self) -> u8 {
        loop {
            let id = self.next_identifier;
            self.next_identifier = self.next_identifier.wrapping_add(1);
            if !self.in_flight.iter().any(|f| f.identifier == id) {
                return id;
            }
        }
    }

    /// Sends record `i` to its server; `false` when it cannot be encoded
    /// (counted; the caller drops it).
    fn send(&mut self, i: usize, now: Instant) -> bool {
        let delay = self.in_flight[i].record.delay(now);
        let server = self.in_flight[i].server;
        // Same packet again (RFC 5080 section 2.2.1) unless the delay or
        // the server changed: then a new Identifier and authenticator.
        let same = self.in_flight[i].delay == delay && self.in_flight[i].tries > 0;
        if !same {
            let id = self.fresh_identifier();
            self.in_flight[i].identifier = id;
        }
        let f = &self.in_flight[i];
        let secret = &self.settings.servers[server].secret;
        let Ok(payload) = f.record.request(now).emit(f.identifier, secret) else {
            self.counters.dropped_unencodable += 1;
            return false;
        };
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&payload[4..20]);
        let backoff = self
            .settings
            .timeout
            .saturating_mul(1u32 << f.total_tries.min(16))
            .min(MAX_BACKOFF);
        let f = &mut self.in_flight[i];
        f.request_authenticator = authenticator;
        f.delay = delay;
        f.tries += 1;
        f.total_tries += 1;
        f.deadline = now + backoff;
        self.counters.transmissions += 1;
        self.transmit.push_back(Transmit {
            server,
            destination: self.settings.servers[server].address,
            payload,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    //! On a simulated clock: `now` is passed in, nothing sleeps.

    use super::*;
    use crate::auth::radius::packet::{Code, Packet, attr, emit_response};

    fn server(port: u16, secret: &str) -> Server {
        Server {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn settings(servers: Vec<Server>, capacity: usize) -> Settings {
        Settings {
            servers,
            timeout: Duration::from_secs(1),
            retries: 2,
            dead_time: Duration::from_secs(30),
            capacity,
            window: 4,
        }
    }

    fn stop(now: Instant) -> Record {
        Record::new(
            acct::STATUS_STOP,
            vec![
                RequestAttribute::plain(attr::USER_NAME, "alice"),
                RequestAttribute::plain(acct::ACCT_SESSION_ID, "5f5e1000-0001-00000001"),
            ],
            now,
        )
    }

    fn delay_of(payload: &[u8]) -> u32 {
        Packet::new_checked(payload)
            .unwrap()
            .attributes()
            .find(|a| a.kind == acct::ACCT_DELAY_TIME)
            .and_then(|a| a.as_u32())
            .expect("Acct-Delay-Time")
    }

    /// The Accounting-Response a server with `secret` sends to `request`.
    fn answer(request: &[u8], secret: &str) -> Vec<u8> {
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&request[4..20]);
        emit_response(
            Code::AccountingResponse,
            request[1],
            &auth,
            secret.as_bytes(),
            &[],
            false,
        )
    }

    fn drain(a: &mut Accounting) -> Vec<Transmit> {
        std::iter::from_fn(|| a.poll_transmit()).collect()
    }

    #[test]
    fn request_authenticator_is_rfc_2866_md5() {
        let t0 = Instant::now();
        let bytes = stop(t0).request(t0).emit(7, b"secret").unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.code(), Code::AccountingRequest);
        assert_eq!(p.identifier(), 7);
        let mut zeroed = bytes.clone();
        zeroed[4..20].fill(0);
        let mut md5 = <md5::Md5 as md5::Digest>::new();
        md5::Digest::update(&mut md5, &zeroed);
        md5::Digest::update(&mut md5, b"secret");
        let expected: [u8; 16] = md5::Digest::finalize(md5).into();
        assert_eq!(p.authenticator(), expected);
        let kinds: Vec<u8> = p.attributes().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                acct::ACCT_STATUS_TYPE,
                attr::USER_NAME,
                acct::ACCT_SESSION_ID,
                acct::ACCT_DELAY_TIME
            ]
        );
    }

    #[test]
    fn accounting_response_checks_code_identifier_authenticator_and_optional_message_authenticator()
    {
        use crate::auth::radius::packet::{ResponseError, check_accounting_response};
        let t0 = Instant::now();
        let request = stop(t0).request(t0).emit(9, b"s1").unwrap();
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&request[4..20]);
        let ok = |code, with_ma| emit_response(code, 9, &auth, b"s1", &[], with_ma);
        assert!(
            check_accounting_response(&ok(Code::AccountingResponse, false), 9, &auth, b"s1")
                .is_ok()
        );
        assert!(
            check_accounting_response(&ok(Code::AccountingResponse, true), 9, &auth, b"s1").is_ok()
        );
        assert_eq!(
            check_accounting_response(&ok(Code::AccessAccept, false), 9, &auth, b"s1").err(),
            Some(ResponseError::UnexpectedCode(Code::AccessAccept))
        );
        assert_eq!(
            check_accounting_response(&ok(Code::AccountingResponse, false), 8, &auth, b"s1").err(),
            Some(ResponseError::WrongIdentifier { got: 9, want: 8 })
        );
        assert_eq!(
            check_accounting_response(&ok(Code::AccountingResponse, false), 9, &auth, b"s2").err(),
            Some(ResponseError::BadResponseAuthenticator)
        );
        // A Message-Authenticator, when present, must be right: corrupt it
        // and recompute the Response Authenticator over the result.
        let mut bad = ok(Code::AccountingResponse, true);
        bad[25] ^= 1;
        bad[4..20].copy_from_slice(&auth);
        let mut md5 = <md5::Md5 as md5::Digest>::new();
        md5::Digest::update(&mut md5, &bad);
        md5::Digest::update(&mut md5, b"s1");
        let response_auth: [u8; 16] = md5::Digest::finalize(md5).into();
        bad[4..20].copy_from_slice(&response_auth);
        assert_eq!(
            check_accounting_response(&bad, 9, &auth, b"s1").err(),
            Some(ResponseError::BadMessageAuthenticator)
        );
    }

    #[test]
    fn an_answered_record_leaves_the_queue() {
        let t0 = Instant::now();
        let mut a = Accounting::new(settings(vec![server(1813, "s1")], 10));
        assert!(a.enqueue(stop(t0), t0));
        let sent = drain(&mut a);
        assert_eq!(sent.len(), 1);
        assert_eq!(delay_of(&sent[0].payload), 0);
        // A forged answer (wrong secret) is dropped; the record stays.
        a.handle_datagram(sent[0].destination, &answer(&sent[0].payload, "x"), t0);
        assert_eq!(a.len(), 1);
        assert_eq!(a.counters().bad_responses, 1);
        // From the wrong source: dropped too.
        let other = SocketAddr::from(([127, 0, 0, 9], 1813));
        a.handle_datagram(other, &answer(&sent[0].payload, "s1"), t0);
        assert_eq!(a.len(), 1);
        a.handle_datagram(sent[0].destination, &answer(&sent[0].payload, "s1"), t0);
        assert!(a.is_empty());
        assert_eq!(a.counters().answered, 1);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn retransmissions_grow_acct_delay_time_with_a_new_identifier_and_authenticator() {
        let t0 = Instant::now();
        let mut a = Accounting::new(settings(vec![server(1813, "s1")], 10));
        a.enqueue(stop(t0), t0);
        let first = drain(&mut a).remove(0);
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        a.handle_timeout(t1);
        let second = drain(&mut a).remove(0);
        assert_eq!(delay_of(&second.payload), 1);
        assert_ne!(second.payload[1], first.payload[1], "new Identifier");
        assert_ne!(
            second.payload[4..20],
            first.payload[4..20],
            "new authenticator"
        );
        // Backoff: the next wait is twice as long.
        assert_eq!(a.poll_timeout(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        a.handle_timeout(t2);
        let third = drain(&mut a).remove(0);
        assert_eq!(delay_of(&third.payload), 3);
        assert_eq!(a.counters().retransmissions, 2);
        // The answer to an older transmission does not count; the last does.
        a.handle_datagram(third.destination, &answer(&first.payload, "s1"), t2);
        assert_eq!(a.len(), 1);
        a.handle_datagram(third.destination, &answer(&third.payload, "s1"), t2);
        assert!(a.is_empty());
    }

    #[test]
    fn a_silent_server_fails_over_to_the_next_and_is_held_down() {
        let t0 = Instant::now();
        let mut a = Accounting::new(settings(vec![server(1813, "s1"), server(1815, "s2")], 10));
        a.enqueue(stop(t0), t0);
        let mut now = t0;
        let mut to_first = 0;
        let last = loop {
            let sent = drain(&mut a);
            assert_eq!(sent.len(), 1);
            if sent[0].server == 1 {
                break sent.into_iter().next().unwrap();
            }
            to_first += 1;
            now = a.poll_timeout().unwrap();
            a.handle_timeout(now);
        };
        assert_eq!(to_first, 3, "1 + retries transmissions to the first");
        assert_eq!(a.counters().server_dead, 1);
        a.handle_datagram(last.destination, &answer(&last.payload, "s2"), now);
        assert!(a.is_empty());
        // The next record skips the held-down server.
        a.enqueue(stop(now), now);
        assert_eq!(drain(&mut a)[0].server, 1);
    }

    #[test]
    fn a_record_survives_every_server_down_for_a_while() {
        let t0 = Instant::now();
        let mut a = Accounting::new(settings(vec![server(1813, "s1"), server(1815, "s2")], 10));
        a.enqueue(stop(t0), t0);
        let mut now = t0;
        let mut last = drain(&mut a).remove(0);
        // Ten minutes of silence from both servers.
        while now < t0 + Duration::from_secs(600) {
            now = a.poll_timeout().expect("still waiting");
            assert!(now - t0 <= Duration::from_secs(600) + MAX_BACKOFF);
            a.handle_timeout(now);
            last = drain(&mut a).remove(0);
        }
        assert_eq!(a.len(), 1, "the record is still queued");
        assert!(delay_of(&last.payload) >= 600);
        let secret = if last.server == 0 { "s1" } else { "s2" };
        a.handle_datagram(last.destination, &answer(&last.payload, secret), now);
        assert!(a.is_empty());
        assert_eq!(a.counters().answered, 1);
        assert_eq!(a.counters().dropped_queue_full, 0);
    }

    #[test]
    fn queue_overflow_is_counted_and_the_window_bounds_what_is_in_flight() {
        let t0 = Instant::now();
        let mut a = Accounting::new(settings(vec![server(1813, "s1")], 6));
        for _ in 0..6 {
            assert!(a.enqueue(stop(t0), t0));
        }
        assert!(!a.enqueue(stop(t0), t0));
        assert!(!a.enqueue(stop(t0), t0));
        assert_eq!(a.counters().dropped_queue_full, 2);
        assert_eq!(a.len(), 6);
        let sent = drain(&mut a);
        assert_eq!(sent.len(), 4, "window of 4");
        let ids: std::collections::HashSet<u8> = sent.iter().map(|t| t.payload[1]).collect();
        assert_eq!(ids.len(), 4, "one Identifier each");
        // One answer makes room: the next waiting record goes out.
        a.handle_datagram(sent[2].destination, &answer(&sent[2].payload, "s1"), t0);
        assert_eq!(drain(&mut a).len(), 1);
        assert_eq!(a.len(), 5);
        assert!(a.enqueue(stop(t0), t0));
    }
}
