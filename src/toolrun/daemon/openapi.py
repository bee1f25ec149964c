"""``/openapi.json``: the whole HTTP surface described in OpenAPI 3.1, written out by hand.

Kept next to the routes and checked against the running server by schemathesis in the tests,
so it cannot drift from what the daemon answers.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..store import RUN_STATES

RUN_ID = {"type": "string", "pattern": r"^\d{14}-\d{1,9}$", "example": "20250208123359-1"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


ERROR = _ref("Error")
ERRORS = {
    "400": _json(ERROR, "Bad request: the body says which field and why"),
    "401": _json(ERROR, "No valid token"),
    "403": _json(ERROR, "The token's scope or allow-list does not cover this"),
}
NOT_FOUND = {"404": _json(ERROR, "No such run (or not a run id)")}
SUBMIT_ERRORS = {
    **ERRORS,
    "413": _json(ERROR, "The body is over 1 MiB"),
    "429": _json(ERROR, "The queue is full; retry after Retry-After seconds"),
    "502": _json(ERROR, "A registry could not be reached, or a download did not verify"),
    "503": _json(ERROR, "The daemon is shutting down"),
}
RUN_PATH = [{"name": "run_id", "in": "path", "required": True, "schema": RUN_ID}]
LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,15}$"},
    "description": "Resume after this event id",
}


def _flag(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["true", "false"]},
        "description": description,
    }


CMD_ANSWERS = {
    "200": {
        "description": "The output as it is produced (default), or events with sse=true",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
    "202": _text("onlyid=true: the run id; Location: /result/<id>"),
    **SUBMIT_ERRORS,
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
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/cmd/{path}": {
                "get": {
                    "summary": "Run one tool: /cmd/<tool>[@<version>]/<arg>/...",
                    "parameters": [
                        {
                            "name": "path",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        _flag("onlyid", "Answer 202 with the run id at once"),
                        _flag("sse", "Answer with Server-Sent Events"),
                    ],
                    "responses": CMD_ANSWERS,
                }
            },
            "/cmd": {
                "post": {
                    "summary": "Run one tool, or a toolchain with ?toolchain=NAME",
                    "parameters": [
                        {
                            "name": "body",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["yaml", "json"]},
                        },
                        _flag("onlyid", "Answer 202 with the run id at once"),
                        _flag("sse", "Answer with Server-Sent Events"),
                        {
                            "name": "toolchain",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {"schema": _ref("CmdRequest")},
                            "application/yaml": {"schema": _ref("CmdRequest")},
                        },
                    },
                    "responses": CMD_ANSWERS,
                }
            },
            "/result/help": {
                "get": {"summary": "This manual", "responses": {"200": _text("HTML", "text/html")}}
            },
            "/result/{run_id}": {
                "get": {
                    "summary": "A run's output: 202 while it goes, the whole output once ended",
                    "parameters": [
                        *RUN_PATH,
                        _flag("sse", "Replay and follow as events"),
                        LAST_EVENT_ID,
                    ],
                    "responses": {
                        "200": {
                            "description": "The output, or events with sse=true",
                            "content": {
                                "text/plain": {"schema": {"type": "string"}},
                                "text/event-stream": {"schema": {"type": "string"}},
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
                    "summary": "Start a run",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CmdRequest")}},
                    },
                    "responses": {
                        "202": _json(_ref("Run"), "Recorded; queued or started"),
                        **SUBMIT_ERRORS,
                    },
                },
                "get": {
                    "summary": "Runs, newest first, filtered and paged",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(RUN_STATES)},
                        },
                        {"name": "toolchain", "in": "query", "schema": {"type": "string"}},
                        {"name": "requester", "in": "query", "schema": {"type": "string"}},
                        {"name": "text", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "ISO time, epoch seconds or an age (2h, 7d)",
                        },
                        {"name": "until", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1},
                        },
                        {
                            "name": "page_size",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": RUN_ID,
                            "description": "next_cursor of the previous page",
                        },
                    ],
                    "responses": {"200": _json(_ref("RunList"), "A page of runs"), **ERRORS},
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
                        "202": _json(_ref("Run"), "The new run"),
                        **SUBMIT_ERRORS,
                        **NOT_FOUND,
                    },
                }
            },
            "/api/v1/runs/{run_id}/events": {
                "get": {
                    "summary": "The run's events as Server-Sent Events, replayed then followed",
                    "parameters": [
                        *RUN_PATH,
                        LAST_EVENT_ID,
                        _flag("follow", "false: only the events stored so far"),
                    ],
                    "responses": {
                        "200": _text("Events", "text/event-stream"),
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
                        {"name": "step", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1},
                        },
                    ],
                    "responses": {"200": _text("Log lines"), **ERRORS, **NOT_FOUND},
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
                        {
                            "name": "path",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
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
                        **NOT_FOUND,
                    },
                }
            },
            "/api/v1/events": {
                "get": {
                    "summary": "Every run's state changes, as Server-Sent Events",
                    "responses": {"200": _text("Events", "text/event-stream"), **ERRORS},
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
        },
    }


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": "string"},
        },
    },
    "CmdRequest": {
        "type": "object",
        "properties": {
            "cmd": {"type": "string", "description": "A tool's name"},
            "version": {"type": "string", "description": "0.1.0, ^1.2, latest ..."},
            "args": {"type": "array", "items": {"type": "string"}},
            "toolchain": {"type": "string"},
            "params": {"type": "object"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "timeout": {"type": ["string", "number"]},
        },
    },
    "Pending": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": RUN_ID,
            "status": {"type": "string", "enum": ["queued", "running"]},
            "position": {"type": "integer"},
        },
    },
    "Cancelling": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": RUN_ID, "status": {"type": "string"}},
    },
    "Step": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "tool": {"type": "string"},
            "spec": {"type": "string"},
            "version": _STRING_OR_NULL,
            "sha256": _STRING_OR_NULL,
            "status": {"type": "string"},
            "attempts": {"type": "integer"},
            "exit_code": _INT_OR_NULL,
            "started_at": _NUMBER_OR_NULL,
            "finished_at": _NUMBER_OR_NULL,
            "duration": _NUMBER_OR_NULL,
            "outputs": {"type": "object"},
            "error": _STRING_OR_NULL,
            "allowed_failure": {"type": "boolean"},
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "toolchain", "status", "origin", "requester", "created_at"],
        "properties": {
            "id": RUN_ID,
            "toolchain": {"type": "string"},
            "status": {"type": "string", "enum": list(RUN_STATES)},
            "origin": {"type": "string"},
            "requester": {"type": "string"},
            "params": {"type": "object"},
            "created_at": {"type": "number"},
            "started_at": _NUMBER_OR_NULL,
            "finished_at": _NUMBER_OR_NULL,
            "duration": _NUMBER_OR_NULL,
            "exit_code": _INT_OR_NULL,
            "error": _STRING_OR_NULL,
            "rerun_of": _STRING_OR_NULL,
            "toolchain_sha256": _STRING_OR_NULL,
            "size_bytes": _INT_OR_NULL,
            "position": {"type": "integer"},
            "steps": {"type": "array", "items": _ref("Step")},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "RunList": {
        "type": "object",
        "required": ["runs", "page_size", "next_cursor"],
        "properties": {
            "runs": {"type": "array", "items": _ref("Run")},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "next_cursor": _STRING_OR_NULL,
        },
    },
    "Artifacts": {
        "type": "object",
        "required": ["id", "files"],
        "properties": {
            "id": RUN_ID,
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "size", "sha256"],
                    "properties": {
                        "path": {"type": "string"},
                        "size": {"type": "integer"},
                        "sha256": {"type": "string"},
                    },
                },
            },
        },
    },
    "Tools": {
        "type": "object",
        "required": ["installed"],
        "properties": {
            "installed": {"type": "array", "items": {"type": "object"}},
            "available": {"type": "object"},
        },
    },
    "Toolchains": {
        "type": "object",
        "required": ["toolchains"],
        "properties": {"toolchains": {"type": "array", "items": {"type": "object"}}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "running", "queued"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "draining"]},
            "version": {"type": "string"},
            "running": {"type": "integer"},
            "queued": {"type": "integer"},
        },
    },
}
