//! CCP Configuration Options (RFC 1962 section 4): the MPPE/MPPC option,
//! type 18 (RFC 3078 section 2, RFC 2118 section 2), with its 32-bit
//! Supported Bits; every other compression option is kept raw.

use core::fmt;

use crate::{
    mppe::{KeyLength, MppeParams},
    wire::{
        Error, Result,
        cp::{OptionsWriter, RawOption, push_option},
    },
};

/// CCP option type numbers (RFC 1962 section 4, IANA).
pub mod option_type {
    /// Microsoft PPC: MPPC (RFC 2118) and MPPE (RFC 3078).
    pub const MPPE: u8 = 18;
}

/// The Supported Bits of the MPPE/MPPC option (RFC 3078 section 2.1,
/// RFC 2118 section 2), most significant octet first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SupportedBits(pub u32);

impl SupportedBits {
    /// H: stateless mode, a new key for every packet (RFC 3078 section 2.1).
    pub const H: u32 = 0x0100_0000;
    /// M: 56-bit session keys.
    pub const M: u32 = 0x0000_0080;
    /// S: 128-bit session keys.
    pub const S: u32 = 0x0000_0040;
    /// L: 40-bit session keys.
    pub const L: u32 = 0x0000_0020;
    /// D: obsolete; never set by current implementations.
    pub const D: u32 = 0x0000_0010;
    /// C: MPPC compression (RFC 2118).
    pub const C: u32 = 0x0000_0001;
    /// Every bit the RFCs define.
    pub const KNOWN: u32 = Self::H | Self::M | Self::S | Self::L | Self::D | Self::C;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    /// The key lengths offered, strongest first.
    pub fn key_lengths(self) -> impl Iterator<Item = KeyLength> {
        [
            (Self::S, KeyLength::Bits128),
            (Self::M, KeyLength::Bits56),
            (Self::L, KeyLength::Bits40),
        ]
        .into_iter()
        .filter(move |(bit, _)| self.has(*bit))
        .map(|(_, k)| k)
    }

    /// The bit that offers `key`.
    pub fn key_bit(key: KeyLength) -> u32 {
        match key {
            KeyLength::Bits40 => Self::L,
            KeyLength::Bits56 => Self::M,
            KeyLength::Bits128 => Self::S,
        }
    }

    /// The bits that name exactly `params`.
    pub fn from_params(params: MppeParams) -> Self {
        let h = if params.stateless { Self::H } else { 0 };
        SupportedBits(h | Self::key_bit(params.key_length))
    }

    /// The parameters these bits name, when they name exactly one
    /// combination: one key length, no MPPC, no obsolete or unknown bit.
    pub fn as_params(self) -> Option<MppeParams> {
        let mut keys = self.key_lengths();
        let key_length = keys.next()?;
        if keys.next().is_some() || self.0 & !(Self::H | Self::M | Self::S | Self::L) != 0 {
            return None;
        }
        Some(MppeParams {
            key_length,
            stateless: self.has(Self::H),
        })
    }
}

impl fmt::Debug for SupportedBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}(", self.0)?;
        for (bit, name) in [
            (Self::H, "H"),
            (Self::M, "M"),
            (Self::S, "S"),
            (Self::L, "L"),
            (Self::D, "D"),
            (Self::C, "C"),
        ] {
            if self.has(bit) {
                f.write_str(name)?;
            }
        }
        f.write_str(")")
    }
}

/// One CCP Configuration Option (RFC 1962 section 4). Unknown types
/// (Predictor, Stac, Deflate ...) keep their raw data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcpOption<'a> {
    /// Microsoft PPC, type 18, length 6 (RFC 3078 section 2, RFC 2118 section 2).
    Mppe(SupportedBits),
    /// Any other type, kept raw.
    Unknown { kind: u8, data: &'a [u8] },
}

impl<'a> CcpOption<'a> {
    /// Interprets a raw option; type 18 with a length other than 6 is an error.
    pub fn parse(raw: RawOption<'a>) -> Result<Self> {
        match (raw.kind, raw.data) {
            (option_type::MPPE, [a, b, c, d]) => {
                Ok(CcpOption::Mppe(SupportedBits(u32::from_be_bytes([
                    *a, *b, *c, *d,
                ]))))
            }
            (option_type::MPPE, _) => Err(Error::BadLength {
                what: "CCP MPPE option",
                len: raw.buffer_len(),
                why: "must be 6",
            }),
            (kind, data) => Ok(CcpOption::Unknown { kind, data }),
        }
    }

    /// The option type.
    pub fn kind(&self) -> u8 {
        match self {
            CcpOption::Mppe(_) => option_type::MPPE,
            CcpOption::Unknown { kind, .. } => *kind,
        }
    }

    /// The option's data bytes (after type and length).
    pub fn data_vec(&self) -> Vec<u8> {
        match self {
            CcpOption::Mppe(bits) => bits.0.to_be_bytes().to_vec(),
            CcpOption::Unknown { data, .. } => data.to_vec(),
        }
    }

    /// Length of the emitted option, type and length octets included.
    pub fn buffer_len(&self) -> usize {
        match self {
            CcpOption::Mppe(_) => 6,
            CcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Appends the option to a writer.
    pub fn emit(&self, writer: &mut OptionsWriter<'_>) -> Result<()> {
        match self {
            CcpOption::Mppe(bits) => writer.push(self.kind(), &bits.0.to_be_bytes()),
            CcpOption::Unknown { kind, data } => writer.push(*kind, data),
        }
    }

    /// Appends the option to a vector.
    pub fn push_to(&self, out: &mut Vec<u8>) -> Result<()> {
        push_option(out, self.kind(), &self.data_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cp::Options;

    #[test]
    fn known_bytes_to_fields_and_back() {
        // MPPE stateless 128-bit, then Deflate (RFC 1979) kept raw.
        let bytes = [0x12, 0x06, 0x01, 0x00, 0x00, 0x40, 0x1a, 0x04, 0x78, 0x00];
        let options: Vec<_> = Options::new(&bytes)
            .map(|o| CcpOption::parse(o.unwrap()).unwrap())
            .collect();
        assert_eq!(
            options,
            [
                CcpOption::Mppe(SupportedBits(SupportedBits::H | SupportedBits::S)),
                CcpOption::Unknown {
                    kind: 0x1a,
                    data: &[0x78, 0x00]
                },
            ]
        );
        let mut buf = [0xa5; 12];
        let mut w = OptionsWriter::new(&mut buf);
        for o in &options {
            o.emit(&mut w).unwrap();
        }
        assert_eq!(&buf[..10], bytes);
        assert_eq!(&buf[10..], [0xa5, 0xa5]);
        let mut v = Vec::new();
        for o in &options {
            o.push_to(&mut v).unwrap();
        }
        assert_eq!(v, bytes);
    }

    #[test]
    fn bit_values_follow_rfc3078() {
        // RFC 3078 section 2.1 numbers the bits from the most significant
        // (bit 31) down: H is bit 24, M 7, S 6, L 5, D 4, C 0.
        assert_eq!(SupportedBits::H, 1 << 24);
        assert_eq!(SupportedBits::M, 1 << 7);
        assert_eq!(SupportedBits::S, 1 << 6);
        assert_eq!(SupportedBits::L, 1 << 5);
        assert_eq!(SupportedBits::D, 1 << 4);
        assert_eq!(SupportedBits::C, 1);
        assert_eq!(
            format!("{:?}", SupportedBits(0x0100_00e1)),
            "0x010000e1(HMSLC)"
        );
    }

    #[test]
    fn params_mapping() {
        let hs = SupportedBits(SupportedBits::H | SupportedBits::S);
        let p = hs.as_params().unwrap();
        assert_eq!(
            p,
            MppeParams {
                key_length: KeyLength::Bits128,
                stateless: true
            }
        );
        assert_eq!(SupportedBits::from_params(p), hs);
        let l = SupportedBits(SupportedBits::L);
        assert_eq!(
            l.as_params(),
            Some(MppeParams {
                key_length: KeyLength::Bits40,
                stateless: false
            })
        );
        assert_eq!(
            SupportedBits(SupportedBits::S | SupportedBits::L).as_params(),
            None
        );
        assert_eq!(
            SupportedBits(SupportedBits::S | SupportedBits::C).as_params(),
            None
        );
        assert_eq!(SupportedBits(SupportedBits::H).as_params(), None);
        assert_eq!(
            SupportedBits(SupportedBits::S | 0x0200_0000).as_params(),
            None
        );
        let all = SupportedBits(SupportedBits::KNOWN);
        assert_eq!(
            all.key_lengths().collect::<Vec<_>>(),
            [KeyLength::Bits128, KeyLength::Bits56, KeyLength::Bits40]
        );
    }

    #[test]
    fn wrong_length_is_malformed() {
        for bytes in [
            &[0x12u8, 0x05, 0, 0, 0][..],
            &[0x12, 0x07, 0, 0, 0, 0, 0],
            &[0x12, 0x02],
        ] {
            let raw = Options::new(bytes).next().unwrap().unwrap();
            assert!(
                matches!(CcpOption::parse(raw), Err(Error::BadLength { .. })),
                "{bytes:02x?}"
            );
        }
    }
}
