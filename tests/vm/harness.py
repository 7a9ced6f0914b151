"""Run a command inside a throw-away qemu VM booted from the host's own Debian kernel.

Why: the host kernel of our dev/CI machines may lack device-mapper (dm-thin), which the
devicemapper storage driver needs for real. The VM boots Debian's stock kernel (software
emulation, TCG) over the host's root filesystem shared read-only via virtio-9p, so the guest
sees exactly the host's Python, packages and repo checkout without building any image.

Guest layout (see tests/vm/README.md):

* ``/`` is an overlay: host ``/`` over 9p (read-only lower) + tmpfs upper in guest RAM, so
  the whole tree (the cwd checkout, ``/root``, ``/var/lib`` ...) is writable in the guest and
  nothing is ever written back to the host.
* ``/run/berth-vm`` is a second, writable 9p share of a host temp dir: it carries the request
  (argv/env NUL-separated, cwd) in and the exit code out.
* The command's stdout+stderr goes to the guest's second serial port (ttyS1) which qemu writes
  to its stdout, so it streams live and is free of kernel messages (those go to ttyS0, kept in
  a log file shown only when the VM fails).

Stdlib only: this module is imported by ``tests/vm/run.py`` and by pytest fixtures.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import hashlib
import lzma
import os
import re
import select
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

HERE = Path(__file__).resolve().parent
GUEST_DIR = HERE / "guest"

CACHE_DIR = Path(os.environ.get("BERTH_VM_CACHE", "/var/tmp/berth-vm-cache"))
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
QEMU = os.environ.get("BERTH_VM_QEMU", "qemu-system-x86_64")

# Modules the initramfs loads (with their dependencies from modules.dep/modules.softdep):
# virtio/9p/overlay to mount the root, loop + dm-thin for the tests. Loading from the
# initramfs is ~3x faster than from the 9p root; anything else (ext4, veth, bridge...) the
# kernel autoloads through the host's /sbin/modprobe, since /lib/modules is shared.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "loop", "dm_thin_pool")

# Host variables the guest command inherits besides the caller's ``env=``: PATH (and pyenv's
# and venv's variables) so that ``python3`` resolves as on the host, CI so tests know where they
# run, PYTHONUNBUFFERED so Python's output streams live instead of arriving at exit.
PASSTHROUGH_ENV = (
    *("PATH", "PYENV_ROOT", "PYENV_VERSION", "VIRTUAL_ENV"),
    *("CI", "PYTHONUNBUFFERED", "LANG", "LC_ALL", "TZ"),
)

EXIT_TIMEOUT = 124  # run.py's exit code when the VM timed out (as timeout(1))
EXIT_VM_ERROR = 125  # run.py's exit code when the VM failed (as `docker run`)


class VMError(RuntimeError):
    """The VM itself failed (no boot, crash, unreadable exit code): not the command's fault."""

    def __init__(self, message: str, output: str = "", console: str = "") -> None:
        super().__init__(message)
        self.output = output
        self.console = console


class VMTimeout(VMError):
    """The VM was killed after the caller's timeout."""


@dataclasses.dataclass(frozen=True)
class VMResult:
    """What the guest command did: its exit code (128+N if killed by signal N) and output."""

    exit_code: int
    output: str


# --------------------------------------------------------------------------------------------
# Kernel: find it, and extract an uncompressed vmlinux (TCG decompressing xz costs seconds).
# --------------------------------------------------------------------------------------------


def _version_key(version: str) -> list[tuple[int, str]]:
    """Sort key so that 6.1.0-56 > 6.1.0-9 (numeric parts compare as numbers)."""
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+~]", version)]


def find_kernel() -> tuple[str, Path]:
    """Return (version, bzImage path) of the newest kernel that has both modules and a vmlinuz.

    ``BERTH_VM_KERNEL_VERSION`` picks a specific one. Not hardcoded: CI images upgrade kernels.
    """
    wanted = os.environ.get("BERTH_VM_KERNEL_VERSION")
    candidates = []
    for moddir in Path("/lib/modules").glob("*"):
        image = Path("/boot") / f"vmlinuz-{moddir.name}"
        if (moddir / "modules.dep").is_file() and image.is_file():
            candidates.append((moddir.name, image))
    if wanted:
        candidates = [c for c in candidates if c[0] == wanted]
    if not candidates:
        raise VMError(
            "no usable kernel: need /boot/vmlinuz-V and /lib/modules/V/modules.dep "
            f"(apt-get install $(cat {HERE / 'packages.txt'}))"
        )
    return max(candidates, key=lambda c: _version_key(c[0]))


def _bzimage_payload(image: bytes) -> bytes:
    """The compressed kernel inside a bzImage, located via the x86 boot protocol header.

    Falls back to scanning for a compressor magic if the header is not a bzImage >= 2.08.
    """
    if image[0x202:0x206] == b"HdrS" and struct.unpack_from("<H", image, 0x206)[0] >= 0x208:
        setup_sects = image[0x1F1] or 4
        offset, length = struct.unpack_from("<II", image, 0x248)
        start = (setup_sects + 1) * 512 + offset
        return image[start : start + length]
    for magic in (b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x1f\x8b\x08"):
        pos = image.find(magic)
        if pos >= 0:
            return image[pos:]
    raise VMError("cannot find the compressed payload in the kernel image")


def _decompress(payload: bytes) -> bytes:
    """Decompress a kernel payload (xz, zstd, gzip, bzip2 or lzma), ignoring trailing bytes."""
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(wbits=31).decompress(payload)
    if payload.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(payload)
    if payload.startswith(b"\x28\xb5\x2f\xfd"):  # no zstd in the 3.11 stdlib: use the CLI
        if not shutil.which("zstd"):
            raise VMError("the kernel is zstd-compressed: apt-get install zstd")
        proc = subprocess.run(["zstd", "-dcq"], input=payload, capture_output=True)
        if not proc.stdout:
            raise VMError(f"zstd failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout
    if payload[:3] == b"\x5d\x00\x00":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    raise VMError(f"unknown kernel compression (magic {payload[:6].hex()})")


def extract_vmlinux(bzimage: Path) -> bytes:
    """The uncompressed ELF kernel; qemu boots it directly through its PVH entry point."""
    elf = _decompress(_bzimage_payload(bzimage.read_bytes()))
    if not elf.startswith(b"\x7fELF"):
        raise VMError(f"{bzimage}: decompressed payload is not an ELF file")
    return elf


# --------------------------------------------------------------------------------------------
# Initramfs: busybox + a few modules + guest/init.sh, written as a cpio "newc" archive.
# --------------------------------------------------------------------------------------------


def _module_name(path: str) -> str:
    """kernel/net/9p/9pnet_virtio.ko.xz -> 9pnet_virtio (modprobe treats - and _ alike)."""
    return re.sub(r"\.ko(\.[a-z]+)?$", "", Path(path).name).replace("-", "_")


def _softdeps(moddir: Path) -> dict[str, list[str]]:
    """module -> modules it wants loaded before it ("softdep X pre: Y", Y maybe an alias).

    insmod, unlike modprobe, knows nothing of these: libcrc32c fails without crc32c.
    """
    aliases: dict[str, list[str]] = {}
    alias_file = moddir / "modules.alias"
    for line in alias_file.read_text().splitlines() if alias_file.exists() else []:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias":
            aliases.setdefault(parts[1], []).append(parts[2].replace("-", "_"))
    result: dict[str, list[str]] = {}
    softdep_file = moddir / "modules.softdep"
    for line in softdep_file.read_text().splitlines() if softdep_file.exists() else []:
        parts = line.split()
        if len(parts) < 3 or parts[0] != "softdep" or "pre:" not in parts:
            continue
        pre = parts[parts.index("pre:") + 1 :]
        pre = pre[: pre.index("post:")] if "post:" in pre else pre
        name = parts[1].replace("-", "_")
        result[name] = [m for p in pre for m in aliases.get(p, [p.replace("-", "_")])]
    return result


def module_load_order(moddir: Path, wanted: Iterable[str]) -> list[Path]:
    """Module files to insmod, dependencies (hard, then soft "pre:") first; built-ins skipped."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        deps[_module_name(target)] = (target, rest.split())
    builtin_file = moddir / "modules.builtin"
    builtin = (
        {_module_name(x) for x in builtin_file.read_text().split()}
        if builtin_file.exists()
        else set()
    )
    softdeps = _softdeps(moddir)

    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, required: bool = True) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if name not in deps:
            if required:
                raise VMError(f"kernel module {name} not found in {moddir}/modules.dep")
            return
        seen.add(name)
        target, needs = deps[name]
        for need in reversed(needs):  # modules.dep lists the deepest dependency last
            visit(_module_name(need))
        for soft in softdeps.get(name, []):
            visit(soft, required=False)
        order.append(moddir / target)

    for name in wanted:
        visit(name)
    return order


def _read_module(path: Path) -> bytes:
    """Module bytes, decompressed: busybox insmod may not understand .ko.xz/.ko.zst."""
    if path.suffix in (".xz", ".gz", ".zst"):
        return _decompress(path.read_bytes())
    return path.read_bytes()


class Cpio:
    """Minimal writer of the "newc" cpio format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self._ino += 1
        self._parts += [header, encoded, b"\0" * (-(len(header) + len(encoded)) % 4)]
        self._parts += [data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def getvalue(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


def build_initramfs(version: str) -> bytes:
    """An initramfs that mounts the host root over 9p and switches into it (guest/init.sh)."""
    busybox = next((Path(p) for p in BUSYBOX_CANDIDATES if Path(p).is_file()), None)
    if busybox is None:
        raise VMError("no static busybox: apt-get install busybox-static")
    modules = module_load_order(Path("/lib/modules") / version, INITRAMFS_MODULES)
    archive = Cpio()
    for directory in ("bin", "dev", "proc", "sys", "lower", "rw", "newroot", "modules"):
        archive.directory(directory)
    archive.chardev("dev/console", 5, 1)  # so init has stdio before devtmpfs is mounted
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.file("init", (GUEST_DIR / "init.sh").read_bytes(), 0o755)
    names = []
    for index, module in enumerate(modules):
        names.append(f"{index:02d}-{_module_name(module.name)}.ko")
        archive.file(f"modules/{names[-1]}", _read_module(module))
    archive.file("modules/order", "".join(f"{n}\n" for n in names).encode())
    return archive.getvalue()


# --------------------------------------------------------------------------------------------
# Cache: vmlinux and initramfs are rebuilt only when the kernel or our inputs change.
# --------------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via rename so concurrent test sessions never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _fingerprint(paths: Iterable[Path], salt: bytes = b"") -> str:
    """Short hash of files' identity (path, size, mtime) and ``salt``: a cache key."""
    h = hashlib.sha256(salt)
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _prune_cache(kdir: Path, keep: set[Path], max_age: float = 86400.0) -> None:
    """Drop cache files of older inputs (a day unused): each is ~70 MB. A running qemu
    holds its files open, so deleting them under another session is harmless."""
    now = time.time()
    for path in kdir.iterdir():
        try:
            if path not in keep and now - path.stat().st_atime > max_age:
                path.unlink()
        except OSError:
            pass


def boot_files(version: str, bzimage: Path) -> tuple[Path, Path]:
    """(vmlinux, initramfs) paths under the cache dir, building whichever is missing."""
    busybox = next((Path(p) for p in BUSYBOX_CANDIDATES if Path(p).is_file()), Path("/bin/busybox"))
    kdir = CACHE_DIR / version
    vmlinux = kdir / f"vmlinux-{_fingerprint([bzimage])}"
    if not vmlinux.exists():
        _write_atomic(vmlinux, extract_vmlinux(bzimage))
    moddep = Path("/lib/modules") / version / "modules.dep"
    salt = (GUEST_DIR / "init.sh").read_bytes() + repr(INITRAMFS_MODULES).encode()
    initramfs = kdir / f"initramfs-{_fingerprint([moddep, busybox], salt)}.cpio"
    if not initramfs.exists():
        _write_atomic(initramfs, build_initramfs(version))
    _prune_cache(kdir, {vmlinux, initramfs})
    return vmlinux, initramfs


# --------------------------------------------------------------------------------------------
# The request the guest runner reads, and the qemu command line.
# --------------------------------------------------------------------------------------------

_CGROUP_NOISE = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "seclabel"}


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(fstype, mountpoint, options) of the host's cgroup mounts, so the guest mirrors them.

    Why mirror: berth's runtime driver and runc then see the same cgroup layout (v1, hybrid or
    v2) in the VM as on the host. A host without cgroup mounts gets plain cgroup2.
    """
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, target, fstype, opts = line.split()[:4]
        if target.startswith("/sys/fs/cgroup") and fstype in ("tmpfs", "cgroup", "cgroup2"):
            kept = [
                o for o in opts.split(",") if o not in _CGROUP_NOISE and not o.startswith("size=")
            ]
            if fstype == "cgroup" and all(o.startswith("name=") for o in kept):
                kept.insert(0, "none")  # a named hierarchy without controllers (name=systemd)
            mounts.append((fstype, target, ",".join(kept) or "defaults"))
    return mounts or [("cgroup2", "/sys/fs/cgroup", "defaults")]


def guest_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The command's environment: a clean root login plus a few host variables and ``extra``."""
    env = {
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/sh",
        "TERM": "dumb",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DM_DISABLE_UDEV": "1",  # no udevd in the guest: dmsetup makes /dev/mapper/* itself
        "BERTH_IN_VM": "1",
    }
    env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    env.update(extra or {})
    return env


def _nul_list(items: Iterable[str]) -> bytes:
    """NUL-terminated records: the one encoding that needs no quoting for argv and env."""
    data = [os.fsencode(item) for item in items]
    if any(b"\0" in item for item in data):
        raise ValueError("argv and env must not contain NUL bytes")
    return b"".join(item + b"\0" for item in data)


def write_share(share: Path, argv: list[str], cwd: str, env: dict[str, str]) -> None:
    """Fill the writable 9p share with what init.sh and runner.py read.

    argv/env travel NUL-separated and are exec'd by guest/runner.py, never through a shell.
    """
    (share / "argv").write_bytes(_nul_list(argv))
    (share / "env").write_bytes(_nul_list(f"{k}={v}" for k, v in env.items()))
    (share / "cwd").write_bytes(os.fsencode(cwd))
    (share / "cgroups").write_text("".join(f"{t} {p} {o}\n" for t, p, o in host_cgroup_mounts()))
    # The runner runs under the very interpreter running us: it exists at the same path in
    # the guest, since the guest's root is the host's.
    (share / "vm.env").write_text(
        f"BERTH_VM_PYTHON={shlex.quote(os.path.realpath(sys.executable))}\n"
    )
    shutil.copy(GUEST_DIR / "runner.py", share / "runner.py")


def qemu_argv(
    vmlinux: Path, initramfs: Path, share: Path, console_log: Path, memory_mb: int, cpus: int
) -> list[str]:
    """qemu command line: TCG (the host's /dev/kvm cannot run this kernel), two 9p shares,
    ttyS0 = kernel console into a log file, ttyS1 = the command's output on qemu's stdout."""
    # Kernel errors and panics still reach the console log; BERTH_VM_DEBUG shows everything.
    verbosity = "loglevel=7" if os.environ.get("BERTH_VM_DEBUG") else "quiet loglevel=3"
    cmdline = " ".join(
        [
            "console=ttyS0",
            verbosity,
            "panic=-1",  # reboot at once on panic; with -no-reboot qemu then exits
            "mitigations=off",  # emulated CPU: speculation mitigations only cost time
            "pci=noacpi",  # ACPI IRQ-link evaluation for 2 virtio devices costs ~1.3 s in TCG
            "cryptomgr.notests",  # crypto self-tests: ~0.5 s
            "random.trust_cpu=on",
            "8250.nr_uarts=2",
            "i8042.noaux",
            "rdinit=/init",
            os.environ.get("BERTH_VM_KERNEL_ARGS", ""),  # e.g. "initcall_debug" when profiling
        ]
    )
    return [
        QEMU,
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-machine", "pc",
        "-accel", os.environ.get("BERTH_VM_ACCEL", "tcg"),  # kvm where /dev/kvm can run it
        "-cpu", "max",
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-kernel", str(vmlinux),
        "-initrd", str(initramfs),
        "-append", cmdline,
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=xfer,path={share},security_model=none",
        "-device", "virtio-9p-pci,fsdev=xfer,mount_tag=xfer",
        "-chardev", f"file,id=console,path={console_log}",
        "-serial", "chardev:console",
        "-chardev", "stdio,id=output,signal=off",
        "-serial", "chardev:output",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Running it.
# --------------------------------------------------------------------------------------------


def _pump(
    proc: subprocess.Popen[bytes], deadline: float, stream: BinaryIO | None
) -> tuple[bytes, bool]:
    """Copy qemu's stdout (the command's output) to ``stream`` until qemu exits.

    Returns (all output, timed_out); on timeout qemu is killed.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            proc.wait()
            return b"".join(chunks), False
        chunks.append(data)
        if stream is not None:
            stream.write(data)
            stream.flush()


def _tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_in_vm(
    argv: list[str],
    *,
    cwd: str,
    memory_mb: int = 2048,
    timeout: float = 1500,
    env: dict[str, str] | None = None,
    cpus: int = 1,
    stream: BinaryIO | None = None,
) -> VMResult:
    """Boot a VM, run ``argv`` in ``cwd`` as root, power off; return its exit code and output.

    ``stream`` (e.g. ``sys.stdout.buffer``) receives the output live. ``cpus`` > 1 only pays
    off for parallel guest work: each vCPU is a host thread, SMP boot and TLB shootdowns cost.
    Raises VMTimeout after ``timeout`` seconds and VMError if the VM fails or the exit code
    cannot be read. Booting costs ~10 s and guest CPU is ~15-25x slower than the host's:
    boot once per test session, not per test.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    cwd = os.path.realpath(cwd)
    if not os.path.isdir(cwd):
        raise ValueError(f"cwd {cwd!r} is not a directory")
    if shutil.which(QEMU) is None:
        raise VMError(f"{QEMU} not found: apt-get install $(cat {HERE / 'packages.txt'})")
    version, bzimage = find_kernel()
    vmlinux, initramfs = boot_files(version, bzimage)

    workdir = Path(tempfile.mkdtemp(prefix="berth-vm-"))
    try:
        share = workdir / "share"
        share.mkdir()
        console_log = workdir / "console.log"
        write_share(share, list(argv), cwd, guest_env(env))
        with open(workdir / "qemu.stderr", "wb") as qemu_stderr:
            proc = subprocess.Popen(
                qemu_argv(vmlinux, initramfs, share, console_log, memory_mb, cpus),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=qemu_stderr,
            )
            try:
                raw, timed_out = _pump(proc, time.monotonic() + timeout, stream)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        output = codecs.decode(raw, "utf-8", "replace")
        console = _tail(console_log)
        if timed_out:
            raise VMTimeout(f"VM timed out after {timeout:g}s and was killed", output, console)
        return VMResult(_read_exit_code(share, proc.returncode, workdir, output, console), output)
    finally:
        if not os.environ.get("BERTH_VM_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"berth-vm: kept {workdir}", file=sys.stderr)


def _read_exit_code(share: Path, qemu_status: int, workdir: Path, output: str, console: str) -> int:
    """The exit code the guest runner wrote, or VMError explaining why there is none."""
    try:
        return int((share / "exit_code").read_text().strip())
    except (OSError, ValueError):
        pass
    details = [f"qemu exited with status {qemu_status}"]
    sources = {
        "guest error": _tail(share / "error"),
        "qemu stderr": _tail(workdir / "qemu.stderr"),
        "guest console (last lines)": console,
    }
    details += [f"{name}:\n{text}" for name, text in sources.items() if text]
    if not any(sources.values()):
        details.append("no kernel output at all (too little --memory?)")
    details.append("rerun with BERTH_VM_DEBUG=1 for kernel messages, BERTH_VM_KEEP=1 to keep logs")
    message = "VM did not report the command's exit code; " + "\n".join(details)
    raise VMError(message, output, console)
