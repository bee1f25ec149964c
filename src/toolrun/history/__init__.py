"""The store of runs: the index, the logs, ownership and repair."""
