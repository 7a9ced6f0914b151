"""The ``berth`` command line as an operator uses it: the installed console script in a
subprocess, on a private data root, against SQLite and PostgreSQL (the ``database_url`` fixture).

Exit codes are part of the interface: 0 ok, 1 a berth error (one line on stderr, no traceback),
2 bad usage, and ``berth run`` exits with the container's exit code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import click
import pytest

from fsm import states
from fsm.store.engine import open_engine
from fsm.store.schema import head_revision, upgrade
from tests.hostcheck import assert_nothing_leaked

HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMAND_TIMEOUT = 120
#: environment variables that would point a subprocess at someone else's state
BERTH_ENV = ("BERTH_ROOT", "BERTH_DATABASE_URL", "BERTH_STORAGE", "BERTH_RUNTIME")


def _berth_executable() -> list[str]:
    """The installed console script next to this interpreter (not a pyenv shim, which costs a
    second a call), else the one on PATH, else the module."""
    beside = Path(sys.executable).with_name("berth")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("berth")
    return [found] if found else [sys.executable, "-m", "fsm.cli"]


BERTH = _berth_executable()


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in BERTH_ENV}


def run_berth(*args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BERTH, *args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=_environment(), stdin=subprocess.DEVNULL)
    if expect is not None:
        assert done.returncode == expect, (
            f"berth {' '.join(args)} exited {done.returncode}, expected {expect}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
    return done


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """A berth error: one line on stderr, prefixed ``berth:``, no traceback, nothing on stdout."""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("berth: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert done.stdout == ""


def assert_usage_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Error:" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@dataclass
class Berth:
    """``berth --root ROOT --database-url URL ...`` for one test."""

    root: Path
    database_url: str

    def __call__(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        return run_berth("--root", str(self.root), "--database-url", self.database_url, *args,
                         expect=expect)

    def many(self, *commands: Sequence[str], expect: int | None = 0
             ) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands. One after the other for now: berth commands started at the
        same moment on one root can fail in fsm/settings.py's prepare_root (a shared
        ``.write-probe`` file that one process unlinks under another); once that is fixed, a
        ThreadPoolExecutor here makes this file a third faster."""
        return [self(*args, expect=expect) for args in commands]

    def import_busybox(self, tar: Path) -> str:
        done = self("--storage", "vfs", "image", "import", "busybox", str(tar))
        image_id = done.stdout.strip()
        assert HEX64.match(image_id), done.stdout
        return image_id

    def ps_json(self, *args: str) -> list[dict[str, object]]:
        rows = json.loads(self("ps", "--format", "json", *args).stdout)
        assert isinstance(rows, list)
        return rows


@pytest.fixture
def berth(database_url: str, root: Path) -> Iterator[Berth]:
    """The CLI on a private root; afterwards every container is removed through the API, and
    nothing of this root's containers may be left on the host (mounts, runtime state, bundles,
    netns, veths, shims)."""
    yield Berth(root, database_url)
    from fsm import Orchestrator, SchemaOutOfDate

    try:
        orc = Orchestrator(database_url=database_url, root=root)
    except SchemaOutOfDate:
        return
    try:
        for container in orc.list(all=True):
            orc.remove(container.id, force=True)
        seen = {e.container_id for e in orc.events()}
    finally:
        orc.close()
    assert_nothing_leaked(root, seen)


def _table(text: str) -> list[list[str]]:
    """A table printed by berth: rows of cells (columns are separated by 3+ spaces)."""
    return [re.split(r" {3,}", line.strip()) for line in text.splitlines() if line.strip()]


# -- running containers ---------------------------------------------------------------------


@pytest.mark.root
def test_run_streams_output_exits_with_the_code_and_leaves_logs_history_and_events(
    berth: Berth, busybox_tar: Path
) -> None:
    berth.import_busybox(busybox_tar)
    ran = berth("run", "--network", "none", "--name", "hello", "busybox",
                "sh", "-c", "echo hi; exit 3", expect=3)
    assert ran.stdout == "hi\n"
    assert ran.stderr == ""

    once = berth("run", "--rm", "--network", "none", "--name", "once", "busybox",
                 "sh", "-c", "echo bye", expect=0)
    assert once.stdout == "bye\n"

    logs, dies, history, listed, exited, running = berth.many(
        ["logs", "hello"],
        ["events", "--since", "1m", "--filter", "event=die"],
        ["history", "hello"],
        ["ps", "-a", "-q"],
        ["ps", "--filter", "state=exited", "--format", "json"],
        ["ps"],
    )
    assert logs.stdout == "hi\n"

    hello = json.loads(exited.stdout)
    assert [(c["name"], c["state"], c["exit_code"]) for c in hello] == [("hello", "exited", 3)]
    hello_id = hello[0]["id"]
    assert listed.stdout.split() == [hello_id[:12]]  # --rm left no container
    assert _table(running.stdout) == [
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]
    ]

    die_lines = dies.stdout.splitlines()
    assert len(die_lines) == 2, dies.stdout  # hello's and the --rm container's
    assert " container die " + hello_id[:12] in die_lines[0]
    assert "exitCode=3" in die_lines[0] and "name=hello" in die_lines[0]
    assert "exitCode=0" in die_lines[1] and "name=once" in die_lines[1]

    table = _table(history.stdout)
    assert table[0] == ["TRIGGER", "SOURCE", "DEST", "STARTED", "DURATION", "ERROR"]
    assert [row[:3] for row in table[1:]] == [
        ["start", "created", "mounting"],
        ["mounted", "mounting", "networking"],
        ["networked", "networking", "starting"],
        ["started", "starting", "running"],
        ["exit", "running", "exited"],
    ]
    assert all(re.fullmatch(r"\d+\.\d ms", row[4]) for row in table[1:]), history.stdout



@pytest.mark.root
def test_stop_wait_restart_inspect_and_rm(berth: Berth, busybox_tar: Path) -> None:
    berth.import_busybox(busybox_tar)
    # pid 1 ignores SIGTERM unless it handles it: `stop -t 1` has to SIGKILL
    web, idle = berth.many(
        ["create", "--name", "web", "--network", "none", "busybox", "sleep", "600"],
        ["create", "--name", "idle", "--network", "none", "--restart", "on-failure:2",
         "busybox", "true"],
    )
    web_id, idle_id = web.stdout.strip(), idle.stdout.strip()
    assert HEX64.match(web_id) and HEX64.match(idle_id)
    assert berth("start", "web").stdout.strip() == web_id

    inspected, running = berth.many(["inspect", "web", idle_id[:12]], ["ps"])
    described = json.loads(inspected.stdout)
    assert [(c["id"], c["state"]) for c in described] == [(web_id, "running"),
                                                          (idle_id, "created")]
    assert described[1]["host_config"]["restart_policy"] == {"name": "on-failure",
                                                             "maximum_retry_count": 2}
    rows = _table(running.stdout)
    assert len(rows) == 2 and rows[1][0] == web_id[:12] and rows[1][-1] == "web"
    assert rows[1][4].startswith("Up ")

    assert berth("stop", "-t", "1", "web").stdout.strip() == web_id
    assert berth("wait", "web").stdout.strip() == "137"  # 128 + SIGKILL
    first_pid = described[0]["pid"]

    assert berth("restart", "-t", "0", "web").stdout.strip() == web_id
    again = json.loads(berth("inspect", "web").stdout)[0]
    assert again["state"] == "running" and again["pid"] and again["pid"] != first_pid

    refused = berth("rm", "web", expect=1)
    assert_one_line_error(refused, "cannot remove container web", "running", "rm -f")

    assert berth("rm", "-f", "web").stdout.strip() == web_id
    assert berth("ps", "-a", "-q").stdout.split() == [idle_id[:12]]
    assert berth("rm", "idle").stdout.strip() == idle_id
    assert berth.ps_json("-a") == []


# -- images, pool, maintenance --------------------------------------------------------------


@pytest.mark.root
def test_image_import_ls_rm_and_pool_status(berth: Berth, busybox_tar: Path) -> None:
    image_id = berth.import_busybox(busybox_tar)
    listed, pool, again = berth.many(
        ["image", "ls"],
        ["pool", "status"],
        ["image", "import", "busybox", str(busybox_tar)],
        expect=None,
    )
    table = _table(listed.stdout)
    assert table[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert table[1][:3] == ["busybox", "latest", image_id[:12]]
    assert re.fullmatch(r"[\d.]+ (kB|MB)", table[1][-1])

    assert pool.returncode == 0, pool.stderr
    assert pool.stdout.splitlines()[0] == "Storage Driver: vfs"
    assert re.search(r"Layers\s+1$", pool.stdout, re.MULTILINE), pool.stdout

    assert again.returncode == 1
    assert_one_line_error(again, "'busybox:latest' is already in use")

    created = berth("create", "--network", "none", "busybox", "true").stdout.strip()
    in_use = berth("image", "rm", "busybox", expect=1)
    assert_one_line_error(in_use, "image 'busybox' is used by containers", created[:12])
    berth("rm", created)

    assert berth("image", "rm", "busybox").stdout == (
        f"Untagged: busybox:latest\nDeleted: sha256:{image_id}\n")
    assert _table(berth("image", "ls").stdout) == [["REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                                                     "SIZE"]]
    gone = berth("image", "rm", "busybox", expect=1)
    assert_one_line_error(gone, "no image named 'busybox'", "berth image import")


@pytest.mark.root
def test_recover_gc_and_db_on_a_clean_root(berth: Berth) -> None:
    assert berth("db", "current").stdout == f"none (head is {head_revision()})\n"
    recovered = berth("recover")  # the first orchestrator creates the schema of an empty database
    assert recovered.stdout == "nothing to recover\n"
    collected, current, history = berth.many(["gc"], ["db", "current"], ["db", "history"])
    assert current.stdout == f"{head_revision()} (head)\n"
    revisions = [line.split("\t")[0] for line in history.stdout.splitlines()]
    assert revisions[0] == head_revision() and revisions[-1] == "0001_initial"
    assert "0004_views" in revisions and len(revisions) == len(set(revisions))

    # A clean root has no orphan layer, container directory or runtime container. Network
    # namespaces and veths are host-wide, though, and gc reports those of every other berth
    # root on this host (concurrent test runs come and go) as this root's orphans: only such
    # lines may appear (see the report on fsm/gc.py).
    lines = collected.stdout.splitlines()
    assert lines == ["no orphans"] or (lines and "no orphans" not in lines), lines
    for line in lines:
        if line != "no orphans":
            assert re.fullmatch(r"orphan\t(netns\tberth-[0-9a-f]{16}|veth\tvb[0-9a-f]{13})",
                                line), line


@pytest.mark.root
def test_recover_reports_what_a_dead_orchestrator_left_in_flight(
    berth: Berth, busybox_tar: Path, database_url: str, root: Path
) -> None:
    from sqlalchemy import update

    from fsm import Orchestrator
    from models import Container, utcnow

    with Orchestrator(database_url=database_url, root=root, storage="vfs") as orc:
        orc.import_image("busybox", busybox_tar)
        container_id = orc.create("busybox", ["true"], network_mode="none").id
        # what an orchestrator killed while mounting leaves: its row in flight, its lease
        # running, its owner a process of this node that no longer exists
        dead_owner = f"{orc.settings.node}:{2**22 + 1}:1"
        with orc.db.engine.begin() as connection:
            connection.execute(update(Container).where(Container.id == container_id).values(
                state="mounting", owner=dead_owner, version=Container.version + 1,
                lease_expires_at=utcnow() + timedelta(minutes=5)))

    assert berth("recover").stdout == f"failed\t{container_id}\n"
    recovered = berth.ps_json("-a")[0]
    assert (recovered["state"], recovered["exit_code"], recovered["owner"]) == ("dead", 128, None)
    assert recovered["error"].startswith("interrupted")
    assert berth("recover").stdout == "nothing to recover\n"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.root
def test_unknown_and_ambiguous_references_and_bad_input(
    berth: Berth, busybox_tar: Path, database_url: str, root: Path
) -> None:
    from fsm import Orchestrator

    # enough containers that two ids share their first hex digit (17 always do)
    with Orchestrator(database_url=database_url, root=root, storage="vfs") as orc:
        orc.import_image("busybox", busybox_tar)
        ids: list[str] = []
        while len({i[0] for i in ids}) == len(ids):
            ids.append(orc.create("busybox", ["true"], network_mode="none").id)
    prefix = ids[-1][0]
    sharing = sorted(i for i in ids if i.startswith(prefix))

    results = berth.many(
        ["start", "nosuch"], ["logs", "nosuch"], ["inspect", ids[0], "nosuch"],
        ["history", "nosuch"], ["rm", "-f", "nosuch"],
        ["inspect", prefix],
        ["run", "--network", "none", "nosuchimage", "true"],
        expect=1,
    )
    *unknown, ambiguous, no_image = results
    for done in unknown:
        assert_one_line_error(done, "no container matches 'nosuch'", "berth ps -a")
    assert_one_line_error(ambiguous, f"'{prefix}' matches {len(sharing)} containers",
                          sharing[0][:12], "give more of the id")
    assert_one_line_error(no_image, "no image named 'nosuchimage'")

    bad_filter, bad_events_filter, bad_since, bad_network, no_tar = berth.many(
        ["ps", "--filter", "bogus=1"],
        ["events", "--filter", "state=running"],
        ["events", "--since", "yesterday"],
        ["create", "--network", "overlay", "busybox", "true"],
        ["image", "import", "other", str(root / "missing.tar")],
        expect=2,
    )
    assert_usage_error(bad_filter, "--filter", "'bogus=1'", "state=VALUE")
    assert_usage_error(bad_events_filter, "--filter", "event=VALUE")
    assert_usage_error(bad_since, "--since", "'yesterday'", "10m")
    assert_one_line_error(bad_network, "network_mode='overlay'", "none")
    assert_one_line_error(no_tar, "missing.tar", "readable tar file")
    # nothing was made by the bad commands
    assert sorted(c["id"] for c in berth.ps_json("-a")) == sorted(ids)


def test_a_database_at_an_old_revision_is_refused_until_upgraded(berth: Berth,
                                                                  database_url: str) -> None:
    upgrade(open_engine(database_url), database_url, "0001_initial")
    refused = berth("ps", expect=1)
    assert_one_line_error(refused, "schema revision 0001_initial", head_revision(),
                          "run `berth db upgrade`")
    assert berth("db", "current").stdout == f"0001_initial (head is {head_revision()})\n"

    assert berth("db", "upgrade").stdout == f"at {head_revision()}\n"
    assert berth("ps").stdout.startswith("CONTAINER ID")


def test_a_data_root_that_cannot_be_written_is_named_in_one_line() -> None:
    refused = run_berth("--root", "/proc/berth-test", "ps", expect=None)
    assert refused.returncode != 0
    assert_one_line_error(refused, "/proc/berth-test")


# -- help and the lifecycle graph -------------------------------------------------------------


def _every_command() -> list[list[str]]:
    from fsm.cli.app import cli

    found: list[list[str]] = [[]]

    def walk(group: click.Group, path: list[str]) -> None:
        for name, command in group.commands.items():
            found.append([*path, name])
            if isinstance(command, click.Group):
                walk(command, [*path, name])

    walk(cli, [])
    return found


def test_every_command_has_help_with_an_example() -> None:
    """``--help`` of the installed script, and of every command through click's runner (the same
    code; a process per command would cost a minute on a loaded machine)."""
    from click.testing import CliRunner

    from fsm.cli.app import cli

    for path in ([], ["run"]):
        done = run_berth(*path, "--help")
        assert done.stdout.startswith("Usage: berth") and "Example" in done.stdout
    commands = _every_command()
    assert ["run"] in commands and ["image", "import"] in commands and ["db", "upgrade"] in commands
    runner = CliRunner()
    for path in commands:
        done = runner.invoke(cli, [*path, "--help"], prog_name="berth")
        assert done.exit_code == 0, (path, done.output)
        assert done.output.startswith("Usage: berth"), (path, done.output)
        assert "Example" in done.output, f"`berth {' '.join(path)} --help` shows no example"


def test_graph_prints_the_lifecycle_as_mermaid() -> None:
    text = run_berth("graph").stdout
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    for transition in states.TRANSITIONS:
        sources = transition["source"]
        for source in [sources] if isinstance(sources, str) else sources:
            assert f"    {source} --> {transition['dest']}: {transition['trigger']}" in lines
    assert f"    [*] --> {states.CREATED}" in lines
