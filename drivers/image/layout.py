"""Reading an OCI image layout (image-spec ``image-layout.md``): its index, manifests and configs.

The layout may come from anywhere (an archive a user loads, a registry through skopeo), so it is
untrusted: a blob is addressed only through a digest checked to be ``sha256:`` and 64 hex
digits (no path can be smuggled in), every JSON document read is bounded in size and its digest
checked against the one that named it, and a manifest's layers must match its config's diff IDs
one for one. The layers themselves are checked as they are applied
(:func:`drivers.image.apply.apply_layer`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.image.errors import BadImage

#: larger than any real index, manifest or config, small enough not to exhaust memory
JSON_LIMIT = 8 << 20
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
#: the annotations that name an image in a layout's index (OCI's, and containerd's full name)
REF_NAME = "org.opencontainers.image.ref.name"
FULL_NAME = "io.containerd.image.name"

#: ``uname -m`` to the OCI platform's architecture
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
                  "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                  "riscv64": "riscv64"}


def host_architecture() -> str:
    machine = os.uname().machine
    return _ARCHITECTURES.get(machine, machine)


@dataclass(frozen=True)
class LayerBlob:
    """One layer as the manifest names it, with the diff ID the config gives it."""

    path: Path
    digest: str
    media_type: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class LayoutImage:
    """One image of a layout: the names it carries, its manifest's digest, its config (parsed,
    and the sha256 hex of its bytes: the image id) and its layers, bottom first."""

    names: tuple[str, ...]
    manifest_digest: str
    config: dict[str, Any]
    config_id: str
    layers: tuple[LayerBlob, ...]


def read_layout(directory: Path, *, architecture: str | None = None) -> list[LayoutImage]:
    """Every image of the layout at ``directory``, in the order of its index. A manifest list
    (index) inside picks the entry for this host's platform; an image for another platform is
    :class:`BadImage`."""
    if not (directory / "oci-layout").is_file() or not (directory / "index.json").is_file():
        raise BadImage(f"{directory} is not an OCI image layout (no oci-layout and index.json)")
    index = _read_json(directory / "index.json", "index.json")
    wanted = architecture or host_architecture()
    found = []
    for entry in _manifests_of(index, "index.json"):
        names = _names(entry)
        found.append(_image(directory, entry, names, wanted))
    if not found:
        raise BadImage(f"{directory}: its index.json lists no image")
    return found


def _image(directory: Path, entry: dict[str, Any], names: tuple[str, ...],
           architecture: str) -> LayoutImage:
    digest = _digest(entry, "index.json")
    media_type = entry.get("mediaType", "")
    document = _read_blob_json(directory, digest)
    if media_type in INDEX_TYPES or document.get("manifests") is not None:
        entry = _platform_entry(document, digest, architecture)
        digest = _digest(entry, digest)
        document = _read_blob_json(directory, digest)
    layers = document.get("layers")
    config_descriptor = document.get("config")
    if not isinstance(layers, list) or not isinstance(config_descriptor, dict):
        raise BadImage(f"manifest {digest} has no config or no layers")
    config_digest = _digest(config_descriptor, f"manifest {digest}")
    config = _read_blob_json(directory, config_digest)
    _check_platform(config, config_digest, architecture)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise BadImage(f"image {config_digest}: its config lists "
                       f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff IDs for "
                       f"{len(layers)} layers")
    blobs = []
    for layer, diff_id in zip(layers, diff_ids, strict=True):
        if not isinstance(layer, dict):
            raise BadImage(f"manifest {digest}: a layer descriptor is not an object")
        layer_digest = _digest(layer, f"manifest {digest}")
        layer_type = str(layer.get("mediaType", ""))
        if layer_type not in LAYER_TYPES:
            raise BadImage(f"manifest {digest}: layer {layer_digest} has media type "
                           f"{layer_type!r}, not one of a tar layer's")
        if not isinstance(diff_id, str) or not DIGEST.fullmatch(diff_id):
            raise BadImage(f"image {config_digest}: diff ID {diff_id!r} is not sha256:<64 hex>")
        path = _blob_path(directory, layer_digest)
        if not path.is_file():
            raise BadImage(f"layer {layer_digest} is missing from the layout")
        blobs.append(LayerBlob(path, layer_digest, layer_type, int(layer.get("size") or 0),
                               diff_id))
    return LayoutImage(names, digest, config, config_digest.removeprefix("sha256:"),
                       tuple(blobs))


def _platform_entry(index: dict[str, Any], digest: str, architecture: str) -> dict[str, Any]:
    offered = []
    for entry in _manifests_of(index, digest):
        platform = entry.get("platform") or {}
        offered.append(f"{platform.get('os')}/{platform.get('architecture')}")
        if platform.get("os", "linux") == "linux" and platform.get("architecture") == architecture:
            return entry
    raise BadImage(f"image index {digest} has no manifest for linux/{architecture} "
                   f"(it offers {', '.join(offered) or 'none'})")


def _check_platform(config: dict[str, Any], digest: str, architecture: str) -> None:
    image_os, image_arch = config.get("os"), config.get("architecture")
    if image_os not in (None, "", "linux") or image_arch not in (None, "", architecture):
        raise BadImage(f"image {digest} is for {image_os}/{image_arch}; this host runs "
                       f"linux/{architecture}")


def _manifests_of(index: dict[str, Any], what: str) -> list[dict[str, Any]]:
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
        raise BadImage(f"{what} has no list of manifests")
    return manifests


def _names(entry: dict[str, Any]) -> tuple[str, ...]:
    annotations = entry.get("annotations") or {}
    name = annotations.get(FULL_NAME) or annotations.get(REF_NAME)
    return (name,) if isinstance(name, str) and name else ()


def _digest(descriptor: dict[str, Any], where: str) -> str:
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise BadImage(f"{where}: digest {digest!r} is not sha256:<64 hex digits>")
    return digest


def _blob_path(directory: Path, digest: str) -> Path:
    return directory / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _read_blob_json(directory: Path, digest: str) -> dict[str, Any]:
    path = _blob_path(directory, digest)
    data = _read_bounded(path, digest)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise BadImage(f"blob {digest} has digest {actual}: the layout is corrupt")
    return _parse(data, digest)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return _parse(_read_bounded(path, what), what)


def _read_bounded(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as source:
            data = source.read(JSON_LIMIT + 1)
    except FileNotFoundError:
        raise BadImage(f"{what} is missing from the layout") from None
    except OSError as error:
        raise BadImage(f"cannot read {what}: {error.strerror}", errno=error.errno) from error
    if len(data) > JSON_LIMIT:
        raise BadImage(f"{what} is larger than {JSON_LIMIT >> 20} MiB: not an image document")
    return data


def _parse(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadImage(f"{what} is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise BadImage(f"{what} is not a JSON object")
    return document
