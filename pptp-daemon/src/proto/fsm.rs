//! The PPP option-negotiation automaton (RFC 1661 section 4), generic over
//! the protocol it runs: LCP, IPCP and CCP implement [`Negotiator`] (their
//! own options, a verdict on each option of the peer, what a Nak or Reject
//! of the peer changes) and the [`Fsm`] does the rest: the ten states, every
//! event and action of the state table (kept in
//! `docs/rfc1661-state-table.md`), the restart timer and its counters,
//! identifier matching of replies, and the rule that after Max-Failure
//! Configure-Naks turn into Configure-Rejects.
//!
//! Sans-IO: `now` is passed in, packets go out through
//! [`Fsm::poll_transmit`] (a control-protocol packet, code first, without
//! the PPP protocol field) and the this-layer-up/down/started/finished
//! actions come out of [`Fsm::poll_event`] as well as through the trait's
//! hooks.
//!
//! Choices the RFC leaves open:
//! - the restart option ("r" in the table) is not implemented: Open in
//!   Stopped, Closing, Stopping and Opened changes nothing but the state;
//!   the passive option ("p") is not either: TO- while negotiating ends in
//!   Stopped, and the owner decides what that means (LCP: link down).
//! - A Configure-Ack/Nak/Reject is an RCA/RCN event only while negotiating
//!   (Req-Sent, Ack-Rcvd, Ack-Sent, Opened), only if its identifier is that
//!   of our last Configure-Request and only for the first reply to it:
//!   duplicates and stale replies are silently discarded (RFC 1661 section
//!   5.2 to 5.4), as are an Ack whose options differ from the request and
//!   a Reject naming options we did not send. Hence RCA and RCN in
//!   Ack-Rcvd and Opened (the "crossed connection" rows) happen only if
//!   the owner injects them; they are implemented and tested all the same.
//!   In Closed, Stopped, Closing and Stopping any reply is the event.
//! - Retransmissions after a timeout (TO+) keep the identifier and the
//!   options; every other Configure-Request gets a new identifier.
//! - Max-Failure counts Configure-Naks sent without a Configure-Ack sent
//!   in between (RFC 1661 section 4.6): once reached, options we would Nak
//!   are Rejected. Symmetrically, once the peer has Nak'ed more than
//!   Max-Failure times without Acking, its Nak counts as a Reject of the
//!   options it names (a peer that never agrees converges or, when an
//!   option is required, the protocol gives up and closes).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::wire::cp::{Code, Options, ProtocolReject, RawOption, Repr, push_option};

/// The automaton's states (RFC 1661 section 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Initial,
    Starting,
    Closed,
    Stopped,
    Closing,
    Stopping,
    ReqSent,
    AckRcvd,
    AckSent,
    Opened,
}

impl State {
    /// The ten states in the order of the RFC's table.
    pub const ALL: [State; 10] = [
        State::Initial,
        State::Starting,
        State::Closed,
        State::Stopped,
        State::Closing,
        State::Stopping,
        State::ReqSent,
        State::AckRcvd,
        State::AckSent,
        State::Opened,
    ];

    /// Whether a Configure-Request of ours is outstanding or agreed.
    fn negotiating(self) -> bool {
        matches!(self, State::ReqSent | State::AckRcvd | State::AckSent)
    }

    /// Whether the restart timer runs in this state (RFC 1661 section 4.2).
    fn timer_runs(self) -> bool {
        matches!(
            self,
            State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
        )
    }
}

/// The automaton's events (RFC 1661 section 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Up,
    Down,
    Open,
    Close,
    /// TO+: the restart timer expired and the restart counter is above zero.
    TimeoutPlus,
    /// TO-: the restart timer expired and the counter is exhausted.
    TimeoutMinus,
    /// RCR+: a Configure-Request we Ack.
    RcrGood,
    /// RCR-: a Configure-Request we Nak or Reject.
    RcrBad,
    Rca,
    /// RCN: a Configure-Nak or Configure-Reject.
    Rcn,
    Rtr,
    Rta,
    Ruc,
    /// RXJ+: a permitted Code-Reject or Protocol-Reject.
    RxjPlus,
    /// RXJ-: a catastrophic Code-Reject or Protocol-Reject.
    RxjMinus,
    /// RXR: Echo-Request, Echo-Reply or Discard-Request.
    Rxr,
}

/// What the automaton reports to its owner: the this-layer actions of RFC
/// 1661 section 4.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsmEvent {
    /// tlu: the protocol is Opened.
    Up,
    /// tld: the protocol leaves the Opened state.
    Down,
    /// tls: the protocol needs the lower layer.
    Started,
    /// tlf: the protocol no longer needs the lower layer.
    Finished,
}

/// Counters and timer of the automaton (RFC 1661 section 4.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    /// The restart timer.
    pub restart_interval: Duration,
    /// Configure-Requests sent without an answer before giving up.
    pub max_configure: u32,
    /// Terminate-Requests sent without a Terminate-Ack before giving up.
    pub max_terminate: u32,
    /// Configure-Naks sent without an Ack before Naks become Rejects.
    pub max_failure: u32,
}

impl Default for FsmConfig {
    /// The defaults of RFC 1661 section 4.6.
    fn default() -> Self {
        FsmConfig {
            restart_interval: Duration::from_secs(3),
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
        }
    }
}

/// The answer to one option of the peer's Configure-Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Acceptable as is.
    Ack,
    /// Acceptable with another value: the option's data to suggest (after
    /// the type and length octets).
    Nak(Vec<u8>),
    /// Not negotiable, unknown or malformed.
    Reject,
}

/// What a protocol did with a code the automaton does not handle itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Not a code of this protocol: the automaton sends a Code-Reject (RUC).
    Unknown,
    /// Handled, nothing to answer.
    Consumed,
    /// Handled; answer with this code, the same identifier and this data.
    Reply { code: Code, data: Vec<u8> },
}

/// A protocol negotiated by the automaton: LCP, IPCP, CCP.
pub trait Negotiator {
    /// Short name for logs ("LCP").
    fn name(&self) -> &'static str;

    /// Negotiation starts afresh (a Configure-Request is about to be sent
    /// from a state where none was outstanding): our wishes go back to
    /// their initial values and what the peer had agreed is forgotten.
    fn reset(&mut self);

    /// Appends the options of our next Configure-Request.
    fn write_request(&mut self, out: &mut Vec<u8>);

    /// Judges one option of the peer's Configure-Request. With
    /// `reject_if_disagree` (Max-Failure reached) a Nak is turned into a
    /// Reject by the automaton. `Err` means negotiation cannot succeed
    /// (e.g. a looped-back link): the automaton closes with that reason.
    fn judge(&mut self, option: RawOption<'_>, reject_if_disagree: bool)
    -> Result<Verdict, String>;

    /// Options the peer left out of its request that we want it to add:
    /// appended (type, length, data) to the Configure-Nak (RFC 1661 section
    /// 5.3). Not called when anything is rejected or Naks became Rejects.
    fn missing_options(&mut self, request: &[RawOption<'_>], naks: &mut Vec<u8>) {
        let _ = (request, naks);
    }

    /// We are sending a Configure-Ack to this request: record what the peer
    /// will use.
    fn peer_request_acked(&mut self, request: &[RawOption<'_>]);

    /// The peer Acked our last Configure-Request.
    fn request_acked(&mut self) {}

    /// The peer Nak'ed our request with these options: adjust the next one.
    /// `Err` closes the protocol with that reason.
    fn handle_nak(&mut self, options: &[RawOption<'_>]) -> Result<(), String>;

    /// The peer rejected these options of our request: leave them out of
    /// the next one. `Err` closes the protocol with that reason.
    fn handle_reject(&mut self, options: &[RawOption<'_>]) -> Result<(), String>;

    /// tlu hook.
    fn this_layer_up(&mut self) {}
    /// tld hook.
    fn this_layer_down(&mut self) {}
    /// tls hook.
    fn this_layer_started(&mut self) {}
    /// tlf hook.
    fn this_layer_finished(&mut self) {}

    /// Whether Echo-Request, Echo-Reply and Discard-Request are this
    /// protocol's (LCP) and so the RXR event.
    fn has_echo(&self) -> bool {
        false
    }

    /// An RXR packet arrived (any state): bookkeeping such as keepalive.
    fn received_echo(&mut self, code: Code, identifier: u8, data: &[u8]) {
        let _ = (code, identifier, data);
    }

    /// Data of the Echo-Reply (ser) to an Echo-Request with `request` data.
    fn echo_reply(&mut self, request: &[u8]) -> Vec<u8> {
        request.to_vec()
    }

    /// Whether Protocol-Reject is a code of this protocol (LCP only).
    fn has_protocol_reject(&self) -> bool {
        false
    }

    /// A Protocol-Reject of `protocol` arrived: whether it is catastrophic
    /// (RXJ-) or permitted (RXJ+). Called only if
    /// [`Self::has_protocol_reject`].
    fn protocol_rejected(&mut self, protocol: u16) -> bool {
        let _ = protocol;
        false
    }

    /// The peer Code-Rejected `code`: whether that is catastrophic (RXJ-).
    /// By default the codes the automaton cannot work without, 1 to 7;
    /// protocols may also note that the peer lacks a code.
    fn code_rejected(&mut self, code: Code) -> bool {
        matches!(u8::from(code), 1..=7)
    }

    /// Any other code (LCP Identification and Time-Remaining, CCP
    /// Reset-Request and Reset-Ack).
    fn handle_code(
        &mut self,
        state: State,
        code: Code,
        identifier: u8,
        data: &[u8],
    ) -> CodeOutcome {
        let _ = (state, code, identifier, data);
        CodeOutcome::Unknown
    }
}

/// The RFC 1661 automaton running one protocol.
#[derive(Debug)]
pub struct Fsm<P> {
    proto: P,
    config: FsmConfig,
    state: State,
    restart_count: u32,
    timer: Option<Instant>,
    /// Configure-Naks sent since the last Configure-Ack sent.
    failures: u32,
    /// Configure-Naks received since the last Configure-Ack received.
    naks_received: u32,
    next_id: u8,
    request_id: u8,
    request: Vec<u8>,
    reply_seen: bool,
    /// Identifier of the packet being handled (for sta, sca, scn, ser).
    rx_id: u8,
    /// Reply prepared for the Configure-Request being handled.
    pending_reply: Option<(Code, Vec<u8>)>,
    pending_request: Vec<u8>,
    /// The packet being handled, for a Code-Reject.
    pending_rejected: Vec<u8>,
    /// Data of the Echo-Request being handled, for ser.
    pending_echo: Option<Vec<u8>>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<FsmEvent>,
    reason: Option<String>,
    max_packet_len: usize,
}

impl<P: Negotiator> Fsm<P> {
    pub fn new(proto: P, config: FsmConfig) -> Self {
        Fsm {
            proto,
            config,
            state: State::Initial,
            restart_count: 0,
            timer: None,
            failures: 0,
            naks_received: 0,
            next_id: 1,
            request_id: 0,
            request: Vec::new(),
            reply_seen: true,
            rx_id: 0,
            pending_reply: None,
            pending_request: Vec::new(),
            pending_rejected: Vec::new(),
            pending_echo: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            reason: None,
            max_packet_len: 1500,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn proto(&self) -> &P {
        &self.proto
    }

    pub fn proto_mut(&mut self) -> &mut P {
        &mut self.proto
    }

    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// Why the protocol was closed (administrative Close or a refusal), if it was.
    pub fn close_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The largest packet (code to end of data) we may send; Code-Reject
    /// and Protocol-Reject contents are cut to fit. LCP sets it to the
    /// peer's MRU.
    pub fn set_max_packet_len(&mut self, len: usize) {
        self.max_packet_len = len.max(64);
    }

    /// The lower layer is up.
    pub fn up(&mut self, now: Instant) {
        self.step(now, Event::Up);
    }

    /// The lower layer is down.
    pub fn down(&mut self, now: Instant) {
        self.step(now, Event::Down);
    }

    /// Administrative Open.
    pub fn open(&mut self, now: Instant) {
        if matches!(self.state, State::Initial | State::Closed) {
            self.reason = None;
        }
        self.step(now, Event::Open);
    }

    /// Administrative Close; the reason goes into the Terminate-Request.
    pub fn close(&mut self, now: Instant, reason: impl Into<String>) {
        self.reason.get_or_insert_with(|| reason.into());
        self.step(now, Event::Close);
    }

    /// The peer rejected this whole protocol (an LCP Protocol-Reject naming
    /// it, seen by the owner): RXJ-.
    pub fn protocol_rejected_by_peer(&mut self, now: Instant) {
        self.reason.get_or_insert_with(|| {
            format!("the peer rejected {} (Protocol-Reject)", self.proto.name())
        });
        self.step(now, Event::RxjMinus);
    }

    /// The next packet to send (code first; the owner adds the protocol).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    pub fn poll_event(&mut self) -> Option<FsmEvent> {
        self.events.pop_front()
    }

    /// The restart timer may have expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(deadline) if deadline <= now => {
                self.timer = None;
                let event = if self.restart_count > 0 {
                    Event::TimeoutPlus
                } else {
                    Event::TimeoutMinus
                };
                self.step(now, event);
            }
            _ => {}
        }
    }

    /// Sends the outstanding Configure-Request again now, as if the
    /// restart timer had expired (RFC 1661 section 4.1, TO+), when one is
    /// outstanding (Req-Sent or Ack-Sent). Used when the peer is known to
    /// have discarded it: pppd holds its NCPs until CCP opens when MPPE is
    /// required, and would otherwise wait a whole restart interval.
    pub fn retransmit_now(&mut self, now: Instant) {
        if matches!(self.state, State::ReqSent | State::AckSent) && self.timer.is_some() {
            self.timer = Some(now);
            self.handle_timeout(now);
        }
    }

    /// Sends a packet of a protocol-specific code with a new identifier
    /// (LCP Echo-Request, CCP Reset-Request); returns the identifier.
    pub fn send_new(&mut self, code: Code, data: &[u8]) -> u8 {
        let id = self.new_id();
        self.send(code, id, data);
        id
    }

    /// Sends a packet with a given identifier.
    pub fn send(&mut self, code: Code, identifier: u8, data: &[u8]) {
        let repr = Repr {
            code,
            identifier,
            data,
        };
        match repr.to_vec() {
            Ok(bytes) => self.transmit.push_back(bytes),
            Err(e) => tracing::warn!(proto = self.proto.name(), "cannot emit {code:?}: {e}"),
        }
    }

    /// A packet of this protocol arrived (the PPP payload, code first).
    /// Malformed packets are silently discarded (RFC 1661 section 5).
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        let repr = match Repr::parse_bytes(bytes) {
            Ok(repr) => repr,
            Err(e) => {
                tracing::debug!(
                    proto = self.proto.name(),
                    "discarding malformed packet: {e}"
                );
                return;
            }
        };
        if matches!(self.state, State::Initial | State::Starting) {
            // The lower layer is down: nothing can have been received.
            tracing::debug!(
                proto = self.proto.name(),
                "discarding {:?} in {:?}",
                repr.code,
                self.state
            );
            return;
        }
        self.rx_id = repr.identifier;
        let data = repr.data;
        match repr.code {
            Code::ConfigureRequest => self.receive_configure_request(now, data),
            Code::ConfigureAck => self.receive_configure_ack(now, repr.identifier, data),
            Code::ConfigureNak | Code::ConfigureReject => {
                self.receive_configure_nak_reject(now, repr.code, repr.identifier, data)
            }
            Code::TerminateRequest => self.step(now, Event::Rtr),
            Code::TerminateAck => self.step(now, Event::Rta),
            Code::CodeReject => {
                let Some(&rejected) = data.first() else {
                    tracing::debug!(proto = self.proto.name(), "discarding empty Code-Reject");
                    return;
                };
                let rejected = Code::from(rejected);
                if self.proto.code_rejected(rejected) {
                    self.reason.get_or_insert_with(|| {
                        format!("the peer rejected code {rejected:?} (Code-Reject)")
                    });
                    self.step(now, Event::RxjMinus);
                } else {
                    self.step(now, Event::RxjPlus);
                }
            }
            Code::EchoRequest | Code::EchoReply | Code::DiscardRequest if self.proto.has_echo() => {
                self.proto.received_echo(repr.code, repr.identifier, data);
                self.pending_echo = (repr.code == Code::EchoRequest).then(|| data.to_vec());
                self.step(now, Event::Rxr);
            }
            Code::ProtocolReject if self.proto.has_protocol_reject() => {
                match ProtocolReject::parse(data) {
                    Ok(pr) if self.proto.protocol_rejected(pr.protocol) => {
                        self.reason.get_or_insert_with(|| {
                            format!("the peer rejected {}", self.proto.name())
                        });
                        self.step(now, Event::RxjMinus);
                    }
                    Ok(_) => self.step(now, Event::RxjPlus),
                    Err(e) => {
                        tracing::debug!(
                            proto = self.proto.name(),
                            "discarding Protocol-Reject: {e}"
                        )
                    }
                }
            }
            code => match self
                .proto
                .handle_code(self.state, code, repr.identifier, data)
            {
                CodeOutcome::Unknown => self.unknown_code(now, bytes),
                CodeOutcome::Consumed => {}
                CodeOutcome::Reply { code, data } => self.send(code, repr.identifier, &data),
            },
        }
    }

    fn unknown_code(&mut self, now: Instant, bytes: &[u8]) {
        let keep = bytes.len().min(self.max_packet_len.saturating_sub(4));
        self.pending_rejected = bytes.get(..keep).unwrap_or_default().to_vec();
        self.step(now, Event::Ruc);
    }

    fn receive_configure_request(&mut self, now: Instant, data: &[u8]) {
        if !matches!(
            self.state,
            State::Stopped | State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
        ) {
            // Closed answers with Terminate-Ack, Closing and Stopping ignore
            // it: no verdict is needed.
            self.step(now, Event::RcrGood);
            return;
        }
        let options = match Options::collect_all(data) {
            Ok(options) => options,
            Err(e) => {
                tracing::debug!(
                    proto = self.proto.name(),
                    "discarding Configure-Request: {e}"
                );
                return;
            }
        };
        let reject_mode = self.failures >= self.config.max_failure;
        let mut naks = Vec::new();
        let mut rejects = Vec::new();
        for option in &options {
            match self.proto.judge(*option, reject_mode) {
                Ok(Verdict::Ack) => {}
                Ok(Verdict::Nak(value)) if !reject_mode => {
                    if push_option(&mut naks, option.kind, &value).is_err() {
                        rejects.extend(option.to_vec());
                    }
                }
                Ok(Verdict::Nak(_) | Verdict::Reject) => rejects.extend(option.to_vec()),
                Err(reason) => {
                    tracing::info!(proto = self.proto.name(), "negotiation failed: {reason}");
                    self.reason.get_or_insert(reason);
                    self.step(now, Event::Close);
                    return;
                }
            }
        }
        if rejects.is_empty() && !reject_mode {
            self.proto.missing_options(&options, &mut naks);
        }
        let (code, reply) = if !rejects.is_empty() {
            (Code::ConfigureReject, rejects)
        } else if !naks.is_empty() {
            (Code::ConfigureNak, naks)
        } else {
            (Code::ConfigureAck, data.to_vec())
        };
        self.pending_reply = Some((code, reply));
        self.pending_request = data.to_vec();
        let event = if code == Code::ConfigureAck {
            Event::RcrGood
        } else {
            Event::RcrBad
        };
        self.step(now, event);
    }

    /// Whether a Configure-Ack/Nak/Reject with this identifier answers our
    /// outstanding request; see the module documentation.
    fn fresh_reply(&self, identifier: u8) -> bool {
        if self.state.negotiating() || self.state == State::Opened {
            identifier == self.request_id && !self.reply_seen
        } else {
            true
        }
    }

    fn receive_configure_ack(&mut self, now: Instant, identifier: u8, data: &[u8]) {
        if !self.fresh_reply(identifier) {
            tracing::debug!(
                proto = self.proto.name(),
                identifier,
                "discarding stale Configure-Ack"
            );
            return;
        }
        if self.state.negotiating() {
            if data != self.request.as_slice() {
                tracing::debug!(
                    proto = self.proto.name(),
                    "discarding Configure-Ack whose options differ"
                );
                return;
            }
            self.reply_seen = true;
            self.naks_received = 0;
            self.proto.request_acked();
        }
        self.step(now, Event::Rca);
    }

    fn receive_configure_nak_reject(
        &mut self,
        now: Instant,
        code: Code,
        identifier: u8,
        data: &[u8],
    ) {
        if !self.fresh_reply(identifier) {
            tracing::debug!(
                proto = self.proto.name(),
                identifier,
                "discarding stale {code:?}"
            );
            return;
        }
        if self.state.negotiating() {
            let options = match Options::collect_all(data) {
                Ok(options) => options,
                Err(e) => {
                    tracing::debug!(proto = self.proto.name(), "discarding {code:?}: {e}");
                    return;
                }
            };
            let ours = Options::collect_all(&self.request).unwrap_or_default();
            let result = if code == Code::ConfigureReject {
                if !options.iter().all(|o| ours.contains(o)) {
                    tracing::debug!(
                        proto = self.proto.name(),
                        "discarding Configure-Reject of options we did not send"
                    );
                    return;
                }
                self.reply_seen = true;
                self.proto.handle_reject(&options)
            } else {
                self.reply_seen = true;
                self.naks_received += 1;
                if self.naks_received > self.config.max_failure {
                    // The peer never agrees: drop what it keeps Nak'ing.
                    let named: Vec<RawOption<'_>> = ours
                        .iter()
                        .filter(|o| options.iter().any(|n| n.kind == o.kind))
                        .copied()
                        .collect();
                    tracing::debug!(
                        proto = self.proto.name(),
                        "Max-Failure Naks received: treating as Reject"
                    );
                    self.proto.handle_reject(&named)
                } else {
                    self.proto.handle_nak(&options)
                }
            };
            if let Err(reason) = result {
                tracing::info!(proto = self.proto.name(), "negotiation failed: {reason}");
                self.reason.get_or_insert(reason);
                self.step(now, Event::Close);
                return;
            }
        }
        self.step(now, Event::Rcn);
    }

    fn new_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            tracing::trace!(proto = self.proto.name(), "{:?} -> {:?}", self.state, state);
        }
        self.state = state;
        if !state.timer_runs() {
            self.timer = None;
        }
    }

    // The actions of RFC 1661 section 4.4.

    fn tlu(&mut self) {
        self.proto.this_layer_up();
        self.events.push_back(FsmEvent::Up);
    }

    fn tld(&mut self) {
        self.proto.this_layer_down();
        self.events.push_back(FsmEvent::Down);
    }

    fn tls(&mut self) {
        self.proto.this_layer_started();
        self.events.push_back(FsmEvent::Started);
    }

    fn tlf(&mut self) {
        self.proto.this_layer_finished();
        self.events.push_back(FsmEvent::Finished);
    }

    /// irc before a Configure-Request.
    fn irc_configure(&mut self) {
        self.restart_count = self.config.max_configure;
    }

    /// irc before a Terminate-Request.
    fn irc_terminate(&mut self) {
        self.restart_count = self.config.max_terminate;
    }

    fn zrc(&mut self, now: Instant) {
        self.restart_count = 0;
        self.timer = Some(now + self.config.restart_interval);
    }

    /// scr. `retransmit`: after TO+, same identifier and options.
    fn scr(&mut self, now: Instant, retransmit: bool) {
        if !retransmit {
            if !self.state.negotiating() {
                // Negotiation starts afresh.
                self.proto.reset();
                self.failures = 0;
                self.naks_received = 0;
            }
            let mut options = Vec::new();
            self.proto.write_request(&mut options);
            self.request = options;
            self.request_id = self.new_id();
        }
        self.reply_seen = false;
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + self.config.restart_interval);
        let (id, request) = (self.request_id, std::mem::take(&mut self.request));
        self.send(Code::ConfigureRequest, id, &request);
        self.request = request;
    }

    fn sca(&mut self) {
        let request = std::mem::take(&mut self.pending_request);
        let options = Options::collect_all(&request).unwrap_or_default();
        self.proto.peer_request_acked(&options);
        self.failures = 0;
        if let Some((_, reply)) = self.pending_reply.take() {
            self.send(Code::ConfigureAck, self.rx_id, &reply);
        }
    }

    fn scn(&mut self) {
        if let Some((code, reply)) = self.pending_reply.take() {
            if code == Code::ConfigureNak {
                self.failures += 1;
            }
            self.send(code, self.rx_id, &reply);
        }
    }

    fn str(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + self.config.restart_interval);
        let reason = self.reason.clone().unwrap_or_default();
        let keep = reason
            .len()
            .min(self.max_packet_len.saturating_sub(4))
            .min(255);
        let data = reason.as_bytes().get(..keep).unwrap_or_default().to_vec();
        self.send_new(Code::TerminateRequest, &data);
    }

    fn sta(&mut self) {
        self.send(Code::TerminateAck, self.rx_id, &[]);
    }

    fn scj(&mut self) {
        let rejected = std::mem::take(&mut self.pending_rejected);
        self.send_new(Code::CodeReject, &rejected);
    }

    fn ser(&mut self) {
        if let Some(request) = self.pending_echo.take() {
            let data = self.proto.echo_reply(&request);
            self.send(Code::EchoReply, self.rx_id, &data);
        }
    }

    /// One transition of the state table (RFC 1661 section 4.1); the
    /// table is in `docs/rfc1661-state-table.md`.
    fn step(&mut self, now: Instant, event: Event) {
        use Event::*;
        use State::*;
        let state = self.state;
        match (event, state) {
            (Up, Initial) => self.set_state(Closed),
            (Up, Starting) => {
                self.irc_configure();
                self.scr(now, false);
                self.set_state(ReqSent);
            }

            (Down, Closed) | (Down, Closing) => self.set_state(Initial),
            (Down, Stopped) => {
                self.tls();
                self.set_state(Starting);
            }
            (Down, Stopping | ReqSent | AckRcvd | AckSent) => self.set_state(Starting),
            (Down, Opened) => {
                self.tld();
                self.set_state(Starting);
            }

            (Open, Initial) => {
                self.tls();
                self.set_state(Starting);
            }
            (Open, Closed) => {
                self.irc_configure();
                self.scr(now, false);
                self.set_state(ReqSent);
            }
            (Open, Closing) => self.set_state(Stopping),
            (Open, Starting | Stopped | Stopping | ReqSent | AckRcvd | AckSent | Opened) => {}

            (Close, Initial) => {}
            (Close, Starting) => {
                self.tlf();
                self.set_state(Initial);
            }
            (Close, Closed | Stopped) => self.set_state(Closed),
            (Close, Closing | Stopping) => self.set_state(Closing),
            (Close, ReqSent | AckRcvd | AckSent) => {
                self.irc_terminate();
                self.str(now);
                self.set_state(Closing);
            }
            (Close, Opened) => {
                self.tld();
                self.irc_terminate();
                self.str(now);
                self.set_state(Closing);
            }

            (TimeoutPlus, Closing | Stopping) => self.str(now),
            (TimeoutPlus, ReqSent | AckRcvd) => {
                self.scr(now, true);
                self.set_state(ReqSent);
            }
            (TimeoutPlus, AckSent) => self.scr(now, true),

            (TimeoutMinus, Closing) => {
                self.tlf();
                self.set_state(Closed);
            }
            (TimeoutMinus, Stopping | ReqSent | AckRcvd | AckSent) => {
                if state != Stopping {
                    self.reason.get_or_insert_with(|| {
                        format!(
                            "no answer to {} Configure-Requests",
                            self.config.max_configure
                        )
                    });
                }
                self.tlf();
                self.set_state(Stopped);
            }

            (RcrGood | RcrBad, Closed) | (Rca | Rcn, Closed | Stopped) => self.sta(),
            (RcrGood, Stopped) => {
                self.irc_configure();
                self.scr(now, false);
                self.sca();
                self.set_state(AckSent);
            }
            (RcrBad, Stopped) => {
                self.irc_configure();
                self.scr(now, false);
                self.scn();
                self.set_state(ReqSent);
            }
            (RcrGood | RcrBad | Rca | Rcn, Closing | Stopping) => {}
            (RcrGood, ReqSent | AckSent) => {
                self.sca();
                self.set_state(AckSent);
            }
            (RcrGood, AckRcvd) => {
                self.sca();
                self.tlu();
                self.set_state(Opened);
            }
            (RcrGood, Opened) => {
                self.tld();
                self.scr(now, false);
                self.sca();
                self.set_state(AckSent);
            }
            (RcrBad, ReqSent | AckSent) => {
                self.scn();
                self.set_state(ReqSent);
            }
            (RcrBad, AckRcvd) => self.scn(),
            (RcrBad, Opened) => {
                self.tld();
                self.scr(now, false);
                self.scn();
                self.set_state(ReqSent);
            }

            (Rca, ReqSent) => {
                self.irc_configure();
                self.set_state(AckRcvd);
            }
            (Rca | Rcn, AckRcvd) => {
                self.scr(now, false);
                self.set_state(ReqSent);
            }
            (Rca, AckSent) => {
                self.irc_configure();
                self.tlu();
                self.set_state(Opened);
            }
            (Rca | Rcn, Opened) => {
                self.tld();
                self.scr(now, false);
                self.set_state(ReqSent);
            }
            (Rcn, ReqSent | AckSent) => {
                self.irc_configure();
                self.scr(now, false);
            }

            (Rtr, Closed | Stopped | Closing | Stopping) => self.sta(),
            (Rtr, ReqSent | AckRcvd | AckSent) => {
                self.sta();
                self.set_state(ReqSent);
            }
            (Rtr, Opened) => {
                self.reason
                    .get_or_insert_with(|| format!("the peer terminated {}", self.proto.name()));
                self.tld();
                self.zrc(now);
                self.sta();
                self.set_state(Stopping);
            }

            (Rta, Closed | Stopped | ReqSent | AckSent) => {}
            (Rta, Closing) => {
                self.tlf();
                self.set_state(Closed);
            }
            (Rta, Stopping) => {
                self.tlf();
                self.set_state(Stopped);
            }
            (Rta, AckRcvd) => self.set_state(ReqSent),
            (Rta, Opened) => {
                self.tld();
                self.scr(now, false);
                self.set_state(ReqSent);
            }

            (Ruc, Closed | Stopped | Closing | Stopping | ReqSent | AckRcvd | AckSent | Opened) => {
                self.scj()
            }

            (RxjPlus, AckRcvd) => self.set_state(ReqSent),
            (RxjPlus, Closed | Stopped | Closing | Stopping | ReqSent | AckSent | Opened) => {}

            (RxjMinus, Closed | Closing) => {
                self.tlf();
                self.set_state(Closed);
            }
            (RxjMinus, Stopped | Stopping | ReqSent | AckRcvd | AckSent) => {
                self.tlf();
                self.set_state(Stopped);
            }
            (RxjMinus, Opened) => {
                self.tld();
                self.irc_terminate();
                self.str(now);
                self.set_state(Stopping);
            }

            (Rxr, Opened) => self.ser(),
            (Rxr, Closed | Stopped | Closing | Stopping | ReqSent | AckRcvd | AckSent) => {}

            // The dashes of the table: events that cannot happen in these
            // states (the lower layer is down, or the timer is not running).
            (Up, Closed | Stopped | Closing | Stopping | ReqSent | AckRcvd | AckSent | Opened)
            | (Down, Initial | Starting)
            | (TimeoutPlus | TimeoutMinus, Initial | Starting | Closed | Stopped | Opened)
            | (
                RcrGood | RcrBad | Rca | Rcn | Rtr | Rta | Ruc | RxjPlus | RxjMinus | Rxr,
                Initial | Starting,
            ) => {
                tracing::debug!(proto = self.proto.name(), "ignoring {event:?} in {state:?}");
            }
        }
    }
}

#[cfg(test)]
#[path = "fsm_tests.rs"]
mod tests;
