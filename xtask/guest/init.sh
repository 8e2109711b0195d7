#!/bin/sh
# PID 1 of the pptp-xdp test guest (written into the image by `cargo xtask
# guest build`). No init system: nothing starts unless the host asks, so
# pptpd and friends never run in the guest's own namespace by surprise.
# It mounts the basics and the host's 9p share, then hands over to the
# agent script the host puts in the share at each boot.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
mount -o remount,rw /
mountpoint -q /run || mount -t tmpfs tmpfs /run
mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /var/run/netns
hostname pxg
# pppd resolves its own host name; with no answer it waits for DNS. There
# is no DNS here (nothing leaves the guest's links).
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpxg\n' > /etc/hosts
: > /etc/resolv.conf
ip link set lo up
modprobe -a virtio_net 9pnet_virtio 9p
mkdir -p /mnt/host
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /mnt/host \
    && [ -f /mnt/host/agent.sh ]; then
    exec /bin/bash /mnt/host/agent.sh
fi
echo "pxg-init: no agent in the host share; powering off" >&2
echo o > /proc/sysrq-trigger
sleep 10
