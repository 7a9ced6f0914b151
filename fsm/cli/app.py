"""The ``berth`` group: its global options, its commands, and how a command line ends.

Exit codes: 0 ok, 1 a berth error (one line on stderr, with the fix), 2 bad usage. ``--debug``
shows the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from fsm.cli import admin, containers, demo, images, journal
from fsm.cli.context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="BERTH_ROOT", metavar="DIR",
              help="Data root [env BERTH_ROOT; default /var/lib/berth as root].")
@click.option("--database-url", envvar="BERTH_DATABASE_URL", metavar="URL",
              help="SQLAlchemy URL [env BERTH_DATABASE_URL; default a SQLite file in the root].")
@click.option("--storage", type=click.Choice(["vfs", "overlay", "devicemapper"]), default=None,
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


for _module in (containers, journal, images, admin, demo):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``berth ARGV`` through click and exit with its status."""
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
