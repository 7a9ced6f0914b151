"""Image records: images, the names they go by, and their events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update

from fsm.info import ImageInfo
from fsm.store.engine import Connections
from fsm.store.layers import MARK_READY
from models import ContainerEvent, Image, ImageName

images = cast(Table, Image.__table__)
names = cast(Table, ImageName.__table__)
events = cast(Table, ContainerEvent.__table__)

_COLUMNS = (images.c.id, images.c.size, images.c.storage_driver, images.c.created_at,
            images.c.top_layer, images.c.config, images.c.repo_digest)
_BY_ID = select(*_COLUMNS).where(images.c.id == bindparam("id"))
_ID_BY_NAME = select(names.c.image_id).where(names.c.name == bindparam("name"))
_IDS_BY_PREFIX = (select(images.c.id).where(images.c.id.startswith(bindparam("prefix")))
                  .limit(10))
_NAMES_OF = (select(names.c.name).where(names.c.image_id == bindparam("id"))
             .order_by(names.c.created_at, names.c.name))
_ALL_NAMES = select(names.c.image_id, names.c.name).order_by(names.c.created_at, names.c.name)
_ACCOUNTS = select(images.c.accounts).where(images.c.id == bindparam("id"))


class ImageStore:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def id_by_name(self, name: str) -> str | None:
        found: str | None = self.connections.scalar(_ID_BY_NAME, {"name": name})
        return found

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with ``prefix`` (hex digits, checked by the caller), at most ten."""
        return list(self.connections.scalars(_IDS_BY_PREFIX, {"prefix": prefix}))

    def get(self, image_id: str) -> ImageInfo | None:
        row = self.connections.first(_BY_ID, {"id": image_id})
        if row is None:
            return None
        return _image(row, tuple(self.connections.scalars(_NAMES_OF, {"id": image_id})))

    def all(self) -> list[ImageInfo]:
        """Named images by name, then dangling ones, newest first."""
        by_image: dict[str, list[str]] = {}
        for row in self.connections.all(_ALL_NAMES):
            by_image.setdefault(row.image_id, []).append(row.name)
        found = [_image(row, tuple(by_image.get(row.id, ())))
                 for row in self.connections.all(select(*_COLUMNS))]
        named = sorted((i for i in found if i.names), key=lambda i: i.name)
        dangling = sorted((i for i in found if not i.names), key=lambda i: i.created_at,
                          reverse=True)
        return named + dangling

    def accounts(self, image_id: str) -> dict[str, str]:
        """The image's ``/etc/passwd`` and ``/etc/group`` (``{"passwd": ..., "group": ...}``)."""
        found = self.connections.scalar(_ACCOUNTS, {"id": image_id})
        return dict(found or {})

    def storage_driver_in_use(self) -> str | None:
        """The storage driver the images live in, if there are any."""
        used: str | None = self.connections.scalar(select(images.c.storage_driver).limit(1))
        return used

    def store(self, image: ImageInfo, accounts: dict[str, str], action: str, time: datetime,
              node: str, new_layers: dict[str, int]) -> None:
        """Record ``image`` (unless its id is known) and give it its names, taken from any
        image that had them, with its ``action`` event (``pull``, ``load``, ``import``), and
        turn the layers this operation wrote (``new_layers``: id to size, on ``node``)
        ``ready``: all in one transaction, so a crash before it leaves only ``applying``
        layers for recovery to undo."""
        with self.connections.write() as connection:
            for layer_id, size in new_layers.items():
                connection.execute(MARK_READY, {"w_node": node, "w_id": layer_id, "size": size})
            known = connection.execute(_BY_ID, {"id": image.id}).first() is not None
            if not known:
                connection.execute(insert(images).values(
                    id=image.id, top_layer=image.top_layer, config=image.config,
                    accounts=accounts, repo_digest=image.repo_digest,
                    storage_driver=image.storage_driver, size=image.size,
                    created_at=image.created_at))
            elif image.repo_digest is not None:
                connection.execute(update(images).where(images.c.id == image.id)
                                   .values(repo_digest=image.repo_digest))
            if image.names:
                connection.execute(delete(names).where(names.c.name.in_(image.names)))
                connection.execute(insert(names), [
                    {"name": name, "image_id": image.id, "created_at": time}
                    for name in image.names])
            _event(connection, time, image.id, action,
                   {"name": image.name, **({"names": list(image.names)} if image.names else {})})

    def untag(self, image_id: str, removed: Sequence[str], time: datetime) -> None:
        """Drop names of the image, with an ``untag`` event each."""
        with self.connections.write() as connection:
            connection.execute(delete(names).where(names.c.image_id == image_id,
                                                   names.c.name.in_(list(removed))))
            for name in removed:
                _event(connection, time, image_id, "untag", {"name": name})

    def delete(self, image_id: str, time: datetime) -> None:
        """The image and its names go, with a ``delete`` event."""
        with self.connections.write() as connection:
            gone = list(connection.execute(_NAMES_OF, {"id": image_id}).scalars())
            connection.execute(delete(names).where(names.c.image_id == image_id))
            connection.execute(delete(images).where(images.c.id == image_id))
            _event(connection, time, image_id, "delete",
                   {"name": gone[0] if gone else "<none>", "names": gone})


def _event(connection: Any, time: datetime, image_id: str, action: str,
           attributes: dict[str, Any]) -> None:
    connection.execute(insert(events).values(time=time, container_id=image_id, type="image",
                                             action=action, attributes=attributes))


def _image(row: Row[Any], image_names: Iterable[str]) -> ImageInfo:
    return ImageInfo(row.id, tuple(image_names), row.size, row.storage_driver, row.created_at,
                     row.top_layer, dict(row.config or {}), row.repo_digest)
