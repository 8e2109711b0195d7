//! IPCP Configuration Options (RFC 1332 sections 3.1 to 3.3, RFC 1877
//! section 1 for the DNS and NBNS addresses), parsed from and emitted as
//! [`RawOption`]s, with exact length checks.

use std::net::Ipv4Addr;

use crate::wire::{
    Error, Result,
    cp::{OptionsWriter, RawOption, push_option},
};

/// IPCP option type numbers (RFC 1332, RFC 1877).
pub mod option_type {
    /// Deprecated (RFC 1332 section 3.1); recognised so it can be rejected.
    pub const IP_ADDRESSES: u8 = 1;
    pub const IP_COMPRESSION_PROTOCOL: u8 = 2;
    pub const IP_ADDRESS: u8 = 3;
    pub const PRIMARY_DNS: u8 = 129;
    pub const PRIMARY_NBNS: u8 = 130;
    pub const SECONDARY_DNS: u8 = 131;
    pub const SECONDARY_NBNS: u8 = 132;
}

/// Van Jacobson compressed TCP/IP (RFC 1332 section 3.2).
pub const VAN_JACOBSON: u16 = 0x002D;

/// One IPCP Configuration Option (RFC 1332 section 3, RFC 1877 section 1).
/// Unknown types keep their raw data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcpOption<'a> {
    /// IP-Addresses (RFC 1332 section 3.1, deprecated), length 10.
    IpAddresses {
        source: Ipv4Addr,
        destination: Ipv4Addr,
    },
    /// IP-Compression-Protocol (RFC 1332 section 3.2); Van Jacobson's data
    /// is Max-Slot-Id and Comp-Slot-Id (length 6 exactly).
    IpCompressionProtocol { protocol: u16, data: &'a [u8] },
    /// IP-Address (RFC 1332 section 3.3), length 6.
    IpAddress(Ipv4Addr),
    /// Primary DNS Server Address (RFC 1877 section 1.1), length 6.
    PrimaryDns(Ipv4Addr),
    /// Primary NBNS Server Address (RFC 1877 section 1.2), length 6.
    PrimaryNbns(Ipv4Addr),
    /// Secondary DNS Server Address (RFC 1877 section 1.3), length 6.
    SecondaryDns(Ipv4Addr),
    /// Secondary NBNS Server Address (RFC 1877 section 1.4), length 6.
    SecondaryNbns(Ipv4Addr),
    /// Any other type, kept raw.
    Unknown { kind: u8, data: &'a [u8] },
}

fn addr(data: &[u8]) -> Ipv4Addr {
    match data {
        [a, b, c, d, ..] => Ipv4Addr::new(*a, *b, *c, *d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

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

impl<'a> IpcpOption<'a> {
    /// Interprets a raw option; a known type with a wrong length is an error.
    pub fn parse(raw: RawOption<'a>) -> Result<Self> {
        use option_type::*;
        let d = raw.data;
        Ok(match raw.kind {
            IP_ADDRESSES => {
                exact(&raw, 8, "IPCP IP-Addresses option", "must be 10")?;
                IpcpOption::IpAddresses {
                    source: addr(d),
                    destination: addr(d.get(4..).unwrap_or_default()),
                }
            }
            IP_COMPRESSION_PROTOCOL => {
                let [hi, lo, data @ ..] = d else {
                    return Err(Error::BadLength {
                        what: "IPCP IP-Compression-Protocol option",
                        len: raw.buffer_len(),
                        why: "must be at least 4",
                    });
                };
                let protocol = u16::from_be_bytes([*hi, *lo]);
                if protocol == VAN_JACOBSON && data.len() != 2 {
                    return Err(Error::BadLength {
                        what: "IPCP IP-Compression-Protocol option (Van Jacobson)",
                        len: raw.buffer_len(),
                        why: "must be 6",
                    });
                }
                IpcpOption::IpCompressionProtocol { protocol, data }
            }
            IP_ADDRESS => {
                exact(&raw, 4, "IPCP IP-Address option", "must be 6")?;
                IpcpOption::IpAddress(addr(d))
            }
            PRIMARY_DNS => {
                exact(&raw, 4, "IPCP Primary-DNS option", "must be 6")?;
                IpcpOption::PrimaryDns(addr(d))
            }
            PRIMARY_NBNS => {
                exact(&raw, 4, "IPCP Primary-NBNS option", "must be 6")?;
                IpcpOption::PrimaryNbns(addr(d))
            }
            SECONDARY_DNS => {
                exact(&raw, 4, "IPCP Secondary-DNS option", "must be 6")?;
                IpcpOption::SecondaryDns(addr(d))
            }
            SECONDARY_NBNS => {
                exact(&raw, 4, "IPCP Secondary-NBNS option", "must be 6")?;
                IpcpOption::SecondaryNbns(addr(d))
            }
            kind => IpcpOption::Unknown { kind, data: d },
        })
    }

    /// The option type.
    pub fn kind(&self) -> u8 {
        use option_type::*;
        match self {
            IpcpOption::IpAddresses { .. } => IP_ADDRESSES,
            IpcpOption::IpCompressionProtocol { .. } => IP_COMPRESSION_PROTOCOL,
            IpcpOption::IpAddress(_) => IP_ADDRESS,
            IpcpOption::PrimaryDns(_) => PRIMARY_DNS,
            IpcpOption::PrimaryNbns(_) => PRIMARY_NBNS,
            IpcpOption::SecondaryDns(_) => SECONDARY_DNS,
            IpcpOption::SecondaryNbns(_) => SECONDARY_NBNS,
            IpcpOption::Unknown { kind, .. } => *kind,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            IpcpOption::IpAddresses { .. } => 8,
            IpcpOption::IpCompressionProtocol { data, .. } => 2 + data.len(),
            IpcpOption::IpAddress(_)
            | IpcpOption::PrimaryDns(_)
            | IpcpOption::PrimaryNbns(_)
            | IpcpOption::SecondaryDns(_)
            | IpcpOption::SecondaryNbns(_) => 4,
            IpcpOption::Unknown { data, .. } => data.len(),
        }
    }

    fn fill(&self, out: &mut [u8]) {
        match *self {
            IpcpOption::IpAddresses {
                source,
                destination,
            } => {
                let (s, d) = out.split_at_mut(4);
                s.copy_from_slice(&source.octets());
                d.copy_from_slice(&destination.octets());
            }
            IpcpOption::IpCompressionProtocol { protocol, data } => {
                let (p, d) = out.split_at_mut(2);
                p.copy_from_slice(&protocol.to_be_bytes());
                d.copy_from_slice(data);
            }
            IpcpOption::IpAddress(a)
            | IpcpOption::PrimaryDns(a)
            | IpcpOption::PrimaryNbns(a)
            | IpcpOption::SecondaryDns(a)
            | IpcpOption::SecondaryNbns(a) => out.copy_from_slice(&a.octets()),
            IpcpOption::Unknown { data, .. } => out.copy_from_slice(data),
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
        push_option(out, self.kind(), &self.data_vec())
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

    fn parse_all(bytes: &[u8]) -> Vec<IpcpOption<'_>> {
        Options::new(bytes)
            .map(|o| IpcpOption::parse(o.unwrap()).unwrap())
            .collect()
    }

    /// A client's first IPCP Configure-Request options (RFC 1332 section
    /// 3.2/3.3, RFC 1877): VJ with 15 slots and slot-id compression,
    /// IP-Address 0.0.0.0, all four name servers 0.0.0.0.
    const CLIENT: [u8; 36] = [
        0x02, 0x06, 0x00, 0x2d, 0x0f, 0x01, // VJ
        0x03, 0x06, 0, 0, 0, 0, // IP-Address
        0x81, 0x06, 0, 0, 0, 0, // Primary DNS
        0x82, 0x06, 0, 0, 0, 0, // Primary NBNS
        0x83, 0x06, 0, 0, 0, 0, // Secondary DNS
        0x84, 0x06, 0, 0, 0, 0, // Secondary NBNS
    ];

    #[test]
    fn known_bytes_to_fields_and_back() {
        let z = Ipv4Addr::UNSPECIFIED;
        let options = parse_all(&CLIENT);
        assert_eq!(
            options,
            [
                IpcpOption::IpCompressionProtocol {
                    protocol: VAN_JACOBSON,
                    data: &[0x0f, 0x01]
                },
                IpcpOption::IpAddress(z),
                IpcpOption::PrimaryDns(z),
                IpcpOption::PrimaryNbns(z),
                IpcpOption::SecondaryDns(z),
                IpcpOption::SecondaryNbns(z),
            ]
        );
        let mut buf = [0xa5; 38];
        let mut w = OptionsWriter::new(&mut buf);
        for o in &options {
            o.emit(&mut w).unwrap();
        }
        assert_eq!(&buf[..36], CLIENT);
        assert_eq!(&buf[36..], [0xa5, 0xa5]);
    }

    #[test]
    fn addresses_and_deprecated_option() {
        let bytes = [
            0x03, 0x06, 198, 19, 0, 2, // IP-Address
            0x01, 0x0a, 10, 0, 0, 1, 10, 0, 0, 2, // IP-Addresses
            0x81, 0x06, 198, 18, 0, 53, // DNS
        ];
        let options = parse_all(&bytes);
        assert_eq!(
            options,
            [
                IpcpOption::IpAddress(Ipv4Addr::new(198, 19, 0, 2)),
                IpcpOption::IpAddresses {
                    source: Ipv4Addr::new(10, 0, 0, 1),
                    destination: Ipv4Addr::new(10, 0, 0, 2)
                },
                IpcpOption::PrimaryDns(Ipv4Addr::new(198, 18, 0, 53)),
            ]
        );
        let mut v = Vec::new();
        for o in &options {
            o.push_to(&mut v).unwrap();
        }
        assert_eq!(v, bytes);
    }

    #[test]
    fn wrong_lengths_are_malformed() {
        let bad: [&[u8]; 7] = [
            &[0x01, 0x06, 0, 0, 0, 0],
            &[0x02, 0x03, 0x00],
            &[0x02, 0x05, 0x00, 0x2d, 0x0f],
            &[0x03, 0x05, 0, 0, 0],
            &[0x81, 0x07, 0, 0, 0, 0, 0],
            &[0x82, 0x02],
            &[0x84, 0x04, 0, 0],
        ];
        for bytes in bad {
            let raw = Options::new(bytes).next().unwrap().unwrap();
            assert!(
                matches!(IpcpOption::parse(raw), Err(Error::BadLength { .. })),
                "{bytes:02x?}"
            );
        }
        // Other compression protocols keep any data; unknown types are raw.
        assert_eq!(
            parse_all(&[0x02, 0x04, 0x00, 0x61, 0x90, 0x03, 0x01]),
            [
                IpcpOption::IpCompressionProtocol {
                    protocol: 0x0061,
                    data: &[]
                },
                IpcpOption::Unknown {
                    kind: 0x90,
                    data: &[0x01]
                },
            ]
        );
    }
}
