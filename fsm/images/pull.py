"""``pull``: an image from a registry, through skopeo into a scratch OCI layout, then applied."""

from __future__ import annotations

from drivers.crashpoints import crash_point
from drivers.image.layout import read_layout
from drivers.image.skopeo import copy_to_layout
from fsm.errors import ConfigError, host_errors
from fsm.images.commit import store_image
from fsm.images.progress import LayerProgress, Progress
from fsm.images.reference import parse_reference
from fsm.info import ImageInfo
from fsm.steps.host import Host
from fsm.steps.layers import scratch


def pull(host: Host, reference: str, *, tls_verify: bool, progress: Progress) -> ImageInfo:
    """The image ``reference`` names (``host[:port]/repo[:tag|@sha256:...]``), stored under
    that name."""
    if not isinstance(tls_verify, bool):
        raise ConfigError("tls_verify", tls_verify, "True or False")
    ref = parse_reference(reference)
    name = str(ref)

    def copying(kind: str, digest: str) -> None:
        crash_point("image.during_copy")
        progress(LayerProgress(name, digest[:12], "copying" if kind == "blob" else "config"))

    with scratch(host) as directory, host_errors():
        copy_to_layout(f"docker://{ref.transport_ref()}", directory, "pulled",
                       tls_verify=tls_verify, on_blob=copying)
        crash_point("image.after_copy")
        (image,) = read_layout(directory)
        return store_image(host, image, (name,), "pull", progress, repo_digest=ref.digest)
