"""Merging a LoRA adapter into its base model: one full checkpoint, for servers that cannot put the adapter on the
base themselves (vLLM has no LoRA for LLaVA-OneVision).

The merged dir is an ordinary LLaVA-family checkpoint (safetensors weights, config, generation config, and the
processor with its chat template) that `transformers serve DIR`, vLLM and mmrag's local backend
(``MMRAG_VLM_MODEL=DIR``) load like any other, plus ``mmrag_merged.json`` (`MergedManifest`) naming the base and the
adapter merged into it. The adapter is checked as `mmrag ask` checks it: its manifest must name the base and the
prompt style in use, and its weights must be safetensors.

The weights are merged in the dtype `load_vlm` gives (float32 on CPU, bfloat16 on CUDA) and saved in the base
checkpoint's own dtype, so a merged model is as large as its base. The dir appears complete or not at all: it is
built in a hidden sibling dir and renamed into place, and an earlier merged model is replaced (`force`) only then.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core import s3
from mmrag.core.adapters import S3_SCHEME, AdapterError, resolve_adapter, s3_cache_dir
from mmrag.core.errors import MmragError, first_line
from mmrag.core.manifest import (
    MERGED_MANIFEST_NAME,
    AdapterManifest,
    ManifestError,
    MergedManifest,
    model_revision,
)

if TYPE_CHECKING:
    import torch


class MergeError(MmragError):
    """The merged model cannot be made: its dir is taken, the merged weights hold NaN, or writing fails."""


@dataclass(frozen=True)
class MergeResult:
    """Where the merged model was written, what it is, and its weight files."""

    out: Path
    manifest: MergedManifest
    weight_files: tuple[str, ...]
    size_bytes: int
    """The weight files' total size."""


def merge_adapter(
    source: str,
    out: Path,
    *,
    cache_dir: Path,
    base: str | None = None,
    device: str = "cpu",
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MergeResult:
    """Merge the adapter at `source` (a dir or ``s3://bucket/prefix``, fetched into `cache_dir`) into `base` (default:
    the base its manifest names) and save the merged model in `out`.

    `out` must not exist or be empty, or hold an earlier merged model and `force` be given; anything else is refused
    (MergeError), as is an adapter for another base or prompt style (AdapterError). Nothing is written on failure.
    `progress` receives a line at each stage (loading, merging, writing).
    """
    from mmrag.core.models import load_vlm, resolve_device

    say = progress or (lambda line: None)
    out = out.expanduser()
    _check_out(out, force)
    base = base or _manifest_base(source, cache_dir)
    adapter_dir = resolve_adapter(source, base, cache_dir)
    adapter_manifest = AdapterManifest.load(adapter_dir)
    _check_apart(out, adapter_dir, "the adapter")
    _check_apart(out, Path(base).expanduser(), "the base model")
    device = resolve_device(device)
    say(f"loading {base} on {device}")
    model, processor = load_vlm(base, device)
    revision, dtype = model_revision(base, model.config), _saved_dtype(base, model)
    say(f"merging {source}")
    merged = _merged(model, adapter_dir)
    _cast(merged, dtype)
    manifest = MergedManifest(
        base_model=base,
        adapter=source,
        adapter_manifest=asdict(adapter_manifest),
        prompt_style=adapter_manifest.prompt_style,
        base_revision=revision,
        dtype=str(dtype).removeprefix("torch."),
        mmrag_version=_version(),
    )
    say(f"writing {out}")
    _write(out, force, lambda staging: _save(merged, processor, manifest, staging))
    weights = tuple(sorted(p.name for p in out.glob("*.safetensors")))
    return MergeResult(out, manifest, weights, sum((out / name).stat().st_size for name in weights))


def _manifest_base(source: str, cache_dir: Path) -> str:
    """The base model the adapter's manifest names (an S3 adapter is fetched into the cache to read it)."""
    if source.startswith(S3_SCHEME):
        adapter_dir = s3_cache_dir(source, cache_dir)
        try:
            s3.pull(source, adapter_dir)
        except MmragError as e:
            raise AdapterError(f"cannot fetch adapter {source}: {e}") from e
    else:
        adapter_dir = Path(source).expanduser()
    if not adapter_dir.is_dir():
        raise AdapterError(f"adapter {source} not found: no such directory {adapter_dir}")
    try:
        return AdapterManifest.load(adapter_dir).base_model
    except ManifestError as e:
        raise AdapterError(f"{adapter_dir}: {e}") from e


def _check_out(out: Path, force: bool) -> None:
    """Refuse an `out` that is a file or a non-empty dir, unless it holds an earlier merged model and `force`."""
    if not out.exists():
        return
    if not out.is_dir():
        raise MergeError(f"{out} exists and is not a directory: choose another --out")
    if not any(out.iterdir()):
        return
    if not (out / MERGED_MANIFEST_NAME).is_file():
        raise MergeError(
            f"{out} is not empty and holds no merged model ({MERGED_MANIFEST_NAME} is missing): choose another --out"
        )
    if not force:
        raise MergeError(f"{out} already holds a merged model: pass --force to replace it")


def _check_apart(out: Path, path: Path, what: str) -> None:
    """Refuse an `out` that is, or holds, `what`: replacing it would delete the model being merged."""
    if not path.exists():
        return
    out, path = out.expanduser().resolve(), path.resolve()
    if out == path or out in path.parents:
        raise MergeError(f"--out {out} would replace {what} ({path}): choose another --out")


def _saved_dtype(base: str, model: Any) -> torch.dtype:
    """The dtype the base checkpoint is saved in (its config's), else the loaded one."""
    import torch
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(base, local_files_only=True).dtype  # just loaded: local or in the hub cache
    if isinstance(saved, str):
        saved = getattr(torch, saved, None)
    return saved if isinstance(saved, torch.dtype) and saved.is_floating_point else model.dtype


def _merged(model: Any, adapter_dir: Path) -> Any:
    """`model` with the adapter's LoRA weights added into its own (and a trained projector in place of its own)."""
    from peft import PeftModel
    from safetensors import SafetensorError

    try:
        peft = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise AdapterError(f"cannot load the adapter at {adapter_dir}: {first_line(e, 300)}") from e
    try:
        return peft.merge_and_unload(safe_merge=True)
    except ValueError as e:  # safe_merge: NaN in the merged weights
        raise MergeError(f"cannot merge the adapter at {adapter_dir}: {first_line(e, 300)}") from e


def _cast(model: Any, dtype: torch.dtype) -> None:
    """Convert the weights to `dtype` and say so in the config and every sub-config (text, vision)."""
    model.to(dtype)
    model.config.dtype = dtype
    for key in model.config.sub_configs:
        if (sub_config := getattr(model.config, key, None)) is not None:
            sub_config.dtype = dtype


def _save(model: Any, processor: Any, manifest: MergedManifest, model_dir: Path) -> None:
    model.save_pretrained(model_dir, safe_serialization=True)
    processor.save_pretrained(model_dir)
    manifest.save(model_dir)


def _write(out: Path, force: bool, save: Callable[[Path], None]) -> None:
    """Run `save` on a hidden sibling dir of `out`, then put that dir in `out`'s place; on failure, remove it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(f".{out.name}.merging-{uuid.uuid4().hex[:8]}")
        staging.mkdir()
    except OSError as e:
        raise MergeError(f"cannot write the merged model to {out}: {first_line(e)}") from e
    try:
        save(staging)
        _check_out(out, force)  # again: something may have been written there meanwhile
        _replace(staging, out)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise MergeError(f"cannot write the merged model to {out}: {first_line(e)}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(new: Path, out: Path) -> None:
    """Rename `new` to `out`; an `out` already there is moved aside first and deleted once `new` is in place."""
    if not out.exists():
        new.rename(out)
        return
    old = out.with_name(f".{out.name}.replaced-{uuid.uuid4().hex[:8]}")
    out.rename(old)
    try:
        new.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmrag")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return None
