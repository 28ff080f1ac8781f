"""OpenAI-compatible chat: `POST /v1/chat/completions` and `GET /v1/models`, so chat front-ends (Open WebUI, the
`openai` package) can talk to mmrag.

The last user message is the question; the earlier user and assistant messages are the history, which turns a
follow-up ("and in 2022?") into a standalone question (`rag_app.followup`) before retrieval. The reply is a standard
`chat.completion` (or `chat.completion.chunk` events ending `data: [DONE]`) with one extra field, `sources`: the
numbered sources the answer cites. `temperature` and `max_tokens` are accepted and ignored (answers are greedy, at
most MMRAG_MAX_NEW_TOKENS long); `usage` counts words, not tokens.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from mmrag.api.errors import UnknownModelError, error_body
from mmrag.api.events import answer_parts, event_stream, sse
from mmrag.api.resources import Resources
from mmrag.core.errors import ConfigError, MmragError
from mmrag.core.settings import Settings
from mmrag.rag_app.chain import Answer, Prepared, RagChain

if TYPE_CHECKING:
    from mmrag.rag_app.followup import Turn

log = logging.getLogger(__name__)

MODEL = "mmrag"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        """The message's text: the string, or its text parts joined (images and other parts are left out)."""
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send options of their own (top_p, user, ...)

    model: str = Field(MODEL, description="`mmrag`, or `mmrag:ADAPTER` for the server's LoRA adapter (/v1/models).")
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, description="Ignored: answers are at most MMRAG_MAX_NEW_TOKENS long.")
    temperature: float | None = Field(None, description="Ignored: answers are greedy.")


def model_ids(settings: Settings) -> list[str]:
    """`mmrag` (the base VLM), and `mmrag:NAME` for the server's adapter (MMRAG_ADAPTER) when it has one."""
    return [MODEL] + ([adapter_model(settings.adapter)] if settings.adapter else [])


def adapter_model(adapter: str) -> str:
    return f"{MODEL}:{PurePosixPath(adapter.rstrip('/')).name or adapter}"


def split_messages(messages: list[Message]) -> tuple[str, list[Turn]]:
    """The question (the last message, a user's) and the earlier turns, oldest first."""
    from mmrag.rag_app.followup import Turn

    if messages[-1].role != "user":
        raise ConfigError("the last message must be the user's question")
    turns: list[Turn] = []
    for message in messages[:-1]:
        if message.role == "user":
            turns.append(Turn(message.text, ""))
        elif message.role == "assistant" and turns and not turns[-1].answer:
            turns[-1] = Turn(turns[-1].question, message.text)
    return messages[-1].text, [t for t in turns if t.question.strip()]


def chat_router(resources: Resources) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models")
    def models() -> dict[str, Any]:
        """The models a chat request may name."""
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "mmrag"} for m in model_ids(resources.settings)]
        return {"object": "list", "data": data}

    @router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
    def chat(body: ChatRequest) -> Any:
        """A `chat.completion` (with `stream`: `chat.completion.chunk` events, then `data: [DONE]`); `sources` holds
        the numbered sources (in the last chunk when streaming)."""
        from mmrag.rag_app.followup import standalone_question

        settings = _model_settings(resources.settings, body.model)
        question, history = split_messages(body.messages)
        generator = resources.generator()
        question = standalone_question(question, history, generator, adapter=settings.adapter)
        chain = resources.chain(settings, retrieval_only=resources.retrieval_only)
        prepared = chain.prepare(question)
        reply = _Reply(body.model, question)
        if body.stream:
            return event_stream(reply.chunks(chain, prepared))
        return reply.completion(chain.finish(prepared))

    return router


def _model_settings(settings: Settings, model: str) -> Settings:
    if model == MODEL:
        return settings.model_copy(update={"adapter": None})
    if settings.adapter is not None and model == adapter_model(settings.adapter):
        return settings
    raise UnknownModelError(f"unknown model {model!r}: choose one of {', '.join(model_ids(settings))}")


class _Reply:
    """One chat reply in OpenAI's shapes."""

    def __init__(self, model: str, question: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.question = question

    def completion(self, answer: Any) -> dict[str, Any]:
        text = _content(answer)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self._usage(text),
            "sources": [s.as_json() for s in answer.sources],
            "standalone_question": self.question,
        }

    def chunks(self, chain: RagChain, prepared: Prepared) -> Iterator[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})
        try:
            answer: Answer | None = None
            for part in answer_parts(chain, prepared):
                if isinstance(part, Answer):
                    answer = part
                else:
                    yield self._chunk({"content": part})
            assert answer is not None  # answer_parts ends with it
            if chain.generator is None and prepared.request is not None:
                yield self._chunk({"content": _content(answer)})
        except Exception as e:  # the status line is sent already: the error is the last event
            if not isinstance(e, MmragError):
                log.error("streamed chat reply failed", exc_info=e)
            yield sse(error_body(e))
            yield sse("[DONE]")
            return
        sources = [s.as_json() for s in answer.sources]
        yield self._chunk({}, "stop", sources=sources, usage=self._usage(_content(answer)))
        yield sse("[DONE]")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        } | extra
        return sse(body)

    def _usage(self, text: str) -> dict[str, int]:
        prompt, completion = len(self.question.split()), len(text.split())
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _content(answer: Any) -> str:
    """The answer's text; on a retrieval-only server, the list of sources found."""
    if answer.text or not answer.sources:
        return str(answer.text)
    lines = ["Retrieval only (no answer generated). Sources:"]
    lines += [f"[{s.n}] {s.label} ({s.kind}, score {s.score:.4f})" for s in answer.sources]
    return "\n".join(lines)
