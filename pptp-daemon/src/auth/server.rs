//! The authenticator's engines: CHAP-MD5 (RFC 1994), MS-CHAPv1 (RFC 2433),
//! MS-CHAPv2 (RFC 2759) and PAP (RFC 1334), sans-IO.
//!
//! CHAP methods: [`AuthEngine::start`] sends a Challenge (random value,
//! Name = our host name) and retransmits it every `restart_timer` until a
//! Response with its Identifier comes, at most `max_challenges` times. The
//! Response becomes [`AuthEvent::Verify`]; the verdict comes back through
//! [`AuthEngine::handle_verdict`]:
//!
//! - accepted: Success (MS-CHAPv2: `S=<Authenticator Response> M=...`,
//!   without ` M=` when the Response's Flags octet is non-zero, as pppd does
//!   for Windows 98), then [`AuthEvent::Succeeded`]. A Response repeated
//!   after that (the peer lost the Success) gets the same Success again
//!   (RFC 1994 section 4.2): the session keeps feeding CHAP packets to the
//!   engine after success.
//! - refused: after `failure_delay`, Failure. MS-CHAP Failures carry
//!   `E=691` (bad credentials, also for a rate-limited source or a back
//!   end that is down), 646 (account restricted), 648 (password expired),
//!   649 (no dial-in permission). For bad credentials with attempts left
//!   (`max_attempts` Responses per session) an MS-CHAP Failure says `R=1`
//!   with a new challenge in `C=` and the engine waits up to
//!   `retry_timeout` for a Response with Identifier + 1 (RFC 2759 section
//!   9.1.4, RFC 2433 appendix B.1.3); otherwise `R=0` and
//!   [`AuthEvent::Failed`]. CHAP-MD5 and PAP have no retry (RFC 1994
//!   section 4.2, RFC 1334 section 2.2.2).
//!
//! PAP: the engine waits (`restart_timer * max_challenges`) for an
//! Authenticate-Request, verifies it and answers Ack or Nak; a repeated
//! Request after the Ack gets an Ack again (RFC 1334 section 2.2.1).
//!
//! The limit holds for the whole session: after an LCP renegotiation the
//! session hands the new engine the Responses already refused
//! ([`AuthEngine::resume_attempts`]); an engine that starts with none
//! left fails at once.
//!
//! When the verdict does not come within `verify_timeout`, the engine
//! fails as if the back end were unavailable. After [`AuthEvent::Failed`],
//! send what [`AuthEngine::poll_transmit`] still holds (the Failure) before
//! taking the link down.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    AuthEngine, AuthEvent, AuthFactory, AuthMethod, Credentials, Rejection, Verdict, chap, mschap,
    mschapv2, random::RandomSource,
};
use crate::{
    logsafe::Escaped,
    wire::{
        chap::{
            self as chap_wire, FailureChallenge, FailureCode, MsChapFailure, MsChapV1Response,
            MsChapV2Response, MsChapV2Success,
        },
        pap as pap_wire,
    },
};

/// What the server engines need from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// The Name field of our Challenges (`server.hostname`).
    pub name: String,
    /// Responses checked per session (`auth.max_attempts`).
    pub max_attempts: u32,
    /// Delay before a Failure or Nak (`auth.failure_delay_ms`).
    pub failure_delay: Duration,
    /// Challenge retransmission interval (`ppp.restart_timer_ms`).
    pub restart_timer: Duration,
    /// Challenge transmissions before giving up (`ppp.max_configure`).
    pub max_challenges: u32,
    /// How long to wait for the Response of a retry after `R=1`.
    pub retry_timeout: Duration,
    /// How long to wait for [`AuthEngine::handle_verdict`].
    pub verify_timeout: Duration,
}

impl Default for ServerSettings {
    /// The configuration's defaults.
    fn default() -> Self {
        ServerSettings {
            name: "pptp-xdp".into(),
            max_attempts: 3,
            failure_delay: Duration::from_secs(1),
            restart_timer: Duration::from_secs(3),
            max_challenges: 10,
            retry_timeout: Duration::from_secs(60),
            verify_timeout: Duration::from_secs(20),
        }
    }
}

/// Builds server engines: one per session, for the method LCP negotiated.
#[derive(Clone)]
pub struct ServerAuthFactory {
    settings: Arc<ServerSettings>,
    random: RandomSource,
}

impl ServerAuthFactory {
    pub fn new(settings: ServerSettings, random: RandomSource) -> ServerAuthFactory {
        ServerAuthFactory {
            settings: Arc::new(settings),
            random,
        }
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }
}

impl AuthFactory for ServerAuthFactory {
    fn engine(&mut self, method: AuthMethod) -> Box<dyn AuthEngine> {
        Box::new(ServerEngine::new(
            method,
            self.settings.clone(),
            self.random.clone(),
        ))
    }
}

const ACCESS_GRANTED: &[u8] = b"Access granted";
const ACCESS_DENIED: &[u8] = b"Access denied";

#[derive(Debug)]
enum Phase {
    Idle,
    /// CHAP: our Challenge is out; waiting for its Response.
    Challenged {
        transmissions: u32,
    },
    /// PAP: waiting for an Authenticate-Request.
    AwaitingRequest,
    /// [`AuthEvent::Verify`] is out; waiting for the verdict.
    Verifying {
        reply_to: u8,
        user: String,
    },
    /// Refused; the Failure or Nak goes out at the deadline.
    Delaying {
        reply_to: u8,
        user: String,
        rejection: Rejection,
    },
    /// MS-CHAP: a Failure with R=1 is out; waiting for the retry.
    AwaitingRetry {
        failed_id: u8,
        failure: Vec<u8>,
    },
    /// Success sent; repeated Responses get this message again.
    Succeeded {
        message: Vec<u8>,
    },
    Failed,
}

/// One authenticator exchange (see the module documentation).
pub struct ServerEngine {
    method: AuthMethod,
    settings: Arc<ServerSettings>,
    random: RandomSource,
    phase: Phase,
    /// Identifier of the current Challenge.
    identifier: u8,
    /// The challenge the next Response must answer.
    challenge: Vec<u8>,
    /// Our Challenge packet, for retransmission.
    challenge_packet: Vec<u8>,
    /// Flags octet of the last MS-CHAPv2 Response.
    v2_flags: u8,
    attempts: u32,
    deadline: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
}

impl std::fmt::Debug for ServerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEngine")
            .field("method", &self.method)
            .field("phase", &self.phase)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl ServerEngine {
    pub fn new(
        method: AuthMethod,
        settings: Arc<ServerSettings>,
        random: RandomSource,
    ) -> ServerEngine {
        ServerEngine {
            method,
            settings,
            random,
            phase: Phase::Idle,
            identifier: 0,
            challenge: Vec::new(),
            challenge_packet: Vec::new(),
            v2_flags: 0,
            attempts: 0,
            deadline: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn challenge_len(&self) -> usize {
        match self.method {
            AuthMethod::ChapMd5 => chap::CHALLENGE_LEN,
            AuthMethod::MsChapV1 => mschap::CHALLENGE_LEN,
            AuthMethod::MsChapV2 => mschapv2::CHALLENGE_LEN,
            AuthMethod::Pap => 0,
        }
    }

    fn new_challenge(&mut self) {
        let mut challenge = vec![0u8; self.challenge_len()];
        (self.random)(&mut challenge);
        self.challenge = challenge;
    }

    fn send_chap(&mut self, repr: chap_wire::Repr<'_>) {
        if let Ok(packet) = repr.to_vec() {
            self.transmit.push_back(packet);
        }
    }

    fn send_pap(&mut self, repr: pap_wire::Repr<'_>) {
        if let Ok(packet) = repr.to_vec() {
            self.transmit.push_back(packet);
        }
    }

    fn fail(&mut self, reason: String) {
        self.phase = Phase::Failed;
        self.deadline = None;
        self.events.push_back(AuthEvent::Failed { reason });
    }

    fn handle_chap(&mut self, now: Instant, packet: &[u8]) {
        let Ok(view) = chap_wire::Packet::new_checked(packet) else {
            return;
        };
        let Ok(chap_wire::Repr::Response {
            identifier,
            value,
            name,
        }) = chap_wire::Repr::parse(&view)
        else {
            return;
        };
        match &self.phase {
            Phase::Challenged { .. } if identifier == self.identifier => {
                self.take_response(now, identifier, value, name);
            }
            Phase::AwaitingRetry { failed_id, failure } => {
                if identifier == *failed_id {
                    // The peer did not get our Failure.
                    let failure = failure.clone();
                    self.transmit.push_back(failure);
                } else if identifier == failed_id.wrapping_add(1) {
                    self.identifier = identifier;
                    self.take_response(now, identifier, value, name);
                }
            }
            Phase::Succeeded { message } => {
                let message = message.clone();
                self.send_chap(chap_wire::Repr::Success {
                    identifier,
                    message: &message,
                });
            }
            _ => {}
        }
    }

    fn handle_pap(&mut self, now: Instant, packet: &[u8]) {
        let Ok(view) = pap_wire::Packet::new_checked(packet) else {
            return;
        };
        let Ok(pap_wire::Repr::AuthenticateRequest {
            identifier,
            peer_id,
            password,
        }) = pap_wire::Repr::parse(&view)
        else {
            return;
        };
        match &self.phase {
            Phase::AwaitingRequest => {
                let user = String::from_utf8_lossy(peer_id).into_owned();
                self.attempts += 1;
                self.phase = Phase::Verifying {
                    reply_to: identifier,
                    user: user.clone(),
                };
                self.deadline = Some(now + self.settings.verify_timeout);
                self.events.push_back(AuthEvent::Verify(Credentials::Pap {
                    user,
                    password: password.to_vec(),
                }));
            }
            Phase::Succeeded { message } => {
                let message = message.clone();
                self.send_pap(pap_wire::Repr::AuthenticateAck {
                    identifier,
                    message: &message,
                });
            }
            _ => {}
        }
    }

    /// A Response to our current challenge: emit Verify. Responses whose
    /// value does not fit the method are dropped.
    fn take_response(&mut self, now: Instant, identifier: u8, value: &[u8], name: &[u8]) {
        let user = String::from_utf8_lossy(name).into_owned();
        let credentials = match self.method {
            AuthMethod::ChapMd5 => {
                let Ok(response) = <[u8; 16]>::try_from(value) else {
                    return;
                };
                Credentials::ChapMd5 {
                    user: user.clone(),
                    identifier,
                    challenge: self.challenge.clone(),
                    response,
                }
            }
            AuthMethod::MsChapV1 => {
                let (Ok(r), Ok(challenge)) = (
                    MsChapV1Response::parse(value),
                    <[u8; 8]>::try_from(&self.challenge[..]),
                ) else {
                    return;
                };
                Credentials::MsChapV1 {
                    user: user.clone(),
                    challenge,
                    lm_response: r.lm_response,
                    nt_response: r.nt_response,
                    use_nt_response: r.use_nt_response,
                }
            }
            AuthMethod::MsChapV2 => {
                let (Ok(r), Ok(authenticator_challenge)) = (
                    MsChapV2Response::parse(value),
                    <[u8; 16]>::try_from(&self.challenge[..]),
                ) else {
                    return;
                };
                self.v2_flags = r.flags;
                Credentials::MsChapV2 {
                    user: user.clone(),
                    authenticator_challenge,
                    peer_challenge: r.peer_challenge,
                    nt_response: r.nt_response,
                }
            }
            AuthMethod::Pap => return,
        };
        self.attempts += 1;
        self.phase = Phase::Verifying {
            reply_to: identifier,
            user,
        };
        self.deadline = Some(now + self.settings.verify_timeout);
        self.events.push_back(AuthEvent::Verify(credentials));
    }

    fn accept(&mut self, now: Instant, reply_to: u8, user: &str, accepted: super::Accepted) {
        let message = match self.method {
            AuthMethod::MsChapV2 => {
                let Some(authenticator_response) = accepted.authenticator_response else {
                    // Without it the peer cannot authenticate us.
                    self.refuse_now(now, reply_to, user, Rejection::BackendUnavailable);
                    return;
                };
                MsChapV2Success {
                    authenticator_response,
                    message: (self.v2_flags == 0).then_some(ACCESS_GRANTED),
                }
                .to_vec()
            }
            _ => ACCESS_GRANTED.to_vec(),
        };
        if self.method == AuthMethod::Pap {
            self.send_pap(pap_wire::Repr::AuthenticateAck {
                identifier: reply_to,
                message: &message,
            });
        } else {
            self.send_chap(chap_wire::Repr::Success {
                identifier: reply_to,
                message: &message,
            });
        }
        self.phase = Phase::Succeeded { message };
        self.deadline = None;
        self.events.push_back(AuthEvent::Succeeded(accepted));
    }

    /// Sends the Failure or Nak for `rejection` and moves on: to a retry
    /// when MS-CHAP allows one, otherwise to Failed.
    fn refuse_now(&mut self, now: Instant, reply_to: u8, user: &str, rejection: Rejection) {
        let ms_chap = matches!(self.method, AuthMethod::MsChapV1 | AuthMethod::MsChapV2);
        let retry = ms_chap
            && rejection == Rejection::BadCredentials
            && self.attempts < self.settings.max_attempts;
        let packet = match self.method {
            AuthMethod::Pap => pap_wire::Repr::AuthenticateNak {
                identifier: reply_to,
                message: ACCESS_DENIED,
            }
            .to_vec(),
            AuthMethod::ChapMd5 => chap_wire::Repr::Failure {
                identifier: reply_to,
                message: ACCESS_DENIED,
            }
            .to_vec(),
            AuthMethod::MsChapV1 | AuthMethod::MsChapV2 => {
                if retry {
                    self.new_challenge();
                }
                let v2 = self.method == AuthMethod::MsChapV2;
                let challenge = match (v2, &self.challenge[..]) {
                    (true, c) => <[u8; 16]>::try_from(c).ok().map(FailureChallenge::MsChapV2),
                    // RFC 2433: C= is optional; we send it when there is a retry.
                    (false, c) if retry => {
                        <[u8; 8]>::try_from(c).ok().map(FailureChallenge::MsChapV1)
                    }
                    (false, _) => None,
                };
                let text = MsChapFailure {
                    error: failure_code(rejection),
                    retry,
                    challenge,
                    version: Some(if v2 { 3 } else { 2 }),
                    message: v2.then_some(ACCESS_DENIED),
                }
                .to_vec();
                chap_wire::Repr::Failure {
                    identifier: reply_to,
                    message: &text,
                }
                .to_vec()
            }
        };
        let Ok(packet) = packet else {
            self.fail(format!("{:?}: cannot encode the Failure", self.method));
            return;
        };
        self.transmit.push_back(packet.clone());
        if retry {
            self.phase = Phase::AwaitingRetry {
                failed_id: reply_to,
                failure: packet,
            };
            self.deadline = Some(now + self.settings.retry_timeout);
            return;
        }
        self.fail(format!(
            "{:?}: user {} refused ({rejection:?}) after {} attempt(s)",
            self.method,
            Escaped::new(user),
            self.attempts
        ));
    }
}

/// The MS-CHAP error code of a rejection (RFC 2759 section 6). A source
/// over its limit and a back end that is down look like bad credentials
/// to the peer.
fn failure_code(rejection: Rejection) -> FailureCode {
    match rejection {
        Rejection::BadCredentials | Rejection::RateLimited | Rejection::BackendUnavailable => {
            FailureCode::AuthenticationFailure
        }
        Rejection::AccountRestricted => FailureCode::RestrictedLogonHours,
        Rejection::PasswordExpired => FailureCode::PasswdExpired,
        Rejection::NoDialinPermission => FailureCode::NoDialinPermission,
    }
}

impl AuthEngine for ServerEngine {
    fn method(&self) -> AuthMethod {
        self.method
    }

    fn resume_attempts(&mut self, used: u32) {
        if matches!(self.phase, Phase::Idle) {
            self.attempts = used;
        }
    }

    fn start(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Idle) {
            return;
        }
        if self.attempts >= self.settings.max_attempts {
            // Earlier LCP negotiations of this session used them up.
            self.fail(format!(
                "{:?}: no attempt left ({} of {} used in this session)",
                self.method, self.attempts, self.settings.max_attempts
            ));
            return;
        }
        if self.method == AuthMethod::Pap {
            self.phase = Phase::AwaitingRequest;
            self.deadline = Some(now + self.settings.restart_timer * self.settings.max_challenges);
            return;
        }
        let mut id = [0u8; 1];
        (self.random)(&mut id);
        self.identifier = id[0];
        self.new_challenge();
        let challenge = self.challenge.clone();
        let name = self.settings.name.clone();
        self.challenge_packet = chap_wire::Repr::Challenge {
            identifier: self.identifier,
            value: &challenge,
            name: name.as_bytes(),
        }
        .to_vec()
        .unwrap_or_default();
        self.transmit.push_back(self.challenge_packet.clone());
        self.phase = Phase::Challenged { transmissions: 1 };
        self.deadline = Some(now + self.settings.restart_timer);
    }

    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if self.method == AuthMethod::Pap {
            self.handle_pap(now, packet);
        } else {
            self.handle_chap(now, packet);
        }
    }

    fn handle_verdict(&mut self, now: Instant, verdict: Verdict) {
        let Phase::Verifying { reply_to, user } = &self.phase else {
            // Not waiting for one (late, or after a verify timeout).
            return;
        };
        let (reply_to, user) = (*reply_to, user.clone());
        match verdict {
            Verdict::Accept(accepted) => self.accept(now, reply_to, &user, accepted),
            Verdict::Reject(rejection) if self.settings.failure_delay.is_zero() => {
                self.refuse_now(now, reply_to, &user, rejection);
            }
            Verdict::Reject(rejection) => {
                self.phase = Phase::Delaying {
                    reply_to,
                    user,
                    rejection,
                };
                self.deadline = Some(now + self.settings.failure_delay);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Challenged { transmissions } if transmissions < self.settings.max_challenges => {
                self.transmit.push_back(self.challenge_packet.clone());
                self.phase = Phase::Challenged {
                    transmissions: transmissions + 1,
                };
                self.deadline = Some(now + self.settings.restart_timer);
            }
            Phase::Challenged { transmissions } => {
                self.fail(format!(
                    "{:?}: no Response to {transmissions} Challenge(s)",
                    self.method
                ));
            }
            Phase::AwaitingRequest => self.fail("PAP: no Authenticate-Request".into()),
            Phase::Verifying { reply_to, user } => {
                self.refuse_now(now, reply_to, &user, Rejection::BackendUnavailable);
            }
            Phase::Delaying {
                reply_to,
                user,
                rejection,
            } => self.refuse_now(now, reply_to, &user, rejection),
            Phase::AwaitingRetry { .. } => {
                self.fail(format!("{:?}: no retry after a Failure", self.method));
            }
            other => {
                self.phase = other;
                self.deadline = None;
            }
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
