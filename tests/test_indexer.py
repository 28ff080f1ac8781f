"""Indexing into a real Weaviate with the tiny CLIP and the real MiniLM."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from mmrag.core.client import connect
from mmrag.core.server import free_port
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder, embedders_for
from mmrag.indexer.pipeline import Indexer
from mmrag.indexer.store import (
    CLIP_VECTOR,
    TEXT_VECTOR,
    CollectionMismatchError,
    CollectionStats,
    Hit,
    Store,
    StoredObject,
    Where,
)
from tests.corpus import BAD_FILES, write_many_charts, write_mixed_corpus
from tests.helpers import CACHE_DIR, MMRAG_SCRIPT, cli_env, kill_once_written, run_cli

pytestmark = pytest.mark.slow  # corpora indexed with the tiny CLIP, worker pools, a killed run


@pytest.fixture(scope="module")
def embedders() -> tuple[ClipEmbedder, TextEmbedder]:
    return embedders_for(Settings(profile="tiny", cache_dir=CACHE_DIR, device="cpu"))


@pytest.fixture
def store(settings: Settings):  # type: ignore[no-untyped-def]
    with connect(settings) as client:
        yield Store(client, settings.collection)


@pytest.fixture
def indexer(store: Store, embedders: tuple[ClipEmbedder, TextEmbedder]) -> Indexer:
    return Indexer(store, *embedders, workers=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed_corpus(tmp_path_factory.mktemp("corpus"))


def by_source(store: Store) -> dict[str, list[StoredObject]]:
    grouped: dict[str, list[StoredObject]] = {}
    for obj in store.objects():
        grouped.setdefault(str(obj.properties["source"]), []).append(obj)
    return grouped


def test_mixed_tree_counts_captions_and_vectors(indexer: Indexer, store: Store, corpus: Path) -> None:
    report = indexer.run([corpus])
    failures = dict(report.failures)
    for name, reason in BAD_FILES.items():
        assert reason in failures.get(str(corpus / name), ""), (name, failures.get(str(corpus / name)))
    assert report.indexed == 5 and report.seen == 5 + len(BAD_FILES)

    stats = store.stats()
    # images: 2 captioned charts, the pie shown by notes.md, the line chart shown by page.html, the PDF figure
    assert isinstance(stats, CollectionStats) and stats.objects == 11
    assert stats.by_kind == {"image": 5, "page": 2, "text": 4}
    assert (stats.info.clip_dim, stats.info.text_dim, stats.info.schema_version) == (64, 384, 3)

    objects = by_source(store)
    assert "charts/revenue_by_quarter.txt" not in objects and "market_share.png" not in objects  # captions only
    captions = {
        src: [o.properties["text"] for o in objs if o.properties["kind"] == "image"] for src, objs in objects.items()
    }
    assert "Q4 was the strongest" in captions["charts/revenue_by_quarter.png"][0]
    assert "Engineering" in captions["charts/headcount.png"][0]  # JSON sidecar
    assert "Europe leads with 38 percent" in captions["notes.md"][0]  # Markdown alt text
    assert "Monthly temperatures peaked in July" in captions["page.html"][0]  # HTML figcaption
    assert "Figure 1: Annual revenue" in captions["report.pdf"][0]  # text beside the PDF figure
    pdf_pages = sorted(o.properties["page"] for o in objects["report.pdf"] if o.properties["kind"] == "page")
    assert pdf_pages == [1, 2]

    image = next(o for o in objects["charts/headcount.png"])
    full = next(o for o in store.objects(include_vectors=True) if o.id == image.id)
    assert len(full.vectors[CLIP_VECTOR]) == 64 and len(full.vectors[TEXT_VECTOR]) == 384
    assert full.properties["width"] == 480 and "thumbnail" not in full.properties  # a blob: asked for alone
    assert image.id is not None and (store.thumbnail(image.id) or b"")[:3] == b"\xff\xd8\xff"  # a JPEG


def test_nearest_neighbour_of_an_image_is_itself(indexer: Indexer, store: Store, corpus: Path) -> None:
    indexer.run([corpus / "charts"])
    for obj in store.objects(include_vectors=True):
        nearest = store.near_vector(obj.vectors[CLIP_VECTOR], CLIP_VECTOR, limit=1)[0]
        assert nearest.id == obj.id and nearest.score == pytest.approx(1.0, abs=1e-4)  # cosine similarity


def test_rerun_writes_nothing_and_changes_replace(indexer: Indexer, store: Store, tmp_path: Path) -> None:
    root = write_mixed_corpus(tmp_path / "c")
    first = indexer.run([root])
    ids_before = {o.id for o in store.objects()}
    again = indexer.run([root])
    assert (again.written, again.deleted, again.indexed, again.unchanged) == (0, 0, 0, first.indexed)

    (root / "charts" / "revenue_by_quarter.txt").write_text("Revised: Q3 was the weakest quarter.")
    changed = indexer.run([root])
    assert (changed.indexed, changed.written, changed.deleted) == (1, 1, 1)
    revenue = by_source(store)["charts/revenue_by_quarter.png"]
    assert len(revenue) == 1 and revenue[0].properties["text"] == "Revised: Q3 was the weakest quarter."
    assert len({o.id for o in store.objects()}) == len(ids_before)


def test_prune_deletes_only_files_that_are_gone(indexer: Indexer, store: Store, tmp_path: Path) -> None:
    root = write_mixed_corpus(tmp_path / "c")
    indexer.run([root])
    (root / "report.pdf").unlink()
    kept = indexer.run([root])
    assert kept.deleted == 0 and "report.pdf" in by_source(store)
    pruned = indexer.run([root], prune=True)
    assert pruned.deleted == 5 and "report.pdf" not in by_source(store)


def test_other_models_are_refused(store: Store, indexer: Indexer, corpus: Path) -> None:
    store.ensure("ViT-L-14@openai", "some/other-embedder", lambda: (768, 768))
    with pytest.raises(CollectionMismatchError, match="ViT-L-14@openai"):
        indexer.run([corpus / "notes.md"])


def test_worker_pool_gives_the_same_objects(store: Store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = write_mixed_corpus(tmp_path / "c")
    report = Indexer(store, *embedders, workers=2).run([root])
    assert report.indexed == 5
    in_process = Counter(o.properties["kind"] for o in store.objects())
    assert in_process == {"image": 5, "page": 2, "text": 4}


def _count(settings: Settings) -> int:
    from mmrag.core.errors import WeaviateUnavailableError

    with connect(settings) as client:
        store = Store(client, settings.collection)
        if store.info() is None:
            return 0
        try:
            return store.stats().objects
        except WeaviateUnavailableError as e:
            # The schema entry is written a moment before its shard opens: an indexer that has just
            # created the collection has stored nothing yet.
            if "non-existing index" in str(e.__cause__):
                return 0
            raise


def test_writer_reports_objects_the_server_refused(store: Store) -> None:
    from mmrag.core.errors import WeaviateUnavailableError

    store.ensure("clip-x", "text-x", lambda: (4, 3))
    good = [
        StoredObject({"kind": "text", "text": f"t{i}"}, f"00000000-0000-0000-0000-{i:012d}", {"clip": [1.0, 0, 0, i]})
        for i in range(1, 6)
    ]
    bad = StoredObject({"kind": "text", "page": "not a number"})
    with pytest.raises(WeaviateUnavailableError, match="1 objects were not written"), store.writer(batch_size=2) as w:
        for obj in [*good[:3], bad, *good[3:]]:
            w(obj)
    assert sorted(o.id or "" for o in store.objects()) == sorted(o.id or "" for o in good)  # the rest are in
    stored = next(o for o in store.objects(include_vectors=True) if o.id == good[1].id)
    assert stored.properties["text"] == "t2" and stored.vectors["clip"] == [1.0, 0.0, 0.0, 2.0]


def test_kill_mid_run_then_rerun_gives_exact_objects(settings: Settings, tmp_path: Path) -> None:
    root = write_many_charts(tmp_path / "many", 900)
    env = cli_env(settings)
    process = subprocess.Popen([MMRAG_SCRIPT, "index", str(root), "--json"], env=env, stdout=subprocess.PIPE)
    at_kill = kill_once_written(process, lambda: _count(settings))
    assert 0 < at_kill < 900, f"the kill did not land mid-run ({at_kill} objects)"

    rerun = run_cli(env, "index", str(root), "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["files"]["indexed"] > 0
    clean = settings.model_copy(update={"collection": settings.collection + "Clean"})
    assert run_cli(cli_env(clean), "index", str(root), "--json", "--workers", "0").returncode == 0

    def snapshot(s: Settings) -> Counter[tuple[str, str]]:
        with connect(s) as client:
            objects = Store(client, s.collection).objects()
            return Counter((str(o.id), str(o.properties["file_sha256"])) for o in objects)

    after_kill, reference = snapshot(settings), snapshot(clean)
    assert sum(after_kill.values()) == 900 and after_kill == reference  # same ids, no duplicates, nothing missing


def test_cli_json_summary_strict_and_unreachable_server(settings: Settings, corpus: Path) -> None:
    env = cli_env(settings)
    result = run_cli(env, "index", str(corpus / "bad"), str(corpus / "notes.md"), "--json", "--workers", "0")
    assert result.returncode == 1, result.stderr  # files failed; the good one is indexed all the same
    summary = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert summary["files"] == {"seen": 1 + len(BAD_FILES), "indexed": 1, "unchanged": 0, "failed": len(BAD_FILES)}
    assert {f["path"] for f in summary["failures"]} == {str(corpus / n) for n in BAD_FILES}
    assert summary["objects"] == {"written": 2, "deleted": 0}

    strict = run_cli(env, "index", str(corpus / "bad"), "--strict", "--json")
    assert strict.returncode == 1

    down = run_cli(cli_env(settings, MMRAG_WEAVIATE_URL=f"http://127.0.0.1:{free_port()}"), "index", str(corpus))
    assert down.returncode == 1
    assert "cannot reach Weaviate" in down.stderr and "Traceback" not in down.stderr
    assert _count(settings) == 2  # nothing stored was lost

    typo = run_cli(env, "index", str(corpus / "charts"), str(corpus / "chrats"), "--json")
    assert typo.returncode == 1 and typo.stdout == ""
    assert f"no such file or directory: {corpus / 'chrats'}" in typo.stderr and "Traceback" not in typo.stderr
    assert _count(settings) == 2  # refused before anything was indexed


def test_stats_and_delete_commands(settings: Settings, corpus: Path) -> None:
    env = cli_env(settings)
    assert run_cli(env, "stats").returncode == 1  # nothing indexed yet: a clear error
    run_cli(env, "index", str(corpus / "charts"), "--workers", "0")
    stats = json.loads(run_cli(env, "stats", "--json").stdout)
    assert stats["objects"] == 3 and stats["by_kind"] == {"image": 3}
    deleted = run_cli(env, "delete", "--source", str(corpus / "charts" / "headcount.png"))
    assert deleted.returncode == 0 and "deleted 1 objects" in deleted.stdout
    assert json.loads(run_cli(env, "stats", "--json").stdout)["objects"] == 2


def test_unreadable_file_is_reported(indexer: Indexer, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    secret.chmod(0)
    report = indexer.run([secret])
    assert report.failures == [(str(secret), "permission denied")]


def test_filter_by_kind_finds_pages(indexer: Indexer, store: Store, corpus: Path) -> None:
    indexer.run([corpus / "report.pdf"])
    pages = store.find(Where(kinds=("page",)))
    assert {h.page for h in pages} == {1, 2} and {h.kind for h in pages} == {"page"}
    assert {h.source for h in store.find(Where(source_prefix=str(corpus.resolve() / "report*")))} == {"report.pdf"}
    assert store.find(Where(kinds=("table",))) == []


def test_figures_and_tables_keep_label_caption_and_box(
    settings: Settings, indexer: Indexer, store: Store, tmp_path: Path
) -> None:
    from PIL import Image

    from mmrag.indexer.items import FileResult, Item
    from mmrag.indexer.pipeline import Candidate

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 stand-in: only its path is stored")
    figure = Item(
        kind="image",
        locator="page:4:figure:0",
        text="Figure 2: Revenue by region\nNorth South East West\nAs shown in Figure 2, the north led.",
        image=Image.new("RGB", (300, 200), (200, 30, 30)),
        page=4,
        label="Figure 2",
        caption="Figure 2: Revenue by region",
        bbox=(72.0, 100.5, 372.0, 300.25),
    )
    table = Item(
        kind="table",
        locator="page:4:table:0",
        text="Table 1: Headcount by office\n\n| Office | Staff |\n|---|---|\n| Berlin | 12 |",
        page=4,
        label="Table 1",
        caption="Table 1: Headcount by office",
        bbox=(72.0, 400.0, 300.0, 460.0),
    )
    result = FileResult(pdf, "f" * 64, 100, 0.0, items=[figure, table])
    store.ensure(indexer.clip.name, indexer.text.name, lambda: (indexer.clip.dim, indexer.text.dim))
    with store.writer() as write:
        indexer._flush([(Candidate(pdf, tmp_path), result, 2)], write)

    labelled = store.find(Where(label="Figure 2"))
    assert len(labelled) == 1
    figure_hit = labelled[0]
    assert (figure_hit.kind, figure_hit.page, figure_hit.caption) == ("image", 4, "Figure 2: Revenue by region")
    assert figure_hit.bbox == (72.0, 100.5, 372.0, 300.25)
    tables = store.find(Where(kinds=("table",)))
    assert [t.label for t in tables] == ["Table 1"] and "| Berlin | 12 |" in tables[0].text
    found = store.bm25("Berlin headcount", limit=10)
    assert [h.label for h in found] == ["Table 1"] and isinstance(found[0], Hit) and (found[0].score or 0) > 0
    assert store.stats().by_kind == {"image": 1, "table": 1}

    with connect(settings) as client:  # the schema as Weaviate reports it (no store method shows a schema)
        schema = {prop.name: prop for prop in client.collections.get(settings.collection).config.get().properties}
    assert schema["label"].tokenization.value == "field" and schema["label"].index_filterable
    assert not schema["caption"].index_searchable  # the caption is in `text`, which BM25 reads
    assert schema["bbox"].data_type.value == "number[]"


def test_a_v2_collection_is_upgraded_in_place_keeping_its_objects(
    settings: Settings, store: Store, indexer: Indexer, corpus: Path
) -> None:
    from weaviate.classes.config import Configure

    from mmrag.indexer.store import CollectionInfo, _properties

    with connect(settings) as client:  # a collection as mmrag 0.1 with schema v2 made it: no origin, no shape
        client.collections.create(
            store.name,
            description=CollectionInfo(
                indexer.clip.name, indexer.clip.dim, indexer.text.name, indexer.text.dim, 2
            ).to_description(),
            properties=[p for p in _properties() if p.name not in ("origin", "shape")],
            vector_config=[Configure.Vectors.self_provided(name=n) for n in ("clip", "text")],
        )
        old = {"kind": "text", "source": "old.md", "source_path": "/old/old.md", "text": "an older zebra note"}
        vectors = {"clip": [1.0] + [0.0] * (indexer.clip.dim - 1), "text": [1.0] + [0.0] * (indexer.text.dim - 1)}
        client.collections.use(store.name).data.insert(properties=old, vector=vectors)
    assert store.require(current_schema=True).schema_version == 3  # a search upgrades it, as indexing does
    indexer.run([corpus / "notes.md"])
    hits = store.bm25("zebra", limit=5)
    assert [hit.source for hit in hits] == ["old.md"] and hits[0].origin is None and hits[0].shape is None
    with connect(settings) as client:
        names = {prop.name for prop in client.collections.get(store.name).config.get().properties}
    assert {"origin", "shape"} <= names and store.stats().objects > 1


def test_two_processes_upgrading_a_v2_collection_at_once_both_succeed(
    settings: Settings, store: Store, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weaviate.classes.config import Configure

    from mmrag.indexer.store import CollectionInfo, _properties, _v3_properties

    info = CollectionInfo(indexer.clip.name, indexer.clip.dim, indexer.text.name, indexer.text.dim, 2)
    with connect(settings) as client:
        client.collections.create(
            store.name,
            description=info.to_description(),
            properties=[p for p in _properties() if p.name not in ("origin", "shape")],
            vector_config=[Configure.Vectors.self_provided(name=n) for n in ("clip", "text")],
        )
        before = {prop.name for prop in client.collections.get(store.name).config.get().properties}
        for prop in _v3_properties():  # the other process adds them after this one read the schema
            client.collections.get(store.name).config.add_property(prop)
    reads = iter([before])
    real = store._property_names
    monkeypatch.setattr(store, "_property_names", lambda: next(reads, None) or real())
    assert store.require(current_schema=True).schema_version == 3


def test_an_older_schema_is_refused_with_how_to_rebuild(settings: Settings, store: Store, indexer: Indexer) -> None:
    from mmrag.indexer.store import CollectionInfo

    store._create(CollectionInfo(indexer.clip.name, indexer.clip.dim, indexer.text.name, indexer.text.dim, 1))
    advice = r"mmrag delete --all\) and index them again \(mmrag index\)"
    with pytest.raises(CollectionMismatchError, match=advice):
        indexer.run([Path(__file__)])
    with pytest.raises(CollectionMismatchError, match=f"schema v1; .* schema v3. .*{advice}"):
        store.require(current_schema=True)
    env = cli_env(settings)
    asked = run_cli(env, "search", "anything")
    assert asked.returncode == 1 and "mmrag delete --all" in asked.stderr and "Traceback" not in asked.stderr
    both = run_cli(env, "delete", "--all", "--source", "x")
    assert both.returncode == 1 and "give either --source PATH or --all" in both.stderr
    dropped = run_cli(env, "delete", "--all")
    assert dropped.returncode == 0 and f"deleted collection {settings.collection} (0 objects)" in dropped.stdout
    assert not store.exists()


def test_index_report_says_what_it_found(settings: Settings, corpus: Path) -> None:
    env = cli_env(settings)
    result = run_cli(env, "index", str(corpus / "notes.md"), str(corpus / "charts"), "--workers", "0", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["found"]
    # the figure: market_share.png, shown by the note; the images: the three charts
    assert found == {
        "pages": 0,
        "figures": 1,
        "charts": 0,
        "tables": 0,
        "images": 3,
        "chunks": found["chunks"],
        "ocr": 0,
    }
    assert found["chunks"] >= 1
    shown = run_cli(cli_env(settings, MMRAG_COLLECTION=settings.collection + "T"), "index", str(corpus / "notes.md"))
    assert shown.returncode == 0 and "0 pages, 1 figure, 0 tables" in shown.stdout, shown.stdout
