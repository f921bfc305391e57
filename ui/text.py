"""Put data (attribute values, titles, URL-supplied filters) into Markdown without it becoming markup."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
_BACKTICKS = re.compile(r"`+")


def md_escape(text: object) -> str:
    """Text safe to put inside st.markdown/st.info: no links, images, HTML or LaTeX from user content."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def code_span(text: object) -> str:
    """A Markdown code span showing ``text`` literally, whatever backticks it contains (CommonMark rule:
    delimit with a backtick run longer than any inside, padded with spaces)."""
    value = str(text).replace("\n", " ")
    longest = max((len(m) for m in _BACKTICKS.findall(value)), default=0)
    fence = "`" * (longest + 1)
    # one space is stripped from each end of a span that starts and ends with one: pad such values too
    spaced = value.startswith(" ") and value.endswith(" ") and value.strip() != ""
    return f"{fence} {value} {fence}" if longest or spaced else f"{fence}{value}{fence}"
