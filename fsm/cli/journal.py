"""What happened to containers: ``history`` (the committed transitions of one) and ``events``
(the event log of all)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from fsm.cli import tables
from fsm.cli.context import Context, pass_context
from fsm.cli.options import parse_filters, parse_time

if TYPE_CHECKING:
    from fsm.info import Event


@click.command()
@click.argument("ref")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@pass_context
def history(obj: Context, /, ref: str, output: str) -> None:
    """The container's committed transitions, with how long each took.

    \b
    Example: berth history web
    """
    records = obj.reader().history(ref)
    if output == "json":
        click.echo(json.dumps([{**r.__dict__, "started_at": r.started_at.isoformat(),
                                "finished_at": r.finished_at.isoformat(),
                                "duration": r.duration} for r in records], indent=2))
        return
    click.echo(tables.render(
        ["TRIGGER", "SOURCE", "DEST", "STARTED", "DURATION", "ERROR"],
        [[r.trigger, r.source, r.dest, r.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
          f"{r.duration * 1000:.1f} ms", tables.short(r.error, 60)] for r in records]))


@click.command()
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
    wanted = parse_filters(filters, {"container", "event"})
    containers = wanted.get("container", [None])
    actions = wanted.get("event")
    start_time = parse_time("--since", since)
    end_time = parse_time("--until", until)
    seen: set[int] = set()
    while True:
        batch: list[Event] = []
        for container in containers:
            batch.extend(obj.reader().events(since=start_time, until=end_time, container=container,
                                        actions=actions))
        for event in sorted(batch, key=lambda e: e.id):
            if event.id in seen:
                continue
            seen.add(event.id)
            if output == "json":
                click.echo(json.dumps(event.to_dict()))
            else:
                attributes = ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
                click.echo(f"{event.time.isoformat()} {event.type} {event.action} "
                           f"{event.container_id[:12]} ({attributes})")
        if not follow:
            return
        if batch:
            start_time = max(e.time for e in batch)
        time.sleep(0.2)


COMMANDS = (history, events)
