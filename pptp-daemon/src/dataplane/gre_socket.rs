//! The one raw IP-protocol-47 socket of the userspace data path: every
//! enhanced GRE frame the XDP program passes up (or all of them, without
//! XDP) arrives here, and every frame userspace sends leaves here with the
//! session's local address as its source.

use std::{
    io,
    mem::size_of,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::AsRawFd,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::{io::Interest, net::UdpSocket};

/// A raw GRE socket driven by tokio.
pub struct GreSocket {
    // Tokio's UDP wrapper works for any datagram-like socket; the raw socket
    // hands back whole IPv4 packets on receive.
    sock: UdpSocket,
}

/// One received GRE packet, borrowed from the caller's buffer.
#[derive(Debug)]
pub struct Received<'a> {
    /// Outer source address (the peer).
    pub src: Ipv4Addr,
    /// Outer destination address (ours).
    pub dst: Ipv4Addr,
    /// The GRE header and payload.
    pub gre: &'a [u8],
}

impl GreSocket {
    /// Opens the socket (needs CAP_NET_RAW) in the calling thread's network
    /// namespace. Must be called within a tokio runtime.
    pub fn open() -> io::Result<Self> {
        Self::open_on(None)
    }

    /// Like [`Self::open`]; with `local`, the socket is bound to that
    /// address and receives only GRE addressed to it. A raw socket gets a
    /// copy of every packet of its protocol delivered to the host
    /// otherwise: GRE of other tunnels, kernel PPTP on another address, or
    /// a flood at any of the host's addresses would each cost the daemon a
    /// wakeup and a parse. Sending from another source address (IP_PKTINFO)
    /// still works.
    pub fn open_on(local: Option<Ipv4Addr>) -> io::Result<Self> {
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(pptp_common::consts::IPPROTO_GRE))),
        )?;
        sock.set_nonblocking(true)?;
        if let Some(addr) = local {
            sock.bind(&SocketAddrV4::new(addr, 0).into())?;
        }
        // Room for bursts while the daemon is busy.
        let _ = sock.set_recv_buffer_size(8 << 20);
        let _ = sock.set_send_buffer_size(8 << 20);
        let std: std::net::UdpSocket = std::net::UdpSocket::from(std::os::fd::OwnedFd::from(sock));
        Ok(Self {
            sock: UdpSocket::from_std(std)?,
        })
    }

    /// Receives one packet into `buf` and splits off its IPv4 header.
    /// Packets too short to carry an IPv4 header come back as an error of
    /// kind `InvalidData`, which the caller logs and skips.
    pub async fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Received<'a>> {
        let n = self.sock.recv(buf).await?;
        split(&buf[..n])
    }

    /// Like [`Self::recv`], returning where the GRE bytes lie in `buf`
    /// instead of borrowing it, so the caller can modify them in place.
    pub async fn recv_range(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)> {
        let n = self.sock.recv(buf).await?;
        let r = split(&buf[..n])?;
        let start = n - r.gre.len();
        Ok((r.src, r.dst, start..n))
    }

    /// Like [`Self::recv_range`] without waiting: `Ok(None)` when no
    /// packet is queued.
    pub fn try_recv_range(
        &self,
        buf: &mut [u8],
    ) -> io::Result<Option<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)>> {
        let n = match self.sock.try_recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let r = split(&buf[..n])?;
        let start = n - r.gre.len();
        Ok(Some((r.src, r.dst, start..n)))
    }

    /// Sends one GRE packet (header and payload) from `src` to `dst`; the
    /// kernel adds the IPv4 header.
    pub async fn send(&self, src: Ipv4Addr, dst: Ipv4Addr, gre: &[u8]) -> io::Result<()> {
        loop {
            self.sock.writable().await?;
            match self.sock.try_io(Interest::WRITABLE, || {
                sendmsg_from(self.sock.as_raw_fd(), src, dst, gre)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// Splits a raw IPv4 packet into addresses and GRE bytes.
fn split(packet: &[u8]) -> io::Result<Received<'_>> {
    let bad = |why| io::Error::new(io::ErrorKind::InvalidData, why);
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return Err(bad("not an IPv4 packet"));
    }
    let ihl = usize::from(packet[0] & 0x0F) * 4;
    if ihl < 20 || packet.len() < ihl {
        return Err(bad("bad IPv4 header length"));
    }
    let addr = |o: usize| Ipv4Addr::new(packet[o], packet[o + 1], packet[o + 2], packet[o + 3]);
    Ok(Received {
        src: addr(12),
        dst: addr(16),
        gre: &packet[ihl..],
    })
}

/// sendmsg(2) with an IP_PKTINFO control message choosing the source address.
fn sendmsg_from(fd: i32, src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> io::Result<()> {
    let dst = socket2::SockAddr::from(SocketAddrV4::new(dst, 0));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as usize;
    let mut control = [0u64; 8]; // 64 bytes, aligned for cmsghdr
    debug_assert!(space <= size_of::<[u64; 8]>());
    // SAFETY: msghdr is plain data; zeroed is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = dst.as_ptr() as *mut _;
    msg.msg_namelen = dst.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points to `space` bytes we own; CMSG_FIRSTHDR is
    // non-null for a control buffer at least one header long.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = libc::IP_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
    }
    // SAFETY: every pointer in msg is valid for the duration of the call.
    let n = unsafe { libc::sendmsg(fd, &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_addresses_and_skips_options() {
        let mut p = vec![
            0x46, 0, 0, 28, 0, 0, 0, 0, 64, 47, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
        ];
        p.extend_from_slice(&[1, 1, 1, 0]); // 4 bytes of options
        p.extend_from_slice(&[0x30, 0x01, 0x88, 0x0B]);
        let r = split(&p).unwrap();
        assert_eq!(r.src, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(r.dst, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(r.gre, &[0x30, 0x01, 0x88, 0x0B]);
    }

    /// Needs root (a raw socket). Loopback only: 127.0.0.1 and 127.0.0.2
    /// both reach this host through `lo`.
    #[tokio::test]
    async fn a_bound_socket_receives_only_gre_addressed_to_it() {
        let bound = GreSocket::open_on(Some(Ipv4Addr::new(127, 0, 0, 1)))
            .expect("prerequisite: root (CAP_NET_RAW) for a raw GRE socket; run the tests as root");
        let any = GreSocket::open().unwrap();
        let sender = GreSocket::open().unwrap();
        // A marker no other test sends: enhanced GRE, PPP, a call ID of
        // our own, then the destination's last byte.
        let frame = |last: u8| [0x30, 0x01, 0x88, 0x0B, 0x00, 0x01, 0xB0, 0x47, last];
        let local = Ipv4Addr::LOCALHOST;
        for last in [2, 1] {
            let dst = Ipv4Addr::new(127, 0, 0, last);
            sender.send(local, dst, &frame(last)).await.unwrap();
        }
        let wait = std::time::Duration::from_secs(5);
        let mut buf = [0u8; 256];
        // The unbound socket sees both, the bound one only the frame for
        // 127.0.0.1 (it would see the one for .2 first otherwise).
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let r = tokio::time::timeout(wait, any.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if r.gre.len() == 9 && r.gre[..8] == frame(0)[..8] {
                seen.push(r.dst);
            }
        }
        assert_eq!(seen, [Ipv4Addr::new(127, 0, 0, 2), local]);
        loop {
            let r = tokio::time::timeout(wait, bound.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if r.gre.len() == 9 && r.gre[..8] == frame(0)[..8] {
                assert_eq!((r.dst, r.gre[8]), (local, 1));
                break;
            }
        }
    }

    #[test]
    fn split_refuses_garbage() {
        assert!(split(&[]).is_err());
        assert!(split(&[0x45; 19]).is_err());
        assert!(split(&[0x65; 20]).is_err());
        let mut p = vec![0x4F; 20];
        p[0] = 0x4F; // IHL 60 > length
        assert!(split(&p).is_err());
    }
}
