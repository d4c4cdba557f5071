"""Quality sanity check with the real LLM judge: per-term means, original vs each degradation.

Usage::

    .venv/bin/python benchmarks/quality_sanity.py --workspace W [--workspace W2 ...] \
        [--builder cluster] [--users 20] [--judge llm]

Reads real persona sets (sample 0, at least two personas) from one or more workspaces built
by ``personaminer memories`` + ``personaminer personas`` (``--users`` is the total, taken in
the order the workspaces are given), degrades each (see ``personaminer.quality.sanity``;
"another user's text" comes from a user of the same workspace) and prints, for every term,
the mean over users of the original and of each degradation, and for how many users the
term dropped.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.quality import QualityConfig, WorkspaceData, score_set
from personaminer.quality.sanity import DEGRADATIONS, degrade

TERMS = ("final", "cohesion", "alignment", "truthfulness", "mean_p_yes")
# The terms each degradation must lower (the same rule as tests/quality/test_sanity.py).
EXPECTED = {"shuffle": ("alignment", "truthfulness"), "other_user": ("alignment", "truthfulness"),
            "invented_fact": ("truthfulness",), "merged": ("cohesion",)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, action="append", required=True,
                    help="Workspace folder (repeatable).")
    ap.add_argument("--builder", default="cluster")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--judge", default="llm", choices=["llm", "embedding"])
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    llm = None
    if args.judge == "llm":
        from personaminer.llm import make_llm

        llm = make_llm()
    config = QualityConfig(judge=args.judge)
    t0 = time.perf_counter()
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in ("original", *DEGRADATIONS)}
    used: list[str] = []
    for path in args.workspace:
        remaining = args.users - len(rows["original"])
        if remaining <= 0:
            break
        with Workspace(path, read_only=True) as ws:
            sets = [r[0] for r in ws.con.execute(
                "SELECT set_id FROM persona_sets WHERE builder = ? AND sample_index = 0 "
                "AND n_personas >= 2 ORDER BY user_id", [args.builder]).fetchall()][:remaining]
            if len(sets) < 2:
                print(f"{path}: {len(sets)} qualifying set(s), need 2 (another user's text); skipped")
                continue
            data = WorkspaceData(ws, embedder, config)
            contexts = {s: data.context(s) for s in sets}
            for s in sets:
                ctx, text, _ = contexts[s]
                other = next(c[0].personas[0] for c in contexts.values() if c[0].user_id != ctx.user_id)
                rows["original"].append(score_set(ctx, config, embedder=embedder, llm=llm, memory_text=text)[0])
                for kind in DEGRADATIONS:
                    bad = degrade(ctx, kind, (other.label, other.description), embedder)
                    rows[kind].append(score_set(bad, config, embedder=embedder, llm=llm, memory_text=text)[0])
            used.append(f"{path} ({len(sets)})")
    n_users = len(rows["original"])
    print(f"{n_users} real persona sets (builder {args.builder}, >= 2 personas) from {', '.join(used)}; "
          f"{args.judge} judge; {time.perf_counter() - t0:.0f} s\n")
    print("| variant | " + " | ".join(TERMS) + " |")
    print("|---|" + "---|" * len(TERMS))
    for kind, vals in rows.items():
        cells = []
        for t in TERMS:
            xs = [v[t] for v in vals if not math.isnan(v[t])]
            mean = f"{np.mean(xs):.3f}" if xs else "-"
            if kind != "original":
                drops = sum(b[t] < o[t] for o, b in zip(rows["original"], vals, strict=True)
                            if not (math.isnan(o[t]) or math.isnan(b[t])))
                mean += f" ({drops}/{len(vals)} lower)"
            cells.append(mean)
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print()
    failures = 0
    for kind, terms in EXPECTED.items():
        ok = sum(all(b[t] < o[t] or (t == "truthfulness" and o[t] == b[t] == 0) for t in terms)
                 for o, b in zip(rows["original"], rows[kind], strict=True))
        failures += n_users - ok
        print(f"{kind}: {', '.join(terms)} lower for {ok}/{n_users} users")
    if llm is not None:
        llm.close()
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
