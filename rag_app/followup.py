"""Follow-up questions: "and in 2022?" after "what was revenue in 2021?" made into one standalone question.

Retrieval sees one question at a time, so a chat turn that leans on earlier ones is first rewritten into a question
that stands on its own: by the VLM when there is a generator (a short, greedy, text-only request over the last few
turns, `mmrag.core.prompts.rewrite_text`), else by the retrieval-only rule: the previous question, then the
follow-up. The rule is also the fallback when the VLM's rewrite is empty or unusable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mmrag.core import prompts
from mmrag.core.errors import ConfigError
from mmrag.rag_app.chain import MAX_QUESTION_CHARS, check_question
from mmrag.rag_app.generator import GenerationRequest, Generator

HISTORY_TURNS = 3
"""The rewrite sees at most this many earlier turns (the latest ones)."""
ANSWER_CHARS = 300
"""Each earlier answer is shortened to this many characters in the rewrite prompt."""
REWRITE_TOKENS = 64
"""The rewrite's token limit: one question."""

_PREFIX = re.compile(r"^(?:(?:standalone|rewritten|follow-up|new)\s+)?question\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`*“”‘’«» "


@dataclass(frozen=True)
class Turn:
    """One finished chat turn: the question as the user asked it and the answer given."""

    question: str
    answer: str


def standalone_question(
    question: str, history: Sequence[Turn], generator: Generator | None, *, adapter: str | None = None
) -> str:
    """`question` made standalone given the earlier turns `history` (oldest first): unchanged without history,
    rewritten by `generator` (with `adapter`, None: the base model) if given, else joined to the previous question.
    ConfigError if the question is empty or too long (as any question)."""
    question = check_question(question)
    if not history:
        return question
    if generator is not None:
        rewritten = clean_rewrite(generator.generate(rewrite_request(question, history, adapter=adapter)))
        if rewritten is not None:
            return rewritten
    return joined(question, history)


def rewrite_request(question: str, history: Sequence[Turn], *, adapter: str | None = None) -> GenerationRequest:
    """The text-only request that asks the VLM for the standalone question: the last `HISTORY_TURNS` turns."""
    turns = [(turn.question, turn.answer) for turn in history[-HISTORY_TURNS:]]
    text = prompts.rewrite_text(question, turns, answer_limit=ANSWER_CHARS)
    return GenerationRequest(question, instruction=text, adapter=adapter, max_new_tokens=REWRITE_TOKENS)


def clean_rewrite(output: str) -> str | None:
    """The question in the VLM's reply: its first non-empty line without control characters, a "Standalone
    question:" prefix or quotes; None if nothing usable is left (empty, no letter or digit, the abstention text, or
    too long)."""
    printable = "".join(c for c in output if c.isprintable() or c.isspace())
    line = next((line.strip() for line in printable.splitlines() if line.strip()), "")
    line = _PREFIX.sub("", line.strip(_QUOTES)).strip(_QUOTES)
    if not any(c.isalnum() for c in line) or line.lower().startswith(prompts.NOT_FOUND.lower().rstrip(".")):
        return None
    try:
        return check_question(line)
    except ConfigError:
        return None


def joined(question: str, history: Sequence[Turn]) -> str:
    """The retrieval-only rule: the previous question, then the follow-up (the previous one shortened to fit)."""
    room = MAX_QUESTION_CHARS - len(question) - 1
    previous = " ".join(history[-1].question.split())[: max(room, 0)].strip()
    return check_question(f"{previous} {question}")
