"""OCI bundles: the ``config.json`` an OCI runtime (runc, crun) starts a container from.

See the runtime-spec's config.md; only what berth sets is written, the rest keeps the runtime's
defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the capabilities Docker grants by default
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()

    def to_spec(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


@dataclass(frozen=True)
class BundleSpec:
    """Everything berth decides about a container's process, as plain values."""

    container_id: str
    rootfs: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    hostname: str = ""
    #: network namespace to join; "" (:data:`~drivers.network.NEW_NETNS`) for a new one that the
    #: runtime creates, as the runtime-spec's empty path means; None shares the host's
    netns_path: str | None = None
    #: "private" (a new IPC namespace), "host", or the path of an IPC namespace to join
    ipc: str = "private"
    #: tmpfs, IPC and bind mounts, on top of the defaults (/proc, /dev, /dev/pts, /sys...)
    mounts: tuple[Mount, ...] = ()
    cgroups_path: str = ""
    #: the process's uid, gid and supplementary gids (the image's user, resolved at create)
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    extra_annotations: dict[str, str] = field(default_factory=dict)


def default_mounts() -> list[Mount]:
    return [
        Mount("/proc", "proc", "proc"),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ]


def config_for(spec: BundleSpec) -> dict[str, Any]:
    """The OCI runtime-spec document for ``spec``."""
    namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]
    if spec.netns_path:
        namespaces.append({"type": "network", "path": spec.netns_path})
    elif spec.netns_path is not None:
        # runc and crun bring lo up in a network namespace they create themselves
        namespaces.append({"type": "network"})
    if spec.ipc == "private":
        namespaces.append({"type": "ipc"})
    elif spec.ipc != "host":
        namespaces.append({"type": "ipc", "path": spec.ipc})
    capabilities = list(DEFAULT_CAPABILITIES)
    mounts = [m.to_spec() for m in default_mounts() + list(spec.mounts)]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": spec.uid, "gid": spec.gid,
                     **({"additionalGids": list(spec.additional_gids)}
                        if spec.additional_gids else {})},
            "args": list(spec.args),
            "env": list(spec.env),
            "cwd": spec.cwd,
            "capabilities": {k: capabilities for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": spec.rootfs, "readonly": False},
        # the UTS namespace is private: a hostname is needed even when the host network is shared
        "hostname": spec.hostname or spec.container_id[:12],
        "mounts": mounts,
        "annotations": {"org.berth.container-id": spec.container_id, **spec.extra_annotations},
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": spec.cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }


def write_bundle(bundle_dir: Path, spec: BundleSpec) -> Path:
    """Write ``config.json`` into ``bundle_dir`` atomically; returns the bundle directory."""
    bundle_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = bundle_dir / "config.json"
    partial = bundle_dir / "config.json.partial"
    partial.write_text(json.dumps(config_for(spec), indent=2))
    os.replace(partial, target)
    return bundle_dir
