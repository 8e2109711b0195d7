//! IPCP, the IP Control Protocol (RFC 1332, with the name-server options
//! of RFC 1877), as a [`Negotiator`] for the generic automaton.
//!
//! Server policy (the daemon):
//! - our Configure-Request carries our own IP-Address (`ppp.local_address`);
//! - the client's IP-Address is Acked only if it is the address the daemon
//!   assigned to it (pool or static, see `proto::session`); 0.0.0.0 or any
//!   other address is Nak'ed with the assigned one (after Max-Failure the
//!   option is Rejected, never Acked), and a request without the option
//!   gets it Nak'ed in. The session sets only an address the user's
//!   `auth::AddressPolicy` allows (the chap-secrets address column), so a
//!   peer insisting on an address it may not have never gets it;
//! - Primary/Secondary DNS and NBNS (129 to 132) are Nak'ed with the
//!   configured values and Rejected when none is configured;
//! - IP-Compression-Protocol (Van Jacobson), the deprecated IP-Addresses
//!   and every unknown or malformed option are Rejected.
//!
//! Client policy (our client): asks for 0.0.0.0 and for DNS 0.0.0.0 (and
//! optionally NBNS), adopts what the server Naks, Acks the server's own
//! non-zero address and rejects everything else.

use std::{fmt, net::Ipv4Addr};

use super::fsm::{Fsm, Negotiator, Verdict};
use crate::wire::{cp::RawOption, ipcp::IpcpOption};

/// IPCP running on the automaton.
pub type Ipcp = Fsm<IpcpOptions>;

/// Which end we are, with what that end needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcpPolicy {
    Server {
        local_address: Ipv4Addr,
        /// Primary and secondary DNS servers to hand out (RFC 1877).
        dns: Vec<Ipv4Addr>,
        /// Primary and secondary NBNS (WINS) servers to hand out.
        nbns: Vec<Ipv4Addr>,
    },
    Client {
        request_dns: bool,
        request_nbns: bool,
    },
}

/// What IPCP agreed, once Opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcpParams {
    /// Our address on the link.
    pub local_address: Ipv4Addr,
    /// The peer's address (0.0.0.0 if a server never told us its own).
    pub peer_address: Ipv4Addr,
    /// Name servers: the server hands these out, the client received them.
    pub dns: Vec<Ipv4Addr>,
    pub nbns: Vec<Ipv4Addr>,
}

/// The name-server options in the order primary DNS, secondary DNS,
/// primary NBNS, secondary NBNS.
const SERVER_SLOTS: usize = 4;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ours {
    address: Option<Ipv4Addr>,
    /// Client only: the name-server options we ask for.
    servers: [Option<Ipv4Addr>; SERVER_SLOTS],
}

/// The IPCP side of [`Negotiator`].
pub struct IpcpOptions {
    policy: IpcpPolicy,
    /// Server: the address the daemon assigned to the client.
    assigned: Option<Ipv4Addr>,
    ours: Ours,
    acked_ours: Option<Ours>,
    peer_address: Option<Ipv4Addr>,
}

impl fmt::Debug for IpcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcpOptions")
            .field("policy", &self.policy)
            .field("assigned", &self.assigned)
            .field("ours", &self.ours)
            .finish_non_exhaustive()
    }
}

impl IpcpOptions {
    pub fn new(policy: IpcpPolicy) -> Self {
        let mut options = IpcpOptions {
            policy,
            assigned: None,
            ours: Ours::default(),
            acked_ours: None,
            peer_address: None,
        };
        options.ours = options.initial();
        options
    }

    /// Server: the address the client gets. Must be set before the client's
    /// requests are judged (the session holds IPCP back until then).
    pub fn set_assigned_address(&mut self, address: Ipv4Addr) {
        self.assigned = Some(address);
    }

    pub fn assigned_address(&self) -> Option<Ipv4Addr> {
        self.assigned
    }

    fn initial(&self) -> Ours {
        match &self.policy {
            IpcpPolicy::Server { local_address, .. } => Ours {
                address: Some(*local_address),
                servers: [None; SERVER_SLOTS],
            },
            IpcpPolicy::Client {
                request_dns,
                request_nbns,
            } => {
                let z = Some(Ipv4Addr::UNSPECIFIED);
                let dns = if *request_dns { z } else { None };
                let nbns = if *request_nbns { z } else { None };
                Ours {
                    address: z,
                    servers: [dns, dns, nbns, nbns],
                }
            }
        }
    }

    /// What was agreed, once both requests were Acked. `None` for a client
    /// that still has no address.
    pub fn params(&self) -> Option<IpcpParams> {
        let ours = self.acked_ours.as_ref()?;
        match &self.policy {
            IpcpPolicy::Server {
                local_address,
                dns,
                nbns,
            } => Some(IpcpParams {
                local_address: *local_address,
                peer_address: self.peer_address.or(self.assigned)?,
                dns: dns.iter().take(2).copied().collect(),
                nbns: nbns.iter().take(2).copied().collect(),
            }),
            IpcpPolicy::Client { .. } => {
                let local_address = ours.address.filter(|a| !a.is_unspecified())?;
                let got = |i: usize| {
                    ours.servers
                        .get(i)
                        .copied()
                        .flatten()
                        .filter(|a| !a.is_unspecified())
                };
                Some(IpcpParams {
                    local_address,
                    peer_address: self.peer_address.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    dns: [got(0), got(1)].into_iter().flatten().collect(),
                    nbns: [got(2), got(3)].into_iter().flatten().collect(),
                })
            }
        }
    }

    fn slot(option: &IpcpOption<'_>) -> Option<(usize, Ipv4Addr)> {
        match *option {
            IpcpOption::PrimaryDns(a) => Some((0, a)),
            IpcpOption::SecondaryDns(a) => Some((1, a)),
            IpcpOption::PrimaryNbns(a) => Some((2, a)),
            IpcpOption::SecondaryNbns(a) => Some((3, a)),
            _ => None,
        }
    }

    fn slot_option(slot: usize, a: Ipv4Addr) -> IpcpOption<'static> {
        match slot {
            0 => IpcpOption::PrimaryDns(a),
            1 => IpcpOption::SecondaryDns(a),
            2 => IpcpOption::PrimaryNbns(a),
            _ => IpcpOption::SecondaryNbns(a),
        }
    }

    fn judge_server(&self, option: IpcpOption<'_>, dns: &[Ipv4Addr], nbns: &[Ipv4Addr]) -> Verdict {
        let nak = |a: Ipv4Addr| Verdict::Nak(a.octets().to_vec());
        match option {
            IpcpOption::IpAddress(a) => match self.assigned {
                Some(assigned) if a == assigned => Verdict::Ack,
                Some(assigned) => nak(assigned),
                None => {
                    tracing::warn!("IPCP: judging the client's address before one was assigned");
                    Verdict::Reject
                }
            },
            _ => match Self::slot(&option) {
                Some((slot, a)) => {
                    let configured = if slot < 2 {
                        dns.get(slot)
                    } else {
                        nbns.get(slot - 2)
                    };
                    match configured {
                        Some(&c) if c == a => Verdict::Ack,
                        Some(&c) => nak(c),
                        None => Verdict::Reject,
                    }
                }
                // IP-Addresses (deprecated), IP-Compression-Protocol, unknown.
                None => Verdict::Reject,
            },
        }
    }
}

impl Negotiator for IpcpOptions {
    fn name(&self) -> &'static str {
        "IPCP"
    }

    fn reset(&mut self) {
        self.ours = self.initial();
        self.acked_ours = None;
        self.peer_address = None;
    }

    fn write_request(&mut self, out: &mut Vec<u8>) {
        let address = self.ours.address.map(IpcpOption::IpAddress);
        let servers = self
            .ours
            .servers
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| a.map(|a| Self::slot_option(slot, a)));
        for option in address.into_iter().chain(servers) {
            if let Err(e) = option.push_to(out) {
                tracing::warn!("IPCP: cannot emit {option:?}: {e}");
            }
        }
    }

    fn judge(
        &mut self,
        option: RawOption<'_>,
        _reject_if_disagree: bool,
    ) -> Result<Verdict, String> {
        let parsed = match IpcpOption::parse(option) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::debug!("IPCP: rejecting malformed option {}: {e}", option.kind);
                return Ok(Verdict::Reject);
            }
        };
        Ok(match &self.policy {
            IpcpPolicy::Server { dns, nbns, .. } => self.judge_server(parsed, dns, nbns),
            IpcpPolicy::Client { .. } => match parsed {
                IpcpOption::IpAddress(a) if !a.is_unspecified() => Verdict::Ack,
                _ => Verdict::Reject,
            },
        })
    }

    fn missing_options(&mut self, request: &[RawOption<'_>], naks: &mut Vec<u8>) {
        let has_address = request
            .iter()
            .any(|o| o.kind == crate::wire::ipcp::option_type::IP_ADDRESS);
        if let (IpcpPolicy::Server { .. }, Some(assigned), false) =
            (&self.policy, self.assigned, has_address)
        {
            // RFC 1332 section 3.3: a peer that does not ask for an address
            // may be told one in a Configure-Nak.
            let _ = IpcpOption::IpAddress(assigned).push_to(naks);
        }
    }

    fn peer_request_acked(&mut self, request: &[RawOption<'_>]) {
        self.peer_address = request
            .iter()
            .filter_map(|o| IpcpOption::parse(*o).ok())
            .find_map(|o| match o {
                IpcpOption::IpAddress(a) => Some(a),
                _ => None,
            });
    }

    fn request_acked(&mut self) {
        self.acked_ours = Some(self.ours.clone());
    }

    fn handle_nak(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        if let IpcpPolicy::Server { .. } = self.policy {
            // Our own address is not negotiable; the peer's Nak changes
            // nothing and Max-Failure eventually drops the option.
            return Ok(());
        }
        for option in options.iter().filter_map(|o| IpcpOption::parse(*o).ok()) {
            match option {
                IpcpOption::IpAddress(a) if self.ours.address.is_some() => {
                    self.ours.address = Some(a)
                }
                _ => {
                    if let Some((slot, a)) = Self::slot(&option)
                        && let Some(ours @ Some(_)) = self.ours.servers.get_mut(slot)
                    {
                        *ours = Some(a);
                    }
                }
            }
        }
        Ok(())
    }

    fn handle_reject(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for option in options.iter().filter_map(|o| IpcpOption::parse(*o).ok()) {
            match option {
                IpcpOption::IpAddress(_) => {
                    if let IpcpPolicy::Client { .. } = self.policy {
                        return Err("the server refuses to assign us an address (Configure-Reject of IP-Address)".into());
                    }
                    self.ours.address = None;
                }
                _ => {
                    if let Some((slot, _)) = Self::slot(&option)
                        && let Some(ours) = self.ours.servers.get_mut(slot)
                    {
                        *ours = None;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        proto::{
            fsm::{FsmConfig, State},
            test_support::{Sent, drain, pkt},
        },
        wire::cp::Code,
    };

    fn sent(f: &mut Ipcp) -> Vec<Sent> {
        drain(|| f.poll_transmit())
    }

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

    fn server(dns: Vec<Ipv4Addr>, nbns: Vec<Ipv4Addr>) -> Ipcp {
        let mut options = IpcpOptions::new(IpcpPolicy::Server {
            local_address: LOCAL,
            dns,
            nbns,
        });
        options.set_assigned_address(CLIENT);
        let mut f = Fsm::new(options, FsmConfig::default());
        let now = Instant::now();
        f.open(now);
        f.up(now);
        f
    }

    fn reply(f: &mut Ipcp, request: &[u8]) -> (Code, Vec<u8>) {
        f.handle_packet(Instant::now(), &pkt(Code::ConfigureRequest, 9, request));
        let r = sent(f).into_iter().find(|p| p.1 == 9).unwrap();
        (r.0, r.2)
    }

    #[test]
    fn server_request_carries_our_address() {
        let mut f = server(vec![], vec![]);
        assert_eq!(
            sent(&mut f),
            [(Code::ConfigureRequest, 1, vec![0x03, 0x06, 198, 19, 0, 1])]
        );
    }

    #[test]
    fn windows_first_request_is_rejected_then_naked() {
        let dns = Ipv4Addr::new(198, 18, 0, 53);
        let mut f = server(vec![dns], vec![]);
        sent(&mut f);
        // VJ, IP-Address 0.0.0.0, DNS, NBNS, secondary DNS, secondary NBNS (RFC 1332, RFC 1877).
        let request = [
            0x02, 0x06, 0x00, 0x2d, 0x0f, 0x01, 0x03, 0x06, 0, 0, 0, 0, 0x81, 0x06, 0, 0, 0, 0,
            0x82, 0x06, 0, 0, 0, 0, 0x83, 0x06, 0, 0, 0, 0, 0x84, 0x06, 0, 0, 0, 0,
        ];
        let rejected = [
            &request[..6],
            &request[18..24],
            &request[24..30],
            &request[30..36],
        ]
        .concat();
        assert_eq!(reply(&mut f, &request), (Code::ConfigureReject, rejected));
        // Without them: Nak'ed with the assigned address and the DNS server.
        let request = [0x03, 0x06, 0, 0, 0, 0, 0x81, 0x06, 0, 0, 0, 0];
        assert_eq!(
            reply(&mut f, &request),
            (
                Code::ConfigureNak,
                vec![0x03, 0x06, 198, 19, 0, 2, 0x81, 0x06, 198, 18, 0, 53]
            )
        );
        let request = [0x03, 0x06, 198, 19, 0, 2, 0x81, 0x06, 198, 18, 0, 53];
        assert_eq!(
            reply(&mut f, &request),
            (Code::ConfigureAck, request.to_vec())
        );
    }

    #[test]
    fn other_addresses_and_deprecated_option() {
        let mut f = server(vec![], vec![Ipv4Addr::new(198, 18, 0, 137)]);
        sent(&mut f);
        // An address it may not have.
        assert_eq!(
            reply(&mut f, &[0x03, 0x06, 10, 0, 0, 7]),
            (Code::ConfigureNak, vec![0x03, 0x06, 198, 19, 0, 2])
        );
        // IP-Addresses is rejected; malformed IP-Address too.
        let r = reply(
            &mut f,
            &[0x01, 0x0a, 10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0x05, 1, 2, 3],
        );
        assert_eq!(
            r,
            (
                Code::ConfigureReject,
                vec![0x01, 0x0a, 10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0x05, 1, 2, 3]
            )
        );
        // No IP-Address at all: Nak'ed in. NBNS configured, DNS not.
        let r = reply(&mut f, &[0x82, 0x06, 0, 0, 0, 0]);
        assert_eq!(
            r,
            (
                Code::ConfigureNak,
                vec![0x82, 0x06, 198, 18, 0, 137, 0x03, 0x06, 198, 19, 0, 2]
            )
        );
        assert_eq!(
            reply(&mut f, &[0x84, 0x06, 0, 0, 0, 0]).0,
            Code::ConfigureReject
        );
    }

    #[test]
    fn client_and_server_converge() {
        let now = Instant::now();
        let dns = vec![Ipv4Addr::new(198, 18, 0, 53), Ipv4Addr::new(198, 18, 0, 54)];
        let mut s = server(dns.clone(), vec![]);
        let mut c = Fsm::new(
            IpcpOptions::new(IpcpPolicy::Client {
                request_dns: true,
                request_nbns: true,
            }),
            FsmConfig::default(),
        );
        c.open(now);
        c.up(now);
        for _ in 0..20 {
            let a: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
            let b: Vec<_> = std::iter::from_fn(|| c.poll_transmit()).collect();
            if a.is_empty() && b.is_empty() {
                break;
            }
            a.iter().for_each(|p| c.handle_packet(now, p));
            b.iter().for_each(|p| s.handle_packet(now, p));
        }
        assert_eq!((s.state(), c.state()), (State::Opened, State::Opened));
        let expected = IpcpParams {
            local_address: CLIENT,
            peer_address: LOCAL,
            dns: dns.clone(),
            nbns: vec![],
        };
        assert_eq!(c.proto().params(), Some(expected));
        assert_eq!(
            s.proto().params(),
            Some(IpcpParams {
                local_address: LOCAL,
                peer_address: CLIENT,
                dns,
                nbns: vec![]
            })
        );
    }

    #[test]
    fn client_without_an_address_fails() {
        let now = Instant::now();
        let mut c = Fsm::new(
            IpcpOptions::new(IpcpPolicy::Client {
                request_dns: false,
                request_nbns: false,
            }),
            FsmConfig::default(),
        );
        c.open(now);
        c.up(now);
        let id = sent(&mut c)[0].1;
        c.handle_packet(
            now,
            &pkt(Code::ConfigureReject, id, &[0x03, 0x06, 0, 0, 0, 0]),
        );
        assert_eq!(c.state(), State::Closing);
        assert!(c.close_reason().unwrap().contains("refuses to assign"));
    }
}
