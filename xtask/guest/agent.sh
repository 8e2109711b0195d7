#!/bin/bash
# Command agent of the pptp-xdp test guest, started by /sbin/pxg-init from
# the host's 9p share. The host drops <id>.cmd (the command) and then
# <id>.sh (how to run it) in cmd/; the agent runs each <id>.sh in the
# background and writes <id>.out, <id>.err and, last, <id>.rc (exit code).
share=/mnt/host
cmd="$share/cmd"
mkdir -p "$cmd"
echo 1 > /proc/sys/kernel/sysrq
# A pipe nobody writes: `read -t` on it sleeps without forking a process
# (the agent polls the share; forks are costly on TCG and skew benchmarks).
exec {nap}<> <(:)
echo "$(uname -r)" > "$share/ready.tmp" && mv "$share/ready.tmp" "$share/ready"
while :; do
    for f in "$cmd"/*.sh; do
        [ -e "$f" ] || continue
        id="${f%.sh}"
        mv "$f" "$id.run" || continue
        (
            cd /root
            bash "$id.run" </dev/null >"$id.out" 2>"$id.err"
            echo $? >"$id.rc.tmp"
            mv "$id.rc.tmp" "$id.rc"
        ) &
    done
    read -r -t 0.2 -u "$nap" || true
done
