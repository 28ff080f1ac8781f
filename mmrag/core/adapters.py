"""LoRA adapter sources: a local dir or ``s3://bucket/prefix``, resolved to a checked local dir.

An adapter is usable only on the base model its manifest names and with the prompt style it was trained on
(`mmrag.core.prompts.PROMPT_STYLE`), and only with safetensors weights (a pickled ``adapter_model.bin`` is never
loaded); all is checked here, before any weights are read.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.core.errors import MmragError
from mmrag.core.manifest import AdapterManifest, ManifestError
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.core.s3 import S3Error, S3Uri

S3_SCHEME = "s3://"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLED_WEIGHTS = "adapter_model.bin"


class AdapterError(MmragError):
    """An adapter that cannot be used: missing, without a manifest, for another base model or prompt style."""


def resolve_adapter(source: str, base_model: str, cache_dir: Path) -> Path:
    """The local dir of the adapter at `source` (pulled once from S3 into the cache), checked against the base."""
    adapter_dir = _pull(source, cache_dir) if source.startswith(S3_SCHEME) else Path(source).expanduser()
    check_adapter(adapter_dir, base_model, source)
    return adapter_dir


def check_adapter(adapter_dir: Path, base_model: str, source: str | None = None) -> AdapterManifest:
    """The adapter's manifest, if it names `base_model` and the prompt style in use and the adapter's weights are
    safetensors; else one AdapterError (naming `source`, default `adapter_dir`)."""
    source = source or str(adapter_dir)
    if not adapter_dir.is_dir():
        raise AdapterError(f"adapter {source} not found: no such directory {adapter_dir}")
    try:
        manifest = AdapterManifest.load(adapter_dir)
        manifest.check_compatible(base_model, PROMPT_STYLE)
    except ManifestError as e:
        raise AdapterError(f"{adapter_dir}: {e}") from e
    check_weights(adapter_dir, source)
    return manifest


def check_weights(adapter_dir: Path, source: str | None = None) -> None:
    """Refuse (AdapterError) an adapter dir without its peft config or safetensors weights: peft would otherwise
    fall back to a pickled ``adapter_model.bin``, and pickles are never loaded."""
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter_dir / name).is_file():
            pickled = f" ({PICKLED_WEIGHTS} is a pickle and is never loaded)" if name == ADAPTER_WEIGHTS else ""
            raise AdapterError(
                f"adapter {source or adapter_dir} has no {name}{pickled}: only peft adapters saved as safetensors load"
            )


def s3_cache_dir(uri: str, cache_dir: Path) -> Path:
    """Where the adapter at ``s3://bucket/prefix`` is kept locally: ``<cache_dir>/adapters/<bucket>/<prefix>``.

    The bucket and every part of the prefix must be plain names (`mmrag.core.s3.S3Uri`), so the dir is always
    inside ``<cache_dir>/adapters``.
    """
    try:
        parsed = S3Uri.parse(uri)
    except S3Error as e:
        raise AdapterError(f"invalid adapter URI {uri!r}: expected s3://bucket/prefix ({e})") from e
    if not parsed.prefix:
        raise AdapterError(f"invalid adapter URI {uri!r}: expected s3://bucket/prefix")
    return cache_dir.joinpath("adapters", parsed.bucket, *parsed.prefix.split("/"))


def _pull(uri: str, cache_dir: Path) -> Path:
    from mmrag.core import s3

    dest = s3_cache_dir(uri, cache_dir)
    try:
        return s3.pull(uri, dest)
    except MmragError as e:
        raise AdapterError(f"cannot fetch adapter {uri}: {e}") from e
