"""``split`` and ``evaluate``: the evaluation protocol and future-interaction prediction."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from personaminer.cli import (
    BaseUrlOpt,
    LlmConfigOpt,
    LlmOpt,
    ModelOpt,
    NoCacheOpt,
    WorkspaceOpt,
    console,
    default,
    err,
    llm_config,
    select_users,
)
from personaminer.datasets.base import InputError
from personaminer.evaluate.run import EvalConfig
from personaminer.store import DEFAULT_WORKSPACE, Workspace
from personaminer.terminal import markup

E = EvalConfig


def split_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    future_frac: Annotated[float | None, typer.Option("--future-frac", help="The last fraction of each user's "
                                                      "active days is the future (default 0.2).")] = None,
    future_days: Annotated[int | None, typer.Option("--future-days", help="The last N active days of each user "
                                                    "are the future.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="One global cutoff date YYYY-MM-DD: actions on or "
                                             "after it are the future.")] = None,
    users: Annotated[int | None, typer.Option("--users", help="A seeded random sample of N users (default: all).")] = None,
    user: Annotated[list[str], typer.Option("--user", help="Split this user id (repeatable).")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for --users sampling.")] = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Re-split users split with another rule (their "
                                          "memories and personas become stale).")] = False,
) -> None:
    """Cut each user's timeline into history (what personas may read) and future (what evaluation predicts)."""
    from personaminer.evaluate.split import SplitConfig, split_users

    chosen = [f for f, v in (("--future-frac", future_frac), ("--future-days", future_days), ("--date", date))
              if v is not None]
    if len(chosen) > 1:
        raise InputError(f"give one split rule, not {' and '.join(chosen)}")
    try:
        if future_days is not None:
            config = SplitConfig(rule="days", future_days=future_days)
        elif date is not None:
            config = SplitConfig(rule="date", date=date)
        else:
            config = SplitConfig(rule="frac", future_frac=0.2 if future_frac is None else future_frac)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace) as ws:
        ids = select_users(ws, users, user, seed)
        if not ids:
            raise InputError(f"workspace {workspace} has no users: run `personaminer ingest` first")
        try:
            summary = split_users(ws, ids, config, replace=replace)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    table = Table(title=f"split ({markup(config.key())}) -> {markup(workspace)}", show_header=False)
    for key in ("requested_users", "split", "already_split", "replaced", "unsplittable", "workspace_split_users",
                "history_actions", "future_actions", "mean_history_days", "mean_future_days"):
        value = summary[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    for reason, n in summary["unsplittable_reasons"].items():
        table.add_row(f"  not split: {markup(reason)}", f"{n:,}", style="yellow")
    console.print(table)
    if summary["unsplittable"]:
        err.print(f"{summary['unsplittable']} user(s) could not be split (ids in {markup(workspace)}/reports/split.json)")
    if not summary.get("leakage_check", {}).get("ok", True):
        err.print(f"[bold red]stale:[/] {markup(summary['leakage_check'])}: rebuild memories and personas for the re-split "
                  "users", soft_wrap=True)


def evaluate_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    protocol: Annotated[str, typer.Option("--protocol", help="sampled, hard, full, or all (comma-separated list "
                                          "allowed).")] = "all",
    systems: Annotated[str | None, typer.Option("--systems", help="Comma-separated system specs, e.g. baselines,"
                                                "memories=extractive,personas:single=single (default: the baselines, "
                                                "every memory set, every group of persona sets; see docs/evaluate.md).")] = None,
    max_targets: Annotated[int, typer.Option("--max-targets", help="Distinct future texts per user (seeded sample "
                                             "beyond).")] = default(E, "max_targets"),
    seed: Annotated[int, typer.Option("--seed", help="Seed for targets, negatives, user sample, "
                                      "bootstrap.")] = default(E, "seed"),
    users: Annotated[int | None, typer.Option("--users", help="Evaluate a seeded sample of N split users.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Evaluate only the split users holding this held-out "
                                             "role, e.g. test (see `train roles`).")] = None,
    negatives: Annotated[int, typer.Option("--negatives", help="Negatives per target (sampled, "
                                           "hard).")] = default(E, "n_negatives"),
    near_duplicate: Annotated[float, typer.Option("--near-duplicate", help="hard: drop candidates with cosine >= "
                                                  "this to the target.")] = default(E, "near_duplicate"),
    baseline: Annotated[str | None, typer.Option("--baseline", help="System the paired tests compare against "
                                                 "(default: single, else history_embed).")] = None,
    compare: Annotated[str | None, typer.Option("--compare", help="More paired tests, comma-separated A:B pairs "
                                                "(system A against B), e.g. routed_cluster:history_hybrid.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples.")] = default(E, "bootstrap"),
    shuffle_targets: Annotated[bool, typer.Option("--shuffle-targets", help="Control: score each user against "
                                                  "another user's targets (should give chance).")] = False,
    failed_sets: Annotated[str, typer.Option("--failed-sets", help="missing: a failed persona set drops the user "
                                             "from the main tables; chance: it ranks every candidate "
                                             "alike.")] = default(E, "failed_sets"),
    rerank: Annotated[str | None, typer.Option("--rerank", help="llm: add a row <system>+llm per reranked system, "
                                               "its top candidates re-ordered by an LLM yes/no question.")] = None,
    rerank_top: Annotated[int, typer.Option("--rerank-top", help="Candidates the reranker "
                                            "re-orders.")] = default(E, "rerank_top"),
    rerank_systems: Annotated[str | None, typer.Option("--rerank-systems", help="Comma-separated names of the "
                                                       "systems to rerank (default: every text system).")] = None,
    fit_role: Annotated[str, typer.Option("--fit-role", help="Fit the systems with parameters (history_recency, "
                                          "routed) on the split users of this role that are not evaluated; 'none': "
                                          "keep their defaults.")] = "val",
    fit_protocol: Annotated[str, typer.Option("--fit-protocol", help="Protocol of the fit.")] = default(
        E, "fit_protocol"),
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Predict each split user's future interactions with every system; write reports/evaluate.{json,md}."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.evaluate import EvalConfig, LeakageError, run_evaluation

    protocols = ["sampled", "hard", "full"] if protocol == "all" else [p.strip() for p in protocol.split(",")]
    try:
        config = EvalConfig(protocols=protocols, systems=systems, max_targets=max_targets, seed=seed, users=users, role=role,
                            n_negatives=negatives, near_duplicate=near_duplicate, baseline=baseline,
                            compare=[x.strip() for x in compare.split(",") if x.strip()] if compare else None,
                            bootstrap=bootstrap, shuffle_targets=shuffle_targets, rerank=rerank,
                            failed_sets=failed_sets,
                            rerank_top=rerank_top, fit_role=None if fit_role.lower() == "none" else fit_role,
                            fit_protocol=fit_protocol,
                            rerank_systems=[x.strip() for x in rerank_systems.split(",")] if rerank_systems else None)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    model_obj = None
    if rerank:
        from personaminer.llm import make_llm

        model_obj = make_llm(llm_config(llm, model, base_url, llm_config_file, no_cache))
    try:
        with Workspace(workspace) as ws:
            try:
                report = run_evaluation(ws, config, embedder=MiniLMEmbedder(), llm=model_obj, progress=not quiet)
            except (ValueError, LeakageError) as exc:
                raise InputError(str(exc)) from exc
    finally:
        if model_obj is not None:
            model_obj.close()
    for p, groups in report["results"].items():
        table = Table(title=f"{p}: {report['users']['common']} common users, "
                            f"{report['protocols'][p]['candidates_per_target']['mean']} candidates/target")
        for col in ("system", "HR@1", "HR@5", "HR@10", "95% CI", "NDCG@10", "MRR", "repeats HR@10", "novel HR@10"):
            table.add_column(col, justify="left" if col == "system" else "right")
        for name, row in groups["all"].items():
            def pct(x: float | None) -> str:
                return "-" if x is None else f"{100 * x:.1f}"
            ci = row["hit@10"]["ci95"]
            table.add_row(markup(name), pct(row["hit@1"]["mean"]), pct(row["hit@5"]["mean"]), pct(row["hit@10"]["mean"]),
                          f"{pct(ci[0])}-{pct(ci[1])}", pct(row["ndcg@10"]["mean"]), pct(row["mrr"]["mean"]),
                          pct(groups["repeats"][name]["hit@10"]["mean"]), pct(groups["novel"][name]["hit@10"]["mean"]))
        console.print(table)
    for name, why in report["missing_systems"].items():
        err.print(f"[yellow]missing system[/] {markup(name)}: {markup(why)}", soft_wrap=True)
    name = "evaluate-shuffled" if shuffle_targets else "evaluate"
    console.print(f"report: {markup(workspace)}/reports/{markup(name)}.json and {markup(name)}.md ({report['seconds']} s)")


def register(app: typer.Typer) -> None:
    app.command("split")(split_cmd)
    app.command("evaluate")(evaluate_cmd)
