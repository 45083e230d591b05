import subprocess
import sys
from pathlib import Path

import numpy as np

from processors.twin.embeddings import EMBEDDING_DIM, cosine_matrix, get_embedder

REPO = Path(__file__).resolve().parents[3]


def test_importing_the_module_does_not_load_torch():
    code = "import sys, processors.twin.embeddings; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_embed_returns_unit_float32_rows(embedder):
    vecs = embedder.embed(["Why did you pick Kafka?", "What made you choose Kafka?", "I like pasta with basil."])
    assert vecs.shape == (3, EMBEDDING_DIM) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # a paraphrase is far closer than an unrelated sentence
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)


def test_batching_does_not_change_vectors(embedder):
    texts = [f"question {i} about queues" for i in range(5)]
    small = type(embedder)(batch_size=2)
    small._model = embedder.model  # share the loaded weights; only the batch size differs
    assert np.allclose(small.embed(texts), embedder.embed(texts), atol=1e-5)


def test_embed_one_is_cached_and_matches_embed(embedder):
    text = "A sentence for the cache test."
    first = embedder.embed_one(text)
    assert embedder.embed_one(text) is first
    assert np.allclose(first, embedder.embed([text])[0], atol=1e-6)
    assert not first.flags.writeable
    mixed = embedder.embed_cached([text, "Another one not seen before."])
    assert np.allclose(mixed[0], first) and mixed.shape == (2, EMBEDDING_DIM)


def test_embed_cached_embeds_a_repeated_text_once(embedder):
    fresh = type(embedder)()
    fresh._model = embedder.model  # share the loaded weights; the cache and the counts are this one's
    seen: list[list[str]] = []
    real_embed = fresh.embed
    fresh.embed = lambda texts: seen.append(list(texts)) or real_embed(texts)
    texts = ["Said twice in one call.", "Said once.", "Said twice in one call."]
    out = fresh.embed_cached(texts)
    assert seen == [["Said twice in one call.", "Said once."]]
    assert np.allclose(out[0], out[2]) and np.allclose(out, embedder.embed(texts), atol=1e-5)
    fresh.embed_cached(texts)  # all cached now: no model call
    assert len(seen) == 1


def test_singleton_is_shared(embedder):
    assert get_embedder() is embedder


def test_token_embeddings_drop_special_tokens(embedder):
    a, b = embedder.token_embeddings(["Hello world, unbelievable!", "hi"])
    assert a.tokens[:2] == ["hello", "world"] and "[CLS]" not in a.tokens and "[SEP]" not in a.tokens
    assert a.vectors.shape == (len(a.tokens), EMBEDDING_DIM) and a.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    assert b.tokens == ["hi"]
    # Contextual: the same word piece gets different vectors in different sentences.
    x, y = embedder.token_embeddings(["the river bank was muddy", "the bank approved my loan"])
    bx, by = x.vectors[x.tokens.index("bank")], y.vectors[y.tokens.index("bank")]
    assert float(bx @ by) < 0.95


def test_cosine_matrix_normalises():
    a = np.array([[3.0, 0.0], [0.0, 2.0]])
    assert np.allclose(cosine_matrix(a, a), np.eye(2))
