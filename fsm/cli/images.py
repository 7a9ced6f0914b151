"""``berth image``: import, ls, rm."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from fsm.cli import tables
from fsm.cli.context import Context, pass_context
from fsm.cli.progress import spinner


@click.group()
def image() -> None:
    """Manage images (root filesystems imported from tarballs).

    \b
    Examples: berth image import busybox busybox.tar
              berth image ls
              berth image rm busybox
    """


@image.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_context
def image_import(obj: Context, /, name: str, file: str) -> None:
    """Import a root filesystem tarball as image NAME.

    \b
    Example: berth image import busybox busybox.tar
    """
    with spinner(f"importing {file}"):
        info = obj.orc.import_image(name, file)
    click.echo(info.id)


@image.command("ls")
@pass_context
def image_ls(obj: Context) -> None:
    """List images.

    \b
    Example: berth image ls
    """
    now = datetime.now(UTC)
    click.echo(tables.render(
        ["NAME", "IMAGE ID", "DRIVER", "SIZE", "CREATED"],
        [[i.name, i.id[:12], i.storage_driver, tables.size(i.size), tables.ago(i.created_at, now)]
         for i in obj.orc.images()]))


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_context
def image_rm(obj: Context, /, names: tuple[str, ...]) -> None:
    """Remove images no container uses.

    \b
    Example: berth image rm busybox
    """
    for name in names:
        obj.orc.remove_image(name)
        click.echo(name)


COMMANDS = (image,)
