from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from toolrun.runs import events as ev
from toolrun.runs.events import Event, EventLog, RunChannel, follow_file, read_events


def test_a_late_subscriber_replays_then_follows_without_gap_or_duplicate(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        channel = RunChannel(EventLog(tmp_path / "events.jsonl"))
        for i in range(500):
            channel.emit(ev.OUTPUT, "a", 1, stream="stdout", lines=[f"early {i}"])
        seen: list[int] = []

        async def subscriber() -> None:
            async for event in channel.replay_then_follow():
                seen.append(event.seq)

        task = asyncio.ensure_future(subscriber())
        for i in range(500):
            channel.emit(ev.OUTPUT, "a", 1, stream="stdout", lines=[f"late {i}"])
            if i % 50 == 0:
                await asyncio.sleep(0)
        channel.emit(ev.RUN_FINISHED, status="succeeded")
        await asyncio.wait_for(task, 5)
        resumed = [e.seq async for e in channel.replay_then_follow(after=990)]
        assert resumed == list(range(991, 1002))
        return seen

    assert asyncio.run(scenario()) == list(range(1, 1002))


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = Event(1, 1.0, ev.OUTPUT, "a", 1, {"stream": "stdout", "lines": ["x"]})
    path.write_text(good.to_json() + "\n" + good.to_json()[:10])
    assert [e.seq for e in read_events(path)] == [1]
    assert [e.seq for e in follow_file(path, lambda: True)] == [1]


def test_events_round_trip(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    event = Event(3, 12.5, ev.STEP_FINISHED, "s", 2, {"status": "failed", "exit_code": 1})
    log.append(event)
    log.close()
    assert list(read_events(tmp_path / "events.jsonl")) == [event]


def test_follow_batches_groups_what_is_waiting_and_keeps_alive_when_quiet(tmp_path: Path) -> None:
    import asyncio

    from toolrun.runs.events import OUTPUT, RUN_FINISHED, EventLog, RunChannel

    async def scenario() -> list[list[int]]:
        channel = RunChannel(EventLog(tmp_path / "events.jsonl"))
        channel.emit(OUTPUT, "a", 1, stream="stdout", lines=["stored"])
        batches: list[list[int]] = []

        async def follow() -> None:
            async for batch in channel.follow_batches(idle=0.05):
                batches.append([event.seq for event in batch])

        task = asyncio.ensure_future(follow())
        await asyncio.sleep(0.12)  # quiet: keep-alives
        for index in range(3):  # emitted together: one batch
            channel.emit(OUTPUT, "a", 1, stream="stdout", lines=[f"live {index}"])
        await asyncio.sleep(0.01)
        channel.emit(RUN_FINISHED, status="succeeded")
        await asyncio.wait_for(task, 5)
        return batches

    batches = asyncio.run(scenario())
    assert batches[0] == [1]
    assert [] in batches
    assert [2, 3, 4] in batches and batches[-1] == [5]
    assert sorted(seq for batch in batches for seq in batch) == [1, 2, 3, 4, 5]


@given(
    st.lists(st.text(max_size=40), min_size=ev.BIG_BATCH + 1, max_size=ev.BIG_BATCH + 3),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.sampled_from(["stdout", "stderr"]),
)
def test_both_encoders_write_an_output_event_the_same(
    lines: list[str], when: float, stream: str
) -> None:
    """Big output batches go through orjson, everything else through json: one format, so a
    reader gets the same event whichever wrote it, and for an event's time (seconds since
    1970) the same bytes. (For tiny floats they differ in form: json 1e-05, orjson 0.00001.)"""
    import json

    lines = [line.encode("utf-8", "replace").decode("utf-8") for line in lines]  # as decoded
    event = Event(7, when, ev.OUTPUT, "build", 2, {"stream": stream, "lines": lines})
    record = {"seq": 7, "t": round(when, 6), "kind": ev.OUTPUT, "step": "build", "attempt": 2}
    record.update(stream=stream, lines=lines)
    by_json = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert json.loads(event.to_bytes()) == json.loads(by_json)
    if when >= 1e9:
        assert event.to_bytes() == by_json
    again = Event.from_json(event.to_bytes())
    assert again == Event(7, round(when, 6), ev.OUTPUT, "build", 2, event.data)
