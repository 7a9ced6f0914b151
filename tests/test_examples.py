"""The scripts in examples/ run for real, as an operator runs them (a subprocess with --root and
--database-url), against a root populated through the API, on SQLite and PostgreSQL; and the
generated facts of docs/ (api.md, lifecycle.md) are what the code says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from fsm import Orchestrator, StartFailed, states
from fsm.graph import mermaid
from models import Container, utcnow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DOCS = REPO / "docs"
DEADLINE_SECONDS = 60.0


@dataclass
class Populated:
    orc: Orchestrator
    root: Path
    database_url: str
    ids: dict[str, str]

    def run(self, script: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("BERTH_ROOT", "BERTH_DATABASE_URL")}
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / script), "--root", str(self.root),
             "--database-url", self.database_url, *args],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        assert done.returncode == expect, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done

    def state(self, name: str) -> str:
        return self.orc.get(self.ids[name]).state


def _wait_for(what: str, condition: object) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def populated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              busybox_tar: Path) -> Iterator[Populated]:
    """A root with containers in every resting state, two of them stopped days ago, and
    containers with each restart policy; shared by the tests below, which touch disjoint
    containers (reap_dead only the old ones, restart_exited only those with a policy)."""
    base = tmp_path_factory.mktemp(f"examples-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'berth.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"berth_examples_{base.name}")
    orc = Orchestrator(database_url=url, root=base / "root", storage="vfs")
    try:
        orc.import_image("busybox", busybox_tar)
        ids: dict[str, str] = {}

        def make(name: str, command: list[str], policy: str = "no") -> str:
            ids[name] = orc.create("busybox", command, name=name, network_mode="none",
                                   restart_policy=policy).id
            return ids[name]

        make("idle", ["true"])
        orc.start(make("web", ["sleep", "600"]))
        for name in ("old-exited", "recent"):
            orc.start(make(name, ["true"]))
            orc.wait(ids[name], timeout=DEADLINE_SECONDS)
        with pytest.raises(StartFailed):
            orc.start(make("old-dead", ["/bin/no-such-program"]))
        # restart policies: retry exhausts its one retry; always and pinned are stopped by hand
        orc.start(make("retry", ["sh", "-c", "exit 1"], "on-failure:1"))
        _wait_for("retry's one restart", lambda: (orc.get(ids["retry"]).state,
                                                  orc.get(ids["retry"]).restart_count)
                  == ("exited", 1))
        for name, policy in (("always", "always"), ("pinned", "unless-stopped")):
            orc.start(make(name, ["sleep", "600"], policy))
            orc.stop(ids[name], timeout=0)
        # two of them stopped days ago
        with orc.db.engine.begin() as connection:
            for name, days in (("old-exited", 3), ("old-dead", 2)):
                connection.execute(update(Container).where(Container.id == ids[name])
                                   .values(finished_at=utcnow() - timedelta(days=days)))
        yield Populated(orc, base / "root", url, ids)
    finally:
        for container in orc.list(all=True):
            orc.remove(container.id, force=True)
        orc.close()


@pytest.mark.parametrize("script", ["reap_dead.py", "restart_exited.py", "image_usage.py"])
def test_each_example_explains_itself(script: str) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    for option in ("--root", "--database-url", "Examples:"):
        assert option in done.stdout


@pytest.mark.root
def test_image_usage_counts_containers_per_state_and_sizes(populated: Populated,
                                                          tmp_path: Path) -> None:
    orc = populated.orc
    # a second, unused image
    (tmp_path / "tree" / "etc").mkdir(parents=True)
    (tmp_path / "tree" / "etc" / "motd").write_text("x" * 1000)
    with tarfile.open(tmp_path / "tiny.tar", "w") as tar:
        tar.add(tmp_path / "tree", arcname=".")
    tiny = orc.import_image("tiny", tmp_path / "tiny.tar")
    try:
        report = json.loads(populated.run("image_usage.py", "--format", "json").stdout)
        expected_states: dict[str, int] = {}
        for c in orc.list(all=True):
            expected_states[c.state] = expected_states.get(c.state, 0) + 1
        busybox = next(i for i in orc.images() if i.name == "busybox:latest")
        assert report["images"] == [
            {"name": "busybox:latest", "id": busybox.id, "storage_driver": "vfs",
             "size": busybox.size, "containers": sum(expected_states.values()),
             "states": expected_states},
            {"name": "tiny:latest", "id": tiny.id, "storage_driver": "vfs", "size": 1000,
             "containers": 0, "states": {}},
        ]
        assert report["total_size"] == busybox.size + 1000
        assert report["total_containers"] == len(orc.list(all=True))

        table = populated.run("image_usage.py").stdout.splitlines()
        assert table[0].split() == ["IMAGE", "DRIVER", "SIZE", "CONTAINERS", "BY", "STATE"]
        assert table[1].startswith("busybox") and "exited=" in table[1]
        assert table[2].startswith("tiny") and table[2].endswith("unused")
        assert table[3].startswith("TOTAL")
    finally:
        orc.remove_image("tiny")


@pytest.mark.root
def test_restart_exited_starts_containers_with_a_restart_policy(populated: Populated) -> None:
    orc, ids = populated.orc, populated.ids
    starts_before = {n: len(orc.events(container=i, actions=["start"])) for n, i in ids.items()}

    dry = populated.run("restart_exited.py", "--dry-run").stdout
    assert sorted(line.split()[3] for line in dry.splitlines() if line.startswith("would")) == [
        "always", "retry"]
    assert f"skipped {ids['pinned'][:12]} pinned" in dry  # unless-stopped, stopped by its user
    assert (populated.state("always"), populated.state("retry")) == ("exited", "exited")

    done = populated.run("restart_exited.py").stdout
    started = sorted(line.split()[2] for line in done.splitlines() if line.startswith("started"))
    assert started == ["always", "retry"]
    starts_after = {n: len(orc.events(container=i, actions=["start"])) for n, i in ids.items()
                    if n in starts_before}
    assert {n for n in starts_after if starts_after[n] > starts_before[n]} == {"always", "retry"}
    assert populated.state("always") == "running"
    # retry exits with 1 again; its one retry is used up, so it stays exited
    _wait_for("retry to exit again", lambda: populated.state("retry") == "exited")
    assert orc.get(ids["retry"]).exit_code == 1
    for name in ("pinned", "recent", "old-exited"):
        assert populated.state(name) == "exited", name
    orc.stop(ids["always"], timeout=0)


@pytest.mark.root
def test_reap_dead_removes_only_what_stopped_before_the_cutoff(populated: Populated) -> None:
    orc, ids = populated.orc, populated.ids
    dry = populated.run("reap_dead.py", "--dry-run").stdout
    assert sorted(line.split()[3] for line in dry.splitlines()) == ["old-dead", "old-exited"]
    assert all(line.startswith("would remove ") for line in dry.splitlines())
    assert f"{ids['old-dead'][:12]} old-dead (dead 2d ago)" in dry

    only_dead = populated.run("reap_dead.py", "--dry-run", "--older-than", "0s",
                              "--state", "dead").stdout
    assert [line.split()[3] for line in only_dead.splitlines()] == ["old-dead"]
    assert {c.name for c in orc.list(all=True)} >= {"old-dead", "old-exited"}  # dry runs

    done = populated.run("reap_dead.py").stdout
    assert sorted(line.split()[2] for line in done.splitlines()) == ["old-dead", "old-exited"]
    assert all(line.startswith("removed ") for line in done.splitlines())
    left = {c.name for c in orc.list(all=True)}
    assert not left & {"old-dead", "old-exited"}
    assert {"idle", "web", "recent"} <= left
    # the history of what was removed stays
    assert [t.trigger for t in orc.history(ids["old-dead"])][-2:] == ["remove", "removed"]

    bad = subprocess.run([sys.executable, str(EXAMPLES / "reap_dead.py"), "--older-than", "1y"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "use 30s, 10m, 2h or 1d" in bad.stderr


# -- the generated facts of docs/ -------------------------------------------------------------


def test_api_md_is_what_the_docstrings_say() -> None:
    done = subprocess.run([sys.executable, str(DOCS / "gen_api.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _markdown_table(text: str, header: str) -> list[list[str]]:
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_]+)`", cell)


def test_lifecycle_md_is_what_fsm_states_says() -> None:
    text = (DOCS / "lifecycle.md").read_text()
    assert f"```mermaid\n{mermaid()}\n```" in text

    rows = _markdown_table(text, "| state | in flight | what it means |")
    assert [_names(r[0])[0] for r in rows] == states.STATES
    assert {_names(r[0])[0] for r in rows if r[1] == "yes"} == states.IN_FLIGHT

    step_names = {p.rpartition(".")[2] for t in states.TRANSITIONS
                  for p in ([t["prepare"]] if isinstance(t.get("prepare"), str)
                            else t.get("prepare", []))}
    rows = _markdown_table(text, "| trigger | from | to | side effect (`prepare`) |")
    documented = []
    for trigger, sources, dest, effect in rows:
        steps = [n for n in _names(effect) if n in step_names]
        documented.append((_names(trigger)[0], _names(sources), _names(dest)[0], steps))
    declared = []
    for t in states.TRANSITIONS:
        sources = [t["source"]] if isinstance(t["source"], str) else t["source"]
        prepare = t.get("prepare", [])
        prepare = [prepare] if isinstance(prepare, str) else prepare
        declared.append((t["trigger"], sources, t["dest"],
                         [p.rpartition(".")[2] for p in prepare]))
    assert documented == declared
