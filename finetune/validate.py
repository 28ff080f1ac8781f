"""Checks a LLaVA-format dataset file before training, naming the line of every defect.

The defects caught are the usual causes of crashes and of silent loss=0 runs: a missing or repeated ``<image>``
marker, an image that is missing or does not decode, duplicate ids, roles that do not alternate human/gpt, empty
answers, and samples whose tokenized length (image tokens included, as the trainer encodes them) exceeds the
maximum length, which truncation would turn into a sample with nothing supervised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.samples import IMAGE_TOKEN, DatasetError, Sample, iter_json_records
from mmrag.errors import ModelUnavailableError


@dataclass(frozen=True)
class Issue:
    line: int
    sample_id: str | None
    code: str
    """json, shape, image_token, image, duplicate_id, roles, empty_answer, too_long."""
    message: str

    def format(self, path: Path) -> str:
        sample = f" ({self.sample_id})" if self.sample_id else ""
        return f"{path}:{self.line}{sample}: [{self.code}] {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    path: Path
    n_samples: int
    issues: list[Issue]
    max_length: int | None
    longest: int
    """Longest tokenized sample seen (0 without a length check)."""

    @property
    def ok(self) -> bool:
        return not self.issues


def validate_file(
    path: Path, *, processor: Any = None, max_length: int | None = None, image_root: Path | None = None
) -> ValidationReport:
    """Every defect of the JSON/JSONL file at `path`; the length check runs when a processor is given.

    Image paths are relative to `image_root` (default: the file's dir, the layout `mmrag finetune data` writes).
    """
    root = image_root or path.parent
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    images: dict[str, Any] = {}
    longest = n_samples = 0
    for line, record in _records(path, issues):
        n_samples += 1
        try:
            sample = Sample.from_json(record, line)
        except (KeyError, TypeError, AttributeError) as e:
            issues.append(Issue(line, None, "shape", f"not a LLaVA sample: missing or malformed {e}"))
            continue
        if sample.id in seen:
            issues.append(Issue(line, sample.id, "duplicate_id", f"id also used on line {seen[sample.id]}"))
        seen.setdefault(sample.id, line)
        sample_issues = _structure(sample)
        image = _image(root, sample, images, sample_issues)
        if processor is not None and image is not None and not sample_issues:
            length = _length(processor, sample, image, sample_issues)
            longest = max(longest, length)
            if max_length is not None and length > max_length:
                sample_issues.append(
                    Issue(line, sample.id, "too_long", f"{length} tokens (image tokens included) > {max_length}")
                )
        issues += sample_issues
    return ValidationReport(path, n_samples, issues, max_length, longest)


def _records(path: Path, issues: list[Issue]) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    if text.lstrip().startswith("["):
        try:
            return list(iter_json_records(path))
        except DatasetError as e:
            issues.append(Issue(_line_of(str(e)), None, "json", str(e).split(": ", 1)[-1]))
            return []
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                records.append((number, json.loads(raw)))
            except json.JSONDecodeError as e:
                issues.append(Issue(number, None, "json", f"invalid JSON: {e.msg}"))
    return records


def _line_of(message: str) -> int:
    try:
        return int(message.split(":")[1])
    except (IndexError, ValueError):
        return 0


def _structure(sample: Sample) -> list[Issue]:
    issues = []
    turns = sample.conversations
    line, sid = sample.line, sample.id
    expected = ["human", "gpt"] * ((len(turns) + 1) // 2)
    if not turns or [t.role for t in turns] != expected[: len(turns)] or len(turns) % 2:
        roles = "/".join(t.role for t in turns) or "none"
        issues.append(Issue(line, sid, "roles", f"turns must alternate human, gpt, ... and end with gpt (got {roles})"))
    if turns and turns[0].value.count(IMAGE_TOKEN) != 1:
        count = turns[0].value.count(IMAGE_TOKEN)
        issues.append(Issue(line, sid, "image_token", f"the first human turn has {count} {IMAGE_TOKEN} markers, not 1"))
    if any(IMAGE_TOKEN in t.value for t in turns[1:]):
        issues.append(Issue(line, sid, "image_token", f"{IMAGE_TOKEN} appears after the first human turn"))
    for t in turns:
        if t.role == "gpt" and not t.value.strip():
            issues.append(Issue(line, sid, "empty_answer", "an answer (gpt turn) is empty: nothing to learn from it"))
    return issues


def _image(root: Path, sample: Sample, cache: dict[str, Any], issues: list[Issue]) -> Any:
    """The decoded image (cached by path), or None with an issue."""
    from PIL import Image, UnidentifiedImageError

    if sample.image not in cache:
        path = root / sample.image
        try:
            with Image.open(path) as image:
                image.load()
                cache[sample.image] = image.convert("RGB")
        except FileNotFoundError:
            cache[sample.image] = f"image {sample.image} does not exist (looked in {root})"
        except (OSError, UnidentifiedImageError, SyntaxError) as e:
            cache[sample.image] = f"image {sample.image} does not decode: {e}"
    value = cache[sample.image]
    if isinstance(value, str):
        issues.append(Issue(sample.line, sample.id, "image", value))
        return None
    return value


def _length(processor: Any, sample: Sample, image: Any, issues: list[Issue]) -> int:
    from finetune.encoding import EncodingError, encode

    try:
        return len(encode(processor, sample, image).input_ids)
    except (EncodingError, ValueError) as e:
        issues.append(Issue(sample.line, sample.id, "encoding", f"the processor cannot encode it: {e}"))
        return 0


def load_processor(model_id: str) -> tuple[Any, int | None]:
    """The model's processor and the longest sequence it takes (None when the config does not say)."""
    from transformers import AutoConfig, AutoProcessor

    from mmrag.models import hub_offline

    local = Path(model_id).expanduser().exists() or hub_offline()
    try:
        processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
        config = AutoConfig.from_pretrained(model_id, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"cannot load the processor of {model_id!r}: {e}") from e
    text_config = getattr(config, "text_config", config)
    return processor, getattr(text_config, "max_position_embeddings", None)
