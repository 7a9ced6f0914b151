"""OCI image layouts written byte by byte, for the inputs no image tool would make: layers that
climb out of their root, blobs whose digest lies, configs for another architecture."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Entry = Callable[[tarfile.TarFile], None]


def layer(*entries: Entry) -> bytes:
    """An uncompressed layer tar of ``entries`` (see :func:`file`, :func:`symlink`...)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            entry(tar)
    return data.getvalue()


def file(name: str, content: bytes = b"x", mode: int = 0o644) -> Entry:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), mode
        tar.addfile(info, io.BytesIO(content))
    return add


def directory(name: str) -> Entry:
    return _header(name, tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> Entry:
    return _header(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Entry:
    return _header(name, tarfile.LNKTYPE, linkname=target)


def _header(name: str, kind: bytes, *, mode: int = 0o644, linkname: str = "") -> Entry:
    """An entry that is only its header: a directory or a link."""
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.linkname = kind, mode, linkname
        tar.addfile(info)
    return add


def write_layout(directory_path: Path, layers: list[bytes], *, name: str = "localhost/made:1",
                 architecture: str = "amd64", config: dict[str, Any] | None = None,
                 lie_about: int | None = None) -> Path:
    """An OCI layout of one image of ``layers`` (bottom first). ``lie_about``: the index of a
    layer whose blob is changed after its digest was taken."""
    blobs = directory_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descriptors = []
    for number, data in enumerate(layers):
        descriptor = blob(data)
        if number == lie_about:
            (blobs / descriptor["digest"].removeprefix("sha256:")).write_bytes(data + b"\0" * 512)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            **descriptor})
    image_config = {"architecture": architecture, "os": "linux",
                    "config": config or {"Cmd": ["/bin/sh"]},
                    "rootfs": {"type": "layers", "diff_ids": [
                        "sha256:" + hashlib.sha256(data).hexdigest() for data in layers]}}
    config_blob = blob(json.dumps(image_config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **config_blob},
                "layers": descriptors}
    manifest_blob = blob(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_blob,
        "annotations": {"org.opencontainers.image.ref.name": name}}]}
    (directory_path / "index.json").write_text(json.dumps(index))
    (directory_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return directory_path
