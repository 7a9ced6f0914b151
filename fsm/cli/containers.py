"""The container commands: create, run, start, stop, restart, rm, wait, ps, inspect, logs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fsm.cli import tables
from fsm.cli.context import Context, pass_context
from fsm.cli.options import COMMAND_AFTER_IMAGE, create_arguments, create_options, parse_filters

if TYPE_CHECKING:
    from fsm.info import ContainerInfo
    from fsm.orchestrator import Orchestrator

#: the states in which a container's process may still write to its log
_MAY_RUN = ("mounting", "networking", "starting", "running", "stopping")


def _create(obj: Context, image: str, command: tuple[str, ...], auto_remove: bool = False,
            **options: Any) -> ContainerInfo:
    # no command: the image's Cmd
    return obj.orc.create(image, list(command) or None, auto_remove=auto_remove,
                          **create_arguments(options))


@click.command(context_settings=COMMAND_AFTER_IMAGE)
@create_options
@pass_context
def create(obj: Context, /, image: str, command: tuple[str, ...], **options: Any) -> None:
    """Create a container; prints its id.

    \b
    Example: berth create --name web --network none busybox sleep 600
    """
    click.echo(_create(obj, image, command, **options).id)


@click.command(context_settings=COMMAND_AFTER_IMAGE)
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-d", "--detach", is_flag=True, help="Print the id and return at once.")
@create_options
@pass_context
def run(obj: Context, /, image: str, command: tuple[str, ...], remove: bool, detach: bool,
        **options: Any) -> None:
    """Create and start a container; stream its output and exit with its exit code.

    \b
    Example: berth run --rm --network none busybox sh -c 'echo hi; exit 3'   # exits 3
    """
    # detached, nobody here waits for the exit: the exit hook removes it
    info = _create(obj, image, command, auto_remove=remove and detach, **options)
    orc = obj.orc
    try:
        orc.start(info.id)
    except Exception:
        if remove:
            orc.remove(info.id, force=True)
        raise
    if detach:
        click.echo(info.id)
        return
    _print_log(orc, info.id, follow=True)
    exit_code = orc.wait(info.id)
    if remove:
        orc.remove(info.id, force=True)
    raise click.exceptions.Exit(exit_code)


@click.command()
@click.argument("refs", nargs=-1, required=True)
@pass_context
def start(obj: Context, /, refs: tuple[str, ...]) -> None:
    """Start containers; returns once each one's process runs.

    \b
    Example: berth start web
    """
    for ref in refs:
        click.echo(obj.orc.start(ref).id)


_stop_timeout = click.option("-t", "--time", "timeout", type=float, default=10,
                             show_default=True,
                             help="Seconds to wait after SIGTERM before SIGKILL.")


@click.command()
@_stop_timeout
@click.argument("refs", nargs=-1, required=True)
@pass_context
def stop(obj: Context, /, refs: tuple[str, ...], timeout: float) -> None:
    """Stop containers: SIGTERM, then SIGKILL after the timeout.

    \b
    Example: berth stop -t 2 web
    """
    for ref in refs:
        click.echo(obj.orc.stop(ref, timeout=timeout).id)


@click.command()
@_stop_timeout
@click.argument("refs", nargs=-1, required=True)
@pass_context
def restart(obj: Context, /, refs: tuple[str, ...], timeout: float) -> None:
    """Stop, then start containers.

    \b
    Example: berth restart web
    """
    for ref in refs:
        obj.orc.stop(ref, timeout=timeout)
        click.echo(obj.orc.start(ref).id)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("refs", nargs=-1, required=True)
@pass_context
def rm(obj: Context, /, refs: tuple[str, ...], force: bool) -> None:
    """Remove containers (their events and history stay).

    \b
    Example: berth rm -f web
    """
    for ref in refs:
        info = obj.orc.get(ref)
        obj.orc.remove(info.id, force=force)
        click.echo(info.id)


@click.command()
@click.argument("ref")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@pass_context
def wait(obj: Context, /, ref: str, timeout: float | None) -> None:
    """Wait until the container stops; print its exit code.

    \b
    Example: berth wait web
    """
    click.echo(obj.orc.wait(ref, timeout=timeout))


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show every container, not only "
              "running ones.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="state=STATE or name=NAME (repeatable).")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@pass_context
def ps(obj: Context, /, show_all: bool, filters: tuple[str, ...], output: str, quiet: bool) -> None:
    """List containers.

    \b
    Examples: berth ps -a
              berth ps --filter state=dead --format json
    """
    wanted = parse_filters(filters, {"state", "name"})
    containers = obj.reader().list(all=show_all, state=wanted.get("state"))
    if "name" in wanted:
        containers = [c for c in containers if c.name in wanted["name"]]
    if quiet:
        if containers:
            click.echo("\n".join(c.id[:12] for c in containers))
    elif output == "json":
        click.echo(json.dumps([c.to_dict() for c in containers], indent=2))
    else:
        now = datetime.now(UTC)
        click.echo(tables.render(tables.PS_HEADERS, [
            tables.ps_cells(c.id, c.image, c.config["cmd"], c.created_at, c.state, c.exit_code,
                            c.started_at, c.finished_at, c.name, now) for c in containers]))


@click.command()
@click.argument("refs", nargs=-1, required=True)
@pass_context
def inspect(obj: Context, /, refs: tuple[str, ...]) -> None:
    """Print containers as JSON.

    \b
    Example: berth inspect web db
    """
    orc = obj.reader()
    click.echo(json.dumps([orc.get(ref).to_dict() for ref in refs], indent=2))


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the container stops.")
@click.argument("ref")
@pass_context
def logs(obj: Context, /, ref: str, follow: bool) -> None:
    """Print a container's output (stdout and stderr).

    \b
    Example: berth logs -f web
    """
    orc = obj.reader()
    _print_log(orc, orc.get(ref).id, follow=follow)


def _print_log(orc: Orchestrator, container_id: str, follow: bool) -> None:
    """The container's log on stdout: as it is, or (``follow``) as it grows until the process
    has ended."""
    if not follow:
        sys.stdout.write(orc.logs(container_id))
        return
    for chunk in _follow_log(orc, container_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _follow_log(orc: Orchestrator, container_id: str) -> Iterator[str]:
    """The log as it grows, until the process has ended (the shim has recorded its exit) or the
    container is no longer in a state where it may run."""
    paths = orc.paths(container_id)
    log = paths.log
    position = 0
    while True:
        finished = (orc.runtime.exit_status(paths) is not None
                    or orc.state_of(container_id) not in _MAY_RUN)
        if log.exists():
            with log.open("r", errors="replace") as source:
                source.seek(position)
                chunk = source.read()
                position = source.tell()
            if chunk:
                yield chunk
        if finished:
            return
        time.sleep(0.05)


COMMANDS = (create, run, start, stop, restart, rm, wait, ps, inspect, logs)
