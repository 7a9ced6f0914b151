"""What the API returns: frozen snapshots, safe to keep after the database has moved on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ContainerInfo:
    """A container as it was when read.

    >>> info = orc.get("web")
    >>> info.state, info.exit_code
    ('exited', 7)
    """

    id: str
    name: str
    image: str
    state: str
    exit_code: int
    error: str
    pid: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    has_been_started_before: bool
    restart_count: int
    #: an explicit ``stop`` happened: restart policies leave the container alone
    manually_stopped: bool
    #: cmd, env, working_dir, exposed_ports, user, stop_signal, labels
    config: dict[str, Any]
    #: network_mode, ipc_mode, links, mounts, tmpfs, restart_policy, shm_size,
    #: auto_remove, log_max_size
    host_config: dict[str, Any]
    #: in-flight states: the orchestrator driving it (``node:pid:start-time``)
    owner: str | None = None
    node: str = ""
    #: which start the row is at: 1 after the first, one more for each start since
    run: int = 0
    #: the id of its image (``image`` is the image as the user named it at create)
    image_id: str = ""

    @property
    def short_id(self) -> str:
        """The first 12 hex digits, as ``berth ps`` shows them."""
        return self.id[:12]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (times as ISO 8601), as ``berth inspect`` prints them."""

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        return {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Event:
    """One entry of the event log (``docker events``): ``action`` is create, start, die, kill,
    stop, restart, destroy...; ``attributes`` holds exitCode, error, image, name..."""

    id: int
    time: datetime
    #: the container's id, or the image's for an image's event
    container_id: str
    action: str
    attributes: dict[str, Any]
    #: ``container``, or ``image`` for pull, load, import, untag, delete
    type: str = "container"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, as ``berth events --format json`` prints them."""
        return {"id": self.id, "time": self.time.isoformat(), "type": self.type,
                "container_id": self.container_id, "action": self.action,
                "attributes": self.attributes}


@dataclass(frozen=True)
class TransitionRecord:
    """One committed state change. ``started_at`` is when the trigger fired (its side effect
    began), ``finished_at`` when the change was committed."""

    container_id: str
    trigger: str
    source: str
    dest: str
    started_at: datetime
    finished_at: datetime
    error: str

    @property
    def duration(self) -> float:
        """Seconds from the trigger firing to the commit: how long the step's side effect took."""
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ImageInfo:
    """An image: ``id`` is the hex sha256 of its config (Docker's image id); ``names`` the names
    it goes by (none: dangling); ``config`` the OCI image config (``config["config"]`` holds
    Entrypoint, Cmd, Env, WorkingDir, User, StopSignal, ExposedPorts, Labels); ``top_layer`` the
    chain ID of its top layer; ``size`` the bytes of its layers' files."""

    id: str
    names: tuple[str, ...]
    size: int
    storage_driver: str
    created_at: datetime
    top_layer: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    repo_digest: str | None = None

    @property
    def name(self) -> str:
        """Its first name, or ``<none>`` for a dangling image (as ``docker images`` shows)."""
        return self.names[0] if self.names else "<none>"

    @property
    def diff_ids(self) -> list[str]:
        """Its layers' diff IDs, bottom first."""
        rootfs = self.config.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])
