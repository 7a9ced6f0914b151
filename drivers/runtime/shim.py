"""The shim: the process that owns a container's life once ``start`` has returned.

It detaches from the caller (double fork, new session), becomes a child subreaper so the
container's init is re-parented to it when ``runc create`` exits, starts the container through the
OCI runtime, tells the caller "started <pid>" (or why it failed) on a pipe, waits for the
process, records its exit status atomically in ``exit.json``, deletes the runtime's container, and
finally runs the ``on_exit`` command (which fires the ``exit`` transition).

Run as ``python -m drivers.runtime.shim CONFIG.json READY_FD``. Stdlib only: it must start fast.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    config_path, ready_fd = argv[0], int(argv[1])
    config = json.loads(Path(config_path).read_text())
    # first fork: the caller waits only for this parent, which exits at once, so the shim is
    # nobody's zombie and outlives the API call
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    # recovery asks whether the shim lives: while it does, the exit is not yet recorded but
    # will be, and the container must not be declared dead
    Path(config["shim_pid_file"]).write_text(str(os.getpid()))
    _redirect_stdio(Path(config["shim_log"]))
    _become_subreaper()
    # a stop signal for the shim itself must not kill it before it records the exit
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with os.fdopen(ready_fd, "w") as ready:
        pid = _start_container(config, ready)
    if pid is None:
        return 1
    exit_code = _wait_for(pid)
    # deleted first: whoever sees exit.json may rely on the runtime's container being gone
    _runtime(config, "delete", "--force", config["id"], check=False)
    _record_exit(Path(config["exit_file"]), exit_code)
    _run_on_exit(config, exit_code)
    return 0


def _redirect_stdio(log: Path) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _runtime(config: dict[str, Any], *args: str, check: bool = True,
             stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [config["runtime"], "--root", config["runtime_root"], "--log", config["runtime_log"],
            "--log-format", "json", *args]
    log = open(config["container_log"], "ab")  # noqa: SIM115 - handed to the child, then closed
    try:
        # the container inherits runc's stdio: a file, never a pipe (a pipe would keep the
        # caller waiting for EOF for as long as the container lives)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout or log, stderr=log,
                              check=check, timeout=config.get("timeout", 60))
    finally:
        log.close()


def _start_container(config: dict[str, Any], ready: Any) -> int | None:
    container_id = config["id"]
    pid_file = Path(config["pid_file"])
    try:
        _runtime(config, "create", "--bundle", config["bundle"], "--pid-file", str(pid_file),
                 container_id)
        _runtime(config, "start", container_id)
        pid = int(pid_file.read_text())
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValueError) as err:
        reason = _runtime_error(Path(config["runtime_log"])) or str(err)
        _runtime(config, "delete", "--force", container_id, check=False)
        ready.write(f"failed {reason}\n")
        return None
    ready.write(f"started {pid}\n")
    return pid


def _runtime_error(log: Path) -> str:
    """The runtime's last error message, from its JSON log."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip()
    return ""


def _wait_for(pid: int) -> int:
    """Reap children until ``pid`` is among them; its exit code as a shell reports it."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            # the process is not our child (re-parenting failed): poll until it is gone
            while os.path.exists(f"/proc/{pid}"):
                time.sleep(0.05)
            return 255
        if reaped == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else (
                128 + os.WTERMSIG(status))


def _record_exit(exit_file: Path, exit_code: int) -> None:
    partial = exit_file.with_suffix(".partial")
    with open(partial, "w") as out:
        json.dump({"exit_code": exit_code, "finished_at": time.time()}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, exit_file)


def _run_on_exit(config: dict[str, Any], exit_code: int) -> None:
    argv = [*config["on_exit"], str(exit_code)]
    if argv[:-1]:
        env = {**os.environ, **config.get("on_exit_env", {})}
        subprocess.run(argv, stdin=subprocess.DEVNULL, check=False, timeout=600, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
