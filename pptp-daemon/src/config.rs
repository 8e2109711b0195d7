//! Daemon configuration: a TOML file whose every key has a default.
//!
//! The defaults are written out in `config/default.toml`, which is embedded
//! in the binary; a test keeps that file and [`Config::default`] equal.
//! Errors name the file, the line and column, and the field.
//!
//! The file's types here are serde's alone. The protocol cores define their
//! own policy types (`proto`, `auth`, `mppe` and `dataplane` import nothing
//! from this module); [`Config`] maps onto them once, at start and on
//! reload: [`Config::session_config`], [`Config::control_settings`],
//! [`Config::server_auth_settings`], [`Config::source_limits`],
//! [`Config::limits`], [`Config::xdp_mode`]. [`Config::parse`] checks
//! every value against bounds first, so no mapped duration can overflow
//! `Instant` arithmetic and no count or pool is unbounded.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use crate::proto::pool::PoolRange;
use crate::{
    auth::{AuthMethod, limiter::SourceLimits, server::ServerSettings},
    dataplane::xdp::XdpMode,
    mppe::KeyLength,
    proto::{
        ccp::{CcpPolicy, MppePolicy},
        control::ControlSettings,
        fsm::FsmConfig,
        ipcp::IpcpPolicy,
        lcp::LcpPolicy,
        limits::{Limits, UserLimitPolicy},
        session::SessionConfig,
    },
    wire::pptp::NulPadded,
};

/// The embedded default configuration, as documented text.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub dataplane: DataplaneConfig,
    pub ppp: PppConfig,
    pub auth: AuthConfig,
    pub mppe: MppeConfig,
    pub control: ControlConfig,
    pub limits: LimitsConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// An IPv4 address, or `[::]`: a dual-stack socket on which IPv4
    /// clients arrive as IPv4-mapped addresses ([`ipv4_peer`] unmaps them).
    pub listen: SocketAddr,
    pub hostname: String,
    pub max_sessions: u32,
    pub control_socket: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], pptp_common::consts::PPTP_PORT)),
            hostname: "pptp-xdp".into(),
            max_sessions: 10_000,
            control_socket: "/run/pptp-xdp.sock".into(),
        }
    }
}

/// `dataplane.xdp_mode`: how the XDP program is attached ([`XdpMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    /// Native (driver) XDP, falling back to generic XDP with a log line.
    #[default]
    Auto,
    /// Native XDP only.
    Driver,
    /// Generic (skb) XDP only.
    Generic,
    /// No XDP: every session on the userspace data path.
    Off,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub lan_interfaces: Vec<String>,
    pub xdp_mode: XdpModeSetting,
    pub tun_name: String,
    pub mss_clamp: bool,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interface: None,
            lan_interfaces: Vec::new(),
            xdp_mode: XdpModeSetting::Auto,
            tun_name: "pptp0".into(),
            mss_clamp: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PppConfig {
    pub local_address: Ipv4Addr,
    pub pool: Vec<PoolRange>,
    pub dns: Vec<Ipv4Addr>,
    pub nbns: Vec<Ipv4Addr>,
    pub mru: u16,
    pub restart_timer_ms: u64,
    pub max_configure: u32,
    pub max_terminate: u32,
    pub max_failure: u32,
    pub lcp_echo_interval_secs: u64,
    pub lcp_echo_failures: u32,
}

impl Default for PppConfig {
    fn default() -> Self {
        Self {
            local_address: Ipv4Addr::new(198, 19, 0, 1),
            pool: vec![PoolRange {
                first: Ipv4Addr::new(198, 19, 0, 2),
                last: Ipv4Addr::new(198, 19, 3, 254),
            }],
            dns: Vec::new(),
            nbns: Vec::new(),
            mru: 1400,
            restart_timer_ms: 3000,
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
            lcp_echo_interval_secs: 30,
            lcp_echo_failures: 4,
        }
    }
}

/// An entry of `auth.methods` ([`AuthMethod`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthMethodSetting {
    #[serde(rename = "mschapv2")]
    MsChapV2,
    #[serde(rename = "mschap")]
    MsChapV1,
    #[serde(rename = "chap-md5")]
    ChapMd5,
    #[serde(rename = "pap")]
    Pap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub methods: Vec<AuthMethodSetting>,
    pub secrets: PathBuf,
    pub max_attempts: u32,
    pub failure_delay_ms: u64,
    pub source_max_failures: u32,
    pub source_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            methods: vec![
                AuthMethodSetting::MsChapV2,
                AuthMethodSetting::MsChapV1,
                AuthMethodSetting::ChapMd5,
            ],
            secrets: "/etc/ppp/chap-secrets".into(),
            max_attempts: 3,
            failure_delay_ms: 1000,
            source_max_failures: 20,
            source_window_secs: 300,
        }
    }
}

/// `mppe.policy`: whether sessions are encrypted with MPPE ([`MppePolicy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MppePolicySetting {
    Require,
    #[default]
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MppeConfig {
    pub policy: MppePolicySetting,
    pub key_lengths: Vec<u16>,
    pub stateful: bool,
}

impl Default for MppeConfig {
    fn default() -> Self {
        Self {
            policy: MppePolicySetting::Allow,
            key_lengths: vec![128],
            stateful: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    pub echo_interval_secs: u64,
    pub echo_failures: u32,
    pub setup_timeout_secs: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            echo_interval_secs: 60,
            echo_failures: 3,
            setup_timeout_secs: 30,
        }
    }
}

/// `limits.single_session`: what a user already holding
/// `limits.sessions_per_user` sessions gets when authenticating once more
/// (accel-ppp's `single-session`; [`UserLimitPolicy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SingleSession {
    /// The new session is refused.
    #[default]
    Deny,
    /// The user's oldest session ends and the new one is accepted.
    Replace,
}

/// `[limits]`: the bounds of [`Limits`] that have no other home
/// (`server.max_sessions`, `auth.max_attempts` and
/// `control.setup_timeout_secs` feed the rest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub calls_per_connection: u32,
    pub connections_per_source: u32,
    pub max_starting: u32,
    pub connection_rate_per_source: u32,
    pub connection_burst_per_source: u32,
    /// 0: no limit.
    pub sessions_per_user: u32,
    pub single_session: SingleSession,
    pub write_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            calls_per_connection: 16,
            connections_per_source: 64,
            max_starting: 512,
            connection_rate_per_source: 20,
            connection_burst_per_source: 40,
            sessions_per_user: 4,
            single_session: SingleSession::Deny,
            write_timeout_secs: 10,
        }
    }
}

impl From<XdpModeSetting> for XdpMode {
    fn from(mode: XdpModeSetting) -> Self {
        match mode {
            XdpModeSetting::Auto => XdpMode::Auto,
            XdpModeSetting::Driver => XdpMode::Driver,
            XdpModeSetting::Generic => XdpMode::Generic,
            XdpModeSetting::Off => XdpMode::Off,
        }
    }
}

impl From<AuthMethodSetting> for AuthMethod {
    fn from(method: AuthMethodSetting) -> Self {
        match method {
            AuthMethodSetting::MsChapV2 => AuthMethod::MsChapV2,
            AuthMethodSetting::MsChapV1 => AuthMethod::MsChapV1,
            AuthMethodSetting::ChapMd5 => AuthMethod::ChapMd5,
            AuthMethodSetting::Pap => AuthMethod::Pap,
        }
    }
}

impl From<MppePolicySetting> for MppePolicy {
    fn from(policy: MppePolicySetting) -> Self {
        match policy {
            MppePolicySetting::Require => MppePolicy::Require,
            MppePolicySetting::Allow => MppePolicy::Allow,
            MppePolicySetting::Deny => MppePolicy::Deny,
        }
    }
}

impl From<SingleSession> for UserLimitPolicy {
    fn from(policy: SingleSession) -> Self {
        match policy {
            SingleSession::Deny => UserLimitPolicy::Deny,
            SingleSession::Replace => UserLimitPolicy::Replace,
        }
    }
}

/// A configuration error, located in its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {field}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        /// Dotted path of the field (`ppp.mru`), or `-` for a syntax error.
        field: String,
        message: String,
    },
    /// A command-line override (`--listen`) that fails the same checks.
    #[error("{option}: {field}: {message}")]
    CommandLine {
        option: String,
        field: String,
        message: String,
    },
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let locate = |offset: usize, field: String, message: String| {
            let (line, column) = line_column(text, offset);
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                field,
                message,
            }
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            locate(
                e.span().map_or(0, |s| s.start),
                "-".into(),
                e.message().into(),
            )
        })?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            // The parser's span can cover a whole array; the path is more
            // precise when it points inside that span.
            let offset = match (inner.span(), field_offset(text, &field)) {
                (Some(span), Some(at)) if span.contains(&at) => at,
                (Some(span), _) => span.start,
                (None, at) => at.unwrap_or(0),
            };
            locate(offset, field, inner.message().to_owned())
        })?;
        config.validate().map_err(|(field, message)| {
            let offset = field_offset(text, &field).unwrap_or(0);
            locate(offset, field, message)
        })?;
        Ok(config)
    }

    /// The effective configuration as TOML, for `--check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration always serializes")
    }

    /// Checks the overrides applied after [`Config::parse`] (`option` names
    /// them in the error, as `--listen`).
    pub fn check(&self, option: &str) -> Result<(), ConfigError> {
        self.validate()
            .map_err(|(field, message)| ConfigError::CommandLine {
                option: option.to_owned(),
                field,
                message,
            })
    }

    /// Checks what the types alone cannot, every number against its bounds;
    /// errors name the field.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_server()?;
        self.validate_ppp()?;
        self.validate_auth()?;
        self.validate_mppe()?;
        self.validate_timers_and_counts()?;
        self.validate_dataplane()
    }

    fn validate_server(&self) -> Result<(), (String, String)> {
        let listen = self.server.listen;
        match listen.ip() {
            IpAddr::V4(ip) if ip.is_multicast() || ip.is_broadcast() => {
                return invalid(
                    "server.listen",
                    format!("{ip} is not an address to listen on"),
                );
            }
            IpAddr::V6(ip) if !ip.is_unspecified() => {
                return invalid(
                    "server.listen",
                    format!(
                        "{ip}: PPTP and GRE are IPv4 here; listen on an IPv4 address, \
                         or on [::] to take IPv4 clients on a dual-stack socket"
                    ),
                );
            }
            _ => {}
        }
        if listen.port() == 0 {
            return invalid("server.listen", "port 0: clients connect to 1723".into());
        }
        if self.server.hostname.len() > 64 {
            return invalid("server.hostname", "longer than PPTP's 64 bytes".into());
        }
        bounded(
            "server.max_sessions",
            self.server.max_sessions,
            1..=65_535,
            "",
        )
    }

    fn validate_ppp(&self) -> Result<(), (String, String)> {
        let ppp = &self.ppp;
        if let Some(why) = unusable_address(ppp.local_address) {
            return invalid(
                "ppp.local_address",
                format!("{} is {why}", ppp.local_address),
            );
        }
        if ppp.pool.is_empty() {
            return invalid("ppp.pool", "the address pool is empty".into());
        }
        let mut total = 0u64;
        for (i, range) in ppp.pool.iter().enumerate() {
            let field = format!("ppp.pool[{i}]");
            total += range.len();
            if total > MAX_POOL_ADDRESSES {
                return invalid(
                    &field,
                    format!(
                        "the pool would hold {total} addresses{}; at most {MAX_POOL_ADDRESSES} \
                         (a /12) are allowed",
                        if i == 0 {
                            ""
                        } else {
                            " with the ranges before"
                        }
                    ),
                );
            }
            for (edge, why) in [
                (range.first, unusable_address(range.first)),
                (range.last, unusable_address(range.last)),
            ] {
                if let Some(why) = why {
                    return invalid(&field, format!("{range}: {edge} is {why}"));
                }
            }
            // Ranges are contiguous: a forbidden block strictly inside
            // one shows at its first address.
            if let Some(&(net, why)) = FORBIDDEN.iter().find(|(net, _)| range.contains(*net)) {
                return invalid(&field, format!("{range} contains {net}, {why}"));
            }
            if range.contains(ppp.local_address) {
                return invalid(
                    &field,
                    format!("{range} contains local_address {}", ppp.local_address),
                );
            }
        }
        // Overlaps, in O(n log n): sorted by first address, a range overlaps
        // an earlier one exactly when it starts at or below the highest last
        // address so far.
        let mut order: Vec<usize> = (0..ppp.pool.len()).collect();
        order.sort_by_key(|&i| (ppp.pool[i].first, i));
        let mut reach: Option<usize> = None;
        for &i in &order {
            let range = &ppp.pool[i];
            if let Some(r) = reach {
                let earlier = &ppp.pool[r];
                if range.first <= earlier.last {
                    let (a, b) = (r.min(i), r.max(i));
                    return invalid(
                        &format!("ppp.pool[{b}]"),
                        format!("{} overlaps {}", ppp.pool[b], ppp.pool[a]),
                    );
                }
            }
            if reach.is_none_or(|r| range.last > ppp.pool[r].last) {
                reach = Some(i);
            }
        }
        for (list, name) in [(&ppp.dns, "ppp.dns"), (&ppp.nbns, "ppp.nbns")] {
            if list.len() > 2 {
                return invalid(
                    name,
                    format!(
                        "{} servers; IPCP carries a primary and a secondary",
                        list.len()
                    ),
                );
            }
            for (i, ip) in list.iter().enumerate() {
                if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                    return invalid(&format!("{name}[{i}]"), format!("{ip} is not a server"));
                }
            }
        }
        bounded("ppp.mru", ppp.mru, 576..=1500, "")
    }

    fn validate_auth(&self) -> Result<(), (String, String)> {
        let auth = &self.auth;
        if auth.methods.is_empty() {
            return invalid("auth.methods", "no authentication method is enabled".into());
        }
        for (i, m) in auth.methods.iter().enumerate() {
            if auth.methods[..i].contains(m) {
                return invalid(
                    &format!("auth.methods[{i}]"),
                    format!("{m:?} is listed twice"),
                );
            }
        }
        Ok(())
    }

    fn validate_mppe(&self) -> Result<(), (String, String)> {
        let mppe = &self.mppe;
        if mppe.policy == MppePolicySetting::Deny {
            return Ok(());
        }
        if mppe.key_lengths.is_empty() {
            return invalid(
                "mppe.key_lengths",
                "MPPE is allowed but no key length is".into(),
            );
        }
        for (i, k) in mppe.key_lengths.iter().enumerate() {
            if KeyLength::from_bits(*k).is_none() {
                return invalid(
                    &format!("mppe.key_lengths[{i}]"),
                    format!("{k} is not an MPPE key length (40, 56 or 128)"),
                );
            }
        }
        let mschap = self
            .auth
            .methods
            .iter()
            .any(|m| matches!(m, AuthMethodSetting::MsChapV1 | AuthMethodSetting::MsChapV2));
        if mppe.policy == MppePolicySetting::Require && !mschap {
            return invalid(
                "mppe.policy",
                "MPPE keys come from MS-CHAP: `require` needs mschap or mschapv2 in auth.methods"
                    .into(),
            );
        }
        Ok(())
    }

    /// Every duration below a day (an hour where longer makes no sense), so
    /// none overflows `Instant + Duration`; zero only where it disables
    /// something; every count at least 1 and bounded.
    fn validate_timers_and_counts(&self) -> Result<(), (String, String)> {
        let (ppp, auth, control, limits) = (&self.ppp, &self.auth, &self.control, &self.limits);
        bounded(
            "ppp.restart_timer_ms",
            ppp.restart_timer_ms,
            10..=HOUR_SECS * 1000,
            " ms",
        )?;
        bounded(
            "ppp.lcp_echo_interval_secs",
            ppp.lcp_echo_interval_secs,
            0..=DAY_SECS,
            " s (0 disables)",
        )?;
        bounded(
            "auth.failure_delay_ms",
            auth.failure_delay_ms,
            0..=60_000,
            " ms",
        )?;
        bounded(
            "auth.source_window_secs",
            auth.source_window_secs,
            1..=DAY_SECS,
            " s",
        )?;
        bounded(
            "control.echo_interval_secs",
            control.echo_interval_secs,
            0..=DAY_SECS,
            " s (0 disables)",
        )?;
        bounded(
            "control.setup_timeout_secs",
            control.setup_timeout_secs,
            1..=HOUR_SECS,
            " s",
        )?;
        bounded(
            "limits.write_timeout_secs",
            limits.write_timeout_secs,
            1..=HOUR_SECS,
            " s",
        )?;
        for (field, value, range) in [
            ("ppp.max_configure", ppp.max_configure, 1..=1000),
            ("ppp.max_terminate", ppp.max_terminate, 1..=1000),
            ("ppp.max_failure", ppp.max_failure, 1..=1000),
            ("ppp.lcp_echo_failures", ppp.lcp_echo_failures, 1..=1000),
            ("auth.max_attempts", auth.max_attempts, 1..=100),
            (
                "auth.source_max_failures",
                auth.source_max_failures,
                0..=1_000_000,
            ),
            ("control.echo_failures", control.echo_failures, 1..=1000),
            (
                "limits.calls_per_connection",
                limits.calls_per_connection,
                1..=65_535,
            ),
            (
                "limits.connections_per_source",
                limits.connections_per_source,
                1..=65_535,
            ),
            ("limits.max_starting", limits.max_starting, 1..=65_535),
            (
                "limits.connection_rate_per_source",
                limits.connection_rate_per_source,
                1..=100_000,
            ),
            (
                "limits.connection_burst_per_source",
                limits.connection_burst_per_source,
                1..=100_000,
            ),
            (
                "limits.sessions_per_user",
                limits.sessions_per_user,
                0..=65_535,
            ),
        ] {
            bounded(field, value, range, "")?;
        }
        Ok(())
    }

    fn validate_dataplane(&self) -> Result<(), (String, String)> {
        if let Some(iface) = &self.dataplane.interface
            && (iface.is_empty() || iface.len() >= 16)
        {
            return invalid(
                "dataplane.interface",
                format!("`{iface}` is not an interface name"),
            );
        }
        for (i, iface) in self.dataplane.lan_interfaces.iter().enumerate() {
            if iface.is_empty() || iface.len() >= 16 {
                return invalid(
                    &format!("dataplane.lan_interfaces[{i}]"),
                    format!("`{iface}` is not an interface name"),
                );
            }
        }
        if self.dataplane.tun_name.is_empty() || self.dataplane.tun_name.len() >= 16 {
            return invalid("dataplane.tun_name", "must be 1 to 15 bytes".into());
        }
        Ok(())
    }
}

/// The mapping onto the cores' policy types. Each reads a validated
/// configuration; on one that was not validated the results are still
/// defined (no panic), only not necessarily sensible.
impl Config {
    /// How the XDP program is attached.
    pub fn xdp_mode(&self) -> XdpMode {
        self.dataplane.xdp_mode.into()
    }

    /// `auth.methods`, in order of preference.
    pub fn auth_methods(&self) -> Vec<AuthMethod> {
        self.auth.methods.iter().map(|&m| m.into()).collect()
    }

    /// The RFC 1661 counters and restart timer of LCP, IPCP and CCP.
    pub fn fsm_config(&self) -> FsmConfig {
        let ppp = &self.ppp;
        FsmConfig {
            restart_interval: Duration::from_millis(ppp.restart_timer_ms),
            max_configure: ppp.max_configure,
            max_terminate: ppp.max_terminate,
            max_failure: ppp.max_failure,
        }
    }

    /// The server's LCP policy. With MPPE required, only the MS-CHAP
    /// methods are offered: the others yield no keys.
    pub fn lcp_policy(&self) -> LcpPolicy {
        let ppp = &self.ppp;
        let mut auth_methods = self.auth_methods();
        if self.mppe.policy == MppePolicySetting::Require {
            auth_methods.retain(|m| matches!(m, AuthMethod::MsChapV1 | AuthMethod::MsChapV2));
        }
        LcpPolicy {
            mru: ppp.mru,
            max_peer_mru: ppp.mru,
            auth_methods,
            echo_interval: (ppp.lcp_echo_interval_secs > 0)
                .then(|| Duration::from_secs(ppp.lcp_echo_interval_secs)),
            echo_failures: ppp.lcp_echo_failures.max(1),
            loopback_limit: ppp.max_failure.clamp(1, 3),
            ..LcpPolicy::server()
        }
    }

    /// The server's IPCP policy: our address, DNS and NBNS servers.
    pub fn ipcp_policy(&self) -> IpcpPolicy {
        IpcpPolicy::Server {
            local_address: self.ppp.local_address,
            dns: self.ppp.dns.clone(),
            nbns: self.ppp.nbns.clone(),
        }
    }

    /// The MPPE policy: `mppe.policy`, the key lengths strongest first,
    /// whether stateful mode is allowed.
    pub fn mppe_policy(&self) -> CcpPolicy {
        let keys: Vec<KeyLength> = self
            .mppe
            .key_lengths
            .iter()
            .filter_map(|&bits| KeyLength::from_bits(bits))
            .collect();
        CcpPolicy::new(self.mppe.policy.into(), &keys, self.mppe.stateful)
    }

    /// Everything a server session negotiates with; CCP is not run under
    /// `mppe.policy = "deny"`.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            fsm: self.fsm_config(),
            lcp: self.lcp_policy(),
            ipcp: self.ipcp_policy(),
            ccp: (self.mppe.policy != MppePolicySetting::Deny).then(|| self.mppe_policy()),
        }
    }

    /// A server control connection's settings: host name and Maximum
    /// Channels from `[server]`, timers from `[control]`, calls per
    /// connection from `[limits]` (never above `server.max_sessions`).
    pub fn control_settings(&self) -> ControlSettings {
        let server = &self.server;
        let max_calls = self.limits.calls_per_connection.min(server.max_sessions);
        ControlSettings {
            host_name: NulPadded::truncated(server.hostname.as_bytes()),
            maximum_channels: u16::try_from(server.max_sessions).unwrap_or(u16::MAX),
            max_calls: usize::try_from(max_calls).unwrap_or(usize::MAX),
            setup_timeout: Duration::from_secs(self.control.setup_timeout_secs),
            echo_interval: Duration::from_secs(self.control.echo_interval_secs),
            echo_failures: self.control.echo_failures,
            ..ControlSettings::default()
        }
    }

    /// The server authentication engines' settings.
    pub fn server_auth_settings(&self) -> ServerSettings {
        ServerSettings {
            name: self.server.hostname.clone(),
            max_attempts: self.auth.max_attempts.max(1),
            failure_delay: Duration::from_millis(self.auth.failure_delay_ms),
            restart_timer: Duration::from_millis(self.ppp.restart_timer_ms.max(1)),
            max_challenges: self.ppp.max_configure.max(1),
            ..ServerSettings::default()
        }
    }

    /// Failed authentications per source address (`auth.source_*`).
    pub fn source_limits(&self) -> SourceLimits {
        SourceLimits {
            max_failures: self.auth.source_max_failures,
            window: Duration::from_secs(self.auth.source_window_secs),
            max_sources: SourceLimits::DEFAULT_MAX_SOURCES,
        }
    }

    /// The concentrator's bounds: `[limits]` with `server.max_sessions`,
    /// `auth.max_attempts` and `control.setup_timeout_secs`.
    pub fn limits(&self) -> Limits {
        let limits = &self.limits;
        Limits {
            max_sessions: self.server.max_sessions,
            calls_per_connection: limits.calls_per_connection,
            connections_per_source: limits.connections_per_source,
            max_starting: limits.max_starting,
            connection_rate_per_source: limits.connection_rate_per_source,
            connection_burst_per_source: limits.connection_burst_per_source,
            sessions_per_user: limits.sessions_per_user,
            over_user_limit: limits.single_session.into(),
            auth_attempts: self.auth.max_attempts,
            setup_timeout: Duration::from_secs(self.control.setup_timeout_secs),
            write_timeout: Duration::from_secs(limits.write_timeout_secs),
        }
    }
}

/// The IPv4 address behind a socket address of a control connection (the
/// peer's or our own): itself for IPv4, the embedded address for an
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how an IPv4 client reaches
/// a `[::]` listener), `None` for any other IPv6 address (PPTP's GRE is
/// IPv4 here). IPv4-compatible addresses (`::a.b.c.d`, deprecated) are not
/// unmapped.
pub fn ipv4_peer(addr: SocketAddr) -> Option<Ipv4Addr> {
    match addr {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped(),
    }
}

/// Most addresses in `ppp.pool`, all ranges together (a /12): the pool's
/// bookkeeping is per address.
pub const MAX_POOL_ADDRESSES: u64 = 1 << 20;

const HOUR_SECS: u64 = 3600;
const DAY_SECS: u64 = 24 * HOUR_SECS;

/// Blocks no client or tunnel address may come from.
const FORBIDDEN: [(Ipv4Addr, &str); 3] = [
    (Ipv4Addr::new(0, 0, 0, 0), "in 0.0.0.0/8 (this network)"),
    (Ipv4Addr::new(127, 0, 0, 0), "in 127.0.0.0/8 (loopback)"),
    (
        Ipv4Addr::new(224, 0, 0, 0),
        "in 224.0.0.0/3 (multicast, reserved and broadcast)",
    ),
];

/// Why `ip` cannot be a tunnel address, if it cannot.
fn unusable_address(ip: Ipv4Addr) -> Option<&'static str> {
    let first = ip.octets()[0];
    match first {
        0 => Some(FORBIDDEN[0].1),
        127 => Some(FORBIDDEN[1].1),
        224.. => Some(FORBIDDEN[2].1),
        _ => None,
    }
}

fn invalid(field: &str, message: String) -> Result<(), (String, String)> {
    Err((field.to_owned(), message))
}

/// `value` within `range`, or an error naming the field and the bounds.
fn bounded<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
) -> Result<(), (String, String)> {
    if range.contains(&value) {
        return Ok(());
    }
    invalid(
        field,
        format!(
            "{value} is outside {}..={}{unit}",
            range.start(),
            range.end()
        ),
    )
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Byte offset of the value of a dotted field path (`ppp.pool[1]`) in the
/// source, or of the deepest part of it that exists.
fn field_offset(text: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best = None;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = item.get(key) else { break };
        item = next;
        best = item.span().map(|s| s.start).or(best);
        if let Some(i) = index {
            match item.as_array().and_then(|a| a.get(i)) {
                Some(v) => {
                    best = v.span().map(|s| s.start).or(best);
                    break;
                }
                None => break,
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_default_impl() {
        let parsed = Config::parse(DEFAULT_TOML, "default.toml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("", "empty").unwrap(), Config::default());
    }

    #[test]
    fn effective_config_round_trips() {
        let mut c = Config::default();
        c.dataplane.interface = Some("wan0".into());
        c.ppp.dns = vec![Ipv4Addr::new(198, 18, 0, 53)];
        let text = c.to_toml();
        assert_eq!(Config::parse(&text, "x").unwrap(), c);
    }

    #[test]
    fn partial_file_overrides_only_its_keys() {
        let c = Config::parse("[ppp]\nmru = 1436\n", "x").unwrap();
        assert_eq!(c.ppp.mru, 1436);
        assert_eq!(c.ppp.local_address, Config::default().ppp.local_address);
        assert_eq!(c.server, Config::default().server);
    }

    fn invalid(text: &str) -> (usize, usize, String, String) {
        match Config::parse(text, "test.toml").unwrap_err() {
            ConfigError::Invalid {
                origin,
                line,
                column,
                field,
                message,
            } => {
                assert_eq!(origin, "test.toml");
                (line, column, field, message)
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn wrong_type_names_line_and_field() {
        let (line, col, field, msg) =
            invalid("[server]\nhostname = \"x\"\n\n[ppp]\nmru = \"big\"\n");
        assert_eq!((line, col), (5, 7));
        assert_eq!(field, "ppp.mru");
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let (line, _, field, msg) = invalid("[ppp]\nmru = 1400\nmtu = 1400\n");
        assert_eq!(line, 3);
        assert_eq!(field, "ppp.mtu");
        assert!(msg.contains("unknown field `mtu`"), "{msg}");
    }

    #[test]
    fn syntax_error_names_line() {
        let (line, _, field, _) = invalid("[ppp]\nmru = = 3\n");
        assert_eq!(line, 2);
        assert_eq!(field, "-");
    }

    #[test]
    fn bad_pool_entry_names_its_index() {
        let (line, col, field, msg) =
            invalid("[ppp]\npool = [\"198.19.0.10-198.19.0.20\",\n  \"198.19.0.30-198.19.0.5\"]\n");
        assert_eq!((line, col), (3, 3));
        assert_eq!(field, "ppp.pool[1]");
        assert!(msg.contains("first address is above the last"), "{msg}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let (line, _, field, msg) = invalid(
            "[ppp]\nlocal_address = \"198.19.0.1\"\npool = [\"198.19.0.0/24\", \"198.19.0.200-198.19.1.3\"]\n",
        );
        assert_eq!(line, 3);
        assert_eq!(field, "ppp.pool[0]");
        assert!(msg.contains("contains local_address"), "{msg}");

        let (line, _, field, _) =
            invalid("[ppp]\npool = [\"198.19.1.0/24\", \"198.19.1.200-198.19.2.3\"]\n");
        assert_eq!((line, field.as_str()), (2, "ppp.pool[1]"));

        let (line, _, field, _) = invalid("[mppe]\nkey_lengths = [128, 64]\n");
        assert_eq!((line, field.as_str()), (2, "mppe.key_lengths[1]"));

        let (_, _, field, _) =
            invalid("[auth]\nmethods = [\"pap\"]\n[mppe]\npolicy = \"require\"\n");
        assert_eq!(field, "mppe.policy");

        let (_, _, field, msg) = invalid("[auth]\nmethods = [\"telepathy\"]\n");
        assert_eq!(field, "auth.methods[0]");
        assert!(msg.contains("unknown variant"), "{msg}");
    }

    #[test]
    fn pool_range_syntax() {
        let r: PoolRange = "198.19.0.0/24".parse().unwrap();
        assert_eq!(
            (r.first, r.last),
            (
                "198.19.0.1".parse().unwrap(),
                "198.19.0.254".parse().unwrap()
            )
        );
        assert_eq!(r.len(), 254);
        let r: PoolRange = "198.19.0.7".parse().unwrap();
        assert_eq!(r.len(), 1);
        let r: PoolRange = "198.19.0.6/31".parse().unwrap();
        assert_eq!(r.len(), 2);
        assert!("198.19.0.1/24".parse::<PoolRange>().is_err());
        assert!("198.19.0.0/33".parse::<PoolRange>().is_err());
        assert!("nope".parse::<PoolRange>().is_err());
        assert_eq!(
            "198.19.0.1 - 198.19.0.9"
                .parse::<PoolRange>()
                .unwrap()
                .to_string(),
            "198.19.0.1-198.19.0.9"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/pptp.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pptp.toml"), "{err}");
    }
}
