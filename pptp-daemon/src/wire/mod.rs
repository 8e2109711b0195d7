//! Wire formats of everything that crosses the network in a PPTP session,
//! in the smoltcp style: a checked `Packet<T: AsRef<[u8]>>` view over bytes
//! plus a `Repr` that is parsed from it and emitted into a caller's buffer.
//! No I/O, no allocation in the views; no parser can panic on any input.
//!
//! - [`pptp`]: PPTP control messages and the TCP stream framer (RFC 2637 section 2);
//! - [`gre`]: enhanced GRE (RFC 2637 section 4.1);
//! - [`ppp`]: PPP framing with ACFC/PFC (RFC 1661 section 2, RFC 1662);
//! - [`cp`]: the control-protocol packet shared by LCP, IPCP and CCP (RFC 1661 section 5);
//! - [`lcp`], [`ipcp`], [`ccp`]: their options (RFC 1661 section 6, RFC 1332, RFC 1877, RFC 1962, RFC 3078);
//! - [`chap`], [`pap`]: authentication packets (RFC 1994, RFC 2433, RFC 2759, RFC 1334);
//! - [`mppe`]: the MPPE packet header (RFC 3078 section 3).

pub mod ccp;
pub mod chap;
pub mod cp;
pub mod gre;
pub mod ipcp;
pub mod lcp;
pub mod mppe;
pub mod pap;
pub mod ppp;
pub mod pptp;

/// Why bytes could not be parsed or a representation not emitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends before `what` does.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field (or the input length) contradicts the format.
    #[error("bad length of {what}: {len} ({why})")]
    BadLength {
        what: &'static str,
        len: usize,
        why: &'static str,
    },
    /// The PPTP magic cookie is not 0x1A2B3C4D.
    #[error("bad PPTP magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    /// A type, code or protocol value this codec does not know, where the
    /// format does not allow keeping it raw.
    #[error("unknown {what} {value:#x}")]
    Unknown { what: &'static str, value: u32 },
    /// Any other violation of the format, with the reason.
    #[error("malformed {what}: {why}")]
    Malformed {
        what: &'static str,
        why: &'static str,
    },
    /// The output buffer is too small for the representation.
    #[error("buffer too small for {what}: need {need} bytes, have {have}")]
    BufferTooSmall {
        what: &'static str,
        need: usize,
        have: usize,
    },
}

/// Result of the wire codecs.
pub type Result<T> = core::result::Result<T, Error>;
