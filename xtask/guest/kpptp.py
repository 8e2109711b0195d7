#!/usr/bin/python3
"""One end of a kernel PPTP data path (drivers/net/ppp/pptp.c) with no
control connection: an AF_PPPOX/PX_PROTO_PPTP socket bound to a local call
ID and connected to the peer's, attached to a new PPP unit through /dev/ppp
(PPPIOCGCHAN, PPPIOCATTCHAN, PPPIOCNEWUNIT, PPPIOCCONNECT). This is the
data path accel-ppp uses. The unit lives as long as this process.

usage: kpptp.py [--mppe] LOCAL_IP LOCAL_CALL_ID PEER_IP PEER_CALL_ID UNIT ADDR PEER_ADDR
Prints the interface name once it is up, then waits for SIGTERM. With
--mppe the unit decrypts what it receives (ppp_mppe, stateless 128-bit,
MPPE_KEY): its decompressor starts when the server end's CCP
Configure-Ack arrives, so start this end first; it answers that
Configure-Ack with its own, which starts the server end's decompressor.
It sends in the clear (no compressor): what the server end decrypts
comes from a generator that encrypts with MPPE_KEY itself.

usage: kpptp.py --many N [--mppe] LOCAL_IP PEER_IP ADDR FIRST_LOCAL_CALL FIRST_PEER_CALL SESSIONS
N sessions in this one process, as a concentrator (pptpd, accel-ppp) has
them: session i has local call ID FIRST_LOCAL_CALL + i, the peer's
FIRST_PEER_CALL + i, a PPP unit of its own (numbered by the kernel) with
ADDR and peer address peer_addr(i) (from 198.19.16.10 on), hence a /32
route to it. Writes "LOCAL_CALL_ID PEER_ADDR" per session to SESSIONS,
prints "up N" once all are up, then waits for SIGTERM. With --mppe every
unit encrypts what it sends and decrypts what it receives (ppp_mppe,
stateless 128-bit, MPPE_KEY both ways), and the key is written to
SESSIONS.mppe-key as "128 HEX" for the generator (which keeps its
sending state in SESSIONS.mppe-key.state: removed here, the units' key
chains being new). Session 0's decompressor starts when its client
end's Configure-Ack arrives (within ACK_WAIT seconds, or this fails);
the other sessions have no client end and never start theirs.

MPPE without pppd: ppp_generic takes the compressor and the
decompressor with their key with PPPIOCSCOMPRESS (the CCP option,
CI_MPPE, followed by the 16-byte key, as pppd's ccp.c passes it) but
starts either only when it sees a CCP Configure-Ack for that option go
out (the compressor) or come in (the decompressor) while CCP is open and
not yet up (ppp_ccp_peek in drivers/net/ppp/ppp_generic.c). So the
server end opens CCP and writes that Configure-Ack to its unit (it
starts its compressor and, carried over GRE, the client end's
decompressor); the client end reads it from its unit (ppp_generic
queues CCP for pppd there) and writes its own, which starts the server
end's decompressor as it arrives; the server end reads that one and
marks CCP up, as pppd does once CCP has opened. ppp_mppe then derives
each packet's key from the start key as in RFC 3079; what the key is
does not matter to the figures.
"""
import ctypes
import fcntl
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

AF_PPPOX = 24
PX_PROTO_PPTP = 2
# <linux/ppp-ioctl.h>: _IOR/_IOW/_IOWR('t', nr, int)
PPPIOCGCHAN = 0x80047437
PPPIOCATTCHAN = 0x40047438
PPPIOCCONNECT = 0x4004743A
PPPIOCNEWUNIT = 0xC004743E
# _IOW('t', 77, struct ppp_option_data) (a pointer, u32 length, int
# transmit: 16 bytes on 64-bit) and _IOW('t', 89, int).
PPPIOCSCOMPRESS = 0x4010744D
PPPIOCSFLAGS = 0x40047459
# <linux/ppp_defs.h>
SC_CCP_OPEN = 0x40
SC_CCP_UP = 0x80
PPP_CCP = 0x80FD
CCP_CONFACK = 2
# RFC 3078 section 2: CCP option 18, length 6; H (stateless) in the first
# octet of the value, S (128-bit) in the last (<linux/ppp-comp.h>,
# MPPE_OPTS_TO_CI).
MPPE_OPTION = bytes([18, 6, 0x01, 0, 0, 0x40])
MPPE_KEY = bytes(range(0x40, 0x50))
# Seconds the server end waits for the client end's Configure-Ack.
ACK_WAIT = 15

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


def set_mppe(unit_fd, transmit):
    """Gives the unit ppp_mppe with MPPE_KEY for sending (transmit) or
    receiving, and opens CCP (not yet up: ppp_ccp_peek starts a
    compressor only then)."""
    option = ctypes.create_string_buffer(MPPE_OPTION + MPPE_KEY, len(MPPE_OPTION) + len(MPPE_KEY))
    data = struct.pack("PIi", ctypes.addressof(option), len(option), 1 if transmit else 0)
    fcntl.ioctl(unit_fd, PPPIOCSCOMPRESS, data)
    fcntl.ioctl(unit_fd, PPPIOCSFLAGS, struct.pack("i", SC_CCP_OPEN))


def send_ack(unit_fd):
    """Sends the CCP Configure-Ack of the MPPE option through the unit
    (starting its compressor, if it has one, and the peer's decompressor
    when it arrives there)."""
    ack = struct.pack("!HBBH", PPP_CCP, CCP_CONFACK, 1, 4 + len(MPPE_OPTION)) + MPPE_OPTION
    os.write(unit_fd, ack)


def is_ack(frame):
    """Whether a frame read from a unit (PPP protocol first) is a CCP
    Configure-Ack."""
    return len(frame) >= 3 and struct.unpack("!H", frame[:2])[0] == PPP_CCP and frame[2] == CCP_CONFACK


def await_ack(unit_fd, seconds):
    """Reads the unit's control frames until a CCP Configure-Ack has
    arrived (ppp_ccp_peek has then started the decompressor); False when
    none came within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([unit_fd], [], [], left)[0]:
            return False
        if is_ack(os.read(unit_fd, 2048)):
            return True


def ccp_up(unit_fd):
    fcntl.ioctl(unit_fd, PPPIOCSFLAGS, struct.pack("i", SC_CCP_OPEN | SC_CCP_UP))


def many(args):
    mppe = args[1:2] == ["--mppe"]
    if mppe:
        args = args[:1] + args[2:]
    n, local_ip, peer_ip, addr, first_local, first_peer, out = args[:7]
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
        if mppe:
            set_mppe(files[2], transmit=True)
            set_mppe(files[2], transmit=False)
            send_ack(files[2])
        dev = f"ppp{unit}"
        batch.append(f"addr add {addr} peer {peer_addr(i)} dev {dev}")
        batch.append(f"link set {dev} mtu 1400 up")
        lines.append(f"{first_local + i} {peer_addr(i)}\n")
    if mppe:
        # Session 0's client end answers with its Configure-Ack: CCP goes
        # up only after it has arrived (ppp_ccp_peek ignores one that
        # arrives later).
        if n > 0 and not await_ack(keep[0][2], ACK_WAIT):
            sys.exit(f"kpptp: no CCP Configure-Ack from session 0's client end within {ACK_WAIT} s")
        for files in keep:
            ccp_up(files[2])
        with open(out + ".mppe-key", "w") as f:
            f.write(f"128 {MPPE_KEY.hex()}\n")
        try:
            os.unlink(out + ".mppe-key.state")
        except FileNotFoundError:
            pass
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
        return many(sys.argv[2:10])
    args = sys.argv[1:]
    mppe = args[:1] == ["--mppe"]
    if mppe:
        args = args[1:]
    local_ip, local_call, peer_ip, peer_call, unit, addr, peer = args[:7]
    unit, files = open_unit(local_ip, local_call, peer_ip, peer_call, unit)
    if mppe:
        set_mppe(files[2], transmit=False)

    ifname = f"ppp{unit}"
    subprocess.run(["ip", "addr", "add", addr, "peer", peer, "dev", ifname], check=True)
    subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
    print(ifname, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if mppe:
        # The server end's Configure-Ack (it started this end's
        # decompressor as it arrived), answered with ours.
        while not is_ack(os.read(files[2], 2048)):
            pass
        send_ack(files[2])
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
