//! Loader of the XDP program: load, attach (native with a logged fallback
//! to generic), the kernel's log records, typed access to the maps, detach.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode as AyaXdpMode, xdp::XdpLinkId},
};
use aya_log::EbpfLogger;
use pptp_common::maps::{
    CallEntry, ClientKey, MAX_SESSIONS, MAX_VLANS, MppeTx, SESSION_F_ENCAP, SESSION_F_STEER,
    SeqState, Session, SessionCounters, SessionKey, Stat, TunnelConf, VlanLink, names, programs,
};
use pptp_common::serial;
use tokio::sync::Notify;

use super::{
    Forwarding,
    mppe_chain::{MppeRxMap, MppeTxMap},
    mppe_prep::{Passes, Preparer, PreparerThread},
};
use crate::mppe::keys::StartKey;
use crate::proto::call::{self, SeqStorage, Sequencer};

/// How the XDP program is attached (`dataplane.xdp_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) XDP, falling back to generic XDP with a log line.
    #[default]
    Auto,
    /// Native XDP only.
    Driver,
    /// Generic (skb) XDP only.
    Generic,
    /// No XDP: every session on the userspace data path.
    Off,
}

/// The XDP object built by build.rs from `pptp-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-xdp"));

/// Name of the XDP entry point of `forwarding = "xdp"` (the other programs
/// are in [`programs`]).
pub const PROGRAM: &str = programs::XDP;

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
    #[error("XDP program: {0}")]
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
    #[error("session slot {0} is outside 0..{MAX_SESSIONS}")]
    BadSlot(u32),
    #[error("memory-mapping a shared map: {0}")]
    Mmap(std::io::Error),
    #[error("starting the MPPE preparer thread: {0}")]
    Thread(std::io::Error),
    #[error("duplicating a program's fd: {0}")]
    ProgramFd(std::io::Error),
    #[error("listing the CPUs: {0}")]
    Cpus(std::io::Error),
    #[error("setting the CPU map's queue to CPU {cpu}: {source}")]
    CpuQueue {
        cpu: u32,
        source: aya::maps::xdp::XdpMapError,
    },
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
    attached: Vec<(String, &'static str, AttachedMode, XdpLinkId)>,
    seq: std::sync::Arc<SeqMap>,
    mppe_rx: std::sync::Arc<MppeRxMap>,
    mppe_tx: std::sync::Arc<MppeTxMap>,
    mppe_prep: std::sync::Arc<Preparer>,
    /// The send chains' rows of prepared states.
    mppe_tx_prep: std::sync::Arc<Preparer<MppeTx>>,
    /// Whether new receive and send chains get a row of prepared states.
    mppe_prep_enabled: bool,
    /// Runs `mppe_prep`'s passes once started ([`Self::start_mppe_preparer`]).
    mppe_prep_thread: Option<PreparerThread>,
    /// Whether sessions installed from now on are steered to one sending
    /// CPU ([`Self::steer_sends`]).
    steer: bool,
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
        // The CPU map's size is the kernel's count of possible CPUs (more
        // is refused).
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Cpus(e))? as u32;
        let mut ebpf = EbpfLoader::new()
            .override_global(aya_log::LEVEL, &level, false)
            .map_max_entries(names::CPUS, cpus)
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
        for name in [programs::XDP, programs::STACK, programs::TUNNEL] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(XdpError::MissingProgram(name))?
                .try_into()?;
            program.load()?;
            // How close the verifier came to its limit of a million
            // instructions (Linux 5.16 on report it): the MPPE callbacks
            // are checked once per context they run in, so the count
            // grows with every path that reaches them.
            if let Some(count) = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count())
            {
                tracing::info!(
                    program = name,
                    verified_instructions = count,
                    "XDP program loaded"
                );
            }
        }
        // The CPU map's programs (Linux 5.9 on) are for steering only: the
        // data plane runs without them, unsteered (`Self::steer_sends` then
        // fails, and says so).
        for name in [programs::XDP_CPU, programs::XDP_CPU_TUNNEL] {
            let cpu: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(XdpError::MissingProgram(name))?
                .try_into()?;
            if let Err(e) = cpu.load() {
                tracing::warn!(
                    program = name,
                    "loading the CPU map's program: {e}; sends cannot be steered to one CPU per session"
                );
            }
        }
        let seq = match ebpf.map(names::SEQ) {
            Some(Map::Array(data)) => std::sync::Arc::new(SeqMap::mmap(data)?),
            _ => return Err(XdpError::MissingMap(names::SEQ)),
        };
        let mppe_rx = match ebpf.map(names::MPPE_RX) {
            Some(Map::Array(data)) => std::sync::Arc::new(MppeRxMap::mmap(data)?),
            _ => return Err(XdpError::MissingMap(names::MPPE_RX)),
        };
        let mppe_tx = match ebpf.map(names::MPPE_TX) {
            Some(Map::Array(data)) => std::sync::Arc::new(MppeTxMap::mmap(data)?),
            _ => return Err(XdpError::MissingMap(names::MPPE_TX)),
        };
        let mppe_prep = match ebpf.map(names::MPPE_PREP) {
            Some(Map::Array(data)) => std::sync::Arc::new(Preparer::mmap(mppe_rx.clone(), data)?),
            _ => return Err(XdpError::MissingMap(names::MPPE_PREP)),
        };
        let mppe_tx_prep = match ebpf.map(names::MPPE_TX_PREP) {
            Some(Map::Array(data)) => std::sync::Arc::new(Preparer::mmap(mppe_tx.clone(), data)?),
            _ => return Err(XdpError::MissingMap(names::MPPE_TX_PREP)),
        };
        Ok(Self {
            ebpf,
            logger,
            attached: Vec::new(),
            seq,
            mppe_rx,
            mppe_tx,
            mppe_prep,
            mppe_tx_prep,
            mppe_prep_enabled: false,
            mppe_prep_thread: None,
            steer: false,
        })
    }

    fn program(&self, name: &'static str) -> Result<&Xdp, XdpError> {
        Ok(self
            .ebpf
            .program(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()?)
    }

    /// Any XDP program of the object, by name.
    fn named_mut(&mut self, name: &'static str) -> Result<&mut Xdp, XdpError> {
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()?)
    }

    /// Attaches the program to `iface` (resolved in the calling thread's
    /// network namespace). `Auto` tries native XDP first and falls back to
    /// generic XDP with a warning.
    pub fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<AttachedMode, XdpError> {
        self.attach_program(PROGRAM, iface, mode)
    }

    /// Attaches program `name` (one of [`programs`]) to `iface`, as
    /// [`Self::attach`] does.
    pub fn attach_program(
        &mut self,
        name: &'static str,
        iface: &str,
        mode: XdpMode,
    ) -> Result<AttachedMode, XdpError> {
        let attempt = |this: &mut Self, m: AttachedMode| {
            let aya_mode = match m {
                AttachedMode::Driver => AyaXdpMode::Driver,
                AttachedMode::Generic => AyaXdpMode::Skb,
            };
            this.named_mut(name)?
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
        tracing::info!(
            iface,
            program = name,
            mode = mode.as_str(),
            "XDP program attached"
        );
        self.attached.push((iface.to_owned(), name, mode, link));
        Ok(mode)
    }

    /// Detaches the programs from every interface they are attached to.
    pub fn detach_all(&mut self) -> Result<(), XdpError> {
        let attached = std::mem::take(&mut self.attached);
        for (iface, name, _, link) in attached {
            self.named_mut(name)?.detach(link)?;
            tracing::info!(iface, "XDP program detached");
        }
        Ok(())
    }

    /// Interfaces the program is attached to.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attached.iter().map(|(i, _, m, _)| (i.as_str(), *m))
    }

    /// Runs the program once on `frame` through BPF_PROG_TEST_RUN; the
    /// resulting frame is written to `out`. Returns the XDP action and the
    /// length of the output frame.
    pub fn test_run(&self, frame: &[u8], out: &mut [u8]) -> Result<(u32, usize), XdpError> {
        self.test_run_on(frame, out, None)
    }

    /// Like [`Self::test_run`], with the frame received on interface
    /// `ifindex` (of the calling thread's namespace) instead of loopback.
    pub fn test_run_on(
        &self,
        frame: &[u8],
        out: &mut [u8],
        ifindex: Option<u32>,
    ) -> Result<(u32, usize), XdpError> {
        self.test_run_program(PROGRAM, frame, out, ifindex)
    }

    /// Like [`Self::test_run_on`], for program `name` (one of [`programs`]).
    pub fn test_run_program(
        &self,
        name: &'static str,
        frame: &[u8],
        out: &mut [u8],
        ifindex: Option<u32>,
    ) -> Result<(u32, usize), XdpError> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (all u32).
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        if let Some(ifindex) = ifindex {
            ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        }
        let result = self.program(name)?.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(out),
            ctx_in: ifindex.map(|_| &ctx[..]),
            ..TestRunOptions::default()
        })?;
        Ok((result.return_value, result.data_size_out as usize))
    }

    /// Gives the CPU map a queue of `queue_size` frames to every online CPU,
    /// running the CPU map program for `forwarding` ([`programs::XDP_CPU`]
    /// after [`programs::XDP`], [`programs::XDP_CPU_TUNNEL`] after
    /// [`programs::TUNNEL`]), and steers the sessions installed from now on
    /// ([`SESSION_F_STEER`]): one CPU sends each session's frames, so they
    /// leave in the order of their sequence numbers and coherency counts,
    /// whichever CPUs they arrive on. Returns the CPUs with a queue.
    pub fn steer_sends(
        &mut self,
        forwarding: Forwarding,
        queue_size: u32,
    ) -> Result<Vec<u32>, XdpError> {
        let program = match forwarding {
            Forwarding::Xdp => programs::XDP_CPU,
            Forwarding::Stack => programs::XDP_CPU_TUNNEL,
        };
        let cpus = aya::util::online_cpus().map_err(|(_, e)| XdpError::Cpus(e))?;
        let fd = self
            .program(program)?
            .fd()?
            .try_clone()
            .map_err(XdpError::ProgramFd)?;
        let map = self
            .ebpf
            .map_mut(names::CPUS)
            .ok_or(XdpError::MissingMap(names::CPUS))?;
        let mut queues = aya::maps::CpuMap::try_from(map)?;
        for &cpu in &cpus {
            queues
                .set(cpu, queue_size, Some(&fd), 0)
                .map_err(|source| XdpError::CpuQueue { cpu, source })?;
        }
        self.steer = true;
        Ok(cpus)
    }

    /// Tells the programs of `stack` forwarding where the tunnel device is.
    pub fn set_tunnel(&mut self, conf: TunnelConf) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut(names::TUNNEL)
            .ok_or(XdpError::MissingMap(names::TUNNEL))?;
        let mut array = aya::maps::Array::<&mut MapData, TunnelConf>::try_from(map)?;
        array.set(0, conf, 0)?;
        Ok(())
    }

    /// Tells the programs which interfaces are VLAN devices (see
    /// [`VlanLink`]), replacing what they knew; at most
    /// [`MAX_VLANS`] of them (the rest are left out and returned).
    pub fn set_vlans(&mut self, links: &[(u32, VlanLink)]) -> Result<usize, XdpError> {
        let map = self
            .ebpf
            .map_mut(names::VLANS)
            .ok_or(XdpError::MissingMap(names::VLANS))?;
        let mut hash = HashMap::<&mut MapData, u32, VlanLink>::try_from(map)?;
        let stale: Vec<u32> = hash.keys().filter_map(Result::ok).collect();
        for index in stale {
            hash.remove(&index)?;
        }
        let kept = links.len().min(MAX_VLANS as usize);
        for (index, link) in &links[..kept] {
            hash.insert(index, link, 0)?;
        }
        Ok(links.len() - kept)
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

    /// Puts a session on the kernel path: its sequence state first, then
    /// the decapsulation entry and, with [`SESSION_F_ENCAP`], the
    /// encapsulation entry. `seq` continues the sequence space userspace
    /// used so far.
    /// Once [`Self::steer_sends`] is on, the entries carry
    /// [`SESSION_F_STEER`].
    pub fn install(&mut self, session: &Session, seq: SeqState) -> Result<(), XdpError> {
        let mut session = *session;
        if self.steer {
            session.flags |= SESSION_F_STEER;
        }
        let session = &session;
        self.seq.store(session.slot, seq)?;
        self.counters_reset(session.slot)?;
        let key = SessionKey::new(session.peer_addr, session.call_id);
        self.sessions_map()?.insert(key, *session, 0)?;
        if session.flags & SESSION_F_ENCAP != 0 {
            let ckey = ClientKey {
                client_addr: session.client_addr,
            };
            if let Err(err) = self.clients_map()?.insert(ckey, *session, 0) {
                let _ = self.sessions_map()?.remove(&key);
                return Err(err.into());
            }
        }
        Ok(())
    }

    /// Takes a session off the kernel path (both maps). Returns its final
    /// sequence state, so userspace can continue where the kernel stopped.
    pub fn remove(&mut self, session: &Session) -> Result<SeqState, XdpError> {
        let key = SessionKey::new(session.peer_addr, session.call_id);
        let ckey = ClientKey {
            client_addr: session.client_addr,
        };
        // Missing entries are fine: removal is idempotent.
        let _ = self.clients_map()?.remove(&ckey);
        let _ = self.sessions_map()?.remove(&key);
        self.seq.load(session.slot)
    }

    /// Changes an installed session's entries in place (`BPF_EXIST`: an
    /// entry removed meanwhile is not brought back): `f` edits each map's
    /// value, the rate limit fields in practice. The encapsulation entry is
    /// optional (a session may have none).
    pub fn set_rate(
        &mut self,
        peer_addr: [u8; 4],
        call_id: u16,
        client_addr: [u8; 4],
        f: impl Fn(&mut Session),
    ) -> Result<(), XdpError> {
        /// BPF_EXIST: update only an existing element.
        const BPF_EXIST: u64 = 2;
        let key = SessionKey::new(peer_addr, call_id);
        let mut sessions = self.sessions_map()?;
        let mut value = sessions.get(&key, 0)?;
        f(&mut value);
        sessions.insert(key, value, BPF_EXIST)?;
        let ckey = ClientKey { client_addr };
        let mut clients = self.clients_map()?;
        if let Ok(mut value) = clients.get(&ckey, 0) {
            f(&mut value);
            clients.insert(ckey, value, BPF_EXIST)?;
        }
        Ok(())
    }

    /// Makes a call known to the program (`PPTP_CALLS`): from now on its
    /// GRE from `peer_addr` is admitted towards userspace within `buckets`,
    /// while GRE for any (peer, call) the map does not hold is dropped in
    /// the kernel. Replaces an entry under the same key (buckets full).
    pub fn register_call(
        &mut self,
        peer_addr: [u8; 4],
        call_id: u16,
        buckets: CallEntry,
    ) -> Result<(), XdpError> {
        let key = SessionKey::new(peer_addr, call_id);
        self.calls_map()?.insert(key, buckets, 0)?;
        Ok(())
    }

    /// Forgets a call registered with [`Self::register_call`]; a missing
    /// entry is fine.
    pub fn unregister_call(&mut self, peer_addr: [u8; 4], call_id: u16) -> Result<(), XdpError> {
        let key = SessionKey::new(peer_addr, call_id);
        let _ = self.calls_map()?.remove(&key);
        Ok(())
    }

    /// Number of calls in the call map.
    pub fn calls_registered(&self) -> Result<usize, XdpError> {
        let map = self
            .ebpf
            .map(names::CALLS)
            .ok_or(XdpError::MissingMap(names::CALLS))?;
        Ok(HashMap::<&MapData, SessionKey, CallEntry>::try_from(map)?
            .keys()
            .count())
    }

    fn calls_map(&mut self) -> Result<HashMap<&mut MapData, SessionKey, CallEntry>, XdpError> {
        let map = self
            .ebpf
            .map_mut(names::CALLS)
            .ok_or(XdpError::MissingMap(names::CALLS))?;
        Ok(HashMap::try_from(map)?)
    }

    /// Number of sessions in the decapsulation and encapsulation maps.
    pub fn installed(&self) -> Result<(usize, usize), XdpError> {
        let s = self
            .ebpf
            .map(names::SESSIONS)
            .ok_or(XdpError::MissingMap(names::SESSIONS))?;
        let c = self
            .ebpf
            .map(names::CLIENTS)
            .ok_or(XdpError::MissingMap(names::CLIENTS))?;
        let s = HashMap::<&MapData, SessionKey, Session>::try_from(s)?
            .keys()
            .count();
        let c = HashMap::<&MapData, ClientKey, Session>::try_from(c)?
            .keys()
            .count();
        Ok((s, c))
    }

    fn sessions_map(&mut self) -> Result<HashMap<&mut MapData, SessionKey, Session>, XdpError> {
        let map = self
            .ebpf
            .map_mut(names::SESSIONS)
            .ok_or(XdpError::MissingMap(names::SESSIONS))?;
        Ok(HashMap::try_from(map)?)
    }

    fn clients_map(&mut self) -> Result<HashMap<&mut MapData, ClientKey, Session>, XdpError> {
        let map = self
            .ebpf
            .map_mut(names::CLIENTS)
            .ok_or(XdpError::MissingMap(names::CLIENTS))?;
        Ok(HashMap::try_from(map)?)
    }

    /// The MPPE receive key chains shared with the program
    /// ([`MppeRxMap`]).
    pub fn mppe_rx(&self) -> &std::sync::Arc<MppeRxMap> {
        &self.mppe_rx
    }

    /// Starts the kernel's stateless MPPE receive chain of `slot` at the
    /// initial session key of `start` (the receive start key: the server's
    /// MasterReceiveKey, RFC 3079 section 3.4). Call it before installing
    /// the session with [`SESSION_F_MPPE_RX`](pptp_common::maps::SESSION_F_MPPE_RX);
    /// [`Self::remove_mppe_rx`] after removing it.
    /// Once preparing is on ([`Self::start_mppe_preparer`]), the chain
    /// gets a row of prepared states if one is free ([`Preparer`]).
    pub fn install_mppe_rx(&self, slot: u32, start: &StartKey) -> Result<(), XdpError> {
        self.mppe_rx.open(slot, start)?;
        if self.mppe_prep_enabled {
            self.mppe_prep.assign(slot, start)?;
        }
        Ok(())
    }

    /// Clears the MPPE receive chain of `slot` and gives back its row of
    /// prepared states (idempotent).
    pub fn remove_mppe_rx(&self, slot: u32) -> Result<(), XdpError> {
        self.mppe_prep.release(slot)?;
        self.mppe_rx.close(slot)
    }

    /// Starts preparing the RC4 states of upcoming receive and send
    /// positions on a thread of the daemon (stopped when the dataplane is
    /// dropped); without it the program walks every chain itself.
    pub fn start_mppe_preparer(&mut self, nice: i32) -> Result<(), XdpError> {
        self.mppe_prep_enabled = true;
        if self.mppe_prep_thread.is_none() {
            let preparers: Vec<std::sync::Arc<dyn Passes>> =
                vec![self.mppe_prep.clone(), self.mppe_tx_prep.clone()];
            self.mppe_prep_thread =
                Some(PreparerThread::start(preparers, nice).map_err(XdpError::Thread)?);
        }
        Ok(())
    }

    /// Gives new receive chains rows of prepared states without starting
    /// the thread: [`Self::prepare_mppe_now`] makes the passes (tests, or a
    /// caller that paces the work itself).
    pub fn enable_mppe_prepare(&mut self) {
        self.mppe_prep_enabled = true;
    }

    /// One pass of the preparers on the calling thread; returns how many
    /// states they prepared (receive and send).
    pub fn prepare_mppe_now(&self) -> usize {
        self.mppe_prep.refill() + self.mppe_tx_prep.refill()
    }

    /// Receive chains with a row of prepared states.
    pub fn mppe_prepared_rows(&self) -> usize {
        self.mppe_prep.rows_in_use()
    }

    /// Send chains with a row of prepared states.
    pub fn mppe_tx_prepared_rows(&self) -> usize {
        self.mppe_tx_prep.rows_in_use()
    }

    /// The MPPE send key chains shared with the program ([`MppeTxMap`]).
    pub fn mppe_tx(&self) -> &std::sync::Arc<MppeTxMap> {
        &self.mppe_tx
    }

    /// Starts the kernel's stateless MPPE send chain of `slot` where the
    /// session's userspace encryptor stands: `start` is the send start
    /// key (the server's MasterSendKey, RFC 3079 section 3.4), `position`
    /// and `key` the encryptor's. Call it before installing the session
    /// with [`SESSION_F_MPPE_TX`](pptp_common::maps::SESSION_F_MPPE_TX);
    /// [`Self::remove_mppe_tx`] after removing it.
    /// Once preparing is on ([`Self::start_mppe_preparer`]), the chain
    /// gets a row of prepared states if one is free ([`Preparer`]).
    pub fn install_mppe_tx(
        &self,
        slot: u32,
        start: &StartKey,
        position: u64,
        key: &[u8],
    ) -> Result<(), XdpError> {
        self.mppe_tx.open_at(slot, start, position, key)?;
        if self.mppe_prep_enabled {
            self.mppe_tx_prep.assign(slot, start)?;
        }
        Ok(())
    }

    /// Clears the MPPE send chain of `slot` and gives back its row of
    /// prepared states (idempotent).
    pub fn remove_mppe_tx(&self, slot: u32) -> Result<(), XdpError> {
        self.mppe_tx_prep.release(slot)?;
        self.mppe_tx.close(slot)
    }

    /// The shared GRE sequence state.
    pub fn seq(&self) -> &std::sync::Arc<SeqMap> {
        &self.seq
    }

    /// A session slot's kernel-path counters, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<SessionCounters, XdpError> {
        let map = self
            .ebpf
            .map(names::COUNTERS)
            .ok_or(XdpError::MissingMap(names::COUNTERS))?;
        let array = PerCpuArray::<&MapData, SessionCounters>::try_from(map)?;
        let mut total = SessionCounters::default();
        for c in array.get(&slot, 0)?.iter() {
            total.add(c);
        }
        Ok(total)
    }

    fn counters_reset(&mut self, slot: u32) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut(names::COUNTERS)
            .ok_or(XdpError::MissingMap(names::COUNTERS))?;
        let mut array = PerCpuArray::<&mut MapData, SessionCounters>::try_from(map)?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Mmap(e))?;
        let zero = aya::maps::PerCpuValues::try_from(vec![SessionCounters::default(); cpus])
            .map_err(XdpError::Mmap)?;
        array.set(slot, zero, 0)?;
        Ok(())
    }

    /// Takes the in-kernel log reader, to be driven by [`run_logger`].
    pub fn take_logger(&mut self) -> Option<EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }
}

/// One [`SeqState`] per session slot, and the GRE [`Sequencer`] of the
/// call in each slot. With XDP the states are the `PPTP_SEQ` array,
/// memory-mapped and shared with the program, which takes sequence numbers
/// with an atomic fetch-and-add on the same memory and records what it
/// accepts; without XDP they are plain process memory with the same
/// interface. Each slot's sequencer keeps its shared numbers there
/// ([`SeqSlot`]) and the rest (history, window, acknowledgment timer) in
/// process memory, behind one lock per slot.
pub struct SeqMap {
    mem: Arc<SeqMemory>,
    /// The sequencer of each slot's call, from [`SeqMap::open`]. Their
    /// [`SeqSlot`]s hold the memory too.
    sequencers: Box<[Mutex<Option<Box<SlotSequencer>>>]>,
}

/// The [`SeqState`] array: the mapping of `PPTP_SEQ`, or process memory.
struct SeqMemory {
    base: NonNull<SeqState>,
    len: usize,
    backing: Backing,
}

/// A slot's sequencer and the wake-up of the task that sends its
/// acknowledgment-only frames.
struct SlotSequencer {
    sequencer: Sequencer<SeqSlot>,
    ack_wake: Arc<Notify>,
}

enum Backing {
    /// Keeps the map alive while mapped.
    Mmap(#[expect(dead_code, reason = "held for its Drop")] std::os::fd::OwnedFd),
    Heap,
}

// SAFETY: the memory is accessed only through atomics (here and, for the
// mapping, in the kernel).
unsafe impl Send for SeqMemory {}
// SAFETY: as above.
unsafe impl Sync for SeqMemory {}

impl SeqMap {
    /// Process memory for `MAX_SESSIONS` slots, for the userspace-only path.
    pub fn heap() -> Self {
        let slots: Box<[SeqState]> =
            vec![SeqState::default(); MAX_SESSIONS as usize].into_boxed_slice();
        let len = slots.len();
        let base = NonNull::new(Box::into_raw(slots).cast::<SeqState>())
            .expect("Box pointers are non-null");
        Self::over(SeqMemory {
            base,
            len,
            backing: Backing::Heap,
        })
    }

    fn over(mem: SeqMemory) -> Self {
        Self {
            sequencers: (0..mem.len).map(|_| Mutex::new(None)).collect(),
            mem: Arc::new(mem),
        }
    }

    fn mmap(data: &MapData) -> Result<Self, XdpError> {
        let (base, fd) = mmap_sessions_array::<SeqState>(data)?;
        Ok(Self::over(SeqMemory {
            base,
            len: MAX_SESSIONS as usize,
            backing: Backing::Mmap(fd),
        }))
    }

    fn slot(&self, slot: u32) -> Result<SeqSlot, XdpError> {
        if slot as usize >= self.mem.len {
            return Err(XdpError::BadSlot(slot));
        }
        Ok(SeqSlot {
            mem: self.mem.clone(),
            index: slot as usize,
        })
    }

    /// Starts a new call in a slot: its shared state zeroed (sequence
    /// numbers from 0, nothing received) and a fresh sequencer for a peer
    /// using `peer_call_id`. Returns what wakes the task that sends the
    /// call's acknowledgment-only frames when one becomes owed (see
    /// [`SeqMap::with_sequencer`]).
    pub fn open(
        &self,
        slot: u32,
        peer_call_id: u16,
        config: call::Config,
    ) -> Result<Arc<Notify>, XdpError> {
        self.store(slot, SeqState::default())?;
        let ack_wake = Arc::new(Notify::new());
        let sequencer = Sequencer::with_storage(peer_call_id, config, self.slot(slot)?);
        *self.lock(slot)? = Some(Box::new(SlotSequencer {
            sequencer,
            ack_wake: ack_wake.clone(),
        }));
        Ok(ack_wake)
    }

    /// Ends the call in a slot: its sequencer is freed and frames for the
    /// slot find none ([`SeqMap::with_sequencer`] gives `None`) until the
    /// next [`SeqMap::open`]. Called once the call's data path is gone and
    /// before its call ID can be given out again.
    pub fn close(&self, slot: u32) -> Result<(), XdpError> {
        *self.lock(slot)? = None;
        Ok(())
    }

    fn lock(
        &self,
        slot: u32,
    ) -> Result<std::sync::MutexGuard<'_, Option<Box<SlotSequencer>>>, XdpError> {
        let cell = self
            .sequencers
            .get(slot as usize)
            .ok_or(XdpError::BadSlot(slot))?;
        Ok(cell.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the sequencer of the call in `slot`, under the slot's
    /// lock. When `f` arms or brings forward its acknowledgment timer
    /// ([`Sequencer::poll_timeout`]), the task holding [`SeqMap::open`]'s
    /// wake-up is woken. `None` when the slot was not opened.
    pub fn with_sequencer<R>(
        &self,
        slot: u32,
        f: impl FnOnce(&mut Sequencer<SeqSlot>) -> R,
    ) -> Option<R> {
        let mut guard = self.lock(slot).ok()?;
        let entry = guard.as_mut()?;
        let before = entry.sequencer.poll_timeout();
        let result = f(&mut entry.sequencer);
        if let Some(after) = entry.sequencer.poll_timeout()
            && before.is_none_or(|b| after < b)
        {
            entry.ack_wake.notify_one();
        }
        Some(result)
    }

    /// The highest sequence number received in a slot, if any.
    pub fn rx_highest(&self, slot: u32) -> Result<Option<u32>, XdpError> {
        Ok(self.slot(slot)?.rx_newest())
    }

    /// The last acknowledgment number sent for a slot.
    pub fn ack_sent(&self, slot: u32) -> Result<u32, XdpError> {
        Ok(self.slot(slot)?.fields().ack_sent.load(Ordering::Relaxed))
    }

    /// Reads a slot's whole state.
    pub fn load(&self, slot: u32) -> Result<SeqState, XdpError> {
        let slot = self.slot(slot)?;
        let f = slot.fields();
        Ok(SeqState {
            tx_next: f.tx_next.load(Ordering::Relaxed),
            tx_cpu: f.tx_cpu.load(Ordering::Relaxed),
            rx_highest: f.rx_highest.load(Ordering::Relaxed),
            rx_valid: f.rx_valid.load(Ordering::Relaxed),
            ack_sent: f.ack_sent.load(Ordering::Relaxed),
            ack_valid: f.ack_valid.load(Ordering::Relaxed),
        })
    }

    /// Overwrites a slot's whole shared state (before its session is
    /// installed); the slot's sequencer, if any, stays.
    pub fn store(&self, slot: u32, state: SeqState) -> Result<(), XdpError> {
        let slot = self.slot(slot)?;
        let f = slot.fields();
        f.tx_next.store(state.tx_next, Ordering::Relaxed);
        f.tx_cpu.store(state.tx_cpu, Ordering::Relaxed);
        f.rx_highest.store(state.rx_highest, Ordering::Relaxed);
        f.ack_sent.store(state.ack_sent, Ordering::Relaxed);
        f.ack_valid.store(state.ack_valid, Ordering::Relaxed);
        f.rx_valid.store(state.rx_valid, Ordering::Release);
        Ok(())
    }
}

/// One slot of a [`SeqMap`] as the [`SeqStorage`] of its call's
/// [`Sequencer`]: the numbers the XDP program shares, through atomics. It
/// holds the memory, so it stays valid whatever becomes of the map.
pub struct SeqSlot {
    mem: Arc<SeqMemory>,
    /// Below `mem.len`, checked by [`SeqMap::slot`].
    index: usize,
}

impl SeqSlot {
    fn state(&self) -> *mut SeqState {
        // SAFETY: `index` is in bounds of the memory, which `mem` keeps.
        unsafe { self.mem.base.as_ptr().add(self.index) }
    }

    /// `tx_next` or `tx_cpu`, u64s because the BPF target has only 64-bit
    /// atomics.
    fn u64_field(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is the offset_of! of a u64 field of SeqState,
        // so the pointer is an aligned u64 inside the live memory; every
        // access, here and in the kernel, is atomic.
        unsafe { AtomicU64::from_ptr(self.state().cast::<u8>().add(offset).cast::<u64>()) }
    }

    fn u32_field(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` is the offset_of! of a u32 field of SeqState,
        // so the pointer is an aligned u32 inside the live memory; every
        // access goes through atomics.
        unsafe { AtomicU32::from_ptr(self.state().cast::<u8>().add(offset).cast::<u32>()) }
    }
}

impl SeqSlot {
    fn fields(&self) -> SeqFields<'_> {
        SeqFields {
            tx_next: self.u64_field(std::mem::offset_of!(SeqState, tx_next)),
            tx_cpu: self.u64_field(std::mem::offset_of!(SeqState, tx_cpu)),
            rx_highest: self.u32_field(std::mem::offset_of!(SeqState, rx_highest)),
            rx_valid: self.u32_field(std::mem::offset_of!(SeqState, rx_valid)),
            ack_sent: self.u32_field(std::mem::offset_of!(SeqState, ack_sent)),
            ack_valid: self.u32_field(std::mem::offset_of!(SeqState, ack_valid)),
        }
    }
}

struct SeqFields<'a> {
    tx_next: &'a AtomicU64,
    tx_cpu: &'a AtomicU64,
    rx_highest: &'a AtomicU32,
    rx_valid: &'a AtomicU32,
    ack_sent: &'a AtomicU32,
    ack_valid: &'a AtomicU32,
}

impl SeqStorage for SeqSlot {
    fn next_tx(&self) -> u32 {
        self.fields().tx_next.load(Ordering::Relaxed) as u32
    }

    fn take_tx(&mut self) -> u32 {
        self.fields().tx_next.fetch_add(1, Ordering::Relaxed) as u32
    }

    fn rx_newest(&self) -> Option<u32> {
        let f = self.fields();
        (f.rx_valid.load(Ordering::Acquire) != 0).then(|| f.rx_highest.load(Ordering::Relaxed))
    }

    /// Only moves forward (RFC 1982): the kernel may have recorded a newer
    /// number since the sequencer looked.
    fn set_rx_newest(&mut self, seq: u32) {
        let f = self.fields();
        let current = f.rx_highest.load(Ordering::Relaxed);
        if f.rx_valid.load(Ordering::Acquire) == 0 || serial::seq_gt(seq, current) {
            f.rx_highest.store(seq, Ordering::Relaxed);
            f.rx_valid.store(1, Ordering::Release);
        }
    }

    /// `None` until either side sent an acknowledgment (so that a first
    /// frame numbered 0 is acknowledged too). The kernel writes the number
    /// before the flag; a reader that sees the flag early reads an older
    /// number, and owes an ack one frame early at worst.
    fn ack_sent(&self) -> Option<u32> {
        let f = self.fields();
        (f.ack_valid.load(Ordering::Relaxed) != 0).then(|| f.ack_sent.load(Ordering::Relaxed))
    }

    fn set_ack_sent(&mut self, ack: u32) {
        let f = self.fields();
        f.ack_sent.store(ack, Ordering::Relaxed);
        f.ack_valid.store(1, Ordering::Relaxed);
    }
}

impl Drop for SeqMemory {
    fn drop(&mut self) {
        match self.backing {
            // SAFETY: unmapping exactly what `mmap` mapped.
            Backing::Mmap(_) => unsafe {
                libc::munmap(
                    self.base.as_ptr().cast(),
                    self.len * std::mem::size_of::<SeqState>(),
                );
            },
            // SAFETY: rebuilding the Box that `heap` leaked, once.
            Backing::Heap => unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.base.as_ptr(),
                    self.len,
                )));
            },
        }
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

/// Maps the `BPF_F_MMAPABLE` array `data` of [`MAX_SESSIONS`] values of
/// `T` into memory (read and write, shared with the kernel); returns the
/// first value and the fd that keeps the map alive.
pub(super) fn mmap_sessions_array<T>(
    data: &MapData,
) -> Result<(NonNull<T>, std::os::fd::OwnedFd), XdpError> {
    mmap_array(data, MAX_SESSIONS as usize)
}

/// Maps a `BPF_F_MMAPABLE` array map of `entries` values of `T`.
pub(super) fn mmap_array<T>(
    data: &MapData,
    entries: usize,
) -> Result<(NonNull<T>, std::os::fd::OwnedFd), XdpError> {
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(XdpError::Mmap)?;
    let len = entries * std::mem::size_of::<T>();
    // SAFETY: mapping a BPF_F_MMAPABLE array map of exactly its size; the
    // kernel keeps the memory alive while mapped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(XdpError::Mmap(std::io::Error::last_os_error()));
    }
    let base = NonNull::new(ptr.cast::<T>())
        .ok_or_else(|| XdpError::Mmap(std::io::Error::other("mmap returned a null pointer")))?;
    Ok((base, fd))
}

#[cfg(test)]
mod seq_map_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::wire::gre;

    fn config() -> call::Config {
        call::Config {
            window_policy: call::WindowPolicy::Ignore,
            ..call::Config::new(0, 64)
        }
    }

    #[test]
    fn the_sequencer_and_the_kernel_share_a_slot() {
        let map = SeqMap::heap();
        assert!(map.with_sequencer(7, |s| s.next_seq()).is_none());
        map.open(7, 0x4242, config()).unwrap();
        let t0 = Instant::now();
        let header = map.with_sequencer(7, |s| s.send_data(0, t0)).unwrap();
        assert_eq!(header, Ok(gre::Repr::data(0x4242, 0, None, 0)));
        // The kernel takes the next number and accepts frame 9.
        let mut state = map.load(7).unwrap();
        assert_eq!(state.tx_next, 1);
        state.tx_next = 2;
        state.rx_highest = 9;
        state.rx_valid = 1;
        map.store(7, state).unwrap();
        let header = map.with_sequencer(7, |s| s.send_data(0, t0)).unwrap();
        assert_eq!(header, Ok(gre::Repr::data(0x4242, 2, Some(9), 0)));
        assert_eq!(map.load(7).unwrap().ack_sent, 9);
        // What userspace accepts, the kernel sees.
        map.with_sequencer(7, |s| s.accept(&gre::Repr::data(1, 10, None, 1), t0));
        let state = map.load(7).unwrap();
        assert_eq!((state.rx_highest, state.rx_valid), (10, 1));
        // Opening the slot again starts over.
        map.open(7, 0x4343, config()).unwrap();
        assert_eq!(map.load(7).unwrap(), SeqState::default());
        assert_eq!(map.with_sequencer(7, |s| s.peer_call_id()), Some(0x4343));
        assert!(map.open(MAX_SESSIONS, 1, config()).is_err());
        // Closed at the call's end: no sequencer until the next open.
        map.close(7).unwrap();
        assert!(map.with_sequencer(7, |s| s.peer_call_id()).is_none());
        assert!(map.close(MAX_SESSIONS).is_err());
    }

    /// A call whose only frame is numbered 0 still gets its acknowledgment
    /// (the slot's zeroed `ack_sent` is not an acknowledgment of 0).
    #[test]
    fn a_first_frame_numbered_zero_is_acknowledged() {
        let map = SeqMap::heap();
        map.open(5, 0x4242, config()).unwrap();
        let t0 = Instant::now();
        map.with_sequencer(5, |s| s.accept(&gre::Repr::data(1, 0, None, 1), t0));
        let due = map
            .with_sequencer(5, |s| s.poll_timeout())
            .flatten()
            .expect("an acknowledgment is owed");
        let ack = map.with_sequencer(5, |s| s.poll_transmit(due)).flatten();
        assert_eq!(ack, Some(gre::Repr::ack_only(0x4242, 0)));
        let state = map.load(5).unwrap();
        assert_eq!((state.ack_sent, state.ack_valid), (0, 1));

        // The same when the XDP program took the frame: the daemon's sync
        // sees sequence 0 unacknowledged.
        map.open(6, 0x4343, config()).unwrap();
        let mut state = map.load(6).unwrap();
        (state.rx_highest, state.rx_valid) = (0, 1);
        map.store(6, state).unwrap();
        map.with_sequencer(6, |s| s.sync(t0));
        let due = map
            .with_sequencer(6, |s| s.poll_timeout())
            .flatten()
            .expect("an acknowledgment of the kernel's frame 0 is owed");
        let ack = map.with_sequencer(6, |s| s.poll_transmit(due)).flatten();
        assert_eq!(ack, Some(gre::Repr::ack_only(0x4343, 0)));
    }

    /// Whether a wake-up is pending (a stored permit completes at once).
    fn woken(wake: &Notify) -> bool {
        futures::FutureExt::now_or_never(wake.notified()).is_some()
    }

    #[test]
    fn an_owed_acknowledgment_wakes_the_session_task() {
        let map = SeqMap::heap();
        let wake = map.open(3, 0x4242, config()).unwrap();
        let t0 = Instant::now();
        // Nothing owed: no wake-up.
        map.with_sequencer(3, |s| s.send_data(0, t0));
        assert!(!woken(&wake));
        map.with_sequencer(3, |s| s.accept(&gre::Repr::data(1, 0, None, 1), t0));
        assert!(woken(&wake));
        assert!(!woken(&wake));
        let due = map
            .with_sequencer(3, |s| s.poll_timeout())
            .flatten()
            .unwrap();
        assert_eq!(due, t0 + call::Config::DEFAULT_ACK_DELAY);
        // A later frame does not bring the deadline forward: no wake-up.
        map.with_sequencer(3, |s| {
            s.accept(
                &gre::Repr::data(1, 1, None, 1),
                t0 + Duration::from_millis(1),
            )
        });
        assert!(!woken(&wake));
        let ack = map.with_sequencer(3, |s| s.poll_transmit(due)).flatten();
        assert_eq!(ack, Some(gre::Repr::ack_only(0x4242, 1)));
    }
}
