"""Storage layers as records and as host resources, kept in step.

Every layer's row is claimed (``applying``, with this process as owner) before the driver makes
the layer, and a layer is deleted by the driver before its row goes; see
:mod:`fsm.store.layers`. So whatever a crash interrupts, the row says what may exist, and
:func:`recover_layers` finishes or undoes it. Layers are this node's resources: only this node's
rows are touched.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from drivers.crashpoints import crash_point
from drivers.storage import ApplyTarget
from fsm.errors import BerthError, host_errors
from fsm.owner import owner_is_alive, owner_tag, tagged_owner_alive
from fsm.steps.host import Host
from fsm.store.layers import APPLYING, REMOVING, LayerRecord
from models import utcnow

#: how long a layer written by another process of this node is waited for
OTHER_WRITER_SECONDS = 600.0


def claim_layer(host: Host, layer_id: str, *, kind: str, parent: str | None,
                diff_id: str | None = None) -> bool:
    """Write the layer's row as ``applying`` by this process; False when it has a row."""
    now = utcnow()
    return host.db.layers.begin(host.settings.node, layer_id, kind=kind,
                                storage_driver=host.storage.name, diff_id=diff_id,
                                parent=parent, owner=host.owner,
                                lease_expires_at=now + host.lease, time=now)


def make_layer(host: Host, layer_id: str, parent: str | None,
               fill: Callable[[ApplyTarget], int] | None = None) -> int:
    """Have the driver make the claimed layer (a snapshot or copy of ``parent``, or an empty
    overlay upper over its chain) and, with ``fill``, write into it where the driver says
    (``fill(target)`` returns the bytes written). On any failure the layer and its row are
    undone before the error goes on."""
    size = 0
    try:
        with host_errors():
            host.storage.create(layer_id, parent)
            crash_point("layer.after_create")
            if fill is not None:
                with host.storage.apply_target(layer_id) as target:
                    size = fill(target)
                crash_point("layer.after_fill")
    except BaseException:
        undo_layer(host, layer_id)
        raise
    return size


def undo_layer(host: Host, layer_id: str) -> None:
    """The driver's layer, then its row (so the row outlives what it describes)."""
    with host_errors():
        host.storage.remove(layer_id)
    crash_point("layer.after_remove")
    host.db.layers.forget(host.settings.node, layer_id)


def wait_for_layer(host: Host, layer_id: str) -> LayerRecord | None:
    """The layer's row once it is ``ready``; None when it is gone meanwhile (its writer failed,
    or it was abandoned and is now undone here). Another live writer of this node is waited
    for, with a deadline."""
    node, deadline = host.settings.node, utcnow().timestamp() + OTHER_WRITER_SECONDS
    while True:
        record = host.db.layers.get(node, layer_id)
        if record is None or record.state not in (APPLYING, REMOVING):
            return record
        if _abandoned(record, node):
            undo_layer(host, layer_id)
            return None
        if utcnow().timestamp() > deadline:
            raise BerthError(f"layer {layer_id[:12]} has been {record.state} by {record.owner} "
                             f"for more than {OTHER_WRITER_SECONDS:g}s")
        # a writer of this node takes seconds per layer: its row is read twice a second
        time.sleep(0.5)


def release_layers(host: Host, top: str) -> list[str]:
    """Remove ``top`` and then each layer below it that nothing uses any more; returns the
    ids removed, top first."""
    node, removed = host.settings.node, []
    layer: str | None = top
    while layer is not None:
        if not host.db.layers.claim_unused(node, layer, host.owner, utcnow() + host.lease):
            break
        crash_point("layer.after_claim_removal")
        with host_errors():
            host.storage.remove(layer)
        crash_point("layer.after_remove")
        removed.append(layer)
        layer = host.db.layers.forget(node, layer)
    return removed


def recover_layers(host: Host) -> list[str]:
    """Finish or undo the layers whose writer or remover died; returns the ids undone.

    A container's layer whose container row was committed is the container's: it is kept
    (``ready``). Everything else unfinished is removed, driver first.
    """
    node, undone = host.settings.node, []
    for record in host.db.layers.unfinished(node):
        if not _abandoned(record, node):
            continue
        if (record.kind == "container" and record.state == APPLYING
                and host.db.containers.id_of(record.id) == record.id):
            host.db.layers.ready(node, record.id, record.size)
            continue
        undo_layer(host, record.id)
        undone.append(record.id)
    for layer_id in host.db.layers.unused_image_layers(node):
        # an image removal interrupted between its row and its layers
        undone.extend(release_layers(host, layer_id))
    for scratch in abandoned_scratch(host):
        shutil.rmtree(scratch, ignore_errors=True)
    return undone


def _abandoned(record: LayerRecord, node: str) -> bool:
    # layers are this node's: its owner's liveness is known here, so a slow writer is never
    # taken for a dead one (its lease is informative)
    return record.owner is None or owner_is_alive(record.owner, node) is not True


@contextmanager
def scratch(host: Host) -> Iterator[Path]:
    """A directory of this process's for what skopeo copies, removed afterwards; named after
    its owner so that recovery removes it once the owner is dead."""
    base = host.settings.scratch_dir
    base.mkdir(mode=0o700, exist_ok=True)
    directory = base / f"{owner_tag(host.owner, host.settings.node)}-{secrets.token_hex(4)}"
    directory.mkdir(mode=0o700)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def abandoned_scratch(host: Host) -> list[Path]:
    base = host.settings.scratch_dir
    if not base.is_dir():
        return []
    return [entry for entry in base.iterdir()
            if not tagged_owner_alive(entry.name, host.settings.node)]
