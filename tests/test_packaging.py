"""The wheel: one top-level name (mmrag), so `pip install mmrag` sits beside any project with a `ui` or `indexer`.

The repository keeps its folders at the top (rag_app/, indexer/, finetune/, ui/); mmrag/<name> links to each, so the
code is imported as mmrag.<name> here and in the wheel alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("rag_app", "indexer", "finetune", "ui")
LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the tree (so the build leaves nothing in the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=LEFT_OUT)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = base.glob("mmrag-*.whl")
    return path


def test_the_wheel_installs_only_the_mmrag_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"mmrag"}
    for folder in FOLDERS:
        assert f"mmrag/{folder}/__init__.py" in names
    assert "mmrag/ui/app.py" in names and "mmrag/finetune/domains/finance.json" in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "mmrag = mmrag.commands.app:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_wheel_works_beside_another_projects_ui_package(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    for other in ("ui", "indexer"):  # another project's packages, installed into the same site-packages
        (site / other).mkdir()
        (site / other / "__init__.py").write_text("OTHER_PROJECT = True\n")
    probe = (
        "import indexer, ui, mmrag, mmrag.ui.uploads, mmrag.indexer.extract, mmrag.rag_app.chain\n"
        "import mmrag.finetune.charts\n"
        "assert ui.OTHER_PROJECT and indexer.OTHER_PROJECT\n"
        "import sys; site = sys.argv[1]\n"
        "for m in (ui, indexer, mmrag, mmrag.ui.uploads, mmrag.indexer.extract):\n"
        "    assert m.__file__.startswith(site), m.__file__\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run(
        [sys.executable, "-c", probe, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    helped = subprocess.run(
        [sys.executable, "-m", "mmrag", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert helped.returncode == 0 and "index" in helped.stdout, helped.stderr[-2000:]
