"""The situation text memory embeds: every part of the moment inside what MiniLM reads."""

import pytest

from processors.twin.corpus import Turn
from processors.twin.embeddings import MAX_WORD_PIECES
from processors.twin.memory import SITUATION_CUTS, situation_text

LONG_ANSWER = "We moved the billing service onto its own cluster because the queue kept growing. " * 30 + "And that is why we sharded by tenant"
CONTEXT = [Turn(role="candidate", text="Earlier I said we used Postgres. " * 30),
           Turn(role="interviewer", text="Long preamble. " * 60 + "Why did you shard the queue?")]


def test_ends_keeps_the_last_words_of_every_part():
    text = situation_text(CONTEXT, LONG_ANSWER, cut="ends")
    lines = text.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["Candidate", "Interviewer", "Candidate"]
    assert lines[1].endswith("Why did you shard the queue?")
    assert lines[2].endswith("that is why we sharded by tenant")


def test_ends_fits_what_minilm_reads(embedder):
    head = situation_text(CONTEXT, LONG_ANSWER, cut="head")
    ends = situation_text(CONTEXT, LONG_ANSWER, cut="ends")
    limit = MAX_WORD_PIECES - 2  # less [CLS] and [SEP]
    # word_pieces stops at 256: more than 254 means the model never read the end
    assert len(embedder.word_pieces(head)) > limit  # the head cut lost the answer's end
    assert len(embedder.word_pieces(ends)) <= limit


def test_head_is_the_recipe_of_versions_indexed_before_the_cut_was_recorded():
    # Their stored vectors came from this text: it must not change under them.
    text = situation_text(CONTEXT, LONG_ANSWER, cut="head")
    assert len(text) == 2000 and text.endswith(LONG_ANSWER[-40:])


def test_short_moments_and_dict_turns_are_the_same_under_both_cuts():
    turns = [{"role": "interviewer", "text": "Tell me about the outage."}]
    assert {situation_text(turns, "It was DNS.", cut=c) for c in SITUATION_CUTS} == {
        "Interviewer: Tell me about the outage.\nCandidate: It was DNS."}


def test_an_unknown_cut_is_refused():
    with pytest.raises(ValueError, match="unknown situation cut"):
        situation_text(CONTEXT, "hi", cut="middle")
