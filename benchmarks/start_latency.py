"""How long ``create + start + wait`` of busybox ``/bin/true`` (no network) takes, berth against
bare runc, Docker and Podman, measured alternately in one run. Needs root.

Tools (each one run per round, the order rotating every round):

- ``berth API``: ``orc.create(..., network_mode="none")`` + ``orc.start`` + ``orc.wait`` in this
  process (runc, SQLite; the storage driver ``--storage`` names, else berth's own choice: the
  one it picked is printed), then ``orc.remove`` (timed apart);
- ``berth run --rm`` (CLI): ``berth --storage DRIVER run --rm --network none busybox /bin/true``
  as a subprocess, so its cold start counts, on the API's data root and driver (this checkout's
  console script as pip writes it, ``benchmarks.scale.console_script``: neither a version
  manager's shim nor another installed berth is timed; its bytecode cached after the first run,
  as an installed berth's is);
- ``runc c+s+w`` (the floor): ``runc create`` + ``runc start`` + waiting for the process on a
  prepared bundle (``benchmarks/bare_runc.py``: a helper process that is a child subreaper reaps
  it), then ``runc delete``; ``runc run`` (create+start+wait+delete in one runc process)
  alongside;
- ``docker c+s+w``: ``docker create`` + ``docker start`` + ``docker wait`` against a private
  ``dockerd`` (Debian's docker.io; its own data root, exec root and socket; overlay2, falling back
  to vfs), and ``docker run --rm``; the image is ``docker import`` of the same busybox tarball;
- ``podman c+s+w`` and ``podman run --rm``: Debian's podman, private ``--root``/``--runroot``,
  ``--runtime runc``, ``podman import`` of the same tarball.

``berth API / runc c+s+w`` is checked against the budget (issue 21: <= 1.5 x on the default
driver). Then berth's own time is broken down by transition (``orc.history()``: started_at and
finished_at of each committed transition) and by what happens between them (the shim's exit
record, who fires ``exit`` and when, ``wait`` returning).

``--quick`` runs berth and runc only, once each (Docker and Podman with ``--tools``).

Run: ``sudo python -m benchmarks.start_latency [--quick] [--rounds N] [--tools a,b,...]
[--storage overlay|vfs|devicemapper]``
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    Samples,
    alternate_parts,
    banner,
    busybox_tar,
    median,
    parser,
    print_table,
    spread,
)
from benchmarks.bare_runc import Runc, run
from benchmarks.scale import cached_bytecode_env, console_script

ALL_TOOLS = ("berth", "berth-cli", "runc", "docker", "podman")
#: berth API create + start + wait over bare runc's (issue 21, on the default storage driver)
RUNC_BUDGET = 1.5
PODMAN_ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096")
DOCKER = "/usr/bin/docker"  # Debian's docker.io client, the same version as its dockerd


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# -- berth --------------------------------------------------------------------------------


class Berth:
    def __init__(self, work: Path, tar: Path, storage: str | None) -> None:
        from fsm import Orchestrator

        self.root = work / "berth"
        self.url = f"sqlite:///{self.root / 'berth.db'}"
        self.orc = Orchestrator(database_url=self.url, root=self.root, storage=storage,
                                runtime="runc")
        self.orc.import_image("busybox", tar)
        self.storage = self.orc.storage.name
        how = f"asked for with --storage {storage}" if storage else "berth's own choice"
        print(f"berth: storage driver {self.storage} ({how}), runc, SQLite")
        self.cli_home = work / "berth-cli"  # the console script and its bytecode cache
        self.cli_home.mkdir()
        self.script = console_script(self.cli_home)
        self.breakdowns: list[dict[str, float]] = []
        #: ``error`` of exited containers (an undo step that failed, e.g. a ``runc delete`` that
        #: raced the shim's own)
        self.errors: list[str] = []
        #: API runs, and those whose shim ran the exit hook (a new interpreter, ~0.7 s of CPU)
        #: although ``orc.wait`` had fired ``exit`` already
        self.runs = 0
        self.hooks = 0

    def api(self) -> dict[str, float]:
        orc = self.orc
        start = time.perf_counter()
        info = orc.create("busybox", ["/bin/true"], network_mode="none")
        created = time.perf_counter()
        orc.start(info.id)
        started = time.perf_counter()
        code = orc.wait(info.id)
        waited = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"berth: /bin/true exited {code}")
        error = orc.get(info.id).error
        if error:
            self.errors.append(error)
        paths = orc.paths(info.id).of_run(orc.get(info.id).run)
        status = orc.runtime.exit_status(paths)
        assert status is not None  # wait returned: conmon recorded the exit
        shim_recorded = status.finished_at
        self.runs += 1
        self.hooks += _exit_hook_ran(paths.exit_dir)
        history = orc.history(info.id)
        remove_start = time.perf_counter()
        orc.remove(info.id)
        removed = time.perf_counter()
        self.breakdowns.append(_breakdown(history, shim_recorded, time.time() - (
            removed - waited), (created - start) * 1000))
        return {"total": (waited - start) * 1000, "create": (created - start) * 1000,
                "start": (started - created) * 1000, "wait": (waited - started) * 1000,
                "remove": (removed - remove_start) * 1000}

    def cli(self) -> dict[str, float]:
        env = cached_bytecode_env(self.cli_home / "pycache", BERTH_ROOT=str(self.root),
                                  BERTH_DATABASE_URL=self.url)
        start = time.perf_counter()
        run([str(self.script), "--storage", self.storage, "run", "--rm", "--network", "none",
             "busybox", "/bin/true"], env=env)
        return {"total": ms_since(start)}

    def close(self) -> None:
        self.orc.close()


def _exit_hook_ran(exit_dir: Path, settle: float = 0.1) -> bool:
    """Whether conmon's exit gate ran the exit hook rather than leave ``exit`` to
    ``orc.wait`` (it marks the run's exit directory when it does), given ``settle`` seconds."""
    from drivers.runtime.exit_gate import HOOK_RAN

    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if (exit_dir / HOOK_RAN).exists():
            return True
        time.sleep(0.01)
    return (exit_dir / HOOK_RAN).exists()


def _breakdown(history: list[Any], shim_recorded: float, wait_returned: float,
               create_ms: float) -> dict[str, float]:
    """ms per phase of one berth run, from the committed transitions' timestamps."""
    by_trigger = {t.trigger: t for t in history}
    result = {"create (API call)": create_ms}
    for trigger in ("start", "mounted", "networked", "started"):
        t = by_trigger[trigger]
        result[f"{trigger}: {t.source} -> {t.dest}"] = t.duration * 1000
    running_at = by_trigger["started"].finished_at.timestamp()
    exit_t = by_trigger["exit"]
    result["running committed -> conmon's exit file (< 0: exited first)"] = (
        shim_recorded - running_at) * 1000
    result["exit file -> exit fired (wait's poll, or the exit hook)"] = (
        exit_t.started_at.timestamp() - shim_recorded) * 1000
    result["exit: running -> exited (undo + commit)"] = exit_t.duration * 1000
    result["exit committed -> wait returns"] = (
        wait_returned - exit_t.finished_at.timestamp()) * 1000
    return result


# -- Docker ---------------------------------------------------------------------------------


class Docker:
    def __init__(self, work: Path, tar: Path) -> None:
        self.work = work / "docker"
        self.work.mkdir()
        self.socket = self.work / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.storage = "overlay2"
        try:
            self._start_daemon("overlay2")
        except RuntimeError as error:
            print(f"note: dockerd with overlay2 failed ({error}); falling back to vfs")
            self.stop()
            self.storage = "vfs"
            self._start_daemon("vfs")
        run(self.cli("import", str(tar), "busybox:bench"))
        version = run(self.cli("version", "--format", "{{.Server.Version}}"))
        print(f"Docker {version} (dockerd, storage driver {self.storage}, runc, --iptables=false "
              "--bridge=none)")

    def cli(self, *args: str) -> list[str]:
        return [DOCKER, "-H", self.host, *args]

    def _start_daemon(self, storage: str) -> None:
        data, execroot = self.work / f"data-{storage}", self.work / f"exec-{storage}"
        log = open(self.work / f"dockerd-{storage}.log", "wb")  # noqa: SIM115 - the daemon's
        self.process = subprocess.Popen(
            ["dockerd", "--data-root", str(data), "--exec-root", str(execroot), "-H", self.host,
             "--pidfile", str(self.work / "dockerd.pid"), "--storage-driver", storage,
             "--iptables=false", "--ip-masq=false", "--bridge=none"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.process.returncode}: "
                                   f"{(self.work / f'dockerd-{storage}.log').read_text()[-600:]}")
            if self.socket.exists() and subprocess.run(
                    self.cli("info"), capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer in 60 s")

    def create_start_wait(self) -> dict[str, float]:
        start = time.perf_counter()
        container = run(self.cli("create", "--network", "none", "busybox:bench", "/bin/true"))
        created = time.perf_counter()
        run(self.cli("start", container))
        started = time.perf_counter()
        code = run(self.cli("wait", container))
        waited = time.perf_counter()
        run(self.cli("rm", container))
        removed = time.perf_counter()
        if code != "0":
            raise RuntimeError(f"docker: /bin/true exited {code}")
        return {"total": (waited - start) * 1000, "create": (created - start) * 1000,
                "start": (started - created) * 1000, "wait": (waited - started) * 1000,
                "remove": (removed - waited) * 1000}

    def run_rm(self) -> dict[str, float]:
        start = time.perf_counter()
        run(self.cli("run", "--rm", "--network", "none", "busybox:bench", "/bin/true"))
        return {"total": ms_since(start)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        for leftover in self.work.glob("*/containerd/*"):  # nothing should be left mounted
            subprocess.run(["umount", "-R", str(leftover)], capture_output=True)


# -- Podman ---------------------------------------------------------------------------------


class Podman:
    def __init__(self, work: Path, tar: Path) -> None:
        self.work = work / "podman"
        self.work.mkdir()
        self.base = ["podman", "--root", str(self.work / "root"), "--runroot",
                     str(self.work / "runroot"), "--runtime", "runc", "--cgroup-manager",
                     "cgroupfs", "--events-backend", "file", "--tmpdir", str(self.work / "tmp")]
        run([*self.base, "import", str(tar), "busybox:bench"])
        version = run([*self.base, "version", "--format", "{{.Client.Version}}"])
        driver = run([*self.base, "info", "--format", "{{.Store.GraphDriverName}}"])
        print(f"Podman {version} (storage driver {driver}, runc, cgroupfs, --network none, "
              f"{' '.join(PODMAN_ULIMITS)})")

    def create_start_wait(self) -> dict[str, float]:
        start = time.perf_counter()
        container = run([*self.base, "create", "--network", "none", *PODMAN_ULIMITS,
                         "localhost/busybox:bench", "/bin/true"])
        created = time.perf_counter()
        run([*self.base, "start", container])
        started = time.perf_counter()
        code = run([*self.base, "wait", container])
        waited = time.perf_counter()
        run([*self.base, "rm", container])
        removed = time.perf_counter()
        if code != "0":
            raise RuntimeError(f"podman: /bin/true exited {code}")
        return {"total": (waited - start) * 1000, "create": (created - start) * 1000,
                "start": (started - created) * 1000, "wait": (waited - started) * 1000,
                "remove": (removed - waited) * 1000}

    def run_rm(self) -> dict[str, float]:
        start = time.perf_counter()
        run([*self.base, "run", "--rm", "--network", "none", *PODMAN_ULIMITS,
             "localhost/busybox:bench", "/bin/true"])
        return {"total": ms_since(start)}

    def stop(self) -> None:
        subprocess.run([*self.base, "rm", "-af"], capture_output=True)
        subprocess.run([*self.base, "system", "reset", "-f"], capture_output=True)


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    arguments.add_argument("--rounds", type=int, default=None, help="default 12 (quick: 1)")
    arguments.add_argument("--storage", choices=("overlay", "vfs", "devicemapper"), default=None,
                           help="berth's storage driver (default: berth's own choice, printed)")
    arguments.add_argument("--tools", default=None,
                           help=f"comma-separated among {', '.join(ALL_TOOLS)} (default: all "
                                "that are installed; quick: berth, berth-cli, runc)")
    args = arguments.parse_args()
    banner("start_latency", args.quick)
    if os.geteuid() != 0:
        print("start_latency needs root (runc, network namespaces): skipped")
        return
    default_tools = "berth,berth-cli,runc" if args.quick else ",".join(ALL_TOOLS)
    tools = [t.strip() for t in (args.tools or default_tools).split(",") if t.strip()]
    for missing, binary, package in (("docker", "dockerd", "docker.io"),
                                     ("podman", "podman", "podman")):
        if missing in tools and shutil.which(binary) is None:
            print(f"note: {binary} is not installed (apt-get install {package}): skipped")
            tools.remove(missing)
    rounds = args.rounds or (1 if args.quick else 12)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-start-"))
    objects: list[Any] = []
    try:
        tar = busybox_tar(work)
        variants: list[tuple[str, Callable[[], dict[str, float]]]] = []
        berth = None
        if "berth" in tools or "berth-cli" in tools:
            berth = Berth(work, tar, args.storage)
            objects.append(berth)
            if "berth" in tools:
                variants.append(("berth API c+s+w", berth.api))
            if "berth-cli" in tools:
                variants.append(("berth run --rm (CLI)", berth.cli))
        if "runc" in tools:
            runc = Runc(work, tar)
            objects.append(runc)
            variants += [("runc c+s+w (floor)", runc.lifecycles),
                         ("runc run", runc.run_once)]
        if "docker" in tools:
            docker = Docker(work, tar)
            objects.append(docker)
            variants += [("docker c+s+w", docker.create_start_wait),
                         ("docker run --rm", docker.run_rm)]
        if "podman" in tools:
            podman = Podman(work, tar)
            objects.append(podman)
            variants += [("podman c+s+w", podman.create_start_wait),
                         ("podman run --rm", podman.run_rm)]
        for _, call in variants:  # warm-up: page cache, image layers, imports
            call()
        if berth is not None:
            berth.breakdowns.clear()
        report(variants, alternate_parts(rounds, variants), rounds, berth)
    finally:
        for thing in reversed(objects):
            try:
                thing.close() if hasattr(thing, "close") else thing.stop()
            except Exception as error:  # keep tearing down the others
                print(f"note: teardown of {type(thing).__name__}: {error}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


def report(variants: list[tuple[str, Any]], parts: dict[str, Samples], rounds: int,
           berth: Berth | None) -> None:
    total = parts["total"]
    docker = total.median("docker c+s+w") if "docker c+s+w" in total.values else None
    floor = total.median("runc c+s+w (floor)") if "runc c+s+w (floor)" in total.values else None
    rows = []
    for name, _ in variants:
        value = total.median(name)
        cells = [parts[p].median(name) if p in parts and name in parts[p].values else float("nan")
                 for p in ("create", "start", "wait", "remove")]
        rows.append([name, value, spread(total.values[name]), *cells,
                     value / docker if docker else float("nan"),
                     value / floor if floor else float("nan")])
    print_table(f"ms, median of {rounds} rounds (tools alternating; the total is create + start + "
                "wait, or the whole command for the run variants; remove is apart)",
                ["tool", "total", "min..max", "create", "start", "wait", "remove", "x docker",
                 "x runc"], rows)
    if docker and "berth API c+s+w" in total.values:
        print(f"  berth API / docker c+s+w = {total.median('berth API c+s+w') / docker:.2f} "
              "(target <= 0.5)")
    if floor and berth is not None and "berth API c+s+w" in total.values:
        ratio = total.median("berth API c+s+w") / floor
        verdict = "met" if ratio <= RUNC_BUDGET else "MISSED"
        print(f"  berth API ({berth.storage}) / runc c+s+w = {ratio:.2f} (budget <= "
              f"{RUNC_BUDGET} on the default driver: {verdict})")
    if berth is not None:
        print(f"  berth API runs whose container exited with an error recorded: "
              f"{len(berth.errors)}" + (f" (first: {berth.errors[0]!r})" if berth.errors else ""))
        print(f"  berth API runs whose exit hook still ran after orc.wait fired exit: "
              f"{berth.hooks} of {berth.runs}")
    if berth is not None and berth.breakdowns:
        phases = list(berth.breakdowns[0])
        print_table(f"berth API ({berth.storage}): where the time goes (ms, median of rounds; "
                    "from orc.history() and conmon's exit file)", ["phase", "ms", "min..max"],
                    [[p, median([b[p] for b in berth.breakdowns]),
                      spread([b[p] for b in berth.breakdowns])] for p in phases])


if __name__ == "__main__":
    main()
