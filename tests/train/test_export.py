"""The GGUF adapter export: names and shapes, and (real model) both llama.cpp engines run it like PEFT does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed")
pytest.importorskip("peft", reason="the train extra is not installed")

from personaminer.train.export import _permute, adapter_tensors  # noqa: E402

LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2}


def test_tensor_names_shapes_and_permutation() -> None:
    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(8, 64),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(64, 8),
        "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight": torch.randn(32, 8),
    }
    out = adapter_tensors(state, LLAMA_CONFIG)
    assert set(out) == {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", "blk.1.attn_v.weight.lora_b"}
    assert out["blk.0.attn_q.weight.lora_a"].shape == (8, 64)
    q_b = state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].numpy()
    assert np.array_equal(out["blk.0.attn_q.weight.lora_b"], _permute(q_b, 4, 4))
    assert not np.array_equal(out["blk.0.attn_q.weight.lora_b"], q_b)  # llama q rows are permuted
    assert np.array_equal(out["blk.1.attn_v.weight.lora_b"],
                          state["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"].numpy())
    qwen = adapter_tensors(state, {**LLAMA_CONFIG, "architectures": ["Qwen2ForCausalLM"]})
    assert np.array_equal(qwen["blk.0.attn_q.weight.lora_b"], q_b)  # qwen2 is stored unpermuted


def test_unsupported_architecture() -> None:
    with pytest.raises(ValueError, match="supports"):
        adapter_tensors({}, {**LLAMA_CONFIG, "architectures": ["GPT2LMHeadModel"]})


def _token_logps(logits: np.ndarray, tokens: list[int]) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return np.array([lp[i, tokens[i + 1]] for i in range(len(tokens) - 1)])


def _random_smollm2_adapter(tmp_path: Path) -> tuple:  # type: ignore[type-arg]
    """SmolLM2 with a random (non-trivial) LoRA: (tokenizer, PEFT model, base GGUF, exported adapter GGUF)."""
    from peft import LoraConfig, get_peft_model

    from personaminer.llm.base import ModelNotAvailable
    from personaminer.train.export import export_gguf_adapter
    from personaminer.train.hf import gguf_base, load_model, load_tokenizer

    try:
        tok = load_tokenizer("smollm2-135m-instruct")
        base = load_model("smollm2-135m-instruct")
        gguf = gguf_base("smollm2-135m-instruct")
    except ModelNotAvailable as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                 "o_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    (adapter / "base_config.json").write_text(json.dumps(base.config.to_dict(), default=str))
    return tok, model, gguf, export_gguf_adapter(adapter, tmp_path / "a.gguf")


@pytest.mark.real_model
def test_llama_cpp_runs_the_exported_adapter_like_peft(tmp_path: Path) -> None:
    """A random (non-trivial) LoRA on SmolLM2: the change it makes to each token's log-prob must be
    the same in llama.cpp (Q4_1 base + adapter GGUF) as in transformers (fp32 base + PEFT)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    tok, model, gguf, out = _random_smollm2_adapter(tmp_path)

    text = "The user searched for trail running shoes, then for a half marathon training plan in spring."
    tokens = tok(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([tokens])
    with torch.no_grad():
        hf_with = _token_logps(model(ids).logits[0].numpy(), tokens)
        with model.disable_adapter():
            hf_without = _token_logps(model(ids).logits[0].numpy(), tokens)

    def llama_logps(lora: Path | None) -> np.ndarray:
        kw = {"lora_path": str(lora)} if lora else {}
        llm = llama_cpp.Llama(model_path=str(gguf), logits_all=True, n_ctx=256, n_threads=2, verbose=False, **kw)
        llm.eval(tokens)
        logits = np.array(llm.scores[: len(tokens)])
        llm.close()
        return _token_logps(logits, tokens)

    cpp_delta = llama_logps(out) - llama_logps(None)
    hf_delta = hf_with - hf_without
    assert np.abs(hf_delta).mean() > 0.3  # the adapter really changes the model
    corr = float(np.corrcoef(hf_delta, cpp_delta)[0, 1])
    assert corr > 0.9, f"llama.cpp's adapter effect differs from PEFT's (correlation {corr:.3f})"
    assert np.abs(hf_delta - cpp_delta).mean() < 0.35 * np.abs(hf_delta).mean()


@pytest.mark.real_model
def test_the_server_engine_runs_the_exported_adapter_like_peft(tmp_path: Path) -> None:
    """The LoRA adapter through the default engine (llama.cpp's server, in-process) picks the tokens
    PEFT picks.

    Free-running greedy text cannot be compared: the Q4_1 base already departs from the fp32 base
    (measured: "1. Grapefruit 2. Oranges" vs "1. Bananas 2. Grapes"), and one early difference
    changes everything after it. So PEFT's greedy continuation is teacher-forced: at each of its
    16 positions the server (same prompt, PEFT's tokens so far) predicts one greedy token, and we
    count agreements. With the adapter, the server must agree with PEFT+adapter about as often as
    the quantized base agrees with the fp32 base (measured 15/16 and 14/15), and more often than
    the server without the adapter agrees with PEFT+adapter (measured 12/16): the adapter is
    loaded and applied as PEFT applies it.
    """
    import httpx

    from personaminer.llm.base import with_system_message

    pytest.importorskip("xllamacpp", reason="the default engine (xllamacpp) is not installed")
    from personaminer.llm.server import LlamaServerLLM

    tok, model, gguf, out = _random_smollm2_adapter(tmp_path)

    messages = with_system_message([{"role": "user", "content": "Name three fruits."}])
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    eos = tok.convert_tokens_to_ids("<|im_end|>")

    def peft_greedy(with_adapter: bool) -> list[int]:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            if with_adapter:
                gen = model.generate(ids, max_new_tokens=16, do_sample=False)
            else:
                with model.disable_adapter():
                    gen = model.generate(ids, max_new_tokens=16, do_sample=False)
        return gen[0, len(prompt):].tolist()

    def agreement(lora: Path | None, seq: list[int]) -> float:
        hits = []
        with LlamaServerLLM(gguf, n_ctx=512, adapter=lora) as llm:
            llm.start()
            root = (llm.base_url or "")[: -len("/v1")]
            for i, want in enumerate(seq):
                r = httpx.post(f"{root}/completion", json={"prompt": prompt + seq[:i], "n_predict": 1, "temperature": 0,
                                                             "n_probs": 1}, timeout=60).json()
                probs = r.get("completion_probabilities") or []
                hits.append((probs[0]["id"] if probs else eos) == want)
        return sum(hits) / len(hits)

    hf_with, hf_without = peft_greedy(True), peft_greedy(False)
    assert hf_with != hf_without, "the random adapter must change PEFT's greedy answer"
    with_lora = agreement(out, hf_with)
    floor = agreement(None, hf_without)  # quantized base vs fp32 base: the most we can expect
    without_lora = agreement(None, hf_with)
    assert with_lora >= floor - 1 / 16, (with_lora, floor)
    assert with_lora > without_lora, (with_lora, without_lora)
