"""Workers on other machines: a Dask cluster behind the daemon (docs/cluster.md)."""
