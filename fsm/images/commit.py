"""Storing one image: its layers onto the driver, then its row, names and event in one commit."""

from __future__ import annotations

from dataclasses import replace

from drivers.crashpoints import crash_point
from drivers.image.layout import LayoutImage
from fsm.images.chain import accounts_of, apply_chain, chain_ids
from fsm.images.progress import Progress
from fsm.info import ImageInfo
from fsm.steps.host import Host
from fsm.steps.layers import undo_layer
from models import utcnow


def store_image(host: Host, image: LayoutImage, names: tuple[str, ...], action: str,
                progress: Progress, repo_digest: str | None = None) -> ImageInfo:
    """Apply ``image``'s layers (those not on this node yet) and record it under ``names``.
    A failure undoes the layers this call wrote, newest first, before it goes on."""
    written: dict[str, int] = {}
    label = names[0] if names else image.config_id[:12]
    try:
        size = apply_chain(host, image, label, progress, written)
        top = chain_ids([blob.diff_id for blob in image.layers])[-1]
        accounts = accounts_of(host, top)
        crash_point("image.before_commit")
        now = utcnow()
        info = ImageInfo(image.config_id, names, size, host.storage.name, now, top,
                         image.config, repo_digest)
        host.db.images.store(info, accounts, action, now, host.settings.node, written)
    except BaseException:
        for layer in reversed(written):
            undo_layer(host, layer)
        raise
    crash_point("image.after_commit")
    stored = host.db.images.get(image.config_id)
    assert stored is not None  # committed just above; images are removed only by id
    # the names this call gave first: what a caller printing "Loaded image: NAME" means
    return replace(stored, names=(*names, *(n for n in stored.names if n not in names)))
