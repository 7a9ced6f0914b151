"""The devicemapper driver's parts that need no kernel: options, parsing, error mapping, the
SQL store, crash points. The real thing is in tests/dm (run inside the test VM)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, update

from drivers.commands import run
from drivers.errors import (
    CommandTimeout,
    DeviceBusy,
    DeviceExists,
    HostError,
    NoSuchDevice,
    NotEnoughSpace,
)
from drivers.storage.devicemapper import DeviceSet, DeviceState, InvalidOptions, PoolRecord, dmsetup
from drivers.storage.devicemapper.config import DevicemapperOptions, GiB, MiB, parse_size
from drivers.storage.devicemapper.layout import check_layer_id, layout_for
from drivers.storage.devicemapper.metadata import StaleRecord
from drivers.storage.devicemapper.space import (
    check_rooms,
    loop_filesystem_room,
    pool_rooms,
    wanted_free,
)
from drivers.storage.devicemapper.status import human_size, pool_status_rows
from fsm.store import thin as thin_metadata
from fsm.store.thin import SQLDeviceMetadataStore
from models.base import Base
from models.thin import ThinDevice, ThinPool

REPO = Path(__file__).resolve().parent.parent

# --- options -------------------------------------------------------------------------------------


def test_default_options_are_docker_defaults() -> None:
    options = DevicemapperOptions()
    options.validate()
    assert (options.data_loop_size, options.metadata_loop_size) == (100 * GiB, 2 * GiB)
    assert (options.base_size, options.min_free_space) == (10 * GiB, 10)
    assert (options.block_size_sectors, options.filesystem) == (128, "ext4")


def test_every_bad_option_is_reported_at_once() -> None:
    options = DevicemapperOptions(
        data_loop_size=1000,
        metadata_loop_size=32 * GiB,
        base_size=1 * MiB,
        thin_pool_device="pool-without-path",
        min_free_space=150,
        block_size_sectors=100,
        filesystem="btrfs",
        mkfs_args=("",),
    )
    with pytest.raises(InvalidOptions) as caught:
        options.validate()
    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {
        "data_loop_size",
        "metadata_loop_size",
        "base_size",
        "thin_pool_device",
        "min_free_space",
        "block_size_sectors",
        "filesystem",
        "mkfs_args",
    }
    assert problems["min_free_space"].value == 150
    assert "0 to 99" in problems["min_free_space"].allowed
    message = str(caught.value)
    assert "min_free_space=150" in message and "filesystem='btrfs'" in message
    assert caught.value.errno == errno.EINVAL


def test_options_from_strings_parse_sizes_and_report_unknown_names_together() -> None:
    options = DevicemapperOptions.from_mapping({"base_size": "64M", "min_free_space": "5%"})
    assert (options.base_size, options.min_free_space) == (64 * MiB, 5)
    with pytest.raises(InvalidOptions) as caught:
        DevicemapperOptions.from_mapping({"basesize": "1G", "data_loop_size": "lots"})
    assert [p.field for p in caught.value.problems] == ["basesize", "data_loop_size"]
    assert parse_size("10G") == 10 * GiB and parse_size("2 MiB") == 2 * MiB
    assert parse_size("ten") is None


def test_bad_options_are_refused_before_anything_is_touched(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(InvalidOptions):
        DeviceSet(root, SQLDeviceMetadataStore(_engine(tmp_path)), DevicemapperOptions(base_size=0))
    assert not root.exists()


# --- dmsetup output ------------------------------------------------------------------------------


def test_thin_pool_status_is_parsed() -> None:
    line = (
        "0 2097152 thin-pool 7 178/16384 1543/16384 - rw discard_passdown queue_if_no_space - 1024"
    )
    status = dmsetup.parse_pool_status(line)
    assert status == dmsetup.ThinPoolStatus(
        transaction_id=7,
        used_metadata_blocks=178,
        total_metadata_blocks=16384,
        used_data_blocks=1543,
        total_data_blocks=16384,
        mode="rw",
        needs_check=False,
    )
    old_kernel = (
        "0 2097152 thin-pool 0 10/4096 0/16384 - ro no_discard_passdown "
        "error_if_no_space needs_check"
    )
    status = dmsetup.parse_pool_status(old_kernel)
    assert (status.mode, status.needs_check, status.total_metadata_blocks) == ("ro", True, 4096)


def test_failed_or_foreign_pool_status_is_an_error() -> None:
    with pytest.raises(HostError, match="has failed"):
        dmsetup.parse_pool_status("0 2097152 thin-pool Fail", "p")
    with pytest.raises(HostError, match="not a thin pool"):
        dmsetup.parse_pool_status("0 2097152 linear", "p")
    with pytest.raises(HostError, match="cannot parse"):
        dmsetup.parse_pool_status("0 2097152 thin-pool 1 x/y 0/1 - rw", "p")


def test_thin_status_is_parsed() -> None:
    written = dmsetup.parse_thin_status("0 131072 thin 17280 131071")
    assert written == dmsetup.ThinStatus(17280, 131071)
    assert dmsetup.parse_thin_status("0 131072 thin 0 -") == dmsetup.ThinStatus(0, None)


def test_info_columns_are_parsed_even_with_spaces_in_names() -> None:
    output = "berth-1a2b3c4d-pool dm-2 L--w 254 2 1 1 0\nodd name dm-5 L-sw 254 5 0 1 3\n"
    pool, odd = dmsetup.parse_info(output)
    assert (pool.name, pool.block_device, pool.open_count, pool.table_live) == (
        "berth-1a2b3c4d-pool",
        "dm-2",
        1,
        True,
    )
    assert (odd.name, odd.suspended, odd.minor, odd.event_number) == ("odd name", True, 5, 3)
    assert dmsetup.parse_info("No devices found\n") == []


def test_tables_follow_the_kernel_formats() -> None:
    assert dmsetup.thin_pool_table("/dev/loop1", "/dev/loop0", 2097152, 128) == (
        "0 2097152 thin-pool /dev/loop1 /dev/loop0 128 32768 2 skip_block_zeroing error_if_no_space"
    )
    assert dmsetup.thin_table("/dev/mapper/p", 3, 64 * MiB) == "0 131072 thin /dev/mapper/p 3"


# --- dmsetup errors ------------------------------------------------------------------------------

ARGV = ["dmsetup", "message", "berth-1a2b3c4d-pool", "0", "create_snap 2 1"]


@pytest.mark.parametrize(
    ("stderr", "cls", "code"),
    [
        (
            "device-mapper: remove ioctl on berth-x  failed: Device or resource busy\n"
            "Command failed.\n",
            DeviceBusy,
            errno.EBUSY,
        ),
        (
            "device-mapper: message ioctl on berth-x-pool  failed: File exists\nCommand failed.\n",
            DeviceExists,
            errno.EEXIST,
        ),
        (
            "device-mapper: message ioctl on berth-x-pool  failed: No data available\n"
            "Command failed.\n",
            NoSuchDevice,
            errno.ENODATA,
        ),
        ("Device does not exist.\nCommand failed.\n", NoSuchDevice, errno.ENXIO),
        ("Device berth-x not found\nCommand failed.\n", NoSuchDevice, errno.ENXIO),
        (
            "device-mapper: message ioctl on p  failed: Invalid argument\nCommand failed.\n",
            HostError,
            errno.EINVAL,
        ),
        ("something unheard of\n", HostError, None),
    ],
)
def test_dmsetup_error_text_maps_to_typed_errors(
    stderr: str, cls: type[HostError], code: int | None
) -> None:
    error = dmsetup.error_from_output(ARGV, stderr, 1)
    assert type(error) is cls
    assert error.errno == code
    assert error.command == tuple(ARGV) and error.stderr == stderr
    assert "dmsetup message failed" in str(error)


# --- commands ------------------------------------------------------------------------------------


def test_failed_command_carries_argv_and_stderr() -> None:
    with pytest.raises(HostError) as caught:
        run(["ls", "/no/such/path"], timeout=10)
    assert caught.value.command == ("ls", "/no/such/path")
    assert "No such file" in caught.value.stderr


def test_command_timeout_and_missing_command_are_host_errors() -> None:
    with pytest.raises(CommandTimeout) as caught:
        run(["sleep", "5"], timeout=0.2)
    assert caught.value.command == ("sleep", "5")
    with pytest.raises(HostError) as missing:
        run(["berth-no-such-command"], timeout=1)
    assert missing.value.errno == errno.ENOENT


# --- names ---------------------------------------------------------------------------------------


def test_names_derive_from_the_root_so_two_roots_never_collide(tmp_path: Path) -> None:
    one, two = layout_for(tmp_path / "a"), layout_for(tmp_path / "b")
    assert one.prefix != two.prefix and one.prefix.startswith("berth-") and len(one.prefix) == 14
    assert one.loop_pool_name == f"{one.prefix}-pool"
    assert one.hash_of(one.device_name("abc")) == "abc"
    assert one.hash_of(two.device_name("abc")) is None and one.hash_of(one.loop_pool_name) is None
    assert layout_for(tmp_path / "a" / ".." / "a").prefix == one.prefix


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-x", "x" * 65, "with space"])
def test_unusable_layer_ids_are_refused(bad: str) -> None:
    with pytest.raises(HostError, match="invalid layer id"):
        check_layer_id(bad)


def test_human_sizes_read_like_docker_info() -> None:
    assert human_size(65536) == "65.54kB"
    assert human_size(10 * GiB) == "10.74GB"
    assert human_size(0) == "0B"


# --- free space ----------------------------------------------------------------------------------


def test_wanted_free_space_rounds_up_like_the_percentage_comparison() -> None:
    assert wanted_free(1000, 10) == 100
    assert wanted_free(1001, 10) == 101  # 100 free of 1001 is 9.99%: short
    assert wanted_free(10 * GiB, 0) == 0
    for total in (1, 99, 1000, 65536 * 16384 + 7):
        for percent in (1, 10, 99):
            for free in (0, total * percent // 100, total * percent // 100 + 1):
                short = free < wanted_free(total, percent)
                assert short == (100 * free < percent * total), (total, percent, free)


def test_pool_counters_below_min_free_space_are_refused_with_the_numbers() -> None:
    # 64 KiB blocks: 1000 of 16384 free is 6.1%.
    status = dmsetup.ThinPoolStatus(3, 10, 4096, 15384, 16384, "rw", False)
    rooms = pool_rooms("p", status, 128, 10)
    assert [(r.free, r.wanted) for r in rooms] == [
        (1000 * 65536, wanted_free(16384 * 65536, 10)),
        (4086 * 4096, wanted_free(4096 * 4096, 10)),
    ]
    check_rooms("cannot create layer 'x'", rooms[1:], 10)
    with pytest.raises(NotEnoughSpace) as caught:
        check_rooms("cannot create layer 'x'", rooms, 10)
    assert str(caught.value) == (
        "cannot create layer 'x': the data space of thin pool p has 65.54MB free, less than the "
        "107.4MB that min_free_space=10% of 1.074GB keeps free; remove unused layers or grow "
        "the pool"
    )
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, HostError)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a real filesystem whose free space the test controls."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mount_point)])
    try:
        yield mount_point
    finally:
        run(["umount", str(mount_point)])


@pytest.mark.root
def test_loop_files_filesystem_free_space_is_read_and_checked(small_tmpfs: Path) -> None:
    data, metadata = str(small_tmpfs / "data"), str(small_tmpfs / "metadata")
    planned = {data: 64 * MiB, metadata: 8 * MiB}
    room = loop_filesystem_room(planned, 10)  # wants 7.2 MiB of the 8 free
    assert room is not None and (room.free, room.total) == (8 * MiB, 72 * MiB)
    check_rooms("cannot create thin pool p", [room], 10)

    with open(data, "wb") as file:  # an existing file counts with its own size
        file.truncate(96 * MiB)
    with open(small_tmpfs / "filler", "wb") as file:
        file.write(b"\0" * (4 * MiB))
    room = loop_filesystem_room(planned, 10)
    assert room is not None and (room.free, room.total) == (4 * MiB, 104 * MiB)
    with pytest.raises(NotEnoughSpace) as caught:
        check_rooms("cannot create layer 'x'", [room], 10)
    assert str(caught.value) == (
        f"cannot create layer 'x': the filesystem holding the pool's sparse loop files "
        f"({small_tmpfs}) has 4.194MB free, less than the 10.91MB that min_free_space=10% of "
        "109.1MB keeps free; free space on that filesystem, or lower min_free_space"
    )
    assert (caught.value.free, caught.value.wanted) == (4 * MiB, wanted_free(104 * MiB, 10))

    record = PoolRecord("p", "/dev/mapper/p", data, metadata, 128, 64 * MiB)
    status = dmsetup.ThinPoolStatus(1, 10, 4096, 0, 1536, "rw", False)  # 96 MiB, all free
    rows = dict(
        pool_status_rows(
            record,
            status,
            base_size=64 * MiB,
            filesystem="ext4",
            min_free_space=10,
            loop_devices=("/dev/loop0", "/dev/loop1"),
            loop_filesystem_free=room.free,
            device_count=1,
            active_count=0,
        )
    )
    assert rows["Loop Filesystem Available"] == "4.194MB"
    assert rows["Data Space Available"] == "4.194MB"  # not the pool's 100.7MB


def test_a_block_device_in_place_of_a_loop_file_has_no_filesystem_to_fill(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to("/dev/null")
    (tmp_path / "metadata").symlink_to("/dev/zero")
    sizes = {str(tmp_path / "data"): GiB, str(tmp_path / "metadata"): MiB}
    assert loop_filesystem_room(sizes, 10) is None


# --- crash points --------------------------------------------------------------------------------


def test_crash_point_kills_only_when_named() -> None:
    code = (
        "from drivers.crashpoints import crash_point\n"
        "crash_point('dm.other')\nprint('alive', flush=True)\ncrash_point('dm.here')\n"
        "print('not reached')\n"
    )
    env = {**os.environ, "BERTH_CRASH_AT": "dm.here", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "alive\n"


# --- the SQL store -------------------------------------------------------------------------------


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'berth.db'}")

    @event.listens_for(engine, "connect")
    def _foreign_keys(connection, _record):  # type: ignore[no-untyped-def]
        connection.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine, tables=[ThinPool.__table__, ThinDevice.__table__])
    return engine


POOL = PoolRecord(
    name="berth-00000000-pool",
    pool_device="/dev/mapper/berth-00000000-pool",
    data_file="/d",
    metadata_file="/m",
    block_size_sectors=128,
    base_size=64 * MiB,
)


@pytest.fixture
def store(tmp_path: Path) -> SQLDeviceMetadataStore:
    store = SQLDeviceMetadataStore(_engine(tmp_path))
    store.add_pool(POOL)
    return store


def test_create_opens_a_transaction_and_commit_closes_it(store: SQLDeviceMetadataStore) -> None:
    base = store.begin_create(POOL.name, "base", None, 64 * MiB)
    assert (base.device_id, base.transaction_id, base.state) == (1, 1, DeviceState.CREATING)
    opened = store.load_pool(POOL.name).open_transaction  # type: ignore[union-attr]
    assert opened is not None and (opened.transaction_id, opened.device_hash) == (1, "base")
    with pytest.raises(StaleRecord):
        store.begin_create(POOL.name, "other", "base", 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    pool = store.load_pool(POOL.name)
    assert pool is not None and (pool.transaction_id, pool.open_transaction) == (1, None)
    assert store.get_device(POOL.name, "base").state == DeviceState.CREATED  # type: ignore[union-attr]
    child = store.begin_create(POOL.name, "img", "base", 64 * MiB)
    assert (child.device_id, child.transaction_id) == (2, 2)


def test_duplicate_hash_is_refused(store: SQLDeviceMetadataStore) -> None:
    store.begin_create(POOL.name, "img", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    with pytest.raises(DeviceExists):
        store.begin_create(POOL.name, "img", None, 64 * MiB)


def test_abort_and_rollback_free_the_id(store: SQLDeviceMetadataStore) -> None:
    store.begin_create(POOL.name, "img", None, 64 * MiB)
    store.abort_transaction(POOL.name)
    assert store.get_device(POOL.name, "img") is None
    store.begin_create(POOL.name, "img", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    store.begin_delete(POOL.name, "img", DeviceState.CREATED)
    store.abort_transaction(POOL.name)  # the delete message failed: the layer is still there
    assert store.get_device(POOL.name, "img").state == DeviceState.CREATED  # type: ignore[union-attr]
    store.begin_delete(POOL.name, "img", DeviceState.CREATED)
    store.rollback_transaction(POOL.name)
    assert store.list_devices(POOL.name) == []
    pool = store.load_pool(POOL.name)
    assert pool is not None and (pool.transaction_id, pool.open_transaction) == (1, None)
    assert store.begin_create(POOL.name, "again", None, 64 * MiB).device_id == 1


def test_delete_commit_drops_the_row(store: SQLDeviceMetadataStore) -> None:
    store.begin_create(POOL.name, "img", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    with pytest.raises(StaleRecord):
        store.begin_delete(POOL.name, "img", DeviceState.ACTIVE)
    store.begin_delete(POOL.name, "img", DeviceState.CREATED)
    store.commit_transaction(POOL.name)
    assert store.get_device(POOL.name, "img") is None
    assert store.load_pool(POOL.name).transaction_id == 2  # type: ignore[union-attr]


def test_id_allocation_retries_when_another_process_took_the_id(
    store: SQLDeviceMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.begin_create(POOL.name, "first", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    real = thin_metadata._free_device_id
    answers = iter([1])  # the first answer is stale: id 1 was taken in the meantime

    def racy(conn, pool_id):  # type: ignore[no-untyped-def]
        return next(answers, None) or real(conn, pool_id)

    monkeypatch.setattr(thin_metadata, "_free_device_id", racy)
    second = store.begin_create(POOL.name, "second", None, 64 * MiB)
    assert second.device_id == 2
    pool = store.load_pool(POOL.name)
    assert pool is not None and pool.open_transaction is not None
    assert pool.open_transaction.device_id == 2


def test_ids_wrap_to_the_lowest_gap(store: SQLDeviceMetadataStore) -> None:
    store.begin_create(POOL.name, "a", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    with store.engine.begin() as conn:
        conn.execute(update(ThinDevice).values(device_id=0xFFFFFF))
    assert store.begin_create(POOL.name, "b", None, 64 * MiB).device_id == 1


def test_mount_count_is_compare_and_swap(store: SQLDeviceMetadataStore) -> None:
    store.begin_create(POOL.name, "img", None, 64 * MiB)
    store.commit_transaction(POOL.name, DeviceState.CREATED)
    store.set_state(
        POOL.name,
        "img",
        DeviceState.ACTIVE,
        expected=DeviceState.CREATED,
        mount_count=1,
        mount_path="/mnt/img",
    )
    store.set_mount_count(POOL.name, "img", 1, 2)
    with pytest.raises(StaleRecord):
        store.set_mount_count(POOL.name, "img", 1, 2)
    record = store.set_state(POOL.name, "img", DeviceState.CREATED, mount_count=0)
    assert (record.mount_count, record.mount_path) == (0, None)
