"""The respond request's limits, as the gateway, the twin agent and the eval client measure them (no services)."""

from __future__ import annotations

import pydantic
import pytest

from infra.settings import Settings
from processors.twin.evaluation.responders import request_window
from schemas.codec import encode_model
from schemas.models import HistoryTurn, TwinRequest
from schemas.respond_limits import MAX_TURN_CHARS, RespondLimits, recent_within, text_bytes


def test_the_budget_comes_from_the_settings_and_is_bounded():
    assert RespondLimits.of(Settings()).max_bytes == Settings().RESPOND_MAX_BYTES == 262_144
    assert RespondLimits.of(Settings(RESPOND_MAX_BYTES=4_096)) == RespondLimits(4_096, MAX_TURN_CHARS)
    with pytest.raises(pydantic.ValidationError):
        Settings(RESPOND_MAX_BYTES=400_000)  # would not fit one Kafka message


def test_the_largest_request_fits_one_kafka_message():
    # The worst case for the message size: one-byte turns (role and length cost more than the text).
    limit = Settings.model_fields["RESPOND_MAX_BYTES"].metadata[-1].le
    request = TwinRequest(correlationId="c" * 36, tenant="t" * 64, interviewerId="i" * 128, sessionId="s" * 128,
                          history=[HistoryTurn(role="candidate", text="x")] * (limit - 1), candidateTurn="y",
                          deadlineMs=1, replyTopic="twin.replies")
    assert len(encode_model(request)) < 1_048_576


def test_recent_within_keeps_the_newest_turns_that_fit_whole():
    turns = ["aaaa", "bb", "çç", "d"]  # 4, 2, 4, 1 bytes
    assert recent_within(turns, 7, str) == ["bb", "çç", "d"]
    assert recent_within(turns, 6, str) == ["çç", "d"]
    assert recent_within(turns, 4, str) == ["d"], "a turn that does not fit ends the window"
    assert recent_within(turns, 0, str) == []
    assert recent_within(turns, 11, str) == turns


def test_request_bytes_count_utf8():
    limits = RespondLimits(max_bytes=1_024)
    assert limits.request_bytes(["héllo", "ok"], "€") == 6 + 2 + 3
    assert text_bytes("日本") == 6


def test_the_eval_client_sends_every_turn_that_fits_not_200():
    history = [("candidate" if i % 2 else "interviewer", f"turn {i} " + "w" * 40) for i in range(600)]
    body = request_window(history, "and so?", RespondLimits(max_bytes=1 << 18))
    assert len(body["history"]) == 600 and body["history"][-1]["text"].startswith("turn 599")
    small = RespondLimits(max_bytes=1_000)
    body = request_window(history, "and so?", small)
    sizes = sum(text_bytes(t["text"]) for t in body["history"]) + text_bytes(body["candidateTurn"])
    assert sizes <= 1_000 and body["history"][-1]["text"].startswith("turn 599")
    assert sizes + text_bytes(history[-len(body["history"]) - 1][1]) > 1_000, "as many as fit"


def test_the_eval_client_cuts_each_turn_to_the_character_limit():
    body = request_window([("candidate", "x" * (MAX_TURN_CHARS + 50)), ("interviewer", "  ")], "y" * 9_000,
                          RespondLimits(max_bytes=1 << 18))
    assert [len(t["text"]) for t in body["history"]] == [MAX_TURN_CHARS], "blank turns are not sent"
    assert len(body["candidateTurn"]) == MAX_TURN_CHARS
