"""`mmrag batch` and `mmrag index --describe` through the installed command."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.indexer.store import Store
from tests.corpus import write_known_corpus
from tests.helpers import MMRAG_SCRIPT, cli_env, module_settings, run_cli

pytestmark = pytest.mark.slow  # batch runs through the CLI, kills and restarts


@pytest.fixture(scope="module")
def corpus_settings(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The known corpus, indexed once for this module's batches (which only read it)."""
    settings = module_settings(weaviate_server, "B", max_new_tokens=6)
    root = write_known_corpus(tmp_path_factory.mktemp("known"))
    result = run_cli(cli_env(settings), "index", str(root), "--workers", "0", "--json")
    assert result.returncode == 0, result.stderr
    return settings


@pytest.fixture
def own_server(weaviate_binary: Path, tmp_path: Path) -> Iterator[LocalWeaviate]:
    """A Weaviate of this test's own, to stop and restart while the session's server stays up for other tests."""
    server = LocalWeaviate(weaviate_binary, tmp_path / "own", free_port(), free_port())
    server.start()
    yield server
    server.stop()


def lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def batch(settings: Settings, questions: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cli_env(settings), "batch", str(questions), "--out", str(out), "--json", *args)


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
    assert result.returncode == 1, result.stderr  # rows failed: their errors are written, the rest answered
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["failed"], summary["graded"]) == (6, 3, 1)
    assert summary["answered"] + summary["abstained"] == 3 and summary["relaxed_accuracy"] is not None
    rows = {row["id"] or row["line"]: row for row in lines(out)}
    assert set(rows) == {"rain", "swallow", 3, "empty", 5, "sport"}
    assert rows["swallow"]["abstained"] and rows["swallow"]["error"] is None
    assert "invalid JSON" in rows[3]["error"] and rows["empty"]["error"] == "missing question"
    assert rows[5]["error"] == "missing id" and rows[3]["id"] is None and rows[5]["id"] is None
    assert rows["rain"]["sources"][0]["source"] == "charts/rainfall.png" and "correct" in rows["rain"]
    first = rows["rain"]["sources"][0]
    assert {"label", "source_path", "caption", "bbox", "image", "text", "text_similarity", "bm25"} <= set(first)
    assert first["image"] == first["source_path"]  # an image file: its path
    assert {s["source"] for s in rows["sport"]["sources"]} <= {"sports/football.txt"}
    assert set(rows["rain"]) >= {"id", "question", "answer", "abstained", "sources", "timings", "error"}

    again = run_cli(cli_env(corpus_settings), "batch", str(questions), "--out", str(out), "--json")
    resumed = json.loads(again.stdout)
    assert again.returncode == 1 and (resumed["skipped"], resumed["still_failed"]) == (3, 3)  # failed is not done
    assert len(lines(out)) == 6  # resumable: nothing twice


def test_retry_failed_answers_the_failed_rows_again_and_loses_nothing(
    corpus_settings: Settings, tmp_path: Path
) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [{"id": "rain", "question": "Monthly rainfall in Seattle?"}, {"id": "sport", "question": "  "}],
    )
    out = tmp_path / "answers.jsonl"
    first = batch(corpus_settings, questions, out)
    assert first.returncode == 1 and json.loads(first.stdout)["failed"] == 1, first.stderr
    answered = out.read_text().splitlines()[0]
    write_jsonl(
        questions,
        [{"id": "rain", "question": "Monthly rainfall in Seattle?"}, {"id": "sport", "question": "Who won the final?"}],
    )
    rerun = batch(corpus_settings, questions, out)
    summary = json.loads(rerun.stdout)
    assert rerun.returncode == 1 and (summary["skipped"], summary["still_failed"], summary["retried"]) == (1, 1, 0)
    retried = batch(corpus_settings, questions, out, "--retry-failed", "--kind", "text")
    summary = json.loads(retried.stdout)
    assert retried.returncode == 0, retried.stderr
    assert (summary["skipped"], summary["retried"], summary["failed"], summary["still_failed"]) == (1, 1, 0, 0)
    rows = lines(out)
    assert [row["id"] for row in rows] == ["rain", "sport"] and all(row["error"] is None for row in rows)
    assert out.read_text().splitlines()[0] == answered  # the earlier answer is kept as it was
    assert {s["kind"] for s in rows[1]["sources"]} <= {"text"}
    again = batch(corpus_settings, questions, out, "--retry-failed")
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == 2 and len(lines(out)) == 2


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
    from mmrag.core.client import connect

    with connect(settings) as client:
        objects = list(Store(client, settings.collection).objects())
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


def test_a_weaviate_outage_stops_the_run_fast_and_a_rerun_answers_the_rest(
    own_server: LocalWeaviate, tmp_path: Path
) -> None:
    settings = module_settings(own_server, "Down")
    indexed = run_cli(cli_env(settings), "index", str(write_known_corpus(tmp_path / "known")), "--workers", "0")
    assert indexed.returncode == 0, indexed.stderr
    ids = [f"q{i}" for i in range(60)]
    questions = write_jsonl(tmp_path / "q.jsonl", [{"id": i, "question": f"{i}: rain in Seattle?"} for i in ids])
    out = tmp_path / "answers.jsonl"
    args = [MMRAG_SCRIPT, "batch", str(questions), "--out", str(out), "--batch-size", "1", "--json"]
    process = subprocess.Popen(args, env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not (out.exists() and len(lines(out)) >= 3):
        time.sleep(0.05)
    own_server.stop()
    stopped = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("mmrag batch was still retrying 40 s after Weaviate stopped")
    assert time.monotonic() - stopped < 20
    assert process.returncode == 1
    assert len(stderr.strip().splitlines()) == 1 and "same command" in stderr, stderr
    saved = lines(out)
    assert 3 <= len(saved) < len(ids), "the stop did not land mid-run"
    assert all(row["error"] is None for row in saved)  # no row is marked done by the outage

    own_server.start()
    result = batch(settings, questions, out)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == len(saved)
    rows = lines(out)
    assert sorted(row["id"] for row in rows) == sorted(ids) and all(row["error"] is None for row in rows)


def test_a_row_without_id_never_takes_a_real_id(corpus_settings: Settings, tmp_path: Path) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "line-3", "question": "Monthly rainfall in Seattle?"},
            {"id": "line-4", "question": "Who won the final?"},
            {"question": "a row without id"},
            {"id": "  ", "question": "a blank id"},
        ],
    )
    out = tmp_path / "answers.jsonl"
    first = batch(corpus_settings, questions, out)
    assert first.returncode == 1, first.stderr  # two rows failed
    rows = lines(out)
    assert [row["id"] for row in rows] == ["line-3", "line-4", None, None]
    assert [row["line"] for row in rows] == [1, 2, 3, 4]
    assert rows[0]["error"] is None and rows[1]["error"] is None
    assert rows[2]["error"] == rows[3]["error"] == "missing id"
    again = batch(corpus_settings, questions, out)
    summary = json.loads(again.stdout)
    assert (summary["skipped"], summary["still_failed"]) == (2, 2) and len(lines(out)) == 4  # known by their line


def test_a_duplicate_id_is_answered_once_and_reported(corpus_settings: Settings, tmp_path: Path) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "rain", "question": "Monthly rainfall in Seattle?"},
            {"id": 7, "question": "Who won the final?"},
            {"id": "rain", "question": "Rainfall again?"},
            {"id": "7", "question": "The same id as a string"},
        ],
    )
    out = tmp_path / "answers.jsonl"
    result = batch(corpus_settings, questions, out)
    assert result.returncode == 0, result.stderr
    assert [row["id"] for row in lines(out)] == ["rain", "7"]
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["duplicates"], summary["failed"]) == (4, 2, 0)
    assert "line 3: id rain repeats line 1" in result.stderr and "line 4: id 7 repeats line 2" in result.stderr
    again = batch(corpus_settings, questions, out)
    assert json.loads(again.stdout)["skipped"] == 2 and len(lines(out)) == 2


def test_fields_of_the_wrong_type_are_row_errors(corpus_settings: Settings, tmp_path: Path) -> None:
    question = "Monthly rainfall in Seattle?"
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "object", "question": {"text": question}},
            {"id": "list", "question": [question]},
            {"id": "number", "question": 160},
            {"id": 1.5, "question": question},
            {"id": True, "question": question},
            {"id": ["a"], "question": question},
            {"id": "source", "question": question, "source": 3},
            {"id": "expected", "question": question, "expected": ["160"]},
            {"id": "bool", "question": question, "expected": False},
            {"id": "fine", "question": question, "source": "charts/", "expected": 160},
        ],
    )
    out = tmp_path / "answers.jsonl"
    result = batch(corpus_settings, questions, out)
    assert result.returncode == 1, result.stderr  # rows failed; each is written with its error
    errors = [(row["id"], row["error"]) for row in lines(out)]
    assert errors == [
        ("object", "question must be a string"),
        ("list", "question must be a string"),
        ("number", "question must be a string"),
        (None, "id must be a string or an integer"),
        (None, "id must be a string or an integer"),
        (None, "id must be a string or an integer"),
        ("source", "source must be a string"),
        ("expected", "expected must be a string or a number"),
        ("bool", "expected must be a string or a number"),
        ("fine", None),
    ]
    assert lines(out)[-1]["expected"] == "160"
    assert "line 1 (id object): question must be a string" in result.stderr
