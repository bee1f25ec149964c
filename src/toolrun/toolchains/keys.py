"""What the loader checks a toolchain file's mappings against, as plain data: the keys each
may hold and the patterns of names. The shapes in document.py (which the JSON Schema is made
of) are the declaration; these are their fields written out, so that running a toolchain does
not import msgspec to read them (20 ms of a one-step ``toolrun run``, issue 16).
toolchain_schema_test.py checks that the two say the same.
"""

STEP_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
ACCEPT_ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\*?$"
MAX_RETRIES = 1000  # more is a loop, not a retry policy
MAX_BACKOFF = 100

TOOLCHAIN = (
    "toolchain",
    "description",
    "params",
    "env",
    "accept_env",
    "pass_env",
    "timeout",
    "max_parallel",
    "runs_on",
    "priority",
    "schedule",
)
STEP = (
    "cmd",
    "version",
    "description",
    "args",
    "env",
    "needs",
    "if",
    "timeout",
    "retries",
    "continue_on_error",
    "by_platform",
    "runs_on",
)
PARAM = ("type", "default", "required", "description", "choices")
RETRIES = ("max", "delay", "backoff")
PLATFORM = ("args", "env")
SCHEDULE = ("cron", "name", "timezone", "params", "overlap", "catch_up")
BY_PLATFORM = ("windows", "linux", "macos")
REQUIREMENT = ("key", "operator", "values")  # every kind's
