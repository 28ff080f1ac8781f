"""REST API throughput and latency: `mmrag serve` under 1, 4 and 16 concurrent clients.

    .venv/bin/python bench/api.py [--charts 200] [--seconds 8] [--clients 1,4,16] [--profile tiny]

Builds a corpus (the sample corpus plus N small captioned bar charts), indexes it with `mmrag index` into a local
Weaviate of its own (a temporary data folder, free ports), starts `mmrag serve --retrieval-only` on a free loopback
port, warms it up, then for each number of clients runs that many threads (each with its own HTTP connection)
sending requests back to back for a fixed time: `POST /v1/search` and retrieval-only `POST /v1/ask`. Each query is
one of a fixed list, in turn. Prints requests/s and p50/p95 latency per endpoint and concurrency, and saves
bench/results/api.json and bench/results/api.png. The server and its Weaviate are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.core.server import free_port
from mmrag.core.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"
MMRAG = str(Path(sys.executable).with_name("mmrag"))
QUERIES = [
    "quarterly revenue by region",
    "headcount growth",
    "monthly temperature",
    "market share of the top vendors",
    "series 17 bar chart",
    "what does the report say about costs",
    "chart number 42",
    "which month was the warmest",
]
ENDPOINTS = {
    "search": ("/v1/search", lambda q: {"query": q, "k": 4}),
    "ask (retrieval only)": ("/v1/ask", lambda q: {"question": q, "k": 4, "retrieval_only": True}),
}


def make_corpus(root: Path, n_charts: int) -> None:
    from PIL import Image, ImageDraw

    write_sample_corpus(root)
    charts = root / "many"
    charts.mkdir(parents=True)
    for i in range(n_charts):
        image = Image.new("RGB", (120, 90), "white")
        draw = ImageDraw.Draw(image)
        for bar in range(5):
            height = (i * 7 + bar * 13) % 70 + 10
            draw.rectangle((8 + bar * 22, 88 - height, 24 + bar * 22, 88), fill=((i * 37) % 255, bar * 50, 160))
        image.save(charts / f"chart_{i:04d}.png")
        (charts / f"chart_{i:04d}.txt").write_text(f"Series {i}: bar chart number {i} of five regions.")


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([MMRAG, *args], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"mmrag {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("mmrag serve exited early")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit("mmrag serve did not become ready")


def load(url: str, path: str, body: Any, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads sending requests back to back for `seconds`: requests/s and latency percentiles (ms)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            client.post(path, json=body(QUERIES[n % len(QUERIES)]))  # connect before the clock starts
            start.wait()
            i = n
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                response = client.post(path, json=body(QUERIES[i % len(QUERIES)]))
                latencies[n].append(time.perf_counter() - began)
                errors[n] += response.status_code != 200
                i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = np.array([x for per in latencies for x in per]) * 1000
    return {
        "clients": clients,
        "requests": int(flat.size),
        "errors": sum(errors),
        "rps": flat.size / elapsed,
        "p50_ms": float(np.percentile(flat, 50)),
        "p95_ms": float(np.percentile(flat, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=200, help="Small charts added to the sample corpus.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Load time per endpoint and concurrency.")
    parser.add_argument("--clients", default="1,4,16", help="Concurrent clients, comma-separated.")
    parser.add_argument("--profile", default="tiny", choices=["tiny", "default"])
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env |= {
        "MMRAG_PROFILE": args.profile,
        "MMRAG_DATA_DIR": str(work / "data"),
        "MMRAG_CACHE_DIR": str(load_settings().cache_dir),
        "MMRAG_WEAVIATE_HTTP_PORT": str(free_port()),
        "MMRAG_WEAVIATE_GRPC_PORT": str(free_port()),
        "MMRAG_COLLECTION": "Bench",
        "HF_HUB_OFFLINE": "1",
    }
    server: subprocess.Popen[bytes] | None = None
    try:
        make_corpus(work / "corpus", args.charts)
        report = json.loads(run(env, "index", str(work / "corpus"), "--json"))
        objects = report["objects"]["written"]
        print(f"indexed {report['files']['indexed']} files, {objects} objects", file=sys.stderr)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([MMRAG, "serve", "--port", str(port), "--retrieval-only"], env=env)
        wait_ready(url, server)
        for path, body in ENDPOINTS.values():  # load the encoders, warm the caches
            for query in QUERIES:
                httpx.post(url + path, json=body(query), timeout=120).raise_for_status()
        rows = []
        for name, (path, body) in ENDPOINTS.items():
            for n in clients:
                rows.append({"endpoint": name} | load(url, path, body, n, args.seconds))
                print(f"{name} x{n}: {rows[-1]['rps']:.1f} req/s", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        subprocess.run([MMRAG, "weaviate", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    show(rows)
    save(rows, args, objects)


def show(rows: list[dict[str, Any]]) -> None:
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'endpoint':<22}{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for r in rows:
        print(
            f"{r['endpoint']:<22}{r['clients']:>8}{r['requests']:>10}{r['errors']:>8}"
            f"{r['rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
        )


def save(rows: list[dict[str, Any]], args: argparse.Namespace, objects: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    meta = {
        "profile": args.profile,
        "objects": objects,
        "seconds_per_point": args.seconds,
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],  # other work on the machine skews the figures
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    (RESULTS / "api.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, colour in zip(ENDPOINTS, ("tab:blue", "tab:orange"), strict=True):
        mine = [r for r in rows if r["endpoint"] == name]
        xs = [r["clients"] for r in mine]
        left.plot(xs, [r["rps"] for r in mine], marker="o", color=colour, label=name)
        right.plot(xs, [r["p50_ms"] for r in mine], marker="o", color=colour, label=f"{name} p50")
        right.plot(xs, [r["p95_ms"] for r in mine], marker="x", color=colour, linestyle="--", label=f"{name} p95")
    for ax, title, unit in ((left, "Throughput", "requests/s"), (right, "Latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([r["clients"] for r in rows[: len(rows) // len(ENDPOINTS)]])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=8)
    load = meta["load_average_1min_at_end"]
    fig.suptitle(f"mmrag serve ({args.profile} profile, {objects} objects, {os.cpu_count()} CPUs, load {load:.1f})")
    fig.tight_layout()
    fig.savefig(RESULTS / "api.png", dpi=100)


if __name__ == "__main__":
    main()
