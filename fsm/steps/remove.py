"""What ``removed`` does: the container's layer and directory go; its events and history stay."""

from __future__ import annotations

from transitions import EventData

from drivers.crashpoints import crash_point
from drivers.mounts import remove_tree
from fsm.errors import host_errors
from fsm.steps.host import container_of, host_of


def remove_layer(event: EventData) -> None:
    container, host = container_of(event), host_of(event)
    with host_errors():
        host.storage.remove(container.id)
        crash_point("remove.after_remove_layer")
        remove_tree(host.paths(container.id).root)
    container.emit("destroy")
