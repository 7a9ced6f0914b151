"""``exec``: another process in a running container, as ``docker exec`` runs one.

Not a transition of the container (its state does not move): a session that the event log
records (``exec_create``, ``exec_start``, ``exec_die`` with ``exitCode``), run by conmon beside
the container's own. Its process is the container's (``config.json``'s ``process``: its
capabilities, rlimits, user) with the command, and the environment, working directory and user
asked for.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fsm import states
from fsm.errors import InvalidState, host_errors
from fsm.owner import owner_tag, tagged_owner_alive
from fsm.steps.host import Host


@dataclass(frozen=True)
class ExecResult:
    """How an ``exec`` ended: the process's exit code and what it wrote, per stream."""

    exit_code: int
    stdout: bytes
    stderr: bytes


def run_exec(host: Host, ref: str, command: Sequence[str], user: Mapping[str, Any] | None,
             env: Mapping[str, str], working_dir: str | None, stdin: bytes | None,
             timeout: float) -> ExecResult:
    container = host.db.resolve(ref)
    if container.state != states.RUNNING:
        raise InvalidState(container.id, container.state, "exec",
                           "only a running container can run another process",
                           name=container.name)
    paths = host.run_paths(container)
    with host_errors():
        base = json.loads((paths.bundle / "config.json").read_text())["process"]
    process = _exec_process(base, command, user, env, working_dir)
    # named after its caller, so that recovery can tell a session whose caller died
    session = f"{owner_tag(host.owner, host.settings.node)}-{secrets.token_hex(8)}"
    attributes = {"execID": session, "image": container.image, "name": container.name}
    host.db.events.record(container.id, "exec_create", **attributes,
                          command=" ".join(command))
    host.db.events.record(container.id, "exec_start", **attributes)
    outcome = None
    try:
        with host_errors():
            outcome = host.runtime.exec(container.id, paths, process, stdin, timeout, session)
    finally:
        exit_code = 126 if outcome is None else outcome.exit_code
        host.db.events.record(container.id, "exec_die", **attributes, exitCode=exit_code)
    assert outcome is not None  # it raised otherwise
    return ExecResult(outcome.exit_code, outcome.stdout, outcome.stderr)


def recover_sessions(host: Host) -> list[str]:
    """End the exec sessions of this node whose caller died (killed mid-``exec``): their
    process, their directory, and an ``exec_die`` (137, ``interrupted``) in the event log.
    Returns the container ids they were in."""
    from drivers.runtime.exec import end_session

    ended = []
    for bundle in host.settings.containers_dir.glob("*/exec/*"):
        if tagged_owner_alive(bundle.name, host.settings.node):
            continue
        container_id = bundle.parent.parent.name
        end_session(bundle)
        host.db.events.record(container_id, "exec_die", execID=bundle.name, exitCode=137,
                              error="interrupted")
        ended.append(container_id)
    return ended


def _exec_process(base: dict[str, Any], command: Sequence[str], user: Mapping[str, Any] | None,
                  env: Mapping[str, str], working_dir: str | None) -> dict[str, Any]:
    process = dict(base)
    process["args"] = list(command)
    process["terminal"] = False
    merged = dict(item.split("=", 1) for item in base.get("env", []) if "=" in item)
    if user is not None:  # as a container's config keeps it: uid, gid, additional_gids, home
        process["user"] = {"uid": user["uid"], "gid": user["gid"],
                           "additionalGids": list(user["additional_gids"])}
        merged["HOME"] = user["home"]
    merged.update(env)
    process["env"] = [f"{name}={value}" for name, value in merged.items()]
    if working_dir is not None:
        process["cwd"] = working_dir
    return process
