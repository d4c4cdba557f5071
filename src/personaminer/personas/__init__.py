"""Stage 2: several evidence-grounded personas per user.

Builders: ``cluster`` (embed + cluster + LLM label), ``model`` (the persona model writes the
whole set; the model training improves), ``single`` (one persona: the baseline).
"""

from personaminer.personas.base import MemoryItem, PersonaConfig
from personaminer.personas.cluster import ClusterBuilder
from personaminer.personas.model import ModelBuilder, validate_draft
from personaminer.personas.run import export_personas, make_builder, run_personas, verify_personas
from personaminer.personas.single import SingleBuilder

__all__ = ["ClusterBuilder", "MemoryItem", "ModelBuilder", "PersonaConfig", "SingleBuilder", "export_personas",
           "make_builder", "run_personas", "validate_draft", "verify_personas"]
