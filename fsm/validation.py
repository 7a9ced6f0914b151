"""Checks on everything a caller passes to ``create``, before any side effect.

Each check raises :class:`~fsm.errors.ConfigError` naming the field, the value and what is
allowed, and returns the value in the normalized form stored in the row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fsm.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
IMAGE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:/-]{0,127}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALIAS_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
PORT_PATTERN = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")
SIZE_PATTERN = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
TMPFS_OPTIONS = {"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
                 "dirsync", "noatime", "atime", "nodiratime", "relatime", "strictatime"}
NETWORK_MODES = "'' (bridge), 'bridge', 'none', 'host' or 'container:<name|id>'"
IPC_MODES = "'' or 'private' (own IPC namespace), 'host' or 'container:<name|id>'"
RESTART_POLICIES = "'no', 'always', 'unless-stopped' or 'on-failure[:max-retries]'"


def _no_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise ConfigError(field, value, "text without NUL characters")


def container_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise ConfigError(
            "name", name,
            "1 to 128 of [a-zA-Z0-9_.-], starting with a letter or digit, without '..'",
        )
    return name


def image_name(name: object) -> str:
    if (not isinstance(name, str) or not IMAGE_NAME_PATTERN.match(name) or ".." in name
            or "//" in name or name.endswith("/")):
        raise ConfigError(
            "name", name,
            "an image name: 1 to 128 of [a-z0-9_.:/-], starting with a letter or digit, "
            "without '..' or '//'",
        )
    return name


def command(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError("command", value, "a non-empty list of strings, e.g. ['sh', '-c', 'x']")
    for part in value:
        if not isinstance(part, str):
            raise ConfigError("command", value, "a list of strings only")
        _no_nul("command", part)
    if not value[0]:
        raise ConfigError("command", value, "a list whose first item names a program")
    return list(value)


def env(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("env", value, "a dict of variable names to string values")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME_PATTERN.match(key):
            raise ConfigError("env", key, "variable names of letters, digits and '_', "
                              "not starting with a digit")
        if not isinstance(item, str):
            raise ConfigError(f"env[{key!r}]", item, "a string")
        _no_nul(f"env[{key!r}]", item)
        result[key] = item
    return result


def container_path(field: str, value: object) -> str:
    """An absolute path inside the container, without ``..``."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(field, value, "an absolute path inside the container")
    _no_nul(field, value)
    if ".." in value.split("/"):
        raise ConfigError(field, value, "a path without '..' components")
    return os.path.normpath(value)


def working_dir(value: object) -> str:
    if value is None or value == "":
        return "/"
    return container_path("working_dir", value)


def _reference_mode(field: str, value: str, allowed: str) -> str:
    target = value.removeprefix("container:")
    if not target:
        raise ConfigError(field, value, allowed)
    _no_nul(field, target)
    return value


def network_mode(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError("network_mode", value, NETWORK_MODES)
    if value in ("", "bridge", "none", "host"):
        return value
    if value.startswith("container:"):
        return _reference_mode("network_mode", value, NETWORK_MODES)
    raise ConfigError("network_mode", value, NETWORK_MODES)


def ipc_mode(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError("ipc_mode", value, IPC_MODES)
    if value in ("", "private"):
        return "private"
    if value == "host":
        return value
    if value.startswith("container:"):
        return _reference_mode("ipc_mode", value, IPC_MODES)
    raise ConfigError("ipc_mode", value, IPC_MODES)


def size_bytes(field: str, value: object) -> int:
    """``64m``, ``1g``, ``512k`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = SIZE_PATTERN.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(field, value, "a positive size such as 64m, 1g, 512k or bytes")
    unit = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(match.group(1)) * unit


def tmpfs(value: object) -> dict[str, str]:
    """``{"/run": "size=64m,noexec"}``: container paths to mount options."""
    if value is None:
        return {}
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = {path: "" for path in value}
    if not isinstance(value, Mapping):
        raise ConfigError("tmpfs", value, "a dict of container paths to mount options")
    result: dict[str, str] = {}
    for path, options in value.items():
        target = container_path("tmpfs", path)
        if not isinstance(options, str):
            raise ConfigError(f"tmpfs[{path!r}]", options, "a string of comma-separated options")
        for option in filter(None, options.split(",")):
            key, _, argument = option.partition("=")
            if key == "size":
                size_bytes(f"tmpfs[{path!r}] size", argument)
            elif key == "mode":
                if not re.fullmatch(r"[0-7]{3,4}", argument):
                    raise ConfigError(f"tmpfs[{path!r}] mode", argument, "octal, e.g. 1777")
            elif key not in TMPFS_OPTIONS or argument:
                raise ConfigError(
                    f"tmpfs[{path!r}]", option,
                    f"size=N, mode=OCTAL or one of {', '.join(sorted(TMPFS_OPTIONS))}",
                )
        result[target] = options
    return result


def links(value: object) -> list[dict[str, str]]:
    """``["db:database", "cache"]`` → ``[{"container": "db", "alias": "database"}, ...]``."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError("links", value, "a list of 'name:alias' strings")
    result = []
    for link in value:
        if not isinstance(link, str) or not link:
            raise ConfigError("links", link, "'name:alias' or 'name'")
        target, _, alias = link.partition(":")
        alias = alias or target
        if not NAME_PATTERN.match(target) or not ALIAS_PATTERN.match(alias):
            raise ConfigError("links", link, "'name:alias' with names of [a-zA-Z0-9_.-]")
        result.append({"container": target, "alias": alias})
    return result


def restart_policy(value: object) -> dict[str, Any]:
    """``"on-failure:3"`` → ``{"name": "on-failure", "maximum_retry_count": 3}``."""
    if not isinstance(value, str):
        raise ConfigError("restart_policy", value, RESTART_POLICIES)
    name, _, count = value.partition(":")
    if name in ("no", "always", "unless-stopped") and not count:
        return {"name": name, "maximum_retry_count": 0}
    if name == "on-failure":
        if not count:
            return {"name": name, "maximum_retry_count": 0}
        if count.isdigit() and 0 < int(count) <= 1_000_000:
            return {"name": name, "maximum_retry_count": int(count)}
    raise ConfigError("restart_policy", value, RESTART_POLICIES)


def exposed_ports(value: object) -> list[str]:
    """``["5432/tcp", "53/udp", "80"]`` → ``["5432/tcp", "53/udp", "80/tcp"]``."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError("exposed_ports", value, "a list such as ['5432/tcp', '53/udp']")
    result = []
    for port in value:
        match = PORT_PATTERN.match(port) if isinstance(port, str) else None
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ConfigError("exposed_ports", port, "PORT or PORT/PROTO, PORT in 1-65535, "
                              "PROTO tcp, udp or sctp")
        result.append(f"{int(match.group(1))}/{match.group(2) or 'tcp'}")
    return result


def mounts(value: object) -> list[dict[str, Any]]:
    """Bind mounts: ``[{"source": "/host/dir", "target": "/data", "read_only": True}]``.

    The source must exist now; the target is an absolute container path without ``..``.
    """
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError("mounts", value, "a list of {'source', 'target', 'read_only'} dicts")
    result = []
    for mount in value:
        if not isinstance(mount, Mapping) or set(mount) - {"source", "target", "read_only"}:
            raise ConfigError("mounts", mount, "a dict with keys source, target, read_only")
        source = mount.get("source")
        if not isinstance(source, str) or not os.path.isabs(source):
            raise ConfigError("mounts.source", source, "an absolute path on the host")
        _no_nul("mounts.source", source)
        if not os.path.exists(source):
            raise ConfigError("mounts.source", source, "a path that exists on the host")
        target = container_path("mounts.target", mount.get("target"))
        if target == "/":
            raise ConfigError("mounts.target", target, "a path below / in the container")
        read_only = mount.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ConfigError("mounts.read_only", read_only, "True or False")
        result.append({"source": os.path.realpath(source), "target": target,
                       "read_only": read_only})
    return result
