"""The DeviceSet: one thin pool and the devices in it, and the policy that keeps them consistent.

Every device operation is a persisted transition: the store records the state being tried, the
dm operation runs, the store records success (containerd's ``PoolDevice.transition``). Every change
of the pool's metadata is bracketed by an open and a closed pool transaction (Docker's
deviceset), so that :meth:`DeviceSet.start` can tell, after a crash, what did happen.

The store is never asked to hold a database transaction across a host command, and nothing is
cached in memory between calls: two processes on one data root see each other's changes (a file
lock serialises their operations).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator

from drivers import mounts
from drivers.crashpoints import crash_point
from drivers.errors import DeviceBusy, DeviceExists, HostError, InvalidDriverConfig, NoSuchDevice
from drivers.storage.devicemapper import dmsetup, filesystem, pool, space
from drivers.storage.devicemapper.config import DevicemapperOptions
from drivers.storage.devicemapper.layout import Layout, check_layer_id, layout_for
from drivers.storage.devicemapper.metadata import (
    BASE_HASH,
    DeviceMetadataStore,
    DeviceRecord,
    DeviceState,
    PoolRecord,
)
from drivers.storage.devicemapper.status import pool_status_rows

log = logging.getLogger(__name__)

#: The crash points this module offers (``BERTH_CRASH_AT``), in the order a snapshot meets them.
CRASH_POINTS = (
    "dm.after_open_transaction",
    "dm.after_suspend",
    "dm.after_create_thin",
    "dm.after_create_snap",
    "dm.after_set_transaction_id",
    "dm.after_activate",
    "dm.after_mkfs",
    "dm.after_mount",
    "dm.after_unmount",
    "dm.after_deactivate",
    "dm.after_delete",
)

USABLE = (DeviceState.CREATED, DeviceState.ACTIVE)


class DeviceSet:
    """One thin pool and its devices.

    ``root`` is the driver's data root (files go in ``<root>/devicemapper``); ``store`` persists
    the pool and device records. Nothing touches the host until :meth:`start`.

    Example::

        devices = DeviceSet("/var/lib/berth", SQLDeviceMetadataStore(engine))
        devices.start()
        devices.add_device("img1", parent=None)
        path = devices.mount_device("img1")
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: DeviceMetadataStore,
        options: DevicemapperOptions | None = None,
    ) -> None:
        self.options = options if options is not None else DevicemapperOptions()
        self.options.validate()
        self.layout: Layout = layout_for(root)
        self.pool_name = (
            os.path.basename(self.options.thin_pool_device)
            if self.options.thin_pool_device is not None
            else self.layout.loop_pool_name
        )
        self._store = store
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        #: start() has run in this process: the pool exists and its records can be read
        self._started = False

    # --- start -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the pool up (creating it on first use), settle what a crash left, and make sure
        the base device exists. Safe to call again; a failure leaves nothing new behind.
        """
        os.makedirs(self.layout.mnt_dir, exist_ok=True)
        with self._locked():
            record = self._store.load_pool(self.pool_name)
            if record is None:
                self._start_new_pool()
            else:
                self._start_known_pool(record)
            self._started = True

    def _start_new_pool(self) -> None:
        record = pool.new_pool_record(self.layout, self.options)
        if record.is_loopback:
            # Before the files exist: a pool whose files cannot grow is read-only at first use.
            planned = {
                self.layout.data_file: self.options.data_loop_size,
                self.layout.metadata_file: self.options.metadata_loop_size,
            }
            space.check_rooms(
                f"cannot create thin pool {record.name}",
                [space.loop_filesystem_room(planned, self.options.min_free_space)],
                self.options.min_free_space,
            )
        created_files: list[str] = []
        try:
            if record.is_loopback:
                created_files = pool.create_loop_files(self.layout, self.options)
            pool.activate(record)
            if len(created_files) < 2:  # not a pool this call just made from new files
                pool.check_empty(record)
            self._store.add_pool(record)
            self._make_base()
        except BaseException:
            log.warning("setting up thin pool %s failed; undoing it", record.name)
            self._discard_new_pool(record, created_files)
            raise

    def _discard_new_pool(self, record: PoolRecord, created_files: list[str]) -> None:
        def undo(step: Callable[[], object]) -> None:
            # Best effort, each step on its own: the error the caller sees is the first one.
            try:
                step()
            except Exception as exc:
                log.error("could not undo part of the setup of pool %s: %s", record.name, exc)

        undo(self._remove_our_dm_devices)
        undo(lambda: self._store.remove_pool(record.name))
        if record.is_loopback:  # named after our root: ours, even if a crashed start made it
            undo(lambda: pool.deactivate(record))
        for path in created_files:
            undo(functools.partial(os.remove, path))

    def _start_known_pool(self, record: PoolRecord) -> None:
        if self.options.base_size < record.base_size:
            raise InvalidDriverConfig(
                f"base_size={self.options.base_size}: must be at least the pool's base size "
                f"{record.base_size}; a base device cannot shrink"
            )
        activated = pool.activate(record)
        try:
            self._reconcile()
            self._ensure_base()
        except BaseException:
            if activated and not self._active_devices():
                with contextlib.suppress(HostError):
                    pool.deactivate(record)
            raise

    # --- the public operations -------------------------------------------------------------------

    def add_device(self, hash: str, parent: str | None = None, size: int | None = None) -> None:
        """Create ``hash`` as a snapshot of ``parent`` (of the base device when ``None``).

        ``size`` defaults to the parent's (the configured base size without a parent); it may be
        larger, never smaller.
        """
        check_layer_id(hash)
        if hash == BASE_HASH:
            raise DeviceExists(f"{BASE_HASH!r} is the name of the base device")
        with self._locked():
            record = self._pool()
            origin = self._store.get_device(record.name, parent or BASE_HASH)
            if origin is None or origin.state not in USABLE:
                what = f"parent layer {parent!r}" if parent else "the base device"
                state = f" is {origin.state}" if origin is not None else " does not exist"
                raise NoSuchDevice(f"cannot create layer {hash!r}: {what}{state}")
            if self._store.get_device(record.name, hash) is not None:
                raise DeviceExists(f"layer {hash!r} already exists")
            wanted = (
                size
                if size is not None
                else (origin.size if parent else max(origin.size, self.options.base_size))
            )
            if wanted < origin.size:
                raise HostError(
                    f"cannot create layer {hash!r} of {wanted} bytes: smaller than its parent's "
                    f"{origin.size} bytes; a filesystem cannot shrink",
                    errno=errno.EINVAL,
                )
            self._check_free_space(record, f"cannot create layer {hash!r}")
            self._snapshot(record, hash, origin, wanted)

    def delete_device(self, hash: str) -> None:
        """Unmount, deactivate and delete ``hash``; a layer that does not exist is gone already.
        :class:`DeviceBusy` (and nothing changed) when a process still uses its filesystem.
        """
        with self._locked():
            device = self._store.get_device(self._pool().name, hash)
            if device is None:
                return
            device = self._release(device)
            self._delete(device)
            shutil.rmtree(self.layout.mount_path(hash), ignore_errors=True)

    def mount_device(self, hash: str, mount_label: str = "") -> str:
        """Mount ``hash`` (first call) or count one more user (later calls); return the mount
        point ``<root>/devicemapper/mnt/<hash>``.
        """
        with self._locked():
            name = self._pool().name
            device = self._store.get_device(name, hash)
            if device is None or device.state not in USABLE:
                state = f"is {device.state}" if device is not None else "does not exist"
                raise NoSuchDevice(f"cannot mount layer {hash!r}: it {state}")
            path = self.layout.mount_path(hash)
            if device.mount_count > 0 and mounts.is_mounted(path):
                self._store.set_mount_count(name, hash, device.mount_count, device.mount_count + 1)
                return path
            os.makedirs(path, exist_ok=True)
            device = self._activate(device)
            try:
                mounts.mount(
                    dmsetup.device_path(self.layout.device_name(hash)),
                    path,
                    self.options.filesystem,
                    _label_options(mount_label),
                )
            except BaseException:
                self._deactivate(device)
                raise
            crash_point("dm.after_mount")
            self._store.set_state(
                name,
                hash,
                DeviceState.ACTIVE,
                expected=DeviceState.ACTIVE,
                mount_count=device.mount_count + 1,
                mount_path=path,
            )
            return path

    def unmount_device(self, hash: str) -> None:
        """Count one user less; the last one unmounts and deactivates. Without a mount, nothing.
        :class:`DeviceBusy` (count unchanged) when a process still uses the filesystem.
        """
        with self._locked():
            name = self._pool().name
            device = self._store.get_device(name, hash)
            if device is None or device.mount_count == 0:
                return
            if device.mount_count > 1:
                self._store.set_mount_count(name, hash, device.mount_count, device.mount_count - 1)
                return
            mounts.unmount(self.layout.mount_path(hash))
            crash_point("dm.after_unmount")
            device = self._store.set_state(
                name, hash, DeviceState.ACTIVE, expected=DeviceState.ACTIVE, mount_count=0
            )
            self._deactivate(device)

    def has_device(self, hash: str) -> bool:
        """Whether the layer exists (in any state but gone)."""
        device = self._store.get_device(self.pool_name, hash)
        return device is not None and device.state != DeviceState.DELETED

    def get_device(self, hash: str) -> DeviceRecord | None:
        return self._store.get_device(self.pool_name, hash)

    def list_devices(self) -> list[DeviceRecord]:
        return self._store.list_devices(self.pool_name)

    def status(self) -> list[tuple[str, str]]:
        """The pool's facts for a person: names, sizes, space used and free, device counts."""
        record = self._pool()
        devices = self._store.list_devices(record.name)
        base = next((d for d in devices if d.hash == BASE_HASH), None)
        try:
            room = self._loop_filesystem_room(record)
        except HostError as exc:
            log.warning("pool status without the loop files' filesystem: %s", exc)
            room = None
        return pool_status_rows(
            record,
            dmsetup.pool_status(record.name),
            base_size=base.size if base is not None else record.base_size,
            filesystem=self.options.filesystem,
            min_free_space=self.options.min_free_space,
            loop_devices=pool.loop_devices(record) if record.is_loopback else ("", ""),
            loop_filesystem_free=room.free if room is not None else None,
            device_count=len(devices),
            active_count=sum(d.state == DeviceState.ACTIVE for d in devices),
        )

    def deactivate_unused(self) -> None:
        """Deactivate every active device nobody has mounted; leave mounted ones and the pool
        (running containers use them).
        """
        with self._locked():
            for device in self._store.list_devices(self._pool().name):
                if device.state == DeviceState.ACTIVE and device.mount_count == 0:
                    self._deactivate(device)

    def shutdown_pool(self) -> None:
        """Deactivate unused devices, then take the pool down and detach its loop devices.
        :class:`DeviceBusy` while any device is still active (mounted).
        """
        with self._locked():
            self.deactivate_unused()
            busy = self._active_devices()
            if busy:
                raise DeviceBusy(
                    f"thin pool {self.pool_name} still has active devices: "
                    f"{', '.join(busy)}; put or remove them first"
                )
            pool.deactivate(self._pool())

    # --- snapshots -------------------------------------------------------------------------------

    def _snapshot(self, record: PoolRecord, hash: str, origin: DeviceRecord, size: int) -> None:
        device = self._store.begin_create(record.name, hash, origin.hash, size)
        crash_point("dm.after_open_transaction")
        try:
            with self._origin_paused(origin):
                dmsetup.create_snap(record.pool_device, device.device_id, origin.device_id)
                crash_point("dm.after_create_snap")
        except BaseException:
            self._store.abort_transaction(record.name)
            raise
        grow = size > origin.size
        self._commit(record.name, device, None if grow else DeviceState.CREATED)
        if grow:
            self._finish_filesystem(device, filesystem.grow_filesystem)

    @contextlib.contextmanager
    def _origin_paused(self, origin: DeviceRecord) -> Iterator[None]:
        # A snapshot of a device with writes in flight may catch half of them: suspend it first
        # (this also freezes a mounted filesystem) and resume whatever happens.
        name = self.layout.device_name(origin.hash)
        suspended = False
        if origin.state == DeviceState.ACTIVE:
            with contextlib.suppress(NoSuchDevice):
                dmsetup.suspend(name)
                suspended = True
        try:
            if suspended:
                crash_point("dm.after_suspend")
            yield
        finally:
            if suspended:
                dmsetup.resume(name)

    def _make_base(self) -> None:
        record = self._pool()
        device = self._store.begin_create(record.name, BASE_HASH, None, self.options.base_size)
        crash_point("dm.after_open_transaction")
        try:
            dmsetup.create_thin(record.pool_device, device.device_id)
            crash_point("dm.after_create_thin")
        except BaseException:
            self._store.abort_transaction(record.name)
            raise
        self._commit(record.name, device, None)

        def make(path: str) -> None:
            fs_uuid = filesystem.make_filesystem(
                path, self.options.filesystem, self.options.mkfs_args
            )
            crash_point("dm.after_mkfs")
            self._store.set_base_fs_uuid(record.name, fs_uuid)

        self._finish_filesystem(device, make)

    def _finish_filesystem(self, device: DeviceRecord, work: Callable[[str], None]) -> None:
        """Run ``work`` on a ``creating`` device's node, then call it ``created``; on failure
        delete the device (a layer whose creation failed must not linger).
        """
        name = self._pool().name
        path = dmsetup.device_path(self.layout.device_name(device.hash))
        try:
            self._activate(device, persist=False)
            try:
                work(path)
            finally:
                self._deactivate(device, persist=False)
            self._store.set_state(
                name, device.hash, DeviceState.CREATED, expected=DeviceState.CREATING
            )
        except BaseException as exc:
            log.warning("filesystem work on %s failed (%s); deleting it", device.hash, exc)
            with contextlib.suppress(HostError):
                current = self._store.get_device(name, device.hash)
                if current is not None:
                    self._delete(current)
            raise

    # --- deletion --------------------------------------------------------------------------------

    def _release(self, device: DeviceRecord) -> DeviceRecord:
        """Unmount (whatever the refcount) and deactivate, before a delete."""
        path = self.layout.mount_path(device.hash)
        mounts.unmount(path)
        if device.mount_count:
            device = self._store.set_state(
                self._pool().name, device.hash, device.state, expected=device.state, mount_count=0
            )
        if device.state == DeviceState.CREATED:
            # Not active, by records that every activation updates first. Were they wrong, the
            # pool would refuse to delete an open device (EBUSY) and the layer would stay.
            return device
        return self._deactivate(device)

    def _delete(self, device: DeviceRecord) -> None:
        """Delete a deactivated device from the pool in a pool transaction and drop its row."""
        record = self._pool()
        before = device.state
        device = self._store.begin_delete(record.name, device.hash, before)
        try:
            dmsetup.delete(record.pool_device, device.device_id)
        except NoSuchDevice:
            pass  # never made, or deleted before a crash: the goal is reached
        except BaseException:
            # The message failed and the pool is unchanged. A usable layer stays usable; one we
            # were cleaning up after a failure is shown as faulty rather than as a layer.
            usable = before == DeviceState.CREATED
            self._store.abort_transaction(
                record.name, DeviceState.CREATED if usable else DeviceState.FAULTY
            )
            raise
        crash_point("dm.after_delete")
        self._commit(record.name, device, None)

    # --- transactions ----------------------------------------------------------------------------

    def _commit(self, name: str, device: DeviceRecord, state: DeviceState | None) -> None:
        """Move the kernel's transaction id to the open one, then close it in the store."""
        record = self._pool()
        opened = record.open_transaction
        if opened is None:
            raise HostError(f"thin pool {name}: no open transaction to commit")
        try:
            dmsetup.set_transaction_id(
                record.pool_device, record.transaction_id, opened.transaction_id
            )
        except BaseException:
            # The pool message went through but its transaction id did not: berth cannot tell
            # the pool's state apart from a crash, so it marks the device for a person.
            self._store.set_state(name, device.hash, DeviceState.FAULTY)
            self._store.abort_transaction(name, DeviceState.FAULTY)
            raise
        crash_point("dm.after_set_transaction_id")
        self._store.commit_transaction(name, state)

    # --- activation ------------------------------------------------------------------------------

    def _activate(self, device: DeviceRecord, *, persist: bool = True) -> DeviceRecord:
        """Give the device a /dev/mapper node; ``active`` is recorded before it is made, so a
        crash leaves a record that recovery checks against the kernel.
        """
        name = self._pool().name
        was = device.state
        if persist and was != DeviceState.ACTIVE:
            device = self._store.set_state(name, device.hash, DeviceState.ACTIVE, expected=was)
        table = dmsetup.thin_table(self._pool().pool_device, device.device_id, device.size)
        try:
            dmsetup.create(self.layout.device_name(device.hash), table)
        except DeviceExists:
            return device  # active already: nothing to do
        except BaseException:
            if persist and was != DeviceState.ACTIVE:
                self._store.set_state(name, device.hash, was, expected=DeviceState.ACTIVE)
            raise
        crash_point("dm.after_activate")
        return device

    def _deactivate(self, device: DeviceRecord, *, persist: bool = True) -> DeviceRecord:
        try:
            dmsetup.remove(self.layout.device_name(device.hash))
            crash_point("dm.after_deactivate")
        except NoSuchDevice:
            pass  # not active: nothing to do
        if persist and device.state == DeviceState.ACTIVE:
            return self._store.set_state(
                self._pool().name,
                device.hash,
                DeviceState.CREATED,
                expected=DeviceState.ACTIVE,
                mount_count=0,
            )
        return device

    # --- recovery --------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Make the records and the kernel agree again after a crash or a reboot."""
        record = self._pool()
        kernel = dmsetup.pool_status(record.name)
        self._settle_open_transaction(record, kernel.transaction_id)
        record = self._pool()
        if record.transaction_id != kernel.transaction_id:
            raise HostError(
                f"thin pool {record.name}: the kernel's transaction id is "
                f"{kernel.transaction_id} but the database's is {record.transaction_id}; the "
                "pool's metadata and berth's database do not describe the same devices"
            )
        listing = {info.name: info for info in dmsetup.ls()}  # one question for all devices
        for device in self._store.list_devices(record.name):
            self._reconcile_device(device, listing.get(self.layout.device_name(device.hash)))
        self._remove_our_dm_devices(keep_owned=True, listing=list(listing.values()))

    def _settle_dead_holders_transaction(self) -> None:
        """Every pool transaction is opened and closed under the pool's lock: one still open
        when we take the lock was left by a process that died holding it (a ``kill -9`` of
        another berth after ``start()`` ran here). Settle it now, as ``start()`` would, or this
        long-lived driver could never change the pool again."""
        record = self._store.load_pool(self.pool_name)
        if record is not None and record.open_transaction is not None:
            self._settle_open_transaction(record, dmsetup.pool_status(record.name).transaction_id)

    def _settle_open_transaction(self, record: PoolRecord, kernel_id: int) -> None:
        opened = record.open_transaction
        if opened is None:
            return
        if opened.transaction_id == kernel_id:
            # The kernel committed it: only the store's half is missing.
            log.warning(
                "completing transaction %d of pool %s (device %s)",
                kernel_id,
                record.name,
                opened.device_hash,
            )
            device = self._store.get_device(record.name, opened.device_hash)
            done = device is not None and not self._needs_filesystem_work(device)
            self._store.commit_transaction(record.name, DeviceState.CREATED if done else None)
            return
        if opened.transaction_id < kernel_id:
            raise HostError(
                f"thin pool {record.name}: open transaction {opened.transaction_id} is older "
                f"than the kernel's {kernel_id}; the pool was changed outside berth"
            )
        # The kernel never committed it: undo whatever half of it reached the pool.
        log.warning(
            "rolling back transaction %d of pool %s (device %s, id %d)",
            opened.transaction_id,
            record.name,
            opened.device_hash,
            opened.device_id,
        )
        with contextlib.suppress(NoSuchDevice):
            dmsetup.remove(self.layout.device_name(opened.device_hash))
        with contextlib.suppress(NoSuchDevice):
            dmsetup.delete(record.pool_device, opened.device_id)
        self._store.rollback_transaction(record.name)

    def _needs_filesystem_work(self, device: DeviceRecord) -> bool:
        if device.hash == BASE_HASH or device.parent is None:
            return True
        parent = self._store.get_device(self.pool_name, device.parent)
        return parent is None or device.size > parent.size

    def _reconcile_device(self, device: DeviceRecord, info: dmsetup.DeviceInfo | None) -> None:
        name = self._pool().name
        dm_name = self.layout.device_name(device.hash)
        if info is not None and info.suspended:
            log.warning("resuming %s, left suspended", dm_name)
            dmsetup.resume(dm_name)
        path = self.layout.mount_path(device.hash)
        state = device.state
        if state == DeviceState.DELETED:
            self._store.forget_device(name, device.hash)
        elif state in (DeviceState.CREATING, DeviceState.DELETING):
            log.warning("layer %s was left %s; deleting it", device.hash, state)
            mounts.unmount(path)
            self._delete(self._deactivate(device, persist=False))
        elif state == DeviceState.ACTIVE and info is None:
            self._store.set_state(
                name, device.hash, DeviceState.CREATED, expected=DeviceState.ACTIVE, mount_count=0
            )
        elif state == DeviceState.ACTIVE:
            if device.mount_count > 0 and mounts.is_mounted(path):
                return  # in use, by a container that outlived us
            # Mounted by a call that never returned, or unmounted behind our back.
            mounts.unmount(path)
            self._deactivate(
                self._store.set_state(
                    name,
                    device.hash,
                    DeviceState.ACTIVE,
                    expected=DeviceState.ACTIVE,
                    mount_count=0,
                )
            )
        elif state == DeviceState.CREATED and info is not None:
            mounts.unmount(path)
            dmsetup.remove(dm_name)

    def _remove_our_dm_devices(
        self, keep_owned: bool = False, listing: list[dmsetup.DeviceInfo] | None = None
    ) -> None:
        """Remove this root's dm devices (all, or those no record owns), never the pool."""
        owned = {d.hash for d in self._store.list_devices(self.pool_name)} if keep_owned else set()
        for info in listing if listing is not None else dmsetup.ls():
            hash = self.layout.hash_of(info.name)
            if hash is None or info.name == self.pool_name or hash in owned:
                continue
            log.warning("removing dm device %s, which no record owns", info.name)
            mounts.unmount(self.layout.mount_path(hash))
            if info.suspended:
                dmsetup.resume(info.name)
            dmsetup.remove(info.name)

    def _ensure_base(self) -> None:
        record = self._pool()
        base = self._store.get_device(record.name, BASE_HASH)
        if base is None or record.base_fs_uuid is None:
            if base is not None:
                self._delete(self._release(base))
            self._store.set_base_fs_uuid(record.name, None)
            self._check_free_space(record, f"cannot make the base device of pool {record.name}")
            self._make_base()
            return
        if base.state not in USABLE:
            raise HostError(
                f"the base device of pool {record.name} is {base.state}; "
                "remove the pool's files and database rows to start afresh"
            )
        self._verify_base_uuid(record, base)

    def _verify_base_uuid(self, record: PoolRecord, base: DeviceRecord) -> None:
        dm_name = self.layout.device_name(BASE_HASH)
        activated = True
        try:
            dmsetup.create(
                dm_name, dmsetup.thin_table(record.pool_device, base.device_id, base.size)
            )
        except DeviceExists:
            activated = False
        try:
            uuid = filesystem.filesystem_uuid(dmsetup.device_path(dm_name))
        finally:
            if activated:
                dmsetup.remove(dm_name)
        if uuid != record.base_fs_uuid:
            raise HostError(
                f"the base device of pool {record.name} holds filesystem {uuid}, but berth made "
                f"{record.base_fs_uuid}: the pool is not the one the database describes"
            )

    # --- helpers ---------------------------------------------------------------------------------

    def _pool(self) -> PoolRecord:
        record = self._store.load_pool(self.pool_name)
        if record is None:
            raise HostError(f"thin pool {self.pool_name} is not set up; call start() first")
        return record

    def _active_devices(self) -> list[str]:
        return [
            info.name
            for info in dmsetup.ls()
            if self.layout.hash_of(info.name) is not None and info.name != self.pool_name
        ]

    def _check_free_space(self, record: PoolRecord, action: str) -> None:
        """Refuse ``action`` (:class:`NotEnoughSpace`) unless the pool, and the filesystem under
        its loop files, have what ``min_free_space`` asks kept free; changes nothing.
        """
        status = dmsetup.pool_status(record.name)
        if status.mode != "rw":
            raise HostError(
                f"thin pool {record.name} is {status.mode}; it needs a person "
                "(thin_check, or more space)",
                errno=errno.ENOSPC,
            )
        minimum = self.options.min_free_space
        rooms = space.pool_rooms(record.name, status, record.block_size_sectors, minimum)
        space.check_rooms(action, [*rooms, self._loop_filesystem_room(record)], minimum)

    def _loop_filesystem_room(self, record: PoolRecord) -> space.Room | None:
        if record.data_file is None or record.metadata_file is None:
            return None
        # The files exist for a pool that is up: their own sizes count, not these.
        sizes = {record.data_file: 0, record.metadata_file: 0}
        return space.loop_filesystem_room(sizes, self.options.min_free_space)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One operation at a time: threads by the RLock, processes by flock on a file in the
        # data root (released by the kernel if the process dies).
        with self._thread_lock:
            if self._lock_depth == 0:
                os.makedirs(self.layout.home, exist_ok=True)
                self._lock_fd = os.open(self.layout.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                if self._lock_depth == 1 and self._started:
                    self._settle_dead_holders_transaction()
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # closing drops the flock
                    self._lock_fd = None


def _label_options(mount_label: str) -> list[str]:
    # An SELinux context only means something, and is only accepted, where SELinux is on.
    if mount_label and os.path.exists("/sys/fs/selinux/enforce"):
        return [f'context="{mount_label}"']
    return []
