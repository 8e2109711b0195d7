//! TCP MSS clamping (RFC 879, RFC 6691): a SYN that crosses the tunnel gets
//! its Maximum Segment Size option lowered to what fits the tunnel MTU, so
//! neither end sends segments that would need fragmenting — the classic PPTP
//! black-hole problem when ICMP is filtered.

use crate::wire::{ipv4, tcp};

/// The largest MSS for a tunnel MTU: MTU minus the IPv4 and TCP headers.
pub fn mss_for_mtu(mtu: u16) -> u16 {
    mtu.saturating_sub(40)
}

/// Lowers the MSS option of an IPv4 TCP SYN to `max_mss`, updating the TCP
/// checksum incrementally (RFC 1624). Returns whether the packet changed.
/// Anything that is not a well-formed IPv4 TCP SYN (checked through the
/// [`ipv4`] and [`tcp`] views), or whose MSS is already small enough, is
/// left alone.
pub fn clamp(packet: &mut [u8], max_mss: u16) -> bool {
    let Ok(mut ip) = ipv4::Packet::new_checked(packet) else {
        return false;
    };
    // Fragments other than the first carry no TCP header.
    if ip.protocol() != ipv4::protocol::TCP || ip.frag_offset() != 0 {
        return false;
    }
    let Ok(mut segment) = tcp::Packet::new_checked(ip.payload_mut()) else {
        return false;
    };
    if !segment.syn() {
        return false;
    }
    let Some(mss) = tcp::Options::new(segment.options())
        .find(|o| o.kind == tcp::option::MSS && o.data.len() == 2)
    else {
        return false;
    };
    let options = segment.options_mut();
    let value = &mut options[mss.data.clone()];
    let old = u16::from_be_bytes([value[0], value[1]]);
    if old <= max_mss {
        return false;
    }
    value.copy_from_slice(&max_mss.to_be_bytes());
    // The checksum sums 16-bit words from the start of the TCP header;
    // the options start on a word boundary (20 octets in), so the value
    // is a word when its offset in the options is even, and straddles
    // two words (bytes swapped in the sum) otherwise.
    let check = segment.checksum();
    let new = if mss.data.start % 2 == 0 {
        update_checksum(check, old, max_mss)
    } else {
        update_checksum(check, old.swap_bytes(), max_mss.swap_bytes())
    };
    segment.set_checksum(new);
    true
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
fn update_checksum(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full TCP checksum over the pseudo-header, for checking.
    fn tcp_checksum(p: &[u8]) -> u16 {
        let ihl = usize::from(p[0] & 0x0F) * 4;
        let tcp = &p[ihl..];
        let mut sum = 0u32;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        add(&p[12..20]);
        add(&[0, 6]);
        add(&(tcp.len() as u16).to_be_bytes());
        let mut t = tcp.to_vec();
        t[16] = 0;
        t[17] = 0;
        add(&t);
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn syn(options: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut p = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2, 198, 19, 0, 2,
        ];
        p[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        let mut tcp = vec![
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x02, 0xFF, 0xFF, 0, 0, 0, 0,
        ];
        tcp[12] = ((tcp_len / 4) as u8) << 4;
        tcp.extend_from_slice(options);
        p.extend_from_slice(&tcp);
        let c = tcp_checksum(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn lowers_mss_and_keeps_the_checksum_valid() {
        // MSS 1460, SACK permitted, timestamps, NOP, window scale: what Linux sends.
        let mut p = syn(&[
            2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        assert!(clamp(&mut p, mss_for_mtu(1400)));
        assert_eq!(&p[42..44], &1360u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
    }

    #[test]
    fn finds_mss_after_other_options() {
        let mut p = syn(&[1, 1, 4, 2, 2, 4, 0x05, 0xB4]);
        assert!(clamp(&mut p, 1360));
        assert_eq!(&p[46..48], &1360u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
    }

    #[test]
    fn mss_on_an_odd_offset_keeps_the_checksum_valid() {
        // NOP, then MSS: its value straddles two checksum words.
        let mut p = syn(&[1, 2, 4, 0x05, 0xB4, 0, 0, 0]);
        assert!(clamp(&mut p, 1360));
        assert_eq!(&p[43..45], &1360u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
    }

    #[test]
    fn leaves_small_mss_non_syn_and_malformed_alone() {
        let mut p = syn(&[2, 4, 0x04, 0x00]);
        let orig = p.clone();
        assert!(!clamp(&mut p, 1360));
        assert_eq!(p, orig);

        let mut p = syn(&[2, 4, 0x05, 0xB4]);
        p[33] = 0x10; // ACK only
        assert!(!clamp(&mut p, 1360));

        // Option length running past the header, truncated packets, not TCP.
        let mut p = syn(&[2, 9, 0x05, 0xB4]);
        assert!(!clamp(&mut p, 1360));
        for n in 0..44 {
            let mut cut = syn(&[2, 4, 0x05, 0xB4])[..n].to_vec();
            let _ = clamp(&mut cut, 1360);
        }
        let mut udp = syn(&[2, 4, 0x05, 0xB4]);
        udp[9] = 17;
        assert!(!clamp(&mut udp, 1360));
    }
}
