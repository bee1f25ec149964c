"""The pictures the pages draw: a graph of the steps' needs, a timeline of attempts, a
toolchain's recent runs; their layout, and that whatever they show is escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from toolrun.dashboard.graphs import Bar, Span, bars_svg, dag_svg, levels, percentile, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_each_step_sits_one_column_after_its_furthest_need() -> None:
    needs = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}
    assert levels(list(needs), needs) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    looped = levels(["x", "y"], {"x": ("y",), "y": ("x",)})  # never loads, but must not hang
    assert set(looped) == {"x", "y"}


def test_the_graph_has_a_box_per_step_and_an_arrow_per_need() -> None:
    needs = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    states = {"a": "succeeded", "b": "failed", "c": "running"}
    root = ET.fromstring(dag_svg(list(needs), needs, states))
    steps = [g.get("data-step") for g in root.iter(f"{SVG}g")]
    assert steps == ["a", "b", "c", "d"]
    assert len(list(root.iter(f"{SVG}path"))) == 4
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["a: succeeded", "b: failed", "c: running", "d: pending"]


def test_text_in_a_picture_is_escaped() -> None:
    hostile = "<script>x</script>"
    svg = dag_svg([hostile], {hostile: ()}, {hostile: "failed"})
    assert "<script>" not in svg
    ET.fromstring(svg)  # still well-formed
    spans = [Span(hostile, 1, 0.0, 1.0, "failed")]
    assert "<script>" not in timeline_svg([hostile], spans, 0.0, 2.0)
    assert "<script>" not in bars_svg([Bar(hostile, "failed", 3.0)])


def test_the_timeline_shows_each_attempt_and_the_wait_between() -> None:
    spans = [Span("a", 1, 0.0, 2.0, "failed"), Span("a", 2, 3.0, 4.0, "succeeded")]
    root = ET.fromstring(timeline_svg(["a"], spans, 0.0, 4.0))
    bars = [r for r in root.iter(f"{SVG}rect")]
    assert len(bars) == 2
    first, second = (float(r.get("x", 0)) for r in bars)
    assert second - (first + float(bars[0].get("width", 0))) > 100, "the retry's wait shows"


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([5.0], 0.95) == 5.0
