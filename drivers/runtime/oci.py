"""An OCI runtime (runc by default, crun as an option) driven through its command line, each
started container watched by ``conmon``, the monitor Podman and CRI-O use, driven as Podman
drives it (libpod's ``oci_conmon_common.go``).

conmon runs ``runtime create`` and answers on its sync pipe with the container's pid (or the
runtime's error); berth then runs ``runtime start``. conmon holds the container's stdio: the
streams go to the log in the ``k8s-file`` format (:mod:`drivers.runtime.logs`) and to the attach
socket; when the process ends it writes the exit code atomically into the run's exit directory
and runs the exit command: :mod:`drivers.runtime.exit_gate`, which runs berth's exit hook unless a
waiting orchestrator has already handled the exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.commands import run
from drivers.errors import HostError
from drivers.runtime.bundle import BundleSpec, write_bundle
from drivers.runtime.conmon import conmon_message, launch_conmon
from drivers.runtime.exec import ExecOutcome, exec_in_container

SUPPORTED = ("runc", "crun")
#: how long ``runc create`` + ``runc start`` may take before the start is declared failed
START_TIMEOUT = 60.0
EXIT_GATE = str(Path(__file__).with_name("exit_gate.py"))


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
        """The container's stdout and stderr (every run's), in conmon's ``k8s-file`` format."""
        return self.root / "container.log"

    @property
    def attach_socket(self) -> Path:
        """conmon's socket for the running process's streams (``--full-attach``)."""
        return self.bundle / "attach"

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime.log"

    @property
    def exit_dir(self) -> Path:
        """conmon's exit and persist directory of the run: its exit code, and ``oom``."""
        return self._of_run("exit", "d")

    @property
    def exit_file(self) -> Path:
        """The exit code, written by conmon, atomically, when the run's process has ended."""
        return self.exit_dir / self.root.name

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
    def monitor_pid_file(self) -> Path:
        """conmon's pid, as conmon writes it."""
        return self._of_run("conmon", "pid")

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
    #: when conmon recorded it (the exit file's mtime): names this run's exit
    finished_at: float
    #: the kernel's OOM killer ended the process (conmon saw the cgroup's event)
    oom_killed: bool = False


class OCIRuntime:
    """Starts, signals and deletes containers through ``runc`` or ``crun``."""

    def __init__(self, name: str, state_root: Path) -> None:
        if name not in SUPPORTED:
            raise HostError(f"unknown OCI runtime {name!r}: choose one of {', '.join(SUPPORTED)}")
        binary = shutil.which(name)
        if binary is None:
            raise HostError(f"the OCI runtime {name} is not installed (apt-get install {name})")
        conmon = shutil.which("conmon") or ("/usr/bin/conmon" if os.path.exists(
            "/usr/bin/conmon") else None)
        if conmon is None:
            raise HostError("conmon, the container monitor, is not installed "
                            "(apt-get install conmon)")
        self.name = name
        self.binary = binary
        self.conmon = conmon
        self.state_root = state_root

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_root), *args]

    def start(
        self,
        spec: BundleSpec,
        paths: ContainerPaths,
        on_exit: Sequence[str],
        on_exit_env: Mapping[str, str] | None = None,
        log_max_size: int | None = None,
    ) -> int:
        """Write the bundle, create the container under conmon, start it, and return its pid
        once the process is really running. ``paths`` names the run; ``on_exit`` runs when it
        ends, with the exit code appended, unless a waiter handled it (``exit_gate``).
        ``log_max_size``: bytes the log may grow to before conmon starts it afresh. Raises
        :class:`HostError` with the runtime's own message when it does not start; nothing of
        it is then left."""
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # only this run's files and those of long-finished runs: the previous run's monitor may
        # still be finishing (it reports an exit that a stop has already committed)
        for stale in (paths.pid_file, paths.exit_waiter, paths.exit_handled, paths.runtime_log,
                      paths.monitor_pid_file, *paths.files_of_earlier_runs()):
            _remove(stale)
        _remove(paths.exit_dir)
        paths.exit_dir.mkdir(mode=0o700)
        write_bundle(paths.bundle, spec)
        self.state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        container_id = spec.container_id
        gate = [sys.executable, "-I", "-S", EXIT_GATE, str(paths.exit_file),
                str(paths.exit_waiter), str(paths.exit_handled), str(os.getpid()), *on_exit]
        argv = [self.conmon, "--api-version", "1", "-c", container_id, "-u", container_id,
                "-r", self.binary, "-b", str(paths.bundle), "-p", str(paths.pid_file),
                "-n", container_id, "--exit-dir", str(paths.exit_dir),
                "--persist-dir", str(paths.exit_dir), "--full-attach",
                "--runtime-arg", "--root", "--runtime-arg", str(self.state_root),
                "--runtime-arg", "--log-format=json",
                "--runtime-arg", f"--log={paths.runtime_log}",
                "-l", f"k8s-file:{paths.log}", "--log-level", "warning",
                "--conmon-pidfile", str(paths.monitor_pid_file),
                "--exit-command", gate[0], *_each("--exit-command-arg", gate[1:])]
        if log_max_size is not None:
            argv += ["--log-size-max", str(log_max_size)]
        pid = self._create_under_conmon(argv, paths, on_exit_env or {})
        try:
            run(self._argv("start", container_id), timeout=START_TIMEOUT,
                what=f"{self.name} could not start the process")
        except HostError:
            self.delete(container_id)
            raise
        return pid

    def _create_under_conmon(self, argv: list[str], paths: ContainerPaths,
                             env: Mapping[str, str]) -> int:
        """Launch conmon; its answer on the sync pipe once ``runtime create`` is done: the
        container's pid, or the runtime's error raised as :class:`HostError`."""
        ours = launch_conmon(argv, paths.root, env, ("SYNC", "START"), START_TIMEOUT)
        try:
            message = conmon_message(ours["SYNC"], START_TIMEOUT)
        finally:
            for end in ours.values():
                end.close()
        pid = int(message.get("data", -1))
        if pid > 0:
            return pid
        reason = (_runtime_error(str(message.get("message", "")))
                  or _logged_error(paths.runtime_log) or "conmon ended without an answer")
        self.delete(paths.root.name)
        raise HostError(f"{self.name} could not start the process: {reason}")

    def exec(self, container_id: str, paths: ContainerPaths, process: Mapping[str, Any],
             stdin: bytes | None, timeout: float, session: str) -> ExecOutcome:
        """Run ``process`` (an OCI ``process`` object) in the running container under a conmon
        of its own (:mod:`drivers.runtime.exec`); its exit code and streams."""
        return exec_in_container(self.conmon, self.binary, self.state_root, container_id,
                                 paths.root / "exec" / session, process, stdin, timeout, {})

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
        """Kill and delete the runtime's container; one that does not exist is already gone.

        On the path of every exit (conmon leaves the stopped container to its manager): one
        runtime process, asked to delete at once, its state read only when it refuses."""
        if not (self.state_root / container_id).exists():
            return
        try:
            run(self._argv("delete", "--force", container_id), timeout=30,
                what=f"cannot delete container {container_id[:12]}")
        except HostError:
            if self.state(container_id) is not None:
                raise

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
    def monitor_alive(paths: ContainerPaths) -> bool:
        """Whether the run's conmon still runs (and so will record the exit)."""
        try:
            pid = int(paths.monitor_pid_file.read_text())
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return str(paths.exit_dir).encode() in cmdline.read()
        except (OSError, ValueError):
            return False

    @staticmethod
    def exit_status(paths: ContainerPaths) -> ExitStatus | None:
        """What conmon recorded when the process ended, or None if it has not (yet)."""
        try:
            with open(paths.exit_file, "rb") as source:
                text = source.read()
                finished_at = os.fstat(source.fileno()).st_mtime
            exit_code = int(text)
        except (FileNotFoundError, ValueError):
            return None
        return ExitStatus(exit_code, finished_at, (paths.exit_dir / "oom").exists())

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


def _each(flag: str, values: Sequence[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


def _runtime_error(message: str) -> str:
    """The runtime's error out of what conmon relays (runc's logfmt line: its ``msg``)."""
    message = message.strip()
    marker = 'msg="'
    if marker in message:
        text = message[message.index(marker) + len(marker):]
        return text.rsplit('"', 1)[0].replace('\\"', '"')
    return message


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _logged_error(log: Path) -> str:
    """The runtime's last error in its JSON log (``--log-format=json``)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip()
    return ""
