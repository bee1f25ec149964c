"""Tools: manifests, versions, registries, installing and resolving."""
