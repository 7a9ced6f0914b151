"""One pass over a layer blob: its tar stream, decompressed, and both of its digests.

A layer blob is a tar stream, plain or compressed with gzip or zstd (OCI media types ``tar``,
``tar+gzip``, ``tar+zstd``; Docker's ``rootfs.diff.tar.gzip``). The compression is found from the
first bytes, not from the media type, as Docker does. While the tar stream is read, two hashes are
taken on the way, so that the blob is read once:

- the blob digest, over the bytes as stored (what the manifest names);
- the diff ID, over the uncompressed tar stream (what the image config's ``rootfs.diff_ids``
  names).

Reading past the end of the tar archive to the end of the blob is :meth:`LayerStream.finish`'s
job: trailing padding counts in both digests.

zstd is decompressed by the ``zstandard`` module where it is installed, else by the ``zstd``
program; with neither, a zstd layer is a :class:`~drivers.image.errors.LayerError` that says what
to install. gzip needs nothing outside the standard library.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import IO, Any, Protocol

from drivers.image.errors import CorruptLayer, LayerError

#: bytes read from the blob at a time, and the most a decompressor hands back at once
CHUNK = 1 << 20
#: compressed bytes given to the zstandard module at a time: its decompressobj takes no output
#: bound, so the input is kept small to bound what one call can expand to
ZSTD_MODULE_INPUT = 16 << 10

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: formats Docker also reads; named in the error rather than taken for a broken tar
OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}

#: how zstd is decompressed, first found first: the ``zstandard`` module, the ``zstd`` program
ZSTD_BACKENDS: tuple[str, ...] = ("zstandard", "zstd")

#: the digest algorithms a layer may be named by (OCI image spec, "Digests")
ALGORITHMS = ("sha256", "sha512")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Digesting:
    """Reads through to ``source``, hashing every byte that goes by, once."""

    def __init__(self, source: Readable, algorithm: str, what: str) -> None:
        self._source = source
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self._what = what
        self._ahead = b""
        self.size = 0

    def _pull(self, size: int) -> bytes:
        try:
            data = self._source.read(size)
        except OSError as error:
            raise LayerError(f"cannot read the {self._what}: {error}",
                             errno=error.errno) from error
        self._hash.update(data)
        self.size += len(data)
        return data

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes from here on, left to be read again."""
        while len(self._ahead) < size:
            data = self._pull(size - len(self._ahead))
            if not data:
                break
            self._ahead += data
        return self._ahead[:size]

    def read(self, size: int = -1, /) -> bytes:
        if not self._ahead:
            return self._pull(size)
        if size < 0:
            data, self._ahead = self._ahead, b""
            return data + self._pull(-1)
        data, self._ahead = self._ahead[:size], self._ahead[size:]
        return data

    def drain(self) -> None:
        """Read (and hash) what is left up to the end."""
        self._ahead = b""
        while self._pull(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"


class Chunks:
    """A reader over an iterator of byte strings (a decompressor's output)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            rest = self._buffer[self._offset:] + b"".join(self._chunks)
            self._buffer, self._offset = b"", 0
            return rest
        while len(self._buffer) - self._offset < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = self._buffer[self._offset:] + chunk
            self._offset = 0
        data = self._buffer[self._offset:self._offset + size]
        self._offset += len(data)
        return data


class LayerStream:
    """The uncompressed tar stream of one layer blob (:attr:`tar`, to be read), and once
    :meth:`finish` has run, the blob's digest and the diff ID. Close it (or use it as a context
    manager) to stop a ``zstd`` process still running after an error.

    Raises :class:`LayerError` when the blob is zstd-compressed and nothing here can decompress
    zstd, :class:`CorruptLayer` when it is bzip2 or xz (not layer formats of the OCI spec).
    """

    def __init__(self, source: Readable, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise LayerError(f"unsupported digest algorithm {algorithm!r} "
                             f"(supported: {', '.join(ALGORITHMS)})")
        self.blob = Digesting(source, algorithm, "layer blob")
        magic = self.blob.peek(8)
        self._tar_hash = hashlib.new(algorithm)
        #: bytes of the uncompressed tar stream, read so far
        self.tar_size = 0
        self.compression = "none"
        if magic.startswith(GZIP_MAGIC):
            self.compression = "gzip"
            decompressed = _gunzip(self.blob)
        elif magic.startswith(ZSTD_MAGIC):
            self.compression = "zstd"
            decompressed = _unzstd(self.blob)
        else:
            for prefix, name in OTHER_MAGIC.items():
                if magic.startswith(prefix):
                    raise CorruptLayer(f"the layer is {name}-compressed; layers are plain, "
                                       "gzip or zstd tar streams")
            decompressed = iter(lambda: self.blob.read(CHUNK), b"")
        self._decompressed = decompressed
        self.tar = Chunks(self._hashed(decompressed))

    def _hashed(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.compression != "none":  # else the diff ID is the blob digest
                self._tar_hash.update(chunk)
            self.tar_size += len(chunk)
            yield chunk

    def finish(self) -> tuple[str, str]:
        """Read both streams to their ends; return the blob digest and the diff ID."""
        while self.tar.read(CHUNK):
            pass
        self.blob.drain()
        diff_id = (self.blob.digest if self.compression == "none"
                   else f"{self._tar_hash.name}:{self._tar_hash.hexdigest()}")
        return self.blob.digest, diff_id

    def close(self) -> None:
        close = getattr(self._decompressed, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LayerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gunzip(source: Readable) -> Iterator[bytes]:
    """The decompressed bytes of one or more gzip members (pigz and ``cat a.gz b.gz`` write
    several), at most :data:`CHUNK` at a time; an end in the middle of a member is an error."""
    member = zlib.decompressobj(zlib.MAX_WBITS | 16)
    started = False
    data = b""
    while True:
        if not data:
            data = source.read(CHUNK)
            if not data:
                if started:
                    raise CorruptLayer("the gzip stream ends in the middle: the layer is "
                                       "truncated")
                return
        started = True
        try:
            out = member.decompress(data, CHUNK)
        except zlib.error as error:
            raise CorruptLayer(f"the gzip stream is corrupt: {error}") from error
        data = member.unconsumed_tail
        if out:
            yield out
        if member.eof:
            data = member.unused_data
            member = zlib.decompressobj(zlib.MAX_WBITS | 16)
            started = False


def _unzstd(source: Readable) -> Iterator[bytes]:
    for backend in ZSTD_BACKENDS:
        if backend == "zstandard":
            try:
                module = importlib.import_module("zstandard")
            except ImportError:
                continue
            return _zstd_frames(source, module)
        program = shutil.which(backend)
        if program is not None:
            return _zstd_process(source, program)
    raise LayerError("the layer is zstd-compressed and this host cannot decompress zstd: "
                     "install the zstd program (apt-get install zstd) or the zstandard module")


def _zstd_frames(source: Readable, zstandard: ModuleType) -> Iterator[bytes]:
    """The decompressed bytes of one or more zstd frames, by the ``zstandard`` module."""
    decompressor: Any = zstandard.ZstdDecompressor()
    frame: Any = decompressor.decompressobj()
    started = False
    while data := source.read(ZSTD_MODULE_INPUT):
        while data:
            started = True
            try:
                out: bytes = frame.decompress(data)
            except zstandard.ZstdError as error:
                raise CorruptLayer(f"the zstd stream is corrupt: {error}") from error
            if out:
                yield out
            data = b""
            if frame.eof:
                data = frame.unused_data
                frame = decompressor.decompressobj()
                started = False
    if started:
        raise CorruptLayer("the zstd stream ends in the middle: the layer is truncated")


def _zstd_process(source: Readable, program: str) -> Iterator[bytes]:
    """The decompressed bytes, by ``zstd -d``: a thread feeds it the blob (hashed on the way),
    this generator reads its output. Its exit status is checked when the output ends; closing the
    generator early kills it."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([program, "-d", "-c", "-q"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors)
        stdin: IO[bytes] | None = process.stdin
        stdout: IO[bytes] | None = process.stdout
        assert stdin is not None and stdout is not None
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                while chunk := source.read(CHUNK):
                    stdin.write(chunk)
            except BrokenPipeError:
                pass  # zstd stopped reading: its exit status says why
            except BaseException as error:  # handed to the reading side
                failed.append(error)
            finally:
                try:
                    stdin.close()
                except OSError:
                    pass

        feeder = threading.Thread(target=feed, name="zstd-feed", daemon=True)
        feeder.start()
        try:
            while chunk := stdout.read(CHUNK):
                yield chunk
            status = process.wait()
            feeder.join()
            if failed:
                raise failed[0]
            if status != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise CorruptLayer(f"zstd could not decompress the layer (exit status "
                                   f"{status}){': ' + said[-1] if said else ''}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            stdout.close()
            feeder.join()
