"""Several orchestrator processes sharing one database: throughput, conflicts, lost updates.

1, 2, 4 and 8 processes (``--quick``: 1 and 2) each drive their own containers through whole
lifecycles (create, start, wait, remove; the NULL drivers of ``benchmarks/null_drivers.py``) for
a fixed time, all starting together. Printed: lifecycles per second (all processes together),
``ConcurrentTransition`` raised (distinct containers should never conflict), other errors, and
the audit check: for every container driven, its ``transitions`` rows, in id order, must form a
legal chain (the first leaves ``created``, each row's source is the previous row's dest, the
last reaches ``removed``, 7 rows): any mismatch would be a lost update.

Then a contended round: the processes race to ``start`` the same created containers; exactly
one start per container must commit, and every other ``start`` must wait for it and return the
running container (issue 15: a second start waits for one in flight); a
``ConcurrentTransition`` or ``InvalidState`` is counted as a failure. The chains must still be
legal.

Run: ``python -m benchmarks.concurrency [--quick] [--databases sqlite,postgresql]``
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks._common import (
    add_database_option,
    banner,
    database_urls,
    databases,
    parser,
    print_table,
)
from benchmarks.null_drivers import IPC_MODE, null_orchestrator
from fsm import ConcurrentTransition, Orchestrator
from fsm.errors import BerthError, InvalidState
from models import TransitionAudit

LIFECYCLE = ["start", "mounted", "networked", "started", "exit", "remove", "removed"]


@dataclass
class Result:
    lifecycles: int
    conflicts: int
    errors: int
    seconds: float
    ids: list[str]
    first_error: str = ""


def distinct_worker(url: str, root: str, seconds: float, barrier: Any, queue: Any) -> None:
    orc, image = null_orchestrator(url, Path(root))
    lifecycles = conflicts = errors = 0
    first_error = ""
    ids: list[str] = []
    barrier.wait()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        try:
            info = orc.create(image, ["/bin/true"], ipc_mode=IPC_MODE)
            ids.append(info.id)
            orc.start(info.id)
            orc.wait(info.id)
            orc.remove(info.id)
            lifecycles += 1
        except ConcurrentTransition:
            conflicts += 1
        except BerthError as error:
            errors += 1
            first_error = first_error or f"{type(error).__name__}: {error}"
    elapsed = time.perf_counter() - start
    orc.close()
    queue.put(Result(lifecycles, conflicts, errors, elapsed, ids, first_error))


def contended_worker(url: str, root: str, ids: list[str], barrier: Any, queue: Any) -> None:
    """``lifecycles`` counts the starts that returned a running container (won, waited for the
    winner, or found it running); ``conflicts`` the ConcurrentTransition and ``errors`` the
    InvalidState raised (none expected)."""
    orc, _image = null_orchestrator(url, Path(root))
    returned = conflicts = in_progress = 0
    barrier.wait()
    start = time.perf_counter()
    for container_id in ids:
        try:
            orc.start(container_id)
            returned += 1
        except ConcurrentTransition:
            conflicts += 1
        except InvalidState:
            in_progress += 1
    orc.close()
    queue.put(Result(returned, conflicts, in_progress, time.perf_counter() - start, []))


def check_chains(orc: Orchestrator, ids: list[str], complete: bool) -> tuple[int, int]:
    """(containers checked, mismatches): each row's source must be the previous row's dest."""
    chains: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with orc.db.engine.connect() as connection:
        for start in range(0, len(ids), 500):
            rows = connection.execute(
                select(TransitionAudit.container_id, TransitionAudit.source, TransitionAudit.dest)
                .where(TransitionAudit.container_id.in_(ids[start:start + 500]))
                .order_by(TransitionAudit.id)).all()
            for container_id, source, dest in rows:
                chains[container_id].append((source, dest))
    mismatches = 0
    for container_id in ids:
        chain = chains.get(container_id, [])
        state = "created"
        for source, dest in chain:
            if source != state:
                mismatches += 1
            state = dest
        if complete and (len(chain) != len(LIFECYCLE) or state != "removed"):
            mismatches += 1
    return len(ids), mismatches


def run_processes(target: Any, arguments: list[tuple[Any, ...]]) -> list[Result]:
    # fork: the children start at once with everything imported; the parent holds no open
    # database connection at that point (see ``dispose`` in measure)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(arguments))
    queue = context.Queue()
    processes = [context.Process(target=target, args=(*a, barrier, queue)) for a in arguments]
    for process in processes:
        process.start()
    results = [queue.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return results


def measure(name: str, make_url: Any, root: Path, quick: bool) -> None:
    counts = [1, 2] if quick else [1, 2, 4, 8]
    seconds = 1.0 if quick else 8.0
    rows = []
    for processes in counts:
        url = make_url(f"p{processes}_{os.getpid()}")
        setup, _image = null_orchestrator(url, root / f"setup{processes}")
        setup.db.engine.dispose()
        results = run_processes(distinct_worker, [
            (url, str(root / f"p{processes}-{i}"), seconds) for i in range(processes)])
        lifecycles = sum(r.lifecycles for r in results)
        elapsed = max(r.seconds for r in results)
        ids = [i for r in results for i in r.ids]
        checked, mismatches = check_chains(setup, ids, complete=True)
        setup.close()
        errors = sum(r.errors for r in results)
        rows.append([processes, lifecycles, lifecycles / elapsed,
                     lifecycles / elapsed / processes, sum(r.conflicts for r in results),
                     errors, checked, mismatches])
        if errors:
            print(f"  {name}, {processes} processes: first error: "
                  f"{next(r.first_error for r in results if r.first_error)}")
    print_table(f"{name}: distinct containers per process, {seconds:g} s per run",
                ["processes", "lifecycles", "lifecycles/s", "per process/s", "conflicts",
                 "errors", "chains checked", "chain mismatches"], rows)

    processes = counts[-1]
    url = make_url(f"contended_{os.getpid()}")
    setup, image = null_orchestrator(url, root / "contended")
    ids = [setup.create(image, ["/bin/true"], ipc_mode=IPC_MODE).id
           for _ in range(20 if quick else 200)]
    setup.db.engine.dispose()
    results = run_processes(contended_worker, [
        (url, str(root / f"c-{i}"), ids) for i in range(processes)])
    running = len(setup.list(state="running"))
    checked, mismatches = check_chains(setup, ids, complete=False)
    with setup.db.engine.connect() as connection:
        starts = connection.execute(
            select(TransitionAudit.actor).where(TransitionAudit.container_id.in_(ids))
            .where(TransitionAudit.trigger == "start")).scalars().all()
    setup.close()
    print_table(f"{name}: {processes} processes racing to start the same {len(ids)} containers "
                "(each container must be started exactly once, every start returns it running)",
                ["start transitions", "by processes", "returned running", "ConcurrentTransition",
                 "InvalidState", "running after", "chain mismatches"],
                [[len(starts), len(set(starts)), sum(r.lifecycles for r in results),
                  sum(r.conflicts for r in results), sum(r.errors for r in results), running,
                  mismatches]])
    if len(starts) != checked:
        print(f"  LOST UPDATE: {len(starts)} start transitions for {checked} containers")


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    add_database_option(arguments)
    args = arguments.parse_args()
    banner("concurrency", args.quick)
    base = Path(tempfile.mkdtemp(prefix="berth-bench-concurrency-"))
    try:
        with database_urls(databases(args), "concurrency") as urls:
            for name, make_url in urls.items():
                measure(name, make_url, base / name, args.quick)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
