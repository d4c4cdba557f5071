"""Fixtures for tests/llm; the helpers live in llm_testkit.py."""

from llm_testkit import fake_llm_cls, judge_model, llama_server_factory, small_model_path  # noqa: F401
