"""Networks and the endpoints (addresses) containers hold on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    driver: Mapped[str] = mapped_column(String(16))
    #: the host bridge interface, e.g. ``berth0``
    bridge: Mapped[str] = mapped_column(String(15))
    #: CIDR, e.g. ``10.88.0.0/16``
    subnet: Mapped[str] = mapped_column(String(43))
    gateway: Mapped[str] = mapped_column(String(39))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Endpoint(Base):
    """A container's address on a network. The unique (network, ip) pair is what guarantees that
    two orchestrators sharing one database never hand out the same address."""

    __tablename__ = "endpoints"
    __table_args__ = (
        UniqueConstraint("network_id", "ip"),
        UniqueConstraint("container_id", "network_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    container_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("containers.id", ondelete="CASCADE")
    )
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"))
    ip: Mapped[str] = mapped_column(String(39))
    mac: Mapped[str] = mapped_column(String(17))
    #: host side of the veth pair
    veth: Mapped[str] = mapped_column(String(15))
    netns: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
