"""SageMaker inference entry point: the four handler functions the PyTorch/Hugging Face containers call.

The model archive (``model.tar.gz``, unpacked into ``model_dir``) holds an mmrag adapter: its manifest names the
base model, loaded from the hub or from ``MMRAG_VLM_MODEL`` (a local dir inside the image) with the other
``MMRAG_*`` settings, and refused when it differs from the adapter's base. A model_dir without a manifest serves
the base model alone. Requests are JSON: ``{"image": "<base64 PNG/JPEG>", "question": "..."}``.

Answers come from the generator `mmrag ask` uses, the chart shown as source [1] (`GenerationRequest.chart`): the
prompt the adapter was trained on.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.core.errors import MmragError
from mmrag.core.manifest import MANIFEST_NAME, AdapterManifest
from mmrag.rag_app.generator import GenerationRequest, Generator, LocalGenerator

JSON = "application/json"


class RequestError(MmragError):
    """A request the endpoint cannot answer (content type, missing field, undecodable image)."""


@dataclass(frozen=True)
class EndpointRequest:
    """One decoded request: a chart and a question about it."""

    image: Any
    """A PIL image."""
    question: str


@dataclass(frozen=True)
class EndpointModel:
    """What `model_fn` loads: the generator and the adapter every answer uses (None: the base model alone)."""

    generator: Generator
    adapter: str | None


def model_fn(model_dir: str) -> EndpointModel:
    """Load the base model and the adapter in `model_dir` (once per worker, before the first request)."""
    from mmrag.core.settings import load_settings

    adapter_dir = Path(model_dir)
    adapter = str(adapter_dir) if (adapter_dir / MANIFEST_NAME).is_file() else None
    settings = load_settings()
    base = None  # the profile's VLM: MMRAG_VLM_MODEL when set, the tiny one in the tiny profile
    if adapter is not None and "vlm_model" not in settings.model_fields_set and settings.profile != "tiny":
        base = AdapterManifest.load(adapter_dir).base_model
    generator = LocalGenerator.from_settings(settings, model_id=base)
    generator.preload(adapter)
    return EndpointModel(generator, adapter)


def input_fn(request_body: str | bytes, content_type: str = JSON) -> EndpointRequest:
    if content_type.split(";")[0].strip() != JSON:
        raise RequestError(f"unsupported content type {content_type!r}: send {JSON}")
    try:
        data = json.loads(request_body)
        question, encoded = str(data["question"]).strip(), str(data["image"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise RequestError('the request must be JSON {"image": "<base64>", "question": "..."}') from e
    if not question:
        raise RequestError("the question is empty")
    return EndpointRequest(_decode_image(encoded), question)


def _decode_image(encoded: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    if encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[-1]
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as image:
            return image.convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as e:
        raise RequestError(f"the image is not a base64-encoded PNG or JPEG: {e}") from e


def predict_fn(data: EndpointRequest, model: EndpointModel) -> dict[str, Any]:
    answer = model.generator.generate(GenerationRequest.chart(data.question, data.image, adapter=model.adapter))
    return {"answer": answer, "question": data.question}


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> str:
    if accept not in (JSON, "*/*", ""):
        raise RequestError(f"unsupported accept type {accept!r}: ask for {JSON}")
    return json.dumps(prediction, ensure_ascii=False)
