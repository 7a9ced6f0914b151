"""What a pull or load reports as it goes, one layer at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerProgress:
    """``action``: ``copying`` (skopeo is fetching a blob), ``applying``, ``applied`` or
    ``exists`` (the layer is on this node already); ``layer`` a short digest."""

    image: str
    layer: str
    action: str
    size: int = 0


Progress = Callable[[LayerProgress], None]


def silent(_event: LayerProgress) -> None:
    """The default: report nothing."""
