//! Stateless MPPE in XDP (RFC 3078, keys of RFC 3079): receive, and
//! send ([`take_key`], [`seal`], [`store_sealed`], called from
//! `encapsulate` in main.rs for a session with `SESSION_F_MPPE_TX`; the
//! send chain is shared with the daemon as the receive chain is, see
//! [`MppeTx`]).
//!
//! A data frame of a session with [`SESSION_F_MPPE_RX`] whose PPP protocol
//! is 0x00FD (compressed datagram) is decrypted here when it can be done
//! with bounded work and without doubt:
//!
//! - the MPPE header has D (encrypted) and A (FLUSHED, required on every
//!   stateless frame by RFC 3078 section 3.1) set and C (compressed)
//!   clear;
//! - its coherency count is 1 to [`MPPE_RX_MAX_JUMP`] counts ahead of the
//!   session's head ([`MppeRx`]), so it costs at most that many key
//!   changes (RFC 3078 section 7.3: GetNewKeyFromSHA, then RC4 of the
//!   interim key with itself, then the 40/56-bit reduction), or up to
//!   [`MPPE_RX_MAX_CATCH_UP`] ahead (a loss run: leaving it to userspace
//!   at a rate beyond what userspace decrypts would keep the session
//!   there) when its GRE sequence number evidences the jump
//!   ([`MPPE_RX_EVIDENCE_SLACK`]) or the key changes beyond the first 8
//!   fit in the session's catch-up budget; up to [`MPPE_RX_MAX_EVIDENCED`]
//!   ahead when evidenced and the budget has room (charged only if the
//!   frame then does not decrypt to IPv4); or any number of counts
//!   ahead (turns of the count included, as the sequence numbers show
//!   them) when the daemon prepared the frame's state (below);
//! - the plaintext begins with IPv4's protocol field and an IPv4 header
//!   that the clear path would forward (no SYN to clamp).
//!
//! Anything else goes to userspace untouched ([`Verdict::ToUserspace`]):
//! late, duplicate and far-ahead frames, frames without FLUSHED, other
//! inner protocols. Nothing in the frame or the shared state changes before
//! the frame is known to be decryptable and forwardable, so userspace sees
//! exactly what the peer sent; except that a far-ahead frame whose jump the
//! sequence numbers show leaves its position in `MppeRx::far` for the
//! daemon's preparer.
//!
//! # Prepared states
//!
//! The daemon may have prepared the frame's RC4 state ahead
//! (`PPTP_MPPE_PREP`, [`MppePrepared`], the session's row and epoch in
//! [`MppeRx`]): then [`take_prepared`] copies its key and permutation
//! instead of the key changes and the key schedule, about four fifths of a
//! 64-octet frame's work. A prepared state costs no key change, so it is
//! taken whatever the jump and without the catch-up budget; the rest (the
//! checks of the plaintext, the head's compare-and-swap) is the same
//! either way, and a state that is not ready, or not this session's, means
//! walking under the rules above.
//!
//! The send side takes prepared states the same way (`PPTP_MPPE_TX_PREP`,
//! the row and epoch in [`MppeTx`], [`take_prepared`]): the position a
//! sender takes from the shared counter, if prepared, needs no key change
//! from the chain's newest key, however far that lies behind, and [`seal`]
//! no key schedule; the sender still publishes the position's key, so the
//! daemon's own sends (and senders without a state) continue from it.
//!
//! A loss run longer than the program follows (a receiving CPU stalled for
//! some milliseconds under a load it cannot carry, for instance) used to
//! leave the chain to userspace, which decrypts a third as fast and, its
//! queues full of older frames, published heads further behind than the
//! program follows: the session stayed there as long as the load lasted
//! (bench runs J1 and J2 of 2026-12-03 delivered 5,000 to 12,000 frames a
//! second from 220,000 offered). Now such a frame, when the sequence
//! numbers show its jump, leaves its position in `MppeRx::far`; the
//! preparer walks the chain there and prepares the positions after it,
//! and the program's next frame in that window takes the chain back.
//!
//! # Sharing the key chain between CPUs
//!
//! A session's frames may arrive on several CPUs; the chain must not be
//! walked once per CPU. The state is one [`MppeRx`] entry per session
//! (not per CPU): a head position and a small ring of tagged keys. A CPU
//! reads the head, reads the head's key (seqlock-style tag check), walks
//! the chain forward into per-CPU scratch, writes the new key into its
//! ring slot and moves the head forward with a compare-and-swap.
//!
//! Why not `bpf_spin_lock`: it needs the map's value type in BTF, which
//! our object's legacy map definitions do not carry; it cannot be held
//! across helper calls (`bpf_loop`, which the chain and RC4 need), so the
//! lock would protect only the copy of the key anyway; and the daemon,
//! which writes the same state after a frame that went to userspace,
//! could only take it through the bpf() syscall with `BPF_F_LOCK`.
//! Compare-and-swap works because the key of a position is a function of
//! the position: two CPUs that race to the same position write the same
//! bytes, and the loser of the race for the head has wasted work but
//! written nothing wrong. A frame whose head moved past it meanwhile
//! (another CPU took the same or a later count) goes to userspace, which
//! drops it as a duplicate or late frame.
//!
//! # Verifier
//!
//! Long loops (RC4 over the payload, the RC4 key schedule, SHA-1 rounds)
//! run under `bpf_loop` (Linux 5.17), whose callback the verifier checks
//! once instead of once per iteration; the callbacks work on a per-CPU
//! scratch map value with masked indices. The payload is copied in and
//! out with `bpf_xdp_load_bytes` and `bpf_xdp_store_bytes` (Linux 5.18).

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_cxchg, atomic_or, atomic_xadd, atomic_xchg},
};

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    helpers::{bpf_loop, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    macros::map,
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use pptp_common::maps::{
    MAX_SESSIONS, MPPE_PREP_DEPTH, MPPE_PREP_ROWS, MPPE_RX_CATCH_UP_BURST, MPPE_RX_CATCH_UP_RATE,
    MPPE_RX_EVIDENCE_SLACK, MPPE_RX_MAX_CATCH_UP, MPPE_RX_MAX_EVIDENCED, MPPE_RX_MAX_JUMP,
    MPPE_RX_RING, MPPE_TX_MAX_WALK, MppeKeySlot, MppePrepared, MppeRx, MppeTx, SESSION_F_MSS_CLAMP,
    Session, Stat,
};

/// MPPE receive state per session slot, memory-mapped by the daemon.
#[map(name = "PPTP_MPPE_RX")]
static PPTP_MPPE_RX: Array<MppeRx> = Array::with_max_entries(MAX_SESSIONS, BPF_F_MMAPABLE);

/// MPPE send state per session slot, memory-mapped by the daemon.
#[map(name = "PPTP_MPPE_TX")]
static PPTP_MPPE_TX: Array<MppeTx> = Array::with_max_entries(MAX_SESSIONS, BPF_F_MMAPABLE);

/// RC4 states of upcoming receive positions, prepared by the daemon
/// ([`MppePrepared`]), memory-mapped by it.
#[map(name = "PPTP_MPPE_PREP")]
static PPTP_MPPE_PREP: Array<MppePrepared> =
    Array::with_max_entries(MPPE_PREP_ROWS * MPPE_PREP_DEPTH, BPF_F_MMAPABLE);

/// RC4 states of upcoming send positions, prepared by the daemon
/// ([`MppePrepared`], [`MppeTx::prep_row`]), memory-mapped by it.
#[map(name = "PPTP_MPPE_TX_PREP")]
static PPTP_MPPE_TX_PREP: Array<MppePrepared> =
    Array::with_max_entries(MPPE_PREP_ROWS * MPPE_PREP_DEPTH, BPF_F_MMAPABLE);

/// Per-CPU scratch of the decryption and encryption.
#[map(name = "PPTP_MPPE_SCRATCH")]
static PPTP_MPPE_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Bytes of payload the scratch buffer holds (a power of two).
const BUF: usize = 2048;
/// The largest MPPE payload (after its 2-octet header) decrypted here:
/// more than a 1500-octet MRU.
const MAX_PAYLOAD: usize = 1600;
/// Bytes of RC4 keystream one `bpf_loop` step produces (every call of a
/// callback costs about as much as a few octets of RC4: fewer, longer
/// steps run faster, and the verifier checks a callback only once).
const STEP: usize = 64;
/// Bytes of RC4 keystream one step of the tail after the whole [`STEP`]s
/// produces: a 66-octet payload (a 64-octet packet and its protocol field)
/// took 128 octets of keystream when the last step was a whole STEP, and
/// takes 72 now.
const TAIL_STEP: usize = 8;
/// RC4 key schedule steps per `bpf_loop` step (64, four calls a schedule,
/// took the verifier of Linux 6.18 past its million instructions: the
/// callback is checked in each context the schedule runs in).
const KSA_STEPS: usize = 32;

/// RFC 3078 section 3.1 header bits (first octet).
const HDR_A_FLUSHED: u8 = 0x80;
const HDR_C_COMPRESSED: u8 = 0x20;
const HDR_D_ENCRYPTED: u8 = 0x10;

const IPPROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
/// The catch-up budget's price of one extra key change, in nanoseconds.
const CATCH_UP_COST_NS: u64 = 1_000_000_000 / MPPE_RX_CATCH_UP_RATE;

/// SHA-1 initial state (FIPS 180-4 section 5.3.1).
const SHA1_INIT: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// Per-CPU working memory (8-aligned, its key too: keys are copied as
/// 64-bit words).
#[repr(C, align(8))]
pub struct Scratch {
    /// RC4 state (RFC 6229 / Schneier's description).
    s: [u8; 256],
    /// The payload being decrypted.
    buf: [u8; BUF],
    /// SHA-1 input as big-endian words: start key, SHApad1, session key,
    /// SHApad2, then the padding of FIPS 180-4 section 5.1.1: two 64-octet
    /// blocks. Each block's message schedule then rolls over its words
    /// ([`sha1_part`]): written again for every key change.
    msg: [u32; 32],
    /// The current key of the walk (and then of the frame).
    key: [u8; 16],
    /// RC4 key being scheduled (8 or 16 octets used).
    rc4_key: [u8; 16],
    /// RC4 index j, kept between keystream runs (i follows from the
    /// position in the keystream: see [`keystream`]).
    j: u32,
    /// Octets of `rc4_key` in use: 8 or 16.
    key_len: u32,
    /// The chain's start key and strength (copied from [`MppeRx`] for the
    /// walk's callback).
    start: [u8; 16],
    bits: u32,
    /// The MPPE header of the frame being encrypted ([`take_key`]).
    hdr: [u8; 4],
    /// Where the tail of [`rc4_apply`] starts in `buf`.
    tail: u32,
    /// SHA-1 chaining value.
    h: [u32; 5],
    /// SHA-1 working variables a..e between the halves of a block
    /// ([`sha1_part`]).
    v: [u32; 5],
}

const _: () = assert!(core::mem::offset_of!(Scratch, key) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Scratch, buf) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Scratch, rc4_key) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Scratch, msg) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Scratch, start) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(MppeRx, start_key) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(MppeTx, start_key) % 8 == 0);

/// What became of an MPPE frame.
pub enum Verdict {
    /// Decrypted in place: the inner IPv4 packet starts at this offset of
    /// the frame, and the frame goes on as a clear session's; true when
    /// with a state the daemon prepared ([`MppePrepared`]).
    Decrypted(usize, bool),
    /// Left untouched for userspace.
    ToUserspace,
}

/// The `bpf_loop` context: the scratch map value (the callbacks get only
/// this pointer).
#[repr(C)]
struct LoopCtx {
    scratch: *mut Scratch,
}

/// Decrypts the stateless MPPE frame whose header is at `mppe` and whose
/// PPP payload ends at `end`, for `session`; `sent` is how far the frame's
/// GRE sequence number lies past the newest one accepted (0 when none was:
/// see [`MPPE_RX_EVIDENCE_SLACK`]). See the module documentation for what
/// is decrypted and what is left to userspace.
#[inline(always)]
pub fn decrypt(
    ctx: &XdpContext,
    session: &Session,
    (mppe, end): (usize, usize),
    sent: u32,
) -> Verdict {
    match decrypt_inner(ctx, session, (mppe, end), sent) {
        Some((inner, prepared)) => Verdict::Decrypted(inner, prepared),
        None => Verdict::ToUserspace,
    }
}

#[inline(always)]
fn decrypt_inner(
    ctx: &XdpContext,
    session: &Session,
    (mppe, end): (usize, usize),
    sent: u32,
) -> Option<(usize, bool)> {
    let hdr = crate::ptr_at::<[u8; 2]>(ctx, mppe)?;
    // SAFETY: bounds checked by ptr_at.
    let hdr = unsafe { *hdr };
    if hdr[0] & (HDR_A_FLUSHED | HDR_C_COMPRESSED | HDR_D_ENCRYPTED)
        != HDR_A_FLUSHED | HDR_D_ENCRYPTED
    {
        return None;
    }
    let count = u16::from_be_bytes([hdr[0] & 0x0F, hdr[1]]);
    let data = mppe + 2;
    if end < data + 21 || end - data > MAX_PAYLOAD {
        return None;
    }
    let len = end - data;

    let state = PPTP_MPPE_RX.get_ptr_mut(session.slot)?;
    let scratch = PPTP_MPPE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: map value pointers stay valid for the whole program run; the
    // scratch value is this CPU's alone.
    let (state, s) = unsafe { (&mut *state, &mut *scratch) };

    // Where the frame lies relative to the head.
    // SAFETY: `head` is an aligned u64 of the shared entry, only accessed
    // atomically.
    let head = unsafe { atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut state.head, 0) };
    let jump = u64::from(count.wrapping_sub(MppeRx::count_of(head)) & 0x0FFF);
    if jump == 0 {
        return None;
    }
    // Whether the GRE sequence numbers account for the jump: the peer sent
    // that many frames since (see MPPE_RX_EVIDENCE_SLACK), and over how
    // many turns of the count (`far`: the jump they show, `jump` plus
    // whole turns).
    let sent = u64::from(sent);
    let clear = sent.wrapping_sub(jump) & 0x0FFF;
    let shown = sent >= jump && clear <= u64::from(MPPE_RX_EVIDENCE_SLACK);
    let far = if shown { sent - clear } else { jump };
    let evidenced = shown && far == jump;
    let key_len = state.key_len;
    if key_len != 8 && key_len != 16 {
        return None;
    }
    let bits = state.bits;
    s.key_len = key_len;

    // The frame's RC4 state: prepared by the daemon (no key change, so
    // neither the jump's length nor the budget matters: the daemon chose
    // what to prepare, see `MppeRx::far`), or `jump` key changes from the
    // head's key (one `bpf_loop` step each: the verifier of Linux 6.1 then
    // checks one key change, not 64) and a key schedule.
    // SAFETY: the live shared entry, and the map its prepared states are
    // in.
    let prepared = unsafe {
        let prep = prep_of(&raw const state.prep_row, &raw const state.prep_epoch);
        take_prepared::<true>(&PPTP_MPPE_PREP, prep, head + far, s)
    };
    let jump = if prepared { far } else { jump };
    // The budget's price of an evidenced catch-up, owed if the frame is
    // not the peer's (see below).
    let mut unpaid = 0;
    if !prepared {
        let most = if evidenced {
            MPPE_RX_MAX_EVIDENCED
        } else {
            MPPE_RX_MAX_CATCH_UP
        };
        // A catch-up after a loss run: unless the sequence numbers
        // evidence it (the peer sent that many frames), the extra key
        // changes come out of the session's budget (taken before the
        // work, so forged jumps drain it too and then go to userspace,
        // whose own budget bounds them). Free when evidenced up to
        // MPPE_RX_MAX_CATCH_UP (an overloaded receiver losing runs of
        // frames, however long it lasts). A longer evidenced jump needs
        // the budget to have room for it, and pays only if the frame
        // turns out not to be the peer's (it does not decrypt to IPv4,
        // below): one who sees the session's sequence numbers and forges
        // long jumps gets no more than the budget, while a receiver that
        // loses runs of up to MPPE_RX_MAX_EVIDENCED of the peer's frames
        // again and again (a CPU stalled for milliseconds under load)
        // stays on its chain in the kernel instead of emptying the budget
        // within a second.
        let extra = jump.saturating_sub(u64::from(MPPE_RX_MAX_JUMP));
        let free = evidenced && jump <= u64::from(MPPE_RX_MAX_CATCH_UP);
        // (An evidenced jump longer than the burst needs a full budget.)
        let room = if extra < MPPE_RX_CATCH_UP_BURST {
            extra
        } else {
            MPPE_RX_CATCH_UP_BURST
        };
        let tolerance = (MPPE_RX_CATCH_UP_BURST - room) * CATCH_UP_COST_NS;
        if jump > u64::from(most)
            || (extra > 0
                && !free
                && !if evidenced {
                    crate::fits(
                        &raw const state.catch_up_tat,
                        room * CATCH_UP_COST_NS,
                        tolerance,
                    )
                } else {
                    crate::take(
                        &raw mut state.catch_up_tat,
                        extra * CATCH_UP_COST_NS,
                        tolerance,
                    )
                })
        {
            // Too far to follow here: tell the preparer where the peer is
            // when the sequence numbers show it (MppeRx::far).
            if shown {
                let at = (head + far) as u32;
                // SAFETY: an aligned u32 of the live shared entry: one
                // 32-bit store, which no reader sees torn (the daemon
                // swaps it atomically).
                unsafe { core::ptr::write_volatile(&raw mut state.far, at.max(1)) };
                crate::count(Stat::MppeRxFar, 1);
            } else {
                crate::count(Stat::MppeRxJump, 1);
            }
            return None;
        }
        if evidenced && extra > 0 && !free {
            unpaid = extra * CATCH_UP_COST_NS;
        }
        // Where the walk starts: the key of the position the daemon
        // prepares farthest ahead before the frame (it keeps up to
        // MPPE_PREP_DEPTH past the head), if prepared, so that a loss run
        // longer than what was prepared costs only the key changes beyond
        // it; else the head's key. (One position tried: a second doubles
        // the paths the verifier of Linux 6.1 explores, past its limit.)
        // The budget above was charged for the whole jump all the same.
        let reach = (jump - 1).min(u64::from(MPPE_PREP_DEPTH));
        // SAFETY: the live shared entry, and the map its prepared states
        // are in.
        let base = if reach > 0
            && unsafe {
                let prep = prep_of(&raw const state.prep_row, &raw const state.prep_epoch);
                take_prepared::<false>(&PPTP_MPPE_PREP, prep, head + reach, s)
            } {
            reach
        } else {
            0
        };
        // The head's key, if its slot still holds it.
        // SAFETY: the ring of the live shared entry.
        if base == 0 && !unsafe { read_key(&raw mut state.ring, head, &mut s.key) } {
            crate::count(Stat::MppeRxKeyGone, 1);
            return None;
        }
        if base > 0 {
            crate::count(Stat::MppeRxWalkedFromPrepared, 1);
        }
        // SAFETY: the start key is at offset 8 of its map value (8-aligned),
        // the scratch one 8-aligned (the assertions after [`Scratch`]).
        unsafe { copy_key(&raw const state.start_key, &mut s.start) };
        s.bits = bits;
        let s = walk(s, (jump - base) as u32);
        s.rc4_key = s.key;
        rc4_schedule(s);
    }
    let scratch = PPTP_MPPE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value, valid for the program run.
    let s = unsafe { &mut *scratch };

    // The payload into scratch, RC4 with the frame's state over it.
    let len = bounded(len, MAX_PAYLOAD);
    if len == 0 {
        return None;
    }
    // SAFETY: `buf` is BUF >= MAX_PAYLOAD octets; `len` is at most that.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, data as u32, s.buf.as_mut_ptr().cast(), len as u32) }
        != 0
    {
        return None;
    }
    rc4_apply(s, len);

    // Only IPv4 that the clear path forwards is taken.
    let (proto_len, ok) = if s.buf[0] & 1 == 1 {
        (1, s.buf[0] == 0x21)
    } else {
        (2, s.buf[0] == 0x00 && s.buf[1] == 0x21)
    };
    if !ok {
        owe(state, unpaid);
        crate::count(Stat::MppeRxNotForwarded, 1);
        return None;
    }
    let ip = proto_len;
    let vihl = s.buf[ip & 0x7];
    let tot_len = usize::from(u16::from_be_bytes([
        s.buf[(ip + 2) & 0x7],
        s.buf[(ip + 3) & 0x7],
    ]));
    if vihl >> 4 != 4 || tot_len < 20 || proto_len + tot_len > len {
        owe(state, unpaid);
        crate::count(Stat::MppeRxNotForwarded, 1);
        return None;
    }
    if session.flags & SESSION_F_MSS_CLAMP != 0 && s.buf[(ip + 9) & 0xF] == IPPROTO_TCP {
        let ihl = usize::from(vihl & 0x0F) * 4;
        // TCP flags: octet 13 of the TCP header.
        let flags = s.buf[(ip + ihl + 13) & (BUF - 1)];
        if ihl + 14 > tot_len || flags & TCP_SYN != 0 {
            crate::count(Stat::MppeRxNotForwarded, 1);
            return None;
        }
    }

    // Claim the position: only forward, and only if no other CPU took
    // this count or a later one meanwhile.
    // SAFETY: the head and ring of the live shared entry.
    if !unsafe {
        publish(
            &raw mut state.head,
            &raw mut state.ring,
            head,
            head + jump,
            &s.key,
        )
    } {
        crate::count(Stat::MppeRxRaced, 1);
        return None;
    }

    // The plaintext over the ciphertext; the MPPE header and the inner
    // protocol field become headers to strip.
    // SAFETY: as for the load.
    if unsafe { bpf_xdp_store_bytes(ctx.ctx, data as u32, s.buf.as_mut_ptr().cast(), len as u32) }
        != 0
    {
        return None;
    }
    Some((data + proto_len, prepared))
}

/// Charges `cost` ns of key changes to `state`'s catch-up budget whatever
/// it holds (`MppeRx::catch_up_tat`): an evidenced catch-up whose frame
/// did not decrypt to IPv4, so not the peer's (a forgery by one who sees
/// the session's sequence numbers). The budget may go into debt by one
/// jump; catch-ups wait until it has room again.
#[inline(always)]
fn owe(state: &mut MppeRx, cost: u64) {
    if cost > 0 {
        crate::take(&raw mut state.catch_up_tat, cost, u64::MAX);
    }
}

/// A session's prepared states as its entry names them (`prep_row`, row +
/// 1 or 0 for none, and `prep_epoch`), read with volatile loads: the
/// daemon writes them while the program runs.
///
/// # Safety
/// Both point into a live map value.
#[inline(always)]
unsafe fn prep_of(row: *const u32, epoch: *const u64) -> (u32, u64) {
    // SAFETY: guaranteed by the caller (written by the daemon before it
    // publishes any state of the row's epoch).
    unsafe {
        (
            core::ptr::read_volatile(row),
            core::ptr::read_volatile(epoch),
        )
    }
}

/// Copies the prepared state of `position` ([`MppePrepared`]) from `map`
/// (`PPTP_MPPE_PREP` or `PPTP_MPPE_TX_PREP`) for the session whose entry
/// names row + 1 `row` and `epoch` ([`prep_of`]) into `s` (its key into
/// `s.key`, its permutation into `s.s`, j reset): false when the session
/// has no prepared row, or the entry holds another position or epoch or is
/// being rewritten (seqlock-style: [`MppePrepared::copy_holds`], the epoch
/// read again after the copy too, so that a row rewritten for another
/// session at the same position meanwhile is not taken). Without `STATE`,
/// its key alone: the start of a walk beyond it.
///
/// # Safety
/// `map`'s entries' tags are only accessed atomically.
#[inline(always)]
unsafe fn take_prepared<const STATE: bool>(
    map: &Array<MppePrepared>,
    (row, epoch): (u32, u64),
    position: u64,
    s: &mut Scratch,
) -> bool {
    if row == 0 || row > MPPE_PREP_ROWS || epoch == 0 {
        return false;
    }
    let index = (row - 1) * MPPE_PREP_DEPTH + (position as u32 & (MPPE_PREP_DEPTH - 1));
    let Some(entry) = map.get_ptr_mut(index) else {
        return false;
    };
    // SAFETY: a map value pointer, valid for the program run; its tag is
    // only accessed atomically, the rest copied as 64-bit words (both ends
    // 8-aligned: the key at offset 16 and the state at 32 of the entry,
    // the scratch key at 2496 and the permutation at 0 of its value).
    unsafe {
        let tag = atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*entry).tag, 0);
        let before = (tag, core::ptr::read_volatile(&raw const (*entry).epoch));
        if before != (position + 1, epoch) {
            return false;
        }
        let src = (&raw const (*entry).key).cast::<u64>();
        let dst = s.key.as_mut_ptr().cast::<u64>();
        core::ptr::write_volatile(dst, core::ptr::read_volatile(src));
        core::ptr::write_volatile(dst.add(1), core::ptr::read_volatile(src.add(1)));
        if STATE {
            let src = (&raw const (*entry).state).cast::<u64>();
            let dst = s.s.as_mut_ptr().cast::<u64>();
            let mut k = 0;
            while k < 32 {
                core::ptr::write_volatile(dst.add(k), core::ptr::read_volatile(src.add(k)));
                k += 1;
            }
        }
        let again = atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*entry).tag, 0);
        let after = (again, core::ptr::read_volatile(&raw const (*entry).epoch));
        if !MppePrepared::copy_holds(position, epoch, before, after) {
            return false;
        }
    }
    if STATE {
        s.j = 0;
    }
    true
}

/// `len` (0 when 0 or above `max`) with an upper bound that the verifier of
/// Linux 6.1 sees on the very register passed to the helpers: a volatile
/// reload hides the value from LLVM, so the mask after it stays (without
/// it, LLVM passes a copy made before the comparison, whose bounds 6.1
/// does not know). See also `be16_len` in main.rs.
#[inline(always)]
fn bounded(len: usize, max: usize) -> usize {
    if len == 0 || len > max {
        return 0;
    }
    // SAFETY: reads a local. (1..=BUF by arithmetic: 6.1 learns nothing
    // from a comparison with 0 on a copy.)
    unsafe { ((core::ptr::read_volatile(&len) - 1) & (BUF - 1)) + 1 }
}

/// Reads the key of `position` from `ring` into `key`, seqlock-style (see
/// [`MppeKeySlot`]): false when the slot holds another position or is
/// being rewritten.
///
/// # Safety
/// `ring` points into a live map value whose tags are only accessed
/// atomically.
#[inline(always)]
unsafe fn read_key(
    ring: *mut [MppeKeySlot; MPPE_RX_RING],
    position: u64,
    key: &mut [u8; 16],
) -> bool {
    // SAFETY: guaranteed by the caller; the index is masked into the ring.
    unsafe {
        let slot = &raw mut (*ring)[(position as usize) & (MPPE_RX_RING - 1)];
        // A fetch-or of 0 reads the tag with a full barrier.
        let tag = atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).tag, 0);
        // Two 64-bit words (byte by byte, LLVM spills each octet to the
        // stack). Both ends are 8-aligned: the key at offset 8 of its slot,
        // and the scratch key at offset 2496 of its map value.
        let src = (&raw const (*slot).key).cast::<u64>();
        let dst = key.as_mut_ptr().cast::<u64>();
        core::ptr::write_volatile(dst, core::ptr::read_volatile(src));
        core::ptr::write_volatile(dst.add(1), core::ptr::read_volatile(src.add(1)));
        let again = atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).tag, 0);
        tag == position + 1 && again == tag
    }
}

/// Writes `key` as the key of position `new` into `ring`, then moves
/// `head` from `seen` (as read before the walk) forward to `new` with a
/// compare-and-swap: false when another writer moved it to `new` or
/// beyond meanwhile (or kept moving it).
///
/// # Safety
/// `head` and `ring` point into a live map value whose head and tags are
/// only accessed atomically.
#[inline(always)]
unsafe fn publish(
    head: *mut u64,
    ring: *mut [MppeKeySlot; MPPE_RX_RING],
    seen: u64,
    new: u64,
    key: &[u8; 16],
) -> bool {
    // SAFETY: guaranteed by the caller; the index is masked into the ring.
    unsafe {
        let slot = &raw mut (*ring)[(new as usize) & (MPPE_RX_RING - 1)];
        atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).tag, 0);
        let src = key.as_ptr().cast::<u64>();
        let dst = (&raw mut (*slot).key).cast::<u64>();
        core::ptr::write_volatile(dst, core::ptr::read_volatile(src));
        core::ptr::write_volatile(dst.add(1), core::ptr::read_volatile(src.add(1)));
        atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).tag, new + 1);
        let mut current = seen;
        let mut round = 0;
        loop {
            if current >= new || round >= 4 {
                return false;
            }
            let (now, swapped) =
                atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
                    head, current, new,
                );
            if swapped {
                return true;
            }
            current = now;
            round += 1;
        }
    }
}

/// The send side, first half: takes the next position of `session`'s send
/// chain ([`MppeTx::next`]) and leaves its key in this CPU's scratch, with
/// its RC4 permutation when the daemon prepared it ([`take_prepared`]:
/// then no key change here, whatever the distance from the chain's newest
/// key). Leaves the MPPE header of the frame in scratch too (RFC 3078
/// section 3.1: A and D set, the position's coherency count). `None` when
/// the position is not prepared and the chain's newest key is more than
/// [`MPPE_TX_MAX_WALK`] key changes behind (the frame goes to userspace,
/// which follows any distance; the position taken is a frame the peer
/// never sees, a jump its receiver follows); otherwise whether the state
/// was prepared.
///
/// Called before anything in the frame changes; [`seal`] then encrypts.
#[inline(always)]
pub fn take_key(session: &Session) -> Option<bool> {
    let state = PPTP_MPPE_TX.get_ptr_mut(session.slot)?;
    let scratch = PPTP_MPPE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: map value pointers stay valid for the whole program run; the
    // scratch value is this CPU's alone.
    let state = unsafe { &mut *state };
    let key_len = state.key_len;
    if key_len != 8 && key_len != 16 {
        return None;
    }
    // The head first: every position published was taken before, so the
    // one taken next lies beyond it.
    // SAFETY: `next` and `head` are aligned u64s of the shared entry, only
    // accessed atomically (here and by the daemon).
    let head = unsafe { atomic_or::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut state.head, 0) };
    let position =
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut state.next, 1) };
    if position <= head {
        return None;
    }
    // SAFETY: this CPU's scratch value, the live shared entry, and the map
    // its prepared states are in.
    let prepared = unsafe {
        let prep = prep_of(&raw const state.prep_row, &raw const state.prep_epoch);
        take_prepared::<true>(&PPTP_MPPE_TX_PREP, prep, position, &mut *scratch)
    };
    if !prepared {
        if position - head > MPPE_TX_MAX_WALK {
            return None;
        }
        // SAFETY: this CPU's scratch value.
        let s = unsafe { &mut *scratch };
        // SAFETY: the ring of the live shared entry.
        if !unsafe { read_key(&raw mut state.ring, head, &mut s.key) } {
            return None;
        }
        s.key_len = key_len;
        // SAFETY: the start key is at offset 8 of its map value (8-aligned),
        // the scratch one 8-aligned (the assertions after [`Scratch`]).
        unsafe { copy_key(&raw const state.start_key, &mut s.start) };
        s.bits = state.bits;
        walk(s, (position - head) as u32);
    }
    // SAFETY: this CPU's scratch value.
    let s = unsafe { &mut *scratch };
    // The key is a function of the position: publish it whether or not
    // another sender moved the head past it meanwhile.
    // SAFETY: the head and ring of the live shared entry.
    unsafe {
        publish(
            &raw mut state.head,
            &raw mut state.ring,
            head,
            position,
            &s.key,
        )
    };
    let count = MppeRx::count_of(position);
    s.hdr[0] = HDR_A_FLUSHED | HDR_D_ENCRYPTED | (count >> 8) as u8;
    s.hdr[1] = count as u8;
    Some(prepared)
}

/// The send side, second half (after [`take_key`] on this CPU, in the same
/// run): RC4 with the frame's key over the PPP protocol field of IPv4
/// (0x0021, sent uncompressed as Linux does) and the `len` octets of the
/// IPv4 packet at `l3`, into this CPU's scratch, to write with
/// [`store_sealed`] once the headers are in place. `prepared`: what
/// [`take_key`] returned (its state needs no key schedule).
#[inline(always)]
pub fn seal(ctx: &XdpContext, l3: usize, len: usize, prepared: bool) -> Option<()> {
    let scratch = PPTP_MPPE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value, valid for the program run.
    let s = unsafe { &mut *scratch };
    let len = bounded(len, MAX_PAYLOAD - 2);
    if len == 0 {
        return None;
    }
    s.buf[0] = 0x00;
    s.buf[1] = 0x21;
    // SAFETY: `buf` is BUF octets; 2 + `len` is at most MAX_PAYLOAD.
    if unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            l3 as u32,
            s.buf.as_mut_ptr().add(2).cast(),
            len as u32,
        )
    } != 0
    {
        return None;
    }
    // A prepared state ([`take_key`] returned true) is the permutation
    // after the key schedule.
    if !prepared {
        s.rc4_key = s.key;
        rc4_schedule(s);
    }
    rc4_apply(s, len + 2);
    Some(())
}

/// Writes the MPPE header of [`take_key`] at `offset` of the frame, and
/// after it the ciphertext [`seal`] left in scratch for an IPv4 packet of
/// `inner_len` octets (its protocol field and the packet).
#[inline(always)]
pub fn store_sealed(ctx: &XdpContext, offset: usize, inner_len: usize) -> Option<()> {
    let scratch = PPTP_MPPE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value, valid for the program run.
    let s = unsafe { &mut *scratch };
    let len = bounded(inner_len + 2, MAX_PAYLOAD);
    if len == 0 {
        return None;
    }
    // SAFETY: `hdr` holds 4 octets, `buf` BUF >= MAX_PAYLOAD; `len` is at
    // most that.
    (unsafe {
        bpf_xdp_store_bytes(ctx.ctx, offset as u32, s.hdr.as_mut_ptr().cast(), 2) == 0
            && bpf_xdp_store_bytes(
                ctx.ctx,
                offset as u32 + 2,
                s.buf.as_mut_ptr().cast(),
                len as u32,
            ) == 0
    })
    .then_some(())
}

/// `changes` key changes of `s.key` (`s.key_len` octets), one `bpf_loop`
/// step each.
#[inline(always)]
fn walk(s: &mut Scratch, changes: u32) -> &mut Scratch {
    let mut walk = LoopCtx { scratch: s };
    // SAFETY: a valid callback and context for bpf_loop.
    unsafe {
        bpf_loop(
            changes,
            change_key_step as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    // SAFETY: the scratch pointer is still this CPU's value.
    unsafe { &mut *walk.scratch }
}

/// One step of the walk: one key change.
extern "C" fn change_key_step(_step: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context given to it: a LoopCtx.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    change_key(s);
    0
}

/// A key's 16 octets as two pairs of big-endian 32-bit words, each pair
/// as it lies in memory (the first word in the low half): octets 0..4 and
/// 4..8, then 8..12 and 12..16.
#[inline(always)]
fn be_pairs(key: &[u8; 16]) -> [u64; 2] {
    let at = key.as_ptr().cast::<u64>();
    // SAFETY: the keys of scratch are 8-aligned (the assertions after
    // [`Scratch`]) and 16 octets long.
    let (lo, hi) = unsafe { (u64::from_le(at.read()), u64::from_le(at.add(1).read())) };
    // Octet k of the key is octet k of `lo`: reversed, octets 0..4 land
    // in the high half, which the rotation brings down.
    [
        lo.swap_bytes().rotate_left(32),
        hi.swap_bytes().rotate_left(32),
    ]
}

/// Copies the 16 octets of a key as two 64-bit words (a copy of the
/// array is a call of a `memmove` that moves an octet per turn of a
/// loop).
///
/// # Safety
/// `src` is 8-aligned and valid for reading 16 octets; `dst` is 8-aligned.
#[inline(always)]
unsafe fn copy_key(src: *const [u8; 16], dst: &mut [u8; 16]) {
    let src = src.cast::<u64>();
    let dst = dst.as_mut_ptr().cast::<u64>();
    // SAFETY: guaranteed by the caller.
    unsafe {
        dst.write_volatile(src.read_volatile());
        dst.add(1).write_volatile(src.add(1).read_volatile());
    }
}

/// One key change (RFC 3078 section 7.3) of `s.key` (`s.key_len` octets)
/// under start key `s.start`, reduced to `s.bits`.
#[inline(always)]
fn change_key(s: &mut Scratch) {
    // GetNewKeyFromSHA: SHA-1(start | SHApad1 | key | SHApad2), written
    // into scratch as big-endian words: every word of the two blocks,
    // since their message schedules roll over them ([`sha1_part`]).
    // (Zeroed first and written by words until 2026-12-05: LLVM made the
    // zeroing and the pads three calls of a `memset` that stores an octet
    // per turn of a loop, 124 turns a key change.)
    const PAD2: u32 = 0xF2F2_F2F2;
    // The end mark (FIPS 180-4 section 5.1.1).
    const END: u32 = 0x8000_0000;
    let start = be_pairs(&s.start);
    let key = be_pairs(&s.key);
    if s.key_len == 16 {
        // Octets 0..16 start, 16..56 zero, 56..72 key, 72..112 SHApad2,
        // 112 the end mark, 896 bits: two words a 64-bit store.
        let msg = s.msg.as_mut_ptr().cast::<u64>();
        // SAFETY: pair < 16: within the 8-aligned message (the assertion
        // after [`Scratch`]).
        let put = |pair: usize, value: u64| unsafe { msg.add(pair & 15).write_volatile(value) };
        const PADS: u64 = (PAD2 as u64) << 32 | PAD2 as u64;
        put(0, start[0]);
        put(1, start[1]);
        let mut pair = 2;
        while pair < 7 {
            put(pair, 0);
            put(pair + 7, PADS);
            pair += 1;
        }
        put(7, key[0]);
        put(8, key[1]);
        put(14, u64::from(END));
        put(15, 896 << 32);
    } else {
        // Octets 0..8 start, 8..48 zero, 48..56 key, 56..96 SHApad2, 96
        // the end mark, 768 bits. By 32-bit stores: the layouts' stores
        // of one width would be merged by LLVM into stores at offsets
        // chosen at run time, kept on the stack (40- and 56-bit MPPE
        // are the rare ones).
        let msg = s.msg.as_mut_ptr();
        // SAFETY: word < 32: within the message.
        let put = |word: usize, value: u32| unsafe { msg.add(word & 31).write_volatile(value) };
        put(0, start[0] as u32);
        put(1, (start[0] >> 32) as u32);
        let mut word = 2;
        while word < 12 {
            put(word, 0);
            put(word + 12, PAD2);
            word += 1;
        }
        put(12, key[0] as u32);
        put(13, (key[0] >> 32) as u32);
        put(24, END);
        let mut word = 25;
        while word < 31 {
            put(word, 0);
            word += 1;
        }
        put(31, 768);
    }
    sha1(s);
    // The interim key (the digest's first octets), RC4-encrypted with
    // itself: 16 octets of keystream (8 used for 8-octet keys).
    let interim = [
        u64::from(s.h[0].swap_bytes()) | u64::from(s.h[1].swap_bytes()) << 32,
        u64::from(s.h[2].swap_bytes()) | u64::from(s.h[3].swap_bytes()) << 32,
    ];
    // SAFETY: `rc4_key` and `buf` are 8-aligned (the assertions after
    // [`Scratch`]) and at least 16 octets long.
    unsafe {
        let rc4_key = s.rc4_key.as_mut_ptr().cast::<u64>();
        let buf = s.buf.as_mut_ptr().cast::<u64>();
        rc4_key.write(interim[0]);
        rc4_key.add(1).write(interim[1]);
        buf.write(interim[0]);
        buf.add(1).write(interim[1]);
    }
    rc4_schedule(s);
    // Inline rather than `rc4_apply`, whose steps of STEP octets would run
    // 48 RC4 rounds more per key change for nothing.
    keystream::<16>(s, 0);
    // SAFETY: as above.
    unsafe { copy_key(s.buf.as_ptr().cast(), &mut s.key) };
    match s.bits {
        40 => {
            s.key[0] = 0xD1;
            s.key[1] = 0x26;
            s.key[2] = 0x9E;
        }
        56 => s.key[0] = 0xD1,
        _ => {}
    }
}

/// SHA-1 (FIPS 180-4) of the two blocks in `s.msg` into `s.h`: two
/// `bpf_loop` steps per block ([`sha1_part`]).
#[inline(always)]
fn sha1(s: &mut Scratch) {
    s.h = SHA1_INIT;
    let mut ctx = LoopCtx { scratch: s };
    // SAFETY: a valid callback and context for bpf_loop.
    unsafe { bpf_loop(4, sha1_part as *mut c_void, (&raw mut ctx).cast(), 0) };
}

/// SHA-1's choice function (rounds 0 to 19).
#[inline(always)]
fn ch(b: u32, c: u32, d: u32) -> u32 {
    (b & c) | (!b & d)
}

/// SHA-1's parity function (rounds 20 to 39 and 60 to 79).
#[inline(always)]
fn parity(b: u32, c: u32, d: u32) -> u32 {
    b ^ c ^ d
}

/// SHA-1's majority function (rounds 40 to 59).
#[inline(always)]
fn maj(b: u32, c: u32, d: u32) -> u32 {
    (b & c) | (b & d) | (c & d)
}

/// Half of the compression of a block of `s.msg` into `s.h` (FIPS 180-4
/// section 6.1.2): step 2b runs block b's rounds 0 to 15 (the message's
/// words), step 2b + 1 its rounds 16 to 79 (the rolling schedule). The
/// rounds are written out, so that every index into the message schedule
/// is a constant: no masks, no branches on the round. The working
/// variables live in registers, renamed from round to round (in `s.v`
/// between the two halves); the message schedule rolls over the block's
/// own 16 words in `s.msg` (rebuilt for every key change, see
/// [`change_key`]).
///
/// A round costs one memory access for t < 16 and five after (four loads
/// and a store of the schedule). Until 2026-12-05 the working variables
/// lived in scratch, for fear of spills: twelve accesses a round after
/// t = 16, and the block was first copied into a schedule of its own.
/// Every access counts where it is emulated (the guest's qemu64 CPU), as
/// in [`keystream`]. The halves are separate calls because in one body
/// LLVM hoists round 16's loads of the schedule, and with them (volatile
/// loads keep their order) the loads of rounds 9 to 15, whose words it
/// then spilled onto the stack.
extern "C" fn sha1_part(step: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context given to it: a LoopCtx.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    let base = ((step as usize >> 1) & 1) * 16;
    // SAFETY: `base + 16 <= 32`, the message's length.
    let w = unsafe { s.msg.as_mut_ptr().add(base) };
    // SAFETY (every access): the indices are constants below 16.
    let at = |i: usize| unsafe { w.add(i & 15).read_volatile() };
    let first = step & 1 == 0;
    let [mut a, mut b, mut c, mut d, mut e] = if first { s.h } else { s.v };
    // One round t: the schedule's word (the message for t < 16, then
    // rolling over its 16 words), then the working variables.
    macro_rules! round {
        ($t:literal, $f:ident, $k:literal) => {{
            let wt = if $t < 16 {
                at($t)
            } else {
                let x = (at($t + 13) ^ at($t + 8) ^ at($t + 2) ^ at($t)).rotate_left(1);
                // SAFETY: as above.
                unsafe { w.add($t & 15).write_volatile(x) };
                x
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add($f(b, c, d))
                .wrapping_add(e)
                .wrapping_add($k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }};
    }
    if first {
        round!(0, ch, 0x5A82_7999);
        round!(1, ch, 0x5A82_7999);
        round!(2, ch, 0x5A82_7999);
        round!(3, ch, 0x5A82_7999);
        round!(4, ch, 0x5A82_7999);
        round!(5, ch, 0x5A82_7999);
        round!(6, ch, 0x5A82_7999);
        round!(7, ch, 0x5A82_7999);
        round!(8, ch, 0x5A82_7999);
        round!(9, ch, 0x5A82_7999);
        round!(10, ch, 0x5A82_7999);
        round!(11, ch, 0x5A82_7999);
        round!(12, ch, 0x5A82_7999);
        round!(13, ch, 0x5A82_7999);
        round!(14, ch, 0x5A82_7999);
        round!(15, ch, 0x5A82_7999);
        s.v = [a, b, c, d, e];
        return 0;
    }
    round!(16, ch, 0x5A82_7999);
    round!(17, ch, 0x5A82_7999);
    round!(18, ch, 0x5A82_7999);
    round!(19, ch, 0x5A82_7999);
    round!(20, parity, 0x6ED9_EBA1);
    round!(21, parity, 0x6ED9_EBA1);
    round!(22, parity, 0x6ED9_EBA1);
    round!(23, parity, 0x6ED9_EBA1);
    round!(24, parity, 0x6ED9_EBA1);
    round!(25, parity, 0x6ED9_EBA1);
    round!(26, parity, 0x6ED9_EBA1);
    round!(27, parity, 0x6ED9_EBA1);
    round!(28, parity, 0x6ED9_EBA1);
    round!(29, parity, 0x6ED9_EBA1);
    round!(30, parity, 0x6ED9_EBA1);
    round!(31, parity, 0x6ED9_EBA1);
    round!(32, parity, 0x6ED9_EBA1);
    round!(33, parity, 0x6ED9_EBA1);
    round!(34, parity, 0x6ED9_EBA1);
    round!(35, parity, 0x6ED9_EBA1);
    round!(36, parity, 0x6ED9_EBA1);
    round!(37, parity, 0x6ED9_EBA1);
    round!(38, parity, 0x6ED9_EBA1);
    round!(39, parity, 0x6ED9_EBA1);
    round!(40, maj, 0x8F1B_BCDC);
    round!(41, maj, 0x8F1B_BCDC);
    round!(42, maj, 0x8F1B_BCDC);
    round!(43, maj, 0x8F1B_BCDC);
    round!(44, maj, 0x8F1B_BCDC);
    round!(45, maj, 0x8F1B_BCDC);
    round!(46, maj, 0x8F1B_BCDC);
    round!(47, maj, 0x8F1B_BCDC);
    round!(48, maj, 0x8F1B_BCDC);
    round!(49, maj, 0x8F1B_BCDC);
    round!(50, maj, 0x8F1B_BCDC);
    round!(51, maj, 0x8F1B_BCDC);
    round!(52, maj, 0x8F1B_BCDC);
    round!(53, maj, 0x8F1B_BCDC);
    round!(54, maj, 0x8F1B_BCDC);
    round!(55, maj, 0x8F1B_BCDC);
    round!(56, maj, 0x8F1B_BCDC);
    round!(57, maj, 0x8F1B_BCDC);
    round!(58, maj, 0x8F1B_BCDC);
    round!(59, maj, 0x8F1B_BCDC);
    round!(60, parity, 0xCA62_C1D6);
    round!(61, parity, 0xCA62_C1D6);
    round!(62, parity, 0xCA62_C1D6);
    round!(63, parity, 0xCA62_C1D6);
    round!(64, parity, 0xCA62_C1D6);
    round!(65, parity, 0xCA62_C1D6);
    round!(66, parity, 0xCA62_C1D6);
    round!(67, parity, 0xCA62_C1D6);
    round!(68, parity, 0xCA62_C1D6);
    round!(69, parity, 0xCA62_C1D6);
    round!(70, parity, 0xCA62_C1D6);
    round!(71, parity, 0xCA62_C1D6);
    round!(72, parity, 0xCA62_C1D6);
    round!(73, parity, 0xCA62_C1D6);
    round!(74, parity, 0xCA62_C1D6);
    round!(75, parity, 0xCA62_C1D6);
    round!(76, parity, 0xCA62_C1D6);
    round!(77, parity, 0xCA62_C1D6);
    round!(78, parity, 0xCA62_C1D6);
    round!(79, parity, 0xCA62_C1D6);
    s.h = [
        s.h[0].wrapping_add(a),
        s.h[1].wrapping_add(b),
        s.h[2].wrapping_add(c),
        s.h[3].wrapping_add(d),
        s.h[4].wrapping_add(e),
    ];
    0
}

/// RC4 key schedule of `s.rc4_key` (`s.key_len` octets) into `s.s`;
/// resets j (the keystream then starts at its octet 0).
#[inline(always)]
fn rc4_schedule(s: &mut Scratch) {
    s.j = 0;
    let mut ctx = LoopCtx { scratch: s };
    // SAFETY: a valid callback and context for bpf_loop.
    unsafe {
        bpf_loop(
            (256 / KSA_STEPS) as u32,
            rc4_schedule_step as *mut c_void,
            (&raw mut ctx).cast(),
            0,
        )
    };
    let s = unsafe { &mut *ctx.scratch };
    s.j = 0;
}

/// The identity permutation into `state`, 8 octets per 64-bit store (each
/// octet is its index: no carry between octets).
///
/// # Safety
/// `state` points to the 256 octets of [`Scratch::s`] (8-aligned).
#[inline(always)]
unsafe fn rc4_identity(state: *mut u8) {
    let mut k = 0;
    while k < 32 {
        let value = 0x0706_0504_0302_0100u64 + (k as u64) * 0x0808_0808_0808_0808;
        // SAFETY: 8 * k + 8 <= 256, 8-aligned (the caller's promise).
        unsafe { state.add(k * 8).cast::<u64>().write(value.to_le()) };
        k += 1;
    }
}

/// [`KSA_STEPS`] steps of the RC4 key schedule, from index
/// `KSA_STEPS * step` (the first call writes the identity permutation
/// before its steps).
///
/// The steps are written out (LLVM kept them a loop of 22 instructions a
/// step) and the key is held in two 64-bit registers: an 8-octet key is
/// both halves, and step i's octet (i mod 16, the step's first index being
/// a multiple of 32) is a shift by a constant, not a load. What is left a
/// step: the state's two loads and two stores, and no index arithmetic
/// for i (constant offsets from the step's first octet). Both count where
/// every instruction and memory access is emulated (the guest's qemu64
/// CPU), as in [`keystream`].
extern "C" fn rc4_schedule_step(step: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context given to it: a LoopCtx.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    let state = s.s.as_mut_ptr();
    let step = (step as usize) & (256 / KSA_STEPS - 1);
    if step == 0 {
        // The schedule starts from the identity: written by its first call
        // rather than by a `bpf_loop` of its own (32 calls of one store
        // each, until 2026-12-05).
        // SAFETY: `s.s` is the first field of a map value (8-aligned).
        unsafe { rc4_identity(state) };
    }
    // SAFETY: at most 7 * 32 = 224 octets into the 256-octet state.
    let row = unsafe { state.add(step * KSA_STEPS) };
    let key = s.rc4_key.as_ptr().cast::<u64>();
    let long = s.key_len == 16;
    let mut j = s.j as u8;
    // The key's two halves, read again (volatile) for each 16 steps: LLVM
    // otherwise keeps the 16 shifted key words of the first 16 steps for
    // the next 16, which spills them onto a stack the program's other
    // frames leave too small.
    // SAFETY: `rc4_key` is 8-aligned (the assertion after [`Scratch`])
    // and 16 octets long.
    let halves = || unsafe {
        let lo = u64::from_le(key.read_volatile());
        let hi = if long {
            u64::from_le(key.add(1).read_volatile())
        } else {
            lo
        };
        (lo, hi)
    };
    let (mut lo, mut hi) = (0, 0);
    macro_rules! steps {
        ($($r:literal)*) => {$({
            if $r & 15 == 0 {
                (lo, hi) = halves();
            }
            let key = if $r & 15 < 8 { lo } else { hi };
            // SAFETY: `row + $r` is below 224 + 32 and `state + j` below
            // 256: both within the state.
            unsafe {
                let si = row.add($r).read();
                j = j.wrapping_add(si).wrapping_add((key >> (8 * ($r & 7))) as u8);
                let at = state.add(usize::from(j));
                row.add($r).write(at.read());
                at.write(si);
            }
        })*};
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    const { assert!(KSA_STEPS == 32) };
    s.j = u32::from(j);
    0
}

/// XORs `len` octets of `s.buf` with the RC4 keystream: whole [`STEP`]s,
/// then the rest in [`TAIL_STEP`]s (rounded up to one: the buffer has room
/// and the excess is never stored).
#[inline(always)]
fn rc4_apply(s: &mut Scratch, len: usize) {
    let steps = (len / STEP) as u32;
    let tail = ((len % STEP).div_ceil(TAIL_STEP)) as u32;
    s.tail = steps * STEP as u32;
    let mut ctx = LoopCtx { scratch: s };
    // SAFETY: valid callbacks and context for bpf_loop.
    unsafe {
        bpf_loop(
            steps,
            rc4_apply_step as *mut c_void,
            (&raw mut ctx).cast(),
            0,
        );
        bpf_loop(tail, rc4_tail_step as *mut c_void, (&raw mut ctx).cast(), 0);
    }
}

/// [`STEP`] octets of RC4 keystream over `s.buf` from `STEP * step`.
extern "C" fn rc4_apply_step(step: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context given to it: a LoopCtx.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    keystream::<STEP>(s, (step as usize) * STEP);
    0
}

/// [`TAIL_STEP`] octets of RC4 keystream over `s.buf` from `s.tail +
/// TAIL_STEP * step` (after the whole [`STEP`]s).
extern "C" fn rc4_tail_step(step: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the context given to it: a LoopCtx.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    let base = s.tail as usize + (step as usize) * TAIL_STEP;
    keystream::<TAIL_STEP>(s, base);
    0
}

/// `N` octets of RC4 keystream (the PRGA, continuing from `s.j`) XORed
/// over `s.buf` from `base`. Every keystream here starts on a fresh key
/// schedule at octet 0 of the buffer, so RC4's index i of octet `base + r`
/// is `base + r + 1` (mod 256) and is never stored: with `N` dividing 256
/// and `base` a multiple of `N`, i wraps at most in the last octet, and
/// the state's other accesses through i are at constant offsets from one
/// address (no index arithmetic). The keystream is gathered into a 64-bit
/// word and XORed over the buffer a word at a time. Both count where every
/// instruction and memory access is emulated (the guest's qemu64 CPU):
/// five memory accesses an octet (the state's) instead of seven.
#[inline(always)]
fn keystream<const N: usize>(s: &mut Scratch, base: usize) {
    const { assert!(N % 8 == 0 && 256 % N == 0) };
    let base = base & (BUF - 1) & !(N - 1);
    let first = base & 0xFF;
    let mut j = s.j as u8;
    let mut w = 0;
    while w < N {
        let mut k = 0u64;
        let mut b = 0;
        while b < 8 {
            let i = (first + w + b + 1) & 0xFF;
            let si = s.s[i];
            j = j.wrapping_add(si);
            let sj = s.s[usize::from(j)];
            s.s[i] = sj;
            s.s[usize::from(j)] = si;
            k |= u64::from(s.s[usize::from(si.wrapping_add(sj))]) << (8 * b);
            b += 1;
        }
        xor_word(&mut s.buf, base + w, k);
        w += 8;
    }
    s.j = u32::from(j);
}

/// XORs `k` over the 8 octets of `buf` at `at` (rounded down to a multiple
/// of 8 within the buffer), octet 0 of the buffer with k's lowest octet.
#[inline(always)]
fn xor_word(buf: &mut [u8; BUF], at: usize, k: u64) {
    let at = at & (BUF - 8);
    // SAFETY: `at + 8 <= BUF` and `at` is a multiple of 8 from the buffer's
    // start, which is 8-aligned (see the assertion after [`Scratch`]).
    unsafe {
        let word = buf.as_mut_ptr().add(at).cast::<u64>();
        *word ^= k.to_le();
    }
}
