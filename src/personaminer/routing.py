"""Persona-routed retrieval: score candidate items or queries for one user through their personas.

Each persona of a set is a **route**: its text (``label: description``), its evidence memories
(their summaries) and the actions under them. A candidate's score through route *p* is

    s_p(c) = w_text·cos(c, label: description) + w_memory·max cos(c, evidence summaries)
           + w_action·max cos(c, evidence action texts) + w_lexical·max tfidf(c, evidence action texts)
           + w_recency·2^(−age_p / half_life) + w_size·n_p / max_q n_q

(cosines of MiniLM vectors; ``age_p`` the days from the persona's last evidence memory to ``now``,
``n_p`` its evidence count), and the candidate's score is the best route's, ``max_p s_p(c)``; that
route is the explanation of the hit (:attr:`RoutedHit.persona`). A missing part (a persona whose
evidence has no action of the scored kinds) contributes 0. The weights are
:class:`RouteWeights`; the evaluation harness fits them on validation users
(``docs/evaluate.md``, "Persona-routed retrieval").

Python API::

    from personaminer import Workspace
    from personaminer.routing import personas_for

    with Workspace("ws") as ws:
        router = personas_for(ws, "user-1", collection="cluster")   # the user's sample-0 set
        for hit in router.score(["star wars (1977)", "toy story (1995)"]):
            print(hit.score, hit.text, "via", hit.label)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from personaminer.embed import Embedder
from personaminer.errors import UserError

#: the similarity parts of a route score, in the order of :func:`route_components`
PARTS = ("text", "memory", "action", "lexical")


@dataclass(frozen=True)
class RouteWeights:
    """Weights of :mod:`personaminer.routing`'s score. The similarity weights are meant to sum to 1
    (the fitted grid keeps them so); ``recency`` and ``size`` add a per-persona prior."""

    text: float = 0.25
    memory: float = 0.25
    action: float = 0.25
    lexical: float = 0.25
    recency: float = 0.0
    size: float = 0.0
    half_life_days: float = 30.0

    def similarity(self) -> np.ndarray:
        return np.array([self.text, self.memory, self.action, self.lexical], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Route:
    """One persona as a route: its text, evidence and the actions under the evidence."""

    label: str
    description: str
    evidence: list[str]  #: memory ids
    summaries: list[str] = field(default_factory=list)  #: the evidence memories' summaries
    actions: list[str] = field(default_factory=list)  #: texts of the evidence's actions of the scored kinds
    last_ts: dt.datetime | None = None  #: end of the latest evidence memory
    persona_id: str = ""

    @property
    def text(self) -> str:
        return f"{' '.join(self.label.split())}: {' '.join(self.description.split())}"


@dataclass
class RoutedHit:
    """A candidate's score and the persona that produced it."""

    text: str
    score: float
    persona: int  #: index of the routing persona in the router's routes
    label: str
    evidence: list[str]  #: the routing persona's memory ids
    parts: dict[str, float]  #: the routing persona's similarity parts for this candidate


def priors(routes: Sequence[Route], now: dt.datetime | None, weights: RouteWeights) -> np.ndarray:
    """Per route: ``w_recency·2^(−age/half_life) + w_size·n/max n`` (0 for a part without data)."""
    sizes = np.array([len(r.evidence) for r in routes], dtype=np.float64)
    size = sizes / max(float(sizes.max()), 1.0) if len(sizes) else sizes
    rec = np.zeros(len(routes))
    if now is not None:
        for i, r in enumerate(routes):
            if r.last_ts is not None:
                age = max((now - r.last_ts).total_seconds() / 86400.0, 0.0)
                rec[i] = 2.0 ** (-age / weights.half_life_days)
    return weights.recency * rec + weights.size * size


def route_components(route_vectors: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     lexical: Sequence[np.ndarray], candidate_vectors: np.ndarray) -> np.ndarray:
    """The similarity parts, shape (routes, len(PARTS), candidates).

    ``route_vectors[p]`` = (text vector (d,), summary vectors (m, d), action vectors (a, d)), all
    unit vectors; ``lexical[p]`` the best TF-IDF cosine of each candidate to route p's actions
    (zeros when it has none)."""
    out = np.zeros((len(route_vectors), len(PARTS), len(candidate_vectors)), dtype=np.float32)
    for p, (tv, sv, av) in enumerate(route_vectors):
        out[p, 0] = candidate_vectors @ tv
        if len(sv):
            out[p, 1] = (sv @ candidate_vectors.T).max(axis=0)
        if len(av):
            out[p, 2] = (av @ candidate_vectors.T).max(axis=0)
        out[p, 3] = lexical[p]
    return out


def combine(components: np.ndarray, prior: np.ndarray, weights: RouteWeights) -> tuple[np.ndarray, np.ndarray]:
    """(score per candidate, routing persona per candidate) from :func:`route_components`."""
    if not len(components):
        n = components.shape[2] if components.ndim == 3 else 0
        return np.zeros(n, dtype=np.float64), np.full(n, -1, dtype=np.int64)
    per = np.einsum("pkc,k->pc", components, weights.similarity()) + prior[:, None]
    best = per.argmax(axis=0)
    return per[best, np.arange(per.shape[1])], best


def make_tfidf() -> Any:
    """The project's lexical vectorizer (``history_tfidf``, routes): word 1-2-grams, sublinear tf, l2."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")


def tfidf_max(candidates: Sequence[str], groups: Sequence[Sequence[str]],
              vectorizer: Any | None = None) -> list[np.ndarray]:
    """For each group of texts, each candidate's best TF-IDF cosine to one of the group's texts.
    ``vectorizer``: a fitted scikit-learn ``TfidfVectorizer`` (default: one fitted on all the texts)."""
    if vectorizer is None:
        vectorizer = make_tfidf()
        corpus = list(candidates) + [t for g in groups for t in g]
        if not any(c.strip() for c in corpus):
            return [np.zeros(len(candidates)) for _ in groups]
        vectorizer.fit(corpus)
    cand = vectorizer.transform(list(candidates))
    out = []
    for g in groups:
        out.append((vectorizer.transform(list(g)) @ cand.T).toarray().max(axis=0) if g else np.zeros(len(candidates)))
    return out


class PersonaRouter:
    """Scores candidates for one user through their personas (module docstring).

    ``now``: the time recency is measured from (default: the latest evidence of any route)."""

    def __init__(self, routes: Sequence[Route], *, embedder: Embedder, weights: RouteWeights | None = None,
                 now: dt.datetime | None = None) -> None:
        if not routes:
            raise ValueError("a router needs at least one persona")
        self.routes = list(routes)
        self.embedder = embedder
        self.weights = weights or RouteWeights()
        stamps = [r.last_ts for r in self.routes if r.last_ts is not None]
        self.now = now or (max(stamps) if stamps else None)
        self._vectors = [self._route_vectors(r) for r in self.routes]

    def _route_vectors(self, r: Route) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        enc: Callable[[list[str]], np.ndarray] = self.embedder.encode
        text = enc([r.text])[0]
        empty = np.zeros((0, len(text)), np.float32)
        return text, enc(r.summaries) if r.summaries else empty, enc(r.actions) if r.actions else empty

    def score(self, candidates: Sequence[str]) -> list[RoutedHit]:
        """One hit per candidate, in the given order (sort by ``score`` to rank)."""
        cands = list(candidates)
        if not cands:
            return []
        comp = route_components(self._vectors, tfidf_max(cands, [r.actions for r in self.routes]),
                                self.embedder.encode(cands))
        scores, best = combine(comp, priors(self.routes, self.now, self.weights), self.weights)
        return [RoutedHit(c, float(scores[i]), int(best[i]), self.routes[best[i]].label,
                          list(self.routes[best[i]].evidence),
                          {k: float(comp[best[i], j, i]) for j, k in enumerate(PARTS)})
                for i, c in enumerate(cands)]


def load_routes(con: Any, set_id: str, kinds: Sequence[str] | None = None) -> list[Route]:
    """The routes of one stored persona set (personas in position order), with each persona's evidence
    summaries and the texts of the actions under them (of ``kinds``, default every kind but ``click``)."""
    from personaminer import tables

    return tables.personas.routes(con, [set_id], list(kinds) if kinds else None).get(set_id, [])


def personas_for(ws: Any, user_id: str, *, collection: str | None = None, builder: str = "cluster",
                 embedder: Embedder | None = None, weights: RouteWeights | None = None,
                 kinds: Sequence[str] | None = None) -> PersonaRouter:
    """A :class:`PersonaRouter` over the user's sample-0 persona set (not a failed one) of ``collection`` (or, without
    one, of ``builder``; refused when the user has several such sets: name the collection).
    Recency is measured from the user's split cutoff when the workspace is split, else from the
    latest evidence."""
    from personaminer import tables
    from personaminer.embed import MiniLMEmbedder

    ids = tables.personas.ok_sets(ws.con, user_id, collection, None if collection else builder)
    where = f"collection {collection!r}" if collection else f"builder {builder!r}"
    if not ids:
        raise UserError(f"user {user_id!r} has no usable persona set of {where}: build one with "
                        f"`personaminer personas -w {ws.path} --user {user_id}`")
    if len(ids) > 1:
        raise UserError(f"user {user_id!r} has {len(ids)} persona sets of {where} (collections: "
                        f"{', '.join(sorted(c or '(none)' for _, c in ids))}): pass collection=")
    routes = load_routes(ws.con, ids[0][0], kinds)
    return PersonaRouter(routes, embedder=embedder or MiniLMEmbedder(), weights=weights, now=ws.cutoff(user_id))
