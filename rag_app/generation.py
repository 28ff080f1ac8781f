"""What every answer generator is: a `GenerationRequest` (a question, its numbered sources, the images of the image
sources) in, the answer out, whole (`complete`, with token counts), piece by piece (`stream`) or many at once.

Two backends implement `Generator`: `mmrag.rag_app.generator.LocalGenerator` (the model in this process) and
`mmrag.rag_app.served.ServerGenerator` (an OpenAI-compatible server); `mmrag.rag_app.service.make_generator` picks one
from the settings (MMRAG_GENERATOR_BACKEND).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mmrag.core import prompts

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from PIL import Image

MULTI_IMAGE_LIMIT = 4
"""Images given to models that take several per prompt; the retriever orders them by relevance."""


def max_images(model_type: str) -> int:
    """Images per prompt by a model's `config.model_type`: LLaVA-1.5 was trained on one image; NeXT and OneVision
    take several (unknown types: one)."""
    return MULTI_IMAGE_LIMIT if model_type in ("llava_next", "llava_onevision") else 1


@dataclass(frozen=True)
class GenerationRequest:
    """A question with its numbered sources: the image sources (shown as `images`, same order) come first."""

    question: str
    images: Sequence[Image.Image] = ()
    sources: Sequence[prompts.ContextItem] = ()
    instruction: str | None = None
    """A whole user turn to send instead of the grounded-answer prompt (chart descriptions at index time)."""
    adapter: str | None = None
    """The LoRA adapter to answer with (a dir or ``s3://bucket/prefix``); None: the base model alone."""
    max_new_tokens: int | None = None
    """At most this many new tokens (a follow-up's short rewrite); None: the generator's `max_new_tokens`."""

    @classmethod
    def chart(
        cls, question: str, image: Image.Image, chart_label: str = "chart", *, adapter: str | None = None
    ) -> GenerationRequest:
        """One chart, as source [1], and a question about it: the prompt of a finetuning sample
        (`prompts.chart_training_prompt`), as `finetune eval` and the SageMaker handler ask it."""
        return cls(question, (image,), prompts.chart_sources(chart_label), adapter=adapter)

    def __post_init__(self) -> None:
        visual = sum(item.kind != "text" for item in self.sources)
        if (self.instruction is None or self.sources) and visual != len(self.images):
            raise ValueError(f"{len(self.images)} images but {visual} image/page sources: they must match")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")

    def limited(self, max_images: int) -> GenerationRequest:
        """The request with only its first `max_images` images (and their sources; the numbers are kept)."""
        if len(self.images) <= max_images:
            return self
        if not self.sources:  # a whole prompt (`instruction`) that may name each image: nothing can be left out
            raise ValueError(f"{len(self.images)} images, but the model takes at most {max_images} per prompt")
        kept, seen = [], 0
        for item in self.sources:
            if item.kind != "text":
                seen += 1
                if seen > max_images:
                    continue
            kept.append(item)
        return replace(self, images=tuple(self.images[:max_images]), sources=tuple(kept))

    @property
    def prompt_text(self) -> str:
        return self.instruction if self.instruction is not None else prompts.user_text(self.question, self.sources)


@dataclass
class Usage:
    """Token counts of one generation (filled in when a stream ends)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> Usage:
        """From LangChain's `usage_metadata` (None: nothing counted)."""
        metadata = metadata or {}
        return cls(metadata.get("input_tokens", 0), metadata.get("output_tokens", 0))

    def as_metadata(self) -> dict[str, int]:
        """LangChain's `usage_metadata` shape."""
        total = self.prompt_tokens + self.completion_tokens
        return {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens, "total_tokens": total}


@dataclass(frozen=True)
class Completion:
    """One answer and its token counts."""

    text: str
    usage: Usage


class Generator(ABC):
    """Grounded answers from a LLaVA-family model: `generate`, `stream` (for the UI) and `generate_batch`.

    `concurrent` says whether requests may usefully run at once (a server batches them; the local model takes them
    one at a time behind its lock)."""

    model_id: str
    max_new_tokens: int
    concurrent: bool = False
    concurrency: int = 1

    @property
    @abstractmethod
    def max_images(self) -> int:
        """How many images one prompt gets: 1 for single-image models such as LLaVA-1.5."""

    @abstractmethod
    def complete(self, request: GenerationRequest) -> Completion:
        """The answer to one request (greedy, special tokens removed, stripped) with its token counts."""

    @abstractmethod
    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        """The same answer as `generate`, piece by piece as it is decoded; closing the iterator stops decoding.
        `usage`, when given, receives the token counts once the stream ends."""

    @abstractmethod
    def resolve_adapter(self, source: str) -> object:
        """Check the adapter `source` before the first question (AdapterError, ConfigError)."""

    @abstractmethod
    def chat_model(self, adapter: str | None = None) -> BaseChatModel:
        """This generator as a LangChain chat model answering with `adapter` (None: the base model)."""

    def generate(self, request: GenerationRequest) -> str:
        """The answer to one request (greedy, special tokens removed, stripped)."""
        return self.complete(request).text

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Answers in order."""
        return [c.text for c in self.complete_batch(requests)]

    def complete_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Answers (with token counts) in order."""
        return [self.complete(r) for r in requests]

    def check(self) -> None:  # noqa: B027 (the local model has nothing to check before it loads)
        """Fail early (one clear error) when the backend cannot answer: the server is down, the model unknown."""

    def preload(self, adapter: str | None = None) -> None:
        """Get ready now rather than on first use (a server's start)."""
        self.check()
        if adapter is not None:
            self.resolve_adapter(adapter)


def stripped(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces with the whole text's leading and trailing whitespace left out (as `str.strip` would)."""
    started, pending = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        body = piece.rstrip()
        if body:
            yield pending + body
            pending = piece[len(body) :]
        else:
            pending += piece
