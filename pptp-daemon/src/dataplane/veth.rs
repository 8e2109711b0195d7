//! The tunnel device of `forwarding = "stack"`: a veth pair.
//!
//! The first end (`pptp0`) is what the operator sees: it carries the
//! tunnel address and the clients' host routes, and the stack receives
//! every client's decapsulated packet on it, so nftables, conntrack and NAT,
//! reverse-path filtering, policy routing and tc match `iif pptp0` /
//! `oif pptp0` as they would on a kernel PPP interface. The second end (the
//! inject end, `pptp0p`) belongs to the data plane:
//! - XDP on the WAN interface redirects decapsulated packets into it (what
//!   is sent into one end of a veth is received by the other), and the
//!   userspace path writes the packets it decapsulates into it through an
//!   `AF_PACKET` socket;
//! - what the stack routes out of `pptp0` arrives at it: XDP there
//!   encapsulates for fast-path sessions, the rest reaches the userspace
//!   path through the same socket.
//!
//! The inject end does not forward (`net.ipv4.conf.<inject>.forwarding=0`),
//! so the copies the stack also sees of packets bound for userspace are
//! dropped there instead of being routed back into `pptp0`.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd as _, OwnedFd},
};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkMessageBuilder, LinkUnspec, LinkVeth,
    packet_route::link::{InfoData, InfoVeth, LinkAttribute},
};
use tokio::io::unix::AsyncFd;

use super::tun::TunError;

/// `ETH_P_IP` in network byte order, as `AF_PACKET` wants it.
const ETH_P_IP_BE: u16 = (libc::ETH_P_IP as u16).to_be();
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): the socket does not see the
/// frames it sends itself.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// The veth pair: names, indexes, Ethernet addresses. Dropping it deletes
/// the pair (both ends go with either), also when the daemon fails.
pub struct VethPair {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub inject_name: String,
    pub inject_index: u32,
    pub inject_mac: [u8; 6],
}

/// The name of the inject end of tunnel device `name`.
pub fn inject_name(name: &str) -> String {
    format!("{name}p")
}

impl VethPair {
    /// Creates the pair `name` / `name` + "p" (replacing a veth pair of that
    /// name left by a daemon that did not exit cleanly), gives `name` the
    /// tunnel address `local`/32 and `mtu`, without ARP (the clients' routes
    /// are device routes) nor IPv6, turns its transmit checksum offload off
    /// (the XDP program on the inject end sends what it gets as it is, so
    /// every checksum must be finished before) and brings both up.
    ///
    /// Each end gets a transmit and a receive queue for each CPU of `cpus`
    /// (one queue when it has fewer than two), and CPU `cpus[k]` transmits
    /// on queue `k` of `name` (XPS): what the stack forwards to a client on
    /// a CPU is received on the inject end's queue of that CPU, whose NAPI
    /// instance (and XDP program) runs there. So encapsulation towards
    /// clients runs on every CPU that forwards to them, as kernel PPTP's
    /// does; with one queue, on one CPU at a time. (One sending CPU per
    /// session then keeps each session's frames in order:
    /// `dataplane.steer_sends`.)
    pub async fn create(
        handle: &Handle,
        name: &str,
        local: Option<Ipv4Addr>,
        mtu: u16,
        cpus: &[u32],
    ) -> Result<Self, TunError> {
        let inject = inject_name(name);
        let netlink = |what: &str, e: rtnetlink::Error| {
            TunError::Netlink(io::Error::other(format!("{what} {name}: {e}")))
        };
        if let Some(old) = link_index(handle, name).await? {
            if !is_veth(handle, old).await? {
                return Err(TunError::Netlink(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{name} exists and is not a veth pair left by pptp-xdp; \
                         choose another dataplane.tun_name or delete it"
                    ),
                )));
            }
            tracing::warn!(dev = name, "deleting a tunnel veth pair left over");
            handle
                .link()
                .del(old)
                .execute()
                .await
                .map_err(|e| netlink("deleting", e))?;
        }
        let queues = if cpus.len() > 1 { cpus.len() as u32 } else { 1 };
        // The peer's attributes travel in the veth's own: set its queues
        // there too, or it gets the default (one used).
        let peer = with_queues(
            LinkMessageBuilder::<LinkUnspec>::new().name(inject.clone()),
            queues,
        )
        .build();
        handle
            .link()
            .add(
                with_queues(LinkVeth::new(name, &inject), queues)
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                    .mtu(u32::from(mtu))
                    .arp(false)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| netlink("creating veth pair", e))?;
        let index = link_index(handle, name)
            .await?
            .ok_or_else(|| TunError::Netlink(io::Error::other(format!("{name} vanished"))))?;
        let inject_index = link_index(handle, &inject)
            .await?
            .ok_or_else(|| TunError::Netlink(io::Error::other(format!("{inject} vanished"))))?;
        // From here on the pair is ours to delete, whatever fails.
        let mut pair = Self {
            name: name.to_owned(),
            index,
            mac: [0; 6],
            inject_name: inject.clone(),
            inject_index,
            inject_mac: [0; 6],
        };
        // Before anything can arrive: the inject end must not route the
        // copies of userspace-bound packets back into the pair.
        write_sysctl(&format!("net/ipv4/conf/{inject}/forwarding"), "0")?;
        for dev in [name, inject.as_str()] {
            // Without IPv6 neither end sends neighbour discovery noise. A
            // kernel without IPv6 has nothing to turn off.
            let path = format!("net/ipv6/conf/{dev}/disable_ipv6");
            if let Err(e) = write_sysctl(&path, "1") {
                tracing::debug!("{e}");
            }
        }
        set_tx_checksum(name, false).map_err(|source| TunError::Io {
            name: name.to_owned(),
            source,
        })?;
        // NAPI on the tunnel device, which a veth needs to take the frames
        // XDP redirects into its peer (Linux 5.13 and later turn it on
        // with GRO). An XDP program would do too, but a veth running one
        // copies every packet the stack sends into the pair.
        set_gro(name, true).map_err(|source| TunError::Io {
            name: name.to_owned(),
            source,
        })?;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(inject_index)
                    .mtu(u32::from(mtu))
                    .arp(false)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| netlink("bringing up", e))?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| netlink("bringing up", e))?;
        if let Some(local) = local {
            handle
                .address()
                .add(index, std::net::IpAddr::V4(local), 32)
                .execute()
                .await
                .map_err(|e| netlink("addressing", e))?;
        }
        if queues > 1
            && let Err(e) = transmit_queue_per_cpu(name, index, cpus)
        {
            tracing::warn!(
                dev = name,
                "mapping each CPU to its own transmit queue (XPS): {e}; the stack spreads \
                 packets for clients over the pair's queues by flow instead"
            );
        }
        pair.mac = link_mac(handle, index).await?;
        pair.inject_mac = link_mac(handle, inject_index).await?;
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        if let Err(e) = delete_link(self.index) {
            tracing::warn!(dev = %self.name, "deleting the tunnel veth pair: {e}");
        }
    }
}

/// `link` with `queues` transmit and receive queues.
fn with_queues<T>(link: LinkMessageBuilder<T>, queues: u32) -> LinkMessageBuilder<T> {
    link.append_extra_attribute(LinkAttribute::NumTxQueues(queues))
        .append_extra_attribute(LinkAttribute::NumRxQueues(queues))
}

/// The index of link `name`, if it exists.
async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, TunError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(TunError::Netlink(io::Error::other(format!(
            "looking up {name}: {e}"
        )))),
    }
}

/// Whether link `index` is a veth.
async fn is_veth(handle: &Handle, index: u32) -> Result<bool, TunError> {
    use rtnetlink::packet_route::link::{InfoKind, LinkInfo};
    let mut links = handle.link().get().match_index(index).execute();
    let msg = links
        .try_next()
        .await
        .map_err(|e| TunError::Netlink(io::Error::other(e.to_string())))?;
    Ok(msg.is_some_and(|m| {
        m.attributes.iter().any(|a| {
            matches!(a, LinkAttribute::LinkInfo(infos)
                if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))))
        })
    }))
}

/// The Ethernet address of link `index`.
async fn link_mac(handle: &Handle, index: u32) -> Result<[u8; 6], TunError> {
    let mut links = handle.link().get().match_index(index).execute();
    let msg = links
        .try_next()
        .await
        .map_err(|e| TunError::Netlink(io::Error::other(e.to_string())))?;
    msg.and_then(|m| {
        m.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
            _ => None,
        })
    })
    .ok_or_else(|| TunError::Netlink(io::Error::other(format!("link {index} has no MAC"))))
}

/// Makes CPU `cpus[k]` transmit on queue `k` of device `name`, link
/// `index` (XPS, `/sys/class/net/<name>/queues/tx-<k>/xps_cpus`), once the
/// sysfs mounted here is known to show this namespace's device.
fn transmit_queue_per_cpu(name: &str, index: u32, cpus: &[u32]) -> io::Result<()> {
    let dev = std::path::Path::new("/sys/class/net").join(name);
    let shown = std::fs::read_to_string(dev.join("ifindex"))?;
    if shown.trim().parse::<u32>().ok() != Some(index) {
        return Err(io::Error::other(format!(
            "/sys/class/net shows another network namespace's {name}"
        )));
    }
    for (queue, &cpu) in cpus.iter().enumerate() {
        let path = dev.join(format!("queues/tx-{queue}/xps_cpus"));
        std::fs::write(&path, cpu_mask(cpu))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The CPU mask of CPU `cpu` alone as sysfs reads it: hexadecimal in
/// comma-separated groups of 32 bits, the most significant first.
fn cpu_mask(cpu: u32) -> String {
    let groups = cpu / 32;
    let mut mask = format!("{:x}", 1u32 << (cpu % 32));
    for _ in 0..groups {
        mask.push_str(",00000000");
    }
    mask
}

/// Writes `value` to `/proc/sys/<path>`.
fn write_sysctl(path: &str, value: &str) -> Result<(), TunError> {
    let full = format!("/proc/sys/{path}");
    std::fs::write(&full, value).map_err(|source| TunError::Io { name: full, source })
}

/// Deletes link `index` over a netlink socket of its own (RTM_DELLINK),
/// synchronously: this runs from `Drop`, possibly outside any runtime.
fn delete_link(index: u32) -> io::Result<()> {
    #[repr(C)]
    struct Request {
        header: libc::nlmsghdr,
        info: libc::ifinfomsg,
    }
    // SAFETY: plain socket call; the fd is owned right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: both are plain C structs; zero is valid for every field.
    let mut request: Request = unsafe { std::mem::zeroed() };
    request.header.nlmsg_len = std::mem::size_of::<Request>() as u32;
    request.header.nlmsg_type = libc::RTM_DELLINK;
    request.header.nlmsg_flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    request.header.nlmsg_seq = 1;
    request.info.ifi_family = libc::AF_UNSPEC as u8;
    request.info.ifi_index = index as i32;
    // SAFETY: the kernel's address (all zero but the family) and a request
    // that lives for the call.
    let sent = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            fd.as_raw_fd(),
            (&raw const request).cast(),
            std::mem::size_of::<Request>(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The ack: an NLMSG_ERROR whose error is 0 on success.
    let mut buf = [0u8; 256];
    // SAFETY: reads into a local buffer of the given size.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let header = std::mem::size_of::<libc::nlmsghdr>();
    if (n as usize) >= header + 4 {
        let error = i32::from_ne_bytes([
            buf[header],
            buf[header + 1],
            buf[header + 2],
            buf[header + 3],
        ]);
        // A pair already gone (deleted by hand, or its namespace with it) is fine.
        if error < 0 && error != -libc::ENODEV {
            return Err(io::Error::from_raw_os_error(-error));
        }
    }
    Ok(())
}

/// Turns transmit checksum offload of `iface` (in the calling thread's
/// namespace) on or off (ETHTOOL_STXCSUM); off, the kernel also drops the
/// segmentation offloads that depend on it, so what leaves the device is
/// segmented and checksummed.
///
/// A veth hands the frames it sends to its peer with TCP and UDP checksums
/// still to be filled in (CHECKSUM_PARTIAL). The stack fills them in later,
/// but an XDP program that encapsulates such a frame sends it on with the
/// checksum unfinished, and the far end drops it. Real NICs deliver
/// finished checksums; the tunnel device, and in the lab the LAN and client
/// veths, send with offload off.
pub fn set_tx_checksum(iface: &str, enabled: bool) -> io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    ethtool_set(iface, ETHTOOL_STXCSUM, enabled)
}

/// Turns generic receive offload of `iface` on or off (ETHTOOL_SGRO); on a
/// veth it also turns NAPI on or off.
pub fn set_gro(iface: &str, enabled: bool) -> io::Result<()> {
    const ETHTOOL_SGRO: u32 = 0x2c;
    ethtool_set(iface, ETHTOOL_SGRO, enabled)
}

/// One of the legacy ethtool "set" commands that take a `struct
/// ethtool_value`.
fn ethtool_set(iface: &str, cmd: u32, enabled: bool) -> io::Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let mut value = EthtoolValue {
        cmd,
        data: u32::from(enabled),
    };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= ifr.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: a datagram socket for the ioctl, owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifr points to `value`, both live for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `AF_PACKET` datagram socket on the inject end: IPv4 packets that the
/// stack routed out of the tunnel device in, IPv4 packets into the tunnel
/// device out (the kernel adds and strips the Ethernet header).
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    /// Where sent packets go: the inject end, towards the tunnel device's
    /// Ethernet address.
    to: libc::sockaddr_ll,
}

impl PacketSocket {
    /// Opens the socket on `pair`'s inject end. Needs CAP_NET_RAW and a
    /// tokio runtime.
    pub fn open(pair: &VethPair) -> io::Result<Self> {
        // SAFETY: plain socket call; the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_IP_BE),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: an int option of the right size.
        if unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain data; zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_IP_BE;
        addr.sll_ifindex = pair.inject_index as i32;
        // SAFETY: binds to a valid sockaddr_ll of the size given.
        if unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut to = addr;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&pair.mac);
        // SAFETY: the AsyncFd owns the fd, which therefore stays open
        // exactly as long as the registration.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Self { fd, to })
    }

    /// Receives one IPv4 packet the stack routed out of the tunnel device.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: reads into `buf`, of the length given.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one IPv4 packet into the tunnel device (the stack receives it
    /// there).
    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: sends `packet` to a valid sockaddr_ll of the size given.
                let n = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&raw const self.to).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_mask;

    /// The format `bitmap_parse` takes (and `xps_cpus` shows): 32-bit
    /// groups, most significant first, all but the first zero-padded.
    #[test]
    fn cpu_masks_as_sysfs_reads_them() {
        assert_eq!(cpu_mask(0), "1");
        assert_eq!(cpu_mask(5), "20");
        assert_eq!(cpu_mask(31), "80000000");
        assert_eq!(cpu_mask(32), "1,00000000");
        assert_eq!(cpu_mask(70), "40,00000000,00000000");
    }
}
