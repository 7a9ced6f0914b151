"""Layer records: every storage layer of a node, with its parent, state, owner and references.

A layer's row is written (``applying``, with its owner) before the driver makes the layer, and
turned ``ready`` once its contents are whole; removal marks it ``removing`` before the driver
deletes it. So a crash at any point leaves a row that says what may be on the host, and
recovery finishes or undoes it. ``refs`` counts the layers standing on a layer (its children);
the row and its parent's count change in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, Update, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fsm.store.engine import Connections
from models import Image, Layer

layers = cast(Table, Layer.__table__)
images = cast(Table, Image.__table__)

APPLYING, READY, REMOVING = "applying", "ready", "removing"

_THIS = and_(layers.c.node == bindparam("w_node"), layers.c.id == bindparam("w_id"))
_GET = select(layers).where(_THIS)
#: the layer is whole: bind ``w_node``, ``w_id`` and ``size`` (an image's commit runs it too)
MARK_READY = update(layers).where(_THIS).values(state=READY, owner=None, lease_expires_at=None)
_PARENT_REFS = (update(layers).where(layers.c.node == bindparam("w_node"),
                                     layers.c.id == bindparam("w_parent")))
_UNFINISHED = select(layers).where(layers.c.node == bindparam("node"),
                                   layers.c.state.in_([APPLYING, REMOVING]))
_ON_NODE = select(layers).where(layers.c.node == bindparam("node")).order_by(layers.c.created_at)
#: a layer no layer stands on and no image has at its top
_UNUSED = and_(_THIS, layers.c.state == READY, layers.c.refs == 0,
               ~select(images.c.id).where(images.c.top_layer == layers.c.id).exists())

_UNUSED_ON_NODE = select(layers.c.id).where(
    layers.c.node == bindparam("node"), layers.c.kind == "image", layers.c.state == READY,
    layers.c.refs == 0, ~select(images.c.id).where(images.c.top_layer == layers.c.id).exists())


@dataclass(frozen=True)
class LayerRecord:
    node: str
    id: str
    kind: str
    storage_driver: str
    diff_id: str | None
    parent: str | None
    state: str
    refs: int
    size: int
    owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime


class LayerStore:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def get(self, node: str, layer_id: str) -> LayerRecord | None:
        row = self.connections.first(_GET, {"w_node": node, "w_id": layer_id})
        return None if row is None else LayerRecord(**row._mapping)

    def on_node(self, node: str) -> list[LayerRecord]:
        return [LayerRecord(**row._mapping) for row in self.connections.all(_ON_NODE,
                                                                           {"node": node})]

    def unfinished(self, node: str) -> list[LayerRecord]:
        """Rows being written or removed: recovery's to judge."""
        return [LayerRecord(**row._mapping)
                for row in self.connections.all(_UNFINISHED, {"node": node})]

    def begin(self, node: str, layer_id: str, *, kind: str, storage_driver: str,
              diff_id: str | None, parent: str | None, owner: str, lease_expires_at: datetime,
              time: datetime) -> bool:
        """Claim the layer as ``applying`` by ``owner`` (its parent's count goes up with it);
        False when a row for it exists already."""
        try:
            with self.connections.write() as connection:
                connection.execute(insert(layers).values(
                    node=node, id=layer_id, kind=kind, storage_driver=storage_driver,
                    diff_id=diff_id, parent=parent, state=APPLYING, refs=0, size=0,
                    owner=owner, lease_expires_at=lease_expires_at, created_at=time))
                if parent is not None:
                    connection.execute(_PARENT_REFS.values(refs=layers.c.refs + 1),
                                       {"w_node": node, "w_parent": parent})
        except IntegrityError:
            return False
        return True

    def ready(self, node: str, layer_id: str, size: int) -> None:
        self._update(MARK_READY, {"w_node": node, "w_id": layer_id, "size": size})

    def claim_unused(self, node: str, layer_id: str, owner: str,
                     lease_expires_at: datetime) -> bool:
        """Mark the layer ``removing`` by ``owner`` if nothing stands on it and no image has it
        at its top (one compare-and-swap); False otherwise."""
        with self.connections.write() as connection:
            result = connection.execute(
                update(layers).where(_UNUSED).values(state=REMOVING, owner=owner,
                                                     lease_expires_at=lease_expires_at),
                {"w_node": node, "w_id": layer_id})
            return bool(result.rowcount == 1)

    def forget(self, node: str, layer_id: str) -> str | None:
        """Delete the row once the driver has removed the layer (its parent's count goes down
        with it); returns the parent. Nothing happens for a row already gone."""
        with self.connections.write() as connection:
            row = connection.execute(_GET, {"w_node": node, "w_id": layer_id}).first()
            if row is None:
                return None
            parent: str | None = row.parent
            connection.execute(delete(layers).where(_THIS), {"w_node": node, "w_id": layer_id})
            if parent is not None:
                connection.execute(_PARENT_REFS.values(refs=layers.c.refs - 1),
                                   {"w_node": node, "w_parent": parent})
        return parent

    def unused_image_layers(self, node: str) -> list[str]:
        """Ready image layers nothing stands on and no image has at its top."""
        return list(self.connections.scalars(_UNUSED_ON_NODE, {"node": node}))

    def _update(self, statement: Update, params: dict[str, str | int]) -> None:
        with self.connections.write() as connection:
            connection.execute(statement, params)

    def storage_driver_in_use(self, node: str) -> str | None:
        """The storage driver this node's layers live in, if it has any."""
        used: str | None = self.connections.scalar(
            select(layers.c.storage_driver).where(layers.c.node == node).limit(1))
        return used

    def ids(self, node: str) -> set[str]:
        return set(self.connections.scalars(select(layers.c.id).where(layers.c.node == node)))
