//! The concentrator core: the one owner of every peer-facing resource of
//! the server, without I/O (as quinn-proto's `Endpoint` owns connection IDs
//! while each `Connection` stays sans-IO).
//!
//! [`Concentrator`] owns our Call IDs (RFC 2637 section 3.2.2), the client
//! address pool, the session registry and every bound of [`Limits`]:
//! connections per source address, new connections per source per second,
//! connections and calls still in setup (max-starting), calls per control
//! connection, sessions on the server and sessions per user.
//!
//! # Driving it
//!
//! Inputs come with the instant they happen (`now`); the core never reads
//! the clock. The glue calls [`Concentrator::handle_connect`] on accept,
//! [`Concentrator::allocate_call`] on Outgoing-Call-Request (or lets the
//! control connection do it through [`ConnectionCalls`]),
//! [`Concentrator::handle_authenticated`],
//! [`Concentrator::allocate_address`], [`Concentrator::handle_network_up`]
//! as the session progresses, and [`Concentrator::handle_disconnect`] when
//! TCP goes away. After each input it drains
//! [`Concentrator::poll_event`] (each [`Event::Terminate`] asks it to end
//! that session) and re-arms a timer at [`Concentrator::poll_timeout`]
//! (sessions that stay in setup longer than [`Limits::setup_timeout`]).
//!
//! # Who ends a session
//!
//! A session is created by [`Concentrator::allocate_call`] and ended by
//! [`Concentrator::release`], and by nothing else: release frees its Call
//! ID and its address, forgets it in the registry and counts the reason,
//! exactly once (a second release, or a release through a stale
//! [`SessionId`] whose Call ID now belongs to another session, returns
//! `None` and changes nothing). Everything else that wants a session gone
//! ([`Concentrator::terminate`], [`Concentrator::handle_disconnect`], the
//! single-session `replace` policy, the setup timer) only queues
//! [`Event::Terminate`]; the glue then tears the session down (routes, map
//! entries, goodbyes) and calls release. In particular a Call ID is never
//! freed while a session owns it: [`ConnectionCalls::release`], which the
//! control connection calls when it forgets a call, only asks for the
//! session to end.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::control::{CallIdAllocator, CallIdPool};
use super::end::EndReason;
use super::limits::{Limits, UserLimitPolicy};
use super::pool::{AddressPool, PoolError};
use super::rate_window::RateWindow;

/// Idle per-source token buckets kept at most (sources with no connection
/// left whose bucket is not yet full again). Beyond this the oldest idle
/// bucket is forgotten, which at worst gives that source a fresh burst.
pub const MAX_IDLE_SOURCES: usize = 65_536;

/// One token of a per-source bucket, in the bucket's unit.
const TOKEN: u64 = 1_000_000_000;

/// A control connection known to the concentrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One session: our Call ID plus a generation, so that an identifier kept
/// after its session ended never names the session that reuses the Call ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    call_id: u16,
    generation: u32,
}

impl SessionId {
    /// Our Call ID of the session (RFC 2637 section 3.2.2).
    pub fn call_id(self) -> u16 {
        self.call_id
    }

    /// Which of the sessions that held this Call ID it is.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// A made-up identifier, for tests of code that only carries them.
    #[cfg(test)]
    pub(crate) fn for_tests(call_id: u16, generation: u32) -> Self {
        Self {
            call_id,
            generation,
        }
    }
}

/// Why the concentrator refused a connection, a call or an authenticated
/// user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    #[error("too many control connections from this source address")]
    SourceConnections,
    #[error("too many new control connections from this source address per second")]
    SourceRate,
    #[error("too many connections and calls in setup (max-starting)")]
    Starting,
    #[error("too many calls on this control connection")]
    ConnectionCalls,
    #[error("the server is full")]
    ServerFull,
    #[error("the user has too many sessions")]
    UserSessions,
    #[error("re-authentication as another user")]
    UserChanged,
    #[error("no such control connection")]
    UnknownConnection,
    #[error("no such session (released, or ending)")]
    UnknownSession,
}

impl Refusal {
    /// Every refusal, for counters.
    pub const ALL: [Refusal; 9] = [
        Refusal::SourceConnections,
        Refusal::SourceRate,
        Refusal::Starting,
        Refusal::ConnectionCalls,
        Refusal::ServerFull,
        Refusal::UserSessions,
        Refusal::UserChanged,
        Refusal::UnknownConnection,
        Refusal::UnknownSession,
    ];

    /// A stable snake_case name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::SourceConnections => "source_connections",
            Refusal::SourceRate => "source_rate",
            Refusal::Starting => "starting",
            Refusal::ConnectionCalls => "connection_calls",
            Refusal::ServerFull => "server_full",
            Refusal::UserSessions => "user_sessions",
            Refusal::UserChanged => "user_changed",
            Refusal::UnknownConnection => "unknown_connection",
            Refusal::UnknownSession => "unknown_session",
        }
    }

    /// Index into [`Refusal::ALL`].
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every refusal")
    }
}

/// What the glue must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// End this session (tear it down, then [`Concentrator::release`] it):
    /// its user's newer session replaced it, an operator killed it, its
    /// control connection went away, it stayed in setup too long. Queued at
    /// most once per session; never delivered for a session already
    /// released.
    Terminate {
        session: SessionId,
        reason: EndReason,
    },
}

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// From Outgoing-Call-Request until the network phase.
    Starting,
    /// The network phase is up.
    Up,
    /// [`Event::Terminate`] was queued; waiting for release.
    Ending,
}

/// What the registry knows about one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEntry {
    /// Our Call ID.
    pub call_id: u16,
    /// The peer's Call ID (0 until known, see [`Concentrator::set_peer_call_id`]).
    pub peer_call_id: u16,
    pub source: Ipv4Addr,
    pub connection: ConnectionId,
    /// The authenticated user, once authenticated.
    pub user: Option<String>,
    /// The client's address, once assigned.
    pub address: Option<Ipv4Addr>,
    pub started: Instant,
    pub state: SessionState,
    /// Why the session was asked to end, once it was.
    pub ending: Option<EndReason>,
    /// When its network phase came up, if it did (a session released
    /// without it is a failed setup).
    pub up_since: Option<Instant>,
    generation: u32,
    /// Holds a max-starting slot (no network phase yet).
    starting: bool,
    /// Setup deadline while starting.
    deadline: Option<Instant>,
    /// When the session ends with [`EndReason::SessionTimeout`] (RADIUS
    /// Session-Timeout, CoA), if ever: see
    /// [`Concentrator::set_session_deadline`].
    pub session_deadline: Option<Instant>,
    /// Idle-Timeout watch (RADIUS Idle-Timeout), if any: see
    /// [`Concentrator::set_idle_timeout`].
    pub idle: Option<IdleWatch>,
}

/// A session's Idle-Timeout (RFC 2865 section 5.28): it ends with
/// [`EndReason::IdleTimeout`] when its data packet count has not changed
/// for `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleWatch {
    pub timeout: Duration,
    /// The packet count last reported by [`Concentrator::handle_activity`].
    pub packets: Option<u64>,
    /// Since when the count has not changed.
    pub since: Instant,
}

impl IdleWatch {
    fn expires(&self) -> Option<Instant> {
        self.since.checked_add(self.timeout)
    }
}

/// What [`Concentrator::release`] freed, for the glue's teardown and
/// accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub session: SessionId,
    pub call_id: u16,
    pub address: Option<Ipv4Addr>,
    pub user: Option<String>,
    pub source: Ipv4Addr,
    pub connection: ConnectionId,
    pub reason: EndReason,
}

/// What the concentrator counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Control connections accepted.
    pub connections_accepted: u64,
    /// Refusals, indexed by [`Refusal::index`].
    pub refusals: [u64; Refusal::ALL.len()],
    /// Sessions created by [`Concentrator::allocate_call`].
    pub sessions_started: u64,
    /// Sessions released, indexed by [`EndReason::index`].
    pub sessions_ended: [u64; EndReason::ALL.len()],
    /// Sessions whose network phase came up (successful setups).
    pub sessions_up: u64,
    /// Sessions released before their network phase came up (failed
    /// setups), indexed by [`EndReason::index`].
    pub setup_failures: [u64; EndReason::ALL.len()],
    /// Sessions in the registry.
    pub live_sessions: usize,
    /// Control connections open.
    pub live_connections: usize,
    /// Connections without a call yet plus sessions before their network
    /// phase: what [`Limits::max_starting`] bounds.
    pub starting: usize,
}

impl Counters {
    /// Refusals of one kind.
    pub fn refused(&self, refusal: Refusal) -> u64 {
        self.refusals[refusal.index()]
    }

    /// Sessions ended for one reason.
    pub fn ended(&self, reason: EndReason) -> u64 {
        self.sessions_ended[reason.index()]
    }

    /// Sessions ended for any reason.
    pub fn ended_total(&self) -> u64 {
        self.sessions_ended.iter().sum()
    }

    /// Setups that failed for one reason.
    pub fn setup_failed(&self, reason: EndReason) -> u64 {
        self.setup_failures[reason.index()]
    }
}

/// One control connection.
#[derive(Debug)]
struct Connection {
    source: Ipv4Addr,
    accepted: Instant,
    /// Start-Control-Connection answered.
    established: bool,
    /// Holds a max-starting slot: no call yet. Its first call takes the
    /// slot over.
    starting: bool,
    /// Sessions created on it and not yet released.
    sessions: Vec<SessionId>,
}

/// Per source address: open connections and the new-connection token
/// bucket.
#[derive(Debug)]
struct Source {
    connections: u32,
    /// Tokens, in units of 1/[`TOKEN`].
    tokens: u64,
    refilled: Instant,
    /// When the last connection went away (the entry is then only a bucket).
    idle_since: Option<Instant>,
}

/// The concentrator: Call IDs, address pool, session registry and limits.
/// See the module documentation.
#[derive(Debug)]
pub struct Concentrator {
    limits: Limits,
    pool: AddressPool,
    call_ids: CallIdPool,
    next_connection: u64,
    next_generation: u32,
    connections: HashMap<ConnectionId, Connection>,
    sessions: HashMap<u16, SessionEntry>,
    /// Sessions of each authenticated user, in authentication order.
    users: HashMap<String, Vec<SessionId>>,
    sources: HashMap<Ipv4Addr, Source>,
    /// Sources that went idle, oldest first (entries are stale when the
    /// source is busy again or went idle later).
    idle: VecDeque<(Ipv4Addr, Instant)>,
    idle_sources: usize,
    /// Setup deadlines of starting sessions.
    deadlines: BTreeSet<(Instant, u16, u32)>,
    /// Session-Timeout deadlines of sessions (starting or up).
    session_deadlines: BTreeSet<(Instant, u16, u32)>,
    /// Sessions with an [`IdleWatch`]: (call ID, generation).
    idle_watched: BTreeSet<(u16, u32)>,
    events: VecDeque<Event>,
    counters: Counters,
    /// Successful setups over the last minute.
    setups: RateWindow,
    /// The latest instant of any input.
    latest: Option<Instant>,
}

impl Concentrator {
    /// A concentrator with these limits and this pool; `seed` seeds the
    /// Call ID generator (the daemon takes it from the operating system).
    pub fn new(limits: Limits, pool: AddressPool, seed: u64) -> Self {
        Self {
            limits,
            pool,
            call_ids: CallIdPool::new(CallIdPool::MAX_CAPACITY, seed),
            next_connection: 1,
            next_generation: 0,
            connections: HashMap::new(),
            sessions: HashMap::new(),
            users: HashMap::new(),
            sources: HashMap::new(),
            idle: VecDeque::new(),
            idle_sources: 0,
            deadlines: BTreeSet::new(),
            session_deadlines: BTreeSet::new(),
            idle_watched: BTreeSet::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            setups: RateWindow::new(),
            latest: None,
        }
    }

    /// New limits (reload). They apply to what comes next: nothing already
    /// admitted is ended, and setup deadlines already set stay.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The address pool (read only: addresses move through
    /// [`Concentrator::allocate_address`] and [`Concentrator::release`]).
    pub fn pool(&self) -> &AddressPool {
        &self.pool
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Successful setups (network phase up) in the last minute up to `now`.
    pub fn setups_last_minute(&mut self, now: Instant) -> u64 {
        self.setups.count(now)
    }

    fn advance(&mut self, now: Instant) {
        self.latest = Some(self.latest.map_or(now, |l| l.max(now)));
    }

    fn refuse<T>(&mut self, refusal: Refusal) -> Result<T, Refusal> {
        self.counters.refusals[refusal.index()] += 1;
        Err(refusal)
    }

    /// How long an empty bucket takes to fill (None: no rate limit).
    fn refill_time(&self) -> Option<Duration> {
        let rate = u64::from(self.limits.connection_rate_per_source);
        if rate == 0 {
            return None;
        }
        let full = self.bucket_size();
        Some(Duration::from_nanos(full.div_ceil(rate)))
    }

    /// A full bucket, in 1/[`TOKEN`] units (at least one token).
    fn bucket_size(&self) -> u64 {
        u64::from(self.limits.connection_burst_per_source.max(1)) * TOKEN
    }

    /// The tokens of a bucket left with `tokens` at `refilled`, at `now`.
    fn refilled(&self, tokens: u64, refilled: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(refilled).as_nanos();
        let rate = u128::from(self.limits.connection_rate_per_source);
        let added = u64::try_from(elapsed.saturating_mul(rate)).unwrap_or(u64::MAX);
        tokens.saturating_add(added).min(self.bucket_size())
    }

    /// Forgets idle sources whose buckets are full again, and the oldest
    /// idle ones beyond [`MAX_IDLE_SOURCES`].
    fn sweep_sources(&mut self, now: Instant) {
        let refill = self.refill_time();
        while let Some(&(addr, since)) = self.idle.front() {
            let current = self
                .sources
                .get(&addr)
                .is_some_and(|s| s.idle_since == Some(since));
            let expired = refill.is_none_or(|r| now.saturating_duration_since(since) >= r);
            // The queue also holds stale entries (a source that went idle,
            // busy and idle again): bound it as well.
            let over =
                self.idle_sources > MAX_IDLE_SOURCES || self.idle.len() > 2 * MAX_IDLE_SOURCES;
            if current && !expired && !over {
                break;
            }
            self.idle.pop_front();
            if current {
                self.sources.remove(&addr);
                self.idle_sources -= 1;
            }
        }
    }

    /// A control connection from `source` was accepted by TCP: admit it
    /// (a [`ConnectionId`] for the glue) or refuse it (the glue closes the
    /// socket). Checks connections per source, the source's token bucket
    /// (one token per admitted connection, refilled at
    /// [`Limits::connection_rate_per_source`], 0 meaning no rate limit),
    /// max-starting, and a bound on all connections
    /// (`max_sessions + max_starting`: every connection either carries a
    /// session or is starting, plus those whose calls ended).
    pub fn handle_connect(
        &mut self,
        now: Instant,
        source: Ipv4Addr,
    ) -> Result<ConnectionId, Refusal> {
        self.advance(now);
        self.sweep_sources(now);
        let (connections, tokens) = match self.sources.get(&source) {
            Some(s) => (s.connections, self.refilled(s.tokens, s.refilled, now)),
            None => (0, self.bucket_size()),
        };
        let l = &self.limits;
        if connections >= l.connections_per_source {
            return self.refuse(Refusal::SourceConnections);
        }
        let rate_limited = l.connection_rate_per_source != 0;
        if rate_limited && tokens < TOKEN {
            return self.refuse(Refusal::SourceRate);
        }
        if self.counters.starting >= l.max_starting as usize {
            return self.refuse(Refusal::Starting);
        }
        let bound = l.max_sessions as usize + l.max_starting as usize;
        if self.connections.len() >= bound {
            return self.refuse(Refusal::ServerFull);
        }
        let tokens = if rate_limited { tokens - TOKEN } else { tokens };
        match self.sources.get_mut(&source) {
            Some(s) => {
                if s.idle_since.take().is_some() {
                    self.idle_sources -= 1;
                }
                s.connections += 1;
                s.tokens = tokens;
                s.refilled = now;
            }
            None => {
                self.sources.insert(
                    source,
                    Source {
                        connections: 1,
                        tokens,
                        refilled: now,
                        idle_since: None,
                    },
                );
            }
        }
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.connections.insert(
            id,
            Connection {
                source,
                accepted: now,
                established: false,
                starting: true,
                sessions: Vec::new(),
            },
        );
        self.counters.connections_accepted += 1;
        self.counters.live_connections += 1;
        self.counters.starting += 1;
        Ok(id)
    }

    /// Start-Control-Connection was answered on `conn` (bookkeeping only;
    /// the connection keeps its max-starting slot until its first call).
    pub fn handle_connection_established(&mut self, now: Instant, conn: ConnectionId) {
        self.advance(now);
        if let Some(c) = self.connections.get_mut(&conn) {
            c.established = true;
        }
    }

    /// Whether Start-Control-Connection was answered on `conn`.
    pub fn is_established(&self, conn: ConnectionId) -> bool {
        self.connections.get(&conn).is_some_and(|c| c.established)
    }

    /// Number of open control connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Source addresses tracked (with connections or a refilling bucket).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// TCP of `conn` is gone: frees its connection slot, and every session
    /// on it that is not already ending gets
    /// [`Event::Terminate`] with [`EndReason::ControlClosed`]. The sessions
    /// stay in the registry until released. Idempotent.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnectionId) {
        self.advance(now);
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        self.counters.live_connections -= 1;
        if c.starting {
            self.counters.starting -= 1;
        }
        if let Some(s) = self.sources.get_mut(&c.source) {
            s.connections -= 1;
            if s.connections == 0 {
                if self.limits.connection_rate_per_source == 0 {
                    self.sources.remove(&c.source);
                } else {
                    s.idle_since = Some(now);
                    self.idle_sources += 1;
                    self.idle.push_back((c.source, now));
                }
            }
        }
        for session in c.sessions {
            self.terminate(session, EndReason::ControlClosed);
        }
        self.sweep_sources(now);
    }

    /// An Outgoing-Call-Request on `conn`: a new session in state
    /// [`SessionState::Starting`] with a fresh random Call ID, or a refusal
    /// (the control connection answers Busy). Checks calls per connection,
    /// sessions on the server and max-starting (the first call of a
    /// connection takes over the connection's starting slot).
    pub fn allocate_call(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        peer_call_id: u16,
    ) -> Result<SessionId, Refusal> {
        self.advance(now);
        let Some(c) = self.connections.get(&conn) else {
            return self.refuse(Refusal::UnknownConnection);
        };
        let (source, conn_starting) = (c.source, c.starting);
        if c.sessions.len() >= self.limits.calls_per_connection as usize {
            return self.refuse(Refusal::ConnectionCalls);
        }
        if self.counters.live_sessions >= self.limits.max_sessions as usize {
            return self.refuse(Refusal::ServerFull);
        }
        if !conn_starting && self.counters.starting >= self.limits.max_starting as usize {
            return self.refuse(Refusal::Starting);
        }
        let Some(call_id) = self.call_ids.allocate() else {
            return self.refuse(Refusal::ServerFull);
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let id = SessionId {
            call_id,
            generation: self.next_generation,
        };
        let deadline = now.checked_add(self.limits.setup_timeout);
        if let Some(d) = deadline {
            self.deadlines.insert((d, call_id, id.generation));
        }
        self.sessions.insert(
            call_id,
            SessionEntry {
                call_id,
                peer_call_id,
                source,
                connection: conn,
                user: None,
                address: None,
                started: now,
                state: SessionState::Starting,
                ending: None,
                up_since: None,
                generation: id.generation,
                starting: true,
                deadline,
                session_deadline: None,
                idle: None,
            },
        );
        let c = self.connections.get_mut(&conn).expect("looked up above");
        c.sessions.push(id);
        if c.starting {
            c.starting = false;
        } else {
            self.counters.starting += 1;
        }
        self.counters.sessions_started += 1;
        self.counters.live_sessions += 1;
        Ok(id)
    }

    fn entry(&self, id: SessionId) -> Option<&SessionEntry> {
        self.sessions
            .get(&id.call_id)
            .filter(|e| e.generation == id.generation)
    }

    fn entry_mut(&mut self, id: SessionId) -> Option<&mut SessionEntry> {
        self.sessions
            .get_mut(&id.call_id)
            .filter(|e| e.generation == id.generation)
    }

    /// Records the peer's Call ID (when the session was allocated through
    /// [`ConnectionCalls`], which does not know it). Whether the session
    /// exists.
    pub fn set_peer_call_id(&mut self, session: SessionId, peer_call_id: u16) -> bool {
        self.entry_mut(session)
            .map(|e| e.peer_call_id = peer_call_id)
            .is_some()
    }

    /// The live session holding our Call ID `call_id`.
    pub fn session_by_call(&self, call_id: u16) -> Option<SessionId> {
        self.sessions.get(&call_id).map(|e| SessionId {
            call_id,
            generation: e.generation,
        })
    }

    /// `session` authenticated as `user`. Enforces
    /// [`Limits::sessions_per_user`] (sessions already ending do not count):
    /// with [`UserLimitPolicy::Deny`] the new session is refused, with
    /// [`UserLimitPolicy::Replace`] the user's oldest sessions get
    /// [`Event::Terminate`] with [`EndReason::Replaced`]. Authenticating
    /// again as the same user is accepted; as another user it is refused
    /// ([`Refusal::UserChanged`]) and changes nothing. A session released
    /// or already ending gets [`Refusal::UnknownSession`] (it must not
    /// replace anyone on its way out).
    pub fn handle_authenticated(
        &mut self,
        now: Instant,
        session: SessionId,
        user: &str,
    ) -> Result<(), Refusal> {
        self.advance(now);
        let Some(e) = self
            .entry(session)
            .filter(|e| e.state != SessionState::Ending)
        else {
            return self.refuse(Refusal::UnknownSession);
        };
        match &e.user {
            Some(u) if u == user => return Ok(()),
            Some(_) => return self.refuse(Refusal::UserChanged),
            None => {}
        }
        let limit = self.limits.sessions_per_user as usize;
        if limit != 0 {
            let mut active: Vec<(Instant, u32, SessionId)> = self
                .users
                .get(user)
                .into_iter()
                .flatten()
                .filter_map(|&s| {
                    let e = self.entry(s)?;
                    (e.state != SessionState::Ending).then_some((e.started, s.generation, s))
                })
                .collect();
            if active.len() >= limit {
                if self.limits.over_user_limit == UserLimitPolicy::Deny {
                    return self.refuse(Refusal::UserSessions);
                }
                active.sort_unstable_by_key(|&(started, generation, _)| (started, generation));
                let excess = active.len() + 1 - limit;
                for &(_, _, old) in &active[..excess] {
                    self.terminate(old, EndReason::Replaced);
                }
            }
        }
        if let Some(e) = self.entry_mut(session) {
            e.user = Some(user.to_owned());
        }
        self.users.entry(user.to_owned()).or_default().push(session);
        Ok(())
    }

    /// An address for `session`: its static address (which must satisfy
    /// `allowed` and be free) or a free pool address satisfying `allowed`
    /// (the chap-secrets address column). One address per session: asking
    /// again returns the one it has.
    pub fn allocate_address(
        &mut self,
        session: SessionId,
        static_address: Option<Ipv4Addr>,
        allowed: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Ipv4Addr, PoolError> {
        let Some(e) = self.entry(session) else {
            return Err(PoolError::UnknownSession);
        };
        if let Some(a) = e.address {
            return Ok(a);
        }
        let a = self.pool.allocate_where(static_address, allowed)?;
        if let Some(e) = self.entry_mut(session) {
            e.address = Some(a);
        }
        Ok(a)
    }

    fn stop_starting(&mut self, session: SessionId) {
        let Some(e) = self.entry_mut(session) else {
            return;
        };
        let deadline = e.deadline.take();
        let was_starting = std::mem::take(&mut e.starting);
        if let Some(d) = deadline {
            self.deadlines
                .remove(&(d, session.call_id, session.generation));
        }
        if was_starting {
            self.counters.starting -= 1;
        }
    }

    /// The network phase of `session` is up: it no longer counts as
    /// starting and its setup deadline is gone.
    pub fn handle_network_up(&mut self, now: Instant, session: SessionId) {
        self.advance(now);
        self.stop_starting(session);
        if let Some(e) = self.entry_mut(session)
            && e.state == SessionState::Starting
        {
            e.state = SessionState::Up;
            e.up_since = Some(now);
            self.counters.sessions_up += 1;
            self.setups.record(now);
        }
    }

    /// Sets (or, with `None`, clears) the instant `session` ends with
    /// [`EndReason::SessionTimeout`]: [`Concentrator::handle_timeout`] at
    /// or after it queues [`Event::Terminate`]. A RADIUS Session-Timeout
    /// (Access-Accept, or a CoA-Request that changes it, RFC 5176) sets it
    /// to `now` plus the timeout. False when the session is unknown or
    /// already ending.
    pub fn set_session_deadline(
        &mut self,
        now: Instant,
        session: SessionId,
        deadline: Option<Instant>,
    ) -> bool {
        self.advance(now);
        let Some(e) = self.entry_mut(session) else {
            return false;
        };
        if e.state == SessionState::Ending {
            return false;
        }
        let old = std::mem::replace(&mut e.session_deadline, deadline);
        if let Some(d) = old {
            self.session_deadlines
                .remove(&(d, session.call_id, session.generation));
        }
        if let Some(d) = deadline {
            self.session_deadlines
                .insert((d, session.call_id, session.generation));
        }
        true
    }

    /// Sets (or with `None` clears) `session`'s Idle-Timeout: it ends with
    /// [`EndReason::IdleTimeout`] when [`Concentrator::handle_activity`]
    /// reports no new data packet for `timeout` (counted from now). False
    /// when the session is unknown or already ending.
    pub fn set_idle_timeout(
        &mut self,
        now: Instant,
        session: SessionId,
        timeout: Option<Duration>,
    ) -> bool {
        self.advance(now);
        let Some(e) = self.entry_mut(session) else {
            return false;
        };
        if e.state == SessionState::Ending {
            return false;
        }
        e.idle = timeout.map(|timeout| IdleWatch {
            timeout,
            packets: None,
            since: now,
        });
        let key = (session.call_id, session.generation);
        if timeout.is_some() {
            self.idle_watched.insert(key);
        } else {
            self.idle_watched.remove(&key);
        }
        true
    }

    /// The sessions with an Idle-Timeout, whose packet counts the glue
    /// reports with [`Concentrator::handle_activity`].
    pub fn idle_watched(&self) -> Vec<SessionId> {
        self.idle_watched
            .iter()
            .map(|&(call_id, generation)| SessionId {
                call_id,
                generation,
            })
            .collect()
    }

    /// `session` has carried `packets` data packets in all (both ways,
    /// every data path): a change restarts its idle time.
    pub fn handle_activity(&mut self, now: Instant, session: SessionId, packets: u64) {
        if let Some(idle) = self.entry_mut(session).and_then(|e| e.idle.as_mut())
            && idle.packets != Some(packets)
        {
            if idle.packets.is_some() {
                idle.since = now;
            }
            idle.packets = Some(packets);
        }
    }

    /// Asks the glue to end `session` ([`Event::Terminate`]): admin kill,
    /// RADIUS Disconnect-Request and the like. Queued once: false when the
    /// session is unknown or already ending.
    pub fn terminate(&mut self, session: SessionId, reason: EndReason) -> bool {
        let Some(e) = self.entry_mut(session) else {
            return false;
        };
        if e.state == SessionState::Ending {
            return false;
        }
        e.state = SessionState::Ending;
        e.ending = Some(reason);
        let deadline = e.deadline.take();
        if let Some(d) = deadline {
            self.deadlines
                .remove(&(d, session.call_id, session.generation));
        }
        self.events.push_back(Event::Terminate { session, reason });
        true
    }

    /// [`Concentrator::terminate`] for every session (daemon shutdown).
    pub fn terminate_all(&mut self, reason: EndReason) {
        let ids: Vec<SessionId> = self.sessions().map(|(id, _)| id).collect();
        for id in ids {
            self.terminate(id, reason);
        }
    }

    /// Ends `session`: frees its Call ID and address, forgets it, counts
    /// `reason`. The one place a session ends; exactly once: a second call,
    /// or a stale [`SessionId`] whose Call ID another session now holds,
    /// returns `None` and changes nothing.
    pub fn release(
        &mut self,
        now: Instant,
        session: SessionId,
        reason: EndReason,
    ) -> Option<Released> {
        self.advance(now);
        self.entry(session)?;
        self.stop_starting(session);
        let e = self.sessions.remove(&session.call_id)?;
        if let Some(d) = e.session_deadline {
            self.session_deadlines
                .remove(&(d, session.call_id, session.generation));
        }
        self.idle_watched
            .remove(&(session.call_id, session.generation));
        self.call_ids.release(session.call_id);
        if let Some(a) = e.address {
            self.pool.release(a);
        }
        if let Some(u) = &e.user
            && let Some(list) = self.users.get_mut(u)
        {
            list.retain(|&s| s != session);
            if list.is_empty() {
                self.users.remove(u);
            }
        }
        if let Some(c) = self.connections.get_mut(&e.connection) {
            c.sessions.retain(|&s| s != session);
        }
        self.counters.live_sessions -= 1;
        self.counters.sessions_ended[reason.index()] += 1;
        if e.up_since.is_none() {
            self.counters.setup_failures[reason.index()] += 1;
        }
        Some(Released {
            session,
            call_id: session.call_id,
            address: e.address,
            user: e.user,
            source: e.source,
            connection: e.connection,
            reason,
        })
    }

    /// The next thing the glue must do. Terminations of sessions released
    /// meanwhile are dropped.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(ev) = self.events.pop_front() {
            let Event::Terminate { session, .. } = &ev;
            if self.entry(*session).is_some() {
                return Some(ev);
            }
        }
        None
    }

    /// When [`Concentrator::handle_timeout`] has work: the earliest setup
    /// deadline of a starting session. (Token buckets need no timer: they
    /// are refilled on input, and idle ones are forgotten on input.)
    pub fn poll_timeout(&self) -> Option<Instant> {
        let setup = self.deadlines.first().map(|&(d, _, _)| d);
        let session = self.session_deadlines.first().map(|&(d, _, _)| d);
        let idle = self
            .idle_watched
            .iter()
            .filter_map(|&(call_id, generation)| {
                self.entry(SessionId {
                    call_id,
                    generation,
                })?
                .idle?
                .expires()
            })
            .min();
        [setup, session, idle].into_iter().flatten().min()
    }

    /// Time passed: sessions still starting at their deadline get
    /// [`Event::Terminate`] with [`EndReason::SetupTimeout`]; idle source
    /// buckets that are full again are forgotten. Calling it early (to
    /// tell the core the time, e.g. before feeding a control connection
    /// that allocates through [`ConnectionCalls`]) is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some(&(d, call_id, generation)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.terminate(
                SessionId {
                    call_id,
                    generation,
                },
                EndReason::SetupTimeout,
            );
        }
        while let Some(&(d, call_id, generation)) = self.session_deadlines.first() {
            if d > now {
                break;
            }
            self.session_deadlines.pop_first();
            let session = SessionId {
                call_id,
                generation,
            };
            if let Some(e) = self.entry_mut(session) {
                e.session_deadline = None;
                self.terminate(session, EndReason::SessionTimeout);
            }
        }
        let idle: Vec<SessionId> = self
            .idle_watched()
            .into_iter()
            .filter(|&id| {
                self.entry(id)
                    .and_then(|e| e.idle)
                    .and_then(|i| i.expires())
                    .is_some_and(|t| t <= now)
            })
            .collect();
        for session in idle {
            self.idle_watched
                .remove(&(session.call_id, session.generation));
            if let Some(e) = self.entry_mut(session) {
                e.idle = None;
            }
            self.terminate(session, EndReason::IdleTimeout);
        }
        self.sweep_sources(now);
    }

    /// The registry entry of `id`, unless it was released.
    pub fn session(&self, id: SessionId) -> Option<&SessionEntry> {
        self.entry(id)
    }

    /// Every session in the registry.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &SessionEntry)> {
        self.sessions.iter().map(|(&call_id, e)| {
            (
                SessionId {
                    call_id,
                    generation: e.generation,
                },
                e,
            )
        })
    }

    /// Whether our Call ID `call_id` belongs to a session in the registry
    /// (ending or not: a Call ID is free exactly when no entry holds it).
    pub fn is_call_live(&self, call_id: u16) -> bool {
        self.sessions.contains_key(&call_id)
    }

    /// Call IDs handed out and not released.
    pub fn live_call_ids(&self) -> usize {
        self.call_ids.live()
    }
}

/// The [`CallIdAllocator`] a server [`super::control::ControlConnection`]
/// of one admitted connection uses, over the shared [`Concentrator`].
///
/// - `allocate` is [`Concentrator::allocate_call`] for this connection,
///   with the latest instant the core has seen (the glue keeps it current
///   through its `handle_*` calls or [`Concentrator::handle_timeout`]) and
///   peer Call ID 0 (set it with [`Concentrator::set_peer_call_id`] on
///   `CallConnected`). A refusal becomes `None` (Busy) and is counted.
/// - `release` does **not** free the Call ID: the session still owns it
///   (its GRE entries, route and address are live until teardown), and a
///   Call ID freed under a live session is how one ID came to name two
///   sessions. It asks for the session to end instead
///   ([`Event::Terminate`] with [`EndReason::ControlClosed`], once); the
///   Call ID goes back only through [`Concentrator::release`].
#[derive(Debug, Clone)]
pub struct ConnectionCalls {
    core: Arc<Mutex<Concentrator>>,
    conn: ConnectionId,
}

impl ConnectionCalls {
    pub fn new(core: Arc<Mutex<Concentrator>>, conn: ConnectionId) -> Self {
        Self { core, conn }
    }

    pub fn connection(&self) -> ConnectionId {
        self.conn
    }
}

impl CallIdAllocator for ConnectionCalls {
    fn allocate(&mut self) -> Option<u16> {
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        let accepted = core.connections.get(&self.conn).map(|c| c.accepted);
        let now = match (core.latest, accepted) {
            (Some(l), Some(a)) => l.max(a),
            (l, a) => l.or(a)?,
        };
        core.allocate_call(now, self.conn, 0)
            .ok()
            .map(SessionId::call_id)
    }

    fn release(&mut self, id: u16) {
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = core.session_by_call(id)
            && core
                .entry(session)
                .is_some_and(|e| e.connection == self.conn)
        {
            core.terminate(session, EndReason::ControlClosed);
        }
    }
}

#[cfg(test)]
#[path = "concentrator_tests.rs"]
mod tests;
