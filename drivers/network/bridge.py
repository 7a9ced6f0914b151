"""A Linux bridge with veth pairs: the host side joins the bridge, the other end becomes
``eth0`` in the container's network namespace. Everything through ``ip``, idempotently."""

from __future__ import annotations

import ipaddress
import json
import os

from drivers.commands import run
from drivers.errors import HostError, InvalidDriverConfig
from drivers.network.namespace import netns_exists

SYS_NET = "/sys/class/net"


def link_exists(name: str) -> bool:
    return os.path.exists(os.path.join(SYS_NET, name))


def ensure_bridge(name: str, gateway: str, subnet: str) -> None:
    """Create the bridge with the gateway address and bring it up; an existing one is kept."""
    prefix = ipaddress.ip_network(subnet).prefixlen
    if not link_exists(name):
        try:
            run(["ip", "link", "add", name, "type", "bridge"], what=f"cannot create bridge {name}")
        except HostError:
            if not link_exists(name):  # another orchestrator made it at the same moment
                raise
    addresses = run(["ip", "-j", "addr", "show", "dev", name])
    have = {f"{a['local']}/{a['prefixlen']}" for i in json.loads(addresses or "[]")
            for a in i.get("addr_info", [])}
    if f"{gateway}/{prefix}" not in have:
        try:
            run(["ip", "addr", "add", f"{gateway}/{prefix}", "dev", name],
                what=f"cannot give bridge {name} its address")
        except HostError as error:
            if "File exists" not in error.stderr:
                raise
    run(["ip", "link", "set", name, "up"], what=f"cannot bring up bridge {name}")


def check_subnet_free(subnet: str, bridge: str) -> None:
    """Refuse a subnet that overlaps a route of the host's (other than the bridge's own)."""
    network = ipaddress.ip_network(subnet)
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"]) or "[]")
    for route in routes:
        destination = route.get("dst", "")
        if destination in ("default", "") or route.get("dev") == bridge:
            continue
        try:
            other = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        if other.overlaps(network):
            raise InvalidDriverConfig(
                f"bridge subnet {subnet} overlaps the host's route {destination} on "
                f"{route.get('dev', '?')}: set BERTH_BRIDGE_SUBNET to a free range"
            )


def attach(*, bridge: str, veth: str, netns: str, ip_cidr: str, mac: str, gateway: str) -> None:
    """Make the named network namespace ``netns`` (an existing one is reused) and a veth pair:
    ``veth`` on the bridge, ``eth0`` in ``netns`` with the address, the MAC and the gateway as
    default route, and lo up. A half-made pair from an earlier attempt is replaced.

    Two ``ip -batch`` processes, one on the host's side and one in the namespace, rather than
    one ``ip`` per step (eight): each is a process start on the path of every container start.
    ``ip`` stops a batch at its first failing line and names it in stderr.
    """
    detach(veth)
    host = [f"link add {veth} type veth peer name eth0 netns {netns}",
            f"link set {veth} master {bridge} up"]
    if not netns_exists(netns):
        host.insert(0, f"netns add {netns}")
    run(["ip", "-batch", "-"], input="\n".join(host) + "\n",
        what=f"cannot create veth pair {veth} into network namespace {netns}")
    inside = ["link set lo up", f"link set eth0 address {mac}", f"addr add {ip_cidr} dev eth0",
              "link set eth0 up", f"route add default via {gateway}"]
    run(["ip", "-n", netns, "-batch", "-"], input="\n".join(inside) + "\n",
        what=f"cannot configure eth0 in network namespace {netns}")


def detach(veth: str) -> None:
    """Delete the veth pair (both ends go together); a missing one is already gone."""
    if not link_exists(veth):
        return
    try:
        run(["ip", "link", "delete", veth], what=f"cannot delete {veth}")
    except HostError:
        if link_exists(veth):
            raise


def mac_for(ip: str) -> str:
    """Docker's scheme: 02:42 followed by the IPv4 address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def veth_name(container_id: str) -> str:
    return "vb" + container_id[:13]


def list_veths() -> list[str]:
    try:
        return sorted(n for n in os.listdir(SYS_NET) if n.startswith("vb"))
    except FileNotFoundError:
        return []
