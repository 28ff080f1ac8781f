"""`mmrag search`, `mmrag ask`, `mmrag batch`, `mmrag crop`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from mmrag.core.settings import Settings
    from mmrag.rag_app.batch import BatchSummary

from mmrag.commands.options import (
    Adapter,
    Collection,
    Json,
    K,
    Kinds,
    Mode,
    RayActors,
    RayAddress,
    SourceFilter,
    kind_names,
    overrides,
    source_pattern,
)
from mmrag.core.console import err, out, plain


def _settings(**values: object) -> Settings:
    from mmrag.core.settings import load_settings

    return load_settings(**overrides(**values))


def search(
    query: str = typer.Argument(..., help="What to look for."),
    k: K = None,
    mode: Mode = None,
    kind: Kinds = None,
    source: SourceFilter = None,
    collection: Collection = None,
    json_output: Json = False,
) -> None:
    """Ranked sources for a query (best first), without generating an answer."""
    from mmrag.rag_app.service import search as run_search

    settings = _settings(k=k, mode=mode, collection=collection)
    pattern = source_pattern(source)
    results = run_search(settings, query, kinds=kind_names(kind), source_prefix=pattern)
    if json_output:
        print(json.dumps({"results": [s.as_json() for s in results]}))
        return
    if not results:
        _show(f"no results{_filters(kind_names(kind), pattern)}")
    for s in results:
        _show(f"[{s.n}] {plain(s.label)} ({plain(s.kind)}, score {s.score:.4f}) {plain(_snippet(s.text))}")


def ask(
    question: str = typer.Argument(..., help="Your question about the indexed documents."),
    k: K = None,
    mode: Mode = None,
    kind: Kinds = None,
    source: SourceFilter = None,
    collection: Collection = None,
    adapter: Adapter = None,
    retrieval_only: bool = typer.Option(False, "--retrieval-only", help="Only retrieve; no answer generated."),
    json_output: Json = False,
) -> None:
    """Answer a question from the indexed charts and documents, citing numbered sources (1 = best)."""
    from mmrag.rag_app.service import ask as run_ask

    settings = _settings(k=k, mode=mode, collection=collection)
    pattern = source_pattern(source)
    answer = run_ask(
        settings,
        question,
        retrieval_only=retrieval_only,
        adapter=adapter,
        kinds=kind_names(kind),
        source_prefix=pattern,
    )
    if json_output:
        print(json.dumps(answer.as_json()))
        return
    if answer.text:
        _show(plain(answer.text, multiline=True))
    elif not answer.sources:
        _show(f"no results{_filters(kind_names(kind), pattern)}")
    if answer.sources:
        out.print("\nSources:")
        for s in answer.sources:
            _show(f"  [{s.n}] {plain(s.label)} ({plain(s.kind)}, score {s.score:.4f})")


def batch(
    questions: Path = typer.Argument(..., help="Questions: .jsonl or .csv with id, question[, source, expected]."),
    out_path: Path = typer.Option(..., "--out", help="Answers .jsonl (appended to: ids already answered are skipped)."),
    k: K = None,
    mode: Mode = None,
    kind: Kinds = None,
    source: SourceFilter = None,
    collection: Collection = None,
    adapter: Adapter = None,
    batch_size: int = typer.Option(4, min=1, help="Questions generated together (local backend)."),
    concurrency: int | None = typer.Option(
        None,
        min=1,
        max=1024,
        help="Questions in flight at once on a server backend or retrieval only (default MMRAG_GENERATOR_CONCURRENCY).",
    ),
    retrieval_only: bool = typer.Option(False, "--retrieval-only", help="Only retrieve; no answers generated."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Answer again the rows whose answer in --out is an error."
    ),
    json_output: Json = False,
    ray: RayAddress = None,
    actors: RayActors = None,
) -> None:
    """Answer many questions; resumable, one bad row never stops the run. Exit 1 when any row failed (its error is
    in --out; --retry-failed answers it again). With --ray, --batch-size rows go to an actor at a time."""
    import sys

    settings = _settings(k=k, mode=mode, collection=collection)
    common: dict[str, Any] = {
        "adapter": adapter,
        "batch_size": batch_size,
        "retrieval_only": retrieval_only,
        "retry_failed": retry_failed,
        "kinds": kind_names(kind),
        "source_prefix": source_pattern(source),
        "progress": sys.stderr.isatty() and not json_output,
    }
    if ray is not None:
        from mmrag.rag_app.ray_batch import run_batch_on_ray

        summary = run_batch_on_ray(settings, questions, out_path, address=ray, actors=actors, **common)
    else:
        from mmrag.rag_app.batch import run_batch

        summary = run_batch(settings, questions, out_path, concurrency=concurrency, **common)
    for note in _batch_notes(summary):
        _show(note, err)
    if json_output:
        print(json.dumps(summary.as_json()))
    else:
        out.print(summary.table())
    if summary.failed or summary.still_failed:
        raise typer.Exit(1)


def crop(
    object_id: str = typer.Argument(..., metavar="ID", help="An object id, as `search --json` and `ask --json` give."),
    out_path: Path | None = typer.Option(
        None, "-o", "--out", help="Image file to write (.png, .jpg; default: named by its file, page and label)."
    ),
    collection: Collection = None,
) -> None:
    """Write the picture of an indexed object: a figure's or table's crop from its PDF page, a page, an image."""
    from mmrag.rag_app.service import write_picture

    picture = write_picture(_settings(collection=collection), object_id, out_path)
    width, height = picture.size
    _show(f"wrote {plain(str(picture.path))} ({width}x{height}): {plain(picture.source.label)}")


def _filters(kinds: tuple[str, ...], pattern: str | None) -> str:
    """` (kind image, source /abs/*.pdf)`: the filters a search had, so an empty result names them."""
    parts = ([f"kind {', '.join(kinds)}"] if kinds else []) + ([f"source {plain(pattern)}"] if pattern else [])
    return f" ({'; '.join(parts)})" if parts else ""


def _batch_notes(summary: BatchSummary, limit: int = 20) -> list[str]:
    """One stderr line per duplicate id and per row error, at most `limit`."""
    notes = [
        f"line {d.line}: id {plain(d.id)} repeats line {d.first_line}, whose row alone is answered"
        for d in summary.duplicates
    ]
    notes += [plain(error) for error in summary.errors]
    if len(notes) > limit:
        notes[limit:] = [f"... and {len(notes) - limit} more"]
    return notes


def _show(text: str, console: Console = out) -> None:
    """Print text that holds data (already through `plain`): no Rich markup, emoji codes or highlighting."""
    console.print(text, markup=False, emoji=False, highlight=False)


def _snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `mmrag` app."""
    app.command("search")(search)
    app.command("ask")(ask)
    app.command("batch")(batch)
    app.command("crop")(crop)
