"""What the daemon sends a worker for one attempt, and what the worker sends back.

An attempt goes to a worker as an ``AttemptSpec`` (pickled by Dask with the task); its
output and its end come back as plain dicts on one Dask event topic (``TOPIC``), since
event messages must be msgpack data. One topic for every attempt keeps the scheduler's
memory bounded: it keeps the last thousand messages of each topic it has seen, for ever.

Messages, each naming its attempt (``k``) and numbered from 0 in the order sent (``n``):

- ``{"k", "n": 0, "start": {"worker", "pid", "version", "sha256"}}``: the process started;
- ``{"k", "n", "s": stream, "l": [lines]}``: output, in batches;
- ``{"k", "n", "end": {"exit_code", "outputs", "problem", "error"}}``: the last message.

The numbers let the daemon see a message lost or repeated, and wait for stragglers.
"""

from __future__ import annotations

from ..records import field, record

TOPIC = "toolrun-attempts"
SLOT = "slot"  # the Dask resource a step takes: a worker has --slots of them
LABELS_KEY = "toolrun"  # where a worker's labels are in the scheduler's view of it


@record(frozen=True)
class AttemptSpec:
    """One attempt of a step, as a worker needs it: the tool by name, version and digest
    (the worker installs it, and refuses a copy that differs), the arguments as the daemon
    rendered them, and the environment the toolchain, step and caller give it (the worker
    adds its own inherited part and toolrun's variables)."""

    key: str  # names the Dask task, its messages, its cancel events and the worker's log
    run_id: str
    step_id: str
    attempt: int
    tool: str
    version: str
    sha256: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    registry: str | None = None  # the daemon's /registry/ tree
    registry_token: str | None = None  # lets the worker read it when the daemon has tokens
    batch_seconds: float = 0.05  # how long output may wait on the worker to travel in a batch
    workspace_cap: int = 512 * 1024**2  # bytes of workspace carried (cluster_workspace_cap)


def task_priority(priority: int, queued_at: float) -> float:
    """Dask's priority for an attempt: higher first, and among equal ones the older run first.
    Dask breaks ties by the order tasks reached it, which for runs started together is no
    order at all (each first waits to be placed); the run's age, as a fraction below one,
    keeps the queue's order without ever passing a whole step of priority (until 2286)."""
    return priority - queued_at / 1e10


def attempt_key(run_id: str, step_id: str, attempt: int) -> str:
    return f"toolrun-{run_id}-{step_id}-{attempt}"


def cancel_event(key: str) -> str:
    """The ``distributed.Event`` the step on the worker watches: set, it ends the tree."""
    return f"{key}-cancel"


def kill_event(key: str) -> str:
    """Set after a cancel: end it by force now, without waiting out the grace."""
    return f"{key}-kill"
