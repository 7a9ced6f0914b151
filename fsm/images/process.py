"""What a container runs: the image's configuration overridden by the arguments of ``create``,
by Docker's rules (moby ``daemon/commit.go`` ``merge`` and ``mergeAndVerifyConfig``).

``image_config`` is the ``config`` object of an OCI image configuration::

    {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
     "Env": ["PATH=/usr/sbin:/usr/bin"], "WorkingDir": "/", "User": "", "StopSignal": "SIGQUIT",
     "ExposedPorts": {"80/tcp": {}}, "Labels": {"maintainer": "..."}}
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fsm import validation
from fsm.errors import ConfigError
from fsm.images.users import split_user_spec

DEFAULT_STOP_SIGNAL = int(signal.SIGTERM)
SIGNAL_FORMS = "a signal name or number, e.g. SIGTERM, TERM, 15, SIGRTMIN+3"


@dataclass(frozen=True)
class ProcessConfig:
    args: tuple[str, ...]
    #: in the image's order, then the container's new names
    env: dict[str, str]
    working_dir: str
    #: resolved against the image's /etc/passwd when the root filesystem is at hand
    user_spec: str
    stop_signal: int
    exposed_ports: tuple[str, ...]
    labels: dict[str, str]


def container_process(
    image_config: Mapping[str, Any],
    *,
    command: Sequence[str] | None,
    entrypoint: Sequence[str] | str | None,
    env: Mapping[str, str] | None,
    working_dir: str | None,
    user: str | None,
) -> ProcessConfig:
    """Merge; ``None`` (and ``""`` for ``working_dir`` and ``user``) means "the image's".

    A command replaces the image's Cmd (``[]`` is none, as in Docker). An entrypoint replaces
    the image's Entrypoint and drops its Cmd too (``docker run --entrypoint``); ``""``, ``[]`` or
    ``[""]`` is an empty entrypoint, so the command alone runs.
    """
    args = _entrypoint_and_cmd(image_config, command, entrypoint)
    user_spec = user or _image_string(image_config, "User")
    # Its form is checked now, before anything is made; its names need the image's /etc/passwd,
    # which is read when the root filesystem is mounted.
    split_user_spec(user_spec)
    return ProcessConfig(
        args=args,
        env={**_image_env(image_config), **validation.env(env)},
        working_dir=_working_dir(image_config, working_dir),
        user_spec=user_spec,
        stop_signal=_image_stop_signal(image_config),
        exposed_ports=tuple(validation.exposed_ports(list(_image_mapping(image_config,
                                                                         "ExposedPorts")))),
        labels=_image_labels(image_config),
    )


def stop_signal_number(value: object, field: str = "stop_signal") -> int:
    """``SIGTERM``, ``term``, ``15`` or ``SIGRTMIN+3`` → the signal's number on this host.

    Names are case-insensitive and ``SIG`` is optional, as in Docker's ``signal.ParseSignal``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ConfigError(field, value, SIGNAL_FORMS)
    if value.isascii() and value.isdigit():
        number = int(value)
    else:
        number = _signal_by_name(value.upper().removeprefix("SIG"))
    if number not in {int(s) for s in signal.valid_signals()}:
        raise ConfigError(field, value, SIGNAL_FORMS)
    return number


def _signal_by_name(name: str) -> int:
    base, sign, offset = name.partition("+") if "+" in name else name.partition("-")
    if base in ("RTMIN", "RTMAX"):
        if sign and not (offset.isascii() and offset.isdigit()):
            return -1
        step = int(offset or "0") * (1 if sign == "+" else -1)
        return int(getattr(signal, f"SIG{base}")) + step
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return -1


def _entrypoint_and_cmd(image_config: Mapping[str, Any], command: Sequence[str] | None,
                        entrypoint: Sequence[str] | str | None) -> tuple[str, ...]:
    given_cmd = _argv("command", command)
    if entrypoint is None:
        args = _image_argv(image_config, "Entrypoint") + (
            given_cmd or _image_argv(image_config, "Cmd"))
        missing = "a command: the image has neither Entrypoint nor Cmd"
    else:
        # The image's Cmd was written as arguments to the image's Entrypoint, so it goes too.
        args = _entrypoint(entrypoint) + given_cmd
        missing = "a command: the entrypoint given is empty, and replaces the image's Cmd too"
    if not args:
        raise ConfigError("command", command, missing)
    return args


def _entrypoint(value: object, field: str = "entrypoint") -> tuple[str, ...]:
    if isinstance(value, str):
        # Docker's --entrypoint is one program, never split on spaces.
        value = [value] if value else []
    # Docker's CLI sends --entrypoint "" as [""], which the daemon reads as no entrypoint.
    if isinstance(value, Sequence) and list(value) == [""]:
        return ()
    return _argv(field, value)


def _argv(field: str, value: object) -> tuple[str, ...]:
    """``None`` or ``[]``: nothing given (Docker: an empty Cmd is the image's)."""
    if value is None or (isinstance(value, Sequence) and not isinstance(value, str)
                         and not value):
        return ()
    try:
        return tuple(validation.command(value))
    except ConfigError as error:
        raise ConfigError(field, value, error.allowed) from None


def _image_argv(image_config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = image_config.get(key)
    if isinstance(value, str):
        raise ConfigError(f"image config {key}", value, "a list of strings or null")
    if key == "Entrypoint":
        return _entrypoint(value, f"image config {key}")
    return _argv(f"image config {key}", value)


def _image_stop_signal(image_config: Mapping[str, Any]) -> int:
    value = _image_value(image_config, "StopSignal", "")
    return stop_signal_number(value if value != "" else "SIGTERM", "image config StopSignal")


def _image_env(image_config: Mapping[str, Any]) -> dict[str, str]:
    entries = _image_value(image_config, "Env", [])
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        raise ConfigError("image config Env", entries, "a list of 'NAME=value' strings")
    env: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, str) or "\x00" in entry:
            raise ConfigError("image config Env", entry, "'NAME=value' strings without NUL")
        name, equals, value = entry.partition("=")
        # Images may carry names Docker accepts and berth's own env check does not (a '.' in
        # them); they are the image's, so kept. A bare NAME is no variable to a process: skipped.
        if equals and name:
            env[name] = value
    return env


def _working_dir(image_config: Mapping[str, Any], given: str | None) -> str:
    if given:
        return validation.working_dir(given)
    image_dir = _image_string(image_config, "WorkingDir")
    return validation.container_path("image config WorkingDir", image_dir) if image_dir else "/"


def _image_labels(image_config: Mapping[str, Any]) -> dict[str, str]:
    labels = _image_mapping(image_config, "Labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError("image config Labels", labels, "an object of strings to strings")
    return dict(labels)


def _image_mapping(image_config: Mapping[str, Any], key: str) -> Mapping[Any, Any]:
    value = _image_value(image_config, key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"image config {key}", value, "an object or null")
    return value


def _image_string(image_config: Mapping[str, Any], key: str) -> str:
    value = _image_value(image_config, key, "")
    if not isinstance(value, str):
        raise ConfigError(f"image config {key}", value, "a string or null")
    return value


def _image_value(image_config: Mapping[str, Any], key: str, default: object) -> Any:
    # Go writes an unset field as null or leaves it out; any other value is checked, not
    # read as unset because it happens to be false (a User of 0, an ExposedPorts of []).
    value = image_config.get(key)
    return default if value is None else value
