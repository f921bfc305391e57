"""Read plotly selection events with item access (works for live PlotlyState and AppTest's plain dicts)."""

from __future__ import annotations

from typing import Any


def _selection(event: Any) -> dict[str, Any]:
    if not event:
        return {}
    try:
        selection = event["selection"]
    except (KeyError, TypeError):
        return {}
    return selection if isinstance(selection, dict) or hasattr(selection, "get") else {}


def boxes(event: Any) -> list[dict[str, Any]]:
    return list(_selection(event).get("box") or [])


def points(event: Any) -> list[dict[str, Any]]:
    return list(_selection(event).get("points") or [])


def first_custom(point: dict[str, Any]) -> list[Any]:
    """customdata of a point as a list: strings come back as a list, numbers as {"0": ..} (plotly ≥ 6)."""
    custom = point.get("customdata")
    if isinstance(custom, list):
        return custom
    if isinstance(custom, dict):
        return [custom[k] for k in sorted(custom, key=int)]
    return []
