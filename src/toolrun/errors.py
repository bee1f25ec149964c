"""The exceptions toolrun raises, each carrying the message a user reads.

ToolrunError                    exit 1
├── UsageError                  exit 2  a bad argument or spec
├── ConfigError                 exit 3  config.toml, a manifest, a registry's layout
│   └── RegistryUnavailable     exit 3  a registry that cannot be reached in time
├── NotFoundError               exit 4  no such tool, version or run
├── IntegrityError              exit 5  a sha256 that does not match, an unsafe archive
└── StorageError                exit 6  the data dir cannot be written (read-only, full)

The CLI turns these into one line and an exit code (``cli/errors.py``); the daemon turns them
into HTTP statuses. Nothing else catches them.
"""

from __future__ import annotations


class ToolrunError(Exception):
    """Base of every error toolrun reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field  # the part of a request at fault, for the daemon's answer

    def __str__(self) -> str:
        return self.message


class UsageError(ToolrunError):
    exit_code = 2


class ConfigError(ToolrunError):
    exit_code = 3


class RegistryUnavailable(ConfigError):
    pass


class NotFoundError(ToolrunError):
    exit_code = 4


class IntegrityError(ToolrunError):
    exit_code = 5


class StorageError(ToolrunError):
    exit_code = 6
