"""The systems of the table: each scores the future pool for one user from one representation.

A system is named by a spec ``KIND[:NAME][=ARG]`` (a comma-separated list on the CLI):

=====================  ==============================================================  ==============
spec                   score of a candidate text                                        representation
=====================  ==============================================================  ==============
``random``             the same for every candidate (ties: the chance level, exactly)  nothing
``popularity``         log(1 + its interactions in all split users' histories)         nothing (global)
``recent``             cosine to the user's most recent history interaction            1 text
``mean_history``       cosine to the mean embedding of the user's history              history texts
``history_embed``      best cosine to any distinct history text (MiniLM)               history texts
``history_tfidf``      best TF-IDF cosine to any distinct history text (lexical)       history texts
``memories[=SET]``     best cosine to any intent memory summary of memory set SET      memory summaries
``personas:N=B[:M][@S]``  best cosine to any persona ``label: description``            persona texts
``history_recency``    best (cosine + b·2^(−age/H)) to any history text; H, b fitted    history texts
``history_hybrid``     reciprocal-rank fusion of ``history_embed`` and ``history_tfidf``  history texts
``multi_interest[=K]`` best cosine to K k-means interest vectors of the history (K from  history texts
                       an integer, or each user's persona count of a persona spec)
``routed:N=B[:M][@S]`` persona-routed: best persona route (``personaminer.routing``),    persona texts,
                       text + evidence summaries + evidence actions + priors; fitted     evidence actions
=====================  ==============================================================  ==============

``baselines`` expands to the non-LLM baselines (the six above ``memories`` and the three
strong ones: recency-weighted, hybrid and multi-interest with K = 4). Systems with a
parameter grid (``history_recency``, ``routed``) are fitted on the validation users
(``EvalConfig.fit_role``) before the evaluated users are scored; the chosen parameters and the
fit are in the report. For ``personas``, ``N`` names the row,
``B`` is the builder (``single``, ``cluster``, ``model``), ``M`` (optional) filters the persona
sets by model: ``+``-joined terms, each a substring that must occur in the set's model id, the
model's catalog name (``single:1.5b``) or its config (adapter path included), or, prefixed with
``!``, must not (``model:!lora`` is the persona model without an adapter; ``model:listwise`` a
LoRA whose path contains ``listwise``), and ``S`` the memory set. Only sample 0 of each user is used, and failed sets count as missing. If the
filters leave several groups of sets (models or configs), the spec is refused with the list.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from personaminer import tables
from personaminer.embed import Embedder
from personaminer.errors import UserError
from personaminer.evaluate.data import EvalData
from personaminer.store import Workspace

BASELINES = ("random", "popularity", "recent", "mean_history", "history_embed", "history_tfidf", "history_recency",
             "history_hybrid", "multi_interest")


class SystemSpecError(UserError, ValueError):
    """A system spec that cannot be parsed or resolved; the message says what to write instead."""


def whitespace_tokens(texts: Sequence[str]) -> int:
    """Size of a representation: whitespace-separated tokens of its texts."""
    return sum(len(t.split()) for t in texts)


@dataclass
class EvalContext:
    """What systems read: the workspace, the data, the embedder and the pool's vectors."""

    ws: Workspace
    data: EvalData
    embedder: Embedder
    pool_vectors: np.ndarray  #: (len(pool), dim), L2-normalised
    failed_as_chance: bool = False  #: a failed persona set scores every candidate alike (chance), not missing
    _vec: dict[int, np.ndarray] = field(default_factory=dict)

    def text_vectors(self, idx: Sequence[int]) -> np.ndarray:
        """Vectors of ``data.texts[i]`` for ``i`` in ``idx`` (embedded once, then cached)."""
        todo = [i for i in dict.fromkeys(idx) if i not in self._vec]
        if todo:
            for i, v in zip(todo, self.embedder.encode([self.data.texts[i] for i in todo]), strict=True):
                self._vec[i] = v
        if not idx:
            return np.zeros((0, self.pool_vectors.shape[1]), dtype=np.float32)
        return np.stack([self._vec[i] for i in idx])


def max_cosine(rep: np.ndarray, pool: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each pool row, the best dot product with any ``rep`` row (rows are unit vectors)."""
    out = np.full(len(pool), -1.0, dtype=np.float32)
    for s in range(0, len(rep), chunk):
        np.maximum(out, (rep[s:s + chunk] @ pool.T).max(axis=0), out=out)
    return out


class System:
    """One row of the table. ``prepare`` once, then ``score`` each covered user."""

    kind: ClassVar[str]
    personalized: ClassVar[bool] = True
    llm_built: ClassVar[bool] = False

    def __init__(self, name: str, arg: str | None = None) -> None:
        self.name, self.arg = name, arg
        self.missing_reason: str | None = None  #: set when the system's inputs do not exist at all
        self.not_covered: dict[str, str] = {}  #: user -> why this system has no representation for them
        self.raw_spec: str | None = None

    @property
    def spec(self) -> str:
        """The spec as written (``parse_specs``), else the canonical ``KIND:NAME[=ARG]``."""
        return self.raw_spec or f"{self.kind}:{self.name}" + (f"={self.arg}" if self.arg else "")

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        self.ctx = ctx

    def covers(self, user_id: str) -> bool:
        return user_id not in self.not_covered

    def representation(self, user_id: str) -> list[str]:
        return []

    def llm_tokens(self, user_id: str) -> int:
        return 0

    def score(self, user_id: str) -> np.ndarray:
        raise NotImplementedError

    #: parameter points tried when fitting on validation users (empty: nothing to fit); the first
    #: point that reaches the best validation score wins, so grids go from the simplest point
    def grid(self) -> list[dict[str, Any]]:
        return []

    def set_params(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def score_grid(self, user_id: str, grid: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """The user's pool scores under every point of ``grid`` (systems override it to share work)."""
        out = []
        for g in grid:
            self.set_params(g)
            out.append(np.asarray(self.score(user_id), dtype=np.float64))
        return out

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "kind": self.kind, "personalized": self.personalized}
        if self.grid():
            out["params"] = self.params()
            out["fit"] = getattr(self, "fit_info", {"fitted": False, "reason": "not fitted"})
        return out

    def params(self) -> dict[str, Any]:
        return {}


REGISTRY: dict[str, type[System]] = {}


def register(cls: type[System]) -> type[System]:
    REGISTRY[cls.kind] = cls
    return cls


@register
class Random(System):
    kind = "random"
    personalized = False

    def score(self, user_id: str) -> np.ndarray:
        return np.zeros(len(self.ctx.data.pool), dtype=np.float32)


@register
class Popularity(System):
    kind = "popularity"
    personalized = False

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        super().prepare(ctx, users)
        counts = ctx.data.history_counts
        self._scores = np.log1p(np.array([counts.get(int(t), 0) for t in ctx.data.pool], dtype=np.float32))

    def score(self, user_id: str) -> np.ndarray:
        return self._scores


class _History(System):
    def history(self, user_id: str) -> list[int]:
        return self.ctx.data.users[user_id].distinct_history()

    def representation(self, user_id: str) -> list[str]:
        return [self.ctx.data.texts[i] for i in self.history(user_id)]


@register
class Recent(_History):
    kind = "recent"

    def history(self, user_id: str) -> list[int]:
        return self.ctx.data.users[user_id].history[-1:]

    def score(self, user_id: str) -> np.ndarray:
        return self.ctx.pool_vectors @ self.ctx.text_vectors(self.history(user_id))[0]


@register
class MeanHistory(_History):
    kind = "mean_history"

    def representation(self, user_id: str) -> list[str]:
        return [self.ctx.data.texts[i] for i in self.ctx.data.users[user_id].history]

    def score(self, user_id: str) -> np.ndarray:
        v = self.ctx.text_vectors(self.ctx.data.users[user_id].history).mean(axis=0)
        return self.ctx.pool_vectors @ (v / max(float(np.linalg.norm(v)), 1e-12))


@register
class HistoryEmbed(_History):
    kind = "history_embed"

    def score(self, user_id: str) -> np.ndarray:
        return max_cosine(self.ctx.text_vectors(self.history(user_id)), self.ctx.pool_vectors)


@register
class HistoryTfidf(_History):
    """Lexical: scikit-learn TF-IDF (word unigrams and bigrams, sublinear tf, l2) fitted on the
    pool and all evaluated users' history texts; a candidate's score is its best cosine to
    any of the user's distinct history texts."""

    kind = "history_tfidf"

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        from personaminer.routing import make_tfidf

        super().prepare(ctx, users)
        idx = sorted({int(t) for t in ctx.data.pool} | {i for u in users for i in ctx.data.users[u].history})
        self._row = {t: r for r, t in enumerate(idx)}
        self._vectorizer = make_tfidf()
        self._matrix = self._vectorizer.fit_transform([ctx.data.texts[i] for i in idx]).tocsr()
        self._pool_t = self._matrix[[self._row[int(t)] for t in ctx.data.pool]].T.tocsc()

    def score(self, user_id: str) -> np.ndarray:
        rows = self._matrix[[self._row[i] for i in self.history(user_id)]]
        out = np.zeros(self._pool_t.shape[1], dtype=np.float32)
        for s in range(0, rows.shape[0], 256):
            block = (rows[s:s + 256] @ self._pool_t).toarray()
            np.maximum(out, block.max(axis=0), out=out)
        return out


def _chunked_best(rep: np.ndarray, pool: np.ndarray, bonuses: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each row of ``bonuses`` (G, len(rep)): per pool row, the best ``rep·pool + bonus`` (G, len(pool))."""
    out = np.full((len(bonuses), len(pool)), -np.inf, dtype=np.float32)
    for s in range(0, len(rep), chunk):
        block = rep[s:s + chunk] @ pool.T
        for g in range(len(bonuses)):
            np.maximum(out[g], (block + bonuses[g, s:s + chunk, None]).max(axis=0), out=out[g])
    return out


@register
class HistoryRecency(_History):
    """Recency-weighted history retrieval: a candidate's score is its best
    ``cos(c, h) + b·2^(−age(h)/H)`` over the user's distinct history texts h, ``age`` the days from
    h's latest occurrence to the cutoff. ``b = 0`` is ``history_embed``; H (half-life, days) and b
    are fitted on the validation users (defaults when none: H = 30, b = 0.05)."""

    kind = "history_recency"
    HALF_LIVES = (1.0, 3.0, 7.0, 14.0, 30.0, 90.0, 365.0)
    BONUSES = (0.02, 0.05, 0.1, 0.2)

    def __init__(self, name: str, arg: str | None = None) -> None:
        super().__init__(name, arg)
        self.half_life, self.bonus = 30.0, 0.05

    def grid(self) -> list[dict[str, Any]]:
        return [{"half_life_days": 30.0, "bonus": 0.0}] + [
            {"half_life_days": h, "bonus": b} for b in self.BONUSES for h in self.HALF_LIVES]

    def set_params(self, params: dict[str, Any]) -> None:
        self.half_life, self.bonus = float(params["half_life_days"]), float(params["bonus"])

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life, "bonus": self.bonus}

    def score_grid(self, user_id: str, grid: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        u = self.ctx.data.users[user_id]
        ages = np.array(u.distinct_ages(), dtype=np.float64)
        bonuses = np.stack([float(g["bonus"]) * 2.0 ** (-ages / float(g["half_life_days"])) for g in grid])
        return list(_chunked_best(self.ctx.text_vectors(self.history(user_id)), self.ctx.pool_vectors,
                                  bonuses.astype(np.float32)))

    def score(self, user_id: str) -> np.ndarray:
        return self.score_grid(user_id, [self.params()])[0]


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, highest score first, ties sharing their mean rank."""
    from scipy.stats import rankdata

    return rankdata(-np.asarray(scores, dtype=np.float64), method="average")


@register
class HistoryHybrid(_History):
    """Lexical + embedded history retrieval by reciprocal-rank fusion (Cormack et al., 2009): a
    candidate's score is ``1/(k + rank_embed) + 1/(k + rank_tfidf)`` over the pool, with the ranks
    of ``history_embed`` and ``history_tfidf`` and k = 60."""

    kind = "history_hybrid"
    K = 60.0

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        super().prepare(ctx, users)
        self._embed, self._tfidf = HistoryEmbed("_embed"), HistoryTfidf("_tfidf")
        self._embed.prepare(ctx, users)
        self._tfidf.prepare(ctx, users)

    def score(self, user_id: str) -> np.ndarray:
        return (1.0 / (self.K + _ranks(self._embed.score(user_id)))
                + 1.0 / (self.K + _ranks(self._tfidf.score(user_id))))


@register
class MultiInterest(_History):
    """A non-LLM multi-interest baseline in the style of MIND / ComiRec: K interest vectors per user
    (k-means, scikit-learn, seeded per user, over the L2-normalised embeddings of the distinct history
    texts; centroids re-normalised), a candidate scored by its best cosine to one of them. K is
    ``=K`` (default 4), or ``=PERSONA_ARG`` (as in ``personas:N=ARG``): each user's persona count in
    that persona system (4 where the user has no set), capped by the number of distinct texts."""

    kind = "multi_interest"
    DEFAULT_K = 4

    def __init__(self, name: str, arg: str | None = None) -> None:
        super().__init__(name, arg)
        self.k: int | None = int(arg) if arg and arg.isdigit() else (None if arg else self.DEFAULT_K)
        if self.k is not None and self.k < 1:
            raise SystemSpecError(f"multi_interest needs K >= 1 (got {arg!r})")
        self._centroids: dict[str, np.ndarray] = {}
        self.k_of: dict[str, int] = {}

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        super().prepare(ctx, users)
        counts: dict[str, int] = {}
        if self.k is None:
            helper = Personas("_k", self.arg)
            helper.ctx = ctx
            helper.load(ctx.ws, list(users))
            if helper.missing_reason:
                self.missing_reason = f"multi_interest={self.arg}: {helper.missing_reason}"
                return
            counts = {u: len(t) for u, t in helper._texts.items()}
        for u in users:
            self.k_of[u] = counts.get(u, self.DEFAULT_K) if self.k is None else self.k

    def centroids(self, user_id: str) -> np.ndarray:
        if user_id not in self._centroids:
            from sklearn.cluster import KMeans

            from personaminer.evaluate.data import stable_seed

            x = self.ctx.text_vectors(self.history(user_id)).astype(np.float64)
            k = min(self.k_of.get(user_id, self.DEFAULT_K), len(x))
            if k <= 1:
                c = x.mean(axis=0, keepdims=True)
            else:
                km = KMeans(n_clusters=k, n_init=4, random_state=stable_seed("multi_interest", user_id) % 2**31)
                c = km.fit(x).cluster_centers_
            self._centroids[user_id] = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(
                np.float32)
        return self._centroids[user_id]

    def score(self, user_id: str) -> np.ndarray:
        return max_cosine(self.centroids(user_id), self.ctx.pool_vectors)

    def describe(self) -> dict[str, Any]:
        ks = list(self.k_of.values())
        return {**super().describe(), "k": self.k if self.k is not None else f"persona count of {self.arg}",
                "mean_k": round(float(np.mean(ks)), 3) if ks else None}


class _TextSet(System):
    """Best cosine to any of a per-user list of texts read from the workspace."""

    llm_built = True

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        super().prepare(ctx, users)
        self._texts: dict[str, list[str]] = {}
        self._tokens: dict[str, int] = {}
        self.chance_users: set[str] = set()  #: covered with no representation: every candidate scores alike
        self.load(ctx.ws, list(users))
        for u in users:
            if not self._texts.get(u) and u not in self.not_covered and u not in self.chance_users:
                self.not_covered[u] = "no representation"
        distinct = sorted({t for ts in self._texts.values() for t in ts})
        vecs = ctx.embedder.encode(distinct) if distinct else np.zeros((0, ctx.pool_vectors.shape[1]))
        self._vectors = dict(zip(distinct, vecs, strict=True))

    def load(self, ws: Workspace, users: list[str]) -> None:
        raise NotImplementedError

    def representation(self, user_id: str) -> list[str]:
        return self._texts.get(user_id, [])

    def llm_tokens(self, user_id: str) -> int:
        return self._tokens.get(user_id, 0)

    def score(self, user_id: str) -> np.ndarray:
        if user_id in self.chance_users:
            return np.zeros(len(self.ctx.pool_vectors), dtype=np.float32)
        rep = np.stack([self._vectors[t] for t in self._texts[user_id]])
        return max_cosine(rep, self.ctx.pool_vectors)


def memory_set_tokens(ws: Workspace, memory_set: str, users: list[str]) -> dict[str, int]:
    return tables.memories.tokens_by_user(ws.con, memory_set, users) if ws.has_table("memory_days") else {}


@register
class Memories(_TextSet):
    kind = "memories"

    def __init__(self, name: str, arg: str | None = None) -> None:
        super().__init__(name, arg)
        self.memory_set = arg

    def load(self, ws: Workspace, users: list[str]) -> None:
        sets = tables.memories.sets(ws.con) if ws.has_table("memories") else []
        if self.memory_set is None:
            if len(sets) > 1:
                raise SystemSpecError(f"several memory sets ({', '.join(sets)}): write memories=SET")
            self.memory_set = sets[0] if sets else "llm"
        if self.memory_set not in sets:
            self.missing_reason = f"no memory set {self.memory_set!r} in the workspace (have: {', '.join(sets) or 'none'})"
            self.not_covered = {u: "no memories" for u in users}
            return
        for u, summary in tables.memories.summaries_by_user(ws.con, self.memory_set, users):
            self._texts.setdefault(u, []).append(" ".join(summary.split()))
        self._tokens = memory_set_tokens(ws, self.memory_set, users)
        for u in users:
            if u not in self._texts:
                self.not_covered[u] = "no memories"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "memory_set": self.memory_set}


@dataclass
class PersonaGroup:
    builder: str
    memory_set: str
    model: str
    config: dict[str, Any]
    users: int
    collection: str = ""

    def model_name(self) -> str:
        """The catalog name of the base model (``model`` is its file's sha256, ``+lora:...`` appended)."""
        from personaminer.llm.catalog import CATALOG

        base = self.model.split("+", 1)[0]
        return next((e.name for e in CATALOG.values() if e.sha256 == base), "")

    def match_text(self) -> str:
        return f"{self.model} {self.model_name()} {json.dumps(self.config, sort_keys=True)} collection={self.collection}"

    def label(self) -> str:
        adapter = self.config.get("adapter")
        return (f"collection={self.collection or '(legacy)'} builder={self.builder} memory_set={self.memory_set} "
                f"model={self.model_name() or self.model[:16] or '-'}"
                f"{' adapter=' + str(adapter) if adapter else ''} users={self.users}")


def _group_config(config: str | None) -> dict[str, Any]:
    cfg = json.loads(config) if config else {}
    for k in ("samples", "seed", "temperature", "name"):  # not part of what sample 0 is
        cfg.pop(k, None)
    return cfg


def persona_groups(ws: Workspace, builder: str | None = None) -> list[PersonaGroup]:
    """Distinct (collection, builder, memory set, model, config) groups of sample-0 persona sets."""
    if not ws.has_table("persona_sets"):
        return []
    groups: dict[tuple[str, str, str, str, str], set[str]] = {}
    for b, mset, model, config, collection, uid in tables.personas.groups(ws.con, builder):
        key = (collection, b, mset, model, json.dumps(_group_config(config), sort_keys=True))
        groups.setdefault(key, set()).add(uid)
    return [PersonaGroup(b, m, mo, json.loads(c), len(us), col) for (col, b, m, mo, c), us in sorted(groups.items())]


def matches(group: PersonaGroup, terms: Sequence[str]) -> bool:
    text = group.match_text()
    return all((t[1:] not in text) if t.startswith("!") else (t in text) for t in terms)


@register
class Personas(_TextSet):
    kind = "personas"

    def __init__(self, name: str, arg: str | None = None) -> None:
        super().__init__(name, arg)
        if not arg:
            raise SystemSpecError(f"personas:{name} needs =BUILDER[:MODEL_FILTER][@MEMORY_SET] or =COLLECTION, e.g. "
                                  f"personas:{name}=single")
        rest, _, self.memory_set = arg.partition("@")
        self.builder, _, filt = rest.partition(":")
        self.memory_set = self.memory_set or None  # type: ignore[assignment]
        self.terms = [t for t in filt.split("+") if t]
        self.group: PersonaGroup | None = None
        self._texts: dict[str, list[str]] = {}
        self._tokens: dict[str, int] = {}
        self.chance_users: set[str] = set()

    def load(self, ws: Workspace, users: list[str]) -> None:
        named = [g for g in persona_groups(ws) if g.collection and g.collection == self.arg]
        groups = named or [g for g in persona_groups(ws, self.builder)
                           if (self.memory_set is None or g.memory_set == self.memory_set) and matches(g, self.terms)]
        if not groups:
            self.missing_reason = f"no persona sets match {self.arg!r}"
            self.not_covered = {u: "no persona set" for u in users}
            return
        if len(groups) > 1:
            raise SystemSpecError(f"personas:{self.name}={self.arg} matches several groups of persona sets; add a model "
                                  "filter (:TERM, :!TERM) or @MEMORY_SET:\n  " + "\n  ".join(g.label() for g in groups))
        g = self.group = groups[0]
        self.memory_set = g.memory_set
        rows = tables.personas.system_rows(ws.con, g.builder, g.memory_set, g.model, g.collection, users)
        mem_tokens = memory_set_tokens(ws, g.memory_set, users)
        self.set_ids: dict[str, str] = {}
        for uid, set_id, status, config, _model, tokens, label, desc in rows:
            if _group_config(config) != g.config:
                continue
            if status == "failed":
                if getattr(getattr(self, "ctx", None), "failed_as_chance", False):  # the system ranks nothing
                    self.chance_users.add(uid)
                    self._tokens[uid] = int(tokens) + mem_tokens.get(uid, 0)
                else:
                    self.not_covered[uid] = "failed set"
                continue
            self.set_ids[uid] = set_id
            self._tokens[uid] = int(tokens) + mem_tokens.get(uid, 0)
            if label is not None:
                self._texts.setdefault(uid, []).append(f"{' '.join(label.split())}: {' '.join(desc.split())}")
        for u in users:
            if u not in self._texts and u not in self.not_covered and u not in self.chance_users:
                self.not_covered[u] = "no persona set"

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "builder": self.builder, "filters": self.terms, "memory_set": self.memory_set,
               "failed_sets_at_chance": len(getattr(self, "chance_users", ()))}
        if self.group is not None:
            out.update(model=self.group.model, model_name=self.group.model_name(), config=self.group.config)
        return out


def _simplex(parts: int, steps: int) -> list[tuple[float, ...]]:
    """Every weight vector of ``parts`` non-negative multiples of 1/steps summing to 1."""
    import itertools

    return [tuple(k / steps for k in c) for c in itertools.product(range(steps + 1), repeat=parts)
            if sum(c) == steps]


@register
class Routed(Personas):
    """Persona-routed retrieval (``personaminer.routing``): each persona of the user's set is a route
    with its text, its evidence memories' summaries and the interaction texts under them; a candidate
    takes its best route's score. The similarity weights (on a grid of step 0.25 summing to 1) and the
    recency and size priors are fitted on the validation users; :meth:`route` names the persona that
    produced each candidate's score (the explanation)."""

    kind = "routed"
    PRIORS = (0.0, 0.05, 0.1)

    def __init__(self, name: str, arg: str | None = None) -> None:
        super().__init__(name, arg)
        from personaminer.routing import RouteWeights

        self.weights = RouteWeights()
        self.routes: dict[str, list[Any]] = {}

    def grid(self) -> list[dict[str, Any]]:
        from personaminer.routing import PARTS

        sims = sorted(_simplex(len(PARTS), 4), key=lambda w: (-max(w), [-x for x in w]))  # text alone first
        return [{**dict(zip(PARTS, w, strict=True)), "recency": r, "size": z}
                for r in self.PRIORS for z in self.PRIORS for w in sims]

    def set_params(self, params: dict[str, Any]) -> None:
        from personaminer.routing import RouteWeights

        self.weights = RouteWeights(**{**self.weights.to_dict(), **params})

    def params(self) -> dict[str, Any]:
        return self.weights.to_dict()

    def prepare(self, ctx: EvalContext, users: Sequence[str]) -> None:
        from personaminer.evaluate.data import norm
        from personaminer.routing import make_tfidf

        super().prepare(ctx, users)
        if self.missing_reason:
            return
        self.routes = tables.personas.routes(ctx.ws.con, sorted(self.set_ids.values()), ctx.data.kinds)
        index = {t: i for i, t in enumerate(ctx.data.texts)}
        summaries = sorted({norm(x) for rs in self.routes.values() for r in rs for x in r.summaries})
        svec = ctx.embedder.encode(summaries) if summaries else np.zeros((0, ctx.pool_vectors.shape[1]))
        self._summary_vec = dict(zip(summaries, svec, strict=True))
        for rs in self.routes.values():
            for r in rs:
                r.actions = list(dict.fromkeys(a for a in (norm(x) for x in r.actions) if a))
        extra = sorted({a for rs in self.routes.values() for r in rs for a in r.actions if a not in index})
        evec = ctx.embedder.encode(extra) if extra else np.zeros((0, ctx.pool_vectors.shape[1]))
        self._extra_vec = dict(zip(extra, evec, strict=True))
        self._index = index
        corpus = [ctx.data.texts[int(t)] for t in ctx.data.pool] + sorted(
            {a for rs in self.routes.values() for r in rs for a in r.actions})
        self._vectorizer = make_tfidf()
        self._vectorizer.fit(corpus)
        self._pool_t = self._vectorizer.transform([ctx.data.texts[int(t)] for t in ctx.data.pool]).T.tocsc()
        self._components: dict[str, np.ndarray] = {}
        self._cutoffs: dict[str, Any] = {}

    def _action_vectors(self, actions: list[str]) -> np.ndarray:
        dim = self.ctx.pool_vectors.shape[1]
        if not actions:
            return np.zeros((0, dim), dtype=np.float32)
        known = [self._index[a] for a in actions if a in self._index]
        rows = [self.ctx.text_vectors(known)] if known else []
        rows += [np.stack([self._extra_vec[a] for a in actions if a not in self._index])] if any(
            a not in self._index for a in actions) else []
        return np.concatenate(rows).astype(np.float32)

    def components(self, user_id: str) -> np.ndarray:
        """(routes, parts, pool) similarity parts of the user's routes (cached)."""
        from personaminer.evaluate.data import norm
        from personaminer.routing import route_components

        if user_id not in self._components:
            rs = self.routes.get(self.set_ids[user_id], [])
            dim = self.ctx.pool_vectors.shape[1]
            vecs, lex = [], []
            for r in rs:
                sv = [self._summary_vec[norm(x)] for x in r.summaries]
                vecs.append((self._vectors[r.text],
                             np.stack(sv) if sv else np.zeros((0, dim), np.float32), self._action_vectors(r.actions)))
                if r.actions:
                    m = self._vectorizer.transform(r.actions) @ self._pool_t
                    lex.append(np.asarray(m.max(axis=0).todense()).ravel())
                else:
                    lex.append(np.zeros(self._pool_t.shape[1]))
            self._components[user_id] = route_components(vecs, lex, self.ctx.pool_vectors)
        return self._components[user_id]

    def _priors(self, user_id: str, weights: Any) -> np.ndarray:
        from personaminer.routing import priors

        if user_id not in self._cutoffs:
            self._cutoffs[user_id] = self.ctx.ws.cutoff(user_id)
        return priors(self.routes.get(self.set_ids[user_id], []), self._cutoffs[user_id], weights)

    def score_grid(self, user_id: str, grid: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        from personaminer.routing import RouteWeights, combine

        if user_id in self.chance_users:
            return [np.zeros(len(self.ctx.pool_vectors)) for _ in grid]
        comp = self.components(user_id)
        out = []
        for g in grid:
            w = RouteWeights(**{**self.weights.to_dict(), **g})
            out.append(combine(comp, self._priors(user_id, w), w)[0])
        return out

    def score(self, user_id: str) -> np.ndarray:
        return self.score_grid(user_id, [self.params()])[0]

    def route(self, user_id: str) -> np.ndarray:
        """Per pool candidate, the index of the persona whose route gave its score (-1: none)."""
        from personaminer.routing import combine

        if user_id in self.chance_users:
            return np.full(len(self.ctx.pool_vectors), -1)
        return combine(self.components(user_id), self._priors(user_id, self.weights), self.weights)[1]

    def route_profile(self, user_id: str, persona: int, max_actions: int = 12) -> list[str]:
        """The reranker's profile of one route: ``label: description``, then its latest evidence texts."""
        rs = self.routes.get(self.set_ids.get(user_id, ""), [])
        if not 0 <= persona < len(rs):
            return self.representation(user_id)
        r = rs[persona]
        return [r.text] + r.actions[-max_actions:]

    def representation(self, user_id: str) -> list[str]:
        rs = self.routes.get(self.set_ids.get(user_id, ""), [])
        return super().representation(user_id) + list(dict.fromkeys(a for r in rs for a in r.actions))


class Reranked(System):
    """The row ``<base>+llm``: the base system's ranking with its top candidates re-ordered by the
    LLM reranker (``evaluate/rerank.py``); coverage and representation are the base's."""

    def __init__(self, base: System) -> None:
        super().__init__(f"{base.name}+llm", None)
        self.base = base
        self.kind = f"{base.kind}+llm"  # type: ignore[misc]
        self.raw_spec = f"{base.spec} (reranked by the LLM)"
        self.llm_built = base.llm_built  # type: ignore[misc]
        self.not_covered = base.not_covered

    def covers(self, user_id: str) -> bool:
        return self.base.covers(user_id)

    def representation(self, user_id: str) -> list[str]:
        return self.base.representation(user_id)

    def llm_tokens(self, user_id: str) -> int:
        return self.base.llm_tokens(user_id)

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "spec": self.spec, "kind": self.kind, "base": self.base.name}


def parse_specs(text: str, ws: Workspace | None = None) -> list[System]:
    """Systems from ``KIND[:NAME][=ARG],...`` (``baselines`` expands; see the module doc)."""
    out: list[System] = []
    for raw in [s.strip() for s in text.split(",") if s.strip()]:
        if raw == "baselines":
            for k in BASELINES:
                out.append(REGISTRY[k](k))
                out[-1].raw_spec = k
            continue
        head, _, arg = raw.partition("=")
        kind, _, name = head.partition(":")
        if kind not in REGISTRY:
            raise SystemSpecError(f"unknown system {kind!r} in {raw!r}; choose from baselines, {', '.join(REGISTRY)}")
        if kind not in ("memories", "personas", "routed", "multi_interest") and arg:
            raise SystemSpecError(f"{kind} takes no =ARG (got {raw!r})")
        default = (f"memories_{arg}" if kind == "memories" and arg else kind)
        if kind in ("personas", "routed") and not name:
            name = arg.partition("@")[0].replace(":", "_") if arg else ""
            name = f"routed_{name}" if kind == "routed" and name else name
        if kind == "multi_interest" and not name and arg:
            name = f"multi_interest_{arg.partition('@')[0].replace(':', '_')}"
        out.append(REGISTRY[kind](name or default, arg or None))
        out[-1].raw_spec = raw
    names = [s.name for s in out]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise SystemSpecError(f"duplicate system names: {', '.join(dup)} (name them: KIND:NAME=ARG)")
    return out


def default_specs(ws: Workspace) -> str:
    """The baselines, every memory set, and one persona system per persona collection (sets from before
    collections existed: one per builder, memory set, model and config)."""
    parts = ["baselines"]
    if ws.has_table("memories"):
        parts += [f"memories={m}" for m in tables.memories.sets(ws.con)]
    groups = persona_groups(ws)
    for g in [g for g in groups if g.collection]:  # one system per named collection
        parts.append(f"personas:{re.sub(r'[^A-Za-z0-9_]+', '_', g.collection)}={g.collection}")
    groups = [g for g in groups if not g.collection]  # sets from before collections: by builder and model
    by_builder: dict[str, int] = {}
    for g in groups:
        by_builder[g.builder] = by_builder.get(g.builder, 0) + 1
    for g in groups:
        if by_builder[g.builder] == 1:
            parts.append(f"personas:{g.builder}={g.builder}@{g.memory_set}")
        else:
            tag = (g.model[:8] or "nomodel") + ("_lora" + g.model.rpartition(":")[2][:6] if "+lora:" in g.model else "")
            term = g.model if "+lora:" in g.model else f"{g.model[:16]}+!lora"
            parts.append(f"personas:{g.builder}_{tag}_{g.memory_set}={g.builder}:{term}@{g.memory_set}")
    return ",".join(parts)


def nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
