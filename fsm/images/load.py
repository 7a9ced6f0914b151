"""``load``: the images of a ``docker save`` archive, an OCI archive or an OCI layout directory.

A layout directory is read in place; an archive is copied by skopeo into a scratch layout first.
The names an archive carries (``RepoTags``; an OCI index's ``image.ref.name``) become the
images' names; one that is not a valid reference is dropped (the image is still loaded).
"""

from __future__ import annotations

import os
from pathlib import Path

from drivers.crashpoints import crash_point
from drivers.image.layout import LayoutImage, read_layout
from drivers.image.skopeo import archive_images, copy_to_layout
from fsm.errors import BerthError, ConfigError, host_errors
from fsm.images.commit import store_image
from fsm.images.progress import LayerProgress, Progress
from fsm.images.reference import parse_reference
from fsm.info import ImageInfo
from fsm.steps.host import Host
from fsm.steps.layers import scratch

ALLOWED = "a docker save archive, an OCI archive or an OCI image layout directory"


def load(host: Host, path: Path, progress: Progress) -> list[ImageInfo]:
    if path.is_dir():
        with host_errors():
            images = read_layout(path)
        return [store_image(host, image, _valid_names(image.names), "load", progress)
                for image in images]
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError("path", str(path), f"a readable file or directory: {ALLOWED}")
    with host_errors():
        _kind, entries = archive_images(path)
    stored = []
    with scratch(host) as directory, host_errors():
        for number, entry in enumerate(entries):
            label = entry.names[0] if entry.names else f"image {number + 1} of {path.name}"
            progress(LayerProgress(label, "", "copying"))
            copy_to_layout(entry.transport, directory, f"image-{number}")
        crash_point("image.after_copy")
        images = read_layout(directory)
        if len(images) != len(entries):
            raise BerthError(f"{path}: skopeo copied {len(images)} images of {len(entries)}")
        for image, entry in zip(images, entries, strict=True):
            stored.append(store_image(host, _named(image, entry.names), _valid_names(
                entry.names), "load", progress))
    return stored


def _named(image: LayoutImage, names: tuple[str, ...]) -> LayoutImage:
    return LayoutImage(names, image.manifest_digest, image.config, image.config_id, image.layers)


def _valid_names(names: tuple[str, ...]) -> tuple[str, ...]:
    valid = []
    for name in names:
        if "/" not in name and ":" not in name:
            continue  # an OCI ref.name that is only a tag names no repository
        try:
            valid.append(str(parse_reference(name)))
        except ConfigError:
            continue
    return tuple(dict.fromkeys(valid))
