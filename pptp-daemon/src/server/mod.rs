//! The tokio glue that runs the daemon: data plane setup, the control
//! listener and clean shutdown on SIGINT/SIGTERM.

pub mod ctl;
pub mod pool;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::LogLevel,
    config::{Config, XdpMode},
    dataplane::xdp::{XdpDataplane, run_logger},
};

/// Sets up the log: `RUST_LOG` when set, else `level`. Log records of the
/// `log` crate (aya, aya-log) are forwarded too.
pub fn init_tracing(level: LogLevel) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(level.as_filter().into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config, log_level: LogLevel) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    let mut xdp = None;
    let mut logger_task = None;
    match (&config.dataplane.interface, config.dataplane.xdp_mode) {
        (_, XdpMode::Off) => tracing::info!("XDP off: every session uses the userspace data path"),
        (None, _) => tracing::info!(
            "no dataplane.interface configured: XDP not attached, every session uses the userspace data path"
        ),
        (Some(iface), mode) => {
            let mut dp =
                XdpDataplane::load(log_level.as_log_filter()).context("loading the XDP program")?;
            dp.attach(iface, mode)
                .with_context(|| format!("attaching XDP to {iface}"))?;
            if let Some(logger) = dp.take_logger() {
                logger_task = Some(tokio::spawn(run_logger(logger)));
            }
            xdp = Some(dp);
        }
    }

    tracing::info!(listen = %config.server.listen, "pptp-xdp running");
    tokio::select! {
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
    }

    if let Some(task) = logger_task {
        task.abort();
    }
    if let Some(mut dp) = xdp {
        dp.detach_all().context("detaching XDP")?;
    }
    tracing::info!("stopped");
    Ok(())
}
