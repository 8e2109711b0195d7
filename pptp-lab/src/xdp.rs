//! The lab's own XDP object (built by build.rs from `pptp-lab-ebpf`): the
//! pass program for the far ends of veth pairs, the bench's counting sink
//! and its plain-routing ceiling. None of them is in the daemon's object.

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-lab-xdp"));

/// Passes every frame: a veth accepts frames redirected into it only when
/// its peer runs XDP.
pub const PASS_PROGRAM: &str = "pptp_xdp_pass";
/// Counts every frame (packets and bytes, see [`AuxPrograms::sink_counters`])
/// and drops it.
pub const SINK_PROGRAM: &str = "pptp_xdp_sink";
/// Plain IPv4 routing in XDP (FIB lookup, TTL, redirect).
pub const ROUTE_PROGRAM: &str = "pptp_xdp_route";
/// Redirects every frame to the interface given to [`AuxPrograms::relay`].
pub const RELAY_PROGRAM: &str = "pptp_xdp_relay";

/// Why an auxiliary program could not be loaded, attached or read.
#[derive(Debug, thiserror::Error)]
pub enum AuxError {
    #[error(
        "pptp-lab embeds no eBPF object (built with AYA_BUILD_SKIP); rebuild it after `cargo xtask setup`"
    )]
    NoObject,
    #[error("loading the lab's eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the lab's eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the lab's eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program: {0}")]
    Program(#[from] ProgramError),
    #[error("map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("attaching {program} to {iface} in driver mode failed: {source}")]
    Attach {
        program: &'static str,
        iface: String,
        source: ProgramError,
    },
}

/// The loaded object and where its programs are attached. Dropping it
/// detaches every program.
pub struct AuxPrograms {
    ebpf: Ebpf,
    attached: Vec<(&'static str, String, XdpLinkId)>,
}

impl AuxPrograms {
    /// Loads the embedded object (programs are loaded into the kernel on
    /// first attachment).
    pub fn load() -> Result<Self, AuxError> {
        if OBJECT.is_empty() {
            return Err(AuxError::NoObject);
        }
        Ok(Self {
            ebpf: Ebpf::load(OBJECT)?,
            attached: Vec::new(),
        })
    }

    /// Loads the object with [`RELAY_PROGRAM`] aimed at the interface
    /// `target_ifindex`, and attaches it to `iface` (both of the calling
    /// thread's namespace): every frame `iface` receives leaves through
    /// the target's transmit side as an XDP frame.
    pub fn relay(iface: &str, target_ifindex: u32) -> Result<Self, AuxError> {
        if OBJECT.is_empty() {
            return Err(AuxError::NoObject);
        }
        let mut aux = Self {
            ebpf: EbpfLoader::new()
                .override_global("RELAY_IFINDEX", &target_ifindex, true)
                .load(OBJECT)?,
            attached: Vec::new(),
        };
        aux.attach(RELAY_PROGRAM, iface)?;
        Ok(aux)
    }

    fn program(&mut self, name: &'static str) -> Result<&mut Xdp, AuxError> {
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or(AuxError::MissingProgram(name))?
            .try_into()?)
    }

    /// Attaches `program` ([`PASS_PROGRAM`], [`SINK_PROGRAM`],
    /// [`ROUTE_PROGRAM`], or [`RELAY_PROGRAM`] after [`Self::relay`]) to `iface` (of the calling thread's namespace) in
    /// native mode.
    pub fn attach(&mut self, program: &'static str, iface: &str) -> Result<(), AuxError> {
        let prog = self.program(program)?;
        if prog.fd().is_err() {
            prog.load()?;
        }
        let link = prog
            .attach(iface, XdpMode::Driver)
            .map_err(|source| AuxError::Attach {
                program,
                iface: iface.to_owned(),
                source,
            })?;
        self.attached.push((program, iface.to_owned(), link));
        Ok(())
    }

    /// Detaches every program attached to `iface`.
    pub fn detach(&mut self, iface: &str) -> Result<(), AuxError> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.attached)
            .into_iter()
            .partition(|(_, i, _)| i == iface);
        self.attached = rest;
        for (program, _, link) in mine {
            self.program(program)?.detach(link)?;
        }
        Ok(())
    }

    /// Packets and bytes counted by the sink program, summed over CPUs.
    pub fn sink_counters(&self) -> Result<(u64, u64), AuxError> {
        let map = self
            .ebpf
            .map("PPTP_SINK")
            .ok_or(AuxError::MissingMap("PPTP_SINK"))?;
        let array = PerCpuArray::<&MapData, u64>::try_from(map)?;
        let packets = array.get(&0, 0)?.iter().sum();
        let bytes = array.get(&1, 0)?.iter().sum();
        Ok((packets, bytes))
    }
}

impl Drop for AuxPrograms {
    fn drop(&mut self) {
        for (program, _, link) in std::mem::take(&mut self.attached) {
            if let Ok(prog) = self.program(program) {
                let _ = prog.detach(link);
            }
        }
    }
}
