"""Bare ``runc`` on a prepared busybox bundle: the floor of a real container's lifecycle, which
``start_latency`` and ``fsm_overhead`` measure berth against in the same run. Needs root.

One lifecycle is ``runc create`` + ``runc start`` + waiting for the process + ``runc delete``,
all driven by a helper process that is a child subreaper: the container's init is re-parented to
it when ``runc create`` exits, so it waits for the process as a shim does. No network namespace
is joined (``runc spec``'s default: a new one, as berth's ``--network none``).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: the parts of one lifecycle, in ms; ``total`` is create + start + wait (``delete`` apart)
PARTS = ("total", "create", "start", "wait", "remove")


def run(argv: list[str], **kwargs: Any) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done.stdout.strip()


def unavailable() -> str | None:
    """Why bare runc cannot run here, or None."""
    if os.geteuid() != 0:
        return "runc needs root"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    return None


def _helper(connection: Connection, bundle: str, state_root: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    number = 0
    while (times := connection.recv()) != "stop":
        parts = dict.fromkeys(PARTS, 0.0)
        for _ in range(times):
            number += 1
            for part, value in _lifecycle(bundle, state_root, number).items():
                parts[part] += value
        connection.send({part: value / times for part, value in parts.items()})
    connection.close()


def _lifecycle(bundle: str, state_root: str, number: int) -> dict[str, float]:
    name = f"bench-runc-{os.getpid()}-{number}"
    pid_file = Path(state_root) / f"{name}.pid"
    start = time.perf_counter()
    subprocess.run(["runc", "--root", state_root, "create", "--bundle", bundle, "--pid-file",
                    str(pid_file), name], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    created = time.perf_counter()
    subprocess.run(["runc", "--root", state_root, "start", name], check=True)
    pid = int(pid_file.read_text())
    started = time.perf_counter()
    _, status = os.waitpid(pid, 0)
    waited = time.perf_counter()
    subprocess.run(["runc", "--root", state_root, "delete", name], check=True)
    deleted = time.perf_counter()
    pid_file.unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("runc: /bin/true failed")
    return {"total": (waited - start) * 1000, "create": (created - start) * 1000,
            "start": (started - created) * 1000, "wait": (waited - started) * 1000,
            "remove": (deleted - waited) * 1000}


class Runc:
    """A busybox bundle under ``work`` and its helper process; :meth:`close` ends it."""

    def __init__(self, work: Path, tar: Path) -> None:
        self.bundle = work / "runc-bundle"
        rootfs = self.bundle / "rootfs"
        rootfs.mkdir(parents=True)
        run(["tar", "-xpf", str(tar), "-C", str(rootfs), "--numeric-owner"])
        run(["runc", "spec", "--bundle", str(self.bundle)])
        config_path = self.bundle / "config.json"
        config = json.loads(config_path.read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/true"]
        config_path.write_text(json.dumps(config))
        self.state_root = work / "runc-state"
        self.state_root.mkdir()
        context = multiprocessing.get_context("fork")
        self.connection, child = context.Pipe()
        self.helper = context.Process(target=_helper,
                                      args=(child, str(self.bundle), str(self.state_root)))
        self.helper.start()
        self.number = 0

    def lifecycles(self, times: int = 1) -> dict[str, float]:
        """``times`` lifecycles; ms per lifecycle of each of :data:`PARTS`."""
        self.connection.send(times)
        result: dict[str, float] = self.connection.recv()
        return result

    def run_once(self) -> dict[str, float]:
        """``runc run`` (create, start, wait and delete in one runc process)."""
        self.number += 1
        start = time.perf_counter()
        run(["runc", "--root", str(self.state_root), "run", "--bundle", str(self.bundle),
             f"bench-run-{os.getpid()}-{self.number}"], stdin=subprocess.DEVNULL)
        return {"total": (time.perf_counter() - start) * 1000}

    def close(self) -> None:
        self.connection.send("stop")
        self.helper.join(timeout=10)
