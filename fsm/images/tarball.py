"""``image import``: a root filesystem tarball as a one-layer image, as ``docker import`` makes.

The tarball is read twice: once for its diff ID (which names the layer, so must be known before
the layer is claimed), once to apply it, with that diff ID checked again on the way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from drivers.image.layout import LayerBlob, LayoutImage, host_architecture
from drivers.image.stream import LayerStream
from fsm.errors import BerthError, ConfigError, DriverError, NameInUse, host_errors
from fsm.images.commit import store_image
from fsm.images.progress import Progress
from fsm.info import ImageInfo
from fsm.steps.host import Host


def import_image(host: Host, name: str, tar_path: Path, progress: Progress) -> ImageInfo:
    """Unpack ``tar_path`` (plain, gzip or zstd) into a new layer and record it as image
    ``name``. The name and the file are checked first; a failed import leaves nothing
    behind."""
    if not tar_path.is_file() or not os.access(tar_path, os.R_OK):
        raise ConfigError("tar_path", str(tar_path), "a readable tar file of a root filesystem")
    images = host.db.images
    taken = images.id_by_name(name)
    if taken is not None:
        raise NameInUse("image", name, taken)
    try:
        with host_errors(), tar_path.open("rb") as source, LayerStream(source) as stream:
            blob_digest, diff_id = stream.finish()
    except DriverError as error:
        raise BerthError(f"cannot unpack {tar_path}: {error}") from error
    config = {"architecture": host_architecture(), "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    # the same tarball is the same image, whatever it is called: no time in its config
    config_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    layer = LayerBlob(tar_path, blob_digest, "application/vnd.oci.image.layer.v1.tar",
                      tar_path.stat().st_size, diff_id)
    image = LayoutImage((name,), "", config, config_id, (layer,))
    try:
        return store_image(host, image, (name,), "import", progress)
    except DriverError as error:
        raise BerthError(f"cannot unpack {tar_path}: {error}") from error
