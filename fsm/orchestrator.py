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
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import IntegrityError

from drivers.crashpoints import crash_point
from drivers.runtime.logs import LogLine, follow_lines, read_lines, selected
from drivers.runtime.oci import ContainerPaths, OCIRuntime
from drivers.storage import StorageDriver
from fsm import states, validation
from fsm.container import LiveContainer
from fsm.errors import (
    BerthError,
    ConfigError,
    InvalidState,
    NameInUse,
    host_errors,
)
from fsm.images.progress import Progress, silent
from fsm.info import ContainerInfo, Event, ImageInfo, TransitionRecord
from fsm.owner import owner_id
from fsm.runner import Runner
from fsm.sessions import ExecResult, run_exec
from fsm.settings import resolve
from fsm.steps.host import Drivers, Host
from fsm.steps.layers import claim_layer, make_layer, undo_layer
from fsm.storage import check_options, open_storage
from fsm.store.database import Database
from fsm.store.layers import LayerRecord
from models import utcnow

#: how long an in-flight state stays ours without renewal; renewed every third of it
DEFAULT_LEASE_SECONDS = 60.0


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_operation(
    method: Callable[Concatenate[Orchestrator, _P], _R]
) -> Callable[Concatenate[Orchestrator, _P], _R]:
    """The operation's statements share one pooled connection (one checkout, one ping)."""

    @functools.wraps(method)
    def in_one_operation(orc: Orchestrator, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with orc.db.connections.operation():
            return method(orc, *args, **kwargs)

    return in_one_operation


class Orchestrator:
    """Drives containers through their lifecycle; the database is the truth about them.

    ``database_url`` defaults to ``$BERTH_DATABASE_URL``, else a SQLite file in the data root;
    ``root`` to ``$BERTH_ROOT``, else ``/var/lib/berth`` (root) or ``~/.local/share/berth``.
    ``storage`` is ``"overlay"``, ``"devicemapper"`` or ``"vfs"``; ``None`` picks the one the
    data root's layers already live in (asking for another one there is a :class:`ConfigError`),
    else devicemapper where the kernel has dm-thin, else overlay where the kernel and the data
    root's filesystem can stack it (``berth pool status`` says why not), else vfs. ``runtime`` is
    ``"runc"`` or ``"crun"``. ``recover`` runs :meth:`recover` at once (the default).
    ``storage_options`` tune devicemapper (``{"base_size": "20G", "data_loop_size": "50G"}``).
    ``drivers`` hands in drivers built elsewhere (a test's fault injector, a benchmark's null
    driver); the others are built here, on first use.
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
        drivers: Drivers | None = None,
    ) -> None:
        if storage not in (None, "vfs", "overlay", "devicemapper"):
            raise ConfigError("storage", storage,
                              "'vfs', 'overlay', 'devicemapper' or None (automatic)")
        if runtime not in ("runc", "crun"):
            raise ConfigError("runtime", runtime, "'runc' or 'crun'")
        check_options(storage, storage_options or {})
        if not lease_seconds > 0:
            raise ConfigError("lease_seconds", lease_seconds, "a positive number of seconds")
        self.settings = resolve(root, database_url)
        self.db = Database(self.settings.database_url, create_sqlite_file=self.settings.embedded)
        if not self.db.at_schema_head():
            from fsm.store.schema import ensure_schema  # alembic: only when not current

            ensure_schema(self.db.engine, self.settings.database_url,
                          embedded=self.settings.embedded, lock_dir=self.settings.root)
        self._storage_name = storage
        self._storage_options = dict(storage_options or {})
        self._runtime_name = runtime
        self.lease_seconds = lease_seconds
        self.host = Host(self.db, self.settings, owner_id(self.settings.node), lease_seconds,
                         drivers or Drivers(), self._build_driver, self._exit_command,
                         self._exit_env)
        self.runner = Runner(self.host)
        if recover:
            # what a crashed orchestrator of this node left in flight is reconciled now; with
            # nothing in flight this is one indexed query
            self.recover()

    # -- the host --------------------------------------------------------------------------

    @property
    def storage(self) -> StorageDriver:
        """The storage driver, opened on first use (``ps`` never touches a thin pool)."""
        return self.host.storage

    @property
    def runtime(self) -> OCIRuntime:
        """The OCI runtime driver (runc or crun), with its state under ``<root>/runtime``."""
        return self.host.runtime

    def paths(self, container_id: str) -> ContainerPaths:
        """Where a container's files are: ``paths(id).log`` is its stdout and stderr."""
        return self.host.paths(container_id)

    def _build_driver(self, kind: str) -> Any:
        """The one place drivers are built (those not handed in through ``drivers``)."""
        if kind == "storage":
            return open_storage(self._storage_name, self.settings.root, self.db,
                                self._storage_options, node=self.settings.node)
        if kind == "runtime":
            with host_errors():
                return OCIRuntime(self._runtime_name, self.settings.root / "runtime")
        if kind == "network":
            from fsm.steps.bridge import Bridge

            return Bridge(self.db.addresses)
        raise ValueError(f"no driver of kind {kind!r}")

    def _exit_command(self, container_id: str, run: int) -> list[str]:
        """What the shim runs when a run's process has ended (the exit code is appended)."""
        return [sys.executable, "-m", "fsm.exit_hook", container_id, str(run)]

    def _exit_env(self) -> dict[str, str]:
        """The settings the exit hook needs to open this same database and host."""
        return {
            "BERTH_ROOT": str(self.settings.root),
            "BERTH_DATABASE_URL": self.settings.database_url,
            "BERTH_STORAGE": self.storage.name,
            "BERTH_STORAGE_OPTIONS": json.dumps(self._storage_options),
            "BERTH_RUNTIME": self.runtime.name,
            "BERTH_NODE": self.settings.node,
        }

    # -- containers ------------------------------------------------------------------------

    @_one_operation
    def create(
        self,
        image: str,
        command: Sequence[str] | None = None,
        *,
        entrypoint: Sequence[str] | str | None = None,
        user: str | None = None,
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
        log_max_size: str | int | None = None,
    ) -> ContainerInfo:
        """Create a container (state ``created``) from ``image``, to run ``command``.

        The image's configuration applies as Docker applies it: ``command`` replaces its Cmd,
        ``entrypoint`` its Entrypoint (and clears its Cmd); ``env`` is merged over its Env;
        ``working_dir`` and ``user`` (a name or ``uid[:gid]``, resolved in the image's
        ``/etc/passwd`` and ``/etc/group``) default to its own; its StopSignal is what ``stop``
        sends. Everything is checked before anything is made: a bad argument raises
        :class:`ConfigError` naming it, an unknown image :class:`NoSuchImage`, a taken name
        :class:`NameInUse`; then the container's layer is made and its row committed.
        ``auto_remove`` removes the container when its process exits (``run --rm -d``), unless
        its restart policy starts it again. ``log_max_size`` (``10m``, bytes) caps its log: past
        it, conmon starts the log afresh (the newest lines stay), across restarts too.
        """
        if not isinstance(auto_remove, bool):
            raise ConfigError("auto_remove", auto_remove, "True or False")
        if command is not None:
            validation.command(command)
        if working_dir is not None:
            validation.working_dir(working_dir)
        given_ports = validation.exposed_ports(exposed_ports)
        host_config: dict[str, Any] = {
            "network_mode": validation.network_mode(network_mode),
            "ipc_mode": validation.ipc_mode(ipc_mode),
            "tmpfs": validation.tmpfs(tmpfs),
            "links": validation.links(links),
            "restart_policy": validation.restart_policy(restart_policy),
            "mounts": validation.mounts(mounts),
            "shm_size": None if shm_size is None else validation.size_bytes("shm_size", shm_size),
            "auto_remove": auto_remove,
            "log_max_size": None if log_max_size is None else validation.size_bytes(
                "log_max_size", log_max_size),
        }
        if name is not None:
            validation.container_name(name)
        image_row = self.image(image)
        config = self._process_config(image_row, command=command, entrypoint=entrypoint,
                                      env=env, working_dir=working_dir, user=user,
                                      exposed_ports=given_ports)
        node = self.settings.node
        top = self.db.layers.get(node, image_row.top_layer)
        if top is None or top.state != "ready":
            raise BerthError(f"image {image_row.name!r} has no layers on node {node!r}: pull "
                             "or load it on this node")
        for mode_field in ("network_mode", "ipc_mode"):
            mode = host_config[mode_field]
            if mode.startswith("container:"):
                self.db.resolve_id(mode.removeprefix("container:"))
        for link in host_config["links"]:
            target = self.db.resolve(link["container"])
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
        if not claim_layer(self.host, container_id, kind="container", parent=top.id):
            raise BerthError(f"a layer {container_id[:12]} exists already")  # a 256-bit clash
        make_layer(self.host, container_id, top.id)
        crash_point("create.after_layer")
        now = utcnow()
        # as the user named it, as ``docker ps`` shows it
        shown_image = image
        row: dict[str, Any] = {
            "id": container_id, "name": name, "image_id": image_row.id, "image": shown_image,
            "state": states.CREATED,
            "version": 1, "owner": None, "lease_expires_at": None, "node": self.settings.node,
            "exit_code": 0, "error": "", "pid": None, "created_at": now, "started_at": None,
            "finished_at": None, "has_been_started_before": False, "restart_count": 0,
            "manually_stopped": False, "run": 0, "config": config, "host_config": host_config,
        }
        try:
            self.db.containers.insert(row, now, [("create", {"image": shown_image,
                                                             "name": name})])
        except BaseException as error:
            undo_layer(self.host, container_id)
            if isinstance(error, IntegrityError):
                self._check_name_free(name)
                raise BerthError(f"cannot create the container: {error.orig}") from error
            raise
        crash_point("create.after_insert")
        self.db.layers.ready(node, container_id, 0)
        del row["lease_expires_at"]
        return LiveContainer(**row).info()

    def _process_config(self, image: ImageInfo, *, command: Sequence[str] | None,
                        entrypoint: Sequence[str] | str | None, env: dict[str, str] | None,
                        working_dir: str | None, user: str | None,
                        exposed_ports: Sequence[str]) -> dict[str, Any]:
        """The container's ``config`` column: its process as the image and the arguments
        make it (see :meth:`create`)."""
        from fsm.images.process import container_process
        from fsm.images.users import resolve_user

        process = container_process(image.config.get("config") or {}, command=command,
                                    entrypoint=entrypoint, env=env, working_dir=working_dir,
                                    user=user)
        # an image stored before migration 0008 has no accounts: only numeric users resolve
        accounts = self.db.images.accounts(image.id) if process.user_spec else {}
        resolved = resolve_user(process.user_spec, accounts.get("passwd", ""),
                                accounts.get("group", ""))
        return {
            "cmd": list(process.args),
            "env": process.env,
            "working_dir": process.working_dir,
            "exposed_ports": list(dict.fromkeys([*process.exposed_ports, *exposed_ports])),
            "user": {"spec": process.user_spec, "uid": resolved.uid, "gid": resolved.gid,
                     "additional_gids": list(resolved.additional_gids),
                     "home": resolved.home},
            "stop_signal": process.stop_signal,
            "labels": process.labels,
        }

    @_one_operation
    def start(self, ref: str) -> ContainerInfo:
        """Start the container and return once its process really runs.

        A running container is returned unchanged, and a start already under way is waited for.
        On failure the error edge has run (the container is ``dead``, ``exit_code`` 128, a
        ``die`` event says which phase failed and why, and nothing is left on the host) and
        :class:`StartFailed` is raised.
        """
        return self.runner.start(ref)

    @_one_operation
    def stop(self, ref: str, timeout: float = 10) -> ContainerInfo:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once the container has
        exited. Stopping a container that is not running changes nothing, except that a
        restart policy will not start it again."""
        return self.runner.stop(ref, timeout)

    def exec(self, ref: str, command: Sequence[str], *, user: str | None = None,
             env: dict[str, str] | None = None, working_dir: str | None = None,
             stdin: bytes | None = None, timeout: float = 600) -> ExecResult:
        """Run ``command`` in the running container, as ``docker exec`` does, and return its
        exit code and output, per stream. ``user`` (a name or ``uid[:gid]`` of the image's
        ``/etc/passwd``), ``env`` (over the container's) and ``working_dir`` default to the
        container's; ``stdin`` is fed to it, then closed. Events ``exec_create``,
        ``exec_start``, ``exec_die`` (``exitCode``) record it. A container that is not running
        is an :class:`InvalidState`; bad arguments a :class:`ConfigError`, before anything
        runs.

        >>> orc.exec("web", ["sh", "-c", "id -u; exit 3"], user="nobody")
        ExecResult(exit_code=3, stdout=b'65534\n', stderr=b'')
        """
        from fsm.images.users import resolve_user

        args = validation.command(command)
        extra_env = validation.env(env or {})
        if working_dir is not None:
            validation.working_dir(working_dir)
        if stdin is not None and not isinstance(stdin, bytes):
            raise ConfigError("stdin", stdin, "bytes, or None")
        if not timeout > 0:
            raise ConfigError("timeout", timeout, "a positive number of seconds")
        resolved = None
        if user is not None:
            container = self.db.resolve(ref)
            accounts = self.db.images.accounts(container.image_id)
            found = resolve_user(user, accounts.get("passwd", ""), accounts.get("group", ""))
            resolved = {"uid": found.uid, "gid": found.gid,
                        "additional_gids": found.additional_gids, "home": found.home}
        return run_exec(self.host, ref, args, resolved, extra_env, working_dir, stdin, timeout)

    def kill(self, ref: str, signal: str | int = "KILL") -> ContainerInfo:
        """Send a signal (``KILL``, ``SIGUSR1``, ``15``...) to the running container's
        process, as ``docker kill -s`` does; a ``kill`` event records it. A container without
        a running process is an :class:`InvalidState`; an unknown signal a
        :class:`ConfigError`."""
        from fsm.images.process import stop_signal_number

        return self.runner.kill(ref, stop_signal_number(signal, "signal"))

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Block until the container is ``exited`` or ``dead``; return its exit code."""
        return self.runner.wait(ref, timeout)

    @_one_operation
    def remove(self, ref: str, force: bool = False) -> None:
        """Delete the container, its layer and its files (its events and history stay).

        A running container is refused unless ``force``, which kills it first (and waits for a
        start under way, and ends a restart policy's restarts). A removal that fails leaves the
        container ``dead``.
        """
        self.runner.remove(ref, force)

    def logs(self, ref: str, *, stdout: bool = True, stderr: bool = True,
             since: datetime | None = None, until: datetime | None = None,
             tail: int | None = None, follow: bool = False) -> Iterator[LogLine]:
        """The lines the container's process wrote (all its runs), each with its stream and
        time, byte for byte (``line.data``: decoding is the caller's): those of the streams
        asked for, written in [``since``, ``until``), the last ``tail`` of them; with
        ``follow``, then the new ones as they come, until the run ends.

        >>> [line.data for line in orc.logs("web", stderr=False, tail=2)]
        [b'listening on :80\n', b'GET / 200\n']
        """
        if tail is not None and tail < 0:
            raise ConfigError("tail", tail, "a number of lines >= 0")
        container_id = self.db.resolve_id(ref)
        paths = self.paths(container_id)
        streams = frozenset(name for name, wanted in (("stdout", stdout), ("stderr", stderr))
                            if wanted)
        lines, offset = read_lines(paths.log)
        yield from selected(lines, streams=streams, since=since, until=until, tail=tail)
        if not follow:
            return
        for line in follow_lines(paths.log, lambda: self._run_over(container_id), offset):
            if line.stream in streams and (until is None or line.time < until):
                yield line

    def log_text(self, ref: str, *, stdout: bool = True, stderr: bool = True) -> str:
        """The whole log as text (UTF-8, undecodable bytes replaced): the simple way."""
        return b"".join(line.data for line in self.logs(ref, stdout=stdout, stderr=stderr)
                        ).decode("utf-8", errors="replace")

    def _run_over(self, container_id: str) -> bool:
        """The container's current run has ended (its exit is recorded), or it runs no more."""
        state = self.db.containers.state_of(container_id)
        if state is None or state[0] not in states.MAY_RUN:
            return True
        return self.runtime.exit_status(self.host.paths(container_id, state[1])) is not None

    def get(self, ref: str) -> ContainerInfo:
        """The container as it is now (``ref``: a name, a full id or a unique id prefix)."""
        return self.db.resolve(ref).info()

    def state_of(self, container_id: str) -> str | None:
        """The state of the container with this full id, or None once it is gone: one indexed
        read, for loops that poll."""
        seen = self.db.containers.state_of(container_id)
        return None if seen is None else seen[0]

    def list(self, all: bool = False, state: str | Iterable[str] | None = None
             ) -> builtins.list[ContainerInfo]:
        """Running containers, newest first; ``all=True`` for every state, or ``state`` to pick
        some (``"exited"`` or ``["exited", "dead"]``)."""
        return self.db.containers.list(_wanted_states(all, state))

    def events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        container: str | None = None,
        actions: Iterable[str] | None = None,
    ) -> builtins.list[Event]:
        """The event log, oldest first, filtered by time, container and action."""
        return self.db.events.select(
            None if since is None else _aware("since", since),
            None if until is None else _aware("until", until),
            None if container is None else self.db.resolve_any_id(container),
            None if actions is None else builtins.list(actions))

    def history(self, ref: str) -> builtins.list[TransitionRecord]:
        """Every committed transition of the container, oldest first."""
        return self.db.events.history(self.db.resolve_any_id(ref))

    # -- images ----------------------------------------------------------------------------

    @_one_operation
    def pull(self, reference: str, *, tls_verify: bool = True,
             progress: Progress | None = None) -> ImageInfo:
        """Pull ``reference`` (``host[:port]/repo[:tag|@sha256:...]``) from its registry, with
        skopeo; its layers not on this node yet are applied, each a child of the one below.
        ``tls_verify=False`` allows a registry over plain HTTP or with an unverified
        certificate. ``progress`` is told of each layer as it goes."""
        from fsm.images.pull import pull

        return pull(self.host, reference, tls_verify=tls_verify, progress=progress or silent)

    @_one_operation
    def load(self, path: str | os.PathLike[str],
             progress: Progress | None = None) -> builtins.list[ImageInfo]:
        """Load every image of a ``docker save`` archive, an OCI archive or an OCI image layout
        directory, under the names it carries."""
        from fsm.images.load import load

        return load(self.host, Path(path), progress or silent)

    @_one_operation
    def import_image(self, name: str, tar_path: str | os.PathLike[str],
                     progress: Progress | None = None) -> ImageInfo:
        """Import a root filesystem tarball (plain, gzip or zstd) as the one-layer image
        ``name`` (``busybox`` is stored as ``busybox:latest``, as Docker names it)."""
        from fsm.images.reference import parse_reference
        from fsm.images.tarball import import_image

        return import_image(self.host, str(parse_reference(name, "name")), Path(tar_path),
                            progress or silent)

    def images(self) -> builtins.list[ImageInfo]:
        """Every image: named ones by name, then dangling ones."""
        return self.db.images.all()

    def layers(self) -> builtins.list[LayerRecord]:
        """This node's storage layers, oldest first: images' (by chain ID) and containers'."""
        return self.db.layers.on_node(self.settings.node)

    def image(self, ref: str) -> ImageInfo:
        """The image ``ref`` names (a name, ``name`` for ``name:latest``, an id or a unique id
        prefix); :class:`NoSuchImage` if there is none."""
        from fsm.images.lookup import find_image

        return find_image(self.db, ref)

    @_one_operation
    def remove_image(self, ref: str, force: bool = False) -> builtins.list[str]:
        """``docker rmi``: a name of an image with others is only untagged; else the image
        goes with the layers no other image or container uses. Refused (:class:`ImageInUse`)
        while a container uses it, unless ``force`` (then only its names go). Returns what
        was done, as ``Untagged: NAME`` and ``Deleted: sha256:ID`` lines."""
        from fsm.images.removal import remove_image

        if not isinstance(force, bool):
            raise ConfigError("force", force, "True or False")
        return remove_image(self.host, ref, force)

    @_one_operation
    def prune_images(self, all: bool = False) -> builtins.list[ImageInfo]:
        """Remove dangling images no container uses (``all``: every image no container uses);
        returns those removed."""
        from fsm.images.removal import prune_images

        if not isinstance(all, bool):
            raise ConfigError("all", all, "True or False")
        return prune_images(self.host, all)

    # -- the exit of a process, and recovery -----------------------------------------------

    @_one_operation
    def handle_exit(self, container_id: str, run: int, exit_code: int) -> bool:
        """Run ``run`` of the container ended: fire ``exit`` if it is still the current run
        (an earlier run's late report changes nothing). True when this call committed it."""
        return self.runner.exit(container_id, run, exit_code)

    def recover(self) -> dict[str, builtins.list[str]]:
        """Reconcile rows this node was driving when it crashed; returns only what changed
        (``{"failed": [...], "exited": [...]}``); see :mod:`fsm.recovery`."""
        from fsm.recovery import recover

        return recover(self.runner)

    def gc(self, remove: bool = False) -> dict[str, builtins.list[str]]:
        """Host resources under berth's names that no row owns (``remove`` deletes them)."""
        from fsm.gc import collect

        return collect(self.host, remove)

    def close(self) -> None:
        """Stop renewing leases and close database connections (containers keep running)."""
        self.runner.close()
        self.db.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_name_free(self, name: str) -> None:
        owner = self.db.containers.id_of_name(name)
        if owner is not None:
            raise NameInUse("container", name, owner)


def _wanted_states(all: bool, state: str | Iterable[str] | None) -> builtins.list[str] | None:
    """Which states to list: ``state`` (one or several), else every one (``all``), else
    ``running``. ``None`` means every state."""
    if state is not None:
        wanted = [state] if isinstance(state, str) else builtins.list(state)
        unknown = [s for s in wanted if s not in states.STATES or s == states.REMOVED]
        if unknown or not wanted:
            raise ConfigError("state", unknown[0] if unknown else wanted,
                              f"one or more of {', '.join(states.STATES[:-1])}")
        return wanted
    return None if all else [states.RUNNING]


def _aware(field: str, value: datetime | timedelta) -> datetime:
    if isinstance(value, timedelta):
        return utcnow() - value
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(field, value, "a timezone-aware datetime, or a timedelta ago")
    return value
