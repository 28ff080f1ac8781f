"""Indexing throughput: end-to-end `mmrag index` against the bare encoder on the same items and model.

    .venv/bin/python bench/index_throughput.py [--charts 200] [--pages 12] [--models tiny,vit-b-32]

For each model it indexes N matplotlib charts (with caption sidecars) and one multi-page PDF (text and a chart per
page) into a fresh collection of the local Weaviate, then times the bare encoders (CLIP image and text towers and
the text embedder, on inputs already decoded and preprocessed) over exactly the same items. Also: Weaviate batch
writes/s with vectors of the real sizes, and peak RSS (this process plus the extraction workers).
Prints a table and saves bench/results/index_throughput.png.
"""

# ruff: noqa: E402  (the OpenMP choice below must come before the imports that load torch)
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.core.cpu import passive_omp_threads

passive_omp_threads()  # as `mmrag index` does, before torch loads

from mmrag.core.client import connect
from mmrag.core.models import resolve_models
from mmrag.core.settings import Settings, load_settings
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder
from mmrag.indexer.extract import ExtractOptions, extract_file, file_digest, sidecars
from mmrag.indexer.pipeline import Indexer, discover
from mmrag.indexer.store import Store, StoredObject

RESULTS = Path(__file__).resolve().parent / "results"


def make_corpus(root: Path, n_charts: int, n_pages: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    rng = np.random.default_rng(0)
    charts = root / "charts"
    charts.mkdir(parents=True)
    for i in range(n_charts):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
        labels = [f"C{j}" for j in range(5)]
        values = rng.integers(1, 100, size=5)
        (ax.bar if i % 2 else ax.plot)(labels, values)
        ax.set_title(f"Series {i}")
        fig.savefig(charts / f"chart_{i:04d}.png")
        plt.close(fig)
        (charts / f"chart_{i:04d}.txt").write_text(
            f"Series {i}: " + ", ".join(f"{a} {b}" for a, b in zip(labels, values, strict=True))
        )
    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(root / "report.pdf") as pdf:
        for page in range(n_pages):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.1, 0.9, f"Section {page}\n" + "Revenue and cost figures for the period. " * 30, wrap=True)
            ax = fig.add_axes((0.1, 0.2, 0.8, 0.4))
            ax.imshow(rng.integers(0, 255, size=(200, 300, 3), dtype=np.uint8))
            pdf.savefig(fig)
            plt.close(fig)


def bare_encoder_seconds(root: Path, clip: ClipEmbedder, text: TextEmbedder) -> tuple[int, float]:
    """Decode and preprocess everything first (untimed), then time only the encoders on the same items."""
    candidates = discover([root]).candidates
    items = []
    for c in candidates:
        items += extract_file(c.path, file_digest([c.path, *sidecars(c.path)]), ExtractOptions()).items
    images = [i.image for i in items if i.image is not None]
    chunks = [i.text for i in items if i.image is None]
    texts = [i.text for i in items if i.text.strip()]
    pixels = clip.prepare(images)
    clip.encode_texts(chunks[:2]), text.encode_texts(texts[:2]), clip.encode_images(pixels[:2])  # warm up
    started = time.perf_counter()
    clip.encode_images(pixels)
    clip.encode_texts(chunks)
    text.encode_texts(texts)
    return len(items), time.perf_counter() - started


def writes_per_second(store: Store, clip_dim: int, text_dim: int, n: int = 3000) -> float:
    rng = np.random.default_rng(1)
    store.ensure("bench-clip", "bench-text", lambda: (clip_dim, text_dim))
    objects = [
        StoredObject(
            properties={
                "kind": "text",
                "text": f"object {i}",
                "source_path": f"/bench/{i}",
                "file_sha256": "x",
                "n_items": 1,
            },
            id=str(uuid.uuid4()),
            vectors={"clip": rng.standard_normal(clip_dim).tolist(), "text": rng.standard_normal(text_dim).tolist()},
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    with store.writer() as write:
        for obj in objects:
            write(obj)
    return n / (time.perf_counter() - started)


def _drop(store: Store) -> None:
    if store.exists():
        store.drop()


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def run_model(name: str, settings: Settings, root: Path, workers: int) -> dict[str, float | str]:
    ids = resolve_models(settings)
    clip = ClipEmbedder(ids.clip_model, ids.clip_pretrained, "cpu")
    text = TextEmbedder(ids.text_model, "cpu")
    clip.dim, text.dim  # load before timing: model loading is not throughput  # noqa: B018
    collection = f"BenchIndex{uuid.uuid4().hex[:8]}"
    with connect(settings, start_local=True) as client:
        store = Store(client, collection)
        try:
            started = time.perf_counter()
            report = Indexer(store, clip, text, workers=workers).run([root])
            e2e_seconds = time.perf_counter() - started
        finally:
            _drop(store)
        bare_items, bare_seconds = bare_encoder_seconds(root, clip, text)
        write_store = Store(client, collection + "W")
        try:
            writes = writes_per_second(write_store, clip.dim, text.dim)
        finally:
            _drop(write_store)
    e2e = report.items / e2e_seconds
    bare = bare_items / bare_seconds
    return {
        "model": name,
        "items": report.items,
        "e2e": e2e,
        "bare": bare,
        "ratio": e2e / bare,
        "writes": writes,
        "rss": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=200)
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--models", default="tiny,vit-b-32")
    parser.add_argument("--workers", type=int, default=1, help="as `mmrag index --workers`")
    args = parser.parse_args()
    base = load_settings()
    profiles = {
        "tiny": base.model_copy(update={"profile": "tiny"}),
        "vit-b-32": base.model_copy(update={"profile": "default", "clip_model": "ViT-B-32", "clip_pretrained": None}),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        make_corpus(root, args.charts, args.pages)
        for name in args.models.split(","):
            rows.append(run_model(name, profiles[name], root, args.workers))
            print(f"done: {name}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    show(rows, args)


def show(rows: list[dict[str, float | str]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Indexing throughput ({args.charts} charts + a {args.pages}-page PDF, CPU, --workers {args.workers})"
    )
    for column in (
        "model",
        "items",
        "end-to-end items/s",
        "bare encoder items/s",
        "ratio",
        "Weaviate writes/s",
        "peak RSS MB",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["model"]),
            str(r["items"]),
            f"{r['e2e']:.1f}",
            f"{r['bare']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['writes']:.0f}",
            f"{r['rss']:.0f}",
        )
    Console().print(table)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [float(r["bare"]) for r in rows], 0.4, label="bare encoder")
    ax.bar(x + 0.2, [float(r["e2e"]) for r in rows], 0.4, label="end-to-end index")
    ax.set_xticks(x, [str(r["model"]) for r in rows])
    ax.set_ylabel("items/s")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("mmrag index throughput (CPU)")
    fig.tight_layout()
    fig.savefig(RESULTS / "index_throughput.png")
    print(f"plot: {RESULTS / 'index_throughput.png'}")


if __name__ == "__main__":
    main()
