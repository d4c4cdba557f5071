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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.llm.validated import Usage, ask
from personaminer.personas.base import (
    LABEL_SCHEMA,
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
            reqs, shown_per = [], []
            for c in kept:
                members = [memories[int(i)] for i in c]
                sub = representative_subset(members, vectors[c], config.max_memories)
                shown = [members[i] for i in sub]
                shown_per.append(members)
                reqs.append(request(prompt, LABEL_SCHEMA, config, s, n=len(shown), memories=numbered(shown)))
            usages = [Usage() for _ in reqs]
            answers = ask(llm, reqs, parse_label, config.max_retries, usages,
                      retry_temperature=config.retry_temperature)
            total = Usage(notes=[f"{len(unassigned)} outlier memories left unassigned"] if unassigned else [])
            items = []
            for members, (value, _), u in zip(shown_per, answers, usages, strict=True):
                for f in ("requests", "model_calls", "prompt_tokens", "completion_tokens"):
                    setattr(total, f, getattr(total, f) + getattr(u, f))
                total.notes.extend(u.notes)
                if value is None:
                    total.notes.append(f"a cluster of {len(members)} memories got no valid label and was dropped")
                    unassigned.extend(memories.index(m) for m in members)
                    continue
                items.append((value.label, value.description, [m.memory_id for m in members]))
            ps = new_set(self.name, user_id, config, s, llm.model_id, f"{prompt.name}.v{prompt.version}",
                         memories=memories, lineage=lineage)
            sets.append(finish_set(ps, items, total, n_memories=len(memories),
                                   unassigned=[memories[i].memory_id for i in sorted(set(unassigned))],
                                   status="repaired" if any(u.requests > 1 for u in usages) else "ok"))
        return sets
