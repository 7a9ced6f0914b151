"""The container commands: create, run, start, stop, restart, kill, exec, rm, wait, ps,
inspect, logs."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fsm.cli import tables
from fsm.cli.context import Context, pass_context
from fsm.cli.options import (
    COMMAND_AFTER_IMAGE,
    create_arguments,
    create_options,
    parse_env,
    parse_filters,
    parse_time,
)
from fsm.errors import BerthError, ConcurrentTransition, InvalidState, NoSuchContainer

if TYPE_CHECKING:
    from drivers.runtime.logs import LogLine
    from fsm.info import ContainerInfo
    from fsm.orchestrator import Orchestrator


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
@click.option("--sig-proxy/--no-sig-proxy", default=True, show_default=True,
              help="Forward the signals this command gets to the container's process.")
@create_options
@pass_context
def run(obj: Context, /, image: str, command: tuple[str, ...], remove: bool, detach: bool,
        sig_proxy: bool, **options: Any) -> None:
    """Create and start a container; stream its stdout and stderr, exit with its exit code.

    \b
    Example: berth run --rm --network none busybox sh -c 'echo hi; exit 3'   # exits 3
    """
    # recorded whatever the mode: the exit hook removes it even if this command dies first
    info = _create(obj, image, command, auto_remove=remove, **options)
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
    with _signals_forwarded(orc, info.id) if sig_proxy else contextlib.nullcontext():
        _print_lines(orc.logs(info.id, follow=True))
        exit_code = _exit_code(orc, info.id)
    if remove:
        _removed(orc, info.id)
    raise click.exceptions.Exit(exit_code)


#: what a foreground ``run`` forwards to the container (``docker run``'s sig-proxy)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def _signals_forwarded(orc: Orchestrator, container_id: str) -> Iterator[None]:
    def forward(number: int, _frame: object) -> None:
        with contextlib.suppress(BerthError):  # it has just ended: nothing to forward to
            orc.kill(container_id, number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _exit_code(orc: Orchestrator, container_id: str) -> int:
    """The container's exit code; when it was removed meanwhile (``rm -f`` from elsewhere,
    its auto-removal), the one its last ``die`` event recorded."""
    try:
        return orc.wait(container_id)
    except NoSuchContainer:
        dies = orc.events(container=container_id, actions=["die"])
        return int(dies[-1].attributes.get("exitCode", 128)) if dies else 128


def _removed(orc: Orchestrator, container_id: str, timeout: float = 60) -> None:
    """Remove the container, or see it removed by its exit hook (``--rm`` is recorded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            orc.remove(container_id, force=True)
            return
        except NoSuchContainer:
            return
        except (InvalidState, ConcurrentTransition):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)  # the exit hook is removing it: wait for the row to go


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
@click.option("--since", metavar="TIME", help="Only lines from then on: 10m, 2h, an ISO time.")
@click.option("--until", metavar="TIME", help="Only lines from before then.")
@click.option("-n", "--tail", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only the last N lines.")
@click.option("-t", "--timestamps", is_flag=True, help="Each line after its time.")
@click.argument("ref")
@pass_context
def logs(obj: Context, /, ref: str, follow: bool, since: str | None, until: str | None,
         tail: int | None, timestamps: bool) -> None:
    """Print a container's output: its stdout on stdout, its stderr on stderr, byte for byte.

    \b
    Examples: berth logs -f web
              berth logs --since 10m -n 20 -t web
    """
    orc = obj.reader()
    lines = orc.logs(orc.get(ref).id, since=parse_time("--since", since),
                     until=parse_time("--until", until), tail=tail, follow=follow)
    _print_lines(lines, timestamps=timestamps, flush=follow)


def _print_lines(lines: Iterable[LogLine], *, timestamps: bool = False,
                 flush: bool = True) -> None:
    """Each stream's lines on the CLI's own stream of that name, as bytes."""
    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for line in lines:
        out = outputs.get(line.stream, sys.stdout.buffer)
        if timestamps:
            out.write(line.time.isoformat().encode() + b" ")
        out.write(line.data)
        if flush:
            out.flush()
    for out in outputs.values():
        out.flush()


@click.command()
@click.option("-s", "--signal", "signal_name", default="KILL", show_default=True,
              help="Signal: a name (TERM, SIGUSR1) or a number.")
@click.argument("refs", nargs=-1, required=True)
@pass_context
def kill(obj: Context, /, refs: tuple[str, ...], signal_name: str) -> None:
    """Send a signal to running containers' processes.

    \b
    Example: berth kill -s USR1 web
    """
    for ref in refs:
        click.echo(obj.orc.kill(ref, signal_name).id)


@click.command(context_settings=COMMAND_AFTER_IMAGE)
@click.option("-i", "--interactive", is_flag=True, help="Feed this command's stdin to it.")
@click.option("-u", "--user", help="NAME|UID[:GROUP|GID] (default: the container's).")
@click.option("-e", "--env", "env", multiple=True, metavar="NAME=VALUE",
              help="Environment variable (repeatable).")
@click.option("-w", "--workdir", help="Working directory (default: the container's).")
@click.argument("ref")
@click.argument("command", nargs=-1, required=True)
@pass_context
def exec_(obj: Context, /, ref: str, command: tuple[str, ...], interactive: bool,
          user: str | None, env: tuple[str, ...], workdir: str | None) -> None:
    """Run a command in a running container; its stdout and stderr apart, its exit code.

    \b
    Example: berth exec -u nobody web sh -c 'id -u'
    """
    stdin = sys.stdin.buffer.read() if interactive else None
    done = obj.orc.exec(ref, list(command), user=user, env=parse_env(env), working_dir=workdir,
                        stdin=stdin)
    sys.stdout.buffer.write(done.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(done.stderr)
    sys.stderr.buffer.flush()
    raise click.exceptions.Exit(done.exit_code)


exec_.name = "exec"

COMMANDS = (create, run, start, stop, restart, kill, exec_, rm, wait, ps, inspect, logs)
