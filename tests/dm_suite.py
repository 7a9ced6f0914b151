"""The device-mapper suite in the VM, started in the background as soon as pytest has collected
the test that needs it: qemu takes one core for several minutes, and the host tests use the
other meanwhile."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

from tests.vm.harness import VMError, VMResult, run_in_vm

REPO = Path(__file__).resolve().parents[1]
ARGV = [sys.executable, "-m", "pytest", "-m", "dm", "tests/dm", "-q", "-p", "no:cacheprovider",
        "-W", "ignore::DeprecationWarning"]


class BackgroundSuite:
    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._result: VMResult | None = None
        self._error: BaseException | None = None
        self.output = io.BytesIO()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dm-suite-vm", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._result = run_in_vm(
                ARGV, cwd=str(REPO),
                memory_mb=int(os.environ.get("BERTH_VM_MEMORY", "3072")),
                timeout=float(os.environ.get("BERTH_VM_TIMEOUT", "1500")),
                stream=self.output,
            )
        except (VMError, OSError) as error:
            self._error = error

    def result(self) -> VMResult:
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


SUITE = BackgroundSuite()


def vm_needed() -> str | None:
    """Why the VM run does not apply here, or None when it should run."""
    import shutil

    from drivers.storage.devicemapper import dm_thin_available

    if os.geteuid() != 0:
        return "needs root (loop devices, device-mapper)"
    if os.environ.get("BERTH_IN_VM"):
        return "already inside the VM"
    if dm_thin_available():
        return "the host has dm-thin: `pytest -m dm` runs tests/dm directly"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86 is not installed (scripts/setup installs it)"
    return None
