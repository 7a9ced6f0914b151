"""berth's read paths on a large database: ``ps``, ``events --since``, an idle ``recover``.

The database is filled with executemany (Core's ``exec_driver_sql``; no lifecycle): 100 000
containers in a realistic mix of states (mostly exited, some created or dead, 2 % running), on
10 nodes, created over 30 days, and 1 000 000 events over the same 30 days (``--quick``: 2 000
containers, 20 000 events). None of the running rows is on this node except ``OWN_RUNNING``, each
with a live stand-in for its conmon (a sleeping process whose command line names the run's exit
directory, as conmon's does), so ``recover`` leaves them be: it reads their exit file and the
monitor's ``/proc``. Nothing is in flight: that is the idle recovery a restarted daemon does.

Timed (median of rounds, the operations alternating): ``orc.list()`` (running containers, what
``berth ps`` shows), ``orc.list(all=True)`` (``ps -a``: every row), ``orc.events(since=5 minutes
ago)`` and ``orc.recover()``. Then ``berth ps`` as a whole command, through the console script
as pip writes it (:func:`console_script`), against ``python3 -c pass`` run by the same
interpreter, alternating, with the ratio of their medians (``berth ps`` on an empty database is
printed too, as the command's own floor). Then the query plan of each statement (``EXPLAIN QUERY
PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL), to show the indexes used.

Targets: ``berth ps`` <= 3x ``python3 -c pass`` (issue 15), idle recover <= 50 ms, events since
a recent time <= 20 ms.

Run: ``python -m benchmarks.scale [--quick] [--databases sqlite,postgresql] [--ps-rounds N]``
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, text

from benchmarks._common import (
    REPO,
    Samples,
    add_database_option,
    alternate,
    banner,
    database_urls,
    databases,
    parser,
    print_table,
    spread,
)
from drivers.runtime.oci import ContainerPaths
from fsm import Orchestrator
from models import Image, ImageName

STATE_MIX = (("exited", 0.78), ("created", 0.10), ("dead", 0.10), ("running", 0.02))
NODES = 10
OWN_RUNNING = 3
DAYS = 30
TARGETS_MS = {"orc.list()": 100.0, "orc.recover() idle": 50.0,
              "orc.events(since=5 min)": 20.0}
#: ``berth ps`` over ``python3 -c pass``, both whole commands measured in the same run
PS_TARGET_RATIO = 3.0
PS, PS_EMPTY, PASS = ("berth ps", "berth ps, empty database", "python3 -c pass")
#: the same rows through the full CLI and the orchestrator: a form the fast path leaves to it
PS_FULL = "berth ps --filter state=running"
ACTIONS = ("create", "start", "die", "destroy", "kill", "stop", "restart")


def fill(engine: Engine, node: str, containers: int, events: int,
         own: list[str] | None = None) -> dict[str, int]:
    """Bulk-insert the rows (``exec_driver_sql`` executemany: the DBAPI's own, values already in
    their stored form); returns how many containers of each state. The events of the last ten
    minutes are written last, with a fresh clock, so that "since 5 minutes ago" finds its
    share however long the load took."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"

    def stored(value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else naive

    def flag(value: bool) -> Any:
        return int(value) if sqlite else value

    image_id = "1" * 64
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        connection.execute(insert(Image).values(id=image_id, top_layer=image_id, config={},
                                                accounts={}, storage_driver="vfs",
                                                size=1 << 20, created_at=now))
        connection.execute(insert(ImageName).values(name="busybox:latest", image_id=image_id,
                                                    created_at=now))
    config = json.dumps({"cmd": ["sh", "-c", "echo hi"], "env": {"A": "1"}, "working_dir": "/",
                         "exposed_ports": []})
    host_config = json.dumps({"network_mode": "bridge", "ipc_mode": "private", "tmpfs": {},
                              "links": [], "mounts": [], "shm_size": None,
                              "restart_policy": {"name": "no", "maximum_retry_count": 0}})
    columns = ("id, name, image_id, image, state, version, owner, lease_expires_at, node, "
               "exit_code, error, pid, created_at, started_at, finished_at, "
               "has_been_started_before, restart_count, manually_stopped, config, host_config")
    insert_container = (f"INSERT INTO containers ({columns}) VALUES "
                        f"({', '.join([mark] * 20)})")
    ids: list[str] = []
    batch: list[tuple[Any, ...]] = []
    states = [s for s, _ in STATE_MIX]
    weights = [w for _, w in STATE_MIX]
    own_running = 0
    for index in range(containers):
        state = rng.choices(states, weights)[0]
        container_node = f"node-{rng.randrange(NODES)}"
        pid, mine = None, False
        if state == "running":
            if own_running < OWN_RUNNING:
                container_node, pid, own_running = node, os.getpid(), own_running + 1
                mine = True
            else:
                pid = rng.randrange(1000, 4_000_000)
        created = now - timedelta(seconds=rng.uniform(600, DAYS * 86400))
        started = created + timedelta(seconds=1) if state in ("running", "exited") else None
        finished = started + timedelta(seconds=60) if started and state == "exited" else None
        container_id = secrets.token_hex(32)
        ids.append(container_id)
        if mine and own is not None:
            own.append(container_id)
        counts[state] = counts.get(state, 0) + 1
        batch.append((
            container_id, f"c{index}", image_id, "busybox", state, 3, None, None, container_node,
            0 if state != "dead" else 128, "" if state != "dead" else "starting the process: boom",
            pid, stored(created), stored(started), stored(finished), flag(started is not None), 0,
            flag(False), config, host_config))
        if len(batch) == 10000:
            with engine.begin() as connection:
                connection.exec_driver_sql(insert_container, batch)
            batch = []
    if batch:
        with engine.begin() as connection:
            connection.exec_driver_sql(insert_container, batch)
    attributes = [json.dumps({"image": "busybox", "name": f"c{i}", "exitCode": i % 3})
                  for i in range(64)]
    insert_event = (f"INSERT INTO events (time, container_id, action, attributes) VALUES "
                    f"({mark}, {mark}, {mark}, {mark})")
    recent = events * 600 // (DAYS * 86400)  # the last ten minutes' share

    def write(count: int, oldest: float, newest: float, reference: datetime) -> None:
        # times drawn from a pool of precomputed distinct instants (formatting a million
        # datetimes would take most of the load time on this machine)
        pool = [stored(reference - timedelta(seconds=rng.uniform(newest, oldest)))
                for _ in range(min(count, 100_000))]
        choice, randrange = rng.choice, rng.randrange
        total = len(ids)
        rows: list[tuple[Any, ...]] = []
        for number in range(count):
            rows.append((choice(pool), ids[randrange(total)], ACTIONS[number % len(ACTIONS)],
                         attributes[number % 64]))
            if len(rows) == 50000:
                with engine.begin() as connection:
                    connection.exec_driver_sql(insert_event, rows)
                rows = []
        if rows:
            with engine.begin() as connection:
                connection.exec_driver_sql(insert_event, rows)

    # a bulk load: the events' indexes are dropped and built again after (random inserts into
    # two B-trees would take most of the time), with the same names and definitions
    indexes = _index_definitions(engine, "events")
    with engine.begin() as connection:
        for name, _ in indexes:
            connection.exec_driver_sql(f"DROP INDEX {name}")
    write(events - recent, DAYS * 86400, 600, now)
    with engine.begin() as connection:
        for _, definition in indexes:
            connection.exec_driver_sql(definition)
    write(recent, 600, 0, datetime.now(UTC))
    return counts


def _index_definitions(engine: Engine, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's secondary indexes."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL", (table,)).all()
        else:
            rows = connection.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname "
                "NOT IN (SELECT conname FROM pg_constraint)", (table,)).all()
    return [(str(name), str(definition)) for name, definition in rows]


class Capture:
    """The statements (and their parameters) an operation sends, for EXPLAIN."""

    def __init__(self, engine: Engine) -> None:
        self.on = False
        self.seen: list[tuple[str, Any]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _seen(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
            if self.on and statement.lstrip().upper().startswith("SELECT"):
                self.seen.append((statement, parameters))

    @contextmanager
    def capturing(self) -> Iterator[list[tuple[str, Any]]]:
        self.seen = []
        self.on = True
        try:
            yield self.seen
        finally:
            self.on = False


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(prefix + statement, parameters).all()
    if sqlite:
        return [f"{'  ' * _depth(rows, r)}{r[-1]}" for r in rows]
    return [str(r[0]) for r in rows]


def _depth(rows: list[Any], row: Any) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def console_script(directory: Path) -> Path:
    """The ``berth`` console script of this checkout, written as pip writes it on install (its
    distlib template: the interpreter's own path on the ``#!`` line, then import the entry point
    of ``pyproject.toml``'s ``[project.scripts]`` and call it), so that ``berth ps`` is timed as
    an operator runs it, without a version manager's shim and whatever is installed. The
    commands run with this checkout on ``PYTHONPATH`` (:func:`command_env`)."""
    import tomllib

    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["berth"]
    module, function = entry.split(":")
    script = directory / "berth"
    script.write_text(
        f"#!{sys.executable}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
        f"from {module} import {function}\nif __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({function}())\n")
    script.chmod(0o755)
    return script


def command_env(**settings: str) -> dict[str, str]:
    """The environment of the timed commands: this checkout first on ``sys.path``."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, **settings,
            "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def cached_bytecode_env(pycache: Path, **settings: str) -> dict[str, str]:
    """:func:`command_env` for commands timed as an operator runs them: the bytecode of berth's
    modules written under ``pycache`` by the first run and read by the next, as an installed
    berth's is, even where the environment forbids writing it (``PYTHONDONTWRITEBYTECODE``:
    every run would compile ~100 modules again, ~0.3 s)."""
    env = command_env(PYTHONPYCACHEPREFIX=str(pycache), **settings)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def command(argv: list[str], env: dict[str, str]) -> Callable[[], float]:
    """A whole command in a subprocess, output discarded: its wall time in ms."""

    def run() -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
        return elapsed

    return run


def measure_ps(name: str, script: Path, env: dict[str, str], env_empty: dict[str, str],
               rounds: int, running: int) -> None:
    """``berth ps`` against ``python3 -c pass``, whole commands alternating; the ratio of the
    medians against :data:`PS_TARGET_RATIO`. On SQLite, :data:`PS_FULL` lists the same rows
    through the orchestrator, which the plain ``berth ps`` is spared by its fast path
    (:mod:`fsm.store.quick_listing`): the ratio it would have without one."""
    operations = [(PS, command([str(script), "ps"], env)),
                  (PS_EMPTY, command([str(script), "ps"], env_empty)),
                  (PS_FULL, command([str(script), *PS_FULL.split()[1:]], env)),
                  (PASS, command([sys.executable, "-c", "pass"], env))]
    if name != "sqlite":  # there, berth ps itself goes through the orchestrator
        del operations[2]
    for _, run in operations:  # once each, unrecorded: the files into the page cache
        run()
    samples = alternate(rounds, operations, Samples("ms"))
    print_table(f"{name}: whole commands, ms, median of {rounds} rounds (alternating); "
                f"{script} -> {script.read_text().splitlines()[4]}",
                ["command", "rows listed", "ms", "min..max"],
                [[op, {PS: running, PS_EMPTY: 0, PS_FULL: running}.get(op, ""),
                  samples.median(op), spread(samples.values[op])] for op, _ in operations])
    ratio = samples.median(PS) / samples.median(PASS)
    print(f"  berth ps / python3 -c pass = {ratio:.2f} (target <= {PS_TARGET_RATIO:g}: "
          f"{'ok' if ratio <= PS_TARGET_RATIO else 'MISSED'})")
    if PS_FULL in samples.values:
        print(f"  {PS_FULL} / python3 -c pass = "
              f"{samples.median(PS_FULL) / samples.median(PASS):.2f} (through the orchestrator, "
              "for comparison)")


def timed(operation: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        operation()
        return (time.perf_counter() - start) * 1000

    return run


def measure(name: str, url: str, empty_url: str, root: Path, quick: bool,
            ps_rounds: int) -> None:
    containers, events = (2000, 20000) if quick else (100_000, 1_000_000)
    orc = Orchestrator(database_url=url, root=root / "data", storage="vfs")
    empty = Orchestrator(database_url=empty_url, root=root / "empty", storage="vfs")
    empty.close()
    stand_ins: list[subprocess.Popen[bytes]] = []
    try:
        start = time.perf_counter()
        own: list[str] = []
        counts = fill(orc.db.engine, orc.settings.node, containers, events, own)
        fill_s = time.perf_counter() - start
        stand_ins.extend(stand_in_monitor(orc.host.paths(c)) for c in own)
        if name == "postgresql":
            with orc.db.engine.begin() as connection:  # autovacuum would, some time after the load
                connection.execute(text("ANALYZE"))
        mix = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"\n{name}: {containers} containers ({mix}; {OWN_RUNNING} of the running ones "
              f"on this node), {events} events over {DAYS} "
              f"days; filled with executemany in {fill_s:.1f} s"
              + (" (then ANALYZE)" if name == "postgresql" else " (no ANALYZE, as berth runs)"))
        env = command_env(BERTH_DATABASE_URL=url, BERTH_ROOT=str(root / "data"),
                          BERTH_NODE=orc.settings.node)
        env_empty = {**env, "BERTH_DATABASE_URL": empty_url, "BERTH_ROOT": str(root / "empty")}
        recent = 5
        report = orc.recover()
        assert not report["failed"] and not report["exited"], report
        operations: list[tuple[str, Callable[[], float]]] = [
            ("orc.list()", timed(orc.list)),
            ("orc.events(since=5 min)",
             timed(lambda: orc.events(since=datetime.now(UTC) - timedelta(minutes=recent)))),
            ("orc.recover() idle", timed(orc.recover)),
        ]
        rounds = 1 if quick else 5
        samples = alternate(rounds, operations, Samples("ms"))
        # every row: one run only (it is long), after the rounds
        samples.add("orc.list(all=True)", timed(lambda: orc.list(all=True))())
        operations.insert(1, ("orc.list(all=True)", timed(orc.list)))
        sizes = {"orc.list()": len(orc.list()), "orc.list(all=True)": len(orc.list(all=True)),
                 "orc.events(since=5 min)": len(orc.events(
                     since=datetime.now(UTC) - timedelta(minutes=recent)))}
        rows = []
        for op, _ in operations:
            value = samples.median(op)
            target = TARGETS_MS.get(op)
            rows.append([op, sizes.get(op, ""), value, spread(samples.values[op]),
                         f"<= {target:g}" if target else "-",
                         ("ok" if value <= target else "MISSED") if target else ""])
        print_table(f"{name}: ms, median of {rounds} rounds (operations alternating)",
                    ["operation", "rows", "ms", "min..max", "target", ""], rows)
        measure_ps(name, console_script(root), env, env_empty, 3 if quick else ps_rounds,
                   sizes["orc.list()"])
        capture = Capture(orc.db.engine)
        plans: list[tuple[str, Callable[[], object]]] = [
            ("orc.list()", orc.list),
            ("orc.list(all=True)", lambda: orc.list(all=True)),
            ("orc.events(since=5 min)",
             lambda: orc.events(since=datetime.now(UTC) - timedelta(minutes=recent))),
            ("orc.recover()", orc.recover),
        ]
        print(f"\n{name}: query plans")
        for op, call in plans:
            with capture.capturing() as seen:
                call()
            for statement, parameters in seen:
                print(f"  {op}: {' '.join(statement.split())[:150]}")
                for line in explain(orc.db.engine, statement, parameters):
                    print(f"      {line}")
    finally:
        for process in stand_ins:
            process.kill()
            process.wait()
        orc.close()


def stand_in_monitor(paths: ContainerPaths) -> subprocess.Popen[bytes]:
    """A sleeping process that recovery takes for the run's live conmon (its command line
    names the run's exit directory), its pid where conmon writes its own."""
    paths.exit_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)",
                                str(paths.exit_dir)])
    paths.monitor_pid_file.write_text(str(process.pid))
    return process


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    add_database_option(arguments)
    arguments.add_argument("--ps-rounds", type=int, default=21,
                           help="rounds of berth ps against python3 -c pass (default: 21)")
    args = arguments.parse_args()
    banner("scale", args.quick)
    base = Path(tempfile.mkdtemp(prefix="berth-bench-scale-"))
    try:
        with database_urls(databases(args), "scale") as urls:
            for name, make_url in urls.items():
                measure(name, make_url(f"big{os.getpid()}"), make_url(f"empty{os.getpid()}"),
                        base / name, args.quick, args.ps_rounds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\n" + json.dumps({"note": "targets: " + ", ".join(
        [f"berth ps <= {PS_TARGET_RATIO:g}x python3 -c pass",
         *(f"{k} <= {v:g} ms" for k, v in TARGETS_MS.items())])}))


if __name__ == "__main__":
    main()
