//! Network namespaces and veth pairs for the tests, the lab and the bench
//! of pptp-xdp (a crate of its own so that pptp-daemon's XDP tests and the
//! lab crate share it; the daemon itself never uses it).
//!
//! Everything created here has a unique name and is deleted on drop, also
//! when a test panics. Addresses given to test hosts come from
//! 198.18.0.0/15 (RFC 2544 benchmarking space); nothing here touches the
//! machine's own interfaces.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::Path,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// A failure setting up or using a namespace, naming the missing
/// prerequisite and its fix where there is one.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `ip` ({0}): install iproute2 (`cargo xtask setup` does)")]
    NoIp(io::Error),
    #[error(
        "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run the tests as root"
    )]
    NotRoot,
    #[error("entering namespace {name}: {source}")]
    Enter { name: String, source: io::Error },
    #[error(
        "prerequisite: two CPUs to run on at once; this thread may run on {0:?} only: run the test where at least two are available"
    )]
    TooFewCpus(Vec<usize>),
    #[error("CPU affinity: {0}")]
    Affinity(io::Error),
}

/// Runs a command, turning a non-zero exit into an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, NetnsError> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            NetnsError::NoIp(e)
        } else {
            NetnsError::Command {
                command: format!("{cmd:?}"),
                stderr: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            command: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// Runs `ip ARGS...` in the current namespace.
pub fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    run(Command::new("ip").args(args))
}

/// Fails with a clear message unless the process can create namespaces.
pub fn require_root() -> Result<(), NetnsError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetnsError::NotRoot);
    }
    Ok(())
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique short name: `<prefix><pid><n>`, at most 15 bytes so it also
/// fits an interface name.
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "name {name} too long for an interface");
    name
}

/// A network namespace, deleted (with every interface in it) on drop
/// unless it was only [`Netns::existing`].
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

impl Netns {
    /// Creates a namespace named `<prefix>…`, with loopback up.
    pub fn new(prefix: &str) -> Result<Self, NetnsError> {
        require_root()?;
        let name = unique_name(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace someone else created (`ip netns add NAME`); left alone
    /// on drop.
    pub fn existing(name: &str) -> Result<Self, NetnsError> {
        require_root()?;
        let path = format!("/run/netns/{name}");
        if !Path::new(&path).exists() {
            return Err(NetnsError::Enter {
                name: name.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, format!("no {path}")),
            });
        }
        Ok(Netns {
            name: name.to_owned(),
            owned: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace (`ip netns exec NAME prog`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `ip ARGS...` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        run(&mut cmd)
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns
    /// its result. Sockets, interface lookups and XDP attachments made by `f`
    /// belong to the namespace; they outlive the thread.
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|source| NetnsError::Enter {
            name: self.name.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd affects only this
                // thread, which ends after `f`.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(NetnsError::Enter {
                        name: self.name.clone(),
                        source: io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Index of interface `iface` inside the namespace.
    pub fn ifindex(&self, iface: &str) -> Result<u32, NetnsError> {
        let name = std::ffi::CString::new(iface).expect("interface names have no NUL");
        // SAFETY: if_nametoindex reads a valid NUL-terminated string.
        let index = self.run(|| unsafe { libc::if_nametoindex(name.as_ptr()) })?;
        if index == 0 {
            return Err(NetnsError::Command {
                command: format!("if_nametoindex({iface}) in {}", self.name),
                stderr: "no such interface".into(),
            });
        }
        Ok(index)
    }

    /// MAC address of `iface` inside the namespace.
    pub fn mac(&self, iface: &str) -> Result<[u8; 6], NetnsError> {
        let path = format!("/sys/class/net/{iface}/address");
        let text = self.run(|| std::fs::read_to_string(&path))?.or_else(|_| {
            // sysfs shows the namespace of whoever mounted it; ask `ip` instead.
            let out = self.ip(&["-br", "link", "show", iface])?;
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok::<_, NetnsError>(
                line.split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })?;
        parse_mac(text.trim()).ok_or_else(|| NetnsError::Command {
            command: format!("reading the MAC of {iface} in {}", self.name),
            stderr: format!("unparsable `{text}`"),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            let _ = ip(&["netns", "del", &self.name]);
        }
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Creates a veth pair with one end in each namespace, both up. The pair
/// goes away with either namespace. (One queue in use at each end: veth
/// allocates one per possible CPU and uses one unless told a count.)
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> Result<(), NetnsError> {
    veth_with(a, a_name, b, b_name, None)
}

/// [`veth`] with `queues` transmit and receive queues in use at each end
/// (a frame sent on transmit queue n arrives on receive queue n of the
/// peer, each with a NAPI instance of its own once XDP or GRO is on): a
/// multi-queue NIC, whose receive work several CPUs can do at once.
pub fn veth_queues(
    a: &Netns,
    a_name: &str,
    b: &Netns,
    b_name: &str,
    queues: u32,
) -> Result<(), NetnsError> {
    veth_with(a, a_name, b, b_name, Some(queues))
}

fn veth_with(
    a: &Netns,
    a_name: &str,
    b: &Netns,
    b_name: &str,
    queues: Option<u32>,
) -> Result<(), NetnsError> {
    let q = queues.map(|q| q.to_string());
    let counts: Vec<&str> = q
        .as_deref()
        .map(|q| vec!["numtxqueues", q, "numrxqueues", q])
        .unwrap_or_default();
    let mut args = vec!["link", "add", a_name, "netns", a.name()];
    args.extend(&counts);
    args.extend(["type", "veth", "peer", "name", b_name, "netns", b.name()]);
    args.extend(&counts);
    ip(&args)?;
    a.ip(&["link", "set", a_name, "up"])?;
    b.ip(&["link", "set", b_name, "up"])?;
    Ok(())
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: plain libc calls on a zeroed cpu_set_t of this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Two CPUs the calling thread may run on, for tests that need work on
/// two at once; fails with the prerequisite's name where there is one.
pub fn two_cpus() -> Result<(usize, usize), NetnsError> {
    let allowed = allowed_cpus().map_err(NetnsError::Affinity)?;
    match allowed[..] {
        [a, b, ..] => Ok((a, b)),
        _ => Err(NetnsError::TooFewCpus(allowed)),
    }
}

/// Pins the calling thread (and the threads it starts from now on) to
/// CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: plain libc calls on a zeroed cpu_set_t of this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An AF_PACKET socket bound to one interface, for sending crafted
/// Ethernet frames. Create it inside the namespace with [`Netns::run`].
pub struct RawSocket {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// Opens a raw socket on `iface` of the calling thread's namespace.
    pub fn open(iface: &str) -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: plain libc calls with valid arguments; the fd is owned below.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self {
                fd: std::os::fd::OwnedFd::from_raw_fd(fd),
                ifindex,
            })
        }
    }

    /// Opens a raw socket that receives every frame of `iface` (of the
    /// calling thread's namespace) in both directions, with a receive
    /// buffer of `rcvbuf` bytes; [`Self::recv`] gives up after `timeout`.
    pub fn capture(iface: &str, rcvbuf: usize, timeout: std::time::Duration) -> io::Result<Self> {
        let sock = Self::open(iface)?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = sock.ifindex;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        let size = rcvbuf as libc::c_int;
        // SAFETY: valid fd, and pointers to values of the sizes given.
        unsafe {
            if libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            for (option, value, len) in [
                (
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast::<libc::c_void>(),
                    std::mem::size_of::<libc::c_int>(),
                ),
                (
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>(),
                ),
            ] {
                if libc::setsockopt(
                    sock.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    value,
                    len as u32,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(sock)
    }

    /// Receives one frame into `buf` (truncated to its length); an error
    /// of kind `WouldBlock` or `TimedOut` once the timeout of
    /// [`Self::capture`] passed without one.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends one Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: frame and addr are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_interfaces_and_differ() {
        let a = unique_name("pxt");
        let b = unique_name("pxt");
        assert_ne!(a, b);
        assert!(a.len() <= 15);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:00:5e:10:00:ff"),
            Some([2, 0, 0x5e, 0x10, 0, 0xff])
        );
        assert_eq!(parse_mac("02:00:5e"), None);
        assert_eq!(parse_mac("02:00:5e:10:00:ff:01"), None);
    }
}
