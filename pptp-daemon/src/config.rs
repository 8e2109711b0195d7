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
//! [`Config::limits`], [`Config::xdp_mode`], [`Config::radius_settings`].
//! [`Config::parse`] checks
//! every value against bounds first, so no mapped duration can overflow
//! `Instant` arithmetic and no count or pool is unbounded.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use crate::proto::pool::PoolRange;
use crate::{
    auth::{
        AuthMethod,
        limiter::SourceLimits,
        radius::{
            RadiusSettings,
            accounting::{AcctPolicy, Settings as AcctSettings},
            client::{ClientSettings, Server},
        },
        server::ServerSettings,
    },
    dataplane::{Forwarding, TunnelQueues, xdp::XdpMode},
    mppe::KeyLength,
    proto::{
        ccp::{CcpPolicy, MppePolicy, StatefulMode},
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
    pub radius: RadiusConfig,
    pub shaping: ShapingConfig,
    pub scripts: ScriptsConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
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
            control_socket: "/run/pptp-xdp/ctl.sock".into(),
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

/// `dataplane.forwarding`: where the fast path hands decapsulated traffic
/// ([`Forwarding`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardingSetting {
    /// Into the stack through the tunnel device: netfilter, NAT, routing
    /// policy and tc apply.
    #[default]
    Stack,
    /// Routed by XDP itself, around the stack.
    Xdp,
}

/// `dataplane.tunnel_queues` ([`TunnelQueues`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TunnelQueuesSetting {
    /// One queue: encapsulation towards clients on one CPU at a time.
    #[default]
    One,
    /// A queue per CPU, sends steered to one CPU per session.
    PerCpu,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub lan_interfaces: Vec<String>,
    pub xdp_mode: XdpModeSetting,
    pub forwarding: ForwardingSetting,
    pub tun_name: String,
    pub mss_clamp: bool,
    /// One CPU sends each session's frames (XDP's CPU map), so they leave
    /// in order whichever CPUs they arrive on: under `forwarding = "xdp"`,
    /// and under `stack` with `tunnel_queues = "per_cpu"`.
    pub steer_sends: bool,
    /// Under `forwarding = "stack"`: the tunnel pair's queues.
    pub tunnel_queues: TunnelQueuesSetting,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interface: None,
            lan_interfaces: Vec::new(),
            xdp_mode: XdpModeSetting::Auto,
            forwarding: ForwardingSetting::Stack,
            tun_name: "pptp0".into(),
            mss_clamp: true,
            steer_sends: true,
            tunnel_queues: TunnelQueuesSetting::One,
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
    /// Named pools (`[ppp.pools]`), chosen by RADIUS Framed-Pool (RFC 2869
    /// section 5.18): name -> ranges, written as in `pool`.
    pub pools: BTreeMap<String, Vec<PoolRange>>,
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
            pools: BTreeMap::new(),
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

/// `auth.backend`: who checks credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// The chap-secrets file (`auth.secrets`).
    #[default]
    Secrets,
    /// The RADIUS servers of `[radius]`.
    Radius,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub backend: AuthBackend,
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
            backend: AuthBackend::Secrets,
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
    /// With XDP: a daemon thread prepares the RC4 states of the next
    /// receive and send positions of up to 64 sessions each way, so that
    /// the program decrypts and encrypts without key changes of its own
    /// (`dataplane::mppe_prep`).
    pub prepare_ahead: bool,
    /// That thread's nice value, -20 to 19: below 0 it runs ahead of the
    /// packet processing threads of its CPU (`mppe_prep::set_own_nice`).
    pub prepare_nice: i8,
}

impl Default for MppeConfig {
    fn default() -> Self {
        Self {
            policy: MppePolicySetting::Allow,
            key_lengths: vec![128],
            stateful: false,
            prepare_ahead: true,
            prepare_nice: -10,
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
    /// GRE frames per second one call may send up to the daemon past the
    /// XDP program (data of userspace sessions, anything the fast path
    /// does not take); 0: no limit.
    pub userspace_frames_per_call: u32,
    /// Burst of that bucket, frames.
    pub userspace_frames_burst: u32,
    /// Control frames (LCP, PAP, CHAP, IPCP, CCP, ack-only) per second
    /// of one call, in their own bucket that data cannot drain; 0: no limit.
    pub userspace_control_frames_per_call: u32,
    /// Burst of the control bucket, frames.
    pub userspace_control_burst: u32,
}

impl LimitsConfig {
    /// The kernel's admission buckets of one call (issue 17).
    pub fn call_buckets(&self) -> pptp_common::maps::CallEntry {
        pptp_common::maps::CallEntry::new(
            self.userspace_frames_per_call,
            self.userspace_frames_burst,
            self.userspace_control_frames_per_call,
            self.userspace_control_burst,
        )
    }
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
            userspace_frames_per_call: 10_000,
            userspace_frames_burst: 1000,
            userspace_control_frames_per_call: 200,
            userspace_control_burst: 50,
        }
    }
}

/// `[shaping]`: per-session rate limits (see [`crate::proto::shaping`]),
/// in MikroTik's `"up/down"` form from the concentrator's view: up (rx)
/// is what the client sends, down (tx) what it receives. A RADIUS
/// Access-Accept's Mikrotik-Rate-Limit or Filter-Id replaces them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapingConfig {
    /// For every user without an entry in `users`; absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Burst of both buckets, as the time the rate takes to send it.
    pub burst_ms: u32,
    /// Per user (the name they authenticate with): `"up/down"`, or
    /// `"0"` for no limit.
    pub users: std::collections::BTreeMap<String, String>,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        Self {
            rate: None,
            burst_ms: 300,
            users: std::collections::BTreeMap::new(),
        }
    }
}

impl ShapingConfig {
    /// Longest burst, so the nanoseconds fit the map's u32.
    pub const MAX_BURST_MS: u32 = 4000;
    /// Most per-user entries.
    pub const MAX_USERS: usize = 100_000;

    /// The configured rate of `user` (validated strings; anything else
    /// counts as no limit).
    pub fn rate_for(&self, user: &str) -> crate::proto::shaping::RateLimit {
        use crate::proto::shaping::RateLimit;
        self.users
            .get(user)
            .or(self.rate.as_ref())
            .and_then(|r| RateLimit::parse_mikrotik(r).ok())
            .unwrap_or(RateLimit::NONE)
    }

    /// The burst tolerance, ns.
    pub fn burst_ns(&self) -> u32 {
        self.burst_ms.min(Self::MAX_BURST_MS) * 1_000_000
    }
}

/// `[radius]`: the RADIUS authentication back end (`auth.backend =
/// "radius"`), mapped onto [`RadiusSettings`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadiusConfig {
    /// NAS-Identifier of our requests (1 to 253 bytes).
    pub nas_identifier: String,
    /// NAS-IP-Address of our requests, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nas_ip_address: Option<Ipv4Addr>,
    /// Wait for an answer per transmission (10 to 60000 ms).
    pub timeout_ms: u64,
    /// Retransmissions per server before failing over (0 to 10).
    pub retries: u32,
    /// Hold-down of a server that did not answer (0 to 86400 s).
    pub dead_time_secs: u64,
    /// In order of preference (`[[radius.servers]]`), at most 16.
    pub servers: Vec<RadiusServerConfig>,
    /// RADIUS accounting (RFC 2866) to the servers' accounting ports.
    pub accounting: bool,
    /// Interim-Update every this many seconds (0: none; up to 86400;
    /// RFC 2869 section 2.1 advises no less than 600 in production).
    pub acct_interim_interval_secs: u64,
    /// Most accounting records waiting for an answer (1 to 1000000);
    /// beyond, records are dropped and counted.
    pub acct_queue: usize,
    /// `[radius.dae]`: the dynamic-authorization listener (RFC 5176
    /// Disconnect-Request and CoA-Request); off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dae: Option<DaeConfig>,
}

/// `[radius.dae]`: where Disconnect-Requests and CoA-Requests (RFC 5176)
/// are received, from whom, with which secret. `Debug` and
/// `--check-config` do not show the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaeConfig {
    /// `address:port` to listen on (3799 is RFC 5176's port).
    pub listen: SocketAddr,
    /// The shared secret of the clients (1 to 128 bytes).
    #[serde(serialize_with = "hidden_secret")]
    pub secret: String,
    /// Source addresses allowed to send requests (1 to
    /// [`MAX_DAE_CLIENTS`]); datagrams from others are dropped and counted.
    pub clients: Vec<IpAddr>,
}

impl fmt::Debug for DaeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaeConfig")
            .field("listen", &self.listen)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// `[scripts]`: pppd-compatible `ip-pre-up`, `ip-up` and `ip-down`
/// programs (`server::scripts`); each runs only when its path is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptsConfig {
    /// Run before a session's route and data path are installed; the
    /// session waits for it (at most `timeout_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_pre_up: Option<PathBuf>,
    /// Run once a session's network is up; the session does not wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_up: Option<PathBuf>,
    /// Run once for every session whose `ip_up` ran, when it goes down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_down: Option<PathBuf>,
    /// Seconds (1 to 3600) a script may run before its process group is
    /// killed.
    pub timeout_secs: u64,
    /// Scripts running at once (1 to 1024).
    pub max_concurrent: u32,
    /// `ip-pre-up` and `ip-up` runs waiting for a slot (0 to 65535);
    /// beyond, they are skipped and counted (`ip-down` is never skipped).
    pub max_queued: u32,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        Self {
            ip_pre_up: None,
            ip_up: None,
            ip_down: None,
            timeout_secs: 30,
            max_concurrent: 16,
            max_queued: 1024,
        }
    }
}

/// Most `radius.dae.clients`.
pub const MAX_DAE_CLIENTS: usize = 64;

impl Default for RadiusConfig {
    fn default() -> Self {
        Self {
            nas_identifier: "pptp-xdp".into(),
            nas_ip_address: None,
            timeout_ms: 1000,
            retries: 2,
            dead_time_secs: 30,
            servers: Vec::new(),
            accounting: true,
            acct_interim_interval_secs: 0,
            acct_queue: 10_000,
            dae: None,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint (`GET /metrics`), off unless
/// `listen` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `address:port` to serve on; unset or `""`: no endpoint.
    #[serde(
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
    /// Scrapes served at once (1 to 1024); further connections wait in
    /// the kernel's backlog.
    pub max_connections: u32,
    /// Time for one connection, request and answer (100 to 60000 ms).
    pub request_timeout_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_connections: 16,
            request_timeout_ms: 5000,
        }
    }
}

/// `""` as no value, else the value.
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// `[log]`: how log lines are written, and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// error, warn, info, debug or trace; `--log-level` overrides it and
    /// `RUST_LOG`, when set, takes precedence. A reload applies a new one.
    pub level: crate::cli::LogLevel,
}

/// `log.format`: one line of text per event, or one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[[radius.servers]]` entry. `Debug` and the effective
/// configuration (`--check-config`) do not show the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusServerConfig {
    /// `address:port` (authentication, usually 1812).
    pub address: SocketAddr,
    /// The shared secret (1 to 128 bytes).
    #[serde(serialize_with = "hidden_secret")]
    pub secret: String,
    /// `address:port` for accounting; unset: `address` with port + 1
    /// (1813 for 1812).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acct_address: Option<SocketAddr>,
}

impl RadiusServerConfig {
    /// Where accounting goes: `acct_address`, else `address` with port + 1.
    pub fn accounting_address(&self) -> SocketAddr {
        self.acct_address.unwrap_or_else(|| {
            let mut a = self.address;
            a.set_port(a.port().wrapping_add(1));
            a
        })
    }
}

/// What `--check-config` prints in place of a RADIUS secret.
pub const HIDDEN_SECRET: &str = "(hidden)";

fn hidden_secret<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(HIDDEN_SECRET)
}

impl fmt::Debug for RadiusServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusServerConfig")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Most `[[radius.servers]]`.
pub const MAX_RADIUS_SERVERS: usize = 16;

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
        self.validate_pools()?;
        self.validate_auth()?;
        self.validate_mppe()?;
        self.validate_timers_and_counts()?;
        self.validate_radius()?;
        self.validate_shaping()?;
        self.validate_scripts()?;
        self.validate_metrics()?;
        self.validate_dataplane()
    }

    fn validate_shaping(&self) -> Result<(), (String, String)> {
        use crate::proto::shaping::RateLimit;
        let shaping = &self.shaping;
        if !(1..=ShapingConfig::MAX_BURST_MS).contains(&shaping.burst_ms) {
            return invalid(
                "shaping.burst_ms",
                format!("must be 1 to {}", ShapingConfig::MAX_BURST_MS),
            );
        }
        if let Some(rate) = &shaping.rate
            && let Err(e) = RateLimit::parse_mikrotik(rate)
        {
            return invalid("shaping.rate", e.to_string());
        }
        if shaping.users.len() > ShapingConfig::MAX_USERS {
            return invalid(
                "shaping.users",
                format!("at most {} entries", ShapingConfig::MAX_USERS),
            );
        }
        for (user, rate) in &shaping.users {
            if let Err(e) = RateLimit::parse_mikrotik(rate) {
                return invalid(&format!("shaping.users.{user}"), e.to_string());
            }
        }
        Ok(())
    }

    fn validate_scripts(&self) -> Result<(), (String, String)> {
        let scripts = &self.scripts;
        for (field, path) in [
            ("scripts.ip_pre_up", &scripts.ip_pre_up),
            ("scripts.ip_up", &scripts.ip_up),
            ("scripts.ip_down", &scripts.ip_down),
        ] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return invalid(
                    field,
                    format!("`{}` is not an absolute path", path.display()),
                );
            }
        }
        bounded(
            "scripts.timeout_secs",
            scripts.timeout_secs,
            1..=HOUR_SECS,
            " s",
        )?;
        bounded(
            "scripts.max_concurrent",
            scripts.max_concurrent,
            1..=1024,
            "",
        )?;
        bounded("scripts.max_queued", scripts.max_queued, 0..=65_535, "")
    }

    fn validate_metrics(&self) -> Result<(), (String, String)> {
        let m = &self.metrics;
        if let Some(listen) = m.listen {
            let ip = listen.ip();
            if listen.port() == 0
                || ip.is_multicast()
                || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
            {
                return invalid(
                    "metrics.listen",
                    format!("{listen} is not an address to listen on (port 9750, say)"),
                );
            }
        }
        bounded("metrics.max_connections", m.max_connections, 1..=1024, "")?;
        bounded(
            "metrics.request_timeout_ms",
            m.request_timeout_ms,
            100..=60_000,
            " ms",
        )
    }

    fn validate_radius(&self) -> Result<(), (String, String)> {
        let radius = &self.radius;
        if self.auth.backend == AuthBackend::Radius && radius.servers.is_empty() {
            return invalid(
                "auth.backend",
                "\"radius\" needs at least one [[radius.servers]] entry (address and secret)"
                    .into(),
            );
        }
        if radius.nas_identifier.is_empty() || radius.nas_identifier.len() > 253 {
            return invalid(
                "radius.nas_identifier",
                "must be 1 to 253 bytes (RFC 2865 section 5.32)".into(),
            );
        }
        if let Some(ip) = radius.nas_ip_address
            && (ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
        {
            return invalid(
                "radius.nas_ip_address",
                format!("{ip} is not an address of ours"),
            );
        }
        bounded("radius.timeout_ms", radius.timeout_ms, 10..=60_000, " ms")?;
        bounded("radius.retries", radius.retries, 0..=10, "")?;
        bounded(
            "radius.dead_time_secs",
            radius.dead_time_secs,
            0..=DAY_SECS,
            " s",
        )?;
        if radius.servers.len() > MAX_RADIUS_SERVERS {
            return invalid(
                &format!("radius.servers[{MAX_RADIUS_SERVERS}]"),
                format!(
                    "{} servers; at most {MAX_RADIUS_SERVERS}",
                    radius.servers.len()
                ),
            );
        }
        bounded(
            "radius.acct_interim_interval_secs",
            radius.acct_interim_interval_secs,
            0..=86_400,
            " s",
        )?;
        bounded("radius.acct_queue", radius.acct_queue, 1..=1_000_000, "")?;
        for (i, server) in radius.servers.iter().enumerate() {
            if let Some(acct) = server.acct_address
                && (acct.port() == 0 || acct.ip().is_unspecified() || acct.ip().is_multicast())
            {
                return invalid(
                    &format!("radius.servers[{i}].acct_address"),
                    format!("{acct} is not a server's address (port 1813 is usual)"),
                );
            }
            let address = server.address;
            let ip = address.ip();
            if address.port() == 0 || ip.is_unspecified() || ip.is_multicast() {
                return invalid(
                    &format!("radius.servers[{i}].address"),
                    format!("{address} is not a server's address (port 1812 is usual)"),
                );
            }
            if let IpAddr::V4(v4) = ip
                && v4.is_broadcast()
            {
                return invalid(
                    &format!("radius.servers[{i}].address"),
                    format!("{address} is not a server's address"),
                );
            }
            if radius.servers[..i].iter().any(|s| s.address == address) {
                return invalid(
                    &format!("radius.servers[{i}].address"),
                    format!("{address} is listed twice"),
                );
            }
            if server.secret.is_empty() || server.secret.len() > 128 {
                return invalid(
                    &format!("radius.servers[{i}].secret"),
                    secret_problem(&server.secret),
                );
            }
        }
        self.validate_dae()
    }

    fn validate_dae(&self) -> Result<(), (String, String)> {
        let Some(dae) = &self.radius.dae else {
            return Ok(());
        };
        let ip = dae.listen.ip();
        if dae.listen.port() == 0
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
        {
            return invalid(
                "radius.dae.listen",
                format!(
                    "{} is not an address to listen on (port 3799 is usual)",
                    dae.listen
                ),
            );
        }
        if dae.secret.is_empty() || dae.secret.len() > 128 {
            return invalid("radius.dae.secret", secret_problem(&dae.secret));
        }
        if dae.clients.is_empty() {
            return invalid(
                "radius.dae.clients",
                "list the addresses allowed to send Disconnect and CoA requests".into(),
            );
        }
        if dae.clients.len() > MAX_DAE_CLIENTS {
            return invalid(
                "radius.dae.clients",
                format!("{} clients; at most {MAX_DAE_CLIENTS}", dae.clients.len()),
            );
        }
        for (i, client) in dae.clients.iter().enumerate() {
            if client.is_unspecified() || client.is_multicast() {
                return invalid(
                    &format!("radius.dae.clients[{i}]"),
                    format!("{client} is not a client's address"),
                );
            }
        }
        Ok(())
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
            // Both ends suffice: 0.0.0.0/8 and 224.0.0.0/3 sit at the ends
            // of the address space, and a range within the size bound is
            // too small to span 127.0.0.0/8.
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

    /// `ppp.pools`: names a RADIUS Framed-Pool can carry and a field path
    /// can name, each pool non-empty with usable addresses, at most
    /// [`MAX_NAMED_POOLS`] pools and [`MAX_POOL_ADDRESSES`] addresses in
    /// all of them together, no range overlapping another (of any pool or
    /// of `ppp.pool`) or containing `local_address`.
    fn validate_pools(&self) -> Result<(), (String, String)> {
        let ppp = &self.ppp;
        if ppp.pools.len() > MAX_NAMED_POOLS {
            return invalid(
                "ppp.pools",
                format!(
                    "{} pools; at most {MAX_NAMED_POOLS} are allowed",
                    ppp.pools.len()
                ),
            );
        }
        let mut all: Vec<(String, PoolRange)> = ppp
            .pool
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("ppp.pool[{i}]"), *r))
            .collect();
        let mut total = 0u64;
        for (name, ranges) in &ppp.pools {
            let field = format!("ppp.pools.{name}");
            if name.is_empty()
                || name.len() > MAX_POOL_NAME
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return invalid(
                    "ppp.pools",
                    format!("pool name {name:?}: 1 to {MAX_POOL_NAME} letters, digits, `-` or `_`"),
                );
            }
            if ranges.is_empty() {
                return invalid(&field, format!("pool `{name}` is empty"));
            }
            for (i, range) in ranges.iter().enumerate() {
                let field = format!("{field}[{i}]");
                total += range.len();
                if total > MAX_POOL_ADDRESSES {
                    return invalid(
                        &field,
                        format!(
                            "the named pools would hold {total} addresses together; at most \
                             {MAX_POOL_ADDRESSES} (a /12) are allowed"
                        ),
                    );
                }
                for edge in [range.first, range.last] {
                    if let Some(why) = unusable_address(edge) {
                        return invalid(&field, format!("{range}: {edge} is {why}"));
                    }
                }
                if range.contains(ppp.local_address) {
                    return invalid(
                        &field,
                        format!("{range} contains local_address {}", ppp.local_address),
                    );
                }
                all.push((field, *range));
            }
        }
        // As in `validate_ppp`: sorted by first address, a range overlaps an
        // earlier one exactly when it starts at or below the highest last
        // address so far.
        all.sort_by_key(|(_, r)| r.first);
        let mut reach: Option<&(String, PoolRange)> = None;
        for entry in &all {
            if let Some(earlier) = reach
                && entry.1.first <= earlier.1.last
            {
                return invalid(
                    &entry.0,
                    format!("{} overlaps {} ({})", entry.1, earlier.1, earlier.0),
                );
            }
            if reach.is_none_or(|r| entry.1.last > r.1.last) {
                reach = Some(entry);
            }
        }
        Ok(())
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
        if !(-20..=19).contains(&mppe.prepare_nice) {
            return invalid(
                "mppe.prepare_nice",
                format!("{} is not a nice value (-20 to 19)", mppe.prepare_nice),
            );
        }
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
            (
                "limits.userspace_frames_per_call",
                limits.userspace_frames_per_call,
                0..=1_000_000,
            ),
            (
                "limits.userspace_frames_burst",
                limits.userspace_frames_burst,
                1..=100_000,
            ),
            (
                "limits.userspace_control_frames_per_call",
                limits.userspace_control_frames_per_call,
                0..=1_000_000,
            ),
            (
                "limits.userspace_control_burst",
                limits.userspace_control_burst,
                1..=100_000,
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
        // In `stack` forwarding the tunnel device is a veth pair whose
        // second end takes the name with a `p` appended.
        let max = match self.dataplane.forwarding {
            ForwardingSetting::Stack => 14,
            ForwardingSetting::Xdp => 15,
        };
        let name = &self.dataplane.tun_name;
        if name.is_empty()
            || name.len() > max
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return invalid(
                "dataplane.tun_name",
                format!("must be 1 to {max} bytes of letters, digits, `-`, `_` or `.`"),
            );
        }
        if self.dataplane.tunnel_queues == TunnelQueuesSetting::PerCpu {
            if self.dataplane.forwarding != ForwardingSetting::Stack {
                return invalid(
                    "dataplane.tunnel_queues",
                    "\"per_cpu\" is for the tunnel pair of forwarding = \"stack\"".into(),
                );
            }
            if !self.dataplane.steer_sends {
                return invalid(
                    "dataplane.tunnel_queues",
                    "\"per_cpu\" needs steer_sends = true: without it a session's frames \
                     leave out of order"
                        .into(),
                );
            }
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

    /// Where the fast path hands decapsulated traffic.
    pub fn forwarding(&self) -> Forwarding {
        match self.dataplane.forwarding {
            ForwardingSetting::Stack => Forwarding::Stack,
            ForwardingSetting::Xdp => Forwarding::Xdp,
        }
    }

    /// The tunnel pair's queues under `stack` forwarding.
    pub fn tunnel_queues(&self) -> TunnelQueues {
        match self.dataplane.tunnel_queues {
            TunnelQueuesSetting::One => TunnelQueues::One,
            TunnelQueuesSetting::PerCpu => TunnelQueues::PerCpu,
        }
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
        let stateful = if self.mppe.stateful {
            StatefulMode::Allowed
        } else {
            StatefulMode::Never
        };
        CcpPolicy::new(self.mppe.policy.into(), &keys, stateful)
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

    /// The RADIUS back end's settings (`[radius]`), whatever
    /// `auth.backend` says.
    pub fn radius_settings(&self) -> RadiusSettings {
        let radius = &self.radius;
        RadiusSettings {
            nas_identifier: radius.nas_identifier.clone(),
            nas_ip_address: radius.nas_ip_address,
            client: ClientSettings {
                servers: radius
                    .servers
                    .iter()
                    .map(|s| Server {
                        address: s.address,
                        secret: s.secret.as_bytes().to_vec(),
                    })
                    .collect(),
                timeout: Duration::from_millis(radius.timeout_ms.max(1)),
                retries: radius.retries,
                dead_time: Duration::from_secs(radius.dead_time_secs),
            },
        }
    }

    /// The accounting policy (`[radius]`), `None` when accounting is off
    /// or no server is configured.
    pub fn accounting_policy(&self) -> Option<AcctPolicy> {
        let radius = &self.radius;
        if !radius.accounting || radius.servers.is_empty() {
            return None;
        }
        Some(AcctPolicy {
            delivery: AcctSettings {
                servers: radius
                    .servers
                    .iter()
                    .map(|s| Server {
                        address: s.accounting_address(),
                        secret: s.secret.as_bytes().to_vec(),
                    })
                    .collect(),
                timeout: Duration::from_millis(radius.timeout_ms.max(1)),
                retries: radius.retries,
                dead_time: Duration::from_secs(radius.dead_time_secs),
                capacity: radius.acct_queue.max(1),
                window: 64,
            },
            interim_interval: (radius.acct_interim_interval_secs > 0)
                .then(|| Duration::from_secs(radius.acct_interim_interval_secs)),
            nas_identifier: radius.nas_identifier.clone(),
            nas_ip_address: radius.nas_ip_address,
        })
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

/// Why a RADIUS shared secret (not 1 to 128 bytes) is refused.
fn secret_problem(secret: &str) -> String {
    if secret.is_empty() {
        "the shared secret is empty; set the one the RADIUS peer has for us (1 to 128 bytes)".into()
    } else {
        format!(
            "the shared secret is {} bytes; it must be 1 to 128 bytes",
            secret.len()
        )
    }
}

/// Most named pools in `ppp.pools`.
pub const MAX_NAMED_POOLS: usize = 256;

/// Longest name of a named pool (what a RADIUS Framed-Pool may carry is
/// longer; operators' pool names are short).
pub const MAX_POOL_NAME: usize = 64;

const HOUR_SECS: u64 = 3600;
const DAY_SECS: u64 = 24 * HOUR_SECS;

/// Why `ip` cannot be a tunnel address, if it cannot: 0.0.0.0/8,
/// 127.0.0.0/8 and 224.0.0.0/3 (multicast, reserved, broadcast).
fn unusable_address(ip: Ipv4Addr) -> Option<&'static str> {
    match ip.octets()[0] {
        0 => Some("in 0.0.0.0/8 (this network)"),
        127 => Some("in 127.0.0.0/8 (loopback)"),
        224.. => Some("in 224.0.0.0/3 (multicast, reserved and broadcast)"),
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
            // `[[radius.servers]]`: an array of tables; go on inside the entry.
            if item.is_array_of_tables() {
                let Some(entry) = item.get(i) else { break };
                item = entry;
                best = item
                    .as_table()
                    .and_then(|t| t.span())
                    .map(|s| s.start)
                    .or(best);
                continue;
            }
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
    use std::time::Instant;

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
    fn shaping_rates_per_user_with_a_default() {
        use crate::proto::shaping::RateLimit;
        let c = Config::parse(
            "[shaping]\nrate = \"10M/20M\"\nburst_ms = 50\n[shaping.users]\nalice = \"2M/8M\"\nbob = \"0\"\n",
            "x",
        )
        .unwrap();
        let rl = |up_bps, down_bps| RateLimit { up_bps, down_bps };
        assert_eq!(c.shaping.rate_for("alice"), rl(2_000_000, 8_000_000));
        assert_eq!(c.shaping.rate_for("bob"), RateLimit::NONE);
        assert_eq!(c.shaping.rate_for("carol"), rl(10_000_000, 20_000_000));
        assert_eq!(c.shaping.burst_ns(), 50_000_000);
        assert_eq!(Config::default().shaping.rate_for("carol"), RateLimit::NONE);
    }

    #[test]
    fn bad_shaping_values_are_refused_by_name() {
        let (_, _, field, msg) = invalid("[shaping]\nrate = \"fast\"\n");
        assert_eq!(field, "shaping.rate");
        assert!(msg.contains("not a number"), "{msg}");
        let (line, _, field, _) = invalid("[shaping.users]\nalice = \"1M/2M/3M\"\n");
        assert_eq!((line, field.as_str()), (2, "shaping.users.alice"));
        let (_, _, field, _) = invalid("[shaping]\nburst_ms = 0\n");
        assert_eq!(field, "shaping.burst_ms");
        let (_, _, field, _) = invalid("[shaping]\nburst_ms = 4001\n");
        assert_eq!(field, "shaping.burst_ms");
    }

    #[test]
    fn syntax_error_names_line() {
        let (line, _, field, _) = invalid("[ppp]\nmru = = 3\n");
        assert_eq!(line, 2);
        assert_eq!(field, "-");
    }

    /// `[ppp.pools]`: named pools for RADIUS Framed-Pool, bound-checked as
    /// `ppp.pool`, errors located at the offending range.
    #[test]
    fn named_pools_are_parsed_and_checked() {
        let c = Config::parse(
            "[ppp.pools]\ngold = [\"198.19.10.0/24\"]\nstaff = [\"198.19.11.2-198.19.11.9\", \"198.19.12.1\"]\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.ppp.pools.len(), 2);
        assert_eq!(c.ppp.pools["staff"][1].to_string(), "198.19.12.1");
        assert_eq!(c.ppp.pool, PppConfig::default().pool);

        for (text, at, needle) in [
            // Overlapping the default pool (198.19.0.2-198.19.3.254).
            (
                "[ppp.pools]\ngold = [\"198.19.3.0/24\"]\n",
                (2, 9, "ppp.pools.gold[0]"),
                "overlaps 198.19.0.2-198.19.3.254 (ppp.pool[0])",
            ),
            // Overlapping another named pool.
            (
                "[ppp.pools]\na = [\"198.19.10.0/24\"]\nb = [\"198.19.11.1\", \"198.19.10.7\"]\n",
                (3, 21, "ppp.pools.b[1]"),
                "overlaps",
            ),
            (
                "[ppp]\nlocal_address = \"198.19.10.1\"\n[ppp.pools]\ngold = [\"198.19.10.0/24\"]\n",
                (4, 9, "ppp.pools.gold[0]"),
                "contains local_address 198.19.10.1",
            ),
            (
                "[ppp.pools]\ngold = []\n",
                (2, 8, "ppp.pools.gold"),
                "is empty",
            ),
            (
                "[ppp.pools]\ngold = [\"127.0.0.2\"]\n",
                (2, 9, "ppp.pools.gold[0]"),
                "loopback",
            ),
            (
                "[ppp.pools]\ngold = [\"10.0.0.0/12\", \"10.16.0.0/29\"]\n",
                (2, 24, "ppp.pools.gold[1]"),
                "at most 1048576",
            ),
            (
                "[ppp.pools]\n\"bad name\" = [\"198.19.10.1\"]\n",
                (1, 1, "ppp.pools"),
                "letters, digits",
            ),
        ] {
            let (line, col, field, msg) = invalid(text);
            assert_eq!((line, col, field.as_str()), at, "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
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

        let (line, _, field, msg) = invalid("[mppe]\nprepare_nice = -21\n");
        assert_eq!((line, field.as_str()), (2, "mppe.prepare_nice"));
        assert!(msg.contains("-20 to 19"), "{msg}");

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

    // ----- bounds (issue 15, problem 8) -----

    /// Each rejected value, the field the error must name and a piece of
    /// its message. The error's line must be the key's line (the last line
    /// of the text here).
    const REJECTED: &[(&str, &str, &str)] = &[
        // Durations that overflow `Instant + Duration` later: accepted
        // before these bounds (TOML integers stop at i64::MAX).
        (
            "[ppp]\nrestart_timer_ms = 9223372036854775807",
            "ppp.restart_timer_ms",
            "outside 10..=3600000 ms",
        ),
        (
            "[control]\necho_interval_secs = 9223372036854775807",
            "control.echo_interval_secs",
            "outside 0..=86400",
        ),
        (
            "[ppp]\nlcp_echo_interval_secs = 9223372036854775807",
            "ppp.lcp_echo_interval_secs",
            "outside",
        ),
        (
            "[auth]\nfailure_delay_ms = 9223372036854775807",
            "auth.failure_delay_ms",
            "outside 0..=60000 ms",
        ),
        (
            "[auth]\nsource_window_secs = 9223372036854775807",
            "auth.source_window_secs",
            "outside",
        ),
        (
            "[control]\nsetup_timeout_secs = 3601",
            "control.setup_timeout_secs",
            "outside 1..=3600",
        ),
        (
            "[limits]\nwrite_timeout_secs = 3601",
            "limits.write_timeout_secs",
            "outside 1..=3600",
        ),
        // Zero where zero would spin or disable a protection.
        (
            "[ppp]\nrestart_timer_ms = 0",
            "ppp.restart_timer_ms",
            "outside",
        ),
        (
            "[ppp]\nrestart_timer_ms = 9",
            "ppp.restart_timer_ms",
            "outside",
        ),
        (
            "[control]\nsetup_timeout_secs = 0",
            "control.setup_timeout_secs",
            "outside 1..=3600",
        ),
        (
            "[limits]\nwrite_timeout_secs = 0",
            "limits.write_timeout_secs",
            "outside",
        ),
        (
            "[auth]\nsource_window_secs = 0",
            "auth.source_window_secs",
            "outside",
        ),
        // Counts.
        (
            "[ppp]\nmax_configure = 0",
            "ppp.max_configure",
            "outside 1..=1000",
        ),
        (
            "[ppp]\nmax_configure = 1001",
            "ppp.max_configure",
            "outside",
        ),
        ("[ppp]\nmax_terminate = 0", "ppp.max_terminate", "outside"),
        ("[ppp]\nmax_failure = 0", "ppp.max_failure", "outside"),
        (
            "[ppp]\nlcp_echo_failures = 0",
            "ppp.lcp_echo_failures",
            "outside",
        ),
        ("[ppp]\nmru = 575", "ppp.mru", "outside 576..=1500"),
        (
            "[auth]\nmax_attempts = 0",
            "auth.max_attempts",
            "outside 1..=100",
        ),
        ("[auth]\nmax_attempts = 101", "auth.max_attempts", "outside"),
        (
            "[auth]\nsource_max_failures = 1000001",
            "auth.source_max_failures",
            "outside",
        ),
        (
            "[control]\necho_failures = 0",
            "control.echo_failures",
            "outside",
        ),
        (
            "[server]\nmax_sessions = 0",
            "server.max_sessions",
            "outside",
        ),
        (
            "[server]\nmax_sessions = 65536",
            "server.max_sessions",
            "outside 1..=65535",
        ),
        (
            "[limits]\ncalls_per_connection = 0",
            "limits.calls_per_connection",
            "outside 1..=65535",
        ),
        (
            "[limits]\nconnections_per_source = 65536",
            "limits.connections_per_source",
            "outside",
        ),
        (
            "[limits]\nmax_starting = 0",
            "limits.max_starting",
            "outside",
        ),
        (
            "[limits]\nuserspace_frames_per_call = 1000001",
            "limits.userspace_frames_per_call",
            "outside",
        ),
        (
            "[limits]\nuserspace_control_burst = 0",
            "limits.userspace_control_burst",
            "outside",
        ),
        (
            "[limits]\nconnection_rate_per_source = 0",
            "limits.connection_rate_per_source",
            "outside 1..=100000",
        ),
        (
            "[limits]\nconnection_burst_per_source = 0",
            "limits.connection_burst_per_source",
            "outside",
        ),
        (
            "[limits]\nsessions_per_user = 65536",
            "limits.sessions_per_user",
            "outside 0..=65535",
        ),
        (
            "[limits]\nsingle_session = \"kick\"",
            "limits.single_session",
            "unknown variant",
        ),
        // The pool: bounded size (0.0.0.0/1 was accepted and meant
        // billions of entries), no unusable addresses.
        (
            "[ppp]\npool = [\"0.0.0.0/1\"]",
            "ppp.pool[0]",
            "2147483646 addresses; at most 1048576",
        ),
        (
            "[ppp]\npool = [\"10.0.0.0/8\"]",
            "ppp.pool[0]",
            "at most 1048576",
        ),
        (
            "[ppp]\npool = [\"10.0.0.0/12\", \"10.16.0.0/30\",\n  \"10.32.0.0/29\"]",
            "ppp.pool[2]",
            "with the ranges before",
        ),
        (
            "[ppp]\npool = [\"0.0.0.1-0.0.0.9\"]",
            "ppp.pool[0]",
            "0.0.0.1 is in 0.0.0.0/8",
        ),
        (
            "[ppp]\npool = [\"127.0.0.2-127.0.0.9\"]",
            "ppp.pool[0]",
            "loopback",
        ),
        ("[ppp]\npool = [\"224.0.0.1\"]", "ppp.pool[0]", "multicast"),
        (
            "[ppp]\npool = [\"255.255.255.250-255.255.255.255\"]",
            "ppp.pool[0]",
            "broadcast",
        ),
        (
            "[ppp]\npool = [\"223.255.255.250-224.0.0.3\"]",
            "ppp.pool[0]",
            "224.0.0.3 is in 224.0.0.0/3",
        ),
        (
            "[ppp]\npool = [\"198.19.4.0/24\", \"198.19.6.0/24\",\n  \"198.19.4.100-198.19.4.120\"]",
            "ppp.pool[2]",
            "overlaps 198.19.4.1-198.19.4.254",
        ),
        (
            "[ppp]\nlocal_address = \"127.0.0.1\"",
            "ppp.local_address",
            "loopback",
        ),
        (
            "[ppp]\ndns = [\"198.18.0.53\", \"198.18.0.54\", \"198.18.0.55\"]",
            "ppp.dns",
            "3 servers",
        ),
        ("[ppp]\nnbns = [\"0.0.0.0\"]", "ppp.nbns[0]", "not a server"),
        // The address family and port of the listener.
        (
            "[server]\nlisten = \"[2001:db8::1]:1723\"",
            "server.listen",
            "or on [::] to take IPv4 clients",
        ),
        (
            "[server]\nlisten = \"[::1]:1723\"",
            "server.listen",
            "listen on an IPv4 address",
        ),
        (
            "[server]\nlisten = \"0.0.0.0:0\"",
            "server.listen",
            "port 0",
        ),
        (
            "[server]\nlisten = \"224.0.0.1:1723\"",
            "server.listen",
            "not an address to listen on",
        ),
    ];

    #[test]
    fn every_bound_is_enforced_and_names_the_field() {
        for &(text, want_field, want_message) in REJECTED {
            let (line, _, field, message) = invalid(text);
            assert_eq!(field, want_field, "{text}");
            assert_eq!(line, text.lines().count(), "{text}: line");
            assert!(message.contains(want_message), "{text}: {message}");
            // The displayed error carries file, line and field.
            let shown = Config::parse(text, "test.toml").unwrap_err().to_string();
            assert!(
                shown.starts_with(&format!("test.toml:{line}:")) && shown.contains(want_field),
                "{shown}"
            );
        }
    }

    #[test]
    fn values_at_the_bounds_are_accepted() {
        let text = "[server]\nlisten = \"[::]:1723\"\nmax_sessions = 65535\n\
            [ppp]\nlocal_address = \"10.16.0.1\"\npool = [\"10.0.0.0/12\"]\n\
            restart_timer_ms = 3600000\nmax_configure = 1000\nmax_terminate = 1000\n\
            max_failure = 1000\nlcp_echo_interval_secs = 86400\nlcp_echo_failures = 1000\n\
            dns = [\"198.18.0.53\", \"198.18.0.54\"]\n\
            [auth]\nmax_attempts = 100\nfailure_delay_ms = 60000\n\
            source_max_failures = 0\nsource_window_secs = 86400\n\
            [control]\necho_interval_secs = 0\necho_failures = 1000\nsetup_timeout_secs = 3600\n\
            [limits]\ncalls_per_connection = 65535\nconnections_per_source = 65535\n\
            max_starting = 65535\nconnection_rate_per_source = 100000\n\
            connection_burst_per_source = 100000\nsessions_per_user = 0\n\
            single_session = \"replace\"\nwrite_timeout_secs = 3600\n";
        let c = Config::parse(text, "x").unwrap();
        assert_eq!(c.ppp.pool[0].len(), MAX_POOL_ADDRESSES - 2);
        // Every mapped duration, times the count that multiplies it, still
        // fits `Instant` arithmetic.
        let now = Instant::now();
        let session = c.session_config();
        let auth = c.server_auth_settings();
        let control = c.control_settings();
        let limits = c.limits();
        for d in [
            session.fsm.restart_interval * 3 * session.fsm.max_configure,
            session.lcp.echo_interval.unwrap() * session.lcp.echo_failures,
            auth.failure_delay * auth.max_attempts,
            auth.restart_timer * auth.max_challenges,
            control.setup_timeout,
            control.echo_interval * control.echo_failures,
            c.source_limits().window,
            limits.write_timeout,
        ] {
            assert!(now.checked_add(d).is_some(), "{d:?}");
        }
        assert_eq!(limits.sessions_per_user, 0);
        assert_eq!(limits.over_user_limit, UserLimitPolicy::Replace);
    }

    #[test]
    fn ipv4_peer_unmaps_v4_mapped_addresses() {
        let peer = |s: &str| ipv4_peer(s.parse().unwrap());
        assert_eq!(peer("198.18.0.7:40000"), Some(Ipv4Addr::new(198, 18, 0, 7)));
        // An IPv4 client on a `[::]` listener.
        assert_eq!(
            peer("[::ffff:198.18.0.7]:40000"),
            Some(Ipv4Addr::new(198, 18, 0, 7))
        );
        assert_eq!(peer("[2001:db8::1]:40000"), None);
        assert_eq!(peer("[::1]:40000"), None);
        // IPv4-compatible (deprecated) is not IPv4-mapped.
        assert_eq!(peer("[::198.18.0.7]:40000"), None);
    }

    // ----- the mapping onto the cores' types -----

    #[test]
    fn defaults_map_onto_the_cores_defaults() {
        let c = Config::default();
        assert_eq!(c.limits(), Limits::default());
        assert_eq!(c.server_auth_settings(), ServerSettings::default());
        assert_eq!(c.xdp_mode(), XdpMode::Auto);
        let session = c.session_config();
        assert_eq!(session.fsm, FsmConfig::default());
        assert_eq!(session.lcp, LcpPolicy::server());
        assert_eq!(session.ccp, Some(CcpPolicy::default()));
        assert_eq!(
            session.ipcp,
            IpcpPolicy::Server {
                local_address: c.ppp.local_address,
                dns: Vec::new(),
                nbns: Vec::new(),
            }
        );
        let control = c.control_settings();
        assert_eq!(control.max_calls, 16);
        assert_eq!(control.setup_timeout, Limits::default().setup_timeout);
    }

    #[test]
    fn limits_section_maps_onto_limits() {
        let c = Config::parse(
            "[server]\nmax_sessions = 500\n[auth]\nmax_attempts = 5\n\
             [control]\nsetup_timeout_secs = 20\n\
             [limits]\ncalls_per_connection = 2\nconnections_per_source = 3\nmax_starting = 4\n\
             connection_rate_per_source = 5\nconnection_burst_per_source = 6\n\
             sessions_per_user = 1\nsingle_session = \"replace\"\nwrite_timeout_secs = 7\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.limits(),
            Limits {
                max_sessions: 500,
                calls_per_connection: 2,
                connections_per_source: 3,
                max_starting: 4,
                connection_rate_per_source: 5,
                connection_burst_per_source: 6,
                sessions_per_user: 1,
                over_user_limit: UserLimitPolicy::Replace,
                auth_attempts: 5,
                setup_timeout: Duration::from_secs(20),
                write_timeout: Duration::from_secs(7),
            }
        );
    }

    #[test]
    fn control_settings_from_the_configuration() {
        let mut c = Config::default();
        c.server.hostname = "gw1".into();
        c.server.max_sessions = 70_000;
        c.limits.calls_per_connection = 100_000;
        let s = c.control_settings();
        assert_eq!(s.host_name.text(), b"gw1");
        assert_eq!(s.maximum_channels, u16::MAX);
        // Calls per connection never above the server's sessions.
        assert_eq!(s.max_calls, 70_000);
        c.limits.calls_per_connection = 8;
        assert_eq!(c.control_settings().max_calls, 8);
        assert_eq!(s.echo_interval, Duration::from_secs(60));
        assert_eq!(s.echo_failures, 3);
        assert_eq!(s.setup_timeout, Duration::from_secs(30));
    }

    #[test]
    fn ppp_timers_and_auth_settings() {
        let c = Config::parse(
            "[server]\nhostname = \"gw1\"\n[ppp]\nrestart_timer_ms = 500\nmax_configure = 3\n\
             max_terminate = 1\nmax_failure = 2\nlcp_echo_interval_secs = 0\n\
             [auth]\nmax_attempts = 2\nfailure_delay_ms = 0\n\
             source_max_failures = 9\nsource_window_secs = 60\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.fsm_config(),
            FsmConfig {
                restart_interval: Duration::from_millis(500),
                max_configure: 3,
                max_terminate: 1,
                max_failure: 2,
            }
        );
        let lcp = c.lcp_policy();
        assert_eq!(lcp.echo_interval, None);
        assert_eq!(lcp.loopback_limit, 2);
        let auth = c.server_auth_settings();
        assert_eq!(auth.name, "gw1");
        assert_eq!(auth.max_attempts, 2);
        assert_eq!(auth.failure_delay, Duration::ZERO);
        assert_eq!(auth.restart_timer, Duration::from_millis(500));
        assert_eq!(auth.max_challenges, 3);
        assert_eq!(
            c.source_limits(),
            SourceLimits {
                max_failures: 9,
                window: Duration::from_secs(60),
                max_sources: SourceLimits::DEFAULT_MAX_SOURCES,
            }
        );
    }

    #[test]
    fn require_mppe_offers_only_ms_chap() {
        let c = Config::parse(
            "[auth]\nmethods = [\"chap-md5\", \"mschapv2\", \"pap\"]\n\
             [mppe]\npolicy = \"require\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.lcp_policy().auth_methods, [AuthMethod::MsChapV2]);
        assert_eq!(
            c.session_config().ccp.map(|p| p.policy),
            Some(MppePolicy::Require)
        );
        let c = Config::parse("[auth]\nmethods = [\"chap-md5\", \"pap\"]\n", "x").unwrap();
        assert_eq!(
            c.lcp_policy().auth_methods,
            [AuthMethod::ChapMd5, AuthMethod::Pap]
        );
    }

    #[test]
    fn mppe_policy_mapping() {
        let c = Config::parse(
            "[mppe]\npolicy = \"allow\"\nkey_lengths = [40, 128, 56, 40]\nstateful = true\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.mppe_policy(),
            CcpPolicy {
                policy: MppePolicy::Allow,
                key_lengths: vec![KeyLength::Bits128, KeyLength::Bits56, KeyLength::Bits40],
                stateful: StatefulMode::Allowed,
            }
        );
        let c = Config::parse("[mppe]\npolicy = \"deny\"\n", "x").unwrap();
        assert_eq!(c.session_config().ccp, None);
    }

    #[test]
    fn xdp_mode_mapping() {
        for (text, mode) in [
            ("auto", XdpMode::Auto),
            ("driver", XdpMode::Driver),
            ("generic", XdpMode::Generic),
            ("off", XdpMode::Off),
        ] {
            let c = Config::parse(&format!("[dataplane]\nxdp_mode = \"{text}\"\n"), "x").unwrap();
            assert_eq!(c.xdp_mode(), mode);
        }
    }

    #[test]
    fn forwarding_mapping_and_tunnel_name() {
        assert_eq!(Config::default().forwarding(), Forwarding::Stack);
        for (text, mode) in [("stack", Forwarding::Stack), ("xdp", Forwarding::Xdp)] {
            let c = Config::parse(&format!("[dataplane]\nforwarding = \"{text}\"\n"), "x").unwrap();
            assert_eq!(c.forwarding(), mode);
        }
        assert!(Config::parse("[dataplane]\nforwarding = \"kernel\"\n", "x").is_err());
        // The veth pair's peer takes a "p": 14 bytes at most under "stack".
        let name = "a".repeat(15);
        let stack = Config::parse(&format!("[dataplane]\ntun_name = \"{name}\"\n"), "x");
        assert!(
            stack
                .unwrap_err()
                .to_string()
                .contains("dataplane.tun_name")
        );
        let xdp = format!("[dataplane]\nforwarding = \"xdp\"\ntun_name = \"{name}\"\n");
        assert!(Config::parse(&xdp, "x").is_ok());
        assert!(Config::parse("[dataplane]\ntun_name = \"pptp/0\"\n", "x").is_err());
    }

    #[test]
    fn tunnel_queues_mapping_and_its_conditions() {
        assert_eq!(Config::default().tunnel_queues(), TunnelQueues::One);
        for (text, queues) in [
            ("one", TunnelQueues::One),
            ("per_cpu", TunnelQueues::PerCpu),
        ] {
            let c = Config::parse(&format!("[dataplane]\ntunnel_queues = \"{text}\"\n"), "x");
            assert_eq!(c.unwrap().tunnel_queues(), queues);
        }
        assert!(Config::parse("[dataplane]\ntunnel_queues = \"four\"\n", "x").is_err());
        // A queue per CPU is for the tunnel pair, and only with steering.
        for text in [
            "forwarding = \"xdp\"\ntunnel_queues = \"per_cpu\"\n",
            "steer_sends = false\ntunnel_queues = \"per_cpu\"\n",
        ] {
            let err = Config::parse(&format!("[dataplane]\n{text}"), "x").unwrap_err();
            assert!(err.to_string().contains("dataplane.tunnel_queues"), "{err}");
        }
    }

    // ----- [radius] -----

    const RADIUS_EXAMPLE: &str = "[auth]\nbackend = \"radius\"\n\
        [radius]\nnas_identifier = \"pptp-xdp\"\nnas_ip_address = \"198.18.0.1\"\n\
        timeout_ms = 1000\nretries = 2\ndead_time_secs = 30\n\
        [[radius.servers]]\naddress = \"127.0.0.1:1812\"\nsecret = \"testing123\"\n\
        [[radius.servers]]\naddress = \"127.0.0.2:1812\"\nsecret = \"other\"\n";

    #[test]
    fn radius_accounting_goes_to_port_plus_one_unless_acct_address() {
        let text = "[radius]\nacct_interim_interval_secs = 2\nacct_queue = 50\n\
            [[radius.servers]]\naddress = \"127.0.0.1:1812\"\nsecret = \"a\"\n\
            [[radius.servers]]\naddress = \"127.0.0.2:1812\"\nsecret = \"b\"\n\
            acct_address = \"127.0.0.3:2000\"\n";
        let c = Config::parse(text, "x").unwrap();
        let p = c.accounting_policy().expect("on by default");
        let servers: Vec<_> = p.delivery.servers.iter().map(|s| s.address).collect();
        assert_eq!(
            servers,
            [
                "127.0.0.1:1813".parse::<SocketAddr>().unwrap(),
                "127.0.0.3:2000".parse().unwrap()
            ]
        );
        assert_eq!(p.delivery.servers[1].secret, b"b");
        assert_eq!(p.interim_interval, Some(Duration::from_secs(2)));
        assert_eq!(p.delivery.capacity, 50);
        let off = Config::parse(
            &text.replace("acct_queue", "accounting = false\nacct_queue"),
            "x",
        )
        .unwrap();
        assert_eq!(off.accounting_policy(), None);
        assert_eq!(Config::default().accounting_policy(), None, "no server");
        assert_eq!(Config::default().radius.acct_interim_interval_secs, 0);
        let bad = text.replace("acct_queue = 50", "acct_queue = 0");
        assert!(Config::parse(&bad, "x").is_err());
        let bad = text.replace("127.0.0.3:2000", "0.0.0.0:1813");
        assert!(Config::parse(&bad, "x").is_err());
    }

    #[test]
    fn radius_section_maps_onto_radius_settings() {
        let c = Config::parse(RADIUS_EXAMPLE, "x").unwrap();
        assert_eq!(c.auth.backend, AuthBackend::Radius);
        let s = c.radius_settings();
        assert_eq!(s.nas_identifier, "pptp-xdp");
        assert_eq!(s.nas_ip_address, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(s.client.timeout, Duration::from_millis(1000));
        assert_eq!(s.client.retries, 2);
        assert_eq!(s.client.dead_time, Duration::from_secs(30));
        assert_eq!(
            s.client.servers,
            [
                Server {
                    address: "127.0.0.1:1812".parse().unwrap(),
                    secret: b"testing123".to_vec(),
                },
                Server {
                    address: "127.0.0.2:1812".parse().unwrap(),
                    secret: b"other".to_vec(),
                },
            ]
        );
        // The default back end is the secrets file, with no servers needed.
        let d = Config::default();
        assert_eq!(d.auth.backend, AuthBackend::Secrets);
        assert!(d.radius_settings().client.servers.is_empty());
        // Secrets are not shown, neither by --check-config nor by Debug.
        let shown = c.to_toml();
        assert!(
            !shown.contains("testing123") && shown.contains(HIDDEN_SECRET),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("testing123"));
        // The effective configuration still parses.
        let again = Config::parse(&shown, "y").unwrap();
        assert_eq!(again.radius.servers.len(), 2);
        assert_eq!(again.radius.servers[1].address, c.radius.servers[1].address);
    }

    #[test]
    fn radius_dae_table_parses_validates_and_hides_its_secret() {
        let text = "[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"coa-secret\"\n\
                    clients = [\"127.0.0.1\", \"198.18.0.5\"]\n";
        let c = Config::parse(text, "x").unwrap();
        let dae = c.radius.dae.as_ref().unwrap();
        assert_eq!(dae.listen, "127.0.0.1:3799".parse().unwrap());
        assert_eq!(dae.secret, "coa-secret");
        assert_eq!(dae.clients.len(), 2);
        assert!(
            Config::default().radius.dae.is_none(),
            "off unless configured"
        );
        let shown = c.to_toml();
        assert!(
            !shown.contains("coa-secret") && shown.contains(HIDDEN_SECRET),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("coa-secret"));
        for (text, want_line, want_field, want_message) in [
            (
                "[radius.dae]\nlisten = \"127.0.0.1:0\"\nsecret = \"s\"\nclients = [\"127.0.0.1\"]\n",
                2,
                "radius.dae.listen",
                "not an address to listen on",
            ),
            (
                "[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"\"\nclients = [\"127.0.0.1\"]\n",
                3,
                "radius.dae.secret",
                "1 to 128 bytes",
            ),
            (
                "[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"s\"\nclients = []\n",
                4,
                "radius.dae.clients",
                "list the addresses",
            ),
            (
                "[radius.dae]\nlisten = \"127.0.0.1:3799\"\nsecret = \"s\"\n\
                 clients = [\"127.0.0.1\", \"0.0.0.0\"]\n",
                4,
                "radius.dae.clients[1]",
                "not a client's address",
            ),
        ] {
            let (line, _, field, message) = invalid(text);
            assert_eq!((line, field.as_str()), (want_line, want_field), "{text}");
            assert!(message.contains(want_message), "{message}");
        }
        // A missing secret: serde names the table.
        let (_, _, field, message) =
            invalid("[radius.dae]\nlisten = \"127.0.0.1:3799\"\nclients = [\"127.0.0.1\"]\n");
        assert!(field.starts_with("radius.dae"), "{field}");
        assert!(message.contains("missing field `secret`"), "{message}");
    }

    #[test]
    fn radius_errors_name_the_line_and_field() {
        // backend = "radius" without servers: at the backend key.
        let (line, _, field, msg) = invalid("[auth]\nbackend = \"radius\"\n");
        assert_eq!((line, field.as_str()), (2, "auth.backend"));
        assert!(msg.contains("[[radius.servers]]"), "{msg}");
        // An empty secret in the second server: at that server's key.
        let (line, _, field, msg) = invalid(
            "[auth]\nbackend = \"radius\"\n[[radius.servers]]\naddress = \"127.0.0.1:1812\"\n\
             secret = \"a\"\n[[radius.servers]]\naddress = \"127.0.0.2:1812\"\nsecret = \"\"\n",
        );
        assert_eq!((line, field.as_str()), (8, "radius.servers[1].secret"));
        assert!(msg.contains("1 to 128 bytes"), "{msg}");
        // A missing secret is a serde error with the entry named.
        let (line, _, field, msg) = invalid("[[radius.servers]]\naddress = \"127.0.0.1:1812\"\n");
        assert_eq!(field, "radius.servers[0]");
        assert!(line <= 2 && msg.contains("missing field `secret`"), "{msg}");
        for (text, want_field, want_message) in [
            (
                "[radius]\ntimeout_ms = 0",
                "radius.timeout_ms",
                "outside 10..=60000 ms",
            ),
            (
                "[radius]\ntimeout_ms = 60001",
                "radius.timeout_ms",
                "outside",
            ),
            ("[radius]\nretries = 11", "radius.retries", "outside 0..=10"),
            (
                "[radius]\ndead_time_secs = 86401",
                "radius.dead_time_secs",
                "outside 0..=86400",
            ),
            (
                "[radius]\nnas_identifier = \"\"",
                "radius.nas_identifier",
                "1 to 253",
            ),
            (
                "[radius]\nnas_ip_address = \"0.0.0.0\"",
                "radius.nas_ip_address",
                "not an address of ours",
            ),
            (
                "[[radius.servers]]\nsecret = \"s\"\naddress = \"127.0.0.1:0\"",
                "radius.servers[0].address",
                "not a server's address",
            ),
            (
                "[[radius.servers]]\nsecret = \"s\"\naddress = \"0.0.0.0:1812\"",
                "radius.servers[0].address",
                "not a server's address",
            ),
            (
                "[[radius.servers]]\nsecret = \"s\"\naddress = \"127.0.0.1:1812\"\n\
                 [[radius.servers]]\nsecret = \"s\"\naddress = \"127.0.0.1:1812\"",
                "radius.servers[1].address",
                "listed twice",
            ),
            (
                "[[radius.servers]]\naddress = \"radius.example:1812\"",
                "radius.servers[0].address",
                "invalid socket address",
            ),
            (
                "[auth]\nbackend = \"ldap\"",
                "auth.backend",
                "unknown variant",
            ),
        ] {
            let (line, _, field, message) = invalid(text);
            assert_eq!(field, want_field, "{text}");
            assert_eq!(line, text.lines().count(), "{text}: line");
            assert!(message.contains(want_message), "{text}: {message}");
        }
    }

    #[test]
    fn check_reports_command_line_overrides() {
        let mut c = Config::default();
        c.server.listen = "[2001:db8::1]:1723".parse().unwrap();
        let err = c.check("--listen").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--listen: server.listen: 2001:db8::1"),
            "{err}"
        );
        c.server.listen = "[::]:1723".parse().unwrap();
        c.check("--listen").unwrap();
    }

    #[test]
    fn metrics_are_off_unless_listen_is_set_and_bounded() {
        assert_eq!(Config::default().metrics.listen, None, "off by default");
        let c = Config::parse("[metrics]\nlisten = \"\"\n", "x").unwrap();
        assert_eq!(c.metrics.listen, None, "empty is off");
        let c = Config::parse(
            "[metrics]\nlisten = \"127.0.0.1:9750\"\nmax_connections = 4\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(c.metrics.max_connections, 4);
        assert_eq!(Config::parse(&c.to_toml(), "y").unwrap(), c);
        for (text, want_field, want_message) in [
            (
                "[metrics]\nlisten = \"127.0.0.1:0\"",
                "metrics.listen",
                "not an address to listen on",
            ),
            (
                "[metrics]\nlisten = \"localhost\"",
                "metrics.listen",
                "invalid socket address",
            ),
            (
                "[metrics]\nmax_connections = 0",
                "metrics.max_connections",
                "outside 1..=1024",
            ),
            (
                "[metrics]\nmax_connections = 1025",
                "metrics.max_connections",
                "outside 1..=1024",
            ),
            (
                "[metrics]\nrequest_timeout_ms = 99",
                "metrics.request_timeout_ms",
                "outside 100..=60000",
            ),
            (
                "[metrics]\nrequest_timeout_ms = 60001",
                "metrics.request_timeout_ms",
                "outside 100..=60000",
            ),
        ] {
            let (line, _, field, message) = invalid(text);
            assert_eq!(field, want_field, "{text}");
            assert_eq!(line, 2, "{text}: line");
            assert!(message.contains(want_message), "{text}: {message}");
        }
    }

    #[test]
    fn log_format_is_text_unless_json() {
        assert_eq!(Config::default().log.format, LogFormat::Text);
        let c = Config::parse("[log]\nformat = \"json\"\n", "x").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let (_, _, field, message) = invalid("[log]\nformat = \"xml\"");
        assert_eq!(field, "log.format");
        assert!(message.contains("unknown variant"), "{message}");
    }
}
