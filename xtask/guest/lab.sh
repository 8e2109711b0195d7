#!/bin/bash
# Test topologies inside the pptp-xdp guest, driven by `cargo xtask guest`.
#
#   lab.sh topo                       namespaces srv and cli joined by a veth:
#                                     srv0 198.19.1.1/24 <-> cli0 198.19.1.2/24,
#                                     RPS on both ends
#   lab.sh client-up NS SERVER MPPE UNIT
#                                     pptp-linux + pppd in NS ("-": the guest's
#                                     own namespace) calling SERVER; MPPE is
#                                     "mppe" (require-mppe-128) or "none";
#                                     prints "pppUNIT LOCAL PEER SECONDS" once
#                                     IPCP is up (SECONDS: call to IPCP up)
#   lab.sh client-down UNIT           hang up that client
#   lab.sh pptpd-up MPPE              pptpd in srv (198.19.2.1, clients from
#                                     198.19.2.2); then client-up cli 198.19.1.1
#   lab.sh kpptp-up                   kernel PPTP on both ends, no control
#                                     connection: ppp30 198.19.3.1 in srv,
#                                     ppp31 198.19.3.2 in cli
#   lab.sh iperf SRV_NS ADDR CLI_NS SECONDS
#                                     iperf3 TCP from CLI_NS to ADDR in SRV_NS;
#                                     prints "MBITS RETRANSMITS" (received rate
#                                     in Mbit/s, TCP retransmissions)
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
    modprobe -a veth ppp_generic ppp_async ppp_mppe pptp
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
    none) printf 'nomppe\nnoccp\n' ;;
    *) echo "lab.sh: MPPE is mppe or none, not $1" >&2; return 2 ;;
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
    cpus=$(printf '%x' $(((1 << $(nproc)) - 1)))
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
    local f
    for f in "$work"/kpptp-*.pid; do
        [ -e "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
}

iperf() { # SRV_NS ADDR CLI_NS SECONDS
    local srv=$1 addr=$2 cli=$3 secs=$4 json=$work/iperf.json
    in_ns "$srv" iperf3 -s -1 -D -B "$addr" -I "$work/iperf-s.pid"
    local tries=0
    until in_ns "$cli" iperf3 -c "$addr" -t "$secs" -J >"$json" 2>&1; do
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

down() {
    pptpd_down || true
    kpptp_down || true
    pkill -x iperf3 2>/dev/null || true
    ip netns del srv 2>/dev/null || true
    ip netns del cli 2>/dev/null || true
}

case ${1:-} in
topo) topo ;;
client-up) client_up "$2" "$3" "$4" "$5" ;;
client-down) client_down "$2" ;;
pptpd-up) pptpd_up "$2" ;;
pptpd-down) pptpd_down ;;
kpptp-up) kpptp_up ;;
kpptp-down) kpptp_down ;;
iperf) iperf "$2" "$3" "$4" "$5" ;;
down) down ;;
*)
    sed -n '2,/^set /p' "$0" | sed '$d' >&2
    exit 2
    ;;
esac
