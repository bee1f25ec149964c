from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun.toolchains.expressions import Context, ExpressionError, evaluate, parse, parse_template

VALUES = {
    "params": {"table": "d01", "push": True, "count": 3, "flag": "false"},
    "steps": {"meta": {"outputs": {"rows": "12"}, "outcome": "success"}},
    "platform": "linux",
}


def value(text: str, status: str = "success") -> object:
    return evaluate(parse(text), Context(VALUES, lambda: status))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.table", "d01"),
        ("params['table']", "d01"),
        ("params.missing", None),
        ("params.table == 'D01'", True),
        ("params.count > 2 && params.push", True),
        ("!params.push || platform == 'windows'", False),
        ("steps.meta.outputs.rows == 12", True),
        ("steps.meta.outcome == 'success'", True),
        ("contains(params.table, '0')", True),
        ("startsWith(platform, 'lin')", True),
        ("params.flag == false", True),
        ("(1 < 2) && !(2 < 1)", True),
        ("'it''s'", "it's"),
        ('"dq \\" x"', 'dq " x'),
        ("null", None),
        ("1.5", 1.5),
    ],
)
def test_evaluation(text: str, expected: object) -> None:
    assert value(text) == expected


def test_status_functions_follow_the_needs() -> None:
    assert value("success()") is True
    assert value("failure()", "failure") is True
    assert value("always()", "cancelled") is True
    assert value("success()", "skipped") is False


@pytest.mark.parametrize(
    ("text", "column"),
    [("params.", 7), ("a ==", 4), ("(a", 2), ("a $ b", 2), ("nosuch()", 0), ("", 0), ("a b", 2)],
)
def test_syntax_errors_say_where(text: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.column == column


def test_templates_render_to_one_string() -> None:
    template = parse_template("out-${{ params.table }}/${{ params.count }} x")
    assert template.render(Context(VALUES)) == "out-d01/3 x"
    assert parse_template("plain").is_plain
    with pytest.raises(ExpressionError, match="without a closing"):
        parse_template("a ${{ b")
    with pytest.raises(ExpressionError) as info:
        parse_template("ab ${{ a == }}")
    assert info.value.column == 12


def test_no_python_is_ever_evaluated() -> None:
    with pytest.raises(ExpressionError):
        parse("__import__('os').system('echo no')")
    assert value("params.__class__") is None


def test_a_closing_brace_pair_inside_a_string_does_not_end_the_expression() -> None:
    from toolrun.toolchains.expressions import Context, parse_template

    template = parse_template('a ${{ contains(params.x, \'}}\') }} b ${{ "q\\"}}" }}')
    assert template.render(Context({"params": {"x": "{{}}"}})) == 'a true b q"}}'
    with pytest.raises(ExpressionError, match="without a closing"):
        parse_template("${{ 'never closed }}")


@pytest.mark.parametrize("text", ["!" * 3000 + "true", "(" * 3000 + "1" + ")" * 3000])
def test_deep_nesting_is_an_error_not_a_crash(text: str) -> None:
    with pytest.raises(ExpressionError, match="nests more than"):
        parse(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="!()&|=<>'\" \\abcx01.,[]${}-_", max_size=200) | st.text(max_size=100))
def test_any_text_parses_or_gets_an_expression_error(text: str) -> None:
    from toolrun.toolchains.expressions import parse_condition, parse_template

    for parser in (parse_template, parse_condition):
        try:
            parser(text)
        except ExpressionError as exc:
            assert 0 <= exc.column <= len(text) + 3
