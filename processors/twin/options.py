"""Training options: the ``options`` object of POST /api/digital-twin/train and ``twin train``.

Kept free of ML imports, so the gateway validates requests with the same model the trainer uses.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from processors.twin.config import MAX_TOPICS, TOPIC_MAX_CHARS, clean_list

__all__ = ["PROHIBITED_TOPIC_MAX_WORDS", "PersonaDocIn", "TrainingOptions", "prohibited_topics_of"]

# A ``prohibited`` document lists topics the twin must never raise: words or phrases, one per line or separated by
# semicolons ("salary history; criminal record"). They join the version's ``prohibitedTopics``, which every check
# matches as whole words; a sentence ("Never ask what they earn.") would match no line, so it is refused.
PROHIBITED_TOPIC_MAX_WORDS = 6


def _topic_items(text: str) -> list[str]:
    return [i for i in (" ".join(p.split()).strip(" .") for p in re.split(r"[;\n]", text)) if i]


def _is_topic(item: str) -> bool:
    return len(item.split()) <= PROHIBITED_TOPIC_MAX_WORDS and len(item) <= TOPIC_MAX_CHARS


def prohibited_topics_of(text: str) -> list[str]:
    """The topics a ``prohibited`` document lists (its items that are words or short phrases)."""
    return [i for i in _topic_items(text) if _is_topic(i)]


class PersonaDocIn(BaseModel):
    """A persona document to index with the version (interviewer notes, rubrics, preferences, and prohibited
    topics: words or phrases, one per line or separated by semicolons, that join the version's prohibitedTopics)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["note", "rubric", "preference", "prohibited"]
    key: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")]
    text: Annotated[str, Field(min_length=1, max_length=8000)]

    @model_validator(mode="after")
    def _topics(self) -> "PersonaDocIn":
        if self.kind == "prohibited":
            items = _topic_items(self.text)
            bad = [i for i in items if not _is_topic(i)]
            if bad or not items:
                raise ValueError(
                    "a prohibited document lists topics (words or phrases of at most "
                    f"{PROHIBITED_TOPIC_MAX_WORDS} words, one per line or separated by ';'); "
                    + (f"{bad[0][:80]!r} is not one" if bad else "it lists none"))
        return self


class TrainingOptions(BaseModel):
    """How to train; every field is optional."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"val": 0.1, "test": 0.2, "fineTune": False,
                                         "docs": [{"kind": "rubric", "key": "complexity",
                                                   "text": "States time and space complexity unprompted."}]}]},
    )
    val: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        default=0.1, description="Share of sessions for validation (first split only; splits are then fixed).")
    test: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        default=0.2, description="Share of the final sessions held out for test (first split only).")
    resplit: bool = Field(default=False, description="Forget the stored split and split again.")
    fineTune: bool = Field(default=False, description="Upload the fine-tune file and start an OpenAI fine-tune.")
    baseModel: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="Base model of the fine-tune (default OPENAI_FINETUNE_BASE_MODEL).")
    activate: bool = Field(default=True, description="Make the new version the one that answers.")
    classifier: bool = Field(default=True, description="Train the auxiliary style classifier.")
    docs: Annotated[list[PersonaDocIn], Field(max_length=500)] = Field(default_factory=list)
    config: dict[str, Any] = Field(
        default_factory=dict, description="Per-interviewer configuration merged over the previous version's "
                                          "(controls, prohibitedTopics, rubric, fineTunedModel); the tenant and "
                                          "interviewer layers of /api/admin/config override it at answer time.")
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0

    @model_validator(mode="after")
    def _fractions(self) -> "TrainingOptions":
        if self.val + self.test >= 0.9:
            raise ValueError("val + test must leave at least 10% of the sessions for training")
        # Counted as training will store them (``train_interviewer``).
        topics = clean_list([*(str(t) for t in self.config.get("prohibitedTopics") or []),
                             *(t for d in self.docs if d.kind == "prohibited" for t in prohibited_topics_of(d.text))])
        if len(topics) > MAX_TOPICS:
            raise ValueError(f"{len(topics)} prohibited topics (documents and config together); at most "
                             f"{MAX_TOPICS}")
        return self
