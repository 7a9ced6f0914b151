"""Who is driving an in-flight container: ``node:pid:start-time``.

The process start time (clock ticks since boot, from ``/proc/PID/stat``) makes the identity
unique even when the pid is reused, so recovery on the same node can tell at once that an owner
has died, without waiting for its lease to expire.
"""

from __future__ import annotations

import os
from functools import cache


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); None if it is not running (a zombie has
    ended: its parent just has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = text[text.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@cache
def _this_process(pid: int) -> str:
    return f"{pid}:{process_start_ticks(pid)}"


def owner_id(node: str) -> str:
    # keyed by pid so that a forked child gets its own identity
    return f"{node}:{_this_process(os.getpid())}"


def owner_is_alive(owner: str, node: str) -> bool | None:
    """Whether the owner process still runs: ``None`` when it is on another node (unknowable)."""
    owner_node, _, rest = owner.rpartition(":")
    owner_node, _, pid_text = owner_node.rpartition(":")
    start_text = rest
    if owner_node != node:
        return None
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return str(process_start_ticks(pid)) == start_text


def owner_tag(owner: str, node: str) -> str:
    """``pid-start``: the owner within its node, fit for a file name (a scratch directory, an
    exec session) that recovery judges by :func:`tagged_owner_alive`."""
    return owner[len(node) + 1:].replace(":", "-")


def tagged_owner_alive(name: str, node: str) -> bool:
    """Whether the process whose :func:`owner_tag` begins ``name`` still runs on ``node``."""
    pid, _, rest = name.partition("-")
    return owner_is_alive(f"{node}:{pid}:{rest.partition('-')[0]}", node) is True
