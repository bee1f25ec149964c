"""docs/toolchain.schema.json is generated from toolchains/document.py, and the loader and the
schema agree on what a toolchain may be: a corpus of bad files that both refuse, and of good
ones that both take."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from toolrun.toolchains.document import ByPlatform, json_schema, schema_text
from toolrun.toolchains.loader import parse_toolchain_text
from toolrun.toolchains.model import ToolchainError
from toolrun.tools.manifest import PLATFORMS

REPO = Path(__file__).resolve().parent.parent
CHECKED_IN = REPO / "docs" / "toolchain.schema.json"

STEP = "toolchain:\n  - a:\n      cmd: uexp\n"

# Each is refused by the loader and by the schema: the shape is wrong.
BAD = {
    "no steps key": "description: nothing\n",
    "steps not a list": "toolchain: {a: {cmd: uexp}}\n",
    "empty steps": "toolchain: []\n",
    "a step with two ids": "toolchain:\n  - {a: {cmd: uexp}, b: {cmd: uexp}}\n",
    "a step id with a space": "toolchain:\n  - 'a b': {cmd: uexp}\n",
    "a step without cmd": "toolchain:\n  - a: {args: [x]}\n",
    "a step that is a string": "toolchain:\n  - a: uexp\n",
    "an unknown top key": "timout: 30s\n" + STEP,
    "an unknown step key": STEP + "      timout: 30s\n",
    "cmd a number": "toolchain:\n  - a: {cmd: 12}\n",
    "cmd empty": "toolchain:\n  - a: {cmd: ''}\n",
    "version a number": STEP + "      version: 0.1\n",
    "args a string": STEP + "      args: -x\n",
    "an arg a list": STEP + "      args: [[x]]\n",
    "an arg null": STEP + "      args: [null]\n",
    "env a string": STEP + "      env: -FOO:bar\n",
    "env a list of strings": STEP + "      env: [FOO=bar]\n",
    "env name with a dash": STEP + "      env: {MY-VAR: x}\n",
    "env value a list": STEP + "      env: {FOO: [x]}\n",
    "timeout negative": STEP + "      timeout: -5\n",
    "timeout zero": STEP + "      timeout: 0\n",
    "timeout a bad unit": STEP + "      timeout: 5x\n",
    "timeout units out of order": STEP + "      timeout: 5s1m\n",
    "timeout a list": STEP + "      timeout: [5]\n",
    "retries negative": STEP + "      retries: -1\n",
    "retries too many": STEP + "      retries: 1001\n",
    "retries a string": STEP + "      retries: three\n",
    "retries unknown key": STEP + "      retries: {max: 2, wait: 5s}\n",
    "retries backoff under 1": STEP + "      retries: {max: 2, backoff: 0.5}\n",
    "retries backoff over 100": STEP + "      retries: {max: 2, backoff: 101}\n",
    "retries delay bad": STEP + "      retries: {max: 2, delay: soon}\n",
    "continue_on_error a string": STEP + "      continue_on_error: 'yes'\n",
    "needs a number": STEP + "      needs: 3\n",
    "needs a mapping": STEP + "      needs: {a: 1}\n",
    "if a list": STEP + "      if: [x]\n",
    "by_platform unknown platform": STEP + "      by_platform: {amiga: {args: [x]}}\n",
    "by_platform unknown key": STEP + "      by_platform: {linux: {cwd: /}}\n",
    "by_platform null": STEP + "      by_platform: {linux: null}\n",
    "max_parallel zero": "max_parallel: 0\n" + STEP,
    "max_parallel a string": "max_parallel: four\n" + STEP,
    "max_parallel a fraction": "max_parallel: 1.5\n" + STEP,
    "accept_env a string": "accept_env: FOO\n" + STEP,
    "accept_env a bad pattern": "accept_env: ['*']\n" + STEP,
    "accept_env a star inside": "accept_env: ['A*B']\n" + STEP,
    "params a list": "params: [table]\n" + STEP,
    "a param name with a dot": "params: {a.b: 1}\n" + STEP,
    "a param's default a list": "params: {table: [d01]}\n" + STEP,
    "a param with an unknown key": "params: {table: {default: d01, kind: string}}\n" + STEP,
    "a param of an unknown type": "params: {table: {type: text}}\n" + STEP,
    "a param required a string": "params: {table: {required: 'no'}}\n" + STEP,
    "a param's choices a string": "params: {table: {choices: d01}}\n" + STEP,
    "description a list": "description: [a]\n" + STEP,
    "runs_on a string": STEP + "      runs_on: linux\n",
    "in without values": STEP + "      runs_on: [{key: os, operator: in}]\n",
    "in with no values": STEP + "      runs_on: [{key: os, operator: in, values: []}]\n",
    "exists with values": STEP + "      runs_on: [{key: os, operator: exists, values: [a]}]\n",
    "gt with a word": STEP + "      runs_on: [{key: mem, operator: gt, values: [big]}]\n",
    "gt with a quoted number": STEP + "      runs_on: [{key: mem, operator: gt, values: ['8']}]\n",
    "lt with two numbers": STEP + "      runs_on: [{key: mem, operator: lt, values: [1, 2]}]\n",
    "runs_on an unknown operator": STEP + "      runs_on: [{key: os, operator: like}]\n",
    "runs_on a requirement without its key": STEP + "      runs_on: [{operator: exists}]\n",
    "runs_on a requirement's unknown field": STEP
    + "      runs_on: [{key: os, operator: exists, value: 1}]\n",
    "runs_on a label with a space": "runs_on: {'my os': linux}\n" + STEP,
    "runs_on a label's value a list": "runs_on: {os: [linux]}\n" + STEP,
    "priority an unknown name": "priority: urgent\n" + STEP,
    "priority out of range": "priority: -1001\n" + STEP,
    "priority a fraction": "priority: 2.5\n" + STEP,
    "priority a number quoted": "priority: '5'\n" + STEP,
    "priority a capital name": "priority: High\n" + STEP,
    "a toolchain that is a list": "- a: {cmd: uexp}\n",
    "a toolchain that is text": "just words\n",
    "schedule a number": "schedule: 5\n" + STEP,
    "schedule without cron": "schedule: {timezone: UTC}\n" + STEP,
    "schedule an unknown key": "schedule: {cron: '@daily', when: now}\n" + STEP,
    "schedule overlap unknown": "schedule: {cron: '@daily', overlap: sometimes}\n" + STEP,
    "schedule params a list": "schedule: {cron: '@daily', params: [a]}\n" + STEP,
    "schedule catch_up bad": "schedule: {cron: '@daily', catch_up: soon}\n" + STEP,
    "schedule name with a space": "schedule: {cron: '@daily', name: 'a b'}\n" + STEP,
}

# Each is refused by the loader alone: no schema can say it.
LOADER_ONLY = {
    "a need naming no step": STEP + "      needs: [b]\n",
    "a cycle": "toolchain:\n  - a: {cmd: uexp, needs: [b]}\n  - b: {cmd: uexp, needs: [a]}\n",
    "an id used twice": "toolchain:\n  - a: {cmd: uexp}\n  - a: {cmd: uexp}\n",
    "an unknown parameter in an arg": STEP + "      args: ['${{ params.nope }}']\n",
    "a bad expression": STEP + "      if: '${{ ) }}'\n",
    "a default outside its choices": "params: {t: {default: x, choices: [a, b]}}\n" + STEP,
    "a cmd that is no tool name": "toolchain:\n  - a: {cmd: '../uexp'}\n",
    "a version that is no constraint": STEP + "      version: 'one'\n",
}

GOOD = {
    "one step": STEP,
    "a priority number": "priority: -1000\n" + STEP,
    "everything": """\
description: all the keys
params:
  table: d01
  push: {type: boolean, default: false, description: "push?"}
  level: {type: integer, choices: [1, 2, 3], required: true}
env: {STAGE: test}
accept_env: [FOO, BUILD_*]
timeout: 1h30m
max_parallel: 2
priority: high
toolchain:
  - a:
      cmd: uexp
      version: "^0.1"
      description: first
      args: [x, 1, true, "${{ params.table }}"]
      env: [{A: "1"}]
      timeout: 30
      retries: {max: 2, delay: 5s, backoff: 2}
      continue_on_error: true
      by_platform: {windows: {args: [y]}, linux: {env: {B: z}}}
  - b:
      cmd: game-meta@0.1
      needs: [a]
      if: ${{ params.push }}
      retries: 3
  - c: {cmd: uexp, needs: a, if: true}
  - d:
      cmd: uexp
      runs_on:
        - {key: zone, operator: in, values: [east, west]}
        - {key: memory, operator: gt, values: 8192}
        - {key: tpu, operator: not_exists}
  - e: {cmd: uexp, runs_on: {os: linux, gpu: true}}
""",
    "schedules": """params:
  table: {default: all}
schedule:
  - cron: "0 3 * * *"
    timezone: Asia/Shanghai
    params: {table: hero}
    overlap: cancel_previous
    catch_up: 1h
  - {cron: "@every 10m", name: often, overlap: queue}
  - "@daily"
toolchain:
  - a: {cmd: uexp}
""",
    "one schedule": "schedule: '@hourly'\n" + STEP,
}


def refused_by_schema(text: str) -> bool:
    try:
        jsonschema.validate(yaml.safe_load(text), json_schema())
    except jsonschema.ValidationError:
        return True
    return False


def refused_by_loader(text: str) -> str | None:
    try:
        parse_toolchain_text(text, name="t", source="t.yaml")
    except ToolchainError as exc:
        return str(exc)
    return None


def test_the_checked_in_schema_is_the_generated_one() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == schema_text(), (
        "docs/toolchain.schema.json is stale: python -m toolrun.toolchains.document "
        "> docs/toolchain.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(schema_text()))


def test_the_module_prints_the_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "toolrun.toolchains.document"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == schema_text()


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_shape_is_refused_by_both(case: str) -> None:
    text = BAD[case]
    message = refused_by_loader(text)
    assert message is not None, f"the loader took {case}"
    assert message.startswith("t.yaml"), message
    assert refused_by_schema(text), f"the schema took {case}"


@pytest.mark.parametrize("case", sorted(LOADER_ONLY))
def test_what_no_schema_can_say_the_loader_refuses(case: str) -> None:
    text = LOADER_ONLY[case]
    assert refused_by_loader(text) is not None, f"the loader took {case}"
    assert not refused_by_schema(text), f"the schema now refuses {case}: move it to BAD"


@pytest.mark.parametrize("case", sorted(GOOD))
def test_a_good_toolchain_is_taken_by_both(case: str) -> None:
    assert refused_by_loader(GOOD[case]) is None
    assert not refused_by_schema(GOOD[case])


def test_a_problem_keeps_its_line_and_column() -> None:
    message = refused_by_loader(BAD["an unknown step key"])
    assert message == "t.yaml:4:7: step 'a': unknown key 'timout' (did you mean 'timeout'?)"


def test_the_platforms_are_the_manifests() -> None:
    assert ByPlatform.__struct_encode_fields__ == PLATFORMS


def shipped() -> list[Path]:
    return sorted((REPO / "toolchains").glob("*.yaml"))


@pytest.mark.parametrize("path", shipped(), ids=lambda path: path.name)
def test_the_shipped_toolchains_are_taken_by_both(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert refused_by_loader(text) is None
    document: Any = yaml.safe_load(text)
    jsonschema.validate(document, json_schema())


def test_the_loaders_keys_are_the_shapes_fields() -> None:
    """keys.py writes out what document.py declares, so that running a toolchain imports no
    msgspec; a field added to a shape and not there fails here."""
    from toolrun.toolchains import document, keys

    assert document.keys(document.Toolchain) == keys.TOOLCHAIN
    assert document.keys(document.Step) == keys.STEP
    assert document.keys(document.Param) == keys.PARAM
    assert document.keys(document.Retries) == keys.RETRIES
    assert document.keys(document.Platform) == keys.PLATFORM
    assert document.keys(document.Schedule) == keys.SCHEDULE
    assert document.keys(document.ByPlatform) == keys.BY_PLATFORM
    fields = {name for shape in document.Requirement.__args__ for name in shape.__struct_fields__}
    assert set(keys.REQUIREMENT) == fields | {"operator"}


def test_running_a_toolchain_imports_no_msgspec(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(STEP, encoding="utf-8")
    code = (
        "import sys; from pathlib import Path; from toolrun.toolchains.model import load_toolchain;"
        f"load_toolchain(Path({str(tmp_path / 't.yaml')!r})); print('msgspec' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
