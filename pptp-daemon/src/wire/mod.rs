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
//! - [`mppe`]: the MPPE packet header (RFC 3078 section 3);
//! - [`ipv4`], [`tcp`]: the inner packet's headers the data path reads (RFC 791, RFC 9293).

pub mod ccp;
pub mod chap;
pub mod cp;
pub mod gre;
pub mod ipcp;
pub mod ipv4;
pub mod lcp;
pub mod mppe;
pub mod pap;
pub mod ppp;
pub mod pptp;
pub mod tcp;

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

/// Octets of the Code, Identifier, Length header that LCP, IPCP and CCP
/// (RFC 1661 section 5), CHAP (RFC 1994 section 4) and PAP (RFC 1334
/// section 2.2) share.
pub const CODE_ID_LENGTH_HEADER: usize = 4;

/// Checks a packet with the shared Code, Identifier, Length header: the
/// header is there, Length covers it and fits in `data` (octets past
/// Length are padding). Returns Length.
pub fn check_code_id_length(data: &[u8], what: &'static str) -> Result<usize> {
    let Some(length) = data.get(2..CODE_ID_LENGTH_HEADER) else {
        return Err(Error::Truncated {
            what,
            need: CODE_ID_LENGTH_HEADER,
            have: data.len(),
        });
    };
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    if length < CODE_ID_LENGTH_HEADER {
        return Err(Error::BadLength {
            what,
            len: length,
            why: "Length below the 4-octet header",
        });
    }
    if length > data.len() {
        return Err(Error::Truncated {
            what,
            need: length,
            have: data.len(),
        });
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_id_length_header() {
        // Length 6 in an 8-byte buffer: two octets of padding.
        assert_eq!(check_code_id_length(&[1, 7, 0, 6, 9, 9, 0, 0], "x"), Ok(6));
        assert_eq!(
            check_code_id_length(&[1, 7, 0], "x"),
            Err(Error::Truncated {
                what: "x",
                need: 4,
                have: 3
            })
        );
        assert!(matches!(
            check_code_id_length(&[1, 7, 0, 3], "x"),
            Err(Error::BadLength { len: 3, .. })
        ));
        assert_eq!(
            check_code_id_length(&[1, 7, 0, 9, 0], "x"),
            Err(Error::Truncated {
                what: "x",
                need: 9,
                have: 5
            })
        );
    }
}
