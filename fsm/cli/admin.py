"""The host's upkeep: ``recover``, ``gc``, ``pool status``, ``db`` (the schema) and ``graph``
(the lifecycle drawn)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fsm.cli.context import Context, pass_context
from fsm.cli.progress import spinner

if TYPE_CHECKING:
    from sqlalchemy import Engine


@click.command()
@pass_context
def recover(obj: Context) -> None:
    """Reconcile containers left in flight by a crash, and print what was done: rows of this
    node whose owner died or whose lease expired become dead (their steps undone), a stop in
    progress is finished, and running rows whose process is gone get their exit. Every berth
    command does this silently when it opens the database; this one says what it found.

    \b
    Example: berth recover
    """
    obj.recover_on_open = False
    _echo_report(obj.orc.recover(), "", "nothing to recover")


@click.command()
@click.option("--force", is_flag=True, help="Remove what is found (default: only list it).")
@pass_context
def gc(obj: Context, /, force: bool) -> None:
    """Find host resources that no container row owns: layers, bundles, netns, veths, runtime
    containers. A dry run unless --force.

    \b
    Example: berth gc --force
    """
    _echo_report(obj.orc.gc(remove=force), "removed\t" if force else "orphan\t",
                 "no orphans")


def _echo_report(report: dict[str, list[str]], prefix: str, nothing: str) -> None:
    """A line per item (``prefix``, its kind, a tab, the item); ``nothing`` if there is none."""
    for kind, items in report.items():
        for item in items:
            click.echo(f"{prefix}{kind}\t{item}")
    if not any(report.values()):
        click.echo(nothing)


@click.command()
@click.option("--format", "output", type=click.Choice(["mermaid", "png"]), default="mermaid")
@click.option("-o", "--output-file", type=click.Path(dir_okay=False), help="PNG file to write.")
def graph(output: str, output_file: str | None) -> None:
    """The lifecycle as Mermaid text (or a PNG, with graphviz installed).

    \b
    Example: berth graph > lifecycle.mmd
    """
    from fsm.graph import mermaid, render_png

    if output == "png":
        target = output_file or "lifecycle.png"
        render_png(target)
        click.echo(target)
    else:
        click.echo(mermaid())


# -- storage pool ---------------------------------------------------------------------------

@click.group()
def pool() -> None:
    """The storage driver's pool.

    \b
    Example: berth pool status
    """


@pool.command("status")
@pass_context
def pool_status(obj: Context) -> None:
    """The storage driver's status, like `docker info`'s storage section.

    \b
    Example: berth --storage devicemapper pool status
    """
    with spinner("opening the storage driver"):
        status = obj.orc.storage.status()
    click.echo(f"Storage Driver: {obj.orc.storage.name}")
    layers = obj.orc.layers()
    status += [
        ("Image Layers", str(sum(1 for r in layers if r.kind == "image"))),
        ("Container Layers", str(sum(1 for r in layers if r.kind == "container"))),
        ("Layers Being Written Or Removed", str(sum(1 for r in layers if r.state != "ready"))),
    ]
    width = max((len(k) for k, _ in status), default=0)
    for key, value in status:
        click.echo(f" {key.ljust(width)}  {value}")


# -- database -------------------------------------------------------------------------------
# The schema is read and upgraded without an orchestrator: opening one refuses a database at an
# older revision, which is what these commands are for.

@click.group()
def db() -> None:
    """The database schema (alembic migrations).

    \b
    Examples: berth db current
              berth --database-url postgresql://berth@db/berth db upgrade
    """


def _database(obj: Context) -> tuple[Engine, str]:
    from fsm.settings import resolve
    from fsm.store.engine import open_engine

    settings = resolve(obj.root, obj.database_url)
    return open_engine(settings.database_url), settings.database_url


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_context
def db_upgrade(obj: Context, /, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head). A database berth did not create itself
    (one given with --database-url) is never upgraded behind the operator's back: run this.

    \b
    Example: berth --database-url postgresql://berth@db/berth db upgrade
    """
    from fsm.store.schema import current_revision, upgrade

    engine, url = _database(obj)
    upgrade(engine, url, revision)
    click.echo(f"at {current_revision(engine)}")


@db.command("current")
@pass_context
def db_current(obj: Context) -> None:
    """The schema revision of the database, and whether it is the newest.

    \b
    Example: berth db current
    """
    from fsm.store.schema import current_revision, head_revision

    engine, _ = _database(obj)
    current, head = current_revision(engine), head_revision()
    click.echo(f"{current or 'none'}{' (head)' if current == head else f' (head is {head})'}")


@db.command("history")
def db_history() -> None:
    """Every migration, newest first.

    \b
    Example: berth db history
    """
    from fsm.store.schema import history

    for revision, doc in history():
        click.echo(f"{revision}\t{doc}")


COMMANDS = (recover, gc, graph, pool, db)
