"""The ``berth`` command line: a thin layer over :class:`fsm.Orchestrator` (parse, call, print).

Exit codes: 0 ok, 1 a berth error (one line on stderr, with the fix), 2 bad usage. ``--debug``
shows the traceback. Heavy modules are imported inside the commands, so ``berth --help`` and
``berth ps`` start fast.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import click

from fsm import tables

if TYPE_CHECKING:
    from fsm.info import ContainerInfo, Event
    from fsm.orchestrator import Orchestrator

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")


class Context:
    def __init__(self, root: str | None, database_url: str | None, storage: str | None,
                 runtime: str, debug: bool) -> None:
        self.root = root
        self.database_url = database_url
        self.storage = storage
        self.runtime = runtime
        self.debug = debug
        #: an orchestrator reconciles on opening; ``berth recover`` does it itself, to report it
        self.recover_on_open = True
        self._orc: Orchestrator | None = None

    @property
    def orc(self) -> Orchestrator:
        if self._orc is None:
            from fsm.orchestrator import Orchestrator

            self._orc = Orchestrator(database_url=self.database_url, root=self.root,
                                     storage=self.storage, runtime=self.runtime,
                                     recover=self.recover_on_open)
        return self._orc


    def list_containers(self, show_all: bool, states: list[str] | None) -> list[ContainerInfo]:
        return self.orc.list(all=show_all and not states, state=states or None)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="BERTH_ROOT", metavar="DIR",
              help="Data root [env BERTH_ROOT; default /var/lib/berth as root].")
@click.option("--database-url", envvar="BERTH_DATABASE_URL", metavar="URL",
              help="SQLAlchemy URL [env BERTH_DATABASE_URL; default a SQLite file in the root].")
@click.option("--storage", type=click.Choice(["vfs", "devicemapper"]), default=None,
              help="Storage driver [default: what the images use, else automatic].")
@click.option("--runtime", type=click.Choice(["runc", "crun"]), default="runc", show_default=True,
              help="OCI runtime.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="berth")
@click.pass_context
def cli(ctx: click.Context, root: str | None, database_url: str | None, storage: str | None,
        runtime: str, debug: bool) -> None:
    """berth: containers as state machines persisted in SQL.

    \b
    Examples:
      berth demo
      berth image import busybox busybox.tar
      berth run --network none busybox sh -c 'echo hi'
      berth ps -a --filter state=exited
      berth events --since 10m --filter event=die
    """
    ctx.obj = Context(root, database_url, storage, runtime, debug)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # not standalone: ``Exit(code)`` raised by a command (``run``'s exit code) comes back
        # as the return value instead of being raised
        returned = cli.main(args=argv, prog_name="berth", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("berth: aborted", err=True)
        sys.exit(1)
    except click.ClickException as usage:
        usage.show()
        sys.exit(2)
    except Exception as error:
        from fsm.errors import BerthError

        if debug:
            raise
        if isinstance(error, BerthError):
            click.echo(f"berth: {error}", err=True)
            sys.exit(error.exit_status)
        first_line = (str(error) or type(error).__name__).splitlines()[0]
        click.echo(f"berth: unexpected {type(error).__name__}: {first_line} "
                   "(run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(returned if isinstance(returned, int) else 0)


# -- containers -----------------------------------------------------------------------------

#: everything after IMAGE is the container's command, options included (``sh -c '...'``)
_COMMAND_AFTER_IMAGE = {"allow_interspersed_args": False}

def _create_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", help="Container name (unique)."),
        click.option("-e", "--env", "env", multiple=True, metavar="NAME=VALUE",
                     help="Environment variable (repeatable)."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("--network", default="", help="bridge (default), none, host, "
                     "container:<name|id>."),
        click.option("--ipc", default="", help="private (default), host, container:<name|id>."),
        click.option("--tmpfs", multiple=True, metavar="PATH[:OPTIONS]",
                     help="tmpfs mount, e.g. /run:size=64m (repeatable)."),
        click.option("--link", multiple=True, metavar="NAME[:ALIAS]",
                     help="Link to a running container (repeatable)."),
        click.option("--restart", default="no", show_default=True,
                     help="no, always, unless-stopped, on-failure[:max]."),
        click.option("-v", "--volume", multiple=True, metavar="SRC:DST[:ro]",
                     help="Bind mount a host path (repeatable)."),
        click.option("--expose", multiple=True, metavar="PORT[/PROTO]",
                     help="Port the container exposes to links (repeatable)."),
        click.option("--shm-size", help="Size of /dev/shm, e.g. 64m."),
        click.argument("image"),
        click.argument("command", nargs=-1, required=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _parse_env(values: Sequence[str]) -> dict[str, str]:
    env = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def _parse_volumes(values: Sequence[str]) -> list[dict[str, Any]]:
    mounts = []
    for item in values:
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise click.BadParameter(f"{item!r}: use SRC:DST or SRC:DST:ro", param_hint="-v")
        mounts.append({"source": parts[0], "target": parts[1],
                       "read_only": len(parts) == 3 and parts[2] == "ro"})
    return mounts


def _create(obj: Context, image: str, command: Sequence[str], auto_remove: bool = False,
            **options: Any) -> ContainerInfo:
    tmpfs = {}
    for item in options["tmpfs"]:
        path, _, mount_options = item.partition(":")
        tmpfs[path] = mount_options
    return obj.orc.create(
        image, list(command), name=options["name"], env=_parse_env(options["env"]),
        working_dir=options["workdir"], network_mode=options["network"],
        ipc_mode=options["ipc"], tmpfs=tmpfs, links=list(options["link"]),
        restart_policy=options["restart"], mounts=_parse_volumes(options["volume"]),
        exposed_ports=list(options["expose"]), shm_size=options["shm_size"],
        auto_remove=auto_remove,
    )


@cli.command(context_settings=_COMMAND_AFTER_IMAGE)
@_create_options
@pass_context
def create(obj: Context, /, image: str, command: tuple[str, ...], **options: Any) -> None:
    """Create a container; prints its id.

    \b
    Example: berth create --name web --network none busybox sleep 600
    """
    click.echo(_create(obj, image, command, **options).id)


@cli.command(context_settings=_COMMAND_AFTER_IMAGE)
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-d", "--detach", is_flag=True, help="Print the id and return at once.")
@_create_options
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
    for chunk in _follow_log(orc, info.id):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    exit_code = orc.wait(info.id)
    if remove:
        orc.remove(info.id, force=True)
    raise click.exceptions.Exit(exit_code)


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@pass_context
def start(obj: Context, /, refs: tuple[str, ...]) -> None:
    """Start containers; returns once each one's process runs.

    \b
    Example: berth start web
    """
    for ref in refs:
        click.echo(obj.orc.start(ref).id)


@cli.command()
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("refs", nargs=-1, required=True)
@pass_context
def stop(obj: Context, /, refs: tuple[str, ...], timeout: float) -> None:
    """Stop containers: SIGTERM, then SIGKILL after the timeout.

    \b
    Example: berth stop -t 2 web
    """
    for ref in refs:
        click.echo(obj.orc.stop(ref, timeout=timeout).id)


@cli.command()
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
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


@cli.command()
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


@cli.command()
@click.argument("ref")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@pass_context
def wait(obj: Context, /, ref: str, timeout: float | None) -> None:
    """Wait until the container stops; print its exit code.

    \b
    Example: berth wait web
    """
    click.echo(obj.orc.wait(ref, timeout=timeout))


@cli.command()
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
    wanted = _filters(filters, {"state", "name"})
    containers = obj.list_containers(show_all, wanted.get("state"))
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


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@pass_context
def inspect(obj: Context, /, refs: tuple[str, ...]) -> None:
    """Print containers as JSON.

    \b
    Example: berth inspect web db
    """
    click.echo(json.dumps([obj.orc.get(ref).to_dict() for ref in refs], indent=2))


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the container stops.")
@click.argument("ref")
@pass_context
def logs(obj: Context, /, ref: str, follow: bool) -> None:
    """Print a container's output (stdout and stderr).

    \b
    Example: berth logs -f web
    """
    info = obj.orc.get(ref)
    if follow:
        for chunk in _follow_log(obj.orc, info.id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return
    log = obj.orc.paths(info.id).log
    if log.exists():
        sys.stdout.write(log.read_text(errors="replace"))


@cli.command()
@click.argument("ref")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@pass_context
def history(obj: Context, /, ref: str, output: str) -> None:
    """The container's committed transitions, with how long each took.

    \b
    Example: berth history web
    """
    records = obj.orc.history(ref)
    if output == "json":
        click.echo(json.dumps([{**r.__dict__, "started_at": r.started_at.isoformat(),
                                "finished_at": r.finished_at.isoformat(),
                                "duration": r.duration} for r in records], indent=2))
        return
    click.echo(tables.render(
        ["TRIGGER", "SOURCE", "DEST", "STARTED", "DURATION", "ERROR"],
        [[r.trigger, r.source, r.dest, r.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
          f"{r.duration * 1000:.1f} ms", tables.short(r.error, 60)] for r in records]))


@cli.command()
@click.option("--since", help="Start time: 10m, 2h, 1d ago, or an ISO time.")
@click.option("--until", help="End time, like --since.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="container=REF or event=ACTION (repeatable).")
@click.option("--follow", is_flag=True, help="Keep printing new events.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text")
@pass_context
def events(obj: Context, /, since: str | None, until: str | None, filters: tuple[str, ...],
           follow: bool, output: str) -> None:
    """The event log: create, start, die, kill, stop, restart, destroy...

    \b
    Examples: berth events --since 1m --filter event=die
              berth events --follow --filter container=web
    """
    wanted = _filters(filters, {"container", "event"})
    containers = wanted.get("container", [None])
    actions = wanted.get("event")
    start_time = _when("--since", since)
    end_time = _when("--until", until)
    seen: set[int] = set()
    while True:
        batch: list[Event] = []
        for container in containers:
            batch.extend(obj.orc.events(since=start_time, until=end_time, container=container,
                                        actions=actions))
        for event in sorted(batch, key=lambda e: e.id):
            if event.id in seen:
                continue
            seen.add(event.id)
            if output == "json":
                click.echo(json.dumps(event.to_dict()))
            else:
                attributes = ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
                click.echo(f"{event.time.isoformat()} container {event.action} "
                           f"{event.container_id[:12]} ({attributes})")
        if not follow:
            return
        if batch:
            start_time = max(e.time for e in batch)
        time.sleep(0.2)


@cli.command()
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


@cli.command()
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
    report = obj.orc.recover()
    for kind, ids in report.items():
        for container_id in ids:
            click.echo(f"{kind}\t{container_id}")
    if not any(report.values()):
        click.echo("nothing to recover")


@cli.command()
@click.option("--force", is_flag=True, help="Remove what is found (default: only list it).")
@pass_context
def gc(obj: Context, /, force: bool) -> None:
    """Find host resources that no container row owns: layers, bundles, netns, veths, runtime
    containers. A dry run unless --force.

    \b
    Example: berth gc --force
    """
    found = obj.orc.gc(remove=force)
    for kind, names in found.items():
        for name in names:
            click.echo(f"{'removed' if force else 'orphan'}\t{kind}\t{name}")
    if not any(found.values()):
        click.echo("no orphans")


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the container afterwards.")
@pass_context
def demo(obj: Context, /, keep: bool) -> None:
    """Drive a real busybox container through its lifecycle and show each step.

    \b
    Example: berth demo
    """
    from fsm.demo import run_demo

    run_demo(obj.orc, echo=click.echo, keep=keep)


# -- images ---------------------------------------------------------------------------------

@cli.group()
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
    with _spinner(f"importing {file}"):
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
        [[i.name, i.id[:12], i.storage_driver, _size(i.size), tables.ago(i.created_at, now)]
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


# -- storage pool ---------------------------------------------------------------------------

@cli.group()
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
    with _spinner("opening the storage driver"):
        status = obj.orc.storage.status()
    click.echo(f"Storage Driver: {obj.orc.storage.name}")
    width = max((len(k) for k, _ in status), default=0)
    for key, value in status:
        click.echo(f" {key.ljust(width)}  {value}")


# -- database -------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """The database schema (alembic migrations).

    \b
    Examples: berth db current
              berth --database-url postgresql://berth@db/berth db upgrade
    """


def _database(obj: Context) -> tuple[Any, str]:
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
    from alembic.script import ScriptDirectory

    from fsm.store.schema import migrations_dir

    for script in ScriptDirectory(str(migrations_dir())).walk_revisions():
        click.echo(f"{script.revision}\t{(script.doc or '').splitlines()[0]}")


# -- printing helpers -----------------------------------------------------------------------

def _filters(values: Sequence[str], allowed: set[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed or not value:
            raise click.BadParameter(
                f"{item!r}: use one of {', '.join(sorted(k + '=VALUE' for k in allowed))}",
                param_hint="--filter")
        result.setdefault(key, []).append(value)
    return result


def _when(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    match = DURATION.match(value)
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=float(match.group(1)) * unit)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use 30s, 10m, 2h, 1d or an ISO time",
                                 param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _follow_log(orc: Orchestrator, container_id: str) -> Iterator[str]:
    """The log as it grows, until the process has ended (the shim has recorded its exit) or the
    container is no longer running."""
    paths = orc.paths(container_id)
    log = paths.log
    position = 0
    while True:
        finished = orc.runtime.exit_status(paths) is not None or orc.state_of(
            container_id) not in ("mounting", "networking", "starting", "running", "stopping")
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


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


@contextmanager
def _spinner(message: str) -> Iterator[None]:
    """A spinner on a terminal for long work (pool creation, image import); silent otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


if __name__ == "__main__":
    main()

