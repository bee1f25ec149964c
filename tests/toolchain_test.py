from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolrun.errors import UsageError
from toolrun.toolchains.expressions import Context
from toolrun.toolchains.model import Toolchain, ToolchainError, bind_params, parse_toolchain
from toolrun.units import parse_duration

# What a plain argument renders with: it has no ${{ }} to look anything up.
NOTHING = Context({})

SEED_EXAMPLE = """\
toolchain:
  - game-meta:
      cmd: game-meta
      version: latest
      args: ["d01"]
      env:
        - foo: bar
  - unity-export:
      cmd: uexp
      version: 0.1.0
      args: ["d:\\exp", "push" ,"report"]
      env:
        - foo: bar
"""


def load(text: str) -> Toolchain:
    return parse_toolchain(text, name="t", source="t.yaml")


def problems(text: str) -> str:
    with pytest.raises(ToolchainError) as info:
        load(text)
    return str(info.value)


def test_the_seed_example_loads_as_written() -> None:
    toolchain = load(SEED_EXAMPLE)
    assert "single quotes" in toolchain.warnings[0]  # its "d:\exp" holds an ESC
    meta, export = toolchain.steps
    assert (meta.id, meta.cmd, meta.version) == ("game-meta", "game-meta", "latest")
    assert export.needs == ("game-meta",)
    assert export.version == "0.1.0"
    assert [a.render(NOTHING) for a in export.args][1:] == ["push", "report"]
    assert set(export.env) == {"foo"}


def test_the_full_format() -> None:
    toolchain = load(
        """
description: full
params:
  table: d01
  push: {type: boolean, default: true}
  count: {type: integer, required: true, choices: [1, 2, 3]}
env: {LOG_LEVEL: info}
timeout: 30m
max_parallel: 2
toolchain:
  - a:
      cmd: probe
      version: "^1.0"
      args: ["${{ params.table }}", --json]
      timeout: 10s
      retries: {max: 2, delay: 1s, backoff: 2}
      continue_on_error: true
  - b:
      cmd: probe
      needs: []
      if: ${{ params.push && platform != 'windows' }}
      by_platform:
        windows: {args: [".\\\\exp"]}
"""
    )
    assert toolchain.timeout == 1800 and toolchain.max_parallel == 2
    a, b = toolchain.steps
    assert a.timeout == 10 and a.retries.max == 2 and a.retries.delay_before(3) == 2.0
    assert b.needs == () and b.condition is not None
    assert b.for_platform("windows").args[0].render(NOTHING) == ".\\exp"
    assert bind_params(toolchain, {"count": "2"}) == {"table": "d01", "push": True, "count": 2}


def test_malformed_yaml_names_line_and_column() -> None:
    message = problems("toolchain:\n  - a: {cmd: x\n  - b: y\n")
    assert message.startswith("t.yaml:3:")
    assert "malformed YAML" in message


def test_every_problem_at_once_with_positions_and_suggestions() -> None:
    message = problems(
        """toolchain:
  - a:
      cmd: probe
      verison: "1.0"
  - b:
      cmd: probe
      version: 3.10
      needs: [c]
      args: ["${{ params.nope }}"]
  - a:
      cmd: probe
"""
    )
    lines = message.splitlines()
    assert "t.yaml:4:7: step 'a': unknown key 'verison' (did you mean 'version'?)" in lines
    assert any(
        line.startswith("t.yaml:7:16:")
        and "is a number" in line
        and 'quote it: version: "3.10"' in line  # as written, not as YAML read it
        for line in lines
    )
    assert any("step id 'a' is used twice" in line for line in lines)
    assert not any("cycle" in line for line in lines)
    assert any("needs unknown step 'c'" in line for line in lines)
    assert any("unknown parameter 'nope'" in line for line in lines)


def test_cycles_are_refused_naming_the_cycle() -> None:
    message = problems(
        "toolchain:\n"
        "  - a: {cmd: probe, needs: [c]}\n"
        "  - b: {cmd: probe, needs: [a]}\n"
        "  - c: {cmd: probe, needs: [b]}\n"
    )
    assert "needs form a cycle: a -> c -> b -> a" in message
    assert message.startswith("t.yaml:2:5:")


def test_bad_expressions_are_refused() -> None:
    message = problems("toolchain:\n  - a: {cmd: probe, args: ['${{ params. }}']}\n")
    assert "bad expression" in message and "t.yaml:2:" in message
    message = problems("toolchain:\n  - a: {cmd: probe, if: 'nosuch() && x'}\n")
    assert "unknown function 'nosuch'" in message


def test_other_mistakes() -> None:
    assert "missing 'toolchain:'" in problems("description: nothing\n")
    assert "empty" in problems("")
    assert "missing 'cmd'" in problems("toolchain:\n  - a: {args: [x]}\n")
    assert "single-key mapping" in problems("toolchain:\n  - a: {cmd: x}\n    b: {cmd: y}\n")
    assert "unknown key 'toolchains'" in problems("toolchains: []\n")
    assert "timeout must be a duration" in problems("timeout: soon\ntoolchain:\n  - a: {cmd: x}\n")
    assert "'>1' in 'x' is not a version" in problems(
        "toolchain:\n  - a: {cmd: x, version: '>>1'}\n"
    )


def test_params_are_checked_before_anything_runs() -> None:
    toolchain = load(
        "params:\n  table: d01\n  n: {type: integer, required: true}\n"
        "toolchain:\n  - a: {cmd: probe}\n"
    )
    with pytest.raises(UsageError) as info:
        bind_params(toolchain, {"tabel": "x", "n": "many"})
    message = str(info.value)
    assert "unknown parameter 'tabel' (did you mean 'table'?)" in message
    assert "parameter 'n' must be a integer, not 'many'" in message
    with pytest.raises(UsageError, match="missing required parameter 'n'"):
        bind_params(toolchain, {})


def test_a_param_whose_default_is_not_a_choice_or_required_is_not_a_boolean_is_refused() -> None:
    found = problems(
        "params:\n"
        "  mode: {default: fast, choices: [slow, medium]}\n"
        "  flag: {type: string, required: maybe}\n"
        "  n: {type: integer, default: 2, choices: [1, 2]}\n"
        "toolchain:\n  - a: {cmd: probe}\n"
    )
    assert "2:9: params.mode.default 'fast' is not one of slow, medium" in found
    assert "3:9: params.flag.required must be true or false" in found
    assert "params.n" not in found


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("1h30m", 5400), ("2.5m", 150), ("5s", 5), (7, 7)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_the_shipped_toolchains_load_and_match_the_schema() -> None:
    import json

    import yaml

    repo = Path(__file__).resolve().parent.parent
    schema = json.loads((repo / "docs" / "toolchain.schema.json").read_text())
    paths = sorted((repo / "toolchains").glob("*.yaml"))
    assert paths, "the repository ships toolchains"
    for path in paths:
        parse_toolchain(path.read_text(encoding="utf-8"), name=path.stem, source=str(path))
        check_schema(schema, yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    check_schema(schema, yaml.safe_load(SEED_EXAMPLE), "seed example")


def check_schema(schema: dict[str, Any], document: object, where: str) -> None:
    import jsonschema

    jsonschema.validate(document, schema)


def test_a_control_character_made_by_a_backslash_in_double_quotes_is_warned_of() -> None:
    # The seed's own toolchain writes args: ["d:\exp", ...]: \e is ESC in YAML.
    text = 'toolchain:\n  - a: {cmd: probe, args: ["d:\\exp", \'d:\\exp\', "plain"]}\n'
    toolchain = parse_toolchain(text, name="t", source="t.yaml")
    (warning,) = toolchain.warnings
    assert warning.startswith("t.yaml:2:28: step 'a': args[0] holds a control character")
    assert "single quotes" in warning


def test_the_seeds_env_without_a_space_is_explained() -> None:
    message = problems("toolchain:\n  - a:\n      cmd: probe\n      env:\n        -foo:bar\n")
    assert "it reads as the text '-foo:bar'" in message and "'- foo: bar'" in message


def test_a_prefix_takes_its_prereleases_with_pre() -> None:
    from toolrun.tools.versions import parse_spec

    spec = parse_spec("vt@0.3")
    assert spec.pick(["0.2.9", "0.3.0-rc.1"], pre=True) == "0.3.0-rc.1"
    assert spec.pick(["0.2.9", "0.3.0-rc.1"]) is None
    assert parse_spec("vt@~0.3").pick(["0.3.0-rc.1", "0.4.0-rc.1"], pre=True) == "0.3.0-rc.1"
