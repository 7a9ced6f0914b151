"""Network drivers: give a container its network namespace (or the host's) before it starts,
and take it back when it ends. Every operation is idempotent, so recovery can repeat it."""

from __future__ import annotations

from dataclasses import dataclass

#: ``Attachment.netns_path`` of a container with a network namespace of its own that the OCI
#: runtime creates as it starts the process, with only lo (up), and that ends with the process:
#: no ``ip`` command to make or delete it, and nothing left on the host after a crash
NEW_NETNS = ""


@dataclass(frozen=True)
class Attachment:
    """What the runtime needs to know about a container's network."""

    #: path of the network namespace to join, :data:`NEW_NETNS` for a new one, or None to share
    #: the host's
    netns_path: str | None
    #: lines for the container's /etc/hosts beyond localhost
    hosts: tuple[str, ...] = ()
    ip: str | None = None
    gateway: str | None = None
