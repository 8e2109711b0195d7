//! Dynamic authorization (RFC 5176), without I/O: Disconnect-Request and
//! CoA-Request from an operator's RADIUS server, checked, matched against
//! our sessions, decided, and answered with an ACK or a NAK carrying
//! Error-Cause.
//!
//! - The Request Authenticator is checked (RFC 5176 section 3.5:
//!   MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret)).
//! - A Message-Authenticator is verified when present (RFC 5176 section
//!   3.1, computed as for Accounting-Request: HMAC-MD5 with the
//!   authenticator field zeroed) and not required: FreeRADIUS's radclient
//!   adds one only when asked, and the Request Authenticator already
//!   covers the whole packet with the secret (no BlastRADIUS-style forgery
//!   here: the attack needs a response keyed on a request's random
//!   authenticator). Every answer carries one.
//! - Duplicates (same source, Identifier and Request Authenticator within
//!   [`DUPLICATE_WINDOW`]) get the first answer again and are not acted on
//!   twice (RFC 5080 section 2.2.2); the cache is bounded
//!   ([`MAX_CACHED`]).
//!
//! [`Dae::handle_datagram`] takes the datagram, its source, `now` and the
//! sessions as the glue sees them ([`DaeSession`]) and returns what to do
//! ([`Outcome`]): drop it, send the cached answer, or act ([`Action`]) and
//! send the answer.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::mikrotik;
use super::packet::{self, Code, Packet, attr, emit_response, hmac_md5};
use crate::proto::{concentrator::SessionId, shaping::RateLimit};

/// Header fields (RFC 2865 section 3, as RFC 5176 section 3 uses them).
mod field {
    use std::ops::Range;
    pub const AUTHENTICATOR: Range<usize> = 4..20;
    /// The value of an attribute, after Type and Length.
    pub const ATTR_VALUE_START: usize = 2;
}

/// A request as the duplicate cache knows it (RFC 5080 section 2.2.2):
/// source, Identifier, Request Authenticator.
type RequestKey = (SocketAddr, u8, [u8; 16]);

/// The codes of RFC 5176 section 2.3.
pub mod code {
    pub const DISCONNECT_REQUEST: u8 = 40;
    pub const DISCONNECT_ACK: u8 = 41;
    pub const DISCONNECT_NAK: u8 = 42;
    pub const COA_REQUEST: u8 = 43;
    pub const COA_ACK: u8 = 44;
    pub const COA_NAK: u8 = 45;
}

/// Attribute types of RFC 5176 section 3 and RFC 2866 that only dynamic
/// authorization reads.
pub mod dae_attr {
    /// Acct-Session-Id (RFC 2866 section 5.5).
    pub const ACCT_SESSION_ID: u8 = 44;
    /// Event-Timestamp (RFC 2869 section 5.3).
    pub const EVENT_TIMESTAMP: u8 = 55;
    /// Error-Cause (RFC 5176 section 3.6).
    pub const ERROR_CAUSE: u8 = 101;
}

/// Error-Cause values (RFC 5176 section 3.6).
pub mod error_cause {
    pub const UNSUPPORTED_ATTRIBUTE: u32 = 401;
    pub const MISSING_ATTRIBUTE: u32 = 402;
    pub const NAS_IDENTIFICATION_MISMATCH: u32 = 403;
    pub const INVALID_REQUEST: u32 = 404;
    pub const UNSUPPORTED_SERVICE: u32 = 405;
    pub const SESSION_CONTEXT_NOT_FOUND: u32 = 503;
}

/// How long a request is remembered for duplicate detection.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5);
/// Answers remembered at most; beyond this the oldest is forgotten.
pub const MAX_CACHED: usize = 1024;

/// Why a datagram was dropped without an answer (RFC 5176 section 3.5:
/// silently discarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed: {0}")]
    Malformed(packet::Error),
    #[error("code {0} is not a Disconnect-Request or CoA-Request")]
    UnexpectedCode(u8),
    #[error("bad Request Authenticator (wrong secret?)")]
    BadRequestAuthenticator,
    #[error("bad Message-Authenticator")]
    BadMessageAuthenticator,
}

/// Which request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Disconnect-Request (RFC 5176 section 3.1).
    Disconnect,
    /// CoA-Request (RFC 5176 section 3.2).
    Coa,
}

impl Kind {
    fn ack(self) -> u8 {
        match self {
            Kind::Disconnect => code::DISCONNECT_ACK,
            Kind::Coa => code::COA_ACK,
        }
    }

    fn nak(self) -> u8 {
        match self {
            Kind::Disconnect => code::DISCONNECT_NAK,
            Kind::Coa => code::COA_NAK,
        }
    }
}

/// A checked request: the attributes we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub user_name: Option<String>,
    pub acct_session_id: Option<String>,
    pub framed_ip_address: Option<Ipv4Addr>,
    pub nas_identifier: Option<Vec<u8>>,
    pub nas_ip_address: Option<Ipv4Addr>,
    /// CoA: the new Session-Timeout, seconds.
    pub session_timeout: Option<u32>,
    /// CoA: the new rate limit, from Mikrotik-Rate-Limit (vendor 14988
    /// type 8) or else Filter-Id in accel-ppp's format
    /// ([`crate::proto::shaping`]).
    pub rate: Option<RateLimit>,
    /// Service-Type, when present (we support none: RFC 5176 section 3.2
    /// Authorize-Only gets 405).
    pub service_type: Option<u32>,
    /// The first attribute we do not support, by type.
    pub unsupported: Option<u8>,
    /// A known attribute with a malformed value.
    pub invalid: bool,
    /// Proxy-State values, echoed in order (RFC 5176 section 3).
    pub proxy_state: Vec<Vec<u8>>,
    pub message_authenticator: bool,
}

/// Checks a datagram's code, Request Authenticator and (when present)
/// Message-Authenticator with `secret`, and reads its attributes.
pub fn parse_request(datagram: &[u8], secret: &[u8]) -> Result<Request, DropReason> {
    let packet = Packet::new_checked(datagram).map_err(DropReason::Malformed)?;
    let kind = match u8::from(packet.code()) {
        code::DISCONNECT_REQUEST => Kind::Disconnect,
        code::COA_REQUEST => Kind::Coa,
        other => return Err(DropReason::UnexpectedCode(other)),
    };
    let bytes = packet.as_bytes();
    let mut zeroed = bytes.to_vec();
    zeroed[field::AUTHENTICATOR].fill(0);
    let mut md5 = Md5::new();
    md5.update(&zeroed);
    md5.update(secret);
    let expected: [u8; 16] = md5.finalize().into();
    if !bool::from(expected.ct_eq(&packet.authenticator())) {
        return Err(DropReason::BadRequestAuthenticator);
    }
    let mut req = Request {
        kind,
        identifier: packet.identifier(),
        authenticator: packet.authenticator(),
        user_name: None,
        acct_session_id: None,
        framed_ip_address: None,
        nas_identifier: None,
        nas_ip_address: None,
        session_timeout: None,
        rate: None,
        service_type: None,
        unsupported: None,
        invalid: false,
        proxy_state: Vec::new(),
        message_authenticator: false,
    };
    let string = |v: &[u8]| String::from_utf8(v.to_vec()).ok();
    let (mut filter_rate, mut mikrotik_rate) = (None, None);
    let ipv4 = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
    for a in packet.attributes() {
        match a.kind {
            attr::MESSAGE_AUTHENTICATOR => {
                if a.value.len() != 16 || req.message_authenticator {
                    return Err(DropReason::BadMessageAuthenticator);
                }
                // Computed over the packet with the authenticator field
                // and its own value zeroed (as for Accounting-Request).
                let at = a.offset + field::ATTR_VALUE_START;
                let mut copy = zeroed.clone();
                copy[at..at + 16].fill(0);
                let mac = hmac_md5(secret, &copy);
                if !bool::from(mac.ct_eq(a.value)) {
                    return Err(DropReason::BadMessageAuthenticator);
                }
                req.message_authenticator = true;
            }
            attr::USER_NAME => match string(a.value) {
                Some(s) => req.user_name = Some(s),
                None => req.invalid = true,
            },
            dae_attr::ACCT_SESSION_ID => match string(a.value) {
                Some(s) => req.acct_session_id = Some(s),
                None => req.invalid = true,
            },
            attr::FRAMED_IP_ADDRESS => match ipv4(a.value) {
                Some(ip) => req.framed_ip_address = Some(ip),
                None => req.invalid = true,
            },
            attr::NAS_IP_ADDRESS => match ipv4(a.value) {
                Some(ip) => req.nas_ip_address = Some(ip),
                None => req.invalid = true,
            },
            attr::NAS_IDENTIFIER => req.nas_identifier = Some(a.value.to_vec()),
            attr::SESSION_TIMEOUT if kind == Kind::Coa => match a.as_u32() {
                Some(t) => req.session_timeout = Some(t),
                None => req.invalid = true,
            },
            attr::SERVICE_TYPE => match a.as_u32() {
                Some(t) => req.service_type = Some(t),
                None => req.invalid = true,
            },
            attr::FILTER_ID if kind == Kind::Coa => {
                // A Filter-Id that is not a rate names a filter: unsupported.
                match string(a.value).and_then(|t| RateLimit::parse_filter_id(&t).ok()) {
                    Some(r) => filter_rate = Some(r),
                    None => {
                        req.unsupported.get_or_insert(attr::FILTER_ID);
                    }
                }
            }
            attr::VENDOR_SPECIFIC if kind == Kind::Coa => match a.vendor() {
                Some((mikrotik::VENDOR_ID, subs)) => {
                    for (sub, value) in subs {
                        if sub != mikrotik::RATE_LIMIT {
                            req.unsupported.get_or_insert(attr::VENDOR_SPECIFIC);
                            continue;
                        }
                        match string(value).and_then(|t| RateLimit::parse_mikrotik(&t).ok()) {
                            Some(r) => mikrotik_rate = Some(r),
                            None => req.invalid = true,
                        }
                    }
                }
                _ => {
                    req.unsupported.get_or_insert(attr::VENDOR_SPECIFIC);
                }
            },
            attr::PROXY_STATE => req.proxy_state.push(a.value.to_vec()),
            dae_attr::EVENT_TIMESTAMP => {}
            other => {
                req.unsupported.get_or_insert(other);
            }
        }
    }
    req.rate = mikrotik_rate.or(filter_rate);
    Ok(req)
}

/// A session as the glue sees it, for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaeSession {
    pub id: SessionId,
    pub acct_session_id: String,
    pub user: Option<String>,
    pub address: Option<Ipv4Addr>,
}

/// What the glue must do for an answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (a NAK, or a CoA with nothing to change).
    None,
    /// End these sessions with `EndReason::AdminReset`.
    Disconnect(Vec<SessionId>),
    /// A CoA's changes to these sessions.
    Change {
        sessions: Vec<SessionId>,
        /// The sessions end this long from now (`EndReason::SessionTimeout`);
        /// `Some(None)` (Session-Timeout 0, which NASes commonly read as
        /// "no limit"): the limit is lifted; `None`: unchanged.
        session_timeout: Option<Option<Duration>>,
        /// The new rate limit; `None`: unchanged.
        rate: Option<RateLimit>,
    },
}

/// The decision on a request: ACK (no cause) or NAK with Error-Cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub error_cause: Option<u32>,
    pub action: Action,
}

impl Decision {
    fn nak(cause: u32) -> Self {
        Decision {
            error_cause: Some(cause),
            action: Action::None,
        }
    }
}

/// Our identity as RFC 5176 section 3 matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NasIdentity {
    pub nas_identifier: String,
    pub nas_ip_address: Option<Ipv4Addr>,
}

/// Decides on a checked request (RFC 5176 section 3): NAS identification
/// first (403 on a mismatch), then unsupported Service-Type (405),
/// unsupported or malformed attributes (401, 404), no session
/// identification (402), then the sessions matching every identification
/// attribute present (Acct-Session-Id, User-Name, Framed-IP-Address);
/// none matching: 503.
pub fn decide(req: &Request, us: &NasIdentity, sessions: &[DaeSession]) -> Decision {
    if req
        .nas_identifier
        .as_ref()
        .is_some_and(|n| n.as_slice() != us.nas_identifier.as_bytes())
        || req
            .nas_ip_address
            .is_some_and(|ip| us.nas_ip_address.is_some_and(|ours| ours != ip))
    {
        return Decision::nak(error_cause::NAS_IDENTIFICATION_MISMATCH);
    }
    if req.service_type.is_some() {
        return Decision::nak(error_cause::UNSUPPORTED_SERVICE);
    }
    if req.unsupported.is_some() {
        return Decision::nak(error_cause::UNSUPPORTED_ATTRIBUTE);
    }
    if req.invalid {
        return Decision::nak(error_cause::INVALID_REQUEST);
    }
    if req.acct_session_id.is_none() && req.user_name.is_none() && req.framed_ip_address.is_none() {
        return Decision::nak(error_cause::MISSING_ATTRIBUTE);
    }
    let matched: Vec<SessionId> = sessions
        .iter()
        .filter(|s| {
            req.acct_session_id
                .as_ref()
                .is_none_or(|id| *id == s.acct_session_id)
                && req
                    .user_name
                    .as_ref()
                    .is_none_or(|u| s.user.as_ref() == Some(u))
                && req.framed_ip_address.is_none_or(|ip| s.address == Some(ip))
        })
        .map(|s| s.id)
        .collect();
    if matched.is_empty() {
        return Decision::nak(error_cause::SESSION_CONTEXT_NOT_FOUND);
    }
    let action = match req.kind {
        Kind::Disconnect => Action::Disconnect(matched),
        Kind::Coa if req.session_timeout.is_none() && req.rate.is_none() => Action::None,
        Kind::Coa => Action::Change {
            sessions: matched,
            session_timeout: req
                .session_timeout
                .map(|t| (t > 0).then(|| Duration::from_secs(u64::from(t)))),
            rate: req.rate,
        },
    };
    Decision {
        error_cause: None,
        action,
    }
}

/// The answer to `req`: ACK or NAK by `decision`, with Error-Cause on a
/// NAK, the Proxy-States echoed, a Message-Authenticator and the Response
/// Authenticator (RFC 5176 section 3.5).
pub fn emit_answer(req: &Request, decision: &Decision, secret: &[u8]) -> Vec<u8> {
    let code = match decision.error_cause {
        None => req.kind.ack(),
        Some(_) => req.kind.nak(),
    };
    let mut attributes: Vec<(u8, Vec<u8>)> = Vec::new();
    if let Some(cause) = decision.error_cause {
        attributes.push((dae_attr::ERROR_CAUSE, cause.to_be_bytes().to_vec()));
    }
    for p in &req.proxy_state {
        attributes.push((attr::PROXY_STATE, p.clone()));
    }
    emit_response(
        Code::from(code),
        req.identifier,
        &req.authenticator,
        secret,
        &attributes,
        true,
    )
}

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per dynamic-authorization datagram, returned once"
)]
pub enum Outcome {
    /// Drop it silently.
    Drop(DropReason),
    /// A retransmission: send the first answer again, do nothing else.
    Duplicate(Vec<u8>),
    /// Act, then send the answer.
    Answer {
        request: Request,
        decision: Decision,
        response: Vec<u8>,
    },
}

/// The dynamic-authorization server: our identity, the shared secret and
/// the duplicate cache.
pub struct Dae {
    secret: Vec<u8>,
    us: NasIdentity,
    cache: HashMap<RequestKey, Vec<u8>>,
    /// Insertion order, for expiry and the bound.
    order: VecDeque<(Instant, RequestKey)>,
}

impl std::fmt::Debug for Dae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dae")
            .field("us", &self.us)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Dae {
    pub fn new(secret: impl Into<Vec<u8>>, us: NasIdentity) -> Self {
        Self {
            secret: secret.into(),
            us,
            cache: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Answers remembered.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if now.saturating_duration_since(at) < DUPLICATE_WINDOW
                && self.order.len() <= MAX_CACHED
            {
                break;
            }
            self.order.pop_front();
            self.cache.remove(&key);
        }
    }

    /// One datagram from `source` (already checked against the allowed
    /// clients). `sessions` is called only for a new, valid request.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        sessions: impl FnOnce() -> Vec<DaeSession>,
    ) -> Outcome {
        self.expire(now);
        let request = match parse_request(datagram, &self.secret) {
            Ok(r) => r,
            Err(e) => return Outcome::Drop(e),
        };
        let key = (source, request.identifier, request.authenticator);
        if let Some(answer) = self.cache.get(&key) {
            return Outcome::Duplicate(answer.clone());
        }
        let decision = decide(&request, &self.us, &sessions());
        let response = emit_answer(&request, &decision, &self.secret);
        self.cache.insert(key, response.clone());
        self.order.push_back((now, key));
        self.expire(now);
        Outcome::Answer {
            request,
            decision,
            response,
        }
    }
}

/// Builds a request as a RADIUS server would (for tests and simulations):
/// `attributes` in order, a Message-Authenticator first when asked, then
/// the Request Authenticator over it (RFC 5176 section 3.5).
pub fn emit_request(
    code: u8,
    identifier: u8,
    secret: &[u8],
    attributes: &[(u8, Vec<u8>)],
    with_message_authenticator: bool,
) -> Vec<u8> {
    packet::emit_signed(
        code,
        identifier,
        &[0; 16],
        secret,
        attributes,
        with_message_authenticator,
    )
}

#[cfg(test)]
#[path = "dae_tests.rs"]
mod tests;
