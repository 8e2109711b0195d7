//! Reloading the configuration without dropping a session (SIGHUP, and the
//! control socket's `reload`).
//!
//! [`reload`] reads the configuration file the daemon started with again
//! (the embedded default when it started without one, the command line's
//! overrides applied again), with the same code as the start-up, and:
//!
//! - if it is invalid (or the secrets file it names cannot be read), keeps
//!   the old configuration entirely, logs why (file, line, field) and
//!   returns the error;
//! - else builds the new [`Live`] (settings, credentials check) and swaps
//!   it in as a whole, together with the concentrator's limits. Sessions
//!   read [`Live`] once, at their start: the live ones keep what they
//!   started with; the next ones get the new values. Lowered limits refuse
//!   new sessions and end none.
//!
//! Keys that cannot change without a restart ([`RESTART_ONLY`]: sockets,
//! interfaces, the TUN device, our address) keep their old value and are
//! reported as such, never half-applied.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use serde::Serialize;

use super::{
    Shared,
    registry::{Live, Settings},
};
use crate::{
    auth::{
        Verifier,
        limiter::LimitedVerifier,
        radius::RadiusVerifier,
        random::os_random,
        secrets::{SecretsError, SecretsFile},
    },
    config::{AuthBackend, Config, ConfigError},
    proto::pool::{AddressPool, named_pools},
};

/// Keys (dotted paths, a section covering everything under it) whose new
/// value needs a restart: the listening sockets, the XDP attachment, the
/// TUN device (its address and MTU), the DAE listener and the accounting
/// task. Address pools (`ppp.pool`, `ppp.pools`) are reloadable: live
/// sessions keep their addresses ([`Concentrator::set_pools`]).
///
/// [`Concentrator::set_pools`]: crate::proto::concentrator::Concentrator::set_pools
pub const RESTART_ONLY: &[&str] = &[
    "server.listen",
    "server.control_socket",
    "dataplane.interface",
    "dataplane.lan_interfaces",
    "dataplane.xdp_mode",
    "dataplane.forwarding",
    "dataplane.tun_name",
    "dataplane.steer_sends",
    "dataplane.tunnel_queues",
    "ppp.local_address",
    "ppp.mru",
    "radius.dae",
    "radius.accounting",
    "radius.acct_queue",
    // The runner (its concurrency bound and queue) is built once; live
    // sessions hold it for their ip-down.
    "scripts",
    // The metrics listener is bound once; the log's format is set up once
    // (its level changes on reload).
    "metrics",
    "log.format",
];

/// The keys that the accounting task (started once) reads besides
/// `radius.accounting` and `radius.acct_queue`: while accounting is on, a
/// change applies to authentication at once and to accounting at the
/// next restart.
const ACCOUNTING_DELIVERY: &[&str] = &[
    "radius.servers",
    "radius.timeout_ms",
    "radius.retries",
    "radius.dead_time_secs",
    "radius.nas_identifier",
    "radius.nas_ip_address",
];

/// What changed between two configurations, by dotted key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Changed keys whose new value applies to the sessions that start
    /// from now on.
    pub applied: Vec<String>,
    /// Changed keys that need a restart: the old value stays in effect.
    pub needs_restart: Vec<String>,
}

/// How the credentials check changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CredentialsChange {
    /// The same secrets file, read again (the per-source failure counts
    /// stay).
    SecretsReloaded { path: PathBuf, entries: usize },
    /// A new secrets file check (another file, host name or source
    /// limits, or a change of back end).
    NewSecrets { path: PathBuf, entries: usize },
    /// The same RADIUS back end: nothing to do.
    RadiusUnchanged,
    /// A new RADIUS back end (servers, secrets, timers, NAS identity or
    /// source limits changed, or a change of back end).
    NewRadius { servers: Vec<SocketAddr> },
}

/// What a successful reload did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The file read (or `<embedded default>`).
    pub origin: String,
    #[serde(flatten)]
    pub diff: ConfigDiff,
    pub credentials: CredentialsChange,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration reloaded from {}", self.origin)?;
        if self.diff.applied.is_empty() {
            write!(f, "; no setting changed")?;
        } else {
            write!(
                f,
                "; applies to new sessions: {}",
                self.diff.applied.join(", ")
            )?;
        }
        if !self.diff.needs_restart.is_empty() {
            write!(
                f,
                "; needs a restart, kept the old value: {}",
                self.diff.needs_restart.join(", ")
            )?;
        }
        match &self.credentials {
            CredentialsChange::SecretsReloaded { path, entries } => {
                write!(f, "; secrets {} re-read: {entries} entries", path.display())
            }
            CredentialsChange::NewSecrets { path, entries } => {
                write!(f, "; secrets {} loaded: {entries} entries", path.display())
            }
            CredentialsChange::RadiusUnchanged => write!(f, "; RADIUS unchanged"),
            CredentialsChange::NewRadius { servers } => {
                write!(f, "; RADIUS servers {servers:?}")
            }
        }
    }
}

/// Why a reload was refused; the old configuration stays in effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("invalid configuration, the old one stays in effect: {0}")]
    Config(#[from] ConfigError),
    #[error("secrets file not loaded, the old configuration stays in effect: {0}")]
    Secrets(#[from] SecretsError),
}

/// Reloads the configuration (see the module's documentation). Logs the
/// outcome: the report, or why nothing changed.
pub fn reload(shared: &Shared) -> Result<ReloadReport, ReloadError> {
    let _one_at_a_time = shared.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
    let old_config = shared.live().config.clone();
    match prepare(shared) {
        Ok((live, report)) => {
            // Limits first: a session admitted from here on sees the new
            // limits and, from its start, the new configuration.
            {
                let mut core = shared.core();
                core.set_limits(live.config.limits());
                let (old, new) = (&old_config.ppp, &live.config.ppp);
                if old.pool != new.pool || old.pools != new.pools {
                    let ours = [new.local_address];
                    core.set_pools(
                        AddressPool::new(&new.pool, &ours),
                        named_pools(&new.pools, &ours),
                    );
                }
            }
            let level =
                (old_config.log.level != live.config.log.level).then_some(live.config.log.level);
            *shared.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
            if let Some(level) = level
                && let Err(e) = super::logging::set_level(level)
            {
                tracing::warn!("log.level: {e}");
            }
            for key in &report.diff.needs_restart {
                tracing::warn!("{key}: needs a restart, kept the old value");
            }
            tracing::info!("{report}");
            Ok(report)
        }
        Err(e) => {
            tracing::error!("{e}");
            Err(e)
        }
    }
}

/// Everything that can fail, before anything changes.
fn prepare(shared: &Shared) -> Result<(Live, ReloadReport), ReloadError> {
    let old = shared.live();
    let loaded = shared.origin.load()?;
    let diff = diff(&old.config, &loaded);
    let config = keep_restart_only(&old.config, loaded);
    let (verifier, secrets, credentials) = credentials(&old, &config)?;
    let settings = Settings::from_config(&config);
    let report = ReloadReport {
        origin: shared.origin.name(),
        diff,
        credentials,
    };
    let live = Live {
        config,
        settings,
        verifier,
        secrets,
    };
    Ok((live, report))
}

/// A credentials check and, under the secrets back end, its file.
pub type CredentialsCheck = (Arc<dyn Verifier>, Option<Arc<SecretsFile>>);

/// The credentials check of the daemon's start: the secrets file (a
/// missing one is an empty table, with a warning: it is read again on
/// reload) or RADIUS, behind the per-source failure limiter.
pub fn start_credentials(config: &Config) -> Result<CredentialsCheck, SecretsError> {
    let secrets = match config.auth.backend {
        AuthBackend::Secrets => {
            let file = match SecretsFile::load(&config.auth.secrets, &config.server.hostname) {
                Ok(file) => {
                    tracing::info!(path = %config.auth.secrets.display(), entries = file.len(), "secrets loaded");
                    file
                }
                Err(SecretsError::Missing { .. }) => {
                    tracing::warn!(
                        path = %config.auth.secrets.display(),
                        "secrets file missing: every authentication will fail until it exists (it is re-read on reload)"
                    );
                    SecretsFile::empty(&config.auth.secrets, &config.server.hostname)
                }
                Err(e) => return Err(e),
            };
            Some(Arc::new(file))
        }
        AuthBackend::Radius => None,
    };
    Ok((limited(config, secrets.clone()), secrets))
}

/// The back end of `config` (`secrets` under the secrets back end) behind
/// the per-source limiter.
fn limited(config: &Config, secrets: Option<Arc<SecretsFile>>) -> Arc<dyn Verifier> {
    let backend: Arc<dyn Verifier> = match secrets {
        Some(file) => file,
        None => {
            let settings = config.radius_settings();
            tracing::info!(
                servers = ?settings.client.servers.iter().map(|s| s.address).collect::<Vec<_>>(),
                "authenticating through RADIUS"
            );
            Arc::new(RadiusVerifier::new(settings, os_random()))
        }
    };
    Arc::new(LimitedVerifier::new(backend, config.source_limits()))
}

type Credentials = (
    Arc<dyn Verifier>,
    Option<Arc<SecretsFile>>,
    CredentialsChange,
);

/// The credentials check for `new`: the old one when nothing it depends
/// on changed (the secrets file read again in place: the last step that
/// can fail), a new one otherwise.
fn credentials(old: &Live, new: &Config) -> Result<Credentials, ReloadError> {
    let same = same_credentials_check(&old.config, new);
    match (new.auth.backend, &old.secrets) {
        (AuthBackend::Secrets, Some(file)) if same => {
            let entries = file.reload()?;
            let change = CredentialsChange::SecretsReloaded {
                path: file.path().to_owned(),
                entries,
            };
            Ok((old.verifier.clone(), Some(file.clone()), change))
        }
        (AuthBackend::Secrets, _) => {
            let file = Arc::new(SecretsFile::load(&new.auth.secrets, &new.server.hostname)?);
            let change = CredentialsChange::NewSecrets {
                path: file.path().to_owned(),
                entries: file.len(),
            };
            Ok((limited(new, Some(file.clone())), Some(file), change))
        }
        (AuthBackend::Radius, _) if same => Ok((
            old.verifier.clone(),
            None,
            CredentialsChange::RadiusUnchanged,
        )),
        (AuthBackend::Radius, _) => {
            let servers = new.radius.servers.iter().map(|s| s.address).collect();
            Ok((
                limited(new, None),
                None,
                CredentialsChange::NewRadius { servers },
            ))
        }
    }
}

/// Whether the credentials check built from `a` and from `b` is the same:
/// same back end, source limits, and back-end settings.
fn same_credentials_check(a: &Config, b: &Config) -> bool {
    let common = a.auth.backend == b.auth.backend
        && a.auth.source_max_failures == b.auth.source_max_failures
        && a.auth.source_window_secs == b.auth.source_window_secs;
    common
        && match b.auth.backend {
            AuthBackend::Secrets => {
                a.auth.secrets == b.auth.secrets && a.server.hostname == b.server.hostname
            }
            AuthBackend::Radius => {
                let (x, y) = (&a.radius, &b.radius);
                x.servers == y.servers
                    && x.timeout_ms == y.timeout_ms
                    && x.retries == y.retries
                    && x.dead_time_secs == y.dead_time_secs
                    && x.nas_identifier == y.nas_identifier
                    && x.nas_ip_address == y.nas_ip_address
            }
        }
}

/// Which keys changed from `old` to `new`, and which of them need a
/// restart. Pure: the reload's report, and its tests.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut out = ConfigDiff::default();
    for key in changed_keys(old, new) {
        if is_restart_only(&key) {
            out.needs_restart.push(key);
        } else {
            if old.radius.accounting
                && !old.radius.servers.is_empty()
                && ACCOUNTING_DELIVERY.contains(&key.as_str())
            {
                out.needs_restart.push(format!("{key} (accounting)"));
            }
            out.applied.push(key);
        }
    }
    out
}

fn is_restart_only(key: &str) -> bool {
    RESTART_ONLY.iter().any(|r| {
        key == *r
            || key
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// `new` with every [`RESTART_ONLY`] key set back to its value in `old`:
/// the configuration actually in effect after a reload.
pub fn keep_restart_only(old: &Config, mut new: Config) -> Config {
    new.server.listen = old.server.listen;
    new.server.control_socket = old.server.control_socket.clone();
    new.dataplane.interface = old.dataplane.interface.clone();
    new.dataplane.lan_interfaces = old.dataplane.lan_interfaces.clone();
    new.dataplane.xdp_mode = old.dataplane.xdp_mode;
    new.dataplane.forwarding = old.dataplane.forwarding;
    new.dataplane.tun_name = old.dataplane.tun_name.clone();
    new.dataplane.steer_sends = old.dataplane.steer_sends;
    new.dataplane.tunnel_queues = old.dataplane.tunnel_queues;
    new.ppp.local_address = old.ppp.local_address;
    new.ppp.mru = old.ppp.mru;
    new.radius.dae = old.radius.dae.clone();
    new.radius.accounting = old.radius.accounting;
    new.radius.acct_queue = old.radius.acct_queue;
    new.scripts = old.scripts.clone();
    new.metrics = old.metrics.clone();
    new.log.format = old.log.format;
    new
}

/// The dotted keys whose values differ (an array or a value as a whole;
/// a table key by key), in order.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| -> toml::Table { toml::from_str(&c.to_toml()).unwrap_or_default() };
    let (a, b) = (table(old), table(new));
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    // Secrets are not serialized (`--check-config` hides them): compare
    // the fields that hold them.
    if old.radius.servers != new.radius.servers {
        out.push("radius.servers".to_owned());
    }
    if old.radius.dae != new.radius.dae && !out.iter().any(|k| k.starts_with("radius.dae")) {
        out.push("radius.dae".to_owned());
    }
    out.sort();
    out.dedup();
    out
}

fn walk(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (a.get(key), b.get(key)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => walk(&path, x, y, out),
            (x, y) if x != y => out.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::{DEFAULT_TOML, MppePolicySetting, RadiusServerConfig};

    fn base() -> Config {
        Config::parse(DEFAULT_TOML, "default").unwrap()
    }

    /// The daemon's shared state as `run` builds it from the file `dir/pptp.toml`
    /// (no XDP, no TUN device: a reload touches neither).
    fn shared_from(dir: &std::path::Path) -> Shared {
        use crate::{
            cli::ConfigOrigin,
            proto::{concentrator::Concentrator, pool::AddressPool},
        };
        let origin = ConfigOrigin {
            path: Some(dir.join("pptp.toml")),
            ..ConfigOrigin::default()
        };
        let config = origin.load().expect("the first configuration is valid");
        let (verifier, secrets) = start_credentials(&config).expect("credentials");
        let pool = AddressPool::new(&config.ppp.pool, &[config.ppp.local_address]);
        let core = Concentrator::new(config.limits(), pool, 7);
        let live = Live {
            settings: Settings::from_config(&config),
            verifier,
            secrets,
            config,
        };
        Shared::for_tests(live, origin, core, None).0
    }

    /// Whether `live` is the very configuration `shared` runs with.
    fn unchanged(shared: &Shared, live: &Arc<Live>) -> bool {
        Arc::ptr_eq(&shared.live(), live)
    }

    /// The whole path: an invalid file and an unreadable secrets file
    /// change nothing (not even the valid part: the limits); a valid one
    /// swaps the configuration and the limits, keeps a restart-only key's
    /// old value, and re-reads the same secrets file in place (the same
    /// check, its per-source counts kept) or builds a new check.
    #[tokio::test]
    async fn reload_is_all_or_nothing() {
        /// Removes the scratch folder, even when the test fails.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let scratch =
            Scratch(std::env::temp_dir().join(format!("pptp-reload-{}", std::process::id())));
        let dir = scratch.0.clone();
        std::fs::create_dir_all(&dir).unwrap();
        let secrets = dir.join("chap-secrets");
        std::fs::write(&secrets, "alice * \"pw\" *\n").unwrap();
        let write = |limits: &str, extra: &str, secrets: &std::path::Path| {
            let text = format!(
                "[server]\nlisten = \"198.18.0.1:1723\"\n{extra}\n[auth]\nsecrets = \"{}\"\n\n[limits]\n{limits}\n",
                secrets.display()
            );
            std::fs::write(dir.join("pptp.toml"), text).unwrap();
        };
        write("sessions_per_user = 4", "", &secrets);
        let shared = shared_from(&dir);
        let first = shared.live();
        let per_user = |s: &Shared| s.core().limits().sessions_per_user;

        // Invalid: the valid change next to it does not apply either.
        write(
            "sessions_per_user = 1\nwrite_timeout_secs = 0",
            "",
            &secrets,
        );
        let e = reload(&shared).unwrap_err();
        assert!(
            matches!(&e, ReloadError::Config(ConfigError::Invalid { field, line: 9, .. }) if field == "limits.write_timeout_secs"),
            "{e}"
        );
        assert!(unchanged(&shared, &first));
        assert_eq!(per_user(&shared), 4);

        // A secrets file that cannot be read: the same.
        write("sessions_per_user = 1", "", &dir);
        let e = reload(&shared).unwrap_err();
        assert!(matches!(e, ReloadError::Secrets(_)), "{e}");
        assert!(unchanged(&shared, &first));
        assert_eq!(per_user(&shared), 4);

        // Valid, with a restart-only key: the rest applies.
        std::fs::write(&secrets, "alice * \"pw\" *\nbob * \"pw\" *\n").unwrap();
        write("sessions_per_user = 1", "", &secrets);
        let text = std::fs::read_to_string(dir.join("pptp.toml")).unwrap();
        std::fs::write(
            dir.join("pptp.toml"),
            text.replace("198.18.0.1:1723", "198.18.0.1:1724"),
        )
        .unwrap();
        let report = reload(&shared).unwrap();
        assert_eq!(report.diff.applied, ["limits.sessions_per_user"]);
        assert_eq!(report.diff.needs_restart, ["server.listen"]);
        assert_eq!(
            report.credentials,
            CredentialsChange::SecretsReloaded {
                path: secrets.clone(),
                entries: 2
            }
        );
        let second = shared.live();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(per_user(&shared), 1);
        assert_eq!(second.config.limits.sessions_per_user, 1);
        assert_eq!(second.config.server.listen, first.config.server.listen);
        assert!(
            Arc::ptr_eq(&first.verifier, &second.verifier),
            "the same file re-read in place"
        );

        // Other source limits: a new check.
        write("sessions_per_user = 1", "", &secrets);
        let text = std::fs::read_to_string(dir.join("pptp.toml")).unwrap();
        std::fs::write(
            dir.join("pptp.toml"),
            text.replace("[auth]\n", "[auth]\nsource_max_failures = 3\n"),
        )
        .unwrap();
        let report = reload(&shared).unwrap();
        assert_eq!(report.diff.applied, ["auth.source_max_failures"]);
        assert!(matches!(
            report.credentials,
            CredentialsChange::NewSecrets { entries: 2, .. }
        ));
        assert!(!Arc::ptr_eq(&second.verifier, &shared.live().verifier));

        // Address pools: the concentrator serves new sessions from the
        // new ones.
        let default_size = shared.core().pool().size();
        assert!(shared.core().named_pools().is_empty());
        write(
            "sessions_per_user = 1",
            "[ppp]\npool = [\"198.19.5.0/29\"]\n[ppp.pools]\ngold = [\"198.19.6.0/29\"]\n",
            &secrets,
        );
        let report = reload(&shared).unwrap();
        assert!(
            report.diff.applied.iter().any(|k| k == "ppp.pool")
                && report
                    .diff
                    .applied
                    .iter()
                    .any(|k| k.starts_with("ppp.pools")),
            "{report}"
        );
        assert!(report.diff.needs_restart.is_empty(), "{report}");
        let core = shared.core();
        assert_ne!(core.pool().size(), default_size);
        assert_eq!(
            core.named_pools().keys().collect::<Vec<_>>(),
            ["gold"],
            "the named pool is live"
        );
    }

    #[test]
    fn nothing_changed_means_an_empty_diff() {
        assert_eq!(diff(&base(), &base()), ConfigDiff::default());
    }

    #[test]
    fn reloadable_keys_are_applied_by_dotted_name() {
        let old = base();
        let mut new = base();
        new.limits.sessions_per_user = 1;
        new.server.max_sessions = 5;
        new.ppp.dns = vec![Ipv4Addr::new(198, 18, 9, 9)];
        new.ppp.restart_timer_ms += 1;
        new.mppe.policy = MppePolicySetting::Deny;
        new.control.echo_interval_secs += 1;
        new.radius.acct_interim_interval_secs = 60;
        new.auth.secrets = "/elsewhere".into();
        new.log.level = crate::cli::LogLevel::Debug;
        let d = diff(&old, &new);
        assert_eq!(
            d.applied,
            [
                "auth.secrets",
                "control.echo_interval_secs",
                "limits.sessions_per_user",
                "log.level",
                "mppe.policy",
                "ppp.dns",
                "ppp.restart_timer_ms",
                "radius.acct_interim_interval_secs",
                "server.max_sessions",
            ]
        );
        assert!(d.needs_restart.is_empty(), "{d:?}");
        // All of them stay in the configuration in effect.
        assert_eq!(keep_restart_only(&old, new.clone()), new);
    }

    /// A configuration that differs from `base()` in every restart-only key.
    fn every_restart_key_changed() -> Config {
        let mut new = base();
        new.server.listen = "198.18.0.1:1724".parse().unwrap();
        new.server.control_socket = "/run/other.sock".into();
        new.dataplane.interface = Some("wan9".into());
        new.dataplane.lan_interfaces = vec!["lan9".into()];
        new.dataplane.xdp_mode = crate::config::XdpModeSetting::Off;
        new.dataplane.forwarding = crate::config::ForwardingSetting::Xdp;
        new.dataplane.tun_name = "tun9".into();
        new.dataplane.steer_sends = !new.dataplane.steer_sends;
        new.dataplane.tunnel_queues = crate::config::TunnelQueuesSetting::PerCpu;
        new.ppp.local_address = Ipv4Addr::new(198, 19, 200, 1);
        new.ppp.mru -= 10;
        new.radius.dae = Some(crate::config::DaeConfig {
            listen: "198.18.0.1:3799".parse().unwrap(),
            secret: "s".into(),
            clients: vec![],
        });
        new.radius.accounting = !new.radius.accounting;
        new.radius.acct_queue += 1;
        new.scripts.timeout_secs += 1;
        new.metrics.listen = Some("127.0.0.1:9750".parse().unwrap());
        new.log.format = crate::config::LogFormat::Json;
        new
    }

    #[test]
    fn restart_only_keys_are_reported_and_keep_their_old_value() {
        let old = base();
        let new = every_restart_key_changed();
        let d = diff(&old, &new);
        assert!(d.applied.is_empty(), "{d:?}");
        // A section is reported by the key that changed in it.
        let mut expected: Vec<&str> = RESTART_ONLY
            .iter()
            .map(|&k| match k {
                "scripts" => "scripts.timeout_secs",
                "metrics" => "metrics.listen",
                k => k,
            })
            .collect();
        expected.sort_unstable();
        assert_eq!(d.needs_restart, expected);
        // Kept: the configuration in effect is the old one.
        assert_eq!(keep_restart_only(&old, new), old);
    }

    #[test]
    fn a_mixed_change_applies_one_part_and_keeps_the_other() {
        let old = base();
        let mut new = every_restart_key_changed();
        new.limits.calls_per_connection = 2;
        let d = diff(&old, &new);
        assert_eq!(d.applied, ["limits.calls_per_connection"]);
        let kept = keep_restart_only(&old, new);
        assert_eq!(kept.limits.calls_per_connection, 2);
        assert_eq!(kept.server.listen, old.server.listen);
        assert!(diff(&old, &kept).needs_restart.is_empty());
    }

    #[test]
    fn a_dae_secret_change_alone_is_seen() {
        let mut old = base();
        old.radius.dae = every_restart_key_changed().radius.dae;
        let mut new = old.clone();
        if let Some(dae) = &mut new.radius.dae {
            dae.secret = "another".into();
        }
        assert_eq!(diff(&old, &new).needs_restart, ["radius.dae"]);
        assert_eq!(keep_restart_only(&old, new), old);
    }

    #[test]
    fn a_section_within_a_restart_only_one_is_restart_only() {
        assert!(is_restart_only("radius.dae"));
        assert!(is_restart_only("radius.dae.listen"));
        assert!(!is_restart_only("radius.daemon"));
        assert!(!is_restart_only("server.listen_backlog"));
        assert!(!is_restart_only("server.max_sessions"));
    }

    #[test]
    fn radius_server_changes_need_a_restart_for_accounting_only() {
        let mut old = base();
        old.radius.servers = vec![RadiusServerConfig {
            address: "198.18.0.2:1812".parse().unwrap(),
            secret: "old".into(),
            acct_address: None,
        }];
        let mut new = old.clone();
        new.radius.timeout_ms += 1;
        // Only the secret: hidden from the serialized form, still seen.
        new.radius.servers[0].secret = "new".into();
        // Accounting off: authentication only, nothing needs a restart.
        old.radius.accounting = false;
        new.radius.accounting = false;
        let d = diff(&old, &new);
        assert_eq!(d.applied, ["radius.servers", "radius.timeout_ms"]);
        assert!(d.needs_restart.is_empty());
        // Accounting on: its delivery keeps the old servers.
        old.radius.accounting = true;
        new.radius.accounting = true;
        let d = diff(&old, &new);
        assert_eq!(d.applied, ["radius.servers", "radius.timeout_ms"]);
        assert_eq!(
            d.needs_restart,
            [
                "radius.servers (accounting)",
                "radius.timeout_ms (accounting)"
            ]
        );
    }

    #[test]
    fn the_credentials_check_is_kept_only_when_nothing_it_uses_changed() {
        let old = base();
        let mut new = base();
        new.limits.sessions_per_user = 1;
        assert!(same_credentials_check(&old, &new));
        new.server.hostname = "other".into();
        assert!(
            !same_credentials_check(&old, &new),
            "the secrets' server name"
        );
        let mut new = base();
        new.auth.source_max_failures += 1;
        assert!(!same_credentials_check(&old, &new));
        let mut new = base();
        new.auth.backend = AuthBackend::Radius;
        assert!(!same_credentials_check(&old, &new));
        let mut old_r = base();
        old_r.auth.backend = AuthBackend::Radius;
        let mut new_r = old_r.clone();
        new_r.server.hostname = "other".into();
        assert!(same_credentials_check(&old_r, &new_r), "RADIUS ignores it");
        new_r.radius.retries += 1;
        assert!(!same_credentials_check(&old_r, &new_r));
    }

    #[test]
    fn the_report_reads_as_a_log_line() {
        let report = ReloadReport {
            origin: "/etc/pptp-xdp.toml".into(),
            diff: ConfigDiff {
                applied: vec!["limits.sessions_per_user".into()],
                needs_restart: vec!["server.listen".into()],
            },
            credentials: CredentialsChange::SecretsReloaded {
                path: "/etc/ppp/chap-secrets".into(),
                entries: 2,
            },
        };
        assert_eq!(
            report.to_string(),
            "configuration reloaded from /etc/pptp-xdp.toml; applies to new sessions: \
             limits.sessions_per_user; needs a restart, kept the old value: server.listen; \
             secrets /etc/ppp/chap-secrets re-read: 2 entries"
        );
    }
}
