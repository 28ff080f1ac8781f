"""`mmrag batch`: many questions in, one JSON line per question out; resumable, one bad row never stops the run."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, MmragError
from mmrag.settings import Settings
from rag_app.chain import Answer, Prepared, RagChain


@dataclass(frozen=True)
class Row:
    line: int
    id: str
    question: str
    source: str | None = None
    expected: str | None = None
    error: str | None = None


@dataclass
class BatchSummary:
    total: int = 0
    skipped: int = 0
    answered: int = 0
    abstained: int = 0
    failed: int = 0
    correct: int = 0
    graded: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def questions_per_second(self) -> float:
        done = self.answered + self.abstained + self.failed
        return done / self.seconds if self.seconds else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.graded if self.graded else None

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "answered": self.answered,
            "abstained": self.abstained,
            "failed": self.failed,
            "questions_per_s": round(self.questions_per_second, 3),
            "relaxed_accuracy": self.accuracy,
            "graded": self.graded,
            "seconds": round(self.seconds, 3),
        }

    def table(self) -> Any:
        from rich.table import Table

        table = Table(title="mmrag batch", show_header=False)
        for key, value in self.as_json().items():
            shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
            table.add_row(key.replace("_", " "), shown)
        return table


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a .jsonl or .csv file; a malformed row becomes a Row with an error, not an exception."""
    if not path.is_file():
        raise ConfigError(f"no such questions file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ConfigError(f"questions must be a .jsonl or .csv file, got {path.name}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            records = _jsonl(f) if suffix == ".jsonl" else _csv(f)
            for line, record in records:
                yield _row(line, record)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text") from e


def _jsonl(f: Any) -> Iterator[tuple[int, Any]]:
    for line, text in enumerate(f, start=1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as e:
            yield line, ValueError(f"invalid JSON: {e.msg}")


def _csv(f: Any) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(f)
    if not reader.fieldnames or not {"id", "question"} <= set(reader.fieldnames):
        raise ConfigError("the CSV header must name at least the columns id and question")
    for record in reader:
        yield reader.line_num, record


def _row(line: int, record: Any) -> Row:
    if isinstance(record, Exception):
        return Row(line, f"line-{line}", "", error=str(record))
    if not isinstance(record, dict):
        return Row(line, f"line-{line}", "", error="a row must be a JSON object")
    row_id = str(record.get("id") or "").strip()
    question = str(record.get("question") or "").strip()
    if not row_id:
        return Row(line, f"line-{line}", question, error="missing id")
    if not question:
        return Row(line, row_id, "", error="missing question")
    source = str(record.get("source") or "").strip() or None
    expected = record.get("expected")
    return Row(line, row_id, question, source, None if expected in (None, "") else str(expected))


def done_ids(out: Path) -> set[str]:
    """Ids already answered; a last line cut short by a kill is removed so the file stays valid JSONL."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with out.open("r+b") as f:
            f.truncate(len(complete))
    ids = set()
    for text in complete.decode("utf-8").splitlines():
        try:
            ids.add(str(json.loads(text)["id"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


def run_batch(
    settings: Settings,
    questions: Path,
    out: Path,
    *,
    adapter: str | None = None,
    batch_size: int = 4,
    retrieval_only: bool = False,
    progress: bool = False,
) -> BatchSummary:
    from rag_app.service import make_generator, open_chain

    rows = list(read_rows(questions))
    summary = BatchSummary(total=len(rows))
    finished = done_ids(out)
    seen: set[str] = set()
    todo = []
    for row in rows:
        if row.id in finished:
            summary.skipped += 1
        elif row.id in seen:
            todo.append(Row(row.line, row.id, row.question, error="duplicate id"))
        else:
            todo.append(row)
        seen.add(row.id)
    started = time.perf_counter()
    generator = None if retrieval_only else make_generator(settings, adapter)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        open_chain(settings, retrieval_only=retrieval_only, generator=generator) as chain,
        out.open("a") as sink,
        _ProgressBar(progress, len(todo)) as advance,
    ):
        for start in range(0, len(todo), batch_size):
            group = todo[start : start + batch_size]
            for record in _answer_group(chain, group, summary):
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            advance(len(group))
    summary.seconds = time.perf_counter() - started
    return summary


def _answer_group(chain: RagChain, group: list[Row], summary: BatchSummary) -> list[dict[str, Any]]:
    prepared: dict[int, Prepared] = {}
    errors: dict[int, str] = {}
    for i, row in enumerate(group):
        if row.error:
            errors[i] = row.error
            continue
        try:
            prepared[i] = chain.prepare(row.question, source_prefix=row.source)
        except MmragError as e:
            errors[i] = str(e)
    answers = _generate(chain, prepared, errors)
    records = []
    for i, row in enumerate(group):
        record: dict[str, Any] = {"id": row.id, "question": row.question}
        if i in errors:
            summary.failed += 1
            summary.errors.append(f"{row.id}: {errors[i]}")
            record |= {"answer": None, "abstained": False, "sources": [], "timings": {}, "error": errors[i]}
        else:
            answer = answers[i]
            summary.abstained += answer.abstained
            summary.answered += not answer.abstained
            record |= answer.as_json() | {"error": None}
            if row.expected is not None:
                from finetune.evaluate import relaxed_match

                record["expected"] = row.expected
                record["correct"] = relaxed_match(answer.text, row.expected)
                summary.graded += 1
                summary.correct += record["correct"]
        records.append(record)
    return records


def _generate(chain: RagChain, prepared: dict[int, Prepared], errors: dict[int, str]) -> dict[int, Answer]:
    """Generate the group's answers in one batch where the model allows it."""
    requests = {i: p.request for i, p in prepared.items() if p.request is not None}
    needs = list(requests)
    texts: dict[int, str] = {}
    seconds = 0.0
    if needs and chain.generator is not None:
        started = time.perf_counter()
        try:
            outputs = chain.generator.generate_batch([requests[i] for i in needs])
            texts = dict(zip(needs, outputs, strict=True))
        except MmragError as e:
            for i in needs:
                errors[i] = str(e)
        seconds = (time.perf_counter() - started) / max(len(needs), 1)
    answers = {}
    for i, p in prepared.items():
        if i in errors:
            continue
        answers[i] = chain.answer_from_text(p, texts[i], seconds) if i in texts else chain.finish(p)
    return answers


class _ProgressBar:
    def __init__(self, show: bool, total: int) -> None:
        self.show = show
        self.total = total
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return lambda n: None
        from rich.progress import Progress

        from mmrag.console import err

        self.progress = Progress(console=err, transient=True)
        self.progress.start()
        task = self.progress.add_task("answering", total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
