"""`validate_file` catches each defect that crashes training or silently trains on nothing, naming its line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmrag.core.settings import Settings
from mmrag.core.tiny import ensure_tiny_models, tiny_vlm_dir
from mmrag.finetune.dataset import DataConfig, build_dataset
from mmrag.finetune.domains import load_domain
from mmrag.finetune.validate import load_processor, validate_file
from tests.badfiles import bomb_png
from tests.helpers import CACHE_DIR, cli_env, run_cli

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


def _deep(depth: int = 100_000) -> str:
    """JSON nested `depth` lists deep: far past what Python's JSON parser can recurse into."""
    return "[" * depth + "]" * depth


def test_deep_nesting_is_a_problem_on_its_line_and_the_other_lines_are_checked(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    records[1] = '{"id": "deep", "image": "images/x.png", "conversations": ' + _deep() + "}"
    records[2] = _deep()
    assert isinstance(records[3], dict)
    records[3]["image"] = "images/nowhere.png"
    report = validate_file(_write(dataset, records, tmp_path))
    assert [(i.line, i.code) for i in report.issues] == [(2, "json"), (3, "json"), (4, "image")]
    assert "nested too deeply" in report.issues[0].message


def test_a_deeply_nested_element_of_a_json_array_is_skipped_and_the_rest_checked(dataset: Path, tmp_path: Path) -> None:
    first, second, third, _ = _records(dataset)
    third["image"] = "images/nowhere.png"
    (tmp_path / "train.json").write_text(
        "[\n" + ",\n".join([json.dumps(first), _deep(), json.dumps(second), json.dumps(third)]) + "\n]\n"
    )
    shutil.copytree(dataset / "images", tmp_path / "images")
    report = validate_file(tmp_path / "train.json")
    assert [(i.line, i.code) for i in report.issues] == [(3, "json"), (5, "image")]
    assert report.n_samples == 3


@pytest.mark.parametrize("name", ["whole.json", "whole.jsonl"])
def test_a_file_that_is_one_deep_nest_is_one_problem_on_line_1(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(_deep() + "\n")
    report = validate_file(tmp_path / name)
    assert [(i.line, i.code) for i in report.issues] == [(1, "json")]


def test_a_decompression_bomb_is_a_problem_on_each_line_using_it(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    for record in records[1], records[3]:
        assert isinstance(record, dict)
        record["image"] = "images/bomb.png"
    path = _write(dataset, records, tmp_path)
    (tmp_path / "images/bomb.png").write_bytes(bomb_png(60_000, 60_000))  # 3.6 gigapixels in 100 bytes
    report = validate_file(path)
    assert [(i.line, i.code) for i in report.issues] == [(2, "image"), (4, "image")]
    assert all("bomb.png is too large" in i.message for i in report.issues)


def test_an_image_over_the_pixel_limit_is_refused_undecoded(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    path = _write(dataset, records, tmp_path)
    report = validate_file(path, max_pixels=100)
    assert report.issues and all(
        i.code == "image" and "over 100 (a decompression bomb?)" in i.message for i in report.issues
    )


def test_json_the_parser_refuses_beyond_syntax_is_a_problem_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": 1}\n{"id": ' + "7" * 5000 + "}\n")  # Python refuses integers over 4300 digits
    report = validate_file(path)
    assert [(i.line, i.code) for i in report.issues] == [(1, "shape"), (2, "json")]
    assert "4300 digits" in report.issues[1].message


def test_a_file_that_is_not_utf8_is_a_problem_on_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    report = validate_file(path)
    assert [(i.line, i.code) for i in report.issues] == [(2, "json")] and "UTF-8" in report.issues[0].message


def test_the_records_before_an_invalid_element_of_an_array_are_still_checked(dataset: Path, tmp_path: Path) -> None:
    first, second, *_ = _records(dataset)
    first["image"] = "images/nowhere.png"
    path = tmp_path / "train.json"
    path.write_text("[\n" + json.dumps(first) + ",\n" + json.dumps(second) + ",\n{oops\n")
    report = validate_file(path, image_root=dataset)
    assert [(i.line, i.code) for i in report.issues] == [(2, "image"), (4, "json")]


def test_an_array_without_its_closing_bracket_is_a_problem(dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text("[\n" + json.dumps(_records(dataset)[0]) + "\n")
    report = validate_file(path, image_root=dataset)
    assert [(i.line, i.code) for i in report.issues] == [(2, "json")] and "not closed" in report.issues[0].message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("a chart", "a sample is a JSON object, not a string"),
        ({"id": {"a": 1}, "image": "x.png", "conversations": []}, "'id' is an object, not a string or a number"),
        ({"id": "a", "image": None, "conversations": []}, "'image' is null, not a string"),
        ({"id": "a", "image": "x.png", "conversations": "hi"}, "'conversations' is a string, not an array"),
        ({"id": "a", "image": "x.png", "conversations": ["hi"]}, "conversations[0] is a string, not an object"),
        ({"id": "a", "image": "x.png", "conversations": [{"from": "gpt"}]}, "conversations[0].value is missing"),
        ({"id": "a", "image": "x.png", "conversations": [{"from": "gpt", "value": [[1]]}]}, "value is an array"),
    ],
)
def test_wrong_types_are_shape_problems(record: Any, message: str, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (issue,) = validate_file(path).issues
    assert (issue.line, issue.code) == (1, "shape") and message in issue.message


def test_control_characters_from_the_data_are_escaped_when_printed(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"id": "a\x1b[2J\ud800", "image": "x.png", "conversations": []}) + "\n")
    lines = [i.format(path) for i in validate_file(path).issues]
    assert lines and all(line.isprintable() and line.encode() for line in lines)
    assert "a\\x1b[2J\\ud800" in lines[0]


@pytest.mark.slow
def test_the_cli_reports_nesting_and_bombs_by_line_without_a_traceback(dataset: Path, tmp_path: Path) -> None:
    records: list[Record | str] = list(_records(dataset))
    records[1] = _deep()
    assert isinstance(records[2], dict)
    records[2]["image"] = "images/bomb.png"
    path = _write(dataset, records, tmp_path)
    (tmp_path / "images/bomb.png").write_bytes(bomb_png(60_000, 60_000))
    env = cli_env(Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu"))
    result = run_cli(env, "finetune", "validate", str(path))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}:2: [json]" in result.stdout and f"{path}:3 (" in result.stdout
    assert "3 samples, 2 problems" in " ".join(result.stderr.split())


def test_a_line_separator_inside_a_question_keeps_the_record_whole(dataset: Path, tmp_path: Path) -> None:
    """JSONL ends records at newlines only: U+2028/U+0085 written raw (ensure_ascii=False) stay in their string."""
    from mmrag.finetune.samples import iter_json_records

    records = _records(dataset)
    records[0]["conversations"][0]["value"] += " per\u2028year\x85?"
    path = tmp_path / "train.jsonl"
    shutil.copytree(dataset / "images", tmp_path / "images", dirs_exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    assert validate_file(path).ok
    assert [line for line, _ in iter_json_records(path)] == [1, 2, 3, 4]
