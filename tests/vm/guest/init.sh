#!/bin/busybox sh
# The initramfs /init: build the guest's root and exec guest/runner.py (PID 1) inside it.
#
# Everything runs here with the static busybox on purpose: under TCG each exec of a dynamically
# linked host binary costs ~0.1-0.3 s, a busybox applet ~0.04 s.
#
#   /            overlay: host / over 9p (read-only lower) + tmpfs upper (guest RAM)
#   /run/berth-vm  the writable "xfer" 9p share: request in, exit code out
#   /run /dev/shm  fresh tmpfs (/tmp, /var/tmp: the host's, through the overlay);  /dev devtmpfs + devpts;  cgroups as on the host

/bin/busybox --install -s /bin
export PATH=/bin
NEW=/newroot
SHARE=$NEW/run/berth-vm

warn() { echo "berth-vm init: $*" >/dev/console; }
fail() {
    warn "$*"
    echo "init: $*" >"$SHARE/error" 2>/dev/null
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
grep -q "loglevel=7" /proc/cmdline && PS4='+ [$(cut -d" " -f1 /proc/uptime $NEW/proc/uptime 2>/dev/null)] ' && set -x

# virtio, 9p, overlay, loop, dm-thin (+ dependencies), in load order (see harness.py).
while read -r module; do
    insmod "/modules/$module" || warn "insmod $module"
done </modules/order

# The root: host / read-only (cache=loose: the host tree is treated as frozen during the run).
NINEP=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot /lower || fail "mount 9p hostroot"
mount -t tmpfs -o mode=755 rw /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay $NEW ||
    fail "mount overlay"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs $NEW/run || fail "mount /run"
mkdir -p $SHARE
mount -t 9p -o "$NINEP" xfer $SHARE || fail "mount 9p xfer"
. $SHARE/vm.env

for dir in dev proc sys; do
    mount --move "/$dir" "$NEW/$dir" || fail "move /$dir"
done
# /tmp and /var/tmp stay the host's, seen through the overlay (writes still land in guest RAM):
# a checkout under /tmp, where CI may clone, must be visible as the command's cwd
[ -L $NEW/var/run ] || mount --bind $NEW/run $NEW/var/run

mkdir -p $NEW/dev/pts $NEW/dev/shm $NEW/dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $NEW/dev/pts || fail "mount devpts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $NEW/dev/shm || fail "mount /dev/shm"
mount -t mqueue mqueue $NEW/dev/mqueue || warn "mount mqueue"
ln -sf pts/ptmx $NEW/dev/ptmx
ln -sfn /proc/self/fd $NEW/dev/fd
ln -sf /proc/self/fd/0 $NEW/dev/stdin
ln -sf /proc/self/fd/1 $NEW/dev/stdout
ln -sf /proc/self/fd/2 $NEW/dev/stderr

# cgroups: the host's layout, written by the harness as "fstype mountpoint options" lines.
while read -r fstype target options; do
    mkdir -p "$NEW$target"
    mount -t "$fstype" -o "$options" "$fstype" "$NEW$target" || warn "mount $fstype $target ($options)"
done <$SHARE/cgroups

ip link set lo up || warn "ip link set lo up"
hostname berth-vm

exec switch_root $NEW "$BERTH_VM_PYTHON" -I -S /run/berth-vm/runner.py
fail "switch_root to $BERTH_VM_PYTHON"
