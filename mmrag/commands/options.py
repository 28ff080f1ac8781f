"""The options that several commands share, defined once: `--collection`, `--mode`, `--kind`, `--source`, `-k`,
`--json`. Choices are checked by the command line (a usage error, exit 2); a flag's value is checked with the rules
`Settings` uses, and a bad one is reported under the flag's name, not the MMRAG_* variable's.
"""

from __future__ import annotations

import glob
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import typer
from pydantic import ValidationError
from typer._click.exceptions import BadParameter

from mmrag.core.settings import Settings
from mmrag.indexer.items import Kind

MAX_K = 100


def checked(field: str) -> Any:
    """A parameter callback that checks a flag's value with the rules of the setting `field`."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return value
        try:
            Settings.model_validate({field: value})
        except ValidationError as e:
            reason = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            message = f"{value!r} {reason[:1].lower()}{reason[1:]}"
            raise BadParameter(message, ctx=ctx, param=cast(Any, param)) from e
        return value

    return check


Collection = Annotated[
    str | None,
    typer.Option(
        "--collection",
        help="Weaviate collection (default: MMRAG_COLLECTION).",
        callback=checked("collection"),
        show_default=False,
    ),
]
RetrievalMode = Literal["image", "text", "hybrid"]
Mode = Annotated[
    RetrievalMode | None,
    typer.Option("--mode", help="Retrieval mode (default: MMRAG_MODE).", show_default=False),
]
KindChoice = Enum("KindChoice", {kind: kind for kind in get_args(Kind)}, type=str)  # type: ignore[misc]
"""The kinds of indexed objects (indexer.items.Kind), as Typer takes a repeatable choice."""
Kinds = Annotated[
    list[KindChoice] | None,
    typer.Option("--kind", help="Only objects of this kind; repeatable.", show_default=False),
]
SourceFilter = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="Only objects of this file, of files under this folder, or of files matching this glob (* and ?; "
        "relative to the current folder or absolute).",
        show_default=False,
    ),
]
K = Annotated[
    int | None,
    typer.Option("-k", "--k", min=1, max=MAX_K, help="Number of sources (default: MMRAG_K).", show_default=False),
]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")]
Adapter = Annotated[
    str | None,
    typer.Option(
        help="LoRA adapter: a dir or s3://bucket/prefix; on a server backend NAME=SOURCE or a served name "
        "(default: MMRAG_ADAPTER)."
    ),
]

RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on Ray: 'local' starts one on this machine for the run; 'auto', ray://HOST:PORT or HOST:PORT "
        "connect to a cluster (its nodes must reach MMRAG_WEAVIATE_URL).",
        show_default=False,
    ),
]
RayActors = Annotated[
    int | None,
    typer.Option(
        "--actors",
        min=1,
        help="With --ray: embedding actors, each with its own copy of the models (default: one per GPU, else 1).",
        show_default=False,
    ),
]


def source_pattern(value: str | None) -> str | None:
    """`--source` as an absolute path or glob: a relative one is resolved against the current folder (`~` is
    expanded); a path keeps no trailing slash."""
    if value is None or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if not glob.has_magic(str(path)):
        return str(path.resolve())
    return os.path.normpath(path if path.is_absolute() else Path.cwd() / path)


def kind_names(kinds: list[Any] | None) -> tuple[str, ...]:
    """`--kind` values as the kinds' names."""
    return tuple(str(getattr(kind, "value", kind)) for kind in kinds or ())


def overrides(**values: object) -> dict[str, object]:
    """The settings the flags set (a flag left out leaves the environment's value)."""
    return {key: value for key, value in values.items() if value is not None}
