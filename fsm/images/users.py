"""The user a container's process runs as, from a ``--user`` spec and the image's /etc/passwd and
/etc/group, by the rules of runc's ``libcontainer/user.GetExecUser`` (which Docker uses).

>>> resolve_user("nobody", "nobody:x:65534:65534::/nonexistent:/bin/false", "")
ProcessUser(uid=65534, gid=65534, additional_gids=(), name='nobody', home='/nonexistent')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fsm.errors import ConfigError

#: (uid_t)-1 means "unchanged" to setuid(2) and chown(2), so the last usable id is one below it.
MAX_ID = 2**32 - 2
DECIMAL = re.compile(r"[0-9]+")
SPEC_FORMS = "'', NAME, UID, NAME:GROUP, UID:GID, NAME:GID or UID:GROUP"


@dataclass(frozen=True)
class ProcessUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    #: the name in the image's /etc/passwd; '' for a uid it does not list
    name: str
    #: the home directory /etc/passwd gives, '/' when it gives none (runc's default for HOME)
    home: str = "/"


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def split_user_spec(spec: object) -> tuple[str, str]:
    """``"name:group"`` → ``("name", "group")``; checks the form only, not the image's files."""
    if not isinstance(spec, str):
        raise ConfigError("user", spec, SPEC_FORMS)
    user, _, group = spec.partition(":")
    if ":" in group or "\x00" in spec or spec != spec.strip():
        raise ConfigError("user", spec, SPEC_FORMS)
    for part in (user, group):
        if DECIMAL.fullmatch(part):
            _bounded_id(spec, part)
    return user, group


def resolve_user(spec: str, passwd: str, group: str) -> ProcessUser:
    """The uid, gid and supplementary gids ``spec`` names in an image whose /etc/passwd and
    /etc/group hold ``passwd`` and ``group`` (pass ``""`` for a file the image lacks).

    A number is always a uid (gid), even when /etc/passwd (/etc/group) does not list it; a name
    must be listed. The gid is the user's from /etc/passwd (0 for an unlisted uid) unless the
    spec gives one. Supplementary groups are those /etc/group lists the user as a member of, and
    only when the spec names no group: runc's rule, for ``user:group`` means exactly that group.
    An empty spec (or user part, as in ``:GROUP``) is uid 0, with root's groups.
    """
    user_part, group_part = split_user_spec(spec)
    entry = _find_user(spec, user_part, parse_passwd(passwd))
    if entry is None:
        uid, gid, name, home = int(user_part or "0"), 0, "", "/"
    else:
        uid, gid, name, home = entry.uid, entry.gid, entry.name, entry.home or "/"
    groups = parse_group(group)
    if group_part:
        return ProcessUser(uid, _find_gid(spec, group_part, groups), (), name, home)
    member_of = (g.gid for g in groups if name and name in g.members)
    return ProcessUser(uid, gid, tuple(dict.fromkeys(member_of)), name, home)


def parse_passwd(text: str) -> list[PasswdEntry]:
    """``name:password:uid:gid:gecos:home:shell`` lines; comments, blank lines, lines with fewer
    than four fields or ids that are no numbers in range are skipped, not guessed at."""
    entries = []
    for fields in _records(text, minimum_fields=4):
        uid, gid = _id_field(fields[2]), _id_field(fields[3])
        if uid is not None and gid is not None:
            home = fields[5] if len(fields) > 5 else ""
            entries.append(PasswdEntry(fields[0], uid, gid, home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """``name:password:gid:member,member`` lines, skipped as in :func:`parse_passwd`."""
    entries = []
    for fields in _records(text, minimum_fields=3):
        gid = _id_field(fields[2])
        if gid is not None:
            listed = fields[3].split(",") if len(fields) > 3 else []
            members = tuple(m.strip() for m in listed if m.strip())
            entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _find_user(spec: str, user_part: str, entries: list[PasswdEntry]) -> PasswdEntry | None:
    # First match wins, as in runc, when a file lists a name or uid twice.
    if not user_part or DECIMAL.fullmatch(user_part):
        uid = int(user_part or "0")
        return next((e for e in entries if e.uid == uid), None)
    entry = next((e for e in entries if e.name == user_part), None)
    if entry is None:
        raise ConfigError("user", spec, f"a user the image's /etc/passwd lists ({user_part!r} is "
                          "not in it) or a numeric uid")
    return entry


def _find_gid(spec: str, group_part: str, entries: list[GroupEntry]) -> int:
    if DECIMAL.fullmatch(group_part):
        return int(group_part)
    entry = next((e for e in entries if e.name == group_part), None)
    if entry is None:
        raise ConfigError("user", spec, f"a group the image's /etc/group lists ({group_part!r} is "
                          "not in it) or a numeric gid")
    return entry.gid


def _bounded_id(spec: str, digits: str) -> int:
    value = int(digits)
    if value > MAX_ID:
        raise ConfigError("user", spec, f"uids and gids from 0 to {MAX_ID}")
    return value


def _id_field(text: str) -> int | None:
    text = text.strip()
    if not DECIMAL.fullmatch(text) or int(text) > MAX_ID:
        return None
    return int(text)


def _records(text: str, minimum_fields: int) -> list[list[str]]:
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= minimum_fields and fields[0]:
            records.append(fields)
    return records
