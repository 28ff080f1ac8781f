"""Checks a LLaVA-format dataset file before training, naming the line of every defect.

The defects caught are the usual causes of crashes and of silent loss=0 runs: a missing or repeated ``<image>``
marker, an image that is missing or does not decode, duplicate ids, roles that do not alternate human/gpt, empty
answers, and samples whose tokenized length (image tokens included, as the trainer encodes them) exceeds the
maximum length, which truncation would turn into a sample with nothing supervised. Hostile or broken input is a
defect on its line too, never a crash: JSON nested too deeply to parse, wrong JSON types, decompression bombs.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.core.errors import ModelUnavailableError
from mmrag.core.jsonl import JsonLineError, json_lines
from mmrag.finetune.samples import IMAGE_TOKEN, DatasetError, Sample

MAX_IMAGE_PIXELS = 64_000_000
"""Larger images are reported, not decoded (decompression bombs); the CLI passes MMRAG_MAX_IMAGE_MEGAPIXELS."""


@dataclass(frozen=True)
class Issue:
    line: int
    sample_id: str | None
    code: str
    """json, shape, image_token, image, duplicate_id, roles, empty_answer, too_long, encoding."""
    message: str

    def format(self, path: Path) -> str:
        """One printable line: control characters and lone surrogates from the data are escaped."""
        sample = f" ({self.sample_id})" if self.sample_id else ""
        return _printable(f"{path}:{self.line}{sample}: [{self.code}] {self.message}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
    path: Path,
    *,
    processor: Any = None,
    max_length: int | None = None,
    image_root: Path | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> ValidationReport:
    """Every defect of the JSON/JSONL file at `path`; the length check runs when a processor is given.

    Image paths are relative to `image_root` (default: the file's dir, the layout `mmrag finetune data` writes).
    Whatever the file holds (any JSON, any nesting, any image), each defect is an `Issue` with its line; only a
    file that cannot be read at all raises DatasetError.
    """
    root = image_root or path.parent
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    images: dict[str, Any] = {}
    longest = n_samples = 0
    for line, record in _records(path, issues):
        n_samples += 1
        problem = _shape_problem(record)
        if problem is not None:
            issues.append(Issue(line, None, "shape", f"not a LLaVA sample: {problem}"))
            continue
        sample = Sample.from_json(record, line)
        if sample.id in seen:
            issues.append(Issue(line, sample.id, "duplicate_id", f"id also used on line {seen[sample.id]}"))
        seen.setdefault(sample.id, line)
        sample_issues = _structure(sample)
        image = _image(root, sample, images, sample_issues, max_pixels)
        if processor is not None and image is not None and not sample_issues:
            length = _length(processor, sample, image, sample_issues)
            longest = max(longest, length)
            if max_length is not None and length > max_length:
                sample_issues.append(
                    Issue(line, sample.id, "too_long", f"{length} tokens (image tokens included) > {max_length}")
                )
        issues += sample_issues
    issues.sort(key=lambda issue: issue.line)  # file order (a JSON array's parse errors are found first)
    return ValidationReport(path, n_samples, issues, max_length, longest)


def _records(path: Path, issues: list[Issue]) -> list[tuple[int, Any]]:
    """(line, parsed JSON) of every record that parses; each one that does not is an issue on its line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        issues.append(Issue(line, None, "json", f"not UTF-8 text (byte {data[e.start]:#04x}): save the file as UTF-8"))
        return []
    if text.lstrip().startswith("["):
        return _array_records(text, issues)
    records = []
    for number, record in json_lines(text.split("\n")):  # the lines the trainer's reader sees
        if isinstance(record, JsonLineError):
            issues.append(Issue(number, None, "json", _json_problem(record)))
        else:
            records.append((number, record))
    return records


def _array_records(text: str, issues: list[Issue]) -> list[tuple[int, Any]]:
    """The elements of a JSON array, each with the line it starts on, up to the first one that is not JSON.

    An element too deeply nested (or with a number too long) to parse is reported and skipped; the others are kept.
    """
    decoder = json.JSONDecoder()
    records: list[tuple[int, Any]] = []
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            line = _line_at(text, len(text.rstrip()) - 1)
            issues.append(Issue(line, None, "json", "invalid JSON: the array is not closed (']' is missing)"))
            return records
        if text[pos] == "]":
            return records
        line = _line_at(text, pos)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            issues.append(Issue(e.lineno, None, "json", _json_problem(e)))
            return records
        except (ValueError, RecursionError) as e:
            issues.append(Issue(line, None, "json", _json_problem(e)))
            pos = _end_of_value(text, pos)
            continue
        records.append((line, item))


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, max(pos, 0)) + 1


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^\s,\[\]{}"]+', re.DOTALL)


def _end_of_value(text: str, pos: int) -> int:
    """Where the JSON value starting at `pos` ends, found by counting brackets (no recursion, however deep)."""
    depth = 0
    for match in _TOKEN.finditer(text, pos):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
        if depth <= 0:
            return match.end()
    return len(text)


def _json_problem(error: ValueError | RecursionError) -> str:
    if isinstance(error, JsonLineError):
        return str(error) + (" (a LLaVA sample nests 3 levels)" if "nested" in str(error) else "")
    if isinstance(error, RecursionError):
        return "nested too deeply to parse (a LLaVA sample nests 3 levels)"
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg}"
    return f"invalid JSON: {str(error).split(';')[0]}"  # e.g. an integer with more than 4300 digits


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
_FIELDS: dict[str, tuple[type, ...]] = {"id": (str, int), "image": (str,), "conversations": (list,)}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def _shape_problem(record: Any) -> str | None:
    """What keeps `record` from being a LLaVA sample (a missing key, a wrong type), or None."""
    if not isinstance(record, dict):
        return f"a sample is a JSON object, not {_json_type(record)}"
    for key, types in _FIELDS.items():
        if key not in record:
            return f"{key!r} is missing"
        if not isinstance(record[key], types) or isinstance(record[key], bool):
            expected = " or ".join(_JSON_TYPES.get(t, "a number") for t in types)
            return f"{key!r} is {_json_type(record[key])}, not {expected}"
    for i, turn in enumerate(record["conversations"]):
        if not isinstance(turn, dict):
            return f"conversations[{i}] is {_json_type(turn)}, not an object"
        for key in ("from", "value"):
            if not isinstance(turn.get(key), str):
                found = _json_type(turn[key]) if key in turn else "missing"
                return f"conversations[{i}].{key} is {found}, not a string"
    return None


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


def _image(root: Path, sample: Sample, cache: dict[str, Any], issues: list[Issue], max_pixels: int) -> Any:
    """The decoded image (cached by path), or None with an issue."""
    if sample.image not in cache:
        cache[sample.image] = _decode(root, sample.image, max_pixels)
    value = cache[sample.image]
    if isinstance(value, str):
        issues.append(Issue(sample.line, sample.id, "image", value))
        return None
    return value


def _decode(root: Path, name: str, max_pixels: int) -> Any:
    """The image `name` below `root` in RGB, or why it cannot be used; one larger than `max_pixels` is not decoded."""
    import warnings

    from PIL import Image

    path = root / name
    if not path.is_file():
        return f"image {name} {'is not a file' if path.exists() else 'does not exist'} (looked in {root})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:
                    size = f"{image.width}x{image.height}"
                    return f"image {name} has {size} pixels, over {max_pixels:,} (a decompression bomb?)"
                image.load()
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return f"image {name} is too large to decode: {e}"
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        return f"image {name} does not decode: {e}"


def _length(processor: Any, sample: Sample, image: Any, issues: list[Issue]) -> int:
    from mmrag.finetune.encoding import EncodingError, encode

    try:
        return len(encode(processor, sample, image).input_ids)
    except (EncodingError, ValueError) as e:
        issues.append(Issue(sample.line, sample.id, "encoding", f"the processor cannot encode it: {e}"))
        return 0


def load_processor(model_id: str) -> tuple[Any, int | None]:
    """The model's processor and the longest sequence it takes (None when the config does not say)."""
    from transformers import AutoConfig, AutoProcessor

    from mmrag.core.models import hub_offline

    local = Path(model_id).expanduser().exists() or hub_offline()
    try:
        processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
        config = AutoConfig.from_pretrained(model_id, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"cannot load the processor of {model_id!r}: {e}") from e
    text_config = getattr(config, "text_config", config)
    return processor, getattr(text_config, "max_position_embeddings", None)
