"""Scaling out: indexing on Ray against the local loop, search and writes on a 3-node Weaviate cluster (replication
factor 3) against a single node, and an estimate of the nodes and hours to index 10M pages + 1M charts.

    .venv/bin/python bench/scale.py [--objects 100000] [--writes 20000] [--queries 200] [--clients 8]
        [--charts 200] [--pages 24] [--profile tiny] [--only index,search,writes] [--gpus 1]

Everything runs on Weaviates of its own (a temporary data dir, free loopback ports), never a user's data, and is
stopped at the end.

  index   `make_corpus` (bench/index_throughput.py: captioned charts and a multi-page PDF) indexed twice, into two
          fresh collections of the single node with the same model profile: by the local loop (`index_paths`,
          --workers 1) and on a local Ray with every CPU (`index_paths_on_ray`, one embedding actor unless
          --actors). Items/s each (model loading included, as a user sees it), the ratio Ray / local, and Ray's
          start-up (`ray.init`) apart. The corpus also gives the objects per PDF page and per chart.
  search  --objects synthetic objects (random unit vectors of the real sizes: CLIP ViT-B-32 512, MiniLM 384; text
          of Zipf-distributed words for BM25) written through `Store.writer`, on the single node and on a 3-node
          local cluster (factor 3, QUORUM writes); then mmrag's hybrid search (`Searcher`: BM25 + both vectors,
          fused), with query vectors random too (no encoder timed): p50/p95 of --queries searches one after another,
          and searches/s of 2x as many from --clients threads; on the cluster with QUORUM reads and with ONE.
  writes  --writes synthetic objects into a fresh collection: on the cluster at consistency ONE and at QUORUM,
          and on the single node as reference.

Then the estimate, from these measurements, Weaviate's published figures and stated assumptions (printed and saved).
Prints tables and saves bench/results/scale.json and bench/results/scale.png. The local Weaviate runs with
LIMIT_RESOURCES (cores - 1 = one Go thread per node on 2 cores), and the three nodes share this machine's cores,
so the cluster measures replication's overhead here, not a cluster's capacity.
"""

# ruff: noqa: E402  (the OpenMP choice below must come before the imports that load torch)
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mmrag.core.cpu import passive_omp_threads

passive_omp_threads()  # as `mmrag index` does, before torch loads

from index_throughput import make_corpus

from mmrag.core.client import connect, local_cluster, local_server
from mmrag.core.server import free_port
from mmrag.core.settings import Consistency, Settings, load_settings
from mmrag.indexer.embedders import ImageEncoder, embedders_for
from mmrag.indexer.service import index_paths
from mmrag.indexer.store import Replication, Store, StoredObject
from mmrag.rag_app.search import Searcher, SearchOptions

RESULTS = Path(__file__).resolve().parent / "results"
CLIP_DIM, TEXT_DIM = 512, 384
VOCABULARY = 5000
GIB = 1024**3

PUBLISHED = {
    "source": "docs.weaviate.io/weaviate/benchmarks/ann, docs.weaviate.io/weaviate/concepts/resources",
    "node": "n4-highmem-16: 16 vCPU, 128 GB",
    "dbpedia_1m_1536d_qps_ef96": 5639,
    "dbpedia_1m_1536d_mean_ms": 2.80,
    "dbpedia_1m_1536d_p99_ms": 4.43,
    "sphere_10m_768d_qps": 3523,
    "memory_per_vector_vs_raw": 2.0,
    "note": "imports are CPU-bound; one HNSW insert costs about one search",
}
ASSUMED = {
    "pages": 10_000_000,
    "charts": 1_000_000,
    "factor": 3,
    "node_vcpu": 16,
    "node_memory_gb": 128,
    "usable_memory_fraction": 0.75,
    "gpu": "H100",
    "clip_images_per_s_per_gpu": 2000,
    "clip_texts_per_s_per_gpu": 10000,
    "minilm_texts_per_s_per_gpu": 20000,
}
"""Not measured here: GPU rates (this machine has no GPU), the node size and the memory kept free on it."""


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


# Part (a): indexing, local loop against Ray


def index_part(settings: Settings, root: Path, n_charts: int, n_pages: int, actors: int | None) -> dict[str, Any]:
    embedders_for(settings)[0].dim  # noqa: B018  (the model files read once, untimed, for both runs)
    local = settings.model_copy(update={"collection": f"ScaleLocal{uuid.uuid4().hex[:8]}"})
    on_ray = settings.model_copy(update={"collection": f"ScaleRay{uuid.uuid4().hex[:8]}"})
    try:
        log("index: local loop")
        began = time.perf_counter()
        report = index_paths(local, [root], workers=1)
        local_s = time.perf_counter() - began
        corpus = corpus_shape(local, n_charts, n_pages)
        ray_start_s, ray_s, ray_items = index_on_ray(on_ray, root, actors)
    finally:
        drop(local)
        drop(on_ray)
    if ray_items != report.items:
        raise SystemExit(f"Ray indexed {ray_items} items, the local loop {report.items}")
    return {
        "profile": settings.profile,
        "items": report.items,
        "local_s": local_s,
        "local_items_s": report.items / local_s,
        "ray_start_s": ray_start_s,
        "ray_s": ray_s,
        "ray_items_s": ray_items / ray_s,
        "ratio": local_s / ray_s,
        "actors": actors or 1,
        "corpus": corpus,
    }


def index_on_ray(settings: Settings, root: Path, actors: int | None) -> tuple[float, float, int]:
    """(ray.init seconds, indexing seconds, items) on a local Ray with every CPU, started and stopped here."""
    import ray
    from ray.data import DataContext

    from mmrag.indexer.ray_index import index_paths_on_ray

    log("index: ray.init")
    began = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    start_s = time.perf_counter() - began
    context = DataContext.get_current()  # as `mmrag index --ray` keeps Ray Data quiet
    context.enable_progress_bars = context.enable_operator_progress_bars = context.print_on_execution_start = False
    try:
        log("index: on Ray")
        began = time.perf_counter()
        report = index_paths_on_ray(settings, [root], actors=actors)
        return start_s, time.perf_counter() - began, report.items
    finally:
        ray.shutdown()


def corpus_shape(settings: Settings, n_charts: int, n_pages: int) -> dict[str, Any]:
    """Objects per PDF page and per chart, and per object the encodings it took (from the vectors it holds)."""
    with connect(settings) as client:
        objects = list(Store(client, settings.collection).objects(include_vectors=True))
    pdf = [o for o in objects if str(o.properties["source_path"]).endswith(".pdf")]
    charts = [o for o in objects if not str(o.properties["source_path"]).endswith(".pdf")]

    def encodings(group: list[StoredObject], per: int) -> dict[str, float]:
        visual = [o for o in group if o.properties["kind"] in ("image", "page")]
        return {
            "objects": len(group) / per,
            "clip_images": sum("clip" in o.vectors for o in visual) / per,
            "clip_texts": sum("clip" in o.vectors for o in group if o not in visual) / per,
            "minilm_texts": sum("text" in o.vectors for o in group) / per,
            "by_kind": {k: v / per for k, v in Counter(str(o.properties["kind"]) for o in group).items()},
        }

    return {"per_page": encodings(pdf, n_pages), "per_chart": encodings(charts, n_charts)}


# Parts (b) and (c): synthetic objects on a single node and on a cluster


class RandomQueries(ImageEncoder):
    """A query "encoder" that gives each query a random unit vector (seeded by the query): the objects' vectors are
    random too, so only Weaviate's side of a search is timed. It encodes no images."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"random-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit(np.random.default_rng(zlib.crc32(t.encode())), 1, self._dim)[0] for t in texts])

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError("queries only")


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def words(rng: np.random.Generator, n: int) -> list[str]:
    """n words of a Zipf-distributed vocabulary ('w0' most frequent), so BM25 queries find some objects."""
    ranks = np.minimum(rng.zipf(1.2, size=n), VOCABULARY) - 1
    return [f"w{r}" for r in ranks]


def synthetic(n: int, seed: int, chunk: int = 1000) -> Iterator[StoredObject]:
    """n objects shaped as the indexer writes them (kinds in a page's proportions), made a chunk at a time."""
    rng = np.random.default_rng(seed)
    kinds = ("page", "text", "text", "text", "image")
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        clip, text = unit(rng, size, CLIP_DIM).tolist(), unit(rng, size, TEXT_DIM).tolist()
        for i in range(size):
            number = start + i
            yield StoredObject(
                properties={
                    "kind": kinds[number % len(kinds)],
                    "source": f"doc{number // 40}.pdf",
                    "source_path": f"/bench/doc{number // 40}.pdf",
                    "page": number % 40,
                    "text": " ".join(words(rng, 40)),
                    "file_sha256": "0" * 64,
                    "n_items": 40,
                },
                id=str(uuid.UUID(int=(seed + 1) << 64 | number)),
                vectors={"clip": clip[i], "text": text[i]},
            )


def write(store: Store, n: int, seed: int) -> float:
    """Objects/s writing n synthetic objects through the store's batch writer into its (new) collection."""
    store.ensure("synthetic-clip", "synthetic-text", lambda: (CLIP_DIM, TEXT_DIM))
    objects = synthetic(n, seed)
    began = time.perf_counter()
    with store.writer() as send:
        for obj in objects:
            send(obj)
    return n / (time.perf_counter() - began)


def search_load(store: Store, queries: list[str], clients: int) -> dict[str, float]:
    """p50/p95 (ms) of the queries one after another, then searches/s of twice as many from `clients` threads
    (each its own `Searcher`, all on one client)."""
    options = SearchOptions(k=10, mode="hybrid")

    def searcher() -> Searcher:
        return Searcher(store, RandomQueries(CLIP_DIM), RandomQueries(TEXT_DIM))

    one = searcher()
    for query in queries[:10]:
        one.search(query, options)  # warm up: connections, caches
    latencies = []
    for query in queries:
        began = time.perf_counter()
        one.search(query, options)
        latencies.append(time.perf_counter() - began)
    pool = [searcher() for _ in range(clients)]
    load = [f"{q} {i}" for i, q in enumerate(queries * 2)]
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as threads:
        list(threads.map(lambda i: pool[i % clients].search(load[i], options), range(len(load))))
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "qps": len(load) / elapsed}


def store_part(settings: Settings, setup: str, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(search rows, write rows) on one setup: `single` (no replication) or `cluster` (factor 3)."""
    factor = 3 if setup == "cluster" else 1
    rng = np.random.default_rng(7)
    queries = [" ".join(words(rng, 3)) for _ in range(args.queries)]
    searches: list[dict] = []
    writes: list[dict] = []
    with connect(settings) as client:
        if "search" in args.only:
            name = f"ScaleSearch{uuid.uuid4().hex[:8]}"
            store = Store(client, name, Replication(factor=factor, write="QUORUM" if factor > 1 else None))
            try:
                log(f"{setup}: writing {args.objects} objects")
                rate = write(store, args.objects, seed=1)
                level = "QUORUM" if factor > 1 else "-"
                writes.append({"setup": setup, "write": level, "objects": args.objects, "objects_s": rate})
                reads: tuple[Consistency | None, ...] = ("QUORUM", "ONE") if factor > 1 else (None,)
                for read in reads:
                    log(f"{setup}: searching, {read or 'default'} reads")
                    reader = Store(client, name, Replication(factor=factor, read=read))
                    row = search_load(reader, queries, args.clients)
                    searches.append({"setup": setup, "read": read or "-", "objects": args.objects, **row})
            finally:
                drop_store(store)
        if "writes" in args.only:
            levels: tuple[Consistency | None, ...] = ("ONE", "QUORUM") if factor > 1 else (None,)
            for level in levels:
                store = Store(client, f"ScaleWrite{uuid.uuid4().hex[:8]}", Replication(factor=factor, write=level))
                try:
                    log(f"{setup}: writing {args.writes} objects, {level or 'default'} writes")
                    rate = write(store, args.writes, seed=2)
                finally:
                    drop_store(store)
                writes.append({"setup": setup, "write": level or "-", "objects": args.writes, "objects_s": rate})
    return searches, writes


@contextmanager
def single_node(base: Settings, work: Path) -> Iterator[Settings]:
    settings = base.model_copy(
        update={"data_dir": work / "single", "weaviate_http_port": free_port(), "weaviate_grpc_port": free_port()}
    )
    server = local_server(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


@contextmanager
def three_nodes(base: Settings, work: Path) -> Iterator[Settings]:
    settings = base.model_copy(update={"data_dir": work / "cluster"})
    cluster = local_cluster(settings)
    try:
        cluster.start(3)
        yield settings
    finally:
        cluster.stop()


def drop(settings: Settings) -> None:
    with connect(settings) as client:
        drop_store(Store(client, settings.collection))


def drop_store(store: Store) -> None:
    if store.exists():
        store.drop()


# The estimate


FALLBACK_SHAPE = {
    "per_page": {"objects": 4.0, "clip_images": 1.0, "clip_texts": 3.0, "minilm_texts": 3.0},
    "per_chart": {"objects": 1.0, "clip_images": 1.0, "clip_texts": 0.0, "minilm_texts": 1.0},
}
"""Assumed when the index part did not run: a page render + 3 text chunks; a chart + its caption's text vector."""


def estimate(index: dict[str, Any] | None, writes: list[dict[str, Any]], objects: int, gpus: int) -> dict[str, Any]:
    """Nodes and hours to index ASSUMED's pages and charts (see `lines` for what each figure rests on)."""
    a, shape = ASSUMED, (index["corpus"] if index else FALLBACK_SHAPE)
    page, chart = shape["per_page"], shape["per_chart"]
    total = a["pages"] * page["objects"] + a["charts"] * chart["objects"]
    memory = total * (CLIP_DIM + TEXT_DIM) * 4 * PUBLISHED["memory_per_vector_vs_raw"] * a["factor"]
    usable = a["node_memory_gb"] * 1e9 * a["usable_memory_fraction"]
    nodes_memory = max(a["factor"], math.ceil(memory / usable))
    # one HNSW insert per named vector ~ one search: the published 10M x 768d QPS per node, halved for 2 vectors
    published_node = PUBLISHED["sphere_10m_768d_qps"] / 2
    single = [w for w in writes if w["setup"] == "single" and w["objects"] == objects]
    go_threads = max(1, (os.cpu_count() or 2) - 1)  # LIMIT_RESOURCES
    measured_node = single[0]["objects_s"] * a["node_vcpu"] / go_threads if single else None
    per_node = min(published_node, measured_node or published_node)

    def gpu_seconds(item: dict[str, float]) -> float:
        return (
            item["clip_images"] / a["clip_images_per_s_per_gpu"]
            + item["clip_texts"] / a["clip_texts_per_s_per_gpu"]
            + item["minilm_texts"] / a["minilm_texts_per_s_per_gpu"]
        )

    gpu_total_s = a["pages"] * gpu_seconds(page) + a["charts"] * gpu_seconds(chart)
    embed_rate = total / (gpu_total_s / gpus)
    nodes_cpu = max(a["factor"], math.ceil(embed_rate * a["factor"] / per_node))
    import_rate_min = nodes_memory * per_node / a["factor"]
    cpu_rate = index["local_items_s"] / (os.cpu_count() or 2) if index and index["profile"] == "tiny" else None
    return {
        "objects": total,
        "memory_gb": memory / 1e9,
        "nodes_memory": nodes_memory,
        "per_node_objects_s_published": published_node,
        "per_node_objects_s_measured_scaled": measured_node,
        "per_node_objects_s_used": per_node,
        "gpus": gpus,
        "gpu_hours": gpu_total_s / 3600,
        "embed_objects_s": embed_rate,
        "nodes_import": nodes_cpu,
        "nodes": max(nodes_memory, nodes_cpu),
        "hours": total / embed_rate / 3600,
        "hours_on_memory_nodes": total / min(embed_rate, import_rate_min) / 3600,
        "extract_items_s_per_core": cpu_rate,
        "extract_cores": math.ceil(embed_rate / cpu_rate) if cpu_rate else None,
        "shape_measured": index is not None,
        "shape": shape,
        "assumed": ASSUMED,
        "published": PUBLISHED,
    }


def lines(e: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, value, basis) rows of the estimate."""
    a, page, chart = e["assumed"], e["shape"]["per_page"], e["shape"]["per_chart"]
    shape_basis = "measured on the index corpus" if e["shape_measured"] else "assumed (index part not run)"
    measured = e["per_node_objects_s_measured_scaled"]
    rows = [
        ("corpus", f"{a['pages']:,} pages + {a['charts']:,} charts", "given"),
        ("objects per page / per chart", f"{page['objects']:.2f} / {chart['objects']:.2f}", shape_basis),
        (
            "encodings per page (CLIP image, CLIP text, MiniLM)",
            f"{page['clip_images']:.2f}, {page['clip_texts']:.2f}, {page['minilm_texts']:.2f}",
            shape_basis,
        ),
        ("objects", f"{e['objects'] / 1e6:.1f}M, vectors 512 + 384 float32 each", "from the above"),
        (
            "memory, factor 3",
            f"{e['memory_gb']:,.0f} GB (raw x {PUBLISHED['memory_per_vector_vs_raw']:.0f} x {a['factor']})",
            "published rule of thumb",
        ),
        (
            "nodes, memory-bound",
            f"{e['nodes_memory']} x {a['node_vcpu']} vCPU / {a['node_memory_gb']} GB",
            f"assumed node, {a['usable_memory_fraction']:.0%} of its memory for vectors",
        ),
        (
            "import per node (objects/s, 2 vectors)",
            f"{e['per_node_objects_s_used']:,.0f}",
            f"min of published ({e['per_node_objects_s_published']:,.0f}: 10M x 768d QPS / 2) and measured here "
            + (f"x {a['node_vcpu']} cores ({measured:,.0f})" if measured else "(not run)"),
        ),
        (
            f"embedding on {e['gpus']} {a['gpu']}",
            f"{e['embed_objects_s']:,.0f} objects/s, {e['gpu_hours']:.1f} GPU-hours",
            f"ASSUMED per GPU: CLIP {a['clip_images_per_s_per_gpu']} img/s, {a['clip_texts_per_s_per_gpu']} "
            f"texts/s; MiniLM {a['minilm_texts_per_s_per_gpu']} texts/s",
        ),
        ("nodes, import-bound (to keep up)", str(e["nodes_import"]), "embed rate x 3 / import per node"),
        ("nodes", str(e["nodes"]), "max of the two"),
        ("hours to index", f"{e['hours']:.1f}", f"on {e['nodes']} nodes and {e['gpus']} GPU(s)"),
        ("hours on the memory-bound nodes", f"{e['hours_on_memory_nodes']:.1f}", f"on {e['nodes_memory']} nodes"),
    ]
    if e["extract_cores"]:
        rows.append(
            (
                "CPU cores for extraction",
                f"{e['extract_cores']} ({e['extract_items_s_per_core']:.1f} items/s per core)",
                "measured here: tiny-profile local index rate / cores (render, parse, write)",
            )
        )
    return rows


# Output


def show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))  # the estimate's bases stay on one line in a log
    meta = result["meta"]
    if index := result["index"]:
        table = Table(title=f"Indexing, local loop vs Ray ({index['items']} items, {meta['cpus']} CPUs)")
        for column in ("profile", "items", "local items/s", "Ray items/s", "Ray / local", "ray.init s", "target"):
            table.add_column(column, justify="right")
        table.add_row(
            index["profile"],
            str(index["items"]),
            f"{index['local_items_s']:.1f}",
            f"{index['ray_items_s']:.1f}",
            f"{index['ratio']:.2f}",
            f"{index['ray_start_s']:.1f}",
            "met (>= 0.7)" if index["ratio"] >= 0.7 else "missed (< 0.7)",
        )
        console.print(table)
    if result["search"]:
        table = Table(title=f"Hybrid search (3 queries each), {meta['clients']} threads for searches/s")
        for column in ("setup", "reads", "objects", "p50 ms", "p95 ms", "searches/s"):
            table.add_column(column, justify="right")
        for r in result["search"]:
            row = (f"{r['objects']:,}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['qps']:.1f}")
            table.add_row(r["setup"], r["read"], *row)
        console.print(table)
    if result["writes"]:
        table = Table(title="Batch writes (synthetic objects, 2 named vectors)")
        for column in ("setup", "write consistency", "objects", "objects/s"):
            table.add_column(column, justify="right")
        for r in result["writes"]:
            table.add_row(r["setup"], r["write"], f"{r['objects']:,}", f"{r['objects_s']:.0f}")
        console.print(table)
    table = Table(title="Estimate: 10M pages + 1M charts", show_lines=False)
    for column in ("what", "value", "basis"):
        table.add_column(column)
    for row in lines(result["estimate"]):
        table.add_row(*row)
    console.print(table)


def save(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    if index := result["index"]:
        left.bar(["local", "Ray"], [index["local_items_s"], index["ray_items_s"]], color=["tab:blue", "tab:orange"])
        left.set_title(f"Indexing ({index['profile']} profile): Ray / local = {index['ratio']:.2f}")
        left.set_ylabel("items/s")
    if searches := result["search"]:
        labels = [f"{r['setup']}\n{r['read']} reads" if r["read"] != "-" else r["setup"] for r in searches]
        x = np.arange(len(searches))
        middle.bar(x - 0.2, [r["p50_ms"] for r in searches], 0.4, label="p50 ms")
        middle.bar(x + 0.2, [r["p95_ms"] for r in searches], 0.4, label="p95 ms")
        middle.set_xticks(x, labels)
        middle.set_ylabel("ms per hybrid search")
        qps = middle.twinx()
        qps.plot(x, [r["qps"] for r in searches], "ko-", label="searches/s")
        qps.set_ylabel("searches/s")
        qps.set_ylim(bottom=0)
        middle.legend(loc="upper left", fontsize=8)
        middle.set_title(f"Search at {searches[0]['objects']:,} objects")
    if writes := result["writes"]:
        labels = [f"{w['setup']}\n{w['write']}\n{w['objects'] // 1000}k" for w in writes]
        right.bar(range(len(writes)), [w["objects_s"] for w in writes], color="tab:green")
        right.set_xticks(range(len(writes)), labels)
        right.set_ylabel("objects/s")
        right.set_title("Batch writes")
    meta = result["meta"]
    fig.suptitle(f"mmrag scaling ({meta['cpus']} CPUs, load {meta['load_average_1min_at_end']:.1f})")
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=100)
    print(f"saved {RESULTS / 'scale.json'} and {RESULTS / 'scale.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000, help="Synthetic objects searched on each setup.")
    parser.add_argument("--writes", type=int, default=20_000, help="Synthetic objects per write-throughput run.")
    parser.add_argument("--queries", type=int, default=200, help="Searches timed one after another per setting.")
    parser.add_argument("--clients", type=int, default=8, help="Threads searching at once, for searches/s.")
    parser.add_argument("--charts", type=int, default=200, help="Charts in the index corpus.")
    parser.add_argument("--pages", type=int, default=24, help="Pages of the index corpus's PDF.")
    parser.add_argument("--profile", choices=("tiny", "default"), default="tiny", help="Models for the index part.")
    parser.add_argument("--actors", type=int, default=None, help="Ray embedding actors (default: one on CPU).")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the estimate embeds on.")
    parser.add_argument("--only", default="index,search,writes", help="Parts to run, comma-separated.")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    unknown = args.only - {"index", "search", "writes"}
    if unknown:
        parser.error(f"--only: unknown part {sorted(unknown)[0]!r}: choose from index, search, writes")
    base = load_settings().model_copy(update={"profile": args.profile, "device": "cpu"})
    began = time.perf_counter()
    index, searches, writes = None, [], []
    with tempfile.TemporaryDirectory(prefix="mmrag-scale-") as tmp:
        work = Path(tmp)
        with single_node(base, work) as settings:
            if "index" in args.only:
                make_corpus(work / "corpus", args.charts, args.pages)
                index = index_part(settings, work / "corpus", args.charts, args.pages, args.actors)
            rows = store_part(settings, "single", args)
            searches += rows[0]
            writes += rows[1]
        if args.only & {"search", "writes"}:
            with three_nodes(base, work) as settings:
                rows = store_part(settings, "cluster", args)
                searches += rows[0]
                writes += rows[1]
    meta = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "clients": args.clients,
        "queries": args.queries,
        "seconds": time.perf_counter() - began,
        "load_average_1min_at_end": os.getloadavg()[0],
        "synthetic": "random unit vectors (512 CLIP, 384 MiniLM), Zipf words for BM25; query vectors random",
    }
    result = {
        "meta": meta,
        "index": index,
        "search": searches,
        "writes": writes,
        "estimate": estimate(index, writes, args.objects, args.gpus),
    }
    show(result)
    save(result)


if __name__ == "__main__":
    main()
