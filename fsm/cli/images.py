"""The image commands: pull, images, rmi, and ``berth image`` (load, import, ls, rm, inspect,
prune)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fsm.cli import tables
from fsm.cli.context import Context, pass_context
from fsm.cli.progress import layer_progress

if TYPE_CHECKING:
    from fsm.info import ImageInfo


@click.command()
@click.argument("reference")
@click.option("--tls-verify", type=bool, default=True, show_default=True,
              help="Require HTTPS and a verified certificate (false for a local registry).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@pass_context
def pull(obj: Context, /, reference: str, tls_verify: bool, quiet: bool) -> None:
    """Pull an image from a registry: HOST[:PORT]/REPO[:TAG|@sha256:DIGEST].

    \b
    Example: berth pull --tls-verify=false 127.0.0.1:5000/tools:1.0
    """
    with layer_progress(quiet) as progress:
        info = obj.orc.pull(reference, tls_verify=tls_verify, progress=progress)
    click.echo(f"sha256:{info.id}" if quiet else f"{info.name}: sha256:{info.id}")


@click.group()
def image() -> None:
    """Manage images.

    \b
    Examples: berth pull --tls-verify=false 127.0.0.1:5000/tools:1.0
              berth image load -i tools.tar
              berth image import busybox busybox.tar
              berth images
              berth rmi busybox
    """


@image.command("load")
@click.option("-i", "--input", "path", required=True, type=click.Path(exists=True),
              help="A docker save archive, an OCI archive or an OCI layout directory.")
@click.option("-q", "--quiet", is_flag=True, help="Print only what was loaded.")
@pass_context
def image_load(obj: Context, /, path: str, quiet: bool) -> None:
    """Load the images of an archive or an OCI layout directory.

    \b
    Example: berth image load -i tools.tar
    """
    with layer_progress(quiet) as progress:
        loaded = obj.orc.load(path, progress=progress)
    for info in loaded:
        click.echo(f"Loaded image: {info.name if info.names else 'sha256:' + info.id}")


@image.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_context
def image_import(obj: Context, /, name: str, file: str) -> None:
    """Import a root filesystem tarball as the one-layer image NAME.

    \b
    Example: berth image import busybox busybox.tar
    """
    with layer_progress(quiet=True) as progress:
        info = obj.orc.import_image(name, file, progress=progress)
    click.echo(info.id)


def _list(obj: Context, quiet: bool) -> None:
    found = obj.reader().images()
    if quiet:
        for info in found:
            click.echo(info.id[:12])
        return
    now = datetime.now(UTC)
    rows = []
    for info in found:
        for name in info.names or ("<none>:<none>",):
            repository, tag = _repository_and_tag(name)
            rows.append([repository, tag, info.id[:12], tables.ago(info.created_at, now),
                         tables.size(info.size)])
    click.echo(tables.render(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))


def _repository_and_tag(name: str) -> tuple[str, str]:
    """``host:5000/repo:tag`` -> (``host:5000/repo``, ``tag``); a name by digest has no tag."""
    if "@" in name:
        return name.partition("@")[0], "<none>"
    last = name.rpartition("/")[2]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag
    return name, "<none>"


@image.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only the image ids.")
@pass_context
def image_ls(obj: Context, /, quiet: bool) -> None:
    """List images.

    \b
    Example: berth image ls
    """
    _list(obj, quiet)


@click.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only the image ids.")
@pass_context
def images(obj: Context, /, quiet: bool) -> None:
    """List images (as `berth image ls`).

    \b
    Example: berth images -q
    """
    _list(obj, quiet)


def _remove(obj: Context, refs: tuple[str, ...], force: bool) -> None:
    for ref in refs:
        for line in obj.orc.remove_image(ref, force=force):
            click.echo(line)


@image.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Untag an image containers still use.")
@pass_context
def image_rm(obj: Context, /, refs: tuple[str, ...], force: bool) -> None:
    """Remove images (a name of an image with several is only untagged).

    \b
    Example: berth image rm busybox
    """
    _remove(obj, refs, force)


@click.command("rmi")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Untag an image containers still use.")
@pass_context
def rmi(obj: Context, /, refs: tuple[str, ...], force: bool) -> None:
    """Remove images (as `berth image rm`).

    \b
    Example: berth rmi 127.0.0.1:5000/tools:1.0
    """
    _remove(obj, refs, force)


@image.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@pass_context
def image_inspect(obj: Context, /, refs: tuple[str, ...]) -> None:
    """Print images as JSON.

    \b
    Example: berth image inspect busybox
    """
    reader = obj.reader()
    click.echo(json.dumps([_inspected(reader.image(ref)) for ref in refs], indent=4))


def _inspected(info: ImageInfo) -> dict[str, Any]:
    config = info.config
    return {
        "Id": f"sha256:{info.id}",
        "RepoTags": list(info.names),
        "RepoDigests": [info.repo_digest] if info.repo_digest else [],
        "Created": config.get("created"),
        "Stored": info.created_at.isoformat(),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Size": info.size,
        "Config": config.get("config") or {},
        "RootFS": {"Type": "layers", "Layers": info.diff_ids},
        "TopLayer": info.top_layer,
        "StorageDriver": info.storage_driver,
    }


@image.command("prune")
@click.option("-a", "--all", "every", is_flag=True,
              help="Every image no container uses, not only dangling ones.")
@pass_context
def image_prune(obj: Context, /, every: bool) -> None:
    """Remove dangling images (no name) that no container uses.

    \b
    Example: berth image prune -a
    """
    for info in obj.orc.prune_images(all=every):
        click.echo(f"Deleted: sha256:{info.id}")


COMMANDS = (image, pull, images, rmi)
