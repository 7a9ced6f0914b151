"""Launching conmon and reading what it says on its pipes (Podman's ``oci_conmon_common.go``).

conmon takes its pipes as inherited descriptors named in ``_OCI_<NAME>PIPE``; it waits on the
start pipe before doing anything, forks its monitor and exits, so only its own argument errors
come back to the launcher. Each message on a pipe is one JSON object: ``{"data": N}``, with a
``"message"`` when ``N`` is -1.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drivers.errors import HostError


def launch_conmon(argv: Sequence[str], cwd: Path, env: Mapping[str, str],
                  pipes: Sequence[str], timeout: float) -> dict[str, socket.socket]:
    """Start conmon with the pipes named (``SYNC``, ``START``, ``ATTACH``...) and release it
    once on the start pipe; returns berth's ends of them, for the caller to close."""
    pairs = {name: socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for name in pipes}
    ours = {name: pair[0] for name, pair in pairs.items()}
    try:
        theirs = {name: pair[1] for name, pair in pairs.items()}
        try:
            launcher = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, pass_fds=tuple(end.fileno() for end in theirs.values()),
                env={**os.environ, **env,
                     **{f"_OCI_{name}PIPE": str(end.fileno()) for name, end in theirs.items()}})
        finally:
            for end in theirs.values():
                end.close()
        ours["START"].send(b"\0")  # no cgroup to move it into first: go at once
        _, stderr = launcher.communicate(timeout=timeout)
        if launcher.returncode != 0:
            text = stderr.decode(errors="replace")
            raise HostError(f"conmon could not start: {text}".strip(), stderr=text)
    except BaseException:
        for end in ours.values():
            end.close()
        raise
    return ours


def conmon_message(pipe: socket.socket, timeout: float) -> dict[str, Any]:
    """conmon's next message on ``pipe``; ``{}`` when it closed it without one, or in time."""
    ready, _, _ = select.select([pipe], [], [], timeout)
    data = pipe.recv(65536) if ready else b""
    try:
        message = json.loads(data) if data else {}
    except ValueError:
        message = {}
    return message if isinstance(message, dict) else {}
