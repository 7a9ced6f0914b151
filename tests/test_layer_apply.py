"""Applying image layers onto a tree: whiteouts, what a layer keeps, the writes a layer may not
make, broken blobs, and the two digests taken on the way. Real files on disk, as root."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.errors import HostError
from drivers.image import (
    AppliedLayer,
    CorruptLayer,
    DigestMismatch,
    LayerError,
    UnsafeLayer,
    apply_layer,
)
from drivers.image import stream as layer_stream

pytestmark = pytest.mark.root

T0 = 1_600_000_000
Entry = tuple[tarfile.TarInfo, bytes | None]


# -- building layers ---------------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    return info


def reg(name: str, data: bytes = b"", *, mode: int = 0o644, uid: int = 0, gid: int = 0,
        mtime: float = T0, xattrs: dict[str, bytes] | None = None) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
    info.size = len(data)
    return with_xattrs((info, data), xattrs or {})


def with_xattrs(entry: Entry, xattrs: dict[str, bytes]) -> Entry:
    """Extended attributes as GNU tar and Docker write them: PAX ``SCHILY.xattr.NAME``."""
    for key, value in xattrs.items():
        entry[0].pax_headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return entry


def dir_(name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0,
         mtime: float = T0) -> Entry:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid, mtime), None


def sym(name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: float = T0) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
    info.linkname = target
    return info, None


def hard(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644, 0, 0, T0)
    info.linkname = target
    return info, None


def node(name: str, kind: bytes, *, mode: int, major: int = 0, minor: int = 0) -> Entry:
    info = _info(name, kind, mode, 0, 0, T0)
    info.devmajor, info.devminor = major, minor
    return info, None


def whiteout(path: str) -> Entry:
    parent, _, name = path.rpartition("/")
    return reg(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory: str) -> Entry:
    return reg(f"{directory}/.wh..wh..opq")


def layer(*entries: Entry) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def apply(root: Path, blob: bytes, **expect: str) -> AppliedLayer:
    return apply_layer(root, io.BytesIO(blob), **expect)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def walk(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            yield Path(directory, name)


# -- the merged tree ---------------------------------------------------------------------


def test_three_layers_make_the_tree_with_whiteouts_and_everything_kept(root: Path) -> None:
    apply(root, layer(
        dir_("bin"), dir_("etc"), dir_("dev"), dir_("run"),
        reg("etc/deleted", b"gone"), reg("etc/replaced", b"v1"), reg("etc/kept", b"kept"),
        dir_("gone"), dir_("gone/sub"), reg("gone/sub/file", b"x"),
        dir_("home", mode=0o755),
        reg("home/old", b"old"),
    ))
    second = apply(root, layer(
        whiteout("etc/deleted"),
        reg("etc/replaced", b"v2", mtime=T0 + 0.25),
        whiteout("gone"),
        reg("bin/tool", b"\x7fELF tool", mode=0o4755),
        hard("bin/tool-again", "bin/tool"),
        sym("bin/sh", "tool"),
        sym("bin/absolute", "/bin/tool"),
        sym("bin/dangling", "/nowhere/at/all"),
        node("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3),
        node("dev/loop9", tarfile.BLKTYPE, mode=0o660, major=7, minor=9),
        node("run/fifo", tarfile.FIFOTYPE, mode=0o620),
        dir_("home", mode=0o711, mtime=T0 + 100),  # over a lower directory: merged
        dir_("home/user", mode=0o750, uid=1000, gid=1000, mtime=T0 + 7),
        reg("home/user/.profile", b"PS1=$ ", mode=0o640, uid=1000, gid=1000, mtime=T0 + 3),
        dir_("tmp", mode=0o1777),
        reg("bin/setgid", b"g", mode=0o2755, gid=50),
    ))
    third = apply(root, layer(
        whiteout("bin/sh"),
        hard("etc/kept-again", "etc/kept"),  # to a file of a lower layer
        reg("etc/fresh", b"fresh"), whiteout("etc/fresh"),  # same layer: the entry stays
        whiteout("etc/replaced"), reg("etc/replaced", b"v3"),
    ))

    assert not (root / "etc/deleted").exists()
    assert not (root / "gone").exists()
    assert (root / "etc/replaced").read_bytes() == b"v3"
    assert (root / "etc/fresh").read_bytes() == b"fresh"
    assert os.lstat(root / "etc/replaced").st_mtime_ns == T0 * 10**9
    tool = os.lstat(root / "bin/tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and stat.S_ISREG(tool.st_mode)
    assert stat.S_IMODE(os.lstat(root / "bin/setgid").st_mode) == 0o2755
    assert os.lstat(root / "bin/setgid").st_gid == 50
    assert os.lstat(root / "bin/tool-again").st_ino == tool.st_ino and tool.st_nlink == 2
    assert os.lstat(root / "etc/kept-again").st_ino == os.lstat(root / "etc/kept").st_ino
    assert not (root / "bin/sh").is_symlink() and (root / "bin/tool").exists()
    assert os.readlink(root / "bin/absolute") == "/bin/tool"
    assert os.readlink(root / "bin/dangling") == "/nowhere/at/all"
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and stat.S_IMODE(null.st_mode) == 0o666
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    loop = os.lstat(root / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    fifo = os.lstat(root / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    user = os.lstat(root / "home/user")
    assert (user.st_uid, user.st_gid, stat.S_IMODE(user.st_mode)) == (1000, 1000, 0o750)
    assert user.st_mtime_ns == (T0 + 7) * 10**9  # set after .profile was written in it
    profile = os.lstat(root / "home/user/.profile")
    assert (profile.st_uid, profile.st_gid, profile.st_mtime_ns) == (1000, 1000,
                                                                      (T0 + 3) * 10**9)
    home = os.lstat(root / "home")
    assert stat.S_IMODE(home.st_mode) == 0o711 and home.st_mtime_ns == (T0 + 100) * 10**9
    assert (root / "home/old").read_bytes() == b"old"
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert not [p for p in walk(root) if p.name.startswith(".wh.")]

    assert second.entries == 16 and second.bytes_written == len(b"v2\x7fELF toolPS1=$ g")
    assert third.entries == 6 and third.xattr_warnings == ()


def test_a_fractional_mtime_is_kept_to_the_nanosecond(root: Path) -> None:
    apply(root, layer(reg("f", b"x", mtime=T0 + 0.125), sym("l", "f", mtime=T0 + 0.5)))
    assert os.lstat(root / "f").st_mtime_ns == T0 * 10**9 + 125_000_000
    assert os.lstat(root / "l").st_mtime_ns == T0 * 10**9 + 500_000_000


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_an_opaque_directory_keeps_only_the_upper_layers_entries(root: Path, where: str) -> None:
    apply(root, layer(
        dir_("d"), reg("d/old"), sym("d/old-link", "old"), dir_("d/sub"), reg("d/sub/old"),
        dir_("d/olddir"), reg("d/olddir/deep"), reg("outside-d", b"stays"),
    ))
    new = [reg("d/new", b"new"), dir_("d/sub"), reg("d/sub/new", b"sub-new")]
    marker = [opaque("d")]
    entries = {"before": marker + new, "between": new[:1] + marker + new[1:],
               "after": new + marker}[where]
    apply(root, layer(*entries))
    assert sorted(str(p.relative_to(root)) for p in walk(root / "d")) == [
        "d/new", "d/sub", "d/sub/new"]
    assert (root / "d/sub/new").read_bytes() == b"sub-new"
    assert (root / "outside-d").read_bytes() == b"stays"


def test_an_opaque_marker_at_the_root_empties_it_of_lower_entries(root: Path) -> None:
    apply(root, layer(reg("a"), dir_("b"), reg("b/c")))
    apply(root, layer(reg("x", b"x"), reg(".wh..wh..opq")))
    assert sorted(p.name for p in root.iterdir()) == ["x"]


def test_a_whiteout_of_a_symlink_removes_the_link_not_its_target(root: Path,
                                                                   tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    apply(root, layer(sym("abs", str(outside)), dir_("dir"), reg("dir/file"),
                      sym("rel", "dir")))
    apply(root, layer(whiteout("abs"), whiteout("rel")))
    assert not os.path.lexists(root / "abs") and not os.path.lexists(root / "rel")
    assert (outside / "keep").read_text() == "keep" and (root / "dir/file").exists()


def test_whiteouts_of_things_that_are_not_there_change_nothing(root: Path) -> None:
    apply(root, layer(reg("a", b"a")))
    applied = apply(root, layer(whiteout("missing"), whiteout("no/such/dir/file"),
                                opaque("no/such/dir")))
    assert applied.entries == 3
    assert sorted(p.name for p in root.iterdir()) == ["a"]
    assert not (root / "no").exists()


def test_missing_parent_directories_are_made(root: Path) -> None:
    apply(root, layer(reg("usr/share/doc/readme", b"r")))
    assert (root / "usr/share/doc/readme").read_bytes() == b"r"
    assert stat.S_IMODE(os.lstat(root / "usr/share").st_mode) == 0o755


def test_an_entry_replaces_what_a_lower_layer_had_at_its_path(root: Path) -> None:
    apply(root, layer(dir_("d"), reg("d/x"), reg("f", b"file"), sym("s", "f")))
    apply(root, layer(reg("d", b"now a file"), dir_("f"), reg("s", b"not a link")))
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "f").is_dir() and not (root / "s").is_symlink()
    assert (root / "s").read_bytes() == b"not a link"


def test_a_large_file_is_copied_whole_and_its_zeros_become_holes(root: Path) -> None:
    data = os.urandom(3 << 20) + bytes(4 << 20) + b"tail"
    blob = gzip.compress(layer(reg("big", data)))
    applied = apply(root, blob)
    assert (root / "big").read_bytes() == data and applied.bytes_written == len(data)
    assert os.stat(root / "big").st_blocks * 512 < len(data) - (2 << 20)


def test_symlinks_to_directories_inside_the_root_are_followed(root: Path) -> None:
    """``lib -> usr/lib`` (merged /usr): a layer that writes lib/x writes usr/lib/x, as Docker
    does, and a whiteout through it deletes there."""
    apply(root, layer(dir_("usr"), dir_("usr/lib"), reg("usr/lib/old"), sym("lib", "usr/lib"),
                      dir_("usr/bin"), sym("bin", "./usr/../usr/bin")))
    apply(root, layer(reg("lib/x", b"x"), whiteout("lib/old"), reg("bin/sh", b"sh")))
    assert (root / "usr/lib/x").read_bytes() == b"x"
    assert not (root / "usr/lib/old").exists()
    assert (root / "usr/bin/sh").read_bytes() == b"sh"
    assert os.readlink(root / "lib") == "usr/lib"


def test_a_blob_can_be_given_as_a_path(root: Path, tmp_path: Path) -> None:
    blob = gzip.compress(layer(reg("a", b"a")))
    (tmp_path / "blob").write_bytes(blob)
    applied = apply_layer(root, tmp_path / "blob")
    assert applied.blob_digest == sha256(blob) and (root / "a").read_bytes() == b"a"
    with pytest.raises(LayerError, match="cannot open"):
        apply_layer(root, tmp_path / "missing")


# -- extended attributes -----------------------------------------------------------------


def _user_xattrs_work(directory: Path) -> bool:
    probe = directory / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


def test_extended_attributes_are_kept(root: Path) -> None:
    if not _user_xattrs_work(root):
        pytest.skip("the temporary filesystem refuses user extended attributes")
    binary = bytes(range(256))
    applied = apply(root, layer(
        reg("f", b"data", xattrs={"user.berth": b"kept", "user.binary": binary}),
        with_xattrs(dir_("d", mode=0o700), {"user.dir": b"on a directory"}),
        with_xattrs(sym("link", "f"), {"user.link": b"refused"}),
    ))
    assert os.getxattr(root / "f", "user.berth") == b"kept"
    assert os.getxattr(root / "f", "user.binary") == binary
    assert os.getxattr(root / "d", "user.dir") == b"on a directory"
    # Linux refuses user.* attributes on symlinks (EPERM): a warning, not a failure
    assert os.readlink(root / "link") == "f"
    assert len(applied.xattr_warnings) == 1 and "user.link" in applied.xattr_warnings[0]


def test_a_capability_survives_the_chown(root: Path) -> None:
    """security.capability is cleared by chown(2): it must be set after the owner."""
    # VFS_CAP_REVISION_2, cap_net_raw (13) permitted + effective
    capability = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)
    apply(root, layer(reg("ping", b"\x7fELF", mode=0o755, uid=1000, gid=1000,
                          xattrs={"security.capability": capability})))
    assert os.getxattr(root / "ping", "security.capability") == capability
    assert os.lstat(root / "ping").st_uid == 1000


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A filesystem that stores no extended attribute at all."""
    mountpoint = tmp_path / "ramfs"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "ramfs", "berth-test", str(mountpoint)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a ramfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_security_attributes_the_filesystem_refuses_are_counted_warnings(ramfs: Path) -> None:
    applied = apply(ramfs, layer(
        reg("bin/ping", b"ping", xattrs={"security.selinux": b"system_u:object_r:bin_t:s0",
                                         "security.ima": b"\x03\x02"}),
        reg("etc/motd", b"hi"),
    ))
    assert (ramfs / "bin/ping").read_bytes() == b"ping"
    assert (ramfs / "etc/motd").read_bytes() == b"hi"
    assert len(applied.xattr_warnings) == 2
    assert all("bin/ping" in w and "security." in w for w in applied.xattr_warnings)


# -- what a layer may not do -------------------------------------------------------------


def _outside_state(tmp_path: Path) -> list[tuple[str, int, int, bytes | None]]:
    """Everything under tmp_path except the root, and the link count of the host's passwd."""
    rows = [("/etc/passwd", os.lstat("/etc/passwd").st_nlink, 0, None)]
    for directory, dirs, files in os.walk(tmp_path):
        if Path(directory) == tmp_path:
            dirs.remove("root")
        for name in [*dirs, *files]:
            path = Path(directory, name)
            info = os.lstat(path)
            data = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
            rows.append((str(path), info.st_mode, info.st_nlink, data))
    return sorted(rows, key=lambda row: row[0])


UNIQUE = f"berth-escape-{uuid.uuid4().hex[:8]}"

Layers = Callable[[str], list[list[Entry]]]  # the layers, given the sentinel's path

UNSAFE: dict[str, tuple[Layers, str]] = {
    "dot-dot": (lambda out: [[reg(f"../{UNIQUE}", b"x")]], "outside"),
    "dot-dot-after-a-directory": (
        lambda out: [[dir_("a"), reg(f"a/../../{UNIQUE}", b"x")]], "outside"),
    "absolute-symlink-then-a-file-through-it": (
        lambda out: [[sym("a", out), reg("a/file", b"x")]], "absolute"),
    "climbing-symlink-then-a-file-through-it": (
        lambda out: [[sym("a", "../../.."), reg(f"a/{UNIQUE}", b"x")]], "out of the layer"),
    "relative-symlink-to-a-sibling-of-the-root": (
        lambda out: [[sym("a", "../outside"), reg("a/file", b"x")]], "out of the layer"),
    "symlink-chain-to-the-host-root": (
        lambda out: [[sym("a", "b"), sym("b", "/"), reg(f"a/etc/{UNIQUE}", b"x")]],
        "absolute"),
    "symlink-of-a-lower-layer": (lambda out: [[sym("a", out)], [reg("a/file", b"x")]],
                                 "absolute"),
    "directory-through-a-symlink": (lambda out: [[sym("a", out), dir_("a/sub")]], "absolute"),
    "hard-link-to-the-hosts-passwd": (lambda out: [[hard("h", "../../etc/passwd")]], "outside"),
    "hard-link-to-a-sibling-of-the-root": (lambda out: [[hard("h", "../outside/secret")]],
                                           "outside"),
    "hard-link-through-a-symlink": (lambda out: [[sym("a", out), hard("h", "a/secret")]],
                                    "absolute"),
    "whiteout-through-a-symlink": (lambda out: [[sym("a", out)], [whiteout("a/secret")]],
                                   "absolute"),
    "opaque-marker-below-a-symlink": (lambda out: [[sym("a", out)], [opaque("a/secret")]],
                                      "absolute"),
    "symlink-loop": (lambda out: [[sym("a", "b"), sym("b", "a"), reg("a/x")]],
                     "too many symlinks"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_a_layer_cannot_write_outside_its_root(root: Path, tmp_path: Path, case: str) -> None:
    """Refused with UnsafeLayer, naming the entry; nothing outside the root changes: not the
    sentinel directory beside it, not the host's /etc/passwd, not / nor the directories above."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    before = _outside_state(tmp_path)
    layers, reason = UNSAFE[case]
    *lower, last = [layer(*entries) for entries in layers(str(outside))]
    for blob in lower:
        apply(root, blob)
    with pytest.raises(UnsafeLayer, match=reason) as refused:
        apply(root, last)
    assert isinstance(refused.value, HostError) and refused.value.entry
    assert _outside_state(tmp_path) == before
    for far in (tmp_path.parent / UNIQUE, tmp_path.parent.parent / UNIQUE, Path("/", UNIQUE),
                Path("/etc", UNIQUE)):
        assert not os.path.lexists(far)


def test_an_absolute_name_is_stored_under_the_root(root: Path) -> None:
    name = f"/{UNIQUE}/file"
    try:
        apply(root, layer(reg(name, b"abs"), sym(f"/{UNIQUE}/link", "/etc/passwd")))
        assert (root / UNIQUE / "file").read_bytes() == b"abs"
        assert os.readlink(root / UNIQUE / "link") == "/etc/passwd"
        assert not os.path.lexists(f"/{UNIQUE}")
    finally:
        shutil.rmtree(f"/{UNIQUE}", ignore_errors=True)


def test_a_symlink_in_the_last_component_is_replaced_not_followed(root: Path,
                                                                   tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    apply(root, layer(sym("f", str(outside / "secret")), sym("d", str(outside)),
                      sym("n", str(outside / "node"))))
    apply(root, layer(reg("f", b"mine", mode=0o600), dir_("d", mode=0o700), reg("d/x", b"x"),
                      node("n", tarfile.FIFOTYPE, mode=0o600)))
    assert (outside / "secret").read_bytes() == b"secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert stat.S_IMODE(os.lstat(outside).st_mode) != 0o700
    assert (root / "f").read_bytes() == b"mine" and not (root / "f").is_symlink()
    assert (root / "d").is_dir() and not (root / "d").is_symlink()
    assert (root / "d/x").read_bytes() == b"x"
    assert stat.S_ISFIFO(os.lstat(root / "n").st_mode)


def test_an_opaque_marker_in_a_symlinks_place_hides_nothing_through_it(
        root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    apply(root, layer(sym("a", str(outside))))
    apply(root, layer(opaque("a")))
    assert (outside / "secret").read_bytes() == b"secret"
    assert os.readlink(root / "a") == str(outside)


def test_hard_links_to_nothing_or_to_a_directory_are_refused(root: Path) -> None:
    apply(root, layer(dir_("d")))
    with pytest.raises(CorruptLayer, match="does not exist"):
        apply(root, layer(hard("h", "missing")))
    with pytest.raises(CorruptLayer, match="directory"):
        apply(root, layer(hard("h", "d")))
    assert not os.path.lexists(root / "h")


def test_a_whiteout_that_would_climb_out_is_refused(root: Path) -> None:
    with pytest.raises(UnsafeLayer):
        apply(root, layer(reg("../.wh.root")))


# -- broken blobs ------------------------------------------------------------------------


def _good_layer() -> bytes:
    return layer(dir_("d"), *(reg(f"d/f{i}", os.urandom(20_000)) for i in range(20)))


def test_a_truncated_gzip_stream_is_a_clear_error(root: Path) -> None:
    blob = gzip.compress(_good_layer())
    for cut in (len(blob) // 2, len(blob) - 4):
        with pytest.raises(CorruptLayer, match="gzip stream ends in the middle"):
            apply(root, blob[:cut])


def test_a_corrupt_gzip_stream_is_a_clear_error(root: Path) -> None:
    blob = bytearray(gzip.compress(_good_layer()))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(CorruptLayer, match="gzip"):
        apply(root, bytes(blob))


def test_a_truncated_tar_stream_is_a_clear_error(root: Path) -> None:
    raw = _good_layer()
    second_header = 1024 + 20480  # d, f0's header, f0's data
    for cut in (second_header, second_header + 100, 512 * 10, len(raw) - 10240):
        with pytest.raises(CorruptLayer, match="truncated"):
            apply(root, raw[:cut])


def test_what_is_not_a_tar_stream_is_a_clear_error(root: Path) -> None:
    raw = _good_layer()
    second_header = 1024 + 20480
    damaged = raw[:second_header] + b"\x01" * 512 + raw[second_header + 512:]
    for blob in (b"", b"not a tar stream at all" * 100, damaged):
        with pytest.raises(CorruptLayer):
            apply(root, blob)
    with pytest.raises(CorruptLayer, match="xz"):
        apply(root, b"\xfd7zXZ\x00" + bytes(100))


def test_an_unsupported_entry_type_is_refused(root: Path) -> None:
    info = _info("volume", b"V", 0o644, 0, 0, T0)  # a GNU volume label
    with pytest.raises(CorruptLayer, match="unsupported"):
        apply(root, layer((info, None)))


# -- digests -----------------------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    if shutil.which("zstd") is None:
        pytest.skip("the zstd program is not installed (apt-get install zstd)")
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True,
                          check=True).stdout


def test_gzip_blob_digest_and_diff_id_are_those_of_the_bytes(root: Path) -> None:
    raw = _good_layer()
    blob = gzip.compress(raw)
    applied = apply(root, blob, blob_digest=sha256(blob), diff_id=sha256(raw))
    assert (applied.blob_digest, applied.diff_id) == (sha256(blob), sha256(raw))
    assert applied.compression == "gzip" and applied.tar_size == len(raw)


def test_plain_tar_has_one_digest_for_both(root: Path) -> None:
    raw = _good_layer() + bytes(4096)  # padding after the archive counts too
    applied = apply(root, raw)
    assert applied.blob_digest == applied.diff_id == sha256(raw)
    assert applied.compression == "none"


def test_several_gzip_members_make_one_stream(root: Path) -> None:
    raw = _good_layer()
    blob = gzip.compress(raw[:5000]) + gzip.compress(raw[5000:])
    applied = apply(root, blob)
    assert (applied.blob_digest, applied.diff_id) == (sha256(blob), sha256(raw))
    assert len(list((root / "d").iterdir())) == 20


def test_sha512_digests_can_be_checked(root: Path) -> None:
    raw = _good_layer()
    blob = gzip.compress(raw)
    applied = apply(root, blob, diff_id="sha512:" + hashlib.sha512(raw).hexdigest())
    assert applied.blob_digest == "sha512:" + hashlib.sha512(blob).hexdigest()


def test_a_digest_that_does_not_match_is_refused(root: Path) -> None:
    raw = _good_layer()
    blob = gzip.compress(raw)
    with pytest.raises(DigestMismatch, match="diff ID") as wrong:
        apply(root, blob, diff_id=sha256(raw + b"x"))
    assert wrong.value.actual == sha256(raw)
    with pytest.raises(DigestMismatch, match="blob digest"):
        apply(root, blob, blob_digest=sha256(raw))
    with pytest.raises(LayerError, match="unsupported digest algorithm"):
        apply(root, blob, diff_id="md5:" + hashlib.md5(raw).hexdigest())


@pytest.mark.parametrize("backend", ["zstd", "zstandard"])
def test_zstd_layers_are_applied_and_digested(root: Path, backend: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "zstandard":
        pytest.importorskip("zstandard")
    raw = _good_layer()
    blob = _zstd(raw[:7000]) + _zstd(raw[7000:])  # two frames
    monkeypatch.setattr(layer_stream, "ZSTD_BACKENDS", (backend,))
    applied = apply(root, blob, blob_digest=sha256(blob), diff_id=sha256(raw))
    assert applied.compression == "zstd" and len(list((root / "d").iterdir())) == 20
    with pytest.raises(CorruptLayer, match="zstd"):
        apply(root, blob[: len(blob) - 30])


def test_a_zstd_layer_without_a_decompressor_says_what_to_install(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = _zstd(_good_layer())
    monkeypatch.setattr(layer_stream, "ZSTD_BACKENDS", ())
    with pytest.raises(LayerError, match="install the zstd program"):
        apply(root, blob)


def test_an_unreadable_blob_is_a_layer_error(root: Path) -> None:
    class Failing(io.RawIOBase):
        def readinto(self, buffer: object) -> int:
            raise OSError(errno.EIO, "I/O error")

    with pytest.raises(LayerError, match="cannot read") as failed:
        apply_layer(root, Failing())
    assert failed.value.errno == errno.EIO


# -- against GNU tar ---------------------------------------------------------------------


def _source_tree(tree: Path) -> None:
    """One of everything a layer holds, except whiteouts."""
    (tree / "bin").mkdir(parents=True)
    tool = tree / "bin/tool"
    tool.write_bytes(os.urandom(70_000))
    os.chmod(tool, 0o4755)
    os.link(tool, tree / "bin/tool-again")
    (tree / "bin/sh").symlink_to("tool")
    os.lchown(tree / "bin/sh", 1, 2)
    os.symlink("/nowhere", tree / "dangling")
    (tree / "empty").mkdir(mode=0o555)
    os.chmod(tree / "empty", 0o555)
    (tree / "tmp").mkdir()
    os.chmod(tree / "tmp", 0o1777)
    os.mkfifo(tree / "fifo", 0o620)
    os.mknod(tree / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(tree / "sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    home = tree / "home/user"
    home.mkdir(parents=True)
    (home / "notes").write_text("notes")
    for path in (home, home / "notes"):
        os.chown(path, 1000, 1000)
    os.chmod(home, 0o750)
    long_dir = tree / ("d" * 90) / ("e" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 120)).write_bytes(b"long name")
    (tree / "unicode-é").write_text("é")
    with open(tree / "sparse", "wb") as out:
        out.seek(3 << 20)
        out.write(b"end")
    if _user_xattrs_work(tree):
        os.setxattr(tree / "bin/tool", "user.berth", b"kept")
        os.setxattr(home, "user.dir", b"on a directory")
    os.utime(tree / "bin/sh", ns=(1, 1_500_000_000_123_456_789), follow_symlinks=False)
    os.utime(home / "notes", ns=(1, 1_400_000_000_000_000_001))
    os.utime(home, ns=(1, 1_300_000_000_987_654_321))


def _describe(root: Path) -> dict[str, tuple[object, ...]]:
    rows: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for path in [root, *walk(root)]:
        info = os.lstat(path)
        name = str(path.relative_to(root))
        inodes.setdefault(info.st_ino, []).append(name)
        mode = info.st_mode
        rows[name] = (
            stat.S_IFMT(mode), stat.S_IMODE(mode), info.st_uid, info.st_gid,
            info.st_size if stat.S_ISREG(mode) else None,
            info.st_mtime_ns, info.st_rdev,
            os.readlink(path) if stat.S_ISLNK(mode) else None,
            hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else None,
            sorted((x, os.getxattr(path, x, follow_symlinks=False))
                   for x in os.listxattr(path, follow_symlinks=False)),
        )
    for names in inodes.values():
        for name in names:
            rows[name] += (sorted(names),)
    return rows


@pytest.mark.parametrize("sparse", [False, True], ids=["plain", "gnu-sparse"])
def test_the_tree_is_what_gnu_tar_extracts(tmp_path: Path, sparse: bool) -> None:
    tree, ours, theirs = tmp_path / "tree", tmp_path / "ours", tmp_path / "theirs"
    for path in (ours, theirs):
        path.mkdir()
    _source_tree(tree)
    blob = tmp_path / "layer.tar.gz"
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "--format=posix", *(["--sparse"] if sparse else []), "-czf", str(blob),
                    "-C", str(tree), "."], check=True)
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "--same-permissions", "--same-owner", "-xzf", str(blob), "-C", str(theirs)],
                   check=True)
    applied = apply_layer(ours, blob)
    assert applied.xattr_warnings == ()
    described = _describe(ours)
    assert described == _describe(theirs)
    source = _describe(tree)
    assert described.keys() == source.keys()
    for name, row in described.items():  # and nothing lost from the source (times aside)
        assert row[:5] + row[6:] == source[name][:5] + source[name][6:], name
    assert described["bin/sh"][5] == 1_500_000_000_123_456_789
    assert os.stat(ours / "sparse").st_blocks * 512 < 1 << 20
