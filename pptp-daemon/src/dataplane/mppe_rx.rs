//! The daemon's side of the MPPE receive key chain that the XDP program
//! follows (`PPTP_MPPE_RX`, [`MppeRx`]; the program's side is
//! `pptp-ebpf/src/mppe.rs`): a memory-mapped array of one entry per
//! session slot.
//!
//! A stateless MPPE session whose receive state is installed here has
//! most of its frames decrypted in the kernel; the frames it leaves to
//! userspace (far jumps, late frames, inner packets other than IPv4) reach
//! the session's userspace [`Decryptor`]. The two follow one chain:
//! before a frame, the decryptor continues from the kernel's head if that
//! is ahead ([`MppeRxSlot::sync`]); after it, the kernel continues from
//! the decryptor's if that is ahead ([`MppeRxSlot::publish`]), so a jump
//! that only userspace could follow does not leave every later frame in
//! userspace. Both sides move the head with the same compare-and-swap and
//! write keys with the same tagged protocol ([`MppeKeySlot`]).

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
    /// Keeps the map alive while mapped.
    _fd: OwnedFd,
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
            _fd: fd,
        })
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
        // SAFETY: unmapping exactly what `mmap` mapped.
        unsafe {
            libc::munmap(
                self.base.as_ptr().cast(),
                self.len * std::mem::size_of::<MppeRx>(),
            );
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

    /// Before `decryptor` takes a frame: continue from the kernel's head if
    /// it is ahead. Returns whether it moved.
    pub fn sync(&self, decryptor: &mut Decryptor) -> bool {
        match self.read_head() {
            Some((head, key)) => decryptor.resync(MppeRx::count_of(head), &key),
            None => false,
        }
    }

    /// After `decryptor` took a frame: move the kernel's head to the
    /// decryptor's count if that is ahead (within half the count space).
    /// Returns whether it moved.
    pub fn publish(&self, decryptor: &Decryptor) -> bool {
        if !decryptor.is_stateless() {
            return false;
        }
        let key = pad16(decryptor.session_key());
        let mut head = self.head().load(Ordering::SeqCst);
        for _ in 0..4 {
            let ahead =
                u64::from(decryptor.last_count().wrapping_sub(MppeRx::count_of(head)) & 0x0FFF);
            if ahead == 0 || ahead >= 2048 {
                return false;
            }
            let new = head + ahead;
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
