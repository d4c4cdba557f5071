"""Measure the model runtime on this machine and print a table.

For each installed catalog model (llama.cpp, CPU, ``--threads``):
  * prompt processing tokens/s (a ~500-token prompt, fresh KV cache, 1 output token);
  * decode tokens/s (128 greedy tokens after a short prompt, prompt time subtracted);
  * prompt-prefix reuse: 8 yes/no prompts sharing a long evidence prefix with different
    claims, run consecutively on one instance (llama.cpp reuses the shared prefix's KV
    cache) vs with the cache reset before each call.
And the MiniLM embedder's sentences/s on real AOL queries (batch 64 vs batch 1, and
cache hits).

Usage: PYTHONPATH=src python benchmarks/bench_llm.py [--models NAME ...] [--threads 2]
Real AOL data is read from the shared dataset folder at run time; no query is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from personaminer.llm import ChatRequest, ModelNotAvailable
from personaminer.llm.catalog import CATALOG, resolve

AOL_TAR = Path(os.environ.get("PERSONAMINER_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "aol_top1000_users" / "user_search_logs.tar.gz"
console = Console()


def aol_queries(limit: int, per_user: int = 40) -> list[str]:
    """Distinct real queries, ``per_user`` from each user in archive order, up to ``limit``."""
    out: list[str] = []
    seen: set[str] = set()
    with tarfile.open(AOL_TAR, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            taken = 0
            for record in f.read().decode("utf-8", errors="replace").split("\n\n"):
                q = record.strip().split("\n")[0].split("\t")[0].strip()
                if q and q not in seen:
                    seen.add(q)
                    out.append(q)
                    taken += 1
                if taken >= per_user:
                    break
            if len(out) >= limit:
                return out[:limit]
    return out


def bench_model(name: str, threads: int, queries: list[str], repeats: int = 3) -> dict[str, float]:
    """Best of ``repeats`` runs per measure (the machine may be shared)."""
    from personaminer.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(name, n_ctx=4096, n_threads=threads)
    raw = llm._instance(logprobs=False)  # the benchmark needs to reset the KV cache by hand
    sys_msg = {"role": "system", "content": "You are a careful assistant."}
    try:
        t0 = time.perf_counter()
        llm.generate([ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=1)])  # warm-up/load
        load_s = time.perf_counter() - t0

        long_prompt = "Search queries:\n" + "\n".join(queries[:120])
        long_req = ChatRequest(messages=[sys_msg, {"role": "user", "content": long_prompt}], max_tokens=1)

        def timed_prompt() -> tuple[float, int]:
            raw.reset()
            t0 = time.perf_counter()
            [r] = llm.generate([long_req])
            return time.perf_counter() - t0, r.prompt_tokens

        prompt_s, prompt_tokens = min(timed_prompt() for _ in range(repeats))
        prompt_tps = prompt_tokens / prompt_s

        short = [sys_msg, {"role": "user", "content": "Write a long story about a lighthouse keeper."}]

        def timed_decode() -> float:
            raw.reset()
            t0 = time.perf_counter()
            llm.generate([ChatRequest(messages=short, max_tokens=1)])
            short_prompt_s = time.perf_counter() - t0
            raw.reset()
            t0 = time.perf_counter()
            [d] = llm.generate([ChatRequest(messages=short, max_tokens=128)])
            return (d.completion_tokens - 1) / (time.perf_counter() - t0 - short_prompt_s)

        decode_tps = max(timed_decode() for _ in range(repeats))

        evidence = "\n".join(f"- {q}" for q in queries[200:260])
        claims = [f"Claim {i}: the user is interested in topic number {i}." for i in range(6)]
        reqs = [
            ChatRequest(
                messages=[
                    {"role": "system", "content": "You check whether claims are supported by evidence."},
                    {"role": "user", "content": f"Evidence (search queries):\n{evidence}\n\n{c}\nAnswer Yes or No."},
                ],
                max_tokens=1,
            )
            for c in claims
        ]

        def timed_batch(fresh: bool) -> float:
            raw.reset()
            t0 = time.perf_counter()
            for req in reqs:
                if fresh:
                    raw.reset()
                llm.generate([req])
            return (time.perf_counter() - t0) / len(reqs)

        fresh_s = min(timed_batch(True) for _ in range(max(1, repeats - 1)))
        reuse_s = min(timed_batch(False) for _ in range(max(1, repeats - 1)))
        prefix_tokens = llm.generate([reqs[0]])[0].prompt_tokens
        return {
            "load_s": load_s,
            "prompt_tokens": prompt_tokens,
            "prompt_tps": prompt_tps,
            "decode_tps": decode_tps,
            "prefix_tokens": prefix_tokens,
            "fresh_s_per_call": fresh_s,
            "reuse_s_per_call": reuse_s,
        }
    finally:
        llm.close()


def bench_embedder(queries: list[str]) -> dict[str, float]:
    from personaminer.embed import MiniLMEmbedder

    emb = MiniLMEmbedder(cache_path=None)
    emb.encode(queries[:64])  # warm-up
    batched = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        emb.encode(queries)
        batched = max(batched, len(queries) / (time.perf_counter() - t0))
    one = MiniLMEmbedder(cache_path=None, batch_size=1)
    sample = queries[:300]
    t0 = time.perf_counter()
    one.encode(sample)
    single = len(sample) / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        cached = MiniLMEmbedder(cache_path=Path(d) / "e.sqlite")
        cached.encode(queries)
        t0 = time.perf_counter()
        cached.encode(queries)
        hits = len(queries) / (time.perf_counter() - t0)
        cached.close()
    return {"n": len(queries), "batch64": batched, "batch1": single, "cache_hits": hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(CATALOG))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embed-n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2, help="best of N per measure")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    queries = aol_queries(max(args.embed_n, 400))

    load = os.getloadavg()[0]
    table = Table(title=f"llama.cpp, CPU, {args.threads} threads (load avg at start {load:.1f}; best of {args.repeats})")
    for col in ("model", "load s", "prompt tok/s", "decode tok/s", "prefix-reuse call s", "fresh call s", "speed-up"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for name in args.models:
        try:
            resolve(name)
        except ModelNotAvailable as err:
            console.print(f"[yellow]skip[/] {name}: {err}")
            continue
        m = bench_model(name, args.threads, queries, args.repeats)
        console.print(f"{name}: " + ", ".join(f"{k}={v:.3g}" for k, v in m.items()))
        table.add_row(
            name,
            f"{m['load_s']:.2f}",
            f"{m['prompt_tps']:.0f} ({m['prompt_tokens']:.0f} tok)",
            f"{m['decode_tps']:.1f}",
            f"{m['reuse_s_per_call']:.3f}",
            f"{m['fresh_s_per_call']:.3f} ({m['prefix_tokens']:.0f} tok)",
            f"{m['fresh_s_per_call'] / m['reuse_s_per_call']:.1f}x",
        )
    console.print(table)

    console.print(f"load avg after LLMs {os.getloadavg()[0]:.1f}")
    e = bench_embedder(queries[: args.embed_n])
    et = Table(title=f"MiniLM int8 ONNX embedder, {e['n']:.0f} real AOL queries")
    for col in ("batch 64 sent/s", "batch 1 sent/s", "cache hits sent/s"):
        et.add_column(col, justify="right")
    et.add_row(f"{e['batch64']:.0f}", f"{e['batch1']:.0f}", f"{e['cache_hits']:.0f}")
    console.print(et)


if __name__ == "__main__":
    main()
