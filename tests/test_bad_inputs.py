"""Every bad or hostile input of tests/badfiles.py through `mmrag index --json --workers 0`, as a user runs it.

The cheap cases share two runs (one over file contents, one over file-system oddities: links, special files, odd
names, deep folders), so the models load twice, not once per case; each case then checks its own outcome in that
run's JSON and in the collection. The heavy ones (50 MB of text, 3,000 pages, 100,000 paths) run alone and are
marked slow. Every run must print exactly one JSON object, print no traceback and finish in bounded time and
memory, and exit 1 exactly when a file failed. To see one case on its own, with its time and peak memory:
`.venv/bin/python bench/reliability.py --only bad-inputs --cases NAME`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mmrag.core.server import LocalWeaviate
from mmrag.core.settings import Settings
from mmrag.indexer.store import Store
from tests.badfiles import (
    CASES,
    Bounded,
    Case,
    check,
    image_bytes,
    one_json_object,
    outside_root,
    remove_tree,
    run_bounded,
    write_cases,
    write_outside,
)
from tests.helpers import MMRAG_SCRIPT, cli_env, module_settings

pytestmark = pytest.mark.slow  # every bad input indexed through the CLI, in bounded subprocesses

SHARED_SECONDS = 60.0
"""Model loading and start-up of a shared run, on top of CASE_SECONDS per case."""
CASE_SECONDS = 5.0
OWN_SECONDS = 60.0
HEAVY_SECONDS = 300.0
MAX_RSS_MB = 4000.0
"""A run past this is killed: no bad file may cost this much memory (the tiny profile needs well under 1 GB)."""


@dataclass
class IndexRun:
    """One `mmrag index --json` over some cases, and what it stored."""

    root: Path
    result: Bounded
    budget: float
    unavailable: dict[str, str]
    summary: dict[str, Any] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    """Why the run as a whole is wrong (crash, hang, traceback, not one JSON object)."""


def stored_objects(settings: Settings) -> list[dict[str, Any]]:
    from mmrag.core.client import connect

    with connect(settings) as client:
        store = Store(client, settings.collection)
        return [obj.properties for obj in store.objects()] if store.exists() else []


def index_cases(settings: Settings, where: Path, cases: Sequence[Case], budget: float) -> IndexRun:
    root = where / "root"
    unavailable = write_cases(root, write_outside(where / "outside"), cases)
    argv = [MMRAG_SCRIPT, "index", str(root), "--json", "--workers", "0"]
    result = run_bounded(argv, cli_env(settings), timeout=budget + 30, max_rss_mb=MAX_RSS_MB)
    run = IndexRun(root, result, budget, unavailable)
    tail = result.stderr[-3000:]
    if result.killed:
        run.problem = f"killed for {result.killed} after {result.seconds:.0f} s: {tail}"
    elif result.returncode not in (0, 1):
        run.problem = f"exit {result.returncode}: {tail}"
    elif "Traceback" in result.stderr:
        run.problem = f"traceback on stderr: {tail}"
    else:
        try:
            run.summary = one_json_object(result.stdout)
        except ValueError as e:
            run.problem = str(e)
        else:  # exit 1 exactly when a file failed (the others are indexed all the same)
            if result.returncode != (1 if run.summary["files"]["failed"] else 0):
                run.problem = f"exit {result.returncode} with {run.summary['files']['failed']} failed files: {tail}"
    run.objects = stored_objects(settings)
    return run


def shared_run(server: LocalWeaviate, where: Path, kind: str) -> Iterator[IndexRun]:
    cases = [c for c in CASES if c.run == kind]
    run = index_cases(module_settings(server, "Bad"), where, cases, SHARED_SECONDS + CASE_SECONDS * len(cases))
    yield run
    remove_tree(run.root)  # pytest's own clean-up cannot remove folders nested past PATH_MAX


@pytest.fixture(scope="module")
def files_run(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexRun]:
    yield from shared_run(weaviate_server, tmp_path_factory.mktemp("bad-files"), "files")


@pytest.fixture(scope="module")
def tree_run(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexRun]:
    yield from shared_run(weaviate_server, tmp_path_factory.mktemp("bad-tree"), "tree")


def assert_clean(run: IndexRun) -> None:
    assert run.problem is None, f"the run over {run.root} broke: {run.problem}"
    assert run.result.seconds < run.budget, f"took {run.result.seconds:.0f} s, more than {run.budget:.0f} s"


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.heavy else []) for c in CASES]
)
def test_bad_input_is_reported_and_the_run_goes_on(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if case.run == "own":
        settings: Settings = request.getfixturevalue("settings")
        run = index_cases(settings, tmp_path, [case], HEAVY_SECONDS if case.heavy else OWN_SECONDS)
        remove_tree(run.root)
    else:
        run = request.getfixturevalue(f"{case.run}_run")
    if case.name in run.unavailable:
        pytest.skip(run.unavailable[case.name])
    assert_clean(run)
    problems = check(case, run.summary, run.objects)
    assert not problems, f"{case.name} ({case.about or case.expect.outcome}): " + "; ".join(problems)


@pytest.mark.parametrize("kind", ["files", "tree"])
def test_nothing_outside_the_indexed_folder_is_stored(kind: str, request: pytest.FixtureRequest) -> None:
    run: IndexRun = request.getfixturevalue(f"{kind}_run")
    assert_clean(run)
    assert run.objects, "the shared run stored nothing at all"
    assert not outside_root(run.root, run.objects)


def test_hostile_names_are_printed_literally(settings: Settings, tmp_path: Path) -> None:
    """The human report names bad files as they are: Rich markup is not applied, and neither terminal escapes nor
    bidirectional overrides (which make a name display as another) reach the terminal."""
    root = tmp_path / "names"
    root.mkdir()
    (root / "\x1b[31mred[bold]bad[blink].png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    (root / "report\u202egnp.exe.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png either")
    (root / "fine.png").write_bytes(image_bytes("PNG"))
    env = cli_env(settings, COLUMNS="400", NO_COLOR="1", TERM="dumb")
    result = run_bounded([MMRAG_SCRIPT, "index", str(root), "--workers", "0"], env, timeout=OWN_SECONDS * 2)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]  # two files failed
    assert "\x1b" not in result.stdout + result.stderr and "\u202e" not in result.stdout + result.stderr
    assert "[bold]bad[blink].png" in result.stderr, result.stderr


def test_catalog_is_broad() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 40
    assert all(os.sep not in n and not n.startswith(".") for n in names)
