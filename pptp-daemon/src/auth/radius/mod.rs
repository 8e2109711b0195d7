//! RADIUS authentication back end (RFC 2865, with RFC 2548's Microsoft
//! attributes, RFC 2869/3579's Message-Authenticator and RFC 5080's
//! retransmission rules): a [`Verifier`] that turns [`Credentials`] into an
//! Access-Request and the answer into a [`Verdict`].
//!
//! Why our own codec: the crates checked (crates.io `radius` 0.4.0 and
//! `radius-rust` 0.4.4, December 2026) do not fit. `radius` has no
//! Microsoft (vendor 311) dictionary, no RFC 2548 salt decryption for
//! MS-MPPE-Send-Key/Recv-Key (only the tagged Tunnel-Password form), and
//! leaves Message-Authenticator's HMAC to the caller; `radius-rust` is
//! driven by dictionary files read at run time, looks attributes up by
//! name, and neither requires a Message-Authenticator on responses
//! (BlastRADIUS, CVE-2024-3596). What we need is small: [`packet`] (a
//! checked view, the request encoder, HMAC-MD5, the two password/key
//! hiding schemes) and [`client`] (a sans-IO transaction with failover).
//!
//! The Access-Request carries Message-Authenticator (first, on every
//! request), User-Name, NAS-Identifier, NAS-IP-Address (when configured),
//! NAS-Port-Type Virtual, Service-Type Framed, Framed-Protocol PPP,
//! Calling-Station-Id (the client's public address) and, per method:
//!
//! - PAP: User-Password (RFC 2865 section 5.2);
//! - CHAP-MD5: CHAP-Password (identifier + response) and CHAP-Challenge
//!   (RFC 2865 sections 5.3 and 5.40);
//! - MS-CHAPv1: MS-CHAP-Challenge (RFC 2548 section 2, vendor type 11)
//!   and MS-CHAP-Response (section 2.1.3, vendor type 1);
//! - MS-CHAPv2: MS-CHAP-Challenge and MS-CHAP2-Response (section 2.3.2,
//!   vendor type 25).
//!
//! NAS-Port (the call ID) is not sent: [`Verifier::verify`] is given the
//! source address and the credentials only. The MS-CHAP Ident octet is 0
//! (the credentials do not carry the CHAP Identifier; servers do not use
//! it to check the response, only echo it).
//!
//! Every answer must carry a valid Message-Authenticator (BlastRADIUS,
//! CVE-2024-3596); answers without one are dropped and counted
//! ([`RadiusStats::dropped_no_message_authenticator`]). FreeRADIUS 3.2.1
//! (Debian 12) sends none by default: `update reply { Message-Authenticator
//! := 0x00 }` in `post-auth` and `Post-Auth-Type REJECT` makes it compute
//! one (checked by hand against that version with PAP, CHAP-MD5, MS-CHAPv1
//! and MS-CHAPv2: `tests::real_server_sanity`, ignored by default).
//!
//! Answers:
//!
//! - Access-Accept: [`Accepted`] with Framed-IP-Address as the static
//!   address (255.255.255.254, "the NAS assigns", and 255.255.255.255, "the
//!   user chooses", give none: our pool), the MS-CHAPv2 Authenticator
//!   Response from MS-CHAP2-Success (RFC 2548 section 2.3.3) which the
//!   engine relays in its Success message, and MPPE keys: MS-MPPE-Send-Key
//!   and MS-MPPE-Recv-Key (RFC 2548 sections 2.4.2, 2.4.3) are the
//!   server-side MasterSendKey and MasterReceiveKey of RFC 3079 section 3
//!   ([`MppeMaterial::V2`]); MS-CHAP-MPPE-Keys (RFC 2548 section 2.4.1) for
//!   MS-CHAPv1 carries the LM key and the NT password hash hash
//!   ([`MppeMaterial::V1`]; FreeRADIUS leaves the LM key zero, so 40 and
//!   56-bit MS-CHAPv1 keys from it are not the client's).
//! - Access-Reject: [`Rejection`] from MS-CHAP-Error's `E=` (RFC 2548
//!   section 2.1.5): 646/647 restricted, 648 expired, 649 no dial-in, 691
//!   and anything else bad credentials. Access-Challenge is refused the
//!   same way (PPP has no place for it).
//! - No answer from any server: [`Rejection::BackendUnavailable`].
//!
//! Per-session reply attributes go to [`SessionAttributes`]:
//! Session-Timeout, Idle-Timeout and Acct-Interim-Interval (seconds; 0 means
//! none, values above [`MAX_ATTRIBUTE_SECONDS`] are capped), every Class
//! (echoed in accounting), Framed-MTU (64 to 65535, else ignored),
//! Framed-Pool (RFC 2869 section 5.18: the named pool of `ppp.pools` the
//! address comes from, unless Framed-IP-Address names one; a name with no
//! pool refuses the session when the address is assigned), the rate limit
//! from Mikrotik-Rate-Limit (vendor [`mikrotik::VENDOR_ID`]) or else
//! Filter-Id in accel-ppp's "down/up" kbit/s form (a Filter-Id that is not
//! a rate is ignored; see [`crate::proto::shaping`]).
//! Reply attributes the daemon cannot act on yet (Framed-IP-Netmask, ...)
//! and unknown attributes are logged once per type and ignored.
//!
//! Blocking: [`RadiusVerifier::verify`] runs a [`client::Transaction`] on
//! its own UDP socket with [`client::run_blocking`]; the daemon calls it in
//! `tokio::task::spawn_blocking`. At most [`MAX_IN_FLIGHT`] requests run at
//! once; more are refused as [`Rejection::BackendUnavailable`].

pub mod accounting;
pub mod client;
pub mod dae;
pub mod packet;
pub mod status;

#[cfg(test)]
mod tests;

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use self::{
    client::{ClientSettings, DropReason, Event, Health, Outcome, Transaction},
    packet::{AccessRequest, Code, Packet, RequestAttribute, ResponseError, attr, ms},
};
use super::{
    Accepted, AddressPolicy, Credentials, MppeMaterial, Rejection, SessionAttributes, Verdict,
    Verifier, random::RandomSource,
};
use crate::{
    logsafe::Escaped,
    wire::chap::{FailureCode, MsChapFailure, MsChapV2Success},
};

/// Requests in flight at most (each holds a blocking thread and a socket).
pub const MAX_IN_FLIGHT: usize = 256;

/// The longest Session-Timeout, Idle-Timeout or Acct-Interim-Interval we
/// take (about 68 years fit in the attribute; one year is plenty and keeps
/// `now + timeout` far from overflowing an `Instant`).
pub const MAX_ATTRIBUTE_SECONDS: u32 = 366 * 24 * 3600;

/// The smallest Framed-MTU we take (RFC 2865 section 5.12: 64 to 65535).
pub const MIN_FRAMED_MTU: u16 = 64;

/// Attribute types logged as ignored, at most (then silence).
const MAX_LOGGED_TYPES: usize = 1024;

/// What the RADIUS back end needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadiusSettings {
    /// NAS-Identifier (RFC 2865 section 5.32).
    pub nas_identifier: String,
    /// NAS-IP-Address (RFC 2865 section 5.4), if set.
    pub nas_ip_address: Option<Ipv4Addr>,
    pub client: ClientSettings,
}

/// Counters of the RADIUS back end.
#[derive(Debug, Default)]
pub struct RadiusStats {
    pub requests: AtomicU64,
    pub accepts: AtomicU64,
    pub rejects: AtomicU64,
    pub challenges: AtomicU64,
    /// Requests no server answered.
    pub no_answer: AtomicU64,
    /// Requests refused because [`MAX_IN_FLIGHT`] were running.
    pub overloaded: AtomicU64,
    /// Retransmission rounds that ended with a server marked dead.
    pub server_dead: AtomicU64,
    /// Responses dropped for a missing Message-Authenticator (BlastRADIUS).
    pub dropped_no_message_authenticator: AtomicU64,
    /// Responses dropped for a bad Message-Authenticator or Response
    /// Authenticator.
    pub dropped_bad_authenticator: AtomicU64,
    /// Other dropped datagrams (malformed, wrong identifier or source).
    pub dropped_other: AtomicU64,
    /// Per server, in configuration order.
    pub servers: Vec<ServerStats>,
}

/// Counters of one RADIUS server (authentication).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Access-Requests sent to it (first transmissions).
    pub requests: AtomicU64,
    pub retransmissions: AtomicU64,
    /// Requests it did not answer (`1 + retries` transmissions).
    pub timeouts: AtomicU64,
    /// Requests it answered (a checked response).
    pub answers: AtomicU64,
    /// From the last transmission to the answer.
    pub rtt: RttHistogram,
}

/// Upper bounds of the [`RttHistogram`] buckets, in seconds.
pub const RTT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Round-trip times: counts per bucket of [`RTT_BUCKETS`] (and above),
/// their sum and count; lock-free.
#[derive(Debug, Default)]
pub struct RttHistogram {
    buckets: [AtomicU64; RTT_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl RttHistogram {
    pub fn observe(&self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        let i = RTT_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(RTT_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The sum in seconds, the count, and each bucket's upper bound
    /// (`f64::INFINITY` last) with its own (not cumulative) count.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = RTT_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, buckets)
    }
}

/// The RADIUS [`Verifier`].
pub struct RadiusVerifier {
    settings: RadiusSettings,
    client: Arc<ClientSettings>,
    health: Mutex<Health>,
    random: RandomSource,
    in_flight: AtomicUsize,
    stats: RadiusStats,
    /// Attribute types already logged as not applied or unknown:
    /// (vendor, type), vendor 0 for standard attributes; at most
    /// [`MAX_LOGGED_TYPES`].
    logged: Mutex<HashSet<(u32, u8)>>,
}

impl fmt::Debug for RadiusVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusVerifier")
            .field("servers", &self.client.servers)
            .finish_non_exhaustive()
    }
}

impl RadiusVerifier {
    pub fn new(settings: RadiusSettings, random: RandomSource) -> RadiusVerifier {
        let client = Arc::new(settings.client.clone());
        let servers = client.servers.len();
        RadiusVerifier {
            health: Mutex::new(Health::new(client.servers.len())),
            client,
            settings,
            random,
            in_flight: AtomicUsize::new(0),
            stats: RadiusStats {
                servers: (0..servers).map(|_| ServerStats::default()).collect(),
                ..RadiusStats::default()
            },
            logged: Mutex::new(HashSet::new()),
        }
    }

    pub fn stats(&self) -> &RadiusStats {
        &self.stats
    }

    /// The servers' addresses, in configuration order (as
    /// [`RadiusStats::servers`]).
    pub fn server_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.client.servers.iter().map(|s| s.address).collect()
    }

    /// A transaction for these credentials, starting with the servers
    /// [`Health`] allows at `now` (for a driver of the caller's; `None`
    /// when the credentials do not fit in RADIUS attributes).
    pub fn transaction(
        &self,
        source: IpAddr,
        nas_port: Option<u16>,
        credentials: &Credentials,
        now: Instant,
    ) -> Option<Transaction> {
        let request = access_request(&self.settings, source, nas_port, credentials)?;
        let order = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order(now);
        Some(Transaction::new(
            self.client.clone(),
            request,
            order,
            self.random.clone(),
            now,
        ))
    }

    /// Applies a transaction's event: server health and counters.
    pub fn handle_event(&self, event: &Event, now: Instant) {
        client::update_health(&self.health, event, now, self.client.dead_time);
        let count = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        match event {
            Event::ServerDead { server } => {
                count(&self.stats.server_dead);
                if let Some(s) = self.stats.servers.get(*server) {
                    count(&s.requests);
                    count(&s.timeouts);
                    s.retransmissions
                        .fetch_add(u64::from(self.client.retries), Ordering::Relaxed);
                }
                if let Some(s) = self.client.servers.get(*server) {
                    tracing::warn!(server = %s.address, hold_down = ?self.client.dead_time, "RADIUS server did not answer");
                }
            }
            Event::Dropped { server, reason } => {
                let counter = match reason {
                    DropReason::Invalid(ResponseError::MissingMessageAuthenticator) => {
                        &self.stats.dropped_no_message_authenticator
                    }
                    DropReason::Invalid(
                        ResponseError::BadMessageAuthenticator
                        | ResponseError::BadResponseAuthenticator,
                    ) => &self.stats.dropped_bad_authenticator,
                    _ => &self.stats.dropped_other,
                };
                count(counter);
                let server = server
                    .and_then(|i| self.client.servers.get(i))
                    .map(|s| s.address);
                tracing::debug!(?server, ?reason, "RADIUS response dropped");
            }
            Event::Answered { .. } | Event::Exhausted => {}
        }
    }

    /// The verdict for a checked response to `credentials` (from
    /// [`Event::Answered`]).
    pub fn verdict(
        &self,
        credentials: &Credentials,
        server: usize,
        response: &[u8],
        request_authenticator: &[u8; 16],
    ) -> Verdict {
        let Some(server) = self.client.servers.get(server) else {
            return Verdict::Reject(Rejection::BackendUnavailable);
        };
        let Ok(packet) = Packet::new_checked(response) else {
            return Verdict::Reject(Rejection::BackendUnavailable);
        };
        let reply = Reply::parse(&packet, &server.secret, request_authenticator);
        for (vendor, kind) in &reply.ignored {
            self.log_once(*vendor, *kind);
        }
        let verdict = reply.verdict(credentials);
        let counter = match (packet.code(), &verdict) {
            (Code::AccessAccept, Verdict::Accept(_)) => &self.stats.accepts,
            (Code::AccessChallenge, _) => &self.stats.challenges,
            _ => &self.stats.rejects,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    fn log_once(&self, vendor: u32, kind: u8) {
        {
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            if logged.len() >= MAX_LOGGED_TYPES || !logged.insert((vendor, kind)) {
                return;
            }
        }
        match (vendor, attribute_name(vendor, kind)) {
            (_, Some(name)) => {
                tracing::info!("RADIUS reply attribute {name} is not applied yet; ignored")
            }
            (0, None) => tracing::info!("RADIUS reply attribute type {kind} unknown; ignored"),
            (v, None) => {
                tracing::info!("RADIUS reply attribute vendor {v} type {kind} unknown; ignored")
            }
        }
    }
}

/// Decrements the in-flight count when a request ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier for RadiusVerifier {
    fn verify(&self, source: IpAddr, credentials: &Credentials) -> Verdict {
        self.check(source, None, credentials)
    }

    fn verify_call(&self, source: IpAddr, call_id: u16, credentials: &Credentials) -> Verdict {
        self.check(source, Some(call_id), credentials)
    }

    fn radius(&self) -> Option<&RadiusVerifier> {
        Some(self)
    }
}

impl RadiusVerifier {
    /// One Access-Request and its verdict; `nas_port` is the call ID.
    fn check(&self, source: IpAddr, nas_port: Option<u16>, credentials: &Credentials) -> Verdict {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("RADIUS: {MAX_IN_FLIGHT} requests in flight; refused");
            return Verdict::Reject(Rejection::BackendUnavailable);
        }
        let _guard = InFlight(&self.in_flight);
        let Some(transaction) = self.transaction(source, nas_port, credentials, Instant::now())
        else {
            tracing::info!(user = %Escaped::new(credentials.user()), "credentials too long for RADIUS");
            return Verdict::Reject(Rejection::BadCredentials);
        };
        match client::run_blocking(transaction, |e, now| self.handle_event(e, now)) {
            Outcome::Answered {
                server,
                response,
                request_authenticator,
                transmissions,
                rtt,
            } => {
                if let Some(s) = self.stats.servers.get(server) {
                    s.requests.fetch_add(1, Ordering::Relaxed);
                    s.answers.fetch_add(1, Ordering::Relaxed);
                    s.retransmissions.fetch_add(
                        u64::from(transmissions.saturating_sub(1)),
                        Ordering::Relaxed,
                    );
                    s.rtt.observe(rtt);
                }
                self.verdict(credentials, server, &response, &request_authenticator)
            }
            Outcome::NoAnswer => {
                self.stats.no_answer.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(user = %Escaped::new(credentials.user()), "no RADIUS server answered");
                Verdict::Reject(Rejection::BackendUnavailable)
            }
        }
    }
}

/// The Access-Request for `credentials` from `source` on the call with our
/// call ID `nas_port` (NAS-Port, RFC 2865 section 5.5), or `None` when a
/// value does not fit (user name over 253 octets, password over 128).
pub fn access_request(
    settings: &RadiusSettings,
    source: IpAddr,
    nas_port: Option<u16>,
    credentials: &Credentials,
) -> Option<AccessRequest> {
    use RequestAttribute as A;
    let user = credentials.user().as_bytes();
    if user.len() > packet::MAX_VALUE_LEN {
        return None;
    }
    let mut attributes = vec![
        A::plain(attr::USER_NAME, user),
        A::plain(attr::NAS_IDENTIFIER, settings.nas_identifier.as_bytes()),
    ];
    if let Some(ip) = settings.nas_ip_address {
        attributes.push(A::plain(attr::NAS_IP_ADDRESS, ip.octets()));
    }
    if let Some(port) = nas_port {
        attributes.push(A::integer(attr::NAS_PORT, u32::from(port)));
    }
    attributes.extend([
        A::integer(attr::NAS_PORT_TYPE, attr::NAS_PORT_TYPE_VIRTUAL),
        A::integer(attr::SERVICE_TYPE, attr::SERVICE_TYPE_FRAMED),
        A::integer(attr::FRAMED_PROTOCOL, attr::FRAMED_PROTOCOL_PPP),
        A::plain(attr::CALLING_STATION_ID, source.to_string()),
    ]);
    match credentials {
        Credentials::Pap { password, .. } => {
            if password.len() > packet::MAX_PASSWORD_LEN {
                return None;
            }
            attributes.push(A::UserPassword(password.clone()));
        }
        Credentials::ChapMd5 {
            identifier,
            challenge,
            response,
            ..
        } => {
            if challenge.is_empty() || challenge.len() > packet::MAX_VALUE_LEN {
                return None;
            }
            let mut value = vec![*identifier];
            value.extend_from_slice(response);
            attributes.push(A::plain(attr::CHAP_PASSWORD, value));
            attributes.push(A::plain(attr::CHAP_CHALLENGE, challenge.clone()));
        }
        Credentials::MsChapV1 {
            challenge,
            lm_response,
            nt_response,
            use_nt_response,
            ..
        } => {
            // RFC 2548 section 2.1.3: Ident, Flags (1: use the NT
            // response), LM-Response, NT-Response.
            let mut value = vec![0, u8::from(*use_nt_response)];
            value.extend_from_slice(lm_response);
            value.extend_from_slice(nt_response);
            attributes.push(A::microsoft(ms::CHAP_CHALLENGE, challenge.to_vec()));
            attributes.push(A::microsoft(ms::CHAP_RESPONSE, value));
        }
        Credentials::MsChapV2 {
            authenticator_challenge,
            peer_challenge,
            nt_response,
            ..
        } => {
            // RFC 2548 section 2.3.2: Ident, Flags, Peer-Challenge,
            // Reserved (8 zero octets), Response.
            let mut value = vec![0, 0];
            value.extend_from_slice(peer_challenge);
            value.extend_from_slice(&[0; 8]);
            value.extend_from_slice(nt_response);
            attributes.push(A::microsoft(
                ms::CHAP_CHALLENGE,
                authenticator_challenge.to_vec(),
            ));
            attributes.push(A::microsoft(ms::CHAP2_RESPONSE, value));
        }
    }
    Some(AccessRequest { attributes })
}

/// What we read from a checked response.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub code: Option<Code>,
    /// Framed-IP-Address (RFC 2865 section 5.8).
    pub framed_ip_address: Option<Ipv4Addr>,
    /// MS-CHAP2-Success (RFC 2548 section 2.3.3): the Authenticator
    /// Response of its `S=` field.
    pub authenticator_response: Option<[u8; 20]>,
    /// MS-CHAP2-Success was present but not `Ident S=<40 hex>`.
    pub bad_success: bool,
    /// MS-CHAP-Error's `E=` (RFC 2548 section 2.1.5).
    pub error: Option<FailureCode>,
    /// MS-MPPE-Send-Key / MS-MPPE-Recv-Key, decrypted (RFC 2548 section
    /// 2.4.2, 2.4.3).
    pub send_key: Option<Vec<u8>>,
    pub recv_key: Option<Vec<u8>>,
    /// MS-CHAP-MPPE-Keys, decrypted (RFC 2548 section 2.4.1): LM key (8)
    /// and NT key (16).
    pub mschap_keys: Option<([u8; 8], [u8; 16])>,
    /// Session-Timeout, Idle-Timeout, Acct-Interim-Interval, Class,
    /// Framed-MTU.
    pub session: SessionAttributes,
    /// (vendor, type) of attributes not applied (vendor 0: standard).
    pub ignored: Vec<(u32, u8)>,
}

impl fmt::Debug for Reply {
    /// Keys are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("code", &self.code)
            .field("framed_ip_address", &self.framed_ip_address)
            .field("error", &self.error)
            .field("has_send_key", &self.send_key.is_some())
            .field("has_recv_key", &self.recv_key.is_some())
            .field("has_mschap_keys", &self.mschap_keys.is_some())
            .field("session", &self.session)
            .field("ignored", &self.ignored)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// Reads the attributes we act on; `secret` and the Request
    /// Authenticator decrypt the keys.
    pub fn parse(packet: &Packet<&[u8]>, secret: &[u8], request_authenticator: &[u8; 16]) -> Reply {
        let mut reply = Reply {
            code: Some(packet.code()),
            ..Reply::default()
        };
        let (mut filter_id, mut mikrotik_rate) = (None, None);
        for a in packet.attributes() {
            match a.kind {
                attr::MESSAGE_AUTHENTICATOR | attr::PROXY_STATE => {}
                // Echoed by the server; RFC 2865 section 5.33: not ours.
                attr::FRAMED_IP_ADDRESS => {
                    if let Ok(octets) = <[u8; 4]>::try_from(a.value) {
                        reply.framed_ip_address = Some(Ipv4Addr::from(octets));
                    }
                }
                attr::SERVICE_TYPE | attr::FRAMED_PROTOCOL | attr::REPLY_MESSAGE => {}
                attr::SESSION_TIMEOUT => reply.session.session_timeout = seconds(a.value),
                attr::IDLE_TIMEOUT => reply.session.idle_timeout = seconds(a.value),
                attr::ACCT_INTERIM_INTERVAL => {
                    reply.session.acct_interim_interval = seconds(a.value);
                }
                attr::CLASS => reply.session.class.push(a.value.to_vec()),
                // A name not valid UTF-8 matches no configured pool, so the
                // session is refused as for any unknown name.
                attr::FRAMED_POOL => {
                    reply.session.framed_pool = Some(String::from_utf8_lossy(a.value).into_owned());
                }
                attr::FRAMED_MTU => {
                    reply.session.framed_mtu = <[u8; 4]>::try_from(a.value)
                        .ok()
                        .map(u32::from_be_bytes)
                        .filter(|mtu| *mtu >= u32::from(MIN_FRAMED_MTU))
                        .map(|mtu| u16::try_from(mtu).unwrap_or(u16::MAX));
                }
                attr::FILTER_ID => filter_id = Some(a.value),
                attr::VENDOR_SPECIFIC => match a.vendor() {
                    Some((ms::VENDOR_ID, subs)) => {
                        for (kind, value) in subs {
                            reply.microsoft(kind, value, secret, request_authenticator);
                        }
                    }
                    Some((mikrotik::VENDOR_ID, subs)) => {
                        for (kind, value) in subs {
                            if kind == mikrotik::RATE_LIMIT {
                                mikrotik_rate = Some(value);
                            } else {
                                reply.ignore(mikrotik::VENDOR_ID, kind);
                            }
                        }
                    }
                    Some((vendor, subs)) => {
                        for (kind, _) in subs {
                            reply.ignore(vendor, kind);
                        }
                    }
                    None => reply.ignore(0, a.kind),
                },
                kind => reply.ignore(0, kind),
            }
        }
        reply.session.rate = crate::proto::shaping::from_radius(filter_id, mikrotik_rate);
        reply
    }

    fn ignore(&mut self, vendor: u32, kind: u8) {
        if !self.ignored.contains(&(vendor, kind)) {
            self.ignored.push((vendor, kind));
        }
    }

    fn microsoft(&mut self, kind: u8, value: &[u8], secret: &[u8], ra: &[u8; 16]) {
        match kind {
            ms::CHAP2_SUCCESS => {
                // Ident, then "S=<40 hex digits>" (maybe " M=...").
                match value
                    .get(1..)
                    .map(MsChapV2Success::parse)
                    .and_then(Result::ok)
                {
                    Some(s) => self.authenticator_response = Some(s.authenticator_response),
                    None => self.bad_success = true,
                }
            }
            ms::CHAP_ERROR => {
                self.error = value
                    .get(1..)
                    .and_then(|text| MsChapFailure::parse(text).ok())
                    .map(|f| f.error);
            }
            ms::MPPE_SEND_KEY => {
                self.send_key = packet::decrypt_salted_key(value, secret, ra).ok();
            }
            ms::MPPE_RECV_KEY => {
                self.recv_key = packet::decrypt_salted_key(value, secret, ra).ok();
            }
            ms::CHAP_MPPE_KEYS => {
                let plain = packet::unhide_password(value, secret, ra);
                if plain.len() >= 24 {
                    let mut lm = [0u8; 8];
                    let mut nt = [0u8; 16];
                    lm.copy_from_slice(&plain[..8]);
                    nt.copy_from_slice(&plain[8..24]);
                    self.mschap_keys = Some((lm, nt));
                }
            }
            ms::MPPE_ENCRYPTION_POLICY | ms::MPPE_ENCRYPTION_TYPES => {}
            other => self.ignore(ms::VENDOR_ID, other),
        }
    }

    /// The verdict for `credentials` (see the module documentation).
    pub fn verdict(&self, credentials: &Credentials) -> Verdict {
        match self.code {
            Some(Code::AccessAccept) => {}
            Some(Code::AccessReject) => {
                return Verdict::Reject(self.error.map_or(Rejection::BadCredentials, rejection));
            }
            _ => return Verdict::Reject(Rejection::BadCredentials),
        }
        let static_address = self
            .framed_ip_address
            .filter(|ip| *ip != Ipv4Addr::new(255, 255, 255, 254) && *ip != Ipv4Addr::BROADCAST);
        let mppe = match credentials {
            Credentials::MsChapV2 { .. } => match (&self.send_key, &self.recv_key) {
                (Some(send), Some(recv)) if send.len() >= 16 && recv.len() >= 16 => {
                    let mut master_send_key = [0u8; 16];
                    let mut master_recv_key = [0u8; 16];
                    master_send_key.copy_from_slice(&send[..16]);
                    master_recv_key.copy_from_slice(&recv[..16]);
                    Some(MppeMaterial::V2 {
                        master_send_key,
                        master_recv_key,
                    })
                }
                _ => None,
            },
            Credentials::MsChapV1 { challenge, .. } => {
                self.mschap_keys.map(|(lm_key, nt)| MppeMaterial::V1 {
                    lm_key,
                    nt_password_hash_hash: nt,
                    challenge: *challenge,
                })
            }
            _ => None,
        };
        let authenticator_response = match credentials {
            Credentials::MsChapV2 { .. } => {
                if self.authenticator_response.is_none() {
                    tracing::warn!(
                        "RADIUS Access-Accept for MS-CHAPv2 without a valid MS-CHAP2-Success: \
                         the client cannot authenticate us; refused"
                    );
                    return Verdict::Reject(Rejection::BackendUnavailable);
                }
                self.authenticator_response
            }
            _ => None,
        };
        Verdict::Accept(Accepted {
            user: credentials.user().to_owned(),
            static_address,
            addresses: static_address.map_or_else(AddressPolicy::any, AddressPolicy::only),
            authenticator_response,
            mppe,
            session: self.session.clone(),
        })
    }
}

/// A 32-bit seconds attribute (RFC 2865 section 5 "integer"): 0 means
/// none; capped at [`MAX_ATTRIBUTE_SECONDS`]; `None` if not 4 bytes.
fn seconds(value: &[u8]) -> Option<Duration> {
    let secs = u32::from_be_bytes(<[u8; 4]>::try_from(value).ok()?);
    (secs != 0).then(|| Duration::from_secs(u64::from(secs.min(MAX_ATTRIBUTE_SECONDS))))
}

/// The rejection for an MS-CHAP error code (RFC 2548 section 2.1.5,
/// RFC 2759 section 6).
pub fn rejection(code: FailureCode) -> Rejection {
    match code {
        FailureCode::RestrictedLogonHours | FailureCode::AcctDisabled => {
            Rejection::AccountRestricted
        }
        FailureCode::PasswdExpired => Rejection::PasswordExpired,
        FailureCode::NoDialinPermission => Rejection::NoDialinPermission,
        FailureCode::AuthenticationFailure
        | FailureCode::ChangingPassword
        | FailureCode::Unknown(_) => Rejection::BadCredentials,
    }
}

/// MikroTik's vendor-specific attributes (its RADIUS dictionary).
pub mod mikrotik {
    /// MikroTik's SMI enterprise number.
    pub const VENDOR_ID: u32 = 14988;
    /// Mikrotik-Rate-Limit: `rx/tx` rates (string).
    pub const RATE_LIMIT: u8 = 8;
}

/// A name for the log, for the attributes we know but do not apply.
fn attribute_name(vendor: u32, kind: u8) -> Option<&'static str> {
    Some(match (vendor, kind) {
        (0, attr::FRAMED_IP_NETMASK) => "Framed-IP-Netmask",
        (0, attr::STATE) => "State",
        _ => return None,
    })
}
