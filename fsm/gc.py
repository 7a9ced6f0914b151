"""``berth gc``: host resources under berth's names that no row owns.

A crash between a side effect and its commit can leave one (a layer made just before its row
was inserted, say); recovery handles rows, this handles what has none.
"""

from __future__ import annotations

from pathlib import Path

from drivers.mounts import remove_tree
from drivers.network import bridge
from drivers.network.namespace import delete_netns, list_netns, netns_name
from fsm import states
from fsm.errors import host_errors
from fsm.steps.host import Host

HOLDS_NETWORK = {states.NETWORKING, states.STARTING, states.RUNNING, states.STOPPING}


def collect(host: Host, remove: bool = False) -> dict[str, list[str]]:
    db, settings = host.db, host.settings
    containers = db.containers.states_on_node(settings.node)
    layer_rows = db.layers.ids(settings.node)
    # namespaces and veths are host-wide: only those named after this database's containers
    # (removed ones included: their events stay) are this data root's to judge
    ever = db.events.container_ids()
    networked = [cid for cid, state in containers.items() if state in HOLDS_NETWORK]
    running = {cid for cid, state in containers.items() if state in states.IN_FLIGHT
               or state == states.RUNNING}
    ours_netns = {netns_name(c) for c in ever} - {netns_name(c) for c in networked}
    ours_veths = {bridge.veth_name(c) for c in ever} - {bridge.veth_name(c) for c in networked}
    found = {
        # every layer berth makes has its row first: one without is a leftover
        "layer": [i for i in host.storage.layers() if i not in layer_rows],
        "container dir": sorted(p.name for p in _dirs(settings.containers_dir)
                                if p.name not in containers),
        "runtime container": [c for c in host.runtime.list() if c not in running],
        "netns": [n for n in list_netns() if n in ours_netns],
        "veth": [v for v in bridge.list_veths() if v in ours_veths],
    }
    if remove:
        with host_errors():
            for layer in found["layer"]:
                host.storage.remove(layer)
            for name in found["container dir"]:
                # its /dev/shm may still be mounted there
                remove_tree(settings.containers_dir / name)
            for runtime_id in found["runtime container"]:
                host.runtime.delete(runtime_id)
            for veth in found["veth"]:
                bridge.detach(veth)
            for netns in found["netns"]:
                delete_netns(netns)
    return found


def _dirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
