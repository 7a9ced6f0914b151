"""The device-mapper suite (``tests/dm``, ``pytest -m dm``) on a real kernel dm-thin target.

Where the host kernel has dm-thin, the suite runs directly and this test steps aside. Where it
has not (this project's machines), the project's VM (``tests/vm``: Debian's kernel under qemu,
the host's / read-only over 9p) runs the whole suite; it is booted in the background as soon as
this test is collected (see ``tests/conftest.py``), and this test collects its verdict.
"""

from __future__ import annotations

import pytest

from tests.dm_suite import SUITE, vm_needed

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_device_mapper_suite_passes_on_a_real_kernel() -> None:
    reason = vm_needed()
    if reason is not None:
        pytest.skip(reason)
    result = SUITE.result()
    tail = "\n".join(result.output.splitlines()[-40:])
    print(result.output)
    assert result.exit_code == 0, tail
    assert " passed" in tail and " failed" not in tail, tail
