"""Fixtures for tests/llm; the helpers live in llm_testkit.py."""

from tests.llm.llm_testkit import judge_model, llama_server_factory, small_model_path  # noqa: F401
