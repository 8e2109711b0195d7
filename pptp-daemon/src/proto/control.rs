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
    /// The server end of a control connection the peer just opened.
    pub fn server(
        settings: ControlSettings,
        allocator: Box<dyn CallIdAllocator + Send>,
        now: Instant,
    ) -> Self {
        Self::new(Role::Server { allocator }, settings, now)
    }

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

    /// Client: sends the Outgoing-Call-Request of a queued call.
    fn request_call(&mut self, now: Instant, our_call_id: u16) {
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

    fn start_reply(&self, result_code: StartResult) -> StartControlConnectionReply {
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

    fn on_start_request(&mut self, now: Instant, m: StartControlConnectionRequest) {
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

    fn on_start_reply(&mut self, now: Instant, m: StartControlConnectionReply) {
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

    fn refuse_call(
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

    fn on_outgoing_call_request(&mut self, _now: Instant, m: OutgoingCallRequest) {
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

    fn on_outgoing_call_reply(&mut self, m: OutgoingCallReply) {
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

    fn on_incoming_call_request(&mut self, m: IncomingCallRequest) {
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

    fn on_call_clear_request(&mut self, m: CallClearRequest) {
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

    fn on_call_disconnect_notify(&mut self, m: CallDisconnectNotify) {
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
mod tests {
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
                ControlMessage::EchoReply(r) if r.result_code == EchoResult::Ok => {
                    Some(r.identifier)
                }
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
                0, 24, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 15, 0, 0, 0x1f, 0x40, 0, 0, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff
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
}
