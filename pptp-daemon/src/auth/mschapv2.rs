//! MS-CHAPv2 algorithms (RFC 2759 section 8): ChallengeHash,
//! GenerateNTResponse, GenerateAuthenticatorResponse and
//! CheckAuthenticatorResponse. Password change (sections 8.9 to 8.13) is
//! not implemented.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::mschap::{challenge_response, hash_nt_password_hash, nt_password_hash};

/// Length of the Authenticator and Peer challenges (RFC 2759 sections 3, 4).
pub const CHALLENGE_LEN: usize = 16;

/// "Magic server to client signing constant" (RFC 2759 section 8.7).
const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
/// "Pad to make it do more than one iteration" (RFC 2759 section 8.7).
const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";

/// The user name without a `DOMAIN\` prefix: what ChallengeHash hashes
/// (RFC 2759 section 8.2; section 4 shows the `BIGCO\johndoe` form).
pub fn strip_domain(user_name: &[u8]) -> &[u8] {
    match user_name.iter().rposition(|&b| b == b'\\') {
        Some(i) => &user_name[i + 1..],
        None => user_name,
    }
}

/// ChallengeHash (RFC 2759 section 8.2). `user_name` is the name as the
/// peer sent it; a `DOMAIN\` prefix is left out of the hash.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
) -> [u8; 8] {
    let mut sha = Sha1::new();
    sha.update(peer_challenge);
    sha.update(authenticator_challenge);
    sha.update(strip_domain(user_name));
    let digest = sha.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// GenerateNTResponse (RFC 2759 section 8.1) from the NT password hash.
pub fn generate_nt_response_from_hash(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user_name: &[u8],
    password_hash: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    challenge_response(&challenge, password_hash)
}

/// GenerateNTResponse (RFC 2759 section 8.1).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user_name: &[u8],
    password: &[u8],
) -> [u8; 24] {
    generate_nt_response_from_hash(
        authenticator_challenge,
        peer_challenge,
        user_name,
        &nt_password_hash(password),
    )
}

/// GenerateAuthenticatorResponse (RFC 2759 section 8.7) from the hash of
/// the NT password hash; the 20 octets that `S=` carries as hex.
pub fn generate_authenticator_response_from_hash_hash(
    password_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
) -> [u8; 20] {
    let mut sha = Sha1::new();
    sha.update(password_hash_hash);
    sha.update(nt_response);
    sha.update(MAGIC1);
    let digest = sha.finalize();
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    let mut sha = Sha1::new();
    sha.update(digest);
    sha.update(challenge);
    sha.update(MAGIC2);
    sha.finalize().into()
}

/// GenerateAuthenticatorResponse (RFC 2759 section 8.7).
pub fn generate_authenticator_response(
    password: &[u8],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
) -> [u8; 20] {
    generate_authenticator_response_from_hash_hash(
        &hash_nt_password_hash(&nt_password_hash(password)),
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user_name,
    )
}

/// CheckAuthenticatorResponse (RFC 2759 section 8.8), in constant time.
pub fn check_authenticator_response(
    password: &[u8],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
    received: &[u8; 20],
) -> bool {
    let mine = generate_authenticator_response(
        password,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user_name,
    );
    mine.ct_eq(received).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2759 section 9.2.
    const USER: &[u8] = b"User";
    const PASSWORD: &[u8] = b"clientPass";
    const AUTHENTICATOR_CHALLENGE: [u8; 16] = [
        0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26, 0x26,
        0x28,
    ];
    const PEER_CHALLENGE: [u8; 16] = [
        0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33, 0x7C,
        0x7E,
    ];
    const NT_RESPONSE: [u8; 24] = [
        0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E, 0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD, 0x83,
        0x54, 0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF,
    ];
    /// "S=407A5589115FD0D6209F510FE9C04566932CDA56"
    const AUTHENTICATOR_RESPONSE: [u8; 20] = [
        0x40, 0x7A, 0x55, 0x89, 0x11, 0x5F, 0xD0, 0xD6, 0x20, 0x9F, 0x51, 0x0F, 0xE9, 0xC0, 0x45,
        0x66, 0x93, 0x2C, 0xDA, 0x56,
    ];

    #[test]
    fn rfc2759_section_9_2_hash_example() {
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTHENTICATOR_CHALLENGE, USER),
            [0xD0, 0x2E, 0x43, 0x86, 0xBC, 0xE9, 0x12, 0x26]
        );
        assert_eq!(
            generate_nt_response(&AUTHENTICATOR_CHALLENGE, &PEER_CHALLENGE, USER, PASSWORD),
            NT_RESPONSE
        );
        assert_eq!(
            generate_authenticator_response(
                PASSWORD,
                &NT_RESPONSE,
                &PEER_CHALLENGE,
                &AUTHENTICATOR_CHALLENGE,
                USER
            ),
            AUTHENTICATOR_RESPONSE
        );
    }

    #[test]
    fn check_authenticator_response_accepts_only_the_right_one() {
        let check = |password: &[u8], received: &[u8; 20]| {
            check_authenticator_response(
                password,
                &NT_RESPONSE,
                &PEER_CHALLENGE,
                &AUTHENTICATOR_CHALLENGE,
                USER,
                received,
            )
        };
        assert!(check(PASSWORD, &AUTHENTICATOR_RESPONSE));
        assert!(!check(b"clientPasS", &AUTHENTICATOR_RESPONSE));
        let mut wrong = AUTHENTICATOR_RESPONSE;
        wrong[19] ^= 1;
        assert!(!check(PASSWORD, &wrong));
    }

    #[test]
    fn the_domain_is_not_hashed() {
        assert_eq!(strip_domain(b"BIGCO\\johndoe"), b"johndoe");
        assert_eq!(strip_domain(b"a\\b\\c"), b"c");
        assert_eq!(strip_domain(b"johndoe"), b"johndoe");
        assert_eq!(
            generate_nt_response(
                &AUTHENTICATOR_CHALLENGE,
                &PEER_CHALLENGE,
                b"DOM\\User",
                PASSWORD
            ),
            NT_RESPONSE
        );
    }
}
