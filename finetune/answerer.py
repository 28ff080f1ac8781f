"""A LLaVA-family model (optionally with an mmrag adapter) answering chart questions, batched and greedy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.manifest import AdapterManifest
from mmrag.core.prompts import PROMPT_STYLE, chart_training_prompt, llava_human_turn
from mmrag.finetune.encoding import generation_prompt
from mmrag.finetune.samples import IMAGE_TOKEN

if TYPE_CHECKING:
    from PIL import Image


def human_turn(question: str, chart_label: str = "chart") -> str:
    """The training prompt for one chart (what the adapter was trained on)."""
    return llava_human_turn(1, chart_training_prompt(question, chart_label))


@dataclass
class ChartAnswerer:
    model: Any
    processor: Any
    device: str
    max_new_tokens: int = 48

    def answer(self, human_turns: Sequence[str], images: Sequence[Image.Image]) -> list[str]:
        """One answer per (human turn, image); each human turn holds exactly one `<image>` marker."""
        import torch

        if any(t.count(IMAGE_TOKEN) != 1 for t in human_turns):
            raise ValueError("each prompt must hold exactly one <image> marker")
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # generation continues every row from its last token
        prompts = [generation_prompt(self.processor, t) for t in human_turns]
        inputs = self.processor(text=prompts, images=list(images), padding=True, return_tensors="pt")
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        inputs = {k: v.to(self.device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def add_adapter(self, adapter_dir: Path, base_model: str) -> AdapterManifest:
        """Put an mmrag adapter on the model, after checking it was trained on this base and prompt style and that
        its weights are safetensors (ManifestError, AdapterError: a pickle is never handed to peft)."""
        from peft import PeftModel

        from mmrag.core.adapters import check_weights

        manifest = AdapterManifest.load(adapter_dir)
        manifest.check_compatible(base_model, PROMPT_STYLE)
        check_weights(adapter_dir)
        self.model = PeftModel.from_pretrained(self.model, str(adapter_dir), is_trainable=False)
        self.model.eval()
        return manifest


def load_answerer(base_model: str, device: str, adapter_dir: Path | None = None) -> ChartAnswerer:
    from mmrag.core.models import load_vlm

    model, processor = load_vlm(base_model, device)
    answerer = ChartAnswerer(model, processor, device)
    if adapter_dir is not None:
        answerer.add_adapter(adapter_dir, base_model)
    return answerer
