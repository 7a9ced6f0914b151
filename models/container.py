"""Containers, their audit trail of transitions, and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

#: every state a row can be in (``removed`` is never stored: the row is deleted instead)
CONTAINER_STATES = (
    "created",
    "mounting",
    "networking",
    "starting",
    "running",
    "stopping",
    "exited",
    "removing",
    "dead",
)
_STATE_LIST = ", ".join(f"'{s}'" for s in CONTAINER_STATES)


class Container(Base):
    """One container: its configuration, where it is in its lifecycle, and who is driving it."""

    __tablename__ = "containers"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATE_LIST})", name="state"),
        CheckConstraint("version >= 1", name="version_positive"),
        # ps: by state, newest first; ps -a: newest first (both walked backwards, no sort)
        Index(None, "state", "created_at", "id"),
        Index(None, "created_at", "id"),
    )

    #: 64 hex digits; any unique prefix addresses the container
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    image_id: Mapped[str] = mapped_column(String(64), ForeignKey("images.id"))
    #: the image as the container was created from it (a name, else the image's id): what
    #: ``ps`` shows, as Docker's ``Config.Image``
    image: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    #: bumped by every transition; the compare-and-swap checks it
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: ``node:pid:start-time`` of the orchestrator driving an in-flight state, else NULL
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    #: the host whose resources (mounts, netns, processes) the container holds
    node: Mapped[str] = mapped_column(String(255))
    exit_code: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    has_been_started_before: Mapped[bool] = mapped_column(Boolean, default=False)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    #: set by an explicit ``stop``; ``unless-stopped`` does not restart such a container
    manually_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    #: which start the row is at (1 after the first): the monitor's exit record names its run,
    #: and an exit counts only for the current one
    run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: cmd, env, working_dir, exposed_ports
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: network_mode, ipc_mode, links, mounts, tmpfs, restart_policy, shm_size
    host_config: Mapped[dict[str, Any]] = mapped_column(JSON)


class TransitionAudit(Base):
    """One committed state change: which trigger moved which container from where to where."""

    __tablename__ = "transitions"
    __table_args__ = (Index(None, "container_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: not a foreign key: the audit trail outlives the container
    container_id: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    dest: Mapped[str] = mapped_column(String(16))
    #: when the trigger fired (its side effect began) and when the change was committed
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    #: for ``fail``: what went wrong
    error: Mapped[str] = mapped_column(Text, default="")
    #: the orchestrator that committed it (``node:pid:start-time``)
    actor: Mapped[str] = mapped_column(String(255), default="")


class ContainerEvent(Base):
    """What ``docker events`` shows: create, start, die, kill, stop, restart, destroy..."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "time"), Index(None, "container_id", "time"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    #: not a foreign key: events outlive the container
    container_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    #: ``container``, or ``image`` for pull, load, tag, untag, delete: then ``container_id``
    #: holds the image's id
    type: Mapped[str] = mapped_column(String(16), default="container",
                                      server_default="container")
    #: exitCode, error, image, name, signal...
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


__all__ = ["CONTAINER_STATES", "Container", "ContainerEvent", "TransitionAudit"]
