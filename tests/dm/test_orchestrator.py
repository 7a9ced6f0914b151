"""End to end on devicemapper: a busybox container through its whole lifecycle on a thin
snapshot of its image, under a real OCI runtime, and nothing of it left afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.storage.devicemapper.layout import layout_for
from fsm import Orchestrator
from tests.dm.helpers import our_dm_devices

pytestmark = pytest.mark.dm

SMALL_POOL = {"data_loop_size": "1G", "metadata_loop_size": "64M", "base_size": "64M"}


def test_busybox_lifecycle_on_thin_devices(root: Path, tmp_path: Path,
                                           busybox_tar: Path) -> None:
    orc = Orchestrator(database_url=f"sqlite:///{tmp_path / 'berth.db'}", root=root,
                       storage="devicemapper", storage_options=SMALL_POOL)
    layout = layout_for(root)
    try:
        image = orc.import_image("busybox", busybox_tar)
        assert image.storage_driver == "devicemapper"
        c = orc.create("busybox", ["sh", "-c", "echo hi > /tmp/note; cat /tmp/note; df /"],
                       network_mode="none")
        orc.start(c.id)
        assert orc.wait(c.id, timeout=600) == 0
        output = orc.log_text(c.id)
        assert output.startswith("hi\n")
        assert "/dev/mapper/" + layout.device_name(c.id) in output  # / is the thin device
        assert [t.dest for t in orc.history(c.id)] == [
            "mounting", "networking", "starting", "running", "exited"]
        # the container's write stays in its own snapshot, not in the image
        assert orc.storage.exists(c.id)
        orc.remove(c.id)
        assert not orc.storage.exists(c.id)
        active = set(our_dm_devices(layout))
        assert active <= {layout.loop_pool_name, layout.device_name("base")}, active
        orc.remove_image("busybox")
    finally:
        orc.storage.shutdown_pool()  # type: ignore[attr-defined]
        orc.close()
