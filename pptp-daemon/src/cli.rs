//! Command line of `pptp-daemon`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, DEFAULT_TOML, LogFormat, XdpModeSetting};

/// PPTP VPN concentrator with an eBPF/XDP data plane.
#[derive(Debug, Parser)]
#[command(name = "pptp-daemon", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it the embedded default is used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// With --check-config: validate the file only, without asking the
    /// RADIUS servers (Status-Server) whether they answer.
    #[arg(long, requires = "check_config")]
    pub offline: bool,
    /// WAN interface for the XDP fast path (overrides dataplane.interface).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Control connection address (overrides server.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Keep every session on the userspace data path (dataplane.xdp_mode = "off").
    #[arg(long)]
    pub no_xdp: bool,
    /// Log verbosity (overrides log.level; default info); RUST_LOG, when
    /// set, takes precedence.
    #[arg(long, value_enum, global = true)]
    pub log_level: Option<LogLevel>,
    /// Log line format (overrides log.format): text, or one JSON object per line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Without a command: run the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of running the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Control the running daemon: sessions, show, terminate, stat, reload, shutdown.
    Ctl(crate::ctl_cli::CtlArgs),
    /// `ctl sessions` (kept for older scripts).
    #[command(hide = true)]
    Sessions {
        /// The daemon's control socket (default: server.control_socket of the configuration).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The data-path counters as before `ctl` (kept for older scripts:
    /// the same answer, `{"counters": [[name, value], ...]}` with --json).
    #[command(hide = true)]
    Stats {
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run our own PPTP client against any PPTP server (operators' test;
    /// the lab, bench and end-to-end tests of `pptp-lab` drive it too).
    Client(crate::client::ClientArgs),
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }

    pub fn as_log_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

impl Cli {
    /// The configuration file (or the embedded default) with the command
    /// line's overrides applied.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        self.config_origin().load()
    }

    /// Where the configuration comes from: what a reload reads again.
    pub fn config_origin(&self) -> ConfigOrigin {
        ConfigOrigin {
            path: self.config.clone(),
            iface: self.iface.clone(),
            listen: self.listen,
            no_xdp: self.no_xdp,
            log_format: self.log_format,
            log_level: self.log_level,
        }
    }
}

/// The configuration file the daemon started with (the embedded default
/// when none) and the command line's overrides: loaded at start, and again
/// by every reload, with the same code.
#[derive(Clone, Debug, Default)]
pub struct ConfigOrigin {
    pub path: Option<PathBuf>,
    pub iface: Option<String>,
    pub listen: Option<SocketAddr>,
    pub no_xdp: bool,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
}

impl ConfigOrigin {
    /// Reads, parses and validates the configuration, overrides applied.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.path {
            Some(path) => Config::load(path)?,
            None => Config::parse(DEFAULT_TOML, "<embedded default>")?,
        };
        if let Some(iface) = &self.iface {
            config.dataplane.interface = Some(iface.clone());
        }
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if self.no_xdp {
            config.dataplane.xdp_mode = XdpModeSetting::Off;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(level) = self.log_level {
            config.log.level = level;
        }
        if self.iface.is_some() || self.listen.is_some() {
            config.check("--iface/--listen")?;
        }
        Ok(config)
    }

    /// The file's name, or `<embedded default>`.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or("<embedded default>".to_owned(), |p| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_to_the_default() {
        let cli = Cli::parse_from([
            "pptp-daemon",
            "--iface",
            "wan0",
            "--listen",
            "198.18.0.1:1723",
            "--no-xdp",
        ]);
        let c = cli.load_config().unwrap();
        assert_eq!(c.dataplane.interface.as_deref(), Some("wan0"));
        assert_eq!(c.server.listen, "198.18.0.1:1723".parse().unwrap());
        assert_eq!(c.dataplane.xdp_mode, XdpModeSetting::Off);
    }

    #[test]
    fn overrides_are_checked() {
        let cli = Cli::parse_from(["pptp-daemon", "--listen", "[2001:db8::1]:1723"]);
        let err = cli.load_config().unwrap_err();
        assert!(
            matches!(&err, ConfigError::CommandLine { field, .. } if field == "server.listen"),
            "{err}"
        );
        let cli = Cli::parse_from(["pptp-daemon", "--iface", "a-name-far-too-long"]);
        assert!(cli.load_config().is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
