#!/usr/bin/python3
"""One end of a kernel PPTP data path (drivers/net/ppp/pptp.c) with no
control connection: an AF_PPPOX/PX_PROTO_PPTP socket bound to a local call
ID and connected to the peer's, attached to a new PPP unit through /dev/ppp
(PPPIOCGCHAN, PPPIOCATTCHAN, PPPIOCNEWUNIT, PPPIOCCONNECT). This is the
data path accel-ppp uses. The unit lives as long as this process.

usage: kpptp.py LOCAL_IP LOCAL_CALL_ID PEER_IP PEER_CALL_ID UNIT ADDR PEER_ADDR
Prints the interface name once it is up, then waits for SIGTERM.

usage: kpptp.py --many N LOCAL_IP PEER_IP ADDR FIRST_LOCAL_CALL FIRST_PEER_CALL SESSIONS
N sessions in this one process, as a concentrator (pptpd, accel-ppp) has
them: session i has local call ID FIRST_LOCAL_CALL + i, the peer's
FIRST_PEER_CALL + i, a PPP unit of its own (numbered by the kernel) with
ADDR and peer address peer_addr(i) (from 198.19.16.10 on), hence a /32
route to it. Writes "LOCAL_CALL_ID PEER_ADDR" per session to SESSIONS,
prints "up N" once all are up, then waits for SIGTERM.
"""
import ctypes
import fcntl
import os
import resource
import signal
import socket
import struct
import subprocess
import sys

AF_PPPOX = 24
PX_PROTO_PPTP = 2
# <linux/ppp-ioctl.h>: _IOR/_IOW/_IOWR('t', nr, int)
PPPIOCGCHAN = 0x80047437
PPPIOCATTCHAN = 0x40047438
PPPIOCCONNECT = 0x4004743A
PPPIOCNEWUNIT = 0xC004743E

libc = ctypes.CDLL(None, use_errno=True)


def sockaddr_pptp(call_id, ip):
    # struct sockaddr_pppox is packed: u16 family, u32 protocol, then the
    # union (24 bytes, the size of struct pppoe_addr); struct pptp_addr in
    # it is u16 call_id (host order), 2 bytes padding, struct in_addr.
    raw = struct.pack("=HIH2x4s", AF_PPPOX, PX_PROTO_PPTP, call_id, socket.inet_aton(ip))
    return ctypes.create_string_buffer(raw.ljust(30, b"\0"), 30)


def check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        sys.exit(f"kpptp: {what}: {os.strerror(err)}")


def peer_addr(i):
    """The client address of session i: 198.19.16.10, .11, ... 200 per /24."""
    return f"198.19.{16 + i // 200}.{10 + i % 200}"


def open_unit(local_ip, local_call, peer_ip, peer_call, unit):
    """A PPTP socket attached to a new PPP unit; returns the unit number and
    the file objects that keep it alive."""
    sock = socket.socket(AF_PPPOX, socket.SOCK_STREAM, PX_PROTO_PPTP)
    local = sockaddr_pptp(int(local_call), local_ip)
    check(libc.bind(sock.fileno(), local, 30), "bind")
    peer = sockaddr_pptp(int(peer_call), peer_ip)
    check(libc.connect(sock.fileno(), peer, 30), "connect")
    chan = struct.unpack("i", fcntl.ioctl(sock.fileno(), PPPIOCGCHAN, struct.pack("i", 0)))[0]
    chan_fd = os.open("/dev/ppp", os.O_RDWR)
    fcntl.ioctl(chan_fd, PPPIOCATTCHAN, struct.pack("i", chan))
    unit_fd = os.open("/dev/ppp", os.O_RDWR)
    unit = struct.unpack("i", fcntl.ioctl(unit_fd, PPPIOCNEWUNIT, struct.pack("i", int(unit))))[0]
    fcntl.ioctl(chan_fd, PPPIOCCONNECT, struct.pack("i", unit))
    return unit, (sock, chan_fd, unit_fd)


def many(args):
    n, local_ip, peer_ip, addr, first_local, first_peer, out = args
    n, first_local, first_peer = int(n), int(first_local), int(first_peer)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    keep = []
    batch = []
    lines = []
    for i in range(n):
        unit, files = open_unit(local_ip, first_local + i, peer_ip, first_peer + i, -1)
        keep.append(files)
        dev = f"ppp{unit}"
        batch.append(f"addr add {addr} peer {peer_addr(i)} dev {dev}")
        batch.append(f"link set {dev} mtu 1400 up")
        lines.append(f"{first_local + i} {peer_addr(i)}\n")
    # One ip process for all of them: forks are slow under TCG.
    subprocess.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
    with open(out, "w") as f:
        f.writelines(lines)
    print(f"up {n}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main():
    if sys.argv[1:2] == ["--many"]:
        return many(sys.argv[2:9])
    local_ip, local_call, peer_ip, peer_call, unit, addr, peer = sys.argv[1:8]
    unit, _files = open_unit(local_ip, local_call, peer_ip, peer_call, unit)

    ifname = f"ppp{unit}"
    subprocess.run(["ip", "addr", "add", addr, "peer", peer, "dev", ifname], check=True)
    subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
    print(ifname, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
