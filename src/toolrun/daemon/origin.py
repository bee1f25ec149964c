"""Which requests the daemon answers: those addressed to a name it serves, from no other site.

A daemon on a workstation shares the machine with a web browser. Without tokens (the default
on loopback) any page the user opens could start tools through it (``<img src=".../cmd/...">``
needs no script), and a page whose own name is made to resolve to 127.0.0.1 (DNS rebinding)
could read the history. Browsers say where a request comes from (``Origin``,
``Sec-Fetch-Site``) and which name it was sent to (``Host``); curl, scripts and build servers
send no ``Origin`` or ``Sec-Fetch-*`` header at all, so they are unaffected.

Pure functions over header values: the middleware in ``app.py`` applies them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..records import record

# Scrapers and load balancers address these by whatever name they know the daemon by, and
# they start nothing and read no run.
UNGUARDED_PATHS = frozenset({"/healthz", "/metrics"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
CROSS_SITE = frozenset({"cross-site", "same-site"})


@record(frozen=True)
class ServedHosts:
    """The names a request's ``Host`` may carry: loopback always, more as configured."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".example.com" admits every name under example.com
    any_name: bool = False  # "*": the operator vouches for whatever is in front

    def admits(self, host: str) -> bool:
        host = normal_host(host)
        if self.any_name or host in LOOPBACK_NAMES or host in self.names:
            return True
        if _is_loopback_address(host):
            return True
        return any(host.endswith(suffix) or host == suffix[1:] for suffix in self.suffixes)


def served_hosts(
    listen_host: str, allowed: Iterable[str], machine: Iterable[str] = ()
) -> ServedHosts:
    """The names of a daemon listening on ``listen_host``: loopback, the address it listens
    on (``machine``, the host's own names and addresses, when that is a wildcard), and
    ``allowed`` (``--allow-host``, ``allow_hosts`` in config.toml)."""
    names: set[str] = set()
    suffixes: list[str] = []
    any_name = False
    listen = normal_host(listen_host)
    if listen in WILDCARDS:
        names.update(normal_host(name) for name in machine)
    else:
        names.add(listen)
    for entry in allowed:
        entry = normal_host(entry)
        if entry == "*":
            any_name = True
        elif entry.startswith("."):
            suffixes.append(entry)
        elif entry:
            names.add(entry)
    return ServedHosts(frozenset(names), tuple(suffixes), any_name)


def machine_names() -> list[str]:
    """This machine's host name and the addresses of its interfaces (for a wildcard bind)."""
    import socket

    import psutil

    found = [socket.gethostname()]
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.append(address.address.split("%", 1)[0])  # fe80::1%eth0
    return found


def normal_host(text: str) -> str:
    """A host name as compared: lower case, no trailing dot, IPv6 without brackets."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def split_host(header: str) -> tuple[str, int | None] | None:
    """``Host`` (or an origin's authority) as name and port; None when it is not one."""
    text = header.strip()
    if not text or any(ch in text for ch in " /\\@?#") or not text.isascii():
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        return None  # a bare IPv6 address: a Host header must bracket it
    else:
        name, _, port_text = text.partition(":")
    if not name:
        return None
    port = None
    if port_text:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            return None
        port = int(port_text)
    return normal_host(name), port


def origin_matches(origin: str, *, scheme: str, host: str) -> bool:
    """Whether ``Origin`` names this very server (scheme, name and port), as the Host it was
    sent to does."""
    sent_to = split_host(host)
    scheme_part, separator, authority = origin.strip().partition("://")
    if not separator or sent_to is None or scheme_part.lower() != scheme:
        return False
    came_from = split_host(authority)
    if came_from is None:
        return False
    default = 443 if scheme == "https" else 80
    return (came_from[0], came_from[1] or default) == (sent_to[0], sent_to[1] or default)


def refusal(
    path: str, scheme: str, headers: dict[str, str], hosts: ServedHosts, method: str = "GET"
) -> tuple[str, str] | None:
    """Why a request is refused (an error code and a message), or None to answer it.

    ``headers`` holds the request's headers with lower-case names.
    """
    if path in UNGUARDED_PATHS:
        return None
    host = headers.get("host")
    if host is not None:
        parsed = split_host(host)
        if parsed is None or not hosts.admits(parsed[0]):
            shown = host[:100]
            return (
                "unknown_host",
                f"Host {shown!r} is not a name this daemon serves; if it is one, start the "
                "daemon with --allow-host NAME (or add it to allow_hosts in config.toml)",
            )
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site in CROSS_SITE and is_page_visit(path, method, headers):
        return None
    if fetch_site in CROSS_SITE:
        return (
            "cross_site",
            f"a request from another site (Sec-Fetch-Site: {fetch_site}) is refused: web pages "
            "may not start tools or read runs through a browser",
        )
    origin = headers.get("origin")
    if origin is not None and not origin_matches(origin, scheme=scheme, host=host or ""):
        return (
            "cross_site",
            f"a request from another origin ({origin[:100]!r}) is refused: web pages may not "
            "start tools or read runs through a browser",
        )
    return None


def is_page_visit(path: str, method: str, headers: dict[str, str]) -> bool:
    """A person following a link to a page (from a chat message, a mail): a top-level GET of
    a page, which changes nothing and whose answer the linking site cannot read."""
    return (
        method == "GET"
        and (path == "/" or path.startswith("/ui/"))
        and not path.startswith("/ui/static/")
        and headers.get("sec-fetch-mode", "").strip().lower() == "navigate"
        and headers.get("sec-fetch-dest", "").strip().lower() == "document"
    )


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
