"""A process run in a running container by conmon (``conmon --exec --exec-attach``), as Podman's
``oci_conmon_exec_common.go`` does it: its streams read apart off conmon's attach socket, its
exit code off the sync pipe.

The handshake: conmon waits on the start pipe, makes its attach socket and says so on the attach
pipe; berth connects, then releases it a second time, and only then does conmon run ``runtime
exec``, so no output comes before berth listens. The sync pipe gives the process's pid, then its
exit code. Each session has a bundle directory of its own (conmon names the exit file after the
container, so a shared one would mix sessions); it goes when the session ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.crashpoints import crash_point
from drivers.errors import HostError
from drivers.runtime.conmon import conmon_message, launch_conmon

#: conmon's stream ids on the attach socket (its ``stdpipe_t``)
STDOUT_ID, STDERR_ID = 2, 3
#: conmon reads each stream in chunks of this many bytes; a packet is one more (its id)
PACKET = 8192 + 1


@dataclass(frozen=True)
class ExecOutcome:
    exit_code: int
    stdout: bytes
    stderr: bytes


def exec_in_container(conmon: str, runtime: str, state_root: Path, container_id: str,
                      bundle: Path, process: Mapping[str, Any], stdin: bytes | None,
                      timeout: float, env: Mapping[str, str]) -> ExecOutcome:
    """Run ``process`` (an OCI ``process`` object) in the container; waits at most ``timeout``
    seconds for it to end. Raises :class:`HostError` with the runtime's message when it does not
    start."""
    bundle.mkdir(mode=0o700, parents=True)
    try:
        spec = bundle / "process.json"
        spec.write_text(json.dumps(process))
        argv = [conmon, "--api-version", "1", "-c", container_id, "-u", bundle.name,
                "-r", runtime, "-b", str(bundle), "-p", str(bundle / "exec_pid"),
                "-n", container_id, "--exit-dir", str(bundle / "exit"), "--full-attach",
                "--runtime-arg", "--root", "--runtime-arg", str(state_root),
                "-l", "none", "--log-level", "warning", "-e", "--exec-attach",
                "--exec-process-spec", str(spec), *(["-i"] if stdin is not None else [])]
        (bundle / "exit").mkdir()
        return _run_session(argv, bundle, stdin, timeout, env)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def _run_session(argv: list[str], bundle: Path, stdin: bytes | None, timeout: float,
                 env: Mapping[str, str]) -> ExecOutcome:
    ours = launch_conmon(argv, bundle, env, ("SYNC", "START", "ATTACH"), timeout)
    try:
        conmon_message(ours["ATTACH"], timeout)  # the attach socket is ready
        attach = connect_attach(bundle)
        try:
            ours["START"].send(b"\0")  # now conmon runs the runtime's exec
            started = conmon_message(ours["SYNC"], timeout)
            if int(started.get("data", -1)) <= 0:
                raise HostError("the process could not start in the container: "
                                + str(started.get("message", "no answer from conmon")).strip())
            crash_point("exec.after_start")
            if stdin is not None:
                attach.sendall(stdin)
                attach.shutdown(socket.SHUT_WR)
            stdout, stderr = _streams(attach, timeout)
        finally:
            attach.close()
        ended = conmon_message(ours["SYNC"], timeout)
        return ExecOutcome(int(ended.get("data", 255)), stdout, stderr)
    finally:
        for end in ours.values():
            end.close()


def end_session(bundle: Path) -> None:
    """Whatever a session whose caller died left: its process (still running, watched by its
    conmon, which then records the exit and goes) and its directory."""
    process = _session_process(bundle)
    if process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process, signal.SIGKILL)
    shutil.rmtree(bundle, ignore_errors=True)


def _session_process(bundle: Path) -> int | None:
    """The session's process, if it still runs: the pid conmon wrote, checked against the
    command the session ran (a pid may have been reused since)."""
    try:
        pid = int((bundle / "exec_pid").read_text())
        args = json.loads((bundle / "process.json").read_text())["args"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    return pid if cmdline.split(b"\0")[:-1] == [a.encode() for a in args] else None


def connect_attach(bundle: Path) -> socket.socket:
    """conmon's attach socket in ``bundle``, reached through an ``O_PATH`` descriptor of the
    directory (``/proc/self/fd/N/attach``): its full path may pass the 108 bytes a socket
    address holds, as conmon itself binds it."""
    directory = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    attach = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        attach.connect(f"/proc/self/fd/{directory}/attach")
    except OSError:
        attach.close()
        raise
    finally:
        os.close(directory)
    return attach


def _streams(attach: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """What the process wrote, per stream, until conmon closes the socket (it has ended)."""
    out, err = bytearray(), bytearray()
    while True:
        ready, _, _ = select.select([attach], [], [], timeout)
        if not ready:
            raise HostError(f"the process in the container still runs after {timeout:g}s")
        packet = attach.recv(PACKET)
        if not packet:
            return bytes(out), bytes(err)
        (out if packet[0] == STDOUT_ID else err if packet[0] == STDERR_ID else bytearray()
         ).extend(packet[1:])
