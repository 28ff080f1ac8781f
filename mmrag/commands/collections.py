"""`mmrag collections list|show NAME|drop NAME`: the collections mmrag built on the Weaviate server.

Read-only and quick: they never start the local server (a stopped server is reported, not started)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mmrag.commands.options import Json, checked
from mmrag.core.console import err, out
from mmrag.core.errors import ConfigError

if TYPE_CHECKING:
    from mmrag.indexer.store import CollectionStats

Name = Annotated[str, typer.Argument(help="The collection's name.", callback=checked("collection"), show_default=False)]


def list_(json_output: Json = False) -> None:
    """Every mmrag collection with its object count and the models that built it."""
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import list_collections

    found = list_collections(load_settings())
    if json_output:
        print(json.dumps({"collections": [c.as_json() for c in found]}))
        return
    if not found:
        err.print("no mmrag collections on this server (index some files: mmrag index PATH)", highlight=False)
    for c in found:
        out.print(
            f"{c.collection}  {c.objects} objects  clip {c.info.clip_model}, text {c.info.text_model}", highlight=False
        )


def show(name: Name, json_output: Json = False) -> None:
    """A collection's objects, by kind, and the models that built it (what `mmrag stats` shows)."""
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import show_collection

    result = show_collection(load_settings(), name)
    if json_output:
        print(json.dumps(result.as_json()))
    else:
        print_stats(result)


def drop(
    name: Name,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a collection, schema included (asks first unless --yes)."""
    from mmrag.core.settings import load_settings
    from mmrag.indexer.service import drop_collection

    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"dropping {name} needs confirmation: add --yes (stdin is not a terminal)")
        typer.confirm(f"Delete collection {name} and every object in it?", abort=True, err=True)
    deleted = drop_collection(load_settings(), name)
    out.print(f"dropped collection {name} ({deleted} objects)", highlight=False)


def print_stats(result: CollectionStats) -> None:
    """A collection's stats as `mmrag stats` and `mmrag collections show` print them."""
    out.print(f"{result.collection}: {result.objects} objects", highlight=False)
    for kind, count in sorted(result.by_kind.items()):
        out.print(f"  {kind:6} {count}", highlight=False)
    out.print(f"  clip model: {result.info.clip_model} ({result.info.clip_dim}-d)", highlight=False)
    out.print(f"  text model: {result.info.text_model} ({result.info.text_dim}-d)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `collections` group to the `mmrag` app."""
    group = typer.Typer(help="The mmrag collections on the Weaviate server.", no_args_is_help=True)
    group.command("list")(list_)
    group.command("show")(show)
    group.command("drop")(drop)
    app.add_typer(group, name="collections")
