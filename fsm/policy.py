"""Restart policies as Docker's restart manager decides them: ``no``, ``on-failure[:max]``,
``always``, ``unless-stopped``; back-off from 100 ms doubling per quick exit, back to 100 ms
after 10 s of running, at most one minute. Pure decisions on a container's record: applying them
is :mod:`fsm.restart`'s."""

from __future__ import annotations

from fsm import states
from fsm.info import ContainerInfo

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
    """Whether :func:`fsm.restart.after_exit` has anything to do for the container as it is
    now; when a waiter fired ``exit`` and this is False, the shim need not run the exit hook."""
    return should_restart(info) or should_auto_remove(info)


