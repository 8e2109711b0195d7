//! CCP, the Compression Control Protocol (RFC 1962), used only to
//! negotiate MPPE (RFC 3078) through option 18, as a [`Negotiator`] for the
//! generic automaton; plus Reset-Request/Reset-Ack for stateful MPPE.
//!
//! Policy (`[mppe]` in the configuration):
//! - `deny`: CCP is not run at all; the session answers the peer's CCP with
//!   an LCP Protocol-Reject, as pppd does for a disabled protocol (Windows
//!   and pppd clients then go on unencrypted when their own policy lets
//!   them).
//! - `allow` / `require`: both ends must agree on the same single
//!   combination in both directions: one key length among
//!   `mppe.key_lengths` and stateless (H bit) or, when `mppe.stateful`
//!   allows it, stateful. Our request carries the best combination
//!   (stateless, strongest key first, like accel-ppp); the peer's offer is
//!   Acked only if it is exactly our combination and otherwise Nak'ed
//!   towards it (a request without option 18 gets it Nak'ed in). A Nak of
//!   ours moves us to the best combination it suggests that policy allows.
//!   MPPC (the C bit) is never set; every other compression option is
//!   Rejected.
//! - When the peer Rejects option 18, Naks it towards nothing we allow,
//!   or the two directions end up different, CCP closes with the reason;
//!   the session then takes the link down under `require` and goes on
//!   without MPPE under `allow`.
//! - Reset-Request (RFC 1962 section 2.2) while Opened is reported as
//!   [`CcpEvent::ResetRequest`]: the MPPE encryptor sets the flushed bit on
//!   its next packet. No Reset-Ack is sent: MPPE resynchronises through the
//!   flushed bit, and Microsoft's peers neither send nor expect it.
//!   [`Ccp::send_reset_request`] is the command for our decryptor.

use std::{collections::VecDeque, fmt, time::Instant};

use super::fsm::{CodeOutcome, Fsm, FsmConfig, FsmEvent, Negotiator, State, Verdict};
use crate::{
    mppe::{KeyLength, MppeParams},
    wire::{
        ccp::{CcpOption, SupportedBits},
        cp::{Code, RawOption},
    },
};

/// Whether sessions are encrypted with MPPE (RFC 3078): `mppe.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MppePolicy {
    /// Sessions without MPPE are refused.
    Require,
    /// MPPE when the peer agrees to it.
    #[default]
    Allow,
    /// Never MPPE: CCP is not run.
    Deny,
}

/// What MPPE combinations we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcpPolicy {
    pub policy: MppePolicy,
    /// Allowed key lengths, strongest first.
    pub key_lengths: Vec<KeyLength>,
    /// Whether stateful mode (no H bit) is allowed; stateless always is.
    pub stateful: bool,
}

impl Default for CcpPolicy {
    /// MPPE allowed, 128-bit keys, stateless only.
    fn default() -> Self {
        CcpPolicy::new(MppePolicy::Allow, &[KeyLength::Bits128], false)
    }
}

impl CcpPolicy {
    /// A policy allowing `key_lengths` (any order, duplicates ignored).
    pub fn new(policy: MppePolicy, key_lengths: &[KeyLength], stateful: bool) -> Self {
        let mut key_lengths = key_lengths.to_vec();
        key_lengths.sort_by_key(|k| std::cmp::Reverse(k.bits()));
        key_lengths.dedup();
        CcpPolicy {
            policy,
            key_lengths,
            stateful,
        }
    }

    /// Whether `params` is allowed.
    pub fn allows(&self, params: MppeParams) -> bool {
        self.key_lengths.contains(&params.key_length) && (params.stateless || self.stateful)
    }

    /// Our preferred combination: stateless with the strongest key.
    pub fn preferred(&self) -> Option<MppeParams> {
        Some(MppeParams {
            key_length: *self.key_lengths.first()?,
            stateless: true,
        })
    }

    /// The best allowed combination among those `offer` names: strongest
    /// common key; stateless if offered or if stateful is not allowed.
    pub fn best_of(&self, offer: SupportedBits) -> Option<MppeParams> {
        let key_length = offer.key_lengths().find(|k| self.key_lengths.contains(k))?;
        Some(MppeParams {
            key_length,
            stateless: offer.has(SupportedBits::H) || !self.stateful,
        })
    }
}

/// What CCP reports besides the automaton's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcpEvent {
    /// CCP is Opened with these MPPE parameters, the same both ways.
    Up(MppeParams),
    /// CCP left the Opened state.
    Down,
    /// CCP is finished: no MPPE. The reason is in [`Ccp::close_reason`].
    Finished,
    /// The peer lost MPPE synchronisation (stateful mode): flush.
    ResetRequest,
    /// The peer acknowledged our Reset-Request.
    ResetAck,
}

/// The CCP side of [`Negotiator`].
pub struct CcpOptions {
    policy: CcpPolicy,
    ours: Option<SupportedBits>,
    acked_ours: Option<SupportedBits>,
    peer: Option<SupportedBits>,
    events: VecDeque<CcpEvent>,
}

impl fmt::Debug for CcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CcpOptions")
            .field("policy", &self.policy)
            .field("ours", &self.ours)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl CcpOptions {
    pub fn new(policy: CcpPolicy) -> Self {
        let ours = policy.preferred().map(SupportedBits::from_params);
        CcpOptions {
            policy,
            ours,
            acked_ours: None,
            peer: None,
            events: VecDeque::new(),
        }
    }

    /// The agreed parameters, or why there are none, once both requests
    /// were Acked.
    pub fn outcome(&self) -> Result<MppeParams, String> {
        let ours = self.acked_ours.and_then(SupportedBits::as_params);
        let peer = self.peer.and_then(SupportedBits::as_params);
        match (ours, peer) {
            (Some(a), Some(b)) if a == b => Ok(a),
            (Some(a), Some(b)) => Err(format!(
                "MPPE differs by direction: {a:?} one way, {b:?} the other"
            )),
            _ => Err("CCP opened without MPPE".into()),
        }
    }
}

impl Negotiator for CcpOptions {
    fn name(&self) -> &'static str {
        "CCP"
    }

    fn reset(&mut self) {
        self.ours = self.policy.preferred().map(SupportedBits::from_params);
        self.acked_ours = None;
        self.peer = None;
    }

    fn write_request(&mut self, out: &mut Vec<u8>) {
        if let Some(bits) = self.ours {
            let _ = CcpOption::Mppe(bits).push_to(out);
        }
    }

    fn judge(
        &mut self,
        option: RawOption<'_>,
        _reject_if_disagree: bool,
    ) -> Result<Verdict, String> {
        match CcpOption::parse(option) {
            Ok(CcpOption::Mppe(bits)) => {
                let Some(target) = self.ours else {
                    return Ok(Verdict::Reject);
                };
                Ok(if bits == target {
                    Verdict::Ack
                } else {
                    tracing::debug!("CCP: Nak'ing MPPE {bits:?} towards {target:?}");
                    Verdict::Nak(target.0.to_be_bytes().to_vec())
                })
            }
            Ok(CcpOption::Unknown { kind, .. }) => {
                tracing::debug!("CCP: rejecting compression option {kind}");
                Ok(Verdict::Reject)
            }
            Err(e) => {
                tracing::debug!("CCP: rejecting malformed option: {e}");
                Ok(Verdict::Reject)
            }
        }
    }

    fn missing_options(&mut self, request: &[RawOption<'_>], naks: &mut Vec<u8>) {
        if let Some(target) = self.ours
            && !request
                .iter()
                .any(|o| o.kind == crate::wire::ccp::option_type::MPPE)
        {
            let _ = CcpOption::Mppe(target).push_to(naks);
        }
    }

    fn peer_request_acked(&mut self, request: &[RawOption<'_>]) {
        self.peer = request.iter().find_map(|o| match CcpOption::parse(*o) {
            Ok(CcpOption::Mppe(bits)) => Some(bits),
            _ => None,
        });
    }

    fn request_acked(&mut self) {
        self.acked_ours = self.ours;
    }

    fn handle_nak(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for option in options {
            if let Ok(CcpOption::Mppe(suggested)) = CcpOption::parse(*option) {
                let Some(best) = self.policy.best_of(suggested) else {
                    return Err(format!(
                        "the peer wants MPPE {suggested:?}; policy allows {:?}{}",
                        self.policy.key_lengths,
                        if self.policy.stateful {
                            ""
                        } else {
                            " stateless only"
                        }
                    ));
                };
                self.ours = Some(SupportedBits::from_params(best));
            }
        }
        Ok(())
    }

    fn handle_reject(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        if options
            .iter()
            .any(|o| o.kind == crate::wire::ccp::option_type::MPPE)
        {
            return Err("the peer refuses MPPE (Configure-Reject of option 18)".into());
        }
        Ok(())
    }

    fn handle_code(
        &mut self,
        state: State,
        code: Code,
        _identifier: u8,
        _data: &[u8],
    ) -> CodeOutcome {
        match code {
            Code::ResetRequest => {
                if state == State::Opened {
                    self.events.push_back(CcpEvent::ResetRequest);
                }
                CodeOutcome::Consumed
            }
            Code::ResetAck => {
                if state == State::Opened {
                    self.events.push_back(CcpEvent::ResetAck);
                }
                CodeOutcome::Consumed
            }
            _ => CodeOutcome::Unknown,
        }
    }
}

/// CCP on the automaton, reporting [`CcpEvent`]s.
pub struct Ccp {
    fsm: Fsm<CcpOptions>,
    params: Option<MppeParams>,
    events: VecDeque<CcpEvent>,
}

impl fmt::Debug for Ccp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ccp")
            .field("state", &self.fsm.state())
            .field("options", self.fsm.proto())
            .finish_non_exhaustive()
    }
}

impl Ccp {
    pub fn new(policy: CcpPolicy, config: FsmConfig) -> Self {
        Ccp {
            fsm: Fsm::new(CcpOptions::new(policy), config),
            params: None,
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.fsm.state()
    }

    pub fn policy(&self) -> &CcpPolicy {
        &self.fsm.proto().policy
    }

    /// The MPPE parameters while Opened.
    pub fn params(&self) -> Option<MppeParams> {
        self.params.filter(|_| self.fsm.state() == State::Opened)
    }

    pub fn close_reason(&self) -> Option<&str> {
        self.fsm.close_reason()
    }

    pub fn open(&mut self, now: Instant) {
        self.fsm.open(now);
        self.pump(now);
    }

    pub fn up(&mut self, now: Instant) {
        self.fsm.up(now);
        self.pump(now);
    }

    pub fn down(&mut self, now: Instant) {
        self.fsm.down(now);
        self.pump(now);
    }

    pub fn close(&mut self, now: Instant, reason: impl Into<String>) {
        self.fsm.close(now, reason);
        self.pump(now);
    }

    /// The peer Protocol-Rejected CCP.
    pub fn protocol_rejected_by_peer(&mut self, now: Instant) {
        self.fsm.protocol_rejected_by_peer(now);
        self.pump(now);
    }

    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.fsm.handle_packet(now, packet);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.fsm.handle_timeout(now);
        self.pump(now);
    }

    /// Our MPPE decryptor lost synchronisation (stateful mode): ask the
    /// peer to flush (RFC 3078 section 3.3). Only while Opened.
    pub fn send_reset_request(&mut self) {
        if self.fsm.state() == State::Opened {
            self.fsm.send_new(Code::ResetRequest, &[]);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.fsm.poll_transmit()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fsm.poll_timeout()
    }

    pub fn poll_event(&mut self) -> Option<CcpEvent> {
        self.events.pop_front()
    }

    fn pump(&mut self, now: Instant) {
        loop {
            while let Some(e) = self.fsm.proto_mut().events.pop_front() {
                self.events.push_back(e);
            }
            let Some(event) = self.fsm.poll_event() else {
                break;
            };
            match event {
                FsmEvent::Up => match self.fsm.proto().outcome() {
                    Ok(params) => {
                        self.params = Some(params);
                        self.events.push_back(CcpEvent::Up(params));
                    }
                    Err(reason) => {
                        tracing::info!("CCP: {reason}");
                        self.fsm.close(now, reason);
                    }
                },
                FsmEvent::Down => {
                    if self.params.take().is_some() {
                        self.events.push_back(CcpEvent::Down);
                    }
                }
                FsmEvent::Finished => self.events.push_back(CcpEvent::Finished),
                FsmEvent::Started => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_support::{Sent, drain, pkt};

    fn sent(c: &mut Ccp) -> Vec<Sent> {
        drain(|| c.poll_transmit())
    }

    fn events(c: &mut Ccp) -> Vec<CcpEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn policy(keys: &[u16], stateful: bool) -> CcpPolicy {
        let keys: Vec<KeyLength> = keys
            .iter()
            .map(|b| KeyLength::from_bits(*b).unwrap())
            .collect();
        CcpPolicy::new(MppePolicy::Allow, &keys, stateful)
    }

    fn started(p: CcpPolicy) -> (Ccp, Instant) {
        let now = Instant::now();
        let mut c = Ccp::new(p, FsmConfig::default());
        c.open(now);
        c.up(now);
        (c, now)
    }

    const HS: [u8; 6] = [0x12, 0x06, 0x01, 0x00, 0x00, 0x40];
    const HL: [u8; 6] = [0x12, 0x06, 0x01, 0x00, 0x00, 0x20];

    #[test]
    fn server_requests_stateless_128() {
        let (mut c, _) = started(policy(&[40, 128], false));
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 1, HS.to_vec())]);
    }

    fn reply(c: &mut Ccp, request: &[u8]) -> (Code, Vec<u8>) {
        c.handle_packet(Instant::now(), &pkt(Code::ConfigureRequest, 0x31, request));
        let r = sent(c).into_iter().find(|p| p.1 == 0x31).unwrap();
        (r.0, r.2)
    }

    #[test]
    fn peer_offers_are_naked_towards_ours() {
        let (mut c, _) = started(policy(&[40, 128], false));
        sent(&mut c);
        // Windows offers H, S, M, L: Nak'ed to H+S.
        assert_eq!(
            reply(&mut c, &[0x12, 0x06, 0x01, 0, 0, 0xe0]),
            (Code::ConfigureNak, HS.to_vec())
        );
        // MPPC alongside: also Nak'ed (C cleared).
        assert_eq!(
            reply(&mut c, &[0x12, 0x06, 0x01, 0, 0, 0x41]),
            (Code::ConfigureNak, HS.to_vec())
        );
        // Stateless 128 exactly: Acked.
        assert_eq!(reply(&mut c, &HS), (Code::ConfigureAck, HS.to_vec()));
    }

    #[test]
    fn other_options_rejected_and_mppe_naked_in() {
        let (mut c, _) = started(policy(&[128], false));
        sent(&mut c);
        // Deflate and Stac with MPPE: rejected.
        let request = [
            0x1a, 0x04, 0x78, 0x00, 0x11, 0x05, 0x00, 0x01, 0x03, 0x12, 0x06, 0x01, 0, 0, 0x40,
        ];
        assert_eq!(
            reply(&mut c, &request),
            (Code::ConfigureReject, request[..9].to_vec())
        );
        // Nothing at all: MPPE Nak'ed in.
        assert_eq!(reply(&mut c, &[]), (Code::ConfigureNak, HS.to_vec()));
        // Malformed option 18.
        assert_eq!(
            reply(&mut c, &[0x12, 0x05, 1, 0, 0]).0,
            Code::ConfigureReject
        );
    }

    #[test]
    fn nak_of_ours_moves_to_an_allowed_combination() {
        let (mut c, now) = started(policy(&[40, 128], false));
        let id = sent(&mut c)[0].1;
        // The peer can only do 40-bit.
        c.handle_packet(now, &pkt(Code::ConfigureNak, id, &HL));
        let s = sent(&mut c);
        assert_eq!(s[0].2, HL);
        // Then the peer's own 40-bit request is Acked and CCP opens.
        assert_eq!(reply(&mut c, &HL).0, Code::ConfigureAck);
        c.handle_packet(now, &pkt(Code::ConfigureAck, s[0].1, &HL));
        assert_eq!(
            events(&mut c),
            [CcpEvent::Up(MppeParams {
                key_length: KeyLength::Bits40,
                stateless: true
            })]
        );
        assert_eq!(c.state(), State::Opened);
    }

    #[test]
    fn nak_towards_something_we_do_not_allow_closes() {
        let (mut c, now) = started(policy(&[128], false));
        let id = sent(&mut c)[0].1;
        c.handle_packet(now, &pkt(Code::ConfigureNak, id, &HL));
        assert_eq!(c.state(), State::Closing);
        assert!(
            c.close_reason().unwrap().contains("policy allows"),
            "{:?}",
            c.close_reason()
        );
    }

    #[test]
    fn stateful_only_when_allowed() {
        let s128 = [0x12, 0x06, 0, 0, 0, 0x40];
        let (mut c, now) = started(policy(&[128], false));
        let id = sent(&mut c)[0].1;
        // Suggesting stateful when it is not allowed: we insist on stateless.
        c.handle_packet(now, &pkt(Code::ConfigureNak, id, &s128));
        assert_eq!(sent(&mut c)[0].2, HS);
        let (mut c, now) = started(policy(&[128], true));
        let id = sent(&mut c)[0].1;
        c.handle_packet(now, &pkt(Code::ConfigureNak, id, &s128));
        let s = sent(&mut c);
        assert_eq!(s[0].2, s128);
        assert_eq!(reply(&mut c, &s128).0, Code::ConfigureAck);
        c.handle_packet(now, &pkt(Code::ConfigureAck, s[0].1, &s128));
        assert_eq!(
            c.params(),
            Some(MppeParams {
                key_length: KeyLength::Bits128,
                stateless: false
            })
        );
    }

    #[test]
    fn reject_of_mppe_closes_and_protocol_reject_finishes() {
        let (mut c, now) = started(policy(&[128], false));
        let id = sent(&mut c)[0].1;
        c.handle_packet(now, &pkt(Code::ConfigureReject, id, &HS));
        assert!(c.close_reason().unwrap().contains("refuses MPPE"));
        let (mut c, now) = started(policy(&[128], false));
        c.protocol_rejected_by_peer(now);
        assert_eq!(c.state(), State::Stopped);
        assert_eq!(events(&mut c), [CcpEvent::Finished]);
        assert!(c.close_reason().unwrap().contains("Protocol-Reject"));
    }

    fn opened() -> (Ccp, Instant) {
        let (mut c, now) = started(policy(&[128], false));
        let id = sent(&mut c)[0].1;
        reply(&mut c, &HS);
        c.handle_packet(now, &pkt(Code::ConfigureAck, id, &HS));
        assert_eq!(c.state(), State::Opened);
        events(&mut c);
        (c, now)
    }

    #[test]
    fn reset_request_and_ack() {
        let (mut c, now) = opened();
        c.handle_packet(now, &pkt(Code::ResetRequest, 7, &[]));
        assert_eq!(events(&mut c), [CcpEvent::ResetRequest]);
        assert!(sent(&mut c).is_empty(), "no Reset-Ack for MPPE");
        c.send_reset_request();
        let s = sent(&mut c);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].0, s[0].2.as_slice()), (Code::ResetRequest, &[][..]));
        c.handle_packet(now, &pkt(Code::ResetAck, s[0].1, &[]));
        assert_eq!(events(&mut c), [CcpEvent::ResetAck]);
        // Echo is not a CCP code.
        c.handle_packet(now, &pkt(Code::EchoRequest, 9, &[0, 0, 0, 0]));
        assert_eq!(sent(&mut c)[0].0, Code::CodeReject);
    }

    #[test]
    fn renegotiation_reports_down() {
        let (mut c, now) = opened();
        c.handle_packet(now, &pkt(Code::ConfigureRequest, 40, &HS));
        assert_eq!(events(&mut c), [CcpEvent::Down]);
        assert_eq!(c.params(), None);
    }

    #[test]
    fn policy_helpers() {
        let p = policy(&[40, 128, 56], false);
        assert_eq!(
            p.key_lengths,
            [KeyLength::Bits128, KeyLength::Bits56, KeyLength::Bits40]
        );
        assert_eq!(
            p.best_of(SupportedBits(0xe0)),
            Some(MppeParams {
                key_length: KeyLength::Bits128,
                stateless: true
            })
        );
        assert_eq!(p.best_of(SupportedBits(SupportedBits::C)), None);
        assert!(!p.allows(MppeParams {
            key_length: KeyLength::Bits128,
            stateless: false
        }));
    }
}
