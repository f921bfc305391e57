"""The cohort finder: who is affected — selection vs. baseline over every attribute (pure polars).

Start reading here. The engine runs in steps, one module each, each importing only earlier ones:

1. split (:mod:`analysis.periods`) — every request labelled selection, baseline or neither;
2. attributes (:mod:`.attributes`) — the columns that may describe a cohort (identifiers, the user
   role and alias duplicates never do);
3. counts (:mod:`.counts`) — requests per attribute value and class in few passes;
4. stats (:mod:`.stats`) and rank (:mod:`.rank`) — per ``attribute=value``: shares, rates,
   coverage, lift, p/q-values (:func:`rank_values`);
5. search (:mod:`.search`) and refine (:mod:`.refine`) — the smallest set of 1–3-attribute cohorts
   explaining the excess bad requests, driven by :mod:`.find` (:func:`find_cohorts`);
6. describe (:mod:`.describe`) — :class:`Cohort` and :func:`cohort_label`, in plain words;

and :func:`investigate` (:mod:`.report`) runs it all plus the blast radius: the one answer the
app and the command line both give.
"""

from __future__ import annotations

from analysis.changepoint import detect_incident_start
from analysis.cohort.attributes import cohort_key, discover_attributes
from analysis.cohort.describe import Cohort, cohort_label
from analysis.cohort.find import find_cohorts, search_attributes
from analysis.cohort.rank import rank_values
from analysis.cohort.report import DetectedStart, Investigation, detect_start, investigate
from analysis.cohort.search import COUNT_PARAMS
from analysis.periods import Selection, Split, split_requests

__all__ = [
    "COUNT_PARAMS", "Cohort", "DetectedStart", "Investigation", "Selection", "Split", "cohort_key", "cohort_label",
    "detect_incident_start", "detect_start", "discover_attributes", "find_cohorts", "investigate", "rank_values",
    "search_attributes",
    "split_requests",
]
