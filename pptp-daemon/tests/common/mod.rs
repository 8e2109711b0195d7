//! Helpers shared by the integration tests: crafted frames.
#![allow(dead_code, reason = "each test binary uses a different subset")]

/// IPv4 header checksum (RFC 791).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Ethernet header with the given EtherType.
pub fn eth(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

/// An IPv4 packet (20-byte header, no options) carrying `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = ipv4_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An enhanced GRE packet (RFC 2637 section 4.1).
pub fn gre(call_id: u16, seq: Option<u32>, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut flags: u16 = 0x2001;
    if seq.is_some() {
        flags |= 0x1000;
    }
    if ack.is_some() {
        flags |= 0x0080;
    }
    let mut g = Vec::new();
    g.extend_from_slice(&flags.to_be_bytes());
    g.extend_from_slice(&0x880Bu16.to_be_bytes());
    g.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    g.extend_from_slice(&call_id.to_be_bytes());
    if let Some(s) = seq {
        g.extend_from_slice(&s.to_be_bytes());
    }
    if let Some(a) = ack {
        g.extend_from_slice(&a.to_be_bytes());
    }
    g.extend_from_slice(payload);
    g
}

/// A whole Ethernet frame: IPv4 from `src` to `dst` carrying `l4` with protocol `proto`.
pub fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(SERVER_MAC, CLIENT_MAC, 0x0800);
    f.extend_from_slice(&ipv4(src, dst, proto, l4));
    f
}

/// Sets the TTL of IPv4 packet `p` and recomputes its header checksum.
pub fn with_ttl(mut p: Vec<u8>, ttl: u8) -> Vec<u8> {
    p[8] = ttl;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// The same IPv4 packet one hop later: TTL decremented, checksum
/// recomputed.
pub fn hop(p: &[u8]) -> Vec<u8> {
    with_ttl(p.to_vec(), p[8] - 1)
}

/// The outer IPv4 header of a GRE frame as the XDP program writes it
/// (ID from the GRE sequence number `seq`, DF clear, TTL 64) around
/// `gre_packet`.
pub fn outer_ipv4(src: [u8; 4], dst: [u8; 4], seq: u32, gre_packet: &[u8]) -> Vec<u8> {
    let mut ip = ipv4(src, dst, 47, gre_packet);
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&[0, 0]);
    with_ttl(ip, 64)
}
