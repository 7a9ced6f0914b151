"""Restart policies, run by the exit hook (the shim's ``exit``), as Docker's restart manager:
``no``, ``on-failure[:max]``, ``always``, ``unless-stopped``; back-off from 100 ms doubling per
quick exit, back to 100 ms after 10 s of running, at most one minute. An explicit ``stop`` sets
``manually_stopped`` (a compare-and-swap like any transition) and ends restarting: a restart
that read the row before it loses its own compare-and-swap."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fsm import states
from fsm.errors import BerthError
from fsm.info import ContainerInfo

if TYPE_CHECKING:
    from fsm.runner import Runner

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
#: a run this long resets the back-off
RESET_AFTER = 10.0


def should_restart(info: ContainerInfo) -> bool:
    policy = info.host_config["restart_policy"]
    if info.state != states.EXITED or info.manually_stopped:
        return False
    name = policy["name"]
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and info.exit_code != 0:
        maximum = policy["maximum_retry_count"]
        return bool(maximum == 0 or info.restart_count < maximum)
    return False


def backoff_delay(info: ContainerInfo) -> float:
    if info.started_at and info.finished_at:
        ran = (info.finished_at - info.started_at).total_seconds()
        if ran >= RESET_AFTER:
            return INITIAL_DELAY
    return float(min(MAX_DELAY, INITIAL_DELAY * 2**info.restart_count))


def should_auto_remove(info: ContainerInfo) -> bool:
    return bool(info.host_config.get("auto_remove")) and info.state in (states.EXITED,
                                                                        states.DEAD)


def after_exit_needed(info: ContainerInfo) -> bool:
    """Whether :func:`after_exit` has anything to do for the container as it is now; when a
    waiter fired ``exit`` and this is False, the shim need not run the exit hook at all."""
    return should_restart(info) or should_auto_remove(info)


def after_exit(runner: Runner, container_id: str, run: int) -> None:
    """Run ``run`` has exited: restart the container if its policy says so, after the
    back-off; or remove it if it was created with auto-removal. Nothing if a later run has
    started meanwhile (it is that run's to decide)."""
    try:
        info = runner.db.resolve(container_id).info()
    except BerthError:
        return
    if info.run != run:
        return
    if not should_restart(info):
        if should_auto_remove(info):
            try:
                runner.remove(info.id, force=False)
            except BerthError:
                pass  # removed meanwhile, or the removal failed: the row says so
        return
    time.sleep(backoff_delay(info))
    try:
        # read again: a stop or remove during the back-off wins
        container = runner.db.resolve(container_id)
        if container.run == run and should_restart(container.info()):
            runner.restart(container)
    except BerthError:
        pass  # lost to a stop or remove, or the start failed: the row says which
