"""A WASM guest's output on its way to a sink: the outbox its writes land in (from wasmtime's
threads or a pipe reader's), the pipes it writes into, and the lines made of them.

Pipes where the system names a file descriptor (``/dev/fd/N``): a write costs the guest
2.5 us. WASI's custom-output callbacks elsewhere (Windows): a write then crosses into Python
on one of wasmtime's threads, 22 us each, which a guest writing a line at a time pays for
every line (200,000 lines through ``toolrun exec``: 1.1 s with pipes, 7.5 s with callbacks).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from .processes import LineSplitter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .protocol import Launch, Sink

QUEUED_BYTES = 4 * 1024 * 1024  # output held for delivery before the guest waits for room
READ_SIZE = 1024 * 1024
# Pipes for the guest's output where a file descriptor has a path wasmtime can open.
OUTPUT_PIPES = sys.platform != "win32" and os.path.isdir("/dev/fd")
COALESCE = 0.002  # seconds a woken taker lets the guest's writes gather: a batch, not a line


class Outbox:
    """Bytes the guest wrote, from wasmtime's threads, until the engine's side takes them.

    Bounded like a pipe: a guest writing faster than its lines are handled waits, unless it
    is being ended (``unblock``), when nothing may hold it up. The taker is woken only when
    the first write lands in an empty outbox, and then lets more gather for ``COALESCE``
    seconds: woken for every write of a guest that writes a line at a time, it spent more
    time switching threads than the guest did writing."""

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self._ready = threading.Condition()
        self._items: list[tuple[str, bytes]] = []
        self._size = 0
        self._unblocked = False
        self.ended = False
        self._wake = wake  # called when the first item lands in an empty outbox

    def put(self, stream: str, data: bytes) -> None:
        with self._ready:
            while self._size >= QUEUED_BYTES and not self._unblocked:
                self._ready.wait(0.05)
            first = not self._items
            self._items.append((stream, data))
            self._size += len(data)
            if first:
                self._ready.notify_all()
        if first and self._wake is not None:
            self._wake()

    def take(self, timeout: float = 0.0) -> list[tuple[str, bytes]]:
        """What is there, waiting up to ``timeout`` seconds for something (or the end)."""
        woken = False
        with self._ready:
            if not self._items and not self.ended and timeout > 0:
                self._ready.wait(timeout)
                woken = bool(self._items)
        if woken and not self.ended:
            time.sleep(COALESCE)
        with self._ready:
            items, self._items, self._size = self._items, [], 0
            self._ready.notify_all()  # a guest waiting for room goes on
        return items

    def end(self) -> None:
        with self._ready:
            self.ended = True
            self._ready.notify_all()

    def unblock(self) -> None:
        with self._ready:
            self._unblocked = True
            self._ready.notify_all()


class OutputPipes:
    """The guest's stdout and stderr as two pipes, read by a thread of their own into the
    outbox, as a process's are."""

    def __init__(self, outbox: Outbox, label: str) -> None:
        self.outbox = outbox
        self.label = label
        self._reader: threading.Thread | None = None
        self._finished = (-1, -1)  # a pipe: the guest has ended, read what is left and stop

    def open(self, wasi: Any) -> None:
        """Point ``wasi``'s stdout and stderr at new pipes, and start reading them."""
        pipes: dict[str, int] = {}
        try:
            for stream in ("stdout", "stderr"):
                read, write = os.pipe()
                pipes[stream] = read
                try:
                    # wasmtime opens the path itself, holding a write end of its own.
                    setattr(wasi, f"{stream}_file", f"/dev/fd/{write}")
                finally:
                    os.close(write)
        except BaseException:
            for fd in pipes.values():
                os.close(fd)
            raise
        self._finished = os.pipe()
        self._reader = threading.Thread(
            target=self._read_pipes, args=(pipes,), name=f"wasm output {self.label}"
        )
        self._reader.daemon = True
        self._reader.start()

    def _read_pipes(self, pipes: dict[str, int]) -> None:
        import selectors

        finished = self._finished[0]
        with selectors.DefaultSelector() as selector:
            for stream, fd in pipes.items():
                selector.register(fd, selectors.EVENT_READ, stream)
            selector.register(finished, selectors.EVENT_READ, None)
            while len(selector.get_map()) > 1:
                for key, _ in selector.select():
                    if key.data is None:
                        for stream, fd in pipes.items():
                            if fd in selector.get_map():
                                if sys.platform != "win32":  # OUTPUT_PIPES: never there
                                    os.set_blocking(fd, False)
                                self._read_all(stream, fd)
                                selector.unregister(fd)
                                os.close(fd)
                        break
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(key.fd)
                        os.close(key.fd)
                        continue
                    self.outbox.put(key.data, data)
        os.close(finished)

    def _read_all(self, stream: str, fd: int) -> None:
        """What is left in a pipe whose writer has finished, without waiting for more."""
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # BlockingIOError: empty
                return
            if not data:
                return
            self.outbox.put(stream, data)

    def stop(self) -> None:
        """Everything the guest wrote is in the pipes by now (a write returns once it is).
        Their write ends close with the store, which any reference left to it would delay
        (a trap's traceback did), so the reader is told to take what is left and stop
        rather than wait for the end of the file."""
        if self._reader is None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError: it found the end itself
            os.write(self._finished[1], b"x")
        self._reader.join()
        os.close(self._finished[1])


class Lines:
    """The guest's two streams, split into lines for a sink."""

    def __init__(self, launch: Launch, sink: Sink) -> None:
        self.sink = sink
        self.splitters = {s: LineSplitter(launch.encoding) for s in ("stdout", "stderr")}

    def deliver(self, items: list[tuple[str, bytes]]) -> None:
        for stream, data in _runs(items):
            if self.sink.on_raw is not None:
                self.sink.on_raw(stream, data)
            lines = self.splitters[stream].feed(data)
            if lines:
                self.sink.on_lines(stream, lines)

    def finish(self) -> None:
        for stream, splitter in self.splitters.items():
            rest = splitter.finish()
            if rest:
                self.sink.on_lines(stream, rest)


def _runs(items: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Consecutive writes to one stream joined: one batch of lines, as a pipe's read gives,
    rather than an event for every write of a guest that writes a line at a time."""
    joined: list[tuple[str, bytes]] = []
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end][0] != items[start][0]:
            if end - start == 1:
                joined.append(items[start])
            else:
                joined.append((items[start][0], b"".join(data for _, data in items[start:end])))
            start = end
    return joined
