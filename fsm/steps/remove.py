"""What ``removed`` does: the container's layer and directory go; its events and history stay."""

from __future__ import annotations

from transitions import EventData

from drivers.crashpoints import crash_point
from drivers.mounts import remove_tree
from drivers.runtime.shm import unmount_shm
from fsm.errors import host_errors
from fsm.steps.host import container_of, host_of


def remove_layer(event: EventData) -> None:
    container, host = container_of(event), host_of(event)
    with host_errors():
        host.storage.remove(container.id)
        crash_point("remove.after_remove_layer")
        host.db.layers.forget(host.settings.node, container.id)
        paths = host.paths(container.id)
        # exit and the error edge have unmounted its /dev/shm; should one be left (a crash
        # between the two), it must not stay mounted with its directory gone
        unmount_shm(paths.shm)
        remove_tree(paths.root, scan_mounts=False)
    container.emit("destroy")
