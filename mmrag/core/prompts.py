"""The one prompt style shared by training (finetune/) and answering (rag_app/).

An adapter sees at answer time exactly the prompt shape it was trained on: the images first, then the numbered
sources, the question and the instruction. Training samples are single-chart prompts built by the same function
(`user_text` with one image source), stored in LLaVA's conversation format by `llava_human_turn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

PROMPT_STYLE = "mmrag-grounded-v1"
"""Recorded in adapter manifests; the app refuses an adapter trained with another style."""

NOT_FOUND = "Not found in the indexed documents."

INSTRUCTION = (
    "Answer the question using only the sources above. Give a short answer (a number, a word or a phrase) and "
    f"cite the sources you used as [n]. If the sources do not contain the answer, reply exactly: {NOT_FOUND}"
)


@dataclass(frozen=True)
class ContextItem:
    """One numbered source shown to the model: an image (passed as pixels) or a text snippet."""

    n: int
    kind: Literal["image", "page", "text"]
    label: str
    text: str = ""


def user_text(question: str, sources: Sequence[ContextItem]) -> str:
    """The user turn's text (image placeholders are added by `messages` / `llava_human_turn`): the sources in the
    order given (the images first), each under its own number, its rank (so the images may be [2] and [4])."""
    lines = ["Sources:"]
    for item in sources:
        if item.kind == "text":
            lines.append(f"[{item.n}] {item.label}: {_one_line(item.text)}")
        else:
            caption = f" Caption: {_one_line(item.text)}" if item.text else ""
            lines.append(f"[{item.n}] ({item.kind}) {item.label}.{caption}")
    lines += ["", f"Question: {question.strip()}", INSTRUCTION]
    return "\n".join(lines)


def messages(n_images: int, text: str) -> list[dict[str, Any]]:
    """Chat messages for a processor's chat template: the images first, then the text."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def llava_human_turn(n_images: int, text: str) -> str:
    """The same user turn in LLaVA's training format (`<image>` markers, then the text)."""
    return "<image>\n" * n_images + text


def chart_sources(chart_label: str = "chart") -> tuple[ContextItem, ...]:
    """The sources of a single-chart prompt: the chart is source [1] (finetuning samples, `finetune eval`, the
    SageMaker endpoint and chart descriptions at index time all show a chart this way)."""
    return (ContextItem(n=1, kind="image", label=chart_label),)


def chart_training_prompt(question: str, chart_label: str = "chart") -> str:
    """The single-chart prompt of a finetuning sample (`rag_app.generator.GenerationRequest.chart` asks it)."""
    return user_text(question, chart_sources(chart_label))


REWRITE_INSTRUCTION = (
    "Rewrite the follow-up question as one standalone question that can be understood without the conversation. "
    "Reply with the question only."
)


def rewrite_text(question: str, turns: Sequence[tuple[str, str]], answer_limit: int = 300) -> str:
    """The user turn of a text-only request to make a chat's follow-up standalone: the earlier (question, answer)
    turns, oldest first (each answer shortened to `answer_limit` characters), the follow-up, the instruction."""
    lines = ["Conversation:"]
    for asked, answered in turns:
        lines += [f"User: {_one_line(asked)}", f"Assistant: {_one_line(answered, answer_limit)}"]
    lines += ["", f"Follow-up question: {_one_line(question)}", REWRITE_INSTRUCTION]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 700) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
