"""Server-sent events as the API streams them (`text/event-stream`; each event's data is one JSON line)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi.sse import EventSourceResponse, format_sse_event

from mmrag.rag_app.chain import Answer, Prepared, RagChain

_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Every event reaches the client as it is sent, through caches and proxies (nginx) too."""


def sse(data: Any, event: str | None = None) -> bytes:
    """One event: `data` as JSON (a str as it is: OpenAI's closing `[DONE]`), under `event` when given."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return format_sse_event(data_str=text, event=event)


def event_stream(events: Iterator[bytes]) -> EventSourceResponse:
    """The response that sends `events` as they come (a sync iterator runs in the thread pool)."""
    return EventSourceResponse(events, headers=_NO_BUFFERING)


def answer_parts(chain: RagChain, prepared: Prepared) -> Iterator[str | Answer]:
    """The answer's pieces as they are decoded (none when the chain only retrieves), then the whole Answer."""
    pieces: list[str] = []
    started = time.perf_counter()
    if chain.generator is not None or prepared.request is None:
        for piece in chain.stream(prepared):
            pieces.append(piece)
            yield piece
    yield chain.answer_from_text(prepared, "".join(pieces), time.perf_counter() - started)
