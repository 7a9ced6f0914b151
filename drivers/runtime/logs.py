"""A container's log as conmon writes it (the ``k8s-file`` format), read back byte for byte.

Each record is ``<RFC 3339 time, nanoseconds> <stdout|stderr> <F|P> <bytes>\\n``: conmon reads each
stream in chunks and splits them at newlines; a piece that ended with one is ``F`` (full: the
newline is the record's own), a piece that did not (a chunk's end, a partial line) is ``P`` and
conmon added the newline. So a stream is the concatenation of its records' bytes, with a newline
after each ``F`` record: binary output and any encoding come back as they were written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

STDOUT, STDERR = "stdout", "stderr"
#: how often a followed log is looked at again when nothing new has come
FOLLOW_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class LogLine:
    """One line of a stream (or the part of one written so far)."""

    time: datetime
    stream: str
    #: the line's bytes, its newline included when it has one
    data: bytes


def read_lines(path: Path, *, offset: int = 0) -> tuple[list[LogLine], int]:
    """The complete lines of the log from byte ``offset`` on, and the offset after the last
    record read; a record not yet written whole is left for the next call."""
    try:
        with open(path, "rb") as source:
            source.seek(offset)
            data = source.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return list(_lines(data[:end])), offset + end


def _lines(records: bytes) -> Iterator[LogLine]:
    """Records joined into lines, per stream: a line's ``P`` pieces wait for its ``F``."""
    pending: dict[str, tuple[datetime, bytes]] = {}
    for record in records.split(b"\n")[:-1]:
        parts = record.split(b" ", 3)
        if len(parts) != 4:
            continue  # not conmon's (a truncated file's first bytes)
        stamp, stream_name, tag, payload = parts
        stream = stream_name.decode("ascii", errors="replace")
        started, head = pending.pop(stream, (None, b""))
        when = started or _parse_time(stamp)
        if tag == b"F":
            yield LogLine(when, stream, head + payload + b"\n")
        else:
            pending[stream] = (when, head + payload)
    for stream, (when, head) in pending.items():
        yield LogLine(when, stream, head)  # the stream's last line, without its newline (yet)


def _parse_time(stamp: bytes) -> datetime:
    text = stamp.decode("ascii", errors="replace")
    # Python takes microseconds: the nanoseconds' last three digits go
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[:9]
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text)


def follow_lines(path: Path, finished: Callable[[], bool], offset: int = 0
                 ) -> Iterator[LogLine]:
    """The log's lines from byte ``offset`` on as they are written, until ``finished()``
    (checked before each read, so that what was written before the end is read once more)."""
    while True:
        done = finished()
        lines, offset = read_lines(path, offset=offset)
        yield from lines
        if done:
            return
        if not lines:
            time.sleep(FOLLOW_POLL_SECONDS)


def selected(lines: list[LogLine], *, streams: frozenset[str], since: datetime | None,
             until: datetime | None, tail: int | None) -> list[LogLine]:
    """The lines of ``streams`` written in [``since``, ``until``), the last ``tail`` of them."""
    chosen = [line for line in lines if line.stream in streams
              and (since is None or line.time >= since) and (until is None or line.time < until)]
    return chosen if tail is None else chosen[len(chosen) - tail:] if tail else []
