//! Key and value types of the eBPF maps shared by the daemon and the XDP
//! program. Every struct is `#[repr(C)]` with explicit padding fields, so
//! there are no implicit holes whose contents the kernel would hash or copy.

/// Names of the eBPF maps, as the daemon looks them up.
pub mod names {
    /// Per-CPU array of `u64` global counters indexed by [`super::Stat`].
    pub const STATS: &str = "PPTP_STATS";
    /// Hash of established sessions, [`super::SessionKey`] -> [`super::Session`].
    pub const SESSIONS: &str = "PPTP_SESSIONS";
}

/// Maximum number of sessions the session map holds.
pub const MAX_SESSIONS: u32 = 65_536;

/// Index of a global counter in the per-CPU `PPTP_STATS` array.
///
/// The XDP program counts every frame it sees under exactly one verdict
/// counter (all except [`Stat::Frames`] and [`Stat::Bytes`]), so the verdict
/// counters add up to [`Stat::Frames`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stat {
    /// Every frame the program saw.
    Frames = 0,
    /// Bytes of every frame the program saw.
    Bytes = 1,
    /// Not IPv4 (or cut short before the IPv4 header): passed up.
    NotIpv4 = 2,
    /// IPv4 but not GRE: passed up.
    NotGre = 3,
    /// IPv4 with options or fragmented: passed up.
    Ipv4Unusual = 4,
    /// GRE that is not PPTP's enhanced GRE (version 0, wrong protocol, bad flags): passed up.
    GreNotPptp = 5,
    /// Enhanced GRE truncated before its announced header or payload: passed up.
    GreTruncated = 6,
    /// Enhanced GRE for a call the session map does not hold: passed up.
    GreUnknownCall = 7,
    /// Enhanced GRE of a known session: control, keepalive, ack-only or encrypted frame passed up.
    GreToUserspace = 8,
    /// Data frame of a known session whose outer or inner source did not match: dropped.
    GreSpoofed = 9,
    /// Data frame decapsulated in the kernel.
    GreDecapsulated = 10,
}

impl Stat {
    /// Number of counters; size of the `PPTP_STATS` array.
    pub const COUNT: u32 = 11;

    /// Every counter, in index order.
    pub const ALL: [Stat; Self::COUNT as usize] = [
        Stat::Frames,
        Stat::Bytes,
        Stat::NotIpv4,
        Stat::NotGre,
        Stat::Ipv4Unusual,
        Stat::GreNotPptp,
        Stat::GreTruncated,
        Stat::GreUnknownCall,
        Stat::GreToUserspace,
        Stat::GreSpoofed,
        Stat::GreDecapsulated,
    ];

    /// A short lowercase name for logs and the `sessions`/`stats` output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Frames => "frames",
            Stat::Bytes => "bytes",
            Stat::NotIpv4 => "not_ipv4",
            Stat::NotGre => "not_gre",
            Stat::Ipv4Unusual => "ipv4_unusual",
            Stat::GreNotPptp => "gre_not_pptp",
            Stat::GreTruncated => "gre_truncated",
            Stat::GreUnknownCall => "gre_unknown_call",
            Stat::GreToUserspace => "gre_to_userspace",
            Stat::GreSpoofed => "gre_spoofed",
            Stat::GreDecapsulated => "gre_decapsulated",
        }
    }
}

/// Key of the session map: the peer's outer IPv4 address and the call ID we
/// assigned (the one the peer puts in the GRE key field of what it sends).
///
/// Keying by both lets two clients behind one NAT pick equal call IDs: our
/// call IDs are unique per daemon anyway, and the address check stops a
/// third party from injecting into a session by guessing the call ID.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SessionKey {
    /// Peer's outer IPv4 address, network byte order as on the wire.
    pub peer_addr: [u8; 4],
    /// Our call ID, host byte order.
    pub call_id: u16,
    /// Explicit padding, always zero.
    pub _pad: u16,
}

impl SessionKey {
    pub const fn new(peer_addr: [u8; 4], call_id: u16) -> Self {
        Self {
            peer_addr,
            call_id,
            _pad: 0,
        }
    }
}

/// Session flag: the peer negotiated Address-and-Control-Field-Compression,
/// so frames we send may omit 0xFF 0x03.
pub const SESSION_F_ACFC: u32 = 1 << 0;
/// Session flag: the peer negotiated Protocol-Field-Compression.
pub const SESSION_F_PFC: u32 = 1 << 1;
/// Session flag: data of this session is decapsulated in the kernel. Without
/// it (an MPPE session, or one being torn down) every frame goes up.
pub const SESSION_F_FAST_PATH: u32 = 1 << 2;

/// Value of the session map: what the XDP program needs to check and
/// forward a data frame of an established session.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Session {
    /// IPv4 address assigned to the client inside the tunnel, network order.
    pub client_addr: [u8; 4],
    /// Our outer IPv4 address for this session, network order.
    pub local_addr: [u8; 4],
    /// `SESSION_F_*` flags.
    pub flags: u32,
    /// The peer's call ID (what we put in the GRE key of frames we send).
    pub peer_call_id: u16,
    /// Tunnel MTU (the peer's MRU), bytes.
    pub mtu: u16,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are `#[repr(C)]`, `Copy`, made only of integers and
    // byte arrays, and have no implicit padding (checked by the tests below).
    unsafe impl aya::Pod for super::SessionKey {}
    unsafe impl aya::Pod for super::Session {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn session_key_layout() {
        assert_eq!(size_of::<SessionKey>(), 8);
        assert_eq!(offset_of!(SessionKey, peer_addr), 0);
        assert_eq!(offset_of!(SessionKey, call_id), 4);
        assert_eq!(offset_of!(SessionKey, _pad), 6);
    }

    #[test]
    fn session_layout() {
        assert_eq!(size_of::<Session>(), 16);
        assert_eq!(offset_of!(Session, client_addr), 0);
        assert_eq!(offset_of!(Session, local_addr), 4);
        assert_eq!(offset_of!(Session, flags), 8);
        assert_eq!(offset_of!(Session, peer_call_id), 12);
        assert_eq!(offset_of!(Session, mtu), 14);
    }

    #[test]
    fn stat_indices_are_dense_and_named_uniquely() {
        for (i, s) in Stat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            for t in &Stat::ALL[i + 1..] {
                assert_ne!(s.name(), t.name());
            }
        }
    }
}
