#!/bin/sh
# Smoke test of device-mapper thin provisioning inside the test VM:
#   python tests/vm/run.py -- sh tests/vm/smoke_dm.sh
# loop file -> thin-pool -> thin volume -> ext4 -> write/read a file -> tear everything down.
set -eu

dir=$(mktemp -d /tmp/smoke-dm.XXXXXX)
pool=smoke-pool-$$
thin=smoke-thin0-$$
data_loop= meta_loop=

cleanup() {
    set +e
    mountpoint -q "$dir/mnt" && umount "$dir/mnt"
    [ -e "/dev/mapper/$thin" ] && dmsetup remove "$thin"
    [ -e "/dev/mapper/$pool" ] && dmsetup remove "$pool"
    [ -n "$data_loop" ] && losetup -d "$data_loop"
    [ -n "$meta_loop" ] && losetup -d "$meta_loop"
    rm -rf "$dir"
}
trap cleanup EXIT

echo "kernel $(uname -r); DM_DISABLE_UDEV=${DM_DISABLE_UDEV:-unset}"
truncate -s 200M "$dir/data"
truncate -s 16M "$dir/meta"
data_loop=$(losetup -f --show "$dir/data")
meta_loop=$(losetup -f --show "$dir/meta")
dd if=/dev/zero of="$meta_loop" bs=4096 count=1 status=none  # fresh pool metadata

sectors=$(blockdev --getsz "$data_loop")
dmsetup create "$pool" --table "0 $sectors thin-pool $meta_loop $data_loop 128 32768 1 skip_block_zeroing"
dmsetup message "$pool" 0 "create_thin 0"
dmsetup create "$thin" --table "0 204800 thin /dev/mapper/$pool 0"
test -b "/dev/mapper/$thin" || { echo "no /dev/mapper/$thin"; exit 1; }

mkfs.ext4 -q -F "/dev/mapper/$thin"
mkdir "$dir/mnt"
mount "/dev/mapper/$thin" "$dir/mnt"
echo hello-thin >"$dir/mnt/file"
sync
umount "$dir/mnt"
mount -o ro "/dev/mapper/$thin" "$dir/mnt"
test "$(cat "$dir/mnt/file")" = hello-thin
umount "$dir/mnt"

dmsetup status "$pool"
dmsetup remove "$thin"
dmsetup remove "$pool"
losetup -d "$data_loop" && data_loop=
losetup -d "$meta_loop" && meta_loop=
echo "smoke_dm: OK"
