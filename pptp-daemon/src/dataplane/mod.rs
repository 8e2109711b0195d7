//! The data plane: the XDP program in the kernel and, later, the userspace
//! path (TUN device and GRE socket) for what XDP does not handle.

pub mod frame;
pub mod gre_socket;
pub mod mss;
pub mod tun;
pub mod xdp;
