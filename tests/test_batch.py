"""`mmrag batch` and `mmrag index --describe` through the installed command."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mmrag.settings import Settings
from tests.conftest import MMRAG_SCRIPT, cli_env, run_cli
from tests.test_retrieval import write_known_corpus


@pytest.fixture
def corpus_settings(settings: Settings, tmp_path: Path) -> Settings:
    root = write_known_corpus(tmp_path / "known")
    result = run_cli(cli_env(settings), "index", str(root), "--workers", "0", "--json")
    assert result.returncode == 0, result.stderr
    return settings.model_copy(update={"max_new_tokens": 6})


def lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_with_bad_rows_and_grading(corpus_settings: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            [
                json.dumps({"id": "rain", "question": "Monthly rainfall in Seattle?", "expected": "160"}),
                json.dumps({"id": "swallow", "question": "Airspeed of an unladen swallow?"}),
                "{not json",
                json.dumps({"id": "empty", "question": "   "}),
                json.dumps({"question": "no id here"}),
                json.dumps({"id": "sport", "question": "Who won the final?", "source": "sports/"}),
            ]
        )
    )
    out = tmp_path / "answers.jsonl"
    result = run_cli(cli_env(corpus_settings), "batch", str(questions), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["failed"], summary["graded"]) == (6, 3, 1)
    assert summary["answered"] + summary["abstained"] == 3 and summary["relaxed_accuracy"] is not None
    rows = {row["id"]: row for row in lines(out)}
    assert set(rows) == {"rain", "swallow", "line-3", "empty", "line-5", "sport"}
    assert rows["swallow"]["abstained"] and rows["swallow"]["error"] is None
    assert "invalid JSON" in rows["line-3"]["error"] and rows["empty"]["error"] == "missing question"
    assert rows["rain"]["sources"][0]["source"] == "charts/rainfall.png" and "correct" in rows["rain"]
    assert {s["source"] for s in rows["sport"]["sources"]} <= {"sports/football.txt"}
    assert set(rows["rain"]) >= {"id", "question", "answer", "abstained", "sources", "timings", "error"}

    again = run_cli(cli_env(corpus_settings), "batch", str(questions), "--out", str(out), "--json")
    assert json.loads(again.stdout)["skipped"] == 6 and len(lines(out)) == 6  # resumable: nothing twice


def test_csv_input_resumes_after_a_kill(corpus_settings: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "q.csv"
    with questions.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "question", "source", "expected"])
        for i in range(40):
            writer.writerow([f"q{i}", f"Question {i}: how much rain falls in Seattle?", "", ""])
    out = tmp_path / "answers.jsonl"
    args = [MMRAG_SCRIPT, "batch", str(questions), "--out", str(out), "--batch-size", "1"]
    process = subprocess.Popen(args, env=cli_env(corpus_settings), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 2:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    done_at_kill = out.read_text().count("\n")
    assert 2 <= done_at_kill < 40, "the kill did not land mid-run"
    with out.open("a") as f:
        f.write('{"id": "q9')  # a line cut short by the kill
    result = run_cli(cli_env(corpus_settings), "batch", str(questions), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == done_at_kill
    ids = [row["id"] for row in lines(out)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(40))  # every id once, the cut line gone


def test_missing_or_malformed_questions_file(corpus_settings: Settings, tmp_path: Path) -> None:
    env = cli_env(corpus_settings)
    missing = run_cli(env, "batch", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "a.jsonl"))
    assert missing.returncode == 1 and "no such questions file" in missing.stderr
    bad_csv = tmp_path / "q.csv"
    bad_csv.write_text("identifier,text\n1,hello\n")
    result = run_cli(env, "batch", str(bad_csv), "--out", str(tmp_path / "a.jsonl"))
    assert result.returncode == 1 and "id and question" in result.stderr


def test_describe_stores_the_vlm_reading_in_captions(settings: Settings, tmp_path: Path) -> None:
    root = write_known_corpus(tmp_path / "known")
    env = cli_env(settings, MMRAG_MAX_NEW_TOKENS="12")
    plain = run_cli(env, "index", str(root / "charts"), "--workers", "0", "--json")
    assert plain.returncode == 0, plain.stderr
    described = run_cli(env, "index", str(root / "charts"), "--describe", "--workers", "0", "--json")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["files"]["indexed"] == 2  # undescribed charts are described
    from mmrag.client import connect

    with connect(settings) as client:
        objects = list(client.collections.use(settings.collection).iterator())
    assert len(objects) == 2
    for obj in objects:
        caption, _, description = str(obj.properties["text"]).partition("\n")
        assert caption in (
            "Monthly rainfall in Seattle: wettest in November with 160 millimetres.",
            "Population of European capital cities in millions: Berlin, Madrid, Rome.",
        )
        assert description.strip() and obj.properties["describer"]
    again = run_cli(env, "index", str(root / "charts"), "--describe", "--workers", "0", "--json")
    assert json.loads(again.stdout)["objects"]["written"] == 0
