"""Lease renewal: while a step's side effect runs, the row's lease keeps being pushed forward,
so recovery elsewhere never takes over a container that is merely slow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fsm import states
from fsm.container import LiveContainer
from fsm.steps.host import Host
from models import utcnow


class LeaseKeeper:
    """One daemon thread per orchestrator renews every in-flight row it drives, every third of
    a lease."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.interval = host.lease.total_seconds() / 3
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
                        self.renew(container)
                    except Exception:
                        pass  # the next interval tries again; recovery waits for the lease

    def renew(self, container: LiveContainer) -> bool:
        """Push the lease of an in-flight row forward; False when we no longer own it."""
        host = self.host
        return host.db.containers.renew_lease(container.id, container.version, host.owner,
                                              utcnow() + host.lease)

    def stop(self) -> None:
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
