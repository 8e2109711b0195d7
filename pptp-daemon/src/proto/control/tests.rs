use super::*;
use crate::wire::pptp::{IncomingCallConnected, MAGIC_COOKIE};

type Pool = Arc<Mutex<CallIdPool>>;

const SECOND: Duration = Duration::from_secs(1);

fn pool(capacity: usize) -> Pool {
    Arc::new(Mutex::new(CallIdPool::new(capacity, 0x5eed_0001)))
}

fn live(pool: &Pool) -> usize {
    pool.lock().unwrap().live()
}

fn settings() -> ControlSettings {
    ControlSettings {
        host_name: NulPadded::truncated(b"test-server"),
        setup_timeout: 30 * SECOND,
        echo_interval: 60 * SECOND,
        echo_failures: 3,
        stop_timeout: 10 * SECOND,
        ..ControlSettings::default()
    }
}

fn client_settings() -> ControlSettings {
    ControlSettings {
        host_name: NulPadded::EMPTY,
        vendor_string: NulPadded::truncated(b"Microsoft Windows NT"),
        maximum_channels: 0,
        ..settings()
    }
}

fn drain_events(c: &mut ControlConnection) -> Vec<ControlEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn drain_messages(c: &mut ControlConnection) -> Vec<ControlMessage> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|bytes| ControlMessage::parse(&bytes).expect("we emit valid messages"))
        .collect()
}

/// Odd chunk sizes to split (and join) the byte stream with.
const CHUNKS: [usize; 8] = [1, 7, 3, 29, 220, 13, 64, 2];

/// Feeds a stream to a connection in odd chunks.
fn deliver(c: &mut ControlConnection, now: Instant, stream: &[u8], round: &mut usize) {
    let mut rest = stream;
    while !rest.is_empty() {
        let size = CHUNKS[*round % CHUNKS.len()].min(rest.len());
        *round += 1;
        let (chunk, tail) = rest.split_at(size);
        c.handle_bytes(now, chunk);
        rest = tail;
    }
}

/// A server and a client on a simulated clock; bytes pass between them
/// joined into one stream per direction and cut in odd chunks.
struct Pair {
    now: Instant,
    server: ControlConnection,
    client: ControlConnection,
    pool: Pool,
    server_events: Vec<ControlEvent>,
    client_events: Vec<ControlEvent>,
    /// Everything each side sent, in order.
    server_sent: Vec<ControlMessage>,
    client_sent: Vec<ControlMessage>,
    round: usize,
}

impl Pair {
    fn new() -> Self {
        Self::with(settings(), client_settings(), pool(1000))
    }

    fn with(server: ControlSettings, client: ControlSettings, pool: Pool) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            now,
            server: ControlConnection::server(server, Box::new(pool.clone()), now),
            client: ControlConnection::client(client, now),
            pool,
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_sent: Vec::new(),
            client_sent: Vec::new(),
            round: 0,
        };
        pair.pump();
        pair
    }

    fn pump(&mut self) {
        loop {
            let to_server: Vec<Vec<u8>> =
                std::iter::from_fn(|| self.client.poll_transmit()).collect();
            let to_client: Vec<Vec<u8>> =
                std::iter::from_fn(|| self.server.poll_transmit()).collect();
            for bytes in &to_server {
                self.client_sent.push(ControlMessage::parse(bytes).unwrap());
            }
            for bytes in &to_client {
                self.server_sent.push(ControlMessage::parse(bytes).unwrap());
            }
            self.server_events.extend(drain_events(&mut self.server));
            self.client_events.extend(drain_events(&mut self.client));
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            deliver(
                &mut self.server,
                self.now,
                &to_server.concat(),
                &mut self.round,
            );
            deliver(
                &mut self.client,
                self.now,
                &to_client.concat(),
                &mut self.round,
            );
        }
    }

    /// Advances the clock by `by`, running every timer on the way.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        loop {
            let next = [self.server.poll_timeout(), self.client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.server.handle_timeout(self.now);
                    self.client.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn take_server_events(&mut self) -> Vec<ControlEvent> {
        std::mem::take(&mut self.server_events)
    }

    fn take_client_events(&mut self) -> Vec<ControlEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Opens a call from the client and returns the server's Call ID.
    fn open(&mut self, client_call_id: u16) -> u16 {
        self.client.open_call(self.now, client_call_id).unwrap();
        self.pump();
        let ours = self
            .client
            .call(client_call_id)
            .expect("the call connected")
            .peer_call_id;
        assert_eq!(self.server.call(ours).unwrap().peer_call_id, client_call_id);
        ours
    }
}

/// A server that accepted Start-Control-Connection-Request, with its
/// own pool; nothing pending.
fn established_server() -> (ControlConnection, Pool, Instant) {
    let now = Instant::now();
    let pool = pool(1000);
    let mut server = ControlConnection::server(settings(), Box::new(pool.clone()), now);
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    drain_messages(&mut server);
    drain_events(&mut server);
    (server, pool, now)
}

fn sccrq(protocol_version: u16) -> StartControlConnectionRequest {
    StartControlConnectionRequest {
        protocol_version,
        framing_capabilities: FramingCapabilities::ASYNCHRONOUS,
        bearer_capabilities: BearerCapabilities::ANALOG,
        maximum_channels: 0,
        firmware_revision: 2600,
        host_name: NulPadded::EMPTY,
        vendor_string: NulPadded::truncated(b"Microsoft Windows NT"),
    }
}

fn ocrq(call_id: u16) -> OutgoingCallRequest {
    OutgoingCallRequest {
        call_id,
        call_serial_number: 7,
        minimum_bps: 300,
        maximum_bps: 100_000_000,
        bearer_type: BearerType::Any,
        framing_type: FramingType::Any,
        packet_receive_window_size: 32,
        packet_processing_delay: 5,
        phone_number_length: 0,
        phone_number: NulPadded::EMPTY,
        subaddress: NulPadded::EMPTY,
    }
}

/// Sends an Outgoing-Call-Request to a server; returns our Call ID.
fn server_call(server: &mut ControlConnection, now: Instant, peer_call_id: u16) -> u16 {
    server.handle_message(now, ocrq(peer_call_id).into());
    let sent = drain_messages(server);
    let [ControlMessage::OutgoingCallReply(reply)] = sent[..] else {
        panic!("expected one Outgoing-Call-Reply, got {sent:?}");
    };
    assert_eq!(reply.result_code, OutgoingCallResult::Connected);
    drain_events(server);
    reply.call_id
}

/// A Call-Clear-Request written by hand (RFC 2637 section 2.12).
fn ccrq_bytes(call_id: u16) -> Vec<u8> {
    let mut bytes = vec![0, 16, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 12, 0, 0, 0, 0, 0, 0];
    bytes[12..14].copy_from_slice(&call_id.to_be_bytes());
    bytes
}

fn is_closed_event(event: Option<&ControlEvent>) -> Option<CloseReason> {
    match event {
        Some(ControlEvent::Closed(reason)) => Some(reason.clone()),
        _ => None,
    }
}

#[test]
fn connections_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<ControlConnection>();
    is_send::<CallIdPool>();
}

// ----- both ends together -----

#[test]
fn client_and_server_set_up_a_call() {
    let mut p = Pair::new();
    assert!(p.server.is_established() && p.client.is_established());
    let server_events = p.take_server_events();
    let Some(ControlEvent::Established(peer)) = server_events.first() else {
        panic!("{server_events:?}");
    };
    assert_eq!(peer.vendor_string.text(), b"Microsoft Windows NT");
    assert_eq!(peer.protocol_version, 0x0100);
    let client_events = p.take_client_events();
    let Some(ControlEvent::Established(server)) = client_events.first() else {
        panic!("{client_events:?}");
    };
    assert_eq!(server.host_name.text(), b"test-server");
    assert_eq!(server.maximum_channels, 10_000);
    assert!(
        server
            .framing_capabilities
            .contains(FramingCapabilities::SYNCHRONOUS)
    );
    assert!(
        server
            .bearer_capabilities
            .contains(BearerCapabilities::DIGITAL)
    );

    let ours = p.open(0x1234);
    assert!(p.pool.lock().unwrap().is_allocated(ours));
    let info = *p.server.call(ours).unwrap();
    assert_eq!(
        info,
        CallInfo {
            our_call_id: ours,
            peer_call_id: 0x1234,
            call_serial_number: 1,
            peer_receive_window: 64,
            peer_processing_delay: 0,
            our_receive_window: 64,
            connect_speed: 100_000_000,
        }
    );
    assert_eq!(
        p.take_server_events(),
        [
            ControlEvent::CallConnected(info),
            ControlEvent::LinkInfo {
                our_call_id: ours,
                send_accm: 0xffff_ffff,
                receive_accm: 0xffff_ffff
            }
        ]
    );
    let client_info = *p.client.call(0x1234).unwrap();
    assert_eq!(client_info.peer_call_id, ours);
    assert_eq!(
        p.take_client_events(),
        [ControlEvent::CallConnected(client_info)]
    );
    assert_eq!(p.server.calls().count(), 1);
}

#[test]
fn call_asked_for_before_establishment_waits_for_it() {
    let now = Instant::now();
    let mut client = ControlConnection::client(client_settings(), now);
    client.open_call(now, 5).unwrap();
    // Only the Start-Control-Connection-Request so far.
    let sent = drain_messages(&mut client);
    assert!(matches!(
        sent[..],
        [ControlMessage::StartControlConnectionRequest(_)]
    ));
    let (server, ..) = established_server();
    let mut reply = server.start_reply(StartResult::Success);
    reply.host_name = NulPadded::truncated(b"x");
    client.handle_message(now, reply.into());
    let sent = drain_messages(&mut client);
    assert!(matches!(sent[..], [ControlMessage::OutgoingCallRequest(r)] if r.call_id == 5));
}

#[test]
fn every_message_type_crosses_between_the_two_ends() {
    let mut p = Pair::new();
    let ours = p.open(0x0101);
    p.client.set_link_info(p.now, 0x0101, 0, 0).unwrap();
    p.pump();
    // The peer's WAN-Error-Notify, Incoming-Call-* and Echo handled by
    // the client; Set-Link-Info by the server.
    p.server.send(WanErrorNotify {
        peer_call_id: 0x0101,
        crc_errors: 1,
        framing_errors: 0,
        hardware_overruns: 0,
        buffer_overruns: 0,
        time_out_errors: 0,
        alignment_errors: 0,
    });
    p.server.send(IncomingCallRequest {
        call_id: 77,
        call_serial_number: 1,
        bearer_type: BearerType::Analog,
        physical_channel_id: 0,
        dialed_number_length: 0,
        dialing_number_length: 0,
        dialed_number: NulPadded::EMPTY,
        dialing_number: NulPadded::EMPTY,
        subaddress: NulPadded::EMPTY,
    });
    p.client.send(IncomingCallConnected {
        peer_call_id: 1,
        connect_speed: 0,
        packet_receive_window_size: 0,
        packet_transmit_delay: 0,
        framing_type: FramingType::Asynchronous,
    });
    p.pump();
    p.advance(61 * SECOND); // both send Echo-Requests, both answer
    p.client.clear_call(p.now, 0x0101).unwrap();
    p.pump();
    p.client.close(p.now, StopReason::None);
    p.pump();
    assert!(p.server.is_closed() && p.client.is_closed());

    let mut seen: Vec<ControlMessageType> = p
        .server_sent
        .iter()
        .chain(&p.client_sent)
        .map(ControlMessage::control_message_type)
        .collect();
    seen.sort_by_key(|&t| u16::from(t));
    seen.dedup();
    assert_eq!(seen.len(), 15, "{seen:?}");

    let server_events = p.take_server_events();
    assert!(server_events.contains(&ControlEvent::LinkInfo {
        our_call_id: ours,
        send_accm: 0,
        receive_accm: 0
    }));
    assert!(server_events.contains(&ControlEvent::Ignored {
        message: ControlMessageType::IncomingCallConnected,
        reason: "this end never sends Incoming-Call-Request"
    }));
    assert!(server_events.contains(&ControlEvent::Ignored {
        message: ControlMessageType::IncomingCallReply,
        reason: "this end never sends Incoming-Call-Request"
    }));
    let client_events = p.take_client_events();
    assert!(client_events.iter().any(|e| matches!(
        e,
        ControlEvent::WanError { our_call_id: 0x0101, report } if report.crc_errors == 1
    )));
    assert!(p.client_sent.iter().any(|m| matches!(
        m,
        ControlMessage::IncomingCallReply(r)
            if r.peer_call_id == 77 && r.result_code == IncomingCallResult::DoNotAccept
    )));
    assert_eq!(live(&p.pool), 0);
}

#[test]
fn client_hang_up_gets_call_disconnect_notify() {
    let mut p = Pair::new();
    let ours = p.open(0x0bad);
    p.take_server_events();
    p.take_client_events();
    p.client.clear_call(p.now, 0x0bad).unwrap();
    p.pump();
    let info = CallInfo {
        our_call_id: ours,
        peer_call_id: 0x0bad,
        call_serial_number: 1,
        peer_receive_window: 64,
        peer_processing_delay: 0,
        our_receive_window: 64,
        connect_speed: 100_000_000,
    };
    assert_eq!(
        p.take_server_events(),
        [ControlEvent::CallEnded {
            call: info,
            reason: CallEndReason::PeerCleared
        }]
    );
    let ControlMessage::CallDisconnectNotify(cdn) = p.server_sent.last().unwrap() else {
        panic!("{:?}", p.server_sent);
    };
    assert_eq!(cdn.call_id, 0x0bad);
    assert_eq!(cdn.result_code, DisconnectResult::Request);
    assert!(matches!(
        p.take_client_events()[..],
        [ControlEvent::CallEnded {
            reason: CallEndReason::LocalClear,
            ..
        }]
    ));
    assert_eq!(live(&p.pool), 0);
    // The connection stays up for more calls.
    assert!(p.server.is_established());
    p.open(0x0bad);
    assert_eq!(live(&p.pool), 1);
}

#[test]
fn server_hang_up_reaches_the_client() {
    let mut p = Pair::new();
    let ours = p.open(0x0042);
    p.take_client_events();
    p.server.clear_call(p.now, ours).unwrap();
    assert_eq!(live(&p.pool), 0);
    p.pump();
    assert!(matches!(
        p.take_client_events()[..],
        [ControlEvent::CallEnded {
            reason: CallEndReason::PeerDisconnected {
                result: DisconnectResult::AdminShutdown,
                error: ErrorCode::None,
                cause: 0
            },
            ..
        }]
    ));
    assert_eq!(p.client.calls().count(), 0);
}

#[test]
fn client_stops_the_connection() {
    let mut p = Pair::new();
    p.open(1);
    p.open(2);
    p.take_server_events();
    p.client.close(p.now, StopReason::StopLocalShutdown);
    p.pump();
    let events = p.take_server_events();
    assert_eq!(events.len(), 3, "{events:?}");
    // Call-Clear-Request for both calls, then the stop.
    assert!(events[..2].iter().all(|e| matches!(
        e,
        ControlEvent::CallEnded {
            reason: CallEndReason::PeerCleared,
            ..
        }
    )));
    assert_eq!(
        is_closed_event(events.last()),
        Some(CloseReason::PeerStop(StopReason::StopLocalShutdown))
    );
    assert!(p.server.is_closed());
    assert_eq!(
        is_closed_event(p.take_client_events().last()),
        Some(CloseReason::LocalStop)
    );
    assert!(matches!(
        p.server_sent.last(),
        Some(ControlMessage::StopControlConnectionReply(
            StopControlConnectionReply {
                result_code: StopResult::Ok,
                error_code: ErrorCode::None
            }
        ))
    ));
    assert_eq!(live(&p.pool), 0);
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn server_shutdown_notifies_every_call_then_stops() {
    let mut p = Pair::new();
    let a = p.open(10);
    let b = p.open(11);
    p.take_server_events();
    p.take_client_events();
    let sent_before = p.server_sent.len();
    p.server.close(p.now, StopReason::StopLocalShutdown);
    assert_eq!(live(&p.pool), 0);
    p.pump();
    let sent: Vec<_> = p.server_sent[sent_before..].to_vec();
    assert_eq!(sent.len(), 3, "{sent:?}");
    let mut notified: Vec<u16> = sent[..2]
        .iter()
        .map(|m| match m {
            ControlMessage::CallDisconnectNotify(cdn) => {
                assert_eq!(cdn.result_code, DisconnectResult::AdminShutdown);
                cdn.call_id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    notified.sort();
    assert_eq!(notified, [10, 11]);
    assert_eq!(
        sent[2],
        ControlMessage::StopControlConnectionRequest(StopControlConnectionRequest {
            reason: StopReason::StopLocalShutdown
        })
    );
    let events = p.take_server_events();
    let mut ended: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            ControlEvent::CallEnded {
                call,
                reason: CallEndReason::LocalShutdown,
            } => Some(call.our_call_id),
            _ => None,
        })
        .collect();
    ended.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(ended, expected);
    assert_eq!(is_closed_event(events.last()), Some(CloseReason::LocalStop));
    let client_events = p.take_client_events();
    assert_eq!(
        client_events
            .iter()
            .filter(|e| matches!(e, ControlEvent::CallEnded { .. }))
            .count(),
        2
    );
    assert_eq!(
        is_closed_event(client_events.last()),
        Some(CloseReason::PeerStop(StopReason::StopLocalShutdown))
    );
}

#[test]
fn unanswered_stop_times_out() {
    let (mut server, pool, now) = established_server();
    server_call(&mut server, now, 9);
    server.close(now, StopReason::None);
    assert!(!server.is_closed());
    let sent = drain_messages(&mut server);
    assert!(matches!(
        sent[..],
        [
            ControlMessage::CallDisconnectNotify(_),
            ControlMessage::StopControlConnectionRequest(_)
        ]
    ));
    assert_eq!(server.poll_timeout(), Some(now + 10 * SECOND));
    // Closing twice does nothing more.
    server.close(now, StopReason::None);
    assert!(drain_messages(&mut server).is_empty());
    server.handle_timeout(now + 9 * SECOND);
    assert!(!server.is_closed());
    server.handle_timeout(now + 10 * SECOND);
    assert!(server.is_closed());
    assert_eq!(
        is_closed_event(drain_events(&mut server).last()),
        Some(CloseReason::LocalStopTimeout)
    );
    assert_eq!(live(&pool), 0);
}

#[test]
fn eof_without_stop_ends_every_call() {
    let mut p = Pair::new();
    p.open(1);
    p.open(2);
    p.open(3);
    p.take_server_events();
    p.client.clear_call(p.now, 1).unwrap();
    p.pump();
    // pptp-linux style: TCP closes right after.
    p.server.handle_eof(p.now);
    p.pump();
    let events = p.take_server_events();
    let ended: Vec<CallEndReason> = events
        .iter()
        .filter_map(|e| match e {
            ControlEvent::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        [
            CallEndReason::PeerCleared,
            CallEndReason::ControlClosed,
            CallEndReason::ControlClosed
        ]
    );
    assert_eq!(is_closed_event(events.last()), Some(CloseReason::PeerEof));
    assert_eq!(live(&p.pool), 0);
    // Nothing happens after the end.
    p.server.handle_eof(p.now);
    p.server.handle_bytes(p.now, &ccrq_bytes(2));
    assert!(drain_events(&mut p.server).is_empty());
    assert!(p.server.poll_transmit().is_none());
}

#[test]
fn silent_peer_is_dropped_by_the_keepalive() {
    let (mut server, pool, start) = established_server();
    server_call(&mut server, start, 1);
    let interval = 60 * SECOND;
    let mut now = start;
    let mut identifiers = Vec::new();
    while !server.is_closed() {
        let at = server.poll_timeout().expect("a timer is armed");
        assert!(at > now);
        now = at;
        server.handle_timeout(now);
        for message in drain_messages(&mut server) {
            match message {
                ControlMessage::EchoRequest(r) => identifiers.push(r.identifier),
                other => panic!("{other:?}"),
            }
        }
    }
    // One idle interval, then three requests each given an interval.
    assert_eq!(now - start, interval * 4);
    assert_eq!(identifiers, [1, 2, 3]);
    let events = drain_events(&mut server);
    assert!(matches!(
        events[..],
        [
            ControlEvent::CallEnded {
                reason: CallEndReason::ControlClosed,
                ..
            },
            ControlEvent::Closed(CloseReason::EchoTimeout { unanswered: 3 })
        ]
    ));
    assert_eq!(live(&pool), 0);
}

#[test]
fn answering_peer_stays_up() {
    let mut p = Pair::new();
    p.open(1);
    for _ in 0..20 {
        p.advance(59 * SECOND);
        p.advance(3 * SECOND);
    }
    assert!(p.server.is_established() && p.client.is_established());
    let echo_requests = p
        .server_sent
        .iter()
        .filter(|m| matches!(m, ControlMessage::EchoRequest(_)))
        .count();
    assert!(echo_requests >= 10, "{echo_requests}");
    let identifiers: Vec<u32> = p
        .client_sent
        .iter()
        .filter_map(|m| match m {
            ControlMessage::EchoReply(r) if r.result_code == EchoResult::Ok => Some(r.identifier),
            _ => None,
        })
        .collect();
    assert!(!identifiers.is_empty());
    assert!(
        !p.take_server_events()
            .iter()
            .any(|e| matches!(e, ControlEvent::Closed(_)))
    );
    assert_eq!(p.server.calls().count(), 1);
}

#[test]
fn server_ignores_echoes_before_start_and_keeps_its_setup_deadline() {
    let now = Instant::now();
    let pool = pool(10);
    let mut server = ControlConnection::server(settings(), Box::new(pool.clone()), now);
    let deadline = server.poll_timeout().expect("setup deadline");
    for i in 0..100u32 {
        let t = now + Duration::from_millis(u64::from(i) * 10);
        server.handle_message(t, EchoRequest { identifier: i }.into());
    }
    assert!(drain_messages(&mut server).is_empty(), "no Echo-Reply");
    assert!(drain_events(&mut server).iter().all(|e| matches!(
        e,
        ControlEvent::Ignored {
            message: ControlMessageType::EchoRequest,
            ..
        }
    )));
    assert_eq!(server.poll_timeout(), Some(deadline));
    server.handle_timeout(deadline);
    assert!(server.is_closed());
}

#[test]
fn traffic_rearms_the_keepalive() {
    let (mut server, _pool, now) = established_server();
    // Once a call is up, only the keepalive is armed.
    server_call(&mut server, now, 1);
    assert_eq!(server.poll_timeout(), Some(now + 60 * SECOND));
    let later = now + 50 * SECOND;
    server.handle_message(later, EchoRequest { identifier: 9 }.into());
    assert_eq!(server.poll_timeout(), Some(later + 60 * SECOND));
    // An Echo-Request went out; a reply with the wrong identifier still
    // proves the peer alive but is reported.
    server.handle_timeout(later + 60 * SECOND);
    let sent = drain_messages(&mut server);
    assert!(matches!(
        sent[..],
        [ControlMessage::EchoReply(_), ControlMessage::EchoRequest(_)]
    ));
    let t = later + 61 * SECOND;
    server.handle_message(
        t,
        EchoReply {
            identifier: 1234,
            result_code: EchoResult::Ok,
            error_code: ErrorCode::None,
        }
        .into(),
    );
    assert_eq!(server.poll_timeout(), Some(t + 60 * SECOND));
    assert!(matches!(
        drain_events(&mut server)[..],
        [ControlEvent::Ignored {
            message: ControlMessageType::EchoReply,
            ..
        }]
    ));
}

#[test]
fn echo_request_is_answered_byte_for_byte() {
    let (mut server, _pool, now) = established_server();
    let request = [
        0, 16, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 5, 0, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    server.handle_bytes(now, &request);
    let reply = server.poll_transmit().unwrap();
    assert_eq!(
        reply,
        [
            0, 20, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 6, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 0, 0, 0
        ]
    );
}

#[test]
fn call_clear_request_bytes_give_call_disconnect_notify_bytes() {
    let (mut server, pool, now) = established_server();
    let ours = server_call(&mut server, now, 0xc9a3);
    assert_ne!(ours, 0xc9a3);
    server.handle_bytes(now, &ccrq_bytes(0xc9a3));
    let cdn = server.poll_transmit().unwrap();
    assert_eq!(cdn.len(), 148);
    assert_eq!(cdn[0..2], [0, 148]);
    assert_eq!(cdn[2..4], [0, 1]);
    assert_eq!(cdn[4..8], MAGIC_COOKIE.to_be_bytes());
    assert_eq!(cdn[8..10], [0, 13]);
    // The peer's Call ID, most significant byte first.
    assert_eq!(cdn[12..14], [0xc9, 0xa3]);
    assert_eq!(cdn[14], 4, "result: Request");
    assert_eq!(cdn[15], 0, "error: None");
    assert!(cdn[16..].iter().all(|&b| b == 0));
    assert!(server.poll_transmit().is_none());
    assert!(matches!(
        drain_events(&mut server)[..],
        [ControlEvent::CallEnded { call, reason: CallEndReason::PeerCleared }]
            if call.our_call_id == ours && call.peer_call_id == 0xc9a3
    ));
    assert_eq!(live(&pool), 0);
}

#[test]
fn outgoing_call_reply_carries_both_call_ids_in_network_order() {
    let (mut server, _pool, now) = established_server();
    server.handle_message(now, ocrq(0x0102).into());
    let reply = server.poll_transmit().unwrap();
    let call = *server.calls().next().unwrap();
    assert_eq!(reply[12..14], call.our_call_id.to_be_bytes());
    assert_eq!(reply[14..16], [0x01, 0x02]);
    assert_eq!(reply[16], 1, "Connected");
    assert_eq!(reply[20..24], 100_000_000u32.to_be_bytes());
    assert_eq!(reply[24..26], [0, 64], "our window");
    // The peer's window and delay are stored.
    assert_eq!(call.peer_receive_window, 32);
    assert_eq!(call.peer_processing_delay, 5);
    assert_eq!(call.call_serial_number, 7);
}

#[test]
fn hundred_calls_on_one_connection() {
    let mut p = Pair::new();
    let mut ours = Vec::new();
    for id in 1000..1100 {
        p.client.open_call(p.now, id).unwrap();
    }
    p.pump();
    for id in 1000..1100 {
        ours.push(p.client.call(id).unwrap().peer_call_id);
    }
    let mut unique = ours.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 100);
    assert_eq!(live(&p.pool), 100);
    assert_eq!(p.server.calls().count(), 100);
    // Clear every other call, then stop.
    for id in (1000..1100).step_by(2) {
        p.client.clear_call(p.now, id).unwrap();
    }
    p.pump();
    assert_eq!(p.server.calls().count(), 50);
    assert_eq!(live(&p.pool), 50);
    for id in (1001..1100).step_by(2) {
        assert!(p.client.call(id).is_some());
        assert!(
            p.server
                .call(p.client.call(id).unwrap().peer_call_id)
                .is_some()
        );
    }
    p.client.close(p.now, StopReason::None);
    p.pump();
    assert!(p.server.is_closed());
    assert_eq!(live(&p.pool), 0);
    let ended = p
        .take_server_events()
        .iter()
        .filter(|e| matches!(e, ControlEvent::CallEnded { .. }))
        .count();
    assert_eq!(ended, 100);
}

#[test]
fn unknown_call_ids_do_not_disturb_other_calls() {
    let (mut server, pool, now) = established_server();
    let ids: Vec<u16> = (1..=3)
        .map(|peer| server_call(&mut server, now, peer))
        .collect();
    server.handle_bytes(now, &ccrq_bytes(0x7777));
    server.handle_message(
        now,
        SetLinkInfo {
            peer_call_id: 0x7777,
            send_accm: 0,
            receive_accm: 0,
        }
        .into(),
    );
    server.handle_message(
        now,
        WanErrorNotify {
            peer_call_id: 0x7777,
            crc_errors: 0,
            framing_errors: 0,
            hardware_overruns: 0,
            buffer_overruns: 0,
            time_out_errors: 0,
            alignment_errors: 0,
        }
        .into(),
    );
    assert!(server.poll_transmit().is_none());
    assert_eq!(
        drain_events(&mut server),
        [
            ControlEvent::Ignored {
                message: ControlMessageType::CallClearRequest,
                reason: "unknown call"
            },
            ControlEvent::Ignored {
                message: ControlMessageType::SetLinkInfo,
                reason: "unknown call"
            },
            ControlEvent::Ignored {
                message: ControlMessageType::WanErrorNotify,
                reason: "unknown call"
            },
        ]
    );
    assert_eq!(server.calls().count(), 3);
    assert_eq!(live(&pool), 3);
    // Our own Call ID in a Call-Clear-Request is not the peer's.
    server.handle_bytes(now, &ccrq_bytes(ids[0]));
    assert_eq!(server.calls().count(), 3);
    server.handle_bytes(now, &ccrq_bytes(2));
    assert_eq!(server.calls().count(), 2);
    assert!(server.call(ids[1]).is_none());
    assert_eq!(live(&pool), 2);
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let now = Instant::now();
    let shared = pool(1000);
    let mut a = ControlConnection::server(settings(), Box::new(shared.clone()), now);
    let mut b = ControlConnection::server(settings(), Box::new(shared.clone()), now);
    for server in [&mut a, &mut b] {
        server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
        drain_messages(server);
    }
    let a_call = server_call(&mut a, now, 1);
    let b_call = server_call(&mut b, now, 1);
    assert_ne!(a_call, b_call);
    // A good Echo-Request joined to garbage with a bad cookie.
    let mut bytes = ControlMessage::from(EchoRequest { identifier: 1 }).to_vec();
    bytes.extend_from_slice(&[0, 16, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 5, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&ccrq_bytes(1));
    a.handle_bytes(now, &bytes);
    assert!(a.is_closed());
    // The Echo-Request before the garbage was answered, nothing after.
    assert!(matches!(
        drain_messages(&mut a)[..],
        [ControlMessage::EchoReply(_)]
    ));
    let events = drain_events(&mut a);
    assert_eq!(
        is_closed_event(events.last()),
        Some(CloseReason::Malformed(wire::Error::BadMagicCookie(
            0xdead_beef
        )))
    );
    assert!(matches!(
        events[0],
        ControlEvent::CallEnded {
            reason: CallEndReason::ControlClosed,
            ..
        }
    ));
    assert_eq!(live(&shared), 1);
    assert!(!shared.lock().unwrap().is_allocated(a_call));
    assert!(b.is_established());
    assert!(b.call(b_call).is_some());
    assert!(shared.lock().unwrap().is_allocated(b_call));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn unparseable_messages_close_with_the_reason() {
    let cases: [(Vec<u8>, wire::Error); 3] = [
        (
            {
                let mut m = ControlMessage::from(EchoRequest { identifier: 1 }).to_vec();
                m[2..4].copy_from_slice(&[0, 2]);
                m
            },
            wire::Error::Malformed {
                what: "PPTP message type",
                why: "management messages (type 2) are not supported",
            },
        ),
        (
            {
                let mut m = ControlMessage::from(EchoRequest { identifier: 1 }).to_vec();
                m[8..10].copy_from_slice(&[0, 99]);
                m
            },
            wire::Error::Unknown {
                what: "PPTP control message type",
                value: 99,
            },
        ),
        (
            vec![0, 4, 0, 1],
            wire::Error::BadLength {
                what: "PPTP control message",
                len: 4,
                why: "below the 12-byte header",
            },
        ),
    ];
    for (bytes, error) in cases {
        let (mut server, pool, now) = established_server();
        server_call(&mut server, now, 1);
        server.handle_bytes(now, &bytes);
        assert!(server.is_closed());
        let events = drain_events(&mut server);
        assert_eq!(
            is_closed_event(events.last()),
            Some(CloseReason::Malformed(error))
        );
        assert_eq!(live(&pool), 0);
    }
}

// ----- the server on its own -----

#[test]
fn second_start_request_is_answered_channel_exists() {
    let (mut server, _pool, now) = established_server();
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    let sent = drain_messages(&mut server);
    assert!(matches!(
        sent[..],
        [ControlMessage::StartControlConnectionReply(r)]
            if r.result_code == StartResult::ChannelAlreadyExists
    ));
    assert!(server.is_established());
}

#[test]
fn unsupported_protocol_version_is_refused() {
    let now = Instant::now();
    let pool = pool(10);
    let mut server = ControlConnection::server(settings(), Box::new(pool), now);
    server.handle_message(now, sccrq(0x0200).into());
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply.len(), 156);
    assert_eq!(reply[12..14], [1, 0], "our version");
    assert_eq!(reply[14], 5, "result: unsupported version");
    assert!(server.is_closed());
    assert_eq!(
        is_closed_event(drain_events(&mut server).last()),
        Some(CloseReason::StartRefused {
            result: StartResult::UnsupportedProtocolVersion,
            error: ErrorCode::None
        })
    );
}

#[test]
fn start_reply_announces_our_settings() {
    let now = Instant::now();
    let mut server = ControlConnection::server(settings(), Box::new(pool(10)), now);
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply[0..2], [0, 156]);
    assert_eq!(reply[8..10], [0, 2]);
    assert_eq!(
        reply[12..16],
        [1, 0, 1, 0],
        "version 1.0, success, no error"
    );
    assert_eq!(reply[16..20], [0, 0, 0, 3], "async and sync framing");
    assert_eq!(reply[20..24], [0, 0, 0, 3], "analog and digital bearer");
    assert_eq!(reply[24..26], 10_000u16.to_be_bytes());
    assert_eq!(&reply[28..40], b"test-server\0");
    assert_eq!(&reply[92..101], b"pptp-xdp\0");
}

#[test]
fn outgoing_call_request_before_start_is_refused_not_connected() {
    let now = Instant::now();
    let pool = pool(10);
    let mut server = ControlConnection::server(settings(), Box::new(pool.clone()), now);
    server.handle_message(now, ocrq(3).into());
    let sent = drain_messages(&mut server);
    assert!(matches!(
        sent[..],
        [ControlMessage::OutgoingCallReply(r)]
            if r.result_code == OutgoingCallResult::GeneralError
                && r.error_code == ErrorCode::NotConnected
                && r.peer_call_id == 3
                && r.call_id == 0
    ));
    assert_eq!(live(&pool), 0);
    assert!(!server.is_closed());
}

#[test]
fn exhausted_allocator_answers_busy() {
    let now = Instant::now();
    let small = pool(2);
    let mut server = ControlConnection::server(settings(), Box::new(small.clone()), now);
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    drain_messages(&mut server);
    server_call(&mut server, now, 1);
    server_call(&mut server, now, 2);
    server.handle_message(now, ocrq(3).into());
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply[16], 4, "Busy");
    assert_eq!(reply[14..16], [0, 3]);
    assert!(
        drain_events(&mut server).contains(&ControlEvent::CallRejected {
            peer_call_id: 3,
            result: OutgoingCallResult::Busy,
            error: ErrorCode::None
        })
    );
    assert_eq!(live(&small), 2);
}

#[test]
fn per_connection_call_limit_answers_busy() {
    let now = Instant::now();
    let mut server = ControlConnection::server(
        ControlSettings {
            max_calls: 1,
            ..settings()
        },
        Box::new(pool(10)),
        now,
    );
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    drain_messages(&mut server);
    server_call(&mut server, now, 1);
    server.handle_message(now, ocrq(2).into());
    assert!(matches!(
        drain_messages(&mut server)[..],
        [ControlMessage::OutgoingCallReply(r)] if r.result_code == OutgoingCallResult::Busy
    ));
}

#[test]
fn duplicate_peer_call_id_is_refused() {
    let (mut server, pool, now) = established_server();
    server_call(&mut server, now, 0x55);
    server.handle_message(now, ocrq(0x55).into());
    assert!(matches!(
        drain_messages(&mut server)[..],
        [ControlMessage::OutgoingCallReply(r)]
            if r.result_code == OutgoingCallResult::GeneralError
                && r.error_code == ErrorCode::BadCallId
    ));
    assert_eq!(live(&pool), 1);
    assert_eq!(server.calls().count(), 1);
}

#[test]
fn incoming_call_request_is_refused_cleanly() {
    let (mut server, pool, now) = established_server();
    let mut icrq = vec![0u8; 220];
    icrq[..12].copy_from_slice(&[0, 220, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 9, 0, 0]);
    icrq[12..14].copy_from_slice(&[0xab, 0xcd]);
    server.handle_bytes(now, &icrq);
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply.len(), 24);
    assert_eq!(reply[8..10], [0, 10]);
    assert_eq!(reply[12..14], [0, 0], "no call of ours");
    assert_eq!(reply[14..16], [0xab, 0xcd], "the peer's Call ID");
    assert_eq!(reply[16], 3, "Do Not Accept");
    assert_eq!(live(&pool), 0);
    assert!(server.is_established());
}

#[test]
fn set_link_info_and_wan_error_notify_become_events() {
    let (mut server, _pool, now) = established_server();
    let ours = server_call(&mut server, now, 4);
    server.handle_message(
        now,
        SetLinkInfo {
            peer_call_id: ours,
            send_accm: 0xffff_ffff,
            receive_accm: 0,
        }
        .into(),
    );
    let report = WanErrorNotify {
        peer_call_id: ours,
        crc_errors: 1,
        framing_errors: 2,
        hardware_overruns: 3,
        buffer_overruns: 4,
        time_out_errors: 5,
        alignment_errors: 6,
    };
    server.handle_message(now, report.into());
    assert_eq!(
        drain_events(&mut server),
        [
            ControlEvent::LinkInfo {
                our_call_id: ours,
                send_accm: 0xffff_ffff,
                receive_accm: 0
            },
            ControlEvent::WanError {
                our_call_id: ours,
                report
            }
        ]
    );
    assert!(server.poll_transmit().is_none());
}

#[test]
fn messages_for_the_other_end_are_ignored() {
    let (mut server, pool, now) = established_server();
    let ours = server_call(&mut server, now, 4);
    let (client_side, ..) = established_server();
    let messages: [ControlMessage; 5] = [
        client_side.start_reply(StartResult::Success).into(),
        OutgoingCallReply {
            call_id: 1,
            peer_call_id: ours,
            result_code: OutgoingCallResult::Connected,
            error_code: ErrorCode::None,
            cause_code: 0,
            connect_speed: 0,
            packet_receive_window_size: 0,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        }
        .into(),
        disconnect_notify(4, DisconnectResult::LostCarrier).into(),
        StopControlConnectionReply {
            result_code: StopResult::Ok,
            error_code: ErrorCode::None,
        }
        .into(),
        IncomingCallReply {
            call_id: 1,
            peer_call_id: 2,
            result_code: IncomingCallResult::Connect,
            error_code: ErrorCode::None,
            packet_receive_window_size: 0,
            packet_transmit_delay: 0,
        }
        .into(),
    ];
    for message in messages {
        let kind = message.control_message_type();
        server.handle_message(now, message);
        assert!(matches!(
            drain_events(&mut server)[..],
            [ControlEvent::Ignored { message, .. }] if message == kind
        ));
    }
    assert!(server.poll_transmit().is_none());
    assert_eq!(server.calls().count(), 1);
    assert_eq!(live(&pool), 1);
}

#[test]
fn setup_timeout_without_start_request() {
    let now = Instant::now();
    let mut server = ControlConnection::server(settings(), Box::new(pool(10)), now);
    assert_eq!(server.poll_timeout(), Some(now + 30 * SECOND));
    server.handle_timeout(now + 29 * SECOND);
    assert!(!server.is_closed());
    server.handle_timeout(now + 30 * SECOND);
    assert_eq!(
        is_closed_event(drain_events(&mut server).last()),
        Some(CloseReason::SetupTimeout)
    );
}

#[test]
fn setup_timeout_covers_the_first_call_then_stops() {
    let now = Instant::now();
    let mut server = ControlConnection::server(settings(), Box::new(pool(10)), now);
    server.handle_message(now + SECOND, sccrq(PROTOCOL_VERSION).into());
    drain_messages(&mut server);
    // Established, still no call: the setup deadline stands.
    assert_eq!(server.poll_timeout(), Some(now + 30 * SECOND));
    server_call(&mut server, now + 2 * SECOND, 1);
    // Only the keepalive remains.
    assert_eq!(server.poll_timeout(), Some(now + 62 * SECOND));
}

#[test]
fn disabled_timers_arm_nothing() {
    let now = Instant::now();
    let quiet = ControlSettings {
        setup_timeout: Duration::ZERO,
        echo_interval: Duration::ZERO,
        ..settings()
    };
    let mut server = ControlConnection::server(quiet, Box::new(pool(10)), now);
    assert_eq!(server.poll_timeout(), None);
    server.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(now + 1000 * SECOND);
    assert!(server.is_established());
}

#[test]
fn stop_request_before_start_is_answered() {
    let now = Instant::now();
    let mut server = ControlConnection::server(settings(), Box::new(pool(10)), now);
    server.handle_bytes(
        now,
        &[0, 16, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 3, 0, 0, 1, 0, 0, 0],
    );
    assert_eq!(
        server.poll_transmit().unwrap(),
        [0, 16, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 4, 0, 0, 1, 0, 0, 0]
    );
    assert_eq!(
        is_closed_event(drain_events(&mut server).last()),
        Some(CloseReason::PeerStop(StopReason::None))
    );
}

#[test]
fn dropping_a_connection_returns_its_call_ids() {
    let (mut server, pool, now) = established_server();
    server_call(&mut server, now, 1);
    server_call(&mut server, now, 2);
    assert_eq!(live(&pool), 2);
    drop(server);
    assert_eq!(live(&pool), 0);
}

#[test]
fn server_commands() {
    let (mut server, pool, now) = established_server();
    assert_eq!(server.side(), Side::Server);
    assert_eq!(
        server.open_call(now, 1),
        Err(CommandError::WrongSide(Side::Client))
    );
    assert_eq!(
        server.set_link_info(now, 1, 0, 0),
        Err(CommandError::WrongSide(Side::Client))
    );
    assert_eq!(
        server.clear_call(now, 99),
        Err(CommandError::UnknownCall(99))
    );
    let ours = server_call(&mut server, now, 0x0a0b);
    server.clear_call(now, ours).unwrap();
    let cdn = server.poll_transmit().unwrap();
    assert_eq!(cdn[12..14], [0x0a, 0x0b]);
    assert_eq!(cdn[14], 3, "Admin Shutdown");
    assert!(matches!(
        drain_events(&mut server)[..],
        [ControlEvent::CallEnded {
            reason: CallEndReason::LocalClear,
            ..
        }]
    ));
    assert_eq!(live(&pool), 0);
    server.close(now, StopReason::None);
    assert_eq!(server.clear_call(now, ours), Err(CommandError::Closed));
    let (mut fresh, ..) = established_server();
    fresh.handle_eof(now);
    assert_eq!(fresh.clear_call(now, 1), Err(CommandError::Closed));
}

#[test]
fn close_before_establishment_just_closes() {
    let now = Instant::now();
    let mut server = ControlConnection::server(settings(), Box::new(pool(10)), now);
    server.close(now, StopReason::StopLocalShutdown);
    assert!(server.is_closed());
    assert!(server.poll_transmit().is_none());
    assert_eq!(
        is_closed_event(drain_events(&mut server).last()),
        Some(CloseReason::LocalAbort)
    );
}

// ----- the client on its own -----

fn established_client() -> (ControlConnection, Instant) {
    let now = Instant::now();
    let mut client = ControlConnection::client(client_settings(), now);
    let sent = drain_messages(&mut client);
    let [ControlMessage::StartControlConnectionRequest(request)] = sent[..] else {
        panic!("{sent:?}");
    };
    assert_eq!(request.protocol_version, 0x0100);
    assert_eq!(request.vendor_string.text(), b"Microsoft Windows NT");
    let (server, ..) = established_server();
    client.handle_message(now, server.start_reply(StartResult::Success).into());
    drain_events(&mut client);
    (client, now)
}

fn ocrp(our_call_id: u16, server_call_id: u16, result: OutgoingCallResult) -> ControlMessage {
    OutgoingCallReply {
        call_id: server_call_id,
        peer_call_id: our_call_id,
        result_code: result,
        error_code: ErrorCode::None,
        cause_code: 0,
        connect_speed: 1_000_000,
        packet_receive_window_size: 16,
        packet_processing_delay: 1,
        physical_channel_id: 0,
    }
    .into()
}

#[test]
fn client_sends_a_windows_like_outgoing_call_request_and_set_link_info() {
    let (mut client, now) = established_client();
    client.open_call(now, 0xc9a3).unwrap();
    let request = client.poll_transmit().unwrap();
    assert_eq!(request.len(), 168);
    assert_eq!(request[12..14], [0xc9, 0xa3]);
    assert_eq!(request[16..20], 300u32.to_be_bytes());
    assert_eq!(request[20..24], 100_000_000u32.to_be_bytes());
    assert_eq!(request[24..32], [0, 0, 0, 3, 0, 0, 0, 3]);
    assert_eq!(request[32..34], [0, 64]);
    client.handle_message(now, ocrp(0xc9a3, 0x1f40, OutgoingCallResult::Connected));
    let sli = client.poll_transmit().unwrap();
    assert_eq!(
        sli,
        [
            0, 24, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 15, 0, 0, 0x1f, 0x40, 0, 0, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff
        ]
    );
    let info = *client.call(0xc9a3).unwrap();
    assert_eq!((info.peer_call_id, info.peer_receive_window), (0x1f40, 16));
    assert_eq!(info.peer_processing_delay, 1);
    assert_eq!(
        drain_events(&mut client),
        [ControlEvent::CallConnected(info)]
    );
}

#[test]
fn refused_call_fails() {
    let (mut client, now) = established_client();
    client.open_call(now, 1).unwrap();
    drain_messages(&mut client);
    client.handle_message(now, ocrp(1, 0, OutgoingCallResult::Busy));
    assert_eq!(
        drain_events(&mut client),
        [ControlEvent::CallFailed {
            our_call_id: 1,
            reason: CallFailure::Refused {
                result: OutgoingCallResult::Busy,
                error: ErrorCode::None,
                cause: 0
            }
        }]
    );
    assert!(client.poll_transmit().is_none());
    // The Call ID can be used again.
    client.open_call(now, 1).unwrap();
    // A reply for no request is ignored.
    client.handle_message(now, ocrp(2, 5, OutgoingCallResult::Connected));
    assert!(matches!(
        drain_events(&mut client)[..],
        [ControlEvent::Ignored {
            message: ControlMessageType::OutgoingCallReply,
            ..
        }]
    ));
}

#[test]
fn unanswered_call_request_is_aborted() {
    let (mut client, now) = established_client();
    client.open_call(now, 8).unwrap();
    drain_messages(&mut client);
    assert_eq!(client.poll_timeout(), Some(now + 30 * SECOND));
    client.handle_timeout(now + 30 * SECOND);
    assert!(matches!(
        drain_messages(&mut client)[..],
        [ControlMessage::CallClearRequest(CallClearRequest {
            call_id: 8
        })]
    ));
    assert_eq!(
        drain_events(&mut client),
        [ControlEvent::CallFailed {
            our_call_id: 8,
            reason: CallFailure::Timeout
        }]
    );
}

#[test]
fn client_matches_call_disconnect_notify_by_either_call_id() {
    for cdn_call_id in [0x0001, 0x0900] {
        let (mut client, now) = established_client();
        client.open_call(now, 0x0001).unwrap();
        client.handle_message(now, ocrp(0x0001, 0x0900, OutgoingCallResult::Connected));
        drain_messages(&mut client);
        drain_events(&mut client);
        client.handle_message(
            now,
            disconnect_notify(cdn_call_id, DisconnectResult::LostCarrier).into(),
        );
        assert!(matches!(
            drain_events(&mut client)[..],
            [ControlEvent::CallEnded {
                reason: CallEndReason::PeerDisconnected {
                    result: DisconnectResult::LostCarrier,
                    ..
                },
                ..
            }]
        ));
        client.handle_message(
            now,
            disconnect_notify(cdn_call_id, DisconnectResult::LostCarrier).into(),
        );
        assert!(matches!(
            drain_events(&mut client)[..],
            [ControlEvent::Ignored {
                reason: "unknown call",
                ..
            }]
        ));
    }
}

#[test]
fn client_clear_times_out_without_notify() {
    let (mut client, now) = established_client();
    client.open_call(now, 3).unwrap();
    client.handle_message(now, ocrp(3, 4, OutgoingCallResult::Connected));
    drain_messages(&mut client);
    drain_events(&mut client);
    client.clear_call(now, 3).unwrap();
    assert!(matches!(
        drain_messages(&mut client)[..],
        [ControlMessage::CallClearRequest(CallClearRequest {
            call_id: 3
        })]
    ));
    // Clearing twice sends nothing more.
    client.clear_call(now, 3).unwrap();
    assert!(client.poll_transmit().is_none());
    assert_eq!(
        client.set_link_info(now, 3, 0, 0),
        Err(CommandError::NotConnected(3))
    );
    client.handle_timeout(now + 10 * SECOND);
    assert!(matches!(
        drain_events(&mut client)[..],
        [ControlEvent::CallEnded {
            reason: CallEndReason::ClearTimeout,
            ..
        }]
    ));
    assert!(client.is_established());
}

#[test]
fn client_refuses_what_a_client_never_accepts() {
    let (mut client, now) = established_client();
    client.handle_message(now, ocrq(5).into());
    client.handle_message(now, sccrq(PROTOCOL_VERSION).into());
    client.handle_message(now, CallClearRequest { call_id: 5 }.into());
    let sent = drain_messages(&mut client);
    assert!(matches!(
        sent[..],
        [ControlMessage::OutgoingCallReply(r)]
            if r.result_code == OutgoingCallResult::DoNotAccept && r.peer_call_id == 5
    ));
    assert_eq!(drain_events(&mut client).len(), 3);
    assert!(client.is_established());
}

#[test]
fn client_start_refused() {
    let now = Instant::now();
    let mut client = ControlConnection::client(client_settings(), now);
    client.open_call(now, 1).unwrap();
    drain_messages(&mut client);
    let (server, ..) = established_server();
    let mut reply = server.start_reply(StartResult::GeneralError);
    reply.error_code = ErrorCode::NoResource;
    client.handle_message(now, reply.into());
    assert_eq!(
        drain_events(&mut client),
        [
            ControlEvent::CallFailed {
                our_call_id: 1,
                reason: CallFailure::Aborted
            },
            ControlEvent::Closed(CloseReason::StartRefused {
                result: StartResult::GeneralError,
                error: ErrorCode::NoResource
            })
        ]
    );
}

#[test]
fn client_setup_timeout_and_commands() {
    let now = Instant::now();
    let mut client = ControlConnection::client(client_settings(), now);
    assert_eq!(client.side(), Side::Client);
    client.open_call(now, 1).unwrap();
    assert_eq!(
        client.open_call(now, 1),
        Err(CommandError::DuplicateCallId(1))
    );
    assert_eq!(
        client.set_link_info(now, 1, 0, 0),
        Err(CommandError::Closed)
    );
    client.clear_call(now, 1).unwrap();
    assert!(matches!(
        drain_events(&mut client)[..],
        [ControlEvent::CallFailed {
            our_call_id: 1,
            reason: CallFailure::Aborted
        }]
    ));
    client.handle_timeout(now + 30 * SECOND);
    assert_eq!(
        is_closed_event(drain_events(&mut client).last()),
        Some(CloseReason::SetupTimeout)
    );
    assert_eq!(client.open_call(now, 2), Err(CommandError::Closed));

    let (mut limited, now) = established_client();
    limited.settings.max_calls = 1;
    limited.open_call(now, 1).unwrap();
    assert_eq!(
        limited.open_call(now, 2),
        Err(CommandError::TooManyCalls(1))
    );
    assert_eq!(
        limited.set_link_info(now, 9, 0, 0),
        Err(CommandError::UnknownCall(9))
    );
}

// ----- settings and the Call ID pool -----

#[test]
fn call_id_pool_hands_out_unique_unpredictable_ids() {
    let mut pool = CallIdPool::new(CallIdPool::MAX_CAPACITY, 42);
    let first: Vec<u16> = (0..1000).map(|_| pool.allocate().unwrap()).collect();
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000);
    assert!(!first.contains(&0));
    // Not a counter: consecutive IDs are far apart.
    let sequential = first
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) == 1)
        .count();
    assert!(sequential < 5, "{sequential}");
    // Another seed, other IDs.
    let mut other = CallIdPool::new(CallIdPool::MAX_CAPACITY, 43);
    let second: Vec<u16> = (0..10).map(|_| other.allocate().unwrap()).collect();
    assert_ne!(first[..10], second[..]);
    // Released IDs are free again, double releases are harmless.
    pool.release(first[0]);
    pool.release(first[0]);
    pool.release(0);
    assert_eq!(pool.live(), 999);
    assert!(!pool.is_allocated(first[0]));
}

#[test]
fn call_id_pool_fills_up_completely_and_respects_its_capacity() {
    let mut pool = CallIdPool::new(usize::MAX, 7);
    let mut seen = vec![false; 65_536];
    for _ in 0..65_535 {
        let id = pool.allocate().unwrap();
        assert!(!seen[usize::from(id)]);
        seen[usize::from(id)] = true;
    }
    assert_eq!(pool.allocate(), None);
    assert!(!seen[0]);
    pool.release(12_345);
    assert_eq!(pool.allocate(), Some(12_345));

    let mut small = CallIdPool::new(3, 1);
    let ids: Vec<u16> = std::iter::from_fn(|| small.allocate()).collect();
    assert_eq!(ids.len(), 3);
    small.release(ids[1]);
    assert!(small.allocate().is_some());
    assert_eq!(small.allocate(), None);
}
