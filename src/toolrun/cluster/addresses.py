"""Scheduler addresses as people write them, and the rule for plain TCP.

``tcp://host:port``, ``tls://host:port`` or ``host:port`` (tcp, the port 8786 when left out).
Off loopback a plain-TCP cluster would let anyone who can reach the port run code on every
worker (Dask tasks are pickles), so only loopback may go without TLS.
"""

from __future__ import annotations

from ..errors import UsageError
from ..loopback import is_loopback
from ..records import record

DEFAULT_PORT = 8786
SCHEMES = ("tcp", "tls")


@record(frozen=True)
class Address:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def parse_address(text: str, where: str = "ADDRESS") -> Address:
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    if scheme not in SCHEMES:
        raise UsageError(
            f"{where} {text!r}: the scheme must be tcp:// or tls://, not {scheme}://", field=where
        )
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host or "/" in host or " " in host:
        raise UsageError(f"{where} {text!r}: no host (write host:port)", field=where)
    if port_text == "":
        port = DEFAULT_PORT
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise UsageError(
            f"{where} {text!r}: the port must be a number from 1 to 65535, not {port_text!r}",
            field=where,
        )
    return Address(scheme, host, port)


def check_plain(address: Address, who: str) -> None:
    """Refuse plain TCP beyond loopback."""
    if address.scheme == "tcp" and not address.is_loopback:
        raise UsageError(
            f"{who}: refusing plain tcp:// to {address.host}: off loopback the cluster must "
            "use TLS with client certificates (tls://), or anyone who reaches the port could "
            "run code on every worker",
            hint="make certificates with `toolrun cluster certs DIR`; use tls://HOST:PORT",
        )
