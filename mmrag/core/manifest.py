"""The manifest saved beside every LoRA adapter: what produced it, so the app can refuse a mismatched base.

A merged model (`mmrag finetune merge`) carries its own, `MergedManifest`: the base and adapter merged into it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from mmrag.core.errors import MmragError, one_line
from mmrag.core.prompts import PROMPT_STYLE

MANIFEST_NAME = "mmrag_adapter.json"


class ManifestError(MmragError):
    """An adapter dir without a readable manifest, or one that does not fit the model in use."""


@dataclass(frozen=True)
class AdapterManifest:
    base_model: str
    """The base model id or dir the adapter was trained on."""
    prompt_style: str
    """mmrag.core.prompts.PROMPT_STYLE at training time."""
    base_revision: str | None = None
    """The base checkpoint's revision (commit hash) when known, else None."""
    dataset_card_sha256: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save(self, adapter_dir: Path) -> Path:
        return _save(self, adapter_dir / MANIFEST_NAME)

    @classmethod
    def load(cls, adapter_dir: Path) -> AdapterManifest:
        path = adapter_dir / MANIFEST_NAME
        manifest = _load(cls, path, f"{adapter_dir} is not an mmrag adapter", "adapter manifest")
        if not isinstance(manifest.base_model, str) or not isinstance(manifest.prompt_style, str):
            raise ManifestError(f"{path} is not a valid adapter manifest: base_model and prompt_style must be text")
        return manifest

    def check_compatible(self, base_model: str, prompt_style: str) -> None:
        """Refuse an adapter trained on another base model or with another prompt style."""
        self.check_base(base_model)
        if self.prompt_style != prompt_style:
            raise ManifestError(
                f"the adapter was trained with prompt style {self.prompt_style!r} but this version answers with "
                f"{prompt_style!r}: retrain it or use a matching mmrag version"
            )

    def check_base(self, base_model: str) -> None:
        """Refuse to put this adapter on another base model."""
        if _normalise(self.base_model) != _normalise(base_model):
            raise ManifestError(
                f"the adapter was trained on {self.base_model!r} but the model in use is {base_model!r}: "
                "set MMRAG_VLM_MODEL to the adapter's base or choose another adapter"
            )


def _normalise(model_id: str) -> str:
    path = Path(model_id).expanduser()
    return str(path.resolve()) if path.exists() else model_id.rstrip("/")


def model_revision(model_id: str, config: Any = None) -> str | None:
    """The base checkpoint's revision: the hub commit when loaded from the hub, else a hash of a local dir's files.

    A local dir's revision is the sha256 of its config.json and the names and sizes of its weight files (cheap
    for a 7B model, and it changes when the checkpoint does).
    """
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return str(commit)
    path = Path(model_id).expanduser()
    if not (path / "config.json").is_file():
        return None
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"sha256:{digest.hexdigest()}"


MERGED_MANIFEST_NAME = "mmrag_merged.json"


@dataclass(frozen=True)
class MergedManifest:
    """Saved beside a merged model (`mmrag finetune merge`): the base and the adapter that were merged into it."""

    base_model: str
    """The base model id or dir the adapter was merged into."""
    adapter: str
    """The adapter's source as given (a dir or ``s3://bucket/prefix``)."""
    adapter_manifest: dict[str, Any]
    """The adapter's own manifest (`AdapterManifest`), as saved beside it."""
    prompt_style: str
    """The prompt style the adapter was trained with: the merged model answers well only when asked in it."""
    base_revision: str | None = None
    """The base checkpoint's revision at merge time (`model_revision`), else None."""
    dtype: str | None = None
    """The dtype the merged weights are saved in."""
    mmrag_version: str | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save(self, model_dir: Path) -> Path:
        return _save(self, model_dir / MERGED_MANIFEST_NAME)

    @classmethod
    def load(cls, model_dir: Path) -> MergedManifest:
        path = model_dir / MERGED_MANIFEST_NAME
        manifest = _load(cls, path, f"{model_dir} is not a merged mmrag model", "merged-model manifest")
        if not isinstance(manifest.prompt_style, str) or not isinstance(manifest.adapter_manifest, dict):
            raise ManifestError(
                f"{path} is not a valid merged-model manifest: prompt_style must be text and adapter_manifest an object"
            )
        return manifest


def check_merged_model(model_id: str) -> MergedManifest | None:
    """The manifest of a merged model (a local dir holding ``mmrag_merged.json``), refused (ManifestError) when its
    adapter was trained with another prompt style than `mmrag.core.prompts.PROMPT_STYLE`; None for any other model
    (a hub id, a dir without the manifest), which has nothing to check."""
    model_dir = Path(model_id).expanduser()
    if not (model_dir / MERGED_MANIFEST_NAME).is_file():
        return None
    manifest = MergedManifest.load(model_dir)
    if manifest.prompt_style != PROMPT_STYLE:
        raise ManifestError(
            f"the merged model {model_id} was trained with prompt style {manifest.prompt_style!r} but this version "
            f"answers with {PROMPT_STYLE!r}: merge an adapter trained with this mmrag version"
        )
    return manifest


def _save(manifest: Any, path: Path) -> Path:
    path.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    return path


_Manifest = TypeVar("_Manifest")


def _load(cls: type[_Manifest], path: Path, missing: str, what: str) -> _Manifest:
    """The manifest at `path`, or one ManifestError: `missing` (when there is no file), or why it is not valid."""
    try:
        return cls(**json.loads(path.read_text()))
    except FileNotFoundError as e:
        raise ManifestError(f"{missing}: {path.name} is missing") from e
    except (ValueError, TypeError, RecursionError) as e:  # bad JSON, too deep, huge numbers, wrong fields
        raise ManifestError(f"{path} is not a valid {what}: {one_line(str(e))}") from e
