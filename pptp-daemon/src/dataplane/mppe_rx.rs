//! The daemon's side of the MPPE receive key chain that the XDP program
//! follows (`PPTP_MPPE_RX`, [`MppeRx`]; the program's side is
//! `pptp-ebpf/src/mppe.rs`): a memory-mapped array of one entry per
//! session slot.
//!
//! A stateless MPPE session whose receive state is installed here has
//! most of its frames decrypted in the kernel; the frames it leaves to
//! userspace (far jumps, late frames, inner packets other than IPv4) reach
//! the session's userspace [`Decryptor`]. The two follow one chain, and
//! the kernel's head is its authority: before a frame, the decryptor
//! continues from the head ([`MppeRxSlot::sync`]); after a frame that
//! decrypted to something valid, the kernel continues from the decryptor's
//! position if that is ahead ([`MppeRxSlot::publish`]), so a jump that
//! only userspace could follow does not leave every later frame in
//! userspace, and a key change that decrypted garbage is never published
//! (the next sync undoes it). Both compare positions, which never wrap:
//! the kernel may have run any number of coherency counts ahead of what
//! userspace last saw. Both sides move the head with the same
//! compare-and-swap and write keys with the same tagged protocol
//! ([`MppeKeySlot`]).

use std::{
    os::fd::OwnedFd,
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::maps::MapData;
use pptp_common::maps::{MAX_SESSIONS, MPPE_RX_RING, MppeKeySlot, MppeRx};

use super::xdp::XdpError;
use crate::mppe::{
    cipher::Decryptor,
    keys::{KeySchedule, StartKey},
};

/// The mapping of `PPTP_MPPE_RX`.
pub struct MppeRxMap {
    base: NonNull<MppeRx>,
    len: usize,
    /// Keeps the map alive while mapped; `None` for process memory (tests).
    fd: Option<OwnedFd>,
}

// SAFETY: the shared words (head, tags) are accessed only through
// atomics; keys and parameters are written before the tags or the
// session flag that publish them.
unsafe impl Send for MppeRxMap {}
// SAFETY: as above.
unsafe impl Sync for MppeRxMap {}

impl MppeRxMap {
    pub(super) fn mmap(data: &MapData) -> Result<Self, XdpError> {
        let (base, fd) = super::xdp::mmap_sessions_array::<MppeRx>(data)?;
        Ok(Self {
            base,
            len: MAX_SESSIONS as usize,
            fd: Some(fd),
        })
    }

    /// `len` slots in process memory, for tests of the hand-off without a
    /// kernel program.
    #[cfg(test)]
    fn heap(len: usize) -> Self {
        let slots: Box<[MppeRx]> = vec![MppeRx::default(); len].into_boxed_slice();
        let base =
            NonNull::new(Box::into_raw(slots).cast::<MppeRx>()).expect("Box pointers are non-null");
        Self {
            base,
            len,
            fd: None,
        }
    }

    fn entry(&self, slot: u32) -> Result<*mut MppeRx, XdpError> {
        if slot as usize >= self.len {
            return Err(XdpError::BadSlot(slot));
        }
        // SAFETY: in bounds of the mapping.
        Ok(unsafe { self.base.as_ptr().add(slot as usize) })
    }

    /// Starts a slot's chain at the initial session key of `start` (RFC
    /// 3079 section 3: the server's MasterReceiveKey). Call it before the
    /// session's entry with `SESSION_F_MPPE_RX` is installed: the program
    /// reads the slot only for such a session.
    pub fn open(&self, slot: u32, start: &StartKey) -> Result<(), XdpError> {
        let entry = self.entry(slot)?;
        let initial = KeySchedule::new(start);
        let mut value = MppeRx {
            key_len: start.as_bytes().len() as u32,
            bits: u32::from(start.length().bits()),
            ..MppeRx::default()
        };
        value.start_key[..start.as_bytes().len()].copy_from_slice(start.as_bytes());
        value.ring[0] = MppeKeySlot {
            tag: 1,
            key: pad16(initial.session_key()),
        };
        // SAFETY: a valid entry; no program reads it yet (see above).
        unsafe { std::ptr::write_volatile(entry, value) };
        std::sync::atomic::fence(Ordering::SeqCst);
        Ok(())
    }

    /// Clears a slot (after its session's entries are gone): a later
    /// session in the slot starts from [`Self::open`].
    pub fn close(&self, slot: u32) -> Result<(), XdpError> {
        let entry = self.entry(slot)?;
        // SAFETY: a valid entry; the program refuses key_len 0.
        unsafe { std::ptr::write_volatile(entry, MppeRx::default()) };
        Ok(())
    }

    /// A handle on one slot for a session's userspace receiver.
    pub fn slot(self: &Arc<Self>, slot: u32) -> Result<MppeRxSlot, XdpError> {
        self.entry(slot)?;
        Ok(MppeRxSlot {
            map: self.clone(),
            slot,
        })
    }
}

impl Drop for MppeRxMap {
    fn drop(&mut self) {
        if self.fd.is_some() {
            // SAFETY: unmapping exactly what `mmap` mapped.
            unsafe {
                libc::munmap(
                    self.base.as_ptr().cast(),
                    self.len * std::mem::size_of::<MppeRx>(),
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

/// One session's entry of the [`MppeRxMap`], for its userspace receiver.
#[derive(Clone)]
pub struct MppeRxSlot {
    map: Arc<MppeRxMap>,
    slot: u32,
}

impl std::fmt::Debug for MppeRxSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MppeRxSlot")
            .field("slot", &self.slot)
            .finish()
    }
}

impl MppeRxSlot {
    fn entry(&self) -> *mut MppeRx {
        // SAFETY: the slot was checked in bounds by `MppeRxMap::slot`.
        unsafe { self.map.base.as_ptr().add(self.slot as usize) }
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: an aligned u64 inside the live mapping, only accessed
        // atomically (here and in the program).
        unsafe { AtomicU64::from_ptr(&raw mut (*self.entry()).head) }
    }

    fn tag(&self, position: u64) -> (&AtomicU64, *mut [u8; 16]) {
        let ring = position as usize % MPPE_RX_RING;
        // SAFETY: as for `head`; the key is read and written between the
        // tag accesses of the seqlock protocol.
        unsafe {
            let slot = &raw mut (*self.entry()).ring[ring];
            (
                AtomicU64::from_ptr(&raw mut (*slot).tag),
                &raw mut (*slot).key,
            )
        }
    }

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

    /// The kernel's head: its position and key, if the key could be read
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
        if !decryptor.is_stateless() {
            return false;
        }
        let key = pad16(decryptor.session_key());
        let new = decryptor.position();
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

fn pad16(key: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = key.len().min(16);
    out[..n].copy_from_slice(&key[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mppe::{KeyLength, cipher::Encryptor};

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
}
