"""Importing a root filesystem tarball as an image layer."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from drivers.commands import run
from fsm.errors import BerthError, ConfigError, NameInUse, host_errors
from fsm.info import ImageInfo
from fsm.steps.host import Host
from models import utcnow

UNPACK_TIMEOUT = 600.0


def import_image(host: Host, name: str, tar_path: Path) -> ImageInfo:
    """Unpack ``tar_path`` into a new layer and record it as image ``name``.

    The name and the file are checked first; the layer is removed again if unpacking or the
    commit fails, so a failed import leaves nothing behind.
    """
    if not tar_path.is_file() or not os.access(tar_path, os.R_OK):
        raise ConfigError("tar_path", str(tar_path), "a readable tar file of a root filesystem")
    images = host.db.images
    taken = images.find(name)
    if taken is not None and taken.name == name:
        raise NameInUse("image", name, taken.id)
    image_id = _sha256_file(tar_path)
    same = images.find(image_id)
    if same is not None:
        raise BerthError(f"{tar_path} is already imported as image {same.name!r}")
    storage = host.storage
    with host_errors():
        storage.create(image_id, None)
        try:
            rootfs = storage.get(image_id)
            try:
                run(["tar", "-xpf", str(tar_path.absolute()), "-C", rootfs, "--numeric-owner"],
                    timeout=UNPACK_TIMEOUT, what=f"cannot unpack {tar_path}")
                size = _tree_size(Path(rootfs))
            finally:
                storage.put(image_id)
            image = ImageInfo(image_id, name, size, storage.name, utcnow())
            images.add(image)
        except BaseException:
            storage.remove(image_id)
            raise
    return image


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total
