"""The only place berth writes SQL, all of it through SQLAlchemy.

- :mod:`fsm.store.engine`: engines and the pragmas berth relies on;
- :mod:`fsm.store.schema`: the schema revision (alembic's own API) and upgrades;
- :mod:`fsm.store.containers`: container rows: load, insert, the compare-and-swap with its audit
  and event rows, leases, listing;
- :mod:`fsm.store.events`: the event log and the transition history;
- :mod:`fsm.store.images`, :mod:`fsm.store.addresses`, :mod:`fsm.store.thin`: image records,
  bridge addresses, thin-device records.

Every other layer calls these modules' functions and never sees a statement. Nothing is imported
here: ``berth ps``'s SQLite fast path (:mod:`fsm.store.quick_listing`) must not pay for
SQLAlchemy.
"""
