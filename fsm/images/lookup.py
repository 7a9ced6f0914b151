"""Which image a user's reference means: a name (``busybox`` is also ``busybox:latest``), an
id, ``sha256:`` and an id, or a unique id prefix."""

from __future__ import annotations

from fsm.errors import AmbiguousReference, ConfigError, NoSuchImage
from fsm.images.reference import candidates
from fsm.info import ImageInfo
from fsm.store.database import Database

_HEX = frozenset("0123456789abcdef")


def find_image(db: Database, ref: str) -> ImageInfo:
    if not isinstance(ref, str) or not ref:
        raise ConfigError("image", ref, "an image name or id (see `berth images`)")
    image_id = _image_id(db, ref)
    found = None if image_id is None else db.images.get(image_id)
    if found is None:
        raise NoSuchImage(ref)
    return found


def _image_id(db: Database, ref: str) -> str | None:
    for name in (ref, *candidates(ref)):
        found = db.images.id_by_name(name)
        if found is not None:
            return found
    hex_part = ref.removeprefix("sha256:")
    if not hex_part or not _HEX.issuperset(hex_part) or len(hex_part) > 64:
        return None
    matches = db.images.ids_with_prefix(hex_part)
    if len(matches) > 1:
        raise AmbiguousReference(ref, matches, "images")
    return matches[0] if matches else None
