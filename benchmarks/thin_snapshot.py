"""Thin snapshots: the time to snapshot a devicemapper layer holding 1 GiB of data against an
empty one (a thin snapshot shares blocks, so the data should not matter: target ratio <= 1.1),
and against vfs copying the same tree.

Needs the kernel's dm-thin target. Where the host lacks it (this project's machines), run it in
the project's VM, which ``--vm`` does for you::

    python -m benchmarks.thin_snapshot --vm            # boots tests/vm, runs itself inside
    python -m benchmarks.thin_snapshot --vm --quick    # 64 MiB instead of 1 GiB

Inside the VM the guest's writes live in its RAM (a tmpfs of half of it): the VM gets seven
times the data size, for the pool's copy and the two vfs trees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._common import REPO, median, parser

MiB = 1 << 20


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _fill(directory: Path, size: int) -> None:
    """Write ``size`` bytes of incompressible-looking data (a repeated random block)."""
    block = os.urandom(MiB)
    with (directory / "data.bin").open("wb") as out:
        for _ in range(size // MiB):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def measure(data_size: int, rounds: int) -> None:
    from sqlalchemy import create_engine

    from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions
    from drivers.storage.vfs import VfsDriver
    from fsm.store.thin import SQLDeviceMetadataStore
    from models.base import Base
    from models.thin import ThinDevice, ThinPool

    scratch = Path(tempfile.mkdtemp(prefix="berth-thin-bench-"))
    engine = create_engine(f"sqlite:///{scratch / 'berth.db'}")
    Base.metadata.create_all(engine, tables=[ThinPool.__table__, ThinDevice.__table__])
    base = max(4 * data_size, 256 * MiB)
    options = DevicemapperOptions(data_loop_size=6 * base, metadata_loop_size=128 * MiB,
                                  base_size=base)
    driver = DevicemapperDriver(scratch / "root", SQLDeviceMetadataStore(engine), options)
    vfs = VfsDriver(scratch / "vfs")
    try:
        driver.create("empty", None)
        driver.create("full", None)
        _fill(Path(driver.get("full")), data_size)
        driver.put("full")
        vfs.create("full", None)
        _fill(Path(vfs.get("full")), data_size)

        full_label = f"snapshot of {data_size // MiB} MiB"
        copy_label = f"vfs copy of {data_size // MiB} MiB"
        timings: dict[str, list[float]] = {"snapshot of empty": [], full_label: [],
                                           copy_label: []}
        for round_number in range(rounds):
            steps = [
                ("snapshot of empty", lambda: driver.create("child-empty", "empty"),
                 lambda: driver.remove("child-empty")),
                (full_label, lambda: driver.create("child-full", "full"),
                 lambda: driver.remove("child-full")),
                (copy_label, lambda: vfs.create("child", "full"),
                 lambda: vfs.remove("child")),
            ]
            # rotate the order each round, so no variant always runs first
            shift = round_number % len(steps)
            for label, action, undo in steps[shift:] + steps[:shift]:
                timings[label].append(_timed(action))
                undo()
        label_width = max(len(k) for k in timings)
        print(f"data size {data_size // MiB} MiB, {rounds} rounds (medians, seconds)")
        for label, values in timings.items():
            print(f"  {label:<{label_width}}  {median(values):8.3f}  "
                  f"({min(values):.3f}..{max(values):.3f})")
        empty = median(timings["snapshot of empty"])
        full = median(timings[full_label])
        copy = median(timings[copy_label])
        print(f"snapshot(full) / snapshot(empty) = {full / empty:.2f}   (target <= 1.1)")
        print(f"vfs copy / snapshot(full)        = {copy / full:.1f}")
    finally:
        for layer in ("child-empty", "child-full", "full", "empty"):
            driver.remove(layer)
        driver.shutdown_pool()
        shutil.rmtree(scratch, ignore_errors=True)


def in_vm(args: argparse.Namespace) -> int:
    from tests.vm.harness import run_in_vm

    argv = [sys.executable, "-m", "benchmarks.thin_snapshot", "--rounds", str(args.rounds)]
    if args.quick:
        argv.append("--quick")
    size = 64 * MiB if args.quick else 1024 * MiB
    result = run_in_vm(argv, cwd=str(REPO), memory_mb=1024 + 7 * size // MiB,
                       timeout=3000, stream=sys.stdout.buffer)
    return result.exit_code


def main() -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--vm", action="store_true",
                           help="boot the project's VM (tests/vm) and run there")
    arguments.add_argument("--rounds", type=int, default=5)
    args = arguments.parse_args()
    if args.vm:
        return in_vm(args)
    from drivers.storage.devicemapper import dm_thin_available

    if os.geteuid() != 0 or not dm_thin_available():
        print("thin_snapshot: needs root and the kernel's dm-thin target; use --vm "
              "(skipped)")
        return 0
    measure(64 * MiB if args.quick else 1024 * MiB, 2 if args.quick else args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
