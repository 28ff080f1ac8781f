"""The `mmrag` app: built on demand by `build_app`, with no import-time registration, and every command reachable."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import mmrag.commands
from mmrag.commands.app import build_app
from mmrag.commands.demo import DEMO_COLLECTION, demo_settings
from mmrag.core.console import out
from tests.helpers import MMRAG_SCRIPT, NO_SETTINGS_FILES

COMMAND_MODULES = [f"mmrag.commands.{m.name}" for m in pkgutil.iter_modules(mmrag.commands.__path__)]
HEAVY = ("torch", "transformers", "open_clip", "weaviate", "matplotlib", "streamlit", "boto3")


def test_importing_the_commands_builds_nothing_and_loads_nothing_heavy() -> None:
    code = (
        "import importlib, json, sys, typer\n"
        f"modules = [importlib.import_module(name) for name in {COMMAND_MODULES!r}]\n"
        "apps = [f'{m.__name__}.{k}' for m in modules for k, v in vars(m).items() if isinstance(v, typer.Typer)]\n"
        f"print(json.dumps({{'apps': apps, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    found = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert found == {"apps": [], "heavy": []}


def test_each_build_is_a_new_app_with_every_command() -> None:
    first, second = typer.main.get_command(build_app()), typer.main.get_command(build_app())
    assert first is not second
    assert isinstance(first, TyperGroup) and isinstance(second, TyperGroup)
    names = set(first.commands)
    assert names == set(second.commands)
    assert names >= {"index", "stats", "delete", "search", "ask", "batch", "crop", "ui", "demo", "settings"}
    assert names >= {"weaviate", "models", "finetune"}


def _leaves(group: TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    leaves: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            leaves += _leaves(command, (*path, name))
        else:
            leaves.append((*path, name))
    return leaves


def test_every_command_has_help() -> None:
    root = typer.main.get_command(build_app())
    assert isinstance(root, TyperGroup)
    leaves = _leaves(root)
    assert ("finetune", "train") in leaves and ("weaviate", "status") in leaves and ("models", "prepare") in leaves
    for leaf in leaves:
        result = CliRunner().invoke(build_app(), [*leaf, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (leaf, result.output)


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "mmrag", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "finetune" in result.stdout and "settings" in result.stdout


def test_usage_errors_are_reported_not_raised() -> None:
    """No command shows the help (exit 2); a bad option value is one line naming the option (exit 2)."""
    for args in ([], ["finetune"]):
        result = subprocess.run([MMRAG_SCRIPT, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "Usage:" in result.stdout + result.stderr, args
    result = subprocess.run(
        [MMRAG_SCRIPT, "index", "--workers", "-5", "x"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.startswith("error: invalid value for '--workers': ") and result.stderr.count("\n") == 1


def test_a_bad_setting_leaves_help_working_and_fails_the_command_in_one_line() -> None:
    env = ({k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")} | NO_SETTINGS_FILES) | {
        "MMRAG_K": "many"
    }
    helped = subprocess.run([MMRAG_SCRIPT, "ask", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "Usage:" in helped.stdout, helped.stderr
    asked = subprocess.run([MMRAG_SCRIPT, "stats"], env=env, capture_output=True, text=True, timeout=120)
    assert asked.returncode == 1 and asked.stderr.startswith("error: invalid settings: MMRAG_K"), asked.stderr
    assert "Traceback" not in asked.stderr


def test_a_bad_log_level_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")} | NO_SETTINGS_FILES
    result = subprocess.run([MMRAG_SCRIPT, "settings"], env={**env, "MMRAG_LOG_LEVEL": "LOUD"}, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1 and result.stderr.startswith("error: invalid settings: MMRAG_LOG_LEVEL")
    assert "Traceback" not in result.stderr


def test_settings_command_shows_values_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_K", "9")
    monkeypatch.setenv("MMRAG_WEAVIATE_API_KEY", "s3cret")
    result = CliRunner().invoke(build_app(), ["settings"])
    assert result.exit_code == 0, result.output
    assert "MMRAG_K=9\n" in result.output and "MMRAG_LOG_LEVEL=WARNING\n" in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize("reachable", [True, False])
def test_demo_uses_its_collection_and_goes_tiny_offline(monkeypatch: pytest.MonkeyPatch, reachable: bool) -> None:
    for name in ("MMRAG_COLLECTION", "MMRAG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("mmrag.core.models.hub_reachable", lambda: reachable)
    settings = demo_settings(out)
    assert settings.collection == DEMO_COLLECTION
    assert settings.profile == ("default" if reachable else "tiny")


def test_demo_keeps_the_users_collection_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_COLLECTION", "Mine")
    monkeypatch.setenv("MMRAG_PROFILE", "default")
    monkeypatch.setattr("mmrag.core.models.hub_reachable", lambda: False)
    settings = demo_settings(out)
    assert (settings.collection, settings.profile) == ("Mine", "default")


def test_modules_list_is_complete() -> None:
    assert {"mmrag.commands.app", "mmrag.commands.finetune", "mmrag.commands.settings"} <= set(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        importlib.import_module(name)
