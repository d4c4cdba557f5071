"""LLM runtime: the backend interface, backends, model catalog and answer cache.

>>> from personaminer.llm import ChatRequest, LLMConfig, make_llm
>>> llm = make_llm(LLMConfig())                       # doctest: +SKIP
>>> llm.generate([ChatRequest(messages=[{"role": "user", "content": "Hi"}])])  # doctest: +SKIP
"""

from personaminer.llm.base import (
    DEFAULT_SYSTEM_MESSAGE,
    LLM,
    ChatRequest,
    ChatResult,
    ModelNotAvailable,
    StructuredResult,
    p_yes_from_logprobs,
)
from personaminer.llm.cache import CachedLLM, LLMCache, cache_key
from personaminer.llm.config import LlamaCppConfig, LLMConfig, OpenAIConfig, make_backend, make_llm

__all__ = [
    "DEFAULT_SYSTEM_MESSAGE",
    "LLM",
    "CachedLLM",
    "ChatRequest",
    "ChatResult",
    "LLMCache",
    "LLMConfig",
    "LlamaCppConfig",
    "ModelNotAvailable",
    "OpenAIConfig",
    "StructuredResult",
    "cache_key",
    "make_backend",
    "make_llm",
    "p_yes_from_logprobs",
]
