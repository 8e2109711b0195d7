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

    /// Waits until the socket is readable, then takes what it holds, up to
    /// one packet per buffer of `bufs` (at most [`MAX_BATCH`]), with one
    /// recvmmsg(2): under load one system call per batch instead of one
    /// per packet (issue 14, batched socket I/O). Returns how many packets
    /// arrived; packet `i` fills `bufs[i][..lens[i]]`, to be split by
    /// [`packet_range`].
    pub async fn recv_batch<B: AsMut<[u8]>>(
        &self,
        bufs: &mut [B],
        lens: &mut [usize; MAX_BATCH],
    ) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        self.sock
            .async_io(Interest::READABLE, || recvmmsg(fd, bufs, lens))
            .await
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

/// Most packets [`GreSocket::recv_batch`] takes with one system call.
pub const MAX_BATCH: usize = 64;

/// The addresses of a raw IPv4 packet that [`GreSocket::recv_batch`]
/// received, and where its GRE bytes lie in it; packets too short to carry
/// an IPv4 header come back as an error of kind `InvalidData`.
pub fn packet_range(packet: &[u8]) -> io::Result<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)> {
    let r = split(packet)?;
    let start = packet.len() - r.gre.len();
    Ok((r.src, r.dst, start..packet.len()))
}

/// recvmmsg(2) without waiting into the first [`MAX_BATCH`] of `bufs`:
/// how many packets arrived (at least one), their lengths in `lens`, or
/// `WouldBlock` when none is queued.
fn recvmmsg<B: AsMut<[u8]>>(
    fd: i32,
    bufs: &mut [B],
    lens: &mut [usize; MAX_BATCH],
) -> io::Result<usize> {
    let count = bufs.len().min(MAX_BATCH);
    // SAFETY: iovec and mmsghdr are plain data; zeroed is valid (null
    // pointers, zero lengths), and only the first `count` are handed over.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for ((buf, iov), msg) in bufs.iter_mut().zip(&mut iovs).zip(&mut msgs) {
        let buf = buf.as_mut();
        iov.iov_base = buf.as_mut_ptr().cast();
        iov.iov_len = buf.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: each of the first `count` headers points at one iovec over a
    // buffer borrowed mutably for the duration of the call; no address or
    // control buffer is asked for.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            count as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (len, msg) in lens.iter_mut().zip(&msgs).take(n) {
        *len = msg.msg_len as usize;
    }
    Ok(n)
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

    /// Needs root (a raw socket). Loopback only. Packets queued while the
    /// receiver was busy come back from one call, in order, each split as
    /// `recv` would split it.
    #[tokio::test]
    async fn one_batch_takes_every_queued_packet() {
        let local = Ipv4Addr::LOCALHOST;
        let receiver = GreSocket::open_on(Some(local))
            .expect("prerequisite: root (CAP_NET_RAW) for a raw GRE socket; run the tests as root");
        let sender = GreSocket::open().unwrap();
        // A marker no other test sends (call ID 0xB048), then the index.
        let frame = |i: u8| [0x30, 0x01, 0x88, 0x0B, 0x00, 0x01, 0xB0, 0x48, i];
        const SENT: u8 = 40;
        for i in 0..SENT {
            sender.send(local, local, &frame(i)).await.unwrap();
        }
        let mut bufs = vec![vec![0u8; 2048]; MAX_BATCH];
        let mut lens = [0usize; MAX_BATCH];
        let wait = std::time::Duration::from_secs(5);
        // Loopback delivers on send: all 40 are queued before the first
        // call, which therefore returns them all (and any GRE another test
        // sent to 127.0.0.1 meanwhile, which the marker filters out).
        let n = tokio::time::timeout(wait, receiver.recv_batch(&mut bufs, &mut lens))
            .await
            .unwrap()
            .unwrap();
        let mut seen = Vec::new();
        for (buf, len) in bufs.iter().zip(lens).take(n) {
            let (src, dst, range) = packet_range(&buf[..len]).unwrap();
            let gre = &buf[range];
            if gre.len() == 9 && gre[..8] == frame(0)[..8] {
                assert_eq!((src, dst), (local, local));
                seen.push(gre[8]);
            }
        }
        assert_eq!(seen, (0..SENT).collect::<Vec<_>>());
        // Nothing of ours is left: the next call waits (or brings only
        // other tests' GRE).
        let idle = std::time::Duration::from_millis(200);
        if let Ok(r) = tokio::time::timeout(idle, receiver.recv_batch(&mut bufs, &mut lens)).await {
            for (buf, len) in bufs.iter().zip(lens).take(r.unwrap()) {
                let (_, _, range) = packet_range(&buf[..len]).unwrap();
                assert_ne!(buf[range].get(6..8), Some(&[0xB0, 0x48][..]));
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
