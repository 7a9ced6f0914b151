"""The shim: the process that owns a container's life once ``start`` has returned.

It detaches from the caller (double fork, new session), becomes a child subreaper so the
container's init is re-parented to it when the runtime detaches, starts the container through the
OCI runtime, tells the caller "started <pid>" (or why it failed) on a pipe, waits for the
process, records its exit status atomically in ``exit.json``, deletes the runtime's container, and
finally runs the ``on_exit`` command (which fires the ``exit`` transition and applies the restart
policy) unless a waiting orchestrator has already fired ``exit`` and found nothing left for it
to do (see :func:`_exit_handled`).

Run as ``python -I -S shim.py CONFIG READY_FD``. Its start-up is on the path of every container
start, so it imports few modules, and none of those that import ``re``, ``enum`` or
``functools`` (``json``, ``subprocess``, ``signal``, ``pathlib``): under load those took longer
than the interpreter itself. Hence ``marshal`` for the configuration (the orchestrator runs the
same interpreter), ``posix_spawn`` and a pidfd for the runtime, and ``_signal``, the C module
under ``signal``. The exit command, off that path, may use ``subprocess``.
"""

from __future__ import annotations

import _signal
import ctypes
import marshal
import os
import select
import sys
import time

#: ``typing`` costs more to import than all the rest (it imports ``re``): types for mypy only
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

PR_SET_CHILD_SUBREAPER = 36
#: how long the exit command waits for a registered waiter's verdict (it normally comes within
#: milliseconds: the waiter only commits ``exit``); after this the command runs anyway
WAITER_GRACE_SECONDS = 10.0
#: a process that exits at once may end before its starter has even returned from ``start``
#: and called ``wait``: while the starter lives, a waiter is given this long to show up
WAITER_ARRIVAL_SECONDS = 0.05
#: what the shim's log says when a waiter fired ``exit`` and the exit command was not needed
SKIPPED_EXIT_COMMAND = "exit fired by a waiting orchestrator; the exit command is not needed"


def main(argv: list[str]) -> int:
    config_path, ready_fd = argv[0], int(argv[1])
    with open(config_path, "rb") as source:
        config: dict[str, Any] = marshal.load(source)
    # the runtime and the container must not inherit the caller's end of the pipe
    os.set_inheritable(ready_fd, False)
    caller = os.getppid()  # the orchestrator process that starts the container
    # first fork: the caller waits only for this parent, which exits at once, so the shim is
    # nobody's zombie and outlives the API call
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    # recovery asks whether the shim lives: while it does, the exit is not yet recorded but
    # will be, and the container must not be declared dead
    with open(config["shim_pid_file"], "w") as pid_file:
        pid_file.write(str(os.getpid()))
    _redirect_stdio(config["shim_log"])
    _become_subreaper()
    # a stop signal for the shim itself must not kill it before it records the exit
    for number in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP):
        _signal.signal(number, _signal.SIG_IGN)
    with os.fdopen(ready_fd, "w") as ready:
        pid = _start_container(config, ready)
    if pid is None:
        return 1
    exit_code = _wait_for(pid)
    # deleted first: whoever sees exit.json may rely on the runtime's container being gone
    _runtime(config, "delete", "--force", config["id"], check=False)
    finished_at = _record_exit(config["exit_file"], exit_code)
    if _exit_handled(config, finished_at, caller):
        print(f"{SKIPPED_EXIT_COMMAND} (exit {exit_code})", flush=True)
    else:
        _run_on_exit(config, exit_code)
    return 0


def _redirect_stdio(log: str) -> None:
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


class RuntimeFailed(Exception):
    """The runtime exited non-zero, or did not exit in time (it was killed)."""


def _runtime(config: dict[str, Any], *args: str, check: bool = True) -> None:
    argv = [config["runtime"], "--root", config["runtime_root"], "--log", config["runtime_log"],
            "--log-format", "json", *args]
    # the container inherits runc's stdio: a file, never a pipe (a pipe would keep the caller
    # waiting for EOF for as long as the container lives)
    log = os.open(config["container_log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                  0o666)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2)])
    finally:
        os.close(log)
        os.close(null)
    status = _reap(pid, float(config.get("timeout", 60)))
    if check and status != 0:
        raise RuntimeFailed(f"{os.path.basename(argv[0])} {args[0]} "
                            + ("timed out" if status is None else f"exited {status}"))


def _reap(pid: int, timeout: float) -> int | None:
    """Wait for the child ``pid``, at most ``timeout`` seconds (then kill it); its exit status,
    or None on a timeout. A pidfd makes the wait an event, with no polling."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3: wait without a deadline
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _start_container(config: dict[str, Any], ready: IO[str]) -> int | None:
    container_id = config["id"]
    try:
        # ``run --detach`` is ``create`` + ``start`` in one runtime process: one process fewer
        # on the path of every start. The init is re-parented to us when it detaches.
        _runtime(config, "run", "--detach", "--bundle", config["bundle"], "--pid-file",
                 config["pid_file"], container_id)
        with open(config["pid_file"]) as pid_file:
            pid = int(pid_file.read())
    except (RuntimeFailed, OSError, ValueError) as err:
        reason = _runtime_error(config["runtime_log"]) or str(err)
        _runtime(config, "delete", "--force", container_id, check=False)
        ready.write(f"failed {reason}\n")
        return None
    ready.write(f"started {pid}\n")
    return pid


def _runtime_error(log: str) -> str:
    """The runtime's last error message, from its JSON log."""
    import json  # only when the start failed

    try:
        with open(log) as source:
            lines = source.read().splitlines()
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


def _record_exit(exit_file: str, exit_code: int) -> float:
    """Write ``exit.json`` atomically; returns its ``finished_at``, which names this run's exit."""
    finished_at = time.time()
    partial = os.path.splitext(exit_file)[0] + ".partial"
    with open(partial, "w") as out:
        # JSON (a float's repr is a JSON number, and reads back to the same float)
        out.write(f'{{"exit_code": {exit_code}, "finished_at": {finished_at!r}}}')
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, exit_file)
    return finished_at


def _exit_handled(config: dict[str, Any], finished_at: float, caller: int) -> bool:
    """Whether an orchestrator waiting for this exit (``Orchestrator.wait`` or ``stop``) has fired
    ``exit`` itself and found nothing for the exit command to do (no restart, no auto-removal).

    The exit command is a new interpreter that imports SQLAlchemy and the orchestrator: about
    0.7 s of CPU, taken from the next containers on a small host, to find the exit already
    committed. A waiter announces itself in ``exit_waiter_file`` (its pid); once it has committed
    ``exit`` it writes its verdict in ``exit_handled_file``: this exit's ``finished_at`` and
    whether the exit command is still needed. Without a live waiter (one may still arrive for a
    moment while the ``caller`` that started the container lives), without its verdict in time,
    or with a verdict about another exit, the command runs, as it always did: an exit is never
    left unhandled.
    """
    waiter_file, verdict_file = config.get("exit_waiter_file"), config.get("exit_handled_file")
    if not waiter_file or not verdict_file:
        return False
    now = time.monotonic()
    deadline, arrival_deadline = now + WAITER_GRACE_SECONDS, now + WAITER_ARRIVAL_SECONDS
    delay = 0.001
    while True:
        try:
            with open(verdict_file) as source:
                handled_at, needed = source.read().split()
            if float(handled_at) == finished_at:
                return needed == "done"
        except (OSError, ValueError):
            pass  # no verdict yet (or a partial one)
        now = time.monotonic()
        if now >= deadline:
            return False
        if not _alive(_read_pid(waiter_file)) and (
                now >= arrival_deadline or not _alive(caller)):
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _read_pid(path: str) -> int:
    try:
        with open(path) as source:
            return int(source.read())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _run_on_exit(config: dict[str, Any], exit_code: int) -> None:
    import subprocess  # off the start path

    argv = [*config["on_exit"], str(exit_code)]
    if argv[:-1]:
        env = {**os.environ, **config.get("on_exit_env", {})}
        subprocess.run(argv, stdin=subprocess.DEVNULL, check=False, timeout=600, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
