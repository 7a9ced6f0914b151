"""The vfs driver: every layer is a plain directory, a full copy of its parent.

Slow to create and heavy on disk, but it works on any filesystem and kernel, which makes it the
default where the kernel has no device-mapper thin target.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from drivers.commands import run
from drivers.errors import HostError, NoSuchDevice

COPY_TIMEOUT = 600.0


class VfsDriver:
    name = "vfs"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dirs = home / "dir"
        self.dirs.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, id: str) -> Path:
        return self.dirs / id

    def create(self, id: str, parent: str | None) -> None:
        target = self._path(id)
        if target.exists():
            raise HostError(f"layer {id[:12]} already exists")
        # built under a temporary name and renamed, so that a crash never leaves a half-copied
        # layer under its real name
        partial = self.dirs / f"{id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if parent is None:
            partial.mkdir(mode=0o755)
        else:
            source = self._path(parent)
            if not source.is_dir():
                raise NoSuchDevice(f"parent layer {parent[:12]} does not exist")
            run(["cp", "-a", "--reflink=auto", str(source), str(partial)], timeout=COPY_TIMEOUT,
                what=f"cannot copy layer {parent[:12]}")
        os.replace(partial, target)

    def remove(self, id: str) -> None:
        for path in (self._path(id), self.dirs / f"{id}.partial"):
            if path.exists():
                shutil.rmtree(path)

    def get(self, id: str, mount_label: str = "") -> str:
        path = self._path(id)
        if not path.is_dir():
            raise NoSuchDevice(f"layer {id[:12]} does not exist")
        return str(path)

    def put(self, id: str) -> None:
        """Nothing was mounted: a vfs layer is always available."""

    def exists(self, id: str) -> bool:
        return self._path(id).is_dir()

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", str(self.dirs)), ("Layers", str(len(self.layers())))]

    def cleanup(self) -> None:
        """Nothing is held on the host between calls."""

    def layers(self) -> list[str]:
        return sorted(p.name for p in self.dirs.iterdir() if not p.name.endswith(".partial"))
