"""Attribute roles: which span attribute carries the user, the tenant, the region, … of a request.

OpenTelemetry semantic conventions first, then the legacy and home-grown names; the first name of
:data:`CONVENTIONS` present in the data wins, so the choice depends only on which columns exist,
never on their order or on the rows. ``sources.yaml`` can name the attribute of a role
(``attributes: {user: org.member_id}``); a configured name comes before the conventions.

One attribute per concept: when several names of one concept are present (an alias copied beside
the original, ``attr.region`` beside ``attr.cloud.region``), the others are :attr:`Roles.duplicates`
and never enter a cohort search. Pure data, no polars: resolved from a frame's column names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from model.schemas import ATTR_PREFIX

# role -> attribute keys (without ``attr.``), preferred first
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "user": ("enduser.id", "user.id", "app.user.id", "user_id"),
    "tenant": ("tenant.id", "tenant"),
    "client_version": ("app.client.version", "client.version", "client_version"),
    "region": ("cloud.region", "region"),
    "host": ("host.name", "host"),
    "service_version": ("service.version", "service_version"),
}
ROLE_NAMES: tuple[str, ...] = tuple(CONVENTIONS)


@dataclass(frozen=True)
class Roles:
    """The column chosen per role (``attr.<key>``), what else was found, and why a role is missing.

    Hashable (tuples only): pages pass it to cached functions.
    """

    chosen: tuple[tuple[str, str], ...] = ()  # (role, column), in ROLE_NAMES order
    duplicates: frozenset[str] = frozenset()  # other columns of a chosen role: never searched
    missing: tuple[tuple[str, str], ...] = ()  # (role, why), in ROLE_NAMES order

    def column(self, role: str) -> str | None:
        """The column of ``role`` in this data, or None."""
        return dict(self.chosen).get(role)

    def key(self, role: str) -> str | None:
        """The attribute key of ``role`` as the data names it (``cloud.region``), or None."""
        column = self.column(role)
        return None if column is None else column.removeprefix(ATTR_PREFIX)

    def why_missing(self, role: str) -> str | None:
        """Plain words for a role the data does not carry ("no user attribute in the data"), else None."""
        return dict(self.missing).get(role)

    @property
    def user(self) -> str | None:
        return self.column("user")

    @property
    def tenant(self) -> str | None:
        return self.column("tenant")

    @property
    def region(self) -> str | None:
        return self.column("region")


def resolve_roles(columns: Iterable[str], overrides: Mapping[str, str] | None = None) -> Roles:
    """The :class:`Roles` of a frame with ``columns`` (``overrides``: role -> attribute key from config)."""
    present = set(columns)
    overrides = overrides or {}
    chosen: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []
    duplicates: set[str] = set()
    for role in ROLE_NAMES:
        configured = overrides.get(role)
        keys = ((configured,) if configured else ()) + CONVENTIONS[role]
        found = [c for c in dict.fromkeys(_column(k) for k in keys) if c in present]
        if found:
            chosen.append((role, found[0]))
            duplicates.update(found[1:])
            continue
        words = role.replace("_", " ")
        why = f"no {words} attribute in the data (looked for {', '.join(keys)})"
        if configured:
            why = f"the configured {words} attribute {configured!r} is not in the data"
        missing.append((role, why))
    return Roles(tuple(chosen), frozenset(duplicates), tuple(missing))


def _column(key: str) -> str:
    return key if key.startswith(ATTR_PREFIX) else ATTR_PREFIX + key
