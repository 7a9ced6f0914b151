"""Restart policies applied, by the exit hook (the shim's ``exit``): after a run's exit, start
the container again when :mod:`fsm.policy` says so, after its back-off. An explicit ``stop``
sets ``manually_stopped`` (a compare-and-swap like any transition) and ends restarting: a
restart that read the row before it loses its own compare-and-swap."""

from __future__ import annotations

import time

from fsm.errors import BerthError
from fsm.policy import backoff_delay, should_auto_remove, should_restart
from fsm.runner import Runner


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
