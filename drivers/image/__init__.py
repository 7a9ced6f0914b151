"""Image layers on the host: applying a layer's tar stream onto a storage driver's tree.

>>> from drivers.image import apply_layer
>>> applied = apply_layer(rootfs, "blobs/sha256/9a4b...", diff_id=config_diff_id)  # doctest: +SKIP
>>> applied.bytes_written, applied.entries, applied.xattr_warnings  # doctest: +SKIP
(5_242_880, 412, ())
"""

from drivers.image.apply import AppliedLayer, apply_layer
from drivers.image.errors import CorruptLayer, DigestMismatch, LayerError, UnsafeLayer
from drivers.image.stream import LayerStream

__all__ = [
    "AppliedLayer",
    "CorruptLayer",
    "DigestMismatch",
    "LayerError",
    "LayerStream",
    "UnsafeLayer",
    "apply_layer",
]
