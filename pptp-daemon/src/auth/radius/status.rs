//! Status-Server (RFC 5997): is a RADIUS server there, and does it share
//! our secret? Used by `--check-config` to probe every configured
//! authentication and accounting server. Sans-IO: the request's bytes and
//! the verdict on an answer; the caller owns the socket and the clock.
//!
//! - The request (RFC 5997 section 3): Code 12, a random Request
//!   Authenticator, Message-Authenticator first (required by section 3,
//!   and by FreeRADIUS), then NAS-Identifier (section 3 asks for a NAS
//!   identification).
//! - The answer (section 3): an Access-Accept on an authentication port,
//!   an Accounting-Response on an accounting port, with the Response
//!   Authenticator of RFC 2865 section 3 and a Message-Authenticator
//!   (RFC 3579 section 3.2; RFC 5997 section 3 says servers include one).
//!   We require it from an authentication server, as for every answer
//!   there (BlastRADIUS, CVE-2024-3596), and check it when an accounting
//!   server sends one.
//! - Retransmission (section 4): a Status-Server is never retransmitted
//!   as is; each try is a new packet with a new Identifier and a new
//!   Request Authenticator ([`StatusRequest::new`] per try).
//!
//! FreeRADIUS answers Status-Server only with `status_server = yes` in its
//! `security` section.

use super::packet::{
    Code, Error, HEADER_LEN, MAX_VALUE_LEN, Packet, ResponseError, attr,
    check_message_authenticator, check_response_authenticator, hmac_md5,
};

/// Which port of a server a probe goes to, which decides the answer's
/// code (RFC 5997 section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Authentication (1812): answered with Access-Accept.
    Authentication,
    /// Accounting (1813): answered with Accounting-Response.
    Accounting,
}

impl Port {
    /// The code of the answer on this port.
    pub fn answer_code(self) -> Code {
        match self {
            Port::Authentication => Code::AccessAccept,
            Port::Accounting => Code::AccountingResponse,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Port::Authentication => "authentication",
            Port::Accounting => "accounting",
        }
    }
}

/// One Status-Server try: what identifies its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRequest {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    /// The packet to send.
    pub bytes: Vec<u8>,
}

impl StatusRequest {
    /// A Status-Server with `identifier` and the random Request
    /// Authenticator `authenticator`, signed with `secret`, naming us as
    /// `nas_identifier` (at most 253 bytes; the configuration checks).
    pub fn new(
        identifier: u8,
        authenticator: [u8; 16],
        secret: &[u8],
        nas_identifier: &str,
    ) -> Result<StatusRequest, Error> {
        let nas = nas_identifier.as_bytes();
        if nas.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLong {
                kind: attr::NAS_IDENTIFIER,
                len: nas.len(),
            });
        }
        let mut out = Vec::with_capacity(HEADER_LEN + 18 + 2 + nas.len());
        out.push(u8::from(Code::StatusServer));
        out.push(identifier);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&authenticator);
        out.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        out.extend_from_slice(&[0; 16]);
        if !nas.is_empty() {
            out.push(attr::NAS_IDENTIFIER);
            out.push(nas.len() as u8 + 2);
            out.extend_from_slice(nas);
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        // RFC 3579 section 3.2: HMAC-MD5 over the packet with the
        // Message-Authenticator zeroed; the Request Authenticator as is.
        let mac = hmac_md5(secret, &out);
        out[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&mac);
        Ok(StatusRequest {
            identifier,
            authenticator,
            bytes: out,
        })
    }

    /// Checks `datagram` as the answer of `port` to this request: its
    /// code, identifier, Response Authenticator and Message-Authenticator
    /// (required on the authentication port, checked when present on the
    /// accounting port). A wrong secret shows as
    /// [`ResponseError::BadResponseAuthenticator`] or
    /// [`ResponseError::BadMessageAuthenticator`].
    pub fn check_answer(
        &self,
        datagram: &[u8],
        port: Port,
        secret: &[u8],
    ) -> Result<(), ResponseError> {
        let packet = Packet::new_checked(datagram).map_err(ResponseError::Malformed)?;
        if packet.code() != port.answer_code() {
            return Err(ResponseError::UnexpectedCode(packet.code()));
        }
        check_response_authenticator(&packet, self.identifier, &self.authenticator, secret)?;
        let mut mas = packet
            .attributes()
            .filter(|a| a.kind == attr::MESSAGE_AUTHENTICATOR);
        match (mas.next(), mas.next(), port) {
            (Some(ma), None, _) => {
                check_message_authenticator(packet.as_bytes(), &ma, &self.authenticator, secret)
            }
            (None, _, Port::Accounting) => Ok(()),
            (None, _, Port::Authentication) => Err(ResponseError::MissingMessageAuthenticator),
            (Some(_), Some(_), _) => Err(ResponseError::BadMessageAuthenticator),
        }
    }
}

/// A hint for an operator whose server gave no valid answer.
pub const NO_ANSWER_HINT: &str = "is the server running and reachable, is the secret the one \
     it has for this client, and does it answer Status-Server (FreeRADIUS: `status_server = yes` \
     in the security section)?";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::radius::packet::emit_signed;

    const SECRET: &[u8] = b"testing123";
    const RA: [u8; 16] = *b"0123456789abcdef";

    /// RFC 5997 section 3: the exact bytes, and a Message-Authenticator
    /// that is HMAC-MD5 (RFC 2104) over the packet with itself zeroed.
    #[test]
    fn status_server_bytes() {
        let r = StatusRequest::new(0x2a, RA, SECRET, "nas").unwrap();
        let b = &r.bytes;
        assert_eq!(b.len(), 20 + 18 + 5);
        assert_eq!(&b[..4], &[12, 0x2a, 0, 43]);
        assert_eq!(&b[4..20], &RA);
        assert_eq!(&b[20..22], &[80, 18]);
        assert_eq!(&b[38..], &[32, 5, b'n', b'a', b's']);
        let mut zeroed = b.clone();
        zeroed[22..38].fill(0);
        assert_eq!(&b[22..38], &hmac_md5(SECRET, &zeroed));
        assert_ne!(&b[22..38], &[0u8; 16]);
        // Another secret, another signature; no NAS-Identifier when empty.
        let other = StatusRequest::new(0x2a, RA, b"other", "nas").unwrap();
        assert_ne!(other.bytes[22..38], b[22..38]);
        assert_eq!(
            StatusRequest::new(1, RA, SECRET, "").unwrap().bytes.len(),
            38
        );
        assert!(StatusRequest::new(1, RA, SECRET, &"n".repeat(254)).is_err());
        let parsed = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(parsed.code(), Code::StatusServer);
    }

    fn answer(code: Code, id: u8, secret: &[u8], with_ma: bool) -> Vec<u8> {
        emit_signed(
            u8::from(code),
            id,
            &RA,
            secret,
            &[(attr::REPLY_MESSAGE, b"up".to_vec())],
            with_ma,
        )
    }

    #[test]
    fn answers_are_verified() {
        let r = StatusRequest::new(7, RA, SECRET, "nas").unwrap();
        let auth = Port::Authentication;
        let acct = Port::Accounting;
        assert_eq!(
            r.check_answer(&answer(Code::AccessAccept, 7, SECRET, true), auth, SECRET),
            Ok(())
        );
        assert_eq!(
            r.check_answer(
                &answer(Code::AccountingResponse, 7, SECRET, true),
                acct,
                SECRET
            ),
            Ok(())
        );
        // Accounting: Message-Authenticator checked only when present.
        assert_eq!(
            r.check_answer(
                &answer(Code::AccountingResponse, 7, SECRET, false),
                acct,
                SECRET
            ),
            Ok(())
        );
        // Authentication: required.
        assert_eq!(
            r.check_answer(&answer(Code::AccessAccept, 7, SECRET, false), auth, SECRET),
            Err(ResponseError::MissingMessageAuthenticator)
        );
        // The wrong code for the port, another identifier, another secret.
        assert_eq!(
            r.check_answer(&answer(Code::AccessAccept, 7, SECRET, true), acct, SECRET),
            Err(ResponseError::UnexpectedCode(Code::AccessAccept))
        );
        assert_eq!(
            r.check_answer(&answer(Code::AccessReject, 7, SECRET, true), auth, SECRET),
            Err(ResponseError::UnexpectedCode(Code::AccessReject))
        );
        assert_eq!(
            r.check_answer(&answer(Code::AccessAccept, 8, SECRET, true), auth, SECRET),
            Err(ResponseError::WrongIdentifier { got: 8, want: 7 })
        );
        assert_eq!(
            r.check_answer(&answer(Code::AccessAccept, 7, b"wrong", true), auth, SECRET),
            Err(ResponseError::BadResponseAuthenticator)
        );
        // A forged Message-Authenticator under a right Response
        // Authenticator.
        let mut forged = answer(Code::AccessAccept, 7, SECRET, true);
        forged[22] ^= 1;
        let auth_field = {
            use md5::{Digest, Md5};
            let mut copy = forged.clone();
            copy[4..20].copy_from_slice(&RA);
            let mut m = Md5::new();
            m.update(&copy);
            m.update(SECRET);
            <[u8; 16]>::from(m.finalize())
        };
        forged[4..20].copy_from_slice(&auth_field);
        assert_eq!(
            r.check_answer(&forged, auth, SECRET),
            Err(ResponseError::BadMessageAuthenticator)
        );
        // Truncated and malformed: an error, no panic.
        for bad in [&[][..], &[2, 7, 0, 19][..], &[2, 7, 0, 25, 0, 0][..]] {
            assert!(r.check_answer(bad, auth, SECRET).is_err());
        }
    }
}
