"""A daemon seen from the command line (``--remote URL``): the runs it keeps, read and started
over its REST API with httpx, and a run's events followed over SSE.

``RemoteRuns`` answers the same questions as the local store (list, require, steps, events),
so ``history``, ``show``, ``logs``, ``result`` and ``cancel`` print the same either way. HTTP
answers become our own errors and thus the same exit codes as local use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, IntegrityError, NotFoundError, ToolrunError, UsageError
from ..history.store import HistoryQuery, RunRecord, StepRecord, check_run_id
from ..json_views import run_from_json, steps_from_json
from ..runs.events import RUN_FINISHED, Event

if TYPE_CHECKING:
    import ssl

    import httpx

MAX_PAGE = 100
RECONNECTS = 20  # a followed run survives this many dropped connections in a row


class RemoteRuns:
    def __init__(
        self, url: str, token: str | None, *, cacert: str | None = None, insecure: bool = False
    ) -> None:
        import httpx

        from ..config import shown_url, url_problem

        problem = url_problem(url, credentials=True)
        if problem:
            raise UsageError(f"--remote {shown_url(url)!r} {problem}")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._httpx = httpx
        # trust_env=False: a proxy from the environment must not see the token; the CA file
        # it could name is honoured here instead.
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(30.0),
            trust_env=False,
            verify=tls_verify(cacert, insecure=insecure),
        )
        self._bodies: dict[str, dict[str, Any]] = {}

    # -- plain requests ------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self.client.request(method, path, **kwargs)
        except self._httpx.TransportError as exc:
            raise ToolrunError(f"cannot reach the daemon at {self.url}: {exc}") from None
        if answer.status_code >= 400:
            raise _error_for(answer, self.url)
        return answer

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.call("POST", "/api/v1/runs", json=body).json()
        self._bodies[data["id"]] = data
        return data

    def rerun(self, run_id: str, *, from_failed: bool) -> dict[str, Any]:
        check_run_id(run_id)
        params = {"from_failed": "true"} if from_failed else {}
        data: dict[str, Any] = self.call(
            "POST", f"/api/v1/runs/{run_id}/rerun", params=params
        ).json()
        self._bodies[data["id"]] = data
        return data

    def cancel(self, run_id: str) -> None:
        check_run_id(run_id)
        self.call("POST", f"/api/v1/runs/{run_id}/cancel")

    def control(self, run_id: str, wanted: int) -> None:
        check_run_id(run_id)
        if wanted:
            self.call(
                "POST", f"/api/v1/runs/{run_id}/pause?now={'true' if wanted == 2 else 'false'}"
            )
        else:
            self.call("POST", f"/api/v1/runs/{run_id}/resume")

    # -- what the local store answers ----------------------------------------------------------

    def list_runs(self, query: HistoryQuery) -> list[RunRecord]:
        params: dict[str, Any] = {
            key: value
            for key, value in {
                "status": query.status,
                "toolchain": query.toolchain,
                "requester": query.requester,
                "worker": query.worker,
                "text": query.text,
                "since": query.since,
                "until": query.until,
            }.items()
            if value is not None
        }
        size = min(query.limit, MAX_PAGE)
        if query.offset % size:
            raise UsageError(f"with --remote, pages are at most {MAX_PAGE} runs")
        runs: list[RunRecord] = []
        page: dict[str, Any] = {"page": query.offset // size + 1}
        while len(runs) < query.limit:
            data = self.call(
                "GET", "/api/v1/runs", params={**params, **page, "page_size": size}
            ).json()
            runs.extend(run_from_json(item) for item in data["runs"])
            if not data["next_cursor"]:
                break
            page = {"cursor": data["next_cursor"]}
        return runs[: query.limit]

    def require_run(self, run_id: str) -> RunRecord:
        return run_from_json(self._body(run_id, fresh=True))

    def steps(self, run_id: str) -> list[StepRecord]:
        return steps_from_json(self._body(run_id))

    def _body(self, run_id: str, *, fresh: bool = False) -> dict[str, Any]:
        check_run_id(run_id)
        if fresh or run_id not in self._bodies:
            self._bodies[run_id] = self.call("GET", f"/api/v1/runs/{run_id}").json()
        return self._bodies[run_id]

    def events(self, run_id: str, *, follow: bool = True, after: int = 0) -> Iterator[Event]:
        """The run's events over SSE; a dropped connection is resumed from the last id seen."""
        check_run_id(run_id)
        last = after
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)}
            params = {} if follow else {"follow": "false"}
            timeout = self._httpx.Timeout(30.0, read=None)
            try:
                with self.client.stream(
                    "GET",
                    f"/api/v1/runs/{run_id}/events",
                    headers=headers,
                    params=params,
                    timeout=timeout,
                ) as answer:
                    if answer.status_code >= 400:
                        answer.read()
                        raise _error_for(answer, self.url)
                    for event in _parse_sse(answer.iter_lines()):
                        failures = 0
                        last = event.seq
                        yield event
                        if event.kind == RUN_FINISHED:
                            return
                if not follow:
                    return
                # The stream ended without the run's end: the daemon stopped; see how it ended.
                if not self.require_run(run_id).is_active:
                    return
            except self._httpx.TransportError as exc:
                failures += 1
                if failures > RECONNECTS:
                    raise ToolrunError(f"lost the daemon at {self.url}: {exc}") from None
            time.sleep(min(0.2 * 2**failures, 5.0))


def tls_verify(cacert: str | None, *, insecure: bool = False) -> ssl.SSLContext | bool:
    """How the daemon's certificate is checked: against ``cacert`` (--cacert), else the file
    SSL_CERT_FILE names, else the system's CAs; not at all with ``insecure``."""
    import os
    import ssl

    if insecure:
        return False
    cafile = cacert or os.environ.get("SSL_CERT_FILE") or None
    if cafile is None:
        return True
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        where = "--cacert" if cacert else "SSL_CERT_FILE"
        raise UsageError(f"{where} {cafile}: not a CA certificate file: {exc}") from None


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            yield Event.from_json("\n".join(data))
            data = []


def _error_for(answer: httpx.Response, url: str) -> ToolrunError:
    body: Any = None
    try:
        body = answer.json()
        message = str(body.get("message") or body)
        if body.get("field"):
            message = f"{message} (field {body['field']})"
    except (ValueError, json.JSONDecodeError, AttributeError):
        message = answer.text.strip()[:200] or answer.reason_phrase
    status = answer.status_code
    if status in (401, 403):
        return ConfigError(f"the daemon at {url} refused: {message}")
    if status == 404:
        return NotFoundError(message)
    if status == 409 and isinstance(body, dict) and body.get("error") == "locked":
        return IntegrityError(message)  # as a local --locked run refuses: exit 5
    if status == 429:
        retry = answer.headers.get("retry-after", "a few")
        return ToolrunError(f"the daemon's queue is full; try again in {retry} s")
    if status < 500:
        return UsageError(message)
    return ToolrunError(f"the daemon failed ({status}): {message}")
