"""Creating a container from an image: ``orc.create`` from an image of ~500 MiB against one of
~5 MiB, on a driver whose container layer must not cost what the image holds (budget <= 1.2)
and on vfs beside it (a copy: expected to scale with the data).

The budgeted driver is devicemapper where the kernel has the dm-thin target (the container's
layer is a thin snapshot of the image's top layer), overlay everywhere else (the container's
layer is an empty upper directory over the image's layers). Both need root.

On a host without dm-thin (this project's machines) it runs overlay and vfs on the host; for
devicemapper, run it in the project's VM, which ``--vm`` does for you::

    python -m benchmarks.image_create                   # on the host: overlay and vfs
    python -m benchmarks.image_create --vm              # boots tests/vm: devicemapper and vfs
    python -m benchmarks.image_create --vm --quick      # 5 MiB against 64 MiB

Each image is an OCI layout of one layer (a directory ``data`` and a file ``data/blob`` of
incompressible-looking bytes: a repeated random block), written on disk as a stream and loaded
with ``orc.load`` into both orchestrators (the budgeted driver and vfs, each its own root and
SQLite database). Only ``orc.create(image, ["/bin/true"], network_mode="none")`` is timed; the
container is removed (``orc.remove``) outside the clock. Rounds rotate the order of the two
images; the budgeted driver's rounds run first, vfs's after them. Inside the VM the guest's
writes live in its RAM (a tmpfs of half of it): the layouts (deleted once loaded), the pool's
copy of the data, vfs's image layer and a vfs container's copy; the VM gets 1.5 GiB plus eight
times the big image's size.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._common import (
    REPO,
    Samples,
    alternate,
    banner,
    elapsed_ms,
    parser,
    print_table,
    spread,
)

if TYPE_CHECKING:
    from fsm import Orchestrator

MiB = 1 << 20
SMALL_MIB = 5
BIG_MIB, QUICK_BIG_MIB = 500, 64
BUDGET = 1.2


class _Incompressible:
    """``size`` bytes read as a stream: a random 1 MiB block over and over (gzip's window is
    32 KiB, so it does not compress), never all in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(MiB)
        self.offset = 0

    def read(self, wanted: int = -1) -> bytes:
        if wanted < 0:
            wanted = self.left
        wanted = min(wanted, self.left, MiB - self.offset)
        chunk = self.block[self.offset:self.offset + wanted]
        self.offset = (self.offset + wanted) % MiB
        self.left -= wanted
        return chunk


def _blob_from_file(blobs: Path, written: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with written.open("rb") as data:
        while chunk := data.read(MiB):
            digest.update(chunk)
    size = written.stat().st_size
    written.rename(blobs / digest.hexdigest())
    return {"digest": f"sha256:{digest.hexdigest()}", "size": size}


def write_layout(directory: Path, size: int, name: str) -> Path:
    """An OCI layout of one uncompressed layer: ``data/`` and ``data/blob`` of ``size`` bytes.
    As ``tests/handmade_layouts.write_layout`` writes one, but the layer tar is streamed to disk
    (and hashed from there) instead of held in memory."""
    from tests import handmade_layouts as made

    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    partial = blobs / "layer.partial"
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        made.directory("data")(tar)
        info = tarfile.TarInfo("data/blob")
        info.size, info.mode = size, 0o644
        tar.addfile(info, _Incompressible(size))
    layer = _blob_from_file(blobs, partial)

    def blob(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }).encode())
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": name}}]}))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return directory


def _pool_options(big: int) -> dict[str, str]:
    """A pool sized for the data (the loop files are sparse: only what is written costs)."""
    base = max(2 * big, 256 * MiB)
    return {"data_loop_size": f"{4 * base // MiB}M", "metadata_loop_size": "128M",
            "base_size": f"{base // MiB}M"}


def _create_ms(orc: Orchestrator, image: str) -> float:
    started = time.perf_counter()
    container = orc.create(image, ["/bin/true"], network_mode="none")
    figure = elapsed_ms(started)
    orc.remove(container.id)
    return figure


def _measure(orc: Orchestrator, images: list[tuple[str, str]], rounds: int) -> Samples:
    for _, image in images:  # warm-up (imports, caches, the pool's first snapshot): not counted
        _create_ms(orc, image)
    return alternate(rounds, [(label, functools.partial(_create_ms, orc, image))
                              for label, image in images], Samples("ms"))


def budgeted_driver() -> str:
    """The driver the budget is about here: devicemapper where the kernel has dm-thin (the
    project's VM), else overlay."""
    from drivers.storage.devicemapper import dm_thin_available

    return "devicemapper" if dm_thin_available() else "overlay"


def _open(scratch: Path, driver: str, big: int) -> Orchestrator:
    """An orchestrator on ``driver`` with its own root and SQLite database under ``scratch``."""
    from fsm import Orchestrator

    options = _pool_options(big) if driver == "devicemapper" else None
    if options is not None:
        print(f"devicemapper pool: {options}")
    return Orchestrator(database_url=f"sqlite:///{scratch / f'{driver}.db'}",
                        root=scratch / driver, storage=driver, storage_options=options)


def _release(orc: Orchestrator) -> None:
    """Close ``orc``; a devicemapper pool is put away first (its devices and loop files would
    outlive the process)."""
    from drivers.storage.devicemapper import DevicemapperDriver

    driver = orc.storage
    if isinstance(driver, DevicemapperDriver):
        for device in driver.devices.list_devices():
            for _ in range(device.mount_count):
                driver.put(device.hash)
        driver.shutdown_pool()
    orc.close()


def measure(budgeted: str, big_mib: int, rounds: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="berth-image-create-bench-"))
    orcs: list[Orchestrator] = []
    try:
        started = time.perf_counter()
        small_layout = write_layout(scratch / "small", SMALL_MIB * MiB, "localhost/small:1")
        big_layout = write_layout(scratch / "big", big_mib * MiB, "localhost/big:1")
        print(f"layouts written in {time.perf_counter() - started:.1f} s: "
              f"{SMALL_MIB} MiB and {big_mib} MiB (one layer each, uncompressed)")
        for driver in (budgeted, "vfs"):
            orcs.append(_open(scratch, driver, big_mib * MiB))
        for orc in orcs:
            started = time.perf_counter()
            for layout in (small_layout, big_layout):
                orc.load(layout)
            print(f"{orc.storage.name}: both images loaded in "
                  f"{time.perf_counter() - started:.1f} s")
        shutil.rmtree(small_layout)
        shutil.rmtree(big_layout)

        small, big = f"{SMALL_MIB} MiB image", f"{big_mib} MiB image"
        images = [(small, "localhost/small:1"), (big, "localhost/big:1")]
        results = {orc.storage.name: _measure(orc, images, rounds) for orc in orcs}
        report(results, budgeted, small, big, rounds)
    finally:
        for orc in orcs:
            _release(orc)
        shutil.rmtree(scratch, ignore_errors=True)


def report(results: dict[str, Samples], budgeted: str, small: str, big: str,
           rounds: int) -> None:
    rows = []
    for name, samples in results.items():
        for label in (small, big):
            values = samples.values[label]
            rows.append([name, label, samples.median(label), spread(values)])
    print_table(f"orc.create, {rounds} rounds after one warm-up (ms, medians)",
                ["storage", "image", "create ms", "min..max"], rows)
    print()
    for name, samples in results.items():
        ratio = samples.median(big) / samples.median(small)
        verdict = (f"budget <= {BUDGET}: {'met' if ratio <= BUDGET else 'MISSED'}"
                   if name == budgeted else "information: a copy of the data")
        print(f"{name:<12} create({big}) / create({small}) = {ratio:.2f}   ({verdict})")


def in_vm(args: argparse.Namespace) -> int:
    from tests.vm.harness import run_in_vm

    argv = [sys.executable, "-m", "benchmarks.image_create", "--rounds", str(args.rounds),
            "--big-mib", str(args.big_mib)]
    if args.quick:
        argv.append("--quick")
    big = QUICK_BIG_MIB if args.quick else args.big_mib
    memory = args.memory or 1536 + 8 * big
    result = run_in_vm(argv, cwd=str(REPO), memory_mb=memory, timeout=3000,
                       stream=sys.stdout.buffer)
    return result.exit_code


def main() -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--vm", action="store_true",
                           help="boot the project's VM (tests/vm) and run there")
    arguments.add_argument("--rounds", type=int, default=5)
    arguments.add_argument("--big-mib", type=int, default=BIG_MIB,
                           help=f"the big image's data, MiB (default {BIG_MIB})")
    arguments.add_argument("--memory", type=int, default=0,
                           help="with --vm: the VM's memory, MiB (default 1536 + 8 x the big "
                                "image)")
    args = arguments.parse_args()
    if args.vm:
        return in_vm(args)
    if os.geteuid() != 0:
        print("image_create: needs root (mounts, the storage drivers' files) (skipped)")
        return 0
    budgeted = budgeted_driver()
    if budgeted == "overlay":
        why_not = _overlay_unsupported()
        if why_not is not None:
            print(f"image_create: no dm-thin and no overlay here ({why_not}); use --vm "
                  "(skipped)")
            return 0
    banner("image_create", args.quick)
    print(f"storage: {budgeted} (the budget) and vfs" + (
        "; no dm-thin here: --vm measures devicemapper" if budgeted == "overlay" else ""))
    measure(budgeted, QUICK_BIG_MIB if args.quick else args.big_mib,
            2 if args.quick else args.rounds)
    return 0


def _overlay_unsupported() -> str | None:
    """Why overlay cannot hold layers in the directory the benchmark's roots go in, or None."""
    from drivers.storage.overlay import overlay_unsupported

    probe = Path(tempfile.mkdtemp(prefix="berth-image-create-probe-"))
    try:
        return overlay_unsupported(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
