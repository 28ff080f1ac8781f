"""`--ray`: indexing and batch answering on a local Ray (2 CPUs) give exactly what the local path gives."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmrag.core.client import connect
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import embedders_for
from mmrag.indexer.pipeline import PART_PAGES, Indexer
from mmrag.indexer.store import Store
from tests.badfiles import simple_pdf
from tests.corpus import write_many_charts, write_mixed_corpus
from tests.helpers import MMRAG_SCRIPT, cli_env, kill_once_written, run_cli

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster, actors loading the tiny models, a killed run


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[str]:
    """One local Ray for the module; its address, for `mmrag ... --ray ADDRESS` in a subprocess."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def snapshot(settings: Settings) -> dict[str, tuple[dict[str, Any], dict[str, list[float]]]]:
    """Every object by id: its properties but the time it was written, and its vectors."""
    with connect(settings) as client:
        objects = Store(client, settings.collection).objects(include_vectors=True)
        return {str(o.id): ({k: v for k, v in o.properties.items() if k != "created"}, o.vectors) for o in objects}


def assert_same_objects(ray_settings: Settings, local_settings: Settings) -> None:
    on_ray, here = snapshot(ray_settings), snapshot(local_settings)
    assert on_ray.keys() == here.keys()
    for object_id, (properties, vectors) in here.items():
        assert on_ray[object_id][0] == properties, object_id
        assert on_ray[object_id][1].keys() == vectors.keys()
        for name, vector in vectors.items():
            assert on_ray[object_id][1][name] == pytest.approx(vector, abs=1e-5), (object_id, name)


def long_pdf(path: Path, pages: int) -> Path:
    """A text PDF long enough to be read in parts."""
    streams = [
        f"BT /F1 18 Tf 72 700 Td (Page {n}: rainfall table for region {n}.) Tj ET".encode() for n in range(pages)
    ]
    path.write_bytes(simple_pdf(streams))
    return path


def test_ray_index_gives_the_local_objects_and_a_rerun_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    from mmrag.indexer.ray_index import index_paths_on_ray

    root = write_mixed_corpus(tmp_path / "c")
    long_pdf(root / "long.pdf", PART_PAGES + 4)
    local_settings = settings.model_copy(update={"collection": settings.collection + "Local"})
    with connect(local_settings) as client:
        local = Indexer(Store(client, local_settings.collection), *embedders_for(local_settings), workers=0).run([root])

    on_ray = index_paths_on_ray(settings, [root], actors=1)
    assert (on_ray.indexed, on_ray.written, on_ray.found) == (local.indexed, local.written, local.found)
    assert sorted(on_ray.failures) == sorted(local.failures) and on_ray.failures
    assert sorted(on_ray.warnings) == sorted(local.warnings)
    assert_same_objects(settings, local_settings)
    pages = [p for p, _ in snapshot(settings).values() if p["source"] == "long.pdf" and p["kind"] == "page"]
    assert len(pages) == PART_PAGES + 4 and max(p["n_items"] for p in pages) > 0  # read in parts, counted whole

    again = index_paths_on_ray(settings, [root], actors=1)
    assert (again.written, again.deleted, again.indexed, again.unchanged) == (0, 0, 0, local.indexed)


def _count(settings: Settings) -> int:
    with connect(settings) as client:
        store = Store(client, settings.collection)
        if not store.exists():
            return 0
        try:
            return sum(1 for _ in store.inventory().values())
        except Exception:  # the collection's shard opens a moment after its schema
            return 0


def test_a_killed_ray_run_reruns_to_exactly_the_clean_result(
    settings: Settings, tmp_path: Path, local_ray: str
) -> None:
    root = write_many_charts(tmp_path / "many", 200)
    env = cli_env(settings)
    args = [MMRAG_SCRIPT, "index", str(root), "--ray", local_ray, "--json"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at_kill = kill_once_written(process, lambda: _count(settings))
    assert 0 < at_kill < 200, f"the kill did not land mid-run ({at_kill} files)"

    rerun = run_cli(env, "index", str(root), "--ray", local_ray, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["files"]["indexed"] > 0
    clean = settings.model_copy(update={"collection": settings.collection + "Clean"})
    with connect(clean) as client:
        Indexer(Store(client, clean.collection), *embedders_for(clean), workers=0).run([root])

    def ids(s: Settings) -> Counter[tuple[str, str]]:
        return Counter((object_id, str(p["file_sha256"])) for object_id, (p, _) in snapshot(s).items())

    assert sum(ids(settings).values()) == 200 and ids(settings) == ids(clean)
    assert_same_objects(settings, clean)


def test_ray_batch_gives_the_local_answers(settings: Settings, tmp_path: Path) -> None:
    from mmrag.rag_app.batch import run_batch
    from mmrag.rag_app.ray_batch import run_batch_on_ray
    from tests.corpus import write_known_corpus

    settings = settings.model_copy(update={"max_new_tokens": 6})
    root = write_known_corpus(tmp_path / "known")
    with connect(settings) as client:
        Indexer(Store(client, settings.collection), *embedders_for(settings), workers=0).run([root])
    rows = [{"id": f"q{i}", "question": q} for i, q in enumerate(["Monthly rainfall in Seattle?", "Who won?", " "])]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    here = run_batch(settings, questions, tmp_path / "local.jsonl", batch_size=2)
    on_ray = run_batch_on_ray(settings, questions, tmp_path / "ray.jsonl", batch_size=2, actors=1)
    assert (on_ray.answered, on_ray.abstained, on_ray.failed) == (here.answered, here.abstained, here.failed)

    def answers(path: Path) -> dict[str, dict[str, Any]]:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        return {r["id"]: {k: v for k, v in r.items() if k != "timings"} for r in records}

    assert (
        answers(tmp_path / "ray.jsonl") == answers(tmp_path / "local.jsonl")
        and len(answers(tmp_path / "ray.jsonl")) == 3
    )
    again = run_batch_on_ray(settings, questions, tmp_path / "ray.jsonl", batch_size=2, actors=1)
    assert (again.skipped, again.still_failed, again.answered) == (2, 1, 0)  # resumed as the local path resumes
