"""Persona quality: cohesion, persona-evidence alignment, truthfulness and a combined score."""

from personaminer.quality.metrics import REGISTRY, Metric, PersonaView, SetContext, register, split_claims
from personaminer.quality.scorer import QualityConfig, WorkspaceData, final_score, run_scores, score_set, summarize

__all__ = ["REGISTRY", "Metric", "PersonaView", "QualityConfig", "SetContext", "WorkspaceData", "final_score",
           "register", "run_scores", "score_set", "split_claims", "summarize"]
