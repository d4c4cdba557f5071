"""The LLM claim decomposition (``--claims llm``): validation, fallback, and its use in scoring."""

from __future__ import annotations

import numpy as np

from personaminer.quality import PersonaView, QualityConfig, SetContext, score_set
from personaminer.quality.scorer import decompose_claims
from tests.fakes import claim_splitter


def test_decomposition_is_validated_and_falls_back_to_sentences() -> None:
    llm = claim_splitter({"golf": ["The user plays golf.", "The user plays on weekends."],
                    "chess": ["The user plays chess."] * 9,  # more than max_claims, every attempt
                    "Swim": ["The user swims " + "very " * 80 + "often."]})  # longer than 300 characters
    out = decompose_claims(["Plays golf on weekends.", "Likes chess. Reads.", "Swims a lot. Dives."], llm,
                           max_claims=8)
    assert out[0] == (["The user plays golf.", "The user plays on weekends."], True)
    assert out[1] == (["Likes chess.", "Reads."], False)  # invalid after the retries: its sentences
    assert out[2] == (["Swims a lot.", "Dives."], False)
    retries = [r for r in llm.seen if len(r.messages) > 2]
    assert len(retries) == 4 and "1 to 8 claims" in retries[0].messages[-1]["content"]
    assert llm.seen[0].json_schema is not None and llm.seen[0].prompt_name == "claim_split"


def test_score_set_judges_the_decomposed_claims() -> None:
    vecs = np.eye(4)
    ctx = SetContext("s", "u", [PersonaView("p0", "Golfer", "Plays golf and tennis.", ["m0", "m1"]),
                                PersonaView("p1", "Chess", "Likes chess. Reads.", ["m2", "m3"])],
                     ["m0", "m1", "m2", "m3"], vecs, np.eye(2, 4), np.zeros((0, 4)))
    llm = claim_splitter({"golf": ["The user plays golf.", "The user plays tennis."], "chess": ["too many"] * 9})
    values, _, verdicts = score_set(ctx, QualityConfig(claims="llm"), embedder=None, llm=llm,  # type: ignore[arg-type]
                                    memory_text={m: m for m in ctx.memory_ids})
    assert [v["claim"] for v in verdicts] == ["The user plays golf.", "The user plays tennis.", "Likes chess.", "Reads."]
    assert values["claim_split_failures"] == 1.0 and values["n_claims"] == 4.0
    assert values["truthfulness"] == 0.25  # golfer: 1 of 2 supported; chess: 0 of 2
    sentences, _, v2 = score_set(ctx, QualityConfig(), embedder=None, llm=llm,  # type: ignore[arg-type]
                                 memory_text={m: m for m in ctx.memory_ids})
    assert [v["claim"] for v in v2][:1] == ["Plays golf and tennis."] and "claim_split_failures" not in sentences


def test_the_label_does_not_choose_the_evidence_the_judge_reads() -> None:
    """The judge is shown the ``max_evidence`` memories closest to the description; the label (here
    pointing at another memory) must not change them."""
    vecs = np.eye(3)
    for label_vec in (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])):
        ctx = SetContext("s", "u", [PersonaView("p0", "Anything", "Plays golf.", ["m0", "m1", "m2"])],
                         ["m0", "m1", "m2"], vecs, (0.9 * label_vec + 0.4 * vecs[0])[None, :], np.zeros((0, 3)),
                         label_vectors=label_vec[None, :], description_vectors=vecs[:1])
        _, _, verdicts = score_set(ctx, QualityConfig(max_evidence=1), embedder=None,  # type: ignore[arg-type]
                                   llm=claim_splitter({}), memory_text={m: m for m in ctx.memory_ids})
        assert [v["evidence"] for v in verdicts] == [["m0"]]
