"""Serving throughput and latency, retrieval + generation end to end: the local backend (the VLM in this process,
one at a time) against a server backend (an OpenAI-compatible engine) on the same checkpoint, under 1, 4 and 16
concurrent clients, in the same run.

    .venv/bin/python bench/serving.py [--questions 32] [--max-new-tokens 16] [--clients 1,4,16]

Indexes a small known corpus (tests.corpus.write_known_corpus: three texts, two captioned charts) into a Weaviate
of its own (a temporary data folder, free ports), starts `transformers serve` of the profile's VLM on a free
loopback port (CPU, float32, as the local backend; tiny profile: the tiny checkpoint), then for each number of
clients N, local backend first, then the server backend with MMRAG_GENERATOR_CONCURRENCY=N: N threads share one
chain (`open_chain(settings, generator=make_generator(settings))`) and call `chain.ask` back to back until the
questions (all distinct) are used up. Every question is answered, none abstains (min_text_score -1), greedily.
Prints questions/s, p50/p95 latency per question and whether each setting's answers are, question by question, the
local backend's (its first setting's), and saves bench/results/serving.json and bench/results/serving.png.
The default run takes about a minute on 2 CPU cores.

GPU: an engine already running instead of `transformers serve` (`--engine-url URL --engine-model NAME`), e.g. vLLM
on one GPU with the real models; leave GPU memory for the local backend's copy of the model in this process:

    vllm serve llava-hf/llava-1.5-7b-hf --host 127.0.0.1 --port 8000 --gpu-memory-utilization 0.5 \\
        --enable-lora --lora-modules charts=/adapters/charts &
    MMRAG_PROFILE=default MMRAG_VLM_MODEL=llava-hf/llava-1.5-7b-hf MMRAG_DEVICE=cuda \\
        .venv/bin/python bench/serving.py --engine-url http://127.0.0.1:8000/v1 \\
        --engine-model llava-hf/llava-1.5-7b-hf [--adapter charts=/adapters/charts] \\
        --clients 1,4,16,64 --questions 128 --max-new-tokens 64

`--adapter NAME=DIR` answers with a LoRA: the local backend loads DIR, the server backend asks for the served
LoRA NAME (its manifest at DIR checked against the server's base). Answers from vLLM need not be token-identical
to transformers' (other kernels, other rounding), so on a GPU "same as local" is a figure, not a check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.core.models import resolve_models
from mmrag.core.settings import Settings, load_settings
from mmrag.indexer.service import index_paths
from mmrag.rag_app.chain import RagChain
from mmrag.rag_app.service import make_generator, open_chain
from tests.corpus import write_known_corpus
from tests.helpers import CACHE_DIR, TransformersServer, private_weaviate

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("local", "server")
ASKS = [
    "What does the corpus say about {}?",
    "Summarise what is known about {}.",
    "Which figures are given for {}?",
    "Is there a chart about {}?",
    "Explain {} in one sentence.",
    "What is the main fact about {}?",
    "Where is {} mentioned?",
    "Give one number about {}.",
]
SUBJECTS = [
    "photosynthesis",
    "quarterly revenue",
    "the football world cup final",
    "rainfall in Seattle",
    "the population of European capitals",
    "subscription sales",
    "penalties in extra time",
    "Berlin, Madrid and Rome",
]


def make_questions(n: int) -> list[str]:
    """n distinct questions on the known corpus's topics (every subject in turn, then the next phrasing)."""
    if n > len(ASKS) * len(SUBJECTS):
        sys.exit(f"--questions: at most {len(ASKS) * len(SUBJECTS)} distinct questions")
    return [ASKS[i // len(SUBJECTS)].format(SUBJECTS[i % len(SUBJECTS)]) for i in range(n)]


def load(chain: RagChain, questions: list[str], clients: int) -> tuple[dict[str, Any], list[str]]:
    """`clients` threads asking the questions back to back (each once): questions/s, latency percentiles (ms),
    and the answers in question order."""
    answers = [""] * len(questions)
    latencies = [0.0] * len(questions)
    failures: list[BaseException] = []
    order = iter(range(len(questions)))
    take = threading.Lock()
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        start.wait()
        while True:
            with take:
                i = next(order, None)
            if i is None or failures:
                return
            began = time.perf_counter()
            try:
                answers[i] = chain.ask(questions[i]).text
            except Exception as e:  # the bench stops at the first failure and says why
                failures.append(e)
                return
            latencies[i] = time.perf_counter() - began

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    ms = np.array(latencies) * 1000
    row = {
        "clients": clients,
        "questions": len(questions),
        "seconds": elapsed,
        "qps": len(questions) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
    }
    return row, answers


@contextlib.contextmanager
def warm_chain(settings: Settings) -> Iterator[RagChain]:
    """The chain the entry points use, with its models loaded (one question outside the measured ones)."""
    with open_chain(settings, generator=make_generator(settings)) as chain:
        chain.ask("Warm up: what is in the corpus?")
        yield chain


@contextlib.contextmanager
def engine(args: argparse.Namespace, model: str, work: Path) -> Iterator[tuple[str, str]]:
    """(URL, served model name) of the engine given, else of a `transformers serve` of `model` started here."""
    if args.engine_url:
        yield args.engine_url, args.engine_model
        return
    log = work / "serve.log"
    try:
        with TransformersServer(model, log) as server:
            yield server.url, model
    except RuntimeError:
        print(log.read_text()[-2000:] if log.exists() else "", file=sys.stderr)
        raise


def adapters(spec: str | None) -> dict[str, str | None]:
    """The adapter setting per backend for `--adapter NAME=DIR`: DIR for the local one, NAME=DIR for the server."""
    if spec is None:
        return {"local": None, "server": None}
    name, _, source = spec.partition("=")
    if not name.strip() or not source.strip():
        sys.exit("--adapter: give NAME=DIR (the served LoRA's name and the adapter's folder)")
    return {"local": source.strip(), "server": spec}


def base_settings(args: argparse.Namespace, weaviate: Settings) -> Settings:
    """The user's settings (MMRAG_PROFILE, MMRAG_VLM_MODEL, MMRAG_DEVICE ...) on the bench's own Weaviate; the tiny
    profile on the CPU, as `transformers serve` runs here."""
    overrides: dict[str, object] = {
        "profile": args.profile,
        "data_dir": weaviate.data_dir,
        "cache_dir": CACHE_DIR,
        "weaviate_url": None,
        "weaviate_http_port": weaviate.weaviate_http_port,
        "weaviate_grpc_port": weaviate.weaviate_grpc_port,
        "collection": "BenchServing",
        "max_new_tokens": args.max_new_tokens,
        "min_text_score": -1.0,  # every question is answered: the bench measures generation, not abstention
        "generator_backend": "local",
    }
    if args.profile == "tiny":
        overrides["device"] = "cpu"
    return load_settings(**overrides)


def measure(args: argparse.Namespace, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    clients = [int(c) for c in args.clients.split(",")]
    questions = make_questions(args.questions)
    adapter = adapters(args.adapter)
    rows: list[dict[str, Any]] = []
    with private_weaviate(work) as (weaviate, _):
        local = base_settings(args, weaviate).model_copy(update={"adapter": adapter["local"]})
        report = index_paths(local, [write_known_corpus(work / "corpus")], workers=0)
        print(f"indexed {report.written} objects", file=sys.stderr)
        model = resolve_models(local).vlm_model
        with engine(args, model, work) as (url, served), warm_chain(local) as local_chain:
            reference: list[str] | None = None
            for n in clients:  # both backends at each concurrency in turn: drift on the machine hits both alike
                row, answers = load(local_chain, questions, n)
                reference = reference or answers
                rows.append(_row("local", row, answers, reference))
                settings = local.model_copy(
                    update={
                        "generator_backend": "openai",
                        "generator_url": url,
                        "generator_model": served,
                        "generator_concurrency": n,
                        "adapter": adapter["server"],
                    }
                )
                with warm_chain(settings) as server_chain:
                    row, answers = load(server_chain, questions, n)
                rows.append(_row("server", row, answers, reference))
    meta = {
        "profile": args.profile,
        "vlm_model": model,
        "server": f"{args.engine_url} ({args.engine_model})" if args.engine_url else "transformers serve (CPU, fp32)",
        "device": local.device,
        "adapter": args.adapter,
        "objects": report.written,
        "questions_per_setting": len(questions),
        "max_new_tokens": args.max_new_tokens,
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],  # other work on the machine skews the figures
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    return rows, meta


def _row(backend: str, row: dict[str, Any], answers: list[str], reference: list[str]) -> dict[str, Any]:
    differing = sum(a != b for a, b in zip(answers, reference, strict=True))
    print(f"{backend} x{row['clients']}: {row['qps']:.2f} questions/s", file=sys.stderr)
    return {"backend": backend} | row | {"same_as_local": differing == 0, "differing": differing, "answers": answers}


def show(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Retrieval + generation end to end ({meta['profile']} profile, {meta['questions_per_setting']} "
        f"questions per setting, {meta['max_new_tokens']} new tokens, {meta['cpus']} CPUs, "
        f"load {meta['load_average_1min_at_end']:.1f})"
    )
    for column in ("backend", "clients", "q/s", "p50 ms", "p95 ms", "answers same as local"):
        table.add_column(column, justify="right")
    for r in rows:
        same = "yes" if r["same_as_local"] else f"no ({r['differing']}/{r['questions']} differ)"
        table.add_row(
            r["backend"], str(r["clients"]), f"{r['qps']:.2f}", f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", same
        )
    Console().print(table)
    print(f"server backend: {meta['server']}")


def save(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for backend, colour in zip(BACKENDS, ("tab:blue", "tab:orange"), strict=True):
        mine = [r for r in rows if r["backend"] == backend]
        xs = [r["clients"] for r in mine]
        label = "local (in process)" if backend == "local" else f"server: {meta['server']}"
        left.plot(xs, [r["qps"] for r in mine], marker="o", color=colour, label=label)
        right.plot(xs, [r["p50_ms"] for r in mine], marker="o", color=colour, label=f"{backend} p50")
        right.plot(xs, [r["p95_ms"] for r in mine], marker="x", color=colour, linestyle="--", label=f"{backend} p95")
    for ax, title, unit in ((left, "Throughput", "questions/s"), (right, "Latency per question", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["clients"] for r in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"mmrag ask, retrieval + generation ({meta['profile']} profile, {meta['max_new_tokens']} new tokens, "
        f"{meta['cpus']} CPUs, load {meta['load_average_1min_at_end']:.1f})"
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "serving.png", dpi=100)
    print(f"saved {RESULTS / 'serving.json'} and {RESULTS / 'serving.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32, help="Distinct questions per backend and concurrency.")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="Longest answer, in tokens.")
    parser.add_argument("--clients", default="1,4,16", help="Concurrent clients, comma-separated.")
    parser.add_argument(
        "--profile", default=os.environ.get("MMRAG_PROFILE", "tiny"), choices=["tiny", "default"], help="Models."
    )
    parser.add_argument("--engine-url", help="An OpenAI-compatible engine already running (…/v1), e.g. vLLM's.")
    parser.add_argument("--engine-model", help="The engine's served name of the base VLM (with --engine-url).")
    parser.add_argument("--adapter", help="NAME=DIR: answer with a LoRA (see above).")
    args = parser.parse_args()
    if bool(args.engine_url) != bool(args.engine_model):
        parser.error("--engine-url and --engine-model go together")
    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-serving-"))
    try:
        rows, meta = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    show(rows, meta)
    save(rows, meta)


if __name__ == "__main__":
    main()
