//! Daemon configuration: a TOML file whose every key has a default.
//!
//! The defaults are written out in `config/default.toml`, which is embedded
//! in the binary; a test keeps that file and [`Config::default`] equal.
//! Errors name the file, the line and column, and the field.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub use crate::proto::pool::PoolRange;

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
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

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
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
    pub xdp_mode: XdpMode,
    pub tun_name: String,
    pub mss_clamp: bool,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interface: None,
            lan_interfaces: Vec::new(),
            xdp_mode: XdpMode::Auto,
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

/// An authentication method the server offers (RFC 1994, RFC 2433, RFC 2759, RFC 1334).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthMethod {
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
    pub methods: Vec<AuthMethod>,
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
                AuthMethod::MsChapV2,
                AuthMethod::MsChapV1,
                AuthMethod::ChapMd5,
            ],
            secrets: "/etc/ppp/chap-secrets".into(),
            max_attempts: 3,
            failure_delay_ms: 1000,
            source_max_failures: 20,
            source_window_secs: 300,
        }
    }
}

/// Whether sessions are encrypted with MPPE (RFC 3078).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MppePolicy {
    Require,
    #[default]
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MppeConfig {
    pub policy: MppePolicy,
    pub key_lengths: Vec<u16>,
    pub stateful: bool,
}

impl Default for MppeConfig {
    fn default() -> Self {
        Self {
            policy: MppePolicy::Allow,
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

    /// Checks what the types alone cannot; errors name the field.
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |field: &str, msg: String| Err((field.to_owned(), msg));
        let ppp = &self.ppp;
        if ppp.pool.is_empty() {
            return err("ppp.pool", "the address pool is empty".into());
        }
        for (i, a) in ppp.pool.iter().enumerate() {
            if a.contains(ppp.local_address) {
                return err(
                    &format!("ppp.pool[{i}]"),
                    format!("{a} contains local_address {}", ppp.local_address),
                );
            }
            for (j, b) in ppp.pool.iter().enumerate().skip(i + 1) {
                if a.first <= b.last && b.first <= a.last {
                    return err(&format!("ppp.pool[{j}]"), format!("{b} overlaps {a}"));
                }
            }
        }
        if !(576..=1500).contains(&ppp.mru) {
            return err("ppp.mru", format!("{} is outside 576..=1500", ppp.mru));
        }
        if ppp.restart_timer_ms == 0 {
            return err("ppp.restart_timer_ms", "must be above 0".into());
        }
        for (field, v) in [
            ("ppp.max_configure", ppp.max_configure),
            ("ppp.max_terminate", ppp.max_terminate),
            ("ppp.max_failure", ppp.max_failure),
            ("ppp.lcp_echo_failures", ppp.lcp_echo_failures),
            ("auth.max_attempts", self.auth.max_attempts),
            ("control.echo_failures", self.control.echo_failures),
        ] {
            if v == 0 {
                return err(field, "must be above 0".into());
            }
        }
        if self.auth.methods.is_empty() {
            return err("auth.methods", "no authentication method is enabled".into());
        }
        for (i, m) in self.auth.methods.iter().enumerate() {
            if self.auth.methods[..i].contains(m) {
                return err(
                    &format!("auth.methods[{i}]"),
                    format!("{m:?} is listed twice"),
                );
            }
        }
        let mppe = &self.mppe;
        if mppe.policy != MppePolicy::Deny {
            if mppe.key_lengths.is_empty() {
                return err(
                    "mppe.key_lengths",
                    "MPPE is allowed but no key length is".into(),
                );
            }
            for (i, k) in mppe.key_lengths.iter().enumerate() {
                if ![40, 56, 128].contains(k) {
                    return err(
                        &format!("mppe.key_lengths[{i}]"),
                        format!("{k} is not an MPPE key length (40, 56 or 128)"),
                    );
                }
            }
            let mschap = self
                .auth
                .methods
                .iter()
                .any(|m| matches!(m, AuthMethod::MsChapV1 | AuthMethod::MsChapV2));
            if mppe.policy == MppePolicy::Require && !mschap {
                return err(
                    "mppe.policy",
                    "MPPE keys come from MS-CHAP: `require` needs mschap or mschapv2 in auth.methods"
                        .into(),
                );
            }
        }
        if self.server.hostname.len() > 64 {
            return err("server.hostname", "longer than PPTP's 64 bytes".into());
        }
        if self.server.max_sessions == 0 || self.server.max_sessions > 65_535 {
            return err("server.max_sessions", "must be within 1..=65535".into());
        }
        if let Some(iface) = &self.dataplane.interface
            && (iface.is_empty() || iface.len() >= 16)
        {
            return err(
                "dataplane.interface",
                format!("`{iface}` is not an interface name"),
            );
        }
        for (i, iface) in self.dataplane.lan_interfaces.iter().enumerate() {
            if iface.is_empty() || iface.len() >= 16 {
                return err(
                    &format!("dataplane.lan_interfaces[{i}]"),
                    format!("`{iface}` is not an interface name"),
                );
            }
        }
        if self.dataplane.tun_name.is_empty() || self.dataplane.tun_name.len() >= 16 {
            return err("dataplane.tun_name", "must be 1 to 15 bytes".into());
        }
        Ok(())
    }
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
