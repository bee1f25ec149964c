"""Prometheus metrics, kept and written by prometheus_client.

Counted since the daemon started, as Prometheus counters are: runs by toolchain and status,
run durations as a histogram, HTTP requests by method and status, gauges of the runs going
and waiting now, and the process's own (CPU, memory, open files; Python's collector).

Each daemon keeps its own registry, so two in one process (the tests) never share a count.
With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client's multi-process mode is in force:
every process writes its values under that folder and ``/metrics`` adds them up (gauges as
the sum over the live processes), so daemons sharing a port behind a supervisor answer as one.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from .runs import RunManager, Transition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .answers import Workers

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
ENDED = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# `_created` samples double every series for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_DIR))
        # In multi-process mode the values live in files, not in a registry: none is given.
        self.registry = None if self.multiprocess else CollectorRegistry()
        if self.registry is not None:
            from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, ProcessCollector

            ProcessCollector(registry=self.registry)
            for collector in (GC_COLLECTOR, PLATFORM_COLLECTOR):
                self.registry.register(collector)
        registry = self.registry
        self.runs = Counter(
            "toolrun_runs",
            "Runs ended since the daemon started.",
            ["toolchain", "status"],
            registry=registry,
        )
        self.durations = Histogram(
            "toolrun_run_duration_seconds",
            "How long runs took, start to end.",
            buckets=BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "toolrun_http_requests",
            "HTTP requests answered, by method and status.",
            ["method", "code"],
            registry=registry,
        )
        # Across processes, what is going now is the sum over the live ones.
        self.running = Gauge(
            "toolrun_runs_running",
            "Runs going now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.paused = Gauge(
            "toolrun_runs_paused",
            "Runs paused now (counted among the running too: they keep their slot).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queued = Gauge(
            "toolrun_runs_queued",
            "Runs waiting for a slot.",
            registry=registry,
            multiprocess_mode="livesum",
        )

        # A cluster daemon's workers: one series per worker, redrawn at every scrape.
        self.worker_slots = Gauge(
            "toolrun_worker_slots",
            "Steps a worker runs at once.",
            ["worker"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.worker_running = Gauge(
            "toolrun_worker_running",
            "Steps of this daemon running on a worker now.",
            ["worker"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.worker_heartbeat_age = Gauge(
            "toolrun_worker_heartbeat_age_seconds",
            "Seconds since a worker's last heartbeat.",
            ["worker"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.workers_lost = Counter(
            "toolrun_workers_lost",
            "Step attempts ended because their worker was lost.",
            registry=registry,
        )
        self._lost_seen = 0

    def record(self, change: Transition) -> None:
        if change.status not in ENDED:
            return
        self.runs.labels(change.toolchain, change.status).inc()
        if change.duration is not None:
            self.durations.observe(change.duration)

    def request(self, method: str, code: int) -> None:
        self.requests.labels(method, str(code)).inc()

    def render(self, manager: RunManager, workers: Workers | None = None) -> bytes:
        self.running.set(len(manager.running))
        self.paused.set(len(manager.paused))
        self.queued.set(manager.queued)
        if workers is not None:
            self._workers(workers)
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def lost(self, total: int) -> None:
        """The executor's count of lost attempts so far: the counter goes up by the new ones."""
        if total > self._lost_seen:
            self.workers_lost.inc(total - self._lost_seen)
            self._lost_seen = total

    def _workers(self, workers: Workers) -> None:
        for gauge in (self.worker_slots, self.worker_running, self.worker_heartbeat_age):
            gauge.clear()
        for worker in workers.workers:
            self.worker_slots.labels(worker.name).set(worker.slots)
            self.worker_running.labels(worker.name).set(worker.running)
            self.worker_heartbeat_age.labels(worker.name).set(worker.heartbeat_age)
