"""A trained PEFT LoRA adapter as a GGUF adapter file for llama.cpp.

llama.cpp's adapter format (what ``convert_lora_to_gguf.py`` writes): ``general.type =
adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, the base model's
``general.architecture``, and per adapted weight two tensors ``<gguf name>.lora_a`` (shape
``[r, in]``) and ``<gguf name>.lora_b`` (``[out, r]``); llama.cpp scales by ``alpha / r``
like PEFT. The GGUF names come from gguf-py's tensor-name map. For the ``llama``
architecture, the converter stores ``q_proj``/``k_proj`` rows permuted for llama.cpp's RoPE
layout; the same row permutation is applied to ``lora_b`` of those projections.

Writing the file with gguf-py here avoids depending on llama.cpp's source tree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

ARCH = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<base>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's q/k row permutation (``convert_hf_to_gguf.LlamaModel.permute``)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def adapter_tensors(state: dict[str, Any], model_config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Map a PEFT adapter state dict to GGUF tensor names (fp32 numpy arrays)."""
    import gguf

    arch_name = ARCH.get((model_config.get("architectures") or [""])[0])
    if arch_name is None:
        raise ValueError(f"GGUF adapter export supports {', '.join(ARCH)}, not {model_config.get('architectures')}")
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    names = gguf.get_tensor_name_map(arch, int(model_config["num_hidden_layers"]))
    n_head = int(model_config["num_attention_heads"])
    n_kv = int(model_config.get("num_key_value_heads") or n_head)
    out: dict[str, np.ndarray] = {}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise ValueError(f"not a LoRA weight: {key}")
        base = m["base"]
        gguf_name = names.get_name(base + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise ValueError(f"no GGUF name for {base}")
        w = tensor.detach().float().cpu().numpy()
        if m["ab"] == "B" and arch_name == "llama":
            if base.endswith("q_proj"):
                w = _permute(w, n_head, n_head)
            elif base.endswith("k_proj"):
                w = _permute(w, n_head, n_kv)
        out[f"{gguf_name}.lora_{m['ab'].lower()}"] = np.ascontiguousarray(w, dtype=np.float32)
    return out


def export_gguf_adapter(adapter_dir: str | Path, out: str | Path) -> Path:
    """Write ``out`` (a llama.cpp LoRA adapter) from a PEFT adapter folder saved by the trainer."""
    import gguf
    from safetensors.torch import load_file

    adapter_dir, out = Path(adapter_dir), Path(out)
    peft_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    model_config = json.loads((adapter_dir / "base_config.json").read_text())
    tensors = adapter_tensors(load_file(str(adapter_dir / "adapter_model.safetensors")), model_config)
    arch_name = ARCH[model_config["architectures"][0]]
    tmp = out.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(peft_config["lora_alpha"]))
    for name, w in sorted(tensors.items()):
        writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out
