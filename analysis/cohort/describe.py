"""Last step of the cohort engine: a found cohort as a typed result and in plain words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from analysis.cohort.search import Pairs
from analysis.outcome import OUTCOME_WORDS, Outcome


def cohort_label(pairs: Iterable[tuple[str, object]]) -> str:
    """``region=eu-west AND client_version=5.2.0``: the one way a cohort is written."""
    return " AND ".join(f"{key}={value}" for key, value in pairs)


@dataclass(frozen=True)
class Cohort:
    """A group of requests sharing ``pairs`` (attribute key as the data names it, value).

    ``bad``/``total`` count the selection; ``expected_bad`` is what the baseline rates predict for
    these requests; ``baseline_rate`` is the cohort's own bad rate in the baseline; ``coverage`` is
    the share of the *excess* bad requests (bad minus what the baseline rate predicts) this cohort
    explains, capped at 1 — not the share of all bad requests; ``precision`` its bad rate;
    ``lift`` = precision ÷ ``baseline_rate``.
    """

    pairs: Pairs
    bad: int
    total: int
    precision: float
    baseline_rate: float
    expected_bad: float
    coverage: float
    lift: float | None
    p_value: float
    outcome: Outcome = "bad"
    versus: str = "before"

    def label(self) -> str:
        """``region=eu-west AND client_version=5.2.0``."""
        return cohort_label(self.pairs)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``python -m analysis cohort --json``."""
        return {
            "cohort": dict(self.pairs),
            "bad": self.bad,
            "total": self.total,
            "precision": round(self.precision, 6),
            "coverage": round(self.coverage, 6),
            "lift": None if self.lift is None else round(self.lift, 4),
            "p_value": float(f"{self.p_value:.6g}"),
        }

    def describe(self, band: str | None = None) -> str:
        """Plain words: "explains 87 % of the excess slow requests; 64 % of its requests are slow vs 2 % before; ×32".

        ``band`` words a selection whose "bad" is a brushed latency band ("in the brushed band"):
        "explains 87 % of the excess requests in the brushed band; 64 % of its requests are in the brushed band …".
        """
        word = OUTCOME_WORDS[self.outcome]
        which, are = (f"the excess requests {band}", band) if band else (f"the excess {word} requests", word)
        lift = "" if self.lift is None else f"; ×{self.lift:.3g}"
        return (
            f"explains {self.coverage:.0%} of {which}; {self.precision:.0%} of its requests are {are} "
            f"vs {self.baseline_rate:.0%} {self.versus}{lift}"
        ).replace("%", " %")
