"""A few of the image tests again on the overlay driver: the tree of every source equal to
Podman's, and layers shared between two images (the fixtures of tests/test_images.py, with
``orc`` on overlay)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import orchestrator_on
from tests.test_images import (  # noqa: F401 - fixtures and tests collected again here
    exports,
    podman_view,
    pushed,
    test_each_source_gives_podmans_tree_and_the_images_config,
    test_two_images_share_their_lower_layers_until_the_last_one_goes,
)

pytestmark = pytest.mark.root


@pytest.fixture
def orc(database_url: str, root: Path) -> Iterator[object]:
    from drivers.storage.overlay import overlay_unsupported

    why_not = overlay_unsupported(root / "overlay")
    if why_not is not None:
        pytest.skip(why_not)
    for orchestrator in orchestrator_on(database_url, root, "overlay"):
        assert orchestrator.storage.name == "overlay"  # type: ignore[attr-defined]
        yield orchestrator
