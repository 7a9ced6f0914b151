"""``berth gc``: host resources under berth's names that no row owns.

A crash between a side effect and its commit can leave one (a layer made just before its row
was inserted, say); recovery handles rows, this handles what has none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from drivers.network import bridge
from drivers.network.namespace import delete_netns, list_netns, netns_name
from fsm import states
from fsm.errors import host_errors
from models import Container, ContainerEvent, Image

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator

HOLDS_NETWORK = {states.NETWORKING, states.STARTING, states.RUNNING, states.STOPPING}


def collect(orc: Orchestrator, remove: bool = False) -> dict[str, list[str]]:
    with orc.reader.connect() as connection:
        rows = connection.execute(
            select(Container.id, Container.state).where(Container.node == orc.settings.node)
        ).all()
        image_ids = set(connection.execute(select(Image.id)).scalars())
        # namespaces and veths are host-wide: only those named after this database's containers
        # (removed ones included: their events stay) are this data root's to judge
        ever = set(connection.execute(select(ContainerEvent.container_id).distinct()).scalars())
    containers = {row.id: row.state for row in rows}
    networked = [cid for cid, state in containers.items() if state in HOLDS_NETWORK]
    running = {cid for cid, state in containers.items() if state in states.IN_FLIGHT
               or state == states.RUNNING}
    ours_netns = {netns_name(c) for c in ever} - {netns_name(c) for c in networked}
    ours_veths = {bridge.veth_name(c) for c in ever} - {bridge.veth_name(c) for c in networked}
    found = {
        "layer": [i for i in orc.storage.layers() if i not in containers and i not in image_ids],
        "container dir": sorted(p.name for p in _dirs(orc.settings.containers_dir)
                                if p.name not in containers),
        "runtime container": [c for c in orc.runtime.list() if c not in running],
        "netns": [n for n in list_netns() if n in ours_netns],
        "veth": [v for v in bridge.list_veths() if v in ours_veths],
    }
    if remove:
        with host_errors():
            for layer in found["layer"]:
                orc.storage.remove(layer)
            for name in found["container dir"]:
                shutil.rmtree(orc.settings.containers_dir / name, ignore_errors=True)
            for runtime_id in found["runtime container"]:
                orc.runtime.delete(runtime_id)
            for veth in found["veth"]:
                bridge.detach(veth)
            for netns in found["netns"]:
                delete_netns(netns)
    return found


def _dirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
