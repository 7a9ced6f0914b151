"""The working directory is made inside the container's rootfs, never through a symlink out."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm.errors import BerthError
from fsm.steps.start import ensure_working_directory


def test_a_working_dir_is_made_in_the_rootfs(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    ensure_working_directory(rootfs, "/srv/app")
    assert (rootfs / "srv" / "app").is_dir()
    ensure_working_directory(rootfs, "/")  # the rootfs itself: nothing to make
    assert sorted(p.name for p in rootfs.iterdir()) == ["srv"]


def test_a_symlink_in_the_image_cannot_lead_the_mkdir_out(tmp_path: Path) -> None:
    rootfs, outside = tmp_path / "rootfs", tmp_path / "host"
    rootfs.mkdir()
    outside.mkdir()
    (rootfs / "work").symlink_to(outside)
    with pytest.raises(BerthError, match="outside the container's rootfs"):
        ensure_working_directory(rootfs, "/work/sub")
    assert list(outside.iterdir()) == []
