//! Types shared by the pptp-xdp daemon (userspace, `user` feature) and its
//! eBPF programs (`no_std`).
//!
//! Everything here is plain data: wire constants ([`consts`]), the fixed
//! headers the XDP program reads in place ([`hdr`]) and the map key/value
//! types ([`maps`]), and the serial-number comparison of GRE sequence
//! numbers both sides use ([`serial`]), and word stores for the eBPF programs ([`mem`]). All structs are `#[repr(C)]` with explicit padding so
//! that the kernel and the daemon agree on every byte.
#![no_std]

pub mod consts;
pub mod hdr;
pub mod maps;
pub mod mem;
pub mod rate;
pub mod serial;
