"""What the evaluation reads from a reply's trace: whether the LLM's draft was delivered."""

from __future__ import annotations

from processors.twin.evaluation.responders import llm_draft_outcome
from schemas.models import TraceStep


def _steps(detail):
    return [TraceStep(name="policy", ms=1.0, detail={"move": "ask_followup"}), TraceStep(name="generate", ms=2.0,
                                                                                      detail=detail)]


def test_the_offline_generator_made_no_draft():
    assert llm_draft_outcome(_steps({"exemplar": "e1", "notes": "edited"})) is None
    assert llm_draft_outcome([]) is None


def test_each_outcome_of_a_model_draft_as_objects_and_as_the_apis_dicts():
    cases = {"kept": {"model": "smollm2", "calls": 1},
             "below_offline": {"model": "smollm2", "calls": 1, "llm_draft_below_offline": True},
             "refused": {"model": "smollm2", "calls": 2, "llm_draft_refused": True}}
    for outcome, detail in cases.items():
        steps = _steps(detail)
        assert llm_draft_outcome(steps) == outcome
        assert llm_draft_outcome([s.model_dump() for s in steps]) == outcome
