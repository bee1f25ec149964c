"""HTTP/1.1 trailers: the exit status of a plain stream, sent after its last byte.

A plain ``/cmd`` stream starts (200) before its run has ended, so its status line cannot say
how the run ended; a client that sends ``TE: trailers`` gets ``X-Toolrun-Status`` and
``X-Toolrun-Exit-Code`` after the body (curl shows them with ``-v --raw``).

ASGI has an extension for this (``http.response.trailers``), which uvicorn's HTTP/1.1 servers
do not implement. ``enable()`` adds it to uvicorn's h11 server in this process: a subclass of
its request cycle that holds the chunked body's end until the trailers come, then sends them
with it (h11 writes trailers itself). Should uvicorn's internals change, ``enable`` leaves
them be, the extension is not advertised, and streams simply end without trailers.
"""

from __future__ import annotations

from typing import Any

EXTENSION = "http.response.trailers"


def enable() -> bool:
    """Teach uvicorn's h11 server trailers; False when this uvicorn cannot be taught."""
    try:
        import h11
        from uvicorn.protocols.http import h11_impl
    except ImportError:
        return False
    base = h11_impl.RequestResponseCycle
    if getattr(base, "toolrun_trailers", False):
        return True
    if not callable(getattr(base, "send", None)):
        return False

    class TrailerCycle(base):  # type: ignore[misc, valid-type]
        toolrun_trailers = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.scope.setdefault("extensions", {})[EXTENSION] = {}
            self._holding = False
            self._trailers: list[tuple[bytes, bytes]] = []

        async def send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start" and message.get("trailers"):
                self._holding = True
            elif kind == "http.response.body" and self._holding and not message.get("more_body"):
                message = {**message, "more_body": True}  # the end waits for the trailers
            elif kind == "http.response.trailers":
                if message.get("more_trailers"):
                    self._trailers.extend(message.get("headers", []))
                    return
                self._trailers.extend(message.get("headers", []))
                self._holding = False
                connection: Any = self.conn  # type: ignore[has-type]
                self.conn = _WithTrailers(connection, self._trailers, h11)
                try:
                    await super().send({"type": "http.response.body", "body": b""})
                finally:
                    self.conn = connection
                return
            await super().send(message)

    h11_impl.RequestResponseCycle = TrailerCycle  # type: ignore[misc]
    return True


class _WithTrailers:
    """The h11 connection, sending the trailers with the message's end."""

    def __init__(self, connection: Any, trailers: list[tuple[bytes, bytes]], h11: Any) -> None:
        self._connection = connection
        self._trailers = trailers
        self._h11 = h11

    def send(self, event: Any) -> Any:
        if isinstance(event, self._h11.EndOfMessage) and self._trailers:
            event = self._h11.EndOfMessage(headers=self._trailers)
        return self._connection.send(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def wanted(scope: dict[str, Any]) -> bool:
    """The client said it takes trailers (``TE: trailers``), and the server can send them."""
    if EXTENSION not in scope.get("extensions", {}) or scope.get("http_version") != "1.1":
        return False
    for name, value in scope.get("headers", []):
        if name.lower() == b"te" and b"trailers" in value.lower():
            return True
    return False
