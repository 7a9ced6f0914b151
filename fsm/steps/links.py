"""Links (``links=["db:database"]``): the seed's ``setupLinkedContainers``.

A linked container sees Docker's environment names for each link (``DATABASE_NAME``,
``DATABASE_PORT``, ``DATABASE_PORT_5432_TCP``, ``..._ADDR``, ``..._PORT``, ``..._PROTO``,
``DATABASE_ENV_<VAR>``) and an ``/etc/hosts`` line that resolves the alias to the target.
"""

from __future__ import annotations

from fsm.container import LiveContainer
from fsm.errors import InvalidState
from fsm.steps.host import Host


def linked_targets(container: LiveContainer, host: Host) -> list[tuple[str, LiveContainer]]:
    """(alias, target) for every link; refused unless each target is running."""
    result = []
    for link in container.host_config["links"]:
        target = host.db.resolve(link["container"])
        if target.state != "running":
            raise InvalidState(target.id, target.state, "link to",
                               f"start it before {container.name}", name=target.name)
        result.append((link["alias"], target))
    return result


def link_environment(container: LiveContainer, host: Host) -> dict[str, str]:
    env: dict[str, str] = {}
    for alias, target in linked_targets(container, host):
        ip = host.network.address_of(target.id)
        prefix = alias.upper().replace("-", "_").replace(".", "_")
        env[f"{prefix}_NAME"] = f"/{container.name}/{alias}"
        ports = target.config.get("exposed_ports", [])
        if ip:
            for port in ports:
                number, proto = port.split("/")
                base = f"{prefix}_PORT_{number}_{proto.upper()}"
                env[base] = f"{proto}://{ip}:{number}"
                env[f"{base}_ADDR"] = ip
                env[f"{base}_PORT"] = number
                env[f"{base}_PROTO"] = proto
            if ports:
                first_number, first_proto = sorted(ports, key=_port_order)[0].split("/")
                env[f"{prefix}_PORT"] = f"{first_proto}://{ip}:{first_number}"
        for name, value in target.config.get("env", {}).items():
            env[f"{prefix}_ENV_{name}"] = value
    return env


def link_hosts(container: LiveContainer, host: Host) -> list[str]:
    lines = []
    for alias, target in linked_targets(container, host):
        ip = host.network.address_of(target.id)
        if ip:
            names = " ".join(dict.fromkeys([alias, target.id[:12], target.name]))
            lines.append(f"{ip}\t{names}")
    return lines


def _port_order(port: str) -> tuple[int, str]:
    number, proto = port.split("/")
    return int(number), proto
