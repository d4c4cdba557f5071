"""Development data for the hybrid memory mode's boundary decision, and the fit of its weights.

Usage::

    .venv/bin/python benchmarks/boundary_dev.py ask rows.json aol=W1 merrec=W2 [...]   # LLM, resumable via the cache
    .venv/bin/python benchmarks/boundary_dev.py fit rows.json

``ask``: on the *development* spliced days (seed 0; the segmentation benchmark reports seed 1), every
within-session boundary is asked with the shipped question (no band), and each row records the
dataset, kind, whether it is the splice, the embedding similarity and P(yes). ``fit``: ROC AUC of the
similarity and of the answer per dataset, the extractive rule's F1, and a logistic fit of the
boundary's log-odds on (similarity, logit P(yes)) with the F1-best threshold, checked held out by
dataset. The weights it prints (threshold folded into the intercept) are
``MemoryConfig.boundary_weights`` (docs/memories.md, "Choosing the question").
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np


def ask(out: str, specs: list[str]) -> None:
    from personaminer import Workspace
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import LLMConfig, make_llm
    from personaminer.memories import MemoryConfig, hybrid
    from personaminer.memories.splicebench import KINDS, make_days
    from personaminer.memories.steps import make_steps

    emb, llm = MiniLMEmbedder(), make_llm(LLMConfig())
    cfg = MemoryConfig(split_below=0.0, same_above=1.01)
    rows = []
    try:
        for spec in specs:
            name, path = spec.split("=", 1)
            with Workspace(path, read_only=True) as ws:
                sets = {k: make_days(ws, n_days=10, kind=k, seed=0, max_users=200, min_days_apart=14) for k in KINDS}
            for kind, days in sets.items():
                for d in days:
                    steps = make_steps(d.actions)
                    pos, truth = 0, None
                    for i, st in enumerate(steps):
                        if pos == d.truth[0]:
                            truth = i
                        pos += len(st.actions)
                    vec = emb.encode([s.text for s in steps])
                    prop = hybrid.propose(steps, vec, gap_minutes=30, split_below=0.0, same_above=1.01)
                    plan = hybrid.DayPlan(d.actions[0].ts.date(), steps, vec, prop)
                    hybrid.plan_questions(plan, cfg, False)
                    ps = llm.p_yes([q.request for q in plan.questions])
                    rows += [{"dataset": name, "kind": kind, "day": d.user_id, "splice": q.boundary == truth,
                              "sim": prop.sims[q.boundary], "p": p} for q, p in zip(plan.questions, ps, strict=True)]
                print(name, kind, len(rows), flush=True)
                with open(out, "w") as fh:
                    json.dump(rows, fh)
    finally:
        llm.close()


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit(path: str) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    with open(path) as fh:
        rows = [r for r in json.load(fh) if r["p"] is not None and not math.isnan(r["p"])]
    y = np.array([r["splice"] for r in rows], int)
    sim = np.array([r["sim"] for r in rows])
    p = np.clip(np.array([r["p"] for r in rows]), 1e-4, 1 - 1e-4)
    lp = np.log(p / (1 - p))
    x = np.c_[sim, lp]
    names = sorted({r["dataset"] for r in rows})
    print(f"{len(rows)} questions, {y.sum()} splices")
    for name in names:
        m = np.array([r["dataset"] == name for r in rows])
        if y[m].sum() and (1 - y[m]).sum():
            print(f"  {name}: {m.sum()} questions, {y[m].sum()} splices; AUC similarity "
                  f"{roc_auc_score(y[m], -sim[m]):.3f}, answer {roc_auc_score(y[m], -lp[m]):.3f}")
    print(f"pooled AUC: similarity {roc_auc_score(y, -sim):.3f}, answer {roc_auc_score(y, -lp):.3f}; "
          f"extractive rule (s < 0.25) F1 {_f1(sim < 0.25, y):.3f}")
    lr = LogisticRegression(C=1.0).fit(x, y)
    z = lr.decision_function(x)
    f1, t = max((_f1(z > t, y), t) for t in np.arange(-6, 3, 0.05))
    b0, (b1, b2) = float(lr.intercept_[0]) - t, lr.coef_[0]
    print(f"blend AUC {roc_auc_score(y, z):.3f}, F1 {f1:.3f}; boundary_weights = ({b0:.3f}, {b1:.3f}, {b2:.3f})")
    print(f"band where the answer (P(yes) from {np.quantile(p, 0.05):.2f} to {np.quantile(p, 0.95):.2f}) can flip it: "
          f"similarity {(b0 + b2 * math.log(np.quantile(p, .95) / (1 - np.quantile(p, .95)))) / -b1:.3f} to "
          f"{(b0 + b2 * math.log(np.quantile(p, .05) / (1 - np.quantile(p, .05)))) / -b1:.3f}")
    for name in names:
        m = np.array([r["dataset"] == name for r in rows])
        if not y[m].sum() or len(set(y[~m])) < 2:
            continue
        held = LogisticRegression(C=1.0).fit(x[~m], y[~m])
        zz = held.decision_function(x)
        tt = max((_f1((zz > t)[~m], y[~m]), t) for t in np.arange(-6, 3, 0.05))[1]
        print(f"  held out {name}: blend F1 {_f1(zz[m] > tt, y[m]):.3f}, extractive rule F1 {_f1(sim[m] < 0.25, y[m]):.3f}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("ask", "fit"):
        sys.exit(__doc__)
    ask(sys.argv[2], sys.argv[3:]) if sys.argv[1] == "ask" else fit(sys.argv[2])
