"""Follow-up questions made standalone: the retrieval-only rule, and the rewrite by the tiny VLM (CPU)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mmrag.core import prompts, tiny
from mmrag.core.errors import ConfigError
from mmrag.rag_app.chain import MAX_QUESTION_CHARS
from mmrag.rag_app.followup import (
    ANSWER_CHARS,
    HISTORY_TURNS,
    REWRITE_TOKENS,
    Turn,
    clean_rewrite,
    rewrite_request,
    standalone_question,
)
from mmrag.rag_app.generator import Completion, GenerationRequest, LocalGenerator, Usage
from tests.helpers import CACHE_DIR

REVENUE = Turn("What was the revenue in 2021?", "12.4 million USD [1]")
FOLLOW_UP = "and in 2022?"


@pytest.fixture(scope="module")
def tiny_generator() -> LocalGenerator:
    """The tiny LLaVA through the real loading code; answers are short, the rewrite has its own limit."""
    tiny.ensure_tiny_models(CACHE_DIR)
    return LocalGenerator(str(tiny.tiny_vlm_dir(CACHE_DIR, "llava")), "cpu", cache_dir=CACHE_DIR, max_new_tokens=4)


class EmptyReplies(LocalGenerator):
    """A fake: a generator whose model replies `reply` (the tiny random model cannot be made to reply nothing)."""

    def __init__(self, reply: str) -> None:
        super().__init__("/nonexistent/vlm", "cpu", cache_dir=CACHE_DIR)
        self.reply = reply
        self.requests: list[GenerationRequest] = []

    def complete(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        return Completion(self.reply, Usage())


def test_without_history_the_question_is_kept() -> None:
    missing = LocalGenerator("/nonexistent/vlm", "cpu", cache_dir=CACHE_DIR)  # would fail if it were asked
    assert standalone_question("  What was the revenue\nin 2021? ", [], missing) == "What was the revenue in 2021?"
    assert standalone_question(FOLLOW_UP, [], None) == FOLLOW_UP
    with pytest.raises(ConfigError, match="empty"):
        standalone_question("  ", [REVENUE], None)


def test_retrieval_only_joins_the_previous_question() -> None:
    older = Turn("How many people work in sales?", "40")
    assert standalone_question(FOLLOW_UP, [older, REVENUE], None) == f"{REVENUE.question} {FOLLOW_UP}"
    long_ago = Turn("revenue " * 400, "")  # 3,200 characters: shortened so the whole still fits
    joined = standalone_question(FOLLOW_UP, [long_ago], None)
    assert len(joined) <= MAX_QUESTION_CHARS and joined.startswith("revenue revenue") and joined.endswith(FOLLOW_UP)


@pytest.mark.parametrize(
    ("reply", "cleaned"),
    [
        ("What was the revenue in 2022?", "What was the revenue in 2022?"),
        ('\n  Standalone question: "What was the revenue in 2022?"\nIt grew.', "What was the revenue in 2022?"),
        ("**Rewritten question:** What was the revenue\tin 2022?", "What was the revenue in 2022?"),
        ("“What was\x04 the revenue in 2022?”", "What was the revenue in 2022?"),
        ("", None),
        (" \n\n ", None),
        ('"?"', None),
        ("Standalone question:", None),
        (prompts.NOT_FOUND, None),
        ("x" * (MAX_QUESTION_CHARS + 1), None),
    ],
)
def test_clean_rewrite(reply: str, cleaned: str | None) -> None:
    assert clean_rewrite(reply) == cleaned


def test_rewrite_prompt_holds_the_last_turns() -> None:
    history = [Turn(f"Question {i}?", f"Answer {i} " + "x" * 1000) for i in range(5)] + [REVENUE]
    request = rewrite_request(FOLLOW_UP, history, adapter="/some/adapter")
    text = request.prompt_text
    assert text == prompts.rewrite_text(
        FOLLOW_UP, [(t.question, t.answer) for t in history[-HISTORY_TURNS:]], answer_limit=ANSWER_CHARS
    )
    assert "Question 2?" not in text and "Question 3?" in text and "Question 4?" in text
    assert text.index("Question 3?") < text.index(REVENUE.question) < text.index(f"Follow-up question: {FOLLOW_UP}")
    assert f"Assistant: {REVENUE.answer}" in text
    assert max(len(line) for line in text.splitlines()) < ANSWER_CHARS + 20  # long answers shortened
    assert text.endswith(prompts.REWRITE_INSTRUCTION)
    assert (request.images, request.sources) == ((), ())  # text only
    assert (request.adapter, request.max_new_tokens) == ("/some/adapter", REWRITE_TOKENS)


def test_tiny_generator_rewrites_with_its_own_token_limit(tiny_generator: LocalGenerator) -> None:
    history = [REVENUE]
    request = rewrite_request(FOLLOW_UP, history)
    reply = tiny_generator.generate(request)
    short = tiny_generator.generate(replace(request, max_new_tokens=None))  # the generator's 4 tokens
    assert short and reply.startswith(short) and len(reply) > len(short)  # greedy: the same start, 64 tokens long
    cleaned = clean_rewrite(reply)
    assert cleaned is not None  # the tiny model's text has letters: it is used as it is, cleaned
    assert standalone_question(FOLLOW_UP, history, tiny_generator) == cleaned


@pytest.mark.parametrize("reply", ["", "  \n", "Standalone question: ''"])
def test_unusable_rewrite_falls_back_to_the_retrieval_rule(reply: str) -> None:
    generator = EmptyReplies(reply)
    assert standalone_question(FOLLOW_UP, [REVENUE], generator, adapter="/a") == f"{REVENUE.question} {FOLLOW_UP}"
    [request] = generator.requests
    assert REVENUE.question in request.prompt_text and request.adapter == "/a"
