//! The one tunnel device that carries every session's decapsulated traffic
//! on the userspace path (a TUN device, or under `forwarding = "stack"`
//! the veth pair of [`super::veth`]), and the per-session routes that point
//! clients' addresses at it.

use std::{io, net::Ipv4Addr, sync::Arc};

use futures::TryStreamExt as _;
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tun::AbstractDevice as _;

/// Why the TUN device or a route could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("creating TUN device {name}: {source} (needs CAP_NET_ADMIN and /dev/net/tun)")]
    Create { name: String, source: tun::Error },
    #[error("TUN device {name}: {source}")]
    Io { name: String, source: io::Error },
    #[error("route {addr}/32 via {dev}: {source}")]
    Route {
        addr: Ipv4Addr,
        dev: String,
        source: rtnetlink::Error,
    },
    #[error("netlink: {0}")]
    Netlink(io::Error),
}

/// The tunnel device: IPv4 packets in, IPv4 packets out, no packet-info
/// header or link-layer header.
pub struct Tun {
    io: TunIo,
    name: String,
    index: u32,
}

enum TunIo {
    Tun {
        reader: tun::DeviceReader,
        writer: tun::DeviceWriter,
    },
    /// The inject end of a veth pair, through one packet socket shared by
    /// both halves.
    Veth(Arc<super::veth::PacketSocket>),
}

impl Tun {
    /// Creates (or opens) the device, gives it our tunnel address (if any)
    /// and MTU, and brings it up. Needs a tokio runtime.
    pub fn create(name: &str, local: Option<Ipv4Addr>, mtu: u16) -> Result<Self, TunError> {
        let mut config = tun::Configuration::default();
        config.tun_name(name).mtu(mtu).up();
        if let Some(local) = local {
            config
                .address(local)
                .netmask(Ipv4Addr::new(255, 255, 255, 255));
        }
        let dev = tun::create_as_async(&config).map_err(|source| TunError::Create {
            name: name.to_owned(),
            source,
        })?;
        let index = dev.tun_index().map_err(|source| TunError::Create {
            name: name.to_owned(),
            source,
        })? as u32;
        let (writer, reader) = dev.split().map_err(|source| TunError::Io {
            name: name.to_owned(),
            source,
        })?;
        Ok(Self {
            io: TunIo::Tun { reader, writer },
            name: name.to_owned(),
            index,
        })
    }

    /// The userspace side of a veth pair ([`super::veth::VethPair`]):
    /// packets from and to its tunnel device, through a packet socket on
    /// its inject end. Needs a tokio runtime.
    pub fn veth(pair: &super::veth::VethPair) -> Result<Self, TunError> {
        let socket = super::veth::PacketSocket::open(pair).map_err(|source| TunError::Io {
            name: pair.inject_name.clone(),
            source,
        })?;
        Ok(Self {
            io: TunIo::Veth(Arc::new(socket)),
            name: pair.name.clone(),
            index: pair.index,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// Splits into the receiving and sending halves, for two tasks.
    pub fn split(self) -> (TunReader, TunWriter) {
        match self.io {
            TunIo::Tun { reader, writer } => (
                TunReader(ReaderIo::Tun(reader)),
                TunWriter(WriterIo::Tun(Arc::new(tokio::sync::Mutex::new(writer)))),
            ),
            TunIo::Veth(socket) => (
                TunReader(ReaderIo::Veth(socket.clone())),
                TunWriter(WriterIo::Veth(socket)),
            ),
        }
    }
}

/// Receiving half: packets the kernel routed to a client.
pub struct TunReader(ReaderIo);

enum ReaderIo {
    Tun(tun::DeviceReader),
    Veth(Arc<super::veth::PacketSocket>),
}

impl TunReader {
    /// Reads one IPv4 packet.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            ReaderIo::Tun(reader) => reader.read(buf).await,
            ReaderIo::Veth(socket) => socket.recv(buf).await,
        }
    }
}

/// Sending half: packets decapsulated from clients. Clones share the
/// device (the data path's workers each hold one).
#[derive(Clone)]
pub struct TunWriter(WriterIo);

#[derive(Clone)]
enum WriterIo {
    /// A TUN device takes one whole packet per write; the lock keeps
    /// writers from interleaving.
    Tun(Arc<tokio::sync::Mutex<tun::DeviceWriter>>),
    Veth(Arc<super::veth::PacketSocket>),
}

impl TunWriter {
    /// Writes one IPv4 packet.
    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        match &mut self.0 {
            WriterIo::Tun(writer) => writer.lock().await.write_all(packet).await,
            WriterIo::Veth(socket) => socket.send(packet).await,
        }
    }
}

/// Adds and removes host routes for client addresses over netlink (no
/// process spawned per session).
#[derive(Clone)]
pub struct Routes {
    handle: Handle,
}

impl Routes {
    /// Opens a netlink connection in the calling thread's namespace; the
    /// connection task runs on the current tokio runtime.
    pub fn new() -> Result<Self, TunError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(TunError::Netlink)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// The netlink handle (for links as well as routes).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn message(addr: Ipv4Addr, dev: u32) -> rtnetlink::packet_route::route::RouteMessage {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(addr, 32)
            .output_interface(dev)
            .build()
    }

    /// Routes `addr` to the device with index `dev` (replacing a stale
    /// route), with the session's MTU on the route: the kernel then
    /// fragments what is larger, or answers ICMP Fragmentation Needed when
    /// DF is set (RFC 1191), instead of the packet reaching a session that
    /// cannot carry it (an MPPE session's MTU is 4 bytes below the MRU, a
    /// client may ask for a smaller MRU than the device's MTU).
    pub async fn add(
        &self,
        addr: Ipv4Addr,
        dev: u32,
        dev_name: &str,
        mtu: u16,
    ) -> Result<(), TunError> {
        use rtnetlink::packet_route::route::{RouteAttribute, RouteMetric};
        let mut message = Self::message(addr, dev);
        message
            .attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(u32::from(
                mtu,
            ))]));
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|source| TunError::Route {
                addr,
                dev: dev_name.to_owned(),
                source,
            })
    }

    /// Removes the route; a route that is already gone is not an error.
    pub async fn remove(&self, addr: Ipv4Addr, dev: u32, dev_name: &str) -> Result<(), TunError> {
        match self
            .handle
            .route()
            .del(Self::message(addr, dev))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
            Err(source) => Err(TunError::Route {
                addr,
                dev: dev_name.to_owned(),
                source,
            }),
        }
    }

    /// Routes a network given as `a.b.c.d/len` to device `dev`.
    pub async fn add_cidr(&self, cidr: &str, dev: u32) -> Result<(), TunError> {
        let bad = || {
            TunError::Netlink(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{cidr}` is not a.b.c.d/len"),
            ))
        };
        let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(addr, len)
            .output_interface(dev)
            .build();
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|source| TunError::Route {
                addr,
                dev: dev.to_string(),
                source,
            })
    }

    /// Gives device `dev` the address `addr/32`.
    pub async fn add_address(&self, addr: Ipv4Addr, dev: u32) -> Result<(), TunError> {
        self.handle
            .address()
            .add(dev, std::net::IpAddr::V4(addr), 32)
            .execute()
            .await
            .map_err(|source| TunError::Route {
                addr,
                dev: dev.to_string(),
                source,
            })
    }

    /// Takes `addr` off device `dev`; an address already gone is fine.
    pub async fn remove_address(&self, addr: Ipv4Addr, dev: u32) -> Result<(), TunError> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(dev)
            .set_address_filter(std::net::IpAddr::V4(addr))
            .execute();
        while let Ok(Some(msg)) = found.try_next().await {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|source| TunError::Route {
                    addr,
                    dev: dev.to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Host routes currently pointing at device `dev` (for leak checks).
    pub async fn list(&self, dev: u32) -> Result<Vec<Ipv4Addr>, TunError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = self.handle.route().get(filter).execute();
        let mut out = Vec::new();
        while let Some(msg) = routes.try_next().await.map_err(|source| TunError::Route {
            addr: Ipv4Addr::UNSPECIFIED,
            dev: dev.to_string(),
            source,
        })? {
            let oif = msg
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == dev));
            if !oif || msg.header.destination_prefix_length != 32 {
                continue;
            }
            for a in &msg.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                    out.push(*ip);
                }
            }
        }
        Ok(out)
    }
}
