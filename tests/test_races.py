"""Races: 8 processes start, stop and remove the same 50 containers at random. Each transition
has exactly one winner: the audit trail of every container is a legal chain, no update is lost,
no address is handed out twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fsm import Orchestrator, states
from fsm.steps.host import Drivers
from models import Container, Endpoint, TransitionAudit
from tests.audit import assert_legal_chain
from tests.conftest import known_container_ids
from tests.hostcheck import assert_nothing_leaked

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
WORKERS = 8
CONTAINERS = 50
SECONDS = float(os.environ.get("BERTH_RACE_SECONDS", "30"))


def test_eight_processes_racing_on_fifty_containers(
    orc: Orchestrator, image: str, root: Path, database_url: str
) -> None:
    ids = [orc.create(image, ["sleep", "600"]).id for _ in range(CONTAINERS)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.race_worker", str(root), database_url, str(SECONDS),
             str(seed), *ids],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seed in range(WORKERS)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=SECONDS + 300)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["unexpected"] for r in reports] == [[]] * WORKERS
    totals: Counter[str] = Counter()
    for report in reports:
        totals.update(report["counts"])
    assert totals["start:ok"] > 0 and totals["stop:ok"] > 0 and totals["remove:ok"] > 0, totals

    # every process has gone: whatever a worker left in flight is reconciled
    orc.recover()
    deadline = time.monotonic() + 60
    while any(c.state in states.IN_FLIGHT for c in orc.list(all=True)):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    with orc.db.engine.connect() as connection:
        audit = connection.execute(
            select(TransitionAudit.container_id, TransitionAudit.source, TransitionAudit.dest)
            .order_by(TransitionAudit.id)).all()
        versions = dict(connection.execute(select(Container.id, Container.version)).all())
        addresses = connection.execute(
            select(Endpoint.ip, func.count()).group_by(Endpoint.network_id, Endpoint.ip)
            .having(func.count() > 1)).all()
    chains: dict[str, list[tuple[str, str]]] = {}
    for container_id, source, dest in audit:
        chains.setdefault(container_id, []).append((source, dest))
    for container_id, chain in chains.items():
        assert chain[0][0] == states.CREATED
        assert_legal_chain(chain, container_id)
        if container_id in versions:
            # at least one version per committed transition (a stop of an exited container
            # bumps it too, to cancel a pending restart): nothing overwrote anything
            assert versions[container_id] >= len(chain) + 1
    assert addresses == []

    for container in orc.list(all=True):
        if container.state in (states.RUNNING, states.STOPPING):
            orc.stop(container.id, timeout=0)
    for container in orc.list(all=True):
        orc.remove(container.id, force=True)
    assert_nothing_leaked(root, known_container_ids(orc))


class HiddenExitRecord:
    """Fault injection: a runtime whose ``exit_status`` never sees conmon's exit file,
    as a ``stop`` sees it when another process fired ``exit`` and a ``start`` that followed
    cleared the file before this ``stop`` looked. Everything else is the real runtime."""

    def __init__(self, runtime: object) -> None:
        self._runtime = runtime

    def exit_status(self, _paths: object) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self._runtime, name)


def test_a_stop_ends_when_another_process_fired_the_exit(
    orc: Orchestrator, image: str, database_url: str, root: Path
) -> None:
    # as pid 1, sh would ignore SIGTERM without a trap
    created = orc.create(image, ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"],
                         network_mode="none")
    orc.start(created.id)
    other = Orchestrator(database_url=database_url, root=root, storage=orc.storage.name,
                         drivers=Drivers(runtime=HiddenExitRecord(orc.runtime)))  # type: ignore[arg-type]
    stopped: dict[str, object] = {}

    def stop_blind() -> None:
        try:
            stopped["info"] = other.stop(created.id, timeout=30)
        except Exception as error:  # reported below
            stopped["error"] = error

    stopper = threading.Thread(target=stop_blind)
    stopper.start()
    try:
        # the SIGTERM ends it; conmon records it; this orchestrator fires the exit
        deadline = time.monotonic() + 60
        while orc.get(created.id).state != states.EXITED:
            assert time.monotonic() < deadline, "the exit was never recorded"
            run = orc.get(created.id).run
            status = orc.runtime.exit_status(orc.paths(created.id).of_run(run))
            if status is not None:
                orc.handle_exit(created.id, run, status.exit_code)
            time.sleep(0.01)
        stopper.join(timeout=120)
    finally:
        other.close()
    assert not stopper.is_alive()
    assert "error" not in stopped, stopped.get("error")
    assert stopped["info"].state == states.EXITED  # type: ignore[attr-defined]
    # it did not go on to SIGKILL a run it no longer owned
    assert [e.action for e in orc.events(container=created.id)].count("kill") == 1  # SIGTERM
