import pytest

from processors.twin.policy import Controls, Move
from processors.twin.prosody import prosody_directives
from processors.twin.style import extract_style
from processors.twin.text import words


def test_question_gets_question_intonation_and_punctuation_pauses():
    text = "So, looking at your design, why did you pick Kafka over RabbitMQ?"
    d = prosody_directives(text)
    assert d.intonation == "question"
    spoken = words(text)
    # Pauses after "So," and "design," and none after the final word.
    assert [(p.after_word, p.word) for p in d.pauses] == [(0, "So"), (4, "design")]
    assert all(spoken[p.after_word] == p.word for p in d.pauses)
    assert all(p.ms > 0 for p in d.pauses)
    assert set(d.emphasis) <= set(spoken) and d.emphasis


@pytest.mark.parametrize(
    ("text", "move", "intonation", "pace"),
    [
        ("That's wrong. How do you square that with the statute? Doesn't that contradict your brief?",
         Move.PROBE_DEEPER, "firm", "slow"),
        ("Good start! Maybe consider what happens when the cache is cold.", Move.GIVE_HINT, "encouraging", "slow"),
        ("Okay. Got it.", Move.MOVE_ON, "statement", "fast"),
        ("We use a queue there.", None, "statement", "normal"),
    ],
)
def test_intonation_and_pace_follow_move_and_style(text, move, intonation, pace):
    d = prosody_directives(text, move=move)
    assert (d.intonation, d.pace) == (intonation, pace)


def test_sentence_ends_pause_longer_than_commas_and_slow_pace_stretches_pauses():
    text = "Well, that is one way. Another, perhaps, is better."
    normal = prosody_directives(text, style=extract_style("We use a queue."))
    by_word = {p.word: p.ms for p in normal.pauses}
    assert by_word["way"] > by_word["Well"]
    slow = prosody_directives(text, move=Move.GIVE_HINT)
    assert slow.pace == "slow"
    assert [p.ms for p in slow.pauses] > [p.ms for p in normal.pauses]
    assert all(s.ms > n.ms for s, n in zip(slow.pauses, normal.pauses))


def test_abbreviations_do_not_pause_like_sentence_ends():
    d = prosody_directives("Mr. Smith, is that right?")
    assert [p.word for p in d.pauses] == ["Smith"]


def test_firm_tone_control_and_camel_case_output():
    d = prosody_directives("Why did that fail?", move=Move.PROBE_DEEPER, controls=Controls(tone="firm"))
    assert d.intonation == "firm"
    out = d.to_dict()
    assert set(out) == {"pace", "pauses", "emphasis", "intonation"}
    assert all(set(p) == {"afterWord", "ms", "word"} for p in out["pauses"])
