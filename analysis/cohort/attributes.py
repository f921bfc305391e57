"""Step 1 of the cohort engine: which columns may describe a cohort (the never-a-cohort rule)."""

from __future__ import annotations

import re

import polars as pl

from model.schemas import ATTR_PREFIX, attr_columns
from model.semconv import Roles, resolve_roles

# plain columns of spans that can describe a cohort (besides every attr.* column)
PLAIN = ("service", "operation", "kind")
# names of per-request / per-person identifiers, client addresses and secrets: never a cohort,
# whatever their cardinality in this sample (a tenant or region id is fine: cardinality decides)
_ID_NAME = re.compile(
    r"(^|[._\-])(uuid|guid|email)$"
    r"|(trace|span|parent|request|correlation|causation|session|user|customer|order|transaction"
    r"|message|event|device|visitor|client)[._\-]?id"
    r"|idempotency|nonce|token|secret|password|_key$|\.key$"
    r"|(client|peer|source|remote|forwarded)[._\-]?(address|addr|ip)|forwarded_for",
    re.IGNORECASE,
)
MAX_VALUES = 1000  # more distinct values than this: an identifier, not a cohort
MIN_REQUESTS_PER_VALUE = 5.0  # ... or fewer requests per value on average (most carry their own)


def cohort_key(column: str) -> str:
    """Attribute key as the source names it (``attr.cloud.region`` → ``cloud.region``)."""
    return column.removeprefix(ATTR_PREFIX)


def never_a_cohort(column: str, roles: Roles) -> bool:
    """An identifier by its name (user, trace, request id, …), the user role, or an alias duplicate."""
    return bool(_ID_NAME.search(cohort_key(column))) or column == roles.user or column in roles.duplicates


def named_candidates(frame: pl.DataFrame, roles: Roles | None = None, *, plain: bool = True) -> list[str]:
    """``attr.*`` columns (and service/operation/kind when ``plain``) that the never-a-cohort rule allows.

    Sorted by name: which column enters a search never depends on the frame's column order.
    """
    roles = roles if roles is not None else resolve_roles(frame.columns)
    columns = attr_columns(frame) + ([c for c in PLAIN if c in frame.columns] if plain else [])
    return sorted(c for c in columns if not never_a_cohort(c, roles))


def discover_attributes(requests: pl.DataFrame, roles: Roles | None = None) -> list[str]:
    """Columns that may describe a cohort: ``attr.*`` plus service/operation/kind, minus identifiers.

    A column is dropped when its name reads like a per-request or per-person identifier (user id,
    trace id, request id, correlation id, idempotency key, session id, …), when it is the user
    role or a second name of a role already taken (``roles``, resolved from the columns when not
    given), when it has more than ``MAX_VALUES`` distinct values or fewer than
    ``MIN_REQUESTS_PER_VALUE`` requests per value on average (near-unique values: an id whatever
    its name), or when it is constant.
    """
    candidates = named_candidates(requests, roles)
    if not candidates or requests.height == 0:
        return []
    counts = requests.select(pl.col(c).n_unique().alias(c) for c in candidates).row(0, named=True)
    limit = max(2.0, requests.height / MIN_REQUESTS_PER_VALUE)
    return [c for c in candidates if 1 < counts[c] <= MAX_VALUES and (counts[c] <= limit or requests.height < 20)]
