"""The `mmrag` command line as a user meets it: one-line usage errors (exit 2) on every command, shared options that
name the flag, exit codes, `collections`, `--source` paths and globs, and sources in rank order.

`main(argv)` runs in this process (no subprocess per case); the commands that need Weaviate use the session's server
and a collection of the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from mmrag.commands.app import build_app, main
from mmrag.core.client import connect
from mmrag.core.settings import Settings
from mmrag.indexer.store import Store
from tests.helpers import cli_env


def command_tree(
    group: TyperGroup, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], typer.core.TyperCommand]]:
    """Every command and group under `group`, with its path."""
    found = []
    for name, command in sorted(group.commands.items()):
        found.append(((*path, name), command))
        if isinstance(command, TyperGroup):
            found += command_tree(command, (*path, name))
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_every_command_reports_usage_errors_in_one_line_and_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    root = typer.main.get_command(build_app())
    assert isinstance(root, TyperGroup)
    tree = command_tree(root)
    assert len(tree) > 20 and (("collections", "drop") in dict(tree)) and (("weaviate", "status") in dict(tree))
    for path, command in [((), root), *tree]:
        status, out, err = run(capsys, *path, "--no-such-flag")
        assert status == 2 and not out, (path, out)
        hint = " ".join(("mmrag", *path))
        assert one_error_line(err) == f"error: no such option: --no-such-flag (try '{hint} --help')"
        for flag in ("--help", "-h"):
            status, out, err = run(capsys, *path, flag)
            assert status == 0 and "Usage:" in out and not err, (path, flag, err)
        required = [p for p in command.params if p.required]
        if required and not isinstance(command, TyperGroup):
            status, out, err = run(capsys, *path)
            assert status == 2 and not out, (path, out)
            assert one_error_line(err).startswith("error: missing "), (path, err)


def test_unknown_command_bad_choices_and_bad_values_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "frobnicate", "q")
    assert status == 2 and one_error_line(err) == "error: no such command 'frobnicate' (try 'mmrag --help')"
    status, _, err = run(capsys, "serch", "q")
    assert status == 2 and "Did you mean 'search'" in one_error_line(err)
    status, _, err = run(capsys, "search", "q", "--kind", "chart")
    assert status == 2 and "invalid value for '--kind': 'chart' is not one of 'image', 'page', 'text', 'table'" in err
    status, _, err = run(capsys, "ask", "q", "--mode", "bogus")
    assert status == 2 and "invalid value for '--mode': 'bogus' is not one of 'image', 'text', 'hybrid'" in err
    for command in (["search", "q"], ["batch", "q.jsonl", "--out", "a.jsonl"], ["stats"], ["delete", "--all"]):
        status, _, err = run(capsys, *command, "--collection", "lowercase")
        line = one_error_line(err)
        assert status == 2 and line.startswith("error: invalid value for '--collection': 'lowercase' must start with")
        assert "MMRAG_COLLECTION" not in line
    status, _, err = run(capsys, "search", "q", "-k", "0")
    assert status == 2 and "'-k' / '--k'" in one_error_line(err)


def test_version_and_global_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert run(capsys, "--version") == (0, f"mmrag {version('mmrag')}\n", "")
    status, out, _ = run(capsys, "--help")
    assert status == 0 and all(flag in out for flag in ("--quiet", "--verbose", "--version", "collections"))
    status, _, err = run(capsys, "-q", "search", "q", "--kind", "chart")
    assert status == 2 and "'--kind'" in one_error_line(err)  # --quiet keeps errors
    status, _, err = run(capsys, "-q", "index", "/no/such/folder")
    assert status == 1 and one_error_line(err).startswith("error: no such file or directory: /no/such/folder")


def test_a_bad_env_value_still_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_COLLECTION", "lowercase")
    status, _, err = run(capsys, "stats")
    assert status == 1 and "MMRAG_COLLECTION" in one_error_line(err)


# With a Weaviate


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """`main` reads these settings from the environment, in a folder of the test's own."""
    for key, value in cli_env(settings).items():
        if key.startswith("MMRAG_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return settings


@pytest.fixture
def two_notes(env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Settings:
    """Two files named notes.md in different folders, indexed separately (each shows as `notes.md` in `source`)."""
    for folder, fruit in (("a", "apples"), ("b", "bananas")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.md").write_text(f"The orchard report: {fruit} grew well this year.\n")
        (tmp_path / folder / "other.txt").write_text(f"Unrelated text about {folder} trains and timetables.\n")
    for folder in ("a", "b"):
        status, _, err = run(capsys, "index", folder, "--workers", "0", "--json")
        assert status == 0, err
    return env


def search_paths(capsys: pytest.CaptureFixture[str], *args: str) -> set[str]:
    status, out, err = run(capsys, "search", "orchard report fruit", "--json", "-k", "10", *args)
    assert status == 0, err
    return {r["path"] for r in json.loads(out)["results"]}


def test_source_is_a_relative_or_absolute_path_or_a_glob(
    two_notes: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert search_paths(capsys) == {"a/notes.md", "b/notes.md", "a/other.txt", "b/other.txt"}
    assert search_paths(capsys, "--source", "a/notes.md") == {"a/notes.md"}
    assert search_paths(capsys, "--source", str(tmp_path / "b" / "notes.md")) == {"b/notes.md"}
    assert search_paths(capsys, "--source", "b") == {"b/notes.md", "b/other.txt"}
    assert search_paths(capsys, "--source", "*/notes.md") == {"a/notes.md", "b/notes.md"}
    assert search_paths(capsys, "--source", "b/*.t?t") == {"b/other.txt"}
    status, out, _ = run(capsys, "search", "orchard", "--source", "c/notes.md")
    assert status == 0 and out == f"no results (source {tmp_path / 'c' / 'notes.md'})\n"
    status, out, _ = run(capsys, "search", "orchard", "--kind", "table")
    assert status == 0 and out == "no results (kind table)\n"

    status, out, _ = run(capsys, "search", "orchard report", "-k", "10")
    shown = [line.split(" (")[0].split("] ")[1] for line in out.splitlines()]
    assert {"a/notes.md", "b/notes.md"} <= set(shown)  # not twice `notes.md`
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")  # not under the current folder: absolute
    assert search_paths(capsys, "--source", "../a") == {
        str(tmp_path / "a" / "notes.md"),
        str(tmp_path / "a" / "other.txt"),
    }


def test_delete_by_path_or_glob_and_nothing_matched(
    two_notes: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "delete", "--source", "a/notes.md")
    assert status == 0 and out.startswith(f"deleted 1 objects of {tmp_path / 'a' / 'notes.md'}")
    assert search_paths(capsys) == {"b/notes.md", "a/other.txt", "b/other.txt"}
    status, out, err = run(capsys, "delete", "--source", "a/notes.md")
    assert status == 1 and not out and "nothing deleted" in one_error_line(err)
    status, out, _ = run(capsys, "delete", "--source", "*/*.txt")
    assert status == 0 and out.startswith("deleted 2 objects")
    assert search_paths(capsys) == {"b/notes.md"}


def test_search_and_ask_list_sources_in_rank_order(two_notes: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "search", "orchard apples", "-k", "4")
    lines = out.splitlines()
    assert status == 0 and [line[: len(f"[{n}]")] for n, line in enumerate(lines, 1)] == ["[1]", "[2]", "[3]", "[4]"]
    scores = [float(line.split("score ")[1].split(")")[0]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    status, out, _ = run(capsys, "ask", "orchard apples", "-k", "4", "--retrieval-only", "--json")
    sources = json.loads(out)["sources"]
    assert status == 0 and [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)


def test_collections_list_show_drop(
    two_notes: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = two_notes.collection
    status, out, _ = run(capsys, "collections", "list", "--json")
    listed = {c["collection"]: c for c in json.loads(out)["collections"]}
    assert status == 0 and listed[name]["objects"] == 4 and listed[name]["by_kind"] == {"text": 4}
    status, out, _ = run(capsys, "collections", "list")
    assert status == 0 and f"{name}  4 objects" in out
    status, out, _ = run(capsys, "collections", "show", name, "--json")
    assert status == 0 and json.loads(out) == listed[name]
    assert run(capsys, "collections", "show", name)[1] == run(capsys, "stats")[1]

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    status, _, err = run(capsys, "collections", "drop", name)
    assert status == 1 and "--yes" in one_error_line(err)
    with connect(two_notes, start_local=False) as client:
        assert Store(client, name).exists()  # refused: nothing dropped
    status, out, _ = run(capsys, "collections", "drop", name, "--yes")
    assert status == 0 and out == f"dropped collection {name} (4 objects)\n"
    status, _, err = run(capsys, "collections", "show", name)
    assert status == 1 and "does not exist" in one_error_line(err)


def test_index_exits_1_when_a_file_failed_and_keeps_the_rest(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "good.txt").write_text("A good file about orchards.\n")
    (tmp_path / "docs" / "bad.png").write_bytes(b"not a png at all")
    status, out, _ = run(capsys, "index", "docs", "--workers", "0", "--json")
    report = json.loads(out)
    assert status == 1 and report["files"]["failed"] == 1 and report["files"]["indexed"] == 1
    assert search_paths(capsys) == {"docs/good.txt"}


def test_ctrl_c_exits_130_without_a_traceback(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("Interrupted before it is indexed.\n")
    code = (  # Ctrl-C while the models load (at that moment, not after a guessed delay the run may beat)
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # as in a terminal, even if run with it ignored
        "import mmrag.indexer.embedders as embedders\n"
        "from mmrag.commands.app import main\n"
        "load = embedders.embedders_for\n"
        "def interrupted(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "    return load(*args, **kwargs)\n"
        "embedders.embedders_for = interrupted\n"
        f"sys.exit(main(['index', {str(tmp_path)!r}, '--workers', '0']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=cli_env(settings), capture_output=True, text=True)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
