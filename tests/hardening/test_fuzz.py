"""Property-based fuzzing of the generic adapters (CSV, JSON Lines, Parquet).

Hypothesis draws rows whose every field is either good or bad (labelled when drawn, so the test
knows the truth without re-implementing the rules), sometimes repeating a row exactly. Whatever it
draws, an ingest must never raise, must store every good row, must store no bad row, and every
input row must end as exactly one of: an action, a duplicate of an earlier row, a quarantine row.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from personaminer import Workspace, ingest

MASK = (1 << 40) - 1
MAPPING = {"user_id": "uid", "ts": "time", "text": "q", "kind": "event"}

_WINDOW = (dt.datetime(2000, 1, 1), dt.datetime(2020, 12, 31))
_visible = st.characters(categories=["Lu", "Ll", "Lo", "Nd", "Po", "Sm", "So"], max_codepoint=0x2FFF)
_any = st.characters(min_codepoint=0, max_codepoint=0x2FFF, exclude_categories=("Cs",))
_blank = st.lists(st.sampled_from(["", " ", "\t", "\u200b", "\u00a0", "\u3000", "\ufeff", "\x1b", "\u202e", "\n"]),
                  max_size=4).map("".join)


def _good_text() -> st.SearchStrategy[str]:
    return st.tuples(st.text(_any, max_size=12), _visible, st.text(_any, max_size=12)).map("".join) | \
        st.tuples(_visible, st.integers(2001, 2100)).map(lambda t: t[0] * t[1])


def _good_time() -> st.SearchStrategy[str | int]:
    moment = st.datetimes(min_value=_WINDOW[0], max_value=_WINDOW[1]).map(lambda d: d.replace(microsecond=0))
    return moment.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")) | \
        moment.map(lambda d: int(d.replace(tzinfo=dt.UTC).timestamp()))


_bad_time = st.sampled_from(["", "  ", "yesterday", "NaN", "inf", "-inf", "1e20", "-1e18", "1141207200000",
                             "1900-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "2006-13-45T99:00:00Z", "\u200b"])
_good_kind = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_bad_kind = st.sampled_from(["", "  ", "1abc", "has space", "ünï", "\x1b[31m", "a-b"])  # (case is folded: "Click" is good)


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[dict[str, Any], bool]]:
    """Rows with a ground-truth flag: good when every field was drawn from a good strategy."""
    out: list[tuple[dict[str, Any], bool]] = []
    for n in range(draw(st.integers(1, 25))):
        if out and draw(st.integers(0, 9)) == 0:  # an exact repeat of an earlier row
            out.append(draw(st.sampled_from(out)))
            continue
        faults = draw(st.sets(st.sampled_from(["uid", "time", "q", "event"]), max_size=2)) if draw(
            st.booleans()) else set()
        row = {
            "uid": draw(_blank) if "uid" in faults else draw(st.tuples(_visible, st.text(_any, max_size=6)).map(
                "".join)),
            "time": draw(_bad_time) if "time" in faults else draw(_good_time()),
            "q": draw(_blank) if "q" in faults else draw(_good_text()),
            "event": draw(_bad_kind) if "event" in faults else draw(_good_kind),
            "n": n,  # makes every drawn row distinct: only the repeats above are duplicates
            "extra": draw(st.text(_any, max_size=10)),
        }
        out.append((row, not faults))
    return out


def _write(fmt: str, data: list[tuple[dict[str, Any], bool]], folder: Path) -> Path:
    cols = ["uid", "time", "q", "event", "n", "extra"]
    if fmt == "csv":
        path = folder / "log.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
            w.writerow(cols)
            w.writerows([str(r[c]) for c in cols] for r, _ in data)
    elif fmt == "jsonl":
        path = folder / "log.jsonl"
        path.write_text("\n".join(json.dumps(r) for r, _ in data) + "\n", encoding="utf-8")
    else:
        path = folder / "log.parquet"
        pq.write_table(pa.Table.from_pylist([{c: str(r[c]) for c in cols} for r, _ in data]), path)
    return path


def _check(fmt: str, data: list[tuple[dict[str, Any], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(fmt, data, Path(tmp))
        s = ingest(path, Path(tmp) / "ws", format=fmt, mapping=MAPPING, progress=False,
                   min_ts=_WINDOW[0], max_ts=_WINDOW[1] + dt.timedelta(days=1))
        with Workspace(Path(tmp) / "ws") as ws:
            stored = {(seq & MASK) + (1 if fmt == "jsonl" else 0)
                      for (seq,) in ws.con.execute("SELECT seq FROM actions").fetchall()}
            quarantined = [r[0] for r in ws.con.execute("SELECT row_number FROM quarantine").fetchall()]
    first: dict[str, int] = {}
    good, bad, dups = set(), set(), 0
    for k, (row, ok) in enumerate(data, start=1):
        key = json.dumps(row, sort_keys=True)
        if not ok:
            bad.add(k)
        elif key in first:
            dups += 1
        else:
            first[key] = k
            good.add(k)
    assert s.rows_read == len(data)
    assert s.actions_valid + s.quarantined == len(data)  # every row: an action, a duplicate or quarantined
    assert s.duplicates_in_input == dups
    assert good <= stored, f"good rows lost: {sorted(good - stored)}"
    assert not stored & bad, f"bad rows stored: {sorted(stored & bad)}"
    assert sorted(quarantined) == sorted(bad)


# Derandomized (the same examples every run) and without shrinking (each example is an ingest, so
# shrinking a failure can take minutes): a failure prints the example as drawn.
_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(rows())
def test_fuzz_csv(data: list[tuple[dict[str, Any], bool]]) -> None:
    _check("csv", data)


@_SETTINGS
@given(rows())
def test_fuzz_jsonl(data: list[tuple[dict[str, Any], bool]]) -> None:
    _check("jsonl", data)


@_SETTINGS
@given(rows())
def test_fuzz_parquet(data: list[tuple[dict[str, Any], bool]]) -> None:
    _check("parquet", data)
