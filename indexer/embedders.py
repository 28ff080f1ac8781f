"""Encoders: the interfaces the indexer and search use, and the two models behind them by default.

`ImageEncoder` puts images, and text, in one space (CLIP: its image and text towers), so a question finds a chart;
`TextEncoder` puts text in another (a sentence-transformers model), for text-to-text search. A new encoder is one
subclass of either. Vectors are L2-normalised float32 numpy arrays, so cosine distance in Weaviate equals the dot
product here.

Abstract base classes rather than Protocols: an encoder states what it is, a class that misses a method fails when
it is built (not an hour into indexing), and `ImageEncoder.prepare` has a default a new encoder need not write.
"""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    """open_clip image and text towers; fp16 on CUDA, fp32 on CPU, always in inference mode.

    Texts run through the text tower only up to their last token (`encode_clip_text`): the same vectors, several
    times faster for a question. `truncate_text=False` runs all 77 positions, as open_clip does (for comparison)."""

    def __init__(
        self, model: str, pretrained: str | None, device: str, batch_size: int = 32, *, truncate_text: bool = True
    ) -> None:
        self.model_id = model
        self.pretrained = pretrained
        self.device = device
        self.batch_size = batch_size
        self.truncate_text = truncate_text
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
                features = encode_clip_text(model, tokens) if self.truncate_text else model.encode_text(tokens)
                rows.append(_normalise(features))
        return np.concatenate(rows)


@dataclass(frozen=True)
class _CausalTextTower:
    """The parts of an open_clip text tower that `encode_clip_text` runs itself."""

    token_embedding: Any
    positional_embedding: Any
    transformer: Any
    ln_final: Any
    attn_mask: Any
    pool_type: str
    eos_id: int | None
    projection: Any


def encode_clip_text(model: Any, tokens: Any) -> Any:
    """`model.encode_text(tokens)` computed over only the positions that the pooled token sees.

    open_clip pads every text to 77 tokens and runs them all, but its text transformer is causal (position i attends
    to positions <= i; layer norms and MLPs act per position) and the embedding is the output at one position, the
    end-of-text token (`argmax` or `eos` pooling). So running the first L = (last pooled position + 1) positions, with
    the positional embedding and the causal mask cut to L, gives the same vectors up to float rounding: for a
    question of ~10 tokens, 1/6 of the positions and several times faster on a CPU. A tower of another shape (no
    causal mask, a CLS token, pad masks, other pooling, or a model class whose `encode_text` differs) runs in full.
    """
    import torch

    tower = _causal_text_tower(model)
    if tower is None:
        return model.encode_text(tokens)
    pooled_at = (  # where open_clip's text_global_pool takes the embedding from
        tokens.argmax(dim=-1)  # argmax: the end-of-text token, which has the highest id
        if tower.pool_type == "argmax"
        else (tokens == tower.eos_id).int().argmax(dim=-1)  # eos: the first eos token (0 when there is none)
    )
    length = int(pooled_at.max()) + 1
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens[:, :length]).to(cast) + tower.positional_embedding[:length].to(cast)
    x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask[:length, :length]))
    pooled = x[torch.arange(x.shape[0], device=x.device), pooled_at]
    if tower.projection is None:
        return pooled
    return tower.projection(pooled) if isinstance(tower.projection, torch.nn.Linear) else pooled @ tower.projection


def _causal_text_tower(model: Any) -> _CausalTextTower | None:
    """The text tower of an open_clip CLIP or CustomTextCLIP when `encode_clip_text` may cut it short, else None."""
    import open_clip
    from open_clip.transformer import TextTransformer

    encode = type(model).encode_text
    if encode is open_clip.CLIP.encode_text:
        tower = _CausalTextTower(
            model.token_embedding,
            model.positional_embedding,
            model.transformer,
            model.ln_final,
            model.attn_mask,
            model.text_pool_type,
            getattr(model, "text_eos_id", None),
            model.text_projection,
        )
    elif encode is open_clip.CustomTextCLIP.encode_text and type(model.text) is TextTransformer:
        text = model.text
        if text.cls_emb is not None or text.use_pad_mask or text.output_tokens:
            return None
        tower = _CausalTextTower(
            text.token_embedding,
            text.positional_embedding,
            text.transformer,
            text.ln_final,
            text.attn_mask,
            text.pool_type,
            text.eos_id,
            text.text_projection,
        )
    else:
        return None
    if tower.attn_mask is None or tower.pool_type not in ("argmax", "eos"):
        return None
    return tower


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
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model = self._load()
        with torch.inference_mode():
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextmanager
def query_threads(n: int = 1) -> Iterator[None]:
    """torch on `n` intra-op threads inside the block (for encoding a question), as before after the last of
    concurrent blocks ends; nothing when torch is not imported (an encoder without torch).

    A question is one sequence of ~10 tokens: splitting each small op over threads costs more than it saves, and a
    search runs its two encoders concurrently, one core each. Measured on the 2-core machine (bench/retrieval.py,
    MiniLM + CLIP ViT-B-32 text tower): 2 threads per op were several times slower at p95 than 1 whenever other
    work shared the cores, as the local Weaviate does. torch's thread count is the process's, so concurrent blocks
    (a REST server's searches) share one setting: the first sets it, the last restores it."""
    global _threads_users, _threads_before
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(min(n, _threads_before))
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


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
