"""Generation through the ``openai`` client: OpenAI, or any OpenAI-compatible server (OPENAI_BASE_URL).

The prompt is built from the persona (style profile), the policy's decided move, retrieved
exemplars of the interviewer's own lines, controls and tool results. Tools use standard function
calling: when the policy wants a tool, the first call forces that tool (``tool_choice``), the
engine executes it, and a second call writes the reply with the result in context.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from processors.twin.offline_generator import Exemplar
from processors.twin.policy import Controls, Move, PolicyDecision
from processors.twin.style import StyleProfile
from processors.twin.tools import TOOL_SCHEMAS, ToolResult

__all__ = ["LlmGenerator", "LlmReply", "build_system_prompt", "clean_reply", "reply_token_budget", "MOVE_INSTRUCTIONS"]

_LABEL_RE = re.compile(r"^\s*(?:interviewer|assistant|dana|ai)\s*:\s*", re.IGNORECASE)


def clean_reply(text: str, max_chars: int = 600) -> str:
    """One spoken turn from a model's output: first paragraph, no role label, no markdown fences."""
    text = html.unescape(text).strip()  # servers may return "&#39;"; unescape before stripping markup
    text = text.split("```")[0]
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    text = _LABEL_RE.sub("", text)
    text = re.sub(r"[*_#`]+", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > max_chars:
        text = _cut_after_last_sentence(text[:max_chars])
    return text


def _cut_after_last_sentence(text: str) -> str:
    """``text`` up to the last sentence end followed by more text, when it has one."""
    end = max(text.rfind(". "), text.rfind("? "), text.rfind("! "))
    return text[: end + 1] if end > 0 else text


# English text runs about 1.3 tokens per word in these models' tokenizers; the margin lets a reply end its
# sentence instead of being cut at the interviewer's usual length.
TOKENS_PER_WORD = 1.3
BUDGET_MARGIN = 1.5
MIN_REPLY_TOKENS = 32


def reply_token_budget(profile: StyleProfile | None, controls: Controls, cap: int) -> int:
    """Completion tokens for one reply: about this interviewer's long turns (their 90th percentile of words,
    the median when ``terse``), never more than ``cap``. A small model writes until it is stopped, and each
    completion token costs latency (SmolLM2 on 2 cores: ~40 per second), so the cap should be this
    interviewer's length rather than one size for everyone."""
    if profile is None or not profile.n_turns or controls.verbosity == "verbose":
        return cap
    words = profile.word_count.get("p50" if controls.verbosity == "terse" else "p90") or 0.0
    if words <= 0:
        return cap
    return int(min(cap, max(MIN_REPLY_TOKENS, round(words * TOKENS_PER_WORD * BUDGET_MARGIN))))


def _to_sentence_end(text: str) -> str:
    """``text`` up to its last sentence end, when it has one (a reply cut at its token budget)."""
    return text if text.endswith((".", "?", "!")) else _cut_after_last_sentence(text)


MOVE_INSTRUCTIONS = {
    Move.OPEN: "Open the interview with your first question.",
    Move.ASK_FOLLOWUP: "Ask one follow-up question about what the candidate just said.",
    Move.PROBE_DEEPER: "Probe deeper: challenge or ask for specifics, reasons or evidence behind the candidate's answer.",
    Move.GIVE_HINT: "Give a short hint that nudges the candidate without giving the answer away.",
    Move.SHIFT_TOPIC: "Move to a new topic with a fresh question.",
    Move.MOVE_ON: "Acknowledge briefly and move on to the next question.",
    Move.WRAP_UP: "Wrap up the interview politely.",
}

_VERBOSITY = {"terse": "Keep it to one short sentence.", "normal": "Keep it to one to three sentences.",
              "verbose": "You may use up to five sentences."}


@dataclass
class LlmReply:
    text: str
    model: str
    tool_results: list[ToolResult] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    ms: float = 0.0


def build_system_prompt(interviewer_id: str, profile: StyleProfile | None, decision: PolicyDecision,
                        controls: Controls, exemplars: Sequence[Exemplar], persona_notes: Sequence[str] = (),
                        guidelines: Sequence[str] = (), avoid_topics: Sequence[str] = (),
                        session: Any = None) -> str:
    """The system prompt: who to be, how they talk, what to do now, and examples of their lines.

    ``guidelines`` and ``avoid_topics``: the company guidelines and prohibited topics of the
    tenant/interviewer configuration (processors/twin/config.py). ``session``: the session's state
    (``grounding.SessionState``): whom to address and what this conversation is about, so the
    model speaks to this session rather than the one an example came from. ``exemplars`` come best
    first (the response selector's order)."""
    lines = [
        f"You are interviewer '{interviewer_id}' in a live interview. Reply exactly as this interviewer would:"
        " same voice, same habits, one turn only, no narration, no role labels.",
        "Never ask about age, religion, marital or family status, pregnancy, national origin, disability or"
        " sexual orientation; never insult the candidate; never reveal personal data.",
    ]
    if profile is not None and profile.n_turns:
        wc = profile.word_count
        lines.append(
            f"Style: typically {wc.get('p50', 20):.0f} words per turn; questions in {profile.question_rate:.0%} of turns;"
            f" follow-ups {profile.follow_up_rate:.0%}; challenge level {profile.challenge_level:.2f};"
            f" coaching {profile.coaching_ratio:.2f}.")
        if profile.lead_ins:
            lines.append("Habitual lead-ins: " + ", ".join(f'"{p.text}"' for p in profile.lead_ins[:5]) + ".")
    if avoid_topics:
        lines.append("Never raise these topics: " + "; ".join(avoid_topics[:50]) + ".")
    for rule in guidelines[:20]:
        lines.append(f"Company guideline: {rule}")
    lines.append("Your move now: " + MOVE_INSTRUCTIONS.get(decision.move, MOVE_INSTRUCTIONS[Move.ASK_FOLLOWUP]))
    lines.append(_VERBOSITY[controls.verbosity])
    if controls.challenge_level is not None:
        lines.append(f"Challenge level {controls.challenge_level:.1f} of 1.")
    if controls.coaching_ratio is not None:
        lines.append(f"Coaching ratio {controls.coaching_ratio:.1f} of 1.")
    if controls.tone:
        lines.append(f"Tone: {controls.tone}.")
    for note in persona_notes[:4]:
        lines.append(f"Interviewer note: {note}")
    if session is not None:
        if getattr(session, "addressee", None):
            lines.append(f"You are speaking with {session.addressee}; address them so if you use a name.")
        terms = [t.text for t in getattr(session, "key_terms", ())[:6]]
        if terms:
            lines.append("This conversation is about: " + ", ".join(terms) + ".")
        if getattr(session, "open_question", None):
            lines.append(f"Your last question was: {session.open_question[:200]}")
        if getattr(session, "claim", None):
            lines.append(f"They just said: {session.claim[:200]}")
    if exemplars:
        # Few and short: each token of prompt costs latency on small servers.
        lines.append("Lines you said in other conversations that fit this moment (adapt one to this"
                     " conversation's names and subject; never copy another case's names):")
        lines += [f"- {e.reply[:200]}" for e in exemplars[:3]]
    return "\n".join(lines)


def _ending(text: str, chars: int) -> str:
    """The last ``chars`` characters of ``text``, from a word start, marked as cut."""
    text = text or ""
    return text if len(text) <= chars else "..." + text[-chars:].split(" ", 1)[-1]


class LlmGenerator:
    """Chat completions with optional forced tool calls.

    :param client: an ``openai.OpenAI`` client (base_url may point at any compatible server).
    :param model: default model id; a fine-tuned id per interviewer overrides it.
    """

    # The session so far reaches the model as its state in the system prompt (whom, what about, the open
    # question, the claim); the chat itself carries only the last few turns, each cut to its end: prompt
    # tokens are most of a small server's latency (~150 per second on 2 cores).
    HISTORY_TURNS = 4
    TURN_CHARS = 400
    # The candidate's turn is cut to its end too, longer: its end is what the reply answers, and a
    # SCOTUS advocate's turn can run to thousands of characters.
    CANDIDATE_CHARS = 900

    def __init__(self, client, model: str, max_tokens: int = 120):
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, cfg) -> "LlmGenerator":
        from openai import OpenAI

        client = OpenAI(base_url=cfg.OPENAI_BASE_URL or None,
                        api_key=cfg.OPENAI_API_KEY.get_secret_value() or "not-needed",
                        timeout=cfg.LLM_TIMEOUT_S, max_retries=1)
        return cls(client, cfg.OPENAI_MODEL, max_tokens=cfg.LLM_MAX_TOKENS)

    def generate(self, system: str, history: Sequence[dict[str, str]], candidate_turn: str, *,
                 model: str | None = None, temperature: float | None = None, tool: str | None = None,
                 run_tool: Callable[[str, dict[str, Any]], ToolResult] | None = None,
                 max_tokens: int | None = None) -> LlmReply:
        """One reply; with ``tool``, force that tool first, execute it with ``run_tool``, then answer.

        ``max_tokens``: the reply's completion budget (``reply_token_budget``; default the generator's
        cap). A reply stopped by it ends at its last full sentence."""
        started = time.perf_counter()
        model = model or self.model
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for turn in history[-self.HISTORY_TURNS:]:
            messages.append({"role": "assistant" if turn["role"] == "interviewer" else "user",
                             "content": _ending(turn["text"], self.TURN_CHARS)})
        messages.append({"role": "user",
                         "content": _ending(candidate_turn, self.CANDIDATE_CHARS) or "(the candidate is silent)"})
        reply = LlmReply(text="", model=model)
        opts: dict[str, Any] = {"model": model, "max_tokens": min(max_tokens or self.max_tokens, self.max_tokens)}
        if temperature is not None:
            opts["temperature"] = temperature
        if tool and run_tool:
            first = self.client.chat.completions.create(
                messages=messages, tools=TOOL_SCHEMAS,
                tool_choice={"type": "function", "function": {"name": tool}}, **opts)
            reply.calls += 1
            self._count(reply, first)
            calls = first.choices[0].message.tool_calls or []
            if calls:
                # Empty string, not None: some compatible servers (llama.cpp) reject a null content.
                messages.append({"role": "assistant", "content": "", "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.function.name,
                                                                  "arguments": c.function.arguments}} for c in calls]})
                for c in calls:
                    try:
                        args = json.loads(c.function.arguments or "{}")
                    except json.JSONDecodeError:
                        args = {}
                    result = run_tool(c.function.name, args if isinstance(args, dict) else {})
                    reply.tool_results.append(result)
                    messages.append({"role": "tool", "tool_call_id": c.id,
                                     "content": json.dumps(result.result)[:2000]})
        final = self.client.chat.completions.create(messages=messages, **opts)
        reply.calls += 1
        self._count(reply, final)
        reply.text = clean_reply(final.choices[0].message.content or "")
        if final.choices[0].finish_reason == "length":
            reply.text = _to_sentence_end(reply.text)
        reply.model = final.model or model
        reply.ms = round((time.perf_counter() - started) * 1000, 2)
        return reply

    def warm_up(self) -> None:
        """One forced tool call and one plain completion, so the first real request is not the cold one."""
        from processors.twin.policy import PolicyDecision

        system = build_system_prompt("warm-up", None, PolicyDecision(move=Move.ASK_FOLLOWUP, confidence=1.0),
                                     Controls(), [])
        self.generate(system, [], "print(1)", tool="run_code",
                      run_tool=lambda name, args: ToolResult(name=name, args=args, result={"status": "skipped"}))

    @staticmethod
    def _count(reply: LlmReply, response) -> None:
        usage = getattr(response, "usage", None)
        if usage:
            reply.prompt_tokens += usage.prompt_tokens or 0
            reply.completion_tokens += usage.completion_tokens or 0
