"""The chat fine-tune file: layout, validation rules, files on disk, and the OpenAI calls (over HTTP)."""

import copy
import json

import httpx
import pytest

from infra.settings import Settings
from processors.twin.corpus import Transcript
from processors.twin.finetune import (
    SILENT,
    FineTuneError,
    build_examples,
    poll_openai_fine_tune,
    start_openai_fine_tune,
    validate_examples,
    write_fine_tune_files,
)
from processors.twin.style import StyleProfile
from processors.twin.corpus import interviewer_turns


def _session(sid: str = "s1") -> Transcript:
    return Transcript.model_validate({"interviewer_id": "dana", "session_id": sid, "turns": [
        {"role": "interviewer", "text": "Tell me about a system you built."},
        {"role": "candidate", "text": "I built a rate limiter with Redis."},
        {"role": "interviewer", "text": "Why Redis and not the database?"},
        {"role": "candidate", "text": "Latency, mostly."},
        {"role": "interviewer", "text": "Okay. How did you test it?"},
    ]})


@pytest.fixture(scope="module")
def examples():
    sessions = [_session(f"s{i}") for i in range(4)]
    return build_examples(sessions, "dana", StyleProfile.fit(interviewer_turns(sessions)))


def test_one_example_per_interviewer_turn_laid_out_like_inference(examples):
    assert len(examples) == 12
    first, third = examples[0]["messages"], examples[2]["messages"]
    assert first[0]["role"] == "system" and "interviewer 'dana'" in first[0]["content"]
    # The opening has no candidate turn: the same placeholder LlmGenerator sends.
    assert [m["role"] for m in first] == ["system", "user", "assistant"] and first[1]["content"] == SILENT
    assert [m["role"] for m in third] == ["system", "assistant", "user", "assistant", "user", "assistant"]
    # Only the final interviewer turn is trained; earlier ones are context.
    assert [m.get("weight") for m in third if m["role"] == "assistant"] == [0, 0, 1]
    assert third[-1]["content"] == "Okay. How did you test it?" and third[-2]["content"] == "Latency, mostly."
    assert "Your move now:" in third[0]["content"]


def test_generated_examples_validate(examples):
    report = validate_examples(examples)
    assert report.ok, report.errors
    assert report.tokens["max"] < 1000 and report.trained_tokens > 0


def _broken(examples, mutate):
    bad = copy.deepcopy(examples)
    mutate(bad)
    return bad


@pytest.mark.parametrize("mutate, kind", [
    (lambda ex: ex[0]["messages"][1].update(role="candidate"), "unrecognized_role"),
    (lambda ex: ex[0]["messages"][1].update(content="   "), "missing_content"),
    (lambda ex: ex[0]["messages"][1].pop("content"), "message_missing_key"),
    (lambda ex: ex[0]["messages"][1].update(content=["not", "a", "string"]), "missing_content"),
    (lambda ex: ex[0]["messages"][1].update(speaker="x"), "message_unrecognized_key"),
    (lambda ex: ex[0]["messages"][1].update(weight=1), "weight_not_assistant"),        # weight on a user turn
    (lambda ex: ex[0]["messages"][-1].update(weight=2), "bad_weight"),
    (lambda ex: ex[0]["messages"][-1].update(weight=0), "nothing_to_train"),
    (lambda ex: ex[0]["messages"].__setitem__(slice(None), [m for m in ex[0]["messages"] if m["role"] != "assistant"]),
     "example_missing_assistant_message"),
    (lambda ex: ex[0]["messages"].append({"role": "system", "content": "again"}), "system_position"),
    (lambda ex: ex[0].update(extra=1), "example_unrecognized_key"),
    (lambda ex: ex.__setitem__(0, "not an object"), "data_type"),
    (lambda ex: ex[0].update(messages=[]), "missing_messages_list"),
])
def test_validation_names_each_problem(examples, mutate, kind):
    report = validate_examples(_broken(examples, mutate))
    assert not report.ok
    assert report.error_counts.get(kind) == 1, report.error_counts
    assert any(e.startswith("example 1:") for e in report.errors)


def test_token_limit_and_minimum_count(examples):
    huge = _broken(examples, lambda ex: ex[0]["messages"][1].update(content="word " * 20_000))
    assert validate_examples(huge, base_model="gpt-3.5-turbo-0125").error_counts == {"too_many_tokens": 1}
    assert validate_examples(huge, base_model="gpt-4o-mini-2024-07-18").ok  # 65k limit
    few = validate_examples(examples[:9])
    assert few.error_counts == {"too_few_examples": 1} and "at least 10" in few.errors[-1]


def test_files_written_with_report_and_axolotl_config(tmp_path):
    sessions = [_session(f"s{i}") for i in range(5)]
    style = StyleProfile.fit(interviewer_turns(sessions))
    summary = write_fine_tune_files(tmp_path / "ft", "dana", style, sessions[:4], sessions[4:])
    assert summary["valid"] and summary["examples"] == 12 and summary["valExamples"] == 3
    lines = (tmp_path / "ft" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["messages"][0]["role"] == "system" for line in lines)
    assert json.loads((tmp_path / "ft" / "report.json").read_text())["valid"] is True
    yaml = (tmp_path / "ft" / "axolotl.yaml").read_text()
    assert "type: chat_template" in yaml and "message_field_training: weight" in yaml and "adapter: lora" in yaml
    invalid = write_fine_tune_files(tmp_path / "few", "dana", style, sessions[:1], [])
    assert invalid["valid"] is False and invalid["val"] is None


class _FakeOpenAI:
    """An OpenAI-shaped HTTP API (files + fine_tuning.jobs) behind httpx.MockTransport."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.job_status = "validating_files"

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/files"):
            n = sum(1 for r in self.requests if r.url.path.endswith("/files"))
            return httpx.Response(200, json={"id": f"file-{n}", "object": "file", "bytes": 10, "created_at": 1,
                                             "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
        if path.endswith("/fine_tuning/jobs") and request.method == "POST":
            body = json.loads(request.content)
            return httpx.Response(200, json=self._job(body["model"]))
        if "/fine_tuning/jobs/" in path:
            return httpx.Response(200, json=self._job("gpt-4o-mini-2024-07-18"))
        return httpx.Response(404, json={"error": {"message": "no route"}})

    def _job(self, model: str) -> dict:
        done = self.job_status == "succeeded"
        return {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1, "model": model,
                "status": self.job_status, "training_file": "file-1", "validation_file": "file-2",
                "fine_tuned_model": "ft:gpt-4o-mini:acme:dana:abc" if done else None, "organization_id": "org",
                "result_files": [], "hyperparameters": {"n_epochs": "auto"}, "seed": 1, "error": None,
                "finished_at": None, "trained_tokens": None}


def test_openai_upload_start_and_poll_over_http(tmp_path):
    from openai import OpenAI

    sessions = [_session(f"s{i}") for i in range(5)]
    summary = write_fine_tune_files(tmp_path, "dana", None, sessions[:4], sessions[4:])
    fake = _FakeOpenAI()
    client = OpenAI(api_key="sk-test", base_url="http://openai.test/v1",
                    http_client=httpx.Client(transport=httpx.MockTransport(fake.handler)), max_retries=0)
    cfg = Settings(OPENAI_API_KEY="sk-test")
    record = start_openai_fine_tune(summary, cfg, suffix="dana", client=client)
    assert record == {"provider": "openai", "baseModel": "gpt-4o-mini-2024-07-18", "trainingFile": "file-1",
                      "validationFile": "file-2", "jobId": "ftjob-1", "status": "validating_files",
                      "fineTunedModel": None}
    create = json.loads(fake.requests[-1].content)
    assert create["training_file"] == "file-1" and create["validation_file"] == "file-2" and create["suffix"] == "dana"
    assert b"purpose" in fake.requests[0].content and b"fine-tune" in fake.requests[0].content
    fake.job_status = "succeeded"
    polled = poll_openai_fine_tune(record, cfg, client=client)
    assert polled["status"] == "succeeded" and polled["fineTunedModel"] == "ft:gpt-4o-mini:acme:dana:abc"


def test_fine_tune_refused_without_key_or_valid_file(tmp_path):
    sessions = [_session(f"s{i}") for i in range(5)]
    summary = write_fine_tune_files(tmp_path, "dana", None, sessions[:4], [])
    with pytest.raises(FineTuneError, match="OPENAI_API_KEY"):
        start_openai_fine_tune(summary, Settings(OPENAI_API_KEY=""), suffix="dana")
    with pytest.raises(FineTuneError, match="did not validate"):
        start_openai_fine_tune({**summary, "valid": False}, Settings(OPENAI_API_KEY="sk"), suffix="dana")
