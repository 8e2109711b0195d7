//! GRE sequence and acknowledgment state of one PPTP call (RFC 2637
//! sections 4.2 to 4.4), without I/O: the caller passes every received GRE
//! header and `now` in, asks for the header of every data packet it wants
//! to send, and polls for acknowledgment-only packets and the next timer.
//! Nothing here allocates; every operation is a few integer operations.
//!
//! # Sending
//!
//! - Sequence numbers start at [`Config::initial_seq`] (0 by default) and
//!   increase by one per data packet, wrapping from `u32::MAX` to 0.
//!   Acknowledgment-only packets carry no sequence number.
//! - An acknowledgment is *owed* after a data packet is accepted. It rides
//!   on the next data packet (the A bit, piggy-backed). If no data packet
//!   leaves within [`Config::ack_delay`], [`Sequencer::poll_transmit`]
//!   yields an acknowledgment-only packet; it does so at once when half of
//!   the window we advertised ([`Config::own_window`]) has arrived
//!   unacknowledged, so a peer that respects our window never stalls.
//! - The peer's receive window (from its Outgoing-Call-Request, or Reply
//!   when we are the caller) limits how many data packets may be in flight,
//!   sent but not acknowledged. With [`WindowPolicy::Respect`] (the default)
//!   a packet beyond the window is **refused**: [`Sequencer::send_data`]
//!   returns [`WindowFull`] and counts it; the caller drops the packet.
//!   There is no queue: upper layers (TCP) recover from the loss, and a
//!   queue would hold buffers per call (pptpd queues; the Linux kernel
//!   ignores the window). A window of 0 cannot be meant literally and is
//!   treated as no limit.
//! - A peer that stops acknowledging (lost acknowledgments, or a peer such
//!   as the Linux kernel driver that only acknowledges on its own data
//!   packets) would close the window for good; so when the window is full
//!   and no acknowledgment has moved it for [`Config::ack_timeout`], all
//!   packets in flight are taken as acknowledged (counted in
//!   [`Counters::ack_timeouts`]), as the adaptive time-out of RFC 2637
//!   appendix A does in spirit.
//! - [`WindowPolicy::Ignore`] sends regardless of the window, as the Linux
//!   kernel does: useful with peers that advertise tiny windows (pptpd and
//!   pptp-linux advertise 3).
//!
//! # Receiving: loss and reordering
//!
//! Data packets are accepted when their sequence number is *newer* than any
//! accepted before, in 32-bit serial-number arithmetic (RFC 1982), so the
//! wrap from `u32::MAX` to 0 is seamless. A jump forward is accepted at
//! once; the sequence numbers jumped over count as skipped (lost, unless
//! they turn up later). Nothing is buffered or reordered.
//!
//! A packet older than the newest one is never accepted as new:
//! - if it was not seen before and lies within the 64 sequence numbers
//!   below the newest, it arrived late (reordered in transit). It is
//!   dropped by default ([`Received::Late`] with `delivered: false`),
//!   which keeps MPPE's coherency count moving forward only; with
//!   [`Config::deliver_late`] it is delivered out of order instead (plain
//!   IP tolerates that);
//! - if it was seen before it is a [`Received::Duplicate`], dropped;
//! - if it lies further back (64 or more below the newest, or exactly
//!   2^31 away, where serial order is undefined) it is
//!   [`Received::TooOld`], dropped.
//!
//! # Receiving in two phases
//!
//! A frame's sequence number is worth recording only once the frame is
//! known to be genuine: a frame that fails a later check (MPPE decryption,
//! the inner source address, PPP framing) may come from anyone who can
//! guess the call ID, and recording its far-ahead number would make every
//! later genuine frame look late. So receiving has two steps:
//! [`Sequencer::classify`] says what a header would be ([`Received`]) and
//! changes nothing; [`Sequencer::accept`], called only for a frame that
//! passed every check, takes in its acknowledgment and records its
//! sequence number. There is no one-step path.
//!
//! # Where the state lives
//!
//! The numbers another party may share live behind [`SeqStorage`]: the
//! next sequence number to send, the newest sequence number accepted and
//! the last acknowledgment sent. Our own client keeps them in memory
//! ([`LocalSeq`], the default). The server keeps them in the slot of the
//! `PPTP_SEQ` array that it memory-maps and shares with the XDP program
//! (`dataplane::xdp::SeqSlot`), because frames of a call on the XDP path
//! are numbered, accepted and acknowledged by the kernel too: one sequence
//! space, whoever sends. Everything else (the window, the 64-frame history,
//! the acknowledgment timer, the counters) is only ever touched by
//! userspace and stays in the [`Sequencer`]. When the shared newest number
//! moved without us (the kernel accepted frames), the history realigns to
//! it on the next use, and [`Sequencer::sync`] arms the acknowledgment
//! timer if that number was not acknowledged yet: the kernel cannot wake
//! userspace, so whoever drives a shared sequencer calls `sync` when the
//! kernel may have received (the server does it on a slow timer, only for
//! calls on the XDP path). This design rather than one type per side keeps
//! one implementation of the receive rules, the window and the timer for
//! both; the storage trait is four numbers wide.
//!
//! The acknowledgment number we send is always the newest sequence number
//! accepted. Acknowledgments received are taken when they acknowledge a
//! packet in flight; older ones are ignored, and ones for packets never
//! sent are ignored and counted.

use std::time::{Duration, Instant};

// The serial-number comparison shared with the XDP program (RFC 1982).
use pptp_common::serial::{HALF, seq_lt};

use crate::wire::gre;

/// How many sequence numbers below the newest one are remembered.
const HISTORY: u32 = u64::BITS;
/// Packets in flight are forgotten beyond this, so the serial arithmetic on
/// acknowledgments stays meaningful even when a peer never acknowledges.
const MAX_IN_FLIGHT: u32 = 1 << 30;

/// What to do about the peer's receive window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowPolicy {
    /// Send no more than the window's worth of unacknowledged packets;
    /// refuse the excess (RFC 2637 section 4.4).
    #[default]
    Respect,
    /// Send regardless of the window (as the Linux kernel does).
    Ignore,
}

/// Parameters of one call's sequencing (RFC 2637 sections 2.7, 2.8, 4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The peer's Packet Receive Window Size (RFC 2637 sections 2.7, 2.8):
    /// how many unacknowledged data packets it buffers. 0 means no limit.
    pub peer_window: u16,
    /// The Packet Receive Window Size we advertised: an acknowledgment-only
    /// packet leaves at once when half of it has arrived unacknowledged.
    pub own_window: u16,
    /// Whether to respect `peer_window`.
    pub window_policy: WindowPolicy,
    /// How long an owed acknowledgment waits for a data packet to ride on.
    pub ack_delay: Duration,
    /// How long a full window waits for an acknowledgment before the
    /// packets in flight are taken as acknowledged.
    pub ack_timeout: Duration,
    /// Deliver data packets that arrive late (reordered) instead of
    /// dropping them.
    pub deliver_late: bool,
    /// Sequence number of the first data packet sent.
    pub initial_seq: u32,
}

impl Config {
    /// Default [`Config::ack_delay`].
    pub const DEFAULT_ACK_DELAY: Duration = Duration::from_millis(20);
    /// Default [`Config::ack_timeout`].
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_millis(500);

    /// The defaults for the given windows: respect the peer's window, the
    /// default delays, late packets dropped, sequence numbers from 0.
    pub fn new(peer_window: u16, own_window: u16) -> Config {
        Config {
            peer_window,
            own_window,
            window_policy: WindowPolicy::Respect,
            ack_delay: Config::DEFAULT_ACK_DELAY,
            ack_timeout: Config::DEFAULT_ACK_TIMEOUT,
            deliver_late: false,
            initial_seq: 0,
        }
    }
}

/// The verdict on a received GRE packet of this call (RFC 2637 section
/// 4.4; the policy is in the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Newer than every data packet before: deliver. `skipped` sequence
    /// numbers were jumped over (0 when in order).
    Accepted { skipped: u32 },
    /// Older than the newest data packet and not seen before: reordered in
    /// transit. Deliver only if `delivered` ([`Config::deliver_late`]).
    Late { delivered: bool },
    /// Seen before: drop.
    Duplicate,
    /// Too far behind the newest to tell: drop.
    TooOld,
    /// An acknowledgment-only packet: nothing to deliver.
    AckOnly,
}

impl Received {
    /// Whether the payload goes up to PPP.
    pub const fn deliver(self) -> bool {
        matches!(
            self,
            Received::Accepted { .. } | Received::Late { delivered: true }
        )
    }
}

/// A data packet was refused because the peer's receive window (RFC 2637
/// section 4.4) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer's receive window is full")]
pub struct WindowFull;

/// Counters of one call's sequencing (RFC 2637 section 4.4), for
/// `pptp-daemon sessions` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Data packets given a sequence number.
    pub tx_data: u64,
    /// Acknowledgment-only packets produced.
    pub tx_ack_only: u64,
    /// Data packets refused because the peer's window was full.
    pub tx_window_full: u64,
    /// Times a full window was reopened after [`Config::ack_timeout`].
    pub ack_timeouts: u64,
    /// Data packets accepted as newest.
    pub rx_data: u64,
    /// Acknowledgment-only packets received.
    pub rx_ack_only: u64,
    /// Sequence numbers jumped over (lost, or late if they turn up).
    pub rx_skipped: u64,
    /// Data packets that arrived late (reordered).
    pub rx_late: u64,
    /// Data packets received twice.
    pub rx_duplicate: u64,
    /// Data packets too far behind to classify.
    pub rx_too_old: u64,
    /// Acknowledgments of sequence numbers never sent.
    pub rx_bad_ack: u64,
}

/// The numbers of a call's sequencing that another party (the XDP
/// program) may share; see the module documentation.
pub trait SeqStorage {
    /// Sequence number the next data packet will carry.
    fn next_tx(&self) -> u32;
    /// Takes the next sequence number to send: returns it and advances.
    fn take_tx(&mut self) -> u32;
    /// The newest sequence number accepted from the peer, if any.
    fn rx_newest(&self) -> Option<u32>;
    /// Records `seq` as the newest accepted. The sequencer calls it only
    /// with a number newer than [`SeqStorage::rx_newest`] (RFC 1982).
    fn set_rx_newest(&mut self, seq: u32);
    /// The acknowledgment number last sent, if known.
    fn ack_sent(&self) -> Option<u32>;
    /// Records an acknowledgment number sent.
    fn set_ack_sent(&mut self, ack: u32);

    /// The newest sequence number accepted, when no acknowledgment of it
    /// has been sent.
    fn unacknowledged(&self) -> Option<u32> {
        self.rx_newest().filter(|&n| self.ack_sent() != Some(n))
    }
}

/// [`SeqStorage`] in memory, for a sequencer nobody shares (our client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSeq {
    next_tx: u32,
    rx_newest: Option<u32>,
    ack_sent: Option<u32>,
}

impl LocalSeq {
    /// Nothing received or acknowledged; the first data packet carries
    /// `initial_seq`.
    pub fn new(initial_seq: u32) -> LocalSeq {
        LocalSeq {
            next_tx: initial_seq,
            rx_newest: None,
            ack_sent: None,
        }
    }
}

impl SeqStorage for LocalSeq {
    fn next_tx(&self) -> u32 {
        self.next_tx
    }

    fn take_tx(&mut self) -> u32 {
        let seq = self.next_tx;
        self.next_tx = seq.wrapping_add(1);
        seq
    }

    fn rx_newest(&self) -> Option<u32> {
        self.rx_newest
    }

    fn set_rx_newest(&mut self, seq: u32) {
        self.rx_newest = Some(seq);
    }

    fn ack_sent(&self) -> Option<u32> {
        self.ack_sent
    }

    fn set_ack_sent(&mut self, ack: u32) {
        self.ack_sent = Some(ack);
    }
}

/// The newest accepted sequence number and which of the 64 below it were
/// seen: bit `i` of `seen` is sequence number `newest - i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReceiveHistory {
    newest: u32,
    seen: u64,
}

impl ReceiveHistory {
    /// The history moved forward to `newest`, which is `ahead` past the
    /// current newest; `newest` itself seen.
    fn advanced(self, newest: u32, ahead: u32) -> ReceiveHistory {
        let seen = if ahead < HISTORY {
            (self.seen << ahead) | 1
        } else {
            1
        };
        ReceiveHistory { newest, seen }
    }
}

/// GRE sequence/acknowledgment state of one call (RFC 2637 section 4.4);
/// the policy is in the module documentation.
#[derive(Debug)]
pub struct Sequencer<S: SeqStorage = LocalSeq> {
    peer_call_id: u16,
    config: Config,
    store: S,
    /// Oldest sequence number sent and not acknowledged (== next_tx
    /// when nothing is in flight).
    oldest_unacked: u32,
    /// When the window last moved: an acknowledgment of new packets, or a
    /// packet sent into an empty window.
    window_moved: Option<Instant>,
    /// Which sequence numbers below the newest were seen, as of the last
    /// time this sequencer looked; realigned to the storage's newest
    /// number when another party moved it.
    history: Option<ReceiveHistory>,
    /// When the owed acknowledgment must leave; `None` when none is owed.
    ack_deadline: Option<Instant>,
    /// Data packets accepted since the last acknowledgment we sent.
    unacked_received: u32,
    counters: Counters,
}

impl Sequencer<LocalSeq> {
    /// The state of a new call whose peer uses `peer_call_id` (the call ID
    /// we put in every GRE header we send), kept in memory; the first data
    /// packet carries [`Config::initial_seq`].
    pub fn new(peer_call_id: u16, config: Config) -> Sequencer<LocalSeq> {
        let store = LocalSeq::new(config.initial_seq);
        Sequencer::with_storage(peer_call_id, config, store)
    }
}

impl<S: SeqStorage> Sequencer<S> {
    /// The state of a call whose shared numbers live in `store` (which
    /// decides the first sequence number; [`Config::initial_seq`] is not
    /// used).
    pub fn with_storage(peer_call_id: u16, config: Config, store: S) -> Sequencer<S> {
        Sequencer {
            peer_call_id,
            oldest_unacked: store.next_tx(),
            store,
            config,
            window_moved: None,
            history: None,
            ack_deadline: None,
            unacked_received: 0,
            counters: Counters::default(),
        }
    }

    /// The call ID our GRE headers carry.
    pub fn peer_call_id(&self) -> u16 {
        self.peer_call_id
    }

    /// The parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The shared numbers.
    pub fn storage(&self) -> &S {
        &self.store
    }

    /// Sequence number the next data packet will carry.
    pub fn next_seq(&self) -> u32 {
        self.store.next_tx()
    }

    /// Data packets sent and not yet acknowledged.
    pub fn in_flight(&self) -> u32 {
        self.store.next_tx().wrapping_sub(self.oldest_unacked)
    }

    /// The newest sequence number accepted from the peer, if any.
    pub fn newest_received(&self) -> Option<u32> {
        self.store.rx_newest()
    }

    /// Whether an acknowledgment is owed to the peer.
    pub fn ack_owed(&self) -> bool {
        self.ack_deadline.is_some() || self.store.unacknowledged().is_some()
    }

    /// What a GRE packet of this call with this header would be (the
    /// caller has parsed it and matched the call ID and the peer's
    /// address). Changes nothing: call [`Sequencer::accept`] once the
    /// frame passed every other check.
    pub fn classify(&self, header: &gre::Repr) -> Received {
        match header.seq {
            Some(seq) => self.classify_seq(seq),
            None => Received::AckOnly,
        }
    }

    /// Takes in a GRE packet that passed every check: its acknowledgment,
    /// then its sequence number. Returns the verdict on it (what
    /// [`Sequencer::classify`] said, unless a packet accepted in between
    /// changed it).
    pub fn accept(&mut self, header: &gre::Repr, now: Instant) -> Received {
        if let Some(ack) = header.ack {
            self.handle_ack(ack, now);
        }
        let Some(seq) = header.seq else {
            self.counters.rx_ack_only += 1;
            return Received::AckOnly;
        };
        let verdict = self.classify_seq(seq);
        let history = self.current_history();
        match verdict {
            Received::Accepted { skipped } => {
                self.history = Some(match history {
                    Some(h) => h.advanced(seq, skipped + 1),
                    None => ReceiveHistory {
                        newest: seq,
                        seen: 1,
                    },
                });
                self.store.set_rx_newest(seq);
                self.counters.rx_data += 1;
                self.counters.rx_skipped += u64::from(skipped);
                self.owe_ack(now);
            }
            Received::Late { .. } => {
                if let Some(mut h) = history {
                    h.seen |= 1 << h.newest.wrapping_sub(seq);
                    self.history = Some(h);
                }
                self.counters.rx_late += 1;
            }
            Received::Duplicate => self.counters.rx_duplicate += 1,
            Received::TooOld => self.counters.rx_too_old += 1,
            Received::AckOnly => {}
        }
        verdict
    }

    /// Takes in what another party sharing the storage (the XDP program)
    /// received: arms the acknowledgment timer when the newest sequence
    /// number accepted was not acknowledged and no acknowledgment is owed
    /// yet.
    pub fn sync(&mut self, now: Instant) {
        if self.ack_deadline.is_none() && self.store.unacknowledged().is_some() {
            self.ack_deadline = Some(now.checked_add(self.config.ack_delay).unwrap_or(now));
        }
    }

    /// The history aligned to the storage's newest number.
    fn current_history(&self) -> Option<ReceiveHistory> {
        let newest = self.store.rx_newest()?;
        Some(match self.history {
            Some(h) if h.newest == newest => h,
            Some(h) if seq_lt(h.newest, newest) => {
                h.advanced(newest, newest.wrapping_sub(h.newest))
            }
            // First sight, or the storage was reset: only the newest is known.
            _ => ReceiveHistory { newest, seen: 1 },
        })
    }

    fn classify_seq(&self, seq: u32) -> Received {
        let Some(history) = self.current_history() else {
            return Received::Accepted { skipped: 0 };
        };
        let ahead = seq.wrapping_sub(history.newest);
        if ahead == 0 {
            return Received::Duplicate;
        }
        if ahead < HALF {
            return Received::Accepted { skipped: ahead - 1 };
        }
        let behind = history.newest.wrapping_sub(seq);
        if behind >= HISTORY {
            return Received::TooOld;
        }
        if history.seen & (1u64 << behind) != 0 {
            return Received::Duplicate;
        }
        Received::Late {
            delivered: self.config.deliver_late,
        }
    }

    fn handle_ack(&mut self, ack: u32, now: Instant) {
        let in_flight = self.in_flight();
        if ack.wrapping_sub(self.oldest_unacked) < in_flight {
            self.oldest_unacked = ack.wrapping_add(1);
            self.window_moved = Some(now);
        } else if !seq_lt(ack, self.oldest_unacked) {
            // Not in flight and not older: a packet we never sent.
            self.counters.rx_bad_ack += 1;
        }
    }

    fn owe_ack(&mut self, now: Instant) {
        self.unacked_received = self.unacked_received.saturating_add(1);
        let due_now = self.unacked_received >= u32::from(self.config.own_window / 2).max(1);
        let deadline = if due_now {
            now
        } else {
            now.checked_add(self.config.ack_delay).unwrap_or(now)
        };
        self.ack_deadline = Some(match self.ack_deadline {
            Some(earlier) => earlier.min(deadline),
            None => deadline,
        });
    }

    /// The acknowledgment to put on a packet now, clearing the debt.
    fn take_ack(&mut self) -> Option<u32> {
        if !self.ack_owed() {
            return None;
        }
        self.ack_deadline = None;
        self.unacked_received = 0;
        let ack = self.store.rx_newest()?;
        self.store.set_ack_sent(ack);
        Some(ack)
    }

    /// Whether a data packet could be sent now without being refused.
    pub fn can_send(&self, now: Instant) -> bool {
        !self.window_full() || self.window_timed_out(now)
    }

    fn window_full(&self) -> bool {
        let window = u32::from(self.config.peer_window);
        self.config.window_policy == WindowPolicy::Respect
            && window != 0
            && self.in_flight() >= window
    }

    fn window_timed_out(&self, now: Instant) -> bool {
        self.window_moved
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.ack_timeout)
    }

    /// The GRE header of the next data packet of `payload_len` bytes: the
    /// next sequence number and, if one is owed, the acknowledgment. The
    /// packet is refused when the peer's window is full (see the module
    /// documentation); the caller then drops it.
    pub fn send_data(&mut self, payload_len: u16, now: Instant) -> Result<gre::Repr, WindowFull> {
        if self.window_full() {
            if !self.window_timed_out(now) {
                self.counters.tx_window_full += 1;
                return Err(WindowFull);
            }
            self.counters.ack_timeouts += 1;
            self.oldest_unacked = self.store.next_tx();
        }
        if self.in_flight() == 0 {
            self.window_moved = Some(now);
        } else if self.in_flight() >= MAX_IN_FLIGHT {
            self.oldest_unacked = self.oldest_unacked.wrapping_add(1);
        }
        let seq = self.store.take_tx();
        self.counters.tx_data += 1;
        Ok(gre::Repr::data(
            self.peer_call_id,
            seq,
            self.take_ack(),
            payload_len,
        ))
    }

    /// When [`Sequencer::poll_transmit`] will next have something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_deadline
    }

    /// An acknowledgment-only packet, when one is owed and due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<gre::Repr> {
        if self.ack_deadline? > now {
            return None;
        }
        self.ack_only()
    }

    /// An acknowledgment-only packet now, when one is owed (due or not),
    /// clearing the debt.
    pub fn ack_only(&mut self) -> Option<gre::Repr> {
        let ack = self.take_ack()?;
        self.counters.tx_ack_only += 1;
        Some(gre::Repr::ack_only(self.peer_call_id, ack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: u16 = 0x4242;

    fn config(peer_window: u16) -> Config {
        Config {
            ack_delay: Duration::from_millis(10),
            ack_timeout: Duration::from_secs(1),
            ..Config::new(peer_window, 64)
        }
    }

    /// A sequencer that delivers late packets (window 64).
    fn delivering_late() -> Sequencer {
        Sequencer::new(
            PEER,
            Config {
                deliver_late: true,
                ..config(64)
            },
        )
    }

    fn data(seq: u32) -> gre::Repr {
        gre::Repr::data(7, seq, None, 100)
    }

    fn data_ack(seq: u32, ack: u32) -> gre::Repr {
        gre::Repr::data(7, seq, Some(ack), 100)
    }

    fn ack(ack: u32) -> gre::Repr {
        gre::Repr::ack_only(7, ack)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    mod receive {
        use super::*;

        #[test]
        fn in_order_packets_are_accepted() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            for seq in 0..10 {
                assert_eq!(s.accept(&data(seq), t0), Received::Accepted { skipped: 0 });
            }
            assert_eq!(s.newest_received(), Some(9));
            assert_eq!(s.counters().rx_data, 10);
        }

        #[test]
        fn first_packet_may_start_anywhere() {
            let mut s = Sequencer::new(PEER, config(64));
            let verdict = s.accept(&data(0xdead_beef), Instant::now());
            assert_eq!(verdict, Received::Accepted { skipped: 0 });
            assert_eq!(s.newest_received(), Some(0xdead_beef));
        }

        #[test]
        fn loss_is_a_forward_jump() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(1), t0);
            assert_eq!(s.accept(&data(5), t0), Received::Accepted { skipped: 3 });
            assert_eq!(s.accept(&data(6), t0), Received::Accepted { skipped: 0 });
            // A jump beyond the history is accepted too.
            assert_eq!(
                s.accept(&data(1006), t0),
                Received::Accepted { skipped: 999 }
            );
            assert_eq!(s.counters().rx_skipped, 1002);
        }

        #[test]
        fn duplicates_are_dropped() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            for seq in [10, 11, 12] {
                s.accept(&data(seq), t0);
            }
            assert_eq!(s.accept(&data(12), t0), Received::Duplicate);
            assert_eq!(s.accept(&data(11), t0), Received::Duplicate);
            assert!(!Received::Duplicate.deliver());
            assert_eq!(s.counters().rx_duplicate, 2);
            assert_eq!(s.newest_received(), Some(12));
        }

        #[test]
        fn late_packets_are_dropped_by_default() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(1), t0);
            s.accept(&data(3), t0);
            let late = s.accept(&data(2), t0);
            assert_eq!(late, Received::Late { delivered: false });
            assert!(!late.deliver());
            // Once seen, it is a duplicate.
            assert_eq!(s.accept(&data(2), t0), Received::Duplicate);
            // The newest is unchanged, and so is what we acknowledge.
            assert_eq!(s.newest_received(), Some(3));
            assert_eq!(s.counters().rx_late, 1);
        }

        #[test]
        fn late_packets_can_be_delivered() {
            let t0 = Instant::now();
            let mut s = delivering_late();
            s.accept(&data(100), t0);
            s.accept(&data(104), t0);
            for seq in [103, 101, 102] {
                let verdict = s.accept(&data(seq), t0);
                assert_eq!(verdict, Received::Late { delivered: true });
                assert!(verdict.deliver());
            }
            assert_eq!(s.accept(&data(101), t0), Received::Duplicate);
            assert_eq!(s.accept(&data(100), t0), Received::Duplicate);
        }

        #[test]
        fn packets_beyond_the_history_are_too_old() {
            let t0 = Instant::now();
            let mut s = delivering_late();
            s.accept(&data(1000), t0);
            assert_eq!(
                s.accept(&data(1000 - 63), t0),
                Received::Late { delivered: true }
            );
            assert_eq!(s.accept(&data(1000 - 64), t0), Received::TooOld);
            assert_eq!(s.accept(&data(0), t0), Received::TooOld);
            // Exactly half the sequence space away: neither newer nor older.
            assert_eq!(
                s.accept(&data(1000u32.wrapping_add(HALF)), t0),
                Received::TooOld
            );
            assert_eq!(s.counters().rx_too_old, 3);
        }

        #[test]
        fn a_big_jump_forgets_the_history() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(0), t0);
            s.accept(&data(200), t0);
            assert_eq!(
                s.accept(&data(199), t0),
                Received::Late { delivered: false }
            );
            assert_eq!(
                s.accept(&data(137), t0),
                Received::Late { delivered: false }
            );
            assert_eq!(s.accept(&data(136), t0), Received::TooOld);
        }

        #[test]
        fn wraparound_of_received_sequence_numbers() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            for seq in [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1] {
                assert_eq!(s.accept(&data(seq), t0), Received::Accepted { skipped: 0 });
            }
            assert_eq!(s.accept(&data(u32::MAX), t0), Received::Duplicate);
            assert_eq!(s.accept(&data(4), t0), Received::Accepted { skipped: 2 });
            assert_eq!(s.accept(&data(2), t0), Received::Late { delivered: false });
            // Loss across the wrap.
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(u32::MAX - 1), t0);
            assert_eq!(s.accept(&data(2), t0), Received::Accepted { skipped: 3 });
            assert_eq!(
                s.accept(&data(u32::MAX), t0),
                Received::Late { delivered: false }
            );
        }

        #[test]
        fn ack_only_packets_deliver_nothing() {
            let mut s = Sequencer::new(PEER, config(64));
            let verdict = s.accept(&ack(0), Instant::now());
            assert_eq!(verdict, Received::AckOnly);
            assert!(!verdict.deliver());
            assert!(!s.ack_owed());
            assert_eq!(s.counters().rx_ack_only, 1);
        }
    }

    /// Problem 9 of issue 15: a frame's sequence number is recorded only
    /// once the frame is accepted.
    mod two_phases {
        use super::*;

        #[test]
        fn a_far_ahead_number_never_accepted_does_not_make_the_next_frame_late() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(1), t0);
            let before = *s.counters();
            // A spoofed frame half the space ahead minus one: newer in
            // serial arithmetic, so it would be accepted...
            let spoofed = data(1 + (HALF - 1));
            assert_eq!(
                s.classify(&spoofed),
                Received::Accepted { skipped: HALF - 2 }
            );
            // ...but it fails a later check and is never accepted. The
            // classification changed nothing:
            assert_eq!(s.newest_received(), Some(1));
            assert_eq!(*s.counters(), before);
            // The next genuine frame is in order.
            assert_eq!(s.classify(&data(2)), Received::Accepted { skipped: 0 });
            assert_eq!(s.accept(&data(2), t0), Received::Accepted { skipped: 0 });
            assert_eq!(s.newest_received(), Some(2));
            // Had it been accepted, the genuine frame would be too old.
            s.accept(&spoofed, t0);
            assert_eq!(s.classify(&data(3)), Received::TooOld);
        }

        #[test]
        fn classify_takes_no_acknowledgment_and_owes_none() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(4));
            for _ in 0..3 {
                s.send_data(1, t0).unwrap();
            }
            assert_eq!(
                s.classify(&data_ack(9, 2)),
                Received::Accepted { skipped: 0 }
            );
            assert_eq!(s.in_flight(), 3);
            assert!(!s.ack_owed());
            assert_eq!(s.poll_timeout(), None);
            s.accept(&data_ack(9, 2), t0);
            assert_eq!(s.in_flight(), 0);
            assert!(s.ack_owed());
        }

        #[test]
        fn classify_sees_late_and_duplicate_without_marking_them() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(1), t0);
            s.accept(&data(3), t0);
            assert_eq!(s.classify(&data(2)), Received::Late { delivered: false });
            // Not marked seen by classify: still late, until accepted.
            assert_eq!(s.classify(&data(2)), Received::Late { delivered: false });
            s.accept(&data(2), t0);
            assert_eq!(s.classify(&data(2)), Received::Duplicate);
            assert_eq!(s.classify(&data(3)), Received::Duplicate);
            assert_eq!(s.classify(&ack(3)), Received::AckOnly);
        }
    }

    /// A storage shared with another party, as the XDP program shares the
    /// server's: the test plays the kernel through the other handle.
    mod shared_storage {
        use super::*;
        use std::{cell::RefCell, rc::Rc};

        #[derive(Clone)]
        struct Shared(Rc<RefCell<LocalSeq>>);

        impl Shared {
            fn new() -> Shared {
                Shared(Rc::new(RefCell::new(LocalSeq::new(0))))
            }
            fn kernel(&self) -> std::cell::RefMut<'_, LocalSeq> {
                self.0.borrow_mut()
            }
        }

        impl SeqStorage for Shared {
            fn next_tx(&self) -> u32 {
                self.0.borrow().next_tx()
            }
            fn take_tx(&mut self) -> u32 {
                self.kernel().take_tx()
            }
            fn rx_newest(&self) -> Option<u32> {
                self.0.borrow().rx_newest()
            }
            fn set_rx_newest(&mut self, seq: u32) {
                self.kernel().set_rx_newest(seq);
            }
            fn ack_sent(&self) -> Option<u32> {
                self.0.borrow().ack_sent()
            }
            fn set_ack_sent(&mut self, ack: u32) {
                self.kernel().set_ack_sent(ack);
            }
        }

        #[test]
        fn both_sides_draw_from_one_sequence_space() {
            let t0 = Instant::now();
            let store = Shared::new();
            let mut s = Sequencer::with_storage(PEER, config(0), store.clone());
            assert_eq!(s.send_data(1, t0).unwrap().seq, Some(0));
            assert_eq!(store.kernel().take_tx(), 1);
            assert_eq!(s.send_data(1, t0).unwrap().seq, Some(2));
            assert_eq!(s.accept(&ack(2), t0), Received::AckOnly);
            assert_eq!(s.in_flight(), 0);
        }

        #[test]
        fn the_history_follows_what_the_kernel_accepted() {
            let t0 = Instant::now();
            let store = Shared::new();
            let mut s = Sequencer::with_storage(PEER, config(0), store.clone());
            s.accept(&data(1), t0);
            s.poll_transmit(ms(t0, 10)).unwrap();
            store.kernel().set_rx_newest(5);
            assert_eq!(s.classify(&data(5)), Received::Duplicate);
            assert_eq!(s.classify(&data(4)), Received::Late { delivered: false });
            assert_eq!(s.classify(&data(1)), Received::Duplicate);
            assert_eq!(s.classify(&data(6)), Received::Accepted { skipped: 0 });
        }

        #[test]
        fn sync_arms_the_timer_for_what_the_kernel_did_not_acknowledge() {
            let t0 = Instant::now();
            let store = Shared::new();
            let mut s = Sequencer::with_storage(PEER, config(0), store.clone());
            s.sync(t0);
            assert_eq!(s.poll_timeout(), None);
            store.kernel().set_rx_newest(7);
            // The kernel acknowledged it on a frame of its own: nothing owed.
            store.kernel().set_ack_sent(7);
            s.sync(t0);
            assert_eq!(s.poll_timeout(), None);
            store.kernel().set_rx_newest(8);
            s.sync(t0);
            assert_eq!(s.poll_timeout(), Some(ms(t0, 10)));
            assert_eq!(
                s.poll_transmit(ms(t0, 10)),
                Some(gre::Repr::ack_only(PEER, 8))
            );
            assert_eq!(store.ack_sent(), Some(8));
            assert_eq!(s.poll_timeout(), None);
            // An unacknowledged number rides on the next data packet even
            // before `sync`.
            store.kernel().set_rx_newest(9);
            assert_eq!(s.send_data(1, t0).unwrap().ack, Some(9));
        }
    }

    mod acknowledgments {
        use super::*;

        #[test]
        fn nothing_owed_nothing_sent() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            assert_eq!(s.poll_timeout(), None);
            assert_eq!(s.poll_transmit(ms(t0, 1000)), None);
            assert_eq!(s.send_data(10, t0).unwrap().ack, None);
        }

        #[test]
        fn ack_rides_on_the_next_data_packet() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(5), t0);
            s.accept(&data(6), t0);
            assert!(s.ack_owed());
            let header = s.send_data(100, ms(t0, 1)).unwrap();
            assert_eq!(header, gre::Repr::data(PEER, 0, Some(6), 100));
            // Paid: no ack-only packet, no ack on the next data packet.
            assert_eq!(s.poll_timeout(), None);
            assert_eq!(s.poll_transmit(ms(t0, 100)), None);
            assert_eq!(s.send_data(100, ms(t0, 2)).unwrap().ack, None);
        }

        #[test]
        fn ack_only_after_the_delay_when_nothing_is_sent() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(64));
            s.accept(&data(41), t0);
            s.accept(&data(42), ms(t0, 5));
            // The deadline runs from the first packet owed an ack.
            assert_eq!(s.poll_timeout(), Some(ms(t0, 10)));
            assert_eq!(s.poll_transmit(ms(t0, 9)), None);
            assert_eq!(
                s.poll_transmit(ms(t0, 10)),
                Some(gre::Repr::ack_only(PEER, 42))
            );
            assert_eq!(s.poll_transmit(ms(t0, 11)), None);
            assert_eq!(s.poll_timeout(), None);
            assert_eq!(s.counters().tx_ack_only, 1);
        }

        #[test]
        fn ack_only_at_once_after_half_our_window() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(
                PEER,
                Config {
                    own_window: 8,
                    ..config(64)
                },
            );
            for seq in 0..3 {
                s.accept(&data(seq), t0);
            }
            assert_eq!(s.poll_transmit(t0), None);
            s.accept(&data(3), t0);
            assert_eq!(s.poll_timeout(), Some(t0));
            assert_eq!(s.poll_transmit(t0), Some(gre::Repr::ack_only(PEER, 3)));
            // The count starts over.
            s.accept(&data(4), t0);
            assert_eq!(s.poll_timeout(), Some(ms(t0, 10)));
        }

        #[test]
        fn late_and_duplicate_packets_owe_no_new_ack() {
            let t0 = Instant::now();
            let mut s = delivering_late();
            s.accept(&data(1), t0);
            s.accept(&data(3), t0);
            assert!(s.poll_transmit(ms(t0, 10)).is_some());
            s.accept(&data(2), t0);
            s.accept(&data(3), t0);
            assert!(!s.ack_owed());
        }

        #[test]
        fn the_ack_is_the_newest_sequence_number() {
            let t0 = Instant::now();
            let mut s = delivering_late();
            s.accept(&data(9), t0);
            s.accept(&data(8), t0);
            assert_eq!(s.send_data(1, t0).unwrap().ack, Some(9));
        }
    }

    mod send {
        use super::*;

        #[test]
        fn sequence_numbers_count_up_and_wrap() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(
                PEER,
                Config {
                    initial_seq: u32::MAX - 1,
                    ..config(0)
                },
            );
            let seqs: Vec<_> = (0..4)
                .map(|_| s.send_data(1, t0).unwrap().seq.unwrap())
                .collect();
            assert_eq!(seqs, [u32::MAX - 1, u32::MAX, 0, 1]);
            assert_eq!(s.next_seq(), 2);
            assert_eq!(s.counters().tx_data, 4);
        }

        #[test]
        fn headers_carry_the_peer_call_id_and_length() {
            let mut s = Sequencer::new(PEER, config(64));
            let header = s.send_data(1400, Instant::now()).unwrap();
            assert_eq!(header, gre::Repr::data(PEER, 0, None, 1400));
        }

        #[test]
        fn window_limits_packets_in_flight() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(3));
            for _ in 0..3 {
                assert!(s.send_data(1, t0).is_ok());
            }
            assert!(!s.can_send(t0));
            assert_eq!(s.send_data(1, t0), Err(WindowFull));
            assert_eq!(s.counters().tx_window_full, 1);
            // The refused packet took no sequence number.
            assert_eq!(s.next_seq(), 3);
            // Acknowledging packet 0 opens one slot.
            s.accept(&ack(0), ms(t0, 1));
            assert_eq!(s.in_flight(), 2);
            assert_eq!(s.send_data(1, ms(t0, 1)).unwrap().seq, Some(3));
            assert_eq!(s.send_data(1, ms(t0, 1)), Err(WindowFull));
            // One acknowledgment covers every packet up to it.
            s.accept(&data_ack(0, 3), ms(t0, 2));
            assert_eq!(s.in_flight(), 0);
            for seq in 4..7 {
                assert_eq!(s.send_data(1, ms(t0, 2)).unwrap().seq, Some(seq));
            }
        }

        #[test]
        fn old_and_bogus_acks_are_ignored() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(2));
            s.send_data(1, t0).unwrap();
            s.send_data(1, t0).unwrap();
            s.accept(&ack(0), t0);
            assert_eq!(s.in_flight(), 1);
            // Older than the oldest in flight: ignored, not counted.
            s.accept(&ack(0), t0);
            s.accept(&ack(u32::MAX), t0);
            assert_eq!(s.in_flight(), 1);
            assert_eq!(s.counters().rx_bad_ack, 0);
            // For a packet never sent: ignored and counted.
            s.accept(&ack(2), t0);
            s.accept(&ack(1000), t0);
            assert_eq!(s.in_flight(), 1);
            assert_eq!(s.counters().rx_bad_ack, 2);
        }

        #[test]
        fn acks_before_anything_was_sent_are_bogus() {
            let mut s = Sequencer::new(PEER, config(2));
            s.accept(&ack(0), Instant::now());
            assert_eq!(s.in_flight(), 0);
            assert_eq!(s.counters().rx_bad_ack, 1);
        }

        #[test]
        fn window_and_acks_across_the_wrap() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(
                PEER,
                Config {
                    initial_seq: u32::MAX - 1,
                    ..config(4)
                },
            );
            for _ in 0..4 {
                s.send_data(1, t0).unwrap();
            }
            assert_eq!(s.send_data(1, t0), Err(WindowFull));
            s.accept(&ack(u32::MAX), t0);
            assert_eq!(s.in_flight(), 2);
            s.accept(&ack(1), t0);
            assert_eq!(s.in_flight(), 0);
            assert_eq!(s.send_data(1, t0).unwrap().seq, Some(2));
        }

        #[test]
        fn a_silent_peer_reopens_the_window_after_the_ack_timeout() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(2));
            s.send_data(1, t0).unwrap();
            s.send_data(1, ms(t0, 100)).unwrap();
            assert_eq!(s.send_data(1, ms(t0, 999)), Err(WindowFull));
            // The timeout runs from when the window last moved (t0).
            assert!(s.can_send(ms(t0, 1000)));
            assert_eq!(s.send_data(1, ms(t0, 1000)).unwrap().seq, Some(2));
            assert_eq!(s.counters().ack_timeouts, 1);
            assert_eq!(s.in_flight(), 1);
            // A late acknowledgment of the forgotten packets changes nothing.
            s.accept(&ack(0), ms(t0, 1001));
            assert_eq!(s.in_flight(), 1);
            assert_eq!(s.counters().rx_bad_ack, 0);
        }

        #[test]
        fn acknowledgments_restart_the_ack_timeout() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(2));
            s.send_data(1, t0).unwrap();
            s.send_data(1, t0).unwrap();
            s.accept(&ack(0), ms(t0, 900));
            s.send_data(1, ms(t0, 900)).unwrap();
            assert_eq!(s.send_data(1, ms(t0, 1500)), Err(WindowFull));
            assert!(s.send_data(1, ms(t0, 1900)).is_ok());
        }

        #[test]
        fn window_zero_means_no_limit() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(0));
            for _ in 0..1000 {
                s.send_data(1, t0).unwrap();
            }
            assert_eq!(s.in_flight(), 1000);
        }

        #[test]
        fn ignore_policy_sends_beyond_the_window() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(
                PEER,
                Config {
                    window_policy: WindowPolicy::Ignore,
                    ..config(3)
                },
            );
            for _ in 0..10 {
                s.send_data(1, t0).unwrap();
            }
            assert_eq!(s.counters().tx_window_full, 0);
            s.accept(&ack(9), t0);
            assert_eq!(s.in_flight(), 0);
        }

        #[test]
        fn a_refused_packet_keeps_the_ack_owed() {
            let t0 = Instant::now();
            let mut s = Sequencer::new(PEER, config(1));
            s.send_data(1, t0).unwrap();
            s.accept(&data(0), t0);
            assert_eq!(s.send_data(1, t0), Err(WindowFull));
            assert_eq!(
                s.poll_transmit(ms(t0, 10)),
                Some(gre::Repr::ack_only(PEER, 0))
            );
        }
    }

    /// Two sequencers talking through a lossy, reordering pipe keep each
    /// other's windows open.
    #[test]
    fn two_ends_exchange_data_and_acks() {
        let t0 = Instant::now();
        let mut a = Sequencer::new(1, config(4));
        let mut b = Sequencer::new(2, config(4));
        let mut delivered = 0;
        for step in 0..200u64 {
            let now = ms(t0, step * 5);
            // a sends one-way traffic; every 7th packet is lost.
            if let Ok(header) = a.send_data(100, now)
                && header.seq.unwrap() % 7 != 3
                && b.accept(&header, now).deliver()
            {
                delivered += 1;
            }
            if let Some(ack_only) = b.poll_transmit(now) {
                a.accept(&ack_only, now);
            }
        }
        assert!(delivered > 150, "{delivered}");
        assert_eq!(a.counters().ack_timeouts, 0);
        assert!(b.counters().rx_skipped > 20);
    }
}
