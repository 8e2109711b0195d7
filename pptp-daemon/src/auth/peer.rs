//! The peer's (client's) engines, for the project's own client: CHAP-MD5
//! (RFC 1994), MS-CHAPv1 (RFC 2433), MS-CHAPv2 (RFC 2759) and PAP
//! (RFC 1334), sans-IO.
//!
//! CHAP methods answer each Challenge with our user name and a response
//! from our password; a repeated Challenge (same Identifier and value) gets
//! the same Response, so a Response the server may be checking is never
//! replaced. The Response is retransmitted every `restart_timer` (at most
//! `max_transmissions` times) until Success or Failure comes, so a lost
//! Success is recovered (the server answers a repeated Response with the
//! same Success).
//!
//! - Success: MS-CHAPv2 checks the server's Authenticator Response
//!   (RFC 2759 section 8.8); a missing or wrong one fails the link (mutual
//!   authentication, section 5). Then [`AuthEvent::Succeeded`] with our
//!   user name and the MPPE key material from our side of the link.
//! - Failure: MS-CHAP with `R=1` retries with the same credentials, up to
//!   `max_attempts` Responses, on the challenge of `C=` (MS-CHAPv1 without
//!   `C=`: the previous one plus 23, RFC 2433 section 8), with the
//!   Identifier plus one; otherwise [`AuthEvent::Failed`] naming the error
//!   code.
//!
//! PAP sends Authenticate-Request until Ack or Nak, with a new Identifier
//! each time (RFC 1334 section 2.2.1).
//!
//! A Challenge after success (a re-authentication, RFC 1994 section 2) is
//! answered; its outcome is not reported again.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use subtle::ConstantTimeEq;

use super::{
    Accepted, AuthEngine, AuthEvent, AuthFactory, AuthMethod, MppeMaterial, Verdict, chap, mschap,
    mschapv2, random::RandomSource, secrets::Secret,
};
use crate::{
    mppe::{
        Role,
        keys::{mschapv1_material, mschapv2_material},
    },
    wire::{
        chap::{
            self as chap_wire, FailureChallenge, MsChapFailure, MsChapV1Response, MsChapV2Response,
            MsChapV2Success,
        },
        pap as pap_wire,
    },
};

/// Who we are and how patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    pub user: String,
    pub password: Secret,
    /// Retransmission interval of our Response or Authenticate-Request.
    pub restart_timer: Duration,
    /// Transmissions of one Response or Request before giving up.
    pub max_transmissions: u32,
    /// MS-CHAP: Responses sent at most (the first and the retries).
    pub max_attempts: u32,
    /// How long to wait for the first Challenge.
    pub challenge_timeout: Duration,
}

impl PeerSettings {
    /// The defaults of pppd: 3 s, 10 transmissions; 3 attempts; 30 s.
    pub fn new(user: impl Into<String>, password: impl Into<Secret>) -> PeerSettings {
        PeerSettings {
            user: user.into(),
            password: password.into(),
            restart_timer: Duration::from_secs(3),
            max_transmissions: 10,
            max_attempts: 3,
            challenge_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds peer engines for the method the server asked for.
#[derive(Clone)]
pub struct PeerAuthFactory {
    settings: Arc<PeerSettings>,
    random: RandomSource,
}

impl PeerAuthFactory {
    pub fn new(settings: PeerSettings, random: RandomSource) -> PeerAuthFactory {
        PeerAuthFactory {
            settings: Arc::new(settings),
            random,
        }
    }
}

impl AuthFactory for PeerAuthFactory {
    fn engine(&mut self, method: AuthMethod) -> Box<dyn AuthEngine> {
        Box::new(PeerEngine::new(
            method,
            self.settings.clone(),
            self.random.clone(),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    AwaitingChallenge,
    /// Our Response (or Authenticate-Request) is out.
    Responded {
        transmissions: u32,
    },
    Succeeded,
    Failed,
}

/// The Response we sent and what checking its outcome needs.
struct Exchange {
    identifier: u8,
    challenge: Vec<u8>,
    packet: Vec<u8>,
    peer_challenge: [u8; 16],
    nt_response: [u8; 24],
}

/// One peer exchange (see the module documentation).
pub struct PeerEngine {
    method: AuthMethod,
    settings: Arc<PeerSettings>,
    random: RandomSource,
    phase: Phase,
    exchange: Option<Exchange>,
    attempts: u32,
    deadline: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
}

impl std::fmt::Debug for PeerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerEngine")
            .field("method", &self.method)
            .field("user", &self.settings.user)
            .field("phase", &self.phase)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl PeerEngine {
    pub fn new(
        method: AuthMethod,
        settings: Arc<PeerSettings>,
        random: RandomSource,
    ) -> PeerEngine {
        PeerEngine {
            method,
            settings,
            random,
            phase: Phase::Idle,
            exchange: None,
            attempts: 0,
            deadline: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn password(&self) -> &[u8] {
        self.settings.password.as_bytes()
    }

    fn fail(&mut self, reason: String) {
        self.phase = Phase::Failed;
        self.deadline = None;
        self.events.push_back(AuthEvent::Failed { reason });
    }

    fn succeed(&mut self, authenticator_response: Option<[u8; 20]>, mppe: Option<MppeMaterial>) {
        self.phase = Phase::Succeeded;
        self.deadline = None;
        self.events.push_back(AuthEvent::Succeeded(Accepted {
            user: self.settings.user.clone(),
            static_address: None,
            addresses: super::AddressPolicy::any(),
            authenticator_response,
            mppe,
            session: Default::default(),
        }));
    }

    /// Sends a Response to `challenge` under `identifier`. Challenges of
    /// the wrong size for the method are ignored.
    fn respond(&mut self, now: Instant, identifier: u8, challenge: &[u8]) {
        let user = self.settings.user.as_bytes();
        let mut peer_challenge = [0u8; 16];
        let mut nt_response = [0u8; 24];
        let value: Vec<u8> = match self.method {
            AuthMethod::ChapMd5 => chap::response(identifier, self.password(), challenge).to_vec(),
            AuthMethod::MsChapV1 => {
                let Ok(c) = <[u8; 8]>::try_from(challenge) else {
                    return;
                };
                nt_response = mschap::nt_challenge_response(&c, self.password());
                // RFC 2433 section 6: the LM response is deprecated and zero.
                MsChapV1Response {
                    lm_response: [0; 24],
                    nt_response,
                    use_nt_response: true,
                }
                .to_bytes()
                .to_vec()
            }
            AuthMethod::MsChapV2 => {
                let Ok(c) = <[u8; 16]>::try_from(challenge) else {
                    return;
                };
                (self.random)(&mut peer_challenge);
                nt_response =
                    mschapv2::generate_nt_response(&c, &peer_challenge, user, self.password());
                MsChapV2Response {
                    peer_challenge,
                    nt_response,
                    flags: 0,
                }
                .to_bytes()
                .to_vec()
            }
            AuthMethod::Pap => return,
        };
        let Ok(packet) = (chap_wire::Repr::Response {
            identifier,
            value: &value,
            name: user,
        })
        .to_vec() else {
            return;
        };
        self.transmit.push_back(packet.clone());
        if matches!(self.phase, Phase::Succeeded) {
            // A re-authentication: answered, not tracked.
            return;
        }
        self.exchange = Some(Exchange {
            identifier,
            challenge: challenge.to_vec(),
            packet,
            peer_challenge,
            nt_response,
        });
        self.attempts += 1;
        self.phase = Phase::Responded { transmissions: 1 };
        self.deadline = Some(now + self.settings.restart_timer);
    }

    fn handle_chap(&mut self, now: Instant, packet: &[u8]) {
        let Ok(view) = chap_wire::Packet::new_checked(packet) else {
            return;
        };
        let Ok(repr) = chap_wire::Repr::parse(&view) else {
            return;
        };
        let current = self.exchange.as_ref().map(|e| e.identifier);
        match (repr, self.phase) {
            (_, Phase::Failed) => {}
            (
                chap_wire::Repr::Challenge {
                    identifier, value, ..
                },
                _,
            ) => {
                let repeated = self
                    .exchange
                    .as_ref()
                    .filter(|e| {
                        e.identifier == identifier
                            && e.challenge == value
                            && self.phase != Phase::Succeeded
                    })
                    .map(|e| e.packet.clone());
                match repeated {
                    Some(packet) => self.transmit.push_back(packet),
                    None => self.respond(now, identifier, value),
                }
            }
            (
                chap_wire::Repr::Success {
                    identifier,
                    message,
                },
                Phase::Responded { .. },
            ) if Some(identifier) == current => {
                self.handle_success(message);
            }
            (
                chap_wire::Repr::Failure {
                    identifier,
                    message,
                },
                Phase::Responded { .. },
            ) if Some(identifier) == current => {
                self.handle_failure(now, identifier, message);
            }
            _ => {}
        }
    }

    fn handle_success(&mut self, message: &[u8]) {
        let Some(exchange) = self.exchange.as_ref() else {
            return;
        };
        let password = self.settings.password.as_bytes();
        match self.method {
            AuthMethod::ChapMd5 | AuthMethod::Pap => self.succeed(None, None),
            AuthMethod::MsChapV1 => {
                let Ok(challenge) = <[u8; 8]>::try_from(&exchange.challenge[..]) else {
                    return;
                };
                let nt_hash = mschap::nt_password_hash(password);
                let mppe = mschapv1_material(
                    &mschap::lm_password_hash(password),
                    &mschap::hash_nt_password_hash(&nt_hash),
                    &challenge,
                );
                self.succeed(None, Some(mppe));
            }
            AuthMethod::MsChapV2 => {
                let Ok(challenge) = <[u8; 16]>::try_from(&exchange.challenge[..]) else {
                    return;
                };
                let expected = mschapv2::generate_authenticator_response(
                    password,
                    &exchange.nt_response,
                    &exchange.peer_challenge,
                    &challenge,
                    self.settings.user.as_bytes(),
                );
                let received = MsChapV2Success::parse(message).map(|s| s.authenticator_response);
                let good = received.is_ok_and(|r| bool::from(r.ct_eq(&expected)));
                if !good {
                    self.fail(
                        "MS-CHAPv2: the server's Authenticator Response is missing or wrong \
                         (mutual authentication failed)"
                            .into(),
                    );
                    return;
                }
                let hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(password));
                let mppe = mschapv2_material(&hash_hash, &exchange.nt_response, Role::Client);
                self.succeed(Some(expected), Some(mppe));
            }
        }
    }

    fn handle_failure(&mut self, now: Instant, identifier: u8, message: &[u8]) {
        if self.method == AuthMethod::ChapMd5 {
            self.fail("CHAP-MD5: the server refused our credentials".into());
            return;
        }
        let failure = match MsChapFailure::parse(message) {
            Ok(f) => f,
            Err(e) => {
                self.fail(format!(
                    "{:?}: refused with an unreadable Failure ({e})",
                    self.method
                ));
                return;
            }
        };
        let code = u32::from(failure.error);
        if !failure.retry || self.attempts >= self.settings.max_attempts {
            self.fail(format!("{:?}: refused with error {code}", self.method));
            return;
        }
        let previous = self
            .exchange
            .as_ref()
            .map(|e| e.challenge.clone())
            .unwrap_or_default();
        let next = match (self.method, failure.challenge) {
            (AuthMethod::MsChapV2, Some(FailureChallenge::MsChapV2(c))) => c.to_vec(),
            (AuthMethod::MsChapV1, Some(FailureChallenge::MsChapV1(c))) => c.to_vec(),
            (AuthMethod::MsChapV1, None) => match <[u8; 8]>::try_from(&previous[..]) {
                Ok(p) => mschap::implicit_retry_challenge(&p).to_vec(),
                Err(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        if next.is_empty() {
            self.fail(format!(
                "{:?}: error {code}, and no usable challenge to retry",
                self.method
            ));
            return;
        }
        self.respond(now, identifier.wrapping_add(1), &next);
    }

    fn send_pap_request(&mut self, now: Instant, identifier: u8) {
        let Ok(packet) = (pap_wire::Repr::AuthenticateRequest {
            identifier,
            peer_id: self.settings.user.as_bytes(),
            password: self.settings.password.as_bytes(),
        })
        .to_vec() else {
            self.fail("PAP: user name or password longer than 255 octets".into());
            return;
        };
        self.transmit.push_back(packet);
        self.exchange = Some(Exchange {
            identifier,
            challenge: Vec::new(),
            packet: Vec::new(),
            peer_challenge: [0; 16],
            nt_response: [0; 24],
        });
        self.deadline = Some(now + self.settings.restart_timer);
    }

    fn handle_pap(&mut self, packet: &[u8]) {
        if !matches!(self.phase, Phase::Responded { .. }) {
            return;
        }
        let Ok(view) = pap_wire::Packet::new_checked(packet) else {
            return;
        };
        match pap_wire::Repr::parse(&view) {
            Ok(pap_wire::Repr::AuthenticateAck { .. }) => self.succeed(None, None),
            Ok(pap_wire::Repr::AuthenticateNak { .. }) => {
                self.fail("PAP: the server refused our credentials".into());
            }
            _ => {}
        }
    }
}

impl AuthEngine for PeerEngine {
    fn method(&self) -> AuthMethod {
        self.method
    }

    fn start(&mut self, now: Instant) {
        if self.phase != Phase::Idle {
            return;
        }
        if self.method == AuthMethod::Pap {
            let mut id = [0u8; 1];
            (self.random)(&mut id);
            self.phase = Phase::Responded { transmissions: 1 };
            self.attempts = 1;
            self.send_pap_request(now, id[0]);
            return;
        }
        self.phase = Phase::AwaitingChallenge;
        self.deadline = Some(now + self.settings.challenge_timeout);
    }

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if self.method == AuthMethod::Pap {
            self.handle_pap(packet);
        } else {
            self.handle_chap(now, packet);
        }
    }

    /// Peer engines do not verify anything.
    fn handle_verdict(&mut self, _now: Instant, _verdict: Verdict) {}

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        match self.phase {
            Phase::AwaitingChallenge => self.fail(format!("{:?}: no Challenge came", self.method)),
            Phase::Responded { transmissions }
                if transmissions < self.settings.max_transmissions =>
            {
                self.phase = Phase::Responded {
                    transmissions: transmissions + 1,
                };
                if self.method == AuthMethod::Pap {
                    let id = self
                        .exchange
                        .as_ref()
                        .map_or(0, |e| e.identifier.wrapping_add(1));
                    self.send_pap_request(now, id);
                } else {
                    if let Some(e) = &self.exchange {
                        self.transmit.push_back(e.packet.clone());
                    }
                    self.deadline = Some(now + self.settings.restart_timer);
                }
            }
            Phase::Responded { transmissions } => {
                self.fail(format!(
                    "{:?}: no answer to {transmissions} transmission(s)",
                    self.method
                ));
            }
            _ => self.deadline = None,
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop_front()
    }
}
