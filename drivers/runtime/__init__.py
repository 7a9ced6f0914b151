"""Runtime drivers: run a container's process from an OCI bundle and record how it ended.

``oci.py`` drives runc or crun; ``shim.py`` is the process that owns a started container;
``bundle.py`` writes the OCI ``config.json``.
"""
