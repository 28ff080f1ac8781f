"""LoRA adapter sources: a local dir or ``s3://bucket/prefix``, resolved to a checked local dir.

An adapter is usable only on the base model its manifest names and with the prompt style it was trained on
(`rag_app.prompts.PROMPT_STYLE`); both are checked here, before any weights are read.
"""

from __future__ import annotations

from pathlib import Path

from finetune.manifest import AdapterManifest, ManifestError
from mmrag.errors import MmragError
from rag_app.prompts import PROMPT_STYLE

S3_SCHEME = "s3://"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class AdapterError(MmragError):
    """An adapter that cannot be used: missing, without a manifest, for another base model or prompt style."""


def resolve_adapter(source: str, base_model: str, cache_dir: Path) -> Path:
    """The local dir of the adapter at `source` (pulled once from S3 into the cache), checked against the base."""
    adapter_dir = _pull(source, cache_dir) if source.startswith(S3_SCHEME) else Path(source).expanduser()
    if not adapter_dir.is_dir():
        raise AdapterError(f"adapter {source} not found: no such directory {adapter_dir}")
    check_adapter(adapter_dir, base_model)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter_dir / name).is_file():
            raise AdapterError(f"adapter {source} has no {name}: only peft adapters saved as safetensors load")
    return adapter_dir


def check_adapter(adapter_dir: Path, base_model: str) -> AdapterManifest:
    """The adapter's manifest, if it names `base_model` and the prompt style in use; else one AdapterError."""
    try:
        manifest = AdapterManifest.load(adapter_dir)
        manifest.check_compatible(base_model, PROMPT_STYLE)
    except ManifestError as e:
        raise AdapterError(f"{adapter_dir}: {e}") from e
    return manifest


def s3_cache_dir(uri: str, cache_dir: Path) -> Path:
    """Where the adapter at ``s3://bucket/prefix`` is kept locally: ``<cache_dir>/adapters/<bucket>/<prefix>``."""
    bucket, _, prefix = uri.removeprefix(S3_SCHEME).partition("/")
    parts = [p for p in prefix.split("/") if p]
    if not bucket or not parts or any(p in (".", "..") for p in parts):
        raise AdapterError(f"invalid adapter URI {uri!r}: expected s3://bucket/prefix")
    return cache_dir.joinpath("adapters", bucket, *parts)


def _pull(uri: str, cache_dir: Path) -> Path:
    from finetune import s3  # imported here: boto3 is needed only for S3 adapters

    dest = s3_cache_dir(uri, cache_dir)
    try:
        return s3.pull(uri, dest)
    except MmragError as e:
        raise AdapterError(f"cannot fetch adapter {uri}: {e}") from e
