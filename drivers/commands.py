"""Every host command berth runs goes through :func:`run`: argv only (never a shell string), a
timeout, and failures turned into :class:`~drivers.errors.HostError` carrying argv and stderr,
so an operator reading an error knows what ran and what it said."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sh

from drivers.errors import CommandTimeout, HostError

#: Host commands that only talk to the kernel answer in milliseconds; mkfs, tar, cp and
#: resize2fs write data and may take long on a slow disk (or in an emulated VM).
QUICK = 30.0
#: prctl(2) option: the signal a child gets when its parent dies
PR_SET_PDEATHSIG = 1
SLOW = 600.0

#: Maps a failed command's (argv, stderr, exit status) to a more precise error, such as
#: ``DeviceBusy`` for "Device or resource busy"; ``None`` keeps the generic one.
ErrorMapper = Callable[[Sequence[str], str, int], HostError | None]


def run(
    argv: Sequence[str],
    timeout: float = QUICK,
    *,
    what: str = "",
    ok_codes: Sequence[int] = (0,),
    map_error: ErrorMapper | None = None,
    input: str | None = None,
    on_line: Callable[[str], None] | None = None,
    die_with_parent: bool = False,
) -> str:
    """Run ``argv`` and return its stdout; raise :class:`HostError` (or what ``map_error``
    picks) on a failure, :class:`CommandTimeout` after ``timeout`` seconds.

    ``on_line`` gets each line of stdout as it comes (for progress); stdout is then not
    returned. ``die_with_parent``: the kernel kills the command if berth dies first (a long
    copy must not outlive a berth killed under it and write into what recovery removes).

    Example: ``run(["ip", "netns", "add", name], what=f"cannot create {name}")``.
    """
    args = [str(a) for a in argv]
    try:
        command = sh.Command(args[0])
    except sh.CommandNotFound:
        raise HostError(f"{args[0]} is not installed (not found on PATH)", command=args,
                        errno=errno.ENOENT) from None
    # sh's own ``_timeout`` polls every 100 ms and so adds a tenth of a second to every
    # command; a timer that kills the command when its time is up costs nothing until then
    expired = threading.Event()
    timer: threading.Timer | None = None
    try:
        streaming: dict[str, Any] = {} if on_line is None else {
            "_out": lambda line: on_line(_text(line).rstrip("\n"))}
        if die_with_parent:
            streaming["_preexec_fn"] = _die_with_parent
        process = command(*args[1:], _bg=True, _bg_exc=False, _ok_code=list(ok_codes),
                          _in=input, _err_to_out=False, _tty_out=False, **streaming)
        timer = threading.Timer(timeout, _kill, (process, expired))
        timer.daemon = True
        timer.start()
        process.wait()
    except (sh.ErrorReturnCode, sh.SignalException) as failure:
        if expired.is_set():
            raise CommandTimeout(f"{what or args[0]}: no answer within {timeout:g}s",
                                 command=args) from None
        stderr = _text(failure.stderr) or _text(failure.stdout)
        status = int(failure.exit_code)
        mapped = map_error(args, stderr, status) if map_error is not None else None
        if mapped is not None:
            raise mapped from None
        raise HostError(what or f"{args[0]} failed with exit status {status}", command=args,
                        stderr=stderr) from None
    finally:
        if timer is not None:
            timer.cancel()
    return _text(process.stdout)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent thread dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill(process: sh.RunningCommand, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(OSError):
        process.kill()


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output
