"""Removing images: a name, an image and the layers only it used; pruning unused images."""

from __future__ import annotations

from fsm.errors import ImageInUse
from fsm.images.lookup import find_image
from fsm.info import ImageInfo
from fsm.steps.host import Host
from fsm.steps.layers import release_layers
from models import utcnow


def remove_image(host: Host, ref: str, force: bool) -> list[str]:
    """What ``docker rmi`` does; returns what happened, as lines (``Untagged: x``,
    ``Deleted: <id>``).

    ``ref`` a name of an image with other names: only that name goes. Else the image goes with
    its names and every layer of this node no other image or container stands on; refused
    (:class:`ImageInUse`) while a container uses it, unless ``force``, which then only takes
    its names away (the containers keep it).
    """
    image = find_image(host.db, ref)
    named = [n for n in image.names if n == ref or ref in _short_forms(n)]
    now = utcnow()
    if named and len(image.names) > 1:
        host.db.images.untag(image.id, named[:1], now)
        return [f"Untagged: {named[0]}"]
    users = host.db.containers.users_of_image(image.id)
    if users:
        if not force:
            raise ImageInUse(ref, users)
        host.db.images.untag(image.id, list(image.names), now)
        return [f"Untagged: {name}" for name in image.names]
    host.db.images.delete(image.id, now)
    release_layers(host, image.top_layer)
    return [*(f"Untagged: {name}" for name in image.names), f"Deleted: sha256:{image.id}"]


def prune_images(host: Host, every_unused: bool) -> list[ImageInfo]:
    """Remove dangling images (no name) no container uses; ``every_unused``: every image no
    container uses. Returns those removed."""
    removed = []
    for image in host.db.images.all():
        if image.names and not every_unused:
            continue
        if host.db.containers.users_of_image(image.id):
            continue
        host.db.images.delete(image.id, utcnow())
        release_layers(host, image.top_layer)
        removed.append(image)
    return removed


def _short_forms(name: str) -> tuple[str, ...]:
    return (name.removesuffix(":latest"),) if name.endswith(":latest") else ()
