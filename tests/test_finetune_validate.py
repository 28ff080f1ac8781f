"""`validate_file` catches each defect that crashes training or silently trains on nothing, naming its line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetune.dataset import DataConfig, build_dataset
from finetune.domains import load_domain
from finetune.validate import load_processor, validate_file
from mmrag.tiny import ensure_tiny_models, tiny_vlm_dir
from tests.conftest import CACHE_DIR

Record = dict[str, Any]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "ds"
    build_dataset(out, load_domain("health"), DataConfig(n_charts=5, seed=2, questions_per_chart=2))
    return out


@pytest.fixture(scope="module")
def processor() -> Any:
    ensure_tiny_models(CACHE_DIR)
    return load_processor(str(tiny_vlm_dir(CACHE_DIR)))[0]


def _records(dataset: Path) -> list[Record]:
    return [json.loads(line) for line in (dataset / "train.jsonl").read_text().splitlines()][:4]


def _write(dataset: Path, records: list[Record | str], tmp_path: Path) -> Path:
    shutil.copytree(dataset / "images", tmp_path / "images", dirs_exist_ok=True)
    path = tmp_path / "train.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_a_generated_dataset_is_valid_as_json_and_jsonl(dataset: Path, processor: Any) -> None:
    for name in ("train.json", "train.jsonl", "test.json"):
        report = validate_file(dataset / name, processor=processor, max_length=2048)
        assert report.ok, report.issues
        assert report.n_samples > 0 and report.longest > 100  # image tokens are counted


def _no_image_token(r: Record) -> None:
    r["conversations"][0]["value"] = r["conversations"][0]["value"].replace("<image>\n", "")


def _two_image_tokens(r: Record) -> None:
    r["conversations"][0]["value"] = "<image>\n" + r["conversations"][0]["value"]


def _image_token_in_answer(r: Record) -> None:
    r["conversations"][1]["value"] = "<image> 42"


def _missing_image(r: Record) -> None:
    r["image"] = "images/nowhere.png"


def _roles(r: Record) -> None:
    r["conversations"][1]["from"] = "human"


def _no_answer_turn(r: Record) -> None:
    r["conversations"] = r["conversations"][:1]


def _empty_answer(r: Record) -> None:
    r["conversations"][1]["value"] = "  "


def _no_conversations(r: Record) -> None:
    del r["conversations"]


DEFECTS: dict[str, tuple[Callable[[Record], None], str]] = {
    "no <image> marker": (_no_image_token, "image_token"),
    "two <image> markers": (_two_image_tokens, "image_token"),
    "<image> in an answer": (_image_token_in_answer, "image_token"),
    "image missing": (_missing_image, "image"),
    "roles not alternating": (_roles, "roles"),
    "no answer turn": (_no_answer_turn, "roles"),
    "empty answer": (_empty_answer, "empty_answer"),
    "not a LLaVA sample": (_no_conversations, "shape"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_caught_on_its_line(defect: str, dataset: Path, tmp_path: Path) -> None:
    mutate, code = DEFECTS[defect]
    records: list[Record | str] = list(_records(dataset))
    bad = records[2]
    assert isinstance(bad, dict)
    mutate(bad)
    report = validate_file(_write(dataset, records, tmp_path))
    assert not report.ok
    assert {(i.line, i.code) for i in report.issues} == {(3, code)}


def test_an_image_that_does_not_decode_is_caught(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    path = _write(dataset, records, tmp_path)
    broken = records[0]
    assert isinstance(broken, dict)
    (tmp_path / broken["image"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    report = validate_file(path)
    lines = sorted(i.line for i in report.issues if i.code == "image" and "decode" in i.message)
    same_chart = [n for n, r in enumerate(records, 1) if isinstance(r, dict) and r["image"] == broken["image"]]
    assert lines == same_chart and 1 in lines


def test_duplicate_ids_are_caught_with_the_first_line(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    assert isinstance(records[3], dict) and isinstance(records[0], dict)
    records[3]["id"] = records[0]["id"]
    report = validate_file(_write(dataset, records, tmp_path))
    (issue,) = report.issues
    assert (issue.line, issue.code) == (4, "duplicate_id") and "line 1" in issue.message


def test_invalid_json_is_caught_and_the_other_lines_still_checked(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    records[1] = '{"id": "broken", '
    assert isinstance(records[3], dict)
    records[3]["image"] = "images/nowhere.png"
    report = validate_file(_write(dataset, records, tmp_path))
    assert [(i.line, i.code) for i in report.issues] == [(2, "json"), (4, "image")]


def test_a_sample_longer_than_the_model_takes_is_caught(dataset: Path, processor: Any, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    path = _write(dataset, records, tmp_path)
    longest = validate_file(path, processor=processor).longest
    report = validate_file(path, processor=processor, max_length=longest - 1)
    assert {i.code for i in report.issues} == {"too_long"}
    assert all(f"> {longest - 1}" in i.message for i in report.issues)
    assert validate_file(path, processor=processor, max_length=longest).ok
