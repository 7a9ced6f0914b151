"""An image's layers onto the storage driver, one by one, each a child of the one below.

Layers are keyed by chain ID (image-spec ``config.md``): the first layer's is its diff ID, each
next one ``sha256(parent chain ID + " " + diff ID)``. A layer already on this node is shared, not
applied again; one being written by another process of this node is waited for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from drivers.crashpoints import crash_point
from drivers.image.accounts import read_accounts
from drivers.image.apply import apply_layer
from drivers.image.layout import LayerBlob, LayoutImage
from drivers.storage import ApplyTarget
from fsm.errors import host_errors
from fsm.images.progress import LayerProgress, Progress
from fsm.steps.host import Host
from fsm.steps.layers import claim_layer, make_layer, wait_for_layer


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each layer, as hex digits (the storage layers' ids)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id.removeprefix("sha256:"))
        else:
            text = f"sha256:{chains[-1]} {diff_id}"
            chains.append(hashlib.sha256(text.encode()).hexdigest())
    return chains


def apply_chain(host: Host, image: LayoutImage, name: str, progress: Progress,
                written: dict[str, int]) -> int:
    """Make sure every layer of ``image`` is on this node; returns the bytes of all of them.

    The layers this call writes stay ``applying`` (``written``: their ids and sizes) until the
    image's row commits them; on a failure, the caller undoes them."""
    total, parent = 0, None
    chains = chain_ids([blob.diff_id for blob in image.layers])
    for blob, chain in zip(image.layers, chains, strict=True):
        short = blob.digest.removeprefix("sha256:")[:12]
        while True:
            if claim_layer(host, chain, kind="image", parent=parent, diff_id=blob.diff_id):
                crash_point("image.after_claim_layer")
                progress(LayerProgress(name, short, "applying", blob.size))
                size = make_layer(host, chain, parent, _applier(blob))
                written[chain] = size
                progress(LayerProgress(name, short, "applied", size))
                break
            record = wait_for_layer(host, chain)
            if record is not None:
                size = record.size
                progress(LayerProgress(name, short, "exists", size))
                break
        total += size
        parent = chain
    return total


def _applier(blob: LayerBlob) -> Callable[[ApplyTarget], int]:
    def fill(target: ApplyTarget) -> int:
        return apply_layer(target.root, blob.path, blob_digest=blob.digest,
                           diff_id=blob.diff_id, whiteouts=target.whiteouts,
                           lowers=target.lowers).bytes_written
    return fill


def accounts_of(host: Host, top: str) -> dict[str, str]:
    """The top layer's ``/etc/passwd`` and ``/etc/group``, read where its tree is written
    (overlay: its diff over its parents', unmounted, so a kill leaves no mount behind)."""
    with host_errors(), host.storage.apply_target(top) as tree:
        crash_point("image.reading_accounts")
        return read_accounts(tree.root, tree.lowers)
