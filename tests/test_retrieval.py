"""Search, the LangChain retriever and the answering chain over a real Weaviate (tiny CLIP, real MiniLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from mmrag.core import prompts
from mmrag.core.client import connect
from mmrag.core.errors import ConfigError
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import embedders_for
from mmrag.indexer.pipeline import Indexer
from mmrag.indexer.store import TEXT_VECTOR, CollectionStats, Hit, Store, UnknownObjectError, Where
from mmrag.rag_app.chain import RagChain
from mmrag.rag_app.retriever import MultimodalRetriever
from mmrag.rag_app.search import Searcher, SearchOptions, UnknownOptionError, fuse
from mmrag.rag_app.service import make_generator, open_chain
from tests.corpus import write_known_corpus
from tests.helpers import SOURCE_KEYS, cli_env, module_settings, run_cli


@pytest.fixture(scope="module")
def indexed(weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = module_settings(weaviate_server, "R")
    root = write_known_corpus(tmp_path_factory.mktemp("known"))
    with connect(settings) as client:
        Indexer(Store(client, settings.collection), *embedders_for(settings), workers=0).run([root])
    return settings


@pytest.fixture(scope="module")
def chain(indexed: Settings) -> Iterator[RagChain]:
    with open_chain(indexed, generator=make_generator(indexed)) as rag_chain:
        yield rag_chain


def sources_of(chain: RagChain, query: str, **kwargs: Any) -> list[str]:
    return [d.metadata["source"] for d in chain.retriever.invoke(query, **kwargs)]


def test_text_mode_ranks_paraphrases_by_meaning(chain: RagChain) -> None:
    assert sources_of(chain, "How do plants make energy from light?", mode="text")[0] == "science/biology.txt"
    assert sources_of(chain, "What were the quarterly sales figures?", mode="text")[0] == "finance/revenue.txt"
    assert sources_of(chain, "Which city in the US has the most rain?", mode="text")[0] == "charts/rainfall.png"


def test_hybrid_mode_ranks_when_words_and_meaning_agree(chain: RagChain) -> None:
    # BM25 and the text vector agree here; the tiny profile's random CLIP, the third list, cannot outvote them.
    assert sources_of(chain, "plants turn sunlight into sugar")[0] == "science/biology.txt"
    assert sources_of(chain, "quarterly revenue of the company")[0] == "finance/revenue.txt"
    assert sources_of(chain, "monthly rainfall in Seattle")[0] == "charts/rainfall.png"


def test_clip_ranks_only_images_and_pages(chain: RagChain) -> None:
    """CLIP is the cross-modal signal: text and tables get no CLIP vote, which would outvote the figures."""
    documents = chain.retriever.invoke("monthly rainfall in Seattle", k=20)
    assert {d.metadata["kind"] for d in documents} >= {"text", "image"}
    for document in documents:
        visual = document.metadata["kind"] in ("image", "page")
        assert (document.metadata["clip_similarity"] is not None) == visual, document.metadata
    assert chain.retriever.invoke("rainfall", mode="image", kinds=["text"], k=5) == []


def test_filters_and_k_per_call(chain: RagChain) -> None:
    images = chain.retriever.invoke("rain", kinds=["image"], k=5)
    assert {d.metadata["kind"] for d in images} == {"image"} and len(images) == 2
    sports = chain.retriever.invoke("money and revenue", source_prefix="sports/", k=5)
    assert [d.metadata["source"] for d in sports] == ["sports/football.txt"]
    assert len(chain.retriever.invoke("anything", k=2)) == 2
    assert {d.metadata["kind"] for d in chain.retriever.invoke("chart", mode="image", k=5)} <= {"image", "page"}


def test_reciprocal_rank_fusion_order() -> None:
    def hits(score: float, *ids: str) -> list[Hit]:
        return [Hit(id=i, kind="text", source=i, source_path=f"/{i}", score=score) for i in ids]

    fused = fuse({"bm25": hits(7.5, "a", "b", "c"), "text": hits(0.8, "b", "d"), "clip": hits(0.3, "d", "b")})
    assert [r.hit.id for r in fused] == ["b", "d", "a", "c"]  # b is in all three lists
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61 + 1 / 62)
    assert fused[0].ranks == {"bm25": 2, "text": 1, "clip": 2}
    b, a = fused[0], fused[2]
    assert (b.bm25, b.text_similarity, b.clip_similarity) == (7.5, 0.8, 0.3)  # each list's raw score, kept apart
    assert (a.bm25, a.text_similarity, a.clip_similarity) == (7.5, None, None)


def test_unknown_retrieval_option_is_an_error(chain: RagChain) -> None:
    # A misspelt option used to be ignored: `kind=["image"]` searched every kind.
    with pytest.raises(UnknownOptionError, match="unknown retrieval option 'kind': the options are k, mode, kinds"):
        chain.retriever.invoke("rain", kind=["image"])
    with pytest.raises(TypeError, match="'kk'"):  # a TypeError too, as a misspelt keyword is in Python
        chain.retriever.invoke("rain", kk=3)
    with pytest.raises(UnknownOptionError, match="'source'"):
        chain.options.replace(source="sports/")
    with pytest.raises(TypeError, match="kinds"):
        chain.ask("rain", kinds=["image"])  # type: ignore[call-arg]  # options travel as SearchOptions
    with pytest.raises(ConfigError, match="unknown kind 'chart'"):
        chain.prepare("rain", chain.options.replace(kinds=["chart"]))
    prepared = chain.prepare("How much rain falls in Seattle?", chain.options.replace(kinds=["image"], k=5))
    assert {s.kind for s in prepared.sources} == {"image"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "k must be a whole number from 1 to 100, got 0"),
        ({"k": "3"}, "k must be a whole number"),
        ({"mode": "sideways"}, "unknown retrieval mode 'sideways'"),
        ({"kinds": "image"}, "kinds must be a list of kinds"),
        ({"kinds": ("image", "chart")}, "unknown kind 'chart'"),
    ],
)
def test_search_options_are_checked_when_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchOptions(**options)


def test_store_returns_typed_hits_and_stats(indexed: Settings) -> None:
    with connect(indexed) as client:
        store = Store(client, indexed.collection)
        stats = store.stats()
        words = store.bm25("monthly rainfall Seattle", limit=3)
        query = embedders_for(indexed)[1].encode_texts(["plants turn sunlight into sugar"])[0].tolist()
        near = store.near_vector(query, TEXT_VECTOR, limit=2)
        images = store.find(Where(kinds=("image",)))
        sports = store.find(Where(source_prefix="sports/"))
        fetched = store.get(words[0].id)
        thumbnail = store.thumbnail(words[0].id)
        with pytest.raises(UnknownObjectError, match="is not an object id"):
            store.get("rainfall")

    assert isinstance(stats, CollectionStats)
    assert (stats.collection, stats.objects, stats.by_kind) == (indexed.collection, 5, {"text": 3, "image": 2})
    assert (stats.info.clip_dim, stats.info.text_dim) == (64, 384)
    assert stats.as_json()["models"]["text"] == {"id": stats.info.text_model, "dim": 384}

    rain = words[0]
    assert isinstance(rain, Hit) and (rain.kind, rain.source) == ("image", "charts/rainfall.png")
    assert rain.text.startswith("Monthly rainfall in Seattle") and rain.score is not None and rain.score > 0
    assert rain.image_path is not None and rain.image_path.endswith("charts/rainfall.png")
    assert (rain.page, rain.label, rain.bbox) == (None, None, None)  # an image file: no page, no box
    assert fetched == Hit(**{**vars(rain), "score": None})  # a fetch has no score
    assert thumbnail is not None and thumbnail[:3] == b"\xff\xd8\xff"  # JPEG

    assert near[0].source == "science/biology.txt" and near[0].chunk == 0
    assert near[0].score is not None and 0 < near[0].score <= 1 and near[0].score > (near[1].score or 0)
    assert sorted(h.source for h in images) == ["charts/population.png", "charts/rainfall.png"]
    assert all(h.score is None for h in images) and [h.source for h in sports] == ["sports/football.txt"]


def test_grounded_answer_cites_retrieved_objects_numbered_by_rank(chain: RagChain) -> None:
    question = "How much rain falls in Seattle in November?"
    retrieved = {d.metadata["id"] for d in chain.retriever.invoke(question)}
    prepared = chain.prepare(question)
    sources, request = prepared.sources, prepared.request
    assert [s.n for s in sources] == list(range(1, len(sources) + 1))  # 1 = best
    assert [s.score for s in sources] == sorted((s.score for s in sources), reverse=True)
    assert request is not None and len(request.images) == 1  # the one image the tiny OneVision sees...
    image_rank = next(s.n for s in sources if s.kind == "image")
    assert request.sources[0].kind == "image" and request.sources[0].n == image_rank
    assert sorted(item.n for item in request.sources) == [s.n for s in sources]  # ...first, under its rank number
    labels = {s.n: s.prompt_label for s in sources}
    assert all(item.label == labels[item.n] for item in request.sources)  # the prompt's [n] is the list's [n]
    answer = chain.finish(prepared)
    assert not answer.abstained and answer.text
    assert answer.sources == sources and {s.id for s in answer.sources} <= retrieved
    assert "charts/rainfall.png" in {s.source for s in answer.sources}


def test_abstains_when_nothing_is_relevant(chain: RagChain) -> None:
    answer = chain.ask("What is the airspeed velocity of an unladen swallow?")
    assert answer.abstained and answer.text == prompts.NOT_FOUND and answer.sources == []


def test_retrieval_only_chain_runnable(indexed: Settings) -> None:
    with open_chain(indexed, retrieval_only=True) as rag_chain:
        answer = rag_chain.as_runnable().invoke("plants and sunlight")
    assert answer["answer"] == "" and not answer["abstained"]
    assert answer["sources"][0].source == "science/biology.txt"


class TestStandardRetriever(RetrieversIntegrationTests):
    """langchain-tests' standard suite, unmodified, against our retriever."""

    _retriever_params: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _searcher(self, indexed: Settings) -> Iterator[None]:
        clip, text = embedders_for(indexed)
        with connect(indexed) as client:
            type(self)._retriever_params = {"searcher": Searcher(Store(client, indexed.collection), clip, text)}
            yield

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MultimodalRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self._retriever_params)

    @property
    def retriever_query_example(self) -> str:
        return "quarterly revenue"


@pytest.mark.slow
def test_cli_search_and_ask_json(indexed: Settings) -> None:
    env = cli_env(indexed)
    found = run_cli(env, "search", "plants sunlight", "--json", "--k", "2")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)["results"]
    assert len(results) == 2 and set(results[0]) == SOURCE_KEYS
    assert results[0]["source"] == "science/biology.txt"  # relative to the folder indexed
    assert results[0]["label"] == results[0]["path"] == results[0]["source_path"]  # not under the current folder
    assert results[0]["image"] is None and results[0]["text_similarity"] > 0 and results[0]["bm25"] > 0

    asked = run_cli(env, "ask", "Which city in the US has the most rain?", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert set(answer) == {"answer", "abstained", "sources", "timings"}
    assert set(answer["sources"][0]) == SOURCE_KEYS
    chart = answer["sources"][0]
    assert chart["source"] == "charts/rainfall.png" and chart["image"] == chart["source_path"]
    assert chart["text"].startswith("Monthly rainfall in Seattle") and chart["figure_label"] is None

    tables = run_cli(env, "search", "rain", "--kind", "table", "--json")  # a kind, even with no object of it
    assert tables.returncode == 0 and json.loads(tables.stdout) == {"results": []}, tables.stderr
    wrong = run_cli(env, "search", "rain", "--kind", "chart")
    assert wrong.returncode == 2 and "invalid value for '--kind': 'chart' is not one of 'image'," in wrong.stderr


@pytest.mark.slow
def test_cli_errors_are_one_clear_line(indexed: Settings, tmp_path: Path) -> None:
    env = cli_env(indexed)
    cases = [
        (env, ["ask", "  "], "the question is empty"),
        (cli_env(indexed, MMRAG_COLLECTION="Nothing"), ["ask", "hello"], "does not exist"),
        (cli_env(indexed, MMRAG_WEAVIATE_URL=f"http://127.0.0.1:{free_port()}"), ["ask", "hi"], "cannot reach"),
        (cli_env(indexed, MMRAG_PROFILE="default"), ["ask", "rain in Seattle"], "MMRAG_PROFILE=tiny"),
        (cli_env(indexed, MMRAG_MODE="sideways"), ["search", "x"], "MMRAG_MODE"),
    ]
    for case_env, args, message in cases:
        result = run_cli(case_env, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    flag = run_cli(env, "search", "x", "--mode", "sideways")  # a flag's value is the flag's, not MMRAG_MODE's
    assert flag.returncode == 2 and flag.stderr.startswith("error: invalid value for '--mode': 'sideways'")


@pytest.mark.slow
def test_adapter_for_another_base_is_refused(indexed: Settings, tmp_path: Path) -> None:
    from mmrag.core.manifest import AdapterManifest

    AdapterManifest(base_model="llava-hf/llava-1.5-7b-hf", prompt_style=prompts.PROMPT_STYLE).save(tmp_path)
    result = run_cli(cli_env(indexed), "ask", "rain in Seattle", "--adapter", str(tmp_path))
    assert result.returncode == 1
    assert "llava-hf/llava-1.5-7b-hf" in result.stderr and "Traceback" not in result.stderr
    # the adapter is checked before anything connects: with no server to reach, the message is still the adapter's
    nothing_there = cli_env(indexed, MMRAG_WEAVIATE_HTTP_PORT="9", MMRAG_WEAVIATE_GRPC_PORT="9")
    offline = run_cli(nothing_there, "ask", "rain in Seattle", "--adapter", str(tmp_path))
    assert offline.returncode == 1 and "llava-hf/llava-1.5-7b-hf" in offline.stderr, offline.stderr


def test_images_for_the_generator_come_from_files(chain: RagChain) -> None:
    document = chain.retriever.invoke("rainfall", kinds=["image"], k=1)[0]
    image = chain.images.load(document.metadata)
    assert image is not None and image.size == (160, 120)
    assert chain.images.thumbnail_bytes(document.metadata["id"])
