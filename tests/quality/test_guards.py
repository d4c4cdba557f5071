"""The evidence guards on hand-made facts: each fires on its wording, and only then."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from personaminer.quality.guards import MemoryFacts, check

D = dt.date(2006, 3, 1)


def facts(n: int = 1, kind: str = "query", text: str = "golf clubs", days: int = 1,
          ratings: list[float] | None = None) -> list[MemoryFacts]:
    return [MemoryFacts(D + dt.timedelta(days=i % days), text, Counter({kind: 2}), list(ratings or []))
            for i in range(n)]


@pytest.mark.parametrize(("claim", "evidence", "fires"), [
    ("The user is frequently purchasing makeup.", facts(kind="view"), "purchase"),
    ("The user bought golf clubs.", facts(kind="query"), "purchase"),
    ("The user bought golf clubs.", facts(kind="purchase"), None),
    ("The user searched for golf clubs.", facts(kind="query"), None),
    ("The user searched for how to buy golf clubs.", facts(kind="query", text="how to buy golf clubs"), None),
    ("The user loves Jerry Maguire.", facts(kind="rating", ratings=[2.0]), "liking"),
    ("The user loves Jerry Maguire.", facts(kind="rating", ratings=[5.0, 4.0]), None),
    ("The user loves golf.", facts(kind="query"), None),  # no ratings: left to the judge
    ("The user often plays golf.", facts(n=1), "frequency"),
    ("The user often plays golf.", facts(n=3, days=2), None),
    ("The user plays golf every day.", facts(n=3, days=3), "daily"),
    ("The user plays golf every day.", facts(n=8, days=8), None),
    ("She plays golf.", facts(), "gender"),
    ("The user is a 34-year-old nurse.", facts(), "age"),
    ("The user is a nurse.", facts(), "job"),
    ("The user is a nurse.", facts(text="nurse jobs in reno"), None),
    ("The user lives in Reno.", facts(), "residence"),
    ("The user rated Iron Man 4 out of 5.", facts(kind="rating", text="iron man (2008)", ratings=[4.0]), None),
])
def test_guards(claim: str, evidence: list[MemoryFacts], fires: str | None) -> None:
    reason = check(claim, evidence)
    if fires is None:
        assert reason is None, reason
    else:
        assert reason is not None and fires in reason, reason


def test_no_evidence_no_verdict() -> None:
    assert check("The user bought a car.", []) is None
