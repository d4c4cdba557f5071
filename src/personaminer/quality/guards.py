"""Evidence guards: claims the evidence cannot carry are unsupported, whatever the judge says.

A small judge says Yes to almost any claim about a single search, and "frequently purchasing"
about a user who only viewed items. The guards are deterministic checks of a claim against the
*facts* of its evidence memories (their days, the kinds of their actions, rating values), run
after the judge; a claim that fails one is unsupported (its score becomes 0) and the reason is
kept with the verdict (``personaminer audit`` shows it). Each guard fires only on wording it
recognises, so a claim it does not understand is left to the judge.

* **stronger action**: the claim says the user bought, purchased or ordered, and no evidence
  action is a purchase or a checkout (the user only searched, viewed, liked, rated);
* **liking against the ratings**: the claim says the user loves, enjoys, likes or favours, and
  the evidence holds ratings whose mean is below 3.5 of 5;
* **frequency**: "frequently", "often", "regularly", "always", "repeatedly"... need at least 3
  evidence memories on at least 2 days; "every day" / "daily" need evidence on at least 7 days
  covering 80% of the days of its span, "every week" / "weekly" on at least 4 weeks covering
  80% of its weeks;
* **demographics**: an age, a gender or family role (including he / she), a job, or a place of
  residence is unsupported unless an evidence memory states that very word.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

PURCHASE_KINDS = frozenset({"purchase", "checkout"})

_I = re.IGNORECASE
PURCHASE = re.compile(
    r"\b(?:user|they|he|she|who|and)\s+(?:\w+ly\s+|also\s+|has\s+|have\s+)?"
    r"(?:buys|bought|purchased|purchases|orders|ordered|shops for|shopped for)\b"
    r"|\b(?:purchasing|buying|ordering)\b", _I)
LIKING = re.compile(r"\b(?:loves?|loved|loving|adores?|adored|favou?rites?|big fan|passionate about|fond of|"
                    r"enjoys?|enjoyed|likes)\b", _I)
FREQUENT = re.compile(r"\b(?:frequent(?:ly)?|often|regular(?:ly)?|routinely|repeatedly|habitual(?:ly)?|constantly|"
                      r"always|many times|again and again)\b", _I)
DAILY = re.compile(r"\b(?:every (?:single )?day|daily|each day|every morning|every night)\b", _I)
WEEKLY = re.compile(r"\b(?:every (?:single )?week|weekly|each week)\b", _I)
DEMOGRAPHIC = [
    ("age", re.compile(r"\b\d{1,3}[- ]years?[- ]old\b|\b(?:teenager|teen|retiree|retired|elderly|middle-aged|"
                       r"in (?:his|her|their) (?:teens|twenties|thirties|forties|fifties|sixties|seventies|"
                       r"[2-9]0s))\b", _I)),
    ("gender or family", re.compile(r"\b(?:she|he|her|hers|his|him|woman|man|female|male|girl|boy|mother|father|"
                                    r"mom|mum|dad|wife|husband|son|daughter|grandmother|grandfather|married|"
                                    r"parent of|kids|children)\b", _I)),
    ("job", re.compile(r"\b(?:is|works as|working as|employed as)\s+an?\s+(?:\w+\s+)?(?:nurse|teacher|student|"
                       r"engineer|dentist|doctor|lawyer|programmer|developer|accountant|manager|salesman|"
                       r"salesperson|driver|chef|cook|mechanic|professor|farmer|artist|writer|designer|"
                       r"pilot|soldier|officer|clerk|cashier|pharmacist|scientist|musician|realtor)\b", _I)),
    ("residence", re.compile(r"\b(?:lives|living|based|resides|residing|located|grew up)\s+in\s+[\w .,'-]{2,40}?"
                             r"(?=[.;]|$)|\bis from\s+[A-Z][\w-]+", _I)),
]


@dataclass
class MemoryFacts:
    """What an evidence memory shows: its day, its words, its action kinds and rating values."""

    day: dt.date
    text: str  # the summary and the actions' texts, lower case
    kinds: Counter[str] = field(default_factory=Counter)
    ratings: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)

    def describe(self) -> str:
        """The facts as the judge reads them after the summary: ``actions: 2 viewed, 1 bought; ratings: 4, 2``."""
        verbs = {"query": "searched", "click": "clicked", "view": "viewed", "like": "liked", "cart": "carted",
                 "offer": "offered", "checkout": "checked out", "purchase": "bought", "rating": "rated"}
        parts = [", ".join(f"{n} {verbs.get(k, k)}" for k, n in self.kinds.most_common())]
        if self.ratings:
            parts.append("ratings: " + ", ".join(f"{r:g}/5" for r in self.ratings[:8]))
        if self.prices:
            parts.append("prices: " + ", ".join(f"{p:g}" for p in self.prices[:8]))
        return "; ".join(p for p in parts if p)


def _days_cover(days: set[dt.date], need: int, unit_days: int) -> bool:
    """At least ``need`` distinct units (days or weeks) covering 80% of the units of their span."""
    units = {d.toordinal() // unit_days for d in days}
    if len(units) < need:
        return False
    span = max(units) - min(units) + 1
    return len(units) >= 0.8 * span


def check(claim: str, evidence: Sequence[MemoryFacts]) -> str | None:
    """Why ``claim`` cannot be carried by ``evidence`` (None when no guard objects)."""
    if not evidence:
        return None
    kinds: Counter[str] = Counter()
    for f in evidence:
        kinds.update(f.kinds)
    if PURCHASE.search(claim) and not (PURCHASE_KINDS & set(kinds)):
        shown = ", ".join(f"{n} {k}" for k, n in kinds.most_common()) or "no actions"
        return f"claims a purchase; the evidence holds {shown}"
    ratings = [r for f in evidence for r in f.ratings]
    if ratings and LIKING.search(claim) and sum(ratings) / len(ratings) < 3.5:
        return f"claims a liking; the evidence ratings average {sum(ratings) / len(ratings):.1f} of 5"
    days = {f.day for f in evidence}
    if DAILY.search(claim) and not _days_cover(days, 7, 1):
        return f"claims a daily habit; the evidence spans {len(days)} day(s)"
    if WEEKLY.search(claim) and not _days_cover(days, 4, 7):
        return f"claims a weekly habit; the evidence spans {len({d.toordinal() // 7 for d in days})} week(s)"
    if FREQUENT.search(claim) and (len(evidence) < 3 or len(days) < 2):
        return f"claims a frequency from {len(evidence)} memory(ies) on {len(days)} day(s)"
    words = " ".join(f.text for f in evidence)
    for what, pattern in DEMOGRAPHIC:
        for m in pattern.finditer(claim):
            term = m.group(0).lower()
            key = re.sub(r"^(?:is|works as|working as|employed as|lives|living|based|resides|residing|located|"
                         r"grew up)\s+(?:an?\s+|in\s*)?", "", term).strip()
            if not key or not re.search(rf"\b{re.escape(key)}\b", words):
                article = "an" if what[0] in "aeiou" else "a"
                return f"states {article} {what} ({m.group(0)!r}) that no evidence memory states"
    return None
