"""The executor seam: the engine runs a toolchain through any executor that keeps the protocol
(executors/protocol.py), with one retry loop and one set of books whichever driver runs it.

The executor here is a second implementation, not a mock: it runs nothing, and answers each
launch from a script, as a remote worker would answer over the network."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, TypedDict

from toolrun.executors.local import LocalExecutor
from toolrun.executors.protocol import Ending, Launch, Placement, Sink, StartError
from toolrun.history.store import Store
from toolrun.runs.engine import Engine, EngineSettings
from toolrun.toolchains.model import parse_toolchain
from toolrun.tools.installer import Installer
from toolrun.tools.registry import FolderRegistry
from toolrun.tools.resolver import ToolResolver


class Answer(TypedDict, total=False):
    """One scripted launch: it cannot start, hangs until cancelled, or exits with outputs."""

    cannot_start: bool
    hang: bool
    exit: int
    outputs: dict[str, str]


class ScriptedAttempt:
    def __init__(
        self, executor: ScriptedExecutor, launch: Launch, sink: Sink, answer: Answer
    ) -> None:
        self.executor = executor
        self.launch = launch
        self.sink = sink
        self.answer = answer
        self.placement = Placement("scripted", host="worker-7")
        self.cancelled = asyncio.Event()

    async def ended(self) -> Ending:
        self.sink.on_lines("stdout", [f"ran {self.launch.argv[-1]} in {self.launch.cwd.name}"])
        if self.answer.get("hang"):
            await self.cancelled.wait()
            return Ending(-15)
        outputs = dict(self.answer.get("outputs", {}))
        return Ending(self.answer["exit"], outputs)

    async def cancel(self, *, grace: float, forced: object = None) -> None:
        self.executor.cancels.append(grace)
        self.cancelled.set()


class ScriptedExecutor:
    """Answers launch N with script[argv[-1]][N-1]; records every launch it was handed."""

    name = "scripted"

    def __init__(self, script: dict[str, list[Answer]]) -> None:
        self.script = script
        self.launches: list[Launch] = []
        self.sinks: list[Sink] = []
        self.cancels: list[float] = []

    async def start(self, launch: Launch, sink: Sink) -> ScriptedAttempt:
        self.launches.append(launch)
        self.sinks.append(sink)
        key = launch.argv[-1]
        made = sum(1 for seen in self.launches if seen.argv[-1] == key)
        answer = self.script[key][made - 1]
        if answer.get("cannot_start"):
            raise StartError(f"{key}: no worker has the label it needs")
        return ScriptedAttempt(self, launch, sink, answer)


def engine_with(home: Path, registry: Path, executor: ScriptedExecutor) -> Engine:
    store = Store(home)
    resolver = ToolResolver(Installer(home / "tools"), [FolderRegistry("test", registry)])
    return Engine(store, resolver, EngineSettings(kill_grace=0.5), executor=executor)


def events(home: Path, run_id: str) -> list[dict[str, Any]]:
    lines = (home / "runs" / run_id / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


TOOLCHAIN = """\
toolchain:
  - first:
      cmd: probe
      args: [echo, a]
      retries: {max: 2, delay: 1s}
  - second:
      cmd: probe
      args: [echo, "${{ steps.first.outputs.answer }}"]
  - hangs:
      cmd: probe
      args: [echo, slow]
      needs: []
      timeout: 1s
"""


def test_a_toolchain_runs_through_another_executor(probe: Path, toolrun_home: Path) -> None:
    executor = ScriptedExecutor(
        {
            "a": [{"exit": 3}, {"exit": 0, "outputs": {"answer": "forty-two"}}],
            "forty-two": [{"exit": 0}],
            "slow": [{"hang": True}],
        }
    )
    engine = engine_with(toolrun_home, probe, executor)
    handle = engine.prepare(parse_toolchain(TOOLCHAIN, name="t", source="t.yaml"), {})
    record = asyncio.run(engine.execute(handle))

    assert record.status == "failed"  # `hangs` timed out; the others succeeded
    steps = {s.step_id: s for s in engine.store.steps(record.id)}
    assert steps["first"].status == "succeeded" and steps["first"].attempts == 2
    assert steps["first"].outputs == {"answer": "forty-two"}
    assert steps["second"].status == "succeeded"
    assert steps["hangs"].status == "timed_out" and steps["hangs"].exit_code is None
    assert executor.cancels == [0.5]  # the timeout is a call on the attempt, with the grace
    # What the engine handed over: the step's argv (an output of the first in the second's),
    # its workspace, its label and timeout; and the attempt's lines went into the books.
    second = next(launch for launch in executor.launches if launch.argv[-1] == "forty-two")
    assert second.cwd == toolrun_home / "runs" / record.id / "work"
    assert second.label == f"{record.id}-second-1" and second.env["TOOLRUN_STEP"] == "second"
    hangs = next(launch for launch in executor.launches if launch.argv[-1] == "slow")
    assert hangs.timeout == 1.0
    seen = events(toolrun_home, record.id)
    finished = [e for e in seen if e["kind"] == "step_finished" and e["step"] == "first"]
    assert [e["exit_code"] for e in finished] == [3, 0]
    lines = [line for e in seen if e["kind"] == "output" for line in e["lines"]]
    assert "ran forty-two in work" in lines
    assert seen[-1]["kind"] == "run_finished"


def test_an_executor_that_cannot_start_fails_the_step_with_its_reason(
    probe: Path, toolrun_home: Path
) -> None:
    executor = ScriptedExecutor({"a": [{"cannot_start": True}]})
    engine = engine_with(toolrun_home, probe, executor)
    text = "toolchain:\n  - only: {cmd: probe, args: [echo, a]}\n"
    handle = engine.prepare(parse_toolchain(text, name="t", source="t.yaml"), {})
    record = asyncio.run(engine.execute(handle))
    (step,) = engine.store.steps(record.id)
    assert step.status == "failed"
    assert step.error == "cannot start a: no worker has the label it needs"


def test_without_a_blocking_form_a_one_step_run_still_runs_here(
    probe: Path, toolrun_home: Path
) -> None:
    """``toolrun exec`` asks to run on its thread; an executor with no blocking form gets an
    event loop made for the run instead."""
    executor = ScriptedExecutor({"a": [{"exit": 0}]})
    engine = engine_with(toolrun_home, probe, executor)
    text = "toolchain:\n  - only: {cmd: probe, args: [echo, a]}\n"
    handle = engine.prepare(parse_toolchain(text, name="t", source="t.yaml"), {})
    assert engine.execute_here(handle).status == "succeeded"


def test_the_local_executor_keeps_both_forms_of_the_protocol(tmp_path: Path) -> None:
    """A process here, followed by the event loop and by the caller's thread: the same
    ending, the outputs it wrote, and a placement another toolrun could end it by."""
    import sys

    script = (
        "import os, sys; open(os.environ['OUT'], 'w').write('k=v\\n'); print('hi'); sys.exit(4)"
    )
    out = tmp_path / "outputs.env"
    launch = Launch(
        [sys.executable, "-c", script],
        {"OUT": str(out), "PATH": "/usr/bin:/bin"},
        tmp_path,
        "utf-8",
        out,
        label="seam-test",
    )
    local = LocalExecutor(kill_grace=1.0)
    got: list[str] = []
    sink = Sink(lambda stream, lines: got.extend(lines))

    async def in_a_loop() -> Ending:
        attempt = await local.start(launch, sink)
        assert attempt.placement.executor == "local" and attempt.placement.pid is not None
        assert attempt.placement.pid_started is not None
        return await attempt.ended()

    ending = asyncio.run(in_a_loop())
    assert (ending.exit_code, ending.outputs, got) == (4, {"k": "v"}, ["hi"])
    out.unlink()
    got.clear()
    blocking = local.start_blocking(launch, sink)
    while not blocking.pump(0.05):
        pass
    assert blocking.exited()
    ending = blocking.ending()
    assert (ending.exit_code, ending.outputs, got) == (4, {"k": "v"}, ["hi"])
