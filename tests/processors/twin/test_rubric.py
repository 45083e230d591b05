"""The rubric check's embedding path (the engine runs it on follow-ups, offline and for the LLM)."""

from __future__ import annotations

from processors.twin.tools.rubric import DEFAULT_RUBRIC, rubric_check


def test_a_criterion_met_in_other_words_is_covered(embedder):
    """No criterion's words are in the answer, so only the embedding can see what it covers."""
    answer = ("The runtime is O(n log k) and memory use grows linearly with the number of streams. "
              "If a stream is empty or fails midway, it simply drops out.")
    lexical = {c["criterion"]: c["coverage"] for c in rubric_check(answer)["criteria"]}
    semantic = {c["criterion"]: c["coverage"] for c in rubric_check(answer, embedder=embedder)["criteria"]}
    complexity, edges = "states time and space complexity", "considers edge cases and failure modes"
    assert lexical[complexity] == lexical[edges] == 0.0
    assert semantic[complexity] == max(semantic.values()) > 0.2 and semantic[edges] > 0.0
    assert all(semantic[c] >= lexical[c] for c in DEFAULT_RUBRIC)  # the embedding only adds coverage


def test_the_criteria_are_embedded_once_per_worker(embedder):
    rubric_check("We cache the hot keys in Redis and fall back to the database.", embedder=embedder)
    assert all(c in embedder._cache for c in DEFAULT_RUBRIC)
    weak = rubric_check("I don't know.", embedder=embedder)
    assert weak["verdict"] == "weak" and set(weak["missing"]) == set(DEFAULT_RUBRIC)


def test_a_long_answer_is_embedded_by_a_bounded_part_from_both_ends():
    from processors.twin.tools.rubric import SEMANTIC_WORDS, semantic_part

    parts = [f"Sentence {i} says a few more words about the plan." for i in range(200)]  # 10 words each
    kept = semantic_part(parts)
    assert sum(len(p.split()) for p in kept) <= SEMANTIC_WORDS
    assert kept[0] == parts[0] and kept[-1] == parts[-1] and kept == sorted(kept, key=parts.index)
    assert len(kept) == SEMANTIC_WORDS // 10
    assert semantic_part(parts[:3]) == parts[:3]  # a short answer is read whole
    assert semantic_part(["one very long sentence " * 100]) == ["one very long sentence " * 100]
