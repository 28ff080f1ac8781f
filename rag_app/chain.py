"""Question -> retriever -> prompt -> generator -> Answer, as LangChain runnables.

The chain abstains (answers `prompts.NOT_FOUND`) when no retrieved object passes the relevance threshold: the text
embedder's cosine similarity for text and captions, and CLIP's for images and pages (where CLIP's scores mean
something: the tiny profile's random CLIP cannot judge relevance, so its threshold is off there).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda
from langchain_core.runnables.utils import AddableDict

from mmrag.core import prompts
from mmrag.core.errors import ConfigError
from mmrag.rag_app.chat_model import message_text, request_messages
from mmrag.rag_app.generator import GenerationRequest, Generator, stripped
from mmrag.rag_app.retriever import MultimodalRetriever
from mmrag.rag_app.search import SearchOptions
from mmrag.rag_app.sources import Source, SourceImages

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class Answer:
    text: str
    abstained: bool
    sources: list[Source]
    timings: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "sources": [s.as_json() for s in self.sources],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


@dataclass
class Prepared:
    """The retrieval half of an answer: the numbered sources and the generation request (None: abstain)."""

    question: str
    sources: list[Source]
    request: GenerationRequest | None
    timings: dict[str, float]


class RagChain:
    def __init__(
        self,
        retriever: MultimodalRetriever,
        images: SourceImages,
        generator: Generator | None,
        min_text_score: float,
        min_image_score: float | None,
        *,
        adapter: str | None = None,
    ) -> None:
        """`adapter` (a dir or s3:// URI; None: the base model) is the one every answer of this chain uses."""
        self.retriever = retriever
        self.images = images
        self.generator = generator
        self.min_text_score = min_text_score
        self.min_image_score = min_image_score
        self.adapter = adapter

    def as_runnable(self) -> Runnable[str, dict[str, Any]]:
        """The chain as LangChain runnables: question -> retrieve + prompt -> the generator's chat model -> answer.

        The output is a dict: ``question`` and ``sources`` (`Source` list, numbered by rank) first, then ``answer``
        (the text; `stream` yields it token by token as `{"answer": piece}`), then ``abstained`` (true: the sources
        do not hold the answer) and ``timings``.
        The chat model (`Generator.chat_model`) gives callbacks their LLM start/end events with token counts."""
        return RunnableLambda(self.prepare, name="retrieve") | RunnableLambda(self._answering, name="answer")

    def _answering(self, prepared: Prepared) -> Runnable[Any, Any]:
        """The runnable that answers `prepared`: its messages, the chat model, then the pieces gathered."""
        header = AddableDict(question=prepared.question, sources=prepared.sources)
        if prepared.request is None or self.generator is None:
            answer = self.finish(prepared)
            done = header | {"answer": answer.text, "abstained": answer.abstained, "timings": answer.timings}
            return RunnableLambda(lambda _: AddableDict(done), name="abstain")
        messages = request_messages(prepared.request)
        model = self.generator.chat_model(self.adapter)
        if prepared.request.max_new_tokens is not None:
            model = model.bind(max_tokens=prepared.request.max_new_tokens)  # type: ignore[assignment]

        def gather(chunks: Iterator[BaseMessage]) -> Iterator[AddableDict]:
            yield header
            started, pieces = time.perf_counter(), []
            for piece in stripped(message_text(chunk.content) for chunk in chunks):
                pieces.append(piece)
                yield AddableDict(answer=piece)
            answer = self._answer(prepared, "".join(pieces), {"generate_s": time.perf_counter() - started})
            yield AddableDict(abstained=answer.abstained, timings=answer.timings)

        return RunnableLambda(lambda _: messages, name="messages") | model | RunnableGenerator(gather, name="gather")

    @property
    def options(self) -> SearchOptions:
        """The retrieval options a question gets unless it is given its own."""
        return self.retriever.options

    def ask(self, question: str, options: SearchOptions | None = None) -> Answer:
        return self.finish(self.prepare(question, options))

    def prepare(self, question: str, options: SearchOptions | None = None) -> Prepared:
        """Retrieve for the question (with `options`, else the chain's own) and build the generation request."""
        question = check_question(question)
        options = options if options is not None else self.options
        started = time.perf_counter()
        documents = self.retriever.invoke(question, **dataclasses.asdict(options))
        retrieved = time.perf_counter()
        relevant = [d for d in documents if self.relevant(d)]
        if not relevant:
            return Prepared(question, [], None, {"retrieve_s": retrieved - started})
        max_images = self.generator.max_images if self.generator is not None else 0
        sources, request = self._request(question, relevant, max_images)
        return Prepared(
            question, sources, request, {"retrieve_s": retrieved - started, "prompt_s": time.perf_counter() - retrieved}
        )

    def finish(self, prepared: Prepared) -> Answer:
        if prepared.request is None:
            return Answer(prompts.NOT_FOUND, True, [], prepared.timings)
        if self.generator is None:  # retrieval only
            return Answer("", False, prepared.sources, prepared.timings)
        started = time.perf_counter()
        text = self.generator.generate(prepared.request)
        return self._answer(prepared, text, {"generate_s": time.perf_counter() - started})

    def stream(self, prepared: Prepared) -> Iterator[str]:
        """Answer pieces as they are decoded (the UI); `prepared` comes from `prepare`."""
        if prepared.request is None:
            yield prompts.NOT_FOUND
        elif self.generator is not None:
            yield from self.generator.stream(prepared.request)

    def answer_from_text(self, prepared: Prepared, text: str, generate_s: float) -> Answer:
        """The Answer for a text generated elsewhere (streaming, batches)."""
        if prepared.request is None:
            return Answer(prompts.NOT_FOUND, True, [], prepared.timings)
        return self._answer(prepared, text, {"generate_s": generate_s})

    def relevant(self, document: Document) -> bool:
        meta = document.metadata
        text_sim = meta.get("text_similarity")
        clip_sim = meta.get("clip_similarity")
        if text_sim is not None and text_sim >= self.min_text_score:
            return True
        visual = meta.get("kind") in ("image", "page")
        return bool(
            visual and self.min_image_score is not None and clip_sim is not None and clip_sim >= self.min_image_score
        )

    def _request(
        self, question: str, documents: list[Document], max_images: int
    ) -> tuple[list[Source], GenerationRequest]:
        """The sources numbered by rank (1 = best), in rank order; the prompt shows the images first (as many as
        the model takes, best first), then the rest, each under its rank number, so an answer's [n] is the list's."""
        sources = [Source.from_document(n, d) for n, d in enumerate(documents, start=1)]
        with_pixels: list[tuple[Source, Any]] = []
        for source, document in zip(sources, documents, strict=True):
            if len(with_pixels) >= max_images or source.kind not in ("image", "page"):
                continue
            image = self.images.load(document.metadata)
            if image is not None:
                with_pixels.append((source, image))
        shown = {s.n for s, _ in with_pixels}
        items = [s.context_item(as_image=True) for s, _ in with_pixels]
        items += [s.context_item(as_image=False) for s in sources if s.n not in shown]
        images = tuple(img for _, img in with_pixels)
        return sources, GenerationRequest(question, images, tuple(items), adapter=self.adapter)

    def _answer(self, prepared: Prepared, text: str, timings: dict[str, float]) -> Answer:
        text = text.strip()
        abstained = text.lower().startswith(prompts.NOT_FOUND.lower().rstrip("."))
        return Answer(text, abstained, [] if abstained else prepared.sources, prepared.timings | timings)


def check_question(question: str) -> str:
    question = " ".join(question.split())
    if not question:
        raise ConfigError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(f"the question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})")
    return question
