"""``/openapi.json``: the whole HTTP surface in OpenAPI 3.1, saying exactly what is accepted.

The rules a request is checked by are quoted from the code that checks them (tool names and
version constraints from ``versions``, the argument rule from ``policy``, durations and
times from ``units``), and schemathesis runs every check against the live
daemon in the tests, so the document and the daemon cannot disagree unnoticed. The
components are generated from the shapes the daemon reads and answers with (``_schemas``).

It stays one module over 400 lines because ``PATHS`` is one table of the whole surface, each
route beside its parameters and answers; split, a route's answers would be a file away.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..history.store import RUN_STATES
from ..policy import FORBIDDEN_ARG_PATTERN
from ..runs.events import KINDS
from ..tools.versions import CONSTRAINT_PATTERN, MAX_NAME, MAX_SPEC, NAME_PATTERN
from ..units import WHEN_PATTERN
from .core import FALSE_FLAGS, TRUE_FLAGS

MAX_INT = 2**53
RUN_ID = {"type": "string", "pattern": r"^[0-9]{14}-[0-9]{1,9}$", "example": "20250208123359-1"}
NAME = {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME}
NO_NUL = "^[^\\x00]*$"
ARG = {
    "type": "string",
    "pattern": NO_NUL,
    "not": {"pattern": FORBIDDEN_ARG_PATTERN},
    "description": "No absolute path and no '..' in any part a tool may read as a path",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _events(
    description: str, kinds: list[str], *, ids: bool, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Server-Sent Events: each event an object of its fields, as OpenAPI 3.2 reads them;
    ``data``: the schema of the JSON each carries (a run's events by default)."""
    event: dict[str, Any] = {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": kinds},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data or _ref("Event"),
            },
        },
    }
    if ids:
        event["required"].append("id")
        event["properties"]["id"] = {"type": "string", "pattern": "^[0-9]+$"}
    return {"description": description, "content": {"text/event-stream": {"schema": event}}}


# NAME or NAME@CONSTRAINT, as one pattern: the two quoted patterns without their anchors.
TOOL_AT_VERSION = f"^{NAME_PATTERN[1:-1]}(?:@(?=[^@]{{1,{MAX_SPEC}}}$){CONSTRAINT_PATTERN[1:-1]})?$"
ERROR = _ref("Error")
RUN_ID_HEADER = {
    "X-Toolrun-Run-Id": {"description": "The run's id", "schema": RUN_ID},
}
STATUS_HEADERS = {
    "X-Toolrun-Status": {"schema": {"type": "string", "enum": list(RUN_STATES)}},
    "X-Toolrun-Exit-Code": {"schema": {"type": "string", "pattern": "^-?[0-9]+$"}},
}
ERRORS = {
    "400": _json(ERROR, "Bad request: the body says which field and why"),
    "401": _json(ERROR, "No valid token"),
    "403": _json(
        ERROR,
        "The token's scope or allow-list does not cover this; or the request came from "
        "another site, or to a host name this daemon does not serve",
    ),
}
NOT_FOUND = {"404": _json(ERROR, "No such run (or not a run id)")}
SUBMIT_ERRORS = {
    **ERRORS,
    "404": _json(ERROR, "No such tool, version or toolchain (or a program missing from PATH)"),
    "409": _json(ERROR, "No place has the labels the run's runs_on asks for"),
    "413": _json(ERROR, "The body is over 1 MiB"),
    "429": _json(ERROR, "The queue is full; retry after Retry-After seconds"),
    "500": _json(ERROR, "The daemon's own configuration is wrong"),
    "502": _json(ERROR, "A registry could not be reached, or a download did not verify"),
    "503": _json(ERROR, "The daemon is shutting down"),
    "507": _json(ERROR, "The daemon's data folder cannot be written"),
}
RUN_PATH = [{"name": "run_id", "in": "path", "required": True, "schema": RUN_ID}]
LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^ *[0-9]{1,15} *$"},
    "description": "Resume after this event id",
}


def _flag(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": [*TRUE_FLAGS, *FALSE_FLAGS]},
        "description": f"{description} (true, 1, yes or the bare name; false, 0, no)",
    }


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    found = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        found["description"] = description
    return found


def _integer(minimum: int, maximum: int = MAX_INT) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


RUN_MODES = [
    _flag("onlyid", "Answer 202 with the run id at once"),
    _flag("sse", "Answer with Server-Sent Events"),
    _query(
        "mode",
        {"type": "string", "enum": ["stream", "buffered"]},
        "buffered: answer once the run has ended, its status code saying how (200, 500, 504)",
    ),
]
CMD_ANSWERS = {
    "200": {
        "description": "The output as it is produced (a last line 'toolrun: ...' when toolrun "
        "itself stopped or could not start the tool; X-Toolrun-Status and "
        "X-Toolrun-Exit-Code as trailers to a client that sends TE: trailers), or events "
        "with sse=true, or with mode=buffered the whole output of a run that succeeded",
        "headers": RUN_ID_HEADER,
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            **_events("", list(KINDS), ids=True)["content"],
        },
    },
    "202": {
        "description": "onlyid=true: the run id; Location: /result/<id>",
        "headers": RUN_ID_HEADER,
        "content": {"text/plain": {"schema": RUN_ID}},
    },
    **SUBMIT_ERRORS,
    "500": {
        "description": "mode=buffered: the run failed (its output), or the daemon's "
        "configuration is wrong (JSON)",
        "headers": STATUS_HEADERS,
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": ERROR},
        },
    },
    "504": {
        "description": "mode=buffered: the run timed out (its output)",
        "headers": STATUS_HEADERS,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _ref("RunRequest")},
        "application/yaml": {"schema": _ref("RunRequest")},
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "toolrun daemon",
            "version": __version__,
            "description": "Runs versioned tools and toolchains. Manual: /result/help",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
        "security": [{"bearer": []}, {}],
        "paths": PATHS,
    }


PATHS: dict[str, Any] = {
    "/cmd/{tool}": {
        "get": {
            "summary": "Run one tool: /cmd/<tool>[@<version>], its arguments as further path "
            "segments (/cmd/ping/example.com; %2F keeps a / inside one argument), each held "
            "to the argument rule of POST /cmd",
            "parameters": [
                {
                    "name": "tool",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "maxLength": MAX_NAME + 1 + MAX_SPEC,
                        "pattern": TOOL_AT_VERSION,
                    },
                },
                *RUN_MODES,
            ],
            "responses": CMD_ANSWERS,
        }
    },
    "/cmd": {
        "post": {
            "summary": "Run one tool, or a toolchain (in the body, or ?toolchain=NAME with the "
            "body's params, or its args as the seed calls them); YAML by default",
            "parameters": [
                _query("body", {"type": "string", "enum": ["yaml", "json"]}),
                *RUN_MODES,
                _query("toolchain", NAME, "Run this toolchain; the body then holds its params"),
            ],
            "requestBody": BODY,
            "responses": CMD_ANSWERS,
        }
    },
    "/result/help": {
        "get": {"summary": "This manual", "responses": {"200": _text("HTML", "text/html")}}
    },
    "/result/{run_id}": {
        "get": {
            "summary": "A run's output: 202 while it goes, the whole output once ended",
            "parameters": [*RUN_PATH, _flag("sse", "Replay and follow as events"), LAST_EVENT_ID],
            "responses": {
                "200": {
                    "description": "The output (a last line 'toolrun: ...' as for /cmd), or "
                    "events with sse=true, ending with run_finished",
                    "headers": {**RUN_ID_HEADER, **STATUS_HEADERS},
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        **_events("", list(KINDS), ids=True)["content"],
                    },
                },
                "202": _json(_ref("Pending"), "Still queued or running"),
                **ERRORS,
                **NOT_FOUND,
            },
        }
    },
    "/api/v1/runs": {
        "post": {
            "summary": "Start a run (JSON, or YAML with a yaml content type)",
            "requestBody": BODY,
            "responses": {
                "202": {
                    **_json(_ref("Run"), "Recorded; queued or started"),
                    "headers": RUN_ID_HEADER,
                },
                **SUBMIT_ERRORS,
            },
        },
        "get": {
            "summary": "Runs, newest first, filtered and paged",
            "parameters": [
                _query("status", {"type": "string", "enum": list(RUN_STATES)}),
                _query("toolchain", {"type": "string"}),
                _query("requester", {"type": "string"}),
                _query("worker", {"type": "string"}, "Only runs with a step that ran on it"),
                _query(
                    "text", {"type": "string"}, "Text in the id, toolchain, requester or params"
                ),
                _query(
                    "since",
                    {"type": "string", "pattern": WHEN_PATTERN},
                    "Seconds since 1970, an ISO date or date and time, or an age (2h, 7d)",
                ),
                _query("until", {"type": "string", "pattern": WHEN_PATTERN}),
                _query("page", _integer(1), "From 1; with cursor, counted after the cursor's run"),
                _query("page_size", _integer(1, 100)),
                _query("cursor", RUN_ID, "next_cursor of the previous page"),
            ],
            "responses": {
                "200": _json(_ref("RunList"), "A page of runs"),
                **ERRORS,
                "404": _json(ERROR, "The cursor names no run"),
            },
        },
    },
    "/api/v1/runs/{run_id}": {
        "get": {
            "summary": "One run with its steps",
            "parameters": RUN_PATH,
            "responses": {"200": _json(_ref("Run"), "The run"), **ERRORS, **NOT_FOUND},
        }
    },
    "/api/v1/runs/{run_id}/cancel": {
        "post": {
            "summary": "Cancel a run (its whole process tree)",
            "parameters": RUN_PATH,
            "responses": {
                "202": _json(_ref("Cancelling"), "Being cancelled"),
                "409": _json(ERROR, "The run has already ended"),
                **ERRORS,
                **NOT_FOUND,
            },
        }
    },
    "/api/v1/runs/{run_id}/rerun": {
        "post": {
            "summary": "Run it again: same toolchain text, params and tool versions",
            "parameters": [
                *RUN_PATH,
                _flag("from_failed", "Keep the steps that succeeded and their files"),
            ],
            "responses": {
                "202": {**_json(_ref("Run"), "The new run"), "headers": RUN_ID_HEADER},
                "409": _json(ERROR, "from_failed: every step succeeded, nothing to run again"),
                **SUBMIT_ERRORS,
                "404": _json(ERROR, "No such run, or a tool of it is gone"),
            },
        }
    },
    "/api/v1/runs/{run_id}/pause": {
        "post": {
            "summary": "Pause: no further step starts; with now=true the running steps' "
            "processes are frozen too. Paused time does not count against timeouts",
            "parameters": [*RUN_PATH, _flag("now", "Freeze the running steps too")],
            "responses": {
                "202": _json(_ref("Controlled"), "Asked; the run's state follows within moments"),
                **ERRORS,
                **NOT_FOUND,
                "409": _json(ERROR, "The run has ended, or its steps cannot be frozen here"),
            },
        }
    },
    "/api/v1/runs/{run_id}/resume": {
        "post": {
            "summary": "Go on with a paused run",
            "parameters": RUN_PATH,
            "responses": {
                "202": _json(_ref("Controlled"), "Asked; the run's state follows within moments"),
                **ERRORS,
                **NOT_FOUND,
                "409": _json(ERROR, "The run has ended"),
            },
        }
    },
    "/api/v1/runs/{run_id}/events": {
        "get": {
            "summary": "The run's events as Server-Sent Events, replayed then followed, "
            "ending with run_finished (made from the history for a run whose toolrun died)",
            "parameters": [
                *RUN_PATH,
                LAST_EVENT_ID,
                _flag("follow", "false: only the events stored so far"),
            ],
            "responses": {
                "200": _events("Events", list(KINDS), ids=True),
                **ERRORS,
                **NOT_FOUND,
            },
        }
    },
    "/api/v1/runs/{run_id}/log": {
        "get": {
            "summary": "The run's log as text",
            "parameters": [
                *RUN_PATH,
                _query("step", {"type": "string"}, "Only this step's output"),
                _query("offset", _integer(0), "Lines to skip"),
                _query("limit", _integer(1), "Lines to send at most"),
            ],
            "responses": {
                "200": {**_text("Log lines"), "headers": RUN_ID_HEADER},
                **ERRORS,
                "404": _json(ERROR, "No such run, or no such step in it"),
            },
        }
    },
    "/api/v1/runs/{run_id}/artifacts": {
        "get": {
            "summary": "Files in the run's workspace, with size and sha256",
            "parameters": RUN_PATH,
            "responses": {
                "200": _json(_ref("Artifacts"), "The files"),
                **ERRORS,
                **NOT_FOUND,
            },
        }
    },
    "/api/v1/runs/{run_id}/artifacts/{path}": {
        "get": {
            "summary": "Download one workspace file",
            "parameters": [
                *RUN_PATH,
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                **ERRORS,
                "404": _json(ERROR, "No such run, or no such file in its workspace"),
            },
        }
    },
    "/api/v1/events": {
        "get": {
            "summary": "Every run's state changes, as Server-Sent Events: first hello (the "
            "daemon's health), then one run event for each change",
            "responses": {
                "200": _events(
                    "Events; hello's data is a Health, run's a RunChange",
                    ["hello", "run"],
                    ids=False,
                    data={"oneOf": [_ref("Health"), _ref("RunChange")]},
                ),
                **ERRORS,
            },
        }
    },
    "/api/v1/tools": {
        "get": {
            "summary": "Installed tools (and with available=true, what registries offer)",
            "parameters": [_flag("available", "Also ask the registries")],
            "responses": {"200": _json(_ref("Tools"), "Tools"), **ERRORS},
        }
    },
    "/api/v1/toolchains": {
        "get": {
            "summary": "Toolchains this daemon can run",
            "responses": {"200": _json(_ref("Toolchains"), "Toolchains"), **ERRORS},
        }
    },
    "/api/v1/workers": {
        "get": {
            "summary": "The cluster's workers: labels, slots, steps running, heartbeat",
            "responses": {"200": _json(_ref("Workers"), "Workers"), **ERRORS},
        }
    },
    "/registry/{path}": {
        "get": {
            "summary": "The daemon's installed tools as a static registry tree (index.json "
            "and one zip per version), from which workers install",
            "parameters": [
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "index.json, or a tool version's zip",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **ERRORS,
                "404": _json(ERROR, "Not in the tree"),
            },
        }
    },
    "/hooks/{name}": {
        "post": {
            "summary": "A signed delivery from another system (GitHub, GitLab, a script) starts "
            "the hook's toolchain; the signature stands in for a token (docs/automation.md)",
            "security": [],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": NAME},
                {
                    "name": "X-Hub-Signature-256",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "github hooks: sha256=HMAC-SHA256(secret, body) in hex",
                },
                {
                    "name": "X-Gitlab-Token",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "gitlab hooks: the secret token",
                },
                {
                    "name": "X-Toolrun-Signature",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "toolrun hooks: t=UNIX_SECONDS,v1=HMAC-SHA256(secret, "
                    "'{t}.' + body) in hex, within 5 minutes of the daemon's clock",
                },
            ],
            "requestBody": {
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                }
            },
            "responses": {
                "202": _json(_ref("HookAnswer"), "Started (ran: true), or filtered out by if:"),
                "400": _json(
                    ERROR,
                    "A payload that is not JSON or a form, or a param it "
                    "maps to that names a path outside the workspace",
                ),
                "401": _json(ERROR, "Unsigned, a signature that does not match, or a replay"),
                "403": ERRORS["403"],
                "404": _json(ERROR, "No such hook, or its toolchain or tool is missing"),
                "413": _json(ERROR, "A payload over 5 MiB"),
                "429": _json(ERROR, "The hook's max_parallel runs are going, or the queue is full"),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness; 503 while shutting down",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "Serving"),
                "503": _json(_ref("Health"), "Draining"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {"200": _text("Prometheus text format"), **ERRORS},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
}


def _schemas() -> dict[str, Any]:
    """The components, generated from the shapes the daemon reads and answers with."""
    import msgspec

    from ..runs.event_shapes import Event
    from .answers import SHAPES
    from .requests import ToolchainRequest, ToolRequest

    (event, *_), schemas = msgspec.json.schema_components(
        (Event, ToolRequest, ToolchainRequest, *SHAPES),
        ref_template="#/components/schemas/{name}",
    )
    schemas["Event"] = event  # the union of the kinds, told apart by "kind"
    for schema in schemas.values():
        schema.pop("title", None)  # msgspec's titles are our class names
    schemas["RunRequest"] = {"oneOf": [_ref("ToolRequest"), _ref("ToolchainRequest")]}
    # What no field can say: a toolchain's inputs come as params or as args, never both.
    schemas["ToolchainRequest"]["not"] = {"required": ["params", "args"]}
    return schemas
