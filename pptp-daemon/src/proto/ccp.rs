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
//!   allows it, stateful. As RFC 3078 section 2 describes and Windows and
//!   pppd (ccp.c) do, our first request offers every allowed key length at
//!   once with the H bit (`H|S|M|L` for `[128, 56, 40]`), and the peer's
//!   Configure-Nak picks one: we move to the strongest combination the Nak
//!   names that policy allows (pppd with `require-mppe-40` Naks `H|L`). A
//!   peer's request naming exactly one allowed combination is Acked; one
//!   naming several is Nak'ed to the strongest of them we allow (pppd Naks
//!   `S|L` to `S` the same way); one naming none we allow (or no option 18
//!   at all) is Nak'ed with what we offer. Once one direction has settled
//!   on a combination, the other is steered to the same one, so that both
//!   end equal. MPPC (the C bit) is never set; every other compression
//!   option is Rejected.
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

/// Which MPPE modes (RFC 3078 section 2, the H bit) we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatefulMode {
    /// Stateless only (the server's default, `mppe.stateful = false`).
    #[default]
    Never,
    /// Stateful when the peer asks for it, stateless otherwise (which we
    /// offer first): `mppe.stateful = true`.
    Allowed,
    /// Stateful only: what a peer that has no stateless mode (early
    /// Windows clients; pppd with `mppe-stateful` prefers it) asks for.
    /// Our client's `--mppe-stateful`, to test a server's stateful path.
    Required,
}

/// What MPPE combinations we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcpPolicy {
    pub policy: MppePolicy,
    /// Allowed key lengths, strongest first.
    pub key_lengths: Vec<KeyLength>,
    /// Which modes are allowed.
    pub stateful: StatefulMode,
}

impl Default for CcpPolicy {
    /// MPPE allowed, 128-bit keys, stateless only.
    fn default() -> Self {
        CcpPolicy::new(
            MppePolicy::Allow,
            &[KeyLength::Bits128],
            StatefulMode::Never,
        )
    }
}

impl CcpPolicy {
    /// A policy allowing `key_lengths` (any order, duplicates ignored).
    pub fn new(policy: MppePolicy, key_lengths: &[KeyLength], stateful: StatefulMode) -> Self {
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
        self.key_lengths.contains(&params.key_length)
            && match self.stateful {
                StatefulMode::Never => params.stateless,
                StatefulMode::Allowed => true,
                StatefulMode::Required => !params.stateless,
            }
    }

    /// Our preferred combination: the strongest key, stateless unless
    /// only stateful is allowed.
    pub fn preferred(&self) -> Option<MppeParams> {
        Some(MppeParams {
            key_length: *self.key_lengths.first()?,
            stateless: self.stateful != StatefulMode::Required,
        })
    }

    /// What our first Configure-Request offers (RFC 3078 section 2): every
    /// allowed key length, and the H bit (stateless, which we prefer; a
    /// peer wanting stateful Naks it away when `stateful` allows it), or
    /// no H bit when only stateful is allowed. `None` without key lengths.
    pub fn offer(&self) -> Option<SupportedBits> {
        if self.key_lengths.is_empty() {
            return None;
        }
        let mode = match self.stateful {
            StatefulMode::Required => 0,
            StatefulMode::Never | StatefulMode::Allowed => SupportedBits::H,
        };
        Some(SupportedBits(
            self.key_lengths
                .iter()
                .fold(mode, |bits, k| bits | SupportedBits::key_bit(*k)),
        ))
    }

    /// The best allowed combination among those `offer` names: strongest
    /// common key; stateless if offered and allowed, or if stateful is not
    /// allowed.
    pub fn best_of(&self, offer: SupportedBits) -> Option<MppeParams> {
        let key_length = offer.key_lengths().find(|k| self.key_lengths.contains(k))?;
        Some(MppeParams {
            key_length,
            stateless: match self.stateful {
                StatefulMode::Never => true,
                StatefulMode::Allowed => offer.has(SupportedBits::H),
                StatefulMode::Required => false,
            },
        })
    }

    /// The combination to steer `offer` to: `agreed` (what the other
    /// direction settled on) when `offer` names its key length, so that
    /// both directions end equal; otherwise [`CcpPolicy::best_of`].
    fn choose(&self, offer: SupportedBits, agreed: Option<MppeParams>) -> Option<MppeParams> {
        match agreed {
            Some(a) if offer.has(SupportedBits::key_bit(a.key_length)) && self.allows(a) => Some(a),
            _ => self.best_of(offer),
        }
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
        let ours = policy.offer();
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
    ///
    /// A peer that Acks our request while it still offers several key
    /// lengths (pppd and Windows Nak it down to one) has accepted any of
    /// them: the one its own request named, if among them, or else the
    /// strongest (the Linux kernel's ppp_mppe picks the strongest bit).
    pub fn outcome(&self) -> Result<MppeParams, String> {
        let peer = self.peer.and_then(SupportedBits::as_params);
        let ours = self.acked_ours.and_then(|acked| {
            acked.as_params().or_else(|| match peer {
                Some(p) if acked.0 | SupportedBits::from_params(p).0 == acked.0 => Some(p),
                _ => self.policy.best_of(acked),
            })
        });
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
        self.ours = self.policy.offer();
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
                let Some(ours) = self.ours else {
                    return Ok(Verdict::Reject);
                };
                let target = self
                    .policy
                    .choose(bits, ours.as_params())
                    .map(SupportedBits::from_params);
                Ok(match target {
                    Some(target) if bits == target => Verdict::Ack,
                    Some(target) => {
                        tracing::debug!("CCP: Nak'ing MPPE {bits:?} towards {target:?}");
                        Verdict::Nak(target.0.to_be_bytes().to_vec())
                    }
                    None => {
                        // Nothing we allow: say what we offer, so that the
                        // peer can choose (pppd does the same).
                        tracing::debug!("CCP: Nak'ing MPPE {bits:?}: we offer {ours:?}");
                        Verdict::Nak(ours.0.to_be_bytes().to_vec())
                    }
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
                let agreed = self.peer.and_then(SupportedBits::as_params);
                let Some(best) = self.policy.choose(suggested, agreed) else {
                    return Err(format!(
                        "the peer wants MPPE {suggested:?}; policy allows {:?}{}",
                        self.policy.key_lengths,
                        match self.policy.stateful {
                            StatefulMode::Never => " stateless only",
                            StatefulMode::Allowed => "",
                            StatefulMode::Required => " stateful only",
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
        policy_mode(
            keys,
            if stateful {
                StatefulMode::Allowed
            } else {
                StatefulMode::Never
            },
        )
    }

    fn policy_mode(keys: &[u16], mode: StatefulMode) -> CcpPolicy {
        let keys: Vec<KeyLength> = keys
            .iter()
            .map(|b| KeyLength::from_bits(*b).unwrap())
            .collect();
        CcpPolicy::new(MppePolicy::Allow, &keys, mode)
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

    /// H|S|M|L, H|M, H|L: what the server offers and what a 56-bit or a
    /// 40-bit peer settles on.
    const HSML: [u8; 6] = [0x12, 0x06, 0x01, 0x00, 0x00, 0xe0];
    const HM: [u8; 6] = [0x12, 0x06, 0x01, 0x00, 0x00, 0x80];

    #[test]
    fn server_offers_every_key_length() {
        let (mut c, _) = started(policy(&[40, 128], false));
        let hsl = [0x12, 0x06, 0x01, 0x00, 0x00, 0x60];
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 1, hsl.to_vec())]);
        let (mut c, _) = started(policy(&[128, 56, 40], true));
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 1, HSML.to_vec())]);
        let (mut c, _) = started(policy(&[128], false));
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 1, HS.to_vec())]);
    }

    /// pppd 2.4/2.5 with `require-mppe-40` against a server allowing
    /// [128, 56, 40], as ccp.c answers: its ccp_reqci clears the M bit
    /// (56-bit is MPPE_OPT_UNSUPPORTED) and, of S and L both set, keeps the
    /// one it allows, and Naks `H|L`; it requests `H|L` itself. Before the
    /// fix the server requested `H|S` alone, which pppd Rejects.
    #[test]
    fn transcript_pppd_require_mppe_40() {
        let (mut c, now) = started(policy(&[128, 56, 40], false));
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 1, HSML.to_vec())]);
        // pppd's request first: exactly one combination we allow: Acked.
        assert_eq!(reply(&mut c, &HL), (Code::ConfigureAck, HL.to_vec()));
        // pppd Naks ours down to H|L; we ask for exactly that.
        c.handle_packet(now, &pkt(Code::ConfigureNak, 1, &HL));
        assert_eq!(sent(&mut c), [(Code::ConfigureRequest, 2, HL.to_vec())]);
        c.handle_packet(now, &pkt(Code::ConfigureAck, 2, &HL));
        assert_eq!(
            events(&mut c),
            [CcpEvent::Up(MppeParams {
                key_length: KeyLength::Bits40,
                stateless: true
            })]
        );
    }

    /// A peer's request naming several key lengths is Nak'ed to the
    /// strongest we allow; once our direction has settled, the peer's is
    /// steered to the same combination even if it names a stronger one.
    #[test]
    fn peer_requests_are_steered_to_one_combination() {
        let (mut c, now) = started(policy(&[128, 56, 40], false));
        sent(&mut c);
        assert_eq!(reply(&mut c, &HSML), (Code::ConfigureNak, HS.to_vec()));
        // The peer Naks ours to 56-bit: its next request is steered there.
        c.handle_packet(now, &pkt(Code::ConfigureNak, 1, &HM));
        assert_eq!(sent(&mut c)[0].2, HM);
        assert_eq!(reply(&mut c, &HSML), (Code::ConfigureNak, HM.to_vec()));
        assert_eq!(reply(&mut c, &HM), (Code::ConfigureAck, HM.to_vec()));
        // A request naming nothing we allow is Nak'ed with what we offer.
        let (mut c, _) = started(policy(&[128, 56], false));
        sent(&mut c);
        let hsm = [0x12, 0x06, 0x01, 0x00, 0x00, 0xc0];
        assert_eq!(reply(&mut c, &HL), (Code::ConfigureNak, hsm.to_vec()));
    }

    /// A peer negotiating option 18 the way pppd's ccp.c does (ccp_reqci,
    /// ccp_nakci), generalised to 56-bit keys and stateful-only peers: it
    /// requests every combination it accepts; it Acks a request of ours
    /// naming exactly one, Naks one naming several to its strongest, and
    /// Rejects one naming none it accepts; it takes our Nak only if it
    /// names bits it offered, and otherwise gives up (pppd's "MPPE
    /// required but peer negotiation failed").
    struct RfcPeer {
        keys: Vec<KeyLength>,
        /// `Some(true)` stateless only, `Some(false)` stateful only,
        /// `None` either (stateless preferred).
        stateless: Option<bool>,
        request: SupportedBits,
        id: u8,
        /// What it Acked of ours, and what we Acked of its.
        acked_ours: Option<SupportedBits>,
        acked_its: Option<SupportedBits>,
        gave_up: bool,
    }

    impl RfcPeer {
        fn new(keys: &[u16], stateless: Option<bool>) -> RfcPeer {
            let keys: Vec<KeyLength> = keys
                .iter()
                .map(|b| KeyLength::from_bits(*b).unwrap())
                .collect();
            let h = if stateless == Some(false) {
                0
            } else {
                SupportedBits::H
            };
            let request = SupportedBits(
                keys.iter()
                    .fold(h, |bits, k| bits | SupportedBits::key_bit(*k)),
            );
            RfcPeer {
                keys,
                stateless,
                request,
                id: 0x60,
                acked_ours: None,
                acked_its: None,
                gave_up: false,
            }
        }

        fn mppe(bits: SupportedBits) -> Vec<u8> {
            let mut v = Vec::new();
            CcpOption::Mppe(bits).push_to(&mut v).unwrap();
            v
        }

        /// Its answer to our Configure-Request.
        fn judge(&mut self, data: &[u8]) -> (Code, Vec<u8>) {
            let Ok(CcpOption::Mppe(bits)) = CcpOption::parse(RawOption {
                kind: data[0],
                data: &data[2..],
            }) else {
                panic!("the server requested no MPPE: {data:?}");
            };
            let Some(key) = bits.key_lengths().find(|k| self.keys.contains(k)) else {
                return (Code::ConfigureReject, data.to_vec());
            };
            let stateless = bits.has(SupportedBits::H);
            if !stateless && self.stateless == Some(true) {
                return (Code::ConfigureReject, data.to_vec());
            }
            let want = SupportedBits::from_params(MppeParams {
                key_length: key,
                stateless: self.stateless.unwrap_or(stateless),
            });
            if bits == want {
                self.acked_ours = Some(bits);
                (Code::ConfigureAck, data.to_vec())
            } else {
                (Code::ConfigureNak, Self::mppe(want))
            }
        }

        fn request(&mut self) -> Vec<u8> {
            self.id += 1;
            pkt(Code::ConfigureRequest, self.id, &Self::mppe(self.request))
        }

        /// Our reply to its request; its next request, if any.
        fn answer(&mut self, code: Code, data: &[u8]) -> Option<Vec<u8>> {
            match code {
                Code::ConfigureAck => {
                    self.acked_its = Some(self.request);
                    None
                }
                Code::ConfigureNak => {
                    let Ok(CcpOption::Mppe(bits)) = CcpOption::parse(RawOption {
                        kind: data[0],
                        data: &data[2..],
                    }) else {
                        panic!("Nak without MPPE: {data:?}");
                    };
                    if bits.0 & !self.request.0 != 0 || bits.key_lengths().next().is_none() {
                        self.gave_up = true;
                        return None;
                    }
                    self.request = bits;
                    Some(self.request())
                }
                _ => {
                    self.gave_up = true;
                    None
                }
            }
        }
    }

    /// Runs CCP between the server with `p` and `peer` until both rest.
    fn negotiate(p: CcpPolicy, peer: &mut RfcPeer) -> Ccp {
        let (mut c, now) = started(p);
        let mut to_server = vec![peer.request()];
        for _ in 0..40 {
            for (code, id, data) in sent(&mut c) {
                match code {
                    Code::ConfigureRequest if !peer.gave_up => {
                        let (code, data) = peer.judge(&data);
                        to_server.push(pkt(code, id, &data));
                    }
                    Code::ConfigureAck | Code::ConfigureNak | Code::ConfigureReject
                        if !peer.gave_up =>
                    {
                        to_server.extend(peer.answer(code, &data));
                    }
                    Code::TerminateRequest => to_server.push(pkt(Code::TerminateAck, id, &[])),
                    _ => {}
                }
            }
            if to_server.is_empty() {
                break;
            }
            for packet in to_server.drain(..) {
                c.handle_packet(now, &packet);
            }
        }
        c
    }

    fn params(bits: u16, stateless: bool) -> MppeParams {
        MppeParams {
            key_length: KeyLength::from_bits(bits).unwrap(),
            stateless,
        }
    }

    /// The server allowing [128, 56, 40] against peers accepting one key
    /// length each, stateless only, stateful only or either, with the
    /// server allowing stateful or not: every peer gets its key length,
    /// stateful only when both allow it, the same both ways.
    #[test]
    fn every_configured_key_length_against_single_length_peers() {
        for bits in [40, 56, 128] {
            for server_stateful in [false, true] {
                for peer_mode in [Some(true), None, Some(false)] {
                    let mut peer = RfcPeer::new(&[bits], peer_mode);
                    let mut c = negotiate(policy(&[128, 56, 40], server_stateful), &mut peer);
                    let (got, state, ev) = (c.params(), c.state(), events(&mut c));
                    let case = format!(
                        "{bits}-bit peer, mode {peer_mode:?}, server stateful {server_stateful}: {ev:?}"
                    );
                    if peer_mode == Some(false) && !server_stateful {
                        // A stateful-only peer and a stateless-only server.
                        assert_eq!(got, None, "{case}");
                        assert_ne!(state, State::Opened, "{case}");
                        continue;
                    }
                    let stateless = peer_mode.unwrap_or(true);
                    let want = params(bits, stateless);
                    assert_eq!(got, Some(want), "{case}");
                    assert_eq!(ev, [CcpEvent::Up(want)], "{case}");
                    let bits = Some(SupportedBits::from_params(want));
                    assert_eq!((peer.acked_ours, peer.acked_its), (bits, bits), "{case}");
                    assert!(!peer.gave_up, "{case}");
                }
            }
        }
    }

    /// pppd's own default (128 and 40 both accepted) and a peer accepting
    /// everything get the strongest key.
    #[test]
    fn multi_length_peers_get_the_strongest_common_key() {
        let mut peer = RfcPeer::new(&[128, 40], Some(true));
        let c = negotiate(policy(&[128, 56, 40], false), &mut peer);
        assert_eq!(c.params(), Some(params(128, true)));
        let mut peer = RfcPeer::new(&[56, 40], None);
        let c = negotiate(policy(&[128, 56, 40], true), &mut peer);
        assert_eq!(c.params(), Some(params(56, true)));
        let mut peer = RfcPeer::new(&[128, 56, 40], Some(true));
        let c = negotiate(policy(&[56, 40], false), &mut peer);
        assert_eq!(c.params(), Some(params(56, true)));
    }

    /// A peer accepting no configured key length: CCP ends (Stopped or
    /// Closed, Finished reported, a reason given), never Opened.
    #[test]
    fn a_peer_accepting_nothing_configured_ends_ccp() {
        for (server, peer_keys) in [(&[128, 56][..], &[40][..]), (&[40][..], &[128][..])] {
            let mut peer = RfcPeer::new(peer_keys, Some(true));
            let mut c = negotiate(policy(server, false), &mut peer);
            assert_eq!(c.params(), None);
            assert!(
                matches!(c.state(), State::Stopped | State::Closed),
                "{:?}",
                c.state()
            );
            assert_eq!(events(&mut c), [CcpEvent::Finished]);
            assert!(
                c.close_reason().unwrap().contains("refuses MPPE"),
                "{:?}",
                c.close_reason()
            );
        }
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

    /// A stateful-only policy (our client's `--mppe-stateful`) offers no
    /// H bit, Naks a peer's stateless request towards stateful, insists
    /// on stateful when Nak'ed towards stateless, and opens stateful with
    /// a server that allows it.
    #[test]
    fn stateful_only_policy() {
        let s128 = [0x12, 0x06, 0, 0, 0, 0x40];
        let stateful = MppeParams {
            key_length: KeyLength::Bits128,
            stateless: false,
        };
        let p = policy_mode(&[128], StatefulMode::Required);
        assert!(p.allows(stateful));
        assert!(!p.allows(MppeParams {
            stateless: true,
            ..stateful
        }));
        assert_eq!(p.preferred(), Some(stateful));
        let (mut c, now) = started(p);
        let s = sent(&mut c);
        assert_eq!(s[0].2, s128);
        // The server's offer (H|S): Nak'ed to S.
        assert_eq!(reply(&mut c, &HS), (Code::ConfigureNak, s128.to_vec()));
        // A Nak of ours towards H|S: we ask for S again.
        c.handle_packet(now, &pkt(Code::ConfigureNak, s[0].1, &HS));
        let s = sent(&mut c);
        assert_eq!(s[0].2, s128);
        assert_eq!(reply(&mut c, &s128).0, Code::ConfigureAck);
        c.handle_packet(now, &pkt(Code::ConfigureAck, s[0].1, &s128));
        assert_eq!(c.state(), State::Opened);
        assert_eq!(c.params(), Some(stateful));
    }

    /// Our client requiring stateful against the server's policy: it
    /// opens stateful both ways when `mppe.stateful` allows it, and with
    /// the default policy (stateless only) the server's CCP never opens
    /// on stateful.
    #[test]
    fn stateful_client_against_server_policies() {
        for (server, opens) in [(StatefulMode::Allowed, true), (StatefulMode::Never, false)] {
            let (mut client, now) = started(policy_mode(&[128], StatefulMode::Required));
            let (mut srv, _) = started(policy_mode(&[128], server));
            for _ in 0..12 {
                for p in sent(&mut client) {
                    srv.handle_packet(now, &pkt(p.0, p.1, &p.2));
                }
                for p in sent(&mut srv) {
                    client.handle_packet(now, &pkt(p.0, p.1, &p.2));
                }
            }
            let want = opens.then_some(MppeParams {
                key_length: KeyLength::Bits128,
                stateless: false,
            });
            assert_eq!(srv.params(), want, "server {server:?}");
            assert_eq!(client.params(), want, "server {server:?}");
        }
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
