"""benchmarks/heldout_quality.py: the held-out table counts failed and missing sets honestly and pairs users."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "heldout_quality.py"


@pytest.fixture(scope="module")
def hq():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("heldout_quality", _PATH)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _valid(final: float) -> dict:  # type: ignore[type-arg]
    return {"status": "valid", "values": {"final": final, "cohesion": 0.5}, "set_id": "s"}


def test_failed_and_missing_sets_score_zero_and_lower_valid(hq) -> None:  # type: ignore[no-untyped-def]
    rows = {"u1": _valid(0.8), "u2": {"status": "failed", "values": None},
            "u3": {"status": "missing", "values": None}, "u4": _valid(0.4)}
    s = hq.summarize(rows)
    assert s["valid"]["mean"] == pytest.approx(0.5)
    assert (s["failed"], s["missing"], s["unscored"]) == (1, 1, 0)
    assert s["final_all"]["mean"] == pytest.approx((0.8 + 0.4) / 4)
    assert s["final"]["mean"] == pytest.approx(0.6) and s["final"]["n"] == 2


def test_a_valid_unscored_set_is_counted_and_left_out_of_the_means(hq) -> None:  # type: ignore[no-untyped-def]
    rows = {"u1": _valid(0.8), "u2": {"status": "valid", "values": None, "set_id": "x"}}
    s = hq.summarize(rows)
    assert s["unscored"] == 1 and s["valid"]["mean"] == 1.0
    assert s["final_all"]["n"] == 1 and s["final_all"]["mean"] == pytest.approx(0.8)


def test_paired_differences_use_common_users_with_a_t_interval(hq) -> None:  # type: ignore[no-untyped-def]
    a = {"u1": 0.9, "u2": 0.7, "u3": 0.8, "u4": 0.1}
    b = {"u1": 0.5, "u2": 0.6, "u3": 0.5}
    d = hq.paired(a, b)
    diffs = [0.4, 0.1, 0.3]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert d["ci95"] == pytest.approx([mean - half, mean + half])
    assert hq.paired({"u1": 1.0}, {"u1": 0.5})["ci95"] is None


def test_tables_pair_every_system_against_each_reference_with_failures_at_zero(hq) -> None:  # type: ignore[no-untyped-def]
    per = {"ref": {"u1": _valid(0.5), "u2": _valid(0.5)},
           "sys": {"u1": _valid(0.9), "u2": {"status": "failed", "values": None}}}
    t = hq.tables_for(per, ["ref", "absent"], users=2)
    assert set(t["paired"]) == {"sys - ref"}
    p = t["paired"]["sys - ref"]
    assert p["final_all"]["mean"] == pytest.approx((0.4 - 0.5) / 2) and p["final_all"]["n"] == 2
    assert p["final"]["mean"] == pytest.approx(0.4) and p["final"]["n"] == 1
    text = hq.markdown("aol", t, "embedding")
    assert "| sys - ref | -0.050" in text and "0.50 (1/2)" in text
