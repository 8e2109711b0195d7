//! XDP data plane of pptp-xdp.
//!
//! `pptp_xdp` runs on the WAN interface (and on LAN interfaces, where only
//! its encapsulation half has work). For every frame it decides:
//!
//! - enhanced GRE (RFC 2637 section 4.1) from a session's peer carrying
//!   PPP/IPv4 (RFC 1661, RFC 1332), on a session installed for the fast
//!   path: strip outer IPv4, GRE and PPP, check the inner source against
//!   the client's address, record the sequence number for the next ack,
//!   then forward the inner packet (FIB lookup and redirect) or pass it to
//!   the stack where the FIB says the stack must handle it; an inner packet
//!   for another client is encapsulated again directly;
//! - IPv4 addressed to a client whose session is on the fast path:
//!   prepend PPP, GRE (next sequence number from the shared counter, latest
//!   ack) and outer IPv4, then redirect towards the peer;
//! - enhanced GRE that the fast path does not take (LCP, IPCP, CCP,
//!   authentication, MPPE frames, ack-only frames, sessions off the fast
//!   path): dropped unless `PPTP_CALLS` holds its (source address, call
//!   ID), then admitted to the daemon by that call's buckets, control
//!   frames by their own so that a data flood cannot starve them;
//! - everything else (control connection, fragments, other GRE, anything
//!   malformed) goes up untouched with `XDP_PASS`.
//!
//! That is `forwarding = "xdp"`. Under `forwarding = "stack"` the work is
//! split so that the stack routes and filters every packet:
//! `pptp_xdp_stack` on the WAN interface decapsulates the same way but
//! injects the inner packet into the tunnel device (a veth pair,
//! `PPTP_TUNNEL`), so the stack receives it on the tunnel device, and never
//! encapsulates; `pptp_xdp_tunnel` on the pair's other end encapsulates
//! what the stack sent out of the tunnel device (routed, filtered, NATed,
//! its TTL already decremented) for fast-path clients. (The tunnel device
//! takes redirected frames with NAPI on, which the daemon turns on with
//! GRO rather than with a program: a veth running XDP copies every packet
//! the stack hands it.)
//!
//! A session's data over its rate limit (a token bucket in each map entry,
//! `pptp_common::rate`) is dropped, in both directions.
//!
//! One CPU sends each session's frames (`SESSION_F_STEER`): a frame for a
//! client that arrives on another CPU (another NIC queue under `xdp`
//! forwarding, another of the tunnel pair's queues under `stack`) goes,
//! untouched, through the CPU map `PPTP_CPUS` to that CPU, where
//! `pptp_xdp_cpu` (or `pptp_xdp_cpu_tunnel`) encapsulates it, so sequence
//! numbers and MPPE counts leave in the order they were taken
//! ([`steer`]).
//!
//! Every packet access goes through a bounds-checked helper; every frame is
//! counted once in `PPTP_STATS`.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so `AtomicU64::fetch_add` does not
// exist; the intrinsic lowers to the BPF atomic fetch-and-add instruction.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::{
    intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd},
    mem::size_of,
};

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{
        bpf_fib_lookup, bpf_get_smp_processor_id, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns,
        bpf_redirect, bpf_xdp_adjust_head,
    },
    macros::{map, xdp},
    maps::{Array, CpuMap, HashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use network_types::{eth::EthHdr, ip::Ipv4Hdr, vlan::VlanHdr};
mod mppe;

use pptp_common::{
    consts::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, GRE_PROTO_PPP, IPPROTO_GRE, PPP_ADDRESS,
        PPP_CONTROL, gre_flags, ppp_proto,
    },
    hdr::GreHdr,
    maps::{
        CALL_F_DATA, CallEntry, ClientKey, MAX_SESSIONS, MAX_VLANS, NEXT_HOP_TTL_NS, NextHop,
        SESSION_F_ACFC, SESSION_F_DECAP, SESSION_F_ENCAP, SESSION_F_MPPE_RX, SESSION_F_MPPE_TX,
        SESSION_F_MSS_CLAMP, SESSION_F_PFC, SESSION_F_STEER, SeqState, Session, SessionCounters,
        SessionKey, Stat, TunnelConf, VlanLink,
    },
    mem::{write_mac, zero},
    rate, serial,
};

/// Global counters, one slot per [`Stat`].
#[map(name = "PPTP_STATS")]
static PPTP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

/// Sessions by (peer address, our call ID), for decapsulation.
#[map(name = "PPTP_SESSIONS")]
static PPTP_SESSIONS: HashMap<SessionKey, Session> = HashMap::with_max_entries(MAX_SESSIONS, 0);

/// Sessions by the client's inner address, for encapsulation.
#[map(name = "PPTP_CLIENTS")]
static PPTP_CLIENTS: HashMap<ClientKey, Session> = HashMap::with_max_entries(MAX_SESSIONS, 0);

/// GRE sequence state per session slot, memory-mapped by the daemon.
#[map(name = "PPTP_SEQ")]
static PPTP_SEQ: Array<SeqState> = Array::with_max_entries(MAX_SESSIONS, BPF_F_MMAPABLE);

/// Every call the daemon holds, by (peer address, our call ID), with its
/// admission buckets towards userspace.
#[map(name = "PPTP_CALLS")]
static PPTP_CALLS: HashMap<SessionKey, CallEntry> = HashMap::with_max_entries(MAX_SESSIONS, 0);

/// The tunnel device of `stack` forwarding (one entry, set by the daemon).
#[map(name = "PPTP_TUNNEL")]
static PPTP_TUNNEL: Array<TunnelConf> = Array::with_max_entries(1, 0);

/// VLAN devices a FIB lookup may name as the way out, by interface index
/// (set by the daemon): [`send`] tags the frame and redirects it to the
/// lower device.
#[map(name = "PPTP_VLANS")]
static PPTP_VLANS: HashMap<u32, VlanLink> = HashMap::with_max_entries(MAX_VLANS, 0);

/// Traffic counters per session slot.
#[map(name = "PPTP_COUNTERS")]
static PPTP_COUNTERS: PerCpuArray<SessionCounters> = PerCpuArray::with_max_entries(MAX_SESSIONS, 0);

/// The next hop towards each session's peer, per CPU ([`next_hop`]).
#[map(name = "PPTP_NEXT_HOP")]
static PPTP_NEXT_HOP: PerCpuArray<NextHop> = PerCpuArray::with_max_entries(MAX_SESSIONS, 0);

/// A queue to each online CPU, set by the daemon, running `pptp_xdp_cpu`
/// (`pptp_xdp_cpu_tunnel` under `stack` forwarding) there ([`steer`]).
/// The daemon sizes it to the possible CPUs when it loads the object.
#[map(name = "PPTP_CPUS")]
static PPTP_CPUS: CpuMap = CpuMap::with_max_entries(1, 0);

const PASS: u32 = xdp_action::XDP_PASS;
const DROP: u32 = xdp_action::XDP_DROP;
const TX: u32 = xdp_action::XDP_TX;
const ETH_LEN: usize = EthHdr::LEN;
const IP_LEN: usize = Ipv4Hdr::LEN;
const AF_INET: u8 = 2;
const IPPROTO_TCP: u8 = 6;
/// TCP SYN flag.
const TCP_SYN: u8 = 0x02;
/// TTL of the outer IPv4 header we send.
const OUTER_TTL: u8 = 64;

/// Where a program runs, which decides what it does with a frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `forwarding = "xdp"`: WAN and LAN interfaces, routing by FIB lookup.
    Route,
    /// `forwarding = "stack"`, WAN interface: decapsulate into the tunnel
    /// device, never encapsulate.
    Stack,
    /// `forwarding = "stack"`, the tunnel pair's inject end: encapsulate
    /// what the stack routed out of the tunnel device.
    Tunnel,
}

/// Whether a run is the one on the CPU that sends the frame's session
/// ([`SESSION_F_STEER`]): a CPU map's program, which takes only frames
/// for clients and sends them where it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cpu {
    /// Wherever the frame arrived: it may be steered.
    Arrival,
    /// On its session's sending CPU, through the CPU map.
    Sending,
}

#[xdp]
pub fn pptp_xdp(ctx: XdpContext) -> u32 {
    run(&ctx, Role::Route, Cpu::Arrival)
}

#[xdp]
pub fn pptp_xdp_stack(ctx: XdpContext) -> u32 {
    run(&ctx, Role::Stack, Cpu::Arrival)
}

#[xdp]
pub fn pptp_xdp_tunnel(ctx: XdpContext) -> u32 {
    run(&ctx, Role::Tunnel, Cpu::Arrival)
}

#[xdp(map = "cpumap")]
pub fn pptp_xdp_cpu(ctx: XdpContext) -> u32 {
    run(&ctx, Role::Route, Cpu::Sending)
}

#[xdp(map = "cpumap")]
pub fn pptp_xdp_cpu_tunnel(ctx: XdpContext) -> u32 {
    run(&ctx, Role::Tunnel, Cpu::Sending)
}

/// Processes one frame in `role` and counts it.
#[inline(always)]
fn run(ctx: &XdpContext, role: Role, cpu: Cpu) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (stat, action) = if cpu == Cpu::Sending {
        count(Stat::SteeredTaken, 1);
        process_steered(ctx, role)
    } else {
        process(ctx, role)
    };
    count(Stat::Frames, 1);
    count(Stat::Bytes, len);
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
/// lies within it. Every packet access goes through here so the verifier sees a bounds check before each one.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Writes `value` at `offset`, if within the frame.
#[inline(always)]
fn store<T>(ctx: &XdpContext, offset: usize, value: T) -> Option<()> {
    let p = ptr_at::<T>(ctx, offset)?;
    // SAFETY: ptr_at checked the bounds; packet memory has no alignment
    // guarantee, hence the unaligned write.
    unsafe { p.write_unaligned(value) };
    Some(())
}

/// One's-complement sum of 16-bit big-endian words, folded.
#[inline(always)]
fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    !(sum as u16)
}

/// The IPv4 header after Ethernet (with at most one VLAN tag) and its
/// offset; `None` for anything else.
#[inline(always)]
fn ipv4_at(ctx: &XdpContext) -> Option<(usize, Ipv4Hdr)> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked that the header lies within the frame.
    let mut ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let mut l3 = ETH_LEN;
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let vlan = ptr_at::<VlanHdr>(ctx, l3)?;
        // SAFETY: bounds checked by ptr_at.
        ether_type = u16::from_be(unsafe { (*vlan).ether_type });
        l3 += VlanHdr::LEN;
    }
    if ether_type != ETH_P_IPV4 {
        return None;
    }
    let ip = ptr_at::<Ipv4Hdr>(ctx, l3)?;
    // SAFETY: bounds checked by ptr_at.
    Some((l3, unsafe { *ip }))
}

/// Whether an IPv4 header has options or belongs to a fragment: such
/// packets go up to the stack.
#[inline(always)]
fn is_unusual(ip: &Ipv4Hdr) -> bool {
    ip.vihl != 0x45 || u16::from_be_bytes(ip.frags) & 0x3FFF != 0
}

/// Decides what happens to a frame and which counter it falls under.
#[inline(always)]
fn process(ctx: &XdpContext, role: Role) -> (Stat, u32) {
    let Some((l3, ip)) = ipv4_at(ctx) else {
        return (Stat::NotIpv4, PASS);
    };
    let unusual = is_unusual(&ip);
    if role == Role::Tunnel {
        // What the stack routed out of the tunnel device: for a client, or
        // nothing of ours. Options and fragments take the userspace path.
        let key = ClientKey {
            client_addr: ip.dst_addr,
        };
        return match PPTP_CLIENTS.get_ptr_mut(&key) {
            None => (Stat::NotGre, PASS),
            Some(_) if unusual || l3 != ETH_LEN => (Stat::Ipv4Unusual, PASS),
            Some(session) => encapsulate(ctx, l3, session, role, Cpu::Arrival),
        };
    }
    if ip.proto == IPPROTO_GRE {
        if unusual {
            return (Stat::Ipv4Unusual, PASS);
        }
        let (stat, action) = decapsulate(ctx, l3, &ip, role);
        // What the fast path leaves to userspace must belong to a known
        // call and fit its buckets. (A frame the fast path already moved
        // or dropped is never looked at again.)
        if action == PASS
            && (stat == Stat::GreToUserspace
                || stat == Stat::GreUnknownCall
                || stat == Stat::GreTruncated)
        {
            return admit_to_userspace(ctx, l3 + IP_LEN, ip.src_addr, stat);
        }
        return (stat, action);
    }
    // Under `stack` forwarding only what the stack routes out of the
    // tunnel device is encapsulated.
    if role == Role::Stack {
        return (Stat::NotGre, PASS);
    }
    let key = ClientKey {
        client_addr: ip.dst_addr,
    };
    let Some(session) = PPTP_CLIENTS.get_ptr_mut(&key) else {
        return (Stat::NotGre, PASS);
    };
    if unusual {
        return (Stat::Ipv4Unusual, PASS);
    }
    encapsulate(ctx, l3, session, role, Cpu::Arrival)
}

/// A frame that a program in `role` ([`Role::Route`] or [`Role::Tunnel`])
/// on another CPU steered here ([`steer`]): IPv4 for a client,
/// encapsulated and sent from this CPU. Anything else (the session gone
/// meanwhile, for one) goes to the stack as it would have where it
/// arrived.
#[inline(always)]
fn process_steered(ctx: &XdpContext, role: Role) -> (Stat, u32) {
    let Some((l3, ip)) = ipv4_at(ctx) else {
        return (Stat::NotIpv4, PASS);
    };
    let key = ClientKey {
        client_addr: ip.dst_addr,
    };
    let Some(session) = PPTP_CLIENTS.get_ptr_mut(&key) else {
        return (Stat::NotGre, PASS);
    };
    if is_unusual(&ip) || (role == Role::Tunnel && l3 != ETH_LEN) {
        return (Stat::Ipv4Unusual, PASS);
    }
    encapsulate(ctx, l3, session, role, Cpu::Sending)
}

/// Enhanced GRE from a peer: decapsulates a session's IPv4 data frame.
#[inline(always)]
fn decapsulate(ctx: &XdpContext, l3: usize, ip: &Ipv4Hdr, role: Role) -> (Stat, u32) {
    let l4 = l3 + IP_LEN;
    let Some(gre) = ptr_at::<GreHdr>(ctx, l4) else {
        return (Stat::GreTruncated, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let gre = unsafe { *gre };
    if !gre.is_enhanced() || gre.protocol() != GRE_PROTO_PPP {
        return (Stat::GreNotPptp, PASS);
    }
    let gre_len = gre.header_len();
    let payload_len = gre.payload_len() as usize;
    // The sequence number, read before any check that the compiler could
    // use to prove this access in bounds in a way the verifier cannot follow.
    let seq = if gre.has_seq() {
        match ptr_at::<[u8; 4]>(ctx, l4 + GreHdr::LEN) {
            // SAFETY: bounds checked by ptr_at.
            Some(p) => Some(u32::from_be_bytes(unsafe { *p })),
            None => return (Stat::GreTruncated, PASS),
        }
    } else {
        None
    };
    let ppp = l4 + gre_len;
    let ip_end = l3 + be16_len(ip.tot_len);
    if ppp + payload_len > ip_end || ctx.data() + ip_end > ctx.data_end() {
        return (Stat::GreTruncated, PASS);
    }

    let key = SessionKey::new(ip.src_addr, gre.call_id());
    let Some(entry) = PPTP_SESSIONS.get_ptr_mut(&key) else {
        return (Stat::GreUnknownCall, PASS);
    };
    // SAFETY: a map value pointer stays valid for the whole program run.
    let session = unsafe { *entry };
    // Ack-only frames, frames without a sequence number and sessions off
    // the fast path are the daemon's.
    let Some(seq) = seq else {
        return (Stat::GreToUserspace, PASS);
    };
    if session.flags & SESSION_F_DECAP == 0 || payload_len == 0 {
        return (Stat::GreToUserspace, PASS);
    }

    // PPP: address and control may be compressed (ACFC), the protocol
    // field may be one byte (PFC). Accept every form whatever was
    // negotiated. An IPv4 data frame is at least 21 bytes, so reading four
    // bytes is safe for every frame worth decapsulating.
    let Some(hdr) = ptr_at::<[u8; 4]>(ctx, ppp) else {
        return (Stat::GreTruncated, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { *hdr };
    let (protocol, ppp_len) = if h[0] == PPP_ADDRESS && h[1] == PPP_CONTROL {
        if h[2] & 1 == 1 {
            (u16::from(h[2]), 3)
        } else {
            (u16::from_be_bytes([h[2], h[3]]), 4)
        }
    } else if h[0] & 1 == 1 {
        (u16::from(h[0]), 1)
    } else {
        (u16::from_be_bytes([h[0], h[1]]), 2)
    };
    let mut inner = ppp + ppp_len;
    // Stateless MPPE: decrypted in place, then a clear frame (mppe.rs).
    // (Under `stack` forwarding only once the tunnel device is known: a
    // decrypted frame cannot go back to userspace.)
    if protocol == ppp_proto::COMPRESSED && session.flags & SESSION_F_MPPE_RX != 0 {
        let ready = role != Role::Stack
            || PPTP_TUNNEL
                .get(0)
                .is_some_and(|conf| conf.inject_ifindex != 0);
        let verdict = if ready {
            // How many frames the peer sent since the newest one accepted:
            // the evidence of a count jump.
            let sent = PPTP_SEQ.get(session.slot).map_or(0, |state| {
                if state.rx_valid == 0 {
                    0
                } else {
                    seq.wrapping_sub(state.rx_highest)
                }
            });
            mppe::decrypt(ctx, &session, (inner, ppp + payload_len), sent)
        } else {
            mppe::Verdict::ToUserspace
        };
        match verdict {
            mppe::Verdict::Decrypted(at, prepared) => {
                count(Stat::MppeDecrypted, 1);
                if prepared {
                    count(Stat::MppeRxPrepared, 1);
                }
                inner = at;
            }
            mppe::Verdict::ToUserspace => {
                count(Stat::MppeToUserspace, 1);
                return (Stat::GreToUserspace, PASS);
            }
        }
    } else if protocol != ppp_proto::IPV4 {
        return (Stat::GreToUserspace, PASS);
    }
    let Some(inner_ip) = ptr_at::<Ipv4Hdr>(ctx, inner) else {
        return (Stat::GreTruncated, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let inner_ip = unsafe { *inner_ip };
    let inner_len = u16::from_be_bytes(inner_ip.tot_len) as usize;
    if inner_ip.vihl >> 4 != 4 || inner_len < IP_LEN || inner + inner_len > ppp + payload_len {
        return (Stat::GreToUserspace, PASS);
    }
    if inner_ip.src_addr != session.client_addr {
        debug!(
            ctx,
            "call {}: inner source {:i} is not the client's",
            session.call_id,
            u32::from_be_bytes(inner_ip.src_addr)
        );
        return (Stat::GreSpoofed, DROP);
    }
    if session.flags & SESSION_F_MSS_CLAMP != 0 && is_tcp_syn(ctx, inner, &inner_ip) {
        return (Stat::GreToUserspace, PASS);
    }

    // Over the client's rate: dropped, before anything is recorded.
    // SAFETY: map value pointer, valid for the program run.
    if !within_rate(
        unsafe { &raw mut (*entry).rate_tat },
        session.rate_up_kbps,
        session.rate_burst_ns,
        inner_len,
    ) {
        return (Stat::RateLimitedDecap, DROP);
    }

    // Accepted: record the sequence number for our next ack, count.
    if let Some(state) = PPTP_SEQ.get_ptr_mut(session.slot) {
        // SAFETY: map value pointer, valid for the program run. Racing
        // writers on other CPUs can only make the ack slightly older.
        unsafe {
            if (*state).rx_valid == 0 || serial::seq_gt(seq, (*state).rx_highest) {
                (*state).rx_highest = seq;
                (*state).rx_valid = 1;
            }
        }
    }
    if let Some(c) = PPTP_COUNTERS.get_ptr_mut(session.slot) {
        // SAFETY: per-CPU map value, no other writer.
        unsafe {
            (*c).rx_packets += 1;
            (*c).rx_bytes += inner_len as u64;
        }
    }

    // Under `stack` forwarding, the tunnel device must be known before
    // anything moves.
    let tunnel = if role == Role::Stack {
        match PPTP_TUNNEL.get(0) {
            Some(conf) if conf.inject_ifindex != 0 => Some(*conf),
            _ => return (Stat::GreToUserspace, PASS),
        }
    } else {
        None
    };

    // Strip everything between the Ethernet header and the inner packet,
    // keeping the Ethernet addresses.
    // SAFETY: bounds checked by ptr_at at the top of `process`.
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return (Stat::NotIpv4, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let (dst_mac, src_mac) = unsafe { ((*eth).dst_addr, (*eth).src_addr) };
    let strip = inner - ETH_LEN;
    // SAFETY: the context pointer is the program's own.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, strip as i32) } != 0 {
        return (Stat::GreToUserspace, PASS);
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return (Stat::GreToUserspace, DROP);
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        write_mac(&raw mut (*eth).dst_addr, dst_mac);
        write_mac(&raw mut (*eth).src_addr, src_mac);
        (*eth).ether_type = ETH_P_IPV4.to_be();
    }

    // Into the tunnel device: the stack receives it there, as from the
    // client, and routes, filters and NATs it (another client's packet
    // included: it comes back out of the tunnel device).
    if let Some(conf) = tunnel {
        // SAFETY: bounds checked by ptr_at above.
        unsafe {
            write_mac(&raw mut (*eth).dst_addr, conf.tunnel_mac);
            write_mac(&raw mut (*eth).src_addr, conf.inject_mac);
        }
        // SAFETY: plain helper call.
        return (
            Stat::GreDecapsulated,
            unsafe { bpf_redirect(conf.inject_ifindex, 0) } as u32,
        );
    }

    // A packet for another client goes straight back into its tunnel.
    let key = ClientKey {
        client_addr: inner_ip.dst_addr,
    };
    if let Some(other) = PPTP_CLIENTS.get_ptr_mut(&key) {
        let (stat, action) = encapsulate(ctx, ETH_LEN, other, role, Cpu::Arrival);
        return if stat == Stat::Encapsulated
            || stat == Stat::RateLimitedEncap
            || stat == Stat::EncapSteered
        {
            (stat, action)
        } else {
            (Stat::GreDecapPassed, PASS)
        };
    }
    match forward(ctx, inner_ip.src_addr, inner_ip.dst_addr, inner_len as u16) {
        Some(action) => (Stat::GreDecapsulated, action),
        None => (Stat::GreDecapPassed, PASS),
    }
}

/// Enhanced GRE at `l4` from `peer` that is bound for the daemon: dropped
/// when `PPTP_CALLS` does not hold (peer, call ID); else control frames
/// (LCP, PAP, CHAP, IPCP, CCP, ack-only) take the call's control bucket
/// and everything else (IPv4, MPPE, anything unknown) its data bucket,
/// once the call's network is up (before, data is dropped).
/// An admitted frame is counted under `passed` (truncated frames stay
/// truncated ones), unknown calls under [`Stat::GreUnknownCall`].
#[inline(always)]
fn admit_to_userspace(ctx: &XdpContext, l4: usize, peer: [u8; 4], passed: Stat) -> (Stat, u32) {
    let Some(gre) = ptr_at::<GreHdr>(ctx, l4) else {
        return (Stat::GreTruncated, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let gre = unsafe { *gre };
    let key = SessionKey::new(peer, gre.call_id());
    let Some(entry) = PPTP_CALLS.get_ptr_mut(&key) else {
        return (Stat::GreUnknownCall, DROP);
    };
    let control = gre.payload_len() == 0 || is_control(ctx, l4 + gre.header_len());
    // SAFETY: a map value pointer stays valid for the whole program run.
    if !control && unsafe { (*entry).flags } & CALL_F_DATA == 0 {
        return (Stat::UserspaceDataLimited, DROP);
    }
    // SAFETY: as above; the buckets are only accessed atomically.
    let (tat, interval, tolerance, over) = unsafe {
        if control {
            (
                &raw mut (*entry).control_tat,
                (*entry).control_interval_ns,
                (*entry).control_tolerance_ns,
                Stat::UserspaceControlLimited,
            )
        } else {
            (
                &raw mut (*entry).data_tat,
                (*entry).data_interval_ns,
                (*entry).data_tolerance_ns,
                Stat::UserspaceDataLimited,
            )
        }
    };
    if interval != 0 && !take(tat, u64::from(interval), tolerance) {
        return (over, DROP);
    }
    let passed = if passed == Stat::GreUnknownCall {
        Stat::GreToUserspace
    } else {
        passed
    };
    (passed, PASS)
}

/// Whether the PPP frame at `ppp` is a control protocol's (LCP, PAP, CHAP,
/// IPCP, CCP). Address and control may be compressed; a control protocol's
/// number is never compressed to one byte (RFC 1661 section 6.5), and
/// every control packet has at least four bytes (its code, identifier and
/// length), so a frame without four readable bytes is not one.
#[inline(always)]
fn is_control(ctx: &XdpContext, ppp: usize) -> bool {
    let Some(hdr) = ptr_at::<[u8; 4]>(ctx, ppp) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { *hdr };
    let protocol = if h[0] == PPP_ADDRESS && h[1] == PPP_CONTROL {
        u16::from_be_bytes([h[2], h[3]])
    } else {
        u16::from_be_bytes([h[0], h[1]])
    };
    matches!(
        protocol,
        ppp_proto::LCP | ppp_proto::PAP | ppp_proto::CHAP | ppp_proto::IPCP | ppp_proto::CCP
    )
}

/// Whether the IPv4 packet at `l3` is a TCP segment with SYN set.
#[inline(always)]
fn is_tcp_syn(ctx: &XdpContext, l3: usize, ip: &Ipv4Hdr) -> bool {
    if ip.proto != IPPROTO_TCP {
        return false;
    }
    let ihl = ((ip.vihl & 0x0F) as usize) * 4;
    // TCP flags are byte 13 of the TCP header.
    let Some(tcp) = ptr_at::<[u8; 14]>(ctx, l3 + (ihl & 0x3C)) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe { (*tcp)[13] & TCP_SYN != 0 }
}

/// Looks up the route for an IPv4 packet that starts right after the
/// Ethernet header; on success decrements its TTL, rewrites the Ethernet
/// addresses and returns the action that sends it (TX back out of the same
/// interface, or a redirect). `None`: the stack must handle it.
#[inline(always)]
fn forward(ctx: &XdpContext, src: [u8; 4], dst: [u8; 4], tot_len: u16) -> Option<u32> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN)?;
    // SAFETY: bounds checked by ptr_at.
    if unsafe { (*ip).ttl } <= 1 {
        return None; // the stack sends Time Exceeded
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    let fib = fib_lookup(ctx, ifindex, src, dst, tot_len, unsafe { (*ip).proto })?;
    // SAFETY: bounds checked by ptr_at; decrement TTL with the incremental
    // checksum update of RFC 1624 (the TTL is the high byte of its word).
    unsafe {
        (*ip).ttl -= 1;
        let sum = u32::from(u16::from_be_bytes((*ip).check)) + 0x0100;
        (*ip).check = (((sum + (sum >> 16)) & 0xFFFF) as u16).to_be_bytes();
    }
    send(ctx, &fib, Cpu::Arrival)
}

/// Where a frame goes: the interface and the Ethernet addresses.
struct Hop {
    ifindex: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
}

/// The next hop towards `peer` from `local`, looked up as from `ifindex`:
/// this CPU's cached FIB result for the session slot while it is younger
/// than [`NEXT_HOP_TTL_NS`] and was looked up for the same inputs, else a
/// FIB lookup, cached. `None` when the FIB does not resolve it (the stack
/// must, by ARP for example).
#[inline(always)]
fn next_hop(
    ctx: &XdpContext,
    slot: u32,
    ifindex: u32,
    local: [u8; 4],
    peer: [u8; 4],
) -> Option<Hop> {
    // The coarse clock (the monotonic clock as of the last tick): a
    // 10 ms lifetime needs no finer one, and it reads no clock source.
    // bpf_ktime_get_ns does, per packet: some 20 ns on a TSC, far more on
    // an HPET or a hypervisor's clock (under the guest's TCG, an emulated
    // HPET read of several µs; docs/design.md).
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let cached = PPTP_NEXT_HOP.get_ptr_mut(slot);
    if let Some(c) = cached {
        // SAFETY: this CPU's slot of a per-CPU map, valid for the program
        // run, with no other writer.
        let c = unsafe { &*c };
        if c.expires_ns > now && c.in_ifindex == ifindex && c.local == local && c.peer == peer {
            return Some(Hop {
                ifindex: c.out_ifindex,
                smac: c.smac,
                dmac: c.dmac,
            });
        }
    }
    let fib = fib_lookup(ctx, ifindex, local, peer, 0, IPPROTO_GRE)?;
    if let Some(c) = cached {
        // SAFETY: as above.
        unsafe {
            *c = NextHop {
                expires_ns: now + NEXT_HOP_TTL_NS,
                in_ifindex: ifindex,
                out_ifindex: fib.ifindex,
                local,
                peer,
                smac: fib.smac,
                dmac: fib.dmac,
                _pad: [0; 4],
            };
        }
    }
    Some(fib)
}

/// Rewrites the Ethernet addresses from a FIB result and sends the frame
/// out of the interface it names; through a VLAN device ([`PPTP_VLANS`]),
/// tagged (IEEE 802.1Q: the tag sits between the source address and the
/// EtherType) out of its lower device. Back out of the interface it came
/// in on with `XDP_TX`, except in a CPU map's program, which has no
/// `XDP_TX` (a redirect to that interface instead).
#[inline(always)]
fn send(ctx: &XdpContext, hop: &Hop, cpu: Cpu) -> Option<u32> {
    let mut ifindex = hop.ifindex;
    // SAFETY: a map value is read once, by value.
    if let Some(vlan) = unsafe { PPTP_VLANS.get(&hop.ifindex) }.copied() {
        // Four bytes more in front: the old addresses move out of the way
        // and the EtherType stays where it is, after the tag.
        // SAFETY: the context pointer is the program's own.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(VlanHdr::LEN as i32)) } != 0 {
            return None;
        }
        store(
            ctx,
            12,
            [vlan.tpid[0], vlan.tpid[1], vlan.tci[0], vlan.tci[1]],
        )?;
        ifindex = vlan.parent_ifindex;
    }
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at. The EtherType field is not written:
    // under a tag it now holds the TPID.
    unsafe {
        write_mac(&raw mut (*eth).dst_addr, hop.dmac);
        write_mac(&raw mut (*eth).src_addr, hop.smac);
    }
    if ifindex as usize == ctx.ingress_ifindex() && cpu == Cpu::Arrival {
        return Some(TX);
    }
    // SAFETY: plain helper call.
    Some(unsafe { bpf_redirect(ifindex, 0) } as u32)
}

/// The kernel's FIB lookup for an IPv4 flow; `None` unless it resolved the
/// next hop completely (route, neighbour, forwarding enabled).
#[inline(always)]
fn fib_lookup(
    ctx: &XdpContext,
    ifindex: u32,
    src: [u8; 4],
    dst: [u8; 4],
    tot_len: u16,
    proto: u8,
) -> Option<Hop> {
    let mut params = core::mem::MaybeUninit::<FibParams>::uninit();
    // SAFETY: FibParams is plain data; all-zero is a valid value.
    let params = unsafe {
        zero(params.as_mut_ptr());
        params.assume_init_mut()
    };
    params.family = AF_INET;
    params.l4_protocol = proto;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.ifindex = ifindex;
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    // SAFETY: params is a valid bpf_fib_lookup of the size given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            &raw mut *params,
            size_of::<FibParams>() as i32,
            0,
        )
    };
    // Only what a send needs leaves here, not a copy of the whole struct.
    (rc == BPF_FIB_LKUP_RET_SUCCESS as i64).then(|| Hop {
        ifindex: params.ifindex,
        smac: params.smac,
        dmac: params.dmac,
    })
}

/// Takes the next sequence number with an atomic fetch-and-add (BPF cpu
/// v3, see `bpf-linker-v3`).
///
/// # Safety
/// `counter` must point to a live, aligned u64 that is only accessed atomically.
#[inline(always)]
unsafe fn next_seq(counter: *mut u64) -> u64 {
    // SAFETY: guaranteed by the caller. Not Relaxed: LLVM lowers a relaxed
    // atomicrmw add to the legacy BPF XADD, which returns nothing, and then
    // hands back its operand as the result; sequentially consistent ordering
    // selects the fetch form (BPF_ADD | BPF_FETCH).
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(counter, 1) }
}

/// A big-endian 16-bit length field as `usize`, with bounds the verifier of
/// older kernels sees. Linux 6.1 forgets what it knew of a value after a
/// byte swap, and LLVM drops (or moves before the swap) any mask it can
/// prove useless; a volatile reload hides the value from LLVM, so the mask
/// stays and gives the verifier the upper bound that packet pointer
/// arithmetic needs.
#[inline(always)]
fn be16_len(bytes: [u8; 2]) -> usize {
    let len = u16::from_be_bytes(bytes) as usize;
    // SAFETY: reads a local.
    unsafe { core::ptr::read_volatile(&len) & 0xffff }
}

/// Whether a packet of `len` inner bytes fits the token bucket at `tat`
/// (`pptp_common::rate`), taking its cost from the bucket when it does. A
/// rate of 0 is no limit.
#[inline(always)]
fn within_rate(tat: *mut u64, rate_kbps: u32, burst_ns: u32, len: usize) -> bool {
    if rate_kbps == 0 {
        return true;
    }
    take(
        tat,
        rate::cost_ns(len as u64 & 0xffff, rate_kbps),
        u64::from(burst_ns),
    )
}

/// Whether `cost` ns fit in the GCRA bucket at `tat` with a burst of
/// `tolerance` ns (as [`take`] would find), taking nothing.
#[inline(always)]
pub(crate) fn fits(tat: *const u64, cost: u64, tolerance: u64) -> bool {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `tat` is an aligned u64 in a map value, only written
    // atomically.
    let old = unsafe { core::ptr::read_volatile(tat) };
    rate::admit(old, now, cost, tolerance).is_some()
}

/// Takes `cost` ns from the GCRA bucket at `tat` with a burst of
/// `tolerance` ns (`pptp_common::rate::admit`), or returns false when it
/// does not fit. CPUs share the bucket: the update is a compare-and-swap
/// (BPF cpu v3), retried a few times when another CPU moved the bucket in
/// between; a packet that loses every round is refused (under that much
/// contention the bucket is being drained).
#[inline(always)]
pub(crate) fn take(tat: *mut u64, cost: u64, tolerance: u64) -> bool {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut round = 0;
    while round < 4 {
        // SAFETY: `tat` is an aligned u64 in a map value; the program only
        // accesses it atomically (the daemon replaces whole entries).
        let old = unsafe { core::ptr::read_volatile(tat) };
        let Some(new) = rate::admit(old, now, cost, tolerance) else {
            return false;
        };
        // SAFETY: as above.
        let (_, swapped) = unsafe {
            atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
                tat, old, new,
            )
        };
        if swapped {
            return true;
        }
        round += 1;
    }
    false
}

/// Whether this CPU sends the frames of the session whose sequence state
/// is `state` ([`SESSION_F_STEER`]): `None` if so (the first CPU to ask
/// claims the session), else the action that queues the frame, untouched,
/// to the CPU that does (`PPTP_CPUS`). Without a queue to that CPU (the
/// daemon set none) this one sends it: out of order perhaps, but not
/// lost.
#[inline(always)]
fn steer(state: *mut SeqState) -> Option<u32> {
    // SAFETY: plain helper call.
    let here = u64::from(unsafe { bpf_get_smp_processor_id() }) + 1;
    // SAFETY: `tx_cpu` is an aligned u64 in a map value; the program only
    // accesses it atomically, the daemon only while the session is not
    // installed.
    let field = unsafe { &raw mut (*state).tx_cpu };
    // SAFETY: as above.
    let mut owner = unsafe { core::ptr::read_volatile(field) };
    if owner == 0 {
        // SAFETY: as above.
        let (old, claimed) = unsafe {
            atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
                field, 0, here,
            )
        };
        owner = if claimed { here } else { old };
    }
    if owner == here {
        return None;
    }
    PPTP_CPUS.redirect((owner - 1) as u32, 0).ok()
}

/// IPv4 (at `l3`) for a client: prepends outer IPv4, enhanced GRE and PPP
/// and sends it towards the client's peer address, within the rate limit
/// of the client's `PPTP_CLIENTS` entry `entry`. In [`Role::Tunnel`] the
/// stack has routed the packet already (TTL decremented, or refused), and
/// the route towards the peer is looked up as from the WAN interface.
/// Arriving on a CPU other than the session's sending CPU, the frame is
/// queued to that CPU unchanged ([`steer`]) once it fits the rate, before
/// anything else is taken from the session (sequence number, MPPE
/// position): that CPU's run (`cpu` [`Cpu::Sending`]) takes them.
#[inline(always)]
fn encapsulate(
    ctx: &XdpContext,
    l3: usize,
    entry: *mut Session,
    role: Role,
    cpu: Cpu,
) -> (Stat, u32) {
    let routed = role == Role::Tunnel;
    // SAFETY: a map value pointer stays valid for the whole program run.
    let session = &unsafe { *entry };
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) else {
        return (Stat::EncapPassed, PASS);
    };
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { *ip };
    let inner_len = be16_len(ip.tot_len);
    if session.flags & SESSION_F_ENCAP == 0
        || inner_len > session.mtu as usize
        || inner_len < IP_LEN
        || ctx.data() + l3 + inner_len > ctx.data_end()
        || (!routed && ip.ttl <= 1)
        || (session.flags & SESSION_F_MSS_CLAMP != 0 && is_tcp_syn(ctx, l3, &ip))
    {
        return (Stat::EncapPassed, PASS);
    }
    let Some(state) = PPTP_SEQ.get_ptr_mut(session.slot) else {
        return (Stat::EncapPassed, PASS);
    };
    // Over the client's rate: dropped where it arrives, so a flood towards
    // one client is not queued to its sending CPU (the bucket is shared by
    // every CPU); a steered frame paid there.
    // SAFETY: map value pointer, valid for the program run.
    if cpu == Cpu::Arrival
        && !within_rate(
            unsafe { &raw mut (*entry).rate_tat },
            session.rate_down_kbps,
            session.rate_burst_ns,
            inner_len,
        )
    {
        return (Stat::RateLimitedEncap, DROP);
    }
    if cpu == Cpu::Arrival
        && session.flags & SESSION_F_STEER != 0
        && let Some(action) = steer(state)
    {
        return (Stat::EncapSteered, action);
    }
    let ifindex = if routed {
        match PPTP_TUNNEL.get(0) {
            Some(conf) => conf.wan_ifindex,
            None => return (Stat::EncapPassed, PASS),
        }
    } else {
        ctx.ingress_ifindex() as u32
    };
    let Some(hop) = next_hop(
        ctx,
        session.slot,
        ifindex,
        session.local_addr,
        session.peer_addr,
    ) else {
        return (Stat::EncapPassed, PASS);
    };

    // Stateless MPPE: the frame's position and key first, before anything
    // in the frame changes (a frame the kernel cannot encrypt goes to
    // userspace untouched); the key changes are made once, on this CPU.
    let mppe = session.flags & SESSION_F_MPPE_TX != 0;
    let mut prepared = false;
    if mppe {
        match mppe::take_key(&session) {
            Some(p) => prepared = p,
            None => {
                count(Stat::MppeTxToUserspace, 1);
                return (Stat::EncapPassed, PASS);
            }
        }
    }

    // Decrement the inner TTL (we route it) before moving the head.
    if !routed && let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) {
        // SAFETY: bounds checked by ptr_at; RFC 1624 incremental update.
        unsafe {
            (*ip).ttl -= 1;
            let sum = u32::from(u16::from_be_bytes((*ip).check)) + 0x0100;
            (*ip).check = (((sum + (sum >> 16)) & 0xFFFF) as u16).to_be_bytes();
        }
    }

    // MPPE (RFC 3078 section 3): its header, then the encrypted protocol
    // field (two octets) before the packet, which is encrypted in place.
    // (Before the branches on the header forms below: the verifier then
    // checks the RC4 loops once per path into encapsulation, not once per
    // header form.)
    if mppe && mppe::seal(ctx, l3, inner_len, prepared).is_none() {
        return (Stat::EncapPassed, DROP);
    }

    // SAFETY: map value pointer, valid for the program run.
    let (ack_valid, ack) = unsafe { ((*state).rx_valid != 0, (*state).rx_highest) };
    let gre_len = if ack_valid {
        GreHdr::MAX_LEN
    } else {
        GreHdr::LEN + GreHdr::SEQ_LEN
    };
    let acfc = session.flags & SESSION_F_ACFC != 0;
    let pfc = session.flags & SESSION_F_PFC != 0;
    let ppp_len = if acfc { 0 } else { 2 } + if pfc { 1 } else { 2 };
    let mppe_len = if mppe { 4 } else { 0 };
    let outer = IP_LEN + gre_len + ppp_len + mppe_len;
    let delta = l3 as i32 - (ETH_LEN + outer) as i32;
    // SAFETY: the context pointer is the program's own.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return (Stat::EncapPassed, DROP);
    }

    // The sequence number is taken only once the frame will surely go out.
    // SAFETY: `tx_next` is an aligned u64 in a map value shared with the
    // daemon, which also only accesses it atomically.
    let seq = unsafe { next_seq(&raw mut (*state).tx_next) } as u32;
    if ack_valid {
        // SAFETY: map value pointer, valid for the program run.
        unsafe {
            (*state).ack_sent = ack;
            (*state).ack_valid = 1;
        }
    }

    let gre_payload = (ppp_len + mppe_len + inner_len) as u16;
    let total = (outer + inner_len) as u16;
    // Outer IPv4 header (RFC 791), no options, DF clear, ID from the sequence.
    let id = seq as u16;
    let words: [u16; 8] = [
        0x4500,
        total,
        id,
        0,
        (u16::from(OUTER_TTL) << 8) | u16::from(IPPROTO_GRE),
        0,
        0,
        0,
    ];
    let mut sum = 0u32;
    for w in words {
        sum += u32::from(w);
    }
    for a in [session.local_addr, session.peer_addr] {
        sum += u32::from(u16::from_be_bytes([a[0], a[1]]));
        sum += u32::from(u16::from_be_bytes([a[2], a[3]]));
    }
    let check = csum_fold(sum);

    let mut hdr = [0u8; IP_LEN];
    hdr[0] = 0x45;
    hdr[2..4].copy_from_slice(&total.to_be_bytes());
    hdr[4..6].copy_from_slice(&id.to_be_bytes());
    hdr[8] = OUTER_TTL;
    hdr[9] = IPPROTO_GRE;
    hdr[10..12].copy_from_slice(&check.to_be_bytes());
    hdr[12..16].copy_from_slice(&session.local_addr);
    hdr[16..20].copy_from_slice(&session.peer_addr);

    let flags = gre_flags::BASE | gre_flags::S | if ack_valid { gre_flags::A } else { 0 };
    let mut gre = [0u8; GreHdr::MAX_LEN];
    gre[0..2].copy_from_slice(&flags.to_be_bytes());
    gre[2..4].copy_from_slice(&GRE_PROTO_PPP.to_be_bytes());
    gre[4..6].copy_from_slice(&gre_payload.to_be_bytes());
    gre[6..8].copy_from_slice(&session.peer_call_id.to_be_bytes());
    gre[8..12].copy_from_slice(&seq.to_be_bytes());
    gre[12..16].copy_from_slice(&ack.to_be_bytes());

    let written = (|| {
        store(ctx, 12, ETH_P_IPV4.to_be_bytes())?;
        store(ctx, ETH_LEN, hdr)?;
        if ack_valid {
            store(ctx, ETH_LEN + IP_LEN, gre)?;
        } else {
            let mut short = [0u8; GreHdr::LEN + GreHdr::SEQ_LEN];
            short.copy_from_slice(&gre[..GreHdr::LEN + GreHdr::SEQ_LEN]);
            store(ctx, ETH_LEN + IP_LEN, short)?;
        }
        let ppp = ETH_LEN + IP_LEN + gre_len;
        // IPv4 (0x0021) or an MPPE packet (0x00FD), both odd and so
        // compressible to one octet (RFC 1661 section 6.5).
        let protocol = if mppe {
            ppp_proto::COMPRESSED as u8
        } else {
            ppp_proto::IPV4 as u8
        };
        match (acfc, pfc) {
            (false, false) => store(ctx, ppp, [PPP_ADDRESS, PPP_CONTROL, 0x00, protocol]),
            (false, true) => store(ctx, ppp, [PPP_ADDRESS, PPP_CONTROL, protocol]),
            (true, false) => store(ctx, ppp, [0x00u8, protocol]),
            (true, true) => store(ctx, ppp, protocol),
        }?;
        if mppe {
            mppe::store_sealed(ctx, ppp + ppp_len, inner_len)?;
        }
        Some(())
    })();
    if written.is_none() {
        return (Stat::EncapPassed, DROP);
    }
    if mppe {
        count(Stat::MppeEncrypted, 1);
        if prepared {
            count(Stat::MppeTxPrepared, 1);
        }
    }

    if let Some(c) = PPTP_COUNTERS.get_ptr_mut(session.slot) {
        // SAFETY: per-CPU map value, no other writer.
        unsafe {
            (*c).tx_packets += 1;
            (*c).tx_bytes += inner_len as u64;
        }
    }
    match send(ctx, &hop, cpu) {
        Some(action) => (Stat::Encapsulated, action),
        None => (Stat::EncapPassed, DROP),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
