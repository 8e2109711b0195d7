//! `cargo xtask guest kernel-pptp-bench`: the kernel PPTP baseline, taken
//! in one guest so the figures compare with each other (TCG makes them
//! tens of times lower than on hardware).
//!
//! Topology (xtask/guest/lab.sh): namespaces `srv` and `cli` joined by a
//! veth; iperf3 TCP from `cli` to an address in `srv`:
//! - plain veth (198.19.1.1);
//! - kernel PPTP on both ends (drivers/net/ppp/pptp.c reached through
//!   AF_PPPOX sockets with fixed call IDs, xtask/guest/kpptp.py), no
//!   control connection (198.19.3.1);
//! - pptpd + pptp-linux + pppd, MS-CHAPv2, without and with
//!   require-mppe-128 (198.19.2.1): userspace GRE in pptp-linux and pptpd.

use std::{fmt::Write as _, process::Command, time::Duration};

use anyhow::Context as _;

use super::{BootOptions, Guest, image, parse_link};
use crate::util::{self, output};

/// One iperf3 TCP run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    /// Payload received, Mbit/s.
    pub mbits: f64,
    /// TCP retransmissions of the sender.
    pub retransmits: u64,
}

/// Results of one run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub seconds: u32,
    pub veth: Rate,
    pub kernel_pptp: Rate,
    pub pptpd: Rate,
    pub pptpd_mppe: Rate,
    /// pptp-linux call to IPCP up, without and with MPPE.
    pub connect: [Duration; 2],
    pub guest_kernel: String,
    pub guest: BootOptions,
    pub qemu: String,
    pub host_cpu: String,
    pub host_cpus: usize,
}

/// Runs the baseline in `guest` (booted with `options`); the guest is
/// left as it was.
pub fn kernel_pptp(guest: &Guest, options: &BootOptions, seconds: u32) -> anyhow::Result<Figures> {
    let slow = Duration::from_secs(u64::from(seconds) + 90);
    let quick = Duration::from_secs(60);
    let secs = seconds.to_string();
    let iperf = |addr: &str| -> anyhow::Result<Rate> {
        let out = guest.lab(&["iperf", "srv", addr, "cli", &secs], slow)?;
        let mut words = out.split_whitespace();
        let rate = (|| {
            Some(Rate {
                mbits: words.next()?.parse().ok()?,
                retransmits: words.next()?.parse().ok()?,
            })
        })();
        rate.with_context(|| format!("iperf3 gave {out:?}"))
    };
    let ping = |addr: &str| {
        guest.run_timeout(
            &format!("ip netns exec cli ping -c 3 -i 0.3 -W 5 {addr}"),
            quick,
        )
    };
    let show = |what: &str, rate: Rate| {
        eprintln!(
            "{what}: {:.1} Mbit/s ({} retransmissions)",
            rate.mbits, rate.retransmits
        );
    };

    guest.lab(&["down"], quick)?;
    let result = (|| {
        util::step("guest bench: topology srv <-> cli over a veth");
        guest.lab(&["topo"], quick)?;
        let veth = iperf("198.19.1.1")?;
        show("plain veth", veth);

        util::step("guest bench: kernel PPTP on both ends (AF_PPPOX, /dev/ppp)");
        guest.lab(&["kpptp-up"], quick)?;
        ping("198.19.3.1")?;
        let kernel_pptp = iperf("198.19.3.1")?;
        guest.lab(&["kpptp-down"], quick)?;
        show("kernel PPTP", kernel_pptp);

        let mut rates = [Rate::default(); 2];
        let mut connect = [Duration::ZERO; 2];
        for (i, mppe) in ["none", "mppe"].into_iter().enumerate() {
            util::step(&format!(
                "guest bench: pptpd + pptp-linux, MS-CHAPv2, MPPE {mppe}"
            ));
            let out = guest.lab(&["pptpd-up", mppe], quick)?;
            let link =
                parse_link(&out).with_context(|| format!("unexpected pptpd-up output {out:?}"))?;
            eprintln!("connected in {:.2} s", link.setup.as_secs_f64());
            ping(&link.peer.to_string())?;
            rates[i] = iperf(&link.peer.to_string())?;
            connect[i] = link.setup;
            guest.lab(&["pptpd-down"], quick)?;
            show(&format!("pptpd + pptp-linux (MPPE {mppe})"), rates[i]);
        }
        anyhow::Ok((veth, kernel_pptp, rates, connect))
    })();
    let _ = guest.lab(&["down"], quick);
    let (veth, kernel_pptp, rates, connect) = result?;

    let image = image::ensure()?;
    let qemu = output(
        Command::new(&image.qemu)
            .env("QEMU_MODULE_DIR", &image.qemu_modules)
            .arg("--version"),
    )
    .and_then(|v| v.lines().next().map(str::to_owned))
    .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let host_cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok(Figures {
        seconds,
        veth,
        kernel_pptp,
        pptpd: rates[0],
        pptpd_mppe: rates[1],
        connect,
        guest_kernel: guest.run("uname -r")?.trim().to_owned(),
        guest: options.clone(),
        qemu,
        host_cpu,
        host_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
    })
}

impl Figures {
    /// The figures as a small table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nKernel PPTP baseline in the guest (Linux {}, qemu TCG, {} vCPUs {}, {} MiB; \
             host {} x {}); iperf3 TCP, {} s each",
            self.guest_kernel,
            self.guest.cpus,
            self.guest.cpu_model,
            self.guest.memory_mib,
            self.host_cpus,
            self.host_cpu,
            self.seconds,
        );
        let connect = |i: usize| format!(", connect {:.2} s", self.connect[i].as_secs_f64());
        let rows = [
            ("plain veth", self.veth, String::new()),
            (
                "kernel PPTP (AF_PPPOX both ends)",
                self.kernel_pptp,
                String::new(),
            ),
            ("pptpd + pptp-linux", self.pptpd, connect(0)),
            ("pptpd + pptp-linux, MPPE-128", self.pptpd_mppe, connect(1)),
        ];
        for (name, rate, extra) in rows {
            let _ = writeln!(
                t,
                "  {name:<34} {:>8.1} Mbit/s  ({} retransmissions{extra})",
                rate.mbits, rate.retransmits
            );
        }
        t
    }

    /// The figures as JSON.
    pub fn json(&self) -> String {
        let rate = |r: Rate| {
            format!(
                "{{ \"mbit_per_s\": {:.1}, \"retransmits\": {} }}",
                r.mbits, r.retransmits
            )
        };
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"tool\": \"iperf3 TCP, cli -> srv\",");
        let _ = writeln!(j, "  \"seconds\": {},", self.seconds);
        let _ = writeln!(j, "  \"veth\": {},", rate(self.veth));
        let _ = writeln!(j, "  \"kernel_pptp\": {},", rate(self.kernel_pptp));
        let _ = writeln!(j, "  \"pptpd_pptp_linux\": {},", rate(self.pptpd));
        let _ = writeln!(j, "  \"pptpd_pptp_linux_mppe\": {},", rate(self.pptpd_mppe));
        let _ = writeln!(
            j,
            "  \"connect_seconds\": {{ \"none\": {:.2}, \"mppe\": {:.2} }},",
            self.connect[0].as_secs_f64(),
            self.connect[1].as_secs_f64()
        );
        let _ = writeln!(
            j,
            "  \"guest\": {{ \"kernel\": {}, \"accel\": \"tcg\", \"cpus\": {}, \"cpu_model\": {}, \
             \"memory_mib\": {}, \"qemu\": {} }},",
            json_string(&self.guest_kernel),
            self.guest.cpus,
            json_string(&self.guest.cpu_model),
            self.guest.memory_mib,
            json_string(&self.qemu)
        );
        let _ = writeln!(
            j,
            "  \"host\": {{ \"cpu\": {}, \"cpus\": {} }}",
            json_string(&self.host_cpu),
            self.host_cpus
        );
        j.push_str("}\n");
        j
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
