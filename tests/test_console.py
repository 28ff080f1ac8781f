"""Terminal hygiene: data (file names, indexed text, model output) is printed as text, never as terminal codes."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmrag.core.console import plain
from mmrag.core.settings import Settings
from tests.helpers import cli_env, run_cli

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROLS = "\x1b\x07\x9b\u202e"
"""ESC, BEL, CSI (C1) and RIGHT-TO-LEFT OVERRIDE: none may reach the terminal raw."""


def unsafe(char: str, *, multiline: bool) -> bool:
    if multiline and char in "\n\t":
        return False
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI


def test_plain_makes_control_characters_visible() -> None:
    assert plain("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert plain("\x1b]0;title\x07 \x9b2J \x00 \x7f") == "\\x1b]0;title\\x07 \\x9b2J \\x00 \\x7f"
    assert plain("invoice\u202efdp.exe") == "invoice\\u202efdp.exe"
    assert plain("one\ntwo\tthree\r") == "one\\ntwo\\tthree\\r"
    assert plain("one\ntwo\tthree\r", multiline=True) == "one\ntwo\tthree\\r"
    assert plain("[bold red]Zürich 📈 naïve[/] :smile:") == "[bold red]Zürich 📈 naïve[/] :smile:"


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=())), multiline=st.booleans())
def test_plain_output_never_holds_a_control_character(text: str, multiline: bool) -> None:
    shown = plain(text, multiline=multiline)
    assert not [char for char in shown if unsafe(char, multiline=multiline)]
    shown.encode("utf-8")  # lone surrogates are escaped too, so any stdout encoding to UTF-8 can print it


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters=BIDI)))
def test_plain_leaves_printable_text_alone(text: str) -> None:
    assert plain(text) == text
    assert plain(text + "\n\t" + text, multiline=True) == text + "\n\t" + text


@pytest.mark.slow
def test_search_and_ask_print_data_not_terminal_codes(settings: Settings, tmp_path: Path) -> None:
    env = cli_env(settings)
    name = "pen\x1b[2Jguins\u202etxt.txt"
    text = "Penguins \x1b]0;owned\x07 waddle [bold red]loudly[/] across the ice :smile: every \x9b2J winter."
    root = tmp_path / "docs"
    root.mkdir()
    (root / name).write_text(text)
    indexed = run_cli(env, "index", str(root), "--workers", "0", "--json")
    assert indexed.returncode == 0, indexed.stderr

    search = run_cli(env, "search", "penguins waddle across the ice")
    assert search.returncode == 0, search.stderr
    ask = run_cli(env, "ask", "Do penguins waddle across the ice?", "--retrieval-only")
    assert ask.returncode == 0, ask.stderr
    for shown in (search.stdout, ask.stdout):
        assert not set(CONTROLS) & set(shown)
        assert "pen\\x1b[2Jguins\\u202etxt.txt" in shown
    assert "\\x1b]0;owned\\x07 waddle [bold red]loudly[/] across the ice :smile: every \\x9b2J" in search.stdout

    exact = run_cli(env, "search", "penguins waddle across the ice", "--json")
    hit = json.loads(exact.stdout)["results"][0]
    assert (hit["source"], hit["text"]) == (name, text)  # --json keeps the data exact
