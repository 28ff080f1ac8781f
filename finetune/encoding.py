"""Samples to model inputs: the processor's chat template, image tokens expanded, labels on assistant tokens only.

Training and validation (the length check) both go through these functions, so the length that
`mmrag finetune validate` reports is the length the trainer sees. The user turn is laid out as `rag_app.generator`
lays out its prompts (`mmrag.core.prompts.messages`: images first), so evaluation and the app ask as training taught.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmrag.core.errors import MmragError
from mmrag.finetune.samples import IMAGE_TOKEN, Sample

if TYPE_CHECKING:
    import torch
    from PIL import Image

IGNORE_INDEX = -100
"""Label of a token that carries no loss (prompt, image tokens, padding)."""


class EncodingError(MmragError):
    """A sample the processor cannot turn into a supervised sequence."""


@dataclass(frozen=True)
class Encoded:
    sample_id: str
    input_ids: torch.Tensor
    """1-D token ids with the image tokens expanded."""
    labels: torch.Tensor
    """Same length; IGNORE_INDEX except on the assistant's tokens."""
    vision: dict[str, torch.Tensor]
    """The processor's image tensors (pixel_values, image_sizes, ...), batch dimension 1."""


def chat(sample: Sample) -> list[dict[str, Any]]:
    """The sample as chat messages: `<image>` markers become image parts placed first, as mmrag.core.prompts does."""
    messages: list[dict[str, Any]] = []
    for turn in sample.conversations:
        if turn.role == "human":
            n_images = turn.value.count(IMAGE_TOKEN)
            text = turn.value.replace(IMAGE_TOKEN + "\n", "").replace(IMAGE_TOKEN, "")
            content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.value}]})
    return messages


def encode(processor: Any, sample: Sample, image: Image.Image) -> Encoded:
    """Token ids and labels of a whole conversation; the image is processed once."""
    import torch

    messages = chat(sample)
    full_text = _template(processor, messages, generation_prompt=False)
    inputs = processor(text=[full_text], images=[image], return_tensors="pt")
    input_ids = inputs.pop("input_ids")[0]
    inputs.pop("attention_mask", None)
    # the processor expands each image marker to many tokens; text-only tokenisation tells how many were added
    expansion = len(input_ids) - len(_tokens(processor, full_text))
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_tokens(processor, _template(processor, messages[:i], generation_prompt=True))) + expansion
        end = len(_tokens(processor, _template(processor, messages[: i + 1], generation_prompt=False))) + expansion
        if not 0 < start < end <= len(input_ids):
            raise EncodingError(f"sample {sample.id}: the chat template does not split into prompt and answer")
        labels[start:end] = input_ids[start:end]
    vision = {k: v for k, v in inputs.items() if hasattr(v, "shape")}
    return Encoded(sample.id, input_ids, labels, vision)


def _template(processor: Any, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
    text = processor.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    return str(text)


def _tokens(processor: Any, text: str) -> list[int]:
    return list(processor.tokenizer(text)["input_ids"])


def collate(batch: Sequence[Encoded], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids/labels/attention_mask and the image tensors of the batch."""
    import torch

    length = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[row, :n], labels[row, :n], attention[row, :n] = e.input_ids, e.labels, 1
    out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    for key in batch[0].vision:
        out[key] = _stack([e.vision[key] for e in batch])
    return out


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch dim, zero-padding other dims (the number of image tiles varies per image)."""
    import torch
    import torch.nn.functional as F

    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    padded = []
    for t in tensors:
        pad: list[int] = []
        for d in reversed(range(1, t.dim())):
            pad += [0, shape[d - 1] - t.shape[d]]
        padded.append(F.pad(t, pad) if any(pad) else t)
    return torch.cat(padded, dim=0)
