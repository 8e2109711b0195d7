//! Building and taking apart the frames of the userspace data path:
//! enhanced GRE (RFC 2637 section 4.1) carrying PPP (RFC 1661 section 2)
//! carrying IPv4 or, with MPPE (RFC 3078 section 3), an encrypted packet.
//! Shared by the daemon and our client. Headers are written into headroom
//! in front of the payload, so a packet is never copied to be sent.

use crate::{
    mppe::cipher::{DecryptError, Decryptor, Encryptor},
    wire::{self, gre, mppe as wmppe, ppp},
};

/// Room to leave in front of an IPv4 packet for every header we may add:
/// GRE (16), PPP (4), MPPE (2) and the encrypted PPP protocol field (2).
pub const HEADROOM: usize = gre::MAX_HEADER_LEN + ppp::MAX_HEADER_LEN + wmppe::HEADER_LEN + 2;

/// Largest frame we handle: an IPv4 packet of up to 1500 bytes plus headroom,
/// rounded up. Bigger GRE payloads are dropped.
pub const BUFFER_LEN: usize = 2048;

/// The PPP framing the peer agreed to receive (RFC 1661 sections 6.5, 6.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// Address and control fields may be omitted.
    pub acfc: bool,
    /// One-byte protocol fields where the protocol allows.
    pub pfc: bool,
}

impl Framing {
    /// The PPP header for `protocol` (LCP always keeps the full header).
    pub fn ppp(self, protocol: ppp::Protocol) -> ppp::Repr {
        ppp::Repr::new(protocol, self.acfc, self.pfc)
    }
}

/// Writes the PPP header for `protocol` and then the GRE header `gre`
/// (whose payload length is filled in) in front of `buf[start..end]`.
/// Returns where the GRE frame begins.
pub fn prepend(
    buf: &mut [u8],
    start: usize,
    end: usize,
    mut gre: gre::Repr,
    ppp: ppp::Repr,
) -> Result<usize, wire::Error> {
    let ppp_len = ppp.header_len();
    let gre_len = gre.header_len();
    let too_small = || wire::Error::BufferTooSmall {
        what: "frame headroom",
        need: ppp_len + gre_len,
        have: start,
    };
    let ppp_at = start.checked_sub(ppp_len).ok_or_else(too_small)?;
    let gre_at = ppp_at.checked_sub(gre_len).ok_or_else(too_small)?;
    ppp.emit_header(&mut buf[ppp_at..start])?;
    gre.payload_len = u16::try_from(end - ppp_at).map_err(|_| wire::Error::BadLength {
        what: "GRE payload",
        len: end - ppp_at,
        why: "above 65535",
    })?;
    gre.emit_header(&mut buf[gre_at..ppp_at])?;
    Ok(gre_at)
}

/// Turns the IPv4 packet at `buf[start..end]` into the PPP payload to send:
/// as is (protocol IPv4), or encrypted (protocol 0x00FD) with the inner
/// protocol field in front. Returns the new start and the PPP protocol.
pub fn seal(
    buf: &mut [u8],
    start: usize,
    end: usize,
    encryptor: Option<&mut Encryptor>,
) -> Result<(usize, ppp::Protocol), wire::Error> {
    let Some(enc) = encryptor else {
        return Ok((start, ppp::Protocol::Ipv4));
    };
    // MPPE encrypts the PPP protocol field with the data; Linux sends it
    // uncompressed, and receivers accept both forms.
    let at = start
        .checked_sub(wmppe::HEADER_LEN + 2)
        .ok_or(wire::Error::BufferTooSmall {
            what: "MPPE headroom",
            need: wmppe::HEADER_LEN + 2,
            have: start,
        })?;
    buf[at + 2..start].copy_from_slice(&0x0021u16.to_be_bytes());
    enc.encrypt_in_place(&mut buf[at..end])
        .map_err(|_| wire::Error::Malformed {
            what: "MPPE packet",
            why: "encryption buffer too small",
        })?;
    Ok((at, ppp::Protocol::Compressed))
}

/// A frame received from a peer, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// An acknowledgment without payload.
    AckOnly,
    /// An IPv4 packet at `buf[start..end]` (decrypted if it was encrypted).
    Ipv4 {
        start: usize,
        end: usize,
        encrypted: bool,
    },
    /// A control-protocol frame (LCP, authentication, IPCP, CCP, anything
    /// but data): its protocol and its payload at `buf[start..end]`.
    Control {
        protocol: u16,
        start: usize,
        end: usize,
    },
}

/// Why a received frame was dropped.
#[derive(Debug, thiserror::Error)]
pub enum DropReason {
    #[error("GRE: {0}")]
    Gre(wire::Error),
    #[error("PPP: {0}")]
    Ppp(wire::Error),
    #[error("MPPE: {0}")]
    Mppe(#[from] DecryptError),
    #[error("encrypted frame on a session without MPPE")]
    UnexpectedMppe,
    #[error("clear IPv4 on an MPPE session")]
    Unencrypted,
    #[error("encrypted frame carries protocol {0:#06x}, not IPv4")]
    NotIpv4(u16),
}

/// The GRE header of a received frame.
pub fn parse_gre(frame: &[u8]) -> Result<gre::Repr, DropReason> {
    let packet = gre::Packet::new_checked(frame).map_err(DropReason::Gre)?;
    gre::Repr::parse(&packet).map_err(DropReason::Gre)
}

/// Whether a GRE frame's PPP payload is an MPPE frame (protocol 0x00FD,
/// RFC 3078 section 3), with or without address and control fields.
pub fn is_encrypted(ppp_payload: &[u8]) -> bool {
    ppp::Packet::new_checked(ppp_payload)
        .is_ok_and(|p| ppp::Protocol::from(p.protocol_number()) == ppp::Protocol::Compressed)
}

/// Takes apart the PPP payload of a GRE frame (at `buf[start..end]`),
/// decrypting MPPE frames in place with `cipher` (the receiving half of
/// the session's MPPE state, `None` without MPPE).
pub fn open(
    buf: &mut [u8],
    start: usize,
    end: usize,
    cipher: Option<&mut Decryptor>,
) -> Result<Received, DropReason> {
    if start == end {
        return Ok(Received::AckOnly);
    }
    let packet = ppp::Packet::new_checked(&buf[start..end]).map_err(DropReason::Ppp)?;
    let protocol = packet.protocol_number();
    let header = packet.header_len();
    let payload = start + header;
    match ppp::Protocol::from(protocol) {
        ppp::Protocol::Ipv4 if cipher.is_none() => Ok(Received::Ipv4 {
            start: payload,
            end,
            encrypted: false,
        }),
        ppp::Protocol::Ipv4 => Err(DropReason::Unencrypted),
        ppp::Protocol::Compressed => {
            let cipher = cipher.ok_or(DropReason::UnexpectedMppe)?;
            cipher.decrypt_in_place(&mut buf[payload..end])?;
            let plain = payload + wmppe::HEADER_LEN;
            // The inner protocol field, compressed or not.
            let (inner, len) = match buf.get(plain..end) {
                Some([p, ..]) if p & 1 == 1 => (u16::from(*p), 1),
                Some([a, b, ..]) => (u16::from_be_bytes([*a, *b]), 2),
                _ => return Err(DropReason::NotIpv4(0)),
            };
            if inner != 0x0021 {
                return Err(DropReason::NotIpv4(inner));
            }
            Ok(Received::Ipv4 {
                start: plain + len,
                end,
                encrypted: true,
            })
        }
        _ => Ok(Received::Control {
            protocol,
            start: payload,
            end,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        auth::MppeMaterial,
        mppe::{KeyLength, MppeParams, cipher::MppeCipher, keys::start_keys},
    };

    fn ip_packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0, 198, 19, 0, 2, 198, 18, 1, 2,
        ];
        p.extend_from_slice(&[1, 2, 3, 4]);
        p
    }

    fn frame_for(framing: Framing, cipher: Option<&mut MppeCipher>) -> Vec<u8> {
        let mut buf = vec![0xa5u8; BUFFER_LEN];
        let p = ip_packet();
        buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
        let end = HEADROOM + p.len();
        let (start, proto) =
            seal(&mut buf, HEADROOM, end, cipher.map(|c| &mut c.encryptor)).unwrap();
        let gre = gre::Repr::data(0x4242, 7, Some(3), 0);
        let begin = prepend(&mut buf, start, end, gre, framing.ppp(proto)).unwrap();
        buf[begin..end].to_vec()
    }

    #[test]
    fn clear_frame_bytes_with_each_framing() {
        let full = frame_for(Framing::default(), None);
        assert_eq!(
            &full[..20],
            &[
                0x30, 0x81, 0x88, 0x0B, 0, 28, 0x42, 0x42, 0, 0, 0, 7, 0, 0, 0, 3, 0xFF, 0x03,
                0x00, 0x21
            ]
        );
        assert_eq!(&full[20..], &ip_packet()[..]);
        let compressed = frame_for(
            Framing {
                acfc: true,
                pfc: true,
            },
            None,
        );
        assert_eq!(&compressed[4..6], &[0, 25]);
        assert_eq!(compressed[16], 0x21);
        assert_eq!(&compressed[17..], &ip_packet()[..]);
    }

    #[test]
    fn frames_open_back_into_the_ip_packet() {
        for framing in [
            Framing::default(),
            Framing {
                acfc: true,
                pfc: true,
            },
            Framing {
                acfc: true,
                pfc: false,
            },
        ] {
            let mut f = frame_for(framing, None);
            let gre = parse_gre(&f).unwrap();
            assert_eq!((gre.call_id, gre.seq, gre.ack), (0x4242, Some(7), Some(3)));
            let start = gre.header_len();
            let end = start + usize::from(gre.payload_len);
            match open(&mut f, start, end, None).unwrap() {
                Received::Ipv4 {
                    start,
                    end,
                    encrypted,
                } => {
                    assert!(!encrypted);
                    assert_eq!(&f[start..end], &ip_packet()[..]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn mppe_round_trip_between_the_two_ends() {
        let material = MppeMaterial::V2 {
            master_send_key: [1; 16],
            master_recv_key: [2; 16],
        };
        let mirrored = MppeMaterial::V2 {
            master_send_key: [2; 16],
            master_recv_key: [1; 16],
        };
        let params = MppeParams {
            key_length: KeyLength::Bits128,
            stateless: true,
        };
        let mut ours = MppeCipher::new(&material, params);
        let mut theirs = MppeCipher::new(&mirrored, params);
        assert_eq!(
            start_keys(&material, KeyLength::Bits128).send.as_bytes(),
            start_keys(&mirrored, KeyLength::Bits128).recv.as_bytes()
        );
        for _ in 0..3 {
            let mut f = frame_for(Framing::default(), Some(&mut ours));
            let gre = parse_gre(&f).unwrap();
            let start = gre.header_len();
            let end = start + usize::from(gre.payload_len);
            assert_eq!(&f[start..start + 4], &[0xFF, 0x03, 0x00, 0xFD]);
            assert_ne!(&f[end - 4..end], &[1, 2, 3, 4], "encrypted");
            match open(&mut f, start, end, Some(&mut theirs.decryptor)).unwrap() {
                Received::Ipv4 {
                    start,
                    end,
                    encrypted,
                } => {
                    assert!(encrypted);
                    assert_eq!(&f[start..end], &ip_packet()[..]);
                }
                other => panic!("{other:?}"),
            }
        }
        // A clear frame on an MPPE session and the reverse are refused.
        let mut clear = frame_for(Framing::default(), None);
        let s = 16;
        let e = clear.len();
        assert!(matches!(
            open(&mut clear, s, e, Some(&mut theirs.decryptor)),
            Err(DropReason::Unencrypted)
        ));
        let mut enc = frame_for(Framing::default(), Some(&mut ours));
        let e = enc.len();
        assert!(matches!(
            open(&mut enc, s, e, None),
            Err(DropReason::UnexpectedMppe)
        ));
    }

    #[test]
    fn control_frames_and_ack_only() {
        let mut buf = vec![0u8; 64];
        buf[20..24].copy_from_slice(&[0xFF, 0x03, 0xC0, 0x21]);
        buf[24..28].copy_from_slice(&[9, 1, 0, 4]);
        assert_eq!(
            open(&mut buf, 20, 28, None).unwrap(),
            Received::Control {
                protocol: 0xC021,
                start: 24,
                end: 28
            }
        );
        assert_eq!(open(&mut buf, 20, 20, None).unwrap(), Received::AckOnly);
        // A lone address byte is no PPP frame.
        assert!(matches!(
            open(&mut buf, 20, 21, None),
            Err(DropReason::Ppp(_))
        ));
    }

    #[test]
    fn headroom_too_small_is_an_error() {
        let mut buf = vec![0u8; 64];
        let gre = gre::Repr::data(1, 1, None, 0);
        assert!(
            prepend(
                &mut buf,
                4,
                20,
                gre,
                Framing::default().ppp(ppp::Protocol::Ipv4)
            )
            .is_err()
        );
    }
}
