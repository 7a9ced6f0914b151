"""Run one driver call in a process that a crash point may kill (``BERTH_CRASH_AT``).

python -m tests.dm.crash_child ROOT DATABASE_FILE create CHILD PARENT
python -m tests.dm.crash_child ROOT DATABASE_FILE get LAYER
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from sqlalchemy import create_engine

from drivers.storage.devicemapper import DevicemapperDriver
from tests.dm.helpers import SMALL


def load_store_module() -> ModuleType:
    """fsm/thin_metadata.py alone: importing it as ``fsm.store.thin`` runs fsm/__init__.py,
    which loads the whole orchestrator; in the emulated VM that is six seconds per crash.
    """
    path = Path(__file__).resolve().parents[2] / "fsm" / "thin_metadata.py"
    spec = importlib.util.spec_from_file_location("thin_metadata", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    root, database, operation, *args = argv
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 30})
    store = load_store_module().SQLDeviceMetadataStore(engine)
    driver = DevicemapperDriver(root, store, SMALL)
    if operation == "create":
        driver.create(args[0], args[1])
    elif operation == "get":
        driver.get(args[0])
    else:
        raise SystemExit(f"unknown operation {operation}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
