"""PII redaction: the Presidio set-up (table of texts), the batching function, and the agent."""

import uuid

import pytest

from processors.pii import PiiRedactor, PlainPresidio, TenantTerms, needs_ner
from processors.pii_redaction import redact_batch
from schemas.models import (
    ControlEvent,
    DroppedField,
    FunctionCall,
    RunEvent,
    TelemetryRaw,
    TelemetryRedacted,
    TurnEvent,
)

ENTITIES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "LOCATION"]


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    terms = TenantTerms({"acme": {"allow": ["Maria"], "deny": ["Project Falcon"]}, "*": {"deny": ["Bluebird-7"]}})
    return PiiRedactor(ENTITIES, terms=terms)


# (text, what must disappear, what must stay)
CASES = [
    ("My name is John Smith, reach me at john.smith@example.com.", ["John Smith", "john.smith@example.com"],
     ["My name is", "reach me at"]),
    ("Call me on 415-555-0132 or (415) 555-0199 tomorrow.", ["415-555-0132", "555-0199"], ["tomorrow"]),
    ("London office +44 20 7946 0958, New York +1 212 555 0147.", ["7946 0958", "212 555 0147"], ["office"]),
    ("Thanks Maria, that was a great answer.", ["Maria"], ["great answer"]),
    ("Hi, I'm Priya Raman and I lead the payments team.", ["Priya Raman"], ["payments team"]),
    ("So, Jessica, tell me about a time you disagreed with your manager.", ["Jessica"], ["disagreed"]),
    # Lower-case name after an introduction: caught by IntroducedNameRecognizer, not by NER.
    ("yeah so my name is alex johnson and i do backend", ["alex johnson"], ["backend"]),
    ("Email PRIYA.R@Corp.IO with the results", ["PRIYA.R@Corp.IO"], ["with the results"]),
    ("card 4111 1111 1111 1111, expires soon", ["4111 1111 1111 1111"], ["expires soon"]),
    ("The db is at 10.20.30.40 behind the VPN", ["10.20.30.40"], ["behind the VPN"]),
    # The small model tags this name as a place; LOCATION is in the entity list, so it goes anyway.
    ("Olusegun Adeyemi reviewed it.", ["Olusegun Adeyemi"], ["reviewed it"]),
    ("I moved from Lagos to Berlin last year.", ["Lagos", "Berlin"], ["last year"]),
    # Code and tech talk stays intact: no names, numbers are not phone numbers.
    ("IndexError: list index out of range on line 42", [], ["IndexError: list index out of range on line 42"]),
    ("I used a hash map so lookups are O(1), then sorted in O(n log n).", [], ["hash map", "O(n log n)"]),
    ("", [], []),
]


@pytest.mark.parametrize(("text", "gone", "kept"), CASES)
def test_redacts_pii_and_keeps_the_rest(redactor, text, gone, kept):
    [result] = redactor.redact([text], tenant="globex")
    for value in gone:
        assert value not in result.text, result.text
    for value in kept:
        assert value in result.text, result.text
    assert sum(result.counts.values()) >= (1 if gone else 0)
    assert bool(result.counts) == bool(gone)


def test_batched_redaction_matches_plain_presidio_one_call_per_text(redactor):
    texts = [t for t, gone, _ in CASES if t and "my name is alex" not in t]  # the custom recognizer is ours alone
    plain = PlainPresidio(ENTITIES)
    batched = [r.text for r in redactor.redact(texts, tenant="globex")]
    assert batched == [plain.redact(t) for t in texts]


@pytest.mark.parametrize(("text", "entities"), [
    ("no digits, no at sign", ["PERSON", "LOCATION"]),
    ("call 555-0132", ["PERSON", "PHONE_NUMBER", "IBAN_CODE", "LOCATION"]),  # 7 digits: a phone, not an SSN...
    ("call 415-555-0132 now", ["PERSON", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "LOCATION"]),  # ...10: maybe SSN
    ("mail a@b.io", ["PERSON", "EMAIL_ADDRESS", "LOCATION"]),
    ("host 10.0.0.1", ["PERSON", "IBAN_CODE", "IP_ADDRESS", "LOCATION"]),
])
def test_recognizers_run_only_where_they_can_match(text, entities):
    from processors.pii import entities_for

    assert entities_for(text, ENTITIES) == [e for e in ENTITIES if e in entities]


def test_results_are_cached_per_tenant_and_text(redactor):
    redactor.redact(["Thanks Maria, all 3 tests passed"], "globex")
    calls = []
    original = redactor._analyse
    redactor._analyse = lambda texts, tenant: calls.append(list(texts)) or original(texts, tenant)
    try:
        out = redactor.redact(["Thanks Maria, all 3 tests passed", "Thanks Maria, all 3 tests passed", "new text"],
                              "globex")
        other_tenant = redactor.redact(["Thanks Maria, all 3 tests passed"], "acme")
    finally:
        del redactor._analyse
    assert calls == [["new text"], ["Thanks Maria, all 3 tests passed"]]
    assert out[0].text == out[1].text == "Thanks <PERSON>, all 3 tests passed"
    assert other_tenant[0].text == "Thanks Maria, all 3 tests passed", "acme allows Maria: its own result"


def test_tenant_allow_and_deny_terms(redactor):
    text = "Great answer, Maria. Project Falcon and Bluebird-7 ship on Friday."
    acme, globex = (r.text for r in (redactor.redact([text], "acme")[0], redactor.redact([text], "globex")[0]))
    assert acme == "Great answer, Maria. <REDACTED> and <REDACTED> ship on Friday.", \
        "acme allows Maria and denies its code name"
    assert globex == "Great answer, <PERSON>. Project Falcon and <REDACTED> ship on Friday.", \
        "'*' deny terms apply to every tenant, acme's terms only to acme"


@pytest.mark.parametrize(("text", "expected"), [
    ("Thanks Maria", True),
    ("I built it on eBay's API", True),  # a capital inside a word still counts
    ("So what did I do? I think it was fine.", False),  # only capitalised stopwords
    ("no capitals here at all", False),
    ("IndexError: list index out of range", False),  # words only code output capitalises
    ("Traceback (most recent call last): File \"solution.py\", line 3, True", False),
    ("", False),
])
def test_ner_prefilter(text, expected):
    assert needs_ner(text) is expected


def _raw(tenant, sid, events, batch_id=None):
    return TelemetryRaw(eventId=batch_id or uuid.uuid4().hex, tenant=tenant, interviewSessionId=sid, events=events)


def test_redact_batch_covers_every_text_field_in_one_pass(redactor):
    sid = "s1"
    events = [
        TurnEvent(eventId="t1", ts="2025-03-04T10:00:00Z", sessionId=sid, role="candidate",
                  text="I'm Wei Zhang, wei@zhang.dev",
                  functionCalls=[FunctionCall(name="lookup", args={"who": "Wei Zhang", "n": 3, "tags": ["Maria Lopez"]})]),
        RunEvent(eventId="r1", ts="2025-03-04T10:00:01Z", sessionId=sid, status="error", outputHash="abc",
                 stdoutPreview="hello from carol@example.com", stderrPreview="ValueError: bad input"),
        ControlEvent(eventId="c1", ts="2025-03-04T10:00:02Z", sessionId=sid, action="hint",
                     params={"note": "call 415-555-0132", "level": 2}),
    ]
    raw = _raw("globex", sid, events, "b1").model_copy(update={"droppedFields": [
        DroppedField(eventIndex=1, field="stdoutPreview", sha256="0" * 64, size=5000)]})
    other = _raw("acme", "s2", [TurnEvent(eventId="t9", ts="2025-03-04T10:00:00Z", sessionId="s2", role="interviewer",
                                          text="Great answer, Maria. What about Project Falcon?")], "b2")
    calls = []
    original = redactor.redact

    def counting(texts, tenant):
        calls.append((tenant, len(texts)))
        return original(texts, tenant)

    redactor.redact = counting
    try:
        out = redact_batch([raw, other], redactor)
    finally:
        redactor.redact = original
    assert sorted(calls) == [("acme", 1), ("globex", 6)], "one NLP pass per tenant for all texts of all batches"
    assert all(isinstance(b, TelemetryRedacted) for b in out)
    turn_, run_, control = out[0].events
    assert turn_.text == "I'm <PERSON>, <EMAIL_ADDRESS>"
    assert turn_.functionCalls[0].args == {"who": "<PERSON>", "n": 3, "tags": ["<PERSON>"]}
    assert run_.stdoutPreview == "hello from <EMAIL_ADDRESS>" and run_.stderrPreview == "ValueError: bad input"
    assert run_.outputHash == "abc"
    assert control.params == {"note": "call <PHONE_NUMBER>", "level": 2}
    assert [e.eventId for e in out[0].events] == ["t1", "r1", "c1"] and out[0].eventId == "b1"
    assert out[0].droppedFields == raw.droppedFields
    assert {(r.eventIndex, r.field, r.entityType, r.count) for r in out[0].redactions} == {
        (0, "text", "PERSON", 1), (0, "text", "EMAIL_ADDRESS", 1), (0, "functionCalls[0].args.who", "PERSON", 1),
        (0, "functionCalls[0].args.tags[0]", "PERSON", 1), (1, "stdoutPreview", "EMAIL_ADDRESS", 1),
        (2, "params.note", "PHONE_NUMBER", 1)}
    assert out[1].events[0].text == "Great answer, Maria. What about <REDACTED>?"


async def test_agent_round_trip_and_poison_message(telemetry_pipeline, read_topic, tenant):
    """Through the real broker: raw in, redacted out; garbage goes to the dead-letter topic and the
    worker carries on with the next message."""
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.topics import DEADLETTER, TELEMETRY_RAW, TELEMETRY_REDACTED, key_for

    cfg = telemetry_pipeline.cfg
    sid = f"{tenant}-s"
    batch = _raw(tenant, sid, [TurnEvent(eventId="t1", ts="2025-03-04T10:00:00Z", sessionId=sid, role="candidate",
                                         text="This is Maria Lopez, maria.lopez@example.org")])
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        key = f"{tenant}/{sid}".encode()
        await producer.send_and_wait(cfg.topic(TELEMETRY_RAW.name), b"\x01\x00\x01garbage", key=key)
        await producer.send_and_wait(cfg.topic(TELEMETRY_RAW.name), encode_model(batch), key=key_for(TELEMETRY_RAW, batch))
        await producer.send_and_wait(cfg.topic(TELEMETRY_RAW.name), encode_model(batch), key=key_for(TELEMETRY_RAW, batch))
    finally:
        await producer.stop()
    [out] = await read_topic(TELEMETRY_REDACTED, lambda m: m.tenant == tenant, count=1, timeout=60, settle=2, on=cfg)
    assert out.events[0].text == "This is <PERSON>, <EMAIL_ADDRESS>"
    # Exactly one dead letter (settle: a second copy would show), and the good batch after it was redacted once.
    [dead] = await read_topic(DEADLETTER, lambda m: m.key == f"{tenant}/{sid}".encode(), count=1, timeout=30,
                              settle=2, on=cfg)
    assert dead.agent == "pii_redaction" and dead.value == b"\x01\x00\x01garbage"
    assert "DecodeError" in dead.error and dead.sourceTopic == cfg.topic(TELEMETRY_RAW.name)
    assert telemetry_pipeline.worker.proc.poll() is None, "a poison message does not stop the worker"


def test_presidio_s_import_hides_torch_from_its_own_thread_only():
    """While Presidio imports, ``import torch`` fails in that thread (Presidio and spaCy fall back to
    what they do without it) and works in every other thread."""
    import threading

    from processors.pii.presidio_import import _HiddenInThread

    finder = _HiddenInThread(threading.get_ident())
    with pytest.raises(ModuleNotFoundError):
        finder.find_spec("torch.nn")
    with pytest.raises(ModuleNotFoundError):
        finder.find_spec("transformers")
    assert finder.find_spec("numpy") is None  # anything else: the normal finders decide
    seen = []
    other = threading.Thread(target=lambda: seen.append(finder.find_spec("torch")))
    other.start()
    other.join()
    assert seen == [None]
