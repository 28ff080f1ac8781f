"""`mmrag batch`: many questions in, one JSON line per question out; resumable, one bad row never stops the run.

Resuming: a row whose line in the output is an answer is done; a row whose line is an error is not (the run counts
it as still failed, and `retry_failed` answers it again). A retried row's new line is appended; when the file is read
back the last line of a row wins, and at the end of a run that retried rows the file is rewritten (atomically: a new
file renamed over the old) with one line per row, so no answer is lost and none is duplicated.

A row's own problem (bad JSON, a missing id, a question that is not a string) is written as an error line and the run
goes on. A problem of the infrastructure (Weaviate unreachable, a model unavailable) is retried briefly and then
stops the run: the rows it hit are not written, so the next run answers them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mmrag.core.client import CONNECTION_ERRORS, quick_grpc_retries
from mmrag.core.console import progress_bar
from mmrag.core.errors import (
    ConfigError,
    MmragError,
    ModelUnavailableError,
    ServerUnavailableError,
    WeaviateUnavailableError,
)
from mmrag.core.jsonl import json_lines
from mmrag.core.settings import Settings
from mmrag.rag_app.chain import Answer, Prepared, RagChain

INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    WeaviateUnavailableError,
    ModelUnavailableError,
    ServerUnavailableError,
    *CONNECTION_ERRORS,
)
"""Failures that say nothing about the row: the group is retried once, then the run stops."""

RETRY_PAUSE_S = 1.0

RowKey = tuple[str, str | int]
"""What resume and duplicate checks compare: ("id", id), or ("line", n) for a row without a usable id."""


class BatchStoppedError(MmragError):
    """The infrastructure failed mid-run; the rows answered so far are saved and a rerun continues."""


@dataclass(frozen=True)
class Row:
    line: int
    id: str | None
    """None when the row has no usable id: it is then an error row, known by its line."""
    question: str
    source: str | None = None
    expected: str | None = None
    error: str | None = None

    @property
    def key(self) -> RowKey:
        return ("id", self.id) if self.id is not None else ("line", self.line)


@dataclass(frozen=True)
class Duplicate:
    """A row whose id the row on `first_line` has already."""

    id: str
    line: int
    first_line: int


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
    still_failed: int = 0
    """Rows whose earlier answer is an error, left as they are (not retried)."""
    retried: int = 0
    """Rows whose earlier answer was an error, answered again."""
    errors: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    """Rows whose id an earlier row has: not answered (the first row with the id is)."""

    @property
    def questions_per_second(self) -> float:
        done = self.answered + self.abstained + self.failed
        return done / self.seconds if self.seconds else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.graded if self.graded else None

    def add(self, record: dict[str, Any]) -> None:
        """Count one written record."""
        if record["error"] is not None:
            self.failed += 1
            where = f"line {record['line']}" + (f" (id {record['id']})" if record["id"] is not None else "")
            self.errors.append(f"{where}: {record['error']}")
        elif record["abstained"]:
            self.abstained += 1
        else:
            self.answered += 1
        if "correct" in record:
            self.graded += 1
            self.correct += record["correct"]

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "duplicates": len(self.duplicates),
            "answered": self.answered,
            "abstained": self.abstained,
            "failed": self.failed,
            "retried": self.retried,
            "still_failed": self.still_failed,
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
    """Rows of a .jsonl or .csv file; a malformed row becomes a Row with an error, a malformed file a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"no such questions file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ConfigError(f"questions must be a .jsonl or .csv file, got {path.name}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            records = json_lines(f) if suffix == ".jsonl" else _csv(f)
            for line, record in records:
                yield _row(line, record)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text") from e
    except csv.Error as e:
        raise ConfigError(f"{path} is not a readable CSV file: {e}") from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e


def _csv(f: Any) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(f)
    if not reader.fieldnames or not {"id", "question"} <= set(reader.fieldnames):
        raise ConfigError("the CSV header must name at least the columns id and question")
    for record in reader:
        yield reader.line_num, record


def _row(line: int, record: Any) -> Row:
    if isinstance(record, Exception):
        return Row(line, None, "", error=str(record))
    if not isinstance(record, dict):
        return Row(line, None, "", error="a row must be a JSON object")
    row_id, problem = _id(record.get("id"))
    if row_id is None:
        return Row(line, None, "", error=problem)
    question, problem = _text("question", record.get("question"), required=True)
    if question is None:
        return Row(line, row_id, "", error=problem)
    source, source_problem = _text("source", record.get("source"))
    expected, expected_problem = _text("expected", _numeral(record.get("expected")), kind="a string or a number")
    if source_problem or expected_problem:
        return Row(line, row_id, question, error=source_problem or expected_problem)
    return Row(line, row_id, question, source, expected)


def _id(value: Any) -> tuple[str | None, str | None]:
    """The row's id as a string (an integer id 7 is "7"), or None and why."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text("id", value, required=True, kind="a string or an integer")


def _text(name: str, value: Any, *, required: bool = False, kind: str = "a string") -> tuple[str | None, str | None]:
    """The stripped text of the field `name`, or None and why not (a blank string counts as absent)."""
    if _blank(value):
        return None, f"missing {name}" if required else None
    if not isinstance(value, str):
        return None, f"{name} must be {kind}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a JSON escape such as "\ud800"
        return None, f"{name} is not valid Unicode text"
    return value.strip(), None


def _numeral(value: Any) -> Any:
    """A finite number as its text (expected answers may be numbers); anything else unchanged."""
    finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return str(value) if finite else value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_answers(out: Path) -> dict[RowKey, dict[str, Any]]:
    """The answers file's records by row, the last line of a row winning (a retried row's new line supersedes its
    error); a last line cut short by a kill is removed so the file stays valid JSONL."""
    if not out.exists():
        return {}
    try:
        data = out.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with out.open("r+b") as f:
                f.truncate(len(complete))
        text = complete.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot resume from {out}: {e}") from e
    records: dict[RowKey, dict[str, Any]] = {}
    for _, record in json_lines(text.split("\n")):
        key = _record_key(record)
        if key is not None:
            records.pop(key, None)  # the row moves to where its latest line is
            records[key] = record
    return records


def _record_key(record: Any) -> RowKey | None:
    try:
        row_id, row_line = record["id"], record.get("line")
    except (KeyError, TypeError, AttributeError):  # a JsonLineError, or not an object of ours
        return None
    if isinstance(row_id, str | int) and not isinstance(row_id, bool):
        return ("id", str(row_id))
    if row_id is None and isinstance(row_line, int):
        return ("line", row_line)
    return None


def done_keys(out: Path) -> set[RowKey]:
    """Rows answered in `out` (their latest line is not an error)."""
    return {key for key, record in read_answers(out).items() if record.get("error") is None}


def failed_keys(out: Path) -> set[RowKey]:
    """Rows whose latest line in `out` is an error."""
    return {key for key, record in read_answers(out).items() if record.get("error") is not None}


def plan(
    rows: list[Row],
    done: AbstractSet[RowKey],
    summary: BatchSummary,
    failed: AbstractSet[RowKey] = frozenset(),
    retry: bool = False,
) -> list[Row]:
    """The rows still to answer: each id once (its first row), none already answered, and the failed ones only
    when retrying."""
    first_line: dict[RowKey, int] = {}
    todo = []
    for row in rows:
        if row.id is not None and row.key in first_line:  # (a row without id is known by its line: never repeated)
            summary.duplicates.append(Duplicate(row.id, row.line, first_line[row.key]))
        elif row.key in done:
            summary.skipped += 1
        elif row.key in failed and not retry:
            summary.still_failed += 1
        else:
            summary.retried += row.key in failed
            todo.append(row)
        first_line.setdefault(row.key, row.line)
    return todo


def compact(out: Path) -> None:
    """Rewrite `out` with one line per row (its latest), atomically: a crash leaves the old file or the new one."""
    records = read_answers(out)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records.values():
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)


def start_run(
    settings: Settings,
    questions: Path,
    out: Path,
    adapter: str | None = None,
    concurrency: int | None = None,
    retry_failed: bool = False,
) -> tuple[Settings, list[Row], BatchSummary]:
    """What every run does first: the settings with the run's adapter and concurrency, the rows still to answer, and
    the summary so far (the output's folder is made)."""
    rows = list(read_rows(questions))
    summary = BatchSummary(total=len(rows))
    written = read_answers(out)
    done = {key for key, record in written.items() if record.get("error") is None}
    todo = plan(rows, done, summary, set(written) - done, retry=retry_failed)
    if adapter is not None:
        settings = settings.model_copy(update={"adapter": adapter})
    if concurrency is not None:  # the server backend's own limit follows
        settings = settings.model_copy(update={"generator_concurrency": concurrency})
    out.parent.mkdir(parents=True, exist_ok=True)
    return settings, todo, summary


def run_batch(
    settings: Settings,
    questions: Path,
    out: Path,
    *,
    adapter: str | None = None,
    batch_size: int = 4,
    retrieval_only: bool = False,
    retry_failed: bool = False,
    kinds: tuple[str, ...] = (),
    source_prefix: str | None = None,
    progress: bool = False,
    concurrency: int | None = None,
) -> BatchSummary:
    """Answer the rows of `questions` not yet answered in `out` (and, with `retry_failed`, those whose answer there
    is an error); `kinds` and `source_prefix` filter every row's retrieval (a row's own `source` wins).

    The local backend answers `batch_size` rows per forward pass. A server backend (and retrieval only) answers
    `concurrency` rows at once (default MMRAG_GENERATOR_CONCURRENCY), each written as soon as it is answered: the
    lines come in the order the answers do, and a server that dies mid-run loses none of them."""
    from mmrag.rag_app.service import make_generator, open_chain

    settings, todo, summary = start_run(settings, questions, out, adapter, concurrency, retry_failed)
    started = time.perf_counter()
    generator = None if retrieval_only else make_generator(settings)
    with (
        quick_grpc_retries(),  # then the group is retried once
        open_chain(settings, retrieval_only=retrieval_only, generator=generator) as chain,
        compacted(out, summary),
        out.open("a", encoding="utf-8") as sink,
        progress_bar("answering", len(todo), show=progress) as bar,
    ):
        in_flight = settings.generator_concurrency  # --concurrency, else the setting
        if in_flight > 1 and (generator is None or generator.concurrent):
            _answer_concurrently(chain, todo, in_flight, (kinds, source_prefix), sink, summary, bar.advance, out)
            summary.seconds = time.perf_counter() - started
            return summary
        for start in range(0, len(todo), batch_size):
            group = todo[start : start + batch_size]
            try:
                records = answer_with_retry(chain, group, kinds, source_prefix)
            except INFRASTRUCTURE_ERRORS as e:
                raise stopped_error(e, out, left=len(todo) - start) from e
            write_records(sink, records, summary)
            bar.advance(len(group))
    summary.seconds = time.perf_counter() - started
    return summary


def _answer_concurrently(
    chain: RagChain,
    todo: list[Row],
    concurrency: int,
    filters: tuple[tuple[str, ...], str | None],
    sink: TextIO,
    summary: BatchSummary,
    advance: Callable[[int], None],
    out: Path,
) -> None:
    """Answer `todo` with `concurrency` rows in flight, writing (and syncing) each record as it comes. After an
    infrastructure failure nothing new starts; the rows still in flight are written if they are answered, and the
    run stops (BatchStoppedError) with the rest left for the next run."""
    rows = iter(todo)
    pending: set[Future[list[dict[str, Any]]]] = set()
    failure: Exception | None = None
    left = len(todo)
    with ThreadPoolExecutor(concurrency, thread_name_prefix="mmrag-batch") as pool:

        def start_next() -> None:
            row = next(rows, None)
            if row is not None:
                pending.add(pool.submit(answer_with_retry, chain, [row], *filters))

        for _ in range(concurrency):
            start_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.remove(future)
                try:
                    records = future.result()
                except INFRASTRUCTURE_ERRORS as e:
                    failure = failure or e
                    continue
                write_records(sink, records, summary)
                left -= 1
                advance(1)
                if failure is None:
                    start_next()
    if failure is not None:
        raise stopped_error(failure, out, left=left) from failure


def write_records(sink: TextIO, records: list[dict[str, Any]], summary: BatchSummary) -> None:
    """Append the records and sync them to disk: a crash after this loses none of them."""
    for record in records:
        sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.add(record)
    sink.flush()
    os.fsync(sink.fileno())


def stopped_error(error: Exception, out: Path, left: int) -> BatchStoppedError:
    reason = " ".join(str(error).split()) or type(error).__name__  # one line
    if not reason.endswith((".", "?")):
        reason += "."
    return BatchStoppedError(
        f"{reason} Batch stopped: the answers so far are in {out}; once this is fixed, run the same command again to "
        f"answer the other {left} questions"
    )


@contextmanager
def compacted(out: Path, summary: BatchSummary) -> Iterator[None]:
    """On leaving (even after an error), rewrite `out` with one line per row when rows were retried."""
    try:
        yield
    finally:
        if summary.retried:
            compact(out)


def answer_with_retry(
    chain: RagChain, group: list[Row], kinds: tuple[str, ...] = (), source_prefix: str | None = None
) -> list[dict[str, Any]]:
    try:
        return _answer_group(chain, group, kinds, source_prefix)
    except INFRASTRUCTURE_ERRORS:
        time.sleep(RETRY_PAUSE_S)
        return _answer_group(chain, group, kinds, source_prefix)


def _answer_group(
    chain: RagChain, group: list[Row], kinds: tuple[str, ...] = (), source_prefix: str | None = None
) -> list[dict[str, Any]]:
    """One record per row; an infrastructure error escapes, so that no row of the group is written."""
    prepared: dict[int, Prepared] = {}
    errors: dict[int, str] = {}
    for i, row in enumerate(group):
        if row.error:
            errors[i] = row.error
            continue
        try:
            options = chain.options.replace(kinds=kinds, source_prefix=row.source or source_prefix)
            prepared[i] = chain.prepare(row.question, options)
        except INFRASTRUCTURE_ERRORS:
            raise
        except MmragError as e:
            errors[i] = str(e)
    answers = _generate(chain, prepared, errors)
    return [output_record(row, answers.get(i), errors.get(i)) for i, row in enumerate(group)]


def output_record(row: Row, answer: Answer | None, error: str | None) -> dict[str, Any]:
    """One line of the answers file: the row, then its answer (with sources and timings) or its error."""
    record: dict[str, Any] = {"id": row.id, "line": row.line, "question": row.question or None}
    if answer is None:
        return record | {"answer": None, "abstained": False, "sources": [], "timings": {}, "error": error}
    record |= answer.as_json() | {"error": None}
    if row.expected is not None:
        from mmrag.core.metrics import relaxed_match

        record |= {"expected": row.expected, "correct": relaxed_match(answer.text, row.expected)}
    return record


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
        except INFRASTRUCTURE_ERRORS:
            raise
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
