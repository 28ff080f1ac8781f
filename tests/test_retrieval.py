"""Search, the LangChain retriever and the answering chain over a real Weaviate (tiny CLIP, real MiniLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from PIL import Image, ImageDraw

from mmrag.core import prompts
from mmrag.core.client import connect
from mmrag.core.server import LocalWeaviate, free_port
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import embedders_for
from mmrag.indexer.pipeline import Indexer
from mmrag.indexer.store import Store
from mmrag.rag_app.chain import RagChain
from mmrag.rag_app.retriever import MultimodalRetriever
from mmrag.rag_app.search import Hit, Searcher, fuse
from mmrag.rag_app.service import make_generator, open_chain
from mmrag.rag_app.sources import SourceImages
from tests.conftest import cli_env, module_settings, run_cli
from tests.helpers import SOURCE_KEYS

TEXTS = {
    "science/biology.txt": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "finance/revenue.txt": "The company's quarterly revenue rose to 2.4 million dollars, driven by subscription sales.",
    "sports/football.txt": "The football world cup final went to penalties after a goalless match in extra time.",
}
CAPTIONS = {
    "charts/rainfall.png": "Monthly rainfall in Seattle: wettest in November with 160 millimetres.",
    "charts/population.png": "Population of European capital cities in millions: Berlin, Madrid, Rome.",
}


def write_known_corpus(root: Path) -> Path:
    for name, text in TEXTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for i, (name, caption) in enumerate(CAPTIONS.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (160, 120), "white")
        ImageDraw.Draw(image).rectangle((20 + i * 30, 40, 60 + i * 30, 110), fill=(40 * i, 90, 200))
        image.save(path)
        path.with_suffix(".txt").write_text(caption)
    return root


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


def test_filters_and_k_per_call(chain: RagChain) -> None:
    images = chain.retriever.invoke("rain", kinds=["image"], k=5)
    assert {d.metadata["kind"] for d in images} == {"image"} and len(images) == 2
    sports = chain.retriever.invoke("money and revenue", source_prefix="sports/", k=5)
    assert [d.metadata["source"] for d in sports] == ["sports/football.txt"]
    assert len(chain.retriever.invoke("anything", k=2)) == 2
    assert {d.metadata["kind"] for d in chain.retriever.invoke("chart", mode="image", k=5)} <= {"image", "page"}


def test_reciprocal_rank_fusion_order() -> None:
    def hits(*ids: str) -> list[Hit]:
        return [Hit(id=i, properties={}) for i in ids]

    fused = fuse({"bm25": hits("a", "b", "c"), "text": hits("b", "d"), "clip": hits("d", "b")})
    assert [h.id for h in fused] == ["b", "d", "a", "c"]  # b is in all three lists
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61 + 1 / 62)
    assert fused[0].ranks == {"bm25": 2, "text": 1, "clip": 2}


def test_grounded_answer_cites_retrieved_objects(chain: RagChain) -> None:
    question = "How much rain falls in Seattle in November?"
    retrieved = {d.metadata["id"] for d in chain.retriever.invoke(question)}
    answer = chain.ask(question)
    assert not answer.abstained and answer.text
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert {s.id for s in answer.sources} <= retrieved
    assert answer.sources[0].source == "charts/rainfall.png"  # the one image the tiny OneVision sees comes first


def test_abstains_when_nothing_is_relevant(chain: RagChain) -> None:
    answer = chain.ask("What is the airspeed velocity of an unladen swallow?")
    assert answer.abstained and answer.text == prompts.NOT_FOUND and answer.sources == []


def test_retrieval_only_chain_runnable(indexed: Settings) -> None:
    with open_chain(indexed, retrieval_only=True) as rag_chain:
        answer = rag_chain.as_runnable().invoke("plants and sunlight")
    assert answer.text == "" and not answer.abstained
    assert answer.sources[0].source == "science/biology.txt"


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


def test_cli_search_and_ask_json(indexed: Settings) -> None:
    env = cli_env(indexed)
    found = run_cli(env, "search", "plants sunlight", "--json", "--k", "2")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)["results"]
    assert len(results) == 2 and set(results[0]) == SOURCE_KEYS
    assert results[0]["source"] == "science/biology.txt" and results[0]["label"] == "science/biology.txt"
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
    assert wrong.returncode == 1 and "unknown kind 'chart': choose from image, page, text, table" in wrong.stderr


def test_cli_errors_are_one_clear_line(indexed: Settings, tmp_path: Path) -> None:
    env = cli_env(indexed)
    cases = [
        (env, ["ask", "  "], "the question is empty"),
        (cli_env(indexed, MMRAG_COLLECTION="Nothing"), ["ask", "hello"], "does not exist"),
        (cli_env(indexed, MMRAG_WEAVIATE_URL=f"http://127.0.0.1:{free_port()}"), ["ask", "hi"], "cannot reach"),
        (cli_env(indexed, MMRAG_PROFILE="default"), ["ask", "rain in Seattle"], "MMRAG_PROFILE=tiny"),
        (env, ["search", "x", "--mode", "sideways"], "MMRAG_MODE"),
    ]
    for case_env, args, message in cases:
        result = run_cli(case_env, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_adapter_for_another_base_is_refused(indexed: Settings, tmp_path: Path) -> None:
    from mmrag.core.manifest import AdapterManifest

    AdapterManifest(base_model="llava-hf/llava-1.5-7b-hf", prompt_style=prompts.PROMPT_STYLE).save(tmp_path)
    result = run_cli(cli_env(indexed), "ask", "rain in Seattle", "--adapter", str(tmp_path))
    assert result.returncode == 1
    assert "llava-hf/llava-1.5-7b-hf" in result.stderr and "Traceback" not in result.stderr


def test_images_for_the_generator_come_from_files(chain: RagChain) -> None:
    document = chain.retriever.invoke("rainfall", kinds=["image"], k=1)[0]
    image = chain.images.load(document.metadata)
    assert image is not None and image.size == (160, 120)
    assert isinstance(chain.images, SourceImages) and chain.images.thumbnail_bytes(document.metadata["id"])
