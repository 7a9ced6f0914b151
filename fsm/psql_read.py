"""``berth ps``'s listing read on PostgreSQL through the ``psql`` client instead of psycopg.

Importing psycopg costs about 250 ms here, more than the whole of ``berth ps`` on SQLite; running
``psql`` (libpq's own client, Debian's ``postgresql-client``) for the listing costs about 20 ms.
So the console script's quick path (:mod:`fsm.quick_ps`) first runs one ``psql`` that reads the
schema revision and copies the listing out as CSV. Whenever that is not plainly possible (no
``psql``, a refused connection, a password it would have to ask for, another schema revision,
output it cannot parse), :func:`fetch_listing_through_psql` returns ``None`` and the quick path
reads through the driver (:mod:`fsm.direct_read`) instead.

The rows are the CSV's text: ``psql`` has no types to give. :mod:`fsm.quick_ps` decodes them
with the same calls as the driver's values (:mod:`fsm.stored` reads timestamps and JSON from
text, as SQLite returns them).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from collections.abc import Sequence

from fsm.direct_read import POSTGRESQL_CONNECT_TIMEOUT_S
from fsm.listing import list_statement
from fsm.revisions import head_revision

#: one line whatever ``alembic_version`` holds (none, one or several rows), equal to the head
#: revision only if that is its one row
_REVISION_QUERY = "SELECT string_agg(version_num, ' ') FROM alembic_version"

#: libpq's settings for what ``psql`` prints: UTF-8 whatever the locale or the server's encoding,
#: ISO timestamps (``2026-10-25 01:12:07.164178``) whatever the server's DateStyle; the driver's
#: connect budget
_LIBPQ_ENVIRONMENT = {"LC_ALL": "C", "PGCLIENTENCODING": "UTF8", "PGDATESTYLE": "ISO",
                      "PGCONNECT_TIMEOUT": str(POSTGRESQL_CONNECT_TIMEOUT_S)}

#: where Debian's postgresql-client-<version> packages install their binaries
_DEBIAN_CLIENTS = "/usr/lib/postgresql"


def fetch_listing_through_psql(conninfo: str, columns: str, states: Sequence[str] | None
                               ) -> list[list[str]] | None:
    """The rows of :func:`fsm.listing.list_statement` for ``columns`` (plain column names,
    comma-separated) and ``states``, read by ``psql`` from the libpq URI ``conninfo``: each
    value as text, NULL as ``""``. ``None`` if ``psql`` could not plainly read them."""
    psql = _psql_binary()
    if psql is None:
        return None
    statement = list_statement("postgresql", states, columns, inline_states=True)
    conninfo, password = split_password(conninfo)
    # -X: no ~/.psqlrc; -w: fail rather than prompt for a password; -A -t: the revision alone on
    # its line; ON_ERROR_STOP: a failed command makes the exit status nonzero
    argv = [psql, "-X", "-q", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
            "-c", _REVISION_QUERY, "-c", f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)"]
    try:
        # the connect budget bounds the whole run (the COPY itself takes a fraction of it): a
        # psql that hangs leaves the driver, then the orchestrator, to try and to explain
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              env={**os.environ, **_LIBPQ_ENVIRONMENT, **password},
                              timeout=POSTGRESQL_CONNECT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        # bytes decoded here rather than by subprocess: its text mode would turn a "\r\n"
        # inside a quoted field into "\n"
        revision, _, table = done.stdout.decode("utf-8").partition("\n")
        if revision != head_revision():
            return None
        rows = list(csv.reader(io.StringIO(table, newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    width = columns.count(",") + 1
    if any(len(row) != width for row in rows):
        return None
    return rows


def split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """``conninfo`` without its password, and the password as libpq's ``PGPASSWORD``: a
    command line is readable by every user of the host (``/proc/<pid>/cmdline``), a process's
    environment only by its owner."""
    scheme, sep, rest = conninfo.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return conninfo, {}
    from urllib.parse import unquote

    user, _, password = userinfo.partition(":")
    return f"{scheme}{sep}{user}@{host}{slash}{path}", {"PGPASSWORD": unquote(password)}


def _psql_binary() -> str | None:
    """The ``psql`` on ``PATH``; on Debian and Ubuntu, the binary of the newest installed
    client (the one its ``pg_wrapper`` would run) rather than the wrapper."""
    found = shutil.which("psql")
    if found is None or os.path.basename(os.path.realpath(found)) != "pg_wrapper":
        return found
    # pg_wrapper is a Perl script that costs ~55 ms to start here, five times the binary; and
    # where the URL names no host it aims psql at its own default cluster (PGHOST, PGPORT),
    # which psycopg does not: the binary reads the same database as the driver would
    try:
        versions = os.listdir(_DEBIAN_CLIENTS)
    except OSError:
        return found
    for version in sorted(versions, key=_version_key, reverse=True):
        binary = os.path.join(_DEBIAN_CLIENTS, version, "bin", "psql")
        if os.access(binary, os.X_OK):
            return binary
    return found


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))
