"""Run the corruption corpus (tests/hardening/corpus.py) on this checkout and print one row per kind.

    python benchmarks/corruption_corpus.py [--out report.json] [--only SUBSTRING]

Every kind is built at run time from copies of ../shared/datasets (set PERSONAMINER_SHARED_DATASETS
elsewhere) in a temporary folder; nothing is written to the repository. The last line is the count
"N kinds, K correct, T tracebacks, R good rows refused, S bad rows stored".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hardening.corpus import KINDS, Sources, run_all  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the outcomes as JSON")
    ap.add_argument("--only", help="only kinds whose name contains this")
    args = ap.parse_args()
    names = [k for k in KINDS if not args.only or args.only in k]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pm-corpus-") as tmp:
        outcomes = run_all(Sources(), Path(tmp), names)
    width = max(len(o.kind) for o in outcomes)
    for o in outcomes:
        print(f"{o.kind:<{width}}  {o.verdict:<16}  {o.detail}")
    c = Counter(o.verdict for o in outcomes)
    print(f"\n{len(outcomes)} kinds, {c['correct']} correct, {c['traceback']} tracebacks, "
          f"{c['refused'] + c['good lost']} refusing or losing good rows, {c['bad stored']} storing bad rows, "
          f"{c['wrong quarantine'] + c['wrong']} other wrong verdicts ({time.perf_counter() - t0:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1) + "\n")


if __name__ == "__main__":
    main()
