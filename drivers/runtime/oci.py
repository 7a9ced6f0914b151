"""An OCI runtime (runc by default, crun as an option) driven through its command line, with the
shim (``drivers.runtime.shim``) owning each started container."""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drivers.commands import run
from drivers.errors import HostError
from drivers.runtime.bundle import BundleSpec, write_bundle

SUPPORTED = ("runc", "crun")
#: how long ``runc create`` + ``runc start`` may take before the start is declared failed
START_TIMEOUT = 60.0
SHIM = str(Path(__file__).with_name("shim.py"))


@dataclass(frozen=True)
class ContainerPaths:
    """The files the runtime keeps for one container, all under its directory. Those of one run
    (one start) carry its number: a monitor that outlives its run (it still reports the exit
    while the next run starts) reads and writes only its own."""

    root: Path
    #: which start of the container these files belong to
    run: int = 0

    def of_run(self, run: int) -> ContainerPaths:
        return ContainerPaths(self.root, run)

    def _of_run(self, name: str, suffix: str) -> Path:
        return self.root / f"{name}.{self.run}.{suffix}"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def log(self) -> Path:
        """The container's stdout and stderr (every run's)."""
        return self.root / "container.log"

    @property
    def shim_log(self) -> Path:
        return self.root / "shim.log"

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime.log"

    @property
    def exit_file(self) -> Path:
        """Written by the shim, atomically, when the run's process has ended."""
        return self._of_run("exit", "json")

    @property
    def exit_waiter(self) -> Path:
        """The pid of an orchestrator waiting to fire the run's ``exit`` itself (``wait``,
        ``stop``)."""
        return self._of_run("exit", "waiter")

    @property
    def exit_handled(self) -> Path:
        """That waiter's verdict once ``exit`` is committed: ``<finished_at> done|needed``, whether
        the shim must still run the exit command (restart policy, auto-removal)."""
        return self._of_run("exit", "handled")

    @property
    def exit_lock(self) -> Path:
        """Held (``flock``) by whoever fires a run's ``exit``: one at a time per container."""
        return self.root / "exit.lock"

    @property
    def shm(self) -> Path:
        """The container's /dev/shm, a tmpfs mounted here on the host."""
        return self.root / "shm"

    @property
    def pid_file(self) -> Path:
        return self._of_run("container", "pid")

    @property
    def shim_pid_file(self) -> Path:
        return self._of_run("shim", "pid")

    @property
    def shim_config(self) -> Path:
        """The shim's settings: a ``marshal``-ed dict (0600: the exit command's environment may
        hold the database URL with its password)."""
        return self._of_run("shim", "config")

    def files_of_earlier_runs(self) -> list[Path]:
        """The per-run files of runs before the previous one: their monitors are long gone."""
        earlier = []
        for path in self.root.glob("*.*.*"):
            number = path.name.split(".")[1]
            if number.isdigit() and int(number) < self.run - 1:
                earlier.append(path)
        return earlier


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    finished_at: float


class OCIRuntime:
    """Starts, signals and deletes containers through ``runc`` or ``crun``."""

    def __init__(self, name: str, state_root: Path) -> None:
        if name not in SUPPORTED:
            raise HostError(f"unknown OCI runtime {name!r}: choose one of {', '.join(SUPPORTED)}")
        binary = shutil.which(name)
        if binary is None:
            raise HostError(f"the OCI runtime {name} is not installed (apt-get install {name})")
        self.name = name
        self.binary = binary
        self.state_root = state_root

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_root), *args]

    def start(
        self,
        spec: BundleSpec,
        paths: ContainerPaths,
        on_exit: Sequence[str],
        on_exit_env: Mapping[str, str] | None = None,
    ) -> int:
        """Write the bundle, start the container under a shim, and return its pid once the
        process is really running. ``paths`` names the run; the shim appends the exit code to
        ``on_exit``. Raises :class:`HostError` with the runtime's own message when
        it does not start; nothing of it is then left (the shim deletes it)."""
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # only this run's files and those of long-finished runs: the previous run's monitor may
        # still be reading its own (it reports an exit that a stop has already committed)
        for stale in (paths.exit_file, paths.pid_file, paths.exit_waiter, paths.exit_handled,
                      paths.runtime_log,
                      *paths.files_of_earlier_runs()):
            stale.unlink(missing_ok=True)
        write_bundle(paths.bundle, spec)
        self.state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = {
            "id": spec.container_id,
            "run": paths.run,
            "runtime": self.binary,
            "runtime_root": str(self.state_root),
            "runtime_log": str(paths.runtime_log),
            "bundle": str(paths.bundle),
            "pid_file": str(paths.pid_file),
            "exit_file": str(paths.exit_file),
            "exit_waiter_file": str(paths.exit_waiter),
            "exit_handled_file": str(paths.exit_handled),
            "container_log": str(paths.log),
            "shim_log": str(paths.shim_log),
            "shim_pid_file": str(paths.shim_pid_file),
            "on_exit": list(on_exit),
            "on_exit_env": dict(on_exit_env or {}),
            "timeout": START_TIMEOUT,
        }
        # 0600: the exit command's environment may hold the database URL with its password;
        # marshal: the shim reads it without importing json (see drivers.runtime.shim)
        descriptor = os.open(paths.shim_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            marshal.dump(config, out)
        read_end, write_end = os.pipe()
        try:
            # by path, isolated and without site-packages: the shim is stdlib only and must
            # start fast
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", SHIM, str(paths.shim_config), str(write_end)],
                pass_fds=(write_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
            )
        finally:
            os.close(write_end)
        try:
            answer = _read_line(read_end, START_TIMEOUT)
        finally:
            os.close(read_end)
            launcher.wait(timeout=START_TIMEOUT)  # it exits right after forking the shim
        if answer.startswith("started "):
            return int(answer.split()[1])
        reason = answer.removeprefix("failed ").strip() or _tail(paths.shim_log) or "no answer"
        raise HostError(f"{self.name} could not start the process: {reason}")

    def kill(self, container_id: str, signal_number: int = signal.SIGTERM) -> bool:
        """Send a signal to the container's init; False when it is not running any more."""
        try:
            run(self._argv("kill", container_id, str(signal_number)), timeout=15,
                what=f"cannot signal container {container_id[:12]}")
        except HostError as error:
            if self.state(container_id) in (None, "stopped"):
                return False
            raise error
        return True

    def delete(self, container_id: str) -> None:
        """Kill and delete the runtime's container; one that does not exist is already gone."""
        if self.state(container_id) is None:
            return
        run(self._argv("delete", "--force", container_id), timeout=30,
            what=f"cannot delete container {container_id[:12]}")

    def state(self, container_id: str) -> str | None:
        """``created``, ``running``, ``paused``, ``stopped``; None when the runtime has no such."""
        if not (self.state_root / container_id).exists():
            return None
        try:
            output = run(self._argv("state", container_id), timeout=15)
        except HostError:
            return None
        return str(json.loads(output).get("status"))

    def list(self) -> list[str]:
        """Ids of the containers the runtime holds under berth's state root."""
        try:
            return sorted(p.name for p in self.state_root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    @staticmethod
    def shim_alive(paths: ContainerPaths) -> bool:
        """Whether the container's shim still runs (and so will record the exit)."""
        try:
            pid = int(paths.shim_pid_file.read_text())
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return str(paths.shim_config).encode() in cmdline.read()
        except (OSError, ValueError):
            return False

    @staticmethod
    def exit_status(paths: ContainerPaths) -> ExitStatus | None:
        """What the shim recorded when the process ended, or None if it has not (yet)."""
        try:
            data = json.loads(paths.exit_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return ExitStatus(int(data["exit_code"]), float(data["finished_at"]))

    @staticmethod
    def wait_for_exit(paths: ContainerPaths, timeout: float) -> ExitStatus | None:
        """Wait until the shim has recorded the exit, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delays = poll_delays()
        while True:
            status = OCIRuntime.exit_status(paths)
            if status is not None or time.monotonic() >= deadline:
                return status
            time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))

    @staticmethod
    @contextlib.contextmanager
    def waiting_for_exit(paths: ContainerPaths) -> Iterator[None]:
        """While the block runs, tell the shim that this process waits for the exit and will
        fire ``exit`` itself, so that it holds the exit command back until
        :meth:`record_exit_handled` (or until this process is gone, or the block ends)."""
        _write_atomically(paths.exit_waiter, str(os.getpid()))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                # another waiter may have announced itself since: its file stays
                if paths.exit_waiter.read_text() == str(os.getpid()):
                    paths.exit_waiter.unlink()

    @staticmethod
    def record_exit_handled(paths: ContainerPaths, status: ExitStatus, needed: bool) -> None:
        """``exit`` of the run that ended at ``status`` is committed; ``needed``: the shim must
        still run the exit command (it applies the restart policy and auto-removal)."""
        _write_atomically(paths.exit_handled,
                          f"{status.finished_at!r} {'needed' if needed else 'done'}")


def poll_delays(first: float = 0.001, longest: float = 0.02) -> Iterator[float]:
    """Sleeps between polls: a tenth of the time waited so far, from 1 ms up to 20 ms. An exit
    that comes soon (a short command) is seen within 10 % of its time; a process that runs for
    long costs a check every 20 ms, as a fixed poll did."""
    began = time.monotonic()
    while True:
        yield min(longest, max(first, (time.monotonic() - began) / 10))


def _write_atomically(path: Path, text: str) -> None:
    """Best effort: a container without a directory has no shim to tell, and a note the shim
    does not get only means it runs the exit command, as it would without one."""
    partial = path.with_name(path.name + ".partial")
    with contextlib.suppress(OSError):
        partial.write_text(text)
        os.replace(partial, path)


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _tail(path: Path) -> str:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""
