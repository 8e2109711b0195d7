//! Protocol numbers and fixed values of PPTP (RFC 2637) and PPP (RFC 1661 and
//! the IANA PPP DLL protocol number registry).

/// TCP port of the PPTP control connection (RFC 2637 section 1.3).
pub const PPTP_PORT: u16 = 1723;
/// Magic cookie carried by every control message (RFC 2637 section 1.4).
pub const PPTP_MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// PPTP protocol version 1.0 (RFC 2637 section 2.1).
pub const PPTP_PROTOCOL_VERSION: u16 = 0x0100;

/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// EtherType of IPv4.
pub const ETH_P_IPV4: u16 = 0x0800;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETH_P_8021AD: u16 = 0x88A8;

/// GRE protocol type carried by PPTP's enhanced GRE: PPP (RFC 2637 section 4.1).
pub const GRE_PROTO_PPP: u16 = 0x880B;

/// Enhanced GRE flags and version word (RFC 2637 section 4.1).
pub mod gre_flags {
    /// Checksum present (must be 0 in enhanced GRE).
    pub const C: u16 = 0x8000;
    /// Routing present (must be 0).
    pub const R: u16 = 0x4000;
    /// Key present (must be 1: the key carries payload length and call ID).
    pub const K: u16 = 0x2000;
    /// Sequence number present.
    pub const S: u16 = 0x1000;
    /// Strict source route (must be 0).
    pub const STRICT: u16 = 0x0800;
    /// Recursion control (must be 0).
    pub const RECUR_MASK: u16 = 0x0700;
    /// Acknowledgment number present.
    pub const A: u16 = 0x0080;
    /// Flags reserved by RFC 2637 (must be 0).
    pub const RESERVED_MASK: u16 = 0x0078;
    /// Version field.
    pub const VERSION_MASK: u16 = 0x0007;
    /// Enhanced GRE is version 1.
    pub const VERSION_ENHANCED: u16 = 0x0001;
    /// The fixed part every enhanced GRE header has: K set, version 1.
    pub const BASE: u16 = K | VERSION_ENHANCED;
    /// Bits that must be zero in an enhanced GRE header.
    pub const MUST_BE_ZERO: u16 = C | R | STRICT | RECUR_MASK | RESERVED_MASK;
}

/// PPP address field of HDLC-like framing (RFC 1662 section 3.1), omitted
/// when Address-and-Control-Field-Compression is negotiated.
pub const PPP_ADDRESS: u8 = 0xFF;
/// PPP control field: unnumbered information (RFC 1662 section 3.1).
pub const PPP_CONTROL: u8 = 0x03;

/// PPP protocol field values (RFC 1661 section 2, IANA PPP DLL numbers).
pub mod ppp_proto {
    /// Internet Protocol version 4 (RFC 1332).
    pub const IPV4: u16 = 0x0021;
    /// Internet Protocol version 6 (RFC 5072).
    pub const IPV6: u16 = 0x0057;
    /// Compressed datagram: MPPE/MPPC payload (RFC 1962, RFC 3078).
    pub const COMPRESSED: u16 = 0x00FD;
    /// IP Control Protocol (RFC 1332).
    pub const IPCP: u16 = 0x8021;
    /// IPv6 Control Protocol (RFC 5072).
    pub const IPV6CP: u16 = 0x8057;
    /// Compression Control Protocol (RFC 1962).
    pub const CCP: u16 = 0x80FD;
    /// Link Control Protocol (RFC 1661).
    pub const LCP: u16 = 0xC021;
    /// Password Authentication Protocol (RFC 1334).
    pub const PAP: u16 = 0xC023;
    /// Link Quality Report (RFC 1989).
    pub const LQR: u16 = 0xC025;
    /// Challenge Handshake Authentication Protocol (RFC 1994).
    pub const CHAP: u16 = 0xC223;
}
