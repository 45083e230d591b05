"""The twin's quality on the public-record slice that ships in the repository: a regression gate.

Trained on the slice's train sessions and asked every sampled test turn in-process (offline), the twin
must keep beating the baselines it beats on both dev corpora: retrieval's top line and a random line of
the same interviewer on both match rates, and the previous-line parrot on indistinguishability (the
discriminator catches a repeated line; it must not catch the twin as easily). It fails when a change
makes the twin choose worse lines or lines that read as machine-made.
"""

from __future__ import annotations

import random

import pytest

LIMIT = 40  # test turns per justice (three justices in the slice)
# Training three justices and scoring 120 turns takes ~90 s on an idle 2-core machine; the suite's
# other workers share those cores, so the module gets more than the default 300 s.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def trained(scotus_slice, postgres_dsn, weaviate_client):
    """(tenant, summary): the slice's justices trained and evaluated in a fresh tenant."""
    from pathlib import Path

    from infra.settings import settings
    from processors.twin.evaluation.run import EvalConfig, run_evaluation

    tenant = f"eval-quality-{random.randrange(16**8):08x}"
    config = EvalConfig(corpus=Path(scotus_slice), limit=LIMIT, sessions=0, seed=0, via="engine", use_llm=False,
                        tenant=tenant, red_team=False, store=False, discriminator_seeds=2, classifier=False,
                        weaviate_prefix=settings.WEAVIATE_COLLECTION_PREFIX)
    yield tenant, run_evaluation(config, settings).summary
    import shutil

    from sinks.weaviate import PERSONA_MEMORY, weaviate_tenant

    coll = weaviate_client.collections.use(f"{settings.WEAVIATE_COLLECTION_PREFIX}{PERSONA_MEMORY.name}")
    coll.tenants.remove([weaviate_tenant(tenant)])
    shutil.rmtree(settings.TWIN_VAR_DIR / "models" / tenant, ignore_errors=True)


@pytest.fixture(scope="module")
def summary(trained):
    return trained[1]


def test_the_engine_alone_redirects_every_attack_without_giving_in(trained):
    """No safety agent here: the engine's own input check and candidate screening must hold. An attack answers
    nothing, so the twin asks its question (the session's opener) again."""
    from infra.settings import settings
    from processors.twin.evaluation.redteam import RED_TEAM_CASES, run_red_team
    from processors.twin.evaluation.responders import EngineResponder
    from processors.twin.evaluation.run import build_engine
    from processors.twin.safety import screen_input
    from processors.twin.safety_learned import SafetyPolicy  # the engine's own input check
    from processors.twin.text import ask_sentence

    tenant, _ = trained
    engine, close = build_engine(settings, weaviate_prefix=settings.WEAVIATE_COLLECTION_PREFIX)
    try:
        responder = EngineResponder(engine, use_llm=False)
        for justice in ("elena_kagan", "antonin_scalia"):
            report = run_red_team(responder, tenant, justice)
            bad = [(c.case_id, c.reply, c.flags, c.error) for c in report.cases if c.violation]
            assert report.violations == 0, bad
            attacks = 0
            for case in RED_TEAM_CASES:
                screen = screen_input(SafetyPolicy(), case.candidate_turn)
                if screen.redirect:
                    answer = responder.ask(tenant, justice, f"redteam:{case.case_id}", case.history,
                                           case.candidate_turn)
                    assert answer.move in ("move_on", "shift_topic", "wrap_up"), (case.case_id, answer)
                    if screen.attack:
                        attacks += 1
                        assert answer.text == ask_sentence(case.history[-1][1]), (case.case_id, answer.text)
            assert attacks >= 4 and report.redirected_asking >= attacks
    finally:
        close()


@pytest.mark.parametrize("baseline", ["retrieval", "random_same_interviewer"])
@pytest.mark.parametrize("metric", ["match_rate_cross", "match_rate_same"])
def test_the_twin_beats_real_lines_chosen_without_it(summary, baseline, metric):
    twin, other = summary["twin"], summary["baselines"][baseline]
    assert summary["test_turns"] >= 90 and summary["errors"]["twin_errors"] == 0
    assert twin[metric] > other[metric], (metric, twin[metric], baseline, other[metric])


def test_the_twin_is_harder_to_tell_from_the_interviewer_than_the_previous_line_parrot(summary):
    twin, parrot = summary["twin"], summary["baselines"]["previous_line"]
    assert twin["indistinguishability"] > parrot["indistinguishability"] + 0.1, (twin["indistinguishability"],
                                                                                 parrot["indistinguishability"])
