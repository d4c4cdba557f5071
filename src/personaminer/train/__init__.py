"""Training the persona model with groupwise (listwise) DPO.

Needs the ``train`` extra (torch, transformers, peft, gguf): ``pip install 'personaminer[train]'``.

- :mod:`~personaminer.train.losses`: Plackett-Luce listwise DPO, softmax DPO, pairwise DPO;
- :mod:`~personaminer.train.groups`: preference groups sampled from the persona model and
  ranked by the quality score;
- :mod:`~personaminer.train.hf`: the Hugging Face causal LM (from the packaged GGUF files);
- :mod:`~personaminer.train.trainer`: LoRA training with a frozen reference;
- :mod:`~personaminer.train.export`: the LoRA adapter as a GGUF file for llama.cpp.
"""
