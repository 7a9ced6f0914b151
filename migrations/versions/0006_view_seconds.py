"""views: whole seconds of a SQLite timestamp without rounding its fraction

Revision ID: 0006_view_seconds
Revises: 0005_listing_indexes
Create Date: 2026-11-24

0004's views compute a time difference on SQLite as the difference of the whole seconds,
``strftime('%s', t)``, plus that of the six digits of microseconds. But SQLite parses a time to
the nearest millisecond first: ``05.999967`` became second 06, so a transition from
``05.999300`` to ``05.999967`` lasted 1000.667 ms in ``container_timeline`` instead of 0.667
(and ``container_status``'s ``lease_seconds_left`` and ``seconds_in_state`` could be a second
off the same way). The whole seconds are now taken from the text up to the seconds only.
PostgreSQL's arithmetic was right and is unchanged; its views are recreated all the same, from
the same definitions.
"""

from __future__ import annotations

from importlib import import_module

revision = "0006_view_seconds"
down_revision = "0005_listing_indexes"
branch_labels = None
depends_on = None

_views = import_module("migrations.versions.0004_views")


def _seconds_between(dialect: str, earlier: str, later: str) -> str:
    """0004's, with the whole seconds read from the first 19 characters, YYYY-MM-DD HH:MM:SS,
    which have no fraction to round."""
    seconds: str = _views._seconds_between(dialect, earlier, later,
                                           whole=lambda time: f"substr({time}, 1, 19)")
    return seconds


def upgrade() -> None:
    _views.drop_views()
    _views.create_views(_seconds_between)


def downgrade() -> None:
    _views.drop_views()
    _views.create_views()
