"""Image records."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from fsm.errors import NameInUse
from fsm.info import ImageInfo
from fsm.store.engine import Connections
from models import Image

images = cast(Table, Image.__table__)
_COLUMNS = (images.c.id, images.c.name, images.c.size, images.c.storage_driver,
            images.c.created_at)
_BY_NAME_OR_ID = select(*_COLUMNS).where(or_(images.c.name == bindparam("ref"),
                                             images.c.id == bindparam("ref")))


class ImageStore:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def find(self, ref: str) -> ImageInfo | None:
        """The image whose name or id is ``ref``."""
        row = self.connections.first(_BY_NAME_OR_ID, {"ref": ref})
        return None if row is None else _image(row)

    def all(self) -> list[ImageInfo]:
        """By name."""
        rows = self.connections.all(select(*_COLUMNS).order_by(images.c.name))
        return [_image(row) for row in rows]

    def storage_driver_in_use(self) -> str | None:
        """The storage driver the images live in, if there are any."""
        used: str | None = self.connections.scalar(select(images.c.storage_driver).limit(1))
        return used

    def add(self, image: ImageInfo) -> None:
        """Raises :class:`NameInUse` when the name or the id is taken."""
        try:
            with self.connections.write() as connection:
                connection.execute(insert(images).values(
                    id=image.id, name=image.name, size=image.size,
                    storage_driver=image.storage_driver, created_at=image.created_at))
        except IntegrityError as error:
            raise NameInUse("image", image.name, image.id) from error

    def delete(self, image_id: str) -> None:
        with self.connections.write() as connection:
            connection.execute(delete(images).where(images.c.id == image_id))

    def ids(self) -> set[str]:
        return set(self.connections.scalars(select(images.c.id)))


def _image(row: Row[Any]) -> ImageInfo:
    return ImageInfo(row.id, row.name, row.size, row.storage_driver, row.created_at)
