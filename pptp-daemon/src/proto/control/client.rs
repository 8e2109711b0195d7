//! The client end of the control connection (the PNS of RFC 2637): what
//! only a client does (our own client uses it). See the parent module for
//! the whole contract.

use std::time::Instant;

use super::*;

impl ControlConnection {
    /// The client end of a control connection just opened: sends
    /// Start-Control-Connection-Request.
    pub fn client(settings: ControlSettings, now: Instant) -> Self {
        let mut this = Self::new(Role::Client { next_serial: 1 }, settings, now);
        let s = &this.settings;
        let request = StartControlConnectionRequest {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: s.framing_capabilities,
            bearer_capabilities: s.bearer_capabilities,
            maximum_channels: s.maximum_channels,
            firmware_revision: s.firmware_revision,
            host_name: s.host_name,
            vendor_string: s.vendor_string,
        };
        this.send(request);
        this
    }

    // ----- commands -----

    /// Client: asks for a call with our Call ID `our_call_id`
    /// (Outgoing-Call-Request, sent once the connection is established).
    pub fn open_call(&mut self, now: Instant, our_call_id: u16) -> Result<(), CommandError> {
        let Role::Client { next_serial } = &mut self.role else {
            return Err(CommandError::WrongSide(Side::Client));
        };
        let serial = *next_serial;
        *next_serial = serial.wrapping_add(1);
        match self.state {
            State::Closed | State::Stopping { .. } => return Err(CommandError::Closed),
            State::Starting | State::Established => {}
        }
        if self.calls.contains_key(&our_call_id) {
            return Err(CommandError::DuplicateCallId(our_call_id));
        }
        if self.calls.len() >= self.settings.max_calls {
            return Err(CommandError::TooManyCalls(self.settings.max_calls));
        }
        let info = CallInfo {
            our_call_id,
            peer_call_id: 0,
            call_serial_number: serial,
            peer_receive_window: 0,
            peer_processing_delay: 0,
            our_receive_window: self.settings.receive_window,
            connect_speed: 0,
        };
        let call = Call {
            info,
            state: CallState::Queued,
            connected: false,
            deadline: None,
        };
        self.calls.insert(our_call_id, call);
        if self.is_established() {
            self.request_call(now, our_call_id);
        }
        Ok(())
    }

    /// Client: sends Set-Link-Info for a connected call (after LCP has
    /// negotiated the ACCMs; the first one goes out by itself).
    pub fn set_link_info(
        &mut self,
        _now: Instant,
        our_call_id: u16,
        send_accm: u32,
        receive_accm: u32,
    ) -> Result<(), CommandError> {
        if !matches!(self.role, Role::Client { .. }) {
            return Err(CommandError::WrongSide(Side::Client));
        }
        if !self.is_established() {
            return Err(CommandError::Closed);
        }
        let call = self
            .calls
            .get(&our_call_id)
            .ok_or(CommandError::UnknownCall(our_call_id))?;
        if call.state != CallState::Connected {
            return Err(CommandError::NotConnected(our_call_id));
        }
        let peer_call_id = call.info.peer_call_id;
        self.send(SetLinkInfo {
            peer_call_id,
            send_accm,
            receive_accm,
        });
        Ok(())
    }

    /// Client: sends the Outgoing-Call-Request of a queued call.
    pub(super) fn request_call(&mut self, now: Instant, our_call_id: u16) {
        let s = &self.settings;
        let Some(call) = self.calls.get_mut(&our_call_id) else {
            return;
        };
        call.state = CallState::Requested;
        call.deadline = deadline(now, s.setup_timeout);
        let request = OutgoingCallRequest {
            call_id: our_call_id,
            call_serial_number: call.info.call_serial_number,
            minimum_bps: 300,
            maximum_bps: 100_000_000,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            packet_receive_window_size: s.receive_window,
            packet_processing_delay: s.processing_delay,
            phone_number_length: 0,
            phone_number: NulPadded::EMPTY,
            subaddress: NulPadded::EMPTY,
        };
        self.send(request);
    }

    pub(super) fn on_start_reply(&mut self, now: Instant, m: StartControlConnectionReply) {
        const KIND: ControlMessageType = ControlMessageType::StartControlConnectionReply;
        if !matches!(self.role, Role::Client { .. }) {
            self.ignore(KIND, "this end is the server");
            return;
        }
        if self.state != State::Starting {
            self.ignore(KIND, "not waiting for Start-Control-Connection-Reply");
            return;
        }
        if m.result_code != StartResult::Success {
            self.terminate(CloseReason::StartRefused {
                result: m.result_code,
                error: m.error_code,
            });
            return;
        }
        self.setup_deadline = None;
        let peer = PeerInfo {
            protocol_version: m.protocol_version,
            framing_capabilities: m.framing_capabilities,
            bearer_capabilities: m.bearer_capabilities,
            maximum_channels: m.maximum_channels,
            firmware_revision: m.firmware_revision,
            host_name: m.host_name,
            vendor_string: m.vendor_string,
        };
        self.establish(now, peer);
        let queued: Vec<u16> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == CallState::Queued)
            .map(|(&id, _)| id)
            .collect();
        for id in queued {
            self.request_call(now, id);
        }
    }

    pub(super) fn on_outgoing_call_reply(&mut self, m: OutgoingCallReply) {
        const KIND: ControlMessageType = ControlMessageType::OutgoingCallReply;
        if !matches!(self.role, Role::Client { .. }) {
            return self.ignore(KIND, "this end is the server");
        }
        let our_call_id = m.peer_call_id;
        let Some(call) = self.calls.get_mut(&our_call_id) else {
            return self.ignore(KIND, "unknown call");
        };
        if call.state != CallState::Requested {
            return self.ignore(KIND, "the call is not waiting for a reply");
        }
        if m.result_code != OutgoingCallResult::Connected {
            let reason = CallFailure::Refused {
                result: m.result_code,
                error: m.error_code,
                cause: m.cause_code,
            };
            return self.remove_call(our_call_id, CallEndReason::ControlClosed, reason);
        }
        call.state = CallState::Connected;
        call.connected = true;
        call.deadline = None;
        call.info.peer_call_id = m.call_id;
        call.info.peer_receive_window = m.packet_receive_window_size;
        call.info.peer_processing_delay = m.packet_processing_delay;
        call.info.connect_speed = m.connect_speed;
        let info = call.info;
        self.by_peer.insert(m.call_id, our_call_id);
        self.events.push_back(ControlEvent::CallConnected(info));
        // What Windows sends once the call is up (RFC 2637 section 2.15).
        self.send(SetLinkInfo {
            peer_call_id: m.call_id,
            send_accm: 0xffff_ffff,
            receive_accm: 0xffff_ffff,
        });
    }

    pub(super) fn on_call_disconnect_notify(&mut self, m: CallDisconnectNotify) {
        const KIND: ControlMessageType = ControlMessageType::CallDisconnectNotify;
        if !matches!(self.role, Role::Client { .. }) {
            return self.ignore(KIND, "this end is the server");
        }
        // Our own Call ID (what servers send in practice), or the server's
        // (what RFC 2637 section 2.13 says); see the module documentation.
        let our_call_id = if self.calls.contains_key(&m.call_id) {
            m.call_id
        } else if let Some(&ours) = self.by_peer.get(&m.call_id) {
            ours
        } else {
            return self.ignore(KIND, "unknown call");
        };
        let Some(call) = self.calls.get(&our_call_id) else {
            return;
        };
        let ended = match call.state {
            CallState::Clearing => CallEndReason::LocalClear,
            _ => CallEndReason::PeerDisconnected {
                result: m.result_code,
                error: m.error_code,
                cause: m.cause_code,
            },
        };
        let failed = match call.state {
            CallState::Clearing => CallFailure::Aborted,
            _ => CallFailure::Disconnected {
                result: m.result_code,
                error: m.error_code,
                cause: m.cause_code,
            },
        };
        self.remove_call(our_call_id, ended, failed);
    }
}
