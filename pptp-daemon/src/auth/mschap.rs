//! MS-CHAPv1 algorithms (RFC 2433 appendix A), shared with MS-CHAPv2
//! (RFC 2759 section 8): the NT and LAN Manager password hashes and the
//! DES-based ChallengeResponse.
//!
//! Passwords are the octets of a secret. MS-CHAP hashes the password as
//! UTF-16LE ("unicode-char"): a secret that is valid UTF-8 is converted
//! character by character, anything else octet by octet (each octet a
//! code point below 256, as pppd does for every secret). Both agree for
//! ASCII.

use des::{
    Des,
    cipher::{Array, BlockCipherEncrypt, KeyInit},
};
use md4::{Digest, Md4};

/// Length of the challenge an MS-CHAPv1 authenticator sends (RFC 2433
/// section 5).
pub const CHALLENGE_LEN: usize = 8;

/// The password as UTF-16LE octets (RFC 2433 appendix A.6
/// "0-to-256-unicode-char Password").
pub fn password_to_unicode(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(text) => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Err(_) => password.iter().flat_map(|&b| [b, 0]).collect(),
    }
}

/// NtPasswordHash (RFC 2433 appendix A.6, RFC 2759 section 8.3): MD4 of
/// the UTF-16LE password.
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    Md4::digest(password_to_unicode(password)).into()
}

/// HashNtPasswordHash (RFC 2759 section 8.4): MD4 of the hash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// LmPasswordHash (RFC 2433 appendix A.2): the password uppercased,
/// zero-padded (or cut) to 14 octets, each half used as the DES key that
/// encrypts "KGS!@#$%".
pub fn lm_password_hash(password: &[u8]) -> [u8; 16] {
    const STD_TEXT: &[u8; 8] = b"KGS!@#$%";
    let mut upper = [0u8; 14];
    for (slot, b) in upper.iter_mut().zip(password) {
        *slot = b.to_ascii_uppercase();
    }
    let mut out = [0u8; 16];
    for (half, key) in out.chunks_exact_mut(8).zip(upper.chunks_exact(7)) {
        half.copy_from_slice(&des_encrypt(STD_TEXT, key));
    }
    out
}

/// ChallengeResponse (RFC 2433 appendix A.7, RFC 2759 section 8.5): the
/// challenge DES-encrypted with each 7-octet third of the password hash
/// zero-padded to 21 octets.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (block, key) in out.chunks_exact_mut(8).zip(z.chunks_exact(7)) {
        block.copy_from_slice(&des_encrypt(challenge, key));
    }
    out
}

/// NtChallengeResponse (RFC 2433 appendix A.5).
pub fn nt_challenge_response(challenge: &[u8; 8], password: &[u8]) -> [u8; 24] {
    challenge_response(challenge, &nt_password_hash(password))
}

/// LmChallengeResponse (RFC 2433 appendix A.1). Deprecated by the RFC;
/// verified only when a client sends the NT flag clear.
pub fn lm_challenge_response(challenge: &[u8; 8], password: &[u8]) -> [u8; 24] {
    challenge_response(challenge, &lm_password_hash(password))
}

/// The challenge a retry answers when the Failure message carries no C=
/// field: the previous one plus 23 in its first octet (RFC 2433 section 8).
pub fn implicit_retry_challenge(previous: &[u8; 8]) -> [u8; 8] {
    let mut next = *previous;
    next[0] = next[0].wrapping_add(23);
    next
}

/// Spreads 56 key bits over 8 octets with odd parity in each low bit
/// (RFC 2433 appendix B.3, RFC 2759 section 9.3).
pub fn expand_des_key(key: &[u8; 7]) -> [u8; 8] {
    let bits = key.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let mut out = [0u8; 8];
    for (i, slot) in out.iter_mut().enumerate() {
        // Seven key bits, most significant first, then the parity bit.
        let seven = ((bits >> (49 - 7 * i)) & 0x7f) as u8;
        let byte = seven << 1;
        *slot = byte | u8::from(byte.count_ones().is_multiple_of(2));
    }
    out
}

/// DesEncrypt (RFC 2433 appendix A.4): one DES block with a 7-octet key.
fn des_encrypt(clear: &[u8; 8], key: &[u8]) -> [u8; 8] {
    let mut key7 = [0u8; 7];
    key7.copy_from_slice(&key[..7]);
    let des = Des::new(&Array::from(expand_des_key(&key7)));
    let mut block = Array::from(*clear);
    des.encrypt_block(&mut block);
    block.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2433 appendix B.2.
    const CHALLENGE: [u8; 8] = [0x10, 0x2D, 0xB5, 0xDF, 0x08, 0x5D, 0x30, 0x41];
    const MYPW_HASH: [u8; 16] = [
        0xFC, 0x15, 0x6A, 0xF7, 0xED, 0xCD, 0x6C, 0x0E, 0xDD, 0xE3, 0x33, 0x7D, 0x42, 0x7F, 0x4E,
        0xAC,
    ];

    #[test]
    fn rfc2433_appendix_b2_hash_example() {
        assert_eq!(
            password_to_unicode(b"MyPw"),
            [0x4D, 0x00, 0x79, 0x00, 0x50, 0x00, 0x77, 0x00]
        );
        assert_eq!(nt_password_hash(b"MyPw"), MYPW_HASH);
        assert_eq!(
            nt_challenge_response(&CHALLENGE, b"MyPw"),
            [
                0x4E, 0x9D, 0x3C, 0x8F, 0x9C, 0xFD, 0x38, 0x5D, 0x5B, 0xF4, 0xD3, 0x24, 0x67, 0x91,
                0x95, 0x6C, 0xA4, 0xC3, 0x51, 0xAB, 0x40, 0x9A, 0x3D, 0x61
            ]
        );
    }

    #[test]
    fn rfc2433_appendix_b3_des_key_generation() {
        assert_eq!(
            expand_des_key(&[0xFC, 0x15, 0x6A, 0xF7, 0xED, 0xCD, 0x6C]),
            [0xFD, 0x0B, 0x5B, 0x5E, 0x7F, 0x6E, 0x34, 0xD9]
        );
        assert_eq!(
            expand_des_key(&[0x0E, 0xDD, 0xE3, 0x33, 0x7D, 0x42, 0x7F]),
            [0x0E, 0x6E, 0x79, 0x67, 0x37, 0xEA, 0x08, 0xFE]
        );
    }

    #[test]
    fn rfc3079_section_2_5_hashes_of_client_pass() {
        // RFC 3079 section 2.5.1 step 1 and section 2.5.3 steps 1 and 2.
        assert_eq!(
            lm_password_hash(b"clientPass"),
            [
                0x76, 0xa1, 0x52, 0x93, 0x60, 0x96, 0xd7, 0x83, 0x0e, 0x23, 0x90, 0x22, 0x74, 0x04,
                0xaf, 0xd2
            ]
        );
        let hash = nt_password_hash(b"clientPass");
        assert_eq!(
            hash,
            [
                0x44, 0xEB, 0xBA, 0x8D, 0x53, 0x12, 0xB8, 0xD6, 0x11, 0x47, 0x44, 0x11, 0xF5, 0x69,
                0x89, 0xAE
            ]
        );
        assert_eq!(
            hash_nt_password_hash(&hash),
            [
                0x41, 0xC0, 0x0C, 0x58, 0x4B, 0xD2, 0xD9, 0x1C, 0x40, 0x17, 0xA2, 0xA1, 0x2F, 0xA5,
                0x9F, 0x3F
            ]
        );
    }

    #[test]
    fn lm_hash_is_case_insensitive_and_cut_at_14() {
        assert_eq!(
            lm_password_hash(b"CLIENTPASS"),
            lm_password_hash(b"clientPass")
        );
        assert_eq!(
            lm_password_hash(b"abcdefghijklmnXYZ"),
            lm_password_hash(b"ABCDEFGHIJKLMN")
        );
        // The LM response goes through the same ChallengeResponse.
        assert_eq!(
            lm_challenge_response(&CHALLENGE, b"clientpass"),
            challenge_response(&CHALLENGE, &lm_password_hash(b"CLIENTPASS"))
        );
    }

    #[test]
    fn non_utf8_secrets_widen_octet_by_octet() {
        assert_eq!(password_to_unicode(&[0xe9, b'a']), [0xe9, 0, b'a', 0]);
        // "é" in UTF-8 is U+00E9 in UTF-16: both spellings hash alike.
        assert_eq!(nt_password_hash("é".as_bytes()), nt_password_hash(&[0xe9]));
    }

    #[test]
    fn implicit_retry_adds_23_to_the_first_octet() {
        assert_eq!(implicit_retry_challenge(&CHALLENGE)[0], 0x10 + 23);
        assert_eq!(implicit_retry_challenge(&[0xff; 8])[0], 22);
        assert_eq!(implicit_retry_challenge(&CHALLENGE)[1..], CHALLENGE[1..]);
    }
}
