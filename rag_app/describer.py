"""Chart descriptions at index time: the VLM (with the adapter, if set) reads each chart once, and its words are
stored in the chart's caption, so BM25 and the text vector find numbers that are only drawn in the chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from mmrag.core.prompts import ContextItem
from mmrag.core.settings import Settings
from mmrag.rag_app.generator import GenerationRequest, Generator

DESCRIBE_INSTRUCTION = (
    "Describe this chart in one sentence: its type, title and what it shows. Then list the data values you can "
    "read from it as 'label: value' pairs, with units."
)


@dataclass
class ChartDescriber:
    generator: Generator
    batch_size: int = 4

    @property
    def name(self) -> str:
        """Recorded on each described object, so a change of model or adapter re-describes."""
        adapter = self.generator.adapter
        return f"{self.generator.model_id}+{adapter}" if adapter else self.generator.model_id

    def __call__(self, images: Sequence[Image.Image]) -> list[str]:
        requests = [
            GenerationRequest(
                question="describe",
                images=(image,),
                sources=(ContextItem(n=1, kind="image", label="chart"),),
                instruction=DESCRIBE_INSTRUCTION,
            )
            for image in images
        ]
        texts: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            texts += self.generator.generate_batch(requests[start : start + self.batch_size])
        return [" ".join(text.split()) for text in texts]


def describer_for(settings: Settings) -> ChartDescriber:
    from mmrag.rag_app.service import make_generator

    return ChartDescriber(make_generator(settings))
