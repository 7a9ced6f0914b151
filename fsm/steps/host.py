"""What a step may use: this host's drivers, the database's stores, and where files go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, Protocol, cast

from transitions import EventData

from drivers.network import Attachment
from drivers.runtime.oci import ContainerPaths, OCIRuntime
from drivers.storage import StorageDriver
from fsm.container import LiveContainer
from fsm.settings import Settings
from fsm.store.database import Database


class Network(Protocol):
    """The default network (:class:`fsm.steps.bridge.Bridge`)."""

    def attach(self, container_id: str, name: str) -> Attachment: ...

    def detach(self, container_id: str) -> None: ...

    def address_of(self, container_id: str) -> str | None: ...


@dataclass
class Drivers:
    """Drivers given to the orchestrator (``Orchestrator(drivers=Drivers(runtime=...))``); a
    ``None`` one is built from the settings on first use."""

    storage: StorageDriver | None = None
    runtime: OCIRuntime | None = None
    network: Network | None = None


class Host:
    """One orchestrator's host: built once by it, handed to every step with the event."""

    def __init__(self, db: Database, settings: Settings, owner: str, lease_seconds: float,
                 given: Drivers, build: Callable[[str], Any],
                 exit_command: Callable[[str, int], list[str]],
                 exit_env: Callable[[], dict[str, str]]) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self._given = given
        self._build = build
        self.exit_command = exit_command
        self.exit_env = exit_env

    @cached_property
    def storage(self) -> StorageDriver:
        storage: StorageDriver = self._given.storage or self._build("storage")
        return storage

    @cached_property
    def runtime(self) -> OCIRuntime:
        runtime: OCIRuntime = self._given.runtime or self._build("runtime")
        return runtime

    @cached_property
    def network(self) -> Network:
        network: Network = self._given.network or self._build("network")
        return network

    def paths(self, container_id: str, run: int = 0) -> ContainerPaths:
        """Where a container's files are; those of a run carry its number."""
        return ContainerPaths(self.settings.container_dir(container_id), run)

    def run_paths(self, container: LiveContainer) -> ContainerPaths:
        """The files of the container's current run."""
        return self.paths(container.id, container.run)


def host_of(event: EventData) -> Host:
    """The host a step works on, handed in by the runner with every trigger."""
    host: Host = event.kwargs["host"]
    return host


def container_of(event: EventData) -> LiveContainer:
    """The container a step drives: the model the event was fired on."""
    return cast(LiveContainer, event.model)
