"""Persona sets scored per minute, with the LLM judge and with the embedding judge.

Usage::

    .venv/bin/python benchmarks/bench_quality.py --workspace W [--builder cluster] [--sets 10] \
        [--engines server python]

Scores the first N stored sets of a builder in a temporary copy of the workspace, LLM cache off:
once with the embedding judge, and once with the LLM judge (the default model) per embedded
llama.cpp engine (``server``: llama.cpp's server in-process, the default; ``python``:
llama-cpp-python, when installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--builder", default="cluster")
    ap.add_argument("--sets", type=int, default=10)
    ap.add_argument("--engines", nargs="*", default=["server"], choices=["server", "python"])
    args = ap.parse_args()
    os.environ["PERSONAMINER_NO_CACHE"] = "1"
    from personaminer import Workspace
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import LLMConfig, make_llm
    from personaminer.quality import QualityConfig, run_scores

    embedder = MiniLMEmbedder()
    print("| judge | engine | sets | claims | seconds | sets/minute | claims/second |\n|---|---|---|---|---|---|---|")
    for judge, engine in [("embedding", "-")] + [("llm", e) for e in args.engines]:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(args.workspace, Path(tmp) / "ws")
            with Workspace(Path(tmp) / "ws") as ws:
                keep = [r[0] for r in ws.con.execute(
                    "SELECT set_id FROM persona_sets WHERE builder = ? AND status <> 'failed' ORDER BY set_id LIMIT ?",
                    [args.builder, args.sets]).fetchall()]
                ws.con.execute("DELETE FROM persona_sets WHERE NOT list_contains(?, set_id)", [keep])
                for table in ("set_scores", "persona_scores", "claim_verdicts"):  # score from scratch
                    if ws.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                      [table]).fetchall()[0][0]:
                        ws.con.execute(f"DELETE FROM {table}")
                cfg = LLMConfig()
                if engine != "-":
                    cfg.llamacpp.engine = engine  # type: ignore[assignment]
                llm = make_llm(cfg) if judge == "llm" else None
                t0 = time.perf_counter()
                run_scores(ws, QualityConfig(judge=judge), embedder=embedder, llm=llm, progress=False)
                dt = time.perf_counter() - t0
                claims = ws.con.execute("SELECT count(*) FROM claim_verdicts").fetchall()[0][0]
                if llm is not None:
                    llm.close()
            print(f"| {judge} | {engine} | {len(keep)} | {claims} | {dt:.1f} | {len(keep) / dt * 60:.1f} | {claims / dt:.2f} |")


if __name__ == "__main__":
    main()
