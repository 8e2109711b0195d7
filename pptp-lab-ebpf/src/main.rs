//! XDP programs of the pptp-xdp lab and bench (never in the daemon's
//! object, see pptp-ebpf for the production data plane):
//!
//! - `pptp_xdp_pass` on the far ends of the lab's veth pairs;
//! - `pptp_xdp_sink`, the bench's counting sink;
//! - `pptp_xdp_route`, plain IPv4 routing in XDP, the bench's ceiling;
//! - `pptp_xdp_relay`, which hands a generator's frames to another veth
//!   as XDP frames (the guest comparison's generator side).
//!
//! Every packet access goes through the bounds-checked [`ptr_at`].
//!
//! Built for the BPF target; on the host it only type-checks (so that
//! `cargo clippy --workspace` covers it), with an empty `main`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::mem::size_of;

use aya_ebpf::{
    Global,
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{bpf_fib_lookup, bpf_redirect},
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use pptp_common::consts::ETH_P_IPV4;

const PASS: u32 = xdp_action::XDP_PASS;
const AF_INET: u8 = 2;

/// Passes every frame. Attached to the far end of a veth pair, it lets the
/// kernel deliver frames that `pptp_xdp` redirects into that veth
/// (a veth accepts redirected frames only when its peer runs XDP).
#[xdp]
pub fn pptp_xdp_pass(_ctx: XdpContext) -> u32 {
    PASS
}

/// The interface [`pptp_xdp_relay`] redirects to, set at load time
/// (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static RELAY_IFINDEX: Global<u32> = Global::new(0);

/// Redirects every frame to [`RELAY_IFINDEX`]. On the receiving end of a
/// generator's veth pair, with the generator's other veth as the target,
/// it makes that veth's peer receive the frames as XDP frames, as a NIC
/// driver hands them over: an XDP program there runs on them in place,
/// and the stack builds its socket buffer around them. A generator's own
/// socket buffers (AF_PACKET) would instead arrive with too little
/// headroom, and veth would copy each into a new page before its XDP
/// program runs, a cost no NIC has.
#[xdp]
pub fn pptp_xdp_relay(_ctx: XdpContext) -> u32 {
    // SAFETY: plain helper call.
    unsafe { bpf_redirect(RELAY_IFINDEX.load(), 0) as u32 }
}

/// Packets and bytes seen by [`pptp_xdp_sink`], per CPU: slot 0 packets,
/// slot 1 bytes.
#[map(name = "PPTP_SINK")]
static PPTP_SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Benchmark sink: counts every frame and drops it, so the receiving host
/// spends nothing on what the bench delivers to it.
#[xdp]
pub fn pptp_xdp_sink(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    for (slot, n) in [(0u32, 1u64), (1, len)] {
        if let Some(p) = PPTP_SINK.get_ptr_mut(slot) {
            // SAFETY: per-CPU map value, no other writer.
            unsafe { *p += n };
        }
    }
    xdp_action::XDP_DROP
}

/// Benchmark ceiling: plain IPv4 routing in XDP (FIB lookup, TTL, redirect)
/// with nothing of PPTP, to compare the fast path with the physical limit
/// of the same links.
#[xdp]
pub fn pptp_xdp_route(ctx: XdpContext) -> u32 {
    route(&ctx).unwrap_or(PASS)
}

#[inline(always)]
fn route(ctx: &XdpContext) -> Option<u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    if u16::from_be(unsafe { (*eth).ether_type }) != ETH_P_IPV4 {
        return None;
    }
    let ip = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: bounds checked by ptr_at.
    let hdr = unsafe { *ip };
    if hdr.ttl <= 1 {
        return None; // the stack sends Time Exceeded
    }
    let mut fib = core::mem::MaybeUninit::<FibParams>::uninit();
    // SAFETY: FibParams is plain data; all-zero is a valid value.
    let fib = unsafe {
        pptp_common::mem::zero(fib.as_mut_ptr());
        fib.assume_init_mut()
    };
    fib.family = AF_INET;
    fib.l4_protocol = hdr.proto;
    fib.__bindgen_anon_1.tot_len = u16::from_be_bytes(hdr.tot_len);
    fib.ifindex = ctx.ingress_ifindex() as u32;
    fib.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(hdr.src_addr);
    fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(hdr.dst_addr);
    // SAFETY: fib is a valid bpf_fib_lookup of the size given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            &raw mut *fib,
            size_of::<FibParams>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return None;
    }
    // SAFETY: bounds checked by ptr_at; TTL decrement with the incremental
    // checksum update of RFC 1624 (the TTL is the high byte of its word).
    unsafe {
        (*ip).ttl -= 1;
        let sum = u32::from(u16::from_be_bytes((*ip).check)) + 0x0100;
        (*ip).check = (((sum + (sum >> 16)) & 0xFFFF) as u16).to_be_bytes();
        pptp_common::mem::write_mac(&raw mut (*eth).dst_addr, fib.dmac);
        pptp_common::mem::write_mac(&raw mut (*eth).src_addr, fib.smac);
    }
    if fib.ifindex as usize == ctx.ingress_ifindex() {
        return Some(xdp_action::XDP_TX);
    }
    // SAFETY: plain helper call.
    Some(unsafe { bpf_redirect(fib.ifindex, 0) } as u32)
}

/// A pointer to a `T` at `offset` bytes into the frame, if the whole `T`
/// lies within it.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
