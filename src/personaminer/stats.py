"""Summary statistics shared by every report (quality, training comparison, evaluation)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def _values(xs: Iterable[float | None]) -> np.ndarray:
    return np.asarray([x for x in xs if x is not None and not math.isnan(x)], dtype=np.float64)


def describe(xs: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation, standard error of the mean, and n, over the values that
    are neither None nor NaN (std and se are None below two values; everything is None for none)."""
    a = _values(xs)
    n = int(len(a))
    if not n:
        return {"mean": None, "std": None, "se": None, "n": 0}
    sd = float(a.std(ddof=1)) if n > 1 else None
    return {"mean": float(a.mean()), "std": sd, "se": sd / math.sqrt(n) if sd is not None else None, "n": n}


def mean(xs: Iterable[float | None], digits: int | None = None) -> float | None:
    """The mean of the values that are neither None nor NaN (None when there are none), optionally rounded."""
    m = describe(xs)["mean"]
    return None if m is None else (round(float(m), digits) if digits is not None else float(m))


def mean_se(xs: Iterable[float | None], digits: int = 3) -> str:
    """``"mean ± se"`` for a report table over the values that are neither None nor NaN (se 0 for one
    value), or ``"-"`` when there are none."""
    d = describe(xs)
    if d["mean"] is None:
        return "-"
    return f"{d['mean']:.{digits}f} ± {d['se'] or 0.0:.{digits}f}"
