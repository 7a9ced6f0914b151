"""Benchmark-only NULL drivers: they do nothing, so that what remains of a lifecycle is berth's own
cost (the state machine, SQLAlchemy, the database). Never use them outside ``benchmarks/``.

They are plugged in at the seams the orchestrator already has, its cached properties:

    orc.__dict__["storage"] = NullStorage(rootfs)    # Orchestrator.storage  (cached_property)
    orc.__dict__["runtime"] = NullRuntime()          # Orchestrator.runtime  (cached_property)
    orc.__dict__["bridge"] = NullNetwork()           # Orchestrator.bridge   (cached_property)

The network seam is the ``bridge`` one: a container created with the default network mode
(``bridge``) has ``fsm.networking`` call ``orc.bridge.attach`` / ``orc.bridge.detach``;
``release_network`` then also checks (one ``stat``) that no ``/run/netns/berth-*`` namespace is
left, as it does for a real bridge container. No module is monkeypatched. The containers are
created with ``ipc_mode=IPC_MODE`` ("host"), see below.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select

from drivers.network import Attachment
from drivers.runtime.bundle import BundleSpec
from drivers.runtime.oci import ContainerPaths, ExitStatus
from models import Image

#: the containers the benchmarks drive share the host's IPC namespace: a private one has
#: ``fsm/lifecycle.py`` mount a /dev/shm tmpfs on the host (``drivers.runtime.shm``, a ``mount``
#: and an ``umount`` command per lifecycle, needing root) with no orchestrator seam to null it
IPC_MODE = "host"
NULL_IMAGE = "null"
NULL_IMAGE_ID = "0" * 64


class NullStorage:
    """Every layer is the same existing directory (``prepare_process`` makes the working
    directory in it, so it must exist)."""

    name = "null"

    def __init__(self, rootfs: Path) -> None:
        rootfs.mkdir(parents=True, exist_ok=True)
        self.rootfs = str(rootfs)

    def create(self, id: str, parent: str | None) -> None:
        pass

    def remove(self, id: str) -> None:
        pass

    def get(self, id: str, mount_label: str = "") -> str:
        return self.rootfs

    def put(self, id: str) -> None:
        pass

    def exists(self, id: str) -> bool:
        return True

    def status(self) -> list[tuple[str, str]]:
        return [("Driver", "null (benchmarks only)")]

    def cleanup(self) -> None:
        pass

    def layers(self) -> list[str]:
        return []


class NullRuntime:
    """Starts nothing: ``start`` returns a made-up pid; the benchmark fires the exit itself with
    ``orc.handle_exit(id, 0)``, as the shim's exit hook would."""

    name = "null"
    FAKE_PID = 2**22 - 1

    def start(self, spec: BundleSpec, paths: ContainerPaths, on_exit: Sequence[str],
              on_exit_env: Mapping[str, str] | None = None) -> int:
        return self.FAKE_PID

    def kill(self, container_id: str, signal_number: int = signal.SIGTERM) -> bool:
        return False

    def delete(self, container_id: str) -> None:
        pass

    def state(self, container_id: str) -> str | None:
        return None

    def list(self) -> list[str]:
        return []

    @staticmethod
    def exit_status(paths: ContainerPaths) -> ExitStatus | None:
        return ExitStatus(0, 0.0)

    @staticmethod
    def wait_for_exit(paths: ContainerPaths, timeout: float) -> ExitStatus | None:
        return ExitStatus(0, 0.0)


class NullNetwork:
    """Stands for :class:`fsm.bridge.Bridge`: no namespace, no veth, no address."""

    def attach(self, container_id: str, name: str) -> Attachment:
        return Attachment(netns_path=None)

    def detach(self, container_id: str) -> None:
        pass

    def address_of(self, container_id: str) -> str | None:
        return None


def plug_null_drivers(orc: object, rootfs: Path) -> None:
    """Replace the orchestrator's storage, runtime and bridge by the null drivers."""
    namespace = vars(orc)
    namespace["storage"] = NullStorage(rootfs)
    namespace["runtime"] = NullRuntime()
    namespace["bridge"] = NullNetwork()


def ensure_null_image(engine: Engine) -> str:
    """An ``images`` row for the null storage (no tarball, no layer): returns its name."""
    with engine.begin() as connection:
        found = connection.execute(select(Image.id).where(Image.id == NULL_IMAGE_ID)).first()
        if found is None:
            connection.execute(insert(Image).values(
                id=NULL_IMAGE_ID, name=NULL_IMAGE, storage_driver="null", size=0,
                created_at=datetime.now(UTC)))
    return NULL_IMAGE
