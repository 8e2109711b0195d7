//! `pptp-daemon`: command line -> configuration -> server (or a command).

use std::path::PathBuf;

use clap::Parser;
use pptp_daemon::{
    cli::{Cli, Command},
    ctl_cli,
    server::ctl::Request,
};

/// The control socket: `explicit`, else the configuration's.
fn ctl_socket(cli: &Cli, explicit: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.clone()),
        None => Ok(cli.load_config()?.server.control_socket),
    }
}

/// Raises the open-file limit to its hard maximum: every session holds a
/// TCP socket, and 10,000 sessions need far more than the usual 1024.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> anyhow::Result<()> {
    raise_fd_limit();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Client(args)) => {
            pptp_daemon::server::init_tracing(cli.log_level.unwrap_or_default());
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(pptp_daemon::client::run(args.clone()));
        }
        Some(Command::Ctl(args)) => {
            let socket = ctl_socket(&cli, args.socket.as_ref())?;
            return ctl_cli::run(&socket, &args.command.request(), args.json);
        }
        // The commands before `ctl`: the same requests.
        Some(Command::Sessions { socket, json }) => {
            let socket = ctl_socket(&cli, socket.as_ref())?;
            return ctl_cli::run(&socket, &Request::Sessions, *json);
        }
        Some(Command::Stats { socket, json }) => {
            let socket = ctl_socket(&cli, socket.as_ref())?;
            return ctl_cli::run(&socket, &Request::Stats, *json);
        }
        None => {}
    }
    let config = cli.load_config()?;
    if cli.check_config {
        let origin = cli
            .config
            .as_ref()
            .map_or("<embedded default>".to_owned(), |p| p.display().to_string());
        println!("# {origin}: valid; effective configuration:");
        print!("{}", config.to_toml());
        if cli.offline {
            return Ok(());
        }
        return pptp_daemon::server::radius_check::check(&config);
    }
    let log_level = config.log.level;
    pptp_daemon::server::logging::init(log_level, config.log.format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(pptp_daemon::server::run(
        config,
        cli.config_origin(),
        log_level,
    ))
}
