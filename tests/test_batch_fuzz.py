"""Any questions file gives rows or row errors (never a crash), and no two rows are ever taken for one another."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mmrag.core.errors import ConfigError
from mmrag.rag_app.batch import (
    BatchSummary,
    Row,
    compact,
    done_keys,
    failed_keys,
    output_record,
    plan,
    read_answers,
    read_rows,
)

pytestmark = pytest.mark.slow  # fuzzed questions files

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=())),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
ids = st.one_of(
    st.none(),
    st.sampled_from(["line-1", "line-2", "1", "2", " q1 ", "q1", "", " "]),
    st.integers(-3, 3),
    json_values,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "question": st.one_of(st.sampled_from(["How much rain?", " ", ""]), json_values),
        "source": json_values,
        "expected": json_values,
    },
)
jsonl_lines = st.lists(
    st.one_of(fields.map(json.dumps), json_values.map(json.dumps), st.text(st.characters(exclude_categories=()))),
    max_size=8,
)
csv_cells = st.text(st.sampled_from('q1,"\n\r \x00é;line-1'), max_size=12)


def rows_of(name: str, data: bytes) -> list[Row] | None:
    """The file's rows, or None when the file as a whole is refused (the only exception allowed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return list(read_rows(path))
        except ConfigError:
            return None


def check(rows: list[Row] | None) -> None:
    if rows is None:
        return
    for row in rows:
        if row.error is None:
            assert isinstance(row.id, str) and row.id and row.id == row.id.strip()
            assert isinstance(row.question, str) and row.question.strip()
            assert row.source is None or isinstance(row.source, str)
            assert row.expected is None or isinstance(row.expected, str)
        else:
            assert isinstance(row.error, str) and row.error
        assert row.id is not None or row.error is not None
    without_id = [row.key for row in rows if row.id is None]
    assert len(set(without_id)) == len(without_id)
    assert not set(without_id) & {row.key for row in rows if row.id is not None}
    check_resume(rows)


def check_resume(rows: list[Row]) -> None:
    """Written once, every planned row is read back; the answered ones are done, the failed ones are not: a rerun
    leaves them (counted as still failed) and a retry plans exactly them."""
    summary = BatchSummary(total=len(rows))
    todo = plan(rows, set(), summary)
    assert len(todo) + len(summary.duplicates) == len(rows)
    assert len({row.key for row in todo}) == len(todo)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answers.jsonl"
        with out.open("w", encoding="utf-8") as f:
            for row in todo:
                f.write(json.dumps(output_record(row, None, row.error), ensure_ascii=False) + "\n")
        assert set(read_answers(out)) == {row.key for row in todo}
        done = done_keys(out)
        assert done == {row.key for row in todo if row.error is None}
        failed = set(read_answers(out)) - done
        rerun = BatchSummary()
        assert plan(rows, done, rerun, failed) == [] and rerun.still_failed == len(failed)
        retry = BatchSummary()
        assert {row.key for row in plan(rows, done, retry, failed, retry=True)} == failed == set(failed_keys(out))
        assert retry.retried == len(failed)


@settings(max_examples=200, deadline=None)
@given(lines=jsonl_lines, ending=st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_jsonl_file_gives_rows_or_row_errors(lines: list[str], ending: str) -> None:
    text = ending.join(lines)
    check(rows_of("q.jsonl", text.encode("utf-8", "surrogatepass")))


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.lists(csv_cells, max_size=5), max_size=6), header=st.booleans())
def test_any_csv_file_gives_rows_or_row_errors(cells: list[list[str]], header: bool) -> None:
    text = ("id,question,source,expected\n" if header else "") + "\n".join(",".join(row) for row in cells)
    check(rows_of("q.csv", text.encode("utf-8")))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200), name=st.sampled_from(["q.jsonl", "q.csv"]))
@example(data=b"1" * 5000, name="q.jsonl")  # json.loads: ValueError, integer too long
@example(data=b"[" * 100_000, name="q.jsonl")  # json.loads: RecursionError
@example(data=b'{"id": "a", "question": "\\ud800"}', name="q.jsonl")  # a lone surrogate
@example(data=b'id,question\nq1,"' + b"x" * 200_000 + b'"', name="q.csv")  # over csv's field size limit
@example(data=b"\xff\xfe", name="q.csv")  # not UTF-8
def test_any_bytes_give_rows_row_errors_or_a_config_error(data: bytes, name: str) -> None:
    check(rows_of(name, data))


def test_ids_are_strings_or_integers_and_missing_ones_are_refused() -> None:
    def row(**record: Any) -> Row:
        rows = rows_of("q.jsonl", (json.dumps(record) + "\n").encode())
        assert rows is not None
        return rows[0]

    assert (row(id=7, question="q").id, row(id=" a ", question="q").id) == ("7", "a")
    for bad in (True, 1.0, [1], {"a": 1}):
        assert row(id=bad, question="q").error == "id must be a string or an integer"
    assert row(question="q").error == row(id=None, question="q").error == row(id=" ", question="q").error
    assert row(id="a", question="\ud800").error == "question is not valid Unicode text"


def test_resume_knows_rows_whose_text_holds_unicode_line_separators(tmp_path: Path) -> None:
    """JSON Lines records end at "\\n" only: a question holding U+2028 or U+0085 is still one written row."""
    rows = [Row(line=1, id="a", question="rain\u2028in Seattle"), Row(line=2, id=None, question="sun\x85shine")]
    out = tmp_path / "answers.jsonl"
    out.write_text("".join(json.dumps(output_record(r, None, "x"), ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert set(read_answers(out)) == failed_keys(out) == {row.key for row in rows}


def test_a_retried_rows_new_line_supersedes_its_error_and_compaction_keeps_one_line_per_row(tmp_path: Path) -> None:
    a, b = Row(line=1, id="a", question="rain?"), Row(line=2, id="b", question="sun?")
    out = tmp_path / "answers.jsonl"
    records = [output_record(a, None, "the model failed"), output_record(b, None, None), output_record(a, None, None)]
    out.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    assert done_keys(out) == {a.key, b.key} and failed_keys(out) == set()
    compact(out)
    kept = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [(r["id"], r["error"]) for r in kept] == [("b", None), ("a", None)]
    assert not list(tmp_path.glob("*.tmp"))
