"""The chat fine-tune file of an interviewer: build, validate, write, upload (OpenAI) and track.

One example per interviewer turn of the train split (``train.jsonl``) and of the validation split
(``val.jsonl``), in OpenAI's chat fine-tuning format::

    {"messages": [
      {"role": "system", "content": "<persona: build_system_prompt(style profile, the move made)>"},
      {"role": "user", "content": "<candidate turn>"},
      {"role": "assistant", "content": "<earlier interviewer turn>", "weight": 0},
      {"role": "user", "content": "<the candidate turn being answered>"},
      {"role": "assistant", "content": "<the interviewer's real reply>", "weight": 1}]}

The messages are laid out exactly as ``LlmGenerator.generate`` sends them at inference: the system
prompt of ``build_system_prompt`` (persona, style, "your move now" with the move the interviewer
actually made, no retrieved exemplars), the last 12 turns (candidate = user, interviewer =
assistant), then the candidate's turn (or "(the candidate is silent)"). Only the final assistant
message is trained (``weight`` 0 on earlier ones), so the model learns the next turn, not the
history. :func:`validate_examples` checks the format rules OpenAI enforces (roles, keys, non-empty
string content, an assistant message to learn, weights only on assistant messages, per-example
token limit, at least 10 examples) before anything is uploaded.

OpenAI path: with ``options.fineTune`` and ``OPENAI_API_KEY``, :func:`start_openai_fine_tune`
uploads both files (purpose ``fine-tune``) and creates the job on ``OPENAI_FINETUNE_BASE_MODEL``;
the trainer worker polls it (:func:`poll_openai_fine_tune`, every ``FINETUNE_POLL_S``) and, when it
succeeds, records ``config.fineTunedModel`` on that profile version, which the respond path uses.

Open-weight (LoRA) path: the same ``train.jsonl`` is a chat-template dataset. ``axolotl.yaml``,
written beside it, trains a LoRA adapter on Llama 3.1 8B Instruct with axolotl::

    pip install axolotl && axolotl train var/models/<tenant>/<interviewer>/v<N>/finetune/axolotl.yaml

(``type: chat_template``, ``field_messages: messages``, ``roles_to_train: [assistant]`` and
``message_field_training: weight``, so the ``weight`` flags mean the same there). Serve the merged
model behind an OpenAI-compatible server (vLLM, llama.cpp) and set ``OPENAI_BASE_URL`` and the
profile's ``fineTunedModel`` to its model name.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processors.twin.corpus import Transcript, exchanges, write_jsonl
from processors.twin.style import StyleProfile
from processors.twin.text import words

__all__ = [
    "ALLOWED_KEYS",
    "ALLOWED_ROLES",
    "HISTORY_TURNS",
    "MIN_EXAMPLES",
    "FineTuneError",
    "ValidationReport",
    "axolotl_config",
    "build_examples",
    "estimate_tokens",
    "poll_openai_fine_tune",
    "start_openai_fine_tune",
    "token_limit",
    "validate_examples",
    "write_fine_tune_files",
]

ALLOWED_ROLES = ("system", "user", "assistant")
ALLOWED_KEYS = {"role", "content", "name", "weight"}
HISTORY_TURNS = 12  # what LlmGenerator.generate sends
MIN_EXAMPLES = 10  # OpenAI refuses a training file with fewer
MAX_TURN_CHARS = 4000  # a monologue longer than this is cut (keeps examples well under the limit)
SILENT = "(the candidate is silent)"


class FineTuneError(RuntimeError):
    """The fine-tune file is invalid, or the provider refused it."""


def token_limit(base_model: str) -> int:
    """Tokens per training example the provider accepts for ``base_model``."""
    if base_model.startswith("gpt-3.5"):
        return 16_385
    return 65_536  # gpt-4o, gpt-4o-mini, gpt-4.1 family


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Tokens of one example: exact with tiktoken when installed, else a conservative estimate.

    The estimate (max of 1.5 per word and 1 per 3 characters, plus 4 per message) overcounts
    English text by a margin, so an example it accepts is within the limit.
    """
    try:
        import tiktoken  # noqa: PLC0415 - optional

        enc = tiktoken.get_encoding("o200k_base")
        return sum(4 + len(enc.encode(str(m.get("content") or ""))) for m in messages) + 3
    except Exception:  # noqa: BLE001 - not installed, or its encoding file cannot be loaded offline
        total = 3
        for m in messages:
            text = str(m.get("content") or "")
            total += 4 + max(math.ceil(1.5 * len(words(text))), math.ceil(len(text) / 3))
        return total


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TURN_CHARS else text[: MAX_TURN_CHARS - 1].rstrip() + "…"


def build_examples(transcripts: Sequence[Transcript], interviewer_id: str, style: StyleProfile | None,
                   history_turns: int = HISTORY_TURNS) -> list[dict[str, Any]]:
    """One chat example per interviewer turn of ``transcripts`` (see the module docstring)."""
    from processors.twin.llm_generator import build_system_prompt
    from processors.twin.policy import Controls, PolicyDecision, label_move

    controls = Controls()
    out: list[dict[str, Any]] = []
    for tr in transcripts:
        for ex in exchanges(tr, max_context_turns=history_turns):
            prev_i = ex.previous_interviewer_turn
            move = label_move(ex.interviewer_reply, ex.candidate_turn, prev_i)
            system = build_system_prompt(interviewer_id, style, PolicyDecision(move=move, confidence=1.0), controls, [])
            messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
            for t in ex.context_turns[-history_turns:]:
                if t.role == "interviewer":
                    messages.append({"role": "assistant", "content": _cut(t.text), "weight": 0})
                else:
                    messages.append({"role": "user", "content": _cut(t.text)})
            messages.append({"role": "user", "content": _cut(ex.candidate_turn.text) if ex.candidate_turn else SILENT})
            messages.append({"role": "assistant", "content": _cut(ex.interviewer_reply.text), "weight": 1})
            out.append({"messages": messages})
    return out


@dataclass
class ValidationReport:
    """Result of :func:`validate_examples`: errors (fatal) and statistics."""

    examples: int = 0
    errors: list[str] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    trained_tokens: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "examples": self.examples, "errors": self.errors[:50], "errorCounts": self.error_counts,
                "warnings": self.warnings, "tokens": self.tokens, "trainedTokens": self.trained_tokens}


def validate_examples(examples: Sequence[Any], base_model: str = "gpt-4o-mini-2024-07-18",
                      min_examples: int = MIN_EXAMPLES) -> ValidationReport:
    """Check examples against the chat fine-tuning format; every problem names its example (1-based)."""
    report = ValidationReport(examples=len(examples))
    counts: Counter[str] = Counter()
    limit = token_limit(base_model)
    sizes: list[int] = []

    def err(kind: str, n: int, detail: str) -> None:
        counts[kind] += 1
        report.errors.append(f"example {n}: {detail}")

    for n, ex in enumerate(examples, start=1):
        if not isinstance(ex, dict):
            err("data_type", n, f"expected an object, got {type(ex).__name__}")
            continue
        if set(ex) - {"messages"}:
            err("example_unrecognized_key", n, f"unknown keys {sorted(set(ex) - {'messages'})}")
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            err("missing_messages_list", n, "no non-empty 'messages' list")
            continue
        bad = False
        for i, m in enumerate(messages, start=1):
            if not isinstance(m, dict):
                err("message_type", n, f"message {i} is not an object")
                bad = True
                continue
            if "role" not in m or "content" not in m:
                err("message_missing_key", n, f"message {i} lacks {'role' if 'role' not in m else 'content'}")
                bad = True
            if set(m) - ALLOWED_KEYS:
                err("message_unrecognized_key", n, f"message {i} has unknown keys {sorted(set(m) - ALLOWED_KEYS)}")
            if m.get("role") not in ALLOWED_ROLES:
                err("unrecognized_role", n, f"message {i} has role {m.get('role')!r} (expected one of "
                                            f"{', '.join(ALLOWED_ROLES)})")
                bad = True
            content = m.get("content")
            if not isinstance(content, str) or not content.strip():
                err("missing_content", n, f"message {i} has empty or non-string content")
                bad = True
            if "weight" in m:
                if m.get("role") != "assistant":
                    err("weight_not_assistant", n, f"message {i}: weight is only allowed on assistant messages")
                elif m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
                    err("bad_weight", n, f"message {i}: weight must be 0 or 1")
        roles = [m.get("role") for m in messages if isinstance(m, dict)]
        if "assistant" not in roles:
            err("example_missing_assistant_message", n, "no assistant message to learn")
            continue
        if not any(m.get("role") == "assistant" and m.get("weight", 1) == 1 for m in messages if isinstance(m, dict)):
            err("nothing_to_train", n, "every assistant message has weight 0")
        if roles.count("system") > 1 or ("system" in roles and roles[0] != "system"):
            err("system_position", n, "the system message must be first and only once")
        if bad:
            continue
        size = estimate_tokens(messages)
        sizes.append(size)
        if size > limit:
            err("too_many_tokens", n, f"~{size} tokens, over the {limit}-token limit of {base_model}")
        report.trained_tokens += sum(estimate_tokens([m]) for m in messages
                                     if m.get("role") == "assistant" and m.get("weight", 1) == 1)
    if len(examples) < min_examples:
        counts["too_few_examples"] += 1
        report.errors.append(f"{len(examples)} examples; at least {min_examples} are required")
    if sizes:
        sizes.sort()
        report.tokens = {"min": sizes[0], "p50": sizes[len(sizes) // 2], "max": sizes[-1],
                         "mean": round(sum(sizes) / len(sizes), 1)}
    if 0 < len(examples) < 50:
        report.warnings.append(f"only {len(examples)} examples; 50-100 usually give a clearer style")
    report.error_counts = dict(counts)
    return report


def axolotl_config(train_path: Path, val_path: Path | None, base_model: str = "meta-llama/Llama-3.1-8B-Instruct",
                   output_dir: str = "./lora-out") -> str:
    """An axolotl LoRA config (YAML text) for the same chat files."""
    lines = [
        f"base_model: {base_model}",
        "chat_template: llama3",
        "datasets:",
        f"  - path: {train_path}",
        "    type: chat_template",
        "    field_messages: messages",
        "    message_property_mappings: {role: role, content: content}",
        "    roles_to_train: [assistant]",
        "    message_field_training: weight   # only the final interviewer turn (weight 1) is trained",
    ]
    if val_path is not None:
        lines += ["test_datasets:", f"  - path: {val_path}", "    type: chat_template", "    field_messages: messages",
                  "    split: train"]
    lines += [
        "adapter: lora", "lora_r: 16", "lora_alpha: 32", "lora_dropout: 0.05", "lora_target_linear: true",
        "sequence_len: 4096", "sample_packing: false", "micro_batch_size: 2", "gradient_accumulation_steps: 4",
        "num_epochs: 3", "learning_rate: 0.0002", "optimizer: adamw_torch", "lr_scheduler: cosine", "bf16: auto",
        f"output_dir: {output_dir}",
    ]
    return "\n".join(lines) + "\n"


def write_fine_tune_files(directory: Path, interviewer_id: str, style: StyleProfile | None,
                          train: Sequence[Transcript], val: Sequence[Transcript],
                          base_model: str = "gpt-4o-mini-2024-07-18") -> dict[str, Any]:
    """Build, validate and write ``train.jsonl``/``val.jsonl``/``report.json``/``axolotl.yaml``.

    Returns the artefact summary for the profile. Files are written even when validation fails
    (so they can be inspected); ``valid`` is False then and nothing may be uploaded.
    """
    directory.mkdir(parents=True, exist_ok=True)
    train_ex = build_examples(train, interviewer_id, style)
    val_ex = build_examples(val, interviewer_id, style)
    train_report = validate_examples(train_ex, base_model)
    val_report = validate_examples(val_ex, base_model, min_examples=0) if val_ex else None
    train_path, val_path = directory / "train.jsonl", directory / "val.jsonl"
    write_jsonl(train_path, train_ex)
    if val_ex:
        write_jsonl(val_path, val_ex)
    (directory / "axolotl.yaml").write_text(axolotl_config(train_path, val_path if val_ex else None))
    summary = {
        "train": str(train_path), "val": str(val_path) if val_ex else None, "examples": len(train_ex),
        "valExamples": len(val_ex), "baseModel": base_model,
        "valid": train_report.ok and (val_report is None or val_report.ok),
        "validation": {"train": train_report.as_dict(), "val": val_report.as_dict() if val_report else None},
        "axolotl": str(directory / "axolotl.yaml"),
    }
    (directory / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


# --------------------------------------------------------------------------- OpenAI


def _client(cfg, client=None):
    if client is not None:
        return client
    from openai import OpenAI

    return OpenAI(base_url=cfg.OPENAI_BASE_URL or None, api_key=cfg.OPENAI_API_KEY.get_secret_value(),
                  timeout=60, max_retries=2)


def start_openai_fine_tune(summary: dict[str, Any], cfg, *, suffix: str, base_model: str | None = None,
                           client=None) -> dict[str, Any]:
    """Upload the files and create the fine-tuning job; returns what to record in the profile.

    :raises FineTuneError: the files did not validate, no API key is configured, or the API refused.
    """
    if not summary.get("valid"):
        raise FineTuneError("the fine-tune file did not validate; see its report.json")
    if client is None and not cfg.OPENAI_API_KEY.get_secret_value():
        raise FineTuneError("OPENAI_API_KEY is not set: the file was written but no fine-tune was started")
    api = _client(cfg, client)
    model = base_model or cfg.OPENAI_FINETUNE_BASE_MODEL
    try:
        with open(summary["train"], "rb") as fh:
            train_file = api.files.create(file=fh, purpose="fine-tune")
        val_file = None
        if summary.get("val"):
            with open(summary["val"], "rb") as fh:
                val_file = api.files.create(file=fh, purpose="fine-tune")
        job = api.fine_tuning.jobs.create(training_file=train_file.id, model=model,
                                          validation_file=val_file.id if val_file else None,
                                          suffix=suffix[:18] or None)
    except Exception as exc:  # noqa: BLE001 - any API failure is reported the same way
        raise FineTuneError(f"OpenAI refused the fine-tune: {type(exc).__name__}: {exc}") from exc
    return {"provider": "openai", "baseModel": model, "trainingFile": train_file.id,
            "validationFile": val_file.id if val_file else None, "jobId": job.id, "status": job.status,
            "fineTunedModel": getattr(job, "fine_tuned_model", None)}


def poll_openai_fine_tune(record: dict[str, Any], cfg, client=None) -> dict[str, Any]:
    """The record updated from the provider (status, and ``fineTunedModel`` once it succeeded)."""
    api = _client(cfg, client)
    job = api.fine_tuning.jobs.retrieve(record["jobId"])
    updated = {**record, "status": job.status, "fineTunedModel": getattr(job, "fine_tuned_model", None)}
    error = getattr(job, "error", None)
    if error is not None and getattr(error, "message", None):
        updated["error"] = error.message
    return updated
