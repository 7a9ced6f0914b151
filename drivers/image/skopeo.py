"""Registries and image archives through ``skopeo``: it speaks the distribution protocol (auth,
TLS, mirrors, manifest lists) and reads Docker and OCI archives, and berth only ever reads what
it writes, an OCI image layout (:mod:`drivers.image.layout`).

Archives are looked into here only to list what they hold (names, how many images), with
:mod:`tarfile` reading headers and one small JSON member: nothing is extracted.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.commands import run
from drivers.errors import HostError
from drivers.image.errors import BadImage
from drivers.image.layout import JSON_LIMIT, REF_NAME

#: a pull of a large image over a slow link
COPY_TIMEOUT = 3600.0
_POLICY = Path("/etc/containers/policy.json")
#: skopeo's one line per blob: "Copying blob 2b8e2b5c9a0f done" / "Copying config ..."
_COPYING = re.compile(r"Copying (blob|config) (?:sha256:)?([0-9a-f]+)")


@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive: how skopeo names it, and the names it carries."""

    transport: str
    names: tuple[str, ...]


def copy_to_layout(source: str, layout: Path, ref_name: str, *, tls_verify: bool = True,
                   on_blob: Callable[[str, str], None] | None = None) -> None:
    """Copy the image at skopeo's ``source`` (``docker://...``, ``docker-archive:...``,
    ``oci-archive:...``) into the OCI layout directory ``layout`` under ``ref_name``.
    ``on_blob(kind, digest_hex_prefix)`` is told of each blob as skopeo starts it."""
    argv = ["skopeo"]
    if not _POLICY.exists():
        # berth verifies digests, not signatures: with no policy on the host, accept what the
        # user asked for rather than fail
        argv.append("--insecure-policy")
    # an archive's plain layer tars stay plain: skopeo would gzip them for berth to gunzip
    argv += ["copy", "--dest-oci-accept-uncompressed-layers",
             "--quiet" if on_blob is None else "--retry-times=0"]
    if source.startswith("docker://") and not tls_verify:
        argv.append("--src-tls-verify=false")
    argv += [source, f"oci:{layout}:{ref_name}"]

    def line(text: str) -> None:
        match = _COPYING.search(text)
        if match and on_blob is not None:
            on_blob(match.group(1), match.group(2))

    try:
        run(argv, timeout=COPY_TIMEOUT, what=f"cannot copy {_shown(source)}",
            on_line=line if on_blob is not None else None, die_with_parent=True)
    except HostError as error:
        raise BadImage(f"cannot get {_shown(source)}: {_reason(error)}",
                       errno=error.errno) from error


def archive_images(path: Path) -> tuple[str, list[ArchiveImage]]:
    """What the archive at ``path`` is (``"docker-archive"`` or ``"oci-archive"``) and the images
    it holds, each with the transport skopeo reads it by."""
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as error:
        raise BadImage(f"{path} is not a tar archive of an image: {error}") from error
    with archive:
        members = {}
        try:
            for member in archive:
                if member.name.lstrip("./") in ("manifest.json", "index.json", "oci-layout"):
                    members[member.name.lstrip("./")] = member
        except (tarfile.TarError, OSError, EOFError) as error:
            raise BadImage(f"{path} is truncated or corrupt: {error}") from error
        if "manifest.json" in members:
            manifest = _member_json(archive, members["manifest.json"], path)
            if not isinstance(manifest, list) or not manifest:
                raise BadImage(f"{path}: its manifest.json lists no image")
            return "docker-archive", [
                ArchiveImage(f"docker-archive:{path}:@{number}",
                             tuple(t for t in (entry.get("RepoTags") or []) if isinstance(t, str))
                             if isinstance(entry, dict) else ())
                for number, entry in enumerate(manifest)]
        if "index.json" in members and "oci-layout" in members:
            index = _member_json(archive, members["index.json"], path)
            manifests = index.get("manifests") if isinstance(index, dict) else None
            if not isinstance(manifests, list) or not manifests:
                raise BadImage(f"{path}: its index.json lists no image")
            refs = [((m.get("annotations") or {}).get(REF_NAME) if isinstance(m, dict) else None)
                    for m in manifests]
            if len(manifests) > 1 and not all(refs):
                raise BadImage(f"{path}: an OCI archive of several images must name each one "
                               f"({REF_NAME})")
            return "oci-archive", [
                ArchiveImage(f"oci-archive:{path}" + (f":{ref}" if ref else ""),
                             (ref,) if ref else ())
                for ref in refs]
    raise BadImage(f"{path} is neither a docker save archive (manifest.json) nor an OCI "
                   "archive (oci-layout, index.json)")


def _member_json(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> object:
    if not member.isfile() or member.size > JSON_LIMIT:
        raise BadImage(f"{path}: {member.name} is not a small regular file")
    extracted = archive.extractfile(member)
    if extracted is None:
        raise BadImage(f"{path}: cannot read {member.name}")
    try:
        return json.loads(extracted.read())
    except (ValueError, tarfile.TarError, OSError, EOFError) as error:
        raise BadImage(f"{path}: {member.name} is not JSON: {error}") from error


def _shown(source: str) -> str:
    return source.removeprefix("docker://")


def _reason(error: HostError) -> str:
    """skopeo's own last words, without its log prefix."""
    lines = [line for line in (error.stderr or "").splitlines() if line.strip()]
    if not lines:
        return str(error)
    last = re.sub(r'^time="[^"]*" level=\w+ msg="?', "", lines[-1]).rstrip('"')
    return last.removeprefix("Error: ")
