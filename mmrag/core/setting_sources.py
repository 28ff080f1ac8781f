"""Where settings come from besides the environment and the defaults: a `.env` file and a `mmrag.toml` file.

Both are looked for in the current directory; MMRAG_ENV_FILE and MMRAG_CONFIG (environment only) name other files,
and an empty value reads none. A file that does not parse, or that names no setting, is a ConfigError naming the file
and the line or key. `mmrag.core.settings.Settings` puts these sources below the environment.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomllib
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, DotEnvSettingsSource, TomlConfigSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from mmrag.core.errors import ConfigError

ENV_FILE_VAR = "MMRAG_ENV_FILE"
CONFIG_VAR = "MMRAG_CONFIG"


@dataclass(frozen=True)
class SettingsFiles:
    """The `.env` and `mmrag.toml` files to read (None: none); a path in the current directory may not exist."""

    env_file: Path | None
    config: Path | None


def settings_files() -> SettingsFiles:
    """The files named by MMRAG_ENV_FILE and MMRAG_CONFIG (environment only; empty: no file), by default `.env` and
    `mmrag.toml` in the current directory. A file named explicitly must exist."""
    return SettingsFiles(_named_file(ENV_FILE_VAR, ".env"), _named_file(CONFIG_VAR, "mmrag.toml"))


def _named_file(var: str, default: str) -> Path | None:
    value = os.environ.get(var)
    if value is None:
        return Path(default).absolute()
    if not value.strip():
        return None
    try:
        path = Path(value.strip()).expanduser().absolute()
    except RuntimeError as e:  # "~nosuchuser/..."
        raise ConfigError(f"{var}={value}: {e}") from e
    if not (path.is_file() or path.is_fifo()):
        raise ConfigError(f"{var}={value}: no such file (set {var}= to read none)")
    return path


@dataclass(frozen=True)
class Origin:
    """Where a setting's value comes from: `flag` (an explicit override), `env`, `.env`, `mmrag.toml` or `default`."""

    kind: Literal["flag", "env", ".env", "mmrag.toml", "default"]
    path: Path | None = None

    def __str__(self) -> str:
        return f"{self.kind} ({self.path})" if self.path else self.kind


def file_sources(settings_cls: type[BaseSettings], files: SettingsFiles) -> tuple[DotEnvSource, TomlSource]:
    """The sources that read `files` (`.env` first: it takes precedence over `mmrag.toml`)."""
    return DotEnvSource(settings_cls, env_file=files.env_file), TomlSource(settings_cls, toml_file=files.config)


class DotEnvSource(DotEnvSettingsSource):
    """MMRAG_* lines of a `.env` file (other names are left to other tools); a line that does not parse, or an
    MMRAG_* name that is no setting, is a ConfigError naming the file and line."""

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        where = f".env ({file_path.absolute()})"
        try:
            text = file_path.read_text(encoding=self.env_file_encoding or "utf-8-sig")  # -sig: a BOM is no name
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: cannot read it: {e}") from e
        _check_env_lines(text, where, self.settings_cls.model_fields)
        values = dotenv_values(stream=io.StringIO(text))
        return parse_env_vars(values, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _check_env_lines(text: str, where: str, fields: Mapping[str, FieldInfo]) -> None:
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:  # the line itself is not shown: it may hold a secret
            raise ConfigError(f"{where} line {line}: not a NAME=value line (or an unclosed quote)")
        name = (binding.key or "").upper()
        if not name.startswith("MMRAG_"):
            continue
        if name in (ENV_FILE_VAR, CONFIG_VAR):
            raise ConfigError(f"{where} line {line}: {name} is read from the environment only")
        if name.removeprefix("MMRAG_").lower() not in fields:
            known = [f"MMRAG_{field.upper()}" for field in fields]
            raise ConfigError(f"{where} line {line}: unknown setting {name}{_did_you_mean(name, known)}")


class TomlSource(TomlConfigSettingsSource):
    """`mmrag.toml`: settings by field name at the top level. Bad TOML or an unknown key is a ConfigError naming
    the file (and the line, or the key)."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path | None) -> None:
        self.fields = settings_cls.model_fields  # the parent reads the file in __init__, before it sets settings_cls
        super().__init__(settings_cls, toml_file=toml_file)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        where = f"mmrag.toml ({Path(file_path).absolute()})"
        try:
            text = file_path.read_bytes().decode("utf-8-sig")
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            at_end = f"(at the end, line {max(len(text.splitlines()), 1)})"
            raise ConfigError(f"{where}: invalid TOML: {str(e).replace('(at end of document)', at_end)}") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: cannot read it: {e}") from e
        _check_toml_keys(data, where, self.fields)
        return data


def _check_toml_keys(data: Mapping[str, Any], where: str, fields: Mapping[str, FieldInfo]) -> None:
    for key in data:
        if key.lower() in fields:
            continue
        if key.upper().startswith("MMRAG_") and key[6:].lower() in fields:
            hint = f" (write `{key[6:].lower()} = ...`: no MMRAG_ prefix in mmrag.toml)"
        elif key.lower() == "mmrag" and isinstance(data[key], dict):
            hint = " (settings go at the top level of mmrag.toml, not under a [mmrag] table)"
        else:
            hint = _did_you_mean(key.lower(), list(fields))
        raise ConfigError(f"{where}: unknown setting {key!r}{hint}")


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
