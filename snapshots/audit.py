"""The snapshot audit trail: one JSON log line per create, open, delete and export.

Each line goes through Faultline's logger (``connectors.runtime.log``: stderr and ``FAULTLINE_LOG_FILE``)
as ``{"event": "snapshot_audit", "action": …, "snapshot_id": …, "who": …, "remote_addr": …, "at": …}``.
``who`` is the signed-in user (None while the app runs without ``[auth]``); ``remote_addr`` is the
browser's address as the request reached Streamlit (behind nginx, the ``X-Real-IP`` it sets).

Opens are also kept beside the snapshot in its store (``record_open``/``opened_by`` of either store),
which is what the Snapshots page lists as "opened by".
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from connectors.runtime.log import log_event

AUDIT_EVENT = "snapshot_audit"
AuditAction = Literal["create", "open", "delete", "export_html", "export_file", "import"]
MAX_OPENS_LISTED = 200  # the "opened by" list shows the newest ones; the log keeps them all


@dataclass(frozen=True)
class Actor:
    """Who did something to a snapshot, and from where (both None when unknown)."""

    who: str | None = None
    remote_addr: str | None = None


@dataclass(frozen=True)
class OpenRecord:
    """One opening of a snapshot, as stored beside it."""

    at: str
    who: str | None
    remote_addr: str | None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def audit(action: AuditAction, snapshot_id: str, actor: Actor, **detail: Any) -> None:
    """Write the audit line for ``action`` on ``snapshot_id`` (never raises: auditing must not break a page)."""
    with contextlib.suppress(Exception):  # a full disk or a closed stream must not take the page down
        log_event(AUDIT_EVENT, action=action, snapshot_id=snapshot_id, who=actor.who,
                  remote_addr=actor.remote_addr, at=now_iso(), **detail)


def open_record(raw: object) -> OpenRecord | None:
    """An OpenRecord from its stored JSON object; None for a damaged entry (skipped, never fatal)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("at"), str):
        return None
    who, addr = raw.get("who"), raw.get("remote_addr")
    return OpenRecord(at=raw["at"], who=who if isinstance(who, str) else None,
                      remote_addr=addr if isinstance(addr, str) else None)


class OpenLog(Protocol):
    def record_open(self, snapshot_id: object, who: str | None, remote_addr: str | None) -> None: ...


def opened(store: OpenLog, snapshot_id: str, actor: Actor) -> None:
    """Audit one opening and remember it beside the snapshot; a store that cannot record it is logged, not fatal."""
    audit("open", snapshot_id, actor)
    try:
        store.record_open(snapshot_id, actor.who, actor.remote_addr)
    except (ValueError, OSError) as exc:  # SnapshotError is a ValueError; the open itself succeeded
        log_event("snapshot_open_not_recorded", logging.WARNING, snapshot_id=snapshot_id, error=str(exc))
