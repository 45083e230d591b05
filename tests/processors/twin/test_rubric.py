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
