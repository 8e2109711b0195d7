#!/bin/bash
# Test topologies inside the pptp-xdp guest, driven by `cargo xtask guest`.
#
#   lab.sh topo                       namespaces srv and cli joined by two
#                                     veths (link 1 for our daemon and pptpd,
#                                     link 2 for kernel PPTP and plain
#                                     forwarding, so that both can be up at
#                                     once): srv0 198.19.1.1/24 <-> cli0
#                                     198.19.1.2/24 and srv2 198.19.6.1/24 <->
#                                     cli2 198.19.6.2/24, RPS on all ends
#   lab.sh client-up NS SERVER MPPE UNIT
#                                     pptp-linux + pppd in NS ("-": the guest's
#                                     own namespace) calling SERVER; MPPE is
#                                     "mppe" (require-mppe-128), "mppe40"
#                                     (require-mppe-40 nomppe-128) or "none";
#                                     prints "pppUNIT LOCAL PEER SECONDS" once
#                                     IPCP is up (SECONDS: call to IPCP up)
#   lab.sh client-down UNIT           hang up that client
#   lab.sh pptpd-up MPPE              pptpd in srv (198.19.2.1, clients from
#                                     198.19.2.2); then client-up cli 198.19.1.1
#   lab.sh kpptp-up                   kernel PPTP on both ends of link 2, no
#                                     control connection: ppp30 198.19.3.1 in
#                                     srv, ppp31 198.19.3.2 in cli
#   lab.sh lan-up                     after topo: namespace lan behind srv,
#                                     link 1 srv1 198.19.4.1/24 <-> lan0
#                                     198.19.4.2/24, link 2 srv3 198.19.7.1/24
#                                     <-> lan2 198.19.7.2/24; srv forwards, lan
#                                     routes 198.19.0.0/16 via srv1 and link 2's
#                                     clients (198.19.3.0/24, 198.19.6.0/24,
#                                     198.19.16.0/20) via srv3; GRO on cli0,
#                                     cli2, lan0 and lan2 (a veth takes
#                                     frames XDP redirects into it only with
#                                     NAPI on at its peer: an XDP program or
#                                     GRO) and transmit checksums off on lan0
#                                     and lan2 (XDP on srv1 encapsulates what
#                                     lan0 sends)
#   lab.sh ours-up BIN XDP_MODE [mppe]
#                                     pptp-daemon BIN in srv (WAN srv0, LAN srv1,
#                                     dataplane.xdp_mode XDP_MODE, tunnel
#                                     198.19.5.1, clients from 198.19.5.2) and
#                                     our client (BIN client) in cli routing
#                                     198.19.4.0/24; prints "pptpc0 LOCAL PEER
#                                     SECONDS PATH" (PATH: the session's data
#                                     path in the daemon, xdp or userspace);
#                                     mppe: MPPE required (stateless 128-bit);
#                                     our client's send start key (the
#                                     server's receive key) goes to
#                                     /tmp/pxg/mppe-ours-key as "BITS HEX"
#                                     for the generator (measure's MPPE_KEY)
#   lab.sh ours-kclient-up BIN XDP_MODE
#                                     ours-up, then kernel PPTP takes over the
#                                     client's data path: our client is frozen
#                                     (SIGSTOP: its control connection stays)
#                                     and kpptp.py opens ppp32 with the call's
#                                     IDs and addresses; prints the same line
#                                     with ppp32 (LCP and control echoes are
#                                     off in the daemon: nobody answers them)
#   lab.sh ours-down                  stop them
#   lab.sh kpptp-many-up N [mppe]     kernel PPTP with N sessions in srv, all in
#                                     one kpptp.py process on link 2 (call IDs 1000..,
#                                     peers' 3000.., client addresses
#                                     198.19.16.10.. with a /32 route each, see
#                                     kpptp.py), session 0's client end in cli
#                                     (ppp31); writes /tmp/pxg/sessions-kpptp;
#                                     mppe: ppp_mppe (stateless 128-bit) on
#                                     every unit, srv's encrypting and
#                                     decrypting, ppp31 decrypting (kpptp.py
#                                     --mppe); the start key in
#                                     /tmp/pxg/sessions-kpptp.mppe-key
#   lab.sh relay-up LAB               after lan-up: the generators' own veth
#                                     pairs, gen0 <-> gen1 and gen2 <-> gen3
#                                     in cli and in lan, with `LAB relay`
#                                     (pptp-lab) on gen1 and gen3 redirecting
#                                     every frame into cli0 / cli2 (lan0 /
#                                     lan2) as XDP frames; `measure` then
#                                     sends on gen0 (link 1) or gen2 (link 2)
#   lab.sh pin                        after lan-up: the generator and sinks on
#                                     CPU 0, srv's forwarding on CPU 1 (see pin())
#   lab.sh measure LINK DIR SIZE SECONDS RUNS SEQ_BASE GEN SESSIONS [PEER,SERVER]
#                                     RUNS runs of the generator GEN (the xtask
#                                     binary: `xtask guest loadgen`) over the
#                                     sessions of the file SESSIONS through
#                                     link LINK (1 or 2); up: from cli0 (cli2)
#                                     to a tc drop filter on lan0 (lan2) (in
#                                     GRE from PEER to SERVER if given), down:
#                                     from lan0 (lan2) to one on cli0 (cli2);
#                                     prints a line per run (see
#                                     xtask/src/guest/loadgen.rs); the
#                                     kernel's BPF run-time statistics stay
#                                     off (they cost every program run two
#                                     clock reads, emulated under TCG)
#                                     (XDP_ROUTE=1 in the environment:
#                                     `pptp-lab route` on srv's two veths
#                                     of the link during the run, for
#                                     plain XDP routing)
#                                     (MPPE_KEY=FILE, up, one session: the
#                                     frames encrypted with stateless MPPE
#                                     from the start key in FILE, by
#                                     `pptp-lab mppe-send`, which keeps the
#                                     key chain in FILE.state; see
#                                     xtask/src/guest/loadgen.rs)
#   lab.sh measure-bpf LINK DIR ...   the same with them on, for the
#                                     programs' own time per run
#   lab.sh measure-drops LINK DIR ... the same, then a line "drops: ..."
#                                     with the drop counters of the link's
#                                     devices that moved (see drop_counters)
#   lab.sh profile LINK DIR SIZE SECONDS 1 SEQ_BASE GEN SESSIONS [PEER,SERVER]
#                                     one such run under `perf record` of CPU 1
#                                     (cpu-clock, call graphs); prints the
#                                     run's line, then perf report's top
#                                     symbols (self time) and callers
#   lab.sh route NS NET DEV           ip route replace NET dev DEV in NS
#   lab.sh iperf SRV_NS ADDR CLI_NS SECONDS [up|down]
#                                     iperf3 TCP from CLI_NS to ADDR in SRV_NS
#                                     (down: from ADDR to CLI_NS, iperf3 -R);
#                                     prints "MBITS RETRANSMITS" (received rate
#                                     in Mbit/s, TCP retransmissions)
#   lab.sh iperf-client NS ADDR SECONDS up|down
#                                     the same against an iperf3 server that
#                                     runs elsewhere (e.g. on the host)
#   lab.sh capture-start NS IFACE     tcpdump on IFACE in NS ("-": the guest's own
#                                     namespace), whole frames
#   lab.sh capture-stop [DEST]        stop it, copy the capture to DEST and print
#                                     tcpdump's closing counts
#   lab.sh diagnose                   what link 2 and kernel PPTP look like
#                                     (kpptp.py's output; addresses, routes,
#                                     neighbours and counters in cli, srv and
#                                     lan; a ping through the tunnel to srv's
#                                     unit and one from srv to lan), for a
#                                     setup that passes no traffic
#   lab.sh down                       undo all of the above
set -euo pipefail
share=/mnt/host
work=/tmp/pxg
mkdir -p "$work"

in_ns() { # in_ns NS CMD...: "-" is the guest's own namespace
    local ns=$1
    shift
    if [ "$ns" = - ]; then "$@"; else ip netns exec "$ns" "$@"; fi
}

modules() {
    modprobe -a veth tun ppp_generic ppp_async ppp_mppe pptp
    install -m 600 "$share/chap-secrets" /etc/ppp/chap-secrets
}

wait_for() { # wait_for SECONDS CMD...: polls CMD every 0.2 s
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

mppe_opts() {
    case $1 in
    mppe) echo require-mppe-128 ;;
    mppe40) printf 'require-mppe-40\nnomppe-128\n' ;;
    none) printf 'nomppe\nnoccp\n' ;;
    *) echo "lab.sh: MPPE is mppe, mppe40 or none, not $1" >&2; return 2 ;;
    esac
}

ppp_addrs() { # ppp_addrs NS IFACE: "LOCAL PEER" once the interface has them
    in_ns "$1" ip -4 -o addr show dev "$2" 2>/dev/null |
        awk '/ peer /{split($4,a,"/"); split($6,b,"/"); print a[1], b[1]; exit}' | grep .
}

topo() {
    modules
    ip netns add srv
    ip netns add cli
    ip link add srv0 netns srv type veth peer name cli0 netns cli
    ip link add srv2 netns srv type veth peer name cli2 netns cli
    ip -n srv addr add 198.19.1.1/24 dev srv0
    ip -n cli addr add 198.19.1.2/24 dev cli0
    ip -n srv addr add 198.19.6.1/24 dev srv2
    ip -n cli addr add 198.19.6.2/24 dev cli2
    for ns in srv cli; do
        ip -n $ns link set lo up
    done
    # Receive packet steering over all CPUs keeps each flow on one CPU, as
    # a NIC's receive queue would. Without it a veth queues each packet on
    # the backlog of the CPU that sent it; with two vCPUs sending one flow
    # that reorders it, and pptp.c drops GRE packets that come out of
    # order (about 1% of them, halving kernel PPTP's TCP rate).
    local cpus
    cpus=$(printf '%x' $(((1 << $(nproc --all)) - 1)))
    local dev
    for dev in srv:srv0 cli:cli0 srv:srv2 cli:cli2; do
        ip netns exec "${dev%%:*}" sh -c "echo $cpus > /sys/class/net/${dev#*:}/queues/rx-0/rps_cpus"
        ip -n "${dev%%:*}" link set "${dev#*:}" up
    done
    ip netns exec cli ping -c 1 -W 5 198.19.1.1 >/dev/null
    ip netns exec cli ping -c 1 -W 5 198.19.6.1 >/dev/null
}

client_up() { # NS SERVER MPPE UNIT
    local ns=$1 server=$2 mppe=$3 unit=$4
    modules
    { cat "$share/pptp-client"; mppe_opts "$mppe"; echo "logfile $work/client$unit.log"; } >"$work/client$unit.options"
    : >"$work/client$unit.log"
    local started
    started=$(date +%s.%N)
    if ! in_ns "$ns" pppd pty "pptp $server --nolaunchpppd --loglevel 1" \
        file "$work/client$unit.options" unit "$unit" linkname "pxg$unit" updetach >"$work/client$unit.out" 2>&1; then
        cat "$work/client$unit.out" "$work/client$unit.log" >&2 || true
        return 1
    fi
    if ! wait_for 10 ppp_addrs "$ns" "ppp$unit"; then
        cat "$work/client$unit.log" >&2 || true
        return 1
    fi
    echo "ppp$unit $(ppp_addrs "$ns" "ppp$unit") $(echo "$(date +%s.%N) $started" | awk '{printf "%.2f", $1 - $2}')"
}

client_down() { # UNIT
    local pid
    pid=$(head -n 1 "/run/ppp-pxg$1.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    wait_for 10 sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

pptpd_up() { # MPPE
    modules
    { cat "$share/pptpd-options"; mppe_opts "$1"; } >"$work/pptpd-options"
    ip netns exec srv pptpd -c "$share/pptpd.conf" -o "$work/pptpd-options" -p "$work/pptpd.pid" -l 198.19.1.1
    wait_for 10 ip netns exec srv sh -c "ss -ltn | grep -q ':1723 '"
    client_up cli 198.19.1.1 "$1" 20
}

pptpd_down() {
    client_down 20
    if [ -f "$work/pptpd.pid" ]; then
        kill "$(cat "$work/pptpd.pid")" 2>/dev/null || true
        rm -f "$work/pptpd.pid"
    fi
    # pptpd's own pppd children (pptpctrl) end with their calls.
    pkill -x pptpctrl 2>/dev/null || true
}

kpptp_up() {
    modules
    ip netns exec srv setsid python3 "$share/kpptp.py" 198.19.6.1 100 198.19.6.2 200 30 198.19.3.1 198.19.3.2 \
        >"$work/kpptp-srv.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-srv.pid"
    ip netns exec cli setsid python3 "$share/kpptp.py" 198.19.6.2 200 198.19.6.1 100 31 198.19.3.2 198.19.3.1 \
        >"$work/kpptp-cli.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-cli.pid"
    if ! wait_for 15 grep -q ppp31 "$work/kpptp-cli.out" || ! wait_for 15 grep -q ppp30 "$work/kpptp-srv.out"; then
        cat "$work"/kpptp-*.out >&2
        return 1
    fi
    for ns in srv cli; do
        ip -n $ns link set dev ppp3$([ $ns = srv ] && echo 0 || echo 1) mtu 1400
    done
    echo "ppp30 198.19.3.1 198.19.3.2 / ppp31 198.19.3.2 198.19.3.1"
}

kpptp_down() {
    local f pid
    for f in "$work"/kpptp-*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        # Its units go when it exits (1,000 of them take a while).
        wait_for 120 sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

iperf() { # SRV_NS ADDR CLI_NS SECONDS [up|down]
    local srv=$1 addr=$2 cli=$3 secs=$4 dir=${5:-up}
    in_ns "$srv" iperf3 -s -1 -D -B "$addr" -I "$work/iperf-s.pid"
    iperf_client "$cli" "$addr" "$secs" "$dir"
}

iperf_client() { # NS ADDR SECONDS up|down
    local ns=$1 addr=$2 secs=$3 json=$work/iperf.json reverse=
    case $4 in
    up) ;;
    down) reverse=-R ;;
    *) echo "lab.sh: the direction is up or down, not $4" >&2; return 2 ;;
    esac
    local tries=0
    until in_ns "$ns" iperf3 -c "$addr" -t "$secs" $reverse -J >"$json" 2>&1; do
        tries=$((tries + 1))
        if [ $tries -ge 10 ]; then
            cat "$json" >&2
            return 1
        fi
        sleep 0.3
    done
    python3 -c 'import json, sys
end = json.load(open(sys.argv[1]))["end"]
print("%.1f %d" % (end["sum_received"]["bits_per_second"] / 1e6, end["sum_sent"].get("retransmits", 0)))' "$json"
}

lan_up() {
    ip netns add lan
    ip link add srv1 netns srv type veth peer name lan0 netns lan
    ip link add srv3 netns srv type veth peer name lan2 netns lan
    ip -n srv addr add 198.19.4.1/24 dev srv1
    ip -n lan addr add 198.19.4.2/24 dev lan0
    ip -n srv addr add 198.19.7.1/24 dev srv3
    ip -n lan addr add 198.19.7.2/24 dev lan2
    ip -n lan link set lo up
    local cpus ns dev
    cpus=$(printf '%x' $(((1 << $(nproc --all)) - 1)))
    for dev in srv:srv1 lan:lan0 srv:srv3 lan:lan2; do
        ip netns exec "${dev%%:*}" sh -c "echo $cpus > /sys/class/net/${dev#*:}/queues/rx-0/rps_cpus"
    done
    for ns in srv lan cli; do
        ip netns exec $ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    ip netns exec srv sysctl -qw net.ipv4.ip_forward=1
    for dev in lan0 lan2; do
        ip netns exec lan ethtool -K $dev gro on tx off >/dev/null
    done
    for dev in cli0 cli2; do
        ip netns exec cli ethtool -K $dev gro on >/dev/null
    done
    for dev in srv:srv1 lan:lan0 srv:srv3 lan:lan2; do
        ip -n "${dev%%:*}" link set "${dev#*:}" up
    done
    ip -n lan route add 198.19.0.0/16 via 198.19.4.1
    for net in 198.19.3.0/24 198.19.6.0/24 198.19.16.0/20; do
        ip -n lan route add $net via 198.19.7.1
    done
    ip netns exec lan ping -c 1 -W 5 198.19.4.1 >/dev/null
    ip netns exec lan ping -c 1 -W 5 198.19.7.1 >/dev/null
}

# The guest comparison measures forwarding = "xdp" (the figures in the
# README); PXG_FORWARDING=stack measures the default mode instead. No
# per-call budget of frames up to the daemon (10,000 a second by default):
# the comparison measures the paths, as the host bench does. No MPPE
# preparer thread (mppe.prepare_ahead = false): under TCG the daemon's
# native key schedules run no faster than the program's JIT and each of
# the thread's wake-ups on vCPU 1 is emulated, so the thread cost the
# forwarding vCPU more than it saved (runs M28-M30 against M18-M27,
# docs/bench-guest.md); on a real CPU it saves 12-29 % of the CPU a frame
# (docs/mppe-xdp.md, "The preparer on an emulated CPU").
# PXG_PREPARE_AHEAD=true measures the default.
ours_up() { # BIN XDP_MODE [mppe]
    local bin=$1 mode=$2 mppe=${3:-} policy=allow client_mppe=()
    if [ "$mppe" = mppe ]; then
        policy=require client_mppe=(--mppe --report-mppe-keys)
    fi
    modules
    printf 'pxguser\t*\tpxgsecret\t*\n' >"$work/ours-secrets"
    printf '%s\n' \
        '[server]' \
        'listen = "198.19.1.1:1723"' \
        "control_socket = \"$work/ours.sock\"" \
        '[dataplane]' \
        'interface = "srv0"' \
        'lan_interfaces = ["srv1"]' \
        "xdp_mode = \"$mode\"" \
        "forwarding = \"${PXG_FORWARDING:-xdp}\"" \
        'tun_name = "pptp0"' \
        '[ppp]' \
        'local_address = "198.19.5.1"' \
        'pool = ["198.19.5.2-198.19.5.254"]' \
        'lcp_echo_interval_secs = 600' \
        '[auth]' \
        "secrets = \"$work/ours-secrets\"" \
        '[mppe]' \
        "policy = \"$policy\"" \
        "prepare_ahead = ${PXG_PREPARE_AHEAD:-false}" \
        '[control]' \
        'echo_interval_secs = 600' \
        '[limits]' \
        'userspace_frames_per_call = 0' >"$work/ours.toml"
    rm -f "$work/ours.sock"
    ip netns exec srv setsid "$bin" --config "$work/ours.toml" >"$work/ours-daemon.log" 2>&1 </dev/null &
    echo $! >"$work/ours-daemon.pid"
    # Up to 120 s: under TCG the daemon's start includes the verifier's
    # pass over pptp_xdp (about 800,000 instructions on 6.1); run I1 on an
    # Intel host gave up at 20 s with nothing logged past the secrets.
    if ! wait_for 120 ip netns exec srv "$bin" sessions --socket "$work/ours.sock"; then
        cat "$work/ours-daemon.log" >&2
        return 1
    fi
    ip netns exec cli setsid "$bin" client --server 198.19.1.1 --user pxguser --password pxgsecret \
        --route 198.19.4.0/24 "${client_mppe[@]}" >"$work/ours-client.out" 2>"$work/ours-client.log" </dev/null &
    echo $! >"$work/ours-client.pid"
    if ! wait_for 30 grep -q '"event":"up"' "$work/ours-client.out"; then
        cat "$work/ours-client.out" "$work/ours-client.log" "$work/ours-daemon.log" >&2
        return 1
    fi
    local path
    path=$(ip netns exec srv "$bin" sessions --socket "$work/ours.sock" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["sessions"][0]["path"])')
    python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "up":
        print("pptpc0", e["address"], e["server_address"], "%.2f" % (e["setup_ms"] / 1000), sys.argv[2])
        break' "$work/ours-client.out" "$path"
    rm -f "$work/mppe-ours-key" "$work/mppe-ours-key.state"
    if [ "$mppe" = mppe ]; then
        python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "up":
        print(e["mppe_bits"], e["mppe_keys"]["send"])
        break' "$work/ours-client.out" >"$work/mppe-ours-key"
    fi
    # After `pin`: the daemon forwards on CPU 1 with srv's devices.
    if ps -eo comm= | grep -q '^napi/srv'; then
        pin_threads
    fi
}

ours_kclient_up() { # BIN XDP_MODE
    local out call_ids addr peer setup path
    out=$(ours_up "$1" "$2") || return 1
    read -r _ addr peer setup path <<<"$out"
    call_ids=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "up":
        print(e["call_id"], e["peer_call_id"])
        break' "$work/ours-client.out")
    # Freeze our client (its control connection stays open, so the daemon
    # keeps the call) and take its address and routes away.
    kill -STOP "$(cat "$work/ours-client.pid")"
    ip -n cli addr flush dev pptpc0
    ip -n cli link set pptpc0 down
    # shellcheck disable=SC2086
    set -- $call_ids
    ip netns exec cli setsid python3 "$share/kpptp.py" 198.19.1.2 "$1" 198.19.1.1 "$2" 32 "$addr" "$peer" \
        >"$work/kpptp-ours.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-ours.pid"
    if ! wait_for 15 grep -q ppp32 "$work/kpptp-ours.out"; then
        cat "$work/kpptp-ours.out" >&2
        return 1
    fi
    ip -n cli link set dev ppp32 mtu 1400
    ip -n cli route replace 198.19.4.0/24 dev ppp32
    # The kernel starts its GRE sequence numbers at 1, below those our
    # client used: the daemon's userspace path drops the first frames as
    # late until the sequence passes them. A burst of pings gets there.
    ip netns exec cli ping -q -c 40 -i 0.01 -W 1 "$peer" >/dev/null 2>&1 || true
    echo "ppp32 $addr $peer $setup $path"
}

kpptp_many_up() { # N [mppe]
    local n=$1 mppe=()
    [ "${2:-}" != mppe ] || mppe=(--mppe)
    modules
    # The client end first: with MPPE its decompressor starts on the CCP
    # Configure-Ack the server end sends as it comes up (kpptp.py).
    ip netns exec cli setsid python3 "$share/kpptp.py" "${mppe[@]}" 198.19.6.2 3000 198.19.6.1 1000 31 198.19.16.10 198.19.3.1 \
        >"$work/kpptp-cli.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-cli.pid"
    if ! wait_for 15 grep -q ppp31 "$work/kpptp-cli.out"; then
        cat "$work"/kpptp-*.out >&2
        return 1
    fi
    ip netns exec srv setsid python3 "$share/kpptp.py" --many "$n" "${mppe[@]}" 198.19.6.1 198.19.6.2 198.19.3.1 1000 3000 \
        "$work/sessions-kpptp" >"$work/kpptp-srv.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-srv.pid"
    if ! wait_for $((30 + n / 4)) grep -q "^up " "$work/kpptp-srv.out"; then
        cat "$work"/kpptp-*.out >&2
        return 1
    fi
    ip -n cli link set dev ppp31 mtu 1400
    echo "up $n"
}

# CPU 0 generates and sinks, CPU 1 forwards (two vCPUs):
# - every process started from here on runs on CPU 0 (the agent, PID 1, is
#   pinned and its children inherit that), and so do the devices' IRQs
#   (virtio: the share and eth0; the veths have none);
# - the veths take their frames in NAPI (GRO on: a veth without NAPI
#   hands them to the backlog of the sending CPU, or RPS's), threaded NAPI
#   (a kthread per device, pinned: srv's on CPU 1, cli's and lan's on
#   CPU 0; in softirq NAPI a veth's frames would be processed on
#   the CPU that sent them);
# - TSO off on the veths: a veth hands a frame from a sender with TSO on
#   to the receiver's NAPI only if the receiver forwards UDP with GRO
#   (veth_skb_is_eligible_for_gro), and otherwise to the backlog of the
#   sending CPU, past NAPI and native XDP alike;
# - RPS off (topo turns it on): the NAPI thread already runs on the
#   right CPU, and RPS to that same CPU would only add a trip through its
#   backlog; XPS is moot (a veth has one transmit queue);
# - our daemon's threads on CPU 1 (pin_threads, run before each measure).
pin() {
    [ "$(nproc --all)" -ge 2 ] || { echo "lab.sh: pinning needs 2 CPUs, not $(nproc --all)" >&2; return 1; }
    taskset -a -p -c 0 1 >/dev/null
    taskset -p -c 0 $$ >/dev/null
    local f ns dev
    for f in /proc/irq/*/smp_affinity_list; do
        echo 0 >"$f" 2>/dev/null || true
    done
    for f in srv:srv0 srv:srv1 cli:cli0 lan:lan0 srv:srv2 srv:srv3 cli:cli2 lan:lan2; do
        IFS=: read -r ns dev <<<"$f"
        ip netns exec "$ns" ethtool -K "$dev" gro on tso off >/dev/null
        ip netns exec "$ns" sh -c "echo 0 > /sys/class/net/$dev/queues/rx-0/rps_cpus && echo 1 > /sys/class/net/$dev/threaded"
    done
    pin_threads
}

pin_threads() {
    local pid comm
    while read -r pid comm; do
        case $comm in
        napi/srv*) taskset -p -c 1 "$pid" >/dev/null ;;
        napi/*) taskset -p -c 0 "$pid" >/dev/null ;;
        esac
    done < <(ps -eo pid=,comm=)
    if [ -f "$work/ours-daemon.pid" ]; then
        taskset -a -p -c 1 "$(cat "$work/ours-daemon.pid")" >/dev/null
    fi
}

# srv's neighbours, permanent: during a run the sink drops everything it
# receives, ARP included, so an entry that went stale (the phases last
# minutes) could not be resolved again, and srv dropped every packet
# towards that sink while doing all the work before it. That was the
# "runs that delivered nothing" of earlier guest comparisons (only later
# in a run, on every kind of path, one link at a time).
neighbours() {
    local entry addr dev ns peer
    for entry in 198.19.1.2:srv0:cli:cli0 198.19.6.2:srv2:cli:cli2 \
        198.19.4.2:srv1:lan:lan0 198.19.7.2:srv3:lan:lan2; do
        IFS=: read -r addr dev ns peer <<<"$entry"
        ip -n srv neigh replace "$addr" dev "$dev" nud permanent \
            lladdr "$(ip netns exec "$ns" cat "/sys/class/net/$peer/address")"
    done
}

# Where frames were lost along the generator's path (lab.sh
# measure-drops): the link's four veths (DEVS: NS:DEV words) and, on link
# 2, srv's PPP units, one "NS:DEV:COUNTER VALUE" line per counter: the
# device's rx_dropped, tx_dropped and rx_errors (a socket buffer the
# peer's full ring refused counts in tx_dropped; a frame ppp_mppe could
# not decrypt in its unit's rx_errors), and from `ethtool -S` its queues'
# drops and errors (an XDP frame the peer's full ring refused counts in
# tx_queue_0_xdp_xmit_errors of the device it was redirected to: cli0 for
# the relay's frames into srv0, srv1 for the server's into lan0;
# rx_queue_0_xdp_drops: XDP_DROP). One shell per namespace: every fork
# costs tens of milliseconds under TCG.
drop_counters() { # DEVS...
    local ns devs
    for ns in cli srv lan; do
        devs=$(printf '%s\n' "$@" | sed -n "s/^$ns://p" | tr '\n' ' ')
        # Link 2 carries kernel PPTP: its units too (a glob, expanded there).
        [ "$ns" != srv ] || [ "$1" != cli:cli2 ] || devs="$devs ppp*"
        [ -n "${devs// /}" ] || continue
        # shellcheck disable=SC2016
        ip netns exec "$ns" sh -c '
            cd /sys/class/net || exit
            for dev in $0; do
                [ -e "$dev/statistics/rx_dropped" ] || continue
                for c in rx_dropped tx_dropped rx_errors; do
                    echo "$dev:$c $(cat "$dev/statistics/$c")"
                done
                case $dev in ppp*) continue ;; esac
                ethtool -S "$dev" 2>/dev/null |
                    awk -v d="$dev" '\''$1 ~ /(drop|err)/ { sub(/:$/, "", $1); print d ":" $1, $2 }'\''
            done' "$devs" | sed "s/^/$ns:/"
    done
}

# The counters of drop_counters that moved between two snapshots, on one
# line: "drops: NS:DEV:COUNTER=N ..." ("drops: none" when none did).
drop_line() { # BEFORE AFTER
    awk 'NR == FNR { before[$1] = $2; next }
         $2 - before[$1] > 0 { out = out " " $1 "=" ($2 - before[$1]) }
         END { print "drops:" (out == "" ? " none" : out) }' "$1" "$2"
}

measure() { # LINK DIR SIZE SECONDS RUNS SEQ_BASE GEN SESSIONS [PEER,SERVER]
    local link=$1 dir=$2 size=$3 secs=$4 runs=$5 seq=$6 gen=$7 sessions=$8 gre=${9:-}
    local from via sink mac lan_host extra=()
    taskset -p -c 0 $$ >/dev/null
    case $link:$dir in
    1:up) from=cli:cli0 via=srv:srv0 sink=lan:lan0 ;;
    1:down) from=lan:lan0 via=srv:srv1 sink=cli:cli0 ;;
    2:up) from=cli:cli2 via=srv:srv2 sink=lan:lan2 ;;
    2:down) from=lan:lan2 via=srv:srv3 sink=cli:cli2 ;;
    *) echo "lab.sh: the link is 1 or 2 and the direction up or down, not $link and $dir" >&2; return 2 ;;
    esac
    lan_host=198.19.$([ "$link" = 1 ] && echo 4 || echo 7).2
    # Through the relay when it is up (see relay_up).
    if [ -f "$work/relay.pids" ]; then
        from=${from%%:*}:gen$([ "$link" = 1 ] && echo 0 || echo 2)
    fi
    [ -z "$gre" ] || extra+=(--gre "$gre")
    # A fixed offered rate for every path (xtask interop --bench --pps).
    [ -z "${LOADGEN_PPS:-}" ] || extra+=(--pps "$LOADGEN_PPS")
    [ ! -f "$work/ours-daemon.pid" ] || extra+=(--daemon-pid "$(cat "$work/ours-daemon.pid")")
    # The generator from tmpfs: loading it over 9p takes seconds.
    cmp -s "$gen" "$work/loadgen" || cp "$gen" "$work/loadgen"
    if [ -n "${MPPE_KEY:-}" ]; then
        # The MPPE sender (pptp-lab, which has the cipher) from tmpfs too.
        cmp -s "$(cat "$work/lab-path")" "$work/pptp-lab" || cp "$(cat "$work/lab-path")" "$work/pptp-lab"
        extra+=(--mppe "$MPPE_KEY" --pptp-lab "$work/pptp-lab")
    fi
    pin_threads
    mac=$(ip netns exec "${via%%:*}" cat "/sys/class/net/${via#*:}/address")
    local sns=${sink%%:*} sif=${sink#*:}
    ip netns exec "$sns" tc qdisc add dev "$sif" clsact
    ip netns exec "$sns" tc filter add dev "$sif" ingress matchall action drop
    neighbours
    local devs
    devs=$([ "$link" = 1 ] && echo cli:cli0 srv:srv0 srv:srv1 lan:lan0 || echo cli:cli2 srv:srv2 srv:srv3 lan:lan2)
    # shellcheck disable=SC2086
    [ -z "${DROPS:-}" ] || drop_counters $devs >"$work/drops.before"
    # Plain XDP routing (xtask interop --bench): `pptp-lab route` on srv's
    # two veths of the link for this run only (kernel PPTP shares link 2
    # and must not pay for a program).
    local route_pid=
    if [ -n "${XDP_ROUTE:-}" ]; then
        local route_out=$work/route.out
        # shellcheck disable=SC2046
        ip netns exec srv setsid "$(cat "$work/lab-path")" route \
            $([ "$link" = 1 ] && echo --iface srv0 --iface srv1 || echo --iface srv2 --iface srv3) \
            >"$route_out" 2>&1 </dev/null &
        route_pid=$!
        if ! wait_for 60 grep -q " up" "$route_out"; then
            cat "$route_out" >&2
            kill "$route_pid" 2>/dev/null || true
            ip netns exec "$sns" tc qdisc del dev "$sif" clsact
            return 1
        fi
    fi
    # Only for measure-bpf: the statistics' clock reads would be in the
    # forwarding CPU of the XDP paths alone.
    [ -z "${BPF_STATS:-}" ] || sysctl -qw kernel.bpf_stats_enabled=1
    local status=0
    # shellcheck disable=SC2086
    ${PERF_WRAP:-} ip netns exec "${from%%:*}" taskset -c 0 "$work/loadgen" guest loadgen --iface "${from#*:}" --dst-mac "$mac" \
        --sessions "$sessions" --lan-host "$lan_host" --dir "$dir" --size "$size" --seconds "$secs" \
        --runs "$runs" --seq-base "$seq" --sink "$sink" "${extra[@]}" || status=$?
    sysctl -qw kernel.bpf_stats_enabled=0
    if [ -n "${DROPS:-}" ]; then
        # shellcheck disable=SC2086
        drop_counters $devs >"$work/drops.after"
        drop_line "$work/drops.before" "$work/drops.after"
    fi
    if [ -n "$route_pid" ]; then
        kill "$route_pid" 2>/dev/null || true
        wait "$route_pid" 2>/dev/null || true
    fi
    ip netns exec "$sns" tc qdisc del dev "$sif" clsact
    return $status
}

# A NIC driver hands the stack frames in pages it owns, and runs XDP on
# them in place. A veth whose peer transmits a socket buffer from a
# generator's AF_PACKET socket does neither: with an XDP program attached
# it copies each frame into a new page first (the buffer lacks the 256
# bytes of headroom XDP needs; a page the kernel zeroes first, as Debian
# kernels zero every page they allocate), and without one the stack takes
# the generator's buffer and allocates nothing. Both favour the stack's
# paths over XDP. So the generators send on veth pairs of their own
# (gen0 <-> gen1, gen2 <-> gen3, in cli and in lan), and a relay program on
# gen1 (gen3) redirects every frame into cli0 (cli2; lan0, lan2 in lan):
# srv's veths then receive XDP frames, on which an XDP program runs in
# place and around which the stack builds its buffer, as from a NIC. The
# copy into a page happens at gen1, on CPU 0 (the generator's).
relay_up() { # LAB
    local lab=$1 ns pair a b to
    # For measure's plain XDP routing (XDP_ROUTE).
    echo "$lab" >"$work/lab-path"
    for ns in cli lan; do
        for pair in 0:1:${ns}0 2:3:${ns}2; do
            IFS=: read -r a b to <<<"$pair"
            ip link add gen$a netns $ns type veth peer name gen$b netns $ns
            ip -n $ns link set gen$a up
            ip -n $ns link set gen$b up
            # A veth hands a frame from a sender with TSO to the backlog of
            # the sending CPU, past NAPI and XDP (see pin).
            ip netns exec $ns ethtool -K gen$a tso off >/dev/null
            ip netns exec $ns setsid "$lab" relay --from gen$b --to "$to" \
                >"$work/relay-$ns-$b.out" 2>&1 </dev/null &
            echo $! >>"$work/relay.pids"
            if ! wait_for 20 grep -q " up" "$work/relay-$ns-$b.out"; then
                cat "$work/relay-$ns-$b.out" >&2
                return 1
            fi
        done
    done
}

relay_down() {
    local pid
    [ -f "$work/relay.pids" ] || return 0
    while read -r pid; do
        kill "$pid" 2>/dev/null || true
    done <"$work/relay.pids"
    rm -f "$work/relay.pids"
}

# One generator run with CPU 1 (the forwarding) sampled by perf: the
# kernel's and the BPF programs' symbols (bpf_jit_kallsyms), self time per
# symbol, then the call chains into the hottest ones.
profile() { # LINK DIR SIZE SECONDS 1 SEQ_BASE GEN SESSIONS [PEER,SERVER]
    sysctl -qw net.core.bpf_jit_kallsyms=1 kernel.kptr_restrict=0 kernel.perf_event_paranoid=-1
    rm -f "$work/perf.data"
    PERF_WRAP="perf record -q -C 1 -g -e cpu-clock -F 1999 -o $work/perf.data --" \
        measure "$1" "$2" "$3" "$4" 1 "$6" "$7" "$8" "${9:-}"
    echo "== self"
    perf report -i "$work/perf.data" --stdio --no-children --sort sym --percent-limit 0.7 -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -70
    echo "== chains"
    perf report -i "$work/perf.data" --stdio --no-children --sort sym --percent-limit 4 -g caller,2,callee,function,percent 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -200
}

ours_down() {
    local f pid
    for f in "$work/kpptp-ours.pid" "$work/ours-client.pid" "$work/ours-daemon.pid"; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        wait_for 15 sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

capture_start() { # NS IFACE
    rm -f "$work/capture.pcap"
    # -Z root: tcpdump would otherwise write the file as user tcpdump.
    local cmd=(setsid tcpdump -i "$2" -s 0 -U -Z root -w "$work/capture.pcap")
    # Not through in_ns: $! must be tcpdump's own pid (setsid and ip
    # netns exec exec it), not a subshell's.
    if [ "$1" = - ]; then
        "${cmd[@]}" >"$work/tcpdump.log" 2>&1 </dev/null &
    else
        ip netns exec "$1" "${cmd[@]}" >"$work/tcpdump.log" 2>&1 </dev/null &
    fi
    echo $! >"$work/tcpdump.pid"
    if ! wait_for 20 grep -q "listening on" "$work/tcpdump.log"; then
        cat "$work/tcpdump.log" >&2
        return 1
    fi
}

capture_stop() { # [DEST]
    local pid
    pid=$(cat "$work/tcpdump.pid" 2>/dev/null) || return 0
    # SIGTERM: a background job of a script starts with SIGINT ignored.
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 20 sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    rm -f "$work/tcpdump.pid"
    if [ -n "${1:-}" ]; then
        cp "$work/capture.pcap" "$1"
        grep -E "packets (captured|received|dropped)" "$work/tcpdump.log" || true
    fi
}

diagnose() {
    local f ns
    for f in "$work"/kpptp-*.out; do
        [ -e "$f" ] || continue
        echo "--- $f"
        tail -n 20 "$f"
    done
    for ns in cli srv lan; do
        echo "--- $ns"
        ip -n "$ns" -br addr || true
        ip -n "$ns" route | head -n 40 || true
        ip -n "$ns" neigh | head -n 40 || true
        ip -n "$ns" -s link show type ppp 2>/dev/null | head -n 24 || true
    done
    for f in cli:cli2 srv:srv2 srv:srv3 lan:lan2; do
        echo "--- ${f%%:*} ${f#*:}"
        ip -n "${f%%:*}" -s link show dev "${f#*:}" || true
        tc -n "${f%%:*}" filter show dev "${f#*:}" ingress || true
    done
    echo "--- cli -> srv's unit through the tunnel (198.19.3.1)"
    ip netns exec cli ping -c 1 -W 2 198.19.3.1 || true
    echo "--- srv -> lan (198.19.7.2)"
    ip netns exec srv ping -c 1 -W 2 198.19.7.2 || true
}

down() {
    capture_stop || true
    ours_down || true
    relay_down || true
    pptpd_down || true
    kpptp_down || true
    pkill -x iperf3 2>/dev/null || true
    ip netns del srv 2>/dev/null || true
    ip netns del cli 2>/dev/null || true
    ip netns del lan 2>/dev/null || true
    taskset -a -p -c 0-$(($(nproc --all) - 1)) 1 >/dev/null 2>&1 || true
}

case ${1:-} in
topo) topo ;;
client-up) client_up "$2" "$3" "$4" "$5" ;;
client-down) client_down "$2" ;;
pptpd-up) pptpd_up "$2" ;;
pptpd-down) pptpd_down ;;
kpptp-up) kpptp_up ;;
kpptp-down) kpptp_down ;;
diagnose) diagnose ;;
kpptp-many-up) kpptp_many_up "$2" "${3:-}" ;;
pin) pin ;;
relay-up) relay_up "$2" ;;
measure) measure "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-}" ;;
measure-bpf) BPF_STATS=1 measure "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-}" ;;
measure-drops) DROPS=1 measure "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-}" ;;
profile) profile "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-}" ;;
iperf) iperf "$2" "$3" "$4" "$5" "${6:-up}" ;;
iperf-client) iperf_client "$2" "$3" "$4" "$5" ;;
lan-up) lan_up ;;
ours-up) ours_up "$2" "$3" "${4:-}" ;;
ours-kclient-up) ours_kclient_up "$2" "$3" ;;
ours-down) ours_down ;;
route) in_ns "$2" ip route replace "$3" dev "$4" ;;
capture-start) capture_start "$2" "$3" ;;
capture-stop) capture_stop "${2:-}" ;;
down) down ;;
*)
    sed -n '2,/^set /p' "$0" | sed '$d' >&2
    exit 2
    ;;
esac
