"""PID 1 in the guest: run the requested command, report its exit code, power off.

Why Python and not sh: argv and env arrive NUL-separated and are exec'd as-is (no shell
quoting), and as PID 1 we must reap orphaned processes (runc, shims, daemons tests start).
It runs under the host's own interpreter (``python -I -S``) and imports only builtin modules:
under TCG every imported module costs ~25x its host time (json+subprocess+ctypes ~ 2 s).
"""

import os
import select
import sys
import termios
import time

SHARE = "/run/berth-vm"
OUTPUT_TTY = "/dev/ttyS1"  # qemu copies it to its stdout: the host streams it
DRAIN_IDLE = 0.3  # after the command exits, stop copying once its pipe is idle this long


def debug(message: str) -> None:
    """With BERTH_VM_DEBUG (kernel loglevel=7), timestamped progress on the console."""
    with open("/proc/cmdline") as f:
        if "loglevel=7" not in f.read():
            return
    with open("/proc/uptime") as f:
        print(f"berth-vm runner [{f.read().split()[0]}] {message}", file=sys.stderr, flush=True)


def read_list(name: str) -> list[bytes]:
    """A NUL-separated list written by the harness (argv, env): no quoting, any bytes."""
    with open(f"{SHARE}/{name}", "rb") as f:
        data = f.read()
    return data.split(b"\0")[:-1] if data else []


def open_output() -> int:
    """ttyS1 in raw mode, so "\\n" is not turned into "\\r\\n" on its way to the host."""
    fd = os.open(OUTPUT_TTY, os.O_WRONLY | os.O_NOCTTY)
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.OPOST  # oflag: no output post-processing
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG)  # lflag
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked on a tty."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def exit_code_of(status: int) -> int:
    """waitpid status -> shell-style exit code (128+N when killed by signal N)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def spawn(argv: list[bytes], cwd: bytes, env: dict[bytes, bytes], out: int) -> int:
    """fork+exec the command with stdout/stderr on ``out``, stdin on /dev/null; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        import _signal  # builtin; `signal` would import enum. Python ignores SIGPIPE: undo it.

        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(2, f"berth-vm: cannot run {argv[0].decode(errors='replace')!r}: {exc}\n".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    os._exit(126)


def reap(main_pid: int, block: bool = False) -> int | None:
    """Reap exited children (we are init); the main command's exit code once it is reaped."""
    result = None
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return result
        if pid == 0:
            return result
        if pid == main_pid:
            return exit_code_of(status)


def run(argv: list[bytes], cwd: bytes, env: dict[bytes, bytes], out: int) -> int:
    """Run the command with its output copied to ``out``; return its exit code."""
    read_end, write_end = os.pipe()
    pid = spawn(argv, cwd, env, write_end)
    os.close(write_end)
    exit_code: int | None = None
    idle_since: float | None = None
    while True:
        ready, _, _ = select.select([read_end], [], [], 0.05)
        data = os.read(read_end, 65536) if ready else b""
        if data:
            write_all(out, data)
            idle_since = None
            continue
        if ready:  # EOF: nobody holds the pipe any more; just wait for the command
            while exit_code is None:
                exit_code = reap(pid, block=True)
            break
        if exit_code is None:
            exit_code = reap(pid)
        else:
            reap(pid)
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > DRAIN_IDLE:  # a daemon kept the pipe open
                break
    os.close(read_end)
    return exit_code


def report(name: str, text: str) -> None:
    """Write a file to the host share durably (we power off right after)."""
    tmp = f"{SHARE}/{name}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, f"{SHARE}/{name}")


def power_off() -> None:
    """Immediate power-off, which makes qemu exit (sysrq needs no ctypes nor binaries)."""
    os.sync()
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("o")
    time.sleep(60)


def main() -> None:
    try:
        argv = read_list("argv")
        env = dict(item.split(b"=", 1) for item in read_list("env"))
        with open(f"{SHARE}/cwd", "rb") as f:
            cwd = f.read()
        out = open_output()
        debug(f"running {argv!r}")
        exit_code = run(argv, cwd, env, out)
        debug(f"exit code {exit_code}")
        termios.tcdrain(out)  # every byte has left the UART before we power off
        report("exit_code", f"{exit_code}\n")
    except BaseException:  # PID 1 must never die: report, then power off anyway
        import traceback

        report("error", traceback.format_exc())
        traceback.print_exc()
    finally:
        power_off()


if __name__ == "__main__":
    main()
