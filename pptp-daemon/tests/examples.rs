//! The example configurations in `examples/` are valid: they parse and
//! pass every bound check (`Config::parse`), mean what their comments say,
//! and the daemon's own `--check-config` accepts them.

use std::{path::Path, process::Command};

use pptp_daemon::config::{AuthBackend, Config, MppePolicySetting, SingleSession};

fn example(name: &str) -> (String, Config) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let config = Config::parse(&text, name).unwrap_or_else(|e| panic!("{e}"));
    (path.display().to_string(), config)
}

/// `pptp-daemon --config PATH --check-config --offline` succeeds and
/// prints the effective configuration, which parses to the same value.
/// Offline: the examples name documentation addresses (192.0.2.0/24) that
/// a test must not send to; the RADIUS probe has its own tests in
/// namespaces (`pptp-lab/tests/radius_check_config.rs`).
fn check_config(path: &str, config: &Config) {
    let out = Command::new(env!("CARGO_BIN_EXE_pptp-daemon"))
        .args(["--config", path, "--check-config", "--offline"])
        .output()
        .expect("running pptp-daemon");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with(&format!("# {path}: valid")), "{stdout}");
    // Secrets are hidden in the output, so compare the rest.
    let shown = Config::parse(&stdout, "check-config output").unwrap();
    let mut expected = config.clone();
    for s in &mut expected.radius.servers {
        s.secret = pptp_daemon::config::HIDDEN_SECRET.into();
    }
    if let Some(dae) = &mut expected.radius.dae {
        dae.secret = pptp_daemon::config::HIDDEN_SECRET.into();
    }
    assert_eq!(shown, expected);
}

#[test]
fn small_office_example_is_valid() {
    let (path, c) = example("small-office.toml");
    assert_eq!(c.auth.backend, AuthBackend::Secrets);
    assert_eq!(c.auth.secrets, Path::new("/etc/ppp/chap-secrets"));
    assert_eq!(c.mppe.policy, MppePolicySetting::Require);
    assert_eq!(c.mppe.key_lengths, [128]);
    let pool: u64 = c.ppp.pool.iter().map(|r| r.len()).sum();
    assert_eq!(pool, 50);
    assert_eq!(c.limits.single_session, SingleSession::Replace);
    check_config(&path, &c);
}

#[test]
fn isp_radius_example_is_valid() {
    let (path, c) = example("isp-radius.toml");
    assert_eq!(c.auth.backend, AuthBackend::Radius);
    assert_eq!(c.radius.servers.len(), 2);
    let acct = c.accounting_policy().expect("accounting on");
    assert_eq!(
        acct.interim_interval,
        Some(std::time::Duration::from_secs(600))
    );
    assert!(c.radius.dae.is_some(), "dynamic authorization on");
    assert_eq!(c.dataplane.interface.as_deref(), Some("eth1"));
    assert!(c.limits.connection_rate_per_source < 20);
    check_config(&path, &c);
}
