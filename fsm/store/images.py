"""Image records."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select
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
        with self.connections.read() as connection:
            row = connection.execute(_BY_NAME_OR_ID, {"ref": ref}).first()
        return None if row is None else ImageInfo(*row)

    def all(self) -> list[ImageInfo]:
        """By name."""
        with self.connections.read() as connection:
            rows = connection.execute(select(*_COLUMNS).order_by(images.c.name)).all()
        return [ImageInfo(*row) for row in rows]

    def storage_driver_in_use(self) -> str | None:
        """The storage driver the images live in, if there are any."""
        with self.connections.read() as connection:
            used: str | None = connection.execute(
                select(images.c.storage_driver).limit(1)).scalar()
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
        with self.connections.read() as connection:
            return set(connection.execute(select(images.c.id)).scalars())
