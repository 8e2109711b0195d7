//! Stores for the eBPF programs that stay stores. The BPF target has no
//! native `memset`/`memcpy`: an aggregate zeroing or copy that LLVM turns
//! into a call lands in the linker's byte-by-byte loops (a 64-byte
//! `bpf_fib_lookup` zeroed that way ran about 320 instructions per packet,
//! and each 6-byte MAC copy about 40). These helpers write words instead.

use core::mem::{align_of, size_of};

/// Fills `*p` with zeros, as 32-bit stores (volatile, so that LLVM does
/// not fold them back into a `memset` call), in place: no copy of the
/// value follows.
///
/// # Safety
/// `p` must be valid for writes of a `T`, and all-zero a valid `T`.
/// `T`'s size must be a multiple of 4 and its alignment at least 4
/// (checked at compile time).
#[inline(always)]
pub unsafe fn zero<T>(p: *mut T) {
    const {
        assert!(size_of::<T>().is_multiple_of(4) && align_of::<T>() >= 4);
    }
    let words = p.cast::<u32>();
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: `i` words into `*p`, aligned (checked above).
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Writes the Ethernet address `mac` at `p` (packet memory, any
/// alignment) as a 32-bit and a 16-bit store.
///
/// # Safety
/// `p` must be valid for writing 6 bytes.
#[inline(always)]
pub unsafe fn write_mac(p: *mut [u8; 6], mac: [u8; 6]) {
    let p = p.cast::<u8>();
    // SAFETY: 6 bytes from `p` are writable (the caller); unaligned stores.
    unsafe {
        p.cast::<u32>()
            .write_unaligned(u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]));
        p.add(4)
            .cast::<u16>()
            .write_unaligned(u16::from_ne_bytes([mac[4], mac[5]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_writes_every_word() {
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        struct S {
            a: u32,
            b: [u8; 8],
            c: u16,
            d: u16,
        }
        let mut s = S {
            a: 7,
            b: [7; 8],
            c: 7,
            d: 7,
        };
        // SAFETY: `s` is a valid place; all-zero is a valid S.
        unsafe { zero(&raw mut s) };
        assert_eq!(
            s,
            S {
                a: 0,
                b: [0; 8],
                c: 0,
                d: 0
            }
        );
    }

    #[test]
    fn write_mac_writes_six_bytes_in_order() {
        let mut frame = [0xAAu8; 9];
        // SAFETY: bytes 1..7 of `frame` are writable.
        unsafe { write_mac(frame.as_mut_ptr().add(1).cast(), [1, 2, 3, 4, 5, 6]) };
        assert_eq!(frame, [0xAA, 1, 2, 3, 4, 5, 6, 0xAA, 0xAA]);
    }
}
