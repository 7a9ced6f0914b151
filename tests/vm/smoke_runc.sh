#!/bin/sh
# Smoke test of runc inside the test VM (cgroups, namespaces, pivot_root):
#   python tests/vm/run.py -- sh tests/vm/smoke_runc.sh
# Builds a busybox rootfs in /tmp, `runc spec`, runs `/bin/sh -c "echo ok"` in it.
set -eu

bundle=$(mktemp -d /tmp/smoke-runc.XXXXXX)
id=smoke-$$
trap 'runc delete -f "$id" >/dev/null 2>&1; rm -rf "$bundle"' EXIT

mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
chroot "$bundle/rootfs" /bin/busybox --install -s /bin  # links to /bin/busybox, not to a host path
cd "$bundle"
runc spec
python3 - <<'PY'
import json
with open("config.json") as f:
    config = json.load(f)
config["process"]["terminal"] = False
config["process"]["args"] = ["/bin/sh", "-c", "echo ok"]
with open("config.json", "w") as f:
    json.dump(config, f)
PY
out=$(runc run "$id")
echo "container said: $out"
test "$out" = ok
echo "smoke_runc: OK"
