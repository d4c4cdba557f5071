"""Both embedded llama.cpp engines side by side on this machine, one table.

Engines: ``server`` (llama.cpp's C++ server in-process via xllamacpp, reached over loopback
HTTP by the OpenAI-compatible client: the default) and ``python`` (llama-cpp-python, when
installed). Each (engine, model) runs in its own subprocess, one after another, so its peak
memory is its own and no two LLMs share the CPU. Per pair:

* **first call s**: constructing the backend and answering a 1-token request (model load);
* **prompt tok/s**: a ~600-token prompt of real AOL queries, 1 output token, no reusable prefix
  (every prompt starts with a fresh nonce);
* **decode tok/s**: 128 greedy tokens after a short prompt, the prompt's own time subtracted;
* **judge s/call, shared prefix**: 6 yes/no claims over one ~700-token evidence block, asked one
  after another (the engine may reuse the evidence's KV cache); **no prefix**: the same 6
  questions, each made unique at its start so nothing can be reused;
* **G=4 sequential / parallel**: one request for 4 samples (temperature 0.8, 96 tokens): with
  one slot, and (server only) with 4 slots decoded together; seconds for the group, and whether
  the 4 slots gave the same 4 samples as one slot did;
* **peak RSS MB**: the subprocess's maximum resident memory.

Usage: ``.venv/bin/python benchmarks/bench_llm.py [--models NAME ...] [--engines server python]
[--threads 2] [--repeats 2] [--json OUT] [--embedder]``. Real AOL data is read from the shared
dataset folder at run time; no query is printed or stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from personaminer.llm import ChatRequest, ModelNotAvailable
from personaminer.llm.catalog import CATALOG, resolve

AOL_TAR = Path(os.environ.get("PERSONAMINER_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "aol_top1000_users" / "user_search_logs.tar.gz"
console = Console(width=220)
SYS = "You are a careful assistant."


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


def make(engine: str, model: str, threads: int, n_parallel: int = 1) -> Any:
    if engine == "server":
        from personaminer.llm.server import LlamaServerLLM

        return LlamaServerLLM(model, n_ctx=4096, n_threads=threads, n_parallel=n_parallel)
    from personaminer.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(model, n_ctx=4096, n_threads=threads)


def worker(engine: str, model: str, threads: int, repeats: int) -> dict[str, float]:
    """All measures of one (engine, model); runs in its own process."""
    queries = aol_queries(400)
    nonce = iter(range(10**9))

    def fresh(text: str) -> list[dict[str, str]]:  # a unique first token: no prefix to reuse
        return [{"role": "system", "content": f"[{next(nonce)}] {SYS}"}, {"role": "user", "content": text}]

    def one(llm: Any, req: ChatRequest) -> Any:
        [res] = llm.generate([req])
        if res.error:
            raise RuntimeError(res.error)
        return res

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    llm = make(engine, model, threads)
    one(llm, ChatRequest(messages=fresh("hi"), max_tokens=1))
    out["first_call_s"] = time.perf_counter() - t0
    try:
        long_text = "Search queries:\n" + "\n".join(queries[:110])
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = one(llm, ChatRequest(messages=fresh(long_text), max_tokens=1))
            best = max(best, res.prompt_tokens / (time.perf_counter() - t0))
            out["prompt_tokens"] = res.prompt_tokens
        out["prompt_tps"] = best

        story = "Write a long story about a lighthouse keeper."
        best = 0.0
        for _ in range(repeats):
            msgs = fresh(story)
            t0 = time.perf_counter()
            one(llm, ChatRequest(messages=msgs, max_tokens=1))
            prompt_s = time.perf_counter() - t0
            msgs = fresh(story)
            t0 = time.perf_counter()
            res = one(llm, ChatRequest(messages=msgs, max_tokens=128))
            best = max(best, (res.completion_tokens - 1) / (time.perf_counter() - t0 - prompt_s))
        out["decode_tps"] = best

        evidence = "\n".join(f"- {q}" for q in queries[200:290])
        claims = [f"the user is interested in topic number {i}." for i in range(6)]

        def judge(shared: bool) -> float:
            lead = f"run {next(nonce)}"  # a new evidence block each round, so no round reuses another's
            reqs = []
            for c in claims:
                sys_msg = "You check whether claims are supported by evidence." if shared else \
                    f"[{next(nonce)}] You check whether claims are supported by evidence."
                reqs.append(ChatRequest(messages=[
                    {"role": "system", "content": sys_msg},
                    {"role": "user", "content": f"Evidence ({lead}, search queries):\n{evidence}\n\nClaim: {c}\n"
                     "Is the claim supported by the evidence? Answer Yes or No."}]))
            t0 = time.perf_counter()
            for r in reqs:
                llm.p_yes([r])
            return (time.perf_counter() - t0) / len(reqs)

        out["judge_shared_s"] = min(judge(True) for _ in range(max(1, repeats - 1)))
        out["judge_fresh_s"] = min(judge(False) for _ in range(max(1, repeats - 1)))
        out["judge_tokens"] = one(llm, ChatRequest(messages=fresh(f"Evidence:\n{evidence}\n\nClaim: x"), max_tokens=1)).prompt_tokens

        group = "Describe this user in two sentences. Queries:\n" + "\n".join(queries[300:340])
        group_msgs = fresh(group)
        t0 = time.perf_counter()
        res = one(llm, ChatRequest(messages=group_msgs, max_tokens=96, temperature=0.8, n=4, seed=1))
        seq_texts = res.texts
        out["group_seq_s"] = time.perf_counter() - t0
        out["group_tokens"] = res.completion_tokens
    finally:
        llm.close()
    if engine == "server":
        llm = make(engine, model, threads, n_parallel=4)
        try:
            one(llm, ChatRequest(messages=fresh("hi"), max_tokens=1))
            t0 = time.perf_counter()
            res = one(llm, ChatRequest(messages=group_msgs, max_tokens=96, temperature=0.8, n=4, seed=1))
            out["group_par_s"] = time.perf_counter() - t0
            out["group_par_same"] = float(res.texts == seq_texts)  # 1: slots do not change the samples
        finally:
            llm.close()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


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


def engine_available(engine: str) -> str | None:
    try:
        if engine == "server":
            from personaminer.llm.server import import_xllamacpp

            import_xllamacpp()
        else:
            from personaminer.llm.llamacpp import import_llama_cpp

            import_llama_cpp()
    except ModelNotAvailable as err:
        return str(err)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(CATALOG))
    ap.add_argument("--engines", nargs="*", default=["server", "python"], choices=["server", "python"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="best of N per measure")
    ap.add_argument("--json", type=Path, help="also write the measures here")
    ap.add_argument("--embedder", action="store_true", help="also measure the MiniLM embedder")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.threads, args.repeats)))
        return

    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for name in args.models:
        try:
            resolve(name)
        except ModelNotAvailable as err:
            console.print(f"[yellow]skip[/] {name}: {err}")
            continue
        for engine in args.engines:
            if problem := engine_available(engine):
                console.print(f"[yellow]skip[/] {engine}: {problem}")
                continue
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--worker", engine, name, "--threads", str(args.threads),
                                   "--repeats", str(args.repeats)], capture_output=True, text=True)
            if proc.returncode != 0:
                console.print(f"[red]{engine} {name} failed[/]:\n{proc.stderr[-2000:]}", markup=False)
                continue
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            console.print(f"{engine} {name} ({time.perf_counter() - t0:.0f} s): "
                          + ", ".join(f"{k}={v:.3g}" for k, v in m.items()), markup=False)
            rows.append({"engine": engine, "model": name, **m})

    table = Table(title=f"embedded llama.cpp engines, CPU, {args.threads} threads (load avg at start {load:.1f}; "
                  f"best of {args.repeats})")
    cols = ("model", "engine", "first call s", "prompt tok/s", "decode tok/s", "judge s/call shared prefix",
            "judge s/call no prefix", "G=4 seq s", "G=4 4 slots s (same samples?)", "peak RSS MB")
    for col in cols:
        table.add_column(col, justify="left" if col in ("model", "engine") else "right")
    for r in rows:
        table.add_row(r["model"], r["engine"], f"{r['first_call_s']:.2f}",
                      f"{r['prompt_tps']:.0f} ({r['prompt_tokens']:.0f} tok)", f"{r['decode_tps']:.1f}",
                      f"{r['judge_shared_s']:.3f}", f"{r['judge_fresh_s']:.3f} ({r['judge_tokens']:.0f} tok)",
                      f"{r['group_seq_s']:.1f}", (f"{r['group_par_s']:.1f} ({'yes' if r['group_par_same'] else 'no'})" if "group_par_s" in r else "-"),
                      f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"load_avg_start": load, "threads": args.threads, "rows": rows}, indent=1))

    if args.embedder:
        queries = aol_queries(2000)
        e = bench_embedder(queries)
        et = Table(title=f"MiniLM int8 ONNX embedder, {e['n']:.0f} real AOL queries")
        for col in ("batch 64 sent/s", "batch 1 sent/s", "cache hits sent/s"):
            et.add_column(col, justify="right")
        et.add_row(f"{e['batch64']:.0f}", f"{e['batch1']:.0f}", f"{e['cache_hits']:.0f}")
        console.print(et)


if __name__ == "__main__":
    main()
