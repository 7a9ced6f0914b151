"""The public API: :class:`Orchestrator`.

>>> from fsm import Orchestrator
>>> orc = Orchestrator()                                   # embedded defaults
>>> orc.import_image("busybox", "busybox.tar")
>>> c = orc.create("busybox", ["sh", "-c", "echo hi; exit 7"], network_mode="none")
>>> orc.start(c.id).state
'running'
>>> orc.wait(c.id)
7
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from drivers.crashpoints import crash_point
from drivers.runtime.oci import ContainerPaths, ExitStatus, OCIRuntime, poll_delays
from drivers.storage import StorageDriver
from fsm import states, validation
from fsm.bridge import Bridge
from fsm.container import LiveContainer
from fsm.database import ensure_schema, open_engine, reader
from fsm.errors import (
    AmbiguousReference,
    BerthError,
    ConcurrentTransition,
    ConfigError,
    DriverError,
    ImageInUse,
    InvalidState,
    NameInUse,
    NoSuchContainer,
    NoSuchImage,
    StartFailed,
    Timeout,
    host_errors,
)
from fsm.info import ContainerInfo, Event, ImageInfo, TransitionRecord
from fsm.leases import LeaseKeeper
from fsm.listing import list_containers, list_states
from fsm.machine import fire
from fsm.owner import owner_id
from fsm.restart import report_exit_fired
from fsm.settings import resolve
from fsm.sql import SQL
from fsm.storage import check_options, open_storage
from fsm.stored import read_time
from models import Container, ContainerEvent, Image, TransitionAudit, utcnow

#: how long an in-flight state stays ours without renewal; renewed every third of it
DEFAULT_LEASE_SECONDS = 60.0
#: after SIGKILL, how long the process may take to be reaped before stop gives up
KILL_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.02
#: what :meth:`Orchestrator._await_stop` returns when someone else fired the stopped run's exit
_EXIT_FIRED_ELSEWHERE = ExitStatus(-1, 0.0)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _holding_connection(
    operation: Callable[Concatenate[Orchestrator, _P], _R]
) -> Callable[Concatenate[Orchestrator, _P], _R]:
    """The operation's statements share one pooled connection (:meth:`fsm.sql.SQL.held`)."""

    @functools.wraps(operation)
    def holding(orc: Orchestrator, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with orc.sql.held():
            return operation(orc, *args, **kwargs)

    return holding


class Orchestrator:
    """Drives containers through their lifecycle; the database is the truth about them.

    ``database_url`` defaults to ``$BERTH_DATABASE_URL``, else a SQLite file in the data root;
    ``root`` to ``$BERTH_ROOT``, else ``/var/lib/berth`` (root) or ``~/.local/share/berth``.
    ``storage`` is ``"vfs"`` or ``"devicemapper"``; ``None`` picks the one the database's images
    already use, else devicemapper where the kernel has dm-thin, else vfs. ``runtime`` is
    ``"runc"`` or ``"crun"``. ``recover`` runs :meth:`recover` at once (the default).
    ``storage_options`` tune devicemapper (``{"base_size": "20G", "data_loop_size": "50G"}``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        root: str | os.PathLike[str] | None = None,
        storage: str | None = None,
        runtime: str = "runc",
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        recover: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if storage not in (None, "vfs", "devicemapper"):
            raise ConfigError("storage", storage, "'vfs', 'devicemapper' or None (automatic)")
        if runtime not in ("runc", "crun"):
            raise ConfigError("runtime", runtime, "'runc' or 'crun'")
        check_options(storage, storage_options or {})
        if not lease_seconds > 0:
            raise ConfigError("lease_seconds", lease_seconds, "a positive number of seconds")
        self.settings = resolve(root, database_url)
        self.engine = open_engine(self.settings.database_url)
        #: the same pool, for lone SELECTs: no transaction around them, no SQLite write lock
        self.reader = reader(self.engine)
        #: every transition's statements, on the driver's cursor (:mod:`fsm.sql`)
        self.sql = SQL(self.engine)
        ensure_schema(self.engine, self.settings.database_url, embedded=self.settings.embedded,
                      lock_dir=self.settings.root)
        self._storage_name = storage
        self._storage_options = dict(storage_options or {})
        self._runtime_name = runtime
        self.lease_seconds = lease_seconds
        self.leases = LeaseKeeper(lease_seconds / 3)
        if recover:
            # what a crashed orchestrator of this node left in flight is reconciled now; with
            # nothing in flight this is one indexed query
            self.recover()

    # -- what the lifecycle steps use ------------------------------------------------------

    @property
    def owner(self) -> str:
        """``node:pid:start-time`` of this process: the owner of the rows it drives."""
        return owner_id(self.settings.node)

    @cached_property
    def storage(self) -> StorageDriver:
        """The storage driver, opened on first use (``ps`` never touches a thin pool)."""
        return open_storage(self._storage_name, self.settings.root, self.engine,
                            self._storage_options)

    @cached_property
    def runtime(self) -> OCIRuntime:
        """The OCI runtime driver (runc or crun), with its state under ``<root>/runtime``."""
        with host_errors():
            return OCIRuntime(self._runtime_name, self.settings.root / "runtime")

    @cached_property
    def bridge(self) -> Bridge:
        """The default network: the ``berth0`` bridge and its addresses (``endpoints``)."""
        return Bridge(self.engine, self.settings)

    def paths(self, container_id: str) -> ContainerPaths:
        """Where a container's files are: ``paths(id).log`` is its stdout and stderr."""
        return ContainerPaths(self.settings.container_dir(container_id))

    def exit_command(self, container_id: str) -> list[str]:
        """What the shim runs when the process has ended (the exit code is appended)."""
        return [sys.executable, "-m", "fsm.exit_hook", container_id]

    def exit_env(self) -> dict[str, str]:
        """The settings the exit hook needs to open this same orchestrator."""
        return {
            "BERTH_ROOT": str(self.settings.root),
            "BERTH_DATABASE_URL": self.settings.database_url,
            "BERTH_STORAGE": self.storage.name,
            "BERTH_STORAGE_OPTIONS": json.dumps(self._storage_options),
            "BERTH_RUNTIME": self.runtime.name,
            "BERTH_NODE": self.settings.node,
        }

    # -- containers ------------------------------------------------------------------------

    @_holding_connection
    def create(
        self,
        image: str,
        command: Sequence[str],
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        working_dir: str | None = None,
        network_mode: str = "",
        ipc_mode: str = "",
        tmpfs: dict[str, str] | None = None,
        links: Sequence[str] | None = None,
        restart_policy: str = "no",
        mounts: Sequence[dict[str, Any]] | None = None,
        exposed_ports: Sequence[str] | None = None,
        shm_size: str | int | None = None,
        auto_remove: bool = False,
    ) -> ContainerInfo:
        """Create a container (state ``created``) from ``image``, to run ``command``.

        Everything is checked before anything is made: a bad argument raises
        :class:`ConfigError` naming it, an unknown image :class:`NoSuchImage`, a taken name
        :class:`NameInUse`; then the container's layer is made and its row committed.
        ``auto_remove`` removes the container when its process exits (``run --rm -d``), unless
        its restart policy starts it again.
        """
        if not isinstance(auto_remove, bool):
            raise ConfigError("auto_remove", auto_remove, "True or False")
        config: dict[str, Any] = {
            "cmd": validation.command(command),
            "env": validation.env(env),
            "working_dir": validation.working_dir(working_dir),
            "exposed_ports": validation.exposed_ports(exposed_ports),
        }
        host_config: dict[str, Any] = {
            "network_mode": validation.network_mode(network_mode),
            "ipc_mode": validation.ipc_mode(ipc_mode),
            "tmpfs": validation.tmpfs(tmpfs),
            "links": validation.links(links),
            "restart_policy": validation.restart_policy(restart_policy),
            "mounts": validation.mounts(mounts),
            "shm_size": None if shm_size is None else validation.size_bytes("shm_size", shm_size),
            "auto_remove": auto_remove,
        }
        if name is not None:
            validation.container_name(name)
        image_row = self._image(image)
        for mode_field in ("network_mode", "ipc_mode"):
            mode = host_config[mode_field]
            if mode.startswith("container:"):
                self._resolve(mode.removeprefix("container:"))
        for link in host_config["links"]:
            target = self.get(link["container"])
            if target.state != states.RUNNING:
                raise InvalidState(target.id, target.state, "link to",
                                   "start it before creating a container linked to it",
                                   name=target.name)
        container_id = secrets.token_hex(32)
        if name is None:
            # not looked up: it is new with the new id (the unique index would still refuse a
            # clash, and the insert's error path below names it)
            name = f"berth_{container_id[:12]}"
        else:
            self._check_name_free(name)
        with host_errors():
            self.storage.create(container_id, image_row.id)
        now = utcnow()
        row: dict[str, Any] = {
            "id": container_id, "name": name, "image_id": image_row.id, "state": states.CREATED,
            "version": 1, "owner": None, "lease_expires_at": None, "node": self.settings.node,
            "exit_code": 0, "error": "", "pid": None, "created_at": now, "started_at": None,
            "finished_at": None, "has_been_started_before": False, "restart_count": 0,
            "manually_stopped": False, "config": config, "host_config": host_config,
        }
        try:
            self.sql.commit_change((self.sql.insert_container, self.sql.container_row(row)),
                                   None, now, container_id,
                                   [("create", {"image": image_row.name, "name": name})])
        except self.sql.IntegrityError as error:
            with host_errors():
                self.storage.remove(container_id)
            self._check_name_free(name)
            raise BerthError(f"cannot create the container: {error}") from error
        del row["lease_expires_at"]
        return LiveContainer(orc=self, image_name=image_row.name, **row).info()

    @_holding_connection
    def start(self, ref: str) -> ContainerInfo:
        """Start the container and return once its process really runs.

        A running container is returned unchanged. On failure the error edge has run (the
        container is ``dead``, ``exit_code`` 128, a ``die`` event says why, and nothing is left
        on the host) and :class:`StartFailed` is raised.
        """
        container = self._load(ref)
        if container.state == states.RUNNING:
            return container.info()
        if container.state in (states.DEAD, states.REMOVING):
            raise InvalidState(container.id, container.state, "start",
                               "its removal is in progress or it is dead: create a new one",
                               name=container.name)
        try:
            self._fire(container, "start")
        except (ConcurrentTransition, InvalidState):
            again = self._load(container.id)
            if again.state == states.RUNNING:
                return again.info()
            raise
        self._run_start_steps(container)
        return container.info()

    def _run_start_steps(self, container: LiveContainer) -> None:
        try:
            for trigger in states.START_SEQUENCE[1:]:
                self._fire(container, trigger)
        except BaseException as error:
            step = states.STEP_NAMES.get(container.state, container.state)
            cause = str(error) or type(error).__name__
            try:
                self._fire(container, "fail", error=f"{step}: {cause}")
            except ConcurrentTransition:
                pass  # recovery took the row over; it has undone the steps itself
            if isinstance(error, Exception):
                raise StartFailed(container.id, step, cause) from error
            raise

    @_holding_connection
    def stop(self, ref: str, timeout: float = 10) -> ContainerInfo:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once the container has
        exited. Stopping a container that is not running changes nothing."""
        if timeout < 0:
            raise ConfigError("timeout", timeout, "a number of seconds >= 0")
        container = self._load(ref)
        if container.state in (states.MOUNTING, states.NETWORKING, states.STARTING):
            # a start (perhaps a restart policy's) is under way: let it finish, then stop. The
            # row is not touched meanwhile: that would make the starting process's next
            # compare-and-swap fail and leave the row in flight until its lease expires.
            starting = {states.MOUNTING, states.NETWORKING, states.STARTING}
            if not self._wait_until(container.id, lambda s: s not in starting,
                                    self.lease_seconds):
                raise InvalidState(container.id, container.state, "stop",
                                   "its start is taking longer than its lease; retry",
                                   name=container.name)
            container = self._load(container.id)
        if container.state in (states.CREATED, states.EXITED, states.DEAD):
            if container.state == states.EXITED and not container.manually_stopped:
                # a restart may be waiting out its back-off: this stop ends it
                self._set_manually_stopped(container.id)
                return self.get(container.id)
            return container.info()
        if container.state == states.RUNNING:
            self._fire(container, "stop")
        elif container.state != states.STOPPING:
            raise InvalidState(container.id, container.state, "stop",
                               "its removal is in progress", name=container.name)
        paths = self.paths(container.id)
        # as in wait: the shim holds its exit hook back while we are here to fire ``exit``
        with self.runtime.waiting_for_exit(paths):
            with host_errors():
                self.runtime.kill(container.id, signal.SIGTERM)
                crash_point("stop.after_signal")
                status = self._await_stop(container.id, paths, timeout)
                if status is None:
                    self._record_event(container.id, "kill", signal="SIGKILL")
                    self.runtime.kill(container.id, signal.SIGKILL)
                    status = self._await_stop(container.id, paths, KILL_GRACE_SECONDS)
            if status is _EXIT_FIRED_ELSEWHERE:
                return self.get(container.id)
            if status is None:
                raise Timeout(f"container {container.id[:12]} did not die after SIGKILL in "
                              f"{KILL_GRACE_SECONDS:g}s")
            # the shim's exit hook may fire ``exit`` too (if it did not see us in time);
            # whichever commits first wins, the other sees the row already exited
            self.handle_exit(container.id, status.exit_code)
            info = self.get(container.id)
            report_exit_fired(self.runtime, paths, status, info)
            return info

    def restart_after_exit(self, info: ContainerInfo) -> ContainerInfo:
        """Start an exited container again because its restart policy says so."""
        container = self._load(info.id)
        if container.manually_stopped:
            raise InvalidState(container.id, container.state, "restart",
                               "it was stopped by its user", name=container.name)
        container.set(restart_count=container.restart_count + 1)
        container.emit("restart", restartCount=container.restart_count + 1)
        self._fire(container, "start", restarting=True)
        self._run_start_steps(container)
        return container.info()

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Block until the container is ``exited`` or ``dead``; return its exit code."""
        container_id = self._resolve(ref)
        paths = self.paths(container_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        # a tenth of the time waited so far, 1 ms to POLL_SECONDS: a quick exit is seen at once
        delays = poll_delays(longest=POLL_SECONDS)
        handled: ExitStatus | None = None
        # the shim holds its exit hook (a new interpreter, ~0.7 s of CPU) back while we are here
        # to fire ``exit`` ourselves, and skips it if we say nothing is left for it to do
        with self.runtime.waiting_for_exit(paths):
            while True:
                state = self._state_of(container_id)
                if state is None or state in (states.EXITED, states.DEAD):
                    break
                if state in (states.RUNNING, states.STOPPING):
                    # the shim has recorded the exit: fire it here rather than wait for its hook
                    status = self.runtime.exit_status(paths)
                    if status is not None:
                        self.handle_exit(container_id, status.exit_code)
                        handled = status
                        continue
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"container {container_id[:12]} still runs after {timeout:g}s")
                time.sleep(next(delays))
            info = self.get(container_id)
            if handled is not None:
                # committed: the hook is needed only for a restart policy or auto-removal
                report_exit_fired(self.runtime, paths, handled, info)
            return info.exit_code

    @_holding_connection
    def remove(self, ref: str, force: bool = False) -> None:
        """Delete the container, its layer and its files (its events and history stay).

        A running container is refused unless ``force``, which kills it first. A removal that
        fails leaves the container ``dead``.
        """
        container = self._load(ref)
        if container.state in (states.RUNNING, states.STOPPING):
            if not force:
                raise InvalidState(container.id, container.state, "remove",
                                   "stop it first, or remove with force=True (`rm -f`)",
                                   name=container.name)
            self.stop(container.id, timeout=0)
            container = self._load(container.id)
        self._fire(container, "remove")
        try:
            self._fire(container, "removed")
        except Exception as error:
            self._fire(container, "fail", error=f"removing: {error}")
            raise DriverError(f"cannot remove container {container.id[:12]}: {error}") from error

    def logs(self, ref: str) -> str:
        """What the container's process wrote to stdout and stderr so far (all its runs)."""
        log = self.paths(self._resolve(ref)).log
        try:
            return log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def get(self, ref: str) -> ContainerInfo:
        """The container as it is now (``ref``: a name, a full id or a unique id prefix)."""
        return self._load(ref).info()

    def list(self, all: bool = False, state: str | Iterable[str] | None = None
             ) -> builtins.list[ContainerInfo]:
        """Running containers, newest first; ``all=True`` for every state, or ``state`` to pick
        some (``"exited"`` or ``["exited", "dead"]``)."""
        wanted = list_states(all, state)
        dialect = self.engine.dialect.name
        return self.sql.read(lambda cursor: list_containers(cursor, dialect, wanted))

    def events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        container: str | None = None,
        actions: Iterable[str] | None = None,
    ) -> builtins.list[Event]:
        """The event log, oldest first, filtered by time, container and action."""
        query = select(ContainerEvent).order_by(ContainerEvent.time, ContainerEvent.id)
        if since is not None:
            query = query.where(ContainerEvent.time >= _aware("since", since))
        if until is not None:
            query = query.where(ContainerEvent.time <= _aware("until", until))
        if container is not None:
            query = query.where(ContainerEvent.container_id == self._resolve_any(container))
        if actions is not None:
            query = query.where(ContainerEvent.action.in_(builtins.list(actions)))
        with Session(self.reader) as session:
            rows = session.execute(query).scalars().all()
        return [Event(r.id, r.time, r.container_id, r.action, dict(r.attributes)) for r in rows]

    def history(self, ref: str) -> builtins.list[TransitionRecord]:
        """Every committed transition of the container, oldest first."""
        container_id = self._resolve_any(ref)
        query = (select(TransitionAudit).where(TransitionAudit.container_id == container_id)
                 .order_by(TransitionAudit.id))
        with Session(self.reader) as session:
            rows = session.execute(query).scalars().all()
        return [TransitionRecord(r.container_id, r.trigger, r.source, r.dest, r.started_at,
                                 r.finished_at, r.error) for r in rows]

    # -- images ----------------------------------------------------------------------------

    def import_image(self, name: str, tar_path: str | os.PathLike[str]) -> ImageInfo:
        """Import a root filesystem tarball as image ``name``."""
        from fsm.images import import_image

        return import_image(self, validation.image_name(name), Path(tar_path))

    def images(self) -> builtins.list[ImageInfo]:
        """Every imported image, by name."""
        with Session(self.reader) as session:
            rows = session.execute(select(Image).order_by(Image.name)).scalars().all()
        return [ImageInfo(r.id, r.name, r.size, r.storage_driver, r.created_at) for r in rows]

    def remove_image(self, name: str) -> None:
        """Delete an image and its layer; refused (:class:`ImageInUse`) while containers use
        it."""
        image = self._image(name)
        with self.reader.connect() as connection:
            users = connection.execute(
                select(Container.id).where(Container.image_id == image.id)).scalars().all()
        if users:
            raise ImageInUse(image.name, users)
        with self.engine.begin() as connection:
            connection.execute(delete(Image).where(Image.id == image.id))
        with host_errors():
            self.storage.remove(image.id)

    # -- the exit of a process, and recovery -----------------------------------------------

    @_holding_connection
    def handle_exit(self, container_id: str, exit_code: int) -> None:
        """The process ended: fire ``exit`` (from ``running`` or ``stopping``).

        Called by the shim through ``fsm.exit_hook``. If ``start`` has not yet committed
        ``running`` (a process that exits at once), wait for it, at most one lease.
        """
        deadline = time.monotonic() + self.lease_seconds
        while True:
            try:
                container = self._load(container_id)
            except NoSuchContainer:
                return
            if container.state in (states.RUNNING, states.STOPPING):
                try:
                    self._fire(container, "exit", exit_code=exit_code)
                except ConcurrentTransition:
                    continue
                return
            if container.state not in (states.MOUNTING, states.NETWORKING, states.STARTING):
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(POLL_SECONDS)

    def recover(self) -> dict[str, builtins.list[str]]:
        """Reconcile rows this node was driving when it crashed; see :mod:`fsm.recovery`."""
        from fsm.recovery import recover

        return recover(self)

    def close(self) -> None:
        """Stop renewing leases and close database connections (containers keep running)."""
        self.leases.stop()
        self.sql.close()
        self.engine.dispose()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _fire(self, container: LiveContainer, trigger: str, **kwargs: Any) -> None:
        container.trigger_started_at = utcnow()
        with self.leases.keep(container):
            fire(container, trigger, **kwargs)

    def _load(self, ref: str) -> LiveContainer:
        _check_ref(ref)
        # a full id or a name is one query; only an id prefix needs resolving first
        row = self.sql.fetch_one(self.sql.select_live, (ref, ref))
        if row is None:
            container_id = self._resolve_prefix(ref)
            row = self.sql.fetch_one(self.sql.select_live, (container_id, container_id))
        if row is None:
            raise NoSuchContainer(ref)
        return LiveContainer.from_stored(self, row)

    def _resolve(self, ref: str) -> str:
        """A full id, a name, or a unique id prefix → the container's id."""
        _check_ref(ref)
        with self.reader.connect() as connection:
            exact = connection.execute(
                select(Container.id).where((Container.id == ref) | (Container.name == ref))
                .limit(1)).scalar_one_or_none()
        return exact if exact is not None else self._resolve_prefix(ref)

    def _resolve_prefix(self, ref: str) -> str:
        """A unique id prefix → the container's id (after an exact id or name did not match)."""
        if not all(c in "0123456789abcdef" for c in ref):
            raise NoSuchContainer(ref)
        with self.reader.connect() as connection:
            matches = connection.execute(
                select(Container.id).where(Container.id.startswith(ref, autoescape=True))
                .limit(10)).scalars().all()
        if not matches:
            raise NoSuchContainer(ref)
        if len(matches) > 1:
            raise AmbiguousReference(ref, matches)
        return matches[0]

    def _resolve_any(self, ref: str) -> str:
        """Like :meth:`_resolve`, but a full id of a removed container is accepted too."""
        try:
            return self._resolve(ref)
        except NoSuchContainer:
            if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
                return ref
            raise

    def _image(self, ref: str) -> ImageInfo:
        if not isinstance(ref, str) or not ref:
            raise ConfigError("image", ref, "an image name (see `berth image ls`)")
        row = self.sql.fetch_one(self.sql.select_image, (ref, ref))
        if row is None:
            raise NoSuchImage(ref)
        image_id, name, size, storage_driver, created_at = row
        return ImageInfo(image_id, name, size, storage_driver, read_time(created_at))

    def _check_name_free(self, name: str) -> None:
        owner = self.sql.fetch_one(self.sql.select_id_by_name, (name,))
        if owner is not None:
            raise NameInUse("container", name, owner[0])

    def _record_event(self, container_id: str, action: str, **attributes: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(ContainerEvent).values(
                time=utcnow(), container_id=container_id, action=action, attributes=attributes))

    def _set_manually_stopped(self, container_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(Container)
                               .where(Container.id == container_id)
                               .values(manually_stopped=True, version=Container.version + 1))

    def _state_of(self, container_id: str) -> str | None:
        with self.reader.connect() as connection:
            return connection.execute(
                select(Container.state).where(Container.id == container_id)).scalar_one_or_none()

    def _await_stop(self, container_id: str, paths: ContainerPaths,
                    timeout: float) -> ExitStatus | None:
        """The stopped process's exit status, once the shim has recorded it; or
        ``_EXIT_FIRED_ELSEWHERE`` once another process (a ``wait``, the exit hook) has fired
        ``exit`` for it: its ``exit.json`` may then be gone already (a ``start`` that followed
        clears it), and a SIGKILL now could hit the next run. ``None`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delays = poll_delays()
        while True:
            status = self.runtime.exit_status(paths)
            if status is not None:
                return status
            if self._state_of(container_id) != states.STOPPING:
                return _EXIT_FIRED_ELSEWHERE
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))

    def _wait_until(self, container_id: str, done: Any, timeout: float | None) -> bool:
        """Poll the row until ``done(state)`` (a removed row counts as done)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self._state_of(container_id)
            if state is None or done(state):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)



def _check_ref(ref: object) -> None:
    if not isinstance(ref, str) or not ref or len(ref) > 128 or "\x00" in ref:
        raise ConfigError("ref", ref, "a container name, full id or unique id prefix")


def _aware(field: str, value: datetime | timedelta) -> datetime:
    if isinstance(value, timedelta):
        return utcnow() - value
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(field, value, "a timezone-aware datetime, or a timedelta ago")
    return value

