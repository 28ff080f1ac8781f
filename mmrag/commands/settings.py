"""`mmrag settings`: every MMRAG_* setting in force, or the README's table of them."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrag.core.console import out
from mmrag.core.errors import ConfigError

BEGIN = "<!-- settings:begin (generated from mmrag/core/settings.py by `mmrag settings --readme README.md`) -->"
END = "<!-- settings:end -->"


def settings(
    markdown: bool = typer.Option(False, "--markdown", help="Print the table of defaults that the README holds."),
    readme: Path | None = typer.Option(None, help="Rewrite the settings table between the markers of this file."),
) -> None:
    """Every MMRAG_* variable with the value in force (secrets masked)."""
    from mmrag.core.settings import Settings, env_name, load_settings, settings_table

    if readme is not None:
        readme.write_text(with_settings_table(readme.read_text(), settings_table()))
        out.print(f"settings table written into {readme}", highlight=False)
    elif markdown:
        print(settings_table(), end="")
    else:
        current = load_settings()
        for name in Settings.model_fields:
            value = getattr(current, name)
            print(f"{env_name(name)}={'' if value is None else value}")


def with_settings_table(text: str, table: str) -> str:
    """`text` with the lines between the settings markers replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ConfigError(f"no settings table to replace: the file needs the lines {BEGIN} and {END}")
    return f"{text[: start + len(BEGIN)]}\n{table}{text[end:]}"


def register(app: typer.Typer) -> None:
    """Add `settings` to the `mmrag` app."""
    app.command("settings")(settings)
