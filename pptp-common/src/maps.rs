//! Key and value types of the eBPF maps shared by the daemon and the XDP
//! program. Every struct is `#[repr(C)]` with explicit padding fields, so
//! there are no implicit holes whose contents the kernel would hash or copy.

/// Names of the eBPF maps, as the daemon looks them up.
pub mod names {
    /// Per-CPU array of `u64` global counters indexed by [`super::Stat`].
    pub const STATS: &str = "PPTP_STATS";
    /// Hash of established sessions for decapsulation:
    /// [`super::SessionKey`] -> [`super::Session`].
    pub const SESSIONS: &str = "PPTP_SESSIONS";
    /// Hash of established sessions for encapsulation, by the client's
    /// inner address: [`super::ClientKey`] -> [`super::Session`].
    pub const CLIENTS: &str = "PPTP_CLIENTS";
    /// Memory-mappable array of [`super::SeqState`] indexed by session slot:
    /// the GRE sequence space shared by the kernel and the daemon.
    pub const SEQ: &str = "PPTP_SEQ";
    /// Per-CPU array of [`super::SessionCounters`] indexed by session slot.
    pub const COUNTERS: &str = "PPTP_COUNTERS";
    /// Hash of every call the daemon knows, fast path or not:
    /// [`super::SessionKey`] -> [`super::CallEntry`]. GRE for a (peer, call)
    /// it does not hold is dropped in the kernel.
    pub const CALLS: &str = "PPTP_CALLS";
    /// One-entry array of [`super::TunnelConf`]: the tunnel device of
    /// `stack` forwarding.
    pub const TUNNEL: &str = "PPTP_TUNNEL";
    /// Hash of the VLAN devices a FIB lookup may name as the way out, by
    /// their interface index: `u32` -> [`super::VlanLink`].
    pub const VLANS: &str = "PPTP_VLANS";
    /// Memory-mappable array of [`super::MppeRx`] indexed by session slot:
    /// the MPPE receive key chain shared by the kernel and the daemon.
    pub const MPPE_RX: &str = "PPTP_MPPE_RX";
    /// Memory-mappable array of [`super::MppeTx`] indexed by session slot:
    /// the MPPE send key chain and coherency counter shared by the kernel
    /// and the daemon.
    pub const MPPE_TX: &str = "PPTP_MPPE_TX";
    /// Memory-mappable array of [`super::MppePrepared`],
    /// [`super::MPPE_PREP_ROWS`] rows of [`super::MPPE_PREP_DEPTH`]: RC4
    /// states of upcoming receive positions, prepared by the daemon.
    pub const MPPE_PREP: &str = "PPTP_MPPE_PREP";
    /// The same for upcoming send positions ([`super::MppeTx::prep_row`]).
    pub const MPPE_TX_PREP: &str = "PPTP_MPPE_TX_PREP";
    /// CPU map (one entry per possible CPU, a queue to each online one,
    /// running [`super::programs::XDP_CPU`] or
    /// [`super::programs::XDP_CPU_TUNNEL`]): where a frame for a client goes
    /// when another CPU sends that session's frames
    /// ([`super::SESSION_F_STEER`]).
    pub const CPUS: &str = "PPTP_CPUS";
}

/// Names of the XDP programs in the object.
pub mod programs {
    /// `forwarding = "xdp"`, on the WAN and LAN interfaces: decapsulates
    /// and routes by FIB lookup; encapsulates IPv4 for clients.
    pub const XDP: &str = "pptp_xdp";
    /// `forwarding = "stack"`, on the WAN interface: decapsulates into the
    /// tunnel device ([`super::TunnelConf`]); never encapsulates.
    pub const STACK: &str = "pptp_xdp_stack";
    /// `forwarding = "stack"`, on the veth end that receives what the stack
    /// sends out of the tunnel device: encapsulates for fast-path clients.
    pub const TUNNEL: &str = "pptp_xdp_tunnel";
    /// The CPU map's program (`forwarding = "xdp"`): encapsulates, on the
    /// CPU that sends a session's frames, what [`XDP`] steered there.
    pub const XDP_CPU: &str = "pptp_xdp_cpu";
    /// The CPU map's program under `forwarding = "stack"`: encapsulates,
    /// on the CPU that sends a session's frames, what [`TUNNEL`] steered
    /// there.
    pub const XDP_CPU_TUNNEL: &str = "pptp_xdp_cpu_tunnel";
}

/// Maximum number of sessions the maps hold; session slots are `0..MAX_SESSIONS`.
pub const MAX_SESSIONS: u32 = 65_536;

/// Index of a global counter in the per-CPU `PPTP_STATS` array.
///
/// The XDP program counts every frame it sees under exactly one verdict
/// counter ([`Stat::is_verdict`]: all except [`Stat::Frames`],
/// [`Stat::Bytes`] and the MPPE counters), so the verdict counters add up
/// to [`Stat::Frames`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stat {
    /// Every frame the program saw.
    Frames = 0,
    /// Bytes of every frame the program saw.
    Bytes = 1,
    /// Not IPv4 (or cut short before the IPv4 header): passed up.
    NotIpv4 = 2,
    /// IPv4, neither GRE nor addressed to a client: passed up.
    NotGre = 3,
    /// IPv4 with options or fragmented: passed up.
    Ipv4Unusual = 4,
    /// GRE that is not PPTP's enhanced GRE (version 0, wrong protocol, bad flags): passed up.
    GreNotPptp = 5,
    /// Enhanced GRE truncated before its announced header or payload, of a
    /// known call (within its admission buckets): passed up.
    GreTruncated = 6,
    /// Enhanced GRE for a (peer, call) the call map (`PPTP_CALLS`) does not
    /// hold: a call ID nobody was given, or a source address other than the
    /// call's peer. Dropped.
    GreUnknownCall = 7,
    /// Enhanced GRE of a known call that is not an IPv4 data frame of a
    /// session on the fast path (LCP, IPCP, CCP, authentication, MPPE,
    /// ack-only, any frame of a call off the fast path), within the call's
    /// admission buckets ([`CallEntry`]): passed up.
    GreToUserspace = 8,
    /// Data frame of a known session whose inner source is not the
    /// client's address: dropped.
    GreSpoofed = 9,
    /// Data frame decapsulated and forwarded in the kernel: redirected or
    /// sent back out (`forwarding = "xdp"`), or injected into the tunnel
    /// device (`forwarding = "stack"`).
    GreDecapsulated = 10,
    /// Data frame decapsulated and passed to the local stack (the route
    /// lookup said the stack must handle it).
    GreDecapPassed = 11,
    /// IPv4 to a client encapsulated and sent in the kernel.
    Encapsulated = 12,
    /// IPv4 to a client left to the stack (and the daemon's userspace
    /// path): too big for the tunnel, TTL expiring, TCP SYN to clamp, no
    /// route or neighbour yet.
    EncapPassed = 13,
    /// Data frame of a known session over its rate limit from the client
    /// (the `PPTP_SESSIONS` entry's bucket): dropped.
    RateLimitedDecap = 14,
    /// IPv4 to a client over its session's rate limit towards the client
    /// (the `PPTP_CLIENTS` entry's bucket): dropped.
    RateLimitedEncap = 15,
    /// Enhanced GRE of a known call bound for userspace, a data frame
    /// (anything but the control frames of [`Stat::UserspaceControlLimited`])
    /// over the call's data admission bucket ([`CallEntry`]), or before the
    /// call's network is up ([`CALL_F_DATA`]): dropped.
    UserspaceDataLimited = 16,
    /// Enhanced GRE of a known call bound for userspace, a control frame
    /// (LCP, PAP, CHAP, IPCP, CCP, ack-only) over the call's control
    /// admission bucket: dropped.
    UserspaceControlLimited = 17,
    /// Not a verdict (counted besides the frame's verdict, like
    /// [`Stat::Bytes`]): an MPPE frame (RFC 3078) decrypted in the kernel,
    /// whose inner IPv4 packet then went on as a clear frame's does.
    MppeDecrypted = 18,
    /// Not a verdict (counted besides [`Stat::GreToUserspace`]): an MPPE
    /// data frame of a session with kernel MPPE ([`SESSION_F_MPPE_RX`])
    /// left to userspace: out of order, a coherency count jump beyond
    /// [`MPPE_RX_MAX_CATCH_UP`] or over the catch-up budget, FLUSHED clear, or an inner packet the kernel
    /// does not forward (not IPv4, a SYN to clamp). Some reasons are
    /// counted besides it too ([`Stat::MppeRxFar`] to [`Stat::MppeRxRaced`]);
    /// the rest are duplicates and headers the program does not take.
    MppeToUserspace = 19,
    /// Not a verdict (counted besides [`Stat::Encapsulated`]): an IPv4
    /// packet for a client encrypted in the kernel (stateless MPPE,
    /// [`SESSION_F_MPPE_TX`]).
    MppeEncrypted = 20,
    /// Not a verdict (counted besides [`Stat::EncapPassed`]): an IPv4
    /// packet for a client with kernel MPPE left to userspace because the
    /// kernel's send key chain was more than [`MPPE_TX_MAX_WALK`] key
    /// changes behind its coherency counter (or being rewritten).
    MppeTxToUserspace = 21,
    /// Not a verdict (counted besides [`Stat::MppeDecrypted`]): an MPPE
    /// frame decrypted with an RC4 state the daemon prepared
    /// ([`MppePrepared`]) instead of key changes and a key schedule in the
    /// program.
    MppeRxPrepared = 22,
    /// Not a verdict (counted besides [`Stat::MppeToUserspace`], one of
    /// its reasons): an MPPE frame whose coherency count lies further
    /// ahead of the session's head than the program follows (or over its
    /// catch-up budget) where the GRE sequence numbers show the jump: its
    /// position went into [`MppeRx::far`] for the daemon's preparer.
    MppeRxFar = 23,
    /// Not a verdict (a reason of [`Stat::MppeToUserspace`]): an MPPE
    /// frame as for [`Stat::MppeRxFar`] whose jump the GRE sequence
    /// numbers do not show (a forged jump, or a late frame, which looks
    /// nearly a turn of the count ahead).
    MppeRxJump = 24,
    /// Not a verdict (a reason of [`Stat::MppeToUserspace`]): the head's
    /// key was no longer in its slot of [`MppeRx::ring`] (being rewritten,
    /// or the slot reused for a later position), so the program could not
    /// walk from it.
    MppeRxKeyGone = 25,
    /// Not a verdict (a reason of [`Stat::MppeToUserspace`]): an MPPE
    /// frame that decrypted to something the program does not forward:
    /// not IPv4 or a bad IPv4 header (a forged or corrupt frame), or a TCP
    /// SYN to clamp.
    MppeRxNotForwarded = 26,
    /// Not a verdict (a reason of [`Stat::MppeToUserspace`]): another CPU
    /// or the daemon moved the head to the frame's position or past it
    /// while the program decrypted it.
    MppeRxRaced = 27,
    /// Not a verdict (counted besides [`Stat::MppeEncrypted`]): an IPv4
    /// packet for a client encrypted with an RC4 state the daemon prepared
    /// for its send position ([`MppePrepared`], [`MppeTx::prep_row`])
    /// instead of a key change and a key schedule in the program.
    MppeTxPrepared = 28,
    /// IPv4 to a client whose session's frames another CPU sends
    /// ([`SESSION_F_STEER`], [`SeqState::tx_cpu`]): queued to that CPU
    /// (the CPU map), whose program counts it once more, under the verdict
    /// it reaches there. Frames therefore counts such a frame twice, once
    /// per program run.
    EncapSteered = 29,
    /// Not a verdict (counted besides the verdict of the CPU map's
    /// program): a frame that another CPU steered here
    /// ([`Stat::EncapSteered`]), taken from this CPU's queue. What
    /// `EncapSteered` counts beyond it, the queues dropped (full: the
    /// other CPUs steer more than this one sends).
    SteeredTaken = 30,
    /// Not a verdict (counted besides [`Stat::MppeDecrypted`]): an MPPE
    /// frame past what the daemon prepared (a loss run longer than that)
    /// whose key changes the program walked from the key of a prepared
    /// position between the head and the frame instead of from the head.
    MppeRxWalkedFromPrepared = 31,
}

impl Stat {
    /// Number of counters; size of the `PPTP_STATS` array.
    pub const COUNT: u32 = 32;

    /// Every counter, in index order.
    pub const ALL: [Stat; Self::COUNT as usize] = [
        Stat::Frames,
        Stat::Bytes,
        Stat::NotIpv4,
        Stat::NotGre,
        Stat::Ipv4Unusual,
        Stat::GreNotPptp,
        Stat::GreTruncated,
        Stat::GreUnknownCall,
        Stat::GreToUserspace,
        Stat::GreSpoofed,
        Stat::GreDecapsulated,
        Stat::GreDecapPassed,
        Stat::Encapsulated,
        Stat::EncapPassed,
        Stat::RateLimitedDecap,
        Stat::RateLimitedEncap,
        Stat::UserspaceDataLimited,
        Stat::UserspaceControlLimited,
        Stat::MppeDecrypted,
        Stat::MppeToUserspace,
        Stat::MppeEncrypted,
        Stat::MppeTxToUserspace,
        Stat::MppeRxPrepared,
        Stat::MppeRxFar,
        Stat::MppeRxJump,
        Stat::MppeRxKeyGone,
        Stat::MppeRxNotForwarded,
        Stat::MppeRxRaced,
        Stat::MppeTxPrepared,
        Stat::EncapSteered,
        Stat::SteeredTaken,
        Stat::MppeRxWalkedFromPrepared,
    ];

    /// Whether this counter is a verdict (each frame is counted under
    /// exactly one); [`Stat::Frames`], [`Stat::Bytes`] and the MPPE counters
    /// are counted besides it.
    pub const fn is_verdict(self) -> bool {
        !matches!(
            self,
            Stat::Frames
                | Stat::Bytes
                | Stat::MppeDecrypted
                | Stat::MppeToUserspace
                | Stat::MppeEncrypted
                | Stat::MppeTxToUserspace
                | Stat::MppeRxPrepared
                | Stat::MppeRxFar
                | Stat::MppeRxJump
                | Stat::MppeRxKeyGone
                | Stat::MppeRxNotForwarded
                | Stat::MppeRxRaced
                | Stat::MppeTxPrepared
                | Stat::SteeredTaken
                | Stat::MppeRxWalkedFromPrepared
        )
    }

    /// A short lowercase name for logs and the `stats` output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Frames => "frames",
            Stat::Bytes => "bytes",
            Stat::NotIpv4 => "not_ipv4",
            Stat::NotGre => "not_gre",
            Stat::Ipv4Unusual => "ipv4_unusual",
            Stat::GreNotPptp => "gre_not_pptp",
            Stat::GreTruncated => "gre_truncated",
            Stat::GreUnknownCall => "gre_unknown_call",
            Stat::GreToUserspace => "gre_to_userspace",
            Stat::GreSpoofed => "gre_spoofed",
            Stat::GreDecapsulated => "gre_decapsulated",
            Stat::GreDecapPassed => "gre_decap_passed",
            Stat::Encapsulated => "encapsulated",
            Stat::EncapPassed => "encap_passed",
            Stat::RateLimitedDecap => "rate_limited_decap",
            Stat::RateLimitedEncap => "rate_limited_encap",
            Stat::UserspaceDataLimited => "userspace_data_limited",
            Stat::UserspaceControlLimited => "userspace_control_limited",
            Stat::MppeDecrypted => "mppe_decrypted",
            Stat::MppeToUserspace => "mppe_to_userspace",
            Stat::MppeEncrypted => "mppe_encrypted",
            Stat::MppeTxToUserspace => "mppe_tx_to_userspace",
            Stat::MppeRxPrepared => "mppe_rx_prepared",
            Stat::MppeRxFar => "mppe_rx_far",
            Stat::MppeRxJump => "mppe_rx_jump",
            Stat::MppeRxKeyGone => "mppe_rx_key_gone",
            Stat::MppeRxNotForwarded => "mppe_rx_not_forwarded",
            Stat::MppeRxRaced => "mppe_rx_raced",
            Stat::MppeTxPrepared => "mppe_tx_prepared",
            Stat::EncapSteered => "encap_steered",
            Stat::SteeredTaken => "steered_taken",
            Stat::MppeRxWalkedFromPrepared => "mppe_rx_walked_from_prepared",
        }
    }
}

/// Key of the decapsulation map: the peer's outer IPv4 address and the call
/// ID we assigned (the one the peer puts in the GRE key field of what it
/// sends).
///
/// Keying by both means a frame from any other source misses the map and
/// goes up to the daemon, which drops it: a third party cannot inject into
/// a session by guessing the call ID.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SessionKey {
    /// Peer's outer IPv4 address, network byte order as on the wire.
    pub peer_addr: [u8; 4],
    /// Our call ID, host byte order.
    pub call_id: u16,
    /// Explicit padding, always zero.
    pub _pad: u16,
}

impl SessionKey {
    pub const fn new(peer_addr: [u8; 4], call_id: u16) -> Self {
        Self {
            peer_addr,
            call_id,
            _pad: 0,
        }
    }
}

/// Key of the encapsulation map: the client's address inside the tunnel,
/// network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ClientKey {
    pub client_addr: [u8; 4],
}

/// Session flag: the peer accepted Address-and-Control-Field-Compression,
/// so frames we send omit 0xFF 0x03.
pub const SESSION_F_ACFC: u32 = 1 << 0;
/// Session flag: the peer accepted Protocol-Field-Compression, so IPv4
/// frames we send carry a one-byte protocol field.
pub const SESSION_F_PFC: u32 = 1 << 1;
/// Session flag: data frames from the peer are decapsulated in the kernel.
/// Without it (an MPPE session, or one being torn down) they go up.
pub const SESSION_F_DECAP: u32 = 1 << 2;
/// Session flag: IPv4 to the client is encapsulated in the kernel.
pub const SESSION_F_ENCAP: u32 = 1 << 3;
/// Session flag: TCP SYNs take the userspace path, which clamps their MSS.
pub const SESSION_F_MSS_CLAMP: u32 = 1 << 4;
/// Session flag: stateless MPPE frames from the peer are decrypted in the
/// kernel, with the key chain in the session slot's [`MppeRx`] entry.
pub const SESSION_F_MPPE_RX: u32 = 1 << 5;
/// Session flag (with [`SESSION_F_ENCAP`]): IPv4 to the client is
/// encrypted in the kernel with stateless MPPE, its coherency count and
/// key chain in the session slot's [`MppeTx`] entry.
pub const SESSION_F_MPPE_TX: u32 = 1 << 6;
/// Session flag (with [`SESSION_F_ENCAP`]): one CPU sends the session's
/// frames, in order. The first CPU that encapsulates for the session
/// claims it ([`SeqState::tx_cpu`]); another CPU queues the frame to it
/// through the CPU map (`PPTP_CPUS`) instead of encapsulating it, so that
/// GRE sequence numbers and MPPE coherency counts leave in the order they
/// were taken (a peer drops what arrives after a higher number: Linux's
/// pptp and ppp_mppe do). Without a queue for that CPU the frame is sent
/// where it is.
pub const SESSION_F_STEER: u32 = 1 << 7;

/// Value of both session maps: what the programs need to check,
/// decapsulate and encapsulate the data of an established session, and
/// its rate limits ([`crate::rate`]).
///
/// Each map's entry carries one token bucket (`rate_tat`): the
/// `PPTP_SESSIONS` entry's polices what the client sends (`rate_up_kbps`),
/// the `PPTP_CLIENTS` entry's what is sent to it (`rate_down_kbps`). CPUs
/// update it with a compare-and-swap; the daemon rewrites the whole entry
/// (bucket full again) to change a rate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Session {
    /// The peer's outer IPv4 address, network order.
    pub peer_addr: [u8; 4],
    /// Our outer IPv4 address for this session, network order.
    pub local_addr: [u8; 4],
    /// IPv4 address assigned to the client inside the tunnel, network order.
    pub client_addr: [u8; 4],
    /// Index of this session in `PPTP_SEQ` and `PPTP_COUNTERS`.
    pub slot: u32,
    /// `SESSION_F_*` flags.
    pub flags: u32,
    /// Our call ID (the GRE key of frames the peer sends).
    pub call_id: u16,
    /// The peer's call ID (the GRE key of frames we send).
    pub peer_call_id: u16,
    /// Tunnel MTU: the largest inner IPv4 packet we send (the peer's MRU).
    pub mtu: u16,
    /// Explicit padding, always zero.
    pub _pad: u16,
    /// Rate limit of what the client sends (decapsulation), kbit/s of inner
    /// IPv4 bytes; 0: none.
    pub rate_up_kbps: u32,
    /// Rate limit of what is sent to the client (encapsulation), kbit/s;
    /// 0: none.
    pub rate_down_kbps: u32,
    /// Burst tolerance of both buckets, ns ([`crate::rate::admit`]).
    pub rate_burst_ns: u32,
    /// This entry's bucket: its theoretical arrival time, ns of
    /// `bpf_ktime_get_ns` (0: full). Only accessed atomically by the program.
    pub rate_tat: u64,
}

/// Value of the call map (`PPTP_CALLS`), keyed like the decapsulation map
/// by (peer address, our call ID): one entry for every call the daemon
/// holds, from its registration (before the Outgoing-Call-Reply) to its
/// release. What of a call's GRE goes up to the daemon passes two
/// admission buckets (GCRA, [`crate::rate::admit`], one packet costing
/// `*_interval_ns`): control frames (LCP, PAP, CHAP, IPCP, CCP and
/// ack-only frames) take the control bucket, everything else the data
/// bucket, so a data flood on a call never drains what its control
/// frames need. An interval of 0 is no limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallEntry {
    /// The data bucket's theoretical arrival time, ns of
    /// `bpf_ktime_get_ns` (0: full). Only accessed atomically by the program.
    pub data_tat: u64,
    /// The control bucket's, likewise.
    pub control_tat: u64,
    /// Burst of the data bucket, ns (burst frames x interval).
    pub data_tolerance_ns: u64,
    /// Burst of the control bucket, ns.
    pub control_tolerance_ns: u64,
    /// Cost of one data frame, ns (10^9 / frames per second); 0: no limit.
    pub data_interval_ns: u32,
    /// Cost of one control frame, ns; 0: no limit.
    pub control_interval_ns: u32,
    /// `CALL_F_*` flags.
    pub flags: u32,
    /// Explicit padding, always zero.
    pub _pad: u32,
}

/// Call flag: the call's network is up, so data frames may go up to the
/// daemon (within the data bucket). Without it (a call still negotiating,
/// unauthenticated perhaps) they are dropped in the kernel, as the daemon
/// would drop them.
pub const CALL_F_DATA: u32 = 1 << 0;

impl CallEntry {
    /// A full pair of buckets for `data_per_sec` data and
    /// `control_per_sec` control frames per second, with bursts of
    /// `data_burst` and `control_burst` frames (that many pass back to
    /// back from a full bucket). 0 frames per second: no limit.
    pub const fn new(
        data_per_sec: u32,
        data_burst: u32,
        control_per_sec: u32,
        control_burst: u32,
    ) -> Self {
        const fn interval(per_sec: u32) -> u32 {
            match 1_000_000_000u32.checked_div(per_sec) {
                Some(ns) => ns,
                None => 0,
            }
        }
        let data_interval_ns = interval(data_per_sec);
        let control_interval_ns = interval(control_per_sec);
        Self {
            data_tat: 0,
            control_tat: 0,
            data_tolerance_ns: data_interval_ns as u64 * data_burst.saturating_sub(1) as u64,
            control_tolerance_ns: control_interval_ns as u64
                * control_burst.saturating_sub(1) as u64,
            data_interval_ns,
            control_interval_ns,
            flags: 0,
            _pad: 0,
        }
    }

    /// The same buckets with the call's network up ([`CALL_F_DATA`]).
    pub const fn network_up(mut self) -> Self {
        self.flags |= CALL_F_DATA;
        self
    }
}

/// The tunnel device of `stack` forwarding: a veth pair whose one end
/// (`pptp0`) carries the tunnel address and the clients' routes, and whose
/// other end (the "inject" end) the programs use: a frame redirected into
/// it is received by `pptp0`, and what the stack sends out of `pptp0`
/// arrives at it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TunnelConf {
    /// Interface index of the inject end; 0 while unset (decapsulated
    /// packets then go up the WAN interface's stack).
    pub inject_ifindex: u32,
    /// Interface index of the WAN interface: the FIB lookup towards a peer
    /// is made as if from there (the inject end does not forward).
    pub wan_ifindex: u32,
    /// Ethernet address of the tunnel device (destination of injected frames).
    pub tunnel_mac: [u8; 6],
    /// Ethernet address of the inject end (their source).
    pub inject_mac: [u8; 6],
}

/// Most VLAN devices the programs know ([`names::VLANS`]).
pub const MAX_VLANS: u32 = 4096;

/// A VLAN device (IEEE 802.1Q-2018 section 9; 802.1ad S-tags too) on top of
/// an interface the programs send through. A VLAN device takes no XDP
/// frames, so when the FIB lookup names one as the way to a next hop, the
/// program inserts its tag after the Ethernet addresses and redirects the
/// frame to the lower device: a peer behind a VLAN gets its frames tagged
/// as the stack would tag them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VlanLink {
    /// Interface index of the lower device.
    pub parent_ifindex: u32,
    /// Tag protocol identifier in network byte order (0x8100 or 0x88a8).
    pub tpid: [u8; 2],
    /// Tag control information in network byte order: the VLAN ID, priority
    /// and drop eligibility 0.
    pub tci: [u8; 2],
}

/// GRE sequence state of one session (RFC 2637 section 4.4), shared by the
/// kernel and the daemon through a memory-mapped array so that frames sent
/// by either use one sequence space.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SeqState {
    /// Sequence number of the next frame we send, in the low 32 bits; taken
    /// with an atomic fetch-and-add by both sides (64 bits wide because the
    /// BPF target has only 64-bit atomics).
    pub tx_next: u64,
    /// Highest sequence number received from the peer (serial arithmetic,
    /// [`crate::serial`]).
    pub rx_highest: u32,
    /// Non-zero once anything has been received (before that we send no ack).
    pub rx_valid: u32,
    /// Last acknowledgment number we sent; the daemon sends an ack-only
    /// frame when `rx_highest` runs ahead of it and nothing else goes out.
    pub ack_sent: u32,
    /// Non-zero once an acknowledgment was sent (`ack_sent` holds it).
    pub ack_valid: u32,
    /// The CPU that sends the session's frames, plus one; 0 until the
    /// first one claims it (compare-and-swap; [`SESSION_F_STEER`]). 64
    /// bits wide for the BPF target's atomics.
    pub tx_cpu: u64,
}

/// The largest coherency-count jump the kernel follows on receive at no
/// cost beyond its key changes (RFC 3078 section 8.1: one key change per
/// count; SHA-1 and an RC4 key schedule each in the program).
pub const MPPE_RX_MAX_JUMP: u16 = 8;

/// The largest jump the kernel follows without evidence: a jump beyond
/// [`MPPE_RX_MAX_JUMP`] that the GRE sequence numbers do not evidence (see
/// [`MPPE_RX_EVIDENCE_SLACK`]) takes its extra key changes from the
/// session's catch-up budget ([`MppeRx::catch_up_tat`];
/// [`MPPE_RX_CATCH_UP_RATE`] a second, [`MPPE_RX_CATCH_UP_BURST`] at once),
/// and a jump beyond this, or over the budget, goes to userspace, whose
/// rekey budget bounds it. So a run of up to 63 lost frames (a device
/// queue that overflowed in a burst) stays in the kernel: handing the
/// session to userspace at a rate beyond what userspace decrypts would keep
/// it there, each frame it leaves up being far ahead of a head that waits
/// for userspace.
pub const MPPE_RX_MAX_CATCH_UP: u16 = 64;

/// The largest jump the kernel follows when the GRE sequence numbers
/// evidence it ([`MPPE_RX_EVIDENCE_SLACK`]): the key changes of frames the
/// peer did send, which a receiver that lost none would have made too
/// (Linux's `ppp_mppe` walks any jump). A stall of the receiving CPU for
/// some milliseconds loses more than [`MPPE_RX_MAX_CATCH_UP`] frames of a
/// busy session in a row; leaving the next frame to userspace, which
/// decrypts a third as fast, would then keep the session there while the
/// rate lasts (seen in the guest comparison, run M1). Beyond
/// [`MPPE_RX_MAX_CATCH_UP`] such a jump needs room for its extra key
/// changes in the catch-up budget ([`MPPE_RX_CATCH_UP_BURST`] covers one),
/// and takes them from it only when its frame does not decrypt to IPv4 (a
/// forgery: the peer's frames do): one who sees the session's sequence
/// numbers and forges frames gets no more from the kernel than the
/// budget, and a receiver losing such runs of the peer's frames again and
/// again under load (guest run M13) is not sent to userspace by its own
/// budget. Half the count space: a run this long is a CPU stalled for
/// milliseconds under a session's load (at 160,000 frames a second, 12
/// ms), and a receiver that sends the next frame to userspace instead
/// loses the chain while the load lasts (guest runs M13 and M14, with 512:
/// userspace and the preparer's chase cannot follow a peer that outruns
/// the CPU they share with the receive path), where one that walks it
/// here, as `ppp_mppe` walks up to 4095, keeps it as long as its key
/// changes outpace the peer's frames. At most about 5 ms of one CPU for
/// one frame on this host (2.5 µs per key change), for frames the peer
/// did send; a jump beyond a budget's burst needs a full budget.
pub const MPPE_RX_MAX_EVIDENCED: u16 = 2048;

/// A count jump `j` (RFC 3078 section 8.1) of a frame whose GRE sequence
/// number (RFC 2637 section 4.4) lies `d` past the newest one accepted
/// ([`SeqState::rx_highest`]) is evidenced when `j <= d <= j + this`: the
/// peer sent `d` frames since, of which up to this many clear control
/// frames (LCP echoes), which take a sequence number but no count. Its
/// extra key changes are those of frames the peer did send, which any
/// receiver that saw them all would have made: an evidenced jump up to
/// [`MPPE_RX_MAX_CATCH_UP`] costs the kernel's catch-up budget nothing. A
/// receiver overloaded by one session's frames (a device queue dropping
/// runs of them) so stays on its chain in the kernel however long the
/// overload lasts, where the budget would run dry within a second and send
/// the session to userspace for good. A spoofer who does not see the
/// traffic guesses such a sequence number about once in 2^26 tries.
pub const MPPE_RX_EVIDENCE_SLACK: u32 = 64;

/// Extra key changes (beyond [`MPPE_RX_MAX_JUMP`] per frame) a session's
/// kernel receiver may make per second, sustained: about 10 ms of CPU a
/// second at the program's 2.5 µs per key change.
pub const MPPE_RX_CATCH_UP_RATE: u64 = 4096;

/// Extra key changes a session's kernel receiver may make at once (an
/// evidenced jump needs room for the smaller of its extra key changes and
/// this).
pub const MPPE_RX_CATCH_UP_BURST: u64 = 512;
// A jump the kernel follows without evidence fits in a full budget.
const _: () = assert!(MPPE_RX_CATCH_UP_BURST >= MPPE_RX_MAX_CATCH_UP as u64);

/// Slots in [`MppeRx::ring`]: the keys of the latest positions, one slot
/// per position modulo this. Greater than one, so that the slot of the
/// current head is not the one being written on a jump of one count.
pub const MPPE_RX_RING: usize = 4;
// The program indexes the ring with a mask.
const _: () = assert!(MPPE_RX_RING.is_power_of_two() && MPPE_RX_RING > 1);

/// One key of the receive key chain ([`MppeRx`]), tagged with its position.
///
/// Written seqlock-fashion: `tag` to 0, then `key`, then `tag` to the
/// position plus one; a reader reads `tag`, `key`, then `tag` again and uses the key only
/// if both reads gave the position it wants. Every writer of a position
/// writes the same key (the chain is a function of the position), so only
/// a slot being reused for a later position can tear a read, and the tags
/// show it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MppeKeySlot {
    /// Position + 1 of the key held; 0: empty or being written. Only
    /// accessed atomically.
    pub tag: u64,
    /// The session key (RFC 3078 section 7.3), 8 or 16 octets used.
    pub key: [u8; 16],
}

/// Stateless MPPE receive state of one session (RFC 3078 sections 7.3 and
/// 8.1, keys of RFC 3079 section 3), indexed by session slot in
/// `PPTP_MPPE_RX` and shared by every CPU and the daemon (a
/// memory-mapped array).
///
/// A position is the number of key changes since the initial session key
/// (RFC 3079 section 3.3: GetNewKeyFromSHA of the start key with itself,
/// reduced); position `p` decrypts the frame of coherency count
/// `(p - 1) mod 4096`, so position 0 (no frame yet) stands for count 4095
/// and the first frame, count 0, needs one key change.
///
/// `head` is the position of the newest frame decrypted, and only moves
/// forward (compare-and-swap); the ring holds its key and those of the
/// positions just before or after. A frame `d` counts ahead of `head`
/// (`1 <= d <=` [`MPPE_RX_MAX_CATCH_UP`], beyond [`MPPE_RX_MAX_JUMP`]
/// within the catch-up budget) is decrypted with `d` key changes from the
/// head's key; the new key is written into its slot before `head` moves to
/// it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MppeRx {
    /// Position of the newest frame decrypted. Only accessed atomically.
    pub head: u64,
    /// The start key: MasterReceiveKey (RFC 3079 section 3.4, the server's
    /// receive side) or the MS-CHAPv1 start key (section 2.4); 8 or 16
    /// octets used.
    pub start_key: [u8; 16],
    /// Session key octets: 8 (40 and 56 bits) or 16 (128 bits).
    pub key_len: u32,
    /// Key strength, 40, 56 or 128: the reduction of every new key (RFC
    /// 3078 section 7.3).
    pub bits: u32,
    /// The keys of the latest positions, at `position % MPPE_RX_RING`.
    pub ring: [MppeKeySlot; MPPE_RX_RING],
    /// The catch-up budget: the GCRA theoretical arrival time (ns, the
    /// kernel's monotonic clock) of extra key changes, 0 for a full
    /// bucket. Only the program uses it, atomically.
    pub catch_up_tat: u64,
    /// The session's prepared states: [`MppePrepared`] entries of this
    /// epoch only (0: none). Set by the daemon after `prep_row`.
    pub prep_epoch: u64,
    /// Row + 1 of the session's prepared states in `PPTP_MPPE_PREP` (0:
    /// none, the program walks the chain itself).
    pub prep_row: u32,
    /// Where the peer is when the program cannot follow: the low 32 bits
    /// of the position of the newest frame it left to userspace because
    /// the jump was too long or over the budget, when the GRE sequence
    /// numbers evidence that jump (turns of the count included, see
    /// [`MPPE_RX_EVIDENCE_SLACK`]); 0: none (a position whose low bits are
    /// 0 is written as 1). The daemon's preparer takes it (swapping in 0),
    /// walks the chain there and prepares the positions after it, which
    /// the program then takes whatever the jump: the chain comes back to
    /// the kernel without waiting for userspace, whose backlog under such
    /// a load lies further behind than the kernel follows. Only accessed
    /// atomically (32-bit).
    pub far: u32,
}

impl MppeRx {
    /// The coherency count a position decrypts.
    pub const fn count_of(position: u64) -> u16 {
        (position.wrapping_sub(1) & 0x0FFF) as u16
    }
}

/// Positions ahead of a session's receive head that the daemon keeps
/// prepared ([`MppePrepared`]): at 200,000 frames a second, 1.3 ms of
/// frames, so that a preparer waking every few hundred microseconds keeps
/// ahead of one busy session.
pub const MPPE_PREP_DEPTH: u32 = 256;

/// Sessions with prepared receive states at once (the rest walk their chain
/// in the program): 64 rows of [`MPPE_PREP_DEPTH`] states, 4.7 MB; as many
/// again with prepared send states (`PPTP_MPPE_TX_PREP`).
pub const MPPE_PREP_ROWS: u32 = 64;

// The program indexes a row with a mask.
const _: () = assert!(MPPE_PREP_DEPTH.is_power_of_two());

/// The finished RC4 state of one receive or send position (RFC 3078 section 7.3:
/// the key schedule of the position's session key, before any keystream),
/// prepared by the daemon ahead of need so that the program decrypts a
/// frame without a key change (SHA-1 and an RC4 key schedule) or the key
/// schedule of the frame's key: about 3 µs of the program's 3.7 µs for a
/// 64-octet frame on the bench host, done instead on the daemon's CPU.
///
/// Entry `(row - 1) * MPPE_PREP_DEPTH + position % MPPE_PREP_DEPTH` of
/// `PPTP_MPPE_PREP` for the session whose [`MppeRx::prep_row`] is `row`
/// (of `PPTP_MPPE_TX_PREP` for [`MppeTx::prep_row`]: the program then
/// encrypts without the key change and the key schedule, most of a short
/// packet's cost towards the client).
/// Written seqlock-fashion as [`MppeKeySlot`] is (`tag` to 0, the rest,
/// `tag` to position + 1); the program reads `tag` and `epoch`, copies the
/// entry, reads them again, and uses the copy only as
/// [`MppePrepared::copy_holds`] says: both reads give the position it
/// wants and the session's [`MppeRx::prep_epoch`] (a row passes from
/// session to session; epochs are never reused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MppePrepared {
    /// Position + 1; 0: empty or being written. Only accessed atomically.
    pub tag: u64,
    /// The [`MppeRx::prep_epoch`] of the session it was prepared for.
    pub epoch: u64,
    /// The position's session key (8 or 16 octets used): published as the
    /// chain's new head key when the frame is taken.
    pub key: [u8; 16],
    /// The RC4 permutation after the key schedule of `key` (indices i and
    /// j start at 0).
    pub state: [u8; 256],
}

impl MppePrepared {
    /// Whether a copy of an entry holds the state of `position` for the
    /// session whose [`MppeRx::prep_epoch`] is `epoch`, from the entry's
    /// (`tag`, `epoch`) read `before` the copy and again `after` it (each
    /// tag read atomically, each epoch read after its tag).
    ///
    /// The tag alone does not tell: a row that passed to another session
    /// and is rewritten for the same position while the copy runs shows
    /// the same tag before and after (0 only in between), and the copy is
    /// then part one session's state, part the other's. The epoch read
    /// after the second tag read catches it: the writer stores the new
    /// epoch before the tag that ends its rewrite, and an epoch is never
    /// handed out twice. A rewrite for the same epoch and position writes
    /// the same octets (a state is a function of the session's chain and
    /// the position), so a copy it overlaps is whole.
    #[inline(always)]
    pub fn copy_holds(position: u64, epoch: u64, before: (u64, u64), after: (u64, u64)) -> bool {
        let want = (position.wrapping_add(1), epoch);
        want.0 != 0 && epoch != 0 && before == want && after == want
    }
}

impl Default for MppePrepared {
    fn default() -> Self {
        Self {
            tag: 0,
            epoch: 0,
            key: [0; 16],
            state: [0; 256],
        }
    }
}

/// The most key changes the kernel makes to encrypt one frame (RFC 3078
/// section 8.1: one per count). A frame whose position lies further past
/// the newest key of the send chain ([`MppeTx::head`]: positions taken by
/// other CPUs or by the daemon and not yet published) goes to userspace,
/// which follows any distance and publishes its key, so the kernel
/// continues from there.
pub const MPPE_TX_MAX_WALK: u64 = 8;

/// Stateless MPPE send state of one session (RFC 3078 sections 7.3 and
/// 8.1, keys of RFC 3079 section 3), indexed by session slot in
/// `PPTP_MPPE_TX` and shared by every CPU and the daemon (a memory-mapped
/// array), as [`SeqState::tx_next`] shares the GRE sequence space.
///
/// Positions are those of [`MppeRx`]: position `p` sends coherency count
/// `(p - 1) mod 4096` with the key of `p` key changes from the initial
/// session key. A sender takes its position from `next` (an atomic
/// fetch-and-add: every frame sent, by the kernel or the daemon, has its
/// own), walks the chain from the newest key published (`head` and the
/// tagged `ring`, as [`MppeRx`]'s), encrypts, and publishes its key: the
/// head moves forward by compare-and-swap. A position taken and not sent
/// (a sender that gave up) is a lost frame to the peer, a jump its
/// stateless receiver follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MppeTx {
    /// Position of the newest key published. Only accessed atomically.
    pub head: u64,
    /// The start key: MasterSendKey (RFC 3079 section 3.4, the server's
    /// send side) or the MS-CHAPv1 start key (section 2.4); 8 or 16 octets
    /// used.
    pub start_key: [u8; 16],
    /// Session key octets: 8 (40 and 56 bits) or 16 (128 bits); 0: no
    /// chain (the program passes the frame up).
    pub key_len: u32,
    /// Key strength, 40, 56 or 128.
    pub bits: u32,
    /// The keys of the latest positions, at `position % MPPE_RX_RING`.
    pub ring: [MppeKeySlot; MPPE_RX_RING],
    /// The next position to send. Only accessed atomically.
    pub next: u64,
    /// The session's prepared send states: [`MppePrepared`] entries of
    /// this epoch only (0: none), in `PPTP_MPPE_TX_PREP`. Set by the daemon
    /// after `prep_row`.
    pub prep_epoch: u64,
    /// Row + 1 of the session's prepared send states (0: none, the program
    /// makes the key change itself).
    pub prep_row: u32,
    pub _pad: u32,
}

/// How long the program reuses a next hop towards a peer before it asks the
/// FIB again ([`NextHop`]): a route or neighbour change reaches
/// encapsulated traffic within this time and a tick (the program reads
/// the kernel's coarse monotonic clock, `bpf_ktime_get_coarse_ns`).
pub const NEXT_HOP_TTL_NS: u64 = 10_000_000;

/// The next hop towards a session's peer, cached per CPU and per session
/// slot by the encapsulating program (`PPTP_NEXT_HOP`): the result of the
/// FIB lookup for (`in_ifindex`, `local` → `peer`), valid until
/// `expires_ns` (the kernel's coarse monotonic clock, as of the last
/// tick). The lookup's inputs are
/// kept, so a slot reused by another session, or a lookup from another
/// interface, misses. Only the program reads and writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NextHop {
    pub expires_ns: u64,
    /// The interface the lookup was made from (0: empty entry).
    pub in_ifindex: u32,
    /// The interface to send from (a VLAN device is tagged by `send`).
    pub out_ifindex: u32,
    pub local: [u8; 4],
    pub peer: [u8; 4],
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub _pad: [u8; 4],
}

/// Per-CPU traffic counters of one session, as seen by the kernel path.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SessionCounters {
    /// Data frames decapsulated (peer to network).
    pub rx_packets: u64,
    /// Inner bytes of those frames.
    pub rx_bytes: u64,
    /// Packets encapsulated (network to peer).
    pub tx_packets: u64,
    /// Inner bytes of those packets.
    pub tx_bytes: u64,
}

impl SessionCounters {
    /// Adds another CPU's counters.
    pub fn add(&mut self, other: &Self) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are `#[repr(C)]`, `Copy`, made only of integers and byte
    // arrays, and have no implicit padding (checked by the tests below).
    unsafe impl aya::Pod for super::SessionKey {}
    unsafe impl aya::Pod for super::ClientKey {}
    unsafe impl aya::Pod for super::Session {}
    unsafe impl aya::Pod for super::SeqState {}
    unsafe impl aya::Pod for super::SessionCounters {}
    unsafe impl aya::Pod for super::NextHop {}
    unsafe impl aya::Pod for super::CallEntry {}
    unsafe impl aya::Pod for super::TunnelConf {}
    unsafe impl aya::Pod for super::VlanLink {}
    unsafe impl aya::Pod for super::MppeRx {}
    unsafe impl aya::Pod for super::MppeTx {}
    unsafe impl aya::Pod for super::MppePrepared {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn a_prepared_copy_holds_only_if_neither_tag_nor_epoch_moved() {
        let (p, e) = (41, 7);
        assert!(MppePrepared::copy_holds(p, e, (42, 7), (42, 7)));
        // Another position, being written, or another session's.
        assert!(!MppePrepared::copy_holds(p, e, (43, 7), (43, 7)));
        assert!(!MppePrepared::copy_holds(p, e, (0, 7), (42, 7)));
        assert!(!MppePrepared::copy_holds(p, e, (42, 7), (0, 7)));
        assert!(!MppePrepared::copy_holds(p, e, (42, 6), (42, 6)));
        // The row passed to another session (epoch 8) and was rewritten
        // for the same position during the copy: the tag reads the same
        // both times, the epoch does not.
        assert!(!MppePrepared::copy_holds(p, e, (42, 7), (42, 8)));
        // A session without prepared states (epoch 0) takes none, even
        // from an entry never written (epoch 0).
        assert!(!MppePrepared::copy_holds(p, 0, (42, 0), (42, 0)));
        // Tag 0 is an entry being written, whatever position asks.
        assert!(!MppePrepared::copy_holds(u64::MAX, e, (0, 7), (0, 7)));
    }

    #[test]
    fn session_key_layout() {
        assert_eq!(size_of::<SessionKey>(), 8);
        assert_eq!(offset_of!(SessionKey, peer_addr), 0);
        assert_eq!(offset_of!(SessionKey, call_id), 4);
        assert_eq!(offset_of!(SessionKey, _pad), 6);
        assert_eq!(size_of::<ClientKey>(), 4);
    }

    #[test]
    fn session_layout_has_no_holes() {
        assert_eq!(size_of::<Session>(), 48);
        assert_eq!(offset_of!(Session, peer_addr), 0);
        assert_eq!(offset_of!(Session, local_addr), 4);
        assert_eq!(offset_of!(Session, client_addr), 8);
        assert_eq!(offset_of!(Session, slot), 12);
        assert_eq!(offset_of!(Session, flags), 16);
        assert_eq!(offset_of!(Session, call_id), 20);
        assert_eq!(offset_of!(Session, peer_call_id), 22);
        assert_eq!(offset_of!(Session, mtu), 24);
        assert_eq!(offset_of!(Session, _pad), 26);
        assert_eq!(offset_of!(Session, rate_up_kbps), 28);
        assert_eq!(offset_of!(Session, rate_down_kbps), 32);
        assert_eq!(offset_of!(Session, rate_burst_ns), 36);
        assert_eq!(offset_of!(Session, rate_tat), 40);
    }

    #[test]
    fn seq_and_counter_layouts() {
        assert_eq!(size_of::<SeqState>(), 32);
        assert_eq!(offset_of!(SeqState, tx_cpu), 24);
        assert_eq!(offset_of!(SeqState, tx_next), 0);
        assert_eq!(offset_of!(SeqState, rx_highest), 8);
        assert_eq!(offset_of!(SeqState, rx_valid), 12);
        assert_eq!(offset_of!(SeqState, ack_sent), 16);
        assert_eq!(offset_of!(SeqState, ack_valid), 20);
        assert_eq!(size_of::<SessionCounters>(), 32);
        assert_eq!(offset_of!(SessionCounters, tx_bytes), 24);
    }

    #[test]
    fn tunnel_conf_layout_has_no_holes() {
        assert_eq!(size_of::<TunnelConf>(), 20);
        assert_eq!(offset_of!(TunnelConf, inject_ifindex), 0);
        assert_eq!(offset_of!(TunnelConf, wan_ifindex), 4);
        assert_eq!(offset_of!(TunnelConf, tunnel_mac), 8);
        assert_eq!(offset_of!(TunnelConf, inject_mac), 14);
    }

    #[test]
    fn call_entry_layout_has_no_holes() {
        assert_eq!(size_of::<CallEntry>(), 48);
        assert_eq!(offset_of!(CallEntry, data_tat), 0);
        assert_eq!(offset_of!(CallEntry, control_tat), 8);
        assert_eq!(offset_of!(CallEntry, data_tolerance_ns), 16);
        assert_eq!(offset_of!(CallEntry, control_tolerance_ns), 24);
        assert_eq!(offset_of!(CallEntry, data_interval_ns), 32);
        assert_eq!(offset_of!(CallEntry, control_interval_ns), 36);
        assert_eq!(offset_of!(CallEntry, flags), 40);
        assert_eq!(offset_of!(CallEntry, _pad), 44);
    }

    #[test]
    fn call_entry_buckets_from_frames_per_second() {
        let e = CallEntry::new(2000, 200, 100, 20);
        assert_eq!(e.data_interval_ns, 500_000);
        assert_eq!(e.data_tolerance_ns, 99_500_000);
        assert_eq!(e.control_interval_ns, 10_000_000);
        assert_eq!(e.control_tolerance_ns, 190_000_000);
        // A burst of three from a full bucket, then the rate.
        let mut tat = 0;
        let now = 5_000_000_000;
        let bucket = CallEntry::new(1, 3, 1, 1);
        let mut passed = 0;
        while let Some(next) = crate::rate::admit(
            tat,
            now,
            bucket.data_interval_ns as u64,
            bucket.data_tolerance_ns,
        ) {
            tat = next;
            passed += 1;
        }
        assert_eq!(passed, 3);
        assert_eq!(CallEntry::new(0, 5, 0, 5), CallEntry::default());
        assert_eq!(CallEntry::default().network_up().flags, CALL_F_DATA);
    }

    #[test]
    fn next_hop_layout_has_no_holes() {
        assert_eq!(size_of::<NextHop>(), 40);
        assert_eq!(offset_of!(NextHop, in_ifindex), 8);
        assert_eq!(offset_of!(NextHop, out_ifindex), 12);
        assert_eq!(offset_of!(NextHop, local), 16);
        assert_eq!(offset_of!(NextHop, peer), 20);
        assert_eq!(offset_of!(NextHop, smac), 24);
        assert_eq!(offset_of!(NextHop, dmac), 30);
        assert_eq!(offset_of!(NextHop, _pad), 36);
    }

    #[test]
    fn mppe_rx_layout_has_no_holes() {
        assert_eq!(size_of::<MppeKeySlot>(), 24);
        assert_eq!(offset_of!(MppeKeySlot, key), 8);
        assert_eq!(size_of::<MppeRx>(), 32 + 24 * MPPE_RX_RING + 24);
        assert_eq!(offset_of!(MppeRx, catch_up_tat), 32 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeRx, prep_epoch), 40 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeRx, prep_row), 48 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeRx, far), 52 + 24 * MPPE_RX_RING);
        assert_eq!(size_of::<MppePrepared>(), 16 + 16 + 256);
        assert_eq!(offset_of!(MppePrepared, epoch), 8);
        assert_eq!(offset_of!(MppePrepared, key), 16);
        assert_eq!(offset_of!(MppePrepared, state), 32);
        assert_eq!(offset_of!(MppeRx, head), 0);
        assert_eq!(offset_of!(MppeRx, start_key), 8);
        assert_eq!(offset_of!(MppeRx, key_len), 24);
        assert_eq!(offset_of!(MppeRx, bits), 28);
        assert_eq!(offset_of!(MppeRx, ring), 32);
        assert_eq!(size_of::<MppeTx>(), 32 + 24 * MPPE_RX_RING + 24);
        assert_eq!(offset_of!(MppeTx, head), 0);
        assert_eq!(offset_of!(MppeTx, start_key), 8);
        assert_eq!(offset_of!(MppeTx, key_len), 24);
        assert_eq!(offset_of!(MppeTx, bits), 28);
        assert_eq!(offset_of!(MppeTx, ring), 32);
        assert_eq!(offset_of!(MppeTx, next), 32 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeTx, prep_epoch), 40 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeTx, prep_row), 48 + 24 * MPPE_RX_RING);
        assert_eq!(offset_of!(MppeTx, _pad), 52 + 24 * MPPE_RX_RING);
        assert_eq!(MppeRx::count_of(0), 4095);
        assert_eq!(MppeRx::count_of(1), 0);
        assert_eq!(MppeRx::count_of(4097), 0);
    }

    #[test]
    fn stat_indices_are_dense_and_named_uniquely() {
        for (i, s) in Stat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            for t in &Stat::ALL[i + 1..] {
                assert_ne!(s.name(), t.name());
            }
        }
    }
}
