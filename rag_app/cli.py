"""Command-line commands of this package, added to `mmrag` by `register`."""

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `mmrag` app."""
