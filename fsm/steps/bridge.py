"""The default network: one bridge, its addresses handed out in SQL (:mod:`fsm.store.addresses`).

An endpoint row is committed before the veth pair exists and deleted after it is gone, so an
interrupted attach or detach leaves a row that says what to clean up.
"""

from __future__ import annotations

import ipaddress
import os

from drivers.network import Attachment, bridge
from drivers.network.namespace import netns_name, netns_path
from fsm.errors import BerthError, ConfigError, host_errors
from fsm.store.addresses import AddressStore, EndpointRecord

DEFAULT_BRIDGE = "berth0"
DEFAULT_SUBNET = "10.88.0.0/16"
NETWORK_NAME = "bridge"
CLAIM_ATTEMPTS = 64


class Bridge:
    def __init__(self, addresses: AddressStore) -> None:
        self.addresses = addresses
        self.interface = os.environ.get("BERTH_BRIDGE", DEFAULT_BRIDGE)
        self.subnet = os.environ.get("BERTH_BRIDGE_SUBNET", DEFAULT_SUBNET)
        try:
            network = ipaddress.ip_network(self.subnet)
        except ValueError as error:
            raise ConfigError("BERTH_BRIDGE_SUBNET", self.subnet, "an IPv4 CIDR such as "
                              "10.88.0.0/16") from error
        if network.version != 4 or network.num_addresses < 4:
            raise ConfigError("BERTH_BRIDGE_SUBNET", self.subnet, "an IPv4 network of /30 or wider")
        if not (0 < len(self.interface) <= 15):
            raise ConfigError("BERTH_BRIDGE", self.interface, "an interface name of 1-15 chars")
        self.network = network
        self.gateway = str(next(network.hosts()))

    def _network_id(self) -> int:
        found = self.addresses.network_id(NETWORK_NAME)
        if found is not None:
            return found
        with host_errors():
            bridge.check_subnet_free(self.subnet, self.interface)
        added = self.addresses.add_network(NETWORK_NAME, "bridge", self.interface, self.subnet,
                                           self.gateway)
        return added if added is not None else self._network_id()

    def attach(self, container_id: str, name: str) -> Attachment:
        network_id = self._network_id()
        ip = self._allocate(network_id, container_id)
        netns = netns_name(container_id)
        with host_errors():
            bridge.ensure_bridge(self.interface, self.gateway, self.subnet)
            bridge.attach(bridge=self.interface, veth=bridge.veth_name(container_id),
                          netns=netns, ip_cidr=f"{ip}/{self.network.prefixlen}",
                          mac=bridge.mac_for(ip), gateway=self.gateway)
        return Attachment(netns_path=netns_path(netns), ip=ip, gateway=self.gateway)

    def _allocate(self, network_id: int, container_id: str) -> str:
        """The lowest free address, claimed by inserting the endpoint row."""
        existing = self.addresses.address_of(container_id, network_id)
        if existing is not None:
            return existing
        for _attempt in range(CLAIM_ATTEMPTS):
            used = self.addresses.used_addresses(network_id)
            candidate = next((str(h) for h in self.network.hosts()
                              if str(h) != self.gateway and str(h) not in used), None)
            if candidate is None:
                raise BerthError(f"the bridge network {self.subnet} has no free address left")
            record = EndpointRecord(container_id=container_id, network_id=network_id,
                                    ip=candidate, mac=bridge.mac_for(candidate),
                                    veth=bridge.veth_name(container_id),
                                    netns=netns_name(container_id))
            if self.addresses.claim(record):
                return candidate
        raise BerthError("could not claim an address on the bridge: too much contention")

    def detach(self, container_id: str) -> None:
        with host_errors():
            bridge.detach(bridge.veth_name(container_id))
        self.addresses.release([container_id])

    def address_of(self, container_id: str) -> str | None:
        return self.addresses.address_of(container_id)
