//! `pptp-daemon`: command line -> configuration -> server (or a command).

use anyhow::Context as _;
use clap::Parser;
use pptp_daemon::{
    cli::{Cli, Command},
    server::ctl::{self, Request, Response},
};

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
            pptp_daemon::server::init_tracing(cli.log_level);
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(pptp_daemon::client::run(args.clone()));
        }
        Some(Command::Sessions { socket, json }) | Some(Command::Stats { socket, json }) => {
            let path = match socket {
                Some(p) => p.clone(),
                None => cli.load_config()?.server.control_socket,
            };
            let req = if matches!(cli.command, Some(Command::Sessions { .. })) {
                Request::Sessions
            } else {
                Request::Stats
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let answer = runtime
                .block_on(ctl::request(&path, &req))
                .context("is the daemon running?")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            match answer {
                Response::Sessions { sessions } => print!("{}", ctl::format_sessions(&sessions)),
                Response::Stats { counters } => {
                    for (name, value) in counters {
                        println!("{name:<32} {value}");
                    }
                }
                Response::Error { message } => anyhow::bail!("the daemon answered: {message}"),
            }
            return Ok(());
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
        return Ok(());
    }
    pptp_daemon::server::logging::init(cli.log_level, config.log.format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(pptp_daemon::server::run(config, cli.log_level))
}
