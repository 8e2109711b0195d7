//! The data plane: the XDP program in the kernel and the userspace path
//! (tunnel device and GRE socket) for what XDP does not handle.

pub mod frame;
pub mod gre_socket;
pub mod mppe_chain;
pub mod mppe_prep;
pub mod mss;
pub mod tun;
pub mod veth;
pub mod vlan;
pub mod xdp;

/// Where the fast path hands the packets it decapsulates, and what it
/// encapsulates (`dataplane.forwarding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Forwarding {
    /// Decapsulated packets enter the stack as if received on the tunnel
    /// device (a veth pair), so netfilter (filter, conntrack, NAT),
    /// reverse-path filtering, policy routing and tc see them with the
    /// tunnel device as input interface; only what the stack routes out of
    /// the tunnel device is encapsulated, in XDP on the pair's other end.
    #[default]
    Stack,
    /// Decapsulated packets are routed by XDP itself (FIB lookup and
    /// redirect) and IPv4 for a client arriving on an attached interface is
    /// encapsulated at once: the fastest path, around netfilter, NAT, tc
    /// and policy routing. The tunnel device is a TUN device.
    Xdp,
}

/// How many queues the tunnel veth pair of [`Forwarding::Stack`] has
/// (`dataplane.tunnel_queues`), which decides where the encapsulation
/// towards clients runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TunnelQueues {
    /// One: the inject end's program runs in one NAPI instance, on one CPU
    /// at a time (the one that woke it from idle), for every session; each
    /// session's frames leave in order without steering.
    #[default]
    One,
    /// One per CPU, each CPU transmitting on its own (XPS): the program
    /// runs on every CPU that forwards to clients, and one CPU sends each
    /// session's frames (steering, as under [`Forwarding::Xdp`]).
    PerCpu,
}
