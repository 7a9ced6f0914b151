"""Runtime drivers: run a container's process from an OCI bundle and record how it ended."""

from drivers.runtime.bundle import BundleSpec, Mount
from drivers.runtime.oci import ContainerPaths, OCIRuntime

__all__ = ["BundleSpec", "ContainerPaths", "Mount", "OCIRuntime"]
