//! The server end of the control connection (the PAC of RFC 2637): what
//! only a server does. See the parent module for the whole contract.

use std::time::Instant;

use super::*;

impl ControlConnection {
    /// The server end of a control connection the peer just opened.
    pub fn server(
        settings: ControlSettings,
        allocator: Box<dyn CallIdAllocator + Send>,
        now: Instant,
    ) -> Self {
        Self::new(Role::Server { allocator }, settings, now)
    }

    pub(super) fn start_reply(&self, result_code: StartResult) -> StartControlConnectionReply {
        let s = &self.settings;
        StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result_code,
            error_code: ErrorCode::None,
            framing_capabilities: s.framing_capabilities,
            bearer_capabilities: s.bearer_capabilities,
            maximum_channels: s.maximum_channels,
            firmware_revision: s.firmware_revision,
            host_name: s.host_name,
            vendor_string: s.vendor_string,
        }
    }

    pub(super) fn on_start_request(&mut self, now: Instant, m: StartControlConnectionRequest) {
        const KIND: ControlMessageType = ControlMessageType::StartControlConnectionRequest;
        if !matches!(self.role, Role::Server { .. }) {
            self.ignore(KIND, "this end is the client");
            return;
        }
        if self.state != State::Starting {
            self.send(self.start_reply(StartResult::ChannelAlreadyExists));
            self.ignore(
                KIND,
                "control connection already established (answered result 3)",
            );
            return;
        }
        if m.protocol_version != PROTOCOL_VERSION {
            let result = StartResult::UnsupportedProtocolVersion;
            self.send(self.start_reply(result));
            self.terminate(CloseReason::StartRefused {
                result,
                error: ErrorCode::None,
            });
            return;
        }
        self.send(self.start_reply(StartResult::Success));
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
    }

    pub(super) fn refuse_call(
        &mut self,
        m: &OutgoingCallRequest,
        result: OutgoingCallResult,
        error: ErrorCode,
    ) {
        self.send(OutgoingCallReply {
            call_id: 0,
            peer_call_id: m.call_id,
            result_code: result,
            error_code: error,
            cause_code: 0,
            connect_speed: 0,
            packet_receive_window_size: 0,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        });
        self.events.push_back(ControlEvent::CallRejected {
            peer_call_id: m.call_id,
            result,
            error,
        });
    }

    pub(super) fn on_outgoing_call_request(&mut self, _now: Instant, m: OutgoingCallRequest) {
        const KIND: ControlMessageType = ControlMessageType::OutgoingCallRequest;
        if !matches!(self.role, Role::Server { .. }) {
            self.send(OutgoingCallReply {
                call_id: 0,
                peer_call_id: m.call_id,
                result_code: OutgoingCallResult::DoNotAccept,
                error_code: ErrorCode::None,
                cause_code: 0,
                connect_speed: 0,
                packet_receive_window_size: 0,
                packet_processing_delay: 0,
                physical_channel_id: 0,
            });
            self.ignore(KIND, "this end is the client (answered Do Not Accept)");
            return;
        }
        match self.state {
            State::Established => {}
            State::Starting => {
                let (result, error) = (OutgoingCallResult::GeneralError, ErrorCode::NotConnected);
                return self.refuse_call(&m, result, error);
            }
            State::Stopping { .. } | State::Closed => {
                return self.ignore(KIND, "the control connection is closing");
            }
        }
        if self.by_peer.contains_key(&m.call_id) {
            let (result, error) = (OutgoingCallResult::GeneralError, ErrorCode::BadCallId);
            return self.refuse_call(&m, result, error);
        }
        if self.calls.len() >= self.settings.max_calls {
            return self.refuse_call(&m, OutgoingCallResult::Busy, ErrorCode::None);
        }
        let allocated = match &mut self.role {
            Role::Server { allocator } => allocator.allocate(),
            Role::Client { .. } => None,
        };
        let Some(our_call_id) = allocated else {
            return self.refuse_call(&m, OutgoingCallResult::Busy, ErrorCode::None);
        };
        if self.calls.contains_key(&our_call_id) {
            // The allocator handed out an ID this connection holds: a bug
            // there; refuse rather than mix two calls up.
            let (result, error) = (OutgoingCallResult::GeneralError, ErrorCode::NoResource);
            return self.refuse_call(&m, result, error);
        }
        let s = &self.settings;
        let info = CallInfo {
            our_call_id,
            peer_call_id: m.call_id,
            call_serial_number: m.call_serial_number,
            peer_receive_window: m.packet_receive_window_size,
            peer_processing_delay: m.packet_processing_delay,
            our_receive_window: s.receive_window,
            connect_speed: s.connect_speed,
        };
        let reply = OutgoingCallReply {
            call_id: our_call_id,
            peer_call_id: m.call_id,
            result_code: OutgoingCallResult::Connected,
            error_code: ErrorCode::None,
            cause_code: 0,
            connect_speed: s.connect_speed,
            packet_receive_window_size: s.receive_window,
            packet_processing_delay: s.processing_delay,
            physical_channel_id: 0,
        };
        self.calls.insert(
            our_call_id,
            Call {
                info,
                state: CallState::Connected,
                connected: true,
                deadline: None,
            },
        );
        self.by_peer.insert(m.call_id, our_call_id);
        self.setup_deadline = None;
        self.send(reply);
        self.events.push_back(ControlEvent::CallConnected(info));
    }

    pub(super) fn on_incoming_call_request(&mut self, m: IncomingCallRequest) {
        self.send(IncomingCallReply {
            call_id: 0,
            peer_call_id: m.call_id,
            result_code: IncomingCallResult::DoNotAccept,
            error_code: ErrorCode::None,
            packet_receive_window_size: 0,
            packet_transmit_delay: 0,
        });
        self.ignore(
            ControlMessageType::IncomingCallRequest,
            "incoming calls are not accepted (answered Do Not Accept)",
        );
    }

    pub(super) fn on_call_clear_request(&mut self, m: CallClearRequest) {
        const KIND: ControlMessageType = ControlMessageType::CallClearRequest;
        if !matches!(self.role, Role::Server { .. }) {
            return self.ignore(KIND, "this end is the client");
        }
        // The Call ID is the peer's own (RFC 2637 section 2.12).
        let Some(&our_call_id) = self.by_peer.get(&m.call_id) else {
            return self.ignore(KIND, "unknown call");
        };
        self.send(disconnect_notify(m.call_id, DisconnectResult::Request));
        self.remove_call(
            our_call_id,
            CallEndReason::PeerCleared,
            CallFailure::Aborted,
        );
    }
}
