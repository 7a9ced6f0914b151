"""How long ``berth pull`` and ``berth image load -i`` take into empty storage, against
``podman pull`` and ``podman load`` of the same image, whole commands alternating in one run.

Images (built with ``tests/oci_images.py``: buildah in a private storage, no network):

- ``small``: ``build_test_image``, busybox in 3 layers, about 2 MB: mostly start-up costs;
- ``big``: the same with a 4th layer of ``--big-mib`` MiB (default 150) of files of 128 KiB
  each, half random bytes and half a repeated line (gzip takes them to about half), written by
  a buildah working container on the small image.

Each is pushed (gzip layers) to a private ``docker-registry`` on 127.0.0.1 and written as a
docker archive (``docker save``'s format, uncompressed layers). Per round, for each image and
each operation (pull, load), every tool runs once, the order rotating round by round; each run
starts from EMPTY storage (a fresh data root and database, made before the clock starts and
removed after it stops):

- ``berth``: the console script as pip writes it (``benchmarks.scale.console_script``, this
  checkout on ``PYTHONPATH``, its bytecode cached in the work directory even where
  ``PYTHONDONTWRITEBYTECODE`` is set, as an installed berth's is), ``--root`` a new directory
  (its SQLite database inside), the storage driver berth picks on its own, or the one
  ``--storage`` names (``overlay``, as podman's: a new root asked for overlay is probed first,
  which the timed command pays):
  ``berth [--storage DRIVER] pull --tls-verify=false -q REF`` and ``berth [--storage DRIVER]
  image load -q -i ARCHIVE``;
- ``podman overlay`` (podman's default driver here) and ``podman vfs``: Debian's podman with a
  new private ``--root``/``--runroot`` and configuration (``tests.oci_images.Storage``):
  ``podman pull --quiet --tls-verify=false REF`` and ``podman load --quiet -i ARCHIVE``;
- information only: ``skopeo copy`` of the same source into an OCI layout, which is berth's own
  first step (for a docker archive also with ``--dest-oci-accept-uncompressed-layers``: skopeo
  gzips an archive's plain layers for an OCI layout unless told not to, which berth does not
  tell it), and ``berth images`` / ``podman images`` on a fresh empty root, each command's
  floor (interpreter or binary start, database creation, recovery).

``x podman`` is each median over ``podman overlay``'s median for the same image and operation;
the budgets (issue: pull and load <= 1.5 x podman's, cold) are checked against it.

``--profile`` then runs berth's pull and load of each image once under cProfile and prints
where the time went (imports, opening the orchestrator, skopeo, reading the layout,
applying layers, vfs copies of parent layers or overlay's layer directories, the database).

``--quick`` (the smoke run): the small image, berth and podman overlay, one round, no warm-up.

Run: ``sudo python -m benchmarks.image_pull_load [--quick] [--rounds N] [--big-mib N]
[--storage overlay|vfs|devicemapper] [--profile]``
"""

from __future__ import annotations

import dataclasses
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._common import banner, median, parser, print_table, spread
from benchmarks.scale import cached_bytecode_env, console_script

BUDGET = 1.5
BIG_FILE = 128 << 10
PODMAN_TOOLS = ("podman overlay", "podman vfs")
SMALL_TAG = "localhost/berth-bench:latest"
BIG_TAG = "localhost/berth-bench-big:latest"


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def checked(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


# -- the images -------------------------------------------------------------------------------


@dataclasses.dataclass
class Source:
    """One image as a registry reference and as a docker archive, and its size."""

    label: str
    reference: str
    archive: Path
    archive_mib: float


def build_images(work: Path, big_mib: int, with_big: bool) -> tuple[list[Source], object, object]:
    """The small (and big) images in a buildah storage under ``work``, pushed to a new
    registry and saved as docker archives. Returns the sources, the storage and the registry
    (both to close)."""
    from tests.oci_images import (
        BuiltImage,
        Registry,
        build_test_image,
        push_to_registry,
        to_docker_archive,
    )

    small = build_test_image(work / "build", tag=SMALL_TAG)
    images: list[tuple[str, BuiltImage]] = [("small", small)]
    if with_big:
        images.append(("big", _big_image(small, big_mib)))
    registry = Registry(work / "registry")
    sources = []
    for label, image in images:
        reference = push_to_registry(image, registry)
        archive = to_docker_archive(image, work / f"{label}.tar")
        sources.append(Source(label, reference, archive, archive.stat().st_size / (1 << 20)))
    return sources, small.storage, registry


def _big_image(small: object, mib: int) -> object:
    """``small`` plus one layer of ``mib`` MiB of semi-compressible files."""
    from tests.oci_images import BuiltImage

    assert isinstance(small, BuiltImage)
    storage = small.storage
    generator = random.Random(20261202)
    line = b"berth benchmark filler: the same line again and again, which gzip folds away\n"
    filler = (line * (BIG_FILE // len(line) + 1))[:BIG_FILE // 2]
    with storage.working_container(small.tag) as (container, rootfs):
        for number in range(mib * (1 << 20) // BIG_FILE):
            directory = rootfs / "data" / "big" / f"{number // 100:03d}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"file-{number:05d}").write_bytes(
                generator.randbytes(BIG_FILE // 2) + filler)
        image_id = storage.buildah("commit", "--quiet", "--signature-policy",
                                   str(storage.policy), container, BIG_TAG).splitlines()[-1]
    return dataclasses.replace(small, tag=BIG_TAG, image_id=image_id,
                               layer_tags=(*small.layer_tags, BIG_TAG))


# -- the tools --------------------------------------------------------------------------------


class Berth:
    """Whole ``berth`` commands, each into a new data root under ``work``."""

    def __init__(self, work: Path, storage: str | None) -> None:
        self.work = work / "berth"
        self.work.mkdir()
        self.script = console_script(self.work)
        #: the command and its global options: ``--storage`` when a driver is asked for, else
        #: berth picks its own
        self.command = [str(self.script), *(["--storage", storage] if storage else [])]
        self.count = 0
        self.driver = "?"
        #: the commands whose first run was checked (an image stored, its driver)
        self.checked: set[tuple[str, ...]] = set()

    def _fresh(self) -> tuple[Path, dict[str, str]]:
        self.count += 1
        root = self.work / f"root-{self.count}"
        env = cached_bytecode_env(self.work / "pycache", BERTH_ROOT=str(root),
                                  BERTH_DATABASE_URL=f"sqlite:///{root / 'berth.db'}")
        return root, env

    def timed(self, *args: str) -> Callable[[], float]:
        def run() -> float:
            root, env = self._fresh()
            try:
                start = time.perf_counter()
                checked([*self.command, *args], env)
                elapsed = ms_since(start)
                if args[0] != "images" and args not in self.checked:
                    self._check_stored(root, env)
                    self.checked.add(args)
                return elapsed
            finally:
                _remove(root)
        return run

    def _check_stored(self, root: Path, env: dict[str, str]) -> None:
        """One image stored, and which storage driver berth picked."""
        import json

        listed = checked([*self.command, "image", "ls", "-q"], env).split()
        if len(listed) != 1:
            raise RuntimeError(f"berth holds {len(listed)} images, not 1, in {root}")
        inspected = json.loads(checked([*self.command, "image", "inspect", listed[0]], env))
        self.driver = str(inspected[0]["StorageDriver"])

    def profile(self, *args: str) -> pstats.Stats:
        """``args`` once under cProfile (the console script run by ``python -m cProfile``)."""
        root, env = self._fresh()
        output = self.work / f"profile-{self.count}.prof"
        try:
            checked([sys.executable, "-m", "cProfile", "-o", str(output), *self.command,
                     *args], env)
            return pstats.Stats(str(output))
        finally:
            _remove(root)


class Podman:
    """Whole ``podman`` commands with ``driver``, each into a new private storage."""

    def __init__(self, work: Path, driver: str) -> None:
        self.work = work / f"podman-{driver}"
        self.work.mkdir()
        self.driver = driver
        self.count = 0

    def timed(self, *args: str) -> Callable[[], float]:
        from tests.oci_images import Storage

        def run() -> float:
            self.count += 1
            storage = Storage(self.work / f"storage-{self.count}", driver=self.driver)
            flags = ["--root", str(storage.root), "--runroot", str(storage.runroot),
                     "--storage-driver", self.driver, "--tmpdir", str(storage.base / "libpod"),
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
            policy = ["--signature-policy", str(storage.policy)] if args[0] != "images" else []
            try:
                start = time.perf_counter()
                checked(["podman", *flags, *args[:1], *policy, *args[1:]], storage.env)
                elapsed = ms_since(start)
                if args[0] != "images":
                    listed = checked(["podman", *flags, "images", "-q"], storage.env).split()
                    if len(listed) != 1:
                        raise RuntimeError(f"podman holds {len(listed)} images, not 1")
                return elapsed
            finally:
                for directory in (storage.base, storage.runroot):
                    _remove(directory)
        return run


class Skopeo:
    """``skopeo copy`` into a new OCI layout: what berth runs before it applies anything."""

    def __init__(self, work: Path) -> None:
        self.work = work / "skopeo"
        self.work.mkdir()
        self.count = 0

    def timed(self, *args: str) -> Callable[[], float]:
        def run() -> float:
            self.count += 1
            layout = self.work / f"layout-{self.count}"
            try:
                start = time.perf_counter()
                checked(["skopeo", "copy", "--quiet", *args, f"oci:{layout}:copied"])
                return ms_since(start)
            finally:
                _remove(layout)
        return run


def _remove(directory: Path) -> None:
    from tests.oci_images import unmount_under

    if directory.exists():
        unmount_under(directory)
        shutil.rmtree(directory, ignore_errors=True)


# -- main -------------------------------------------------------------------------------------


Variant = tuple[str, Callable[[], float]]


def variants_for(source: Source, operation: str, berth: Berth, podmans: list[Podman],
                 skopeo: Skopeo | None) -> list[Variant]:
    if operation == "pull":
        found: list[Variant] = [("berth", berth.timed("pull", "--tls-verify=false", "-q",
                                                      source.reference))]
        found += [(f"podman {p.driver}", p.timed("pull", "--quiet", "--tls-verify=false",
                                                  source.reference)) for p in podmans]
        if skopeo is not None:
            found.append(("skopeo copy (berth's 1st step)", skopeo.timed(
                "--src-tls-verify=false", f"docker://{source.reference}")))
        return found
    found = [("berth", berth.timed("image", "load", "-q", "-i", str(source.archive)))]
    found += [(f"podman {p.driver}", p.timed("load", "--quiet", "-i", str(source.archive)))
              for p in podmans]
    if skopeo is not None:
        found.append(("skopeo copy (berth's 1st step)", skopeo.timed(
            f"docker-archive:{source.archive}")))
        found.append(("skopeo copy, layers left uncompressed", skopeo.timed(
            "--dest-oci-accept-uncompressed-layers", f"docker-archive:{source.archive}")))
    return found


def run_rounds(rounds: int, groups: dict[str, list[Variant]]) -> dict[str, dict[str, list[float]]]:
    """Every group's variants once per round, group after group; within a group the order
    rotates each round."""
    samples: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
    for round_number in range(rounds):
        for group, variants in groups.items():
            shift = round_number % len(variants)
            for name, call in [*variants[shift:], *variants[:shift]]:
                samples[group].setdefault(name, []).append(call())
        print(f"  round {round_number + 1} of {rounds} done", flush=True)
    return samples


def main() -> None:
    arguments = parser(__doc__.split("\n")[0])
    arguments.add_argument("--rounds", type=int, default=None, help="default 8 (quick: 1)")
    arguments.add_argument("--big-mib", type=int, default=150,
                           help="MiB of files in the big image's extra layer (default 150)")
    arguments.add_argument("--profile", action="store_true",
                           help="then profile one berth pull and load of each image")
    arguments.add_argument("--storage", choices=("overlay", "vfs", "devicemapper"), default=None,
                           help="berth's storage driver (default: berth's own choice)")
    args = arguments.parse_args()
    banner("image_pull_load", args.quick)
    if os.geteuid() != 0:
        print("image_pull_load needs root (buildah, podman and berth's storage): skipped")
        return
    from tests.oci_images import missing_tools

    missing = missing_tools("buildah", "podman", "skopeo", "docker-registry", "busybox")
    if missing:
        print(f"note: apt-get install {' '.join(missing)}: skipped")
        return
    rounds = args.rounds or (1 if args.quick else 8)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-images-", dir="/var/tmp"))
    closing: list[object] = []
    try:
        started = time.perf_counter()
        sources, storage, registry = build_images(work, args.big_mib, not args.quick)
        closing += [storage, registry]
        print(f"images built, pushed and saved in {ms_since(started) / 1000:.1f} s: " + "; ".join(
            f"{s.label} {s.reference} (docker archive {s.archive_mib:.1f} MiB)"
            for s in sources))
        print(f"podman {checked(['podman', '--version']).split()[-1]}, "
              f"{checked(['skopeo', '--version']).strip()}; work directory {work}")
        berth = Berth(work, args.storage)
        podmans = [Podman(work, "overlay")] + ([] if args.quick else [Podman(work, "vfs")])
        skopeo = None if args.quick else Skopeo(work)
        groups: dict[str, list[Variant]] = {}
        for source in sources:
            for operation in ("pull", "load"):
                groups[f"{operation} {source.label}"] = variants_for(
                    source, operation, berth, podmans, skopeo)
        if not args.quick:
            groups["empty root"] = [("berth", berth.timed("images")),
                                    ("podman overlay", podmans[0].timed("images"))]
            print("warm-up round (page cache, binaries, imports): not counted", flush=True)
            run_rounds(1, groups)
        samples = run_rounds(rounds, groups)
        report(samples, rounds, berth.driver, args.storage, sources)
        if args.profile and not args.quick:
            for source in sources:  # the small image: start-up; the big one: the data
                profile("pull", source, berth.profile("pull", "--tls-verify=false", "-q",
                                                      source.reference))
                profile("load", source, berth.profile("image", "load", "-q", "-i",
                                                      str(source.archive)))
    finally:
        for thing in reversed(closing):
            try:
                thing.stop() if hasattr(thing, "stop") else thing.close()  # type: ignore[attr-defined]
            except Exception as error:  # keep tearing down the others
                print(f"note: teardown of {type(thing).__name__}: {error}", file=sys.stderr)
        _remove(work)


def report(samples: dict[str, dict[str, list[float]]], rounds: int, driver: str,
           asked: str | None, sources: list[Source]) -> None:
    sizes = {s.label: s.archive_mib for s in sources}
    for group, by_tool in samples.items():
        reference = median(by_tool.get("podman overlay", []))
        rows = [[tool, median(values), spread(values, 0), median(values) / reference]
                for tool, values in by_tool.items()]
        size = sizes.get(group.split()[-1])
        what = f"{group}" + (f" ({size:.1f} MiB uncompressed)" if size else "")
        print_table(f"{what}: ms, median of {rounds} rounds, each into empty storage",
                    ["tool", "median", "min..max", "x podman"], rows)
    how = f"asked for with --storage {asked}" if asked else "berth's own choice"
    print(f"\nberth's storage driver: {driver} ({how})")
    for group, by_tool in samples.items():
        if group == "empty root":
            continue
        ratio = median(by_tool["berth"]) / median(by_tool["podman overlay"])
        verdict = "met" if ratio <= BUDGET else "MISSED"
        print(f"  budget {group}: berth / podman overlay = {ratio:.2f} (<= {BUDGET}: {verdict})")


#: (file suffix, function name, label): the phases the profile is summed by; imports overlap
#: the others (a module imported inside one of them counts in both)
PHASES = (
    ("<frozen importlib._bootstrap>", "_find_and_load", "imports (all of them, wherever)"),
    ("fsm/orchestrator.py", "__init__", "Orchestrator() (engine, schema, recovery)"),
    ("drivers/image/skopeo.py", "copy_to_layout", "skopeo copy (a subprocess)"),
    ("drivers/image/skopeo.py", "archive_images", "listing the archive (tarfile)"),
    ("drivers/image/layout.py", "read_layout", "reading the OCI layout"),
    ("fsm/images/chain.py", "apply_chain", "all layers: rows, driver layers, applying"),
    ("drivers/storage/vfs.py", "create", "  vfs copies of parent layers"),
    ("drivers/storage/overlay.py", "create", "  overlay layer directories"),
    ("drivers/storage/overlay.py", "overlay_unsupported", "probing a new root for overlay"),
    ("drivers/image/apply.py", "apply_layer", "  applying tars (gunzip, digests, writes)"),
    ("fsm/steps/layers.py", "claim_layer", "  layer rows (claims)"),
    ("fsm/images/chain.py", "accounts_of", "reading /etc/passwd and group"),
    ("fsm/store/images.py", "store", "the image's row, names and event"),
)


def profile(operation: str, source: Source, stats: pstats.Stats) -> None:
    entries = stats.stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in entries.values())
    rows = [["whole command (under cProfile)", total * 1000, 1.0]]
    for suffix, function, label in PHASES:
        seconds = sum(entry[3] for (file, _line, name), entry in entries.items()
                      if name == function and file.endswith(suffix))
        rows.append([label, seconds * 1000, seconds / total])
    print_table(f"berth {operation} of the {source.label} image ({source.archive_mib:.0f} MiB), "
                "one run under cProfile: cumulative ms", ["phase", "ms", "share"], rows)
    top = sorted(((entry[2], f"{Path(file).name}:{name}") for (file, _line, name), entry
                  in entries.items()), reverse=True)[:10]
    print("  most time of their own: " + ", ".join(f"{where} {own * 1000:.0f} ms"
                                                   for own, where in top))

if __name__ == "__main__":
    main()
