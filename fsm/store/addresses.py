"""The bridge network's row and its addresses (``networks``, ``endpoints``).

An address is taken by inserting its ``endpoints`` row: the unique (network, ip) constraint makes
two orchestrators sharing a database pick different addresses (the loser tries the next one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from fsm.store.engine import Connections
from models import Endpoint, Network, utcnow

networks = cast(Table, Network.__table__)
endpoints = cast(Table, Endpoint.__table__)


@dataclass(frozen=True)
class EndpointRecord:
    container_id: str
    network_id: int
    ip: str
    mac: str
    veth: str
    netns: str


class AddressStore:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def network_id(self, name: str) -> int | None:
        found: int | None = self.connections.scalar(
            select(networks.c.id).where(networks.c.name == name))
        return found

    def add_network(self, name: str, driver: str, bridge: str, subnet: str,
                    gateway: str) -> int | None:
        """The new network's id; None when another orchestrator added it first."""
        try:
            with self.connections.write() as connection:
                inserted = connection.execute(insert(networks).values(
                    name=name, driver=driver, bridge=bridge, subnet=subnet, gateway=gateway,
                    created_at=utcnow())).inserted_primary_key
        except IntegrityError:
            return None
        assert inserted is not None
        return int(inserted[0])

    def address_of(self, container_id: str, network_id: int | None = None) -> str | None:
        query = select(endpoints.c.ip).where(endpoints.c.container_id == container_id)
        if network_id is not None:
            query = query.where(endpoints.c.network_id == network_id)
        found: str | None = self.connections.scalar(query.limit(1))
        return found

    def used_addresses(self, network_id: int) -> set[str]:
        return set(self.connections.scalars(
            select(endpoints.c.ip).where(endpoints.c.network_id == network_id)))

    def claim(self, record: EndpointRecord) -> bool:
        """Insert the endpoint; False when its address was taken meanwhile."""
        try:
            with self.connections.write() as connection:
                connection.execute(insert(endpoints).values(
                    container_id=record.container_id, network_id=record.network_id,
                    ip=record.ip, mac=record.mac, veth=record.veth, netns=record.netns,
                    created_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def release(self, container_ids: Iterable[str]) -> None:
        with self.connections.write() as connection:
            connection.execute(delete(endpoints).where(
                endpoints.c.container_id.in_(list(container_ids))))
