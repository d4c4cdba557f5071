"""The evaluation report as Markdown (``reports/evaluate.md``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _paired_cell(t: dict[str, Any] | None, *, with_n: bool = False) -> str:
    """One paired test as "diff [ci low, ci high], p=..." ("-" when it could not be computed)."""
    if not t or t["diff"] is None or t["p_wilcoxon"] is None:
        return "-"
    return (f"{_fmt(t['diff'])} [{_fmt(t['ci'][0])}, {_fmt(t['ci'][1])}], p={t['p_wilcoxon']:.2g}"
            + (f", n={t['n']}" if with_n else ""))


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def to_markdown(r: dict[str, Any], *, chart: str | None = None) -> str:
    """The report as Markdown tables (metrics in percent; CI = bootstrap 95% over users); ``chart``:
    the file name of its HR@10 chart, shown under the header."""
    c = r["config"]
    lines = [f"# Future interaction prediction: {r['workspace']}", "",
             f"Split: {json.dumps(r['split']['rules'])}. Interaction kinds: {', '.join(r['interaction_kinds'])}. "
             f"Users: {r['users']['evaluated']} evaluated, **{r['users']['common']} common to every system** "
             f"(skipped: {r['users']['skipped_reasons'] or 'none'}). Targets on common users: "
             f"{r['targets']['targets']} ({r['targets']['repeats']} repeats, {r['targets']['novel']} novel), at most "
             f"{c['max_targets']} per user, seed {c['seed']}. Future pool: {r['pool']['distinct_future_texts']} distinct "
             f"texts. Bootstrap: {c['bootstrap']} resamples over users. Embedder: {r['embed_model']}. "
             f"A failed persona set counts as {'chance (the system ranks every candidate alike for that user)' if c.get('failed_sets') == 'chance' else 'missing (the user leaves the main tables)'}."
             + (f" **Control: targets shuffled across users** ({r['targets']['shuffled_shared_dropped']} targets that "
                "the scored user also has in their own history or future left out)." if c["shuffle_targets"] else ""),
             ""]
    if chart:
        lines += [f"![HR@10 per system and protocol, with bootstrap 95% intervals]({chart})", ""]
    if r["missing_systems"]:
        lines += ["Missing systems (not in the table): " + "; ".join(f"`{k}`: {v}" for k, v in
                                                                      r["missing_systems"].items()), ""]
    base = r["baseline"]
    for p, groups in r["results"].items():
        ps = r["protocols"][p]
        cand = ps["candidates_per_target"]
        lines += [f"## Protocol `{p}`", "",
                  f"Candidates per target: mean {cand['mean']}, min {cand['min']}, max {cand['max']}"
                  + (f"; near-duplicates (cosine >= {ps['near_duplicate_cosine']}) dropped: "
                     f"{ps['near_duplicates_dropped']}" if p == "hard" else "") + ".", ""]
        head = ("| system | users | HR@1 | HR@5 | HR@10 [95% CI] | NDCG@10 | MRR | "
                + (f"ΔHR@10 vs {base} [95% CI], p |" if base else "") + " repr. tokens/user | LLM tokens/user |")
        lines += ["### all targets", "", head, "|" + "---|" * (head.count("|") - 1)]
        for name, row in groups["all"].items():
            sysinfo = r["systems"][name]
            hr = row["hit@10"]
            cells = [name, str(row["users"]), _fmt(row["hit@1"]["mean"]), _fmt(row["hit@5"]["mean"]),
                     f"{_fmt(hr['mean'])} [{_fmt(hr['ci95'][0])}, {_fmt(hr['ci95'][1])}]",
                     _fmt(row["ndcg@10"]["mean"]), _fmt(row["mrr"]["mean"])]
            if base:
                pr = r["paired"][p]["all"].get(name, {}).get("hit@10")
                cells.append("baseline" if name == base else _paired_cell(pr))
            cells += [_num(sysinfo["representation_tokens_per_user"]), _num(sysinfo["llm_tokens_per_user"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for g in ("repeats", "novel"):
            lines += [f"### {g}", "", "| system | users | HR@10 [95% CI] | NDCG@10 | MRR |", "|---|---|---|---|---|"]
            for name, row in groups[g].items():
                hr = row["hit@10"]
                lines.append(f"| {name} | {row['users']} | {_fmt(hr['mean'])} [{_fmt(hr['ci95'][0])}, "
                             f"{_fmt(hr['ci95'][1])}] | {_fmt(row['ndcg@10']['mean'])} | {_fmt(row['mrr']['mean'])} |")
            lines.append("")
    lines += ["## Systems", "", "| system | spec | model | covered users | not covered | repr. tokens/user | "
              "LLM tokens/user | build s/user | score s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in r["systems"].items():
        model = s.get("model_name") or (s.get("model") or "")[:12] or "-"
        if s.get("model") and "+lora:" in s["model"]:
            model += f" + LoRA {Path(str((s.get('config') or {}).get('adapter') or '')).parent.name or 'adapter'}"
        nc = ", ".join([f"{k}: {v}" for k, v in (s["not_covered"] or {}).items()]
                       + ([f"failed sets at chance: {s['failed_sets_at_chance']}"] if s.get("failed_sets_at_chance") else []))
        lines.append(f"| {name} | `{s['spec']}` | {model} | {s['covered_users']} | {nc or '-'} | "
                     f"{_num(s['representation_tokens_per_user'])} | {_num(s['llm_tokens_per_user'])} | "
                     f"{s['build_seconds_per_user'] if s['build_seconds_per_user'] is not None else '-'} | "
                     f"{s['score_seconds']} |")
    fitted = [(n, s) for n, s in r["systems"].items() if "params" in s]
    if fitted:
        lines += ["", "## Fitted parameters", "",
                  "| system | fitted on | grid points | validation score (first point → best) | parameters |",
                  "|---|---|---|---|---|"]
        for name, s in fitted:
            f = s.get("fit") or {}
            on = (f"{f['users']} `{f['role']}` users, {f['protocol']} {f['metric']}" if f.get("fitted")
                  else f"**not fitted** ({f.get('reason', '')}): defaults")
            score = f"{_fmt(f['first_point'])} → {_fmt(f['best'])}" if f.get("fitted") else "-"
            params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["params"].items())
            lines.append(f"| {name} | {on} | {f.get('grid_points', '-')} | {score} | {params} |")
    if r.get("comparisons") or r.get("comparisons_missing"):
        lines += ["", "## Paired comparisons (HR@10, points; paired bootstrap 95% CI, Wilcoxon p)", ""]
        for pair, why in (r.get("comparisons_missing") or {}).items():
            lines.append(f"- `{pair}`: {why}")
        if r.get("comparisons"):
            groups = ("all", "repeats", "novel")
            lines += ["| protocol | A vs B | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
            for p, by_group in r["comparisons"].items():
                for pair in by_group["all"]:
                    cells = []
                    for g in groups:
                        t = by_group[g][pair]["hit@10"]
                        cells.append(_paired_cell(t, with_n=True))
                    a, _, b = pair.partition(":")
                    lines.append(f"| {p} | {a} vs {b} | " + " | ".join(cells) + " |")
    if r["quality"]:
        lines += ["", "## Persona quality (set_scores of the evaluated sets)", "",
                  "| system | judge/config | sets | final | cohesion | alignment | truthfulness |",
                  "|---|---|---|---|---|---|---|"]
        for name, by in r["quality"].items():
            for key, q in by.items():
                lines.append(f"| {name} | {key} | {q['sets']} | " + " | ".join(
                    _fmt(q[m], pct=False) for m in ("final", "cohesion", "alignment", "truthfulness")) + " |")
    for name, s in r["systems"].items():
        if s.get("reranker"):
            lines += ["", f"`{name}`: the top {s['rerank_top_k']} candidates of `{s['base']}` re-ordered by the LLM "
                      f"(model {s['rerank_model'][:16]}, prompt {s['rerank_prompt']}): {s['targets_reranked']} targets "
                      f"reranked, {s['targets_moved']} moved, {s['requests']} yes/no requests "
                      f"({s['failed_answers']} failed), {s['seconds']} s."]
    lines += ["", f"Leakage check: {'ok' if r['leakage_check']['ok'] else r['leakage_check']}. "
              f"Wall time: {r['seconds']} s (embedding the pool and the histories {r['embed_seconds']} s).", ""]
    return "\n".join(lines)
