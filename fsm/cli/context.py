"""What every command gets: the global options, and the orchestrator built on first use (a
command that needs none, ``graph`` or ``db``, never pays for SQLAlchemy, the drivers or
recovery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator


class Context:
    def __init__(self, root: str | None, database_url: str | None, storage: str | None,
                 runtime: str, debug: bool) -> None:
        self.root = root
        self.database_url = database_url
        self.storage = storage
        self.runtime = runtime
        self.debug = debug
        #: an orchestrator reconciles on opening; ``berth recover`` does it itself, to report it
        self.recover_on_open = True
        self._orc: Orchestrator | None = None

    @property
    def orc(self) -> Orchestrator:
        if self._orc is None:
            from fsm.orchestrator import Orchestrator

            self._orc = Orchestrator(database_url=self.database_url, root=self.root,
                                     storage=self.storage, runtime=self.runtime,
                                     recover=self.recover_on_open)
        return self._orc

    def reader(self) -> Orchestrator:
        """The orchestrator for a command that only reads (``ps``, ``inspect``, ``logs``,
        ``history``, ``events``): it does not reconcile the node first, as listing has no side
        effect and must not wait on one."""
        if self._orc is None:
            self.recover_on_open = False
        return self.orc


pass_context = click.make_pass_decorator(Context)
