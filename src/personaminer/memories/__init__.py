"""Stage 1: intent memories, contiguous same-intent actions of a user-day with a summary.

``build_memories`` is the pure per-user function; ``run_memories`` maps it over a workspace.
"""

from personaminer.memories.build import DayResult, MemoryConfig, Segment, Segmentation, build_memories
from personaminer.memories.run import load_memories, run_memories, verify_memories

__all__ = ["DayResult", "MemoryConfig", "Segment", "Segmentation", "build_memories", "load_memories",
           "run_memories", "verify_memories"]
