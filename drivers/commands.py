"""Every host command berth runs goes through :func:`run`: argv only (never a shell string), a
timeout, and failures turned into :class:`~drivers.errors.HostError` carrying argv and stderr."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import sh

from drivers.errors import CommandTimeout, HostError

DEFAULT_TIMEOUT = 30.0

_ANY_EXIT_CODE = tuple(range(256))

#: picks a more precise error class from a failure's stderr ("Device or resource busy" → DeviceBusy)
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
    # a watchdog thread kills the command at the deadline: sh's own ``_timeout`` polls every
    # 100 ms, which would add a tenth of a second to every command berth runs
    process = command(*args, _bg=True, _bg_exc=False, _ok_code=_ANY_EXIT_CODE, _in=input,
                      _err_to_out=False, _tty_out=False)
    watchdog = threading.Timer(timeout, _kill, (process,))
    watchdog.start()
    try:
        process.wait()
    except sh.SignalException as error:
        if watchdog.finished.is_set():
            raise CommandTimeout(f"{description}: no answer in {timeout:g}s",
                                 command=argv) from error
        raise HostError(f"{description}: killed by a signal", command=argv) from error
    finally:
        watchdog.cancel()
    if process.exit_code != 0:
        stderr = _text(process.stderr) or _text(process.stdout)
        error_class = classify(stderr) if classify else HostError
        raise error_class(description, command=argv, stderr=stderr)
    output = process.stdout
    return _text(output)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _kill(process: sh.RunningCommand) -> None:
    try:
        process.kill()
    except ProcessLookupError:
        pass  # it ended just now
