"""What a test may leave on the host: nothing. The check looks only at resources named after the
containers the test's own database knows (its ``events`` outlive removal), so tests of other
berth instances on the same machine do not disturb it."""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path

from drivers.mounts import mounted_under
from drivers.network.bridge import list_veths, veth_name
from drivers.network.namespace import list_netns, netns_name


def mounts_under(root: Path) -> list[str]:
    return mounted_under(str(root))


def runtime_containers(root: Path) -> list[str]:
    state = root / "runtime"
    return sorted(p.name for p in state.iterdir()) if state.is_dir() else []


def bundles(root: Path) -> list[str]:
    """Containers with an OCI bundle on disk: only running ones should have one."""
    containers = root / "containers"
    if not containers.is_dir():
        return []
    return sorted(p.name for p in containers.iterdir() if (p / "bundle").exists())


#: what the command line of a monitor (conmon), its exit command or berth's exit hook holds
MONITOR_MARKERS = (b"conmon", b"exit_gate.py", b"fsm.exit_hook")


def processes_for(root: Path, container_ids: Collection[str]) -> list[int]:
    """Monitors and exit hooks still alive for this root's containers."""
    markers = [str(root).encode(), *(c.encode() for c in container_ids)]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                text = cmdline.read()
        except OSError:
            continue
        if any(m in text for m in MONITOR_MARKERS) and any(m in text for m in markers):
            found.append(int(entry))
    return found


def leaks(root: Path, container_ids: Collection[str], settle_seconds: float = 20.0
          ) -> dict[str, list[str]]:
    # an exit hook may still be closing down after its transition committed: wait for it,
    # with a deadline, rather than sleeping and hoping
    deadline = time.monotonic() + settle_seconds
    while processes_for(root, container_ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    netns = {netns_name(c) for c in container_ids}
    veths = {veth_name(c) for c in container_ids}
    found = {
        "netns": [n for n in list_netns() if n in netns],
        "veths": [v for v in list_veths() if v in veths],
        "processes": [str(p) for p in processes_for(root, container_ids)],
        "mounts": mounts_under(root),
        "runtime containers": runtime_containers(root),
        "bundles": bundles(root),
    }
    return {kind: items for kind, items in found.items() if items}


def assert_nothing_leaked(root: Path, container_ids: Collection[str]) -> None:
    found = leaks(root, container_ids)
    assert not found, f"left on the host: {found}"
