"""Driving containers through the machine: firing triggers under a lease, the start sequence and
its error edge, stop, the exit of a run, removal. The orchestrator, recovery, restart policies
and the exit hook all drive containers through a :class:`Runner`; it knows the host
(:class:`~fsm.steps.host.Host`), never the orchestrator.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from drivers.crashpoints import crash_point
from drivers.runtime.oci import ContainerPaths, ExitStatus, poll_delays
from fsm import states
from fsm.container import LiveContainer
from fsm.errors import (
    BerthError,
    ConcurrentTransition,
    ConfigError,
    InvalidState,
    NoSuchContainer,
    StartFailed,
    Timeout,
    host_errors,
)
from fsm.info import ContainerInfo
from fsm.leases import LeaseKeeper
from fsm.machine import fire
from fsm.policy import after_exit_needed
from fsm.steps.host import Host
from fsm.steps.stop import stop_signal
from models import utcnow

#: after SIGKILL, how long the process may take to be reaped before stop gives up
KILL_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.02
#: states in which a start is under way
STARTING = frozenset({states.MOUNTING, states.NETWORKING, states.STARTING})
#: how many times an operation reloads a row that moved under it before giving up
ATTEMPTS = 50


class Runner:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.db = host.db
        self.leases = LeaseKeeper(host)

    # -- firing -----------------------------------------------------------------------------

    def fire(self, container: LiveContainer, trigger: str, **kwargs: Any) -> None:
        """Fire ``trigger``, renewing the row's lease while its side effect runs."""
        container.trigger_started_at = utcnow()
        with self.leases.keep(container):
            fire(container, trigger, self.host, **kwargs)

    def fail(self, container: LiveContainer, error: str) -> None:
        """The error edge: undo what the steps did, and record why (``dead``, 128, ``die``)."""
        self.fire(container, "fail", error=error)

    # -- start ------------------------------------------------------------------------------

    def start(self, ref: str) -> ContainerInfo:
        """Start the container; returns once its process runs. A running one is returned as it
        is; a start already under way is waited for (its outcome is this one's)."""
        for _attempt in range(ATTEMPTS):
            container = self.db.resolve(ref)
            state = container.state
            if state == states.RUNNING:
                return container.info()
            if state in (states.DEAD, states.REMOVING):
                raise InvalidState(container.id, state, "start", _why_not_startable(container),
                                   name=container.name)
            if state in STARTING or state == states.STOPPING:
                self.wait_for_state(container.id, lambda s: s not in STARTING
                                    and s != states.STOPPING, "start", container.name)
                if state in STARTING:
                    return self._after_other_start(container.id)
                continue
            try:
                self.fire(container, "start")
            except (ConcurrentTransition, InvalidState):
                continue  # someone moved it first: look again
            self.run_start_steps(container)
            return container.info()
        raise ConcurrentTransition(self.db.resolve_id(ref), "start", "created or exited")

    def _after_other_start(self, container_id: str) -> ContainerInfo:
        container = self.db.resolve(container_id)
        if container.state in (states.DEAD, states.EXITED) and container.error:
            raise InvalidState(container.id, container.state, "start",
                               f"the start under way failed: {container.error}",
                               name=container.name)
        return container.info()

    def restart(self, container: LiveContainer) -> ContainerInfo:
        """Start an exited container again because its restart policy says so."""
        container.set(restart_count=container.restart_count + 1)
        container.emit("restart", restartCount=container.restart_count + 1)
        self.fire(container, "start", restarting=True)
        self.run_start_steps(container)
        return container.info()

    def run_start_steps(self, container: LiveContainer) -> None:
        """``mounted``, ``networked``, ``started``; on any failure the error edge, and
        :class:`StartFailed` naming the phase that failed."""
        try:
            for trigger in states.START_SEQUENCE[1:]:
                self.fire(container, trigger)
        except BaseException as error:
            phase = container.phase or states.STEP_NAMES.get(container.state, container.state)
            cause = str(error) or type(error).__name__
            try:
                self.fail(container, f"{phase}: {cause}")
            except ConcurrentTransition:
                pass  # recovery took the row over; it has undone the steps itself
            if isinstance(error, Exception):
                raise StartFailed(container.id, phase, cause) from error
            raise

    # -- stop -------------------------------------------------------------------------------

    def stop(self, ref: str, timeout: float) -> ContainerInfo:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once the run has exited. A
        start under way is let finish first; an exited container whose restart policy may still
        start it is marked stopped, which ends its restarts."""
        if not timeout >= 0:
            raise ConfigError("timeout", timeout, "a number of seconds >= 0")
        for _attempt in range(ATTEMPTS):
            container = self.db.resolve(ref)
            state = container.state
            if state in STARTING:
                # the row is not touched meanwhile: that would make the starting process's next
                # compare-and-swap fail and leave the row in flight until its lease expires
                self.wait_for_state(container.id, lambda s: s not in STARTING, "stop",
                                    container.name)
                continue
            if state in (states.CREATED, states.DEAD):
                return container.info()
            if state == states.EXITED:
                if container.manually_stopped or not _may_restart(container):
                    return container.info()
                try:
                    self.fire(container, "stop")
                except ConcurrentTransition:
                    continue  # a restart committed first: stop that run
                return container.info()
            if state == states.REMOVING:
                raise InvalidState(container.id, state, "stop", "its removal is in progress",
                                   name=container.name)
            if state == states.RUNNING:
                try:
                    self.fire(container, "stop")
                except ConcurrentTransition:
                    continue
            return self._end_run(container, timeout)
        raise ConcurrentTransition(self.db.resolve_id(ref), "stop", "running")

    def _end_run(self, container: LiveContainer, timeout: float) -> ContainerInfo:
        """Signal the container's current run until it ends, and fire its ``exit``."""
        host, run = self.host, container.run
        paths = host.run_paths(container)
        # the shim holds its exit hook back while we are here to fire ``exit`` ourselves
        with host.runtime.waiting_for_exit(paths):
            with host_errors():
                host.runtime.kill(container.id, stop_signal(container))
                crash_point("stop.after_signal")
                status = self._await_exit(container.id, run, paths, timeout)
                if status is None:
                    self.db.events.record(container.id, "kill", signal="SIGKILL",
                                          image=container.image, name=container.name)
                    host.runtime.kill(container.id, signal.SIGKILL)
                    status = self._await_exit(container.id, run, paths, KILL_GRACE_SECONDS)
            if status is _FIRED_ELSEWHERE:
                return self.db.resolve(container.id).info()
            if status is None:
                raise Timeout(f"container {container.id[:12]} did not die after SIGKILL in "
                              f"{KILL_GRACE_SECONDS:g}s")
            # the shim's exit hook may fire ``exit`` too (if it did not see us in time);
            # whichever commits first wins, the other finds the run already exited
            self.exit(container.id, run, status.exit_code)
            info = self.db.resolve(container.id).info()
            self.report_exit_fired(paths, status, info)
            return info

    def _await_exit(self, container_id: str, run: int, paths: ContainerPaths,
                    timeout: float) -> ExitStatus | None:
        """The run's exit status once the shim has recorded it; ``_FIRED_ELSEWHERE`` once
        another process has fired the run's ``exit``; ``None`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delays = poll_delays()
        while True:
            status = self.host.runtime.exit_status(paths)
            if status is not None:
                return status
            if self.db.containers.state_of(container_id) != (states.STOPPING, run):
                return _FIRED_ELSEWHERE
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))

    def kill(self, ref: str, signal_number: int) -> ContainerInfo:
        """Send ``signal_number`` to the running container's process (a ``kill`` event); what
        happens next is the process's to decide. Its restart policy still applies."""
        container = self.db.resolve(ref)
        if container.state not in (states.RUNNING, states.STOPPING):
            raise InvalidState(container.id, container.state, "kill",
                               "only a running container has a process to signal",
                               name=container.name)
        with host_errors():
            delivered = self.host.runtime.kill(container.id, signal_number)
        if not delivered:
            raise InvalidState(container.id, "exited", "kill", "its process has just ended",
                               name=container.name)
        self.db.events.record(container.id, "kill", signal=signal.Signals(signal_number).name,
                              image=container.image, name=container.name)
        return container.info()

    # -- the end of a run -------------------------------------------------------------------

    def exit(self, container_id: str, run: int, exit_code: int) -> bool:
        """Run ``run`` of the container ended with ``exit_code``: fire ``exit`` if that run is
        the row's current one. A start that has not committed ``running`` yet (a process that
        exits at once) is waited for, at most one lease. An earlier run's report is ignored:
        it must never touch the next run's process, network or rootfs. True when this call
        committed the exit."""
        deadline = time.monotonic() + self.host.lease.total_seconds()
        while True:
            state = self.db.containers.state_of(container_id)
            if state is None or state[1] != run:
                return False
            if state[0] in (states.RUNNING, states.STOPPING):
                if self.fire_exit(container_id, run, exit_code):
                    return True
                continue
            if state[0] not in STARTING or time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def fire_exit(self, container_id: str, run: int, exit_code: int,
                  error: str | None = None) -> bool:
        """Fire ``exit`` for ``run`` if the row is still at that run, running or stopping;
        False when it is not (any more).

        ``wait``, ``stop``, the exit hook and recovery may all see the same exit. ``exit``'s
        side effects (the undo steps) run before its compare-and-swap, so two firers would both
        undo, and the later one, if the next run had started meanwhile, would unmount or kill
        *that* run. So they take turns, under a lock of the container's on this host (its
        resources are this node's), each reading the row afresh once it holds it."""
        with _held(self.host.paths(container_id).exit_lock):
            container = self.db.containers.load(container_id)
            if (container is None or container.run != run
                    or container.state not in (states.RUNNING, states.STOPPING)):
                return False
            try:
                self.fire(container, "exit", exit_code=exit_code, error=error)
            except ConcurrentTransition:
                return False  # moved by a transition that needs no lock (a stop)
            return True

    def report_exit_fired(self, paths: ContainerPaths, status: ExitStatus,
                          info: ContainerInfo) -> None:
        """``wait`` or ``stop`` fired ``exit`` for the run that ended at ``status`` (or found
        it fired): tell the shim whether it must still run the exit hook, which only a restart
        policy or auto-removal needs once ``exit`` is committed."""
        if info.state in (states.EXITED, states.DEAD):
            self.host.runtime.record_exit_handled(paths, status, after_exit_needed(info))

    def wait(self, ref: str, timeout: float | None) -> int:
        """Block until the container is ``exited`` or ``dead``; its exit code. Once the shim
        has recorded the run's exit, ``exit`` is fired here rather than by its exit hook."""
        container = self.db.resolve(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        # a tenth of the time waited so far, 1 ms to POLL_SECONDS: a quick exit is seen at once
        delays = poll_delays(longest=POLL_SECONDS)
        handled: tuple[ContainerPaths, ExitStatus] | None = None
        with _Announcer(self.host) as announce:
            while container.state not in (states.EXITED, states.DEAD):
                if container.state in (states.RUNNING, states.STOPPING):
                    paths = self.host.run_paths(container)
                    announce(paths)
                    status = self.host.runtime.exit_status(paths)
                    if status is not None:
                        with self.db.connections.operation():
                            fired = self.fire_exit(container.id, container.run,
                                                   status.exit_code)
                        if fired:
                            handled = (paths, status)
                        container = self.db.resolve(container.id)
                        continue
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"container {container.id[:12]} still runs after {timeout:g}s")
                time.sleep(next(delays))
                seen = self.db.containers.state_of(container.id)
                if seen is None:
                    raise NoSuchContainer(container.id)
                if seen != (container.state, container.run):
                    container = self.db.resolve(container.id)
            info = container.info()
            if handled is not None:
                self.report_exit_fired(*handled, info)
            return info.exit_code

    # -- remove -----------------------------------------------------------------------------

    def remove(self, ref: str, force: bool) -> None:
        """Delete the container, its layer and its files. ``force`` stops a running one, waits
        for a start under way and ends a restart policy's restarts; a removal that fails leaves
        the container ``dead``."""
        for _attempt in range(ATTEMPTS):
            container = self.db.resolve(ref)
            state = container.state
            if state in (states.RUNNING, states.STOPPING) or (force and state in STARTING):
                if not force:
                    raise InvalidState(container.id, state, "remove",
                                       "stop it first, or remove with force=True (`rm -f`)",
                                       name=container.name)
                self.stop(container.id, timeout=0)
                continue
            if force and state == states.EXITED and not container.manually_stopped \
                    and _may_restart(container):
                self.stop(container.id, timeout=0)  # ends the restarts
                continue
            try:
                self.fire(container, "remove")
            except ConcurrentTransition:
                continue
            break
        else:
            raise ConcurrentTransition(self.db.resolve_id(ref), "remove", "exited")
        try:
            self.fire(container, "removed")
        except Exception as error:
            self.fail(container, f"removing: {error}")
            raise BerthError(f"cannot remove container {container.id[:12]}: {error}") from error

    # -- waiting ----------------------------------------------------------------------------

    def wait_for_state(self, container_id: str, done: Callable[[str], bool], doing: str,
                       name: str) -> None:
        """Poll the row until ``done(state)`` (a removed row counts as done), at most one
        lease: an operation that takes longer is stuck, and recovery will take it over."""
        deadline = time.monotonic() + self.host.lease.total_seconds()
        while True:
            seen = self.db.containers.state_of(container_id)
            if seen is None or done(seen[0]):
                return
            if time.monotonic() >= deadline:
                raise InvalidState(container_id, seen[0], doing,
                                   "what it is doing takes longer than its lease; retry",
                                   name=name)
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self.leases.stop()


#: what :meth:`Runner._await_exit` returns when another process fired the run's ``exit``
_FIRED_ELSEWHERE = ExitStatus(-1, 0.0)


@contextlib.contextmanager
def _held(lock: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock`` (made if missing): released by the kernel when the
    holder dies, so a crash never leaves it held."""
    lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _may_restart(container: LiveContainer) -> bool:
    return bool(container.host_config["restart_policy"]["name"] != "no")


def _why_not_startable(container: LiveContainer) -> str:
    if container.state == states.REMOVING:
        return "its removal is in progress"
    return "a dead container cannot start again: remove it and create a new one"


class _Announcer:
    """Tells the shim of each run that ``wait`` is here to fire ``exit`` itself (see
    :meth:`drivers.runtime.oci.OCIRuntime.waiting_for_exit`), one run at a time."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.stack = contextlib.ExitStack()
        self.paths: ContainerPaths | None = None

    def __enter__(self) -> Callable[[ContainerPaths], None]:
        return self.announce

    def announce(self, paths: ContainerPaths) -> None:
        if paths == self.paths:
            return
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(self.host.runtime.waiting_for_exit(paths))
        self.paths = paths

    def __exit__(self, *_exc: object) -> None:
        self.stack.close()

