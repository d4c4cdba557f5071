"""Spot-check persona routing: for N seeded hits of a ``routed`` system (targets it ranks in its top
10 under ``full``), print the target, the persona that routed it and that persona's evidence texts
closest to the target, for a person to judge whether the routing persona is the right one.

Reads the fitted weights from the workspace's last ``reports/evaluate.json`` (run
``benchmarks/routed_table.sh`` first). Output stays in the terminal / ``--out`` (the logs are
research data: never commit it).

    python benchmarks/routing_spotcheck.py -w runs/routed/aol --system routed_cluster --hits 20
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.evaluate.data import load_data
from personaminer.evaluate.systems import EvalContext, Routed, parse_specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-w", "--workspace", type=Path, required=True)
    ap.add_argument("--system", default="routed_cluster", help="name of the routed row in reports/evaluate.json")
    ap.add_argument("--hits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the hits as JSON here")
    args = ap.parse_args()
    report = json.loads((args.workspace / "reports" / "evaluate.json").read_text())
    info = report["systems"][args.system]
    embedder = MiniLMEmbedder()
    with Workspace(args.workspace) as ws:
        cfg = report["config"]
        data = load_data(ws, max_targets=cfg["max_targets"], seed=cfg["seed"], kinds=cfg.get("kinds"))
        pool_vectors = embedder.encode([data.texts[int(t)] for t in data.pool])
        ctx = EvalContext(ws=ws, data=data, embedder=embedder, pool_vectors=pool_vectors)
        system = parse_specs(f"routed:{args.system}={info['spec'].split('=', 1)[1]}")[0]
        assert isinstance(system, Routed)
        users = [u for u in report["common_users"] if u in data.users]
        system.prepare(ctx, users)
        system.set_params({k: v for k, v in info["params"].items()})
        pos = data.pool_position()
        hits = []
        for u in users:
            if not system.covers(u) or u in system.chance_users:
                continue
            scores = system.score(u)
            own = {pos[i] for i in data.users[u].history if i in pos} | {pos[i] for i in data.users[u].future}
            allowed = np.ones(len(scores), bool)
            allowed[list(own)] = False
            for t in data.users[u].targets:
                p = pos[t]
                rank = 1 + int((scores[allowed] > scores[p]).sum())
                if rank <= 10:
                    hits.append((u, p, rank))
        rng = random.Random(args.seed)
        chosen = sorted(rng.sample(hits, min(args.hits, len(hits))))
        print(f"{len(hits)} hits in the top 10 under full over {len(users)} users; {len(chosen)} shown (seed {args.seed}); "
              f"weights {info['params']}")
        rows = []
        for u, p, rank in chosen:
            r = system.routes[system.set_ids[u]][int(system.route(u)[p])]
            target = data.texts[int(data.pool[p])]
            near = []
            if r.actions:
                v = embedder.encode(r.actions) @ pool_vectors[p]
                near = [r.actions[i] for i in np.argsort(-v)[:3]]
            rows.append({"user": u, "rank": rank, "target": target, "persona": r.label, "description": r.description,
                         "closest_evidence": near})
            print(f"\n[{u}] rank {rank}: {target!r}\n  via {r.label!r}: {r.description[:160]!r}\n  closest evidence: "
                  + "; ".join(repr(x) for x in near))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
