"""Network modes: what ``setup_network`` and ``release_network`` do for each.

- ``none``: a network namespace of its own with only loopback up, made by the OCI runtime as it
  starts the process (the runtime-spec's network namespace without a path) and gone with it;
- ``host``: the host's network, nothing to set up;
- ``container:<ref>``: join the network namespace of another running container;
- ``bridge`` (the default for a blank mode): see :mod:`fsm.steps.bridge`.
"""

from __future__ import annotations

from drivers.network import NEW_NETNS, Attachment
from drivers.network.namespace import delete_netns, netns_name, netns_path
from fsm.container import LiveContainer
from fsm.errors import InvalidState, host_errors
from fsm.steps.host import Host

DEFAULT_MODE = "bridge"


def effective_mode(mode: str) -> str:
    """The seed's SetDefaultNetModeIfBlank."""
    return mode or DEFAULT_MODE


def setup_network(container: LiveContainer, host: Host) -> Attachment:
    mode = effective_mode(container.host_config["network_mode"])
    with host_errors():
        if mode == "host":
            return Attachment(netns_path=None)
        if mode.startswith("container:"):
            joined = _joined_netns(container, host, mode.removeprefix("container:"))
            return Attachment(netns_path=joined)
        if mode == "none":
            return Attachment(netns_path=NEW_NETNS)
        if mode == "bridge":
            return host.network.attach(container.id, container.name)
    raise AssertionError(f"network mode {mode!r} passed validation")


def release_network(container: LiveContainer, host: Host) -> None:
    """Idempotent: releasing twice, or what was never set up, does nothing."""
    mode = effective_mode(container.host_config["network_mode"])
    with host_errors():
        if mode == "bridge":
            host.network.detach(container.id)
        if mode in ("none", "bridge"):
            # ``none`` has no named namespace any more; one left by an older berth still goes
            delete_netns(netns_name(container.id))


def _joined_netns(container: LiveContainer, host: Host, ref: str) -> str:
    target = host.db.resolve(ref)
    if target.state != "running":
        raise InvalidState(target.id, target.state, "join the network of",
                           f"container {container.name} needs it running", name=target.name)
    mode = effective_mode(target.host_config["network_mode"])
    if mode == "host":
        raise InvalidState(target.id, "using the host's network", "join the network of",
                           "use network_mode='host' instead", name=target.name)
    if mode.startswith("container:"):
        # the joined container has no namespace of its own: follow it to the one it joined
        return _joined_netns(container, host, mode.removeprefix("container:"))
    if mode == "none":
        # the runtime made it and it has no name: reach it through the running process, as a
        # joined IPC namespace is
        if target.pid is None:
            raise InvalidState(target.id, target.state, "join the network of",
                               f"container {container.name} needs its process", name=target.name)
        return f"/proc/{target.pid}/ns/net"
    return netns_path(netns_name(target.id))
