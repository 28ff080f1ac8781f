"""The shape of the code: which package imports which, and how long functions are, per package.

    .venv/bin/python bench/code_shape.py                  # this tree
    .venv/bin/python bench/code_shape.py --root OTHER     # another checkout (e.g. `git worktree add /tmp/old <rev>`)

Packages are the project's folders: mmrag/core, mmrag/commands (or the old flat mmrag/), indexer, rag_app,
finetune, ui. An import counts wherever it stands (module top, function body, TYPE_CHECKING block). An edge that
runs against the layers mmrag/__main__ -> commands -> ui | finetune -> rag_app -> indexer -> core
is marked "up". Writes
bench/results/code_shape.json and code_shape.png (function lengths by package).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

FOLDERS = ("indexer", "rag_app", "finetune", "ui")
RANK = {"mmrag": 5, "commands": 4, "ui": 3, "finetune": 3, "rag_app": 2, "indexer": 1, "core": 0}
"""Layers, top first. In the old flat layout (mmrag/cli.py beside mmrag/settings.py) mmrag was the ground floor."""


def package_of(module: str) -> str | None:
    """The package a dotted module belongs to, in either layout."""
    parts = module.split(".")
    if parts[0] == "mmrag":
        if len(parts) > 1 and parts[1] in (*FOLDERS, "core", "commands"):
            return parts[1]
        return "mmrag"
    return parts[0] if parts[0] in FOLDERS else None


def sources(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project (each file once, links followed)."""
    found: dict[str, Path] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            found[".".join(path.relative_to(root).with_suffix("").parts)] = path
    for path in sorted((root / "mmrag").rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[1] not in FOLDERS:
            found[".".join(relative.with_suffix("").parts)] = path
    return found


def imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def function_lengths(tree: ast.AST) -> list[int]:
    return [
        (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def measure(root: Path) -> dict[str, object]:
    rank = {**RANK, "mmrag": 0} if (root / "mmrag" / "cli.py").exists() else RANK
    edges: Counter[tuple[str, str]] = Counter()
    lengths: dict[str, list[int]] = defaultdict(list)
    for module, path in sources(root).items():
        package = package_of(module)
        assert package is not None
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lengths[package] += function_lengths(tree)
        for name in imported(tree):
            target = package_of(name)
            if target is not None and target != package:
                edges[(package, target)] += 1
    graph = [{"from": a, "to": b, "imports": n, "up": rank[a] <= rank[b]} for (a, b), n in sorted(edges.items())]
    shape = {
        p: {
            "functions": len(v),
            "median": statistics.median(v),
            "p90": statistics.quantiles(v, n=10)[-1] if len(v) > 1 else v[0],
            "max": max(v),
        }
        for p, v in sorted(lengths.items())
        if v
    }
    return {"root": str(root), "graph": graph, "function_lines": shape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = measure(args.root)
    print(f"Package imports in {args.root} (count of import statements; 'up' runs against the layers)")
    for edge in result["graph"]:  # type: ignore[attr-defined]
        flag = "  UP" if edge["up"] else ""
        print(f"  {edge['from']:>9} -> {edge['to']:<9} {edge['imports']:>3}{flag}")
    print(f"\n{'package':>9} {'functions':>9} {'median':>7} {'p90':>6} {'max':>5}  (lines per function)")
    for package, row in result["function_lines"].items():  # type: ignore[attr-defined]
        print(f"{package:>9} {row['functions']:>9} {row['median']:>7.0f} {row['p90']:>6.0f} {row['max']:>5}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "code_shape.json").write_text(json.dumps(result, indent=2))
    _plot(result["function_lines"], args.out / "code_shape.png")  # type: ignore[arg-type]


def _plot(shape: dict[str, dict[str, float]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    names = list(shape)
    x = range(len(names))
    axes.bar([i - 0.2 for i in x], [shape[n]["median"] for n in names], width=0.4, label="median")
    axes.bar([i + 0.2 for i in x], [shape[n]["p90"] for n in names], width=0.4, label="p90")
    axes.set_xticks(list(x), names)
    axes.set_ylabel("lines per function")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
