//! `pptp-lab`: the lab, the bench and the load generator (see the library).

use clap::Parser;
use pptp_lab::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let daemon = || pptp_lab::daemon_binary(cli.daemon.as_deref()).map_err(anyhow::Error::msg);
    match &cli.command {
        Command::Bench(args) => {
            let results = pptp_lab::bench::run(&daemon()?, args).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&results)?);
        }
        Command::Loadgen(args) => {
            let m = pptp_lab::bench::loadgen(args).map_err(anyhow::Error::msg)?;
            // One line of words for shell scripts.
            println!(
                "sent_pps={:.0} delivered_pps={:.0} cpu_ns_per_packet={:.0}",
                m.sent_pps, m.delivered_pps, m.cpu_ns_per_packet
            );
        }
        Command::MppeSend(args) => {
            let (sent, seconds) = pptp_lab::bench::mppe_send(args).map_err(anyhow::Error::msg)?;
            println!("sent={sent} seconds={seconds:.3}");
        }
        Command::Relay { from, to } => {
            let name = std::ffi::CString::new(to.as_str())?;
            // SAFETY: if_nametoindex reads a valid NUL-terminated string.
            let target = unsafe { libc::if_nametoindex(name.as_ptr()) };
            anyhow::ensure!(target != 0, "no interface {to}");
            // Attached through a BPF link: it goes when this process does.
            let _relay = pptp_lab::xdp::AuxPrograms::relay(from, target)?;
            println!("relay {from} -> {to} up");
            loop {
                std::thread::park();
            }
        }
        Command::Route { iface } => {
            let mut route = pptp_lab::xdp::AuxPrograms::load()?;
            for i in iface {
                // Through a BPF link, as the relay: it goes with this process.
                route.attach(pptp_lab::xdp::ROUTE_PROGRAM, i)?;
            }
            println!("route on {} up", iface.join(", "));
            loop {
                std::thread::park();
            }
        }
        Command::Lab(args) => pptp_lab::lab::demo(&daemon()?, args).map_err(anyhow::Error::msg)?,
    }
    Ok(())
}
