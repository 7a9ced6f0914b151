"""A real PostgreSQL server for the tests, from the machine's own binaries (Debian's
``postgresql`` package): ``initdb`` into a temporary directory and ``pg_ctl start`` on a Unix
socket only. As root, the server runs as the ``postgres`` user, which refuses nothing."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_ctl")):
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    socket_dir: Path
    port: int = 5433
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def start(self) -> None:
        data = self.base / "data"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._as_owner([str(self.bin_dir / "initdb"), "-D", str(data), "-U",
                                       self.user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        options = (f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' -c fsync=off "
                   "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200")
        subprocess.run(self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(data), "-o",
                                       options, "-l", str(self.base / "log"), "-w", "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(self._as_owner([str(self.bin_dir / "pg_ctl"), "-D",
                                       str(self.base / "data"), "-m", "immediate", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server() -> PostgresServer | None:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        return None
    base = Path(tempfile.mkdtemp(prefix="berth-pg-"))
    os.chmod(base, 0o755)
    socket_dir = base / "socket"
    socket_dir.mkdir()
    server = PostgresServer(bin_dir=bin_dir, base=base, socket_dir=socket_dir,
                            port=5400 + os.getpid() % 500)
    server.start()
    return server
