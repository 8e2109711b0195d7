//! The PPTP control connection (RFC 2637 section 3), without I/O, for both
//! ends: the server (the PAC of the RFC, the VPN concentrator) and the
//! client (the PNS, a remote-access client such as Windows; used by our own
//! test client).
//!
//! # Driving it
//!
//! Inputs are [`ControlConnection::handle_bytes`] (data read from the TCP
//! socket, split and joined anyhow), [`ControlConnection::handle_eof`] (the
//! peer closed TCP), [`ControlConnection::handle_timeout`] (the instant of
//! [`ControlConnection::poll_timeout`] has come) and the commands
//! ([`ControlConnection::open_call`], [`ControlConnection::clear_call`],
//! [`ControlConnection::set_link_info`], [`ControlConnection::close`]).
//! After each input, drain [`ControlConnection::poll_transmit`] (write each
//! buffer to the socket), [`ControlConnection::poll_event`] and re-arm the
//! timer from [`ControlConnection::poll_timeout`]. Once
//! [`ControlConnection::is_closed`] is true (the last event was
//! [`ControlEvent::Closed`]), write what is left to transmit and close the
//! socket. The machine never reads the clock: `now` comes with each input.
//!
//! # Server
//!
//! - Waits for Start-Control-Connection-Request and answers with a Reply
//!   (version 1.0, our framing and bearer capabilities, maximum channels,
//!   firmware revision, host name, vendor). A request with another protocol
//!   version gets result 5 (unsupported version) and the connection
//!   closes; a second request on an established connection gets result 3
//!   (command channel already exists) and changes nothing.
//! - Outgoing-Call-Request: our Call ID comes from the daemon-wide
//!   [`CallIdAllocator`]; the reply carries it, echoes the peer's Call ID,
//!   our receive window and processing delay; the peer's Call ID, window and
//!   delay are stored and [`ControlEvent::CallConnected`] tells the daemon
//!   to start PPP. If the allocator or [`ControlSettings::max_calls`] is
//!   exhausted the reply is result 4 (Busy); a Call ID the peer already
//!   uses on this connection gets result 2 with error 5 (Bad-Call ID); a
//!   request before Start-Control-Connection gets result 2 with error 1
//!   (Not-Connected).
//! - Incoming-Call-Request is answered with Incoming-Call-Reply result 3
//!   (Do Not Accept).
//! - Set-Link-Info and WAN-Error-Notify become events.
//! - Call-Clear-Request: the call ends ([`ControlEvent::CallEnded`]),
//!   Call-Disconnect-Notify with result 4 (Request) goes out and the Call ID
//!   returns to the allocator.
//! - Stop-Control-Connection-Request: answered with a Reply; every call
//!   ends; the connection closes.
//!
//! # Client
//!
//! Sends Start-Control-Connection-Request at once; then
//! [`ControlConnection::open_call`] sends Outgoing-Call-Request with the
//! caller's Call ID (requests made earlier wait for the Reply); a connected
//! call gets Set-Link-Info with both ACCMs 0xffffffff, as Windows sends it.
//! [`ControlConnection::clear_call`] sends Call-Clear-Request and waits for
//! Call-Disconnect-Notify.
//!
//! # Both ends
//!
//! - Keepalive (RFC 2637 section 2.5): after
//!   [`ControlSettings::echo_interval`] without receiving anything, an
//!   Echo-Request (identifiers count up); receiving anything re-arms the
//!   idle timer. Each unanswered request gets one more interval; when
//!   [`ControlSettings::echo_failures`] requests are unanswered and the
//!   next interval passes, the connection closes
//!   ([`CloseReason::EchoTimeout`]). A silent peer is thus dropped
//!   `interval × (failures + 1)` after the last byte it sent. The peer's
//!   Echo-Requests are answered with result 1.
//! - [`ControlConnection::close`]: ends every call (server:
//!   Call-Disconnect-Notify result 3, Admin Shutdown; client:
//!   Call-Clear-Request), sends Stop-Control-Connection-Request, and waits
//!   [`ControlSettings::stop_timeout`] for the Reply.
//! - The peer closing TCP without Stop-Control-Connection (pptp-linux does
//!   that after Call-Clear-Request) ends every call.
//! - Input that cannot be framed or parsed closes this connection at once
//!   with [`CloseReason::Malformed`]; nothing else is touched. Messages for
//!   a call this connection does not know (Call-Clear-Request,
//!   Set-Link-Info, WAN-Error-Notify, Call-Disconnect-Notify) are ignored
//!   with an [`ControlEvent::Ignored`] event and never disturb other calls.
//!
//! # Which Call ID goes into Call-Disconnect-Notify
//!
//! RFC 2637 section 2.13 puts "the Call ID assigned by the PAC" there, but
//! the clients and middleboxes deployed read that field as the PNS's Call
//! ID: pptp-linux looks the call up by its own Call ID, the Linux netfilter
//! PPTP NAT helper rewrites the field as the PNS's Call ID on its way to
//! the client, and accel-ppp sends the PNS's (once byte-swapped, which left
//! peers unable to match it). The server therefore sends the peer's (PNS's)
//! Call ID, in network byte order like every field; the client accepts a
//! Call-Disconnect-Notify carrying either its own or the server's Call ID.
//! The result code is 4 (Request) when answering Call-Clear-Request, 3
//! (Admin Shutdown) otherwise; Windows ignores it (MS-PTPT 3.2.5.5).

mod client;
mod server;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire;
use crate::wire::pptp::{
    BearerCapabilities, BearerType, CallClearRequest, CallDisconnectNotify, ControlFramer,
    ControlMessage, ControlMessageType, DisconnectResult, EchoReply, EchoRequest, EchoResult,
    ErrorCode, FramingCapabilities, FramingType, IncomingCallReply, IncomingCallRequest,
    IncomingCallResult, NulPadded, OutgoingCallReply, OutgoingCallRequest, OutgoingCallResult,
    PROTOCOL_VERSION, STRING_LEN, SetLinkInfo, StartControlConnectionReply,
    StartControlConnectionRequest, StartResult, StopControlConnectionReply,
    StopControlConnectionRequest, StopReason, StopResult, WanErrorNotify,
};

/// Hands out our Call IDs (RFC 2637 section 3.2.2). The daemon owns one for
/// all control connections, so IDs are unique across them (the GRE data
/// path finds a session by our Call ID); IDs must not be guessable and must
/// not be handed out again while in use.
pub trait CallIdAllocator {
    /// A free Call ID, or `None` when no more calls may be opened.
    fn allocate(&mut self) -> Option<u16>;
    /// Returns a Call ID given by [`CallIdAllocator::allocate`].
    fn release(&mut self, id: u16);
}

/// The daemon shares one allocator between the tasks of all connections.
impl<A: CallIdAllocator + ?Sized> CallIdAllocator for Arc<Mutex<A>> {
    fn allocate(&mut self) -> Option<u16> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allocate()
    }

    fn release(&mut self, id: u16) {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .release(id);
    }
}

/// A [`CallIdAllocator`] over the whole Call ID space of RFC 2637 section
/// 3.2.2 (1 to 65535; 0 is never handed out, it marks "no call" in
/// refusals).
///
/// IDs are drawn at random from a generator seeded by the caller (the daemon
/// seeds it from the operating system), so they are neither sequential nor
/// predictable without the seed, and a just-released ID is unlikely to come
/// back soon. `capacity` caps the number of live IDs (the daemon's
/// `server.max_sessions`).
pub struct CallIdPool {
    /// One bit per Call ID.
    used: Vec<u64>,
    live: usize,
    capacity: usize,
    state: u64,
}

impl CallIdPool {
    /// Largest number of Call IDs that can be live at once.
    pub const MAX_CAPACITY: usize = u16::MAX as usize;

    /// A pool of at most `capacity` live IDs, drawn from a generator seeded
    /// with `seed`.
    pub fn new(capacity: usize, seed: u64) -> Self {
        Self {
            used: vec![0; 1024],
            live: 0,
            capacity: capacity.min(Self::MAX_CAPACITY),
            state: seed,
        }
    }

    /// Number of IDs handed out and not released.
    pub const fn live(&self) -> usize {
        self.live
    }

    /// Whether `id` is handed out.
    pub fn is_allocated(&self, id: u16) -> bool {
        let (word, bit) = Self::position(id);
        self.used.get(word).is_some_and(|w| w & bit != 0)
    }

    const fn position(id: u16) -> (usize, u64) {
        (id as usize / 64, 1 << (id % 64))
    }

    /// SplitMix64.
    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniformly drawn ID in 1..=65535.
    fn random_id(&mut self) -> u16 {
        // The remainder is below 65535, so the sum fits.
        u16::try_from(self.next_random() % 65_535 + 1).unwrap_or(1)
    }

    fn take(&mut self, id: u16) -> bool {
        let (word, bit) = Self::position(id);
        match self.used.get_mut(word) {
            Some(w) if *w & bit == 0 && id != 0 => {
                *w |= bit;
                self.live += 1;
                true
            }
            _ => false,
        }
    }
}

impl CallIdAllocator for CallIdPool {
    fn allocate(&mut self) -> Option<u16> {
        if self.live >= self.capacity {
            return None;
        }
        for _ in 0..32 {
            let id = self.random_id();
            if self.take(id) {
                return Some(id);
            }
        }
        // A dense pool: walk from a random place to the next free ID.
        let start = self.random_id();
        (0..=u16::MAX)
            .map(|step| start.wrapping_add(step))
            .find(|&id| self.take(id))
    }

    fn release(&mut self, id: u16) {
        let (word, bit) = Self::position(id);
        if let Some(w) = self.used.get_mut(word)
            && *w & bit != 0
        {
            *w &= !bit;
            self.live -= 1;
        }
    }
}

impl fmt::Debug for CallIdPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallIdPool")
            .field("live", &self.live)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// What this end announces in Start-Control-Connection-Request/Reply and
/// Outgoing-Call-Request/Reply (RFC 2637 sections 2.1, 2.2, 2.7, 2.8), and
/// its timers (sections 2.5 and 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlSettings {
    /// Host Name of Start-Control-Connection-Request/Reply.
    pub host_name: NulPadded<STRING_LEN>,
    /// Vendor String of Start-Control-Connection-Request/Reply.
    pub vendor_string: NulPadded<STRING_LEN>,
    pub firmware_revision: u16,
    pub framing_capabilities: FramingCapabilities,
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels announced (the server's session limit; 0 from a
    /// client).
    pub maximum_channels: u16,
    /// Most calls this connection may carry at once.
    pub max_calls: usize,
    /// Server: how long to wait for Start-Control-Connection-Request and
    /// then for the first Outgoing-Call-Request. Client: how long to wait
    /// for Start-Control-Connection-Reply and for each Outgoing-Call-Reply.
    /// Zero disables the limit.
    pub setup_timeout: Duration,
    /// Idle time before an Echo-Request; zero disables the keepalive.
    pub echo_interval: Duration,
    /// Unanswered Echo-Requests before the connection is closed.
    pub echo_failures: u32,
    /// How long to wait for Stop-Control-Connection-Reply (and, as a
    /// client, for Call-Disconnect-Notify after Call-Clear-Request).
    pub stop_timeout: Duration,
    /// Our Packet Receive Window Size: GRE packets we buffer per call.
    pub receive_window: u16,
    /// Our Packet Processing Delay, in 1/10 seconds.
    pub processing_delay: u16,
    /// Connect Speed reported in Outgoing-Call-Reply, bits per second.
    pub connect_speed: u32,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            host_name: NulPadded::truncated(b"pptp-xdp"),
            vendor_string: NulPadded::truncated(b"pptp-xdp"),
            firmware_revision: 1,
            framing_capabilities: FramingCapabilities::ASYNCHRONOUS
                | FramingCapabilities::SYNCHRONOUS,
            bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
            maximum_channels: 10_000,
            max_calls: 10_000,
            setup_timeout: Duration::from_secs(30),
            echo_interval: Duration::from_secs(60),
            echo_failures: 3,
            stop_timeout: Duration::from_secs(10),
            receive_window: 64,
            processing_delay: 0,
            connect_speed: 100_000_000,
        }
    }
}

/// What the peer announced in its Start-Control-Connection-Request or
/// -Reply (RFC 2637 sections 2.1, 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub protocol_version: u16,
    pub framing_capabilities: FramingCapabilities,
    pub bearer_capabilities: BearerCapabilities,
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: NulPadded<STRING_LEN>,
    pub vendor_string: NulPadded<STRING_LEN>,
}

/// A call on the control connection (RFC 2637 section 3.2): the data path
/// needs both Call IDs (GRE packets we send carry the peer's, those we
/// receive carry ours) and the peer's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// Our Call ID (from the allocator on a server, the caller's on a
    /// client).
    pub our_call_id: u16,
    /// The peer's Call ID.
    pub peer_call_id: u16,
    /// Call Serial Number of the Outgoing-Call-Request.
    pub call_serial_number: u16,
    /// How many GRE packets the peer can buffer: our send window.
    pub peer_receive_window: u16,
    /// The peer's Packet Processing Delay, in 1/10 seconds.
    pub peer_processing_delay: u16,
    /// How many GRE packets we said we buffer.
    pub our_receive_window: u16,
    /// Connect Speed of the Outgoing-Call-Reply, bits per second.
    pub connect_speed: u32,
}

/// Why a connected call ended (RFC 2637 sections 2.12, 2.13, 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEndReason {
    /// Server: the peer sent Call-Clear-Request (answered with
    /// Call-Disconnect-Notify).
    PeerCleared,
    /// Client: the server sent Call-Disconnect-Notify on its own.
    PeerDisconnected {
        result: DisconnectResult,
        error: ErrorCode,
        cause: u16,
    },
    /// [`ControlConnection::clear_call`] (a client's once the server's
    /// Call-Disconnect-Notify came back).
    LocalClear,
    /// Client: no Call-Disconnect-Notify came after Call-Clear-Request.
    ClearTimeout,
    /// [`ControlConnection::close`].
    LocalShutdown,
    /// The control connection ended under the call; [`ControlEvent::Closed`]
    /// follows with the reason.
    ControlClosed,
}

/// Why a call a client asked for never connected (RFC 2637 sections 2.8,
/// 2.12, 2.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// Outgoing-Call-Reply with a result other than Connected.
    Refused {
        result: OutgoingCallResult,
        error: ErrorCode,
        cause: u16,
    },
    /// Call-Disconnect-Notify before the call connected.
    Disconnected {
        result: DisconnectResult,
        error: ErrorCode,
        cause: u16,
    },
    /// No Outgoing-Call-Reply in time (Call-Clear-Request was sent).
    Timeout,
    /// Given up locally, or the control connection ended.
    Aborted,
}

/// Why the control connection closed (RFC 2637 sections 2.3, 2.5, 3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent Stop-Control-Connection-Request.
    PeerStop(StopReason),
    /// Our Stop-Control-Connection-Request was answered.
    LocalStop,
    /// Our Stop-Control-Connection-Request was not answered in time.
    LocalStopTimeout,
    /// [`ControlConnection::close`] before the connection was established.
    LocalAbort,
    /// The peer closed TCP without Stop-Control-Connection.
    PeerEof,
    /// The peer left this many Echo-Requests unanswered.
    EchoTimeout { unanswered: u32 },
    /// The connection was not set up in time.
    SetupTimeout,
    /// Bytes that cannot be framed or parsed.
    Malformed(wire::Error),
    /// Start-Control-Connection failed: as a server, we refused the peer's
    /// request with this result; as a client, the server refused ours.
    StartRefused {
        result: StartResult,
        error: ErrorCode,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerStop(reason) => {
                write!(f, "peer sent Stop-Control-Connection-Request ({reason:?})")
            }
            Self::LocalStop => f.write_str("stopped locally, peer replied"),
            Self::LocalStopTimeout => f.write_str("stopped locally, peer did not reply in time"),
            Self::LocalAbort => f.write_str("closed locally before establishment"),
            Self::PeerEof => {
                f.write_str("peer closed the TCP connection without Stop-Control-Connection")
            }
            Self::EchoTimeout { unanswered } => {
                write!(f, "peer left {unanswered} Echo-Requests unanswered")
            }
            Self::SetupTimeout => f.write_str("control connection not set up in time"),
            Self::Malformed(error) => write!(f, "malformed control stream: {error}"),
            Self::StartRefused { result, error } => {
                write!(
                    f,
                    "Start-Control-Connection refused: {result:?} ({error:?})"
                )
            }
        }
    }
}

/// What the daemon (or our client) must know or do about the control
/// connection of RFC 2637 section 3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// The control connection is established.
    Established(PeerInfo),
    /// A call is up: start its PPP session and GRE data path.
    CallConnected(CallInfo),
    /// Server: an Outgoing-Call-Request was refused with this result.
    CallRejected {
        peer_call_id: u16,
        result: OutgoingCallResult,
        error: ErrorCode,
    },
    /// Client: a call asked for never connected.
    CallFailed {
        our_call_id: u16,
        reason: CallFailure,
    },
    /// A connected call ended: tear its session down. (On a server its
    /// Call ID is back in the allocator already.)
    CallEnded {
        call: CallInfo,
        reason: CallEndReason,
    },
    /// Set-Link-Info for one of our calls (RFC 2637 section 2.15).
    LinkInfo {
        our_call_id: u16,
        send_accm: u32,
        receive_accm: u32,
    },
    /// WAN-Error-Notify for one of our calls (RFC 2637 section 2.14), to
    /// log.
    WanError {
        our_call_id: u16,
        report: WanErrorNotify,
    },
    /// A message that was ignored (or refused), and why; worth a log line.
    Ignored {
        message: ControlMessageType,
        reason: &'static str,
    },
    /// The connection is closed; the last event.
    Closed(CloseReason),
}

/// A command to the control connection (RFC 2637 section 3) that could not
/// be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the control connection is closed or closing")]
    Closed,
    #[error("only the {0} end of a control connection can do this")]
    WrongSide(Side),
    #[error("Call ID {0} is already used on this connection")]
    DuplicateCallId(u16),
    #[error("no call with our Call ID {0}")]
    UnknownCall(u16),
    #[error("call {0} is not connected")]
    NotConnected(u16),
    #[error("the connection already carries its maximum of {0} calls")]
    TooManyCalls(usize),
}

/// Which end of the control connection this is (RFC 2637 section 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The PAC: answers Outgoing-Call-Requests.
    Server,
    /// The PNS: opens calls.
    Client,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Server => "server",
            Side::Client => "client",
        })
    }
}

enum Role {
    Server {
        allocator: Box<dyn CallIdAllocator + Send>,
    },
    Client {
        next_serial: u16,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Server: waiting for Start-Control-Connection-Request; client:
    /// waiting for the Reply.
    Starting,
    Established,
    /// We sent Stop-Control-Connection-Request.
    Stopping {
        deadline: Instant,
    },
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// Client: asked for before the connection was established.
    Queued,
    /// Client: Outgoing-Call-Request sent.
    Requested,
    Connected,
    /// Client: Call-Clear-Request sent.
    Clearing,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    info: CallInfo,
    state: CallState,
    connected: bool,
    deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Keepalive {
    /// When the next Echo-Request is due (or the connection given up).
    deadline: Option<Instant>,
    unanswered: u32,
    next_identifier: u32,
    last_sent: Option<u32>,
}

/// One PPTP control connection (RFC 2637 section 3), either end; see the
/// module documentation.
pub struct ControlConnection {
    role: Role,
    settings: ControlSettings,
    state: State,
    framer: ControlFramer,
    /// Calls by our Call ID.
    calls: BTreeMap<u16, Call>,
    /// Our Call ID by the peer's, for calls whose peer Call ID is known.
    by_peer: BTreeMap<u16, u16>,
    setup_deadline: Option<Instant>,
    keepalive: Keepalive,
    peer: Option<PeerInfo>,
    transmit: VecDeque<ControlMessage>,
    events: VecDeque<ControlEvent>,
}

impl fmt::Debug for ControlConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlConnection")
            .field("side", &self.side())
            .field("state", &self.state)
            .field("calls", &self.calls.len())
            .field("transmit", &self.transmit.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl ControlConnection {
    fn new(role: Role, settings: ControlSettings, now: Instant) -> Self {
        let setup_deadline = deadline(now, settings.setup_timeout);
        Self {
            role,
            settings,
            state: State::Starting,
            framer: ControlFramer::new(),
            calls: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            setup_deadline,
            keepalive: Keepalive {
                deadline: None,
                unanswered: 0,
                next_identifier: 1,
                last_sent: None,
            },
            peer: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ----- queries -----

    /// Which end this is.
    pub fn side(&self) -> Side {
        match self.role {
            Role::Server { .. } => Side::Server,
            Role::Client { .. } => Side::Client,
        }
    }

    /// Whether the connection is closed (the socket can go once
    /// [`ControlConnection::poll_transmit`] is drained).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether Start-Control-Connection succeeded and no stop began.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// What the peer announced, once established.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// The connected calls, by our Call ID.
    pub fn calls(&self) -> impl Iterator<Item = &CallInfo> + '_ {
        self.calls
            .values()
            .filter(|c| c.state == CallState::Connected)
            .map(|c| &c.info)
    }

    /// A connected call by our Call ID.
    pub fn call(&self, our_call_id: u16) -> Option<&CallInfo> {
        self.calls
            .get(&our_call_id)
            .filter(|c| c.state == CallState::Connected)
            .map(|c| &c.info)
    }

    // ----- outputs -----

    /// The next message to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front().map(|m| m.to_vec())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ControlEvent> {
        self.events.pop_front()
    }

    /// When [`ControlConnection::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stop = match self.state {
            State::Closed => return None,
            State::Stopping { deadline } => Some(deadline),
            State::Starting | State::Established => None,
        };
        let keepalive = self.keepalive.deadline.filter(|_| self.is_established());
        let calls = self.calls.values().filter_map(|c| c.deadline);
        [stop, self.setup_deadline, keepalive]
            .into_iter()
            .flatten()
            .chain(calls)
            .min()
    }

    // ----- inputs -----

    /// Bytes read from the TCP connection.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.is_closed() || data.is_empty() {
            return;
        }
        self.note_received(now);
        let mut input = data;
        while !self.is_closed() {
            let parsed = match self.framer.next_message(&mut input) {
                None => break,
                Some(Ok(bytes)) => ControlMessage::parse(bytes),
                Some(Err(error)) => Err(error),
            };
            match parsed {
                Ok(message) => self.dispatch(now, message),
                Err(error) => self.terminate(CloseReason::Malformed(error)),
            }
        }
    }

    /// A message parsed by the caller (as if its bytes had arrived).
    pub fn handle_message(&mut self, now: Instant, message: ControlMessage) {
        if self.is_closed() {
            return;
        }
        self.note_received(now);
        self.dispatch(now, message);
    }

    /// The peer closed the TCP connection: every call ends.
    pub fn handle_eof(&mut self, _now: Instant) {
        if !self.is_closed() {
            self.terminate(CloseReason::PeerEof);
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Stopping { deadline } if now >= deadline => {
                self.terminate(CloseReason::LocalStopTimeout);
                return;
            }
            _ => {}
        }
        if self.setup_deadline.is_some_and(|d| now >= d) {
            self.terminate(CloseReason::SetupTimeout);
            return;
        }
        let due: Vec<u16> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| now >= d))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(state) = self.calls.get(&id).map(|c| c.state) else {
                continue;
            };
            match state {
                CallState::Requested => {
                    // Abort the request (RFC 2637 section 2.12).
                    self.send(CallClearRequest { call_id: id });
                    self.remove_call(id, CallEndReason::ControlClosed, CallFailure::Timeout);
                }
                CallState::Clearing => {
                    self.remove_call(id, CallEndReason::ClearTimeout, CallFailure::Aborted);
                }
                CallState::Queued | CallState::Connected => {}
            }
        }
        if self.is_established() && self.keepalive.deadline.is_some_and(|d| now >= d) {
            if self.keepalive.unanswered >= self.settings.echo_failures {
                let unanswered = self.keepalive.unanswered;
                self.terminate(CloseReason::EchoTimeout { unanswered });
                return;
            }
            let identifier = self.keepalive.next_identifier;
            self.keepalive.next_identifier = identifier.wrapping_add(1);
            self.keepalive.last_sent = Some(identifier);
            self.keepalive.unanswered += 1;
            self.keepalive.deadline = deadline(now, self.settings.echo_interval);
            self.send(EchoRequest { identifier });
        }
    }

    /// Ends a call. Server: Call-Disconnect-Notify (result 3, Admin
    /// Shutdown) and [`ControlEvent::CallEnded`] at once. Client:
    /// Call-Clear-Request; the call ends when the server's
    /// Call-Disconnect-Notify arrives (or after
    /// [`ControlSettings::stop_timeout`]).
    pub fn clear_call(&mut self, now: Instant, our_call_id: u16) -> Result<(), CommandError> {
        match self.state {
            State::Closed | State::Stopping { .. } => return Err(CommandError::Closed),
            State::Starting | State::Established => {}
        }
        let Some(call) = self.calls.get_mut(&our_call_id) else {
            return Err(CommandError::UnknownCall(our_call_id));
        };
        let (state, peer_call_id) = (call.state, call.info.peer_call_id);
        match (self.side(), state) {
            (Side::Server, _) => {
                self.send(disconnect_notify(
                    peer_call_id,
                    DisconnectResult::AdminShutdown,
                ));
                self.remove_call(our_call_id, CallEndReason::LocalClear, CallFailure::Aborted);
            }
            (Side::Client, CallState::Queued) => {
                self.remove_call(our_call_id, CallEndReason::LocalClear, CallFailure::Aborted);
            }
            (Side::Client, CallState::Requested | CallState::Connected) => {
                let clear_deadline = deadline(now, self.settings.stop_timeout);
                if let Some(call) = self.calls.get_mut(&our_call_id) {
                    call.state = CallState::Clearing;
                    call.deadline = clear_deadline;
                }
                self.send(CallClearRequest {
                    call_id: our_call_id,
                });
            }
            (Side::Client, CallState::Clearing) => {}
        }
        Ok(())
    }

    /// Closes the connection politely: every call ends (server:
    /// Call-Disconnect-Notify; client: Call-Clear-Request), then
    /// Stop-Control-Connection-Request, then [`ControlEvent::Closed`] when
    /// the Reply arrives or [`ControlSettings::stop_timeout`] passes. Before
    /// establishment the connection just closes.
    pub fn close(&mut self, now: Instant, reason: StopReason) {
        match self.state {
            State::Closed | State::Stopping { .. } => {}
            State::Starting => self.terminate(CloseReason::LocalAbort),
            State::Established => {
                let ids: Vec<u16> = self.calls.keys().copied().collect();
                for id in ids {
                    let Some(call) = self.calls.get(&id) else {
                        continue;
                    };
                    let (state, peer_call_id) = (call.state, call.info.peer_call_id);
                    match (self.side(), state) {
                        (Side::Server, _) => {
                            self.send(disconnect_notify(
                                peer_call_id,
                                DisconnectResult::AdminShutdown,
                            ));
                        }
                        (Side::Client, CallState::Requested | CallState::Connected) => {
                            self.send(CallClearRequest { call_id: id });
                        }
                        (Side::Client, CallState::Queued | CallState::Clearing) => {}
                    }
                    self.remove_call(id, CallEndReason::LocalShutdown, CallFailure::Aborted);
                }
                self.send(StopControlConnectionRequest { reason });
                self.setup_deadline = None;
                let stop = deadline(now, self.settings.stop_timeout).unwrap_or(now);
                self.state = State::Stopping { deadline: stop };
            }
        }
    }

    // ----- internals -----

    fn send(&mut self, message: impl Into<ControlMessage>) {
        self.transmit.push_back(message.into());
    }

    fn ignore(&mut self, message: ControlMessageType, reason: &'static str) {
        self.events
            .push_back(ControlEvent::Ignored { message, reason });
    }

    fn note_received(&mut self, now: Instant) {
        if self.is_established() {
            self.keepalive.unanswered = 0;
            self.keepalive.deadline = deadline(now, self.settings.echo_interval);
        }
    }

    fn establish(&mut self, now: Instant, peer: PeerInfo) {
        self.state = State::Established;
        self.peer = Some(peer);
        self.keepalive.unanswered = 0;
        self.keepalive.deadline = deadline(now, self.settings.echo_interval);
        self.events.push_back(ControlEvent::Established(peer));
    }

    /// Closes at once: every call ends, then [`ControlEvent::Closed`].
    fn terminate(&mut self, reason: CloseReason) {
        let ids: Vec<u16> = self.calls.keys().copied().collect();
        for id in ids {
            self.remove_call(id, CallEndReason::ControlClosed, CallFailure::Aborted);
        }
        self.state = State::Closed;
        self.setup_deadline = None;
        self.keepalive.deadline = None;
        self.events.push_back(ControlEvent::Closed(reason));
    }

    /// Forgets a call, returns a server's Call ID to the allocator and
    /// reports the end: `ended` for a call that was connected, `failed`
    /// for one that never was.
    fn remove_call(&mut self, our_call_id: u16, ended: CallEndReason, failed: CallFailure) {
        let Some(call) = self.calls.remove(&our_call_id) else {
            return;
        };
        if self.by_peer.get(&call.info.peer_call_id) == Some(&our_call_id) {
            self.by_peer.remove(&call.info.peer_call_id);
        }
        if let Role::Server { allocator } = &mut self.role {
            allocator.release(our_call_id);
        }
        self.events.push_back(if call.connected {
            ControlEvent::CallEnded {
                call: call.info,
                reason: ended,
            }
        } else {
            ControlEvent::CallFailed {
                our_call_id,
                reason: failed,
            }
        });
    }

    fn dispatch(&mut self, now: Instant, message: ControlMessage) {
        use ControlMessage as M;
        match message {
            M::StartControlConnectionRequest(m) => self.on_start_request(now, m),
            M::StartControlConnectionReply(m) => self.on_start_reply(now, m),
            M::StopControlConnectionRequest(m) => {
                self.send(StopControlConnectionReply {
                    result_code: StopResult::Ok,
                    error_code: ErrorCode::None,
                });
                self.terminate(CloseReason::PeerStop(m.reason));
            }
            M::StopControlConnectionReply(_) => {
                if matches!(self.state, State::Stopping { .. }) {
                    self.terminate(CloseReason::LocalStop);
                } else {
                    self.ignore(
                        ControlMessageType::StopControlConnectionReply,
                        "no Stop-Control-Connection-Request was sent",
                    );
                }
            }
            // A server answers echoes only on an established connection:
            // before Start-Control-Connection a peer gets no reply to make us
            // write (a peer that floods requests and never reads must not
            // hold the connection past its setup time).
            M::EchoRequest(_) if self.side() == Side::Server && !self.is_established() => self
                .ignore(
                    ControlMessageType::EchoRequest,
                    "before Start-Control-Connection",
                ),
            M::EchoRequest(m) => self.send(EchoReply {
                identifier: m.identifier,
                result_code: EchoResult::Ok,
                error_code: ErrorCode::None,
            }),
            M::EchoReply(m) => {
                // Receiving it re-armed the keepalive already.
                if self.keepalive.last_sent != Some(m.identifier) {
                    self.ignore(
                        ControlMessageType::EchoReply,
                        "identifier of no Echo-Request we sent last",
                    );
                }
            }
            M::OutgoingCallRequest(m) => self.on_outgoing_call_request(now, m),
            M::OutgoingCallReply(m) => self.on_outgoing_call_reply(m),
            M::IncomingCallRequest(m) => self.on_incoming_call_request(m),
            M::IncomingCallReply(_) => self.ignore(
                ControlMessageType::IncomingCallReply,
                "this end never sends Incoming-Call-Request",
            ),
            M::IncomingCallConnected(_) => self.ignore(
                ControlMessageType::IncomingCallConnected,
                "this end never sends Incoming-Call-Request",
            ),
            M::CallClearRequest(m) => self.on_call_clear_request(m),
            M::CallDisconnectNotify(m) => self.on_call_disconnect_notify(m),
            M::WanErrorNotify(m) => match self.connected_call(m.peer_call_id) {
                Some(our_call_id) => self.events.push_back(ControlEvent::WanError {
                    our_call_id,
                    report: m,
                }),
                None => self.ignore(ControlMessageType::WanErrorNotify, "unknown call"),
            },
            M::SetLinkInfo(m) => match self.connected_call(m.peer_call_id) {
                Some(our_call_id) => self.events.push_back(ControlEvent::LinkInfo {
                    our_call_id,
                    send_accm: m.send_accm,
                    receive_accm: m.receive_accm,
                }),
                None => self.ignore(ControlMessageType::SetLinkInfo, "unknown call"),
            },
        }
    }

    /// Our Call ID if it names a connected call.
    fn connected_call(&self, our_call_id: u16) -> Option<u16> {
        self.calls
            .get(&our_call_id)
            .filter(|c| c.state == CallState::Connected)
            .map(|_| our_call_id)
    }
}

impl Drop for ControlConnection {
    /// A connection dropped without being closed still returns its Call IDs.
    fn drop(&mut self) {
        if let Role::Server { allocator } = &mut self.role {
            for &id in self.calls.keys() {
                allocator.release(id);
            }
        }
    }
}

/// Call-Disconnect-Notify for the call the peer knows as `peer_call_id`.
fn disconnect_notify(peer_call_id: u16, result_code: DisconnectResult) -> CallDisconnectNotify {
    CallDisconnectNotify {
        call_id: peer_call_id,
        result_code,
        error_code: ErrorCode::None,
        cause_code: 0,
        call_statistics: NulPadded::EMPTY,
    }
}

/// `now + after`, or no deadline when `after` is zero (disabled) or too far.
fn deadline(now: Instant, after: Duration) -> Option<Instant> {
    if after.is_zero() {
        None
    } else {
        now.checked_add(after)
    }
}

#[cfg(test)]
mod tests;
