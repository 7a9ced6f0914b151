"""The default network: one bridge, addresses handed out in SQL.

An address is taken by inserting an ``endpoints`` row; the unique (network, ip) constraint
makes two orchestrators sharing a database pick different addresses (the loser retries with the
next one). The row is committed before the veth pair exists and deleted after it is gone, so an
interrupted attach or detach leaves a row that says what to clean up.
"""

from __future__ import annotations

import ipaddress
import os

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from drivers.network import Attachment, bridge
from drivers.network.namespace import netns_name, netns_path
from fsm.database import reader
from fsm.errors import BerthError, ConfigError, host_errors
from fsm.settings import Settings
from models import Endpoint, Network, utcnow

DEFAULT_BRIDGE = "berth0"
DEFAULT_SUBNET = "10.88.0.0/16"
NETWORK_NAME = "bridge"


class Bridge:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.reader = reader(engine)
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
        with self.engine.begin() as connection:
            found = connection.execute(
                select(Network.id).where(Network.name == NETWORK_NAME)).scalar_one_or_none()
            if found is not None:
                return found
        with host_errors():
            bridge.check_subnet_free(self.subnet, self.interface)
        try:
            with self.engine.begin() as connection:
                inserted = connection.execute(insert(Network).values(
                    name=NETWORK_NAME, driver="bridge", bridge=self.interface,
                    subnet=self.subnet, gateway=self.gateway, created_at=utcnow(),
                )).inserted_primary_key
                assert inserted is not None
                return int(inserted[0])
        except IntegrityError:
            return self._network_id()

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
        with self.reader.connect() as connection:
            existing = connection.execute(select(Endpoint.ip).where(
                (Endpoint.container_id == container_id) & (Endpoint.network_id == network_id)
            )).scalar_one_or_none()
        if existing is not None:
            return existing
        for _attempt in range(64):
            with self.reader.connect() as connection:
                used = set(connection.execute(
                    select(Endpoint.ip).where(Endpoint.network_id == network_id)).scalars())
            candidate = next((str(h) for h in self.network.hosts()
                              if str(h) != self.gateway and str(h) not in used), None)
            if candidate is None:
                raise BerthError(f"the bridge network {self.subnet} has no free address left")
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(Endpoint).values(
                        container_id=container_id, network_id=network_id, ip=candidate,
                        mac=bridge.mac_for(candidate), veth=bridge.veth_name(container_id),
                        netns=netns_name(container_id), created_at=utcnow(),
                    ))
                return candidate
            except IntegrityError:
                continue  # another orchestrator took it first
        raise BerthError("could not claim an address on the bridge: too much contention")

    def detach(self, container_id: str) -> None:
        with host_errors():
            bridge.detach(bridge.veth_name(container_id))
        with self.engine.begin() as connection:
            connection.execute(delete(Endpoint).where(
                Endpoint.container_id == container_id))

    def address_of(self, container_id: str) -> str | None:
        with self.reader.connect() as connection:
            return connection.execute(select(Endpoint.ip).where(
                Endpoint.container_id == container_id)).scalar_one_or_none()
