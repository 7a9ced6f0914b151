"""Lease renewal: while a step's side effect runs, the row's lease keeps being pushed forward,
so recovery elsewhere never takes over a container that is merely slow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fsm import states
from fsm.persistence import renew_lease

if TYPE_CHECKING:
    from fsm.container import LiveContainer


class LeaseKeeper:
    """One daemon thread per orchestrator renews every in-flight row it drives."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._driving: dict[int, LiveContainer] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def keep(self, container: LiveContainer) -> Iterator[None]:
        """Renew ``container``'s lease while the body runs, if it is in flight."""
        if container.state not in states.IN_FLIGHT:
            yield
            return
        with self._lock:
            self._driving[id(container)] = container
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._run, name="berth-leases",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._driving.pop(id(container), None)

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            with self._lock:
                driving = list(self._driving.values())
            for container in driving:
                if container.state in states.IN_FLIGHT:
                    try:
                        renew_lease(container)
                    except Exception:
                        pass

    def stop(self) -> None:
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
