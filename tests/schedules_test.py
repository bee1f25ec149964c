"""Schedules as written: cron, macros and intervals, time zones and daylight saving, and the
loader's and config's messages for a bad one."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from toolrun.automation.catalog import ScheduleCatalog
from toolrun.config import load_config
from toolrun.schedules import ScheduleError, local_zone, parse_when, parse_zone
from toolrun.toolchains.loader import parse_toolchain_text
from toolrun.toolchains.model import ToolchainError

BERLIN = ZoneInfo("Europe/Berlin")
STEPS = "toolchain:\n  - a: {cmd: probe}\n"


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(timestamp: float, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M %Z")


def fires(cron: str, start: str, count: int, zone: ZoneInfo = BERLIN) -> list[str]:
    when, moment, found = parse_when(cron), at(start, zone), []
    for _ in range(count):
        moment = when.next_after(moment, zone)
        found.append(local(moment, zone))
    return found


def test_a_daily_time_is_the_same_wall_clock_time_on_both_sides_of_a_change() -> None:
    assert fires("0 3 * * *", "2026-03-28 12:00", 3) == [
        "2026-03-29 03:00 CEST",  # 23 hours after the one before: the clocks went forward
        "2026-03-30 03:00 CEST",
        "2026-03-31 03:00 CEST",
    ]
    assert fires("0 3 * * *", "2026-10-24 12:00", 2) == [
        "2026-10-25 03:00 CET",
        "2026-10-26 03:00 CET",
    ]


def test_a_time_the_spring_change_skips_fires_once_just_after_it_as_cron_does() -> None:
    # 02:30 does not exist on 29 March in Berlin: the fire comes at 03:00, once.
    assert fires("30 2 * * *", "2026-03-28 12:00", 3) == [
        "2026-03-29 03:00 CEST",
        "2026-03-30 02:30 CEST",
        "2026-03-31 02:30 CEST",
    ]


def test_a_time_the_autumn_change_repeats_fires_once() -> None:
    # 02:30 happens twice on 25 October in Berlin (CEST, then CET): one fire.
    found = fires("30 2 * * *", "2026-10-24 12:00", 2)
    assert found == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]


def test_hourly_counts_real_hours_through_both_changes() -> None:
    spring = fires("@hourly", "2026-03-29 00:30", 3)
    assert spring == ["2026-03-29 01:00 CET", "2026-03-29 03:00 CEST", "2026-03-29 04:00 CEST"]
    autumn = fires("0 * * * *", "2026-10-25 01:30", 3)
    assert autumn == ["2026-10-25 02:00 CEST", "2026-10-25 02:00 CET", "2026-10-25 03:00 CET"]


def test_the_time_zone_decides_the_moment() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    moment = parse_when("0 3 * * *").next_after(at("2026-06-01 12:00", shanghai), shanghai)
    assert local(moment, ZoneInfo("UTC")) == "2026-06-01 19:00 UTC"


def test_every_counts_from_the_epoch_so_every_process_finds_the_same_times() -> None:
    when = parse_when("@every 10m")
    assert when.every == 600
    assert when.next_after(1_000_000_000.0, BERLIN) == 1_000_000_200.0
    assert when.next_after(1_000_000_200.0, BERLIN) == 1_000_000_800.0  # strictly after
    # Missed times: only the latest is fired.
    assert when.last_at_or_before(1_000_003_000.0, BERLIN, 1_000_000_000.0) == 1_000_002_600.0
    assert when.last_at_or_before(1_000_000_100.0, BERLIN, 1_000_000_000.0) is None


def test_the_latest_missed_cron_time_in_a_window() -> None:
    when = parse_when("*/15 * * * *")
    since, now = at("2026-06-01 10:01"), at("2026-06-01 11:20")
    assert local(when.last_at_or_before(now, BERLIN, since) or 0) == "2026-06-01 11:15 CEST"
    assert when.last_at_or_before(at("2026-06-01 10:14"), BERLIN, since) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 25 * * *", "'0 25 * * *' is not a valid cron expression: Bad hour"),
        ("* * *", "a cron expression has 5 fields (minute hour day month weekday), '* * *' has 3"),
        ("@often", "unknown macro '@often'"),
        ("@every soon", "@every needs a duration"),
        ("@every 0.5s", "@every 0.5s is shorter than 1 second"),
        ("", "a cron expression such as"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=None) as caught:
        parse_when(text)
    assert message in str(caught.value)


def test_zones_are_iana_names() -> None:
    assert str(parse_zone("Asia/Shanghai")) == "Asia/Shanghai"
    for bad in ("Mars/Base", "../../etc/passwd", "", "Asia/Shanghai\x00"):
        with pytest.raises(ScheduleError, match="time zone"):
            parse_zone(bad)


def test_the_local_zone_knows_daylight_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    local_zone.cache_clear()
    monkeypatch.setenv("TZ", "America/New_York")
    try:
        zone = local_zone()
        winter = datetime(2026, 1, 1, tzinfo=zone).utcoffset()
        summer = datetime(2026, 7, 1, tzinfo=zone).utcoffset()
        assert winter is not None and summer is not None and winter != summer
    finally:
        local_zone.cache_clear()


def test_a_toolchain_names_its_schedules() -> None:
    text = (
        "params:\n  table: {default: all}\n"
        "schedule:\n"
        "  - cron: '0 3 * * *'\n    timezone: Asia/Shanghai\n    params: {table: hero}\n"
        "  - {cron: '@every 2s', name: fast, overlap: queue, catch_up: 1h}\n"
        "  - '@daily'\n" + STEPS
    )
    toolchain = parse_toolchain_text(text, name="export", source="export.yaml")
    nightly, fast, daily = toolchain.schedules
    assert (nightly.name, nightly.timezone, nightly.params) == (
        "export",
        "Asia/Shanghai",
        {"table": "hero"},
    )
    assert (fast.name, fast.overlap, fast.catch_up, fast.when.every) == (
        "export.fast",
        "queue",
        3600,
        2,
    )
    assert (daily.name, daily.when.cron, daily.source) == (
        "export.3",
        "0 0 * * *",
        "export.yaml:8:5",
    )
    single = parse_toolchain_text("schedule: '@hourly'\n" + STEPS, name="x", source="x.yaml")
    assert [s.name for s in single.schedules] == ["x"]


def test_a_bad_schedule_is_reported_at_its_place() -> None:
    text = (
        "params:\n  table: {default: all}\n"
        "schedule:\n"
        "  - cron: '0 25 * * *'\n"
        "  - {cron: '@daily', timezone: Mars/Base}\n"
        "  - {cron: '@daily', overlap: sometimes}\n"
        "  - {cron: '@daily', catch_up: soon}\n"
        "  - {timezone: UTC}\n"
        "  - {cron: '@daily', crn: x}\n" + STEPS
    )
    with pytest.raises(ToolchainError) as caught:
        parse_toolchain_text(text, name="x", source="x.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "x.yaml:4:11: schedule[0].cron: '0 25 * * *' is not a valid cron expression: Bad hour",
        "x.yaml:5:32: schedule[1].timezone: unknown time zone 'Mars/Base' (an IANA name such "
        "as Asia/Shanghai or UTC)",
        "x.yaml:6:31: schedule[2].overlap must be skip, queue, cancel_previous",
        "x.yaml:7:32: schedule[3].catch_up must be a duration such as 30s, 10m or 1h30m",
        'x.yaml:8:5: schedule[4]: missing \'cron:\' ("0 3 * * *", @daily, "@every 10m")',
        "x.yaml:9:22: schedule[5]: unknown key 'crn' (did you mean 'cron'?)",
    ]


def test_a_schedule_with_params_the_toolchain_does_not_take_is_refused() -> None:
    text = "params:\n  table: {type: integer}\nschedule:\n  cron: '@daily'\n  params: {tabel: 1}\n"
    with pytest.raises(
        ToolchainError, match=r"x.yaml:4:3: schedule 'x': unknown parameter 'tabel'"
    ):
        parse_toolchain_text(text + STEPS, name="x", source="x.yaml")
    twice = "schedule:\n  - {cron: '@daily', name: a}\n  - {cron: '@hourly', name: a}\n"
    with pytest.raises(ToolchainError, match=r"x.yaml:3:5: schedule\[1\]: a second schedule"):
        parse_toolchain_text(twice + STEPS, name="x", source="x.yaml")


def test_config_adds_schedules_and_says_what_is_wrong_with_one(tmp_path: Path) -> None:
    folder = tmp_path / "toolchains"
    folder.mkdir()
    (folder / "export.yaml").write_text("params:\n  table: {default: all}\n" + STEPS)
    config = tmp_path / "config.toml"
    config.write_text(
        "[[schedules]]\nname = 'nightly'\ntoolchain = 'export'\ncron = '0 3 * * *'\n"
        "params = {table = 'hero'}\ncatch_up = '2h'\n"
        "[[schedules]]\nname = 'bad'\ntoolchain = 'export'\ncron = '@sometimes'\n"
        "[[schedules]]\nname = 'lost'\ntoolchain = 'nothere'\ncron = '@daily'\n"
        "[[schedules]]\nname = 'typo'\ntoolchain = 'export'\ncron = '@daily'\n"
        "params = {tabel = 'x'}\n"
    )
    catalog = ScheduleCatalog().collect([folder], load_config(config))
    [nightly] = catalog.schedules
    assert (nightly.name, nightly.params, nightly.catch_up) == ("nightly", {"table": "hero"}, 7200)
    problems = "\n".join(catalog.problems)
    assert f"{config}: schedules[1].cron: unknown macro '@sometimes'" in problems
    assert f"{config}: schedules[2]: no toolchain named 'nothere'" in problems
    assert f"{config}: schedules[3]: unknown parameter 'tabel'" in problems
