"""berth's own cost per container lifecycle, against bare runc's lifecycle measured in the same run.

- ``berth``: ``orc.create`` + ``orc.start`` + ``orc.wait`` (+ ``orc.remove``) through the public
  API with the NULL drivers of ``benchmarks/null_drivers.py`` (storage, runtime and network do
  nothing; ``wait`` fires the run's ``exit``, as it does when the shim has recorded a real one),
  on SQLite and on PostgreSQL over its Unix socket (the tests' private server,
  ``tests/postgres_server.py``). What is left is berth's own work: the state machine, the
  steps, SQLAlchemy and the database.
- ``runc``: ``runc create`` + ``runc start`` + waiting for the process (+ ``runc delete``) of a
  real busybox bundle (``benchmarks/bare_runc.py``; needs root): what the cheapest real
  container costs on this machine.
- ``raw SQL floor`` (information only): the commits a berth lifecycle makes (the container row
  and its ``create`` event, then per transition the compare-and-swap ``UPDATE``, a ``DELETE``
  for ``removed``, the ``transitions`` row and the ``events`` row where berth writes one: 8
  transactions), as plain DBAPI statements on a connection of the same engine settings.

Each round runs one batch of every variant, the order rotated each round, so that load on this
shared machine falls on all of them alike; the figures are medians over rounds, and each ratio
is the median of the per-round ratios (a berth batch against the runc batch of the same round).
Budgets (issue 15): berth's lifecycle <= 0.10 x runc's on SQLite, <= 0.25 x on PostgreSQL.
Both ratios are printed: the whole lifecycles (berth's with ``remove``, runc's with ``delete``)
and ``create + start + wait`` alone on both sides.

``--explain`` adds, per database, the statements, transactions and pool checkouts per
operation (SQLAlchemy's ``before_cursor_execute``, ``begin``, ``commit``, ``rollback`` and pool
``checkout`` events), what one read costs alone, inside an operation and as plain DBAPI, and a
cProfile of berth's lifecycles summed by area.

Run: ``sudo python -m benchmarks.fsm_overhead [--quick] [--explain] [--rounds N]
[--databases sqlite,postgresql]``
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import secrets
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from benchmarks import bare_runc
from benchmarks._common import (
    Samples,
    add_database_option,
    alternate_parts,
    banner,
    busybox_tar,
    database_urls,
    databases,
    median,
    parser,
    print_table,
    spread,
)
from benchmarks.null_drivers import (
    IPC_MODE,
    NULL_IMAGE,
    NULL_IMAGE_ID,
    null_orchestrator,
)
from fsm import Orchestrator
from fsm.store.engine import open_engine

#: issue 15: berth's null-driver lifecycle over bare runc's, per database
BUDGETS = {"sqlite": 0.10, "postgresql": 0.25}
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
OPERATIONS = ("create", "start", "wait", "remove")


# -- berth ---------------------------------------------------------------------------------


def berth_lifecycle(orc: Orchestrator, image: str,
                    mark: Callable[[str], None] = lambda _operation: None) -> tuple[float, float]:
    """One lifecycle; seconds of ``create + start + wait`` and of ``remove``."""
    began = time.perf_counter()
    mark("create")
    info = orc.create(image, ["/bin/true"], ipc_mode=IPC_MODE)
    mark("start")
    orc.start(info.id)
    mark("wait")
    if orc.wait(info.id) != 0:
        raise RuntimeError("a null run exits 0")
    waited = time.perf_counter()
    mark("remove")
    orc.remove(info.id)
    mark("")
    return waited - began, time.perf_counter() - waited


def berth_batch(orc: Orchestrator, image: str, times: int) -> Callable[[], dict[str, float]]:
    def batch() -> dict[str, float]:
        spent = [berth_lifecycle(orc, image) for _ in range(times)]
        csw = sum(s[0] for s in spent) * 1000 / times
        remove = sum(s[1] for s in spent) * 1000 / times
        return {"c+s+w": csw, "remove": remove, "lifecycle": csw + remove}

    return batch


def runc_batch_of(runc: bare_runc.Runc, times: int) -> Callable[[], dict[str, float]]:
    def batch() -> dict[str, float]:
        parts = runc.lifecycles(times)
        return {"c+s+w": parts["total"], "remove": parts["remove"],
                "lifecycle": parts["total"] + parts["remove"]}

    return batch


# -- the floor: the same commits as plain DBAPI statements -----------------------------------


class Floor:
    """The rows a berth lifecycle commits, written through one DBAPI connection of an engine
    with berth's settings (``fsm.store.engine.open_engine``: the same pragmas)."""

    def __init__(self, url: str, node: str, owner: str) -> None:
        self.engine = open_engine(url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.raw = self.engine.raw_connection()
        self.dbapi: Any = self.raw.driver_connection
        self.node = node
        self.owner = owner

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()

    def _time(self, value: datetime) -> Any:
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # what SQLAlchemy's SQLite DATETIME stores; PostgreSQL takes the datetime itself
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else naive

    def _bool(self, value: bool) -> Any:
        return int(value) if self.sqlite else value

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        cursor = self.dbapi.cursor()
        try:
            if self.sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            for index, (text, params) in enumerate(statements):
                cursor.execute(text if self.sqlite else text.replace("?", "%s"), params)
                if index == 0 and text.startswith(("UPDATE", "DELETE")) and cursor.rowcount != 1:
                    raise RuntimeError("the floor's compare-and-swap lost a race")
            self.dbapi.commit()
        except BaseException:
            self.dbapi.rollback()
            raise
        finally:
            cursor.close()

    def _event(self, container_id: str, action: str, now: datetime
               ) -> tuple[str, tuple[Any, ...]]:
        attributes = json.dumps({"image": NULL_IMAGE, "name": f"floor_{container_id[:12]}"})
        return ("INSERT INTO events (time, container_id, action, attributes) VALUES (?, ?, ?, ?)",
                (self._time(now), container_id, action, attributes))

    def _transition(self, container_id: str, version: int, trigger: str, source: str, dest: str,
                    values: dict[str, Any], event_action: str | None) -> None:
        now = datetime.now(UTC)
        in_flight = dest in ("mounting", "networking", "starting", "stopping", "removing")
        values = {"state": dest, "version": version + 1,
                  "owner": self.owner if in_flight else None,
                  "lease_expires_at": self._time(now + timedelta(seconds=60)) if in_flight
                  else None, **values}
        where = " WHERE id = ? AND version = ? AND state = ?"
        if dest == "removed":
            cas = ("DELETE FROM containers" + where, (container_id, version, source))
        else:
            assignments = ", ".join(f"{column} = ?" for column in values)
            cas = (f"UPDATE containers SET {assignments}{where}",
                   (*values.values(), container_id, version, source))
        statements = [cas, (
            "INSERT INTO transitions (container_id, trigger, source, dest, started_at, "
            "finished_at, error, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (container_id, trigger, source, dest, self._time(now), self._time(now), "",
             self.owner))]
        if event_action is not None:
            statements.append(self._event(container_id, event_action, now))
        self._transaction(statements)

    def lifecycle(self) -> None:
        container_id = secrets.token_hex(32)
        now = datetime.now(UTC)
        config = json.dumps({"cmd": ["/bin/true"], "env": {}, "working_dir": "",
                             "exposed_ports": []})
        host_config = json.dumps({"network_mode": "bridge", "ipc_mode": IPC_MODE, "tmpfs": {},
                                  "links": [], "restart_policy": {"name": "no",
                                                                  "maximum_retry_count": 0},
                                  "mounts": [], "shm_size": None, "auto_remove": False})
        self._transaction([
            ("INSERT INTO containers (id, name, image_id, state, version, owner, "
             "lease_expires_at, node, exit_code, error, pid, created_at, started_at, "
             "finished_at, has_been_started_before, restart_count, manually_stopped, run, "
             "config, host_config) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (container_id, f"floor_{container_id[:12]}", NULL_IMAGE_ID, "created", 1, None, None,
              self.node, 0, "", None, self._time(now), None, None, self._bool(False), 0,
              self._bool(False), 0, config, host_config)),
            self._event(container_id, "create", now),
        ])
        t = self._transition
        t(container_id, 1, "start", "created", "mounting",
          {"exit_code": 0, "error": "", "pid": None, "finished_at": None,
           "manually_stopped": self._bool(False), "run": 1}, None)
        t(container_id, 2, "mounted", "mounting", "networking", {}, None)
        t(container_id, 3, "networked", "networking", "starting", {}, None)
        t(container_id, 4, "started", "starting", "running",
          {"pid": 4194303, "started_at": self._time(datetime.now(UTC)),
           "has_been_started_before": self._bool(True)}, "start")
        t(container_id, 5, "exit", "running", "exited",
          {"exit_code": 0, "error": "", "pid": None,
           "finished_at": self._time(datetime.now(UTC))}, "die")
        t(container_id, 6, "remove", "exited", "removing", {}, None)
        t(container_id, 7, "removed", "removing", "removed", {}, "destroy")


def floor_batch(floor: Floor, times: int) -> Callable[[], dict[str, float]]:
    def batch() -> dict[str, float]:
        began = time.perf_counter()
        for _ in range(times):
            floor.lifecycle()
        return {"lifecycle": (time.perf_counter() - began) * 1000 / times}

    return batch


# -- where the time goes (--explain) ---------------------------------------------------------


class StatementCounter:
    """Per operation: the statements SQLAlchemy sends (by verb), the transactions it begins,
    commits and rolls back, and the pool checkouts (on PostgreSQL each is a ping,
    ``pool_pre_ping``: one round trip)."""

    COLUMNS = ("checkout", "BEGIN", "SELECT", "INSERT", "UPDATE", "DELETE", "COMMIT",
               "ROLLBACK")

    def __init__(self, orc: Orchestrator) -> None:
        self.operation = ""
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        engine = orc.db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper()
            if verb != "BEGIN":  # SQLite's BEGIN [IMMEDIATE]: counted by "begin" below
                self.counts[self.operation][verb] += 1

        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, self._counter(name.upper()))
        event.listen(engine.pool, "checkout", self._counter("checkout"))

    def _counter(self, column: str) -> Callable[..., None]:
        def count(*_args: Any) -> None:
            self.counts[self.operation][column] += 1

        return count

    def mark(self, operation: str) -> None:
        self.operation = operation

    def report(self, database: str, lifecycles: int) -> None:
        total: Counter[str] = Counter()
        for operation in OPERATIONS:
            total.update(self.counts[operation])
        # other statements (WITH ..., say) get a column of their own
        columns = [*self.COLUMNS, *sorted(set(total) - set(self.COLUMNS))]
        rows = [[operation, *[seen[c] / lifecycles for c in columns],
                 sum(seen.values()) / lifecycles]
                for operation, seen in [*((o, self.counts[o]) for o in OPERATIONS),
                                        ("lifecycle", total)]]
        print_table(f"{LABELS[database]}: per lifecycle, what berth asks of the database (the "
                    "last column: round trips on PostgreSQL)",
                    ["operation", *columns, "all"], rows)
        print("  the floor: 8 transactions, 0 SELECT, 12 INSERT, 6 UPDATE, 1 DELETE, 0 checkout")


AREAS = (
    ("sqlite3 C calls (the database itself)", ("sqlite3.",)),
    ("psycopg (incl. waiting for the server)", ("psycopg",)),
    ("sqlalchemy", ("sqlalchemy",)),
    ("transitions", ("transitions",)),
    ("logging", ("logging",)),
    ("berth fsm/", ("/fsm/",)),
    ("berth models/ + drivers/", ("/models/", "/drivers/")),
    ("benchmarks (null drivers, loop)", ("/benchmarks/",)),
    ("json", ("json",)),
    ("threading/contextlib/dataclasses", ("threading", "contextlib", "dataclasses")),
    ("pathlib/os/shutil (files, mount table)", ("pathlib", "posixpath", "genericpath", "os.",
                                                "<frozen os>", "shutil", "open")),
    ("datetime/secrets/random", ("datetime", "secrets", "random")),
)


def profile(orc: Orchestrator, image: str, lifecycles: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(lifecycles):
        berth_lifecycle(orc, image)
    profiler.disable()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    areas: Counter[str] = Counter()
    for (filename, _line, function), entry in raw.items():
        where = f"{filename}:{function}"
        area = next((name for name, needles in AREAS if any(n in where for n in needles)),
                    "other (builtins, stdlib)")
        areas[area] += entry[2]
    print_table(f"cProfile of {lifecycles} berth lifecycles: own time (tottime) by area "
                "(cProfile inflates call-heavy Python code)",
                ["area", "ms/lifecycle", "share %"],
                [[area, seconds * 1000 / lifecycles, 100 * seconds / total]
                 for area, seconds in areas.most_common()])
    rows = []
    for (filename, line, function), entry in sorted(raw.items(), key=lambda kv: -kv[1][3])[:top]:
        short = filename.split("site-packages/")[-1].replace(os.getcwd() + "/", "")
        rows.append([f"{short}:{line}({function})"[-80:], entry[1] / lifecycles,
                     entry[3] * 1000 / lifecycles])
    print_table("cumulative time per lifecycle, top functions",
                ["function", "calls/lifecycle", "cum ms/lifecycle"], rows)


def read_costs(database: str, orc: Orchestrator, image: str, floor: Floor, quick: bool) -> None:
    """What one read of a lifecycle costs: ``state_of`` (one indexed SELECT of two columns) as
    the store makes it on its own (a pool checkout, a transaction begun and rolled back), inside
    an operation that holds the connection (no checkout), and the same SELECT as a plain DBAPI
    statement outside any transaction."""
    container_id = orc.create(image, ["/bin/true"], ipc_mode=IPC_MODE).id
    state_of = orc.db.containers.state_of
    text = "SELECT state, run FROM containers WHERE id = ?"
    if not floor.sqlite:
        text = text.replace("?", "%s")
        floor.dbapi.autocommit = True

    def plain() -> None:
        cursor = floor.dbapi.cursor()
        cursor.execute(text, (container_id,))
        cursor.fetchone()
        cursor.close()

    def held() -> None:
        with orc.db.connections.operation():
            for _ in range(10):
                state_of(container_id)

    times = 20 if quick else 300
    variants = [("alone (what most reads of a lifecycle are)", lambda: state_of(container_id), 1),
                ("inside an operation that holds the connection", held, 10),
                ("plain DBAPI, no transaction (the floor's connection)", plain, 1)]
    rows = []
    for label, run, per_call in variants:
        run()
        samples = []
        for _ in range(3 if quick else 7):
            began = time.perf_counter()
            for _ in range(times // per_call):
                run()
            samples.append((time.perf_counter() - began) / times * 1e6)
        rows.append([label, median(samples)])
    if not floor.sqlite:
        floor.dbapi.autocommit = False
    orc.remove(container_id)
    print_table(f"{LABELS[database]}: one read, orc.db.containers.state_of(id) (µs, median of "
                "batches)", ["", "µs"], rows)


def explain(database: str, orc: Orchestrator, image: str, floor: Floor, quick: bool) -> None:
    counter = StatementCounter(orc)
    counted = 3 if quick else 20
    for _ in range(counted):
        berth_lifecycle(orc, image, counter.mark)
    counter.report(database, counted)
    read_costs(database, orc, image, floor, quick)
    profile(orc, image, 3 if quick else 100, 8 if quick else 30)


# -- main -----------------------------------------------------------------------------------


def report(parts: dict[str, Samples], names: list[str], berths: dict[str, str], rounds: int,
           batch: int, runc_batch: int) -> None:
    lifecycle, csw = parts["lifecycle"], parts["c+s+w"]
    has_runc = "runc" in lifecycle.values

    def ratios(name: str, part: Samples) -> list[float]:
        if not has_runc or name == "runc" or name not in part.values:
            return []
        return [b / r for b, r in zip(part.values[name], part.values["runc"], strict=True)]

    rows = []
    for name in names:
        whole = ratios(name, lifecycle)
        rows.append([name, csw.median(name), parts["remove"].median(name),
                     lifecycle.median(name), spread(lifecycle.values[name]), median(whole),
                     spread(whole, 2), median(ratios(name, csw))])
    print_table(f"ms per lifecycle, median of {rounds} rounds (each round one batch of each, "
                f"order rotated; batches of {batch} lifecycles, runc {runc_batch}); x runc: "
                "median of the per-round ratios",
                ["", "c+s+w", "remove", "lifecycle", "min..max", "x runc", "min..max",
                 "x runc c+s+w"], rows)
    if not has_runc:
        print(f"  no ratio: {bare_runc.unavailable() or 'runc was not measured'}")
        return
    for database, name in berths.items():
        budget = BUDGETS[database]
        whole = median(ratios(name, lifecycle))
        first = median(ratios(name, csw))
        verdict = ("met" if max(whole, first) <= budget else
                   "met for the whole lifecycles only" if whole <= budget else "MISSED")
        print(f"  {LABELS[database]}: berth {whole:.3f} x runc (whole lifecycles), {first:.3f} x "
              f"runc (create + start + wait): budget <= {budget:.2f}, {verdict}")


def measure(urls: dict[str, Callable[[str], str]], base: Path, quick: bool,
            rounds: int | None, explaining: bool) -> None:
    batch, runc_batch = (3, 1) if quick else (25, 4)
    rounds = rounds or (2 if quick else 15)
    opened: list[Any] = []
    variants: list[tuple[str, Callable[[], dict[str, float]]]] = []
    try:
        if bare_runc.unavailable() is None:
            work = base / "runc"
            work.mkdir()
            runc = bare_runc.Runc(work, busybox_tar(work))
            opened.append(runc)
            variants.append(("runc", runc_batch_of(runc, runc_batch)))
        else:
            print(f"note: bare runc skipped ({bare_runc.unavailable()}): no ratio")
        explained: dict[str, tuple[Orchestrator, str, Floor]] = {}
        berths: dict[str, str] = {}
        floors: dict[str, str] = {}
        for database, make_url in urls.items():
            url = make_url(f"run{os.getpid()}")
            orc, image = null_orchestrator(url, base / database)
            opened.append(orc)
            floor = Floor(url, orc.settings.node, orc.host.owner)
            opened.append(floor)
            explained[database] = (orc, image, floor)
            berths[database] = f"berth, {LABELS[database]}, null drivers"
            floors[database] = f"raw SQL floor, {LABELS[database]} (information)"
            variants.append((berths[database], berth_batch(orc, image, batch)))
            variants.append((floors[database], floor_batch(floor, batch)))
        for _name, warm_up in variants:  # imports, statement caches, the pool, the page cache
            warm_up()
        parts = alternate_parts(rounds, variants)
        names = [name for name, _ in variants]
        report(parts, names, berths, rounds, batch, runc_batch)
        for database, name in floors.items():
            berth = parts["lifecycle"].median(berths[database])
            floor_ms = parts["lifecycle"].median(name)
            print(f"  information: berth / raw SQL floor on {LABELS[database]} = "
                  f"{berth / floor_ms:.1f} ({berth:.2f} vs {floor_ms:.2f} ms per lifecycle)")
        if explaining:
            for database, (orc, image, floor) in explained.items():
                explain(database, orc, image, floor, quick)
    finally:
        for thing in reversed(opened):
            thing.close()


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    add_database_option(arguments)
    arguments.add_argument("--rounds", type=int, default=None, help="default 15 (quick: 2)")
    arguments.add_argument("--explain", action="store_true",
                           help="also count statements per operation and profile berth")
    args = arguments.parse_args()
    banner("fsm_overhead", args.quick)
    base = Path(tempfile.mkdtemp(prefix="berth-bench-overhead-"))
    try:
        with database_urls(databases(args), "overhead") as urls:
            measure(urls, base, args.quick, args.rounds, args.explain)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
