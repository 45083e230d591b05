import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from processors.twin.corpus import (
    Transcript,
    chronological_split,
    exchanges,
    interviewer_turns,
    parse_plain_text,
    read_transcripts,
    split_by_interviewer,
    write_jsonl,
)


def _session(sid, iid="ann", started_at=None, turns=None, **extra):
    turns = turns if turns is not None else [
        {"role": "interviewer", "text": "Tell me about a project."},
        {"role": "candidate", "text": "I built a billing system."},
        {"role": "interviewer", "text": "Why billing?"},
    ]
    return {"interviewer_id": iid, "session_id": sid, "started_at": started_at, "source": "test", "turns": turns, **extra}


def test_reads_every_line_of_the_real_transcripts(scotus_slice):
    from tests.conftest import SAMPLE_CORPUS

    # The real SCOTUS fixture (with a `meta` field on every line) and the synthetic sample.
    expected = {scotus_slice: {"elena_kagan": 24, "antonin_scalia": 14, "ruth_bader_ginsburg": 16},
                SAMPLE_CORPUS: {"dana": 6}}
    for path, per_interviewer in expected.items():
        lines = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        parsed = list(read_transcripts(path))
        assert len(parsed) == lines == sum(per_interviewer.values())
        assert all(p.ok for p in parsed), [p.error for p in parsed if not p.ok][:3]
        assert dict(Counter(p.transcript.interviewer_id for p in parsed)) == per_interviewer
        # Unknown fields (meta, speaker, offset_s) are dropped, not kept on the model.
        assert not hasattr(parsed[0].transcript, "meta")
    assert '"meta"' in scotus_slice.read_text(encoding="utf-8").splitlines()[0]


def test_bad_lines_are_reported_and_reading_continues(tmp_path):
    rows = [
        json.dumps(_session("ok-1", meta={"x": 1})),                      # 1 fine, unknown field ignored
        '{"interviewer_id": "ann", "session_id": ',                         # 2 truncated JSON
        json.dumps(_session("bad-role", turns=[{"role": "moderator", "text": "Hi"},
                                               {"role": "interviewer", "text": "Q?"}])),  # 3
        json.dumps(_session("empty", turns=[])),                           # 4
        json.dumps(_session("no-int", turns=[{"role": "candidate", "text": "Hello"}])),  # 5
        json.dumps({"session_id": "no-iid", "turns": [{"role": "interviewer", "text": "Q?"}]}),  # 6
        "[1, 2, 3]",                                                         # 7
        "",                                                                  # blank: skipped
        json.dumps(_session("ok-1")),                                        # 9 duplicate id
        json.dumps(_session("blank-text", turns=[{"role": "interviewer", "text": "  "}])),  # 10
        json.dumps(_session("ok-2", started_at="2020-01-02T03:04:05Z")),     # 11 fine
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    parsed = {p.line: p for p in read_transcripts(path)}

    assert parsed[1].ok and parsed[11].ok
    assert parsed[11].transcript.started_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    expected = {
        2: "invalid JSON",
        3: "turn 1 role: unknown role 'moderator'",
        4: "session has no turns",
        5: "session has no interviewer turns",
        6: "interviewer_id: missing field",
        7: "expected a JSON object",
        9: "duplicate session_id 'ok-1' (first on line 1)",
        10: "turn 1 text: text is empty",
    }
    for line, fragment in expected.items():
        assert not parsed[line].ok
        assert parsed[line].error.startswith(f"line {line}"), parsed[line].error
        assert fragment in parsed[line].error, parsed[line].error
    assert set(parsed) == {1, 2, 3, 4, 5, 6, 7, 9, 10, 11}


def test_plain_text_with_continuations_headers_and_sessions(tmp_path):
    text = "\n".join([
        "# interviewer_id: ann",
        "# started_at: 2021-05-01",
        "Interviewer: Tell me about a project.",
        "Candidate: I built a billing system",
        "that handled refunds.",
        "",
        "Interviewer: Why refunds?",
        "---",
        "# session_id: second",
        "Interviewer: Hi again.",
        "Moderator: hello",
        "---",
        "stray text before any label",
        "Interviewer: hello",
    ])
    path = tmp_path / "ann.txt"
    path.write_text(text, encoding="utf-8")
    parsed = list(read_transcripts(path))
    assert [p.ok for p in parsed] == [True, False, False]
    first = parsed[0].transcript
    assert first.interviewer_id == "ann" and first.session_id == "ann"
    assert first.started_at.year == 2021
    assert [t.role for t in first.turns] == ["interviewer", "candidate", "interviewer"]
    assert first.turns[1].text == "I built a billing system that handled refunds."
    assert parsed[1].line == 11 and "unknown speaker label 'Moderator'" in parsed[1].error
    assert parsed[2].line == 13 and "before the first" in parsed[2].error


def test_plain_text_needs_an_interviewer_id():
    (res,) = parse_plain_text("Interviewer: Hi?\nCandidate: Hello.", session_id="s")
    assert not res.ok and "missing interviewer_id" in res.error


DAY0 = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _sessions(n, dated=True, iid="ann"):
    return [
        Transcript.model_validate(
            _session(f"s{i}", iid=iid, started_at=(DAY0 + timedelta(days=i)).isoformat() if dated else None)
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (10, (7, 1, 2)),
        (3, (2, 0, 1)),   # the minimum test session kicks in at 3 sessions
        (2, (2, 0, 0)),
        (1, (1, 0, 0)),
        (80, (56, 8, 16)),
    ],
)
def test_split_sizes(n, sizes):
    split = chronological_split(_sessions(n))
    assert (len(split.train), len(split.val), len(split.test)) == sizes


def test_split_is_chronological_and_deterministic():
    sessions = _sessions(20)
    shuffled = sessions[::-1][5:] + sessions[::-1][:5]
    a = chronological_split(shuffled)
    b = chronological_split(list(shuffled))
    assert [s.session_id for s in a.test] == [s.session_id for s in b.test]
    assert max(s.started_at for s in a.train) < min(s.started_at for s in a.val)
    assert max(s.started_at for s in a.val) < min(s.started_at for s in a.test)
    assert [s.session_id for s in a.test] == ["s16", "s17", "s18", "s19"]


def test_split_uses_file_order_without_dates():
    sessions = _sessions(10, dated=False)
    split = chronological_split(sessions)
    assert [s.session_id for s in split.test] == ["s8", "s9"]


def test_split_rejects_mixed_interviewers_and_bad_fractions():
    with pytest.raises(ValueError, match="one interviewer"):
        chronological_split(_sessions(3) + _sessions(3, iid="bob"))
    with pytest.raises(ValueError):
        chronological_split(_sessions(3), val=0.5, test=0.5)


def test_split_by_interviewer_on_real_data_keeps_final_sessions_for_test(scotus):
    splits = split_by_interviewer(scotus)
    assert len(splits) == len({t.interviewer_id for t in scotus})
    for split in splits.values():
        assert split.test
        assert max(s.started_at for s in split.train) <= min(s.started_at for s in split.test)


def test_exchanges_pair_context_with_next_interviewer_turn(scotus):
    tr = scotus[0]
    exs = exchanges(tr, max_context_turns=4)
    assert len(exs) == sum(1 for t in tr.turns if t.role == "interviewer")
    for ex in exs:
        assert tr.turns[ex.index] == ex.interviewer_reply and ex.interviewer_reply.role == "interviewer"
        assert len(ex.context_turns) <= 4
        if ex.candidate_turn is not None:
            assert tr.turns[ex.index - 1] == ex.candidate_turn
            assert list(ex.context_turns) == tr.turns[max(0, ex.index - 5): ex.index - 1]


def test_interviewer_turns_carry_the_answer_they_reply_to():
    tr = Transcript.model_validate(_session("s"))
    turns = interviewer_turns([tr])
    assert [t.previous_candidate_text for t in turns] == [None, "I built a billing system."]
    assert turns[1].previous_interviewer_text == "Tell me about a project."


def test_write_jsonl_writes_whole_files_or_none(tmp_path):
    """One row per line, the folder made; a row that cannot be written leaves the earlier file as it was and no
    temporary file beside it."""
    path = tmp_path / "out" / "rows.jsonl"
    assert write_jsonl(path, [{"a": 1}, {"b": "é"}]) == 2
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [{"a": 1}, {"b": "é"}]
    with pytest.raises(TypeError):
        write_jsonl(path, [{"a": 2}, {"b": object()}])
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [{"a": 1}, {"b": "é"}]
    assert [p.name for p in path.parent.iterdir()] == ["rows.jsonl"]
