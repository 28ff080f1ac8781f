"""`mmrag models prepare`: the profile's model checkpoints."""

from __future__ import annotations

import typer

from mmrag.core.console import out


def prepare() -> None:
    """Resolve the profile's models (the tiny profile builds its checkpoints once)."""
    from mmrag.core.models import resolve_models
    from mmrag.core.settings import load_settings

    ids = resolve_models(load_settings())
    for field, value in vars(ids).items():
        out.print(f"{field:16} {value}")


def register(app: typer.Typer) -> None:
    """Add the `models` group to the `mmrag` app."""
    group = typer.Typer(help="Model checkpoints.", no_args_is_help=True)
    group.command("prepare")(prepare)
    app.add_typer(group, name="models")
