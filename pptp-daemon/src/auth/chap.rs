//! CHAP with MD5 (RFC 1994 section 4.1): the Response value is
//! MD5(Identifier | secret | Challenge).

use md5::{Digest, Md5};

/// Length of the challenges our authenticator sends (RFC 1994 leaves it
/// open; 16 octets, as pppd uses at least).
pub const CHALLENGE_LEN: usize = 16;

/// Length of an MD5 Response value.
pub const RESPONSE_LEN: usize = 16;

/// The Response value for `identifier`, `secret` and `challenge`
/// (RFC 1994 section 4.1).
pub fn response(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; RESPONSE_LEN] {
    let mut md5 = Md5::new();
    md5.update([identifier]);
    md5.update(secret);
    md5.update(challenge);
    md5.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_identifier_secret_challenge() {
        // MD5(0x01 | "MyPw" | 10 2D B5 DF 08 5D 30 41), checked against
        // Python's hashlib: md5(b"\x01MyPw" + bytes.fromhex("102db5df085d3041")).
        assert_eq!(
            response(
                1,
                b"MyPw",
                &[0x10, 0x2D, 0xB5, 0xDF, 0x08, 0x5D, 0x30, 0x41]
            ),
            [
                0x8f, 0x02, 0x88, 0x14, 0x45, 0x0d, 0x66, 0xd9, 0x4c, 0x72, 0x33, 0x1e, 0xf4, 0x55,
                0xa1, 0x72
            ]
        );
        // Identifier 0x61 ("a"), no secret, no challenge: MD5("a") of
        // RFC 1321 appendix A.5.
        assert_eq!(
            response(b'a', b"", b""),
            [
                0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8, 0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77,
                0x26, 0x61
            ]
        );
    }
}
