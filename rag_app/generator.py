"""The answer generator: a LLaVA-family model (plus an optional LoRA adapter) answering from numbered sources.

Building a `Generator` is cheap; the model loads on first use, once, through `mmrag.core.models.load_vlm` (bf16 on
CUDA, fp32 on CPU, 4-bit on request). Decoding is greedy. The prompt is `mmrag.core.prompts`' shared style: the
images first, then the numbered sources, the question and the instruction. Every caller goes through it: `mmrag ask`
and `mmrag batch` (through the chain), the UI, chart descriptions at index time (a request with its own
`instruction`), `mmrag finetune eval` and the SageMaker handler (a single chart as source [1],
`GenerationRequest.chart`: exactly a finetuning sample's prompt).

Each request names its adapter (`GenerationRequest.adapter`; None is the base model alone). Adapters are loaded once
and swapped in place on the loaded base (peft), so switching never reloads it, and requests for different adapters
can share one generator (UI sessions, the base and the adapter side by side in `finetune eval`).

`LocalGenerator` is one of two backends of `mmrag.rag_app.generation.Generator` (the other, an OpenAI-compatible
server, is `mmrag.rag_app.served.ServerGenerator`): one lock serialises its generation. `chat_model` gives it as a
LangChain chat model (token streaming, LLM callbacks with token counts).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core import prompts
from mmrag.core.adapters import ADAPTER_WEIGHTS, AdapterError, resolve_adapter
from mmrag.core.errors import ConfigError, first_line
from mmrag.core.manifest import check_merged_model
from mmrag.core.models import load_vlm, resolve_device, resolve_models
from mmrag.rag_app.generation import (  # re-exported: callers name them from here
    Completion,
    GenerationRequest,
    Generator,
    Usage,
    max_images,
    stripped,
)

if TYPE_CHECKING:
    import torch
    from langchain_core.language_models import BaseChatModel
    from peft import PeftModel

    from mmrag.core.settings import Settings


@dataclass(frozen=True)
class _Loaded:
    model: Any
    processor: Any
    device: str
    dtype: torch.dtype


class LocalGenerator(Generator):
    """The LLaVA-family model in this process (transformers, peft adapters swapped in place)."""

    def __init__(
        self,
        model_id: str,
        device: str = "auto",
        *,
        cache_dir: Path,
        max_new_tokens: int = 128,
        four_bit: bool = False,
    ) -> None:
        """Cheap: nothing loads until the first use; `cache_dir` receives adapters fetched from S3."""
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self._device = device
        self._four_bit = four_bit
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None
        self._peft: PeftModel | None = None
        self._adapter_dirs: dict[str, Path] = {}
        self._adapter_names: dict[str, str] = {}
        self._active: str | None = None  # the adapter on the loaded model

    @classmethod
    def from_settings(
        cls, settings: Settings, *, model_id: str | None = None, device: str | None = None
    ) -> LocalGenerator:
        """The in-process generator (`mmrag finetune eval` and the SageMaker handler use it whatever the backend):
        the profile's VLM (or `model_id`) with the settings' device (or `device`), answer length and 4-bit choice.
        Cheap: nothing loads yet."""
        return cls(
            model_id or resolve_models(settings).vlm_model,
            device or settings.device,
            cache_dir=settings.cache_dir,
            max_new_tokens=settings.max_new_tokens,
            four_bit=settings.four_bit,
        )

    @property
    def max_images(self) -> int:
        """How many images one prompt gets (loads the model): 1 for single-image models such as LLaVA-1.5."""
        return max_images(self._load().model.config.model_type)

    def complete(self, request: GenerationRequest) -> Completion:
        return self._generate_together([self._fit(request)])[0]

    def chat_model(self, adapter: str | None = None) -> BaseChatModel:
        from mmrag.rag_app.chat_model import LocalChatModel

        return LocalChatModel(generator=self, adapter=adapter)

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        loaded = self._load()
        request = self._fit(request)
        inputs = self._inputs([request])
        streamer = TextIteratorStreamer(loaded.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self._select(request.adapter)
                    output = loaded.model.generate(
                        **inputs,
                        **self._decoding(request.max_new_tokens),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Stop(stop)]),
                    )
                if usage is not None:
                    counted = self._usage(inputs, output)[0]
                    usage.prompt_tokens, usage.completion_tokens = counted.prompt_tokens, counted.completion_tokens
            except BaseException as e:  # handed to the consumer below
                failures.append(e)
                streamer.end()

        thread = threading.Thread(target=run, name="mmrag-generate", daemon=True)
        thread.start()
        try:
            yield from stripped(streamer)
        finally:
            stop.set()
            thread.join()
        if failures:
            raise failures[0]

    def complete_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Answers in order; requests with the same adapter, number of images and token limit share one left-padded
        batch."""
        fitted = [self._fit(r) for r in requests]
        if self._load().processor.tokenizer.pad_token is None:
            return [self._generate_together([r])[0] for r in fitted]
        groups: dict[tuple[str | None, int, int | None], list[int]] = defaultdict(list)
        for i, request in enumerate(fitted):
            groups[request.adapter, len(request.images), request.max_new_tokens].append(i)
        answers: list[Completion | None] = [None] * len(fitted)
        for indices in groups.values():
            for i, answer in zip(indices, self._generate_together([fitted[i] for i in indices]), strict=True):
                answers[i] = answer
        return [a for a in answers if a is not None]

    def resolve_adapter(self, source: str) -> Path:
        """The checked local dir of the adapter at `source` (a dir, or ``s3://bucket/prefix`` fetched once into the
        cache): its manifest must name this base model and the current prompt style and its weights must be
        safetensors, else AdapterError. Nothing loads; callers check an adapter this way before the first question.
        """
        with self._lock:
            return self._resolve(source)

    def preload(self, adapter: str | None = None) -> None:
        """Load the model (and `adapter`) now rather than on first use: a server's start (AdapterError, ...)."""
        with self._lock:
            self._load()
            if adapter is not None:
                self._select(adapter)

    def _select(self, source: str | None) -> None:
        """With the lock held, just before generating: make `source`'s adapter (None: no adapter) the active one."""
        if source != self._active:
            if source is not None:
                self._resolve(source)
            self._activate(source)

    def _load(self) -> _Loaded:
        """The loaded model (loading it on first use); generation selects the adapter (`_select`)."""
        with self._lock:
            if self._loaded is None:
                import torch

                check_merged_model(self.model_id)  # a merged adapter's prompt style must be this version's
                device = resolve_device(self._device)
                model, processor = load_vlm(self.model_id, device, four_bit=self._four_bit)
                processor.tokenizer.padding_side = "left"
                dtype = torch.bfloat16 if device == "cuda" else torch.float32
                self._loaded = _Loaded(model, processor, device, dtype)
            return self._loaded

    def _resolve(self, source: str) -> Path:
        if source not in self._adapter_dirs:
            self._adapter_dirs[source] = resolve_adapter(source, self.model_id, self._cache_dir)
        return self._adapter_dirs[source]

    def _activate(self, source: str | None) -> None:
        """Make `source`'s adapter (loaded on first use) the active one, or disable adapters for None."""
        if source is None:
            if self._peft is not None:
                self._lora_layers().disable_adapter_layers()
        else:
            if source not in self._adapter_names:
                self._adapter_names[source] = self._load_adapter(self._adapter_dirs[source])
            self._lora_layers().enable_adapter_layers()
            assert self._peft is not None
            self._peft.set_adapter(self._adapter_names[source], inference_mode=True)
        self._active = source

    def _lora_layers(self) -> Any:
        """The peft LoRA model that switches its injected layers on and off."""
        assert self._peft is not None
        return self._peft.base_model

    def _load_adapter(self, adapter_dir: Path) -> str:
        """Inject the adapter's LoRA layers into the loaded base (in place) under a new name."""
        from peft import PeftConfig, PeftModel
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        assert self._loaded is not None
        name = f"adapter{len(self._adapter_names)}"
        try:  # read everything first: a broken adapter must not touch the model
            PeftConfig.from_pretrained(str(adapter_dir))
            load_file(adapter_dir / ADAPTER_WEIGHTS)
        except (OSError, ValueError, SafetensorError) as e:
            raise AdapterError(f"cannot load the adapter at {adapter_dir}: {first_line(e, 300)}") from e
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self._loaded.model, str(adapter_dir), adapter_name=name)
            else:
                self._peft.load_adapter(str(adapter_dir), adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            self._discard_model()  # half-injected layers: start again from a clean base on the next use
            raise AdapterError(f"cannot load the adapter at {adapter_dir}: {first_line(e, 300)}") from e
        return name

    def _discard_model(self) -> None:
        self._loaded, self._peft, self._active = None, None, None
        self._adapter_names.clear()

    def _fit(self, request: GenerationRequest) -> GenerationRequest:
        return request.limited(self.max_images)

    def _inputs(self, requests: Sequence[GenerationRequest]) -> Any:
        """Processor inputs for requests that all have the same number of images, on the model's device."""
        loaded = self._load()
        texts = [
            loaded.processor.apply_chat_template(
                prompts.messages(len(r.images), r.prompt_text), add_generation_prompt=True, tokenize=False
            )
            for r in requests
        ]
        images = [[image.convert("RGB") for image in r.images] for r in requests]
        batch = loaded.processor(text=texts, images=images if any(images) else None, padding=True, return_tensors="pt")
        return batch.to(loaded.device, dtype=loaded.dtype)

    def _generate_together(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Answers to requests that share their adapter, number of images and token limit, in one forward batch."""
        import torch

        loaded = self._load()
        inputs = self._inputs(requests)
        with self._lock:
            # outside inference mode: adapter weights loaded here must stay ordinary tensors
            self._select(requests[0].adapter)
            with torch.inference_mode():
                output = loaded.model.generate(**inputs, **self._decoding(requests[0].max_new_tokens))
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        tokenizer = loaded.processor.tokenizer
        texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new_tokens]
        return [Completion(text, usage) for text, usage in zip(texts, self._usage(inputs, output), strict=True)]

    def _usage(self, inputs: Any, output: torch.Tensor) -> list[Usage]:
        """Each row's prompt tokens (padding left out) and new tokens (up to and including the first end token)."""
        tokenizer = self._load().processor.tokenizer
        prompt_length = inputs["input_ids"].shape[1]
        end = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        counts = []
        for mask, row in zip(inputs["attention_mask"], output[:, prompt_length:], strict=True):
            ids = row.tolist()
            stop = next((i + 1 for i, t in enumerate(ids) if t in end), len(ids))
            counts.append(Usage(int(mask.sum()), stop))
        return counts

    def _decoding(self, max_new_tokens: int | None = None) -> dict[str, Any]:
        tokenizer = self._load().processor.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        limit = max_new_tokens or self.max_new_tokens
        return {"max_new_tokens": limit, "do_sample": False, "num_beams": 1, "pad_token_id": pad}


class _Stop:
    """Stopping criterion: ends generation once the stream's consumer has gone away."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device)
