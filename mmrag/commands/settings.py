"""`mmrag config`: every setting in force and where it comes from; `mmrag settings`: the same as MMRAG_* lines,
or the README's table of them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmrag.core.console import out, plain
from mmrag.core.errors import ConfigError

BEGIN = "<!-- settings:begin (generated from mmrag/core/settings.py by `mmrag settings --readme README.md`) -->"
END = "<!-- settings:end -->"


def settings(
    markdown: bool = typer.Option(False, "--markdown", help="Print the table of defaults that the README holds."),
    readme: Path | None = typer.Option(None, help="Rewrite the settings table between the markers of this file."),
) -> None:
    """Every MMRAG_* variable with the value in force, as NAME=value lines (secrets masked).

    `mmrag config` shows where each value comes from."""
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


def config(
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: {settings: {NAME: {value, origin}}, files: {env_file, config}}."
    ),
) -> None:
    """The settings in force and where each comes from: default, env, .env (PATH) or mmrag.toml (PATH).

    Flags beat MMRAG_* environment variables, which beat .env, which beats mmrag.toml. Secrets are masked."""
    from mmrag.core.setting_sources import CONFIG_VAR, ENV_FILE_VAR, settings_files
    from mmrag.core.settings import load_settings, setting_origins, shown_values

    values, origins, files = shown_values(load_settings()), setting_origins(), settings_files()
    if as_json:
        document = {
            "settings": {name: {"value": value, "origin": str(origins[name])} for name, value in values.items()},
            "files": {"env_file": _file_json(files.env_file), "config": _file_json(files.config)},
        }
        print(json.dumps(document, ensure_ascii=False))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="mmrag config: `name` in mmrag.toml, MMRAG_NAME in the environment and .env")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", overflow="fold")
    for name, value in values.items():
        unset = value is None or value == ""
        shown = "unset" if unset else str(value).lower() if isinstance(value, bool) else str(value)
        table.add_row(name, Text(plain(shown), style="dim" if unset else ""), Text(plain(str(origins[name]))))
    env_file, config_file = _file_line(files.env_file, ENV_FILE_VAR), _file_line(files.config, CONFIG_VAR)
    table.caption = f".env: {env_file}; mmrag.toml: {config_file}"
    out.print(table)


def _file_json(path: Path | None) -> dict[str, object]:
    return {"path": None if path is None else str(path), "found": path is not None and path.exists()}


def _file_line(path: Path | None, var: str) -> str:
    if path is None:
        return f"none ({var} is empty)"
    return f"{path}" if path.exists() else f"{path} (not found)"


def with_settings_table(text: str, table: str) -> str:
    """`text` with the lines between the settings markers replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ConfigError(f"no settings table to replace: the file needs the lines {BEGIN} and {END}")
    return f"{text[: start + len(BEGIN)]}\n{table}{text[end:]}"


def register(app: typer.Typer) -> None:
    """Add `config` and `settings` to the `mmrag` app."""
    app.command("config")(config)
    app.command("settings")(settings)
