//! The MPPE cipher (RFC 3078): one [`Encryptor`] for what we send and one
//! [`Decryptor`] for what we receive, each with its own key schedule and
//! coherency count. Both work on caller-provided buffers and never
//! allocate.
//!
//! Packets are the information field of a PPP frame with protocol 0x00FD:
//! the two-octet MPPE header ([`crate::wire::mppe`]) and the encrypted
//! data, which begins with the PPP protocol field of the inner packet
//! (RFC 3078 section 3.1).
//!
//! # Key changes and coherency count
//!
//! - The first packet carries count 0 and, in stateful mode, no FLUSHED bit
//!   (as Linux and Windows do; RFC 3078 leaves both open).
//! - Stateless mode (RFC 3078 sections 7.1, 8.1): the sender changes its
//!   key before every packet and sets FLUSHED on every packet. The receiver
//!   performs as many key changes as the count advanced, so lost packets
//!   cost nothing. A packet whose count lies in the backward half of the
//!   4096-count space is late: RFC 3078 has no rule for it ("MPPE expects
//!   packets to be delivered in sequence"); we keep the session keys of the
//!   last [`REORDER_WINDOW`] counts and decrypt a late packet once if its
//!   key is still there, and drop it otherwise ([`DecryptError::Late`]).
//!   A count seen before is dropped ([`DecryptError::Duplicate`]).
//!   The key changes beyond the first that a packet needs come out of the
//!   receiver's [`RekeyBudget`]; a packet they do not fit in is dropped
//!   before any key change ([`DecryptError::RekeyBudget`]), so a forged
//!   count jump costs bounded work. The caller passes the time in with
//!   [`Decryptor::advance_clock`].
//! - Stateless, evidence from GRE (RFC 2637 section 4.4): the counts wrap
//!   at 4096, so a receiver that lost 4096 packets in a row cannot tell
//!   from the count alone, and an overloaded receiver that loses most
//!   packets for a while empties its budget and falls that far behind.
//!   The GRE sequence numbers of the same frames do not wrap that soon: the
//!   caller tells the receiver how many frames the peer sent since the
//!   newest one accepted ([`Decryptor::expect`]), and a packet whose count
//!   agrees with that number (the jump is at most [`EVIDENCE_SLACK`] short
//!   of it: the peer's clear control frames take sequence numbers but no
//!   counts) is taken with that jump, beyond 4096 counts (up to
//!   [`MAX_EVIDENCED_JUMP`]); its cost is that of frames the peer did
//!   send, paid by the budget when it can, and beyond it once the newest
//!   frame accepted has reached the frame of the last such jump
//!   ([`RekeyBudget::take_evidenced`]): an overloaded receiver catches up
//!   at the first frame it sees, however long the overload lasts. One
//!   such jump is taken per newest sequence number: a frame that forges
//!   both numbers (a spoofer who does not see the traffic guesses them
//!   right about once in 2^21 tries) costs it once, and beyond the budget
//!   not again until the peer has sent that many frames itself.
//! - Stateful mode (RFC 3078 sections 7.2, 8.2): the RC4 state runs on from
//!   packet to packet; the sender changes its key before the "flag" packet
//!   whose count's low octet is 0xFF and sets FLUSHED on it. A gap in the
//!   counts loses the RC4 state: the receiver drops the packet, asks the
//!   caller to send a CCP Reset-Request ([`DecryptError::ResetRequired`]),
//!   drops everything ([`DecryptError::AwaitingFlushed`]) until a packet
//!   with FLUSHED arrives, catches up with the key changes of the flag
//!   packets it missed, and goes on from there. A sender that receives a
//!   Reset-Request ([`Encryptor::handle_reset_request`]) sets FLUSHED on
//!   its next packet.
//!
//! RFC 3078 section 8.2 says a FLUSHED packet sent after a Reset-Request
//! only re-initialises RC4 with the current session key. The Linux kernel
//! (ppp_mppe.c), which interoperates with Windows, changes the key on every
//! FLUSHED packet in stateful mode, on both sides, and so do we: a FLUSHED
//! packet in stateful mode means "one key change, then fresh RC4 tables".
//! Unlike the kernel, the receiver counts exactly the flag packets it
//! missed (the kernel counts one too many when the last packet it received
//! was itself a flag packet).

use std::fmt;

use super::rc4::Rc4;

use super::{
    MppeParams,
    budget::{FREE_EXTRA, RekeyBudget},
    keys::{KeySchedule, StartKey, StartKeys, start_keys},
};
use crate::{
    auth::MppeMaterial,
    wire::mppe::{COHERENCY_COUNT_SPACE, HEADER_LEN, Packet, Repr, flags},
};

/// How many counts back a stateless receiver still decrypts a late packet.
pub const REORDER_WINDOW: u16 = 32;

/// How many of the frames the peer sent since the newest one accepted may
/// have been clear control frames (LCP echoes and the like), which take a
/// GRE sequence number but no coherency count, for a count jump to count as
/// evidenced by the sequence numbers.
pub const EVIDENCE_SLACK: u64 = pptp_common::maps::MPPE_RX_EVIDENCE_SLACK as u64;

/// The largest count jump taken on the evidence of sequence numbers: 16
/// turns of the count space, about 70 ms of key changes, once per frame
/// accepted (a receiver starved for 0.4 s of a peer sending 160,000 frames
/// a second still follows).
pub const MAX_EVIDENCED_JUMP: u64 = 16 * COHERENCY_COUNT_SPACE as u64;

/// What the GRE sequence numbers say about the next packet: the peer sent
/// `frames` frames since the newest one accepted, whose sequence number is
/// `newest`, this one included (RFC 2637 section 4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentSince {
    pub frames: u32,
    pub newest: u32,
}

/// The last count of the 12-bit space: the counter's value before the
/// first packet, so that the first one carries count 0.
const LAST_COUNT: u16 = COHERENCY_COUNT_SPACE - 1;

/// Why a packet was not encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error("MPPE output buffer too small: need {need} octets, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    /// [`Encryptor::skip_to`]: the position is ours already (or the
    /// sender is stateful, where positions mean nothing).
    #[error(
        "MPPE send position {position} is not ahead of ours ({ours}) or the sender is stateful"
    )]
    NotAhead { position: u64, ours: u64 },
    /// [`Encryptor::skip_to`]: reaching the position would take more than
    /// [`MAX_SEND_SKIP`] key changes.
    #[error("MPPE send position {position} is {changes} key changes ahead: over {MAX_SEND_SKIP}")]
    TooFar { position: u64, changes: u64 },
}

/// The most key changes [`Encryptor::skip_to`] makes for one packet (about
/// 5 ms of CPU): a sender sharing its chain with the XDP program continues
/// from the program's newest key, a few positions back at most, so more
/// means that key could not be read.
pub const MAX_SEND_SKIP: u64 = 4096;

/// Why a received packet was not decrypted. Every one means: drop the
/// packet. [`DecryptError::ResetRequired`] also means: send a CCP
/// Reset-Request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("MPPE packet shorter than its 2-octet header")]
    Truncated,
    #[error("MPPE output buffer too small: need {need} octets, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    /// The D bit is clear: not an encrypted packet.
    #[error("MPPE packet without the encrypted (D) bit")]
    NotEncrypted,
    /// The C bit is set: MPPC compression, which we never negotiate.
    #[error("MPPE packet with the compressed (C) bit: MPPC is not supported")]
    Compressed,
    /// Stateless mode requires FLUSHED on every packet (RFC 3078 section 3.1).
    #[error("stateless MPPE packet {count} without the FLUSHED bit")]
    NotFlushed { count: u16 },
    /// The count was seen already (stateless).
    #[error("MPPE coherency count {count} seen already")]
    Duplicate { count: u16 },
    /// The count is older than the reorder window (stateless).
    #[error("MPPE packet {count} arrived too late to decrypt")]
    Late { count: u16 },
    /// Stateful: packets were lost (or a flag packet came without FLUSHED);
    /// send a CCP Reset-Request (RFC 3078 section 8.2).
    #[error("MPPE packets lost (expected count {expected}, got {count}): send a CCP Reset-Request")]
    ResetRequired { expected: u16, count: u16 },
    /// Stateful: still waiting for a FLUSHED packet after a loss.
    #[error("MPPE packet {count} dropped while waiting for a FLUSHED packet")]
    AwaitingFlushed { count: u16 },
    /// The packet needs more key changes than the receiver's budget has
    /// left (a forged or flooded count jump; see [`super::budget`]).
    #[error("MPPE packet {count} needs {rekeys} key changes: over the rekey budget")]
    RekeyBudget { count: u16, rekeys: u16 },
}

impl DecryptError {
    /// Whether the caller must send a CCP Reset-Request now.
    pub fn needs_reset_request(&self) -> bool {
        matches!(self, DecryptError::ResetRequired { .. })
    }
}

/// The sending half of MPPE (RFC 3078 sections 6, 7).
pub struct Encryptor {
    keys: KeySchedule,
    rc4: Rc4,
    stateless: bool,
    /// The count of the last packet sent.
    count: u16,
    /// Stateless: key changes since the initial session key, the position
    /// of the last packet sent (see `pptp_common::maps::MppeTx`).
    position: u64,
    /// A Reset-Request arrived: the next packet is FLUSHED (stateful).
    reset_pending: bool,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("stateless", &self.stateless)
            .field("count", &self.count)
            .field("position", &self.position)
            .field("reset_pending", &self.reset_pending)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    pub fn new(start: &StartKey, stateless: bool) -> Encryptor {
        let keys = KeySchedule::new(start);
        Encryptor {
            rc4: keys.rc4(),
            keys,
            stateless,
            count: LAST_COUNT,
            position: 0,
            reset_pending: false,
        }
    }

    /// Stateless: the position of the last packet sent (key changes since
    /// the initial session key; 0 before the first).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The current session key (8 or 16 octets): the key of
    /// [`Self::position`].
    pub fn session_key(&self) -> &[u8] {
        self.keys.session_key()
    }

    /// Stateless only: the next packet takes `position` (RFC 3078 section
    /// 8.1: its count is `(position - 1) mod 4096`, its key that of
    /// `position` key changes), which the XDP program's shared counter gave
    /// this sender; positions in between went out from the kernel. Continues
    /// from `newest` (a position and its key, as the program published it)
    /// when that lies between ours and `position`, then makes the key
    /// changes left, at most [`MAX_SEND_SKIP`]; on error nothing changed.
    pub fn skip_to(
        &mut self,
        position: u64,
        newest: Option<(u64, &[u8])>,
    ) -> Result<(), EncryptError> {
        let ours = self.position;
        if !self.stateless || position <= ours {
            return Err(EncryptError::NotAhead { position, ours });
        }
        let from = match newest {
            Some((p, _)) if p > ours && p < position => p,
            _ => ours,
        };
        let changes = position - 1 - from;
        if changes > MAX_SEND_SKIP {
            return Err(EncryptError::TooFar { position, changes });
        }
        if from != ours
            && let Some((_, key)) = newest
            && !self.keys.set_session_key(key)
        {
            // A key of the wrong length: walk from our own.
            return self.skip_to(position, None);
        }
        for _ in 0..changes {
            self.keys.change_key();
        }
        self.position = position - 1;
        self.count = ((position - 1).wrapping_sub(1) % u64::from(COHERENCY_COUNT_SPACE)) as u16;
        Ok(())
    }

    /// The count the next packet will carry.
    pub fn next_count(&self) -> u16 {
        next(self.count)
    }

    /// A CCP Reset-Request arrived: the next packet carries FLUSHED with a
    /// key change (stateful mode; stateless packets always do). Several
    /// Reset-Requests before the next packet count once.
    pub fn handle_reset_request(&mut self) {
        self.reset_pending = true;
    }

    /// Encrypts in place: `packet[2..]` holds the plaintext (PPP protocol
    /// field and payload) and becomes the ciphertext; `packet[..2]`
    /// receives the MPPE header, which is also returned.
    pub fn encrypt_in_place(&mut self, packet: &mut [u8]) -> Result<Repr, EncryptError> {
        if packet.len() < HEADER_LEN {
            return Err(EncryptError::BufferTooSmall {
                need: HEADER_LEN,
                have: packet.len(),
            });
        }
        let repr = self.advance();
        let mut view = Packet::new_unchecked(packet);
        view.set_bits_and_count(header_word(&repr));
        self.rc4.apply_keystream(view.payload_mut());
        Ok(repr)
    }

    /// Encrypts `plaintext` (PPP protocol field and payload) into `out`:
    /// the header, then the ciphertext. Returns the octets written,
    /// `plaintext.len() + 2`.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, EncryptError> {
        let need = HEADER_LEN + plaintext.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(EncryptError::BufferTooSmall {
                need,
                have: out.len(),
            });
        };
        let repr = self.advance();
        let mut view = Packet::new_unchecked(out);
        view.set_bits_and_count(header_word(&repr));
        self.rc4.apply_keystream_b2b(plaintext, view.payload_mut());
        Ok(need)
    }

    /// Moves to the next count, changing the key where RFC 3078 section 7
    /// asks; returns the header of the packet.
    fn advance(&mut self) -> Repr {
        self.count = next(self.count);
        let flushed = self.stateless || is_flag(self.count) || self.reset_pending;
        if flushed {
            self.keys.change_key();
            self.rc4 = self.keys.rc4();
            self.reset_pending = false;
        }
        if self.stateless {
            self.position += 1;
        }
        Repr::encrypted(self.count, flushed)
    }
}

/// The receiving half of MPPE (RFC 3078 sections 6 to 8).
pub struct Decryptor {
    keys: KeySchedule,
    rc4: Rc4,
    stateless: bool,
    /// The count of the last packet decrypted (the highest, stateless).
    count: u16,
    /// Stateful: waiting for a FLUSHED packet after a loss.
    discarding: bool,
    /// Stateless: the session keys of the last [`REORDER_WINDOW`] counts,
    /// at `count % REORDER_WINDOW`.
    history: [[u8; 16]; REORDER_WINDOW as usize],
    /// Stateless: bit `i` set when count `self.count - i` needs no
    /// decryption any more (decrypted, or from before the first packet).
    seen: u32,
    /// The key changes a packet may cost beyond its first.
    budget: RekeyBudget,
    /// The last packet accepted moved the count forward (rather than
    /// being decrypted with a remembered key from the reorder window).
    advanced: bool,
    /// Stateless: key changes since the start key (the count is this
    /// position minus one, modulo 4096). Unlike the count it never wraps, so
    /// two receivers of one chain compare positions without ambiguity.
    position: u64,
    /// Stateless: what the sequence numbers say about the next packet
    /// ([`Self::expect`]), taken by it.
    evidence: Option<SentSince>,
    /// The newest sequence number whose evidence a jump was taken on.
    evidence_spent: Option<u32>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("stateless", &self.stateless)
            .field("count", &self.count)
            .field("discarding", &self.discarding)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    pub fn new(start: &StartKey, stateless: bool) -> Decryptor {
        let keys = KeySchedule::new(start);
        Decryptor {
            rc4: keys.rc4(),
            keys,
            stateless,
            count: LAST_COUNT,
            discarding: false,
            history: [[0; 16]; REORDER_WINDOW as usize],
            seen: u32::MAX,
            budget: RekeyBudget::new(),
            advanced: false,
            position: 0,
            evidence: None,
            evidence_spent: None,
        }
    }

    /// What the GRE sequence numbers say about the next packet given to
    /// [`Self::decrypt`] or [`Self::decrypt_in_place`] (stateless only; see
    /// the module documentation): `None` when it is not ahead of the newest
    /// frame accepted, or nothing was accepted yet.
    pub fn expect(&mut self, evidence: Option<SentSince>) {
        self.evidence = evidence;
    }

    /// The time of the packets that follow (a monotonic clock): refills
    /// the rekey budget. Call it before each packet or batch of packets.
    pub fn advance_clock(&mut self, now: std::time::Instant) {
        self.budget.advance_clock(now);
    }

    /// Packets dropped because their count jump needed more key changes
    /// than the rekey budget had left ([`DecryptError::RekeyBudget`]).
    pub fn rekey_budget_drops(&self) -> u64 {
        self.budget.dropped()
    }

    /// The count of the last packet accepted.
    pub fn last_count(&self) -> u16 {
        self.count
    }

    /// Whether the last packet accepted moved the count forward: a packet
    /// from within the reorder window behind it does not (one the peer may
    /// not even have sent: a forged one costs no key change).
    pub fn last_advanced(&self) -> bool {
        self.advanced
    }

    /// Whether this receiver is stateless (RFC 3078 section 8.1).
    pub fn is_stateless(&self) -> bool {
        self.stateless
    }

    /// The session key of [`Self::last_count`] (8 or 16 octets).
    pub fn session_key(&self) -> &[u8] {
        self.keys.session_key()
    }

    /// Stateless: the key changes since the start key (the position of
    /// [`Self::last_count`]; see `pptp_common::maps::MppeRx`).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Stateless only: continues from `position` with `session_key`, the
    /// key of that position, if it differs from ours; returns whether it
    /// did. This is how the receiver follows the XDP program, which
    /// decrypts most frames of the session with the same key chain
    /// (`dataplane::mppe_rx`), and how it returns to that chain after a key
    /// change of its own that decrypted garbage. Positions, unlike counts,
    /// do not wrap: the program may be any number of counts ahead. The keys
    /// of other counts are forgotten: a frame from before `position` is
    /// dropped as a duplicate.
    pub fn resync(&mut self, position: u64, session_key: &[u8]) -> bool {
        if !self.stateless || position == self.position {
            return false;
        }
        if !self.keys.set_session_key(session_key) {
            return false;
        }
        self.position = position;
        self.count = (position.wrapping_sub(1) % u64::from(COHERENCY_COUNT_SPACE)) as u16;
        self.seen = u32::MAX;
        self.rc4 = self.keys.rc4();
        true
    }

    /// Decrypts in place: `packet` is the MPPE header and ciphertext; on
    /// success `packet[2..]` holds the plaintext (PPP protocol field and
    /// payload), and the header is returned.
    pub fn decrypt_in_place(&mut self, packet: &mut [u8]) -> Result<Repr, DecryptError> {
        let repr = self.accept(packet)?;
        let mut view = Packet::new_unchecked(packet);
        self.rc4.apply_keystream(view.payload_mut());
        Ok(repr)
    }

    /// Decrypts `packet` (MPPE header and ciphertext) into `out`; returns
    /// the plaintext length, `packet.len() - 2`.
    pub fn decrypt(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, DecryptError> {
        let need = packet.len().saturating_sub(HEADER_LEN);
        if out.len() < need {
            return Err(DecryptError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        self.accept(packet)?;
        let view = Packet::new_unchecked(packet);
        self.rc4
            .apply_keystream_b2b(view.payload(), &mut out[..need]);
        Ok(need)
    }

    /// Checks the header and sets `self.rc4` to the state that decrypts
    /// this packet.
    fn accept(&mut self, packet: &[u8]) -> Result<Repr, DecryptError> {
        let evidence = self.evidence.take();
        let view = Packet::new_checked(packet).map_err(|_| DecryptError::Truncated)?;
        let repr = Repr::parse(&view).map_err(|_| DecryptError::Truncated)?;
        if !repr.encrypted {
            return Err(DecryptError::NotEncrypted);
        }
        if repr.compressed {
            return Err(DecryptError::Compressed);
        }
        if self.stateless {
            self.accept_stateless(repr.coherency_count, repr.flushed, evidence)?;
        } else {
            self.accept_stateful(repr.coherency_count, repr.flushed)?;
        }
        Ok(repr)
    }

    /// RFC 3078 section 8.1, with the reorder window and the evidence of
    /// sequence numbers.
    fn accept_stateless(
        &mut self,
        count: u16,
        flushed: bool,
        evidence: Option<SentSince>,
    ) -> Result<(), DecryptError> {
        if !flushed {
            return Err(DecryptError::NotFlushed { count });
        }
        let ahead = distance(self.count, count);
        if let Some(jump) = self.evidenced_jump(ahead, evidence) {
            self.advance(jump);
            return Ok(());
        }
        if ahead == 0 {
            return Err(DecryptError::Duplicate { count });
        }
        if ahead < COHERENCY_COUNT_SPACE / 2 {
            // Catching up after refusals (see `budget`) only for a packet
            // the sequence numbers place in the peer's sequence: a flood
            // of forged jumps, whose sequence numbers a spoofer who does
            // not see the traffic cannot guess, gets the strict budget.
            let in_sequence = evidence.is_some_and(|e| u64::from(e.frames) <= MAX_EVIDENCED_JUMP);
            let taken = if in_sequence {
                self.budget.take_catching_up(ahead - 1)
            } else {
                self.budget.take(ahead - 1)
            };
            if !taken {
                return Err(DecryptError::RekeyBudget {
                    count,
                    rekeys: ahead,
                });
            }
            self.advance(u64::from(ahead));
            return Ok(());
        }
        let behind = COHERENCY_COUNT_SPACE - ahead;
        if behind >= REORDER_WINDOW {
            return Err(DecryptError::Late { count });
        }
        let bit = 1u32 << behind;
        if self.seen & bit != 0 {
            return Err(DecryptError::Duplicate { count });
        }
        self.seen |= bit;
        let key = &self.history[usize::from(count % REORDER_WINDOW)];
        self.rc4 = crate::mppe::keys::rc4_with(&key[..self.keys.session_key().len()]);
        self.advanced = false;
        Ok(())
    }

    /// The jump that the sequence numbers show for a packet `ahead` counts
    /// ahead modulo 4096, if they agree with it (see the module
    /// documentation). Marks the evidence spent.
    fn evidenced_jump(&mut self, ahead: u16, evidence: Option<SentSince>) -> Option<u64> {
        let e = evidence?;
        let frames = u64::from(e.frames);
        if self.evidence_spent == Some(e.newest) || frames == 0 || frames > MAX_EVIDENCED_JUMP {
            return None;
        }
        let space = u64::from(COHERENCY_COUNT_SPACE);
        // frames = jump + clear frames, jump ≡ ahead (mod 4096).
        let clear = (frames + space - u64::from(ahead)) % space;
        if clear > EVIDENCE_SLACK || clear >= frames {
            return None;
        }
        let jump = frames - clear;
        let extra = jump - 1;
        let seq = e.newest.wrapping_add(e.frames);
        if extra > FREE_EXTRA && !self.budget.take_evidenced(extra, e.newest, seq) {
            // Over the budget, and the peer has not yet passed the frame of
            // the last jump taken beyond it: the count alone decides.
            return None;
        }
        self.evidence_spent = Some(e.newest);
        Some(jump)
    }

    /// `jump` key changes forward (stateless), remembering the keys of the
    /// last [`REORDER_WINDOW`] counts.
    fn advance(&mut self, jump: u64) {
        self.position += jump;
        for _ in 0..jump {
            self.count = next(self.count);
            self.keys.change_key();
            let slot = &mut self.history[usize::from(self.count % REORDER_WINDOW)];
            slot[..self.keys.session_key().len()].copy_from_slice(self.keys.session_key());
        }
        let shift = u32::try_from(jump).unwrap_or(u32::MAX);
        self.seen = self.seen.checked_shl(shift).unwrap_or(0) | 1;
        self.rc4 = self.keys.rc4();
        self.advanced = true;
    }

    /// RFC 3078 section 8.2, with a key change on every FLUSHED packet (see
    /// the module documentation).
    fn accept_stateful(&mut self, count: u16, flushed: bool) -> Result<(), DecryptError> {
        if !self.discarding {
            let expected = next(self.count);
            if count != expected || (is_flag(count) && !flushed) {
                self.discarding = true;
                return Err(DecryptError::ResetRequired { expected, count });
            }
            if flushed {
                self.keys.change_key();
                self.rc4 = self.keys.rc4();
            }
            self.count = count;
            return Ok(());
        }
        if !flushed {
            return Err(DecryptError::AwaitingFlushed { count });
        }
        let ahead = distance(self.count, count);
        if ahead == 0 {
            return Err(DecryptError::AwaitingFlushed { count });
        }
        // The sender changed its key at every flag packet between the last
        // count we decrypted and this one, and once more for this packet.
        let first = u32::from(self.count) + 1;
        let last = u32::from(self.count) + u32::from(ahead) - 1;
        let missed_flags = (last + 1) / 256 - first / 256;
        // At most 8 flag packets in 2047 counts.
        let missed = u16::try_from(missed_flags).unwrap_or(u16::MAX);
        if !self.budget.take(missed) {
            return Err(DecryptError::RekeyBudget {
                count,
                rekeys: missed.saturating_add(1),
            });
        }
        for _ in 0..=missed_flags {
            self.keys.change_key();
        }
        self.rc4 = self.keys.rc4();
        self.count = count;
        self.discarding = false;
        Ok(())
    }
}

/// Both directions of one end of the link.
#[derive(Debug)]
pub struct MppeCipher {
    pub encryptor: Encryptor,
    pub decryptor: Decryptor,
}

impl MppeCipher {
    /// The cipher for what CCP negotiated, from key material as the
    /// authentication produced it for our end.
    pub fn new(material: &MppeMaterial, params: MppeParams) -> MppeCipher {
        MppeCipher::from_start_keys(&start_keys(material, params.key_length), params.stateless)
    }

    pub fn from_start_keys(keys: &StartKeys, stateless: bool) -> MppeCipher {
        MppeCipher {
            encryptor: Encryptor::new(&keys.send, stateless),
            decryptor: Decryptor::new(&keys.recv, stateless),
        }
    }
}

fn next(count: u16) -> u16 {
    (count + 1) % COHERENCY_COUNT_SPACE
}

/// How far `to` is ahead of `from` in the 12-bit count space.
fn distance(from: u16, to: u16) -> u16 {
    to.wrapping_sub(from) % COHERENCY_COUNT_SPACE
}

/// The "flag" packet of stateful mode (RFC 3078 section 7.2).
fn is_flag(count: u16) -> bool {
    count & 0xff == 0xff
}

fn header_word(repr: &Repr) -> u16 {
    // `encrypted()` reprs carry counts below 4096, so this never fails.
    repr.bits_and_count()
        .unwrap_or(flags::D | (repr.coherency_count & flags::COHERENCY_COUNT_MASK))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::mppe::{KeyLength, Role, keys::mschapv2_material};

    /// RFC 6229 section 2: keystream of the key 0x0102030405 (40 bits) at
    /// offsets 0, 16, 240 and 4096.
    #[test]
    fn rc4_rfc6229_40_bit_key() {
        let cases: [(usize, [u8; 16]); 4] = [
            (0, hex16("b2396305f03dc027ccc3524a0a1118a8")),
            (16, hex16("6982944f18fc82d589c403a47a0d0919")),
            (240, hex16("28cb1132c96ce286421dcaadb8b69eae")),
            (4096, hex16("ff25b58995996707e51fbdf08b34d875")),
        ];
        check_keystream(&[1, 2, 3, 4, 5], &cases);
    }

    /// RFC 6229 section 2: the 64-bit key 0x0102030405060708 (the RC4 key
    /// length of 40- and 56-bit MPPE).
    #[test]
    fn rc4_rfc6229_64_bit_key() {
        let cases: [(usize, [u8; 16]); 3] = [
            (0, hex16("97ab8a1bf0afb96132f2f67258da15a8")),
            (1520, hex16("1fe8986713f07c3d9ae1c163ff8cf9d3")),
            (4096, hex16("3fb46e2c8f0f068edce8cdcd7dfc5862")),
        ];
        check_keystream(&[1, 2, 3, 4, 5, 6, 7, 8], &cases);
    }

    /// RFC 6229 section 2: the 128-bit key 0x0102...10.
    #[test]
    fn rc4_rfc6229_128_bit_key() {
        let key: Vec<u8> = (1..=16).collect();
        let cases: [(usize, [u8; 16]); 4] = [
            (0, hex16("9ac7cc9a609d1ef7b2932899cde41b97")),
            (256, hex16("d39d566bc6bce3010768151549f3873f")),
            (3056, hex16("fabeb76028ade2d0e48722e46c4615a3")),
            (4096, hex16("a36a4c301ae8ac13610ccbc12256cacc")),
        ];
        check_keystream(&key, &cases);
    }

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        crate::wire::chap::decode_hex(s.as_bytes(), &mut out).expect("32 hex digits");
        out
    }

    fn check_keystream(key: &[u8], cases: &[(usize, [u8; 16])]) {
        let mut stream = vec![0u8; 4112];
        crate::mppe::keys::rc4_with(key).apply_keystream(&mut stream);
        for (offset, expected) in cases {
            assert_eq!(&stream[*offset..offset + 16], expected, "offset {offset}");
        }
    }

    fn pair(length: KeyLength, stateless: bool) -> (MppeCipher, MppeCipher) {
        let hash_hash = [0x41; 16];
        let nt_response = [0x82; 24];
        let params = MppeParams {
            key_length: length,
            stateless,
        };
        (
            MppeCipher::new(
                &mschapv2_material(&hash_hash, &nt_response, Role::Server),
                params,
            ),
            MppeCipher::new(
                &mschapv2_material(&hash_hash, &nt_response, Role::Client),
                params,
            ),
        )
    }

    fn payload(i: usize, len: usize) -> Vec<u8> {
        let mut p = vec![0x00, 0x21];
        p.extend((0..len).map(|j| (i * 7 + j) as u8));
        p
    }

    /// Encrypts packet `i` with `tx`.
    fn seal(tx: &mut Encryptor, i: usize) -> Vec<u8> {
        let plain = payload(i, 40 + i % 50);
        let mut out = vec![0xa5; plain.len() + 2];
        assert_eq!(tx.encrypt(&plain, &mut out), Ok(plain.len() + 2));
        out
    }

    fn open(rx: &mut Decryptor, packet: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let mut out = vec![0xa5; packet.len() - 2];
        rx.decrypt(packet, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn first_packets_carry_counts_from_zero() {
        let (mut server, _) = pair(KeyLength::Bits128, false);
        let p = seal(&mut server.encryptor, 0);
        // D set, A clear, count 0 (stateful).
        assert_eq!(p[..2], [0x10, 0x00]);
        let (mut server, _) = pair(KeyLength::Bits128, true);
        let p = seal(&mut server.encryptor, 0);
        // A and D set, count 0 (stateless).
        assert_eq!(p[..2], [0x90, 0x00]);
        assert_eq!(server.encryptor.next_count(), 1);
    }

    #[test]
    fn traffic_both_ways_in_every_mode_and_length() {
        for stateless in [true, false] {
            for length in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
                let (mut server, mut client) = pair(length, stateless);
                // Past a count wrap and several stateful key changes.
                for i in 0..5000 {
                    let p = seal(&mut server.encryptor, i);
                    assert_ne!(p[4..], payload(i, 40 + i % 50)[2..]);
                    assert_eq!(open(&mut client.decryptor, &p), Ok(payload(i, 40 + i % 50)));
                    let p = seal(&mut client.encryptor, i);
                    assert_eq!(open(&mut server.decryptor, &p), Ok(payload(i, 40 + i % 50)));
                }
            }
        }
    }

    #[test]
    fn in_place_matches_buffer_to_buffer() {
        let (mut a, _) = pair(KeyLength::Bits128, true);
        let (mut b, mut client) = pair(KeyLength::Bits128, true);
        for i in 0..5 {
            let sealed = seal(&mut a.encryptor, i);
            let mut in_place = vec![0u8; 2];
            in_place.extend_from_slice(&payload(i, 40 + i % 50));
            let repr = b.encryptor.encrypt_in_place(&mut in_place).unwrap();
            assert_eq!(repr, Repr::encrypted(i as u16, true));
            assert_eq!(in_place, sealed);
            let repr = client.decryptor.decrypt_in_place(&mut in_place).unwrap();
            assert_eq!(repr.coherency_count, i as u16);
            assert_eq!(in_place[2..], payload(i, 40 + i % 50));
        }
    }

    #[test]
    fn stateless_survives_loss() {
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        for i in 0..3000 {
            let p = seal(&mut server.encryptor, i);
            // Lose every third packet and a burst of 1000.
            if i % 3 == 1 || (1000..2000).contains(&i) {
                continue;
            }
            assert_eq!(
                open(&mut client.decryptor, &p),
                Ok(payload(i, 40 + i % 50)),
                "{i}"
            );
        }
    }

    /// A sender that shares its count with another (the XDP program)
    /// jumps to the position it was given, from its own key or from the
    /// other's newest; the peer sees frames in one chain.
    #[test]
    fn skip_to_sends_at_the_position_given() {
        for length in [KeyLength::Bits40, KeyLength::Bits56, KeyLength::Bits128] {
            let (mut server, mut client) = pair(length, true);
            let (mut other, _) = pair(length, true);
            let tx = &mut server.encryptor;
            // The other sender sent positions 1..=4999: the count wrapped.
            for i in 0..4999 {
                seal(&mut other.encryptor, i);
            }
            assert_eq!(other.encryptor.position(), 4999);
            // From our own key (position 0): 4,999 key changes.
            assert!(matches!(
                tx.skip_to(5000, None),
                Err(EncryptError::TooFar {
                    position: 5000,
                    changes: 4999
                })
            ));
            assert_eq!(tx.position(), 0);
            // From the other's newest key: none.
            let newest = other.encryptor.session_key().to_vec();
            tx.skip_to(5000, Some((4999, &newest))).unwrap();
            let p = seal(tx, 0);
            assert_eq!(tx.position(), 5000);
            assert_eq!(u16::from_be_bytes([p[0] & 0x0F, p[1]]), (5000 - 1) % 4096);
            assert_eq!(p, seal(&mut other.encryptor, 0), "{length:?}");
            // Then a few positions ahead, from our own key; a newest key
            // behind ours or beyond the position is not used.
            tx.skip_to(5004, Some((4999, &newest))).unwrap();
            let q = seal(tx, 1);
            for i in 1..4 {
                seal(&mut other.encryptor, i);
            }
            assert_eq!(q, seal(&mut other.encryptor, 1));
            assert!(matches!(
                tx.skip_to(5004, None),
                Err(EncryptError::NotAhead {
                    position: 5004,
                    ours: 5004
                })
            ));
            // The client's receiver, at 4999 on the chain, takes both.
            let rx = &mut client.decryptor;
            assert!(rx.resync(4999, &newest));
            assert_eq!(open(rx, &p), Ok(payload(0, 40)));
            assert_eq!(open(rx, &q), Ok(payload(1, 41)));
        }
        // Stateful senders have no positions.
        let (mut server, _) = pair(KeyLength::Bits128, false);
        assert!(server.encryptor.skip_to(5, None).is_err());
    }

    #[test]
    fn stateless_reordering_within_the_window() {
        let (mut server, mut client) = pair(KeyLength::Bits40, true);
        let packets: Vec<_> = (0..200).map(|i| seal(&mut server.encryptor, i)).collect();
        // Swap neighbours, and hold packet 50 back by 20 packets.
        let mut order: Vec<usize> = Vec::new();
        for i in (0..200).step_by(2) {
            if i == 50 {
                continue;
            }
            order.extend([i + 1, i]);
            if i == 70 {
                order.push(50);
                order.push(51);
            }
        }
        for i in order {
            assert_eq!(
                open(&mut client.decryptor, &packets[i]),
                Ok(payload(i, 40 + i % 50)),
                "{i}"
            );
        }
        // Everything is decrypted once: a replay is a duplicate.
        assert_eq!(
            open(&mut client.decryptor, &packets[199]),
            Err(DecryptError::Duplicate { count: 199 })
        );
        assert_eq!(
            open(&mut client.decryptor, &packets[190]),
            Err(DecryptError::Duplicate { count: 190 })
        );
        assert_eq!(
            open(&mut client.decryptor, &packets[100]),
            Err(DecryptError::Late { count: 100 })
        );
    }

    #[test]
    fn stateless_late_packets_lost_before_the_first() {
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        let packets: Vec<_> = (0..6).map(|i| seal(&mut server.encryptor, i)).collect();
        // Count 5 arrives first; 0 to 4 are late but their keys are known.
        for i in [5, 2, 0, 4, 1, 3] {
            assert_eq!(
                open(&mut client.decryptor, &packets[i]),
                Ok(payload(i, 40 + i % 50))
            );
        }
        // A packet "before" count 0 was never sent: its slot is marked seen.
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        let first = seal(&mut server.encryptor, 0);
        assert!(open(&mut client.decryptor, &first).is_ok());
        let mut fake = first.clone();
        fake[..2].copy_from_slice(&[0x9f, 0xff]);
        assert_eq!(
            open(&mut client.decryptor, &fake),
            Err(DecryptError::Duplicate { count: 0xfff })
        );
    }

    /// A forged stateless packet whose count jumps `ahead` past `from`:
    /// header A|D and the count, then garbage (no key is needed to make
    /// the receiver change keys).
    fn forged(from: u16, ahead: u16) -> Vec<u8> {
        let count = (from + ahead) % COHERENCY_COUNT_SPACE;
        let word = 0x9000 | count;
        let mut p = word.to_be_bytes().to_vec();
        p.extend([0x5a; 60]);
        p
    }

    /// Issue 14: a stream of maximal count jumps (2047 key changes each)
    /// is cut off once the budget is spent; dropped packets change nothing
    /// and are counted.
    #[test]
    fn a_burst_of_maximal_jumps_is_cut_off_at_the_budget() {
        use crate::mppe::budget::REKEY_BURST;
        let t = Instant::now();
        let (_, mut client) = pair(KeyLength::Bits128, true);
        let rx = &mut client.decryptor;
        rx.advance_clock(t);
        let mut accepted = 0;
        for i in 0..1000 {
            let p = forged(rx.last_count(), 2047);
            let before = rx.last_count();
            // In the peer's sequence (as a frame from the peer's own
            // sender would be), though the count disagrees with it.
            rx.expect(sent(1, i));
            match open(rx, &p) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    assert_eq!(
                        e,
                        DecryptError::RekeyBudget {
                            count: (before + 2047) % COHERENCY_COUNT_SPACE,
                            rekeys: 2047
                        }
                    );
                    assert_eq!(rx.last_count(), before, "no key change");
                }
            }
        }
        // The burst holds two maximal jumps (2046 extra key changes each);
        // after that one is taken for every 512 refused (catching up, at
        // most 4 extra key changes per packet received).
        assert_eq!(accepted, REKEY_BURST / 2046 + 1);
        assert_eq!(rx.rekey_budget_drops(), 1000 - accepted);
        // Out of the peer's sequence (a spoofer's guess, or no sequence
        // number known): the strict budget, no catching up.
        let (_, mut client) = pair(KeyLength::Bits128, true);
        let rx = &mut client.decryptor;
        rx.advance_clock(t);
        let mut accepted = 0;
        for i in 0..1000 {
            let p = forged(rx.last_count(), 2047);
            rx.expect((i % 2 == 0).then_some(SentSince {
                frames: 1 << 20,
                newest: i,
            }));
            accepted += u64::from(open(rx, &p).is_ok());
        }
        assert_eq!(accepted, REKEY_BURST / 2046);
        // The stateful receiver catching up after a loss pays too, though
        // never more than 16 key changes a packet.
        let (_, mut client) = pair(KeyLength::Bits128, false);
        let rx = &mut client.decryptor;
        rx.advance_clock(t);
        let mut p = forged(rx.last_count(), 2000);
        p[0] &= 0x7f;
        assert!(open(rx, &p).unwrap_err().needs_reset_request());
        let (mut accepted, mut over) = (0, 0);
        for _ in 0..2000 {
            // Alternately caught up (at least 7 flag packets missed, so
            // 7 extra key changes) and a new loss.
            match open(rx, &forged(rx.last_count(), 2040)) {
                Ok(_) => accepted += 1,
                Err(DecryptError::RekeyBudget { .. }) => over += 1,
                Err(_) => {}
            }
        }
        assert!(over > 0);
        assert_eq!(rx.rekey_budget_drops(), over);
        assert!(accepted <= REKEY_BURST / 7, "{accepted}");
    }

    #[test]
    fn the_rekey_budget_refills_with_time() {
        let t = Instant::now();
        let (_, mut client) = pair(KeyLength::Bits56, true);
        let rx = &mut client.decryptor;
        rx.advance_clock(t);
        let jump = |rx: &mut Decryptor| open(rx, &forged(rx.last_count(), 2047)).is_ok();
        assert!(jump(rx) && jump(rx));
        assert!(!jump(rx));
        // 2046 key changes take a second to come back.
        rx.advance_clock(t + Duration::from_millis(900));
        assert!(!jump(rx));
        rx.advance_clock(t + Duration::from_millis(1000));
        assert!(jump(rx));
        assert!(!jump(rx));
        assert_eq!(rx.rekey_budget_drops(), 3);
        // Two seconds later: a whole burst again.
        rx.advance_clock(t + Duration::from_millis(3000));
        assert!(jump(rx) && jump(rx));
    }

    /// Legitimate loss never touches the budget: 20,000 packets a second
    /// for 1.2 seconds (7 count wraps), a fifth of them lost in bursts of
    /// 20 (4800 extra key changes, more than the burst: the refill counts),
    /// and every packet received decrypts exactly.
    #[test]
    fn legitimate_loss_and_wraps_stay_within_the_budget() {
        let t = Instant::now();
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        let mut received = 0;
        for i in 0..24_000usize {
            let p = seal(&mut server.encryptor, i);
            if i % 100 < 20 {
                continue;
            }
            client
                .decryptor
                .advance_clock(t + Duration::from_micros(50 * i as u64));
            assert_eq!(
                open(&mut client.decryptor, &p),
                Ok(payload(i, 40 + i % 50)),
                "{i}"
            );
            received += 1;
        }
        assert_eq!(received, 19_200);
        assert_eq!(client.decryptor.rekey_budget_drops(), 0);
    }

    /// The evidence of `frames` frames sent since `newest`.
    fn sent(frames: u32, newest: u32) -> Option<SentSince> {
        Some(SentSince { frames, newest })
    }

    /// What [`seal`] encrypts as packet `i`.
    fn expected(i: usize) -> Vec<u8> {
        payload(i, 40 + i % 50)
    }

    /// Loss runs of 3,998 and 4,991 packets: from the count alone the
    /// first packet after them is 97 counts late, the second 896 counts
    /// ahead (and its key would be wrong); the sequence numbers say 4,001
    /// and 4,995 frames (2 and 3 of them clear control frames), and both
    /// decrypt.
    #[test]
    fn a_loss_run_beyond_the_count_space_is_followed_on_sequence_evidence() {
        for evidence in [true, false] {
            let (_, mut client) = pair(KeyLength::Bits128, true);
            let (mut server, _) = pair(KeyLength::Bits128, true);
            let rx = &mut server.decryptor;
            for i in 0..10 {
                let p = seal(&mut client.encryptor, i);
                assert_eq!(open(rx, &p).unwrap(), expected(i)[..]);
            }
            for i in 10..4008 {
                seal(&mut client.encryptor, i);
            }
            let p = seal(&mut client.encryptor, 4008);
            if evidence {
                rx.expect(sent(4001, 77));
                assert_eq!(open(rx, &p).unwrap(), expected(4008)[..]);
                assert_eq!(rx.position(), 4009);
            } else {
                assert!(matches!(open(rx, &p), Err(DecryptError::Late { .. })));
            }
            for i in 4009..9000 {
                seal(&mut client.encryptor, i);
            }
            let p = seal(&mut client.encryptor, 9000);
            rx.expect(sent(4995, 78));
            let plain = open(rx, &p);
            if evidence {
                assert_eq!(plain.unwrap(), expected(9000)[..]);
                assert_eq!(rx.position(), 9001);
            } else {
                assert_ne!(plain.ok(), Some(expected(9000)));
            }
        }
    }

    /// Evidence that disagrees with the count, that is spent, or that
    /// claims more than 16 turns of the count space is ignored: the
    /// packet goes the count's way, under the budget.
    #[test]
    fn sequence_evidence_is_taken_only_when_it_agrees_once_and_within_bounds() {
        let (_, mut client) = pair(KeyLength::Bits128, true);
        let (mut server, _) = pair(KeyLength::Bits128, true);
        let rx = &mut server.decryptor;
        let p = seal(&mut client.encryptor, 0);
        assert!(open(rx, &p).is_ok());
        // 100 counts ahead, 5,000 frames claimed: 4,900 clear frames?
        // No: the count's own jump of 100 is taken (under the budget).
        for i in 1..100 {
            seal(&mut client.encryptor, i);
        }
        let p = seal(&mut client.encryptor, 100);
        rx.expect(sent(5000, 1));
        assert!(open(rx, &p).is_ok());
        assert_eq!(rx.position(), 101);
        assert_eq!(rx.rekey_budget_drops(), 0);
        // A forged packet 4,096 + 10 counts ahead on evidence it agrees
        // with: taken once (garbage: the caller sees it), then the same
        // evidence (the same newest number) is spent.
        let forged_at = |rx: &Decryptor, ahead: u16| forged(rx.last_count(), ahead);
        rx.expect(sent(4106, 2));
        assert!(open(rx, &forged_at(rx, 10)).is_ok());
        assert_eq!(rx.position(), 101 + 4106);
        rx.expect(sent(4106, 2));
        assert!(open(rx, &forged_at(rx, 10)).is_ok());
        assert_eq!(rx.position(), 101 + 4106 + 10, "the count's own jump");
        // Beyond 16 turns: ignored.
        rx.expect(sent(17 * 4096 + 10, 3));
        assert!(open(rx, &forged_at(rx, 10)).is_ok());
        assert_eq!(rx.position(), 101 + 4106 + 20);
    }

    #[test]
    fn stateless_requires_flushed() {
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        let mut p = seal(&mut server.encryptor, 0);
        p[0] &= 0x7f;
        assert_eq!(
            open(&mut client.decryptor, &p),
            Err(DecryptError::NotFlushed { count: 0 })
        );
    }

    #[test]
    fn stateful_loss_resynchronises_via_reset_request() {
        let (mut server, mut client) = pair(KeyLength::Bits128, false);
        for i in 0..10 {
            let p = seal(&mut server.encryptor, i);
            assert!(open(&mut client.decryptor, &p).is_ok());
        }
        // Packet 10 is lost; 11 shows the gap.
        let _lost = seal(&mut server.encryptor, 10);
        let p = seal(&mut server.encryptor, 11);
        let err = open(&mut client.decryptor, &p).unwrap_err();
        assert_eq!(
            err,
            DecryptError::ResetRequired {
                expected: 10,
                count: 11
            }
        );
        assert!(err.needs_reset_request());
        // Until the Reset-Request arrives, packets are dropped quietly.
        let p = seal(&mut server.encryptor, 12);
        assert_eq!(
            open(&mut client.decryptor, &p),
            Err(DecryptError::AwaitingFlushed { count: 12 })
        );
        server.encryptor.handle_reset_request();
        server.encryptor.handle_reset_request();
        let p = seal(&mut server.encryptor, 13);
        assert_eq!(p[0] & 0x80, 0x80, "FLUSHED after a Reset-Request");
        assert_eq!(open(&mut client.decryptor, &p), Ok(payload(13, 53)));
        for i in 14..20 {
            let p = seal(&mut server.encryptor, i);
            assert_eq!(p[0] & 0x80, 0, "one Reset-Request, one FLUSHED packet");
            assert_eq!(open(&mut client.decryptor, &p), Ok(payload(i, 40 + i % 50)));
        }
    }

    #[test]
    fn stateful_flag_packets_change_keys() {
        let (mut server, mut client) = pair(KeyLength::Bits40, false);
        for i in 0..600 {
            let p = seal(&mut server.encryptor, i);
            let flushed = p[0] & 0x80 != 0;
            assert_eq!(flushed, i % 256 == 255, "{i}");
            assert_eq!(open(&mut client.decryptor, &p), Ok(payload(i, 40 + i % 50)));
        }
    }

    #[test]
    fn stateful_catches_up_with_missed_flag_packets() {
        // Lose packets across 0, 1, 2 and 3 flag packets, resynchronise with
        // a Reset-Request, and with the received packet before the loss being
        // a flag packet itself (where the kernel's count is off by one).
        for (last_ok, resume) in [
            (10usize, 100usize),
            (10, 300),
            (254, 255),
            (255, 256),
            (255, 600),
            (300, 1100),
        ] {
            let (mut server, mut client) = pair(KeyLength::Bits128, false);
            for i in 0..=last_ok {
                let p = seal(&mut server.encryptor, i);
                assert!(open(&mut client.decryptor, &p).is_ok());
            }
            for i in last_ok + 1..resume {
                let p = seal(&mut server.encryptor, i);
                if i == last_ok + 2 {
                    assert!(
                        open(&mut client.decryptor, &p)
                            .unwrap_err()
                            .needs_reset_request()
                    );
                }
            }
            server.encryptor.handle_reset_request();
            for i in resume..resume + 300 {
                let p = seal(&mut server.encryptor, i);
                assert_eq!(
                    open(&mut client.decryptor, &p),
                    Ok(payload(i, 40 + i % 50)),
                    "lost {}..{resume}, packet {i}",
                    last_ok + 1
                );
            }
        }
    }

    #[test]
    fn stateful_reordering_is_a_loss() {
        let (mut server, mut client) = pair(KeyLength::Bits128, false);
        let a = seal(&mut server.encryptor, 0);
        let b = seal(&mut server.encryptor, 1);
        assert!(
            open(&mut client.decryptor, &b)
                .unwrap_err()
                .needs_reset_request()
        );
        assert_eq!(
            open(&mut client.decryptor, &a),
            Err(DecryptError::AwaitingFlushed { count: 0 })
        );
    }

    #[test]
    fn stateful_flag_packet_without_flushed_is_a_loss() {
        let (mut server, mut client) = pair(KeyLength::Bits128, false);
        for i in 0..255 {
            let p = seal(&mut server.encryptor, i);
            assert!(open(&mut client.decryptor, &p).is_ok());
        }
        let mut p = seal(&mut server.encryptor, 255);
        p[0] &= 0x7f;
        assert!(
            open(&mut client.decryptor, &p)
                .unwrap_err()
                .needs_reset_request()
        );
    }

    #[test]
    fn bad_headers_and_buffers() {
        let (mut server, mut client) = pair(KeyLength::Bits128, true);
        assert_eq!(
            open_raw(&mut client.decryptor, &[0x90]),
            Err(DecryptError::Truncated)
        );
        assert_eq!(
            open(&mut client.decryptor, &[0x80, 0x00, 1]),
            Err(DecryptError::NotEncrypted)
        );
        assert_eq!(
            open(&mut client.decryptor, &[0xb0, 0x00, 1]),
            Err(DecryptError::Compressed)
        );
        let p = seal(&mut server.encryptor, 0);
        let mut small = [0u8; 3];
        assert_eq!(
            client.decryptor.decrypt(&p, &mut small),
            Err(DecryptError::BufferTooSmall {
                need: p.len() - 2,
                have: 3
            })
        );
        // A refused packet did not move the state: it still decrypts.
        assert!(open(&mut client.decryptor, &p).is_ok());
        assert_eq!(
            server.encryptor.encrypt(&[1, 2, 3], &mut [0u8; 4]),
            Err(EncryptError::BufferTooSmall { need: 5, have: 4 })
        );
        assert_eq!(
            server.encryptor.encrypt_in_place(&mut [0u8; 1]),
            Err(EncryptError::BufferTooSmall { need: 2, have: 1 })
        );
        // An empty payload is a valid (if useless) packet.
        let mut out = [0xa5u8; 2];
        assert_eq!(server.encryptor.encrypt(&[], &mut out), Ok(2));
        assert_eq!(client.decryptor.decrypt(&out, &mut []), Ok(0));
    }

    fn open_raw(rx: &mut Decryptor, packet: &[u8]) -> Result<usize, DecryptError> {
        rx.decrypt(packet, &mut [0u8; 16])
    }

    #[test]
    fn debug_hides_keys() {
        let (server, _) = pair(KeyLength::Bits128, true);
        let shown = format!("{server:?}");
        assert!(
            shown.contains("Encryptor") && !shown.contains("session"),
            "{shown}"
        );
    }
}
