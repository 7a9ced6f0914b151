"""One database, as the layers above use it: its engine, one connection per operation, and a
store per kind of record."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fsm.container import LiveContainer
from fsm.errors import AmbiguousReference, ConfigError, NoSuchContainer
from fsm.store.addresses import AddressStore
from fsm.store.containers import ContainerStore
from fsm.store.engine import Connections, open_engine
from fsm.store.events import EventStore
from fsm.store.images import ImageStore
from fsm.store.layers import LayerStore
from fsm.store.revision import HEAD
from fsm.store.thin import SQLDeviceMetadataStore

_HEX = frozenset("0123456789abcdef")
_STORED_REVISION = text("SELECT version_num FROM alembic_version")


class Database:
    """``Database(url)``: the engine is opened at once, nothing is read until asked."""

    def __init__(self, url: str, *, create_sqlite_file: bool = False) -> None:
        self.url = url
        self.engine = open_engine(url, create_sqlite_file=create_sqlite_file)
        self.connections = Connections(self.engine)
        self.containers = ContainerStore(self.connections)
        self.events = EventStore(self.connections)
        self.images = ImageStore(self.connections)
        self.layers = LayerStore(self.connections)
        self.addresses = AddressStore(self.connections)

    @cached_property
    def thin(self) -> SQLDeviceMetadataStore:
        """The devicemapper driver's records."""
        return SQLDeviceMetadataStore(self.engine)

    def at_schema_head(self) -> bool:
        """Whether the database is at the revision this berth was built for
        (:data:`fsm.store.revision.HEAD`); False for an empty or unreadable one, which
        :func:`fsm.store.schema.ensure_schema` then handles."""
        try:
            stored = self.connections.scalar(_STORED_REVISION)
        except DBAPIError:
            return False
        return bool(stored == HEAD)

    def resolve(self, ref: str) -> LiveContainer:
        """The container ``ref`` names: a full id or a name (one query), else a unique id
        prefix."""
        check_ref(ref)
        found = self.containers.load(ref)
        if found is None:
            found = self.containers.load(self.resolve_prefix(ref))
        if found is None:
            raise NoSuchContainer(ref)
        return found

    def resolve_id(self, ref: str) -> str:
        """Like :meth:`resolve`, only the id."""
        check_ref(ref)
        exact = self.containers.id_of(ref)
        return exact if exact is not None else self.resolve_prefix(ref)

    def resolve_any_id(self, ref: str) -> str:
        """Like :meth:`resolve_id`, but a full id of a removed container is accepted too (its
        events and history outlive it)."""
        try:
            return self.resolve_id(ref)
        except NoSuchContainer:
            if len(ref) == 64 and _HEX.issuperset(ref):
                return ref
            raise

    def resolve_prefix(self, ref: str) -> str:
        if not _HEX.issuperset(ref):
            raise NoSuchContainer(ref)
        matches = self.containers.ids_with_prefix(ref)
        if not matches:
            raise NoSuchContainer(ref)
        if len(matches) > 1:
            raise AmbiguousReference(ref, matches)
        return matches[0]

    def close(self) -> None:
        self.engine.dispose()


def check_ref(ref: object) -> None:
    if not isinstance(ref, str) or not ref or len(ref) > 128 or "\x00" in ref:
        raise ConfigError("ref", ref, "a container name, full id or unique id prefix")
