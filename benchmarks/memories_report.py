"""Cost and compression of stored memory sets, per workspace: the table of the memory issue.

Usage::

    .venv/bin/python benchmarks/memories_report.py --workspace aol=W/aol [--workspace movielens=W/ml ...] \
        [--set extractive --set llm --set llm-segment] [--versus llm:llm-segment] [--out report.json]

Reads what ``personaminer memories`` stored (``memory_days``: tokens and status per user-day;
``memories``: action ids and who wrote each summary), so it reports a run built over several
sessions as a whole, not only the last call. For each workspace and memory set: users, user-days,
actions, memories, actions per memory, summaries by the LLM, prompt and completion tokens per user
and per action, repaired and fallback days, and the coverage check
(:func:`personaminer.memories.run.verify_memories`: every action of a processed user-day in
exactly one memory). ``--versus A:B`` adds the same numbers restricted to the user-days both sets
built (a cheaper set B, such as ``llm-segment``, is often run on a subsample of A's days) and the
ratio of completion tokens per action, A over B. No model is loaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from personaminer import Workspace
from personaminer.memories.run import verify_memories


def _days_filter(other: str | None) -> tuple[str, list[str]]:
    if other is None:
        return "", []
    return (" AND EXISTS (SELECT 1 FROM memory_days o WHERE o.memory_set = ? AND o.user_id = d.user_id "
            "AND o.day = d.day)", [other])


def set_stats(ws: Workspace, memory_set: str, *, on_days_of: str | None = None) -> dict[str, Any]:
    """One memory set's totals (over the user-days it shares with ``on_days_of`` when given)."""
    cond, params = _days_filter(on_days_of)
    row = ws.con.execute(
        "SELECT count(DISTINCT user_id), count(*), coalesce(sum(n_actions), 0), coalesce(sum(n_memories), 0), "
        "coalesce(sum(llm_requests), 0), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), "
        "count(*) FILTER (WHERE status = 'repaired'), count(*) FILTER (WHERE status = 'fallback') "
        f"FROM memory_days d WHERE memory_set = ?{cond}", [memory_set, *params]).fetchone()
    assert row is not None
    users, days, actions, memories, requests, prompt, completion, repaired, fallback = (int(x) for x in row)
    by = dict(ws.con.execute(
        "SELECT summary_by, count(*) FROM memories m WHERE memory_set = ? AND EXISTS (SELECT 1 FROM memory_days d "
        f"WHERE d.memory_set = m.memory_set AND d.user_id = m.user_id AND d.day = m.day{cond}) GROUP BY 1",
        [memory_set, *params]).fetchall())
    return {
        "memory_set": memory_set, "users": users, "days": days, "actions": actions, "memories": memories,
        "actions_per_memory": actions / memories if memories else None, "llm_requests": requests,
        "prompt_tokens": prompt, "completion_tokens": completion,
        "prompt_tokens_per_user": prompt / users if users else None,
        "completion_tokens_per_user": completion / users if users else None,
        "prompt_tokens_per_action": prompt / actions if actions else None,
        "completion_tokens_per_action": completion / actions if actions else None,
        "llm_summaries": int(by.get("llm", 0)), "summary_by": {str(k): int(v) for k, v in by.items()},
        "repaired_days": repaired, "fallback_days": fallback,
    }


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


HEADER = ("| dataset | memory set | users | user-days | actions | memories | actions/memory | LLM summaries | "
          "prompt tok/user | completion tok/user | completion tok/action | repaired/fallback days | coverage |")
SEPARATOR = "|" + "---|" * (HEADER.count(" | ") + 1)


def row(dataset: str, s: dict[str, Any], label: str | None = None) -> str:
    cov = s.get("check")
    cov_text = "-" if cov is None else ("ok" if cov["ok"] else "FAILED " + json.dumps(cov))
    return (f"| {dataset} | {label or s['memory_set']} | {s['users']} | {s['days']} | {s['actions']:,} | "
            f"{s['memories']:,} | {_fmt(s['actions_per_memory'])} | {s['llm_summaries']:,} | "
            f"{_fmt(s['prompt_tokens_per_user'], 0)} | {_fmt(s['completion_tokens_per_user'], 0)} | "
            f"{_fmt(s['completion_tokens_per_action'], 3)} | {s['repaired_days']}/{s['fallback_days']} | {cov_text} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", action="append", required=True, help="NAME=PATH (repeatable).")
    ap.add_argument("--set", dest="sets", action="append", help="Memory set (repeatable; default: every set).")
    ap.add_argument("--versus", action="append", default=[], help="A:B, compared on the user-days both built.")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report: dict[str, Any] = {}
    lines = [HEADER, SEPARATOR]
    pairs = []
    for spec in args.workspace:
        name, _, path = spec.partition("=")
        with Workspace(Path(path), read_only=True) as ws:
            present = [r[0] for r in ws.con.execute("SELECT DISTINCT memory_set FROM memory_days ORDER BY 1").fetchall()]
            wanted = [s for s in (args.sets or present) if s in present]
            report[name] = {}
            for s in wanted:
                stats = set_stats(ws, s)
                stats["check"] = verify_memories(ws, s)
                report[name][s] = stats
                lines.append(row(name, stats))
            for v in args.versus:
                a, _, b = v.partition(":")
                if a not in present or b not in present:
                    continue
                sa, sb = set_stats(ws, a, on_days_of=b), set_stats(ws, b, on_days_of=a)
                ratio = (sa["completion_tokens_per_action"] / sb["completion_tokens_per_action"]
                         if sa["completion_tokens_per_action"] is not None and sb["completion_tokens_per_action"]
                         else None)
                report[name][f"{a} vs {b}"] = {"a": sa, "b": sb, "completion_per_action_ratio": ratio}
                pairs.append((name, a, b, sa, sb, ratio))
    print("\n".join(lines))
    if pairs:
        print("\nOn the user-days both sets built:\n")
        print("\n".join([HEADER, SEPARATOR]))
        for name, a, b, sa, sb, _ in pairs:
            print(row(name, sa, f"{a} (days of {b})"))
            print(row(name, sb, f"{b} (days of {a})"))
        print()
        for name, a, b, _, _, ratio in pairs:
            print(f"{name}: completion tokens per action, {a} / {b} = {_fmt(ratio, 3)}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
