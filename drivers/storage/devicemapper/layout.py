"""Where a data root keeps its devicemapper files, and the dm names derived from it.

Names carry 8 hex digits of the root's sha256 (``berth-1a2b3c4d-pool``, ``berth-1a2b3c4d-<id>``)
so that two data roots on one host (two orchestrators, or a test beside a real one) never touch
each other's devices.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from drivers.errors import HostError

# What a layer id may be: it becomes part of a dm name (at most 127 bytes) and a directory name.
_LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Layout:
    """Paths and names of one data root."""

    root: str  # the driver's root, absolute
    prefix: str  # berth-<8 hex>

    @property
    def home(self) -> str:
        return os.path.join(self.root, "devicemapper")

    @property
    def data_file(self) -> str:
        return os.path.join(self.home, "data")

    @property
    def metadata_file(self) -> str:
        return os.path.join(self.home, "metadata")

    @property
    def mnt_dir(self) -> str:
        return os.path.join(self.home, "mnt")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.home, "lock")

    @property
    def loop_pool_name(self) -> str:
        return f"{self.prefix}-pool"

    def device_name(self, hash: str) -> str:
        """The dm name of a layer's thin device."""
        return f"{self.prefix}-{hash}"

    def hash_of(self, device_name: str) -> str | None:
        """The layer a dm name belongs to, or ``None`` if it is not one of this root's devices."""
        head = f"{self.prefix}-"
        if not device_name.startswith(head) or device_name == self.loop_pool_name:
            return None
        return device_name[len(head) :]

    def mount_path(self, hash: str) -> str:
        return os.path.join(self.mnt_dir, hash)


def layout_for(root: str | os.PathLike[str]) -> Layout:
    absolute = os.path.realpath(os.fspath(root))
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:8]
    return Layout(root=absolute, prefix=f"berth-{digest}")


def check_layer_id(hash: str) -> None:
    """Refuse an id that cannot name a device or a directory, before any side effect."""
    if not isinstance(hash, str) or _LAYER_ID.fullmatch(hash) is None:
        raise HostError(
            f"invalid layer id {hash!r}: must be 1-64 characters of letters, digits, '_', '.' "
            "or '-', starting with a letter or digit",
            errno=22,
        )
