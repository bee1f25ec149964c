"""Prometheus metrics, kept in plain counters and written in the text exposition format.

Counted since the daemon started, as Prometheus counters are: runs by toolchain and status,
run durations as a histogram, and gauges of the runs going and waiting now.
"""

from __future__ import annotations

from collections import Counter

from ..records import field, record
from .runs import RunManager, Transition

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
ENDED = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")


@record
class Metrics:
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)

    def record(self, change: Transition) -> None:
        if change.status not in ENDED:
            return
        self.runs[(change.toolchain, change.status)] += 1
        if change.duration is not None:
            self.duration_sum += change.duration
            self.duration_count += 1
            for index, bound in enumerate(BUCKETS):
                if change.duration <= bound:
                    self.bucket_counts[index] += 1

    def render(self, manager: RunManager) -> str:
        lines = [
            "# HELP toolrun_runs_total Runs ended since the daemon started.",
            "# TYPE toolrun_runs_total counter",
        ]
        for (toolchain, status), count in sorted(self.runs.items()):
            lines.append(
                f'toolrun_runs_total{{toolchain="{_label(toolchain)}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP toolrun_run_duration_seconds How long runs took, start to end.",
            "# TYPE toolrun_run_duration_seconds histogram",
        ]
        for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
            lines.append(f'toolrun_run_duration_seconds_bucket{{le="{bound}"}} {count}')
        lines.append(f'toolrun_run_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}')
        lines.append(f"toolrun_run_duration_seconds_sum {self.duration_sum:.6f}")
        lines.append(f"toolrun_run_duration_seconds_count {self.duration_count}")
        lines += [
            "# HELP toolrun_runs_running Runs going now.",
            "# TYPE toolrun_runs_running gauge",
            f"toolrun_runs_running {len(manager.running)}",
            "# HELP toolrun_runs_queued Runs waiting for a slot.",
            "# TYPE toolrun_runs_queued gauge",
            f"toolrun_runs_queued {manager.queued}",
            "# HELP toolrun_http_requests_total HTTP requests answered, by method and status.",
            "# TYPE toolrun_http_requests_total counter",
        ]
        for (method, code), count in sorted(self.requests.items()):
            lines.append(f'toolrun_http_requests_total{{method="{method}",code="{code}"}} {count}')
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
