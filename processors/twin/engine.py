"""The twin engine: one reply for one request. The twin agent, `twin chat` and the evaluation call it.

Steps (spec §7), each timed into the reply's traces and wrapped in an OpenTelemetry span:

1. profile   – the interviewer's active version (style profile, policy stats, configuration);
   input_check – the candidate's turn through the input safety rules, before anything is generated:
               an attack (an elicitation, a bias bait, a threat) or a protected topic the candidate
               raised about themselves turns the move to a redirect, runs no tool and is not grounded
               on; those topics and personal data in the turn are never said back;
2. session   – the session's state: who is addressed, its key terms, the open question, the claim;
3. retrieve  – similar past moments of this interviewer and persona notes from Weaviate;
4. policy    – the next move (the version's learned move model, steered by the controls);
5. tools     – rubric check / fact lookup / code runner when the situation calls for one; a rubric
               verdict changes the move (probe a weak answer, move on from a strong one), and with it
               which lines the selector prefers; an answer is graded only against a rubric that fits
               the interviewer (``rubric_of``); a question the interviewer's own notes answer is answered
               from them first (``tools.facts``);
6. generate  – the offline generator (the interviewer's own line the learned selector picks, edited
               into this session) or the LLM (the same candidates, state and move as grounding);
7. ground    – no redaction placeholder leaves the engine: a name the session used, or none;
8. prosody   – TTS directives for the final text.

Configuration (processors/twin/config.py) is read per request, through the Redis cache, with the
profile: controls (the request's own win except where the config locks them), tools and generator
flags, adapters, company guidelines and prohibited topics (retrieved lines that raise one are not
used) apply to this very request, so an admin change is live without restarting the worker.

Every line the generator considers passes the output rules and the input screen before it is
chosen: a failing line gives way to the next candidate, and only when none passes does the reply
fall back on the interviewer's own safe lines. The separate safety agent still checks every draft
independently (its verdict is the one recorded).
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterator, Sequence

from infra.settings import Settings
from infra.tracing import tracer
from processors.twin.config import ConfigStore, EffectiveConfig, layer_from_profile, resolve, topic_pattern
from processors.twin.corpus import Turn
from processors.twin.grounding import SessionState, remove_placeholders
from processors.twin.offline_generator import (THREAD_MAX_REPEATS, THREAD_SKIP_LATEST, OfflineGenerator,
                                               own_thread_exemplars, standing_ask_exemplar)
from processors.twin.policy import (Controls, Move, PolicyDecision, adjust_for_rubric, decide_next_move,
                                    redirect_from)
from processors.twin.profiles import InterviewerProfile, ProfileStore
from processors.twin.prosody import prosody_directives
from processors.twin.tools import CODE_RE, ToolResult, tool_for
from processors.twin.safety import SAFE_FALLBACKS, InputScreen, screen_input
from processors.twin.safety_learned import SafetyPolicy
from processors.twin.text import is_cut_short, repeats_words, says_again
from processors.twin.tools.code_runner import code_tool_result, run_snippet
from processors.twin.tools.facts import DERIVED_NOTE_KEYS, FactAnswer, answer_from_notes, asked_question
from processors.twin.tools.rubric import DEFAULT_RUBRIC, rubric_check
from schemas.models import FunctionCall, Pause, Prosody, TraceStep

__all__ = ["ABLATIONS", "TwinEngine", "EngineReply", "UnknownInterviewer", "controls_from", "profile_config",
           "rubric_of", "said_before"]

# Parts of the offline twin the evaluation switches off one at a time to see what each is worth
# (``twin eval --ablate``); serving never does. grounding: the session state is left empty (no
# addressee, names or terms to edit in); selection: memory's retrieval order instead of the learned
# selector; editing: the chosen line as it was said; move_model: the rule-based policy; tools: none run;
# llm: the offline generator answers (item 6's "with and without the LLM", paired on the same turns).
ABLATIONS = ("grounding", "selection", "editing", "move_model", "tools", "llm")

# An LLM draft that repeats this many consecutive words of the candidate's turn gives way to the offline twin.
PARROT_WORDS = 8
# The interviewer's lines of the session a candidate line is checked against (``said_before``): a loop longer
# than this goes unheard, and a 500-turn session's every line would cost more than the check is worth.
SAID_LINES_REMEMBERED = 30


class UnknownInterviewer(LookupError):
    """No active profile for this tenant/interviewer."""


@dataclass
class EngineReply:
    """What the engine produced, before safety."""

    text: str
    move: Move
    decision: PolicyDecision
    function_calls: list[FunctionCall]
    prosody: Prosody
    steps: list[TraceStep]
    generator: str
    model: str | None
    profile_version: int
    exemplar_ids: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    config: EffectiveConfig | None = None  # the configuration this reply was made under
    input_screen: InputScreen | None = None  # the input check of the candidate's turn


def profile_config(tenant: str, interviewer_id: str, profile: InterviewerProfile | None) -> EffectiveConfig:
    """The configuration without the admin layers: defaults and what the version was trained with."""
    layers = [("profile", layer_from_profile(profile.config))] if profile is not None else []
    return resolve(tenant, interviewer_id, layers, {"profile": profile.version if profile else 0})


def controls_from(request_controls: Any, profile: InterviewerProfile | None,
                  config: EffectiveConfig | None = None) -> Controls:
    """Per-request controls over the configured ones (spec §14): the request wins, except for the
    controls the configuration locks (``controls.locked``)."""
    if config is None:
        config = profile_config("", "", profile)
    merged: dict[str, Any] = config.controls.model_dump(exclude={"locked"})
    locked = set(config.controls.locked)
    if request_controls is not None:
        data = request_controls if isinstance(request_controls, dict) else request_controls.model_dump()
        merged.update({k: v for k, v in data.items() if v is not None and k not in locked})
    if merged.get("verbosity") is None:
        merged.pop("verbosity", None)
    return Controls.model_validate(merged)


def rubric_of(profile: InterviewerProfile) -> tuple[str, ...] | None:
    """The criteria this interviewer's answers are graded against, or None for no rubric check.

    Their own rubric when they have one (configured, or the rubric documents their version was trained
    with); else the generic technical rubric (``DEFAULT_RUBRIC``) where training found its verdicts agree with
    the interviewer's own moves on validation turns (``rubricCheck``); else none: graded as a technical
    answer, a justice's or a podcast guest's turn gets a verdict that says nothing, and on both dev corpora
    letting it steer the line lowered every match rate.
    """
    own = profile.config.get("rubric") or profile.artefacts.get("rubric")
    if own:
        return tuple(own)
    return DEFAULT_RUBRIC if (profile.artefacts.get("rubricCheck") or {}).get("applies") else None


def said_before(line: str, said: Sequence[str]) -> bool:
    """Whether ``line`` would say again one of the latest ``THREAD_SKIP_LATEST`` of the session's interviewer
    lines ``said`` (oldest first), or a line said ``THREAD_MAX_REPEATS`` times there (``text.says_again``).

    Without it a live twin looped: its own line, trimmed from a longer remembered one or tidied ("with -- with"),
    was no near-copy of that line, so the same line came back every other turn (12 of one argument's 19
    replies). Real justices say one of their last two lines again in 1.1% of their lines, and a line said twice
    before in 0.02%.
    """
    if any(says_again(line, x) for x in said[-THREAD_SKIP_LATEST:]):
        return True
    return sum(says_again(line, x) for x in said) >= THREAD_MAX_REPEATS


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4).digest(), "big")


class TwinEngine:
    """Answers for any interviewer of any tenant; holds connections and models, not session state.

    :param profiles: versioned profiles in PostgreSQL.
    :param memory: persona memory in Weaviate (``processors.twin.memory.PersonaMemory``).
    :param embedder: sentence embedder shared with retrieval and the offline generator.
    :param llm: an ``LlmGenerator`` or None for the offline twin.
    :param config: the tenant/interviewer configuration (``ConfigStore``); None: defaults and the
        version's trained config only (evaluation runs).
    """

    def __init__(self, profiles: ProfileStore, memory, embedder, llm=None, tools_enabled: bool = True,
                 retrieve_k: int = 24, config: ConfigStore | None = None):
        self.profiles = profiles
        self.config = config
        self.memory = memory
        self.embedder = embedder
        self.llm = llm
        self.tools_enabled = tools_enabled
        self.retrieve_k = retrieve_k
        self._models: dict[tuple[str, str, int], VersionModels] = {}
        self._own_weaviate = None  # the client from_settings opened (closed by close())

    def close(self) -> None:
        """Close what the engine holds open: its PostgreSQL connections, the config cache's Redis client
        and, when ``from_settings`` opened it, the Weaviate client."""
        self.profiles.close()
        if self.config is not None:
            self.config.close()
        if self._own_weaviate is not None:
            self._own_weaviate.close()
            self._own_weaviate = None

    @classmethod
    def from_settings(cls, cfg: Settings, weaviate_client=None, memory_prefix: str | None = None) -> "TwinEngine":
        """Build the engine from settings (LLM when OPENAI_BASE_URL/OPENAI_API_KEY is set)."""
        from infra.clients import weaviate_client as make_weaviate
        from processors.twin.embeddings import get_embedder
        from processors.twin.llm_generator import LlmGenerator
        from processors.twin.memory import PersonaMemory

        embedder = get_embedder()
        prefix = cfg.WEAVIATE_COLLECTION_PREFIX if memory_prefix is None else memory_prefix
        client = weaviate_client or make_weaviate(cfg)
        memory = PersonaMemory.connect(client, embedder, prefix=prefix)
        llm = LlmGenerator.from_settings(cfg) if cfg.llm_configured else None
        engine = cls(ProfileStore(cfg.POSTGRES_DSN), memory, embedder, llm, tools_enabled=cfg.TWIN_TOOLS_ENABLED,
                     config=ConfigStore.from_settings(cfg))
        if weaviate_client is None:
            engine._own_weaviate = client
        return engine

    # ------------------------------------------------------------------------------------------
    def respond(self, *, tenant: str, interviewer_id: str, session_id: str, history: Sequence[Any],
                candidate_turn: str, controls: Any = None, temperature: float | None = None,
                profile: InterviewerProfile | None = None, use_llm: bool | None = None,
                ablate: Sequence[str] = ()) -> EngineReply:
        """Produce the interviewer's next turn. Raises UnknownInterviewer when nothing is trained.

        ``ablate``: parts of ``ABLATIONS`` to switch off (the evaluation's ablation table only).
        """
        unknown = set(ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
        steps: list[TraceStep] = []

        @contextmanager
        def step(name: str, **attrs: Any) -> Iterator[dict[str, Any]]:
            detail: dict[str, Any] = {}
            started = time.perf_counter()
            with tracer().start_as_current_span(f"twin.{name}", attributes=attrs) as span:
                yield detail
                for k, v in detail.items():
                    if isinstance(v, (str, int, float, bool)):
                        span.set_attribute(f"twin.{k}", v)
            steps.append(TraceStep(name=name, ms=round((time.perf_counter() - started) * 1000, 3),
                                   detail=detail or None))

        turns = [t if isinstance(t, Turn) else Turn(role=_role(t), text=_text(t)) for t in history]
        with step("profile") as d:
            profile = profile or self.profiles.active(tenant, interviewer_id)
            if profile is None:
                raise UnknownInterviewer(f"no trained twin for {tenant}/{interviewer_id}")
            d["version"] = profile.version
            conf = self.effective_config(tenant, interviewer_id, profile)
            ctl = controls_from(controls, profile, conf)
            d["config"] = conf.version
            d["controls"] = " ".join(f"{k}={v}" for k, v in ctl.model_dump(by_alias=True).items() if v is not None)

        with step("input_check") as d:
            policy = SafetyPolicy.from_config(conf)
            screen = screen_input(policy, candidate_turn)
            d.update(passed=not screen.attack, guarded=",".join(screen.guarded), pii=len(screen.pii))
            if screen.attack:
                d["flags"] = ",".join(sorted({f"{f.category}:{f.detail}" for f in screen.verdict.flags}))

        def acceptable(text: str) -> bool:
            return policy.check(text, "output").passed and screen.allows(text)

        with step("session") as d:
            # A turn to leave is not grounded on: its words must not be edited into the reply.
            state = SessionState.from_history([] if "grounding" in ablate else turns,
                                              "" if "grounding" in ablate or screen.redirect else candidate_turn)
            d.update(addressee=state.addressee or "", terms=", ".join(t.text for t in state.key_terms[:5]))
        models = self.version_models(tenant, interviewer_id, profile)

        with step("retrieve") as d:
            # The query is cut as the version's memory was indexed ("head" before the cut was recorded).
            cut = d["situation_cut"] = profile.artefacts.get("situationCut", "head")
            vector = self.memory.embed_situation(turns, candidate_turn, cut)
            exemplars = self.memory.similar_moments(tenant, interviewer_id, profile.version, vector, self.retrieve_k)
            d["exemplars"] = len(exemplars)
            if models.selector is not None and models.selector.uses_context and "selection" not in ablate:
                # The interviewer's lines nearest the conversation itself join the moments nearest its
                # situation (the selector was fitted on both).
                from processors.twin.selection import CONTEXT_LINES, context_text

                context = self.embedder.embed_cached([context_text(turns, candidate_turn)])[0]
                seen = {e.exemplar_id for e in exemplars}
                lines = [e for e in self.memory.similar_lines(tenant, interviewer_id, profile.version, context,
                                                              CONTEXT_LINES) if e.exemplar_id not in seen]
                exemplars = [*exemplars, *lines]
                d["context_lines"] = len(lines)
            banned = topic_pattern(conf.prohibitedTopics)
            if banned is not None:
                # Lines that raise a prohibited topic are not offered to either generator (the safety
                # agent would replace such a reply anyway); when all do, the safety agent decides.
                allowed = [e for e in exemplars if not banned.search(e.reply)]
                if allowed and len(allowed) < len(exemplars):
                    d["prohibited_dropped"] = len(exemplars) - len(allowed)
                    exemplars = allowed
            if models.selector is not None and models.selector.own_thread and "selection" not in ablate and exemplars:
                # The interviewer's own earlier lines here compete with memory's (the selector orders both).
                own = own_thread_exemplars(turns, session_id, median(float(e.score) for e in exemplars))
                if banned is not None:
                    own = [e for e in own if not banned.search(e.reply)]
                exemplars = [*exemplars, *own]
                d["own_thread"] = len(own)

        with step("policy") as d:
            seed = _seed(session_id, len(turns), candidate_turn)
            move_probs = models.move_model.predict_proba(turns, candidate_turn) \
                if models.move_model and "move_model" not in ablate else None
            decision = decide_next_move(turns, candidate_turn or None, profile.policy, ctl, seed=seed,
                                        temperature=temperature or 0.0, move_probs=move_probs)
            if screen.redirect:
                decision = redirect_from(decision, "input check: " + ", ".join(
                    sorted({f.category for f in screen.verdict.flags} | set(screen.guarded))))
            d.update(move=decision.move.value, confidence=round(decision.confidence, 3),
                     model="learned" if move_probs else "rules", reasons="; ".join(decision.reasons[:4]))

        calls = [FunctionCall(name=decision.move.value, args={"confidence": round(decision.confidence, 3),
                                                             "reasons": decision.reasons[:4]})]
        wanted = tool_for(decision.move.value, candidate_turn, rubric=rubric_of(profile) is not None) \
            if self.tools_enabled and "tools" not in ablate and not screen.redirect else None
        if wanted is not None and not conf.tool_allowed(wanted):
            wanted = None  # the tools flag (or disabledTools) of the tenant/interviewer
        tool_results: list[ToolResult] = []

        def run_tool(name: str, args: dict[str, Any]) -> ToolResult:
            with step(f"tool.{name}") as d:
                result = self._run_tool(name, args, tenant, interviewer_id, profile, vector, turns, candidate_turn,
                                        policy=policy)
                d.update(tool=name, ok=result.ok)
            tool_results.append(result)
            return result

        if "llm" in ablate:
            use_llm = False
        if use_llm is None:  # the caller did not choose: the generator flag does (when an LLM exists)
            llm = None if conf.flags.generator == "offline" else self.llm
        else:
            llm = self.llm if use_llm else None
        if use_llm and self.llm is None:
            raise RuntimeError("use_llm=True but no LLM is configured (OPENAI_BASE_URL / OPENAI_API_KEY)")
        # An attack the input check caught is answered with the interviewer's own lines that leave it: a model
        # given the attack to write from tends to take it up or repeat it ("Women are ...").
        llm_skipped = llm is not None and screen.redirect
        if llm_skipped:
            llm = None
        if llm is None and wanted:
            # Offline the tool runs before anything is chosen, so its result can change what is said.
            result = run_tool(wanted, self._offline_tool_args(wanted, candidate_turn))
            if result.name == "rubric_check" and result.ok:
                decision = adjust_for_rubric(decision, result.result, ctl)
        with step("select") as d:
            selector = None if "selection" in ablate else models.selector
            ordered, query = self._select(selector, turns, candidate_turn, vector, exemplars, decision)
            # The twin is not interrupted: a line its interviewer was cut off in before saying anything
            # ("May I ask, Mister --") would be said whole, as "May I ask, Mister."
            said = [p for p in ordered if not is_cut_short(p[0].reply)]
            d["cut_short_lines"] = len(ordered) - len(said)
            # Nor does it say again what it has just said, or a line it has said twice already: memory can hold
            # a near-copy of the interviewer's latest lines (a stock question, a clip retold in a compilation
            # episode), which fits this moment best of all, and in a live session those lines are the twin's own.
            mine = [t.text for t in turns if t.role == "interviewer"][-SAID_LINES_REMEMBERED:]
            fresh = [p for p in said if not said_before(p[0].reply, mine)]
            d["restated_lines"] = len(said) - len(fresh)
            ordered = fresh or said or ordered
            if screen.redirect:
                # A redirect is said with the interviewer's own lines that leave a topic, when memory has
                # any, and never with a line whose own moment was about the topic being left ("Or you're
                # leaving in three months", said in a pregnancy case, to "I'm pregnant").
                apart = [p for p in ordered if not screen.touches(f"{p[0].candidate_turn} {p[0].context}")]
                leaving = [p for p in apart if p[0].labelled_move() in (Move.MOVE_ON, Move.SHIFT_TOPIC)]
                d["redirect_lines"] = len(leaving)
                ordered = leaving or apart or ordered
                # An attack answers nothing: the interviewer asks their question again, as people do when baited,
                # before any remembered line (those come from other moments: "Got it.", "What did you do that
                # for?" to "ask me how old I am"). Not after a topic the candidate raised about themselves:
                # that turn may well have answered the question.
                again = standing_ask_exemplar(turns, session_id, ordered[0][0].score if ordered else 0.0) \
                    if screen.attack else None
                if again is not None and not screen.touches(again.reply):
                    ordered = [(again, (ordered[0][1] if ordered else 0.0) + 1.0), *ordered]
                    d["asked_again"] = again.key
            if selector is not None and ordered:
                d.update(candidates=len(ordered), best=ordered[0][0].key, score=round(ordered[0][1], 4))
        usage: dict[str, int] = {}
        model: str | None = None

        def offline_reply(draw: float):
            # Ablated selection keeps memory's order (scores as learned ones), not the hand weights.
            return models.generator.generate(
                candidate_turn, turns, [e for e, _ in ordered], decision, ctl,
                seed=_seed(session_id, len(turns)), temperature=draw,
                learned_scores=[x for _, x in ordered] if models.selector is not None else None, session=state,
                edit="editing" not in ablate, acceptable=acceptable)

        def answered_first(text: str, d: dict[str, Any]) -> str:
            # The candidate asked something the interviewer's notes answer (fact lookup): the offline reply
            # gives the answer first. (An LLM draft has the lookup's result to write from.)
            fact = next((r.result["answer"] for r in tool_results if r.name == "fact_lookup" and r.ok
                         and "answer" in r.result), None)
            if not fact or fact["text"] in text or not acceptable(fact["text"]):
                return text
            d["fact"] = fact["note"]
            return f"{fact['text']} {text}".strip()

        with step("generate", generator="llm" if llm else "offline") as d:
            if llm is not None:
                from processors.twin.llm_generator import build_system_prompt, reply_token_budget

                system = build_system_prompt(interviewer_id, profile.style, decision, ctl, [e for e, _ in ordered],
                                             guidelines=conf.companyGuidelines, avoid_topics=conf.prohibitedTopics,
                                             session=state)
                # adapters flag off: the base model even when this version has a fine-tuned one.
                model = (profile.config.get("fineTunedModel") or None) if conf.flags.adapters else None
                out = llm.generate(system, [{"role": t.role, "text": t.text} for t in turns], candidate_turn,
                                   model=model, temperature=temperature, tool=wanted, run_tool=run_tool,
                                   max_tokens=reply_token_budget(profile.style, ctl, llm.max_tokens))
                text, model = out.text, out.model
                usage = {"promptTokens": out.prompt_tokens, "completionTokens": out.completion_tokens}
                source_ids: list[str] = []
                d.update(model=model, calls=out.calls, **usage)
                # A draft that parrots the candidate ("You just said: ...") is not this interviewer, and it can
                # carry an attack the input check missed, whole or in pieces (a word of a dictated
                # prohibited question, a phone number cut short): it gives way like a refused one.
                taken_up = screen.takes_up_flagged(text) if text.strip() else []
                refused = bool(text.strip()) and (not acceptable(text) or bool(taken_up)
                                                  or repeats_words(text, candidate_turn, PARROT_WORDS))
                if taken_up:
                    d["llm_draft_took_up"] = ",".join(taken_up[:5])
                # The selector that chose the candidates judges the draft too: a rewrite of the best
                # line that it scores below that line gives way to the offline twin's edit of it.
                worse = (not refused and bool(text.strip()) and selector is not None and query is not None
                         and not self._draft_holds_up(selector, query, ordered, text, decision))
                if refused or worse:
                    reply = offline_reply(0.0)
                    text, source_ids = answered_first(reply.text, d), reply.source_exemplar_ids
                    d["llm_draft_refused" if refused else "llm_draft_below_offline"] = True
            else:
                # Without a requested temperature the selector says whether to draw (seeded by session and turn).
                draw = temperature or (selector.temperature if selector is not None else 0.0)
                reply = offline_reply(draw)
                text, source_ids = reply.text, reply.source_exemplar_ids
                text = answered_first(text, d)
                d.update(exemplar=",".join(source_ids[:1]), notes="; ".join(reply.notes[:3]))
                if llm_skipped:
                    d["llm_skipped"] = "input check"
                if reply.refused:
                    d["refused_lines"] = reply.refused  # candidate lines that failed the safety checks
                if reply.other_session:
                    d["other_session_lines"] = reply.other_session  # lines naming what this session never did
            if not text.strip():
                text = self._fallback_text(profile, acceptable)
                d["empty_reply_replaced"] = True
        with step("ground") as d:
            text, ground_notes = remove_placeholders(text, state)
            if ground_notes:
                d["placeholders"] = "; ".join(ground_notes[:3])
            if not text.strip() or not acceptable(text):  # e.g. a lead-in that agrees with an attack
                text = self._fallback_text(profile, acceptable)
                d["fallback"] = True

        for r in tool_results:
            calls.append(FunctionCall(name=r.name, args={"args": r.args, "result": r.result}))

        with step("prosody"):
            p = prosody_directives(text, move=decision.move, controls=ctl)
            prosody = Prosody(pace=p.pace, intonation=p.intonation, emphasis=p.emphasis,
                              pauses=[Pause(afterWord=x.after_word, ms=x.ms) for x in p.pauses])
        return EngineReply(text=text, move=decision.move, decision=decision, function_calls=calls, prosody=prosody,
                           steps=steps, generator="llm" if llm else "offline", model=model,
                           profile_version=profile.version, exemplar_ids=list(source_ids), usage=usage,
                           config=conf, input_screen=screen)

    # ------------------------------------------------------------------------------------------
    def effective_config(self, tenant: str, interviewer_id: str, profile: InterviewerProfile) -> EffectiveConfig:
        """The configuration for this request (cached in Redis; see processors/twin/config.py)."""
        if self.config is None:
            return profile_config(tenant, interviewer_id, profile)
        return self.config.effective(tenant, interviewer_id, profile.version, profile.config)

    def version_models(self, tenant: str, interviewer_id: str, profile: InterviewerProfile) -> "VersionModels":
        """The offline generator, move model and response selector of one version (loaded once)."""
        key = (tenant, interviewer_id, profile.version)
        models = self._models.get(key)
        if models is None:
            models = self._models[key] = VersionModels.load(profile, self.embedder)
        return models

    def _select(self, selector: Any, turns: Sequence[Turn], candidate_turn: str, vector,
                exemplars: Sequence[Any], decision: PolicyDecision) -> list[tuple[Any, float]]:
        """Memory's exemplars with the selector's scores, best first (retrieval order without a selector),
        and the moment as the selector saw it (None without one)."""
        if selector is None or not exemplars:
            return [(e, float(e.score)) for e in exemplars], None
        from processors.twin.selection import moment_query

        query = moment_query(self.embedder, turns, candidate_turn, vector)
        scores = selector.scores(query, selector.candidate_set(exemplars, self.embedder, vector), decision.scores)
        return sorted(zip(exemplars, (float(x) for x in scores)), key=lambda p: -p[1]), query

    def _draft_holds_up(self, selector: Any, query: Any, ordered: Sequence[tuple[Any, float]], draft: str,
                        decision: PolicyDecision) -> bool:
        """Whether the selector scores an LLM draft at least as high as the best candidate line.

        The draft stands in the best line's situation (the prompt asks the model to adapt that line), so
        only the words differ; it is scored among all the candidates, as the selector standardises within them.
        """
        if not ordered:
            return True
        exemplars = [e for e, _ in ordered]
        rewrite = exemplars[0].model_copy(update={"reply": draft, "exemplar_id": "", "move": None})
        scores = selector.scores(query, selector.candidate_set([*exemplars, rewrite], self.embedder, query.situation),
                                 decision.scores)
        return bool(scores[-1] >= scores[:-1].max())

    @staticmethod
    def _offline_tool_args(name: str, candidate_turn: str) -> dict[str, Any]:
        if name == "run_code":
            m = CODE_RE.search(candidate_turn)
            return {"code": m.group(1) if m else ""}
        if name == "fact_lookup":
            return {"query": candidate_turn}
        return {"answer": candidate_turn}

    def _run_tool(self, name: str, args: dict[str, Any], tenant: str, interviewer_id: str,
                  profile: InterviewerProfile, vector, turns: Sequence[Turn], candidate_turn: str,
                  policy: SafetyPolicy | None = None) -> ToolResult:
        started = time.perf_counter()
        if name == "run_code":
            code = str(args.get("code") or "")
            m = CODE_RE.search(candidate_turn or "")
            # Run what the candidate wrote, not what a model may have rewritten.
            if m:
                code = m.group(1)
            # In the bubblewrap sandbox (or refused when there is none); what it printed goes back to the
            # caller and the LLM only after the safety output check (a flagged stream is withheld).
            outcome = run_snippet(code)
            result = code_tool_result(outcome, policy or SafetyPolicy())
            ok = outcome.status in ("ok", "error")
        elif name == "fact_lookup":
            query = str(args.get("query") or candidate_turn)
            qv = self.embedder.embed([query])[0] if query != candidate_turn else vector
            hits = self.memory.persona_docs(tenant, interviewer_id, profile.version, qv)
            result = {"facts": [{"kind": h.properties.get("kind"), "text": h.properties.get("reply"),
                                 "distance": round(h.distance, 3)} for h in hits]}
            answer = self._fact_answer(tenant, interviewer_id, profile, query)
            if answer is not None:
                result["answer"] = {"text": answer.text, "note": answer.key, "similarity": answer.similarity}
            ok = True
        elif name == "rubric_check":
            answer = str(args.get("answer") or candidate_turn)
            result = rubric_check(answer, rubric_of(profile) or DEFAULT_RUBRIC, embedder=self.embedder)
            ok = True
        else:
            result, ok = {"error": f"unknown tool {name}"}, False
        return ToolResult(name=name, args=args, result=result, ms=round((time.perf_counter() - started) * 1000, 2),
                          ok=ok)

    def _fact_answer(self, tenant: str, interviewer_id: str, profile: InterviewerProfile,
                     query: str) -> FactAnswer | None:
        """What the notes supplied with this version say to the candidate's question (``tools.facts``), if any.

        Nothing is embedded or looked up for a version trained without notes of its own (as every interviewer
        trained from transcripts alone).
        """
        supplied = {d.get("key") for d in profile.artefacts.get("docs") or []
                    if d.get("kind") == "note" and d.get("key") not in DERIVED_NOTE_KEYS}
        question = asked_question(query) if supplied else None
        if question is None:
            return None
        vector = self.embedder.embed_cached([question])[0]
        hits = self.memory.persona_docs(tenant, interviewer_id, profile.version, vector, kinds=("note",), limit=3)
        notes = [(h.properties.get("key"), h.properties.get("reply") or "") for h in hits
                 if h.properties.get("key") in supplied]
        return answer_from_notes(question, notes, self.embedder)

    @staticmethod
    def _fallback_text(profile: InterviewerProfile, acceptable=None) -> str:
        """The interviewer's own most frequent question frame that passes ``acceptable``, else a neutral line."""
        own = [t.text for t in profile.style.question_templates if "{x}" not in t.text]
        for text in [*own, *SAFE_FALLBACKS]:
            if acceptable is None or acceptable(text):
                return text
        return SAFE_FALLBACKS[0]


@dataclass
class VersionModels:
    """What one interviewer version answers with offline, loaded from its artefacts.

    ``move_model`` and ``selector`` are None for versions trained without them (the rule-based policy
    and the generator's hand-weighted ranking serve those).
    """

    generator: OfflineGenerator
    move_model: Any = None
    selector: Any = None

    @classmethod
    def load(cls, profile: InterviewerProfile, embedder) -> "VersionModels":
        from pathlib import Path

        move_model = selector = None
        move_path = (profile.artefacts.get("moveModel") or {}).get("path")
        if move_path and Path(move_path).is_file():
            from processors.twin.move_model import MoveModel

            move_model = MoveModel.load(move_path, embedder=embedder)
        selector_path = (profile.artefacts.get("selector") or {}).get("path")
        if selector_path and Path(selector_path).is_file():
            from processors.twin.selection import ResponseSelector

            selector = ResponseSelector.load(Path(selector_path))
        return cls(OfflineGenerator(profile.style, embedder=embedder,
                                    common_names=profile.artefacts.get("commonNames")), move_model, selector)


def _role(turn: Any) -> str:
    return turn["role"] if isinstance(turn, dict) else turn.role


def _text(turn: Any) -> str:
    return turn["text"] if isinstance(turn, dict) else turn.text
