//! Loader of the XDP program: load, attach (native with a logged fallback
//! to generic), the kernel's log records, typed access to the maps, detach.

use std::os::fd::AsRawFd;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode as AyaXdpMode, xdp::XdpLinkId},
};
use aya_log::EbpfLogger;
use pptp_common::maps::{Session, SessionKey, Stat, names};

use crate::config::XdpMode;

/// The XDP object built by build.rs from `pptp-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-xdp"));

/// Name of the XDP entry point in the object.
pub const PROGRAM: &str = "pptp_xdp";

/// Why the XDP data plane could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error(
        "this binary embeds no eBPF object (built with AYA_BUILD_SKIP); rebuild it after `cargo xtask setup`"
    )]
    NoObject,
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{PROGRAM}`: {0}")]
    Program(#[from] ProgramError),
    #[error("map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("attaching XDP to {iface} in {mode} mode failed: {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        source: ProgramError,
    },
    #[error("XDP is off in the configuration (xdp_mode = \"off\")")]
    Disabled,
}

/// The mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Driver,
    Generic,
}

impl AttachedMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedMode::Driver => "driver",
            AttachedMode::Generic => "generic",
        }
    }
}

/// The loaded XDP program and its maps. Dropping it detaches the program
/// from every interface and frees the maps.
pub struct XdpDataplane {
    ebpf: Ebpf,
    logger: Option<EbpfLogger<&'static dyn log::Log>>,
    attached: Vec<(String, AttachedMode, XdpLinkId)>,
}

impl XdpDataplane {
    /// Loads the embedded object into the kernel (verifier included) without
    /// attaching it anywhere. `log_level` is the most verbose level of the
    /// in-kernel log statements that reach the daemon's log.
    pub fn load(log_level: log::LevelFilter) -> Result<Self, XdpError> {
        if EBPF_OBJECT.is_empty() {
            return Err(XdpError::NoObject);
        }
        let level = match log_level {
            log::LevelFilter::Off => 0u8,
            log::LevelFilter::Error => 1,
            log::LevelFilter::Warn => 2,
            log::LevelFilter::Info => 3,
            log::LevelFilter::Debug => 4,
            log::LevelFilter::Trace => 5,
        };
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &level, false)
            .load(EBPF_OBJECT)?;
        // The logger must live as long as the program: dropping it closes
        // the log ring buffer's fd.
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(err) => {
                tracing::warn!("eBPF log records unavailable: {err}");
                None
            }
        };
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(XdpError::MissingProgram(PROGRAM))?
            .try_into()?;
        program.load()?;
        Ok(Self {
            ebpf,
            logger,
            attached: Vec::new(),
        })
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or(XdpError::MissingProgram(PROGRAM))?
            .try_into()?)
    }

    fn program_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        Ok(self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(XdpError::MissingProgram(PROGRAM))?
            .try_into()?)
    }

    /// Attaches the program to `iface` (resolved in the calling thread's
    /// network namespace). `Auto` tries native XDP first and falls back to
    /// generic XDP with a warning.
    pub fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<AttachedMode, XdpError> {
        let attempt = |this: &mut Self, m: AttachedMode| {
            let aya_mode = match m {
                AttachedMode::Driver => AyaXdpMode::Driver,
                AttachedMode::Generic => AyaXdpMode::Skb,
            };
            this.program_mut()?
                .attach(iface, aya_mode)
                .map_err(|source| XdpError::Attach {
                    iface: iface.to_owned(),
                    mode: m.as_str(),
                    source,
                })
        };
        let (mode, link) = match mode {
            XdpMode::Off => return Err(XdpError::Disabled),
            XdpMode::Driver => (AttachedMode::Driver, attempt(self, AttachedMode::Driver)?),
            XdpMode::Generic => (AttachedMode::Generic, attempt(self, AttachedMode::Generic)?),
            XdpMode::Auto => match attempt(self, AttachedMode::Driver) {
                Ok(link) => (AttachedMode::Driver, link),
                Err(err) => {
                    tracing::warn!("{err}; falling back to generic XDP (slower)");
                    (AttachedMode::Generic, attempt(self, AttachedMode::Generic)?)
                }
            },
        };
        tracing::info!(iface, mode = mode.as_str(), "XDP program attached");
        self.attached.push((iface.to_owned(), mode, link));
        Ok(mode)
    }

    /// Detaches the program from every interface it is attached to.
    pub fn detach_all(&mut self) -> Result<(), XdpError> {
        let attached = std::mem::take(&mut self.attached);
        for (iface, _, link) in attached {
            self.program_mut()?.detach(link)?;
            tracing::info!(iface, "XDP program detached");
        }
        Ok(())
    }

    /// Interfaces the program is attached to.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attached.iter().map(|(i, m, _)| (i.as_str(), *m))
    }

    /// Runs the program once on `frame` through BPF_PROG_TEST_RUN; the
    /// resulting frame is written to `out`. Returns the XDP action and the
    /// length of the output frame.
    pub fn test_run(&self, frame: &[u8], out: &mut [u8]) -> Result<(u32, usize), XdpError> {
        let result = self.program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(out),
            ..TestRunOptions::default()
        })?;
        Ok((result.return_value, result.data_size_out as usize))
    }

    /// The global counters, summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> Result<[u64; Stat::COUNT as usize], XdpError> {
        let map = self
            .ebpf
            .map(names::STATS)
            .ok_or(XdpError::MissingMap(names::STATS))?;
        let array = PerCpuArray::<&MapData, u64>::try_from(map)?;
        let mut out = [0u64; Stat::COUNT as usize];
        for stat in Stat::ALL {
            out[stat as usize] = array.get(&(stat as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    /// The session map, for the daemon to install and remove sessions.
    pub fn sessions(&mut self) -> Result<HashMap<&mut MapData, SessionKey, Session>, XdpError> {
        let map = self
            .ebpf
            .map_mut(names::SESSIONS)
            .ok_or(XdpError::MissingMap(names::SESSIONS))?;
        Ok(HashMap::try_from(map)?)
    }

    /// Takes the in-kernel log reader, to be driven by [`run_logger`].
    pub fn take_logger(&mut self) -> Option<EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }
}

impl Drop for XdpDataplane {
    fn drop(&mut self) {
        if let Err(err) = self.detach_all() {
            tracing::warn!("detaching XDP: {err}");
        }
    }
}

/// Forwards the program's log records to the daemon's log until the task is
/// dropped. The logger's ring buffer fd wakes the task when records arrive.
pub async fn run_logger(logger: EbpfLogger<&'static dyn log::Log>) -> std::io::Result<()> {
    struct Fd(EbpfLogger<&'static dyn log::Log>);
    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0.as_raw_fd()
        }
    }
    // SAFETY: the fd belongs to the logger, which the AsyncFd owns, so it
    // stays open exactly as long as the registration.
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Fd(logger), tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = fd.readable_mut().await?;
        guard.get_inner_mut().0.flush();
        guard.clear_ready();
    }
}
