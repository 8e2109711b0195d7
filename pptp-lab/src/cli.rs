//! Command line of `pptp-lab`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Lab, bench and load generator of pptp-xdp in network namespaces.
#[derive(Debug, Parser)]
#[command(name = "pptp-lab", version, about)]
pub struct Cli {
    /// The pptp-daemon binary to run as the daemon and the client
    /// (default: the one next to this binary).
    #[arg(long, value_name = "PATH", global = true)]
    pub daemon: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Demonstration in network namespaces (behind `cargo xtask lab`).
    Lab(crate::lab::DemoArgs),
    /// Benchmarks in network namespaces (behind `cargo xtask bench`).
    Bench(crate::bench::BenchArgs),
    /// One load-generator measurement between existing namespaces (the
    /// guest comparison against kernel PPTP).
    Loadgen(crate::bench::LoadgenArgs),
    /// Send one session's frames as its client would with stateless MPPE
    /// (a new key for every frame, from a start key), continuing the key
    /// chain from run to run: the guest comparison's client → network
    /// MPPE rows (`xtask guest loadgen --mppe` runs it). Prints
    /// "sent=N seconds=S".
    MppeSend(crate::bench::MppeSendArgs),
    /// Relay every frame `--from` receives to `--to`'s transmit side as
    /// XDP frames (both in the current namespace), until killed: the
    /// guest comparison's generators send through it so that the server's
    /// veths receive what a NIC driver would hand over.
    Relay {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Route IPv4 in XDP on each `--iface` (of the current namespace):
    /// a FIB lookup, the TTL decremented and a redirect, nothing of PPTP,
    /// until killed. The guest comparison's "plain XDP routing" row: the
    /// least any XDP forwarding costs on the same links.
    Route {
        #[arg(long, required = true)]
        iface: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::parse_from(["pptp-lab", "bench", "--short", "--daemon", "/x/pptp-daemon"]);
        assert_eq!(cli.daemon, Some(PathBuf::from("/x/pptp-daemon")));
        assert!(matches!(cli.command, Command::Bench(ref a) if a.short));
        let cli = Cli::parse_from(["pptp-lab", "route", "--iface", "srv2", "--iface", "srv3"]);
        assert!(matches!(cli.command, Command::Route { ref iface } if iface == &["srv2", "srv3"]));
        assert!(Cli::try_parse_from(["pptp-lab", "route"]).is_err());
        let cli = Cli::parse_from([
            "pptp-lab",
            "loadgen",
            "--from",
            "a:x",
            "--via",
            "b:y",
            "--sink",
            "c:z",
            "--src",
            "198.18.0.2",
            "--dst",
            "198.18.1.2",
            "--gre",
            "198.18.0.2,198.18.0.1,7",
        ]);
        let Command::Loadgen(args) = cli.command else {
            panic!("loadgen expected");
        };
        assert_eq!(
            args.gre,
            Some((
                "198.18.0.2".parse().unwrap(),
                "198.18.0.1".parse().unwrap(),
                7
            ))
        );
        assert!(Cli::try_parse_from(["pptp-lab", "client"]).is_err());
        let cli = Cli::parse_from([
            "pptp-lab",
            "mppe-send",
            "--iface",
            "gen2",
            "--dst-mac",
            "02:00:00:00:00:01",
            "--gre",
            "198.18.0.2,198.18.0.1,1000",
            "--src",
            "198.18.16.10",
            "--dst",
            "198.18.7.2",
            "--key",
            "/tmp/k",
            "--state",
            "/tmp/k.state",
            "--pps",
            "5000",
        ]);
        let Command::MppeSend(args) = cli.command else {
            panic!("mppe-send expected");
        };
        assert_eq!(
            (args.dst_mac, args.gre.2, args.pps, args.size),
            ([2, 0, 0, 0, 0, 1], 1000, Some(5000), 64)
        );
        assert!(
            Cli::try_parse_from([
                "pptp-lab",
                "mppe-send",
                "--iface",
                "x",
                "--dst-mac",
                "02:00"
            ])
            .is_err()
        );
        let cli = Cli::parse_from(["pptp-lab", "relay", "--from", "gen1", "--to", "cli0"]);
        assert!(
            matches!(cli.command, Command::Relay { ref from, ref to } if from == "gen1" && to == "cli0")
        );
    }
}
