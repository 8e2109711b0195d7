//! LCP Configuration Options (RFC 1661 section 6; ACCM from RFC 1662
//! section 7.1; Callback from RFC 1570 section 2.3; MRRU from RFC 1990
//! section 5.1.1), parsed from and emitted as [`RawOption`]s. Options whose
//! length the RFC fixes are checked exactly: a wrong length is a malformed
//! option, which the negotiation rejects.

use crate::{
    auth::AuthMethod,
    wire::{
        Error, Result,
        cp::{OptionsWriter, RawOption, push_option},
    },
};

/// LCP option type numbers (RFC 1661 section 6, IANA "PPP LCP Configuration
/// Option Types").
pub mod option_type {
    pub const MAXIMUM_RECEIVE_UNIT: u8 = 1;
    pub const ASYNC_CONTROL_CHARACTER_MAP: u8 = 2;
    pub const AUTHENTICATION_PROTOCOL: u8 = 3;
    pub const QUALITY_PROTOCOL: u8 = 4;
    pub const MAGIC_NUMBER: u8 = 5;
    pub const PROTOCOL_FIELD_COMPRESSION: u8 = 7;
    pub const ADDRESS_AND_CONTROL_FIELD_COMPRESSION: u8 = 8;
    pub const CALLBACK: u8 = 13;
    pub const MULTILINK_MRRU: u8 = 17;
}

/// The PPP protocol number of Link Quality Report (RFC 1989), the only
/// Quality-Protocol with a fixed layout.
const LINK_QUALITY_REPORT: u16 = 0xC025;

/// One LCP Configuration Option (RFC 1661 section 6 and the RFCs named on
/// each variant). Unknown types keep their raw data so a Configure-Reject
/// can echo them unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LcpOption<'a> {
    /// Maximum-Receive-Unit (RFC 1661 section 6.1), length 4.
    MaximumReceiveUnit(u16),
    /// Async-Control-Character-Map (RFC 1662 section 7.1), length 6.
    AsyncControlCharacterMap(u32),
    /// Authentication-Protocol (RFC 1661 section 6.2): the protocol and its
    /// data. CHAP (RFC 1994 section 3) carries exactly one algorithm octet
    /// (5 MD5, 0x80 MS-CHAPv1, 0x81 MS-CHAPv2); PAP (RFC 1334 section 3) none.
    AuthenticationProtocol { protocol: u16, data: &'a [u8] },
    /// Quality-Protocol (RFC 1661 section 6.3); LQR (RFC 1989 section 2.5)
    /// carries a 4-byte reporting period.
    QualityProtocol { protocol: u16, data: &'a [u8] },
    /// Magic-Number (RFC 1661 section 6.4), length 6.
    MagicNumber(u32),
    /// Protocol-Field-Compression (RFC 1661 section 6.5), length 2.
    ProtocolFieldCompression,
    /// Address-and-Control-Field-Compression (RFC 1661 section 6.6), length 2.
    AddressAndControlFieldCompression,
    /// Callback (RFC 1570 section 2.3): an operation and a message.
    Callback { operation: u8, message: &'a [u8] },
    /// Multilink Maximum-Received-Reconstructed-Unit (RFC 1990 section 5.1.1), length 4.
    MultilinkMrru(u16),
    /// Any other type, kept raw.
    Unknown { kind: u8, data: &'a [u8] },
}

const CHAP_MD5: &[u8] = &[0x05];
const MS_CHAP_V1: &[u8] = &[0x80];
const MS_CHAP_V2: &[u8] = &[0x81];

fn exact(raw: &RawOption<'_>, want: usize, what: &'static str, why: &'static str) -> Result<()> {
    if raw.data.len() == want {
        Ok(())
    } else {
        Err(Error::BadLength {
            what,
            len: raw.buffer_len(),
            why,
        })
    }
}

fn be16(data: &[u8]) -> u16 {
    match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn be32(data: &[u8]) -> u32 {
    match data {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

impl<'a> LcpOption<'a> {
    /// The Authentication-Protocol option that asks the peer to
    /// authenticate with `method`.
    pub fn authentication(method: AuthMethod) -> LcpOption<'static> {
        let data = match method {
            AuthMethod::ChapMd5 => CHAP_MD5,
            AuthMethod::MsChapV1 => MS_CHAP_V1,
            AuthMethod::MsChapV2 => MS_CHAP_V2,
            AuthMethod::Pap => &[],
        };
        LcpOption::AuthenticationProtocol {
            protocol: method.ppp_protocol(),
            data,
        }
    }

    /// The method an Authentication-Protocol option names, if we know it.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        match *self {
            LcpOption::AuthenticationProtocol { protocol, data } => AuthMethod::from_lcp_option(
                protocol,
                data.first().copied().filter(|_| data.len() == 1),
            ),
            _ => None,
        }
    }

    /// Interprets a raw option; a known type with a wrong length is an error.
    pub fn parse(raw: RawOption<'a>) -> Result<Self> {
        use option_type::*;
        let d = raw.data;
        Ok(match raw.kind {
            MAXIMUM_RECEIVE_UNIT => {
                exact(&raw, 2, "LCP Maximum-Receive-Unit option", "must be 4")?;
                LcpOption::MaximumReceiveUnit(be16(d))
            }
            ASYNC_CONTROL_CHARACTER_MAP => {
                exact(
                    &raw,
                    4,
                    "LCP Async-Control-Character-Map option",
                    "must be 6",
                )?;
                LcpOption::AsyncControlCharacterMap(be32(d))
            }
            AUTHENTICATION_PROTOCOL => {
                let [hi, lo, data @ ..] = d else {
                    return Err(Error::BadLength {
                        what: "LCP Authentication-Protocol option",
                        len: raw.buffer_len(),
                        why: "must be at least 4",
                    });
                };
                let protocol = u16::from_be_bytes([*hi, *lo]);
                match protocol {
                    0xC223 if data.len() != 1 => {
                        return Err(Error::BadLength {
                            what: "LCP Authentication-Protocol option (CHAP)",
                            len: raw.buffer_len(),
                            why: "must be 5: one algorithm octet",
                        });
                    }
                    0xC023 if !data.is_empty() => {
                        return Err(Error::BadLength {
                            what: "LCP Authentication-Protocol option (PAP)",
                            len: raw.buffer_len(),
                            why: "must be 4",
                        });
                    }
                    _ => {}
                }
                LcpOption::AuthenticationProtocol { protocol, data }
            }
            QUALITY_PROTOCOL => {
                let [hi, lo, data @ ..] = d else {
                    return Err(Error::BadLength {
                        what: "LCP Quality-Protocol option",
                        len: raw.buffer_len(),
                        why: "must be at least 4",
                    });
                };
                let protocol = u16::from_be_bytes([*hi, *lo]);
                if protocol == LINK_QUALITY_REPORT && data.len() != 4 {
                    return Err(Error::BadLength {
                        what: "LCP Quality-Protocol option (LQR)",
                        len: raw.buffer_len(),
                        why: "must be 8: a 4-byte reporting period",
                    });
                }
                LcpOption::QualityProtocol { protocol, data }
            }
            MAGIC_NUMBER => {
                exact(&raw, 4, "LCP Magic-Number option", "must be 6")?;
                LcpOption::MagicNumber(be32(d))
            }
            PROTOCOL_FIELD_COMPRESSION => {
                exact(
                    &raw,
                    0,
                    "LCP Protocol-Field-Compression option",
                    "must be 2",
                )?;
                LcpOption::ProtocolFieldCompression
            }
            ADDRESS_AND_CONTROL_FIELD_COMPRESSION => {
                exact(
                    &raw,
                    0,
                    "LCP Address-and-Control-Field-Compression option",
                    "must be 2",
                )?;
                LcpOption::AddressAndControlFieldCompression
            }
            CALLBACK => {
                let [operation, message @ ..] = d else {
                    return Err(Error::BadLength {
                        what: "LCP Callback option",
                        len: raw.buffer_len(),
                        why: "must be at least 3",
                    });
                };
                LcpOption::Callback {
                    operation: *operation,
                    message,
                }
            }
            MULTILINK_MRRU => {
                exact(&raw, 2, "LCP Multilink-MRRU option", "must be 4")?;
                LcpOption::MultilinkMrru(be16(d))
            }
            kind => LcpOption::Unknown { kind, data: d },
        })
    }

    /// The option type.
    pub fn kind(&self) -> u8 {
        use option_type::*;
        match self {
            LcpOption::MaximumReceiveUnit(_) => MAXIMUM_RECEIVE_UNIT,
            LcpOption::AsyncControlCharacterMap(_) => ASYNC_CONTROL_CHARACTER_MAP,
            LcpOption::AuthenticationProtocol { .. } => AUTHENTICATION_PROTOCOL,
            LcpOption::QualityProtocol { .. } => QUALITY_PROTOCOL,
            LcpOption::MagicNumber(_) => MAGIC_NUMBER,
            LcpOption::ProtocolFieldCompression => PROTOCOL_FIELD_COMPRESSION,
            LcpOption::AddressAndControlFieldCompression => ADDRESS_AND_CONTROL_FIELD_COMPRESSION,
            LcpOption::Callback { .. } => CALLBACK,
            LcpOption::MultilinkMrru(_) => MULTILINK_MRRU,
            LcpOption::Unknown { kind, .. } => *kind,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            LcpOption::MaximumReceiveUnit(_) | LcpOption::MultilinkMrru(_) => 2,
            LcpOption::AsyncControlCharacterMap(_) | LcpOption::MagicNumber(_) => 4,
            LcpOption::AuthenticationProtocol { data, .. }
            | LcpOption::QualityProtocol { data, .. } => 2 + data.len(),
            LcpOption::ProtocolFieldCompression | LcpOption::AddressAndControlFieldCompression => 0,
            LcpOption::Callback { message, .. } => 1 + message.len(),
            LcpOption::Unknown { data, .. } => data.len(),
        }
    }

    fn fill(&self, out: &mut [u8]) {
        match *self {
            LcpOption::MaximumReceiveUnit(v) | LcpOption::MultilinkMrru(v) => {
                out.copy_from_slice(&v.to_be_bytes())
            }
            LcpOption::AsyncControlCharacterMap(v) | LcpOption::MagicNumber(v) => {
                out.copy_from_slice(&v.to_be_bytes())
            }
            LcpOption::AuthenticationProtocol { protocol, data }
            | LcpOption::QualityProtocol { protocol, data } => {
                let (p, d) = out.split_at_mut(2);
                p.copy_from_slice(&protocol.to_be_bytes());
                d.copy_from_slice(data);
            }
            LcpOption::ProtocolFieldCompression | LcpOption::AddressAndControlFieldCompression => {}
            LcpOption::Callback { operation, message } => {
                let (op, m) = out.split_at_mut(1);
                op.copy_from_slice(&[operation]);
                m.copy_from_slice(message);
            }
            LcpOption::Unknown { data, .. } => out.copy_from_slice(data),
        }
    }

    /// Length of the emitted option, type and length octets included.
    pub fn buffer_len(&self) -> usize {
        2 + self.data_len()
    }

    /// Appends the option to a writer.
    pub fn emit(&self, writer: &mut OptionsWriter<'_>) -> Result<()> {
        writer.push_with(self.kind(), self.data_len(), |d| self.fill(d))
    }

    /// Appends the option to a vector.
    pub fn push_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut data = vec![0; self.data_len()];
        self.fill(&mut data);
        push_option(out, self.kind(), &data)
    }

    /// The option's data bytes (after type and length).
    pub fn data_vec(&self) -> Vec<u8> {
        let mut data = vec![0; self.data_len()];
        self.fill(&mut data);
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cp::Options;

    fn parse_all(bytes: &[u8]) -> Vec<LcpOption<'_>> {
        Options::new(bytes)
            .map(|o| LcpOption::parse(o.unwrap()).unwrap())
            .collect()
    }

    /// A Windows client's Configure-Request options, written from RFC 1661
    /// section 6 and RFC 1570 section 2.3: MRU 1400, Magic-Number, PFC, ACFC,
    /// Callback operation 6 (Callback Control Protocol).
    const WINDOWS: [u8; 21] = [
        0x01, 0x04, 0x05, 0x78, // MRU 1400
        0x05, 0x06, 0x4d, 0x2f, 0x11, 0x7e, // Magic-Number
        0x07, 0x02, // PFC
        0x08, 0x02, // ACFC
        0x0d, 0x03, 0x06, // Callback, operation 6
        0x11, 0x04, 0x05, 0xf4, // MRRU 1524
    ];

    /// A pppd server's options: ACCM 0, CHAP with MS-CHAPv2, Magic-Number,
    /// PFC, ACFC (RFC 1662 section 7.1, RFC 1994 section 3, RFC 2759).
    const PPPD: [u8; 21] = [
        0x02, 0x06, 0x00, 0x00, 0x00, 0x00, // ACCM 0
        0x03, 0x05, 0xc2, 0x23, 0x81, // CHAP, MS-CHAPv2
        0x05, 0x06, 0x01, 0x02, 0x03, 0x04, // Magic-Number
        0x07, 0x02, 0x08, 0x02, // PFC, ACFC
    ];

    #[test]
    fn known_bytes_to_fields() {
        assert_eq!(
            parse_all(&WINDOWS),
            [
                LcpOption::MaximumReceiveUnit(1400),
                LcpOption::MagicNumber(0x4d2f_117e),
                LcpOption::ProtocolFieldCompression,
                LcpOption::AddressAndControlFieldCompression,
                LcpOption::Callback {
                    operation: 6,
                    message: &[]
                },
                LcpOption::MultilinkMrru(1524),
            ]
        );
        let pppd = parse_all(&PPPD);
        assert_eq!(
            pppd,
            [
                LcpOption::AsyncControlCharacterMap(0),
                LcpOption::AuthenticationProtocol {
                    protocol: 0xc223,
                    data: &[0x81]
                },
                LcpOption::MagicNumber(0x0102_0304),
                LcpOption::ProtocolFieldCompression,
                LcpOption::AddressAndControlFieldCompression,
            ]
        );
        assert_eq!(pppd[1].auth_method(), Some(AuthMethod::MsChapV2));
    }

    #[test]
    fn fields_to_bytes() {
        for (bytes, options) in [
            (&WINDOWS[..], parse_all(&WINDOWS)),
            (&PPPD[..], parse_all(&PPPD)),
        ] {
            let mut buf = vec![0xa5; bytes.len() + 3];
            let mut w = OptionsWriter::new(&mut buf);
            for o in &options {
                o.emit(&mut w).unwrap();
            }
            assert_eq!(w.len(), bytes.len());
            assert_eq!(&buf[..bytes.len()], bytes);
            assert_eq!(&buf[bytes.len()..], [0xa5; 3]);
            let mut v = Vec::new();
            for o in &options {
                assert_eq!(o.buffer_len(), 2 + o.data_vec().len());
                o.push_to(&mut v).unwrap();
            }
            assert_eq!(v, bytes);
        }
    }

    #[test]
    fn authentication_options_for_every_method() {
        let cases = [
            (AuthMethod::MsChapV2, &[0x03, 0x05, 0xc2, 0x23, 0x81][..]),
            (AuthMethod::MsChapV1, &[0x03, 0x05, 0xc2, 0x23, 0x80]),
            (AuthMethod::ChapMd5, &[0x03, 0x05, 0xc2, 0x23, 0x05]),
            (AuthMethod::Pap, &[0x03, 0x04, 0xc0, 0x23]),
        ];
        for (method, bytes) in cases {
            let mut v = Vec::new();
            LcpOption::authentication(method).push_to(&mut v).unwrap();
            assert_eq!(v, bytes, "{method:?}");
            let parsed = parse_all(bytes);
            assert_eq!(parsed[0].auth_method(), Some(method));
        }
        // EAP is kept, but no engine knows it.
        let eap = parse_all(&[0x03, 0x04, 0xc2, 0x27]);
        assert_eq!(
            eap[0],
            LcpOption::AuthenticationProtocol {
                protocol: 0xc227,
                data: &[]
            }
        );
        assert_eq!(eap[0].auth_method(), None);
    }

    #[test]
    fn wrong_lengths_are_malformed() {
        let bad: [&[u8]; 12] = [
            &[0x01, 0x03, 0x05],                   // MRU length 3
            &[0x01, 0x05, 0x05, 0x78, 0x00],       // MRU length 5
            &[0x02, 0x04, 0x00, 0x00],             // ACCM length 4
            &[0x03, 0x03, 0xc2],                   // auth length 3
            &[0x03, 0x04, 0xc2, 0x23],             // CHAP without algorithm
            &[0x03, 0x06, 0xc2, 0x23, 0x81, 0x00], // CHAP with 2 octets
            &[0x03, 0x05, 0xc0, 0x23, 0x00],       // PAP with data
            &[0x04, 0x06, 0xc0, 0x25, 0x00, 0x00], // LQR without full period
            &[0x05, 0x05, 0x01, 0x02, 0x03],       // magic length 5
            &[0x07, 0x03, 0x00],                   // PFC length 3
            &[0x0d, 0x02],                         // callback without operation
            &[0x11, 0x02],                         // MRRU length 2
        ];
        for bytes in bad {
            let raw = Options::new(bytes).next().unwrap().unwrap();
            assert!(
                matches!(LcpOption::parse(raw), Err(Error::BadLength { .. })),
                "{bytes:02x?} must be malformed"
            );
        }
        assert!(matches!(
            LcpOption::parse(Options::new(&[0x08, 0x03, 0]).next().unwrap().unwrap()),
            Err(Error::BadLength { len: 3, .. })
        ));
    }

    #[test]
    fn unknown_and_quality_kept_raw() {
        let bytes = [
            0x00, 0x05, 0xaa, 0xbb, 0xcc, 0x04, 0x08, 0xc0, 0x25, 0, 0, 0x03, 0xe8,
        ];
        let options = parse_all(&bytes);
        assert_eq!(
            options,
            [
                LcpOption::Unknown {
                    kind: 0,
                    data: &[0xaa, 0xbb, 0xcc]
                },
                LcpOption::QualityProtocol {
                    protocol: 0xc025,
                    data: &[0, 0, 0x03, 0xe8]
                },
            ]
        );
        let mut v = Vec::new();
        for o in &options {
            o.push_to(&mut v).unwrap();
        }
        assert_eq!(v, bytes);
    }
}
