//! RC4 states prepared ahead of the XDP program's MPPE receive
//! (`PPTP_MPPE_PREP`, [`MppePrepared`]) and send (`PPTP_MPPE_TX_PREP`).
//!
//! Decrypting a stateless MPPE frame costs a key change (SHA-1 and an RC4
//! key schedule, RFC 3078 section 7.3) and the key schedule of the new
//! key before any keystream: in the program, about 3 µs of a 3.7 µs frame
//! at 64 octets on the bench host (2 GHz Xeon), on the CPU that receives
//! the frame. The daemon's native code does the same in about 1.3 µs (its
//! two key schedules interleaved, `KeySchedule::permutation_then_change`),
//! on a CPU of its own: it keeps the next [`MPPE_PREP_DEPTH`] positions of
//! each busy receive chain prepared (key and finished permutation), and
//! the program copies 288 octets instead (0.75 µs a frame). Some less
//! work, and work moved off the receiving CPU: one session's frames, which
//! arrive on one CPU, are no longer bounded by that CPU's key changes. A frame
//! whose state is not ready (a session without a row, a jump past what is
//! prepared, a preparer that fell behind) is decrypted as before, from the
//! chain's head: the prepared states never change what is decrypted.
//!
//! The work is bounded: [`MPPE_PREP_ROWS`] sessions have a row (the rest
//! walk in the program; every [`REBALANCE_PASSES`] passes the rows of
//! sessions whose chain did not move go to those without a row whose
//! chain moved most), and one pass prepares at most
//! [`MPPE_PREP_DEPTH`] positions per row, those between the chain's head
//! and `MPPE_PREP_DEPTH` past it. Only frames the program decrypted to
//! valid IPv4 (or the daemon published) move the head, so a peer's forged
//! frames cost it nothing here.
//!
//! A loss run longer than the program follows (over
//! `MPPE_RX_MAX_EVIDENCED`, or over its catch-up budget) would leave the
//! chain to userspace until userspace caught up, which under the load that
//! caused the loss it does not (its queues hold older frames than the
//! program follows from). The program then reports where the peer is
//! (`MppeRx::far`, only when the GRE sequence numbers show the jump); a
//! pass walks the chain there (at most [`CHASE_WALK`] key changes a pass,
//! at most [`CHASE_MAX`] ahead) and prepares the positions after it, where
//! the program takes the chain back whatever the jump. A target lasts
//! [`CHASE_PASSES`] passes in which the head moved elsewhere unless the
//! program renews it, so one forged by someone who sees the session's
//! sequence numbers costs the preparer's thread bounded work and the
//! session its prepared states for a while, nothing else.
//!
//! # Send
//!
//! The send chains (`PPTP_MPPE_TX`) have rows of their own in
//! `PPTP_MPPE_TX_PREP` (a second [`Preparer`], over `MppeTx`; the same
//! thread runs both): the positions after a chain's newest key published,
//! which senders take in turn from its counter. Encrypting a 64-octet
//! packet for a client cost the program a key change and a key schedule
//! as decrypting did; with a prepared state it copies the state instead.
//! Nobody far ahead is chased on that side: the senders are the program and
//! the daemon, never the peer.
//!
//! [`Preparer`] holds the rows and does a pass ([`Preparer::refill`], no
//! clock, no thread); [`PreparerThread`] runs passes on a thread of its own
//! until dropped.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::maps::MapData;
use pptp_common::maps::{MPPE_PREP_DEPTH, MPPE_PREP_ROWS, MppePrepared, MppeRx};

use super::{
    mppe_chain::{MppeMap, PreparedChain, SharedArray},
    xdp::XdpError,
};
use crate::mppe::keys::{KeySchedule, StartKey};

/// Entries of `PPTP_MPPE_PREP`.
const ENTRIES: usize = (MPPE_PREP_ROWS * MPPE_PREP_DEPTH) as usize;

/// The mapping of `PPTP_MPPE_PREP`.
struct PrepMap(SharedArray<MppePrepared>);

// SAFETY: entries are written seqlock-fashion (tags through atomics) and
// only by the preparer, one pass at a time.
unsafe impl Send for PrepMap {}
// SAFETY: as above.
unsafe impl Sync for PrepMap {}

impl PrepMap {
    fn mmap(data: &MapData) -> Result<Self, XdpError> {
        Ok(Self(SharedArray::mmap(data, ENTRIES)?))
    }

    #[cfg(test)]
    fn heap() -> Self {
        Self(SharedArray::heap(ENTRIES))
    }

    /// The entry of `position` in row `row`.
    fn entry(&self, row: u32, position: u64) -> *mut MppePrepared {
        let index =
            (row * MPPE_PREP_DEPTH) as usize + (position % u64::from(MPPE_PREP_DEPTH)) as usize;
        self.0
            .get(index)
            .expect("rows are below MPPE_PREP_ROWS: entries in bounds")
    }

    /// Writes the state of `position` (key `key`, zero-padded to 16
    /// octets, and its RC4 permutation `state`) for `epoch` into its entry
    /// of row `row`.
    fn write(&self, row: u32, epoch: u64, position: u64, key: &[u8; 16], state: &[u8; 256]) {
        let entry = self.entry(row, position);
        // SAFETY: an entry of the live mapping; its tag is only accessed
        // atomically, the rest between the tag's two stores (the seqlock of
        // `MppePrepared`).
        unsafe {
            let tag = AtomicU64::from_ptr(&raw mut (*entry).tag);
            tag.store(0, Ordering::SeqCst);
            std::ptr::write_volatile(&raw mut (*entry).epoch, epoch);
            std::ptr::write_volatile(&raw mut (*entry).key, *key);
            std::ptr::write_volatile(&raw mut (*entry).state, *state);
            tag.store(position + 1, Ordering::SeqCst);
        }
    }

    /// The entry of `position` in row `row`, as the program would read it
    /// (tests).
    #[cfg(test)]
    fn read(&self, row: u32, position: u64) -> MppePrepared {
        // SAFETY: an entry of the live mapping.
        unsafe { std::ptr::read_volatile(self.entry(row, position)) }
    }
}

/// A row's owner: a session's receive chain.
#[derive(Clone)]
struct Row {
    slot: u32,
    epoch: u64,
    start: StartKey,
    /// The newest position prepared and the chain at it.
    cursor: Option<(u64, KeySchedule)>,
    /// The chain's head at the previous pass.
    last_head: u64,
    /// The chain's head at the previous rebalance.
    rebalance_head: u64,
    /// Where the program last found the peer too far ahead to follow
    /// (`MppeRx::far`) and the passes since it said so: states are
    /// prepared after there instead of after the head (see
    /// [`Preparer::refill`]).
    chase: Option<(u64, u32)>,
}

/// A chain without a row.
struct Waiting {
    start: StartKey,
    /// Its head at the previous rebalance.
    head: u64,
}

/// Passes between two rebalances (see the module documentation): 50 ms
/// or more while chains move, about a second when none does.
pub const REBALANCE_PASSES: u64 = 256;

struct Rows {
    rows: Vec<Option<Row>>,
    /// Chains without a row, by session slot.
    waiting: std::collections::BTreeMap<u32, Waiting>,
    /// Passes since the last rebalance.
    passes: u64,
    /// The next epoch to hand out (never reused: an entry written for a
    /// session that has gone never matches its row's next owner).
    next_epoch: u64,
}

/// The rows of prepared states and their owners, for the chains of one
/// map: receive ([`MppeRx`], `PPTP_MPPE_PREP`, the default) or send
/// (`MppeTx`, `PPTP_MPPE_TX_PREP`: the positions after the newest key
/// published, which the program's senders take in turn).
pub struct Preparer<E = MppeRx> {
    rx: Arc<MppeMap<E>>,
    map: PrepMap,
    rows: Mutex<Rows>,
}

impl<E: PreparedChain> Preparer<E> {
    pub(super) fn mmap(rx: Arc<MppeMap<E>>, data: &MapData) -> Result<Self, XdpError> {
        Ok(Self::with_map(rx, PrepMap::mmap(data)?))
    }

    fn with_map(rx: Arc<MppeMap<E>>, map: PrepMap) -> Self {
        Self {
            rx,
            map,
            rows: Mutex::new(Rows {
                rows: vec![None; MPPE_PREP_ROWS as usize],
                waiting: Default::default(),
                passes: 0,
                next_epoch: 1,
            }),
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        // A pass that panicked left whole rows behind: still usable.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the receive chain of `slot` (opened from `start`) a row, if
    /// one is free, and points the program at it; otherwise the chain
    /// waits for one (see [`Self::rebalance`]). Returns the row.
    pub fn assign(&self, slot: u32, start: &StartKey) -> Result<Option<u32>, XdpError> {
        // A slot holds one chain: whatever an earlier one held goes.
        self.release(slot)?;
        let mut rows = self.rows();
        let Some(row) = rows.rows.iter().position(Option::is_none) else {
            let head = self.rx.slot(slot)?.position();
            rows.waiting.insert(
                slot,
                Waiting {
                    start: start.clone(),
                    head,
                },
            );
            return Ok(None);
        };
        self.give(&mut rows, row, slot, start.clone())?;
        Ok(Some(row as u32))
    }

    /// Gives row `row` to `slot`'s chain with a new epoch.
    fn give(
        &self,
        rows: &mut Rows,
        row: usize,
        slot: u32,
        start: StartKey,
    ) -> Result<(), XdpError> {
        let epoch = rows.next_epoch;
        rows.next_epoch += 1;
        rows.waiting.remove(&slot);
        let head = self.rx.slot(slot)?.position();
        rows.rows[row] = Some(Row {
            slot,
            epoch,
            start,
            cursor: None,
            last_head: head,
            rebalance_head: head,
            chase: None,
        });
        self.rx.set_prepared(slot, Some((row as u32, epoch)))
    }

    /// Takes the row of `slot`'s chain back, if it has one, or its place
    /// among the waiting (idempotent); the program stops using the row at
    /// once.
    pub fn release(&self, slot: u32) -> Result<(), XdpError> {
        let mut rows = self.rows();
        rows.waiting.remove(&slot);
        for row in rows.rows.iter_mut() {
            if row.as_ref().is_some_and(|r| r.slot == slot) {
                *row = None;
                self.rx.set_prepared(slot, None)?;
            }
        }
        Ok(())
    }

    /// Passes rows to the waiting chains whose heads moved since the last
    /// rebalance, most moved first: free rows, then the rows of chains
    /// whose heads did not move (those chains then wait). Returns how many
    /// rows changed hands. [`Self::refill`] calls it every
    /// [`REBALANCE_PASSES`] passes.
    pub fn rebalance(&self) -> Result<usize, XdpError> {
        let mut rows = self.rows();
        rows.passes = 0;
        let mut movers: Vec<(u64, u32)> = Vec::new();
        for (slot, waiting) in rows.waiting.iter_mut() {
            let head = self.rx.slot(*slot)?.position();
            if head != waiting.head {
                movers.push((head.wrapping_sub(waiting.head), *slot));
            }
            waiting.head = head;
        }
        movers.sort_unstable_by(|a, b| b.cmp(a));
        let mut free: Vec<usize> = Vec::new();
        let mut idle: Vec<usize> = Vec::new();
        for (index, row) in rows.rows.iter_mut().enumerate() {
            match row {
                None => free.push(index),
                Some(row) => {
                    let head = self.rx.slot(row.slot)?.position();
                    if head == row.rebalance_head {
                        idle.push(index);
                    }
                    row.rebalance_head = head;
                }
            }
        }
        let mut passed = 0;
        for (_, slot) in movers {
            let Some(index) = free.pop().or_else(|| idle.pop()) else {
                break;
            };
            if let Some(owner) = rows.rows[index].take() {
                self.rx.set_prepared(owner.slot, None)?;
                let head = self.rx.slot(owner.slot)?.position();
                rows.waiting.insert(
                    owner.slot,
                    Waiting {
                        start: owner.start,
                        head,
                    },
                );
            }
            let Some(waiting) = rows.waiting.remove(&slot) else {
                continue;
            };
            self.give(&mut rows, index, slot, waiting.start)?;
            passed += 1;
        }
        Ok(passed)
    }

    /// Rows in use.
    pub fn rows_in_use(&self) -> usize {
        self.rows().rows.iter().filter(|r| r.is_some()).count()
    }

    /// One pass: prepares, for every row, the positions after its chain's
    /// head up to [`MPPE_PREP_DEPTH`] past it that are not prepared yet,
    /// or, while the program reports the peer far ahead (`MppeRx::far`),
    /// after that position instead, walking there at most [`CHASE_WALK`]
    /// key changes a pass. Returns how many it prepared, plus one per row
    /// that walked.
    pub fn refill(&self) -> usize {
        self.pass().prepared
    }

    /// One pass, as [`Self::refill`], with what the thread's pause after
    /// it depends on ([`next_pause`]).
    pub fn pass(&self) -> Pass {
        let mut pass = Pass::default();
        let rebalance = {
            let mut rows = self.rows();
            rows.passes += 1;
            rows.passes >= REBALANCE_PASSES
        };
        if rebalance && let Err(e) = self.rebalance() {
            tracing::warn!("MPPE preparer: passing rows on: {e}");
        }
        let mut prepared = 0;
        for index in 0..MPPE_PREP_ROWS as usize {
            let before = prepared;
            // The row's owner, copied out: install and removal do not wait
            // for the key work.
            let Some(mut row) = self.rows().rows[index].clone() else {
                continue;
            };
            let Ok(chain) = self.rx.slot(row.slot) else {
                continue;
            };
            let Some((head, head_key)) = chain.read_head() else {
                continue;
            };
            // A peer far ahead of what the program follows: prepare after
            // where it is, so that the program's next frame there takes
            // the chain back (module documentation). A target lasts
            // CHASE_PASSES passes in which the head moved elsewhere, unless
            // renewed or reached.
            let moved = u32::from(head != row.last_head);
            row.chase = match (E::take_far(&chain, head), row.chase) {
                (Some(far), _) if far - head <= CHASE_MAX => Some((far, 0)),
                (_, Some((far, passes))) if passes < CHASE_PASSES => Some((far, passes + moved)),
                _ => None,
            }
            .filter(|&(far, _)| far > head + u64::from(MPPE_PREP_DEPTH));
            let chasing = row.chase.is_some();
            let base = row.chase.map_or(head, |(far, _)| far);
            let limit = base + u64::from(MPPE_PREP_DEPTH);
            let (mut position, mut schedule) = match row.cursor.take() {
                Some((at, schedule)) if at >= base && at <= limit => (at, schedule),
                // On the way to a far target: on from there.
                Some((at, schedule)) if chasing && at >= head && at < base => (at, schedule),
                // The head moved past what was prepared: a jump, or frames
                // faster than this pass's preparations (then the program
                // would keep overtaking states prepared from its head, each
                // wasted). Start again from the head's key, as far ahead
                // as the head moved since the last pass (at most half the
                // depth): the program walks to there meanwhile, and finds
                // states ready beyond.
                overtaken => {
                    pass.hurried |= overtaken.is_some();
                    let mut schedule = KeySchedule::new(&row.start);
                    if !schedule.set_session_key(&head_key) {
                        continue;
                    }
                    let lead = if chasing {
                        0
                    } else if overtaken.is_some() {
                        head.saturating_sub(row.last_head)
                            .min(u64::from(MPPE_PREP_DEPTH / 2))
                    } else {
                        0
                    };
                    for _ in 0..lead {
                        schedule.change_key();
                    }
                    (head + lead, schedule)
                }
            };
            // To a far target: key changes only, at most CHASE_WALK a pass.
            let walk = base.saturating_sub(position).min(CHASE_WALK);
            for _ in 0..walk {
                schedule.change_key();
            }
            position += walk;
            // The states after `position` up to `limit`: each the
            // permutation of its key and, interleaved with it, the key
            // change to the next (`KeySchedule::permutation_then_change`,
            // about two thirds of the two apart); the last without the
            // change, so that the cursor's chain stays at its position.
            if position >= base && position < limit {
                schedule.change_key();
                position += 1;
                loop {
                    let (key, state) = if position < limit {
                        schedule.permutation_then_change()
                    } else {
                        schedule.prepared_state()
                    };
                    self.map
                        .write(index as u32, row.epoch, position, &key, &state);
                    prepared += 1;
                    if position == limit {
                        break;
                    }
                    position += 1;
                }
            }
            let mut rows = self.rows();
            if let Some(current) = rows.rows[index].as_mut()
                && current.epoch == row.epoch
            {
                current.cursor = Some((position, schedule));
                current.last_head = head;
                current.chase = row.chase;
            }
            // A walk counts as work done (the pass after comes soon).
            prepared += usize::from(walk > 0);
            pass.hurried |= walk > 0;
            pass.most = pass.most.max(prepared - before);
        }
        pass.prepared = prepared;
        pass
    }
}

/// What a pass ([`Preparer::pass`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// States prepared, plus one per row that walked to a far target (what
    /// [`Preparer::refill`] returns).
    pub prepared: usize,
    /// The most states one row needed: how far its chain's head moved since
    /// the pass before (at most [`MPPE_PREP_DEPTH`]).
    pub most: usize,
    /// A row's head had passed everything prepared for it, or a row walked
    /// to a far target: the next pass should come soon.
    pub hurried: bool,
}

/// The thread's pause after a pass that took `pause` before it: as short
/// as [`BUSY_PAUSE`] while a head outruns its states, shorter while a row
/// needed more than a quarter of the depth, longer (up to [`IDLE_PAUSE`])
/// while every row needed less than an eighth. So a pass prepares 32 to 64
/// states of the busiest row, whatever its rate, and the states never run
/// out while the rate holds: at 12,000 frames a second the thread wakes
/// about 300 times a second instead of 5,000, each wake-up (a timed futex
/// wait, the scheduler) costing the CPU it shares with the receive path;
/// at 200,000 it stays at [`BUSY_PAUSE`]. A head that speeds up by more
/// than four times between two passes outruns its states once, and the
/// pause drops to [`BUSY_PAUSE`].
pub fn next_pause(pause: Duration, pass: &Pass) -> Duration {
    let depth = MPPE_PREP_DEPTH as usize;
    if pass.hurried {
        BUSY_PAUSE
    } else if pass.most > depth / 4 {
        (pause / 2).max(BUSY_PAUSE)
    } else if pass.most < depth / 8 {
        (pause * 2).min(IDLE_PAUSE)
    } else {
        pause
    }
}

/// The farthest ahead of a chain's head that the preparer goes for a
/// far target (`MppeRx::far`): as far as userspace follows the sequence
/// numbers' evidence (16 turns of the count).
const CHASE_MAX: u64 = crate::mppe::cipher::MAX_EVIDENCED_JUMP;
/// Key changes one pass makes for one row on its way to a far target
/// (without preparing): about 4 ms of the preparer's thread, so that the
/// other rows wait no longer; the next pass goes on.
const CHASE_WALK: u64 = 4096;
/// Passes in which the head moved without reaching a far target that a
/// target lasts, unless the program renews it: a target the peer never
/// reaches (forged, or a burst that ended) soon gives the states back to a
/// head that frames move, and one that nothing moves away from waits for
/// the peer's next frame however late it comes.
const CHASE_PASSES: u32 = 32;

/// The shortest sleep between passes ([`next_pause`]): at 200,000 frames
/// a second a session uses 40 positions meanwhile, far fewer than
/// [`MPPE_PREP_DEPTH`].
pub const BUSY_PAUSE: Duration = Duration::from_micros(200);
/// The longest sleep between passes (doubling from [`BUSY_PAUSE`] while
/// the heads move little or not at all): a session that starts sending
/// finds [`MPPE_PREP_DEPTH`] states ready and walks in the program only if
/// it sends more than that within this time.
pub const IDLE_PAUSE: Duration = Duration::from_millis(5);

/// What the thread runs: the passes of one or more preparers.
pub trait Passes: Send + Sync {
    /// One pass ([`Preparer::pass`]).
    fn pass(&self) -> Pass;
}

impl<E: PreparedChain> Passes for Preparer<E> {
    fn pass(&self) -> Pass {
        Preparer::pass(self)
    }
}

impl Pass {
    /// Two preparers' passes as one (the thread's pause follows the
    /// busier).
    pub fn and(self, other: Pass) -> Pass {
        Pass {
            prepared: self.prepared + other.prepared,
            most: self.most.max(other.most),
            hurried: self.hurried || other.hurried,
        }
    }
}

/// A thread running [`Preparer::refill`] passes until dropped.
pub struct PreparerThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl PreparerThread {
    /// Starts the thread (named `mppe-prepare`), one pass of each of
    /// `preparers` after the other, then one pause for all, at nice value
    /// `nice` (-20 to 19; see [`set_own_nice`]).
    pub fn start(preparers: Vec<Arc<dyn Passes>>, nice: i32) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("mppe-prepare".into())
            .spawn(move || {
                if let Err(e) = set_own_nice(nice) {
                    tracing::warn!(
                        nice,
                        "MPPE preparer: cannot take its nice value ({e}): it runs at the \
                         default priority, behind the CPU's packet processing (the daemon \
                         needs CAP_SYS_NICE or an RLIMIT_NICE of at least {}, systemd's \
                         LimitNICE=)",
                        20 - nice
                    );
                }
                let mut pause = BUSY_PAUSE;
                while !flag.load(Ordering::Relaxed) {
                    let pass = preparers
                        .iter()
                        .fold(Pass::default(), |all, p| all.and(p.pass()));
                    pause = next_pause(pause, &pass);
                    std::thread::park_timeout(pause);
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

/// Gives the calling thread nice value `nice` (Linux: `setpriority` on a
/// thread ID sets that thread's alone).
///
/// Why the preparer runs below nice 0 by default (`mppe.prepare_nice`):
/// on a CPU that also runs packet processing in threads (threaded NAPI,
/// or ksoftirqd once softirq work backs up), a preparer at the same
/// priority gets a fair share at best and falls behind exactly when the
/// frames come fastest; every frame it did not prepare then costs the
/// program a key change and a key schedule of its own, dearer than the
/// preparer's (about 3 µs in the program against 1.3 µs natively on the
/// bench host), on the CPU that is already the limit. Ahead of them it
/// takes only what its passes need (it sleeps between them, and a pass is
/// bounded by [`MPPE_PREP_DEPTH`] states a row), work the program would
/// otherwise do in softirq, which no thread preempts.
pub fn set_own_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: plain system calls about this thread.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for PreparerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::mppe_chain::{MppeRxMap, MppeTxMap};
    use crate::mppe::KeyLength;
    use crate::mppe::cipher::Encryptor;
    use crate::mppe::keys::rc4_permutation;

    /// The program's view of a receive entry's prepared-state fields.
    fn prepared_of(rx: &MppeRxMap, slot: u32) -> (u32, u64) {
        let entry = rx.read(slot).expect("a valid slot");
        (entry.prep_row, entry.prep_epoch)
    }

    fn start(length: KeyLength) -> StartKey {
        StartKey::new(&[0x5A; 16][..length.key_octets()], length).expect("a valid start key")
    }

    fn preparer(slots: usize) -> (Arc<MppeRxMap>, Preparer) {
        let rx = Arc::new(MppeRxMap::heap(slots));
        (rx.clone(), Preparer::with_map(rx, PrepMap::heap()))
    }

    /// The key of `position` on the chain of `start`.
    fn key_at(start: &StartKey, position: u64) -> Vec<u8> {
        let mut schedule = KeySchedule::new(start);
        for _ in 0..position {
            schedule.change_key();
        }
        schedule.session_key().to_vec()
    }

    /// Every position after `head` up to the depth is prepared for `epoch`
    /// with its true key and permutation.
    fn assert_prepared<E: PreparedChain>(
        p: &Preparer<E>,
        row: u32,
        epoch: u64,
        start: &StartKey,
        head: u64,
    ) {
        assert_prepared_from(p, (row, epoch), start, head, head);
    }

    /// Every position after `from` up to the depth past `head` is prepared
    /// for `epoch` with its true key and permutation.
    fn assert_prepared_from<E: PreparedChain>(
        p: &Preparer<E>,
        (row, epoch): (u32, u64),
        start: &StartKey,
        head: u64,
        from: u64,
    ) {
        let mut schedule = KeySchedule::new(start);
        for _ in 0..from {
            schedule.change_key();
        }
        for position in from + 1..=head + u64::from(MPPE_PREP_DEPTH) {
            schedule.change_key();
            let entry = p.map.read(row, position);
            let key = schedule.session_key();
            assert_eq!(entry.tag, position + 1, "position {position}");
            assert_eq!(entry.epoch, epoch, "position {position}");
            assert_eq!(&entry.key[..key.len()], key, "position {position}");
            assert_eq!(entry.state, rc4_permutation(key), "position {position}");
        }
    }

    #[test]
    fn prepares_the_positions_ahead_of_the_head_and_follows_it() {
        for length in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
            let (rx, p) = preparer(4);
            let start = start(length);
            rx.open(2, &start).unwrap();
            assert_eq!(p.assign(2, &start).unwrap(), Some(0));
            assert_eq!(prepared_of(&rx, 2), (1, 1));
            assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize);
            assert_prepared(&p, 0, 1, &start, 0);
            // Nothing to do until the head moves.
            assert_eq!(p.refill(), 0);
            // The program took 10 frames: 10 more positions.
            let chain = rx.slot(2).unwrap();
            assert!(chain.publish_key(10, &key_at(&start, 10)));
            assert_eq!(p.refill(), 10);
            assert_prepared(&p, 0, 1, &start, 10);
            // The head moved past everything prepared (frames faster than
            // the passes): again from the head's key, as far ahead of it as
            // it moved since the last pass, up to half the depth.
            let far = 10 + u64::from(MPPE_PREP_DEPTH) + 50;
            assert!(chain.publish_key(far, &key_at(&start, far)));
            let half = u64::from(MPPE_PREP_DEPTH / 2);
            assert_eq!(p.refill(), half as usize);
            assert_prepared_from(&p, (0, 1), &start, far, far + half);
            assert_ne!(p.map.read(0, far + 1).tag, far + 2, "left to the program");
            // The program walked to the first of them meanwhile; the next
            // pass prepares as far as it moved.
            let walked = far + half;
            assert!(chain.publish_key(walked, &key_at(&start, walked)));
            assert_eq!(p.refill(), half as usize);
            assert_prepared_from(&p, (0, 1), &start, walked, walked);
        }
    }

    #[test]
    fn prepares_the_send_positions_after_the_newest_key_published() {
        for length in [KeyLength::Bits40, KeyLength::Bits128] {
            let tx = Arc::new(MppeTxMap::heap(4));
            let p = Preparer::with_map(tx.clone(), PrepMap::heap());
            let start = start(length);
            let mut user = Encryptor::new(&start, true);
            tx.open_at(1, &start, user.position(), user.session_key())
                .unwrap();
            assert_eq!(p.assign(1, &start).unwrap(), Some(0));
            let entry = tx.read(1).unwrap();
            assert_eq!((entry.prep_row, entry.prep_epoch), (1, 1));
            assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize);
            assert_prepared(&p, 0, 1, &start, 0);
            // Ten frames sent and published (by the daemon here, by the
            // program on the fast path): ten more positions.
            let chain = tx.slot(1).unwrap();
            for _ in 0..10 {
                chain.take(&mut user).unwrap();
                let mut out = [0u8; 5];
                user.encrypt(&[0x00, 0x21, 0x45], &mut out).unwrap();
                assert!(chain.publish(&user));
            }
            assert_eq!(p.refill(), 10);
            assert_prepared(&p, 0, 1, &start, 10);
            // The session goes: the program stops using the row at once.
            p.release(1).unwrap();
            let entry = tx.read(1).unwrap();
            assert_eq!((entry.prep_row, entry.prep_epoch), (0, 0));
            assert_eq!(p.rows_in_use(), 0);
        }
    }

    #[test]
    fn a_pass_reports_the_busiest_row_and_whether_a_head_outran_it() {
        let (rx, p) = preparer(4);
        let start = start(KeyLength::Bits128);
        for slot in [1, 2] {
            rx.open(slot, &start).unwrap();
            assert!(p.assign(slot, &start).unwrap().is_some());
        }
        let depth = MPPE_PREP_DEPTH as usize;
        let first = p.pass();
        assert_eq!((first.prepared, first.most), (2 * depth, depth));
        assert!(!first.hurried, "a new row is not outrun");
        let (one, two) = (rx.slot(1).unwrap(), rx.slot(2).unwrap());
        assert!(one.publish_key(10, &key_at(&start, 10)));
        assert!(two.publish_key(40, &key_at(&start, 40)));
        let pass = p.pass();
        assert_eq!((pass.prepared, pass.most, pass.hurried), (50, 40, false));
        // A head past everything prepared: hurried.
        let far = 40 + depth as u64 + 1;
        assert!(two.publish_key(far, &key_at(&start, far)));
        assert!(p.pass().hurried);
        // Nothing moved: nothing needed.
        assert_eq!(p.pass(), Pass::default());
    }

    #[test]
    fn the_pause_follows_what_the_busiest_row_needs() {
        let pass = |most: usize, hurried: bool| Pass {
            prepared: most,
            most,
            hurried,
        };
        // A slow session (a few frames a pass): the pause doubles up to
        // IDLE_PAUSE, as with no session at all.
        let mut pause = BUSY_PAUSE;
        for _ in 0..10 {
            pause = next_pause(pause, &pass(3, false));
        }
        assert_eq!(pause, IDLE_PAUSE);
        assert_eq!(next_pause(pause, &Pass::default()), IDLE_PAUSE);
        // 32 to 64 states a pass: kept.
        for most in [32, 48, 64] {
            assert_eq!(next_pause(pause, &pass(most, false)), pause, "{most}");
        }
        // More: halved, down to BUSY_PAUSE.
        let halved = next_pause(pause, &pass(65, false));
        assert_eq!(halved, pause / 2);
        assert_eq!(next_pause(BUSY_PAUSE, &pass(200, false)), BUSY_PAUSE);
        // Outrun, or a walk to a far target: BUSY_PAUSE at once.
        assert_eq!(next_pause(IDLE_PAUSE, &pass(1, true)), BUSY_PAUSE);
        // A rate that settles: the pause where a pass prepares 32 to 64
        // states (12,000 frames a second: 2.7 to 5 ms).
        let mut pause = BUSY_PAUSE;
        for _ in 0..20 {
            let most = (12_000.0 * pause.as_secs_f64()) as usize;
            pause = next_pause(pause, &pass(most, false));
        }
        let most = (12_000.0 * pause.as_secs_f64()) as usize;
        assert!((32..=64).contains(&most), "{pause:?}: {most} a pass");
    }

    #[test]
    fn chases_a_peer_far_ahead_until_the_program_takes_the_chain_back() {
        let (rx, p) = preparer(4);
        let start = start(KeyLength::Bits128);
        rx.open(1, &start).unwrap();
        assert_eq!(p.assign(1, &start).unwrap(), Some(0));
        assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize);
        let chain = rx.slot(1).unwrap();
        let depth = u64::from(MPPE_PREP_DEPTH);
        // Reports within what is prepared, or beyond what userspace would
        // follow, change nothing (and are used up).
        chain.set_far(depth);
        assert_eq!(p.refill(), 0);
        chain.set_far(CHASE_MAX + 1);
        assert_eq!(p.refill(), 0);
        assert_eq!(chain.take_far(0), None, "taken");
        assert_prepared(&p, 0, 1, &start, 0);
        // The program found the peer at 5,000 (more than a turn of the
        // count ahead): one pass walks CHASE_WALK key changes towards it,
        // the next the rest, and prepares the positions after it.
        let far = 5_000;
        chain.set_far(far);
        assert_eq!(p.refill(), 1, "a walk, nothing prepared");
        assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize + 1);
        assert_prepared_from(&p, (0, 1), &start, far, far);
        // Until the head gets there, nothing more.
        assert_eq!(p.refill(), 0);
        // The program took the frame after it: the chain is back, and
        // states follow the head again.
        assert!(chain.publish_key(far + 1, &key_at(&start, far + 1)));
        assert_eq!(p.refill(), 1);
        assert_prepared(&p, 0, 1, &start, far + 1);
        // A target the head never reaches (forged, or a burst that ended)
        // waits while nothing moves the head, and lasts CHASE_PASSES
        // passes in which the head moved elsewhere; then the states go back
        // to the head.
        let mut head = far + 1;
        let target = head + 2 * depth;
        chain.set_far(target);
        assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize + 1);
        assert_prepared_from(&p, (0, 1), &start, target, target);
        for _ in 0..2 * CHASE_PASSES {
            assert_eq!(p.refill(), 0, "the head did not move: the target stays");
        }
        let mut moving = 0;
        let back = loop {
            head += 1;
            assert!(chain.publish_key(head, &key_at(&start, head)));
            let n = p.refill();
            if n != 0 {
                break n;
            }
            moving += 1;
            assert!(moving <= CHASE_PASSES, "the target never expires");
        };
        assert_eq!(moving, CHASE_PASSES);
        // From the head, leaping as far as it moved since the last pass.
        assert_eq!(back, MPPE_PREP_DEPTH as usize - 1);
        assert_prepared_from(&p, (0, 1), &start, head, head + 1);
    }

    #[test]
    fn rows_are_bounded_and_pass_on_with_a_new_epoch() {
        let slots = MPPE_PREP_ROWS as usize + 2;
        let (rx, p) = preparer(slots);
        let start = start(KeyLength::Bits128);
        for slot in 0..slots as u32 {
            rx.open(slot, &start).unwrap();
            let row = p.assign(slot, &start).unwrap();
            if slot < MPPE_PREP_ROWS {
                assert_eq!(row, Some(slot));
            } else {
                // No row left: the program walks this chain itself.
                assert_eq!(row, None);
                assert_eq!(prepared_of(&rx, slot), (0, 0));
            }
        }
        assert_eq!(p.rows_in_use(), MPPE_PREP_ROWS as usize);
        // One pass prepares every row once, never more.
        assert_eq!(p.refill(), (MPPE_PREP_ROWS * MPPE_PREP_DEPTH) as usize);
        // Slot 3's session goes; its row goes to the next one asking, with
        // an epoch that its old entries do not carry.
        p.release(3).unwrap();
        p.release(3).unwrap();
        assert_eq!(prepared_of(&rx, 3), (0, 0));
        assert_eq!(p.rows_in_use(), MPPE_PREP_ROWS as usize - 1);
        let newcomer = MPPE_PREP_ROWS + 1;
        assert_eq!(p.assign(newcomer, &start).unwrap(), Some(3));
        let (row, epoch) = prepared_of(&rx, newcomer);
        assert_eq!(row, 4);
        assert_eq!(epoch, u64::from(MPPE_PREP_ROWS) + 1);
        assert_eq!(p.map.read(3, 1).epoch, 4, "old entries keep the old epoch");
        assert_eq!(p.refill(), MPPE_PREP_DEPTH as usize);
        assert_prepared(&p, 3, epoch, &start, 0);
        // A slot opened again (a session whose install failed half-way,
        // then the next in its slot) holds one row, not two.
        rx.open(newcomer, &start).unwrap();
        assert_eq!(p.assign(newcomer, &start).unwrap(), Some(3));
        assert_eq!(p.rows_in_use(), MPPE_PREP_ROWS as usize);
        assert_eq!(prepared_of(&rx, newcomer), (4, epoch + 1));
    }

    #[test]
    fn rows_pass_from_idle_chains_to_busy_ones() {
        let slots = MPPE_PREP_ROWS + 3;
        let (rx, p) = preparer(slots as usize);
        let start = start(KeyLength::Bits128);
        for slot in 0..slots {
            rx.open(slot, &start).unwrap();
            p.assign(slot, &start).unwrap();
        }
        let moves = |slot: u32, to: u64| {
            assert!(rx.slot(slot).unwrap().publish_key(to, &key_at(&start, to)));
        };
        // Nothing moved: nothing changes hands.
        assert_eq!(p.rebalance().unwrap(), 0);
        // Every row's chain moves but those of slots 7 and 9; of the three
        // waiting chains two move, the last one most.
        for slot in 0..MPPE_PREP_ROWS {
            if slot != 7 && slot != 9 {
                moves(slot, 5);
            }
        }
        let (a, b, c) = (MPPE_PREP_ROWS, MPPE_PREP_ROWS + 1, MPPE_PREP_ROWS + 2);
        moves(b, 3);
        moves(c, 40);
        assert_eq!(p.rebalance().unwrap(), 2);
        let rows_of =
            |slots: &[u32]| -> Vec<u32> { slots.iter().map(|s| prepared_of(&rx, *s).0).collect() };
        assert_eq!(rows_of(&[7, 9]), [0, 0], "the idle chains wait");
        let mut got = rows_of(&[b, c]);
        got.sort_unstable();
        assert_eq!(got, [8, 10], "the busy ones have their rows");
        assert_eq!(rows_of(&[a]), [0], "a chain that did not move still waits");
        // The rows serve their new chains, from the heads.
        assert_eq!(p.refill(), (MPPE_PREP_ROWS * MPPE_PREP_DEPTH) as usize);
        let (row, epoch) = prepared_of(&rx, c);
        assert_prepared(&p, row - 1, epoch, &start, 40);
        // Released chains leave the waiting too: slot 7 moving changes
        // nothing once it is gone.
        p.release(7).unwrap();
        moves(7, 9);
        moves(a, 1);
        assert_eq!(p.rebalance().unwrap(), 1);
        assert_ne!(prepared_of(&rx, a).0, 0);
        assert_eq!(prepared_of(&rx, 7).0, 0);
    }

    #[test]
    fn the_thread_prepares_and_stops_when_dropped() {
        let (rx, p) = preparer(1);
        let start = start(KeyLength::Bits128);
        rx.open(0, &start).unwrap();
        p.assign(0, &start).unwrap();
        let p = Arc::new(p);
        let thread = PreparerThread::start(vec![p.clone()], -7).unwrap();
        let mut waited = 0;
        while p.map.read(0, u64::from(MPPE_PREP_DEPTH)).tag == 0 {
            assert!(waited < 500, "the thread prepared nothing in 5 s");
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        // Its nice value (field 19 of its stat, after the command's
        // closing parenthesis; needs root or an RLIMIT_NICE of 27).
        let nice = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let dir = t.ok()?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                (comm.trim() == "mppe-prepare").then(|| {
                    let fields: Vec<&str> = stat
                        .rsplit_once(')')
                        .unwrap()
                        .1
                        .split_whitespace()
                        .collect();
                    fields[16].parse::<i32>().unwrap()
                })
            })
            .collect::<Vec<_>>();
        assert_eq!(nice, [-7], "the thread's nice value (needs root)");
        drop(thread);
        assert_eq!(
            Arc::strong_count(&p),
            1,
            "the thread let go of the preparer"
        );
        assert_prepared(&p, 0, 1, &start, 0);
    }
}
