"""Data shown in Markdown stays data: hostile attribute values and URL-supplied filters make no markup."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from ui.text import code_span, md_escape

HOSTILE = ["`](javascript:alert(1))", '"><img src=x onerror=alert(1)>', "<script>alert(1)</script>", "``x``",
           "**bold** [link](http://evil) $x^2$ # heading"]


def _code_content(span: str) -> str:
    fence = re.match(r"`+", span).group(0)  # type: ignore[union-attr]
    inner = span[len(fence):-len(fence)]
    return inner[1:-1] if inner.startswith(" ") and inner.endswith(" ") and inner.strip() else inner


def test_code_span_shows_hostile_values_literally() -> None:
    for value in HOSTILE:
        span = code_span(value)
        fence = re.match(r"`+", span).group(0)  # type: ignore[union-attr]
        assert fence not in value, "the fence must be longer than any backtick run inside"
        assert span.endswith(fence) and _code_content(span) == value


@example(" 0 ")  # CommonMark strips one space from each end of such a span
@given(st.text(max_size=60))
def test_code_span_round_trips_any_text(value: str) -> None:
    assert _code_content(code_span(value)) == value.replace("\n", " ")


def test_md_escape_leaves_no_live_markup() -> None:
    for value in HOSTILE:
        escaped = md_escape(value)
        assert not re.search(r"(?<!\\)[\[\]()<>`*#$]", escaped), escaped
