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


def test_embedding_needs_neither_torch_nor_transformers():
    # They took 15-20 s of every worker's start-up; ONNX Runtime loads the exported graph in under one.
    code = ("import sys; from processors.twin.embeddings import get_embedder; e = get_embedder(); e.embed(['x']); "
            "e.token_embeddings(['y']); print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_onnx_export_reproduces_the_torch_model(embedder, tmp_path):
    """Export afresh (as a new machine's bootstrap does) and compare with MiniLM run in torch, the
    reference: sentence vectors (masked mean, unit length) and per-piece vectors, a text past the
    256-piece cut included."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from processors.twin.embeddings import Embedder, _default_model_path, export_onnx_model

    graph = export_onnx_model(tmp_path / "minilm.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["minilm.onnx"]  # no partial file left behind
    fresh = Embedder(onnx_path=graph)
    texts = ["Why did you pick Kafka?", "Counsel, " * 200 + "is that right?", "Ünïcode — and   spaces\n"]
    tokenizer = AutoTokenizer.from_pretrained(_default_model_path(), local_files_only=True)
    bert = AutoModel.from_pretrained(_default_model_path(), local_files_only=True).eval()
    reference, pieces = [], []
    for text in texts:
        ids = torch.tensor([tokenizer(text, truncation=True, max_length=256)["input_ids"]])
        with torch.no_grad():
            hidden = bert(input_ids=ids, attention_mask=torch.ones_like(ids),
                          token_type_ids=torch.zeros_like(ids)).last_hidden_state[0].numpy()
        sentence = hidden.mean(axis=0)
        reference.append(sentence / np.linalg.norm(sentence))
        inner = hidden[1:-1]  # [CLS] and [SEP] left out
        pieces.append(inner / np.linalg.norm(inner, axis=1, keepdims=True))
    for emb in (fresh, embedder):
        assert np.abs(emb.embed(texts) - np.stack(reference)).max() < 1e-4
        for got, want in zip(emb.token_embeddings(texts), pieces):
            assert got.vectors.shape == want.shape and np.abs(got.vectors - want).max() < 1e-4
    assert len(embedder.token_embeddings(texts)[1].tokens) == 254


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
    small.share_model_of(embedder)  # only the batch size differs
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
    fresh.share_model_of(embedder)  # the cache and the counts are this one's
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


def test_a_retraining_embeds_no_situation_again(embedder):
    """Training's situation vectors (most of its MiniLM time) go through the cache, exactly as computed: the
    next version of the same interviewer, trained on the same moments, reuses them."""
    from processors.twin.corpus import exchanges, read_transcripts
    from processors.twin.memory import PersonaMemory
    from tests.conftest import SAMPLE_CORPUS

    fresh = type(embedder)()
    fresh.share_model_of(embedder)
    calls: list[int] = []
    real_embed = fresh.embed
    fresh.embed = lambda texts: calls.append(len(texts)) or real_embed(texts)
    memory = PersonaMemory(None, fresh)  # its store is not read here
    items = [ex for p in read_transcripts(SAMPLE_CORPUS) if p.ok for ex in exchanges(p.transcript)][:40]
    first = memory.situation_vectors(items)
    again = memory.situation_vectors(items)
    assert len(calls) == 1 and calls[0] > 0  # the second training asked the model nothing
    assert np.array_equal(first, again) and first.shape == (len(items), EMBEDDING_DIM)
