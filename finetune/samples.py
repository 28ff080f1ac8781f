"""Training samples in LLaVA's conversation format, read and written as a JSON array or JSONL.

One sample: ``{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", ...}]}``.
The image path is relative to the data dir (LLaVA's ``--image_folder``). The human turn is exactly the prompt the
app shows at answer time (`mmrag.core.prompts`), and the answer cites the chart as source [1], as the app's
instruction asks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.core.errors import MmragError
from mmrag.core.jsonl import JsonLineError, json_lines
from mmrag.core.prompts import chart_training_prompt, llava_human_turn

IMAGE_TOKEN = "<image>"
CITATION = " [1]"


class DatasetError(MmragError):
    """A dataset file or dir that cannot be read."""


@dataclass(frozen=True)
class Turn:
    role: str
    """``human`` or ``gpt``."""
    value: str


@dataclass(frozen=True)
class Sample:
    id: str
    image: str
    conversations: tuple[Turn, ...]
    line: int = 0
    """Line in the file where the sample starts (for error messages)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image": self.image,
            "conversations": [{"from": t.role, "value": t.value} for t in self.conversations],
        }

    @classmethod
    def from_json(cls, data: Any, line: int = 0) -> Sample:
        """A sample from its JSON object; KeyError/TypeError/AttributeError when it does not have the shape."""
        turns = tuple(Turn(str(t["from"]), str(t["value"])) for t in data["conversations"])
        return cls(id=str(data["id"]), image=str(data["image"]), conversations=turns, line=line)


def chart_sample(sample_id: str, image: str, question: str, answer: str) -> Sample:
    human = llava_human_turn(1, chart_training_prompt(question, Path(image).name))
    return Sample(sample_id, image, (Turn("human", human), Turn("gpt", answer + CITATION)))


def question_of(turn: Turn) -> str:
    """The user's question inside a human turn built by `chart_sample`."""
    for line in turn.value.splitlines():
        if line.startswith("Question: "):
            return line.removeprefix("Question: ")
    return turn.value.replace(IMAGE_TOKEN, "").strip()


def iter_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, parsed JSON) for each record of a JSONL file or each element of a JSON array."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    if text.lstrip().startswith("["):
        yield from _array_items(path, text)
        return
    for number, record in json_lines(text.split("\n")):  # records end at "\n" only
        if isinstance(record, JsonLineError):
            raise DatasetError(f"{path}:{number}: {record}")
        yield number, record


def _array_items(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
        yield line, item


def read_samples(path: Path) -> list[Sample]:
    samples = []
    for line, record in iter_json_records(path):
        try:
            samples.append(Sample.from_json(record, line))
        except (KeyError, TypeError, AttributeError) as e:
            raise DatasetError(f"{path}:{line}: not a LLaVA sample ({e}); run `mmrag finetune validate {path}`") from e
    return samples


def write_samples(samples: Iterable[Sample], json_path: Path) -> tuple[Path, Path]:
    """The split as a JSON array (LLaVA's train.py) and as JSONL beside it; returns both paths."""
    records = [s.to_json() for s in samples]
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    jsonl_path = json_path.with_suffix(".jsonl")
    jsonl_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return json_path, jsonl_path
