//! XDP data plane of pptp-xdp.
//!
//! `pptp_xdp` sits on the WAN interface. It classifies every frame, counts it
//! in `PPTP_STATS` and passes everything that is not an established
//! session's data frame up to the stack untouched (`XDP_PASS`), so the daemon
//! sees control connections, PPP negotiation and unknown calls exactly as if
//! the program were not there.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use network_types::{eth::EthHdr, ip::Ipv4Hdr, vlan::VlanHdr};
use pptp_common::{
    consts::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, GRE_PROTO_PPP, IPPROTO_GRE},
    hdr::GreHdr,
    maps::{MAX_SESSIONS, Session, SessionKey, Stat},
};

/// Global counters, one slot per [`Stat`].
#[map(name = "PPTP_STATS")]
static PPTP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

/// Established sessions, installed by the daemon when IPCP opens.
#[map(name = "PPTP_SESSIONS")]
static PPTP_SESSIONS: HashMap<SessionKey, Session> =
    HashMap::with_max_entries(MAX_SESSIONS, 0);

#[xdp]
pub fn pptp_xdp(ctx: XdpContext) -> u32 {
    let (stat, action) = classify(&ctx);
    count(Stat::Frames, 1);
    count(Stat::Bytes, (ctx.data_end() - ctx.data()) as u64);
    count(stat, 1);
    action
}

/// Adds `n` to this CPU's slot of counter `stat`.
#[inline(always)]
fn count(stat: Stat, n: u64) {
    if let Some(slot) = PPTP_STATS.get_ptr_mut(stat as u32) {
        // SAFETY: the pointer comes from the map and is valid for this CPU's
        // slot for the duration of the program; per-CPU slots have no other writer.
        unsafe { *slot += n };
    }
}

/// A pointer to a `T` at `offset` bytes into the frame, if the whole `T`
/// lies within it. Every packet access goes through here so the verifier
/// sees a bounds check before each one.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Decides what happens to a frame and which counter it falls under.
#[inline(always)]
fn classify(ctx: &XdpContext) -> (Stat, u32) {
    const PASS: u32 = xdp_action::XDP_PASS;

    // Ethernet, with at most one VLAN tag.
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return (Stat::NotIpv4, PASS);
    };
    // SAFETY: ptr_at checked that the header lies within the frame.
    let mut ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let mut l3 = EthHdr::LEN;
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let Some(vlan) = ptr_at::<VlanHdr>(ctx, l3) else {
            return (Stat::NotIpv4, PASS);
        };
        // SAFETY: bounds checked by ptr_at.
        ether_type = u16::from_be(unsafe { (*vlan).ether_type });
        l3 += VlanHdr::LEN;
    }
    if ether_type != ETH_P_IPV4 {
        return (Stat::NotIpv4, PASS);
    }

    // IPv4: options and fragments go up to the stack.
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) else {
        return (Stat::NotIpv4, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip.proto != IPPROTO_GRE {
        return (Stat::NotGre, PASS);
    }
    let frags = u16::from_be_bytes(ip.frags);
    // More-fragments flag or a fragment offset: a fragment.
    if ip.vihl != 0x45 || frags & 0x3FFF != 0 {
        return (Stat::Ipv4Unusual, PASS);
    }

    // Enhanced GRE (RFC 2637 section 4.1).
    let l4 = l3 + Ipv4Hdr::LEN;
    let Some(gre) = ptr_at::<GreHdr>(ctx, l4) else {
        return (Stat::GreTruncated, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let gre = unsafe { &*gre };
    if !gre.is_enhanced() || gre.protocol() != GRE_PROTO_PPP {
        return (Stat::GreNotPptp, PASS);
    }
    let payload = l4 + gre.header_len();
    if ctx.data() + payload + gre.payload_len() as usize > ctx.data_end() {
        return (Stat::GreTruncated, PASS);
    }

    let key = SessionKey::new(ip.src_addr, gre.call_id());
    if PPTP_SESSIONS.get_ptr(&key).is_none() {
        debug!(ctx, "GRE for unknown call {}", key.call_id);
        return (Stat::GreUnknownCall, PASS);
    }
    (Stat::GreToUserspace, PASS)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
