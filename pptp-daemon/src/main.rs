//! `pptp-daemon`: command line -> configuration -> server.

use clap::Parser;
use pptp_daemon::cli::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    pptp_daemon::server::init_tracing(cli.log_level);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(pptp_daemon::server::run(config, cli.log_level))
}
