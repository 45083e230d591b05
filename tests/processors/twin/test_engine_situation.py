"""The engine queries memory with the situation cut its version was indexed with."""

from dataclasses import replace

from processors.twin.memory import SITUATION_CUT

HISTORY = [{"role": "interviewer", "text": "Tell me about a system you built."}]
TURN = "I built a billing pipeline that charges customers monthly from a cron job. " * 20


def test_each_version_is_queried_with_its_own_cut(cfg, sample_tenant, weaviate_client):
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    profile = engine.profiles.active(sample_tenant, "dana")
    assert profile.artefacts["situationCut"] == SITUATION_CUT  # what training recorded

    def cut_used(p) -> str:
        reply = engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-cut", history=HISTORY,
                               candidate_turn=TURN, profile=p, use_llm=False)
        assert reply.text.strip()
        return next(s for s in reply.steps if s.name == "retrieve").detail["situation_cut"]

    try:
        assert cut_used(profile) == SITUATION_CUT
        # A version trained before the cut was recorded was indexed with the head cut.
        legacy = replace(profile, artefacts={k: v for k, v in profile.artefacts.items() if k != "situationCut"})
        assert cut_used(legacy) == "head"
    finally:
        engine.close()
