"""Benchmark-only NULL drivers: they do nothing, so that what remains of a lifecycle is berth's own
cost (the state machine, SQLAlchemy, the database). Never use them outside ``benchmarks/``.

They are handed to the orchestrator the one way it takes drivers built elsewhere::

    Orchestrator(..., drivers=null_drivers(rootfs))  # Drivers(storage=, runtime=, network=)

- :class:`NullStorage`: every layer is one existing directory;
- :class:`NullRuntime`: ``start`` returns a made-up pid and the run has ended at once (its exit
  status is there as soon as it is asked for), so ``orc.wait`` fires ``exit`` itself, as it does
  when the shim has recorded a real exit;
- :class:`NullNetwork`: the :class:`fsm.steps.host.Network` of the default network mode
  (``bridge``): no namespace, no veth, no address. ``release_network`` still checks (one
  ``stat``) that no ``/run/netns/berth-*`` namespace is left, as for a real bridge container.

The containers are created with ``ipc_mode=IPC_MODE`` ("host"): a private IPC namespace has the
start step mount a /dev/shm tmpfs on the host (``drivers.runtime.shm``: a ``mount`` and an
``umount`` per lifecycle, needing root), which is no driver's and so cannot be nulled.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from drivers.network import Attachment
from drivers.runtime.bundle import BundleSpec
from drivers.runtime.oci import ContainerPaths, ExitStatus
from fsm import Orchestrator
from fsm.info import ImageInfo
from fsm.steps.host import Drivers
from fsm.steps.layers import claim_layer
from models import utcnow

IPC_MODE = "host"
NULL_IMAGE = "null"
NULL_IMAGE_ID = "0" * 64
#: what every null run exits with
EXIT_STATUS = ExitStatus(0, 0.0)


class NullStorage:
    """Every layer is the same existing directory."""

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
    """What :mod:`fsm.steps` and :mod:`fsm.runner` call of
    :class:`drivers.runtime.oci.OCIRuntime`, doing nothing: no bundle, no shim, no process. A
    run has ended (exit code 0) as soon as it started; nobody runs its exit hook (``on_exit``,
    ``[python, -m, fsm.exit_hook, ID, RUN]`` + the code), so ``orc.wait`` fires ``exit``."""

    name = "null"
    FAKE_PID = 2**22 - 1

    def start(self, spec: BundleSpec, paths: ContainerPaths, on_exit: Sequence[str],
              on_exit_env: Mapping[str, str] | None = None,
              log_max_size: int | None = None) -> int:
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
        return EXIT_STATUS

    @staticmethod
    def monitor_alive(paths: ContainerPaths) -> bool:
        return False

    @staticmethod
    def wait_for_exit(paths: ContainerPaths, timeout: float) -> ExitStatus | None:
        return EXIT_STATUS

    @staticmethod
    @contextlib.contextmanager
    def waiting_for_exit(paths: ContainerPaths) -> Iterator[None]:
        yield

    @staticmethod
    def record_exit_handled(paths: ContainerPaths, status: ExitStatus, needed: bool) -> None:
        pass


class NullNetwork:
    """The default network (:class:`fsm.steps.bridge.Bridge`) doing nothing."""

    def attach(self, container_id: str, name: str) -> Attachment:
        return Attachment(netns_path=None)

    def detach(self, container_id: str) -> None:
        pass

    def address_of(self, container_id: str) -> str | None:
        return None


def null_drivers(rootfs: Path) -> Drivers:
    """``Orchestrator(..., drivers=null_drivers(rootfs))``."""
    # the runtime's annotation is the real runtime's class: the null one has its methods
    return Drivers(storage=NullStorage(rootfs), runtime=cast(Any, NullRuntime()),
                   network=NullNetwork())


def ensure_null_image(orc: Orchestrator) -> str:
    """The null storage's image record (no tarball, no layer), through the orchestrator's own
    image store: returns its name."""
    if orc.db.images.id_by_name(NULL_IMAGE) is None:
        now = utcnow()
        claim_layer(orc.host, NULL_IMAGE_ID, kind="image", parent=None)
        orc.db.images.store(ImageInfo(NULL_IMAGE_ID, (NULL_IMAGE,), 0, "null", now,
                                      NULL_IMAGE_ID), {}, "import", now,
                            orc.host.settings.node, {NULL_IMAGE_ID: 0})
    return NULL_IMAGE


def null_orchestrator(url: str, root: Path) -> tuple[Orchestrator, str]:
    """An orchestrator on ``url`` with the null drivers (its files under ``root``), and the
    name of the null image to create containers from."""
    orc = Orchestrator(database_url=url, root=root, drivers=null_drivers(root / "null-rootfs"))
    return orc, ensure_null_image(orc)
