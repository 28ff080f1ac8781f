"""`mmrag index`, `mmrag stats`, `mmrag delete`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mmrag.indexer.pipeline import IndexReport

from mmrag.commands.options import Collection, Json, RayActors, RayAddress, SourceFilter, overrides, source_pattern
from mmrag.core.console import err, out, plain
from mmrag.core.errors import ConfigError, MmragError


class NothingDeletedError(MmragError):
    """`delete --source` matched no indexed file."""


def index(
    paths: list[Path] = typer.Argument(..., help="Files or folders to index."),
    collection: Collection = None,
    prune: bool = typer.Option(False, help="Delete the objects of files under PATHS that are gone."),
    strict: bool = typer.Option(
        False, help="Warnings count as failures too: exit 1 when any file failed or had a warning."
    ),
    json_output: Json = False,
    workers: int = typer.Option(
        1, min=0, help="Extraction: 0 in the main thread, 1 in a background thread, N>1 in N processes."
    ),
    describe: bool = typer.Option(False, help="Store the VLM's description of each chart as its caption."),
    ray: RayAddress = None,
    actors: RayActors = None,
) -> None:
    """Index charts, images, PDFs and text documents (again and again: only changes are written).

    Exit 1 when any file failed: the others are indexed all the same."""
    from mmrag.core.cpu import passive_omp_threads

    passive_omp_threads()  # before torch loads
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import index_paths

    missing = [str(p) for p in paths if not p.expanduser().exists()]
    if missing:  # a typo in the command, not a bad file: say so before touching anything
        raise ConfigError(f"no such file or directory: {', '.join(missing)} (nothing was indexed)")
    settings = load_settings(**overrides(collection=collection))
    show_progress = not json_output and sys.stdout.isatty()
    describer = None
    if describe:  # the VLM reads each chart: the indexer takes any describer, the command picks this one
        from mmrag.rag_app.describer import describer_for

        describer = describer_for(settings)
    if ray is not None:
        from mmrag.indexer.ray_index import index_paths_on_ray

        report = index_paths_on_ray(
            settings, paths, address=ray, prune=prune, describer=describer, progress=show_progress, actors=actors
        )
    else:
        report = index_paths(settings, paths, prune=prune, workers=workers, describer=describer, progress=show_progress)
    if json_output:
        print(json.dumps(report.as_json()))
    else:
        _print_report(report)
    if report.failures or (strict and report.warnings):
        raise typer.Exit(1)


def _print_report(report: IndexReport) -> None:
    from rich.table import Table

    summary = report.as_json()
    table = Table(title="mmrag index", show_header=False)
    for key, value in summary["files"].items():
        table.add_row(f"files {key}", str(value))
    table.add_row("found", report.found_line())
    table.add_row("warnings", str(len(report.warnings)))
    table.add_row("objects written", str(report.written))
    table.add_row("objects deleted", str(report.deleted))
    table.add_row("seconds", f"{report.seconds:.1f}")
    rate = report.items / report.seconds if report.seconds else 0.0
    table.add_row("items/s", f"{rate:.1f}")
    out.print(table)
    from rich.markup import escape

    for path, reason in report.failures:
        err.print(f"[yellow]skipped[/] {escape(plain(path))}: {escape(plain(reason))}", highlight=False)
    for path, message in report.warnings:
        err.print(f"[dim]warning[/] {escape(plain(path))}: {escape(plain(message))}", highlight=False)
    for path, message in report.notes:
        err.print(f"[cyan]note[/] {escape(plain(path))}: {escape(plain(message))}", highlight=False)


def stats(collection: Collection = None, json_output: Json = False) -> None:
    """Objects in the collection, by kind, and the models that built it."""
    from mmrag.commands.collections import print_stats
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import collection_stats

    result = collection_stats(load_settings(**overrides(collection=collection)))
    if json_output:
        print(json.dumps(result.as_json()))
    else:
        print_stats(result)


def delete(
    source: SourceFilter = None,
    all_objects: bool = typer.Option(False, "--all", help="The whole collection, schema included."),
    collection: Collection = None,
) -> None:
    """Delete the objects of a source file (of every file under a folder, or matching a glob), or the whole
    collection. Exit 1 when --source matches nothing indexed."""
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import delete_collection, delete_source

    pattern = source_pattern(source)
    if (pattern is None) == (not all_objects):
        raise ConfigError("give either --source PATH or --all")
    settings = load_settings(**overrides(collection=collection))
    if pattern is None:
        deleted = delete_collection(settings)
        out.print(f"deleted collection {settings.collection} ({deleted} objects)", highlight=False)
        return
    deleted = delete_source(settings, pattern)
    if not deleted:
        raise NothingDeletedError(f"nothing indexed in {settings.collection} matches {pattern}: nothing deleted")
    out.print(f"deleted {deleted} objects of {plain(pattern)}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `mmrag` app."""
    app.command("index")(index)
    app.command("stats")(stats)
    app.command("delete")(delete)
