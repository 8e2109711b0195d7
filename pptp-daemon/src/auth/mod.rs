//! Authentication: CHAP-MD5 (RFC 1994), MS-CHAPv1 (RFC 2433), MS-CHAPv2
//! (RFC 2759) and PAP (RFC 1334), as sans-IO engines for both ends of the
//! link, plus the back ends that check credentials.
//!
//! How the pieces fit (this module fixes the contract; the submodules
//! implement it):
//!
//! - The PPP session (`proto::session`) runs one [`AuthEngine`] in its
//!   Authenticate phase, built by an [`AuthFactory`] for the method LCP
//!   negotiated. It feeds the engine the payloads of CHAP/PAP frames and
//!   sends what [`AuthEngine::poll_transmit`] returns under
//!   [`AuthEngine::ppp_protocol`].
//! - A server engine never checks a password itself: it emits
//!   [`AuthEvent::Verify`] with the client's [`Credentials`]; the daemon asks
//!   a [`Verifier`] (the chap-secrets file now, RADIUS later, possibly
//!   asynchronously) and hands the [`Verdict`] back with
//!   [`AuthEngine::handle_verdict`].
//! - Success carries what the rest of the session needs: the user name, a
//!   static address from the secrets file and the [`MppeMaterial`] from
//!   which `crate::mppe` derives the session keys.
//!
//! Randomness (challenges) is given to the engines by their constructors,
//! so tests are deterministic; the engines never read the clock (`now` is an
//! argument) and never touch a socket.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

/// An authentication method (RFC 2759 MS-CHAPv2, RFC 2433 MS-CHAP,
/// RFC 1994 CHAP with MD5, RFC 1334 PAP). The server offers them in the
/// order of `auth.methods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    MsChapV2,
    MsChapV1,
    ChapMd5,
    Pap,
}

pub mod chap;
pub mod limiter;
pub mod mschap;
pub mod mschapv2;
pub mod peer;
pub mod radius;
pub mod random;
pub mod secrets;
pub mod server;

#[cfg(test)]
mod engine_tests;

impl AuthMethod {
    /// The PPP protocol that carries this method's packets.
    pub fn ppp_protocol(self) -> u16 {
        use pptp_common::consts::ppp_proto;
        match self {
            AuthMethod::Pap => ppp_proto::PAP,
            _ => ppp_proto::CHAP,
        }
    }

    /// The CHAP algorithm byte of LCP's Authentication-Protocol option
    /// (RFC 1994 section 3: 5 = MD5; RFC 2433: 0x80; RFC 2759: 0x81), `None` for PAP.
    pub fn chap_algorithm(self) -> Option<u8> {
        match self {
            AuthMethod::ChapMd5 => Some(0x05),
            AuthMethod::MsChapV1 => Some(0x80),
            AuthMethod::MsChapV2 => Some(0x81),
            AuthMethod::Pap => None,
        }
    }

    /// The method an Authentication-Protocol option names, if we know it.
    pub fn from_lcp_option(protocol: u16, algorithm: Option<u8>) -> Option<Self> {
        use pptp_common::consts::ppp_proto;
        match (protocol, algorithm) {
            (ppp_proto::PAP, None) => Some(AuthMethod::Pap),
            (ppp_proto::CHAP, Some(0x05)) => Some(AuthMethod::ChapMd5),
            (ppp_proto::CHAP, Some(0x80)) => Some(AuthMethod::MsChapV1),
            (ppp_proto::CHAP, Some(0x81)) => Some(AuthMethod::MsChapV2),
            _ => None,
        }
    }
}

/// What a client presented, for a [`Verifier`] to check. `Debug` never
/// shows a password, and shows the user name escaped and bounded
/// ([`crate::logsafe::Escaped`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// PAP Authenticate-Request (RFC 1334 section 2.2.1): the clear password.
    Pap { user: String, password: Vec<u8> },
    /// CHAP with MD5 (RFC 1994 section 4.1).
    ChapMd5 {
        user: String,
        identifier: u8,
        challenge: Vec<u8>,
        response: [u8; 16],
    },
    /// MS-CHAPv1 (RFC 2433 section 5): the 8-byte challenge we sent and the
    /// client's LM and NT responses.
    MsChapV1 {
        user: String,
        challenge: [u8; 8],
        lm_response: [u8; 24],
        nt_response: [u8; 24],
        use_nt_response: bool,
    },
    /// MS-CHAPv2 (RFC 2759 section 4).
    MsChapV2 {
        user: String,
        authenticator_challenge: [u8; 16],
        peer_challenge: [u8; 16],
        nt_response: [u8; 24],
    },
}

impl Credentials {
    pub fn user(&self) -> &str {
        match self {
            Credentials::Pap { user, .. }
            | Credentials::ChapMd5 { user, .. }
            | Credentials::MsChapV1 { user, .. }
            | Credentials::MsChapV2 { user, .. } => user,
        }
    }

    pub fn method(&self) -> AuthMethod {
        match self {
            Credentials::Pap { .. } => AuthMethod::Pap,
            Credentials::ChapMd5 { .. } => AuthMethod::ChapMd5,
            Credentials::MsChapV1 { .. } => AuthMethod::MsChapV1,
            Credentials::MsChapV2 { .. } => AuthMethod::MsChapV2,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.method())
            .field("user", &crate::logsafe::Escaped::new(self.user()))
            .finish_non_exhaustive()
    }
}

/// Key material for MPPE (RFC 3079) from a successful MS-CHAP
/// authentication, or from RADIUS (RFC 2548 MS-CHAP-MPPE-Keys,
/// MS-MPPE-Send-Key / MS-MPPE-Recv-Key). `Debug` never shows keys.
#[derive(Clone, PartialEq, Eq)]
pub enum MppeMaterial {
    /// MS-CHAPv1 (RFC 3079 sections 2.1 to 2.3): the first 8 bytes of the
    /// LM password hash, the NT password hash hashed again, and the challenge.
    V1 {
        lm_key: [u8; 8],
        nt_password_hash_hash: [u8; 16],
        challenge: [u8; 8],
    },
    /// MS-CHAPv2 (RFC 3079 section 3): the asymmetric master keys, as seen
    /// by whoever holds this value (the server's send key is the client's
    /// receive key).
    V2 {
        master_send_key: [u8; 16],
        master_recv_key: [u8; 16],
    },
}

impl fmt::Debug for MppeMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MppeMaterial::V1 { .. } => f.write_str("MppeMaterial::V1(..)"),
            MppeMaterial::V2 { .. } => f.write_str("MppeMaterial::V2(..)"),
        }
    }
}

/// One item of an allowed-address list: a network that is permitted or,
/// with `!` in the secrets file, forbidden (pppd auth.c `struct permitted_ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressItem {
    permit: bool,
    base: u32,
    mask: u32,
}

impl AddressItem {
    /// `network/prefix_len` is allowed (`prefix_len` 0 to 32, longer is 32).
    pub fn allow(network: Ipv4Addr, prefix_len: u8) -> AddressItem {
        AddressItem::new(true, network, prefix_len)
    }

    /// `network/prefix_len` is forbidden (`!` in the secrets file).
    pub fn deny(network: Ipv4Addr, prefix_len: u8) -> AddressItem {
        AddressItem::new(false, network, prefix_len)
    }

    fn new(permit: bool, network: Ipv4Addr, prefix_len: u8) -> AddressItem {
        let mask = match prefix_len.min(32) {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len)),
        };
        AddressItem {
            permit,
            base: u32::from(network) & mask,
            mask,
        }
    }

    pub fn permits(&self) -> bool {
        self.permit
    }

    fn covers(&self, addr: u32) -> bool {
        addr & self.mask == self.base
    }

    /// A single host that is permitted.
    fn permitted_host(&self) -> Option<Ipv4Addr> {
        (self.permit && self.mask == u32::MAX).then_some(Ipv4Addr::from(self.base))
    }
}

/// The tunnel addresses an authenticated user may have, with pppd's
/// semantics (auth.c `set_allowed_addrs`, `auth_ip_addr`, `ip_addr_check`,
/// `bad_ip_adrs`):
///
/// - a list of [`AddressItem`]s: the first item whose network covers the
///   address decides (permitted or forbidden); an address no item covers
///   is forbidden (pppd's terminating "forbid all" entry);
/// - [`AddressPolicy::any`]: every address (the secrets file without an
///   address column, or `*`);
/// - loopback (127/8), multicast (224/4), the reserved class E (240/4,
///   with the limited broadcast) and 0.0.0.0 are never allowed.
///
/// The daemon filters its pool with [`AddressPolicy::allows`] and the
/// session refuses an assigned address it does not allow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    /// `None`: any address.
    items: Option<Vec<AddressItem>>,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        AddressPolicy::any()
    }
}

impl AddressPolicy {
    /// Every (usable) address.
    pub fn any() -> AddressPolicy {
        AddressPolicy { items: None }
    }

    /// The list semantics above; an empty list allows nothing. A list
    /// whose first item allows 0.0.0.0/0 (`*`) is [`AddressPolicy::any`].
    pub fn list(items: impl IntoIterator<Item = AddressItem>) -> AddressPolicy {
        let items: Vec<AddressItem> = items.into_iter().collect();
        if items.first().is_some_and(|i| i.permit && i.mask == 0) {
            return AddressPolicy::any();
        }
        AddressPolicy { items: Some(items) }
    }

    /// Only `addr` (e.g. RADIUS Framed-IP-Address).
    pub fn only(addr: Ipv4Addr) -> AddressPolicy {
        AddressPolicy::list([AddressItem::allow(addr, 32)])
    }

    /// Whether the peer may use `addr` (pppd `auth_ip_addr`).
    pub fn allows(&self, addr: Ipv4Addr) -> bool {
        if unusable(addr) {
            return false;
        }
        let a = u32::from(addr);
        match &self.items {
            None => true,
            Some(items) => items.iter().find(|i| i.covers(a)).is_some_and(|i| i.permit),
        }
    }

    /// Whether the list permits some address at all (pppd `some_ip_ok`:
    /// an entry with only `!` items or `-` permits none).
    pub fn allows_some(&self) -> bool {
        match &self.items {
            None => true,
            Some(items) => items.iter().any(|i| i.permit),
        }
    }

    /// Whether it is [`AddressPolicy::any`].
    pub fn is_any(&self) -> bool {
        self.items.is_none()
    }

    /// The first single host the list permits and [`Self::allows`]: the
    /// user's static address (pppd's `suggested_ip`, which does not skip a
    /// host an earlier `!` item forbids; we do).
    pub fn static_address(&self) -> Option<Ipv4Addr> {
        self.items
            .as_ref()?
            .iter()
            .filter_map(AddressItem::permitted_host)
            .find(|a| self.allows(*a))
    }

    /// The items, `None` for [`AddressPolicy::any`].
    pub fn items(&self) -> Option<&[AddressItem]> {
        self.items.as_deref()
    }
}

/// pppd `bad_ip_adrs`, plus 0.0.0.0: never a peer's address.
fn unusable(addr: Ipv4Addr) -> bool {
    addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.octets()[0] >= 240
}

/// A successful check of [`Credentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The authenticated user name.
    pub user: String,
    /// The address the secrets file assigns to this user, if any.
    pub static_address: Option<Ipv4Addr>,
    /// The addresses this user may have (the chap-secrets address column,
    /// later RADIUS Framed-IP-Address / Framed-Pool); the daemon assigns
    /// only an address it allows.
    pub addresses: AddressPolicy,
    /// MS-CHAPv2 only: the Authenticator Response (RFC 2759 section 8.7)
    /// that goes into the Success message as `S=<40 hex digits>`.
    pub authenticator_response: Option<[u8; 20]>,
    /// MS-CHAP only: MPPE key material.
    pub mppe: Option<MppeMaterial>,
    /// Per-session limits from the back end (RADIUS reply attributes);
    /// all unset for the secrets file.
    pub session: SessionAttributes,
}

/// Per-session limits and accounting data a back end gives with an accept
/// (RADIUS reply attributes, RFC 2865 section 5, RFC 2869 section 5.16).
/// The default sets nothing: the configuration's values apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAttributes {
    /// Session-Timeout (RFC 2865 section 5.27): the session ends this long
    /// after it is admitted.
    pub session_timeout: Option<Duration>,
    /// Idle-Timeout (RFC 2865 section 5.28).
    pub idle_timeout: Option<Duration>,
    /// Acct-Interim-Interval (RFC 2869 section 5.16): replaces the
    /// configured interim interval for this session.
    pub acct_interim_interval: Option<Duration>,
    /// Class (RFC 2865 section 5.25), each echoed unchanged in every
    /// accounting record of the session.
    pub class: Vec<Vec<u8>>,
    /// Framed-MTU (RFC 2865 section 5.12): the session's MTU is at most
    /// this.
    pub framed_mtu: Option<u16>,
    /// Framed-Pool (RFC 2869 section 5.18): the named pool (`ppp.pools`)
    /// the address comes from when no Framed-IP-Address names one.
    pub framed_pool: Option<String>,
    /// Rate limit (Mikrotik-Rate-Limit, or Filter-Id in accel-ppp's
    /// format; see [`crate::proto::shaping`]): replaces the configured one.
    pub rate: Option<crate::proto::shaping::RateLimit>,
}

/// Why [`Credentials`] were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Unknown user or wrong password (MS-CHAP error 691).
    BadCredentials,
    /// The account exists but may not log in now, e.g. restricted hours or
    /// disabled (MS-CHAP errors 646, 647).
    AccountRestricted,
    /// The password has expired (MS-CHAP error 648).
    PasswordExpired,
    /// No dial-in permission (MS-CHAP error 649).
    NoDialinPermission,
    /// Too many failures from this source or session; refused without a check.
    RateLimited,
    /// The back end could not answer (file unreadable, RADIUS down).
    BackendUnavailable,
}

/// The answer of a [`Verifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one verdict per login, moved once; boxing Accept would only add an allocation"
)]
pub enum Verdict {
    Accept(Accepted),
    Reject(Rejection),
}

/// A back end that checks credentials: the chap-secrets file
/// ([`secrets`]), later RADIUS. `source` is the client's outer address,
/// for per-address restrictions of the secrets file.
pub trait Verifier: Send + Sync {
    fn verify(&self, source: IpAddr, credentials: &Credentials) -> Verdict;

    /// As [`Verifier::verify`], for the call with our call ID `call_id`
    /// (RADIUS sends it as NAS-Port, RFC 2865 section 5.5); back ends that
    /// have no use for it keep this default.
    fn verify_call(&self, source: IpAddr, call_id: u16, credentials: &Credentials) -> Verdict {
        let _ = call_id;
        self.verify(source, credentials)
    }

    /// The RADIUS back end behind this check, if it is one (its counters
    /// for the metrics); wrappers pass the question on.
    fn radius(&self) -> Option<&radius::RadiusVerifier> {
        None
    }
}

/// What an [`AuthEngine`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthEvent {
    /// Server: check these credentials, then call [`AuthEngine::handle_verdict`].
    Verify(Credentials),
    /// Authentication succeeded. For a peer engine, `user` is our own name and
    /// `mppe` comes from our own password; the server's Authenticator
    /// Response has been checked (MS-CHAPv2 mutual authentication).
    Succeeded(Accepted),
    /// Authentication failed for good (no retry left); the link must go down.
    Failed { reason: String },
}

/// One end of one authentication exchange, without I/O.
pub trait AuthEngine: Send {
    /// The method this engine runs.
    fn method(&self) -> AuthMethod;
    /// The PPP protocol of its packets (CHAP 0xC223 or PAP 0xC023).
    fn ppp_protocol(&self) -> u16 {
        self.method().ppp_protocol()
    }
    /// Before [`Self::start`]: `used` Responses of this session were
    /// already checked and not accepted by earlier engines (LCP
    /// renegotiated); they count against the per-session limit, so a peer
    /// gains no attempts by renegotiating. Peer engines ignore it.
    fn resume_attempts(&mut self, used: u32) {
        let _ = used;
    }
    /// The Authenticate phase begins (a server sends its Challenge here).
    fn start(&mut self, now: Instant);
    /// A packet of [`Self::ppp_protocol`] arrived (the PPP payload, from the
    /// code byte on). Malformed packets are dropped and never panic.
    fn handle_packet(&mut self, now: Instant, packet: &[u8]);
    /// The answer to the last [`AuthEvent::Verify`]. Peer engines ignore it.
    fn handle_verdict(&mut self, now: Instant, verdict: Verdict);
    /// The deadline of [`Self::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next packet to send under [`Self::ppp_protocol`].
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When [`Self::handle_timeout`] must be called next (retransmission,
    /// failure delay, overall timeout).
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next event.
    fn poll_event(&mut self) -> Option<AuthEvent>;
}

/// Builds the engine for the method LCP negotiated.
pub trait AuthFactory: Send {
    fn engine(&mut self, method: AuthMethod) -> Box<dyn AuthEngine>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcp_option_mapping_round_trips() {
        for m in [
            AuthMethod::MsChapV2,
            AuthMethod::MsChapV1,
            AuthMethod::ChapMd5,
            AuthMethod::Pap,
        ] {
            assert_eq!(
                AuthMethod::from_lcp_option(m.ppp_protocol(), m.chap_algorithm()),
                Some(m)
            );
        }
        assert_eq!(AuthMethod::from_lcp_option(0xC223, Some(0x06)), None);
        assert_eq!(AuthMethod::from_lcp_option(0xC227, None), None);
    }

    #[test]
    fn address_policy_follows_pppd() {
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let any = AddressPolicy::any();
        assert!(any.is_any() && any.allows_some() && any.static_address().is_none());
        assert!(any.allows(ip(203, 0, 113, 7)));
        // bad_ip_adrs: loopback, multicast, class E; and 0.0.0.0.
        for bad in [
            ip(127, 0, 0, 1),
            ip(224, 0, 0, 5),
            ip(239, 1, 1, 1),
            ip(240, 0, 0, 1),
            ip(255, 255, 255, 255),
            ip(0, 0, 0, 0),
        ] {
            assert!(!any.allows(bad), "{bad}");
        }
        let p = AddressPolicy::list([
            AddressItem::deny(ip(198, 19, 0, 1), 32),
            AddressItem::allow(ip(198, 19, 0, 3), 30),
        ]);
        let allowed: Vec<_> = (0..8)
            .map(|i| ip(198, 19, 0, i))
            .filter(|a| p.allows(*a))
            .collect();
        assert_eq!(
            allowed,
            [ip(198, 19, 0, 0), ip(198, 19, 0, 2), ip(198, 19, 0, 3)]
        );
        assert!(p.allows_some() && p.static_address().is_none());
        let none = AddressPolicy::list([AddressItem::deny(ip(198, 19, 0, 0), 24)]);
        assert!(!none.allows_some() && !none.allows(ip(10, 0, 0, 1)));
        assert!(!AddressPolicy::list([]).allows(ip(198, 19, 0, 1)));
        let only = AddressPolicy::only(ip(198, 19, 0, 9));
        assert_eq!(only.static_address(), Some(ip(198, 19, 0, 9)));
        assert!(only.allows(ip(198, 19, 0, 9)) && !only.allows(ip(198, 19, 0, 8)));
        // A whole-space item (`*`).
        let star = AddressPolicy::list([AddressItem::allow(Ipv4Addr::UNSPECIFIED, 0)]);
        assert_eq!(star, AddressPolicy::any());
        assert!(star.allows(ip(203, 0, 113, 1)) && !star.allows(ip(127, 0, 0, 1)));
        let later_star = AddressPolicy::list([
            AddressItem::deny(ip(198, 19, 0, 1), 32),
            AddressItem::allow(Ipv4Addr::UNSPECIFIED, 0),
        ]);
        assert!(!later_star.allows(ip(198, 19, 0, 1)) && later_star.allows(ip(198, 19, 0, 2)));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Pap {
            user: "alice".into(),
            password: b"hunter2".to_vec(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let forged = Credentials::Pap {
            user: format!("x\n{}", "y".repeat(500)),
            password: Vec::new(),
        };
        let shown = format!("{forged:?}");
        assert!(!shown.contains('\n') && shown.len() < 200, "{shown}");
        let m = MppeMaterial::V2 {
            master_send_key: [0xAB; 16],
            master_recv_key: [0xCD; 16],
        };
        assert!(!format!("{m:?}").contains("171"));
    }
}
