//! The daemon's side of the MPPE key chains that the XDP program follows:
//! receive (`PPTP_MPPE_RX`, [`MppeRx`]) and send (`PPTP_MPPE_TX`,
//! [`MppeTx`]); the program's side is `pptp-ebpf/src/mppe.rs`. Each is a
//! memory-mapped array of one entry per session slot, a chain's newest
//! position (`head`) and a ring of tagged keys ([`MppeKeySlot`]), which
//! both sides move with the same compare-and-swap and write with the same
//! tagged protocol ([`MppeSlot::read_head`], [`MppeSlot::publish_key`]).
//! Positions count key changes since the initial session key and never
//! wrap, so either side may run any number of coherency counts ahead.
//!
//! # Receive
//!
//! A stateless MPPE session whose receive state is installed has most of
//! its frames decrypted in the kernel; the frames it leaves to userspace
//! (far jumps, late frames, inner packets other than IPv4) reach the
//! session's userspace [`Decryptor`]. The two follow one chain, and the
//! kernel's head is its authority: before a frame, the decryptor continues
//! from the head ([`MppeRxSlot::sync`]); after a frame that decrypted to
//! something valid, the kernel continues from the decryptor's position if
//! that is ahead ([`MppeRxSlot::publish`]), so a jump that only userspace
//! could follow does not leave every later frame in userspace, and a key
//! change that decrypted garbage is never published (the next sync undoes
//! it).
//!
//! # Send
//!
//! A stateless MPPE session whose send state is installed has IPv4 for
//! the client encrypted in the kernel, and whatever the kernel leaves up
//! (a SYN to clamp, a packet over the MTU, a chain it could not follow)
//! encrypted by the session's userspace [`Encryptor`]. Every frame takes
//! its own position from one counter (`MppeTx::next`, as the GRE sequence
//! numbers share `SeqState::tx_next`): the sender reads the newest key
//! published, takes the next position, makes the key changes in between,
//! encrypts and publishes its key ([`MppeTxSlot::take`],
//! [`MppeTxSlot::publish`]).

use std::{
    os::fd::OwnedFd,
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use aya::maps::MapData;
use pptp_common::maps::{MAX_SESSIONS, MPPE_RX_RING, MppeKeySlot, MppeRx, MppeTx};

use super::xdp::XdpError;
use crate::mppe::{
    cipher::{Decryptor, EncryptError, Encryptor},
    keys::{KeySchedule, StartKey},
};

/// An entry of a key chain map: where its head and ring are, and how a
/// chain starts.
pub trait KeyChain: Copy + Default {
    /// The entry of a chain of `start` whose newest position is `position`,
    /// with `key` its key.
    fn started(start: &StartKey, position: u64, key: [u8; 16]) -> Self;
    /// The head of the entry at `entry`.
    ///
    /// # Safety
    /// `entry` points to a live entry.
    unsafe fn head(entry: *mut Self) -> *mut u64;
    /// The ring of the entry at `entry`.
    ///
    /// # Safety
    /// `entry` points to a live entry.
    unsafe fn ring(entry: *mut Self) -> *mut [MppeKeySlot; MPPE_RX_RING];
}

/// The fields both chains share, for [`KeyChain::started`].
fn chain_fields(
    start: &StartKey,
    position: u64,
    key: [u8; 16],
) -> ([u8; 16], u32, u32, [MppeKeySlot; MPPE_RX_RING]) {
    let mut start_key = [0u8; 16];
    start_key[..start.as_bytes().len()].copy_from_slice(start.as_bytes());
    let mut ring = [MppeKeySlot::default(); MPPE_RX_RING];
    ring[position as usize % MPPE_RX_RING] = MppeKeySlot {
        tag: position + 1,
        key,
    };
    (
        start_key,
        start.as_bytes().len() as u32,
        u32::from(start.length().bits()),
        ring,
    )
}

impl KeyChain for MppeRx {
    fn started(start: &StartKey, position: u64, key: [u8; 16]) -> Self {
        let (start_key, key_len, bits, ring) = chain_fields(start, position, key);
        MppeRx {
            head: position,
            start_key,
            key_len,
            bits,
            ring,
            catch_up_tat: 0,
            prep_epoch: 0,
            prep_row: 0,
            far: 0,
        }
    }

    unsafe fn head(entry: *mut Self) -> *mut u64 {
        // SAFETY: guaranteed by the caller.
        unsafe { &raw mut (*entry).head }
    }

    unsafe fn ring(entry: *mut Self) -> *mut [MppeKeySlot; MPPE_RX_RING] {
        // SAFETY: guaranteed by the caller.
        unsafe { &raw mut (*entry).ring }
    }
}

impl KeyChain for MppeTx {
    fn started(start: &StartKey, position: u64, key: [u8; 16]) -> Self {
        let (start_key, key_len, bits, ring) = chain_fields(start, position, key);
        MppeTx {
            head: position,
            start_key,
            key_len,
            bits,
            ring,
            next: position + 1,
            prep_epoch: 0,
            prep_row: 0,
            _pad: 0,
        }
    }

    unsafe fn head(entry: *mut Self) -> *mut u64 {
        // SAFETY: guaranteed by the caller.
        unsafe { &raw mut (*entry).head }
    }

    unsafe fn ring(entry: *mut Self) -> *mut [MppeKeySlot; MPPE_RX_RING] {
        // SAFETY: guaranteed by the caller.
        unsafe { &raw mut (*entry).ring }
    }
}

/// A chain whose upcoming positions the daemon may prepare
/// (`super::mppe_prep`): where its entry names its row of prepared states
/// (`prep_row`, `prep_epoch`), and where the program reports a peer it
/// cannot follow (receive only).
pub trait PreparedChain: KeyChain {
    /// The entry's `prep_row` and `prep_epoch`.
    ///
    /// # Safety
    /// `entry` points to a live entry.
    unsafe fn prep(entry: *mut Self) -> (*mut u32, *mut u64);

    /// Where the program last found the peer too far ahead to follow
    /// ([`MppeSlot::take_far`] for the receive chain; a send chain has no
    /// such report).
    fn take_far(_slot: &MppeSlot<Self>, _head: u64) -> Option<u64> {
        None
    }
}

impl PreparedChain for MppeRx {
    unsafe fn prep(entry: *mut Self) -> (*mut u32, *mut u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { (&raw mut (*entry).prep_row, &raw mut (*entry).prep_epoch) }
    }

    fn take_far(slot: &MppeSlot<Self>, head: u64) -> Option<u64> {
        slot.take_far(head)
    }
}

impl PreparedChain for MppeTx {
    unsafe fn prep(entry: *mut Self) -> (*mut u32, *mut u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { (&raw mut (*entry).prep_row, &raw mut (*entry).prep_epoch) }
    }
}

/// A `BPF_F_MMAPABLE` array map mapped into the daemon (or, for tests,
/// the same array in process memory): the storage of the key chain maps
/// and of the prepared states (`super::mppe_prep`).
pub(super) struct SharedArray<T> {
    base: NonNull<T>,
    len: usize,
    /// Keeps the map alive while mapped; `None` for process memory (tests).
    fd: Option<OwnedFd>,
}

impl<T> SharedArray<T> {
    /// Maps `data`, an array map of `len` values of `T`.
    pub(super) fn mmap(data: &MapData, len: usize) -> Result<Self, XdpError> {
        let (base, fd) = super::xdp::mmap_array::<T>(data, len)?;
        Ok(Self {
            base,
            len,
            fd: Some(fd),
        })
    }

    /// `len` default values in process memory.
    #[cfg(test)]
    pub(super) fn heap(len: usize) -> Self
    where
        T: Clone + Default,
    {
        let values: Box<[T]> = vec![T::default(); len].into_boxed_slice();
        let base =
            NonNull::new(Box::into_raw(values).cast::<T>()).expect("Box pointers are non-null");
        Self {
            base,
            len,
            fd: None,
        }
    }

    /// The value at `index`, if in bounds.
    pub(super) fn get(&self, index: usize) -> Option<*mut T> {
        // SAFETY: in bounds of the mapping.
        (index < self.len).then(|| unsafe { self.base.as_ptr().add(index) })
    }
}

impl<T> Drop for SharedArray<T> {
    fn drop(&mut self) {
        if self.fd.is_some() {
            // SAFETY: unmapping exactly what `mmap` mapped.
            unsafe {
                libc::munmap(
                    self.base.as_ptr().cast(),
                    self.len * std::mem::size_of::<T>(),
                );
            }
        } else {
            // SAFETY: the box `heap` leaked, rebuilt with its length.
            drop(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.base.as_ptr(),
                    self.len,
                ))
            });
        }
    }
}

/// The mapping of a key chain map (`PPTP_MPPE_RX` or `PPTP_MPPE_TX`).
pub struct MppeMap<E> {
    array: SharedArray<E>,
}

/// The receive chains.
pub type MppeRxMap = MppeMap<MppeRx>;
/// The send chains.
pub type MppeTxMap = MppeMap<MppeTx>;

// SAFETY: the shared words (heads, tags, counters) are accessed only
// through atomics; keys and parameters are written before the tags or the
// session flag that publish them.
unsafe impl<E> Send for MppeMap<E> {}
// SAFETY: as above.
unsafe impl<E> Sync for MppeMap<E> {}

impl<E: KeyChain> MppeMap<E> {
    pub(super) fn mmap(data: &MapData) -> Result<Self, XdpError> {
        Ok(Self {
            array: SharedArray::mmap(data, MAX_SESSIONS as usize)?,
        })
    }

    /// `len` slots in process memory, for tests of the hand-off without a
    /// kernel program.
    #[cfg(test)]
    pub(super) fn heap(len: usize) -> Self {
        Self {
            array: SharedArray::heap(len),
        }
    }

    fn entry(&self, slot: u32) -> Result<*mut E, XdpError> {
        self.array.get(slot as usize).ok_or(XdpError::BadSlot(slot))
    }

    /// Starts a slot's chain of `start` at `position`, whose key is `key`.
    /// Call it before the session's entry with the flag that makes the
    /// program read the slot is installed.
    pub fn open_at(
        &self,
        slot: u32,
        start: &StartKey,
        position: u64,
        key: &[u8],
    ) -> Result<(), XdpError> {
        let entry = self.entry(slot)?;
        let value = E::started(start, position, pad16(key));
        // SAFETY: a valid entry; no program reads it yet (see above).
        unsafe { std::ptr::write_volatile(entry, value) };
        std::sync::atomic::fence(Ordering::SeqCst);
        Ok(())
    }

    /// Starts a slot's chain at the initial session key of `start` (RFC
    /// 3079 section 3), position 0.
    pub fn open(&self, slot: u32, start: &StartKey) -> Result<(), XdpError> {
        let initial = KeySchedule::new(start);
        self.open_at(slot, start, 0, initial.session_key())
    }

    /// Clears a slot (after its session's entries are gone): a later
    /// session in the slot starts from [`Self::open`].
    pub fn close(&self, slot: u32) -> Result<(), XdpError> {
        let entry = self.entry(slot)?;
        // SAFETY: a valid entry; the program refuses key_len 0.
        unsafe { std::ptr::write_volatile(entry, E::default()) };
        Ok(())
    }

    /// A copy of a slot's entry (its atomics read plainly: for tests and
    /// diagnostics).
    pub fn read(&self, slot: u32) -> Result<E, XdpError> {
        let entry = self.entry(slot)?;
        // SAFETY: a valid entry of the live mapping.
        Ok(unsafe { std::ptr::read_volatile(entry) })
    }

    /// A handle on one slot for a session's userspace side.
    pub fn slot(self: &Arc<Self>, slot: u32) -> Result<MppeSlot<E>, XdpError> {
        self.entry(slot)?;
        Ok(MppeSlot {
            map: self.clone(),
            slot,
        })
    }
}

/// One session's entry of an [`MppeMap`], for its userspace side.
pub struct MppeSlot<E> {
    map: Arc<MppeMap<E>>,
    slot: u32,
}

/// A session's receive chain.
pub type MppeRxSlot = MppeSlot<MppeRx>;
/// A session's send chain.
pub type MppeTxSlot = MppeSlot<MppeTx>;

impl<E> Clone for MppeSlot<E> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            slot: self.slot,
        }
    }
}

impl<E> std::fmt::Debug for MppeSlot<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MppeSlot")
            .field("slot", &self.slot)
            .finish()
    }
}

impl<E: KeyChain> MppeSlot<E> {
    fn entry(&self) -> *mut E {
        // SAFETY: the slot was checked in bounds by `MppeMap::slot`.
        unsafe { self.map.array.base.as_ptr().add(self.slot as usize) }
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: an aligned u64 inside the live mapping, only accessed
        // atomically (here and in the program).
        unsafe { AtomicU64::from_ptr(E::head(self.entry())) }
    }

    fn tag(&self, position: u64) -> (&AtomicU64, *mut [u8; 16]) {
        let ring = position as usize % MPPE_RX_RING;
        // SAFETY: as for `head`; the key is read and written between the
        // tag accesses of the seqlock protocol.
        unsafe {
            let slot = &raw mut (*E::ring(self.entry()))[ring];
            (
                AtomicU64::from_ptr(&raw mut (*slot).tag),
                &raw mut (*slot).key,
            )
        }
    }

    /// The chain's head position.
    pub fn position(&self) -> u64 {
        self.head().load(Ordering::SeqCst)
    }

    /// The chain's head: its position and key, if the key could be read
    /// untorn (a few tries).
    pub fn read_head(&self) -> Option<(u64, [u8; 16])> {
        for _ in 0..4 {
            let head = self.head().load(Ordering::SeqCst);
            let (tag, key) = self.tag(head);
            let before = tag.load(Ordering::SeqCst);
            // SAFETY: see `tag`.
            let bytes = unsafe { std::ptr::read_volatile(key) };
            let after = tag.load(Ordering::SeqCst);
            if before == head + 1 && after == before {
                return Some((head, bytes));
            }
        }
        None
    }

    /// Writes `key` as the key of position `new` and moves the head
    /// forward to it if it is behind. Returns whether it moved.
    pub fn publish_key(&self, new: u64, key: &[u8]) -> bool {
        let key = pad16(key);
        let mut head = self.head().load(Ordering::SeqCst);
        for _ in 0..4 {
            if new <= head {
                return false;
            }
            let (tag, slot_key) = self.tag(new);
            tag.store(0, Ordering::SeqCst);
            // SAFETY: see `tag`.
            unsafe { std::ptr::write_volatile(slot_key, key) };
            tag.store(new + 1, Ordering::SeqCst);
            match self
                .head()
                .compare_exchange(head, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(now) => head = now,
            }
        }
        false
    }
}

impl<E: PreparedChain> MppeMap<E> {
    /// Points the program at prepared states (`PPTP_MPPE_PREP` for a
    /// receive chain, `PPTP_MPPE_TX_PREP` for a send chain) for `slot`:
    /// those of `epoch` in row `row` (`None`: none, the program walks the
    /// chain). The epoch is written before the row, so the program never
    /// pairs a new row with an old epoch.
    pub fn set_prepared(&self, slot: u32, prepared: Option<(u32, u64)>) -> Result<(), XdpError> {
        let entry = self.entry(slot)?;
        let (row, epoch) = prepared.map_or((0, 0), |(row, epoch)| (row + 1, epoch));
        // SAFETY: fields of a valid entry that the program only reads.
        unsafe {
            let (prep_row, prep_epoch) = E::prep(entry);
            if row == 0 {
                std::ptr::write_volatile(prep_row, 0);
                std::sync::atomic::fence(Ordering::SeqCst);
            }
            std::ptr::write_volatile(prep_epoch, epoch);
            std::sync::atomic::fence(Ordering::SeqCst);
            std::ptr::write_volatile(prep_row, row);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        Ok(())
    }
}

impl MppeSlot<MppeRx> {
    fn catch_up(&self) -> &AtomicU64 {
        // SAFETY: as for `head`: an aligned u64 of the live mapping that
        // the program only accesses atomically.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.entry()).catch_up_tat) }
    }

    /// The kernel's catch-up budget for jumps beyond `MPPE_RX_MAX_JUMP`
    /// (`MppeRx::catch_up_tat`: the GCRA theoretical arrival time in the
    /// kernel's monotonic nanoseconds; 0 is a full bucket).
    pub fn catch_up_tat(&self) -> u64 {
        self.catch_up().load(Ordering::SeqCst)
    }

    /// Sets the catch-up budget's state (tests and diagnostics: a time far
    /// ahead empties it, 0 fills it).
    pub fn set_catch_up_tat(&self, tat: u64) {
        self.catch_up().store(tat, Ordering::SeqCst);
    }

    /// Where the program last found the peer too far ahead to follow
    /// (`MppeRx::far`), taken (the field is reset, so a hint is used once
    /// and a peer that stops leaving the program behind stops being
    /// chased): the full position, if it lies ahead of `head`.
    pub fn take_far(&self, head: u64) -> Option<u64> {
        // SAFETY: an aligned u32 of the live mapping that the program only
        // writes with single 32-bit stores.
        let far = unsafe { AtomicU32::from_ptr(&raw mut (*self.entry()).far) };
        let low = far.swap(0, Ordering::SeqCst);
        let ahead = low.wrapping_sub(head as u32);
        (low != 0 && ahead != 0 && ahead < 1 << 31).then(|| head + u64::from(ahead))
    }

    /// Sets `MppeRx::far` as the program does (tests).
    #[cfg(test)]
    pub fn set_far(&self, position: u64) {
        // SAFETY: as for `take_far`.
        let far = unsafe { AtomicU32::from_ptr(&raw mut (*self.entry()).far) };
        far.store((position as u32).max(1), Ordering::SeqCst);
    }

    /// Before `decryptor` takes a frame: continue from the kernel's head
    /// (ahead of the decryptor when the kernel decrypted frames since, or
    /// behind it when the decryptor's last key change was not published
    /// because it decrypted garbage). Returns whether it moved.
    pub fn sync(&self, decryptor: &mut Decryptor) -> bool {
        match self.read_head() {
            Some((head, key)) => decryptor.resync(head, &key),
            None => false,
        }
    }

    /// After `decryptor` took a frame that decrypted to something valid:
    /// move the kernel's head to the decryptor's position if that is
    /// ahead. Returns whether it moved.
    pub fn publish(&self, decryptor: &Decryptor) -> bool {
        decryptor.is_stateless() && self.publish_key(decryptor.position(), decryptor.session_key())
    }
}

impl MppeSlot<MppeTx> {
    fn next(&self) -> &AtomicU64 {
        // SAFETY: as for `head`: an aligned u64 of the live mapping that
        // the program only accesses atomically.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.entry()).next) }
    }

    /// Before `encryptor` seals a frame: takes the frame's position from
    /// the shared counter and moves the encryptor there, from the newest
    /// key published (read first: every position published was taken
    /// before, so it lies behind the one taken now). Returns the
    /// position. On error the position is lost (the peer's receiver
    /// follows the jump) and the frame must be dropped.
    pub fn take(&self, encryptor: &mut Encryptor) -> Result<u64, EncryptError> {
        let newest = self.read_head();
        let position = self.next().fetch_add(1, Ordering::SeqCst);
        encryptor.skip_to(position, newest.as_ref().map(|(p, key)| (*p, &key[..])))?;
        Ok(position)
    }

    /// After `encryptor` sealed the frame of [`Self::take`]: publishes its
    /// key, so the kernel continues from there. Returns whether the head
    /// moved.
    pub fn publish(&self, encryptor: &Encryptor) -> bool {
        self.publish_key(encryptor.position(), encryptor.session_key())
    }

    /// The next position to send (diagnostics and tests).
    pub fn next_position(&self) -> u64 {
        self.next().load(Ordering::SeqCst)
    }
}

fn pad16(key: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = key.len().min(16);
    out[..n].copy_from_slice(&key[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mppe::KeyLength;

    fn start() -> StartKey {
        StartKey::new(&[0x5a; 16], KeyLength::Bits128).expect("16 octets")
    }

    fn plaintext(i: usize) -> Vec<u8> {
        let mut p = vec![0x00, 0x21];
        p.extend((0..60).map(|j| (i * 13 + j) as u8));
        p
    }

    fn seal(tx: &mut Encryptor, i: usize) -> Vec<u8> {
        let plain = plaintext(i);
        let mut out = vec![0; plain.len() + 2];
        tx.encrypt(&plain, &mut out).expect("room");
        out
    }

    /// One receiver of the shared chain (the kernel program or the
    /// daemon's receiver) taking a frame as `handle_gre` does: sync, decrypt,
    /// publish only what decrypted to the expected plaintext.
    fn receive(slot: &MppeRxSlot, rx: &mut Decryptor, packet: &[u8], i: usize) -> bool {
        slot.sync(rx);
        let mut out = vec![0; packet.len() - 2];
        let valid = rx.decrypt(packet, &mut out).is_ok() && out == plaintext(i);
        if valid {
            slot.publish(rx);
        }
        valid
    }

    fn chain() -> (Arc<MppeRxMap>, MppeRxSlot, Encryptor, Decryptor, Decryptor) {
        let map = Arc::new(MppeRxMap::heap(2));
        map.open(1, &start()).expect("slot 1");
        let slot = map.slot(1).expect("slot 1");
        (
            map,
            slot,
            Encryptor::new(&start(), true),
            Decryptor::new(&start(), true),
            Decryptor::new(&start(), true),
        )
    }

    #[test]
    fn userspace_follows_a_kernel_more_than_half_the_count_space_ahead() {
        let (_map, slot, mut tx, mut kernel, mut user) = chain();
        // The kernel decrypts 3,000 frames (and then 5,000 more) while
        // userspace sees none; then a frame the kernel leaves up (a jump
        // of 20) reaches userspace, then the kernel goes on.
        let mut i = 0;
        for round in [3000, 5000] {
            for _ in 0..round {
                let p = seal(&mut tx, i);
                assert!(receive(&slot, &mut kernel, &p, i), "kernel frame {i}");
                i += 1;
            }
            for _ in 0..19 {
                seal(&mut tx, i);
                i += 1;
            }
            let p = seal(&mut tx, i);
            assert!(receive(&slot, &mut user, &p, i), "userspace frame {i}");
            assert_eq!(slot.read_head().map(|h| h.0), Some(i as u64 + 1));
            i += 1;
            for _ in 0..10 {
                let p = seal(&mut tx, i);
                assert!(receive(&slot, &mut kernel, &p, i), "kernel frame {i} after");
                i += 1;
            }
        }
    }

    #[test]
    fn a_stale_receiver_never_publishes_a_wrong_key() {
        let (_map, slot, mut tx, mut kernel, mut user) = chain();
        // Userspace takes frame 0, then the kernel runs 3,000 ahead.
        let p = seal(&mut tx, 0);
        assert!(receive(&slot, &mut user, &p, 0));
        for i in 1..3001 {
            let p = seal(&mut tx, i);
            assert!(receive(&slot, &mut kernel, &p, i), "kernel frame {i}");
        }
        // Before it syncs, userspace's position (1) is behind the head
        // (3001), while its count (0) looks 1,096 counts ahead of the
        // head's (3000): publishing must not move the head.
        assert!(!slot.publish(&user));
        // A late duplicate of frame 0 reaches userspace: after the sync it
        // looks 1,096 counts ahead, so it is refused or decrypts to
        // garbage, and the kernel's head is untouched.
        assert!(!receive(&slot, &mut user, &seal_again(0), 0));
        assert_eq!(slot.read_head().map(|h| h.0), Some(3001));
        for i in 3001..3010 {
            let p = seal(&mut tx, i);
            assert!(receive(&slot, &mut kernel, &p, i), "kernel frame {i}");
        }
    }

    /// Frame `i` of a fresh sender (its first `i` frames sealed and lost).
    fn seal_again(i: usize) -> Vec<u8> {
        let mut tx = Encryptor::new(&start(), true);
        for j in 0..i {
            seal(&mut tx, j);
        }
        seal(&mut tx, i)
    }

    #[test]
    fn a_key_change_that_decrypts_garbage_is_undone_at_the_next_frame() {
        let (_map, slot, mut tx, mut kernel, mut user) = chain();
        for i in 0..10 {
            let p = seal(&mut tx, i);
            assert!(receive(&slot, &mut kernel, &p, i));
        }
        // A forged frame 100 counts ahead: userspace changes keys 100
        // times, gets garbage, publishes nothing.
        let mut forged = seal_again(10);
        let count = 109u16;
        forged[0] = (forged[0] & 0xF0) | (count >> 8) as u8;
        forged[1] = count as u8;
        assert!(!receive(&slot, &mut user, &forged, 10));
        assert_eq!(user.position(), 110);
        assert_eq!(slot.read_head().map(|h| h.0), Some(10));
        // The genuine frame 10 (a jump of 1 for the kernel, here taken by
        // userspace) decrypts: the sync went back to the head.
        let p = seal(&mut tx, 10);
        assert!(receive(&slot, &mut user, &p, 10));
        assert_eq!(slot.read_head().map(|h| h.0), Some(11));
        let p = seal(&mut tx, 11);
        assert!(receive(&slot, &mut kernel, &p, 11));
    }

    /// A sender of the shared send chain (the kernel program or the
    /// daemon's encryptor) sealing frame `i` as the data path does: take a
    /// position, seal, publish. Returns the position and the MPPE packet.
    fn send(slot: &MppeTxSlot, tx: &mut Encryptor, i: usize) -> (u64, Vec<u8>) {
        let position = slot.take(tx).expect("within reach of the newest key");
        let p = seal(tx, i);
        assert_eq!(tx.position(), position);
        slot.publish(tx);
        (position, p)
    }

    fn send_chain() -> (Arc<MppeTxMap>, MppeTxSlot) {
        let map = Arc::new(MppeTxMap::heap(2));
        map.open(1, &start()).expect("slot 1");
        let slot = map.slot(1).expect("slot 1");
        (map, slot)
    }

    /// The peer's receiver takes the frames in the order of their
    /// positions: every one decrypts, whoever sealed it.
    fn peer_receives(mut frames: Vec<(u64, usize, Vec<u8>)>) {
        frames.sort_by_key(|f| f.0);
        let mut rx = Decryptor::new(&start(), true);
        for (position, i, p) in frames {
            let mut out = vec![0; p.len() - 2];
            rx.decrypt(&p, &mut out)
                .unwrap_or_else(|e| panic!("position {position}: {e}"));
            assert_eq!(out, plaintext(i), "position {position}");
            assert_eq!(rx.position(), position);
        }
    }

    #[test]
    fn kernel_and_userspace_senders_take_turns_on_one_chain() {
        let (_map, slot) = send_chain();
        let mut kernel = Encryptor::new(&start(), true);
        let mut user = Encryptor::new(&start(), true);
        let mut frames = Vec::new();
        let mut i = 0;
        // The kernel sends most frames (5,000 in a row: more than the
        // count space), userspace one now and then, which starts each time
        // from the kernel's newest key, not from its own.
        for (kernel_run, user_run) in [(5000, 1), (10, 3), (1, 1), (0, 2), (300, 1)] {
            for (sender, run) in [(&mut kernel, kernel_run), (&mut user, user_run)] {
                for _ in 0..run {
                    let (position, p) = send(&slot, sender, i);
                    frames.push((position, i, p));
                    i += 1;
                }
            }
        }
        assert_eq!(slot.next_position(), i as u64 + 1);
        assert_eq!(slot.read_head().map(|h| h.0), Some(i as u64));
        peer_receives(frames);
    }

    #[test]
    fn positions_taken_and_not_sent_are_a_jump_the_peer_follows() {
        let (_map, slot) = send_chain();
        let mut kernel = Encryptor::new(&start(), true);
        let mut user = Encryptor::new(&start(), true);
        let mut frames = Vec::new();
        for i in 0..5 {
            let (position, p) = send(&slot, &mut kernel, i);
            frames.push((position, i, p));
        }
        // Three senders gave up after taking a position (a helper failed
        // in the kernel): the next sender walks past them.
        for _ in 0..3 {
            slot.next().fetch_add(1, Ordering::SeqCst);
        }
        let (position, p) = send(&slot, &mut user, 5);
        assert_eq!(position, 9);
        frames.push((position, 5, p));
        let (position, p) = send(&slot, &mut kernel, 6);
        assert_eq!(position, 10);
        frames.push((position, 6, p));
        peer_receives(frames);
    }

    #[test]
    fn an_unreadable_newest_key_is_walked_to_within_bounds_only() {
        let (map, slot) = send_chain();
        let mut kernel = Encryptor::new(&start(), true);
        let mut user = Encryptor::new(&start(), true);
        let mut frames = Vec::new();
        for i in 0..5000 {
            let (position, p) = send(&slot, &mut kernel, i);
            frames.push((position, i, p));
        }
        // The newest key's slot is being rewritten (tag 0): userspace
        // cannot continue from it, and 5,000 key changes from its own
        // position are over the bound. Its frame is lost (position 5001),
        // and the encryptor is unchanged.
        let entry = map.entry(1).expect("slot 1");
        let ring = 5000 % MPPE_RX_RING;
        // SAFETY: the heap entry of this test, no other user.
        unsafe { (*entry).ring[ring].tag = 0 };
        assert!(matches!(
            slot.take(&mut user),
            Err(EncryptError::TooFar {
                position: 5001,
                changes: 5000
            })
        ));
        assert_eq!(user.position(), 0);
        // SAFETY: as above.
        unsafe { (*entry).ring[ring].tag = 5001 };
        // The kernel walks past the lost position, userspace continues
        // from the kernel's key, and the peer follows both.
        let (position, p) = send(&slot, &mut kernel, 5000);
        assert_eq!(position, 5002);
        frames.push((position, 5000, p));
        let (position, p) = send(&slot, &mut user, 5001);
        assert_eq!(position, 5003);
        frames.push((position, 5001, p));
        peer_receives(frames);
    }

    #[test]
    fn concurrent_senders_never_share_a_position_or_a_wrong_key() {
        let (_map, slot) = send_chain();
        let frames = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let slot = slot.clone();
                let frames = &frames;
                scope.spawn(move || {
                    let mut tx = Encryptor::new(&start(), true);
                    for k in 0..500 {
                        let i = t * 1000 + k;
                        let (position, p) = send(&slot, &mut tx, i);
                        frames.lock().expect("not poisoned").push((position, i, p));
                    }
                });
            }
        });
        let frames = frames.into_inner().expect("not poisoned");
        let mut positions: Vec<u64> = frames.iter().map(|f| f.0).collect();
        positions.sort_unstable();
        assert_eq!(positions, (1..=2000).collect::<Vec<u64>>());
        peer_receives(frames);
    }
}
