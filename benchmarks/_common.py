"""Helpers shared by the benchmarks: argument parsing, alternating runs, medians, tables, the
machine's facts, a private PostgreSQL server and a busybox rootfs tarball.

Nothing here asserts a time: the benchmarks print what they measured, side by side, and the
ratios between things measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

_T = TypeVar("_T")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``tests.postgres_server`` is imported from the repository
    sys.path.insert(0, str(REPO))


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--quick`` (the CI smoke mode) and ``--databases``."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--quick", action="store_true",
                        help="smoke mode: tiny sizes, a few seconds; checks the script still works")
    return result


def add_database_option(result: argparse.ArgumentParser) -> None:
    result.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default: both; PostgreSQL is "
                             "skipped with a note when its binaries are missing)")


def databases(args: argparse.Namespace) -> list[str]:
    wanted = [d.strip() for d in str(args.databases).split(",") if d.strip()]
    for name in wanted:
        if name not in ("sqlite", "postgresql"):
            raise SystemExit(f"--databases: unknown database {name!r} (sqlite, postgresql)")
    return wanted


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], digits: int = 1) -> str:
    """``min..max`` of a sample, for a reader to judge the noise."""
    if not values:
        return "-"
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}"


@dataclass
class Samples:
    """Per-variant samples (one per round), all in the same unit."""

    unit: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return median(self.values.get(name, []))


def alternate(rounds: int, variants: Sequence[tuple[str, Callable[[], float]]],
              samples: Samples) -> Samples:
    """Run every variant once per round, in an order that rotates each round (so that none
    always runs first, after a warm-up or right after a noisy neighbour), and keep each run's
    figure. Each callable returns its own figure (already in ``samples.unit``)."""
    for name, value in _rotated(rounds, variants):
        samples.add(name, value)
    return samples


def alternate_parts(rounds: int, variants: Sequence[tuple[str, Callable[[], dict[str, float]]]]
                    ) -> dict[str, Samples]:
    """:func:`alternate` for variants that return several figures (ms), each by its part's
    name: one :class:`Samples` per part."""
    parts: dict[str, Samples] = {}
    for name, figures in _rotated(rounds, variants):
        for part, value in figures.items():
            parts.setdefault(part, Samples("ms")).add(name, value)
    return parts


def _rotated(rounds: int, variants: Sequence[tuple[str, Callable[[], _T]]]
             ) -> Iterator[tuple[str, _T]]:
    for round_number in range(rounds):
        shift = round_number % len(variants)
        for name, run in [*variants[shift:], *variants[:shift]]:
            yield name, run()


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def machine_facts() -> str:
    """One line a reader can compare with their own machine."""
    cpu = _first_field("/proc/cpuinfo", "model name")
    memory = _first_field("/proc/meminfo", "MemTotal")  # "24683584 kB"
    if memory.endswith(" kB"):
        memory = f"{int(memory.split()[0]) / (1 << 20):.1f} GiB"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    import sqlalchemy
    import transitions

    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.node()}; {cpu}, "
            f"{os.cpu_count()} cpus, {memory} memory; load {load}; Linux {platform.release()}; "
            f"Python {platform.python_version()}; SQLAlchemy {sqlalchemy.__version__}; "
            f"transitions {transitions.__version__}; SQLite {_sqlite_version()}")


def _first_field(path: str, name: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def banner(name: str, quick: bool) -> None:
    mode = "quick (smoke: the figures mean nothing)" if quick else "full"
    print(f"== {name}, {mode} ==\n{machine_facts()}")


@contextmanager
def postgres_server() -> Iterator[PostgresServer | None]:
    """A private PostgreSQL server (the tests' own: ``tests/postgres_server.py``), or None when
    its binaries are missing. It is stopped and its directory removed at the end."""
    from tests.postgres_server import start_server

    server = start_server()
    try:
        yield server
    finally:
        if server is not None:
            server.stop()


def postgres_version(url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def database_urls(names: Sequence[str], tag: str) -> Iterator[dict[str, Callable[[str], str]]]:
    """For each wanted database a factory ``suffix -> fresh empty database URL``."""
    base = Path(tempfile.mkdtemp(prefix=f"berth-bench-{tag}-"))
    factories: dict[str, Callable[[str], str]] = {}
    try:
        if "sqlite" in names:
            factories["sqlite"] = lambda suffix: f"sqlite:///{base / f'{suffix}.db'}"
        if "postgresql" in names:
            with postgres_server() as server:
                if server is None:
                    print("note: PostgreSQL binaries not found (apt-get install postgresql): "
                          "skipped")
                else:
                    print(f"PostgreSQL {postgres_version(server.url())} (fsync=off, "
                          "synchronous_commit=off, unix socket: tests/postgres_server.py)")
                    factories["postgresql"] = lambda suffix: server.create_database(
                        f"{tag}_{suffix}".replace("-", "_"))
                yield factories
                return
        yield factories
    finally:
        shutil.rmtree(base, ignore_errors=True)


def busybox_tar(directory: Path) -> Path:
    """A root filesystem tarball of Debian's busybox-static, made as ``berth demo`` makes it."""
    try:
        from fsm.cli.demo import build_busybox_tar
    except ImportError:  # before the CLI became a package
        from fsm.demo import build_busybox_tar  # type: ignore[no-redef]
    tar: Path = build_busybox_tar(directory / "busybox.tar")
    return tar


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
