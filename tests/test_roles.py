"""Attribute roles (model.semconv) in the analysis: OTel names first, one column per concept, fixed ties."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from analysis.blast_radius import blast_radius, split_periods
from analysis.cohort import discover_attributes, find_cohorts, investigate, rank_values
from analysis.outcome import with_outcome
from analysis.pools import exhaustion_chain
from config import SloConfig
from model.semconv import resolve_roles
from tests.cohort_data import SLO_MS, T0, make_requests

SLO = SloConfig(default_ms=SLO_MS)
WINDOW = (T0 + timedelta(minutes=40), None)
OTEL = {
    "cloud.region": ["eu-west", "us-east", "us-west", "ap-south"],
    "app.client.version": ["5.0.1", "5.1.0", "5.2.0", "4.9.3"],
    "host.name": ["h1", "h2", "h3", "h4", "h5", "h6"],
    "platform": ["ios", "android", "web"],
    "tenant.id": ["acme", "globex", "initech", "umbrella"],
}
ALIASES = {"attr.region": "attr.cloud.region", "attr.host": "attr.host.name"}  # what a converter adds


def _otel_requests(n: int = 8000, *, aliases: bool = True, user: str | None = "attr.enduser.id") -> pl.DataFrame:
    frame = make_requests(
        n, OTEL, user_ids=False,
        in_incident=lambda r: r["attr.cloud.region"] == "eu-west" and r["attr.app.client.version"] == "5.2.0",
    )
    if user is not None:
        frame = frame.with_columns(("u" + (pl.int_range(pl.len()) % 900).cast(pl.String)).alias(user))
    if aliases:
        frame = frame.with_columns(pl.col(src).alias(dst) for dst, src in ALIASES.items())
    return with_outcome(frame, SLO)


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    columns = frame.columns[:]
    random.Random(seed).shuffle(columns)
    return frame.select(columns).sample(fraction=1.0, shuffle=True, seed=seed)


def test_conventions_first_then_legacy_names_whatever_the_column_order() -> None:
    columns = ["attr.region", "attr.user_id", "attr.cloud.region", "attr.host", "attr.tenant", "attr.enduser.id"]
    for order in (columns, columns[::-1]):
        roles = resolve_roles(order)
        assert (roles.user, roles.region, roles.tenant) == ("attr.enduser.id", "attr.cloud.region", "attr.tenant")
        assert roles.column("host") == "attr.host" and roles.key("region") == "cloud.region"
        assert roles.duplicates == {"attr.region", "attr.user_id"}
        assert roles.why_missing("client_version") is not None and roles.why_missing("user") is None


def test_configured_role_comes_first_and_a_missing_one_says_so() -> None:
    roles = resolve_roles(["attr.org.member_id", "attr.user_id"], {"user": "org.member_id", "tenant": "org.id"})
    assert roles.user == "attr.org.member_id" and "attr.user_id" in roles.duplicates
    assert roles.tenant is None and "org.id" in str(roles.why_missing("tenant"))
    assert "no region attribute in the data" in str(resolve_roles([]).why_missing("region"))


def test_alias_duplicates_never_enter_the_search() -> None:
    attrs = discover_attributes(_otel_requests())
    assert "attr.cloud.region" in attrs and "attr.host.name" in attrs
    assert "attr.region" not in attrs and "attr.host" not in attrs and "attr.enduser.id" not in attrs


def test_label_uses_the_data_s_own_names_with_or_without_aliases() -> None:
    for aliases in (True, False):
        top = find_cohorts(_otel_requests(aliases=aliases), WINDOW)[0]
        assert dict(top.pairs) == {"cloud.region": "eu-west", "app.client.version": "5.2.0"}


def test_repeated_runs_on_shuffled_rows_and_columns_give_the_same_answer() -> None:
    base = _otel_requests()
    answers = set()
    rankings = set()
    for seed in range(4):
        frame = _shuffled(base, seed)
        cohorts = find_cohorts(frame, WINDOW)
        answers.add(tuple((c.label(), c.describe()) for c in cohorts))
        ranking = rank_values(frame, WINDOW)
        rankings.add(tuple(ranking.select("attribute", "value").rows()))
    assert len(answers) == 1 and len(rankings) == 1
    top_label = next(iter(answers))[0][0]
    assert set(top_label.split(" AND ")) == {"cloud.region=eu-west", "app.client.version=5.2.0"}


def test_blast_radius_counts_otel_users_and_says_why_when_there_are_none() -> None:
    with_users = _otel_requests()
    radius = blast_radius(*split_periods(with_users, WINDOW[0]))
    assert radius.users_affected is not None and radius.users_affected > 0
    assert radius.tenants_affected is not None and radius.regions_affected == ("eu-west",)
    assert radius.why_unknown("user") is None

    anonymous = blast_radius(*split_periods(_otel_requests(user=None), WINDOW[0]))
    assert anonymous.users_affected is None and anonymous.excess_users is None
    assert "no user attribute in the data" in str(anonymous.why_unknown("user"))
    assert anonymous.excess_bad == pytest.approx(radius.excess_bad)  # the rest is measured all the same


def test_blast_radius_follows_configured_roles() -> None:
    frame = _otel_requests(user="attr.org.member_id").rename({"attr.tenant.id": "attr.org.id"})
    default = blast_radius(*split_periods(frame, WINDOW[0]))
    assert default.users_affected is None and default.tenants_affected is None
    roles = resolve_roles(frame.columns, {"user": "org.member_id", "tenant": "org.id"})
    configured = blast_radius(*split_periods(frame, WINDOW[0]), roles=roles)
    assert configured.users_affected is not None and configured.users_affected > 0
    assert configured.tenants_affected is not None and configured.unknown == ()


def test_investigate_is_find_cohorts_plus_the_blast_radius() -> None:
    frame = _otel_requests()
    report = investigate(frame, SLO, resolve_roles(frame.columns), "bad", WINDOW[0])
    assert [c.label() for c in report.cohorts] == [c.label() for c in find_cohorts(frame, WINDOW)]
    alone = blast_radius(*split_periods(frame, WINDOW[0]))
    assert report.blast.users_expected == pytest.approx(alone.users_expected)  # summed in group-by order
    assert replace(report.blast, users_expected=0.0) == replace(alone, users_expected=0.0)
    as_json = report.as_dict()
    assert as_json["attributes"] == {"user": "enduser.id", "tenant": "tenant.id",
                                     "client_version": "app.client.version",
                                     "region": "cloud.region", "host": "host.name"}


def test_pool_cohort_uses_the_never_a_cohort_rule() -> None:
    start = T0 + timedelta(minutes=1)
    pools = pl.DataFrame({
        "source": ["pg"] * 2, "pool": ["main"] * 2, "instance": [None, None],
        "ts": [start, start + timedelta(minutes=2)],
        "active": [10, 10], "idle": [0, 0], "max": [10, 10], "pending": [5, 5], "timeouts": [0, 1],
        "acquire_p99_ms": [900.0, 950.0],
    }, schema_overrides={"instance": pl.String})
    spans = _otel_requests(200, aliases=True).head(200).with_columns(start=pl.lit(start + timedelta(seconds=30)))
    stuck = spans.head(20).with_columns(
        span_id=pl.col("span_id").str.replace("^.", "f"), parent_span_id=pl.col("span_id"), is_root=pl.lit(False),
        operation=pl.lit("HikariPool.getConnection"), duration_ms=pl.lit(800.0),
    )
    chain = exhaustion_chain(pools, pl.DataFrame(), pl.concat([spans, stuck], how="diagonal_relaxed"))
    attributes = set(chain.cohort["attribute"].to_list())
    assert chain.affected_users is not None and chain.affected_users > 0
    assert "cloud.region" in attributes and not attributes & {"region", "host", "enduser.id", "user_id"}
