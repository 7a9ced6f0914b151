"""Named network namespaces (``ip netns``), the way the ``ip`` tool keeps them: a bind mount
at ``/run/netns/NAME``, so that they outlive the process that made them."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.commands import run
from drivers.errors import HostError

NETNS_DIR = Path("/run/netns")
#: every namespace berth makes starts with this, so ``berth gc`` can tell its own from others'
PREFIX = "berth-"


def netns_name(container_id: str) -> str:
    # interface and namespace names stay short; 16 hex digits of a random id do not collide
    return PREFIX + container_id[:16]


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def delete_netns(name: str) -> None:
    """Delete the namespace; one that does not exist is already deleted."""
    if not netns_exists(name):
        return
    try:
        run(["ip", "netns", "delete", name], what=f"cannot delete network namespace {name}")
    except HostError:
        if netns_exists(name):
            raise


def list_netns() -> list[str]:
    """Names of berth's namespaces on this host."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []
