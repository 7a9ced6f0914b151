"""Options of the devicemapper driver, checked all at once before anything touches the host."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from drivers.errors import InvalidDriverConfig

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

FILESYSTEMS = ("ext4",)
# The kernel's limits for a thin pool's data block: 64 KiB to 1 GiB, in 64 KiB steps.
MIN_BLOCK_SECTORS = 128
MAX_BLOCK_SECTORS = 2097152
# The pool's metadata device can address at most ~15.9 GiB; the kernel ignores the rest.
MAX_METADATA_SIZE = 16 * GiB


@dataclass(frozen=True)
class DevicemapperOptions:
    """How to build the thin pool and the devices in it.

    Example: ``DevicemapperOptions(base_size=20 * GiB, min_free_space=5)``.
    """

    #: Size of the sparse ``data`` file of loop-lvm (bytes).
    data_loop_size: int = 100 * GiB
    #: Size of the sparse ``metadata`` file of loop-lvm (bytes).
    metadata_loop_size: int = 2 * GiB
    #: Size of the base device, hence the smallest layer (bytes).
    base_size: int = 10 * GiB
    #: An existing, empty thin pool (``/dev/mapper/NAME``) to use instead of loop files.
    thin_pool_device: str | None = None
    #: Refuse new snapshots when less than this percentage of the pool is free. For loop files,
    #: also when their filesystem has less free than this percentage of their sizes (it is what
    #: the sparse files grow into), and refuse to create the pool in that case too.
    min_free_space: int = 10
    #: The pool's data block size in 512-byte sectors (128 = 64 KiB).
    block_size_sectors: int = 128
    #: Filesystem made on the base device.
    filesystem: str = "ext4"
    #: Extra arguments for mkfs (for example ``("-O", "^has_journal")``).
    mkfs_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        """Raise :class:`InvalidOptions` naming every bad option, or return."""
        problems = list(_problems(self))
        if problems:
            raise InvalidOptions(problems)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DevicemapperOptions:
        """Build options from strings, as a config file or command line gives them.

        Sizes accept a unit (``"512M"``, ``"10G"``); unknown names are reported with bad values.
        Example: ``DevicemapperOptions.from_mapping({"base_size": "20G"})``.
        """
        known = {f.name: f for f in fields(cls)}
        problems: list[OptionProblem] = []
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                problems.append(OptionProblem(name, value, f"one of {', '.join(known)}"))
            elif name in _SIZE_FIELDS:
                size = parse_size(value)
                if size is None:
                    problems.append(OptionProblem(name, value, "a size such as 512M or 10G"))
                else:
                    kwargs[name] = size
            elif name in ("min_free_space", "block_size_sectors"):
                try:
                    kwargs[name] = int(str(value).rstrip("%"))
                except ValueError:
                    problems.append(OptionProblem(name, value, "an integer"))
            elif name == "mkfs_args":
                kwargs[name] = tuple(value.split() if isinstance(value, str) else value)
            else:
                kwargs[name] = value
        if problems:
            raise InvalidOptions(problems)
        options = cls(**kwargs)
        options.validate()
        return options


@dataclass(frozen=True)
class OptionProblem:
    """One bad option: its name, the value given, and what would be accepted."""

    field: str
    value: object
    allowed: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: must be {self.allowed}"


class InvalidOptions(InvalidDriverConfig):
    """Some devicemapper options are bad; ``problems`` lists every one of them."""

    def __init__(self, problems: list[OptionProblem]) -> None:
        self.problems = problems
        super().__init__("invalid devicemapper options: " + "; ".join(str(p) for p in problems))


_SIZE_FIELDS = ("data_loop_size", "metadata_loop_size", "base_size")
_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int | None:
    """``"10G"`` -> bytes (binary units, as Docker's dm.basesize); ``None`` if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(o: DevicemapperOptions) -> list[OptionProblem]:
    found: list[OptionProblem] = []

    def check(name: str, ok: bool, allowed: str) -> None:
        if not ok:
            found.append(OptionProblem(name, getattr(o, name), allowed))

    check(
        "data_loop_size",
        _is_int(o.data_loop_size) and o.data_loop_size >= 16 * MiB and o.data_loop_size % 512 == 0,
        "a whole number of 512-byte sectors, at least 16 MiB",
    )
    check(
        "metadata_loop_size",
        _is_int(o.metadata_loop_size)
        and 2 * MiB <= o.metadata_loop_size <= MAX_METADATA_SIZE
        and o.metadata_loop_size % 4096 == 0,
        "a whole number of 4 KiB blocks between 2 MiB and 16 GiB",
    )
    check(
        "base_size",
        _is_int(o.base_size) and o.base_size >= 16 * MiB and o.base_size % 4096 == 0,
        "a whole number of 4 KiB blocks, at least 16 MiB",
    )
    check(
        "thin_pool_device",
        o.thin_pool_device is None
        or (
            isinstance(o.thin_pool_device, str)
            and re.fullmatch(r"/dev/mapper/[^/\s]+", o.thin_pool_device) is not None
        ),
        "unset (loop files) or a pool's path such as /dev/mapper/NAME",
    )
    check(
        "min_free_space",
        _is_int(o.min_free_space) and 0 <= o.min_free_space <= 99,
        "an integer percentage from 0 to 99",
    )
    check(
        "block_size_sectors",
        _is_int(o.block_size_sectors)
        and MIN_BLOCK_SECTORS <= o.block_size_sectors <= MAX_BLOCK_SECTORS
        and o.block_size_sectors % MIN_BLOCK_SECTORS == 0,
        "a multiple of 128 sectors (64 KiB) from 128 to 2097152 (1 GiB)",
    )
    check("filesystem", o.filesystem in FILESYSTEMS, f"one of {', '.join(FILESYSTEMS)}")
    check(
        "mkfs_args",
        isinstance(o.mkfs_args, tuple)
        and all(isinstance(a, str) and a and "\0" not in a for a in o.mkfs_args),
        "a tuple of non-empty strings",
    )
    return found
