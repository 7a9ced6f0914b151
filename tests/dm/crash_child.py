"""Run one driver call in a process that a crash point may kill (``BERTH_CRASH_AT``).

python -m tests.dm.crash_child ROOT DATABASE_FILE create CHILD PARENT
python -m tests.dm.crash_child ROOT DATABASE_FILE get LAYER
"""

from __future__ import annotations

import sys

from sqlalchemy import create_engine

from drivers.storage.devicemapper import DevicemapperDriver
from fsm.store.thin import SQLDeviceMetadataStore
from tests.dm.helpers import SMALL


def main(argv: list[str]) -> int:
    root, database, operation, *args = argv
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 30})
    store = SQLDeviceMetadataStore(engine)
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
