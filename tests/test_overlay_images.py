"""A few of the image tests again on the overlay driver: the tree of every source equal to
Podman's, and layers shared between two images (the fixtures of tests/test_images.py, with
``orc`` on overlay)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import known_container_ids
from tests.hostcheck import assert_nothing_leaked
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
    from fsm import Orchestrator

    why_not = overlay_unsupported(root / "overlay")
    if why_not is not None:
        pytest.skip(why_not)
    orchestrator = Orchestrator(database_url=database_url, root=root, storage="overlay")
    assert orchestrator.storage.name == "overlay"
    yield orchestrator
    for container in orchestrator.list(all=True):
        try:
            orchestrator.remove(container.id, force=True)
        except Exception:
            pass
    seen = known_container_ids(orchestrator)
    orchestrator.close()
    assert_nothing_leaked(root, seen)
