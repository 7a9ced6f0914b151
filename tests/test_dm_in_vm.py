"""The device-mapper suite (``tests/dm``, ``pytest -m dm``) on a real kernel dm-thin target.

Where the host kernel has dm-thin, the suite runs directly and this test steps aside. Where it
has not (this project's machines), it boots the project's VM (``tests/vm``: Debian's kernel under
qemu, the host's / read-only over 9p) once and runs the whole suite inside.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from drivers.storage.devicemapper import dm_thin_available
from tests.vm.harness import run_in_vm

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_device_mapper_suite_passes_on_a_real_kernel() -> None:
    if dm_thin_available():
        pytest.skip("the host has dm-thin: `pytest -m dm` runs tests/dm directly")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86 is not installed (scripts/setup installs it)")
    result = run_in_vm(
        [sys.executable, "-m", "pytest", "-m", "dm", "tests/dm", "-q", "-p", "no:cacheprovider",
         "-W", "ignore::DeprecationWarning"],
        cwd=str(REPO),
        memory_mb=int(os.environ.get("BERTH_VM_MEMORY", "3072")),
        timeout=float(os.environ.get("BERTH_VM_TIMEOUT", "1500")),
        stream=sys.stdout.buffer,
    )
    tail = "\n".join(result.output.splitlines()[-40:])
    assert result.exit_code == 0, tail
    assert " passed" in tail and " failed" not in tail, tail
