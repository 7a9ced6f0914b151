"""What a test may leave on the host: nothing. A snapshot of berth's host resources before a
test, compared after it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.network.bridge import list_veths
from drivers.network.namespace import list_netns


def mounts_under(root: Path) -> list[str]:
    prefix = str(root)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(prefix)]


def runtime_containers(root: Path) -> list[str]:
    state = root / "runtime"
    return sorted(p.name for p in state.iterdir()) if state.is_dir() else []


def bundles(root: Path) -> list[str]:
    """Containers with an OCI bundle on disk: only running ones should have one."""
    containers = root / "containers"
    if not containers.is_dir():
        return []
    return sorted(p.name for p in containers.iterdir() if (p / "bundle").exists())


def berth_processes() -> list[int]:
    """Shims still alive (their command line names the shim module)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                text = cmdline.read()
        except OSError:
            continue
        if b"drivers.runtime.shim" in text or b"fsm.exit_hook" in text:
            found.append(int(entry))
    return found


@dataclass(frozen=True)
class HostSnapshot:
    netns: frozenset[str]
    veths: frozenset[str]
    processes: frozenset[int]

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(frozenset(list_netns()), frozenset(list_veths()),
                   frozenset(berth_processes()))

    def leaks(self, root: Path, settle_seconds: float = 20.0) -> dict[str, list[str]]:
        # an exit hook may still be closing down after its transition committed: wait for it,
        # with a deadline, rather than sleeping and hoping
        deadline = time.monotonic() + settle_seconds
        while True:
            now = HostSnapshot.take()
            if not (now.processes - self.processes) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        found = {
            "netns": sorted(now.netns - self.netns),
            "veths": sorted(now.veths - self.veths),
            "processes": [str(p) for p in sorted(now.processes - self.processes)],
            "mounts": mounts_under(root),
            "runtime containers": runtime_containers(root),
            "bundles": bundles(root),
        }
        return {kind: items for kind, items in found.items() if items}

    def assert_nothing_leaked(self, root: Path) -> None:
        leaks = self.leaks(root)
        assert not leaks, f"left on the host: {leaks}"
