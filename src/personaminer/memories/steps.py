"""Steps: the smallest units the segmenter sees, and how a step reads in a prompt.

A step is one action, or a few consecutive actions that are obviously one gesture: an AOL
query with the clicks on its results (same time, the click's ``attrs.query`` is the query),
or consecutive actions on the same item (MerRec view -> like -> checkout). Segments never
split a step, so contiguity and full coverage of actions follow from those of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from personaminer.memories.redact import redact
from personaminer.prompts import clip
from personaminer.schema import Action

MAX_TEXT = 160  # characters of an action's text shown in a prompt


@dataclass(frozen=True)
class Step:
    """One or more consecutive actions of one user-day."""

    actions: tuple[Action, ...]

    @property
    def first(self) -> Action:
        return self.actions[0]

    @property
    def action_ids(self) -> list[str]:
        return [a.action_id for a in self.actions]

    @property
    def text(self) -> str:
        """The step's main text (the query or the item), for embeddings and summaries."""
        return self.first.text


def make_steps(actions: list[Action]) -> list[Step]:
    """Group a user-day's time-ordered actions into steps (pure)."""
    steps: list[list[Action]] = []
    for a in actions:
        if steps and _continues(steps[-1], a):
            steps[-1].append(a)
        else:
            steps.append([a])
    return [Step(tuple(s)) for s in steps]


def _continues(step: list[Action], a: Action) -> bool:
    head = step[0]
    if a.kind == "click" and head.kind == "query":
        return a.ts == head.ts and a.attrs.get("query") == head.text
    return a.item_id is not None and a.item_id == head.item_id and a.kind != head.kind and a.kind != "click"


_VERBS = {"query": "searched", "click": "clicked", "view": "viewed", "like": "liked", "cart": "added to cart",
          "offer": "made an offer on", "checkout": "started checkout for", "purchase": "bought", "rating": "rated"}


def _clean(text: str, limit: int = MAX_TEXT) -> str:
    """One line, bounded length: a text can never fake another numbered log line."""
    return clip(text, limit)


def render_step(step: Step, *, redact_text: bool = False) -> str:
    """How a step reads in the segmentation prompt (without its number).

    With ``redact_text`` every text goes through :func:`personaminer.memories.redact.redact` first.
    """

    def clean(text: str, limit: int = MAX_TEXT) -> str:
        return _clean(redact(text) if redact_text else text, limit)

    head = step.first
    when = head.ts.strftime("%H:%M")
    if head.kind == "query":
        line = f'searched "{clean(head.text)}"'
        clicks = [a.text for a in step.actions[1:]]
        if clicks:
            line += " -> clicked " + ", ".join(clean(c, 60) for c in clicks[:5])
            if len(clicks) > 5:
                line += f" (+{len(clicks) - 5} more)"
        return f"{line} (at {when})"
    verbs = []
    for a in step.actions:
        verb = _VERBS.get(a.kind, a.kind)
        if a.kind == "rating" and a.attrs.get("rating") is not None:
            verb = f"rated {a.attrs['rating']:g}/5"
        if verb not in verbs:
            verbs.append(verb)
    extra = ""
    if head.kind == "purchase" and head.attrs.get("aisle"):
        extra = f" ({clean(str(head.attrs['aisle']), 40)})"
    return f"{', '.join(verbs)}: {clean(head.text)}{extra} (at {when})"
