"""berth's schema as typed SQLAlchemy 2 models. The schema is a public interface: operators read
it with plain SQL (``docs/database.md``). ``alembic`` migrations own the truth; ``alembic check``
proves these models and the migrations agree."""

from models.base import Base, utcnow
from models.container import (
    CONTAINER_STATES,
    Container,
    ContainerEvent,
    TransitionAudit,
)
from models.image import LAYER_KINDS, LAYER_STATES, Image, ImageName, Layer
from models.network import Endpoint, Network
from models.thin import ThinDevice, ThinPool

__all__ = [
    "CONTAINER_STATES",
    "LAYER_KINDS",
    "LAYER_STATES",
    "Base",
    "Container",
    "ContainerEvent",
    "Endpoint",
    "Image",
    "ImageName",
    "Layer",
    "Network",
    "ThinDevice",
    "ThinPool",
    "TransitionAudit",
    "utcnow",
]
