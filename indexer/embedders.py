"""Embedders: CLIP (images, and text in the same space) and the text embedder. Load lazily, embed in batches.

Vectors are L2-normalised float32 numpy arrays, so cosine distance in Weaviate equals the dot product here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from mmrag.core.models import load_clip, load_text_embedder, resolve_device, resolve_models
from mmrag.core.settings import Settings


class ClipEmbedder:
    """open_clip image and text towers; fp16 on CUDA, fp32 on CPU, always in inference mode."""

    def __init__(self, model: str, pretrained: str | None, device: str, batch_size: int = 32) -> None:
        self.model_id = model
        self.pretrained = pretrained
        self.device = device
        self.batch_size = batch_size
        self._loaded: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.model_id}@{self.pretrained}" if self.pretrained else self.model_id

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._loaded is None:
                model, preprocess, tokenizer = load_clip(self.model_id, self.pretrained, self.device)
                if self.device == "cuda":
                    model = model.half()
                self._loaded = (model, preprocess, tokenizer)
            return self._loaded

    @property
    def dim(self) -> int:
        model = self._load()[0]
        return int(model.text_projection.shape[1] if hasattr(model, "text_projection") else model.embed_dim)

    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        """Images -> the model's input tensor (resize, crop, normalise), on the CPU."""
        import torch

        transform = self._load()[1]
        return torch.stack([transform(image) for image in images])

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """A preprocessed batch -> normalised image embeddings."""
        import torch

        model = self._load()[0]
        rows = []
        with torch.inference_mode():
            for start in range(0, len(pixels), self.batch_size):
                batch = pixels[start : start + self.batch_size].to(self.device, dtype=_dtype(model))
                rows.append(_normalise(model.encode_image(batch)))
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: Sequence[Image.Image | None], pixels: Sequence[Any | None] = ()) -> np.ndarray:
        """Images -> normalised embeddings; `pixels[i]`, when given and not None, is image i already preprocessed."""
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        ready = list(pixels) or [None] * len(images)
        missing = [i for i, p in enumerate(ready) if p is None]
        if missing:
            todo = [image for i in missing if (image := images[i]) is not None]
            for i, tensor in zip(missing, self.preprocess(todo), strict=True):
                ready[i] = tensor
        return self.embed_pixels(torch.stack([p for p in ready if p is not None]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text in CLIP's space (truncated to its context length), for cross-modal search."""
        import torch

        model, _, tokenizer = self._load()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                rows.append(_normalise(model.encode_text(tokens)))
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)


class TextEmbedder:
    """A sentence-transformers model (default: the all-MiniLM-L6-v2 shipped on PyPI)."""

    def __init__(self, model: str, device: str, batch_size: int = 64) -> None:
        self.model_id = model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_id

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = load_text_embedder(self.model_id, self.device)
                if self.device == "cuda":
                    self._model = self._model.half()
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._load().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


def _dtype(model: Any) -> Any:
    return next(model.parameters()).dtype


def _normalise(tensor: Any) -> np.ndarray:
    array = tensor.float().cpu().numpy()
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.maximum(norms, 1e-12)).astype(np.float32)


def embedders_for(settings: Settings) -> tuple[ClipEmbedder, TextEmbedder]:
    """The profile's CLIP and text embedders (not loaded until first used)."""
    ids = resolve_models(settings)
    device = resolve_device(settings.device)
    return ClipEmbedder(ids.clip_model, ids.clip_pretrained, device), TextEmbedder(ids.text_model, device)
