"""Whether a host name stays on this machine: the daemon and the cluster both relax their
rules for loopback (no token, plain TCP) and for nothing else."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
