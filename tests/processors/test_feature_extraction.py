"""Feature math (processors/features.py) and the feature agent through the real broker."""

import uuid

import pytest

from processors.features import (
    CodeActivityState,
    SessionFeatureState,
    batch_features,
    code_activity,
    style_features,
)
from processors.twin.style import extract_style
from schemas.models import CodeEditEvent, ControlEvent, RunEvent, TelemetryRedacted, TurnEvent

SID = "s1"


def edit(second: int, **kw):
    return CodeEditEvent(eventId=f"e{second}", ts=f"2025-03-04T10:{second // 60:02d}:{second % 60:02d}Z",
                         sessionId=SID, diffChars=5, **kw)


def run(second: int, status: str = "success"):
    return RunEvent(eventId=f"r{second}", ts=f"2025-03-04T10:{second // 60:02d}:{second % 60:02d}Z", sessionId=SID,
                    status=status)


def turn(second: int, role: str, text: str):
    return TurnEvent(eventId=f"t{second}", ts=f"2025-03-04T10:{second // 60:02d}:{second % 60:02d}Z", sessionId=SID,
                     role=role, text=text)


def shift(second: int):
    return ControlEvent(eventId=f"c{second}", ts=f"2025-03-04T10:{second // 60:02d}:{second % 60:02d}Z",
                        sessionId=SID, action="topic_shift")


@pytest.mark.parametrize(("events", "expected"), [
    # 6 edits over 2 minutes -> 3 per minute; 3 of 4 runs passed.
    ([edit(0), edit(20), edit(40), edit(60), edit(80), edit(120), run(30), run(50, "error"), run(90), run(110)],
     {"edits": 6, "runs": 4, "editRatePerMin": 3.0, "runSuccessRate": 0.75, "pauseCount": 0,
      "timeOnQuestionS": 120.0}),
    # Gaps of 45 s and 300 s between IDE events are pauses; the 10 s gap is not.
    ([edit(0), edit(45), edit(55), run(355)],
     {"edits": 3, "runs": 1, "pauseCount": 2, "runSuccessRate": 1.0, "editRatePerMin": round(3 / (355 / 60), 4)}),
    # A topic shift restarts the time on the question; a span under a minute counts as one minute.
    ([edit(0), shift(20), edit(50)], {"timeOnQuestionS": 30.0, "editRatePerMin": 2.0, "runSuccessRate": 0.0}),
    # Turns alone: no edits, no runs, time still passes.
    ([turn(0, "interviewer", "Hi"), turn(90, "candidate", "Hello")], {"edits": 0, "runs": 0, "timeOnQuestionS": 90.0}),
    ([], {"edits": 0, "runs": 0, "pauseCount": 0, "timeOnQuestionS": 0.0}),
])
def test_code_activity_features(events, expected):
    features = code_activity(events, tenant="acme", session_id=SID, pause_s=30)
    for name, value in expected.items():
        assert getattr(features, name) == pytest.approx(value), name


def test_out_of_order_events_give_the_same_features():
    events = [edit(0), edit(45), run(50, "error"), edit(200), run(210)]
    assert code_activity(events, "acme", SID) == code_activity(list(reversed(events)), "acme", SID)


def test_streaming_state_across_batches_equals_the_whole_session():
    events = [turn(0, "interviewer", "Can you walk me through your approach?"),
              turn(10, "candidate", "I would use a heap to keep the top k elements."),
              edit(20), edit(25), run(40, "error"), turn(50, "interviewer", "Why did you choose a heap there?"),
              edit(120), run(130), shift(140), edit(200)]
    state = SessionFeatureState(CodeActivityState())
    styles, activity = [], None
    for part in (events[:3], events[3:6], events[6:]):
        batch = TelemetryRedacted(eventId=uuid.uuid4().hex, tenant="acme", interviewSessionId=SID, events=part)
        s, a = batch_features(batch, state, "dana")
        styles += s
        activity = a or activity
    assert activity == code_activity(events, "acme", SID)
    whole, _ = style_features(events, "acme", SID, "dana")
    assert styles == whole, "the candidate turn of an earlier batch still informs follow-up"
    # One definition: the agent's style numbers are processors.twin.style's.
    follow = extract_style("Why did you choose a heap there?", "I would use a heap to keep the top k elements.")
    assert styles[1].followUp == follow.follow_up and styles[1].directness == follow.directness
    assert [s.eventId for s in styles] == ["t0", "t50"] and {s.interviewerId for s in styles} == {"dana"}


async def test_agent_publishes_features_once(telemetry_pipeline, read_topic, tenant, pg):
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.topics import FEATURES_CODE_ACTIVITY, FEATURES_STYLE, TELEMETRY_REDACTED, key_for

    cfg = telemetry_pipeline.cfg
    sid = f"{tenant}-s"
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_recording) VALUES (%s, %s, 'dana', true)",
               (sid, tenant))
    events = [TurnEvent(eventId="t1", ts="2025-03-04T10:00:00Z", sessionId=sid, role="interviewer",
                        text="What is the complexity of that?"),
              CodeEditEvent(eventId="e1", ts="2025-03-04T10:00:10Z", sessionId=sid, diffChars=3),
              RunEvent(eventId="r1", ts="2025-03-04T10:00:20Z", sessionId=sid, status="success")]
    batch = TelemetryRedacted(eventId=uuid.uuid4().hex, tenant=tenant, interviewSessionId=sid, events=events)
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        for _ in range(2):  # the second copy is a redelivery: no second set of features
            await producer.send_and_wait(cfg.topic(TELEMETRY_REDACTED.name), encode_model(batch),
                                         key=key_for(TELEMETRY_REDACTED, batch))
    finally:
        await producer.stop()
    styles = await read_topic(FEATURES_STYLE, lambda m: m.tenant == tenant, count=1, timeout=60, settle=3, on=cfg)
    activity = await read_topic(FEATURES_CODE_ACTIVITY, lambda m: m.tenant == tenant, count=1, timeout=10, on=cfg)
    assert [(s.eventId, s.interviewerId, s.role) for s in styles] == [("t1", "dana", "interviewer")]
    assert styles[0].questionForm == extract_style("What is the complexity of that?").question_form
    assert [(a.edits, a.runs, a.runSuccessRate) for a in activity] == [(1, 1, 1.0)]
