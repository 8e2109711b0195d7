//! MPPE, Microsoft Point-to-Point Encryption (RFC 3078), with keys derived
//! per RFC 3079: key derivation ([`keys`]) and the per-packet cipher with
//! coherency-count handling ([`cipher`]), and the bound on the key changes
//! a receiver makes for packets that jump ahead ([`budget`]).

pub mod budget;
pub mod cipher;
pub mod keys;
pub mod rc4;

/// MPPE session key length (RFC 3078 section 2: the L, M and S bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyLength {
    Bits40,
    Bits56,
    Bits128,
}

impl KeyLength {
    pub fn bits(self) -> u16 {
        match self {
            KeyLength::Bits40 => 40,
            KeyLength::Bits56 => 56,
            KeyLength::Bits128 => 128,
        }
    }

    pub fn from_bits(bits: u16) -> Option<Self> {
        match bits {
            40 => Some(KeyLength::Bits40),
            56 => Some(KeyLength::Bits56),
            128 => Some(KeyLength::Bits128),
            _ => None,
        }
    }
}

/// What CCP negotiated for MPPE: the key length and whether keys change
/// with every packet (stateless, the H bit) or every 256 packets (stateful).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MppeParams {
    pub key_length: KeyLength,
    pub stateless: bool,
}

/// Which end of the link we are: the server derives its send key as the
/// client derives its receive key (RFC 3079 section 3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}
