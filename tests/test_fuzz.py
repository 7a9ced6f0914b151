"""Bad input, fuzzed: whatever a caller passes to ``create`` or to the CLI, a rejection is a
BerthError (the CLI: exit 1 or 2, one line, no traceback) and leaves nothing behind: no row, no
file under the data root, no mount. (``create`` never touches the network: namespaces are made by
``start``.)"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm import BerthError, Orchestrator
from tests.hostcheck import mounts_under

text = st.text(max_size=12)
pathish = st.one_of(text, st.sampled_from(["/", "/tmp", "/etc/..", "../x", "/a/../b", "/srv",
                                           "relative", "/no/such", "//", "/\x00"]))
names = st.one_of(text, st.sampled_from(["web", "a/b", "..", "x..y", "-x", "ok.name", "A" * 200,
                                         "../../etc/passwd", "/abs", "name\x00"]))
modes = st.one_of(text, st.sampled_from(["", "none", "host", "bridge", "container:", "container:x",
                                         "container:../..", "private", "shareable"]))
junk = st.one_of(st.none(), st.integers(), st.booleans(), st.floats(allow_nan=False), text,
                 st.lists(st.integers(), max_size=2))
keys = st.one_of(st.none(), st.integers(), st.booleans(), text)

create_arguments = st.fixed_dictionaries({
    "image": st.one_of(st.just("busybox"), names, junk),
    "command": st.one_of(st.lists(st.one_of(text, junk), max_size=3), junk),
    "name": st.one_of(st.none(), names, junk),
    "env": st.one_of(st.none(), st.dictionaries(keys, st.one_of(text, junk),
                                                max_size=2), junk),
    "working_dir": st.one_of(st.none(), pathish, junk),
    "network_mode": st.one_of(modes, junk),
    "ipc_mode": st.one_of(modes, junk),
    "tmpfs": st.one_of(st.none(), st.dictionaries(pathish, st.one_of(
        st.sampled_from(["", "size=1m", "size=lots", "mode=1777", "noexec", "exec=1", "size=0"]),
        junk), max_size=2), junk),
    "links": st.one_of(st.none(), st.lists(st.one_of(names, junk), max_size=2), junk),
    "restart_policy": st.one_of(st.sampled_from(["no", "always", "on-failure:3", "on-failure:-1",
                                                 "unless-stopped", "sometimes"]), junk),
    "mounts": st.one_of(st.none(), st.lists(st.one_of(
        st.fixed_dictionaries({"source": pathish, "target": pathish}), junk), max_size=2), junk),
    "exposed_ports": st.one_of(st.none(), st.lists(st.one_of(text, junk), max_size=2), junk),
    "shm_size": st.one_of(st.none(), st.sampled_from(["64m", "0", "1x", "-1"]), junk),
})


def _snapshot(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root)
            for d, dirs, files in os.walk(root) for f in files + dirs}


@pytest.mark.root
@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arguments=create_arguments)
def test_create_rejects_bad_input_with_a_berth_error_and_no_trace(
    orc: Orchestrator, image: str, root: Path, arguments: dict[str, Any]
) -> None:
    image_name = arguments.pop("image")
    command = arguments.pop("command")
    before_rows = orc.list(all=True)
    before_files = _snapshot(root)
    try:
        created = orc.create(image_name, command, **arguments)
    except BerthError:
        assert orc.list(all=True) == before_rows
        assert _snapshot(root) == before_files
        assert mounts_under(root) == []
        return
    # accepted: its files stay inside the data root, and it can be removed without a trace
    assert created.name and "/" not in created.name and ".." not in created.name
    orc.remove(created.id)
    assert _snapshot(root) == before_files


argv_words = st.one_of(
    st.sampled_from(["create", "start", "stop", "rm", "ps", "inspect", "history", "events",
                     "logs", "wait", "run", "image", "import", "ls", "pool", "status", "db",
                     "current", "graph", "gc", "recover", "-a", "-f", "--filter", "state=x",
                     "event=die", "--since", "1m", "1x", "--format", "json", "-t", "-1",
                     "--network", "overlay", "--name", "a/b", "busybox", "--rm", "-e", "X",
                     "--restart", "bogus", "-v", "/no:/x", "--tmpfs", "/run:size=x", "--",
                     "--bogus", "nope", "abc", ""]),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(argv_words, max_size=5))
def test_cli_answers_any_argv_with_an_exit_code_and_one_line(tmp_path: Path,
                                                            argv: list[str]) -> None:
    from fsm.cli import main

    stderr = io.StringIO()
    stdout = io.StringIO()
    full = ["--root", str(tmp_path / "root"), *argv]
    if argv[:1] in (["run"], ["start"], ["demo"]):
        return  # these run containers: covered by the CLI tests with real images
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout), \
            pytest.raises(SystemExit) as exited:
        main(full)
    code = exited.value.code
    assert code in (0, 1, 2), (argv, code, stderr.getvalue())
    assert "Traceback" not in stderr.getvalue()
    if code == 1:
        assert len(stderr.getvalue().strip().splitlines()) == 1, stderr.getvalue()
