"""Images: where they come from (a registry, an archive, an OCI layout, a root filesystem
tarball), how their layers become storage layers, and what their configuration gives a
container."""
