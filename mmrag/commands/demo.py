"""`mmrag demo`: the main job on the embedded default, start to finish."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.markup import escape

from mmrag.core import console
from mmrag.core.console import plain
from mmrag.core.settings import Settings, load_settings

DEMO_COLLECTION = "MmragDemo"


def demo() -> None:
    """Set up and run the main job on the embedded default (tiny models when the hub is unreachable)."""
    run_demo(demo_settings(console.out), console.out)


def demo_settings(out: Console) -> Settings:
    """The settings, in the demo's own collection unless MMRAG_COLLECTION is set, and with the tiny profile when
    MMRAG_PROFILE is unset and the Hugging Face hub does not answer."""
    from mmrag.core.models import hub_reachable

    settings = load_settings()
    overrides: dict[str, object] = {}
    if "collection" not in settings.model_fields_set:
        overrides["collection"] = DEMO_COLLECTION
    if "profile" not in settings.model_fields_set and not hub_reachable():
        out.print(
            "[yellow]offline:[/] the Hugging Face hub is unreachable, so the demo uses the tiny profile "
            "(tiny random models: answers are not meaningful)"
        )
        overrides["profile"] = "tiny"
    return load_settings(**overrides)


def run_demo(settings: Settings, out: Console) -> None:
    """Write the sample corpus, index it into the demo collection (incrementally), and show what is stored."""
    from mmrag.commands.sample_corpus import write_sample_corpus
    from mmrag.core.client import connect
    from mmrag.indexer.service import collection_stats, index_paths
    from mmrag.indexer.store import CollectionMismatchError, Store

    corpus = settings.data_dir / "demo-corpus"
    paths = write_sample_corpus(corpus)
    out.print(f"Sample corpus: {corpus} (charts with captions, a PDF report, a Markdown note)")
    started = time.perf_counter()
    with connect(settings, start_local=True) as client:
        out.print(f"Weaviate ready in {time.perf_counter() - started:.1f} s")
        store = Store.from_settings(client, settings)
        if settings.collection == DEMO_COLLECTION and store.exists():  # the demo's own: an older one is rebuilt
            try:
                store.require(current_schema=True)
            except CollectionMismatchError:
                out.print(f"{DEMO_COLLECTION} was built by an older version of mmrag: building it again")
                store.drop()
    report = index_paths(settings, paths, prune=True, progress=out.is_terminal)
    files = report.as_json()["files"]
    out.print(
        f"Indexed {files['indexed']} files ({files['unchanged']} unchanged, {files['failed']} failed): "
        f"{report.written} objects written, {report.deleted} deleted in {report.seconds:.1f} s"
    )
    for path, reason in report.failures:
        out.print(f"  skipped {plain(path)}: {plain(reason)}", markup=False)
    stats = collection_stats(settings)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.by_kind.items()))
    out.print(f"Collection {stats.collection}: {stats.objects} objects ({kinds})")
    _answer_samples(settings, out)
    if not settings.weaviate_url:
        env = f"MMRAG_COLLECTION={settings.collection}" + (" MMRAG_PROFILE=tiny" if settings.profile == "tiny" else "")
        out.print(
            f'\nWeaviate keeps running for your own questions: [bold]{env} mmrag ask "..."[/] (or mmrag ui); '
            "stop it with [bold]mmrag weaviate stop[/].",
            highlight=False,
        )


SAMPLE_QUESTIONS = (
    "Which quarter had the highest revenue in 2024?",
    "How many people work in Engineering?",
    "Which region has the largest market share?",
)


def _answer_samples(settings: Settings, out: Console) -> None:
    from mmrag.rag_app.service import open_chain

    model = settings.vlm_model
    if settings.profile == "tiny":
        model = "the tiny random VLM (its answers are noise; the sources are real retrieval)"
        settings = settings.model_copy(update={"max_new_tokens": min(settings.max_new_tokens, 16)})
    out.print(f"\nAnswering {len(SAMPLE_QUESTIONS)} sample questions with {model}:")
    with open_chain(settings) as chain:
        for question in SAMPLE_QUESTIONS:
            answer = chain.ask(question)
            out.print(f"\n[bold]Q:[/] {question}")
            out.print(
                f"[bold]A:[/] {escape(plain(answer.text))}  [dim]({answer.timings.get('generate_s', 0.0):.1f} s)[/]",
                highlight=False,
            )
            for source in answer.sources:
                out.print(
                    f"   [{source.n}] {plain(source.label)} ({source.kind}, score {source.score:.4f})",
                    highlight=False,
                    markup=False,
                )


def register(app: typer.Typer) -> None:
    """Add `demo` to the `mmrag` app."""
    app.command("demo")(demo)
