"""``show`` and ``audit``: a user's personas with their evidence, and each claim with its verdict.

The trees are built by :func:`persona_trees` and :func:`audit_trees` from the table layer, so
``demo`` shows users exactly as ``show`` does. Every text from the logs goes through
:func:`personaminer.terminal.markup`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from personaminer import tables
from personaminer.cli import QuietOpt, WorkspaceOpt, console
from personaminer.datasets.base import InputError
from personaminer.store import DEFAULT_WORKSPACE, Workspace
from personaminer.terminal import markup as m


def persona_trees(ws: Workspace, user_id: str, *, builder: str | None = None, all_sets: bool = False,
                  max_actions: int = 6) -> list[Tree]:
    """One tree per persona set of the user: personas -> evidence memories -> their actions."""
    if user_id not in set(ws.users()):
        raise InputError(f"unknown user {user_id!r} in {ws.path}")
    sets = tables.personas.sets_of_user(ws.con, user_id, builder, all_sets) if ws.has_table("persona_sets") else []
    if not sets:
        raise InputError(f"user {user_id!r} has no persona sets{f' from {builder}' if builder else ''}: run "
                         "`personaminer personas` first")
    trees = []
    for s in sets:
        root = Tree(f"[bold]user {m(user_id)}[/] | builder [bold]{m(s['builder'])}[/] sample {s['sample_index']} | "
                    f"{m(s['status'])} | {m(s['prompt'] or '')} | collection {m(s['collection'] or '(legacy)')} | "
                    f"set {m(s['set_id'])}")
        evidence = [e for p in s["personas"] for e in p["evidence"]]
        mems = tables.memories.lookup(ws.con, evidence)
        acts = tables.actions.lookup(ws.con, [a for mid in evidence for a in mems[mid][2][:max_actions]])
        for p in s["personas"]:
            node = root.add(f"[bold cyan]{m(p['label'])}[/]: {m(p['description'])}")
            for mid in p["evidence"]:
                day, summary, action_ids = mems[mid]
                mnode = node.add(f"[green]{day}[/] {m(summary)} [dim]({m(mid)})[/]")
                for aid in action_ids[:max_actions]:
                    ts, kind, text = acts[aid]
                    mnode.add(f"[dim]{ts:%H:%M} {m(kind)}[/] {m(text)}")
                if len(action_ids) > max_actions:
                    mnode.add(f"[dim]... {len(action_ids) - max_actions} more actions[/]")
        if s["unassigned"]:
            root.add(f"[yellow]{len(s['unassigned'])} memories unassigned[/]")
        if s["subset"]:
            root.add(f"[yellow]prompt saw a representative subset of {len(s['subset'])} memories[/]")
        if s["note"]:
            root.add(f"[dim]note: {m(s['note'])}[/]")
        trees.append(root)
    return trees


def scored_trees(ws: Workspace, user_id: str, *, judge: str = "llm", config_key: str | None = None,
                 collection: str | None = None, max_memories: int = 3, max_actions: int = 2) -> list[Tree]:
    """A short view of the user's sample-0 sets: each persona with its scores, its claims (verdict,
    P(Yes)) and its first evidence memories with their first actions (the demo's view). Scores of
    ``judge`` under the score config ``config_key`` (``None``: any config of that judge)."""
    sets = [s for s in tables.explorer.user_sets(ws.con, user_id) if collection in (None, s["collection"])]
    ids = [s["set_id"] for s in sets]
    def mine(r: dict) -> bool:  # type: ignore[type-arg]
        return bool(r["judge"] == judge and config_key in (None, r["config_key"]))

    finals = {r["set_id"]: r["final"] for r in tables.explorer.set_scores(ws.con, ids) if mine(r)}
    pscores = {r["persona_id"]: r["values"] for r in tables.explorer.persona_scores(ws.con, ids) if mine(r)}
    claims: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in tables.explorer.claim_verdicts(ws.con, ids):
        if mine(r):
            claims.setdefault(r["persona_id"], []).append(r)
    mids = [mid for s in sets for p in s["personas"] for mid in p["evidence"][:max_memories]]
    mems = tables.explorer.memories(ws.con, mids)
    acts = tables.explorer.actions(ws.con, [a for mm in mems.values() for a in list(mm["action_ids"])[:max_actions]])
    trees = []
    for s in sets:
        final = finals.get(s["set_id"])
        root = Tree(f"[bold]user {m(user_id)}[/] | {m(s['collection'])} | {len(s['personas'])} personas | "
                    + (f"final [bold]{final:.3f}[/] ({m(judge)} judge)" if final is not None else
                       f"{m(s['status'])}, not scored by the {m(judge)} judge"))
        for p in s["personas"]:
            v = pscores.get(p["persona_id"], {})
            cs = claims.get(p["persona_id"], [])
            terms = " · ".join(f"{t} {v[t]:.2f}" for t in ("alignment", "truthfulness", "specificity")
                               if isinstance(v.get(t), float | int))
            supported = sum(bool(c["supported"]) for c in cs)
            node = root.add(f"[bold cyan]{m(p['label'])}[/]: {m(p['description'])}\n[dim]{terms}"
                            + (f" · claims supported {supported}/{len(cs)}" if cs else "") + "[/]")
            for c in cs:
                mark = "[green]✓[/]" if c["supported"] else "[red]✗[/]"
                node.add(f"{mark} {m(c['claim'])} [dim](P(Yes)={c['p_yes']:.2f}"
                         + (f", guard {m(c['guard'])}" if c["guard"] else "") + ")[/]")
            ev = node.add(f"[dim]evidence: {len(p['evidence'])} memories[/]")
            for mid in p["evidence"][:max_memories]:
                mm = mems.get(mid)
                if mm is None:
                    continue
                mnode = ev.add(f"[green]{mm['day']}[/] {m(mm['summary'])}")
                for aid in list(mm["action_ids"])[:max_actions]:
                    a = acts.get(aid)
                    if a is not None:
                        rating = a["attrs"].get("rating")
                        mnode.add(f"[dim]{a['ts']:%H:%M} {m(a['kind'])}{f' {rating:g}/5' if isinstance(rating, float | int) else ''}[/] {m(a['text'])}")
                if len(mm["action_ids"]) > max_actions:
                    more = len(mm["action_ids"]) - max_actions
                    mnode.add(f"[dim]... {more} more {'action' if more == 1 else 'actions'}[/]")
            if len(p["evidence"]) > max_memories:
                more = len(p["evidence"]) - max_memories
                ev.add(f"[dim]... {more} more {'memory' if more == 1 else 'memories'}[/]")
        if s["unassigned"]:
            root.add(f"[yellow]{len(s['unassigned'])} memories unassigned[/]")
        trees.append(root)
    return trees


def audit_trees(ws: Workspace, user_id: str, *, judge: str = "llm", builder: str | None = None) -> list[Tree]:
    """One tree per scored set of the user: personas -> claims with verdict and P(Yes) -> the evidence seen."""
    rows = tables.scores.verdicts(ws.con, user_id, judge, builder) if ws.has_table("claim_verdicts") else []
    if not rows:
        raise InputError(f"no {judge}-judge verdicts for user {user_id!r}: run `personaminer score --judge {judge}`")
    summaries = tables.memories.user_summaries(ws.con, user_id)
    trees: dict[str, Tree] = {}
    personas: dict[str, Tree] = {}
    shown: set[str] = set()
    for set_id, b, sample, pid, label, _, claim, p_yes, supported, evidence, guard in rows:
        tree = trees.setdefault(set_id, Tree(f"[bold]user {m(user_id)}[/] | {m(b)} sample {sample} | "
                                             f"{m(judge)} judge | set {m(set_id)}"))
        if pid not in personas:
            personas[pid] = tree.add(f"[bold cyan]{m(label)}[/]")
        node = personas[pid]
        score = "n/a" if p_yes is None else f"{p_yes:.2f}"
        mark = "[green]supported[/]" if supported else "[bold red]UNSUPPORTED[/]"
        why = f" [yellow](guard: {m(guard)})[/]" if guard else ""
        node.add(f"{mark} P(Yes)={score}: {m(claim)}{why}")
        if pid not in shown:
            shown.add(pid)
            ev = node.add("[dim]evidence the judge saw[/]")
            for mid in evidence:
                ev.add(f"[dim]{m(summaries.get(mid, mid))}[/]")
    return list(trees.values())


def show_cmd(
    user_id: Annotated[str, typer.Argument(help="The user to show.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str | None, typer.Option("--builder", "-b", help="Only this builder's sets.")] = None,
    all_sets: Annotated[bool, typer.Option("--all-sets", help="Every sample, not only sample 0.")] = False,
    max_actions: Annotated[int, typer.Option(help="Actions shown under each memory.")] = 6,
) -> None:
    """A user's personas, each with its evidence memories and, under each memory, its actions."""
    with Workspace(workspace, read_only=True) as ws:
        for tree in persona_trees(ws, user_id, builder=builder, all_sets=all_sets, max_actions=max_actions):
            console.print(tree)


def audit_cmd(
    user_id: Annotated[str, typer.Argument(help="The user to audit.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str | None, typer.Option("--builder", "-b", help="Only this builder's sets.")] = None,
    judge: Annotated[str, typer.Option("--judge", help="Which judge's verdicts to show.")] = "llm",
) -> None:
    """Each persona's claims with the judge's verdict, P(Yes) and the evidence memories it saw."""
    with Workspace(workspace, read_only=True) as ws:
        for tree in audit_trees(ws, user_id, judge=judge, builder=builder):
            console.print(tree)


def report_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder of the report (default: WORKSPACE/report).")] = None,
    max_users: Annotated[int | None, typer.Option("--max-users", help="User pages written (users with persona sets "
                                                  "first); every user is still listed. Default: all.")] = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="A page also for users with neither memories nor "
                                             "persona sets.")] = False,
    max_actions: Annotated[int, typer.Option("--max-actions", help="Actions shown under each memory.")] = 20,
    quiet: QuietOpt = False,
) -> None:
    """An offline explorer of the workspace: static HTML (overview, users, a page per user) that opens from file://."""
    from personaminer.explorer import ReportConfig, build_report

    try:
        config = ReportConfig(max_users=max_users, all_users=all_users, max_actions=max_actions)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace, read_only=True) as ws:
        summary = build_report(ws, out or Path(workspace) / "report", config, progress=not quiet)
    console.print(f"report: {m(summary['index'])} ({summary['user_pages']} user pages, "
                  f"{summary['users_listed']} users listed)")


def register(app: typer.Typer) -> None:
    app.command("show")(show_cmd)
    app.command("audit")(audit_cmd)
    app.command("report")(report_cmd)
