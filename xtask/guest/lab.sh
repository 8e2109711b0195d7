#!/bin/bash
# Test topologies inside the pptp-xdp guest, driven by `cargo xtask guest`.
#
#   lab.sh topo                       namespaces srv and cli joined by a veth:
#                                     srv0 198.19.1.1/24 <-> cli0 198.19.1.2/24,
#                                     RPS on both ends
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
#   lab.sh kpptp-up                   kernel PPTP on both ends, no control
#                                     connection: ppp30 198.19.3.1 in srv,
#                                     ppp31 198.19.3.2 in cli
#   lab.sh lan-up                     after topo: namespace lan behind srv,
#                                     srv1 198.19.4.1/24 <-> lan0 198.19.4.2/24;
#                                     srv forwards, lan routes 198.19.0.0/16 via
#                                     srv; GRO on cli0 and lan0 (a veth takes
#                                     frames XDP redirects into it only with
#                                     NAPI on at its peer: an XDP program or
#                                     GRO) and transmit checksums off on lan0
#                                     (XDP on srv1 encapsulates what lan0 sends)
#   lab.sh ours-up BIN XDP_MODE       pptp-daemon BIN in srv (WAN srv0, LAN srv1,
#                                     dataplane.xdp_mode XDP_MODE, tunnel
#                                     198.19.5.1, clients from 198.19.5.2) and
#                                     our client (BIN client) in cli routing
#                                     198.19.4.0/24; prints "pptpc0 LOCAL PEER
#                                     SECONDS PATH" (PATH: the session's data
#                                     path in the daemon, xdp or userspace)
#   lab.sh ours-kclient-up BIN XDP_MODE
#                                     ours-up, then kernel PPTP takes over the
#                                     client's data path: our client is frozen
#                                     (SIGSTOP: its control connection stays)
#                                     and kpptp.py opens ppp32 with the call's
#                                     IDs and addresses; prints the same line
#                                     with ppp32 (LCP and control echoes are
#                                     off in the daemon: nobody answers them)
#   lab.sh ours-down                  stop them
#   lab.sh kpptp-many-up N            kernel PPTP with N sessions in srv, all in
#                                     one kpptp.py process (call IDs 1000..,
#                                     peers' 3000.., client addresses
#                                     198.19.16.10.. with a /32 route each, see
#                                     kpptp.py), session 0's client end in cli
#                                     (ppp31); writes /tmp/pxg/sessions-kpptp
#   lab.sh pin                        after lan-up: the generator and sinks on
#                                     CPU 0, srv's forwarding on CPU 1 (see pin())
#   lab.sh measure DIR SIZE SECONDS RUNS SEQ_BASE GEN SESSIONS [PEER,SERVER]
#                                     RUNS runs of the generator GEN (the xtask
#                                     binary: `xtask guest loadgen`) over the
#                                     sessions of the file SESSIONS; up: from
#                                     cli0 to a tc drop filter on lan0 (in
#                                     GRE from PEER to SERVER if given), down:
#                                     from lan0 to one on cli0; prints a line
#                                     per run (see xtask/src/guest/loadgen.rs)
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
    ip -n srv addr add 198.19.1.1/24 dev srv0
    ip -n cli addr add 198.19.1.2/24 dev cli0
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
    ip netns exec srv sh -c "echo $cpus > /sys/class/net/srv0/queues/rx-0/rps_cpus"
    ip netns exec cli sh -c "echo $cpus > /sys/class/net/cli0/queues/rx-0/rps_cpus"
    ip -n srv link set srv0 up
    ip -n cli link set cli0 up
    ip netns exec cli ping -c 1 -W 5 198.19.1.1 >/dev/null
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
    ip netns exec srv setsid python3 "$share/kpptp.py" 198.19.1.1 100 198.19.1.2 200 30 198.19.3.1 198.19.3.2 \
        >"$work/kpptp-srv.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-srv.pid"
    ip netns exec cli setsid python3 "$share/kpptp.py" 198.19.1.2 200 198.19.1.1 100 31 198.19.3.2 198.19.3.1 \
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
    ip -n srv addr add 198.19.4.1/24 dev srv1
    ip -n lan addr add 198.19.4.2/24 dev lan0
    ip -n lan link set lo up
    local cpus ns
    cpus=$(printf '%x' $(((1 << $(nproc --all)) - 1)))
    ip netns exec srv sh -c "echo $cpus > /sys/class/net/srv1/queues/rx-0/rps_cpus"
    ip netns exec lan sh -c "echo $cpus > /sys/class/net/lan0/queues/rx-0/rps_cpus"
    for ns in srv lan cli; do
        ip netns exec $ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    ip netns exec srv sysctl -qw net.ipv4.ip_forward=1
    ip netns exec lan ethtool -K lan0 gro on tx off >/dev/null
    ip netns exec cli ethtool -K cli0 gro on >/dev/null
    ip -n srv link set srv1 up
    ip -n lan link set lan0 up
    ip -n lan route add 198.19.0.0/16 via 198.19.4.1
    ip netns exec lan ping -c 1 -W 5 198.19.4.1 >/dev/null
}

# The guest comparison measures forwarding = "xdp" (the figures in the
# README); PXG_FORWARDING=stack measures the default mode instead.
ours_up() { # BIN XDP_MODE
    local bin=$1 mode=$2
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
        '[control]' \
        'echo_interval_secs = 600' >"$work/ours.toml"
    rm -f "$work/ours.sock"
    ip netns exec srv setsid "$bin" --config "$work/ours.toml" >"$work/ours-daemon.log" 2>&1 </dev/null &
    echo $! >"$work/ours-daemon.pid"
    if ! wait_for 20 ip netns exec srv "$bin" sessions --socket "$work/ours.sock"; then
        cat "$work/ours-daemon.log" >&2
        return 1
    fi
    ip netns exec cli setsid "$bin" client --server 198.19.1.1 --user pxguser --password pxgsecret \
        --route 198.19.4.0/24 >"$work/ours-client.out" 2>"$work/ours-client.log" </dev/null &
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

kpptp_many_up() { # N
    local n=$1
    modules
    ip netns exec srv setsid python3 "$share/kpptp.py" --many "$n" 198.19.1.1 198.19.1.2 198.19.3.1 1000 3000 \
        "$work/sessions-kpptp" >"$work/kpptp-srv.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-srv.pid"
    ip netns exec cli setsid python3 "$share/kpptp.py" 198.19.1.2 3000 198.19.1.1 1000 31 198.19.16.10 198.19.3.1 \
        >"$work/kpptp-cli.out" 2>&1 </dev/null &
    echo $! >"$work/kpptp-cli.pid"
    if ! wait_for $((30 + n / 4)) grep -q "^up " "$work/kpptp-srv.out" || ! wait_for 15 grep -q ppp31 "$work/kpptp-cli.out"; then
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
#   (a kthread per device, pinned: srv0's and srv1's on CPU 1, cli0's and
#   lan0's on CPU 0; in softirq NAPI a veth's frames would be processed on
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
    for f in srv:srv0 srv:srv1 cli:cli0 lan:lan0; do
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

measure() { # DIR SIZE SECONDS RUNS SEQ_BASE GEN SESSIONS [PEER,SERVER]
    local dir=$1 size=$2 secs=$3 runs=$4 seq=$5 gen=$6 sessions=$7 gre=${8:-}
    local from via sink mac extra=()
    taskset -p -c 0 $$ >/dev/null
    case $dir in
    up) from=cli:cli0 via=srv:srv0 sink=lan:lan0 ;;
    down) from=lan:lan0 via=srv:srv1 sink=cli:cli0 ;;
    *) echo "lab.sh: the direction is up or down, not $dir" >&2; return 2 ;;
    esac
    [ -z "$gre" ] || extra+=(--gre "$gre")
    [ ! -f "$work/ours-daemon.pid" ] || extra+=(--daemon-pid "$(cat "$work/ours-daemon.pid")")
    # The generator from tmpfs: loading it over 9p takes seconds.
    cmp -s "$gen" "$work/loadgen" || cp "$gen" "$work/loadgen"
    pin_threads
    mac=$(ip netns exec "${via%%:*}" cat "/sys/class/net/${via#*:}/address")
    local sns=${sink%%:*} sif=${sink#*:}
    ip netns exec "$sns" tc qdisc add dev "$sif" clsact
    ip netns exec "$sns" tc filter add dev "$sif" ingress matchall action drop
    sysctl -qw kernel.bpf_stats_enabled=1
    local status=0
    ip netns exec "${from%%:*}" taskset -c 0 "$work/loadgen" guest loadgen --iface "${from#*:}" --dst-mac "$mac" \
        --sessions "$sessions" --lan-host 198.19.4.2 --dir "$dir" --size "$size" --seconds "$secs" \
        --runs "$runs" --seq-base "$seq" --sink "$sink" "${extra[@]}" || status=$?
    sysctl -qw kernel.bpf_stats_enabled=0
    ip netns exec "$sns" tc qdisc del dev "$sif" clsact
    return $status
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

down() {
    capture_stop || true
    ours_down || true
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
kpptp-many-up) kpptp_many_up "$2" ;;
pin) pin ;;
measure) measure "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:-}" ;;
iperf) iperf "$2" "$3" "$4" "$5" "${6:-up}" ;;
iperf-client) iperf_client "$2" "$3" "$4" "$5" ;;
lan-up) lan_up ;;
ours-up) ours_up "$2" "$3" ;;
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
