"""Where an attempt runs: the local executor's processes and containment."""
