"""Builder ``cluster``: embed the memories, cluster them, and let the LLM label each cluster.

**Choosing the number of personas.** Agglomerative clustering of the MiniLM embeddings for
every k in ``[min_personas, max_personas]`` (capped at n - 1); k is the one with the highest
cosine silhouette score, the smaller k on ties. A user with fewer than four memories gets one
cluster. The linkage is ``config.linkage``: ``ward`` (default) on L2-normalised vectors, or
``average`` on cosine distance, which tends to split off one outlying memory at a time (see
``PersonaConfig``).

**Outliers.** Memories in clusters smaller than ``min_cluster_size`` are left unassigned and
listed in the set's ``unassigned`` field: never folded into a persona they do not support.

**Labels.** One LLM call per cluster sees that cluster's memories only and writes its label
and description; a cluster whose answer stays invalid after the retries is dropped and noted.

**Distinct labels** (``config.distinct_labels``, on by default). Labelled one at a time, two
clusters often get the same label ("food", "food"). Going through the clusters from the largest
down, a cluster whose label repeats one already kept (MiniLM cosine of the two labels, each
embedded alone, >= ``config.label_similarity``) is asked again with prompt
``persona_label_distinct``, which shows its own memories, the labels taken so far and the words
that set this cluster apart from the user's others (:func:`cluster_keywords`, BERTopic's
class-based TF-IDF). The new
answer replaces the old one when it is valid and no longer repeats a kept label (a repeat is an
invalid answer, re-asked with the error fed back like any other, up to ``max_retries`` times);
otherwise the first answer stays and the set's note says which label still repeats. So the first pass is
unchanged (and cached), and a relabel costs one to ``1 + max_retries`` calls per repeated label.

**Keyword labels** (``config.keyword_labels``, on by default). A label that still repeats after
every relabel gets the cluster's three most distinctive words appended, ``"film (sci-fi, war,
children's)"``, as BERTopic names a topic by its c-TF-IDF words; noted in the set. No model call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.llm.validated import Usage, ask
from personaminer.personas.base import (
    LABEL_CHARS,
    LABEL_SCHEMA,
    LabelAnswer,
    MemoryItem,
    PersonaConfig,
    finish_set,
    new_set,
    numbered,
    parse_label,
    representative_subset,
    request,
)
from personaminer.prompts import load_prompt
from personaminer.schema import PersonaSet

PROMPT = "persona_label"
DISTINCT_PROMPT = "persona_label_distinct"


def cluster_keywords(texts_per_cluster: list[list[str]], top: int = 6) -> list[list[str]]:
    """The ``top`` words that set each cluster apart from the user's other clusters, by BERTopic's
    class-based TF-IDF: the cluster's memories are one document, and a word's weight is its
    frequency in that document times log(1 + A / f), with A the mean number of words per cluster
    and f the word's frequency over all clusters (English stop words and words of one or two
    letters left out). A word found in every cluster (with two or more clusters) is left out too:
    the summaries' template words ("centered", "searched", "clicked", "bought", "rated") are
    frequent enough to top the list otherwise."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(t) for t in texts_per_cluster]
    try:
        vec = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w'-]{2,}\b")
        counts = vec.fit_transform(docs).toarray().astype(float)
    except ValueError:  # no words at all
        return [[] for _ in docs]
    words = vec.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    idf = np.log1p(counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1.0))
    weight = tf * idf
    if len(docs) > 1:
        weight[:, (counts > 0).all(axis=0)] = 0.0
    return [[str(words[j]) for j in np.argsort(-row, kind="stable")[:top] if row[j] > 0] for row in weight]


def repeats(vector: np.ndarray, kept: list[np.ndarray], threshold: float) -> int | None:
    """The index of the ``kept`` unit vector most alike (cosine) to a label's unit vector, when that
    cosine is at least ``threshold``; ``None`` when the label repeats none of them."""
    if not kept:
        return None
    sims = [float(vector @ k) for k in kept]
    j = int(np.argmax(sims))
    return j if sims[j] >= threshold else None


def distinct_parser(unit: Callable[[str], np.ndarray], taken_vectors: list[np.ndarray], taken_labels: list[str],
                    threshold: float) -> Callable[[str], LabelAnswer]:
    """``parse_label`` that also refuses a label repeating one of ``taken_labels`` (so it is asked again)."""

    def parse(text: str) -> LabelAnswer:
        answer = parse_label(text)
        j = repeats(unit(answer.label), taken_vectors, threshold)
        if j is not None:
            raise ValueError(f"the label {answer.label!r} repeats {taken_labels[j]!r}, a label already taken; "
                             f"name what only these memories are about")
        return answer

    return parse


def keyword_label(answer: LabelAnswer, keywords: list[str]) -> LabelAnswer | None:
    """``answer`` with its label followed by up to three of ``keywords`` in parentheses (as many as fit
    in a label; a word the label already has is skipped), or ``None`` when no keyword is left."""
    have = set(re.findall(r"[\w'-]+", answer.label.lower()))
    keywords = [k for k in keywords if k.lower() not in have]
    for n in (3, 2, 1):
        label = f"{answer.label} ({', '.join(keywords[:n])})"
        if keywords[:n] and len(label) <= LABEL_CHARS:
            return LabelAnswer(label=label, description=answer.description)
    return None


def relabel_repeats(llm: LLM, embedder: Embedder, config: PersonaConfig, sample: int, shown: list[list[MemoryItem]],
                    sizes: list[int], answers: list[tuple[LabelAnswer | None, str | None]],
                    usages: list[Usage], keywords: list[list[str]]) -> tuple[list[tuple[LabelAnswer | None, str | None]],
                                                                           list[str]]:
    """The answers with repeated labels re-asked (module docstring, "Distinct labels"), and notes."""
    prompt = load_prompt(DISTINCT_PROMPT)
    out, notes = list(answers), []
    order = sorted((i for i, (v, _) in enumerate(answers) if v is not None), key=lambda i: (-sizes[i], i))
    kept_labels: list[str] = []
    kept_vectors: list[np.ndarray] = []

    def unit(text: str) -> np.ndarray:
        v = embedder.encode([text.strip().lower()])[0]
        return v / max(float(np.linalg.norm(v)), 1e-12)

    for i in order:
        value = out[i][0]
        assert value is not None
        vec = unit(value.label)
        if repeats(vec, kept_vectors, config.label_similarity) is not None:
            taken = "\n".join(f"- {label}" for label in kept_labels)
            req = request(prompt, LABEL_SCHEMA, config, sample, n=len(shown[i]), memories=numbered(shown[i]),
                          taken=taken, keywords=", ".join(keywords[i]) or "(none)")
            u = Usage()
            parse = distinct_parser(unit, list(kept_vectors), list(kept_labels), config.label_similarity)
            (new, raw), = ask(llm, [req], parse, config.max_retries, [u], retry_temperature=config.retry_temperature)
            usages[i].add_counts(u)
            usages[i].notes.extend(u.notes)
            if new is not None:
                notes.append(f"label {value.label!r} repeated another; relabelled {new.label!r}")
                out[i], vec, value = (new, raw), unit(new.label), new
            elif config.keyword_labels and (named := keyword_label(value, keywords[i])) is not None:
                notes.append(f"label {value.label!r} still repeated another after a relabel; "
                             f"named by its cluster's keywords: {named.label!r}")
                out[i], vec, value = (named, out[i][1]), unit(named.label), named
            else:
                notes.append(f"label {value.label!r} still repeats another after a relabel")
        kept_labels.append(value.label)
        kept_vectors.append(vec)
    return out, notes


def choose_clusters(vectors: np.ndarray, min_k: int, max_k: int, linkage: str = "ward") -> np.ndarray:
    """Cluster labels by the silhouette rule in the module docstring."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    if n < 4:
        return np.zeros(n, dtype=int)
    if linkage not in ("ward", "average"):
        raise ValueError(f"linkage must be 'ward' or 'average', not {linkage!r}")
    if linkage == "ward":  # Ward on unit vectors: squared distance 2 - 2 cos
        points, options = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12), {}
    else:
        points, options = vectors, {"metric": "cosine"}
    best: tuple[float, np.ndarray] | None = None
    for k in range(max(2, min_k), min(max_k, n - 1) + 1):
        labels = AgglomerativeClustering(n_clusters=k, linkage=linkage, **options).fit_predict(points)
        score = float(silhouette_score(vectors, labels, metric="cosine"))
        if best is None or score > best[0] + 1e-9:
            best = (score, labels)
    return best[1] if best is not None else np.zeros(n, dtype=int)


class ClusterBuilder:
    """Cluster-then-label, the clustering baseline."""

    name = "cluster"
    prompt = PROMPT

    def prompts(self, config: PersonaConfig) -> tuple[str, ...]:
        """Every prompt the sets of ``config`` are written with (their versions enter the lineage)."""
        return (PROMPT, DISTINCT_PROMPT) if config.distinct_labels else (PROMPT,)

    def build(self, user_id: str, memories: Sequence[MemoryItem], config: PersonaConfig, *, embedder: Embedder,
              llm: LLM | None, lineage: str = "") -> list[PersonaSet]:
        if llm is None:
            raise ValueError("the cluster builder needs an llm to write labels")
        prompt = load_prompt(PROMPT)
        vectors = embedder.encode([m.summary for m in memories])
        labels = choose_clusters(vectors, config.min_personas, config.max_personas, config.linkage)
        clusters = [np.flatnonzero(labels == c) for c in sorted(set(labels.tolist()))]
        kept = [c for c in clusters if len(c) >= config.min_cluster_size or len(clusters) == 1]
        outliers = sorted(int(i) for c in clusters if not any(c is k for k in kept) for i in c)
        sets = []
        for s in range(config.samples):
            unassigned = list(outliers)
            reqs, shown_per, shown_all = [], [], []
            for c in kept:
                members = [memories[int(i)] for i in c]
                sub = representative_subset(members, vectors[c], config.max_memories)
                shown = [members[i] for i in sub]
                shown_per.append(members)
                shown_all.append(shown)
                reqs.append(request(prompt, LABEL_SCHEMA, config, s, n=len(shown), memories=numbered(shown)))
            usages = [Usage() for _ in reqs]
            answers = ask(llm, reqs, parse_label, config.max_retries, usages,
                      retry_temperature=config.retry_temperature)
            repaired = any(u.requests > 1 for u in usages)
            relabel_notes: list[str] = []
            if config.distinct_labels:
                keywords = cluster_keywords([[m.summary for m in members] for members in shown_per])
                answers, relabel_notes = relabel_repeats(llm, embedder, config, s, shown_all,
                                                         [len(m) for m in shown_per], answers, usages, keywords)
            total = Usage(notes=[f"{len(unassigned)} outlier memories left unassigned"] if unassigned else [])
            total.notes.extend(relabel_notes)
            items = []
            for members, (value, _), u in zip(shown_per, answers, usages, strict=True):
                total.add_counts(u)
                total.notes.extend(u.notes)
                if value is None:
                    total.notes.append(f"a cluster of {len(members)} memories got no valid label and was dropped")
                    unassigned.extend(memories.index(m) for m in members)
                    continue
                items.append((value.label, value.description, [m.memory_id for m in members]))
            ps = new_set(self.name, user_id, config, s, llm.model_id,
                         "+".join(f"{p.name}.v{p.version}" for p in map(load_prompt, self.prompts(config))),
                         memories=memories, lineage=lineage)
            sets.append(finish_set(ps, items, total, n_memories=len(memories),
                                   unassigned=[memories[i].memory_id for i in sorted(set(unassigned))],
                                   status="repaired" if repaired else "ok"))
        return sets
