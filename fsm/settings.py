"""Where berth keeps its state: the data root and the database URL.

Both resolve the same way for the API and the CLI: an explicit argument, else the environment
(``BERTH_ROOT``, ``BERTH_DATABASE_URL``), else the embedded default (a SQLite file in the root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from fsm.errors import ConfigError

ROOT_ENV = "BERTH_ROOT"
DATABASE_URL_ENV = "BERTH_DATABASE_URL"
NODE_ENV = "BERTH_NODE"


# a NamedTuple, not a dataclass: importing dataclasses (and inspect) is a fifth of ``berth
# ps``'s start-up, and every command resolves its settings
class Settings(NamedTuple):
    root: Path
    database_url: str
    #: True when the URL is the embedded default: that database is upgraded without asking
    embedded: bool
    node: str

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    def container_dir(self, container_id: str) -> Path:
        return self.containers_dir / container_id

    @property
    def scratch_dir(self) -> Path:
        """Where pulls and loads keep what skopeo copies until its layers are applied."""
        return self.root / "scratch"


def default_root() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/berth")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "berth"


def resolve(
    root: str | os.PathLike[str] | None = None, database_url: str | None = None
) -> Settings:
    """Resolve the data root and database URL; create the root (mode 0700) if needed."""
    chosen_root = root if root is not None else os.environ.get(ROOT_ENV) or default_root()
    root_path = Path(chosen_root)
    if not str(chosen_root).strip():
        raise ConfigError("root", str(chosen_root), "a directory path")
    root_path = root_path.expanduser().absolute()
    prepare_root(root_path)
    url = database_url if database_url is not None else os.environ.get(DATABASE_URL_ENV)
    embedded = not url
    if not url:
        url = f"sqlite:///{root_path / 'berth.db'}"
    # the kernel's hostname, as socket.gethostname() returns it, without importing socket (every
    # CLI command resolves the settings: `berth ps` counts its imports)
    node = os.environ.get(NODE_ENV) or os.uname().nodename
    return Settings(root=root_path, database_url=url, embedded=embedded, node=node)


def prepare_root(root: Path) -> None:
    """Make the data root, readable by its owner only: it holds every container's files."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if root.stat().st_mode & 0o077:
            root.chmod(0o700)
        # named per process: two berth commands starting at once on one root must not trip
        # over each other's probe
        probe = root / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            "root", str(root), f"a directory berth can create and write ({error.strerror})"
        ) from error
