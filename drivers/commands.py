"""Every host command berth runs goes through :func:`run`: argv only (never a shell string), a
timeout, and failures turned into :class:`~drivers.errors.HostError` carrying argv and stderr."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sh

from drivers.errors import CommandTimeout, HostError

DEFAULT_TIMEOUT = 30.0

#: maps a failure's stderr to a more precise error class (e.g. "Device or resource busy" → DeviceBusy)
ErrorClassifier = Callable[[str], type[HostError]]


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "",
    classify: ErrorClassifier | None = None,
    input: str | None = None,
) -> str:
    """Run ``argv`` and return its stdout; raise :class:`HostError` (or the class ``classify``
    picks from stderr) on a non-zero exit, and :class:`CommandTimeout` after ``timeout`` seconds."""
    program, *args = argv
    description = what or f"{program} failed"
    try:
        command = sh.Command(program)
    except sh.CommandNotFound as error:
        raise HostError(f"{program} is not installed", command=argv) from error
    try:
        output = command(
            *args, _timeout=timeout, _in=input, _err_to_out=False, _tty_out=False
        )
    except sh.ErrorReturnCode as error:
        stderr = _text(error.stderr) or _text(error.stdout)
        error_class = classify(stderr) if classify else HostError
        raise error_class(description, command=argv, stderr=stderr) from error
    except sh.TimeoutException as error:
        raise CommandTimeout(f"{description}: no answer in {timeout:g}s", command=argv) from error
    return str(output)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
