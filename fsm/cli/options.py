"""Reading option values: what ``create`` and ``run`` take, ``--filter KEY=VALUE`` and
``--since``/``--until``. A value that does not parse is a usage error (exit 2) naming the option,
the value and the form expected."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")

#: everything after IMAGE is the container's command, options included (``sh -c '...'``)
COMMAND_AFTER_IMAGE = {"allow_interspersed_args": False}


def create_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options and arguments of ``create`` and ``run``: what :func:`create_arguments`
    turns into ``orc.create``'s."""
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
        click.option("--log-opt", "log_opts", multiple=True, metavar="max-size=SIZE",
                     help="Log option: max-size=10m caps the log (the newest lines stay)."),
        click.option("--entrypoint", help="Overwrite the image's entrypoint (\"\" for none)."),
        click.option("-u", "--user", help="NAME|UID[:GROUP|GID], as the image's /etc/passwd "
                     "and /etc/group know them (default: the image's)."),
        click.argument("image"),
        click.argument("command", nargs=-1),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def create_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """``orc.create``'s keyword arguments from the values of :func:`create_options`."""
    tmpfs = {}
    for item in options["tmpfs"]:
        path, _, mount_options = item.partition(":")
        tmpfs[path] = mount_options
    return dict(
        name=options["name"], env=parse_env(options["env"]), working_dir=options["workdir"],
        network_mode=options["network"], ipc_mode=options["ipc"], tmpfs=tmpfs,
        links=list(options["link"]), restart_policy=options["restart"],
        mounts=parse_volumes(options["volume"]), exposed_ports=list(options["expose"]),
        shm_size=options["shm_size"], entrypoint=options["entrypoint"], user=options["user"],
        log_max_size=parse_log_options(options["log_opts"]).get("max-size"),
    )


def parse_log_options(values: Sequence[str]) -> dict[str, str]:
    """``--log-opt KEY=VALUE``: the keys berth's k8s-file log takes (Docker's json-file names)."""
    found = {}
    for value in values:
        key, equals, setting = value.partition("=")
        if not equals or key != "max-size":
            raise click.BadParameter(f"{value!r}: the log takes max-size=SIZE (e.g. 10m)",
                                     param_hint="--log-opt")
        found[key] = setting
    return found


def parse_env(values: Sequence[str]) -> dict[str, str]:
    env = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def parse_volumes(values: Sequence[str]) -> list[dict[str, Any]]:
    mounts = []
    for item in values:
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise click.BadParameter(f"{item!r}: use SRC:DST or SRC:DST:ro", param_hint="-v")
        mounts.append({"source": parts[0], "target": parts[1],
                       "read_only": len(parts) == 3 and parts[2] == "ro"})
    return mounts


def parse_filters(values: Sequence[str], allowed: set[str]) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` (repeatable): the values of each key, in order."""
    result: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed or not value:
            raise click.BadParameter(
                f"{item!r}: use one of {', '.join(sorted(k + '=VALUE' for k in allowed))}",
                param_hint="--filter")
        result.setdefault(key, []).append(value)
    return result


def parse_time(option: str, value: str | None) -> datetime | None:
    """A moment given as a duration ago (``30s``, ``10m``, ``2h``, ``1d``) or an ISO time
    (UTC when it has no zone)."""
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
