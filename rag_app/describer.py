"""Chart descriptions at index time: the VLM (with the adapter, if set) reads each chart once, and its words are
stored in the chart's caption, so BM25 and the text vector find numbers that are only drawn in the chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from mmrag.core.prompts import chart_sources
from mmrag.core.settings import Settings
from mmrag.rag_app.generator import GenerationRequest, Generator

DESCRIBE_INSTRUCTION = (
    "Describe this chart in one sentence: its type, title and what it shows. Then list the data values you can "
    "read from it as 'label: value' pairs, with units."
)


@dataclass
class ChartDescriber:
    generator: Generator
    adapter: str | None = None
    """The adapter the generator describes with (None: the base model alone)."""
    batch_size: int = 4

    @property
    def name(self) -> str:
        """Recorded on each described object, so a change of model or adapter re-describes."""
        model = self.generator.model_id
        return f"{model}+{self.adapter}" if self.adapter else model

    def __call__(self, images: Sequence[Image.Image]) -> list[str]:
        requests = [
            GenerationRequest(
                question="describe",
                images=(image,),
                sources=chart_sources(),
                instruction=DESCRIBE_INSTRUCTION,
                adapter=self.adapter,
            )
            for image in images
        ]
        texts: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            texts += self.generator.generate_batch(requests[start : start + self.batch_size])
        return [" ".join(text.split()) for text in texts]


def describer_for(settings: Settings) -> ChartDescriber:
    """The profile's VLM describing with MMRAG_ADAPTER (checked now: AdapterError before any file is read)."""
    from mmrag.rag_app.service import make_generator

    generator = make_generator(settings)
    if settings.adapter is not None:
        generator.resolve_adapter(settings.adapter)
    return ChartDescriber(generator, settings.adapter)
