"""Real layered OCI/Docker images for the tests, made with Debian's buildah, skopeo, podman and
docker-registry, and a way to see what podman itself makes of an image.

Every buildah, podman and skopeo call runs against a private storage (``--root DIR/storage
--runroot /tmp/berth-run-XXXX``: podman wants a short runroot) with private ``storage.conf``,
``registries.conf``, ``containers.conf``, ``policy.json`` and auth file, a private
``XDG_RUNTIME_DIR`` and ``TMPDIR``: no image or layer goes to /var/lib/containers, nothing
reaches beyond this machine, and any number of storages can be used at once. Two paths are out
of reach of any flag or configuration in these versions (buildah 1.28, podman 4.3, skopeo 1.9):
as root, containers/image keeps its blob-info cache (which digest is known where, no content)
in /var/lib/containers/cache/blob-info-cache-v1.boltdb, and every buildah and podman start
creates the empty /run/containers/networks (netavark's run directory). The cache file is locked
by each writer and only ever holds hints, so parallel runs do not disturb each other.

The storage driver is ``overlay`` (the kernel's native overlayfs; no fuse-overlayfs) wherever a
probe can mount an overlay working container, which is the case on the development machine;
otherwise it falls back to ``vfs``. Only overlay turns ``rm -rf d && mkdir d`` in a working
container into an opaque directory (the ``trusted.overlay.opaque`` xattr that buildah's commit
writes as ``d/.wh..wh..opq``); under vfs the same change is committed as one ``.wh.`` whiteout
per removed entry, so ``BuiltImage.opaque_whiteout`` says which the image holds.

The layers of ``build_test_image`` (paths are relative to the image's root):

1. the busybox-static rootfs with its applet links, ``etc/passwd``/``etc/group`` (root, ``app``
   1000:1000, group ``extra`` 2000 with ``app`` in it), ``etc/motd``, the file ``gone`` (deleted
   in layer 3) and the directory ``opaque`` with ``old-1``, ``old-2`` and ``sub/old-3``;
2. ``work/`` (the working directory), ``usr/bin/tool -> /bin/busybox`` (absolute),
   ``usr/local/bin/greet -> ../../../bin/busybox`` (relative), the hardlinks ``data/hard-a`` and
   ``data/hard-b``, the setuid-root ``usr/bin/suid`` (4755), ``home/app/owned`` (1000:1000),
   ``data/old`` (mtime ``OLD_MTIME``), ``data/xattr`` (``user.berth=layered`` when the storage
   keeps user xattrs), the empty directory ``empty/``, the fifo ``data/fifo``, and a new
   ``etc/motd``;
3. ``gone`` removed (a ``.wh.gone`` whiteout), ``opaque`` removed and recreated holding only
   ``new-1`` (an opaque whiteout), ``home/app/top``, and the image config.

``build_sibling_image`` starts from layer 2's image and adds a different top layer, so both
images share their two lower diff_ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 120.0
DEFAULT_TAG = "localhost/berth-test:latest"
SIBLING_TAG = "localhost/berth-sibling:latest"

APPLETS = ("sh", "ls", "cat", "id", "stat", "sleep", "echo", "env", "pwd", "md5sum", "true",
           "false", "mkdir", "rm", "touch", "readlink", "ln", "test", "grep", "wc", "head")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"

DELETED_FILE = "gone"
OPAQUE_DIR = "opaque"
OPAQUE_OLD = ("opaque/old-1", "opaque/old-2", "opaque/sub", "opaque/sub/old-3")
OPAQUE_NEW = {"opaque/new-1": b"recreated in layer 3\n"}
ABSOLUTE_SYMLINK = ("usr/bin/tool", "/bin/busybox")
RELATIVE_SYMLINK = ("usr/local/bin/greet", "../../../bin/busybox")
HARDLINKS = ("data/hard-a", "data/hard-b")
SETUID_FILE = "usr/bin/suid"
OWNED_FILE = "home/app/owned"
OLD_FILE = "data/old"
OLD_MTIME = 1_000_000_000
XATTR_FILE = "data/xattr"
XATTR = ("user.berth", b"layered")
EMPTY_DIR = "empty"
FIFO = "data/fifo"
MOTD = b"layer 2 motd\n"


class CommandError(RuntimeError):
    """A command failed or ran out of time; the message carries its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{' '.join(self.argv)} {status}:\n{stderr.strip()}")


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run ``argv`` and return its stdout; raise ``CommandError`` with its stderr otherwise."""
    try:
        done = subprocess.run(list(argv), env=None if env is None else dict(env),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
        raise CommandError(argv, None, stderr) from None
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr)
    return done.stdout


def missing_tools(*names: str) -> list[str]:
    """The Debian packages to install for the tools among ``names`` that are not on PATH."""
    packages = {"buildah": "buildah", "podman": "podman", "skopeo": "skopeo",
                "docker-registry": "docker-registry", "busybox": "busybox-static"}
    return [packages.get(name, name) for name in names if shutil.which(name) is None]


class Storage:
    """A private containers-storage and the configuration every tool reads, under ``base``
    but for the runroot, a new ``/tmp/berth-run-*`` directory.

    ``close()`` unmounts what is left mounted under either and removes both.
    """

    def __init__(self, base: Path, driver: str | None = None) -> None:
        self.base = base
        self.root = base / "storage"
        # podman refuses a runroot longer than 50 characters (conmon's socket paths live
        # there), which pytest's temporary directories are: the runroot lives in /tmp.
        self.runroot = Path(tempfile.mkdtemp(prefix="berth-run-", dir="/tmp"))
        self.driver = driver or storage_driver()
        conf = base / "conf"
        for directory in (self.root, self.runroot, conf, base / "tmp", base / "libpod"):
            directory.mkdir(parents=True, exist_ok=True)
        xdg = base / "xdg"
        xdg.mkdir(mode=0o700, exist_ok=True)
        self.policy = conf / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        (conf / "auth.json").write_text("{}\n")
        # No search registries and short names disabled: a name that is not fully qualified
        # fails at once instead of being tried against a public registry.
        (conf / "registries.conf").write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        (conf / "storage.conf").write_text(
            f'[storage]\ndriver = "{self.driver}"\ngraphroot = "{self.root}"\n'
            f'runroot = "{self.runroot}"\n')
        (conf / "containers.conf").write_text(
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{base / "events.log"}"\n'
            f'tmp_dir = "{base / "libpod"}"\nimage_copy_tmp_dir = "{base / "tmp"}"\n')
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("CONTAINERS_", "REGISTRY_", "BUILDAH_", "STORAGE_"))}
        self.env.update(CONTAINERS_REGISTRIES_CONF=str(conf / "registries.conf"),
                        CONTAINERS_STORAGE_CONF=str(conf / "storage.conf"),
                        CONTAINERS_CONF=str(conf / "containers.conf"),
                        REGISTRY_AUTH_FILE=str(conf / "auth.json"),
                        XDG_RUNTIME_DIR=str(xdg), TMPDIR=str(base / "tmp"))

    def _storage_flags(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", self.driver]

    def buildah(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return run(["buildah", *self._storage_flags(), *args], env=self.env,
                   timeout=timeout).strip()

    def podman(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        flags = [*self._storage_flags(), "--tmpdir", str(self.base / "libpod"),
                 "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        return run(["podman", *flags, *args], env=self.env, timeout=timeout).strip()

    def skopeo(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return run(["skopeo", "--policy", str(self.policy), *args], env=self.env,
                   timeout=timeout).strip()

    def ref(self, name: str) -> str:
        """``name`` in this storage, as skopeo's ``containers-storage:`` transport spells it."""
        return f"containers-storage:[{self.driver}@{self.root}+{self.runroot}]{name}"

    @contextlib.contextmanager
    def working_container(self, base_image: str) -> Iterator[tuple[str, Path]]:
        """A buildah working container from ``base_image`` and its mounted root; removed after."""
        if base_image == "scratch":
            container = self.buildah("from", "scratch")
        else:
            container = self.buildah("from", "--pull=never", "--signature-policy",
                                     str(self.policy), base_image)
        try:
            yield container, Path(self.buildah("mount", container))
        finally:
            self.buildah("rm", container)

    def close(self) -> None:
        with contextlib.suppress(CommandError, FileNotFoundError):
            self.buildah("rm", "--all")
        with contextlib.suppress(CommandError, FileNotFoundError):
            self.podman("image", "unmount", "--all", "--force")
        for directory in (self.base, self.runroot):
            unmount_under(directory)
            shutil.rmtree(directory, ignore_errors=True)


def mounts_under(path: Path) -> list[Path]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(Path(mount_point))
    return found


def unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below ``path``, deepest first (the storage leaves its
    own bind mount of ``storage/overlay`` behind while a layer is mounted)."""
    for mount_point in sorted(mounts_under(path), key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False,
                       timeout=30)


_driver: str | None = None


def storage_driver() -> str:
    """``overlay`` when a throwaway storage can mount an overlay working container, else ``vfs``."""
    global _driver
    if _driver is None:
        probe = Path(tempfile.mkdtemp(prefix="berth-overlay-probe-"))
        storage = Storage(probe, driver="overlay")
        try:
            with storage.working_container("scratch") as (_, rootfs):
                (rootfs / "probe").write_text("overlay\n")
            _driver = "overlay"
        except CommandError:
            _driver = "vfs"
        finally:
            storage.close()
    return _driver


@dataclass(frozen=True)
class ImageConfig:
    """The config values the test image is built with, as an image's config spells them."""

    entrypoint: tuple[str, ...] = ("/bin/echo", "from-entrypoint")
    cmd: tuple[str, ...] = ("default-cmd",)
    env: tuple[str, ...] = ("PATH=/usr/local/bin:/usr/bin:/bin", "FOO=bar")
    working_dir: str = "/work"
    user: str = "app"
    stop_signal: str = "SIGQUIT"
    exposed_ports: tuple[str, ...] = ("8080/tcp",)
    labels: Mapping[str, str] = field(
        default_factory=lambda: {"org.berth.test": "layered", "org.berth.layers": "3"})

    def buildah_args(self) -> list[str]:
        args = ["--entrypoint", json.dumps(list(self.entrypoint)),
                "--cmd", json.dumps(list(self.cmd)),
                "--workingdir", self.working_dir, "--user", self.user,
                "--stop-signal", self.stop_signal]
        for variable in self.env:
            args += ["--env", variable]
        for port in self.exposed_ports:
            args += ["--port", port]
        for key, value in self.labels.items():
            args += ["--label", f"{key}={value}"]
        return args


@dataclass
class BuiltImage:
    """An image in ``storage``: its tag, id, layer diff_ids (lowest first), the tags of the
    image after each layer (``layer_tags[-1] == tag``), and the config it was given."""

    storage: Storage
    tag: str
    image_id: str
    diff_ids: tuple[str, ...]
    layer_tags: tuple[str, ...]
    config: ImageConfig
    opaque_whiteout: bool
    user_xattrs: bool

    def ref(self) -> str:
        return self.storage.ref(self.tag)

    def inspect(self) -> dict[str, object]:
        """The image's OCI config blob as buildah stores it."""
        document: dict[str, object] = json.loads(
            self.storage.buildah("inspect", "--type", "image", self.tag))
        config = document["OCIv1"]
        assert isinstance(config, dict)
        return config


def _commit(storage: Storage, container: str, tag: str) -> str:
    return storage.buildah("commit", "--quiet", "--signature-policy", str(storage.policy),
                           container, tag).splitlines()[-1]


def _write(root: Path, relative: str, content: bytes, mode: int = 0o644,
           owner: tuple[int, int] = (0, 0)) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chown(path, *owner)
    os.chmod(path, mode)
    return path


def _layer_1(rootfs: Path) -> None:
    os.chmod(rootfs, 0o755)
    bin_dir = rootfs / "bin"
    bin_dir.mkdir()
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox (apt-get install busybox-static)")
    shutil.copy2(busybox, bin_dir / "busybox")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    _write(rootfs, "etc/passwd", PASSWD.encode())
    _write(rootfs, "etc/group", GROUP.encode())
    _write(rootfs, "etc/motd", b"layer 1 motd\n")
    _write(rootfs, DELETED_FILE, b"deleted in layer 3\n")
    for relative in OPAQUE_OLD:
        if relative.endswith("sub"):
            (rootfs / relative).mkdir(parents=True)
        else:
            _write(rootfs, relative, f"{relative} from layer 1\n".encode())
    for directory in ("root", "tmp", "usr/bin", "usr/local/bin"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)


def _layer_2(rootfs: Path) -> bool:
    """The special files; True when the storage kept the user xattr."""
    (rootfs / "work").mkdir()
    os.chown(rootfs / "work", 1000, 1000)
    home = rootfs / "home/app"
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    link, target = ABSOLUTE_SYMLINK
    (rootfs / link).symlink_to(target)
    link, target = RELATIVE_SYMLINK
    (rootfs / link).symlink_to(target)
    first = _write(rootfs, HARDLINKS[0], b"one inode, two names\n")
    os.link(first, rootfs / HARDLINKS[1])
    _write(rootfs, SETUID_FILE, b"#!/bin/sh\nid\n", mode=0o4755)
    _write(rootfs, OWNED_FILE, b"owned by app\n", mode=0o640, owner=(1000, 1000))
    old = _write(rootfs, OLD_FILE, b"an old file\n")
    os.utime(old, (OLD_MTIME, OLD_MTIME))
    xattr_file = _write(rootfs, XATTR_FILE, b"has a user xattr\n")
    try:
        os.setxattr(xattr_file, *XATTR)
        kept = True
    except OSError:
        kept = False
    (rootfs / EMPTY_DIR).mkdir()
    os.mkfifo(rootfs / FIFO, 0o600)
    _write(rootfs, "etc/motd", MOTD)
    return kept


def _layer_3(rootfs: Path) -> None:
    (rootfs / DELETED_FILE).unlink()
    # rm -rf then mkdir of the same name, not emptying it: on overlay only that makes the upper
    # directory opaque, which is what produces the .wh..wh..opq marker.
    shutil.rmtree(rootfs / OPAQUE_DIR)
    (rootfs / OPAQUE_DIR).mkdir()
    for relative, content in OPAQUE_NEW.items():
        _write(rootfs, relative, content)
    _write(rootfs, "home/app/top", b"layer 3\n", owner=(1000, 1000))


def _diff_ids(storage: Storage, tag: str) -> tuple[str, ...]:
    document = json.loads(storage.buildah("inspect", "--type", "image", tag))
    return tuple(document["OCIv1"]["rootfs"]["diff_ids"])


def _image_id(storage: Storage, tag: str) -> str:
    document = json.loads(storage.buildah("inspect", "--type", "image", tag))
    return str(document["FromImageID"])


def build_test_image(workdir: Path, tag: str = DEFAULT_TAG, config: ImageConfig | None = None,
                     driver: str | None = None) -> BuiltImage:
    """Build the three-layer test image (see the module's docstring) in a new storage under
    ``workdir`` (``driver`` as ``storage_driver()`` picks it unless given), from scratch, with
    no network."""
    storage = Storage(workdir, driver)
    config = config or ImageConfig()
    name = tag.rsplit(":", 1)[0]
    layer_tags = (f"{name}-layer1:latest", f"{name}-layer2:latest", tag)
    with storage.working_container("scratch") as (container, rootfs):
        _layer_1(rootfs)
        _commit(storage, container, layer_tags[0])
    with storage.working_container(layer_tags[0]) as (container, rootfs):
        xattrs = _layer_2(rootfs)
        _commit(storage, container, layer_tags[1])
    with storage.working_container(layer_tags[1]) as (container, rootfs):
        _layer_3(rootfs)
        storage.buildah("config", *config.buildah_args(), container)
        _commit(storage, container, tag)
    return BuiltImage(storage=storage, tag=tag, image_id=_image_id(storage, tag),
                      diff_ids=_diff_ids(storage, tag), layer_tags=layer_tags, config=config,
                      opaque_whiteout=storage.driver == "overlay", user_xattrs=xattrs)


def build_sibling_image(image: BuiltImage, tag: str = SIBLING_TAG) -> BuiltImage:
    """An image in ``image``'s storage built on its layer-2 image with a different top layer
    (and ``cmd`` ``["sibling"]``), so both share their two lower layers."""
    storage = image.storage
    config = ImageConfig(cmd=("sibling",), labels={"org.berth.test": "sibling"})
    with storage.working_container(image.layer_tags[1]) as (container, rootfs):
        _write(rootfs, "sibling", b"only in the sibling\n")
        (rootfs / DELETED_FILE).unlink()
        storage.buildah("config", *config.buildah_args(), container)
        _commit(storage, container, tag)
    return BuiltImage(storage=storage, tag=tag, image_id=_image_id(storage, tag),
                      diff_ids=_diff_ids(storage, tag),
                      layer_tags=(*image.layer_tags[:2], tag), config=config,
                      opaque_whiteout=False, user_xattrs=image.user_xattrs)


def _copy(image: BuiltImage, destination: str, *extra: str) -> None:
    image.storage.skopeo("copy", "--quiet", *extra, image.ref(), destination)


def to_docker_archive(image: BuiltImage, path: Path) -> Path:
    """``docker save``'s format (manifest.json, uncompressed layer tars), tagged ``image.tag``."""
    path.unlink(missing_ok=True)
    _copy(image, f"docker-archive:{path}:{image.tag}")
    return path


def to_oci_archive(image: BuiltImage, path: Path) -> Path:
    """An OCI image layout in one tar; its ``org.opencontainers.image.ref.name`` is the tag."""
    path.unlink(missing_ok=True)
    _copy(image, f"oci-archive:{path}:{image.tag}")
    return path


def to_oci_layout(image: BuiltImage, directory: Path) -> Path:
    """An OCI image layout directory (gzip layers), ref.name ``image.tag``; added to the
    layout already at ``directory`` if there is one."""
    _copy(image, f"oci:{directory}:{image.tag}")
    return directory


def push_to_registry(image: BuiltImage, registry: Registry, name: str | None = None) -> str:
    """Push over plain HTTP; the reference is ``HOST:PORT/<name>``, by default the tag's
    repository path without ``localhost/``, e.g. ``127.0.0.1:40000/berth-test:latest``."""
    reference = f"{registry.host}/{name or image.tag.removeprefix('localhost/')}"
    _copy(image, f"docker://{reference}", "--dest-tls-verify=false")
    return reference


@dataclass(frozen=True)
class LayerMember:
    name: str
    kind: str
    mode: int
    uid: int
    gid: int
    linkname: str


def oci_layout_manifest(directory: Path, ref_name: str | None = None) -> dict[str, Any]:
    """The manifest of an image in an OCI layout: the one named ``ref_name``, or the only one.
    Its ``config.digest`` is ``"sha256:" + image_id``."""
    index = json.loads((directory / "index.json").read_text())
    manifests = [m for m in index["manifests"] if ref_name is None
                 or m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name]
    if len(manifests) != 1:
        raise LookupError(f"{len(manifests)} manifests in {directory} match {ref_name!r}")
    manifest: dict[str, Any] = json.loads(_blob(directory, manifests[0]["digest"]).read_text())
    return manifest


def oci_layout_layers(directory: Path, ref_name: str | None = None) -> list[list[LayerMember]]:
    """The members of each layer tar (lowest first) of an image in an OCI layout: the one
    named ``ref_name``, or the only one."""
    layers = []
    for layer in oci_layout_manifest(directory, ref_name)["layers"]:
        with tarfile.open(_blob(directory, layer["digest"])) as archive:
            layers.append([LayerMember(name=member.name.removeprefix("./"),
                                       kind=_tar_kind(member), mode=stat.S_IMODE(member.mode),
                                       uid=member.uid, gid=member.gid,
                                       linkname=member.linkname)
                           for member in archive.getmembers()])
    return layers


def _blob(directory: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return directory / "blobs" / algorithm / hexdigest


def _tar_kind(member: tarfile.TarInfo) -> str:
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
             tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
             tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
    return kinds.get(member.type, member.type.decode(errors="replace"))


class Registry:
    """Debian's ``docker-registry`` on 127.0.0.1, a free port and a temporary storage, with no
    authentication; answers ``GET /v2/`` by the time the constructor returns."""

    def __init__(self, base: Path | None = None, timeout: float = 30.0) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="berth-registry-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log = self.base / "registry.log"
        # A free port can be taken between the probe and the registry's bind: try again then.
        for _ in range(3):
            self.port = _free_port()
            self.process = self._start()
            if self._wait(timeout):
                return
        self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self._log.read_text()}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _start(self) -> subprocess.Popen[bytes]:
        config = self.base / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.base / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n")
        with self._log.open("ab") as log:
            return subprocess.Popen(["docker-registry", "serve", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)

    def _wait(self, timeout: float) -> bool:
        """Poll ``/v2/`` until it answers 200 (True), the process exits or the deadline passes
        (False, the process stopped)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(0.05)
        self._kill()
        return False

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Entry:
    """One path of a tree. ``hardlink`` is the first (sorted) path of the group of paths that
    share this one's inode, None when no other path in the tree does; ``mtime`` is None for
    directories; ``xattrs`` holds the ``user.`` namespace only."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int | None = None
    sha256: str | None = None
    target: str | None = None
    rdev: tuple[int, int] | None = None
    hardlink: str | None = None
    mtime: int | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _user_xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(sorted((name, os.getxattr(path, name, follow_symlinks=False))
                        for name in names if name.startswith("user.")))


def file_tree(root: Path, ignore: Iterable[str] = ()) -> dict[str, Entry]:
    """Every path under ``root`` (``"."`` for ``root`` itself), sorted, without following
    symlinks. A directory named in ``ignore`` is skipped with all it holds."""
    ignored = set(ignore)
    found: dict[str, tuple[os.stat_result, Entry]] = {}

    def visit(path: Path, relative: str) -> None:
        if relative in ignored:
            return
        info = path.lstat()
        kind = _kind(info.st_mode)
        entry = Entry(kind=kind, mode=stat.S_IMODE(info.st_mode), uid=info.st_uid,
                      gid=info.st_gid,
                      size=info.st_size if kind == "file" else None,
                      sha256=_sha256(path) if kind == "file" else None,
                      target=os.readlink(path) if kind == "symlink" else None,
                      rdev=(os.major(info.st_rdev), os.minor(info.st_rdev))
                      if kind in ("char", "block") else None,
                      mtime=None if kind == "dir" else int(info.st_mtime),
                      xattrs=_user_xattrs(path))
        found[relative] = (info, entry)
        if kind == "dir":
            for child in sorted(os.listdir(path)):
                visit(path / child, child if relative == "." else f"{relative}/{child}")

    visit(root, ".")
    inodes: dict[tuple[int, int], list[str]] = {}
    for relative, (info, entry) in found.items():
        if entry.kind != "dir":
            inodes.setdefault((info.st_dev, info.st_ino), []).append(relative)
    tree = {}
    for relative in sorted(found):
        info, entry = found[relative]
        group = inodes.get((info.st_dev, info.st_ino), [])
        if len(group) > 1:
            entry = Entry(**{**{f.name: getattr(entry, f.name) for f in fields(Entry)},
                             "hardlink": min(group)})
        tree[relative] = entry
    return tree


def tree_diff(a: Mapping[str, Entry], b: Mapping[str, Entry]) -> list[str]:
    """One readable line per difference between two trees; empty when they are the same."""
    lines = [f"only in first: {path}" for path in sorted(a.keys() - b.keys())]
    lines += [f"only in second: {path}" for path in sorted(b.keys() - a.keys())]
    for path in sorted(a.keys() & b.keys()):
        for item in fields(Entry):
            left, right = getattr(a[path], item.name), getattr(b[path], item.name)
            if left != right:
                show = oct if item.name == "mode" else repr
                lines.append(f"{path}: {item.name} {show(left)} != {show(right)}")
    return lines


def podman_tree(ref_or_archive: str | Path, workdir: Path,
                ignore: Iterable[str] = ()) -> dict[str, Entry]:
    """What podman makes of an image: ``podman load`` of a docker or OCI archive (a file),
    ``podman pull`` of an OCI layout holding one image (a directory) or of a registry
    reference (anything else, over plain HTTP), into a new private storage under ``workdir``;
    then ``file_tree`` of ``podman image mount``. The storage is removed afterwards."""
    source = ref_or_archive
    workdir.mkdir(parents=True, exist_ok=True)
    storage = Storage(Path(tempfile.mkdtemp(prefix="podman-", dir=workdir)))
    try:
        policy = ["--signature-policy", str(storage.policy)]
        path = Path(source)
        if isinstance(source, Path) or path.exists():
            if path.is_dir():
                storage.podman("pull", "--quiet", *policy, f"oci:{path}")
            else:
                storage.podman("load", "--quiet", *policy, "--input", str(path))
        else:
            storage.podman("pull", "--quiet", *policy, "--tls-verify=false", str(source))
        images = storage.podman("images", "--quiet", "--no-trunc").split()
        if len(images) != 1:
            raise LookupError(f"podman holds {len(images)} images after reading {source}")
        mount_point = Path(storage.podman("image", "mount", images[0]))
        try:
            return file_tree(mount_point, ignore)
        finally:
            storage.podman("image", "unmount", images[0])
    finally:
        storage.close()
