"""The default MiniLM embedder on real AOL queries: normalisation, related vs unrelated, cache."""

from __future__ import annotations

import numpy as np
import pytest

from personaminer.embed import Embedder, MiniLMEmbedder
from personaminer.llm.base import ModelNotAvailable
from tests.aol_testkit import aol_queries


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> MiniLMEmbedder:
    try:
        return MiniLMEmbedder(cache_path=tmp_path_factory.mktemp("emb") / "emb.sqlite")
    except ModelNotAvailable as err:
        pytest.skip(str(err))


def test_vectors_are_normalised_float32(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    v = embedder.encode(["golf clubs", "", "a" * 5000])
    assert v.dtype == np.float32 and v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_related_queries_are_closer_than_unrelated(embedder: MiniLMEmbedder) -> None:
    golf = aol_queries("3327666", "golf", 12)
    recipes = aol_queries("3141170", "recipe", 12)
    assert len(golf) >= 8 and len(recipes) >= 8
    g, r = embedder.encode(golf), embedder.encode(recipes)
    claim_golf, claim_cook = embedder.encode(["The user plays golf.", "The user cooks and looks for recipes."])
    # claims: matching evidence scores higher than the other user's evidence
    assert (g @ claim_golf).max() > (r @ claim_golf).max() + 0.1
    assert (r @ claim_cook).max() > (g @ claim_cook).max() + 0.1
    # queries: mean within-topic cosine beats cross-topic cosine
    within = (np.triu(g @ g.T, 1).sum() / (len(g) * (len(g) - 1) / 2) + np.triu(r @ r.T, 1).sum() / (len(r) * (len(r) - 1) / 2)) / 2
    across = float((g @ r.T).mean())
    assert within > across + 0.15, (within, across)


def test_cache_hit_skips_the_model(embedder: MiniLMEmbedder) -> None:
    texts = aol_queries("678360", "fishing", 10)
    first = embedder.encode(texts)
    before = embedder.encoded_texts
    second = embedder.encode(list(reversed(texts)))
    assert embedder.encoded_texts == before, "all texts should come from the cache"
    assert np.array_equal(second, first[::-1])
    # duplicates in one call are embedded once
    embedder.encode(["brand new text xyz", "brand new text xyz"])
    assert embedder.encoded_texts == before + 1


def test_uncached_matches_cached(embedder: MiniLMEmbedder) -> None:
    plain = MiniLMEmbedder(cache_path=None)
    texts = aol_queries("2855040", "lyrics", 5)
    assert np.allclose(plain.encode(texts), embedder.encode(texts), atol=1e-6)
    assert plain.model_id == embedder.model_id
