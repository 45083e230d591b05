"""What the LLM path sends and keeps: the reply's token budget and the cut of long turns (pure logic)."""

from __future__ import annotations

from types import SimpleNamespace

from processors.twin.llm_generator import LlmGenerator, reply_token_budget
from processors.twin.policy import Controls
from processors.twin.style import StyleProfile


def _profile(p50: float, p90: float) -> StyleProfile:
    return StyleProfile(interviewer_id="j", n_turns=200, word_count={"p50": p50, "p90": p90})


def test_the_budget_follows_the_interviewer_s_length_and_never_passes_the_cap():
    brief, talkative = _profile(12, 40), _profile(60, 180)
    assert reply_token_budget(brief, Controls(), 120) == round(40 * 1.3 * 1.5)  # their long turns, with margin
    assert reply_token_budget(brief, Controls(verbosity="terse"), 120) == 32  # their median, at least 32
    assert reply_token_budget(talkative, Controls(), 120) == 120
    assert reply_token_budget(brief, Controls(verbosity="verbose"), 120) == 120
    assert reply_token_budget(None, Controls(), 120) == 120  # nothing learned yet: the cap


class _Completions:
    def __init__(self, content: str, finish_reason: str):
        self.sent: list[dict] = []
        self.content, self.finish_reason = content, finish_reason

    def create(self, **kwargs):
        self.sent.append(kwargs)
        message = SimpleNamespace(content=self.content, tool_calls=None)
        return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason=self.finish_reason)],
                               model="m", usage=None)


def _generator(content: str, finish_reason: str = "stop") -> tuple[LlmGenerator, _Completions]:
    completions = _Completions(content, finish_reason)
    return LlmGenerator(SimpleNamespace(chat=SimpleNamespace(completions=completions)), "m", max_tokens=120), completions


def test_a_reply_stopped_by_its_budget_ends_at_its_last_full_sentence():
    gen, sent = _generator("Isn't that a merits question? And if it is, then the", "length")
    out = gen.generate("system", [], "We say the error was harmless.", max_tokens=40)
    assert out.text == "Isn't that a merits question?"
    assert sent.sent[0]["max_tokens"] == 40
    gen, _ = _generator("Isn't that a merits question? And if it is, then the", "stop")
    assert gen.generate("system", [], "x").text.endswith("then the")  # finished on its own: kept whole


def test_a_budget_above_the_cap_is_held_to_the_cap():
    gen, sent = _generator("Why?")
    gen.generate("system", [], "x", max_tokens=500)
    assert sent.sent[0]["max_tokens"] == 120


def test_a_long_candidate_turn_reaches_the_model_as_its_end():
    gen, sent = _generator("Why?")
    turn = "Opening words of a long argument. " * 100 + "And that is why the statute does not reach this case."
    gen.generate("system", [{"role": "interviewer", "text": "Counsel?"}], turn)
    last = sent.sent[0]["messages"][-1]["content"]
    assert last.startswith("...") and last.endswith("does not reach this case.")
    assert len(last) <= LlmGenerator.CANDIDATE_CHARS + 3
